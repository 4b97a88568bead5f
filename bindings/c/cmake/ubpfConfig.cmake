# CMake package for code written against uBPF, installed as <prefix>/lib/cmake/ubpf/ubpfConfig.cmake.
# Use as with uBPF's own package: find_package(ubpf REQUIRED) then
# target_link_libraries(app PRIVATE ubpf::ubpf). The target is librbpf (the rbpf package beside this
# one) with include/ubpf.h; like uBPF's target it brings the math library to its users on Linux.
include("${CMAKE_CURRENT_LIST_DIR}/../rbpf/rbpf-config.cmake")
if(NOT TARGET ubpf::ubpf)
    add_library(ubpf::ubpf INTERFACE IMPORTED)
    if(UNIX AND NOT APPLE)
        set_target_properties(ubpf::ubpf PROPERTIES INTERFACE_LINK_LIBRARIES "rbpf::rbpf;m")
    else()
        set_target_properties(ubpf::ubpf PROPERTIES INTERFACE_LINK_LIBRARIES "rbpf::rbpf")
    endif()
endif()
set(ubpf_FOUND TRUE)
