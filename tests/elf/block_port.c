/* A packet filter in the spirit of rbpf's block_a_port example: drop (return 0) IPv4 TCP packets
 * to port 50892 (0xc6cc), keep (return 0xffffffff) everything else. It reads the packet through a
 * metadata buffer holding the data and data_end pointers at 0x40 and 0x50, as a fixed-mbuff VM
 * builds it. */
#include <stdint.h>

struct meta { uint8_t pad[0x40]; uint64_t data; uint64_t pad2; uint64_t data_end; };

__attribute__((section(".classifier"), used))
uint64_t block_port(struct meta *m)
{
    const uint8_t *p = (const uint8_t *)m->data;
    const uint8_t *end = (const uint8_t *)m->data_end;
    if (p + 34 > end) return 0xffffffff;
    if (p[12] != 0x08 || p[13] != 0x00) return 0xffffffff; /* IPv4 */
    if (p[23] != 6) return 0xffffffff;                      /* TCP */
    const uint8_t *tcp = p + 14 + (p[14] & 0xf) * 4;
    if (tcp + 4 > end) return 0xffffffff;
    uint16_t port = (uint16_t)(tcp[2] << 8 | tcp[3]);
    return port == 50892 ? 0 : 0xffffffff;
}
