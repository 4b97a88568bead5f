/* Signed arithmetic that -mcpu=v4 compiles to the newer instructions: sign-extending loads
 * (ldxsb), sign-extending moves (movsx), signed division and modulo (sdiv, smod) and bswap. */
#include <stdint.h>

__attribute__((section("socket"), used))
int64_t v4(int8_t *mem, uint64_t len)
{
    int64_t acc = 0;
    for (uint64_t i = 0; i + 1 < len && i < 64; i++) {
        int64_t a = mem[i];
        int64_t b = (int16_t)(mem[i + 1] * 300);
        acc += a * 7 + b / (a | 1) + b % 5;
    }
    return acc ^ (int64_t)__builtin_bswap64((uint64_t)acc);
}
