/* bpf-to-bpf calls: static functions kept out of line, in .text, called from the program. */
#include <stdint.h>

static __attribute__((noinline)) uint64_t mix(uint64_t a, uint64_t b)
{
    return (a ^ (b << 7)) * 0x9e3779b97f4a7c15ull;
}

static __attribute__((noinline)) uint64_t fold(const uint8_t *p, uint64_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (uint64_t i = 0; i < n && i < 64; i++) h = mix(h, p[i]);
    return h;
}

__attribute__((section("socket"), used))
uint64_t calls(uint8_t *mem, uint64_t len)
{
    return fold(mem, len) ^ mix(len, 3);
}
