# CMake package file for librbpf, installed as <prefix>/lib/cmake/rbpf/rbpf-config.cmake.
# Use: find_package(rbpf REQUIRED) then target_link_libraries(app PRIVATE rbpf::rbpf).
get_filename_component(_rbpf_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
if(NOT TARGET rbpf::rbpf)
    add_library(rbpf::rbpf SHARED IMPORTED)
    if(WIN32)
        set_target_properties(rbpf::rbpf PROPERTIES
            IMPORTED_LOCATION "${_rbpf_prefix}/bin/rbpf.dll"
            IMPORTED_IMPLIB "${_rbpf_prefix}/lib/rbpf.lib")
    elseif(APPLE)
        set_target_properties(rbpf::rbpf PROPERTIES IMPORTED_LOCATION "${_rbpf_prefix}/lib/librbpf.dylib")
    else()
        set_target_properties(rbpf::rbpf PROPERTIES IMPORTED_LOCATION "${_rbpf_prefix}/lib/librbpf.so")
    endif()
    set_target_properties(rbpf::rbpf PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_rbpf_prefix}/include")
endif()
set(rbpf_FOUND TRUE)
unset(_rbpf_prefix)
