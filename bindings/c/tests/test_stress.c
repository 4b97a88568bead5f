/* Eight threads doing random operations on four shared VMs through the C ABI: running them in
 * both engines, compiling, replacing the program, helpers, limits and regions, interrupting,
 * destroying and recreating them, all at once. Nothing may crash, and every run must give a
 * result one of the programs computes for its input, or an error the races explain (the code was
 * discarded, the VM destroyed, a limit or an interrupt hit it). Nothing may leak either: the work
 * runs in six rounds, resident memory may not climb from the first rounds to the last, and destroyed VMs must give
 * their handle slots back. Prints "stress: N passed, N failed", counting one check per round,
 * thread and kind of operation (each of them done hundreds of times), the two leak checks, and one
 * per failure. */
#include <pthread.h>
#include <rbpf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 8
#define SLOTS 4
#define OPS 25000
#define ROUNDS 6
#define LEAK_KIB (16 * 1024)

static rbpf_vm *slots[SLOTS];
static uint8_t *programs[4];
static size_t program_lens[4];
static const char *sources[4] = {
    "ldxdw r0, [r1]\nadd r0, 1\nexit",                             /* x + 1 */
    "ldxdw r0, [r1]\nlsh r0, 1\nexit",                             /* 2x */
    "ldxdw r1, [r1]\ncall 1\nexit",                                /* helper 1: 3x */
    "mov r0, 0\nloop:\nadd r0, 1\njlt r0, 1000, loop\nexit",       /* 1000, or the limit */
};
static long passed, failed, operations;
static __thread int kind; /* the operation being checked, for the tally */
static __thread long done[16], bad[16];
static uint8_t region[64];

static uint64_t triple(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e)
{
    (void)b, (void)c, (void)d, (void)e;
    return a * 3;
}

static void fail(const char *what, int rc, uint64_t value, uint64_t x)
{
    bad[kind]++;
    if (__atomic_add_fetch(&failed, 1, __ATOMIC_RELAXED) > 20) return; /* the first ones tell */
    fprintf(stderr, "FAIL %s: rc %d (%s), r0 %llu for input %llu: %s\n", what, rc, rbpf_error_name(rc), (unsigned long long)value,
            (unsigned long long)x, rbpf_last_error());
}

static void ok(void) { done[kind]++; }

static unsigned max_slot; /* the highest handle-table slot any VM got */

