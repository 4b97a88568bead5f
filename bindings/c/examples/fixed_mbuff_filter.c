/* The seed's fourth example, without the ELF file: a packet filter on a fixed-mbuff VM. The VM
 * writes the packet's start and end addresses at offsets 0x40 and 0x50 of its own buffer, as the
 * kernel's sk_buff would hold them; the program drops (returns 0) TCP packets to port 50892 and
 * keeps (returns 0xffffffff) everything else. */
#include <inttypes.h>
#include <stdio.h>
#include <rbpf.h>

static const char filter[] =
    "    ldxdw r2, [r1+0x40]     # data\n"
    "    ldxdw r3, [r1+0x50]     # data_end\n"
    "    mov32 r0, -1            # keep by default\n"
    "    mov r4, r2\n"
    "    add r4, 34              # Ethernet (14) + minimal IPv4 header (20)\n"
    "    jgt r4, r3, done\n"
    "    ldxh r5, [r2+12]        # ethertype, network order\n"
    "    jne r5, 0x0008, done    # 0x0800 IPv4\n"
    "    ldxb r5, [r2+23]        # IP protocol\n"
    "    jne r5, 6, done         # TCP\n"
    "    ldxb r5, [r2+14]        # version and header length\n"
    "    and r5, 0xf\n"
    "    lsh r5, 2\n"
    "    add r5, r2\n"
    "    add r5, 14              # start of the TCP header\n"
    "    mov r6, r5\n"
    "    add r6, 4\n"
    "    jgt r6, r3, done\n"
    "    ldxh r6, [r5+2]         # destination port\n"
    "    be16 r6\n"
    "    jne r6, 50892, done\n"
    "    mov r0, 0               # drop\n"
    "done:\n"
    "    exit\n";

int main(void)
{
    uint8_t packet[] = {
        0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54,
        0x08, 0x00,                                     /* ethertype */
        0x45, 0x00, 0x00, 0x3b, 0xa6, 0xab, 0x40, 0x00, /* IPv4 header */
        0x40, 0x06, 0x96, 0x0f, 0x7f, 0x00, 0x00, 0x01,
        0x7f, 0x00, 0x00, 0x01,
        0x99, 0x99, 0xc6, 0xcc,                         /* TCP: ports 39321 -> 50892 */
        0xd1, 0xe5, 0xc4, 0x9d, 0xd4, 0x30, 0xb5, 0xd2,
        0x80, 0x18, 0x01, 0x56, 0xfe, 0x2f, 0x00, 0x00,
        0x01, 0x01, 0x08, 0x0a, 0x00, 0x23, 0x75, 0x89, /* data */
        0x00, 0x23, 0x63, 0x2d, 0x71, 0x64, 0x66, 0x73,
        0x64, 0x66, 0x0a,
    };
    uint8_t *prog = NULL;
    size_t prog_len = 0;
    rbpf_vm *vm = NULL;
    uint64_t blocked = 1, other = 0;
    int ok;
    if (rbpf_assemble(filter, &prog, &prog_len) != RBPF_OK) {
        fprintf(stderr, "assemble: %s\n", rbpf_last_error());
        return 1;
    }
    if (rbpf_vm_create_fixed_mbuff(prog, prog_len, 0x40, 0x50, &vm) != RBPF_OK) {
        fprintf(stderr, "create: %s\n", rbpf_last_error());
        rbpf_free(prog);
        return 1;
    }
    rbpf_free(prog);
    rbpf_vm_register_standard_helpers(vm);
    if (rbpf_vm_execute(vm, packet, sizeof packet, NULL, 0, &blocked) != RBPF_OK) {
        fprintf(stderr, "execute: %s\n", rbpf_last_error());
        rbpf_vm_destroy(vm);
        return 1;
    }
    packet[37] = 0x50; /* another destination port */
    if (rbpf_vm_execute(vm, packet, sizeof packet, NULL, 0, &other) != RBPF_OK) {
        fprintf(stderr, "execute: %s\n", rbpf_last_error());
        rbpf_vm_destroy(vm);
        return 1;
    }
    printf("filter: port 50892 -> 0x%" PRIx64 " (drop), port 50768 -> 0x%" PRIx64 " (keep)\n", blocked, other);
    rbpf_vm_destroy(vm);
    ok = blocked == 0 && other == 0xffffffffu;
    return ok ? 0 : 1;
}
