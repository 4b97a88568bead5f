/* Calls a two-instruction program N times through the C ABI (argv[1]: i = interpreter, j = JIT),
 * for counting the instructions of one call with callgrind (benchmarks/percall.sh). */
#include <rbpf.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv){ uint8_t *p; size_t n; rbpf_vm *vm; uint64_t r = 0; rbpf_assemble("mov r0, 1\nexit", &p, &n); rbpf_vm_create(RBPF_VM_NO_DATA, p, n, &vm); rbpf_vm_jit_compile(vm);
 int jit = argv[1][0] == 'j'; int count = atoi(argv[2]);
 for (int i = 0; i < count; i++) { if (jit) rbpf_vm_execute_jit(vm, NULL, 0, NULL, 0, &r); else rbpf_vm_execute(vm, NULL, 0, NULL, 0, &r); } printf("%lu\n", r); return 0; }
