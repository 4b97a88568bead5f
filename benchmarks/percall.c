/* Calls a two-instruction program N times through the C ABI, for counting the instructions of one
 * call with callgrind (benchmarks/percall.sh). argv[1]: i = rbpf_vm_execute, j = rbpf_vm_execute_jit,
 * f = the rbpf_jit_fn from rbpf_vm_jit_function, u = the function ubpf_compile returns. */
#include <rbpf.h>
#include <ubpf.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv)
{
    uint8_t *p;
    size_t n;
    rbpf_vm *vm;
    rbpf_jit_fn fn;
    uint64_t r = 0;
    if (argc < 3 || rbpf_assemble("mov r0, 1\nexit", &p, &n) != RBPF_OK || rbpf_vm_create(RBPF_VM_NO_DATA, p, n, &vm) != RBPF_OK ||
        rbpf_vm_jit_compile(vm) != RBPF_OK || rbpf_vm_jit_function(vm, &fn) != RBPF_OK)
        return 1;
    char mode = argv[1][0];
    int count = atoi(argv[2]);
    struct ubpf_vm *uvm = ubpf_create();
    char *errmsg = NULL;
    ubpf_jit_fn ufn = NULL;
    if (uvm == NULL || ubpf_load(uvm, p, (uint32_t)n, &errmsg) != 0 || (ufn = ubpf_compile(uvm, &errmsg)) == NULL)
        return 1;
    for (int i = 0; i < count; i++) {
        if (mode == 'j') rbpf_vm_execute_jit(vm, NULL, 0, NULL, 0, &r);
        else if (mode == 'f') fn(NULL, 0, NULL, 0, &r);
        else if (mode == 'u') r = ufn(NULL, 0);
        else rbpf_vm_execute(vm, NULL, 0, NULL, 0, &r);
    }
    printf("%lu\n", (unsigned long)r);
    return 0;
}
