/* The kernels of benchmarks/clang/kernels.c: clang's eBPF (kernels.o, loaded by function name into
 * raw VMs) in the interpreter and the JIT, checked and unchecked, against the same C compiled by
 * gcc -O2 and linked in here. Every engine must return the native result. The engines take turns
 * in each round and keep their best, so noise from other processes does not land on one engine
 * only. Build and run: benchmarks/clang.sh (after ./build.sh). Prints Markdown. */
#define _POSIX_C_SOURCE 199309L
#include <inttypes.h>
#include <math.h>
#include <rbpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t checksum(uint8_t *mem, uint64_t len);
uint64_t hash(uint8_t *mem, uint64_t len);
uint64_t sort(uint8_t *mem, uint64_t len);
uint64_t parse(uint8_t *mem, uint64_t len);
uint64_t tokens(uint8_t *mem, uint64_t len);

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

enum engine { NATIVE, INTERP, JIT_CHECKED, JIT_UNCHECKED, JIT_NO_INTERRUPT, ENGINES };
static const char *engine_names[ENGINES] = {"native", "interpreter", "JIT checked", "JIT unchecked", "JIT checked, no interrupt checks"};

struct kernel {
    const char *name;
    uint64_t (*native)(uint8_t *, uint64_t);
    size_t len;
    int reset; /* the kernel changes its input */
    int reps;
    void (*fill)(uint8_t *, size_t);
};

static uint32_t rng = 12345;
static uint32_t next(void) { return rng = rng * 1103515245u + 12345u, rng >> 8; }

static void fill_random(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)next();
}

/* 64-byte frames: mostly IPv4 TCP and UDP, some VLAN-tagged, with options, ARP and IPv6 mixed in. */
static void fill_frames(uint8_t *p, size_t n)
{
    fill_random(p, n);
    for (size_t off = 0; off + 64 <= n; off += 64) {
        uint8_t *f = p + off;
        uint32_t r = next();
        size_t l3 = 14;
        if (r % 5 == 0) {
            f[12] = 0x81, f[13] = 0x00;
            l3 = 18;
        }
        uint16_t type = r % 11 == 0 ? 0x0806 : r % 13 == 0 ? 0x86dd : 0x0800;
        f[l3 - 2] = (uint8_t)(type >> 8), f[l3 - 1] = (uint8_t)type;
        if (type == 0x0800) {
            f[l3] = (uint8_t)(0x40 | (r % 7 == 0 ? 6 : 5));
            f[l3 + 9] = r % 3 == 0 ? 17 : r % 17 == 0 ? 1 : 6;
        }
    }
}

static void fill_text(uint8_t *p, size_t n)
{
    static const char *pieces[] = {"word ", "x_1 ", "12345 ", "\"str\\\"ing\" ", "# comment\n", "a+b ", "\t", "9abc "};
    size_t i = 0;
    while (i < n) {
        const char *s = pieces[next() % 8];
        while (*s && i < n) p[i++] = (uint8_t)*s++;
    }
}

static struct kernel kernels[] = {
    {"checksum, 1500 bytes", checksum, 1500, 0, 2000, fill_random},
    {"hash, 4 KiB", hash, 4096, 0, 500, fill_random},
    {"insertion sort, 128 integers", sort, 512, 1, 100, fill_random},
    {"parse headers, 64 frames", parse, 4096, 0, 2000, fill_frames},
    {"token state machine, 4 KiB", tokens, 4096, 0, 200, fill_text},
};

