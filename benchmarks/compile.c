/* JIT compilation time against program size, through the C ABI.
 *   compile warm      each size compiled again and again on one VM: best time per compile
 *   compile first N   one program of N instructions compiled once, the first compile of the process
 * The programs repeat an eight-instruction block of arithmetic, a checked packet load, a
 * conditional jump and a stack store and load, so the code has checks, branches and
 * out-of-line parts in the proportions of ordinary programs.
 *   compile kernels OBJ   the functions of benchmarks/clang/kernels.o (clang's code, raw VMs): best
 *                         time per compile, checked and unchecked (the input analysis at work).
 *   compile count ...     compiles one program again and again without timing, for
 *                         benchmarks/compile-count.sh (host instructions per compile, callgrind). */
#define _POSIX_C_SOURCE 199309L
#include <rbpf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "blocks.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* Loops in a row, each bounded by the input (the JIT's loop analyses at work), n >= 8 slots:
 * mov r0, 0; jne r2, 0, +1; gotol exit; then { mov r3, 0; add r3, 1; jlt r3, r2, -2; add r0, r3 }
 * repeated; filler; exit. */
static uint8_t *loops(size_t n)
{
    uint8_t *p = calloc(n, 8);
    size_t i = 0;
    put(p + 8 * i++, 0xb7, 0, 0, 0, 0);                    /* mov r0, 0 */
    put(p + 8 * i++, 0x55, 2, 0, 1, 0);                    /* jne r2, 0, +1 */
    put(p + 8 * i++, 0x06, 0, 0, 0, (int32_t)(n - 4));     /* gotol exit */
    while (i + 4 < n) {
        put(p + 8 * i++, 0xb7, 3, 0, 0, 0);                /* mov r3, 0 */
        put(p + 8 * i++, 0x07, 3, 0, 0, 1);                /* add r3, 1 */
        put(p + 8 * i++, 0xad, 3, 2, -2, 0);               /* jlt r3, r2, -2 */
        put(p + 8 * i++, 0x0f, 0, 3, 0, 0);                /* add r0, r3 */
    }
    while (i + 1 < n) put(p + 8 * i++, 0x07, 0, 0, 0, 1); /* add r0, 1 */
    put(p + 8 * i++, 0x95, 0, 0, 0, 0);                   /* exit */
    return p;
}

static int shape_loops;

static rbpf_vm *make(size_t n)
{
    uint8_t *p = shape_loops ? loops(n) : program(n);
    rbpf_vm *vm;
    if (rbpf_vm_create(RBPF_VM_RAW, p, n * 8, &vm) != RBPF_OK) {
        fprintf(stderr, "load (%zu instructions): %s\n", n, rbpf_last_error());
        exit(1);
    }
    free(p);
    return vm;
}

/* The compiled program runs and gives the same result as the interpreter. */
static void check(rbpf_vm *vm)
{
    uint8_t packet[64];
    for (int k = 0; k < 64; k++) packet[k] = (uint8_t)(k * 7);
    uint64_t a, b;
    if (rbpf_vm_execute(vm, packet, sizeof packet, NULL, 0, &a) != RBPF_OK || rbpf_vm_execute_jit(vm, packet, sizeof packet, NULL, 0, &b) != RBPF_OK
        || a != b) {
        fprintf(stderr, "the compiled program does not agree with the interpreter: %s\n", rbpf_last_error());
        exit(1);
    }
}

/* Best time per compile: seven rounds of at least 50 ms each. */
static double best_compile(rbpf_vm *vm, uint32_t flags)
{
    double best = 1e30;
    for (int round = 0; round < 7; round++) {
        int reps = 0;
        double t0 = now(), dt;
        do {
            if (rbpf_vm_jit_compile_ex(vm, flags) != RBPF_OK) {
                fprintf(stderr, "%s\n", rbpf_last_error());
                exit(1);
            }
            reps++;
            dt = now() - t0;
        } while (dt < 0.05);
        if (dt / reps < best) best = dt / reps;
    }
    return best;
}

/* The ELF object at path, in a buffer of its own (NULL, with the reason printed, when it cannot be read). */
static const uint8_t *read_object(const char *path, size_t *len)
{
    static uint8_t elf[1 << 20];
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return NULL;
    }
    *len = fread(elf, 1, sizeof elf, f);
    fclose(f);
    return elf;
}

static int kernels(const char *path)
{
    size_t len;
    const uint8_t *elf = read_object(path, &len);
    if (!elf) return 1;
    static const char *names[] = { "checksum", "hash", "sort", "parse", "tokens" };
    printf("| kernel (clang -O2 -target bpf) | instructions | checked, us per compile (best) | unchecked |\n|---|---|---|---|\n");
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        rbpf_vm *vm;
        if (rbpf_vm_create_from_elf(RBPF_VM_RAW, elf, len, names[k], &vm) != RBPF_OK) {
            fprintf(stderr, "%s: %s\n", names[k], rbpf_last_error());
            return 1;
        }
        uint8_t *prog;
        size_t n = 0;
        if (rbpf_vm_get_program(vm, &prog, &n) == RBPF_OK) {
            rbpf_free(prog);
            n /= 8;
        }
        double checked = best_compile(vm, 0), unchecked = best_compile(vm, RBPF_JIT_UNCHECKED);
        printf("| %s | %zu | %.1f | %.1f |\n", names[k], n, checked * 1e6, unchecked * 1e6);
        rbpf_vm_destroy(vm);
    }
    return 0;
}

