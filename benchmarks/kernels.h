/* The benchmark kernels, once in C and once in eBPF assembly, computing the same results. */
#ifndef RBPF_BENCH_KERNELS_H
#define RBPF_BENCH_KERNELS_H
#include <stddef.h>
#include <stdint.h>

/* Arithmetic loop: sum of (i*i) ^ (i>>3) for i < n, n read from the input's first 8 bytes. */
static const char arith_asm[] =
    "ldxdw r1, [r1]\n"
    "mov r0, 0\n"
    "mov r2, 0\n"
    "jge r2, r1, done\n"
    "loop:\n"
    "mov r3, r2\n"
    "mul r3, r2\n"
    "mov r4, r2\n"
    "rsh r4, 3\n"
    "xor r3, r4\n"
    "add r0, r3\n"
    "add r2, 1\n"
    "jlt r2, r1, loop\n"
    "done:\n"
    "exit\n";

__attribute__((noinline)) static uint64_t arith_c(const uint8_t *mem, size_t len)
{
    (void)len;
    uint64_t n, acc = 0;
    __builtin_memcpy(&n, mem, 8);
    for (uint64_t i = 0; i < n; i++) acc += (i * i) ^ (i >> 3);
    return acc;
}

/* Internet checksum (RFC 1071) of the input. */
static const char csum_asm[] =
    "mov r0, 0\n"
    "mov r3, r1\n"
    "mov r4, r1\n"
    "add r4, r2\n"
    "mov r5, r4\n"
    "sub r5, 1\n"
    "jge r3, r5, tail\n"
    "loop:\n"
    "ldxh r6, [r3]\n"
    "be16 r6\n"
    "add r0, r6\n"
    "add r3, 2\n"
    "jlt r3, r5, loop\n"
    "tail:\n"
    "jge r3, r4, fold\n"
    "ldxb r6, [r3]\n"
    "lsh r6, 8\n"
    "add r0, r6\n"
    "fold:\n"
    "mov r6, r0\n"
    "rsh r6, 16\n"
    "jeq r6, 0, done\n"
    "and r0, 0xffff\n"
    "add r0, r6\n"
    "ja fold\n"
    "done:\n"
    "xor r0, 0xffff\n"
    "exit\n";

__attribute__((noinline)) static uint64_t csum_c(const uint8_t *p, size_t n)
{
    uint64_t s = 0;
    size_t i = 0;
    for (; i + 1 < n; i += 2) s += (uint16_t)(p[i] << 8 | p[i + 1]);
    if (i < n) s += (uint64_t)p[i] << 8;
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return s ^ 0xffff;
}

/* FNV-1a (64-bit) of the input. */
static const char fnv_asm[] =
    "lddw r0, 0xcbf29ce484222325\n"
    "lddw r7, 0x100000001b3\n"
    "mov r3, r1\n"
    "mov r4, r1\n"
    "add r4, r2\n"
    "jge r3, r4, done\n"
    "loop:\n"
    "ldxb r5, [r3]\n"
    "xor r0, r5\n"
    "mul r0, r7\n"
    "add r3, 1\n"
    "jlt r3, r4, loop\n"
    "done:\n"
    "exit\n";

__attribute__((noinline)) static uint64_t fnv_c(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Bubble sort of the input bytes, in place; returns first | last << 8. */
static const char sort_asm[] =
    "mov r6, r2\n"
    "sub r6, 1\n"
    "outer:\n"
    "jsle r6, 0, done\n"
    "mov r3, r1\n"
    "mov r4, r1\n"
    "add r4, r6\n"
    "inner:\n"
    "ldxb r7, [r3]\n"
    "ldxb r8, [r3+1]\n"
    "jle r7, r8, next\n"
    "stxb [r3], r8\n"
    "stxb [r3+1], r7\n"
    "next:\n"
    "add r3, 1\n"
    "jlt r3, r4, inner\n"
    "sub r6, 1\n"
    "ja outer\n"
    "done:\n"
    "ldxb r0, [r1]\n"
    "add r1, r2\n"
    "ldxb r5, [r1-1]\n"
    "lsh r5, 8\n"
    "or r0, r5\n"
    "exit\n";

__attribute__((noinline)) static uint64_t sort_c(uint8_t *a, size_t n)
{
    for (size_t i = n - 1; i > 0; i--)
        for (size_t j = 0; j < i; j++)
            if (a[j] > a[j + 1]) {
                uint8_t t = a[j];
                a[j] = a[j + 1];
                a[j + 1] = t;
            }
    return a[0] | (uint64_t)a[n - 1] << 8;
}

#endif
