/* bpf_trace_printk as kernel programs call it: the format string in .rodata, up to three arguments. */
#include <stdint.h>

static long (*bpf_trace_printk)(const char *fmt, uint32_t fmt_size, ...) = (void *)6;

__attribute__((section("socket"), used))
uint64_t show(uint8_t *mem, uint64_t len)
{
    static const char fmt[] = "len=%d first=0x%02x last=%u\n";
    if (len < 2)
        return 0;
    return bpf_trace_printk(fmt, sizeof(fmt), (int)len, mem[0], mem[len - 1]);
}
