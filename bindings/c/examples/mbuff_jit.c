/* The seed's third example: the program reads the packet address from a metadata buffer the
 * caller fills, then loads a half-word of the packet: 0x2211. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <rbpf.h>

int main(void)
{
    static const uint8_t prog[] = {
        0x79, 0x11, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, /* ldxdw r1, [r1+8] */
        0x69, 0x10, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, /* ldxh r0, [r1+2] */
        0x95, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* exit */
    };
    uint8_t mem[] = {0xaa, 0xbb, 0x11, 0x22, 0xcc, 0xdd};
    uint8_t mbuff[32] = {0};
    uint64_t data = (uint64_t)(uintptr_t)mem, data_end = data + sizeof mem;
    rbpf_vm *vm = NULL;
    uint64_t result = 0;
    int rc;
    memcpy(mbuff + 8, &data, sizeof data);
    memcpy(mbuff + 24, &data_end, sizeof data_end);
    if (rbpf_vm_create(RBPF_VM_MBUFF, prog, sizeof prog, &vm) != RBPF_OK) {
        fprintf(stderr, "create: %s\n", rbpf_last_error());
        return 1;
    }
    rc = rbpf_vm_jit_compile(vm);
    if (rc == RBPF_OK)
        rc = rbpf_vm_execute_jit(vm, mem, sizeof mem, mbuff, sizeof mbuff, &result);
    else if (rc == RBPF_E_UNSUPPORTED)
        rc = rbpf_vm_execute(vm, mem, sizeof mem, mbuff, sizeof mbuff, &result);
    if (rc != RBPF_OK) {
        fprintf(stderr, "run: %s\n", rbpf_last_error());
        rbpf_vm_destroy(vm);
        return 1;
    }
    printf("mbuff: r0 = 0x%" PRIx64 "\n", result);
    rbpf_vm_destroy(vm);
    return result == 0x2211 ? 0 : 1;
}
