/* Two programs in one object: what each links is the code it reaches. `logged` calls a function the
 * object does not define (a helper the host registers by name); `scaled` calls a static function
 * clang keeps out of line in .text. Loading `scaled` needs no helper and leaves `logged` out. */
#include <stdint.h>

extern uint64_t host_log(uint64_t value);

static __attribute__((noinline)) uint64_t scale(uint64_t v, uint64_t by)
{
    return v * by + 7;
}

__attribute__((section("prog/logged"), used))
uint64_t logged(uint8_t *mem, uint64_t len)
{
    return host_log(len) + 1;
}

__attribute__((section("prog/scaled"), used))
uint64_t scaled(uint8_t *mem, uint64_t len)
{
    return scale(len, 3) ^ scale(len, 5);
}
