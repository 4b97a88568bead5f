/* Constant tables in .rodata: a CRC-8 (polynomial 0x07) over the input through a lookup table. */
#include <stdint.h>

static const uint8_t crc8_table[256] = {
#define R(i) (uint8_t)((((i) << 1) ^ (((i) & 0x80) ? 0x07 : 0)) & 0xff)
#define S(i) R(R(R(R(R(R(R(R(i))))))))
#define T4(i) S(i), S(i + 1), S(i + 2), S(i + 3)
#define T16(i) T4(i), T4(i + 4), T4(i + 8), T4(i + 12)
#define T64(i) T16(i), T16(i + 16), T16(i + 32), T16(i + 48)
    T64(0), T64(64), T64(128), T64(192)
};

__attribute__((section("socket"), used))
uint64_t crc8(uint8_t *mem, uint64_t len)
{
    uint8_t c = 0;
    for (uint64_t i = 0; i < len && i < 1500; i++) c = crc8_table[c ^ mem[i]];
    return c;
}