static rbpf_vm *fresh(int which)
{
    rbpf_vm *vm = NULL;
    if (rbpf_vm_create(RBPF_VM_RAW, programs[which], program_lens[which], &vm) != RBPF_OK ||
        rbpf_vm_register_helper(vm, 1, triple) != RBPF_OK) {
        fail("create", -1, 0, 0);
        return NULL;
    }
    /* A handle is (generation << 24 | slot + 1) (src/Rbpf.Native/HandleTable.cs): destroyed VMs
     * give their slots back, so slots stay below the number of VMs alive at once. */
    unsigned slot = (unsigned)((uintptr_t)vm & 0xffffff) - 1, seen = __atomic_load_n(&max_slot, __ATOMIC_RELAXED);
    while (slot > seen && !__atomic_compare_exchange_n(&max_slot, &seen, slot, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {}
    return vm;
}

/* Resident memory in KiB (Linux), 0 where unknown. */
static long resident_kib(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL) return 0;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    fclose(f);
    return resident * 4;
}

/* A run's outcome must be one of the programs' results, or an error a race explains. */
static void check_run(const char *what, int rc, uint64_t r0, uint64_t x)
{
    if (rc == RBPF_OK) {
        if (r0 == x + 1 || r0 == 2 * x || r0 == 3 * x || r0 == 1000) ok();
        else fail(what, rc, r0, x);
        return;
    }
    if (rc == RBPF_E_NO_PROGRAM || rc == RBPF_E_INVALID_HANDLE || rc == RBPF_E_INSTRUCTION_LIMIT || rc == RBPF_E_INTERRUPTED ||
        rc == RBPF_E_UNKNOWN_HELPER) /* a VM made by another thread, between its creation and its helper */
        ok();
    else
        fail(what, rc, r0, x);
}

static void *worker(void *arg)
{
    uint32_t seed = (uint32_t)(uintptr_t)arg * 2654435761u + 1;
    for (int op = 0; op < OPS; op++) {
        seed = seed * 1103515245u + 12345u;
        uint32_t r = seed >> 8;
        int s = (int)(r % SLOTS);
        rbpf_vm *vm = __atomic_load_n(&slots[s], __ATOMIC_ACQUIRE);
        uint64_t x = 1 + (r >> 4) % 100000, r0 = 0;
        uint8_t mem[8];
        memcpy(mem, &x, 8);
        int rc;
        kind = (int)((r >> 2) % 14);
        switch (kind) {
        case 0: case 1: case 2:
            rc = rbpf_vm_execute(vm, mem, sizeof mem, NULL, 0, &r0);
            check_run("execute", rc, r0, x);
            break;
        case 3: case 4: case 5:
            rc = rbpf_vm_execute_jit(vm, mem, sizeof mem, NULL, 0, &r0);
            check_run("execute_jit", rc, r0, x);
            break;
        case 6:
            rc = rbpf_vm_jit_compile_ex(vm, (r >> 12) % 8);
            if (rc == RBPF_OK || rc == RBPF_E_INVALID_HANDLE) ok();
            else fail("jit_compile", rc, 0, 0);
            break;
        case 7: {
            int which = (int)((r >> 12) % 4);
            rc = rbpf_vm_set_program(vm, programs[which], program_lens[which]);
            if (rc == RBPF_OK || rc == RBPF_E_INVALID_HANDLE) ok();
            else fail("set_program", rc, 0, 0);
            break;
        }
        case 8:
            rc = rbpf_vm_register_helper(vm, 1, triple);
            if (rc == RBPF_OK || rc == RBPF_E_INVALID_HANDLE) ok();
            else fail("register_helper", rc, 0, 0);
            break;
        case 9: {
            static const uint64_t limits[] = {0, 500, 100000};
            rc = rbpf_vm_set_instruction_limit(vm, limits[(r >> 12) % 3]);
            if (rc == RBPF_OK || rc == RBPF_E_INVALID_HANDLE) ok();
            else fail("set_instruction_limit", rc, 0, 0);
            break;
        }
        case 10:
            rc = (r >> 12) % 2 ? rbpf_vm_add_memory_region(vm, region, sizeof region, 1) : rbpf_vm_clear_memory_regions(vm);
            if (rc >= 0 || rc == RBPF_E_INVALID_HANDLE) ok(); /* adding gives the region's index */
            else fail("memory regions", rc, 0, 0);
            break;
        case 11:
            rc = rbpf_vm_interrupt(vm);
            if (rc == RBPF_OK || rc == RBPF_E_INVALID_HANDLE) ok();
            else fail("interrupt", rc, 0, 0);
            break;
        case 12: {
            char *text = NULL;
            rc = rbpf_vm_jit_disassemble(vm, &text);
            if (rc == RBPF_OK || rc == RBPF_E_NO_PROGRAM || rc == RBPF_E_INVALID_HANDLE) ok();
            else fail("jit_disassemble", rc, 0, 0);
            rbpf_free(text);
            break;
        }
        default: {
            /* Replace the slot's VM and destroy the old one while others may be running it. */
            rbpf_vm *next = fresh((int)((r >> 12) % 4));
            if (next == NULL) break;
            rbpf_vm *old = __atomic_exchange_n(&slots[s], next, __ATOMIC_ACQ_REL);
            rbpf_vm_destroy(old);
            ok();
            break;
        }
        }
    }
    for (int k = 0; k < 16; k++)
        if (done[k] > 0 && bad[k] == 0) {
            __atomic_add_fetch(&passed, 1, __ATOMIC_RELAXED);
            __atomic_add_fetch(&operations, done[k], __ATOMIC_RELAXED);
        }
    return NULL;
}

int main(void)
{
    for (int i = 0; i < 4; i++)
        if (rbpf_assemble(sources[i], &programs[i], &program_lens[i]) != RBPF_OK) {
            fprintf(stderr, "%s\n", rbpf_last_error());
            return 1;
        }
    for (int s = 0; s < SLOTS; s++) slots[s] = fresh(s % 4);
    /* Six rounds of the same work. Resident memory swings by 10-20 MiB from round to round (the
     * garbage collector's timing), so a leak is the least of the last three rounds standing above
     * the most of the first two by more than LEAK_KIB: each round creates about 14,000 VMs and
     * makes about 85,000 runs, so a leak of half a KiB per VM would show. */
    long early = 0, late = -1;
    for (int round = 0; round < ROUNDS; round++) {
        pthread_t threads[THREADS];
        for (int t = 0; t < THREADS; t++) pthread_create(&threads[t], NULL, worker, (void *)(uintptr_t)(round * THREADS + t + 1));
        for (int t = 0; t < THREADS; t++) pthread_join(threads[t], NULL);
        long now = resident_kib();
        if (round < 2 && now > early) early = now;
        if (round >= ROUNDS - 3 && (late < 0 || now < late)) late = now;
    }
    printf("resident memory: at most %ld KiB after the first two rounds, at least %ld KiB after the last three\n", early, late);
#if defined(__SANITIZE_ADDRESS__)
    /* AddressSanitizer keeps freed memory in quarantine (256 MiB by default), so resident memory
     * climbs without a leak: this check is for the plain build only. */
    printf("(AddressSanitizer build: the resident-memory check is not made)\n");
#else
    if (early > 0 && late - early > LEAK_KIB) {
        kind = 15;
        fail("memory grew between rounds (a leak?)", 0, (uint64_t)(late - early), 0);
    } else
        passed++;
#endif
    /* Every destroyed VM gave its handle slot back: at most SLOTS VMs live in the slots and each
     * thread holds at most one more it has made and not yet swapped in. */
    if (max_slot < SLOTS + THREADS + 1) passed++;
    else fail("handle slots were not reused (destroyed VMs leaked their slots)", 0, max_slot, 0);
    /* Afterwards every VM still works as a VM alone does. */
    for (int s = 0; s < SLOTS; s++) {
        uint64_t x = 21, r0 = 0;
        uint8_t mem[8];
        memcpy(mem, &x, 8);
        if (rbpf_vm_set_instruction_limit(slots[s], 0) == RBPF_OK && rbpf_vm_set_program(slots[s], programs[0], program_lens[0]) == RBPF_OK &&
            rbpf_vm_jit_compile(slots[s]) == RBPF_OK && rbpf_vm_execute_jit(slots[s], mem, 8, NULL, 0, &r0) == RBPF_OK && r0 == 22 &&
            rbpf_vm_execute(slots[s], mem, 8, NULL, 0, &r0) == RBPF_OK && r0 == 22)
            passed++;
        else
            fail("afterwards", rbpf_last_error_code(), r0, x);
        rbpf_vm_destroy(slots[s]);
    }
    for (int i = 0; i < 4; i++) rbpf_free(programs[i]);
    printf("%ld operations by %d threads in %d rounds\nstress: %ld passed, %ld failed\n", operations, THREADS, ROUNDS, passed, failed);
    return failed != 0;
}
