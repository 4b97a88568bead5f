/* The seed's first example: mov32/add32 on a VM without input returns 3. */
#include <inttypes.h>
#include <stdio.h>
#include <rbpf.h>

int main(void)
{
    static const uint8_t prog[] = {
        0xb4, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* mov32 r0, 0 */
        0xb4, 0x01, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, /* mov32 r1, 2 */
        0x04, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, /* add32 r0, 1 */
        0x0c, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* add32 r0, r1 */
        0x95, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* exit */
    };
    rbpf_vm *vm = NULL;
    uint64_t result = 0;
    if (rbpf_vm_create(RBPF_VM_NO_DATA, prog, sizeof prog, &vm) != RBPF_OK) {
        fprintf(stderr, "create: %s\n", rbpf_last_error());
        return 1;
    }
    if (rbpf_vm_execute(vm, NULL, 0, NULL, 0, &result) != RBPF_OK) {
        fprintf(stderr, "execute: %s\n", rbpf_last_error());
        rbpf_vm_destroy(vm);
        return 1;
    }
    printf("add: r0 = %" PRIu64 "\n", result);
    rbpf_vm_destroy(vm);
    return result == 3 ? 0 : 1;
}