/* The shape of a classic filter as the kernel translates one: 40 legacy packet loads, each
 * followed by a test, and an indexed load (83 instructions). */
static uint8_t *legacy(size_t *n)
{
    uint8_t *p = calloc(83, 8);
    size_t i = 0;
    put(p + 8 * i++, 0xbf, 6, 1, 0, 0); /* mov r6, r1 (the context the loads read) */
    for (int k = 0; k < 40; k++) {
        put(p + 8 * i++, 0x28, 0, 0, 0, 2 * k);     /* ldabsh 2k */
        put(p + 8 * i++, 0x15, 0, 0, 1, k + 1);     /* jeq r0, k+1, +1 */
    }
    put(p + 8 * i++, 0x50, 0, 7, 0, 3); /* ldindb r7, 3 */
    put(p + 8 * i++, 0x95, 0, 0, 0, 0); /* exit */
    *n = i;
    return p;
}

/* count REPS blocks N | count REPS legacy | count REPS kernel OBJ NAME: loads the program (as a
 * raw VM; a kernel of the object by its function's name, its instructions only) and compiles it
 * REPS times, for benchmarks/compile-count.sh to count the host instructions of a compile. */
static int count(int argc, char **argv)
{
    int reps = atoi(argv[2]);
    uint8_t *p = NULL;
    size_t n = 0;
    int from_library = 0; /* a kernel's instructions, which rbpf_free releases */
    if (argc == 5 && strcmp(argv[3], "blocks") == 0) {
        n = strtoul(argv[4], NULL, 10);
        p = program(n);
    } else if (argc == 4 && strcmp(argv[3], "legacy") == 0) {
        p = legacy(&n);
    } else if (argc == 6 && strcmp(argv[3], "kernel") == 0) {
        size_t len;
        const uint8_t *elf = read_object(argv[4], &len);
        if (!elf) return 1;
        rbpf_vm *from;
        if (rbpf_vm_create_from_elf(RBPF_VM_RAW, elf, len, argv[5], &from) != RBPF_OK ||
            rbpf_vm_get_program(from, &p, &n) != RBPF_OK) {
            fprintf(stderr, "%s: %s\n", argv[5], rbpf_last_error());
            return 1;
        }
        n /= 8;
        from_library = 1;
        rbpf_vm_destroy(from);
    } else {
        fprintf(stderr, "usage: compile count REPS blocks N | legacy | kernel OBJ NAME\n");
        return 2;
    }
    rbpf_vm *vm;
    if (rbpf_vm_create(RBPF_VM_RAW, p, n * 8, &vm) != RBPF_OK) {
        fprintf(stderr, "load: %s\n", rbpf_last_error());
        return 1;
    }
    if (from_library) rbpf_free(p);
    else free(p);
    for (int r = 0; r < reps; r++)
        if (rbpf_vm_jit_compile(vm) != RBPF_OK) {
            fprintf(stderr, "%s\n", rbpf_last_error());
            return 1;
        }
    rbpf_vm_destroy(vm);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "count") == 0) return count(argc, argv);
    if (argc >= 3 && strcmp(argv[1], "kernels") == 0) return kernels(argv[2]);
    if (argc >= 3 && strcmp(argv[1], "first") == 0) {
        size_t n = strtoul(argv[2], NULL, 10);
        rbpf_vm *vm = make(n);
        double t0 = now();
        if (rbpf_vm_jit_compile(vm) != RBPF_OK) {
            fprintf(stderr, "%s\n", rbpf_last_error());
            return 1;
        }
        double dt = now() - t0;
        check(vm);
        printf("%.1f\n", dt * 1e6);
        rbpf_vm_destroy(vm);
        return 0;
    }
    /* warm: the blocks above; warm loops: the loops in a row (from 10 instructions on). */
    shape_loops = argc >= 3 && strcmp(argv[2], "loops") == 0;
    static const size_t sizes[] = { 2, 10, 40, 100, 1000, 10000, 65536, 100000, 1000000 };
    printf("| instructions | us per compile (best) | ns per instruction |\n|---|---|---|\n");
    for (size_t s = shape_loops ? 1 : 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        rbpf_vm *vm = make(n);
        rbpf_vm_jit_compile(vm); /* warm */
        check(vm);
        double best = best_compile(vm, 0);
        printf("| %zu | %.2f | %.0f |\n", n, best * 1e6, best * 1e9 / n);
        rbpf_vm_destroy(vm);
    }
    return 0;
}
