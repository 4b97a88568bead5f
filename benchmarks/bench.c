/* Benchmarks of librbpf against the same kernels compiled natively.
 * Build and run: benchmarks/run.sh (after ./build.sh). Prints a Markdown table. */
#define _POSIX_C_SOURCE 199309L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <math.h>
#include <rbpf.h>
#include <ubpf.h>
#include "kernels.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

typedef uint64_t (*native_fn)(uint8_t *, size_t);

enum engine { NATIVE, INTERP, JIT_CHECKED, JIT_UNCHECKED, JIT_NO_INTERRUPT, ENGINES };
static const char *engine_names[ENGINES] = {"native (gcc -O2)", "interpreter", "JIT (checked)", "JIT (unchecked)",
                                            "JIT (checked, no interrupt checks)"};

struct kernel {
    const char *name;
    const char *asm_text;
    native_fn native;
    size_t len;
    int reset; /* the kernel changes its input: restore it before each run */
    int reps;
};

static uint8_t input[8192], pristine[8192];

static void fill_input(struct kernel *k)
{
    if (k->native == (native_fn)arith_c) {
        uint64_t n = 200000;
        memcpy(input, &n, 8);
    } else {
        uint32_t x = 12345;
        for (size_t i = 0; i < k->len; i++) {
            x = x * 1103515245u + 12345u;
            input[i] = (uint8_t)(x >> 16);
        }
    }
    memcpy(pristine, input, k->len);
}

/* One timed batch of k->reps runs, in ns per run. */
static double batch(struct kernel *k, enum engine e, rbpf_vm *vm, uint64_t *result)
{
    double t0 = now();
    for (int r = 0; r < k->reps; r++) {
        if (k->reset) memcpy(input, pristine, k->len);
        uint64_t out = 0;
        int rc = 0;
        switch (e) {
        case NATIVE: out = k->native(input, k->len); break;
        case INTERP: rc = rbpf_vm_execute(vm, input, k->len, NULL, 0, &out); break;
        default: rc = rbpf_vm_execute_jit(vm, input, k->len, NULL, 0, &out); break;
        }
        if (rc != RBPF_OK) {
            fprintf(stderr, "%s/%s: %s\n", k->name, engine_names[e], rbpf_last_error());
            exit(1);
        }
        *result = out;
    }
    return (now() - t0) / k->reps * 1e9;
}

static rbpf_vm *make_vm(const char *text)
{
    uint8_t *prog;
    size_t len;
    rbpf_vm *vm;
    if (rbpf_assemble(text, &prog, &len) != RBPF_OK || rbpf_vm_create(RBPF_VM_RAW, prog, len, &vm) != RBPF_OK) {
        fprintf(stderr, "%s\n", rbpf_last_error());
        exit(1);
    }
    rbpf_free(prog);
    return vm;
}

