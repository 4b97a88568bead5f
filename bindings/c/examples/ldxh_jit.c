/* The seed's second example: a raw-packet VM loads mem[2] (the bytes are ldxb r0, [r1+2]).
 * It JIT-compiles where the JIT runs (x86-64 Linux, macOS and Windows) and interprets elsewhere. */
#include <inttypes.h>
#include <stdio.h>
#include <rbpf.h>

int main(void)
{
    static const uint8_t prog[] = {
        0x71, 0x10, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, /* ldxb r0, [r1+2] */
        0x95, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* exit */
    };
    uint8_t mem[] = {0xaa, 0xbb, 0x11, 0xcc, 0xdd};
    rbpf_vm *vm = NULL;
    uint64_t result = 0;
    int rc;
    if (rbpf_vm_create(RBPF_VM_RAW, prog, sizeof prog, &vm) != RBPF_OK) {
        fprintf(stderr, "create: %s\n", rbpf_last_error());
        return 1;
    }
    rc = rbpf_vm_jit_compile(vm);
    if (rc == RBPF_OK)
        rc = rbpf_vm_execute_jit(vm, mem, sizeof mem, NULL, 0, &result);
    else if (rc == RBPF_E_UNSUPPORTED)
        rc = rbpf_vm_execute(vm, mem, sizeof mem, NULL, 0, &result);
    if (rc != RBPF_OK) {
        fprintf(stderr, "run: %s\n", rbpf_last_error());
        rbpf_vm_destroy(vm);
        return 1;
    }
    printf("ldxh: r0 = 0x%" PRIx64 "\n", result);
    rbpf_vm_destroy(vm);
    return result == 0x11 ? 0 : 1;
}
