# CMake package for code written against uBPF, installed as <prefix>/lib/cmake/ubpf/ubpfConfig.cmake.
# Use as with uBPF's own package: find_package(ubpf REQUIRED) then
# target_link_libraries(app PRIVATE ubpf::ubpf). The target is librbpf with include/ubpf.h; like
# uBPF's target it brings the math library to its users on Linux.
get_filename_component(_ubpf_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
if(NOT TARGET ubpf::ubpf)
    add_library(ubpf::ubpf SHARED IMPORTED)
    if(WIN32)
        set_target_properties(ubpf::ubpf PROPERTIES
            IMPORTED_LOCATION "${_ubpf_prefix}/bin/rbpf.dll"
            IMPORTED_IMPLIB "${_ubpf_prefix}/lib/rbpf.lib")
    elseif(APPLE)
        set_target_properties(ubpf::ubpf PROPERTIES IMPORTED_LOCATION "${_ubpf_prefix}/lib/librbpf.dylib")
    else()
        set_target_properties(ubpf::ubpf PROPERTIES
            IMPORTED_LOCATION "${_ubpf_prefix}/lib/librbpf.so"
            INTERFACE_LINK_LIBRARIES "m")
    endif()
    set_target_properties(ubpf::ubpf PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_ubpf_prefix}/include")
endif()
set(ubpf_FOUND TRUE)
unset(_ubpf_prefix)