int main(void)
{
    struct kernel kernels[] = {
        {"arithmetic loop (200k iterations)", arith_asm, (native_fn)arith_c, 8, 0, 20},
        {"internet checksum, 1500 bytes", csum_asm, (native_fn)csum_c, 1500, 0, 20000},
        {"FNV-1a, 4 KiB", fnv_asm, (native_fn)fnv_c, 4096, 0, 5000},
        {"bubble sort, 256 bytes", sort_asm, sort_c, 256, 1, 200},
    };
    int nk = sizeof kernels / sizeof kernels[0];
    double ratio_log[ENGINES] = {0};
    printf("| kernel | native ns | interpreter | JIT checked | JIT unchecked | JIT checked, not interruptible |\n"
           "|---|---|---|---|---|---|\n");
    for (int i = 0; i < nk; i++) {
        struct kernel *k = &kernels[i];
        /* One VM per engine; the engines take turns in every round so that noise from other
         * processes spreads over all of them, and each keeps its best round. */
        rbpf_vm *vms[ENGINES];
        for (int e = 0; e < ENGINES; e++) vms[e] = make_vm(k->asm_text);
        if (rbpf_vm_jit_compile(vms[JIT_CHECKED]) != RBPF_OK ||
            rbpf_vm_jit_compile_ex(vms[JIT_UNCHECKED], RBPF_JIT_UNCHECKED) != RBPF_OK ||
            rbpf_vm_jit_compile_ex(vms[JIT_NO_INTERRUPT], RBPF_JIT_NO_INTERRUPT) != RBPF_OK) {
            fprintf(stderr, "%s\n", rbpf_last_error());
            return 1;
        }
        double ns[ENGINES];
        uint64_t results[ENGINES];
        for (int e = 0; e < ENGINES; e++) ns[e] = 1e30;
        fill_input(k);
        for (int round = 0; round < 15; round++)
            for (int e = 0; e < ENGINES; e++) {
                double t = batch(k, (enum engine)e, vms[e], &results[e]);
                if (t < ns[e]) ns[e] = t;
            }
        for (int e = 1; e < ENGINES; e++) {
            if (results[e] != results[NATIVE]) {
                fprintf(stderr, "%s: %s returned 0x%" PRIx64 ", native 0x%" PRIx64 "\n", k->name, engine_names[e], results[e], results[NATIVE]);
                return 1;
            }
            ratio_log[e] += log(ns[e] / ns[NATIVE]);
        }
        printf("| %s | %.0f | %.1fx | %.2fx | %.2fx | %.2fx |\n", k->name, ns[NATIVE], ns[INTERP] / ns[NATIVE],
               ns[JIT_CHECKED] / ns[NATIVE], ns[JIT_UNCHECKED] / ns[NATIVE], ns[JIT_NO_INTERRUPT] / ns[NATIVE]);
        for (int e = 0; e < ENGINES; e++) rbpf_vm_destroy(vms[e]);
    }
    printf("| **geometric mean** | | **%.1fx** | **%.2fx** | **%.2fx** | **%.2fx** |\n\n", exp(ratio_log[INTERP] / nk),
           exp(ratio_log[JIT_CHECKED] / nk), exp(ratio_log[JIT_UNCHECKED] / nk), exp(ratio_log[JIT_NO_INTERRUPT] / nk));

    /* Per-call overhead of a two-instruction program through the C ABI. */
    rbpf_vm *tiny = make_vm("mov r0, 1\nexit");
    uint64_t r;
    const int calls = 2000000;
    double best_i = 1e30, best_j = 1e30, best_f = 1e30, best_u = 1e30;
    rbpf_jit_fn fn = NULL;
    if (rbpf_vm_jit_compile(tiny) != RBPF_OK || rbpf_vm_jit_function(tiny, &fn) != RBPF_OK) {
        fprintf(stderr, "%s\n", rbpf_last_error());
        return 1;
    }
    /* The same program through the uBPF API: the function ubpf_compile returns. */
    uint8_t *tiny_prog;
    size_t tiny_len;
    struct ubpf_vm *uvm = ubpf_create();
    char *errmsg = NULL;
    ubpf_jit_fn ufn = NULL;
    if (rbpf_assemble("mov r0, 1\nexit", &tiny_prog, &tiny_len) != RBPF_OK || uvm == NULL ||
        ubpf_load(uvm, tiny_prog, (uint32_t)tiny_len, &errmsg) != 0 || (ufn = ubpf_compile(uvm, &errmsg)) == NULL) {
        fprintf(stderr, "ubpf: %s\n", errmsg ? errmsg : "failed");
        return 1;
    }
    for (int round = 0; round < 5; round++) {
        double t0 = now();
        for (int c = 0; c < calls; c++) rbpf_vm_execute(tiny, NULL, 0, NULL, 0, &r);
        double t1 = now();
        for (int c = 0; c < calls; c++) rbpf_vm_execute_jit(tiny, NULL, 0, NULL, 0, &r);
        double t2 = now();
        for (int c = 0; c < calls; c++) fn(NULL, 0, NULL, 0, &r);
        double t3 = now();
        for (int c = 0; c < calls; c++) r = ufn(NULL, 0);
        double t4 = now();
        if ((t4 - t3) / calls * 1e9 < best_u) best_u = (t4 - t3) / calls * 1e9;
        if ((t1 - t0) / calls * 1e9 < best_i) best_i = (t1 - t0) / calls * 1e9;
        if ((t2 - t1) / calls * 1e9 < best_j) best_j = (t2 - t1) / calls * 1e9;
        if ((t3 - t2) / calls * 1e9 < best_f) best_f = (t3 - t2) / calls * 1e9;
    }
    printf("| call through the C ABI, 2-instruction program | ns per call |\n|---|---|\n");
    printf("| rbpf_vm_execute | %.1f |\n| rbpf_vm_execute_jit | %.1f |\n| rbpf_jit_fn from rbpf_vm_jit_function | %.1f |\n"
           "| ubpf_jit_fn from ubpf_compile | %.1f |\n\n", best_i, best_j, best_f, best_u);
    ubpf_destroy(uvm);
    rbpf_free(tiny_prog);
    rbpf_vm_destroy(tiny);

    /* JIT compilation time of a 40-instruction program. */
    char text[4096] = "";
    for (int i = 0; i < 13; i++) {
        char line[128];
        snprintf(line, sizeof line, "add r0, %d\nldxb r3, [r1+%d]\nxor r0, r3\n", i + 1, i);
        strcat(text, line);
    }
    strcat(text, "exit\n");
    rbpf_vm *forty = make_vm(text);
    double best_c = 1e30;
    for (int round = 0; round < 5; round++) {
        double t0 = now();
        for (int c = 0; c < 200; c++) rbpf_vm_jit_compile(forty);
        double dt = (now() - t0) / 200 * 1e6;
        if (dt < best_c) best_c = dt;
    }
    printf("| JIT compilation, 40-instruction program | us |\n|---|---|\n| rbpf_vm_jit_compile | %.1f |\n", best_c);
    rbpf_vm_destroy(forty);
    return 0;
}
