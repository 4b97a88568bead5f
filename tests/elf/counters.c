/* Global counters in .data and .bss: they keep their values from one run to the next. */
#include <stdint.h>

uint64_t runs = 100;   /* .data */
uint64_t bytes_seen;   /* .bss */

__attribute__((section("socket"), used))
uint64_t count(uint8_t *mem, uint64_t len)
{
    (void)mem;
    runs += 1;
    bytes_seen += len;
    return runs * 1000000 + bytes_seen;
}
