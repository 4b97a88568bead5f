/* Map throughput: lookups (then an atomic add on the value) and updates of present keys, from
 * JIT-compiled programs on 1, 2 and 4 threads, each thread on its own 256 keys, beside a plain C
 * hash table and array doing the same. Every program loops 1,000 times per run, so the cost of a
 * call into the library is spread over 1,000 operations. Prints Markdown. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <rbpf.h>

#define OPS 1000
#define KEYS 256

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* r1: the input, whose first 4 bytes are the thread's first key. */
static const char lookup_src[] =
    "ldxw r7, [r1]\nmov r6, 0\nloop:\nmov r1, r6\nand r1, 255\nadd r1, r7\nstxw [r10-4], r1\n"
    "lddw r1, map 0\nmov r2, r10\nadd r2, -4\ncall bpf_map_lookup_elem\njeq r0, 0, next\n"
    "mov r1, 1\nlock add64 [r0], r1\nnext:\nadd r6, 1\njlt r6, 1000, loop\nmov r0, 0\nexit";
static const char update_src[] =
    "ldxw r7, [r1]\nmov r6, 0\nloop:\nmov r1, r6\nand r1, 255\nadd r1, r7\nstxw [r10-4], r1\n"
    "stxdw [r10-16], r6\nlddw r1, map 0\nmov r2, r10\nadd r2, -4\nmov r3, r10\nadd r3, -16\nmov r4, 0\n"
    "call bpf_map_update_elem\nadd r6, 1\njlt r6, 1000, loop\nmov r0, 0\nexit";

/* The reference: an open-addressing table of u32 keys, hashed as the library hashes them. */
struct ctable { uint32_t *keys; uint64_t *values; uint8_t *used; uint32_t mask; };

static uint32_t hash32(uint32_t k)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i < 4; i++) h = (h ^ ((k >> (8 * i)) & 0xff)) * 0x100000001b3ull;
    h ^= h >> 33; h *= 0xff51afd7ed558ccdull; h ^= h >> 33;
    return (uint32_t)h;
}

static uint64_t *ctable_find(struct ctable *t, uint32_t k)
{
    for (uint32_t i = hash32(k) & t->mask;; i = (i + 1) & t->mask) {
        if (!t->used[i]) return NULL;
        if (t->keys[i] == k) return &t->values[i];
    }
}

static void ctable_put(struct ctable *t, uint32_t k, uint64_t v)
{
    uint32_t i = hash32(k) & t->mask;
    while (t->used[i] && t->keys[i] != k) i = (i + 1) & t->mask;
    t->used[i] = 1; t->keys[i] = k; t->values[i] = v;
}

static struct ctable table;
static uint64_t array_values[KEYS * 8];

enum kind { C_HASH_LOOKUP, C_HASH_UPDATE, C_ARRAY_LOOKUP, VM };
struct job { enum kind kind; rbpf_vm *vm; uint32_t first; int runs; double seconds; };

static void *work(void *arg)
{
    struct job *j = arg;
    double t0 = now();
    for (int r = 0; r < j->runs; r++) {
        if (j->kind == VM) {
            uint64_t out;
            if (rbpf_vm_execute_jit(j->vm, (uint8_t *)&j->first, 4, NULL, 0, &out) != RBPF_OK) {
                fprintf(stderr, "%s\n", rbpf_last_error());
                exit(1);
            }
            continue;
        }
        for (uint32_t i = 0; i < OPS; i++) {
            uint32_t k = (i & 255) + j->first;
            if (j->kind == C_HASH_LOOKUP) {
                uint64_t *v = ctable_find(&table, k);
                if (v) __atomic_add_fetch(v, 1, __ATOMIC_RELAXED);
            } else if (j->kind == C_HASH_UPDATE) {
                uint64_t *v = ctable_find(&table, k);
                if (v) *v = i;
            } else {
                __atomic_add_fetch(&array_values[k], 1, __ATOMIC_RELAXED);
            }
            __asm__ volatile("" ::: "memory");
        }
    }
    j->seconds = now() - t0;
    return NULL;
}

static rbpf_vm *vm_for(const char *src, rbpf_map *map)
{
    uint8_t *prog;
    size_t len;
    rbpf_vm *vm;
    if (rbpf_assemble(src, &prog, &len) != RBPF_OK || rbpf_vm_create(RBPF_VM_RAW, prog, len, &vm) != RBPF_OK ||
        rbpf_vm_bind_map(vm, 0, map) != RBPF_OK || rbpf_vm_jit_compile(vm) != RBPF_OK) {
        fprintf(stderr, "%s\n", rbpf_last_error());
        exit(1);
    }
    rbpf_free(prog);
    return vm;
}

/* ns per operation, best of 5 rounds, with `threads` threads each doing runs * OPS operations. */
static double measure(enum kind kind, rbpf_vm *vm, int threads)
{
    double best = 1e30;
    for (int round = 0; round < 5; round++) {
        struct job jobs[4];
        pthread_t tid[4];
        for (int t = 0; t < threads; t++) {
            jobs[t] = (struct job){kind, vm, (uint32_t)(t * KEYS), 2000, 0};
            pthread_create(&tid[t], NULL, work, &jobs[t]);
        }
        double worst = 0;
        for (int t = 0; t < threads; t++) {
            pthread_join(tid[t], NULL);
            if (jobs[t].seconds > worst) worst = jobs[t].seconds;
        }
        double ns = worst * 1e9 / (2000.0 * OPS);
        if (ns < best) best = ns;
    }
    return best;
}

int main(void)
{
    table.mask = 4 * KEYS * 2 - 1;
    table.keys = calloc(table.mask + 1, 4);
    table.values = calloc(table.mask + 1, 8);
    table.used = calloc(table.mask + 1, 1);
    rbpf_map *hash, *array;
    if (rbpf_map_create(RBPF_MAP_HASH, 4, 8, 4 * KEYS, 0, &hash) != RBPF_OK ||
        rbpf_map_create(RBPF_MAP_ARRAY, 4, 8, 4 * KEYS, 0, &array) != RBPF_OK) {
        fprintf(stderr, "%s\n", rbpf_last_error());
        return 1;
    }
    for (uint32_t k = 0; k < 4 * KEYS; k++) {
        uint64_t zero = 0;
        rbpf_map_update(hash, &k, &zero, RBPF_ANY);
        ctable_put(&table, k, 0);
    }
    rbpf_vm *hash_lookup = vm_for(lookup_src, hash), *hash_update = vm_for(update_src, hash);
    rbpf_vm *array_lookup = vm_for(lookup_src, array);
    printf("| operation (ns per operation) | threads | plain C | librbpf, JIT | ratio |\n|---|---|---|---|---|\n");
    int counts[] = {1, 2, 4};
    for (int c = 0; c < 3; c++) {
        int n = counts[c];
        double cl = measure(C_HASH_LOOKUP, NULL, n), rl = measure(VM, hash_lookup, n);
        printf("| hash lookup + atomic add | %d | %.1f | %.1f | %.1fx |\n", n, cl, rl, rl / cl);
        double cu = measure(C_HASH_UPDATE, NULL, n), ru = measure(VM, hash_update, n);
        printf("| hash update (present key) | %d | %.1f | %.1f | %.1fx |\n", n, cu, ru, ru / cu);
        double ca = measure(C_ARRAY_LOOKUP, NULL, n), ra = measure(VM, array_lookup, n);
        printf("| array lookup + atomic add | %d | %.1f | %.1f | %.1fx |\n", n, ca, ra, ra / ca);
    }
    return 0;
}
