/* Times one call through the C ABI (a two-instruction program) for up to three builds of librbpf
 * loaded side by side in one process (dlmopen: each copy has its own runtime), taking turns in
 * rounds, so that the machine's slow and fast spells fall on every build alike. Prints, per
 * library, the best time per call of rbpf_vm_execute, rbpf_vm_execute_jit and rbpf_vm_is_valid
 * over the rounds, and the best time of a warm rbpf_vm_jit_compile of benchmarks/compile.c's
 * 40-instruction program (in microseconds). Run by benchmarks/percall-compare.sh, which repeats it
 * in fresh processes.
 * Usage: percall-compare LIB... (paths to librbpf.so; at most 3: each copy takes static TLS). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "blocks.h"

typedef int (*assemble_fn)(const char *, uint8_t **, size_t *);
typedef int (*create_fn)(int, const uint8_t *, size_t, void **);
typedef int (*compile_fn)(void *);
typedef int (*execute_fn)(void *, uint8_t *, size_t, uint8_t *, size_t, uint64_t *);
typedef int (*valid_fn)(void *);

enum { MAX_LIBS = 3, ROUNDS = 40, CALLS = 500000, COMPILES = 2000, NO_DATA = 3 /* RBPF_VM_NO_DATA */, RAW = 2 /* RBPF_VM_RAW */ };

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    int n = argc - 1;
    if (n < 1 || n > MAX_LIBS) {
        fprintf(stderr, "usage: %s LIB... (1 to %d paths to librbpf.so)\n", argv[0], MAX_LIBS);
        return 2;
    }
    execute_fn execute[MAX_LIBS], execute_jit[MAX_LIBS];
    valid_fn valid[MAX_LIBS];
    compile_fn jit_compile[MAX_LIBS];
    void *vm[MAX_LIBS], *vm40[MAX_LIBS];
    uint8_t *p40 = program(40);
    for (int k = 0; k < n; k++) {
        void *h = dlmopen(LM_ID_NEWLM, argv[k + 1], RTLD_NOW | RTLD_LOCAL);
        if (h == NULL) {
            fprintf(stderr, "%s\n", dlerror());
            return 1;
        }
        assemble_fn assemble = (assemble_fn)dlsym(h, "rbpf_assemble");
        create_fn create = (create_fn)dlsym(h, "rbpf_vm_create");
        compile_fn compile = (compile_fn)dlsym(h, "rbpf_vm_jit_compile");
        execute[k] = (execute_fn)dlsym(h, "rbpf_vm_execute");
        execute_jit[k] = (execute_fn)dlsym(h, "rbpf_vm_execute_jit");
        valid[k] = (valid_fn)dlsym(h, "rbpf_vm_is_valid");
        jit_compile[k] = compile;
        uint8_t *code;
        size_t len;
        if (!assemble || !create || !compile || !execute[k] || !execute_jit[k] || !valid[k] ||
            assemble("mov r0, 1\nexit", &code, &len) != 0 || create(NO_DATA, code, len, &vm[k]) != 0 ||
            compile(vm[k]) != 0 || create(RAW, p40, 40 * 8, &vm40[k]) != 0 || compile(vm40[k]) != 0) {
            fprintf(stderr, "%s: could not set up a VM\n", argv[k + 1]);
            return 1;
        }
    }
    double best[MAX_LIBS][4];
    for (int k = 0; k < n; k++)
        for (int m = 0; m < 4; m++) best[k][m] = 1e30;
    uint64_t r = 0;
    for (int round = 0; round < ROUNDS; round++)
        for (int k = 0; k < n; k++) {
            double t0 = now();
            for (int c = 0; c < CALLS; c++) execute[k](vm[k], NULL, 0, NULL, 0, &r);
            double t1 = now();
            for (int c = 0; c < CALLS; c++) execute_jit[k](vm[k], NULL, 0, NULL, 0, &r);
            double t2 = now();
            for (int c = 0; c < CALLS; c++) valid[k](vm[k]);
            double t3 = now();
            for (int c = 0; c < COMPILES; c++) jit_compile[k](vm40[k]);
            double t4 = now();
            double t[3] = {t1 - t0, t2 - t1, t3 - t2};
            for (int m = 0; m < 3; m++)
                if (t[m] / CALLS * 1e9 < best[k][m]) best[k][m] = t[m] / CALLS * 1e9;
            if ((t4 - t3) / COMPILES * 1e6 < best[k][3]) best[k][3] = (t4 - t3) / COMPILES * 1e6;
        }
    if (r != 1) {
        fprintf(stderr, "the program returned %llu, not 1\n", (unsigned long long)r);
        return 1;
    }
    for (int k = 0; k < n; k++)
        printf("%s execute %.1f execute_jit %.1f is_valid %.1f compile40 %.2f\n", argv[k + 1], best[k][0], best[k][1],
               best[k][2], best[k][3]);
    return 0;
}
