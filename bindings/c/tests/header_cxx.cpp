// Compiles rbpf.h as C++: the extern "C" block and the types must be valid C++.
#include <rbpf.h>

int rbpf_header_compiles_as_cxx()
{
    rbpf_vm *vm = nullptr;
    return rbpf_vm_create(RBPF_VM_NO_DATA, nullptr, 0, &vm);
}
