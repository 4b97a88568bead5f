/* The compile benchmarks' program (benchmarks/compile.c, benchmarks/percall-compare.c): an
 * eight-instruction block of arithmetic, a checked packet load, a conditional jump and a stack
 * store and load, repeated, so the code has checks, branches and out-of-line parts in the
 * proportions of ordinary programs. */
#ifndef RBPF_BENCH_BLOCKS_H
#define RBPF_BENCH_BLOCKS_H
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void put(uint8_t *p, uint8_t op, int dst, int src, int16_t off, int32_t imm)
{
    p[0] = op;
    p[1] = (uint8_t)(dst | src << 4);
    memcpy(p + 2, &off, 2);
    memcpy(p + 4, &imm, 4);
}

/* A program of exactly n slots (n >= 2): mov r0, 0; blocks; filler; exit. */
static uint8_t *program(size_t n)
{
    uint8_t *p = calloc(n, 8);
    size_t i = 0;
    put(p + 8 * i++, 0xb7, 0, 0, 0, 0); /* mov r0, 0 */
    for (int k = 0; i + 8 < n; k++) {
        put(p + 8 * i++, 0x07, 0, 0, 0, k + 1);        /* add r0, k+1 */
        put(p + 8 * i++, 0x71, 3, 1, (int16_t)(k & 31), 0); /* ldxb r3, [r1+k%32] */
        put(p + 8 * i++, 0xaf, 0, 3, 0, 0);            /* xor r0, r3 */
        put(p + 8 * i++, 0x67, 0, 0, 0, 3);            /* lsh r0, 3 */
        put(p + 8 * i++, 0x25, 3, 0, 1, 100);          /* jgt r3, 100, +1 */
        put(p + 8 * i++, 0x0f, 0, 3, 0, 0);            /* add r0, r3 */
        put(p + 8 * i++, 0x63, 10, 0, -8, 0);          /* stxw [r10-8], r0 */
        put(p + 8 * i++, 0x61, 4, 10, -8, 0);          /* ldxw r4, [r10-8] */
    }
    while (i + 1 < n) put(p + 8 * i++, 0x07, 0, 0, 0, 1); /* add r0, 1 */
    put(p + 8 * i++, 0x95, 0, 0, 0, 0);                   /* exit */
    return p;
}
#endif