static uint8_t input[8192] __attribute__((aligned(64))), pristine[8192];

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
    double dt = (now() - t0) / k->reps * 1e9;
    if (k->reset) { /* take the copy's cost out: time it alone */
        double c0 = now();
        for (int r = 0; r < k->reps; r++) {
            memcpy(input, pristine, k->len);
            __asm__ volatile("" ::: "memory");
        }
        dt -= (now() - c0) / k->reps * 1e9;
    }
    return dt;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "benchmarks/clang/kernels.o";
    int rounds = argc > 2 ? atoi(argv[2]) : 25;
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return 1;
    }
    static uint8_t elf[1 << 20];
    size_t elf_len = fread(elf, 1, sizeof elf, f);
    fclose(f);
    int nk = sizeof kernels / sizeof kernels[0];
    if (argc > 3 && strcmp(argv[2], "once") == 0) {
        /* argv[4] (default 1) interpreted runs of kernel argv[3] (0-4) and nothing else timed:
         * benchmarks/clang-count.sh counts their host instructions with callgrind. */
        int i = atoi(argv[3]), runs = argc > 4 ? atoi(argv[4]) : 1;
        if (i < 0 || i >= nk) return 2;
        struct kernel *k = &kernels[i];
        const char *fn = k->native == checksum ? "checksum" : k->native == hash ? "hash" : k->native == sort ? "sort"
                       : k->native == parse ? "parse" : "tokens";
        k->fill(input, k->len);
        rbpf_vm *vm;
        uint64_t out = 0;
        if (rbpf_vm_create_from_elf(RBPF_VM_RAW, elf, elf_len, fn, &vm) != RBPF_OK) {
            fprintf(stderr, "%s: %s\n", fn, rbpf_last_error());
            return 1;
        }
        memcpy(pristine, input, k->len);
        for (int run = 0; run < runs; run++) {
            memcpy(input, pristine, k->len);
            if (rbpf_vm_execute(vm, input, k->len, NULL, 0, &out) != RBPF_OK) {
                fprintf(stderr, "%s: %s\n", fn, rbpf_last_error());
                return 1;
            }
        }
        memcpy(input, pristine, k->len);
        uint64_t want = k->native(input, k->len);
        if (out != want) {
            fprintf(stderr, "%s: interpreter returned 0x%" PRIx64 ", native 0x%" PRIx64 "\n", fn, out, want);
            return 1;
        }
        printf("%s\n", k->name);
        rbpf_vm_destroy(vm);
        return 0;
    }
    double ratio_log[ENGINES] = {0}, worst[ENGINES] = {0};
    printf("| kernel (clang -O2 -target bpf) | native ns | interpreter | JIT checked | JIT unchecked | JIT checked, no interrupt checks |\n|---|---|---|---|---|---|\n");
    for (int i = 0; i < nk; i++) {
        struct kernel *k = &kernels[i];
        const char *fn = k->native == checksum ? "checksum" : k->native == hash ? "hash" : k->native == sort ? "sort"
                       : k->native == parse ? "parse" : "tokens";
        k->fill(input, k->len);
        memcpy(pristine, input, k->len);
        rbpf_vm *vms[ENGINES] = {0};
        for (int e = INTERP; e < ENGINES; e++) {
            if (rbpf_vm_create_from_elf(RBPF_VM_RAW, elf, elf_len, fn, &vms[e]) != RBPF_OK) {
                fprintf(stderr, "%s: %s\n", fn, rbpf_last_error());
                return 1;
            }
        }
        if (rbpf_vm_jit_compile(vms[JIT_CHECKED]) != RBPF_OK || rbpf_vm_jit_compile_ex(vms[JIT_UNCHECKED], RBPF_JIT_UNCHECKED) != RBPF_OK ||
            rbpf_vm_jit_compile_ex(vms[JIT_NO_INTERRUPT], RBPF_JIT_NO_INTERRUPT) != RBPF_OK) {
            fprintf(stderr, "%s: %s\n", fn, rbpf_last_error());
            return 1;
        }
        double ns[ENGINES];
        uint64_t results[ENGINES];
        for (int e = 0; e < ENGINES; e++) ns[e] = 1e30;
        for (int round = 0; round < rounds; round++)
            for (int e = 0; e < ENGINES; e++) {
                double t = batch(k, (enum engine)e, vms[e], &results[e]);
                if (t < ns[e]) ns[e] = t;
            }
        for (int e = 1; e < ENGINES; e++) {
            if (results[e] != results[NATIVE]) {
                fprintf(stderr, "%s: %s returned 0x%" PRIx64 ", native 0x%" PRIx64 "\n", k->name, engine_names[e], results[e], results[NATIVE]);
                return 1;
            }
            double r = ns[e] / ns[NATIVE];
            ratio_log[e] += log(r);
            if (r > worst[e]) worst[e] = r;
        }
        printf("| %s | %.0f | %.1fx | %.2fx | %.2fx | %.2fx |\n", k->name, ns[NATIVE], ns[INTERP] / ns[NATIVE], ns[JIT_CHECKED] / ns[NATIVE],
               ns[JIT_UNCHECKED] / ns[NATIVE], ns[JIT_NO_INTERRUPT] / ns[NATIVE]);
        for (int e = INTERP; e < ENGINES; e++) rbpf_vm_destroy(vms[e]);
    }
    printf("| **geometric mean** | | **%.1fx** | **%.2fx** | **%.2fx** | **%.2fx** |\n", exp(ratio_log[INTERP] / nk), exp(ratio_log[JIT_CHECKED] / nk),
           exp(ratio_log[JIT_UNCHECKED] / nk), exp(ratio_log[JIT_NO_INTERRUPT] / nk));
    printf("| worst | | %.1fx | %.2fx | %.2fx | %.2fx |\n", worst[INTERP], worst[JIT_CHECKED], worst[JIT_UNCHECKED], worst[JIT_NO_INTERRUPT]);
    return 0;
}
