/* Tests of librbpf through its C interface: every export, bad arguments and bad handles.
 * Prints one line per failed check and ends with "c: N passed, N failed". */
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <unistd.h>
#include "read_file.h"
#include <rbpf.h>

static int passed, failed;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (cond) passed++;                                                          \
        else {                                                                       \
            failed++;                                                                \
            fprintf(stderr, "FAIL %s:%d: %s (last error: %s)\n", __FILE__, __LINE__, \
                    #cond, rbpf_last_error());                                       \
        }                                                                            \
    } while (0)

#define CHECK_RC(expr, expected) CHECK((expr) == (expected))

static rbpf_vm *assemble_vm(rbpf_vm_kind kind, const char *src)
{
    uint8_t *prog = NULL;
    size_t len = 0;
    rbpf_vm *vm = NULL;
    if (rbpf_assemble(src, &prog, &len) != RBPF_OK) return NULL;
    if (rbpf_vm_create(kind, prog, len, &vm) != RBPF_OK) vm = NULL;
    rbpf_free(prog);
    return vm;
}

static uint64_t add_all(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e)
{
    return a + b * 10 + c * 100 + d * 1000 + e * 10000;
}

static uint64_t identity(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e)
{
    (void)b; (void)c; (void)d; (void)e;
    return a;
}

static int verifier_calls;
static int reject_long(const uint8_t *prog, size_t len, void *user)
{
    verifier_calls++;
    CHECK(prog != NULL);
    if (len > *(size_t *)user) rbpf_verifier_reject("too long for this test");
    return len > *(size_t *)user ? 1 : 0;
}

static void test_version_and_errors(void)
{
    CHECK(strcmp(rbpf_version(), RBPF_VERSION_STRING) == 0);
    CHECK(strcmp(rbpf_error_name(RBPF_E_OUT_OF_BOUNDS), "RBPF_E_OUT_OF_BOUNDS") == 0);
    CHECK(strcmp(rbpf_error_name(RBPF_OK), "RBPF_OK") == 0);
    CHECK(strcmp(rbpf_error_name(RBPF_E_CALL_DEPTH_EXCEEDED), "RBPF_E_CALL_DEPTH_EXCEEDED") == 0);
    CHECK(strcmp(rbpf_error_name(12345), "RBPF_E_UNKNOWN") == 0);
    CHECK(rbpf_last_error() != NULL);
}

static void test_create_and_kinds(void)
{
    static const uint8_t ret3[] = {0xb7, 0, 0, 0, 3, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0};
    rbpf_vm *vm = (rbpf_vm *)1;
    uint64_t r = 0;
    uint8_t mem[5] = {1, 2, 3, 4, 5};

    CHECK_RC(rbpf_vm_create(RBPF_VM_NO_DATA, ret3, sizeof ret3, NULL), RBPF_E_INVALID_ARGUMENT);
    CHECK_RC(rbpf_vm_create((rbpf_vm_kind)7, ret3, sizeof ret3, &vm), RBPF_E_INVALID_ARGUMENT);
    CHECK(vm == NULL);
    CHECK_RC(rbpf_last_error_code(), RBPF_E_INVALID_ARGUMENT);
    CHECK(strstr(rbpf_last_error(), "kind") != NULL);
    CHECK_RC(rbpf_vm_create(RBPF_VM_FIXED_MBUFF, ret3, sizeof ret3, &vm), RBPF_E_INVALID_ARGUMENT);
    CHECK_RC(rbpf_vm_create(RBPF_VM_RAW, NULL, 16, &vm), RBPF_E_INVALID_ARGUMENT);
    CHECK_RC(rbpf_vm_create(RBPF_VM_RAW, ret3, 12, &vm), RBPF_E_INVALID_PROGRAM);
    CHECK(strstr(rbpf_last_error(), "multiple of 8") != NULL);

    for (int kind = RBPF_VM_MBUFF; kind <= RBPF_VM_NO_DATA; kind++) {
        if (kind == RBPF_VM_FIXED_MBUFF) continue;
        CHECK_RC(rbpf_vm_create((rbpf_vm_kind)kind, ret3, sizeof ret3, &vm), RBPF_OK);
        CHECK(rbpf_vm_is_valid(vm) == 1);
        if (kind == RBPF_VM_NO_DATA) {
            /* Input a kind does not use is refused, not ignored. */
            CHECK_RC(rbpf_vm_execute(vm, mem, sizeof mem, NULL, 0, &r), RBPF_E_INVALID_ARGUMENT);
            CHECK(strstr(rbpf_last_error(), "takes no input memory") != NULL);
            CHECK_RC(rbpf_vm_execute(vm, NULL, 0, NULL, 0, &r), RBPF_OK);
        } else {
            CHECK_RC(rbpf_vm_execute(vm, mem, sizeof mem, NULL, 0, &r), RBPF_OK);
        }
        if (kind == RBPF_VM_RAW) {
            CHECK_RC(rbpf_vm_execute(vm, mem, sizeof mem, mem, sizeof mem, &r), RBPF_E_INVALID_ARGUMENT);
            CHECK(strstr(rbpf_last_error(), "takes no metadata buffer") != NULL);
            CHECK_RC(rbpf_vm_execute(vm, mem, sizeof mem, NULL, 0, &r), RBPF_OK);
        }
        CHECK(r == 3);
        rbpf_vm_destroy(vm);
        CHECK(rbpf_vm_is_valid(vm) == 0);
    }

    /* A VM without a program. */
    CHECK_RC(rbpf_vm_create(RBPF_VM_RAW, NULL, 0, &vm), RBPF_OK);
    CHECK_RC(rbpf_vm_execute(vm, NULL, 0, NULL, 0, &r), RBPF_E_NO_PROGRAM);
    CHECK_RC(rbpf_vm_set_program(vm, ret3, sizeof ret3), RBPF_OK);
    CHECK_RC(rbpf_vm_execute(vm, NULL, 0, NULL, 0, &r), RBPF_OK);
    CHECK(r == 3);
    rbpf_vm_destroy(vm);
}

static void test_raw_and_bounds(void)
{
    rbpf_vm *vm = assemble_vm(RBPF_VM_RAW, "ldxw r0, [r1+2]\nexit");
    uint8_t mem[6] = {0, 0, 0x11, 0x22, 0x33, 0x44};
    uint64_t r = 0;
    CHECK(vm != NULL);
    CHECK_RC(rbpf_vm_execute(vm, mem, 6, NULL, 0, &r), RBPF_OK);
    CHECK(r == 0x44332211u);
    /* mem_len smaller than what the program reads; a failed run leaves *result as it was */
    r = 0x5eed;
    CHECK_RC(rbpf_vm_execute(vm, mem, 5, NULL, 0, &r), RBPF_E_OUT_OF_BOUNDS);
    CHECK(r == 0x5eed);
    CHECK(strstr(rbpf_last_error(), "load of 4 bytes") != NULL);
    CHECK(strstr(rbpf_last_error(), "insn #0") != NULL);
    CHECK_RC(rbpf_vm_execute(vm, NULL, 0, NULL, 0, &r), RBPF_E_OUT_OF_BOUNDS);
    CHECK_RC(rbpf_vm_execute(vm, NULL, 4, NULL, 0, &r), RBPF_E_INVALID_ARGUMENT);
    CHECK_RC(rbpf_vm_execute(vm, mem, 6, NULL, 3, &r), RBPF_E_INVALID_ARGUMENT);
    CHECK_RC(rbpf_vm_execute(vm, mem, 6, NULL, 0, NULL), RBPF_E_INVALID_ARGUMENT);
    rbpf_vm_destroy(vm);

    vm = assemble_vm(RBPF_VM_RAW, "mov r0, r2\nexit");
    CHECK_RC(rbpf_vm_execute(vm, mem, 6, NULL, 0, &r), RBPF_OK);
    CHECK(r == 6);
    rbpf_vm_destroy(vm);

    vm = assemble_vm(RBPF_VM_RAW, "stw [r1+4], 7\nexit");
    CHECK_RC(rbpf_vm_execute(vm, mem, 6, NULL, 0, &r), RBPF_E_OUT_OF_BOUNDS);
    CHECK(strstr(rbpf_last_error(), "store") != NULL);
    CHECK(mem[4] == 0x33); /* nothing written */
    rbpf_vm_destroy(vm);
}

static void test_mbuff_kinds(void)
{
    uint8_t mem[] = {0xaa, 0xbb, 0x11, 0x22, 0xcc, 0xdd};
    uint8_t mbuff[32] = {0};
    uint64_t data = (uint64_t)(uintptr_t)mem, end = data + sizeof mem, r = 0;
    rbpf_vm *vm = assemble_vm(RBPF_VM_MBUFF, "ldxdw r1, [r1+8]\nldxh r0, [r1+2]\nexit");
    memcpy(mbuff + 8, &data, 8);
    memcpy(mbuff + 24, &end, 8);
    CHECK_RC(rbpf_vm_execute(vm, mem, sizeof mem, mbuff, sizeof mbuff, &r), RBPF_OK);
    CHECK(r == 0x2211);
    rbpf_vm_destroy(vm);

    uint8_t *prog = NULL;
    size_t len = 0;
    CHECK_RC(rbpf_assemble("ldxdw r2, [r1+0x10]\nldxdw r3, [r1+0x18]\nmov r0, r3\nsub r0, r2\nexit", &prog, &len), RBPF_OK);
    CHECK_RC(rbpf_vm_create_fixed_mbuff(prog, len, 0x10, 0x18, &vm), RBPF_OK);
    CHECK_RC(rbpf_vm_execute(vm, mem, sizeof mem, NULL, 0, &r), RBPF_OK);
    CHECK(r == sizeof mem);
    CHECK_RC(rbpf_vm_set_program_fixed_mbuff(vm, prog, len, 0x18, 0x10), RBPF_OK);
    CHECK_RC(rbpf_vm_execute(vm, mem, sizeof mem, NULL, 0, &r), RBPF_OK);
    CHECK(r == (uint64_t)-(int64_t)sizeof mem);
    CHECK_RC(rbpf_vm_set_program_fixed_mbuff(vm, prog, len, 0x10, 0x14), RBPF_E_INVALID_ARGUMENT);
    rbpf_vm_destroy(vm);
    rbpf_vm *raw = NULL;
    CHECK_RC(rbpf_vm_create(RBPF_VM_RAW, prog, len, &raw), RBPF_OK);
    CHECK_RC(rbpf_vm_set_program_fixed_mbuff(raw, prog, len, 0x10, 0x18), RBPF_E_INVALID_ARGUMENT);
    rbpf_vm_destroy(raw);
    CHECK_RC(rbpf_vm_create_fixed_mbuff(prog, len, 8, 12, &vm), RBPF_E_INVALID_ARGUMENT);
    CHECK_RC(rbpf_vm_create_fixed_mbuff(prog, len, (size_t)1 << 40, 0, &vm), RBPF_E_INVALID_ARGUMENT);
    CHECK_RC(rbpf_vm_create_fixed_mbuff(NULL, 0, 0, 8, &vm), RBPF_E_INVALID_ARGUMENT);
    CHECK_RC(rbpf_vm_create_fixed_mbuff(prog, len, 0, 8, NULL), RBPF_E_INVALID_ARGUMENT);
    rbpf_free(prog);
}

static void test_program_access(void)
{
    static const uint8_t ret3[] = {0xb7, 0, 0, 0, 3, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0};
    rbpf_vm *vm = NULL;
    uint8_t *out = NULL;
    size_t len = 0;
    CHECK_RC(rbpf_vm_create(RBPF_VM_NO_DATA, NULL, 0, &vm), RBPF_OK);
    CHECK_RC(rbpf_vm_get_program(vm, &out, &len), RBPF_E_NO_PROGRAM);
    CHECK_RC(rbpf_vm_set_program(vm, ret3, sizeof ret3), RBPF_OK);
    CHECK_RC(rbpf_vm_get_program(vm, &out, &len), RBPF_OK);
    CHECK(len == sizeof ret3 && memcmp(out, ret3, len) == 0);
    rbpf_free(out);
    CHECK_RC(rbpf_vm_get_program(vm, NULL, &len), RBPF_E_INVALID_ARGUMENT);
    CHECK_RC(rbpf_vm_set_program(vm, NULL, 0), RBPF_E_INVALID_ARGUMENT);
    /* A rejected program leaves the old one in place. */
    CHECK_RC(rbpf_vm_set_program(vm, ret3, 8), RBPF_E_INVALID_PROGRAM);
    uint64_t r = 0;
    CHECK_RC(rbpf_vm_execute(vm, NULL, 0, NULL, 0, &r), RBPF_OK);
    CHECK(r == 3);
    rbpf_vm_destroy(vm);
    CHECK_RC(rbpf_verify(ret3, sizeof ret3), RBPF_OK);
    CHECK_RC(rbpf_verify(ret3, 8), RBPF_E_INVALID_PROGRAM);
    CHECK(strstr(rbpf_last_error(), "fall off the end") != NULL);
    CHECK_RC(rbpf_verify(NULL, 0), RBPF_E_INVALID_ARGUMENT);
}

static int failing_calls;
static uint64_t failing_helper(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e)
{
    (void)a; (void)b; (void)c; (void)d; (void)e;
    if (failing_calls++ < 1000) rbpf_helper_fail("disk on fire");
    return 0;
}

static void test_helpers(void)
{
    uint64_t r = 0;
    rbpf_vm *vm = assemble_vm(RBPF_VM_NO_DATA, "mov r1, 1\nmov r2, 2\nmov r3, 3\nmov r4, 4\nmov r5, 5\ncall 42\nexit");
    CHECK_RC(rbpf_vm_execute(vm, NULL, 0, NULL, 0, &r), RBPF_E_UNKNOWN_HELPER);
    CHECK(strstr(rbpf_last_error(), "42") != NULL);
    CHECK_RC(rbpf_vm_register_helper(vm, 42, NULL), RBPF_E_INVALID_ARGUMENT);
    CHECK_RC(rbpf_vm_register_helper(vm, 42, add_all), RBPF_OK);
    CHECK_RC(rbpf_vm_execute(vm, NULL, 0, NULL, 0, &r), RBPF_OK);
    CHECK(r == 54321);
    rbpf_vm_destroy(vm);

    vm = assemble_vm(RBPF_VM_NO_DATA, "mov r1, 1000001\ncall 0x70000003\nexit");
    CHECK_RC(rbpf_vm_register_standard_helpers(vm), RBPF_OK);
    CHECK_RC(rbpf_vm_execute(vm, NULL, 0, NULL, 0, &r), RBPF_OK);
    CHECK(r == 1000);
    rbpf_vm_destroy(vm);

    vm = assemble_vm(RBPF_VM_NO_DATA, "mov r1, 0\ncall 5\nmov r0, 2\nexit");
    CHECK_RC(rbpf_vm_register_helper(vm, 5, identity), RBPF_OK);
    CHECK_RC(rbpf_vm_execute(vm, NULL, 0, NULL, 0, &r), RBPF_OK);
    CHECK(r == 2);
    CHECK_RC(rbpf_vm_set_unwind_helper(vm, 5, 1), RBPF_OK);
    CHECK_RC(rbpf_vm_execute(vm, NULL, 0, NULL, 0, &r), RBPF_OK);
    CHECK(r == 0);
    CHECK_RC(rbpf_vm_set_unwind_helper(vm, 5, 0), RBPF_OK);
    CHECK_RC(rbpf_vm_execute(vm, NULL, 0, NULL, 0, &r), RBPF_OK);
    CHECK(r == 2);
    rbpf_vm_destroy(vm);

    /* A helper that reports a failure ends its run at once, in the interpreter and the JIT: the loop
     * below would call it 1,000 times; it is called once. */
    vm = assemble_vm(RBPF_VM_NO_DATA, "mov r6, 1000\nl:\ncall 7\nsub r6, 1\njne r6, 0, l\nexit");
    CHECK_RC(rbpf_vm_register_helper(vm, 7, failing_helper), RBPF_OK);
    for (int jit = 0; jit <= 1; jit++) {
        failing_calls = 0;
        if (jit) CHECK_RC(rbpf_vm_jit_compile(vm), RBPF_OK);
        int rc = jit ? rbpf_vm_execute_jit(vm, NULL, 0, NULL, 0, &r) : rbpf_vm_execute(vm, NULL, 0, NULL, 0, &r);
        CHECK_RC(rc, RBPF_E_HELPER_FAILED);
        CHECK(failing_calls == 1);
        CHECK(strstr(rbpf_last_error(), "insn #1") != NULL && strstr(rbpf_last_error(), "disk on fire") != NULL);
        /* The report was taken: the next run of a helper that does not fail succeeds. */
        failing_calls = 1000;
        rc = jit ? rbpf_vm_execute_jit(vm, NULL, 0, NULL, 0, &r) : rbpf_vm_execute(vm, NULL, 0, NULL, 0, &r);
        CHECK_RC(rc, RBPF_OK);
    }
    rbpf_vm_destroy(vm);
}

/* Batches: one call runs the program over many buffers, keeping or counting the results. */
static void test_batches(void)
{
    rbpf_vm *vm = assemble_vm(RBPF_VM_RAW, "ldxb r0, [r1]\nexit");
    uint8_t a[] = {0}, b[] = {1}, c[] = {5}, d[] = {1};
    rbpf_buffer buffers[] = {{a, 1}, {b, 1}, {c, 1}, {d, 1}, {NULL, 0}};
    uint64_t results[5] = {0};
    size_t done = 99;
    for (uint32_t flags = 0; flags <= RBPF_BATCH_JIT; flags++) {
        if (flags == RBPF_BATCH_JIT) CHECK_RC(rbpf_vm_jit_compile(vm), RBPF_OK);
        CHECK_RC(rbpf_vm_execute_batch(vm, buffers, 4, flags, results, &done), RBPF_OK);
        CHECK(done == 4 && results[0] == 0 && results[1] == 1 && results[2] == 5 && results[3] == 1);
        uint64_t counts[2] = {10, 0};
        CHECK_RC(rbpf_vm_count_verdicts(vm, buffers, 4, flags, counts, 2, &done), RBPF_OK);
        CHECK(counts[0] == 11 && counts[1] == 3 && done == 4); /* 0 once; 1, 5 (the last slot) and 1 */
        /* The fifth buffer is empty: its load fails, after four good runs. */
        CHECK_RC(rbpf_vm_execute_batch(vm, buffers, 5, flags, results, &done), RBPF_E_OUT_OF_BOUNDS);
        CHECK(done == 4 && strstr(rbpf_last_error(), "buffer 4: ") != NULL);
    }
    /* Packed: the same inputs back to back. */
    uint8_t packed[] = {0, 1, 5, 1};
    size_t lengths[] = {1, 1, 1, 1, 0};
    uint64_t counts[2] = {0, 0};
    CHECK_RC(rbpf_vm_execute_packed(vm, packed, lengths, 4, RBPF_BATCH_JIT, results, NULL, 0, &done), RBPF_OK);
    CHECK(done == 4 && results[2] == 5 && results[3] == 1);
    CHECK_RC(rbpf_vm_execute_packed(vm, packed, lengths, 4, 0, NULL, counts, 2, &done), RBPF_OK);
    CHECK(counts[0] == 1 && counts[1] == 3);
    CHECK_RC(rbpf_vm_execute_packed(vm, packed, lengths, 5, 0, results, NULL, 0, &done), RBPF_E_OUT_OF_BOUNDS);
    CHECK(done == 4);
    CHECK_RC(rbpf_vm_execute_batch(vm, NULL, 2, 0, results, &done), RBPF_E_INVALID_ARGUMENT);
    CHECK_RC(rbpf_vm_count_verdicts(vm, buffers, 1, 0, results, 0, &done), RBPF_E_INVALID_ARGUMENT);
    CHECK_RC(rbpf_vm_execute_batch(vm, buffers, 1, 8, results, &done), RBPF_E_INVALID_ARGUMENT);
    rbpf_vm_destroy(vm);
    CHECK_RC(rbpf_vm_execute_batch(vm, buffers, 1, 0, results, &done), RBPF_E_INVALID_HANDLE);
}

/* The default verifier refuses loops with no way out and unused fields that are not zero. */
static void test_default_verifier_rules(void)
{
    static const uint8_t self_jump[] = {0x05, 0, 0xff, 0xff, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0};
    static const uint8_t exit_with_imm[] = {0x95, 0, 0, 0, 1, 0, 0, 0};
    rbpf_vm *vm = NULL;
    CHECK(rbpf_vm_create(RBPF_VM_NO_DATA, self_jump, sizeof self_jump, &vm) == RBPF_E_INVALID_PROGRAM);
    CHECK(strstr(rbpf_last_error(), "insn #0: infinite loop") != NULL);
    CHECK(rbpf_vm_create(RBPF_VM_NO_DATA, exit_with_imm, sizeof exit_with_imm, &vm) == RBPF_E_INVALID_PROGRAM);
    CHECK(strstr(rbpf_last_error(), "imm field is not used") != NULL);
}

static void test_verifier_hooks(void)
{
    static const uint8_t bad[] = {0xff, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0};
    static const uint8_t three[] = {0xb7, 0, 0, 0, 3, 0, 0, 0, 0xb7, 0, 0, 0, 4, 0, 0, 0,
                                    0x95, 0, 0, 0, 0, 0, 0, 0};
    size_t max_len = 16;
    uint64_t r = 0;
    rbpf_vm *vm = NULL;
    CHECK_RC(rbpf_vm_create(RBPF_VM_NO_DATA, three, sizeof three, &vm), RBPF_OK);
    verifier_calls = 0;
    /* The loaded program is re-checked at once; rejected, the old verifier stays. */
    CHECK_RC(rbpf_vm_set_verifier(vm, reject_long, &max_len), RBPF_E_INVALID_PROGRAM);
    CHECK(verifier_calls == 1);
    CHECK(strstr(rbpf_last_error(), "custom verifier rejected the program: too long for this test") != NULL);
    max_len = 64;
    CHECK_RC(rbpf_vm_set_verifier(vm, reject_long, &max_len), RBPF_OK);
    CHECK(verifier_calls == 2);
    max_len = 16;
    CHECK_RC(rbpf_vm_set_program(vm, three, sizeof three), RBPF_E_INVALID_PROGRAM);
    CHECK(verifier_calls == 3);
    /* The custom verifier accepts what the default one rejects; the engine still refuses it at run time. */
    CHECK_RC(rbpf_vm_set_program(vm, bad, sizeof bad), RBPF_OK);
    CHECK_RC(rbpf_vm_execute(vm, NULL, 0, NULL, 0, &r), RBPF_E_ILLEGAL_INSTRUCTION);
    CHECK(strstr(rbpf_last_error(), "unknown opcode 0xff") != NULL);
    CHECK_RC(rbpf_vm_set_verifier(vm, NULL, NULL), RBPF_E_INVALID_PROGRAM); /* default rejects 0xff */
    CHECK_RC(rbpf_vm_set_program(vm, three, sizeof three), RBPF_E_INVALID_PROGRAM); /* custom still active */
    rbpf_vm_destroy(vm);

    CHECK_RC(rbpf_vm_create(RBPF_VM_NO_DATA, NULL, 0, &vm), RBPF_OK);
    CHECK_RC(rbpf_vm_set_program(vm, bad, sizeof bad), RBPF_E_INVALID_PROGRAM);
    CHECK_RC(rbpf_vm_disable_verifier(vm), RBPF_OK);
    CHECK_RC(rbpf_vm_set_program(vm, bad, sizeof bad), RBPF_OK);
    CHECK_RC(rbpf_vm_execute(vm, NULL, 0, NULL, 0, &r), RBPF_E_ILLEGAL_INSTRUCTION);
    CHECK_RC(rbpf_vm_set_verifier(vm, NULL, NULL), RBPF_E_INVALID_PROGRAM);
    rbpf_vm_destroy(vm);
}

static void test_limits_and_regions(void)
{
    uint64_t r = 0;
    rbpf_vm *vm = assemble_vm(RBPF_VM_NO_DATA, "mov r0, 0\nloop:\nadd r0, 1\njne r0, 0, loop\nexit");
    CHECK_RC(rbpf_vm_set_instruction_limit(vm, 1000), RBPF_OK);
    r = 0x5eed; /* r0 had counted to about 500 when the limit stopped it: not written */
    CHECK_RC(rbpf_vm_execute(vm, NULL, 0, NULL, 0, &r), RBPF_E_INSTRUCTION_LIMIT);
    CHECK(r == 0x5eed);
    rbpf_vm_destroy(vm);

    vm = assemble_vm(RBPF_VM_NO_DATA, "f:\ncall local f\nexit");
    CHECK_RC(rbpf_vm_execute(vm, NULL, 0, NULL, 0, &r), RBPF_E_CALL_DEPTH_EXCEEDED);
    rbpf_vm_destroy(vm);

    static uint8_t table[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    char src[200];
    snprintf(src, sizeof src, "lddw r1, 0x%" PRIx64 "\nldxb r0, [r1+9]\nstb [r1], 99\nexit", (uint64_t)(uintptr_t)table);
    vm = assemble_vm(RBPF_VM_NO_DATA, src);
    CHECK_RC(rbpf_vm_execute(vm, NULL, 0, NULL, 0, &r), RBPF_E_OUT_OF_BOUNDS);
    CHECK(rbpf_vm_add_memory_region(vm, table, sizeof table, 0) == 0);
    CHECK_RC(rbpf_vm_execute(vm, NULL, 0, NULL, 0, &r), RBPF_E_OUT_OF_BOUNDS); /* read-only */
    CHECK(strstr(rbpf_last_error(), "read-only") != NULL);
    CHECK(table[0] == 0);
    CHECK_RC(rbpf_vm_clear_memory_regions(vm), RBPF_OK);
    CHECK(rbpf_vm_add_memory_region(vm, table, sizeof table, 1) == 0);
    CHECK_RC(rbpf_vm_execute(vm, NULL, 0, NULL, 0, &r), RBPF_OK);
    CHECK(r == 9 && table[0] == 99);
    CHECK_RC(rbpf_vm_add_memory_region(vm, NULL, 4, 1), RBPF_E_INVALID_ARGUMENT);
    CHECK_RC(rbpf_vm_add_memory_region(vm, table, 0, 1), RBPF_E_INVALID_ARGUMENT);
    rbpf_vm_destroy(vm);

    /* The longest program: RBPF_MAX_INSTRUCTIONS slots, in the interpreter and the JIT; one more is refused. */
    size_t slots = RBPF_MAX_INSTRUCTIONS + 1;
    uint8_t *longest = calloc(slots, 8);
    CHECK(longest != NULL);
    for (size_t i = 0; i < slots; i++) longest[8 * i] = 0x07, longest[8 * i + 4] = 1; /* add r0, 1 */
    longest[8 * (slots - 1)] = 0x95;                                                  /* exit */
    CHECK_RC(rbpf_vm_create(RBPF_VM_NO_DATA, longest, 8 * slots, &vm), RBPF_E_INVALID_PROGRAM);
    CHECK(vm == NULL && strstr(rbpf_last_error(), "1000001 instructions") != NULL);
    memset(longest + 8 * (slots - 2), 0, 8);
    longest[8 * (slots - 2)] = 0x95;
    CHECK_RC(rbpf_vm_create(RBPF_VM_NO_DATA, longest, 8 * (slots - 1), &vm), RBPF_OK);
    r = 0;
    CHECK_RC(rbpf_vm_execute(vm, NULL, 0, NULL, 0, &r), RBPF_OK);
    CHECK(r == RBPF_MAX_INSTRUCTIONS - 1);
    r = 0;
    CHECK_RC(rbpf_vm_jit_compile(vm), RBPF_OK);
    CHECK_RC(rbpf_vm_execute_jit(vm, NULL, 0, NULL, 0, &r), RBPF_OK);
    CHECK(r == RBPF_MAX_INSTRUCTIONS - 1);
    rbpf_vm_destroy(vm);
    free(longest);
}

static void test_jit(void)
{
    uint64_t r = 0, ri = 0;
    uint8_t mem[6] = {0, 0, 0x11, 0x22, 0x33, 0x44};
    rbpf_vm *vm = assemble_vm(RBPF_VM_RAW, "ldxw r0, [r1+2]\nexit");
    CHECK_RC(rbpf_vm_execute_jit(vm, mem, 6, NULL, 0, &r), RBPF_E_NO_PROGRAM);
    CHECK_RC(rbpf_vm_jit_compile(vm), RBPF_OK);
    CHECK_RC(rbpf_vm_execute_jit(vm, mem, 6, NULL, 0, &r), RBPF_OK);
    CHECK(r == 0x44332211u);
    /* The same errors as the interpreter. */
    CHECK_RC(rbpf_vm_execute_jit(vm, mem, 5, NULL, 0, &r), RBPF_E_OUT_OF_BOUNDS);
    CHECK(strstr(rbpf_last_error(), "load of 4 bytes") != NULL && strstr(rbpf_last_error(), "insn #0") != NULL);
    CHECK_RC(rbpf_vm_execute_jit(vm, NULL, 3, NULL, 0, &r), RBPF_E_INVALID_ARGUMENT);
    CHECK_RC(rbpf_vm_execute_jit(vm, mem, 6, NULL, 0, NULL), RBPF_E_INVALID_ARGUMENT);
    char *text = NULL;
    CHECK_RC(rbpf_vm_jit_disassemble(vm, &text), RBPF_OK);
    CHECK(text != NULL && strstr(text, "ldxw r0, [r1+2]") != NULL && strstr(text, "mov") != NULL);
    rbpf_free(text);
    CHECK_RC(rbpf_vm_jit_disassemble(vm, NULL), RBPF_E_INVALID_ARGUMENT);
    /* Loading a program discards the compiled code. */
    CHECK_RC(rbpf_vm_set_program(vm, (const uint8_t *)"\xb7\0\0\0\x07\0\0\0\x95\0\0\0\0\0\0\0", 16), RBPF_OK);
    CHECK_RC(rbpf_vm_execute_jit(vm, mem, 6, NULL, 0, &r), RBPF_E_NO_PROGRAM);
    CHECK_RC(rbpf_vm_jit_compile_ex(vm, RBPF_JIT_BLIND_CONSTANTS), RBPF_OK);
    CHECK_RC(rbpf_vm_execute_jit(vm, mem, 6, NULL, 0, &r), RBPF_OK);
    CHECK(r == 7);
    CHECK_RC(rbpf_vm_jit_compile_ex(vm, RBPF_JIT_UNCHECKED), RBPF_OK);
    CHECK_RC(rbpf_vm_execute_jit(vm, mem, 6, NULL, 0, &r), RBPF_OK);
    CHECK(r == 7);
    CHECK_RC(rbpf_vm_jit_compile_ex(vm, 0x80), RBPF_E_INVALID_ARGUMENT);
    rbpf_vm_destroy(vm);

    /* C helpers are called directly from compiled code; limits and call depth work there too. */
    vm = assemble_vm(RBPF_VM_NO_DATA, "mov r1, 1\nmov r2, 2\nmov r3, 3\nmov r4, 4\nmov r5, 5\ncall 42\nexit");
    CHECK_RC(rbpf_vm_register_helper(vm, 42, add_all), RBPF_OK);
    CHECK_RC(rbpf_vm_jit_compile(vm), RBPF_OK);
    CHECK_RC(rbpf_vm_execute_jit(vm, NULL, 0, NULL, 0, &r), RBPF_OK);
    CHECK(r == 54321);
    CHECK_RC(rbpf_vm_register_helper(vm, 42, identity), RBPF_OK); /* discards the code */
    CHECK_RC(rbpf_vm_execute_jit(vm, NULL, 0, NULL, 0, &r), RBPF_E_NO_PROGRAM);
    rbpf_vm_destroy(vm);

    vm = assemble_vm(RBPF_VM_NO_DATA, "mov r0, 0\nloop:\nadd r0, 1\njne r0, 0, loop\nexit");
    CHECK_RC(rbpf_vm_set_instruction_limit(vm, 1000), RBPF_OK);
    CHECK_RC(rbpf_vm_jit_compile(vm), RBPF_OK);
    r = 0x5eed;
    CHECK_RC(rbpf_vm_execute_jit(vm, NULL, 0, NULL, 0, &r), RBPF_E_INSTRUCTION_LIMIT);
    CHECK(r == 0x5eed);
    rbpf_vm_destroy(vm);

    vm = assemble_vm(RBPF_VM_NO_DATA, "f:\ncall local f\nexit");
    CHECK_RC(rbpf_vm_jit_compile(vm), RBPF_OK);
    CHECK_RC(rbpf_vm_execute_jit(vm, NULL, 0, NULL, 0, &r), RBPF_E_CALL_DEPTH_EXCEEDED);
    rbpf_vm_destroy(vm);

    /* A loop that both engines compute the same way. */
    vm = assemble_vm(RBPF_VM_NO_DATA, "mov r0, 1\nmov r1, 0\nl:\nmul r0, 3\nxor r0, r1\nadd r1, 1\njlt r1, 100, l\nexit");
    CHECK_RC(rbpf_vm_jit_compile(vm), RBPF_OK);
    CHECK_RC(rbpf_vm_execute_jit(vm, NULL, 0, NULL, 0, &r), RBPF_OK);
    CHECK_RC(rbpf_vm_execute(vm, NULL, 0, NULL, 0, &ri), RBPF_OK);
    CHECK(r == ri && r != 0);
    rbpf_vm_destroy(vm);
}

static void test_bad_handles(void)
{
    uint64_t r = 0;
    int some_int = 0;
    rbpf_vm *vm = assemble_vm(RBPF_VM_NO_DATA, "mov r0, 1\nexit");
    rbpf_vm *forged[] = {NULL, (rbpf_vm *)0x12345678, (rbpf_vm *)&some_int, (rbpf_vm *)(uintptr_t)-1, vm};
    rbpf_vm_destroy(vm); /* vm is now stale too */
    rbpf_vm_destroy(vm); /* double destroy: ignored, recorded */
    CHECK_RC(rbpf_last_error_code(), RBPF_E_INVALID_HANDLE);
    for (size_t i = 0; i < sizeof forged / sizeof forged[0]; i++) {
        rbpf_vm *h = forged[i];
        CHECK(rbpf_vm_is_valid(h) == 0);
        CHECK_RC(rbpf_vm_execute(h, NULL, 0, NULL, 0, &r), RBPF_E_INVALID_HANDLE);
        CHECK_RC(rbpf_vm_set_program(h, (const uint8_t *)"\x95\0\0\0\0\0\0\0", 8), RBPF_E_INVALID_HANDLE);
        CHECK_RC(rbpf_vm_register_helper(h, 1, identity), RBPF_E_INVALID_HANDLE);
        CHECK_RC(rbpf_vm_register_standard_helpers(h), RBPF_E_INVALID_HANDLE);
        CHECK_RC(rbpf_vm_set_verifier(h, NULL, NULL), RBPF_E_INVALID_HANDLE);
        CHECK_RC(rbpf_vm_disable_verifier(h), RBPF_E_INVALID_HANDLE);
        CHECK_RC(rbpf_vm_set_instruction_limit(h, 5), RBPF_E_INVALID_HANDLE);
        CHECK_RC(rbpf_vm_add_memory_region(h, &some_int, 4, 0), RBPF_E_INVALID_HANDLE);
        CHECK_RC(rbpf_vm_clear_memory_regions(h), RBPF_E_INVALID_HANDLE);
        CHECK_RC(rbpf_vm_set_unwind_helper(h, 5, 1), RBPF_E_INVALID_HANDLE);
        CHECK_RC(rbpf_vm_jit_compile(h), RBPF_E_INVALID_HANDLE);
        CHECK_RC(rbpf_vm_execute_jit(h, NULL, 0, NULL, 0, &r), RBPF_E_INVALID_HANDLE);
        CHECK_RC(rbpf_vm_jit_compile_ex(h, 0), RBPF_E_INVALID_HANDLE);
        char *t = NULL;
        CHECK_RC(rbpf_vm_jit_disassemble(h, &t), RBPF_E_INVALID_HANDLE);
        CHECK_RC(rbpf_vm_load_elf(h, (const uint8_t *)"x", 1, NULL), RBPF_E_INVALID_HANDLE);
        CHECK_RC(rbpf_vm_register_helper_name(h, 1, "x", identity), RBPF_E_INVALID_HANDLE);
        void *a = NULL;
        size_t al = 0;
        CHECK_RC(rbpf_vm_get_data_region(h, 0, NULL, &a, &al, NULL), RBPF_E_INVALID_HANDLE);
        CHECK_RC(rbpf_vm_set_program_fixed_mbuff(h, (const uint8_t *)"\x95\0\0\0\0\0\0\0", 8, 0, 8), RBPF_E_INVALID_HANDLE);
        uint8_t *p = NULL;
        size_t n = 0;
        CHECK_RC(rbpf_vm_get_program(h, &p, &n), RBPF_E_INVALID_HANDLE);
        rbpf_vm_destroy(h);
        CHECK_RC(rbpf_last_error_code(), RBPF_E_INVALID_HANDLE);
    }
    /* A new VM may reuse the slot, but the stale handle stays invalid. */
    rbpf_vm *fresh = assemble_vm(RBPF_VM_NO_DATA, "mov r0, 2\nexit");
    CHECK(fresh != vm);
    CHECK(rbpf_vm_is_valid(vm) == 0);
    CHECK_RC(rbpf_vm_execute(fresh, NULL, 0, NULL, 0, &r), RBPF_OK);
    CHECK(r == 2);
    rbpf_vm_destroy(fresh);
}

static void test_assembler(void)
{
    uint8_t *prog = NULL;
    size_t len = 0;
    char *text = NULL;
    CHECK_RC(rbpf_assemble("add64 r1, 0x605\nmov64 r2, 0x32\nmov64 r1, r0\nbe16 r0\nneg64 r2\nexit", &prog, &len), RBPF_OK);
    CHECK(len == 48);
    CHECK(prog[0] == 0x07 && prog[4] == 0x05 && prog[5] == 0x06 && prog[24] == 0xdc && prog[40] == 0x95);
    CHECK_RC(rbpf_disassemble(prog, len, &text), RBPF_OK);
    CHECK(strcmp(text, "add64 r1, 0x605\nmov64 r2, 0x32\nmov64 r1, r0\nbe16 r0\nneg64 r2\nexit\n") == 0);
    uint8_t *again = NULL;
    size_t len2 = 0;
    CHECK_RC(rbpf_assemble(text, &again, &len2), RBPF_OK);
    CHECK(len2 == len && memcmp(prog, again, len) == 0);
    rbpf_free(again);
    rbpf_free(text);
    CHECK_RC(rbpf_disassemble(prog, 7, &text), RBPF_E_INVALID_PROGRAM);
    CHECK_RC(rbpf_disassemble(NULL, 8, &text), RBPF_E_INVALID_ARGUMENT);
    CHECK_RC(rbpf_disassemble(prog, len, NULL), RBPF_E_INVALID_ARGUMENT);
    rbpf_free(prog);
    CHECK_RC(rbpf_assemble("mov r0, 1\n  frob r1", &prog, &len), RBPF_E_ASSEMBLY_ERROR);
    CHECK(strstr(rbpf_last_error(), "line 2, column 3") != NULL);
    CHECK(prog == NULL && len == 0);
    CHECK_RC(rbpf_assemble(NULL, &prog, &len), RBPF_E_INVALID_ARGUMENT);
    CHECK_RC(rbpf_assemble("exit", NULL, &len), RBPF_E_INVALID_ARGUMENT);
    rbpf_free(NULL);

    /* The LLVM syntax, read and written, with labels. */
    CHECK_RC(rbpf_assemble("r0 = 0\nloop:\nw0 += 1\nif w0 < 10 goto loop\nexit", &prog, &len), RBPF_OK);
    CHECK(len == 32 && prog[8] == 0x04 && prog[16] == 0xa6);
    CHECK_RC(rbpf_disassemble_ex(prog, len, RBPF_DISASM_LLVM | RBPF_DISASM_LABELS, &text), RBPF_OK);
    CHECK(text != NULL && strcmp(text, "r0 = 0x0\nL1:\nw0 += 0x1\nif w0 < 0xa goto L1\nexit\n") == 0);
    CHECK_RC(rbpf_assemble(text, &again, &len2), RBPF_OK);
    CHECK(len2 == len && memcmp(prog, again, len) == 0);
    rbpf_free(again);
    rbpf_free(text);
    CHECK_RC(rbpf_disassemble_ex(prog, len, RBPF_DISASM_LABELS, &text), RBPF_OK);
    CHECK(text != NULL && strcmp(text, "mov64 r0, 0x0\nL1:\nadd32 r0, 0x1\njlt32 r0, 0xa, L1\nexit\n") == 0);
    rbpf_free(text);
    CHECK_RC(rbpf_disassemble_ex(prog, len, 4, &text), RBPF_E_INVALID_ARGUMENT);
    rbpf_free(prog);
}

/* The natively compiled ELF test programs (tests/elf_native.c). */
struct meta { uint8_t pad[0x40]; uint64_t data; uint64_t pad2; uint64_t data_end; };
uint64_t block_port(struct meta *m);
uint64_t calls(uint8_t *mem, uint64_t len);
uint64_t crc8(uint8_t *mem, uint64_t len);
uint64_t ini_lexer(uint8_t *mem, uint64_t len);


static uint64_t times_two(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e)
{
    (void)b; (void)c; (void)d; (void)e;
    return a * 2;
}

static void test_elf(void)
{
    static const char *builds[] = {".o", ".v4.o"};
    uint8_t packet[] = {
        0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x08, 0x00,
        0x45, 0x00, 0x00, 0x3b, 0xa6, 0xab, 0x40, 0x00, 0x40, 0x06, 0x96, 0x0f, 0x7f, 0x00, 0x00, 0x01,
        0x7f, 0x00, 0x00, 0x01, 0x99, 0x99, 0xc6, 0xcc, 0xd1, 0xe5, 0xc4, 0x9d, 0xd4, 0x30, 0xb5, 0xd2,
        0x80, 0x18, 0x01, 0x56, 0xfe, 0x2f, 0x00, 0x00, 0x01, 0x01, 0x08, 0x0a};
    uint8_t mem[100];
    for (int i = 0; i < 100; i++) mem[i] = (uint8_t)(i * 37 + 11);
    for (int b = 0; b < 2; b++) {
        char name[64];
        size_t len = 0;
        uint64_t r = 0;
        rbpf_vm *vm = NULL;

        /* The packet filter on a fixed-mbuff VM, against the same C compiled natively. */
        snprintf(name, sizeof name, "block_port%s", builds[b]);
        uint8_t *elf = read_file(name, &len);
        CHECK(elf != NULL);
        if (!elf) continue;
        CHECK_RC(rbpf_vm_create_from_elf(RBPF_VM_FIXED_MBUFF, elf, len, ".classifier", &vm), RBPF_OK);
        uint8_t *prog = NULL;
        size_t prog_len = 0;
        CHECK_RC(rbpf_vm_get_program(vm, &prog, &prog_len), RBPF_OK);
        CHECK_RC(rbpf_vm_set_program_fixed_mbuff(vm, prog, prog_len, 0x40, 0x50), RBPF_OK);
        rbpf_free(prog);
        struct meta m;
        for (int port = 0; port < 2; port++) {
            packet[37] = port ? 0x50 : 0xcc;
            m.data = (uint64_t)(uintptr_t)packet;
            m.data_end = m.data + sizeof packet;
            uint64_t native = block_port(&m);
            CHECK_RC(rbpf_vm_execute(vm, packet, sizeof packet, NULL, 0, &r), RBPF_OK);
            CHECK(r == native);
            CHECK(r == (port ? 0xffffffffu : 0));
            CHECK_RC(rbpf_vm_jit_compile(vm), RBPF_OK);
            CHECK_RC(rbpf_vm_execute_jit(vm, packet, sizeof packet, NULL, 0, &r), RBPF_OK);
            CHECK(r == native);
        }
        rbpf_vm_destroy(vm);
        free(elf);

        /* bpf-to-bpf calls and .rodata tables. */
        snprintf(name, sizeof name, "calls%s", builds[b]);
        elf = read_file(name, &len);
        CHECK_RC(rbpf_vm_create_from_elf(RBPF_VM_RAW, elf, len, NULL, &vm), RBPF_OK);
        CHECK_RC(rbpf_vm_execute(vm, mem, sizeof mem, NULL, 0, &r), RBPF_OK);
        CHECK(r == calls(mem, sizeof mem));
        rbpf_vm_destroy(vm);
        free(elf);

        snprintf(name, sizeof name, "rodata%s", builds[b]);
        elf = read_file(name, &len);
        CHECK_RC(rbpf_vm_create_from_elf(RBPF_VM_RAW, elf, len, "crc8", &vm), RBPF_OK);
        CHECK_RC(rbpf_vm_execute(vm, mem, sizeof mem, NULL, 0, &r), RBPF_OK);
        CHECK(r == crc8(mem, sizeof mem));
        const char *region_name = NULL;
        void *addr = NULL;
        size_t region_len = 0;
        int writable = -1;
        CHECK_RC(rbpf_vm_get_data_region(vm, 0, &region_name, &addr, &region_len, &writable), RBPF_OK);
        CHECK(region_name != NULL && strncmp(region_name, ".rodata", 7) == 0 && region_len == 256 && writable == 0);
        CHECK_RC(rbpf_vm_get_data_region(vm, 5, &region_name, &addr, &region_len, &writable), RBPF_E_INVALID_ARGUMENT);
        CHECK_RC(rbpf_vm_get_data_region(vm, 0, NULL, NULL, &region_len, NULL), RBPF_E_INVALID_ARGUMENT);
        CHECK_RC(rbpf_vm_create_from_elf(RBPF_VM_RAW, elf, len, "nope", &vm), RBPF_E_ELF_ERROR);
        CHECK(strstr(rbpf_last_error(), "nope") != NULL);
        CHECK(vm == NULL);
        free(elf);

        /* A state machine (a switch in a loop), which the JIT threads: both engines, the bare
         * function and the native build agree on texts made of random pieces. */
        snprintf(name, sizeof name, "ini_lexer%s", builds[b]);
        elf = read_file(name, &len);
        CHECK(elf != NULL);
        if (!elf) continue;
        CHECK_RC(rbpf_vm_create_from_elf(RBPF_VM_RAW, elf, len, NULL, &vm), RBPF_OK);
        CHECK_RC(rbpf_vm_jit_compile(vm), RBPF_OK);
        rbpf_jit_fn fn = NULL;
        CHECK_RC(rbpf_vm_jit_function(vm, &fn), RBPF_OK);
        static const char *pieces[] = {"[s]", "k", " = ", "=", "\"q \\\" x\"", "\"open", "v", "; n", "\n", "\t", "!", "_a.b", "]"};
        uint32_t seed = 1201;
        for (int t = 0; t < 40; t++) {
            char text[1024];
            size_t used = 0;
            int count = 1 + t * 2;
            for (int k = 0; k < count; k++) {
                seed = seed * 1103515245u + 12345u;
                const char *p = pieces[(seed >> 16) % (sizeof pieces / sizeof pieces[0])];
                size_t n = strlen(p);
                if (used + n >= sizeof text) break;
                memcpy(text + used, p, n);
                used += n;
            }
            uint64_t native = ini_lexer((uint8_t *)text, used), ri = 0, rj = 0, rf = 0;
            CHECK_RC(rbpf_vm_execute(vm, (uint8_t *)text, used, NULL, 0, &ri), RBPF_OK);
            CHECK_RC(rbpf_vm_execute_jit(vm, (uint8_t *)text, used, NULL, 0, &rj), RBPF_OK);
            CHECK(fn && fn((uint8_t *)text, used, NULL, 0, &rf) == RBPF_OK);
            CHECK(ri == native && rj == native && rf == native);
        }
        rbpf_vm_destroy(vm);
        free(elf);
    }

    /* Global data persists between runs; the program sees it through its regions. */
    size_t len = 0;
    uint64_t r = 0;
    rbpf_vm *vm = NULL;
    uint8_t *elf = read_file("counters.o", &len);
    CHECK_RC(rbpf_vm_create(RBPF_VM_RAW, NULL, 0, &vm), RBPF_OK);
    CHECK_RC(rbpf_vm_get_data_region(vm, 0, NULL, NULL, NULL, NULL), RBPF_E_INVALID_ARGUMENT);
    CHECK_RC(rbpf_vm_load_elf(vm, elf, len, "socket"), RBPF_OK);
    CHECK_RC(rbpf_vm_execute(vm, mem, 3, NULL, 0, &r), RBPF_OK);
    CHECK(r == 101u * 1000000 + 3);
    CHECK_RC(rbpf_vm_execute(vm, mem, 5, NULL, 0, &r), RBPF_OK);
    CHECK(r == 102u * 1000000 + 8);
    CHECK_RC(rbpf_vm_load_elf(vm, NULL, 0, NULL), RBPF_E_INVALID_ARGUMENT);
    /* Malformed objects: truncated, corrupted machine, not ELF at all. */
    CHECK_RC(rbpf_vm_load_elf(vm, elf, 40, NULL), RBPF_E_ELF_ERROR);
    CHECK(strstr(rbpf_last_error(), "shorter than an ELF header") != NULL);
    elf[18] = 62;
    CHECK_RC(rbpf_vm_load_elf(vm, elf, len, NULL), RBPF_E_ELF_ERROR);
    CHECK(strstr(rbpf_last_error(), "EM_BPF") != NULL);
    CHECK_RC(rbpf_vm_load_elf(vm, (const uint8_t *)"hello, world", 12, NULL), RBPF_E_ELF_ERROR);
    CHECK_RC(rbpf_vm_execute(vm, mem, 1, NULL, 0, &r), RBPF_OK); /* the old program stays */
    CHECK(r == 103u * 1000000 + 9);
    CHECK_RC(rbpf_vm_register_helper_name(vm, 77, "times_two", times_two), RBPF_OK);
    CHECK_RC(rbpf_vm_register_helper_name(vm, 77, NULL, times_two), RBPF_E_INVALID_ARGUMENT);
    CHECK_RC(rbpf_vm_create_from_elf(RBPF_VM_RAW, NULL, 0, NULL, &vm), RBPF_E_INVALID_ARGUMENT);
    rbpf_vm_destroy(vm);
    free(elf);

    /* Two programs in one object: each links only the code it reaches. "prog/scaled" calls .text
     * (4 slots) and loads without the helper "prog/logged" (the default program) calls. */
    elf = read_file("sections.o", &len);
    CHECK(elf != NULL);
    if (!elf) return;
    CHECK_RC(rbpf_vm_create_from_elf(RBPF_VM_RAW, elf, len, NULL, &vm), RBPF_E_ELF_ERROR);
    CHECK(strstr(rbpf_last_error(), "host_log") != NULL);
    CHECK_RC(rbpf_vm_create_from_elf(RBPF_VM_RAW, elf, len, "prog/scaled", &vm), RBPF_OK);
    uint8_t *prog = NULL;
    size_t prog_len = 0;
    CHECK_RC(rbpf_vm_get_program(vm, &prog, &prog_len), RBPF_OK);
    CHECK(prog_len == (10 + 4) * 8);
    rbpf_free(prog);
    CHECK_RC(rbpf_vm_execute(vm, mem, 10, NULL, 0, &r), RBPF_OK);
    CHECK(r == ((10u * 3 + 7) ^ (10u * 5 + 7)));
    rbpf_vm_destroy(vm);
    CHECK_RC(rbpf_vm_create(RBPF_VM_RAW, NULL, 0, &vm), RBPF_OK);
    CHECK_RC(rbpf_vm_register_helper_name(vm, 9, "host_log", times_two), RBPF_OK);
    CHECK_RC(rbpf_vm_load_elf(vm, elf, len, NULL), RBPF_OK);
    CHECK_RC(rbpf_vm_get_program(vm, &prog, &prog_len), RBPF_OK);
    CHECK(prog_len == 4 * 8); /* nothing of .text */
    rbpf_free(prog);
    CHECK_RC(rbpf_vm_execute(vm, mem, 12, NULL, 0, &r), RBPF_OK);
    CHECK(r == 12 * 2 + 1);
    rbpf_vm_destroy(vm);
    free(elf);
}

static void test_jit_function(void)
{
    uint64_t r = 0;
    rbpf_jit_fn fn = NULL;
    uint8_t mem[6] = {0, 0, 0x11, 0x22, 0x33, 0x44};
    rbpf_vm *vm = assemble_vm(RBPF_VM_RAW, "ldxw r0, [r1+2]\nexit");
    CHECK_RC(rbpf_vm_jit_function(vm, &fn), RBPF_E_NO_PROGRAM);
    CHECK_RC(rbpf_vm_jit_compile(vm), RBPF_OK);
    CHECK_RC(rbpf_vm_jit_function(vm, NULL), RBPF_E_INVALID_ARGUMENT);
    CHECK_RC(rbpf_vm_jit_function((rbpf_vm *)(uintptr_t)12345, &fn), RBPF_E_INVALID_HANDLE);
    CHECK_RC(rbpf_vm_jit_function(vm, &fn), RBPF_OK);
    CHECK(fn != NULL);
    CHECK_RC(fn(mem, 6, NULL, 0, &r), RBPF_OK);
    CHECK(r == 0x44332211u);
    /* Errors as rbpf_vm_execute_jit gives them, the message in this thread's last error. */
    r = 77;
    CHECK_RC(fn(mem, 5, NULL, 0, &r), RBPF_E_OUT_OF_BOUNDS);
    CHECK(r == 77);
    CHECK(rbpf_last_error_code() == RBPF_E_OUT_OF_BOUNDS);
    CHECK(strstr(rbpf_last_error(), "load of 4 bytes") != NULL && strstr(rbpf_last_error(), "insn #0") != NULL);
    CHECK_RC(fn(NULL, 3, NULL, 0, &r), RBPF_E_INVALID_ARGUMENT);
    CHECK(strstr(rbpf_last_error(), "mem is NULL") != NULL);
    CHECK_RC(fn(mem, 6, NULL, 4, &r), RBPF_E_INVALID_ARGUMENT);
    CHECK(strstr(rbpf_last_error(), "mbuff is NULL") != NULL);
    CHECK_RC(fn(mem, 6, NULL, 0, NULL), RBPF_E_INVALID_ARGUMENT);
    CHECK(strstr(rbpf_last_error(), "result is NULL") != NULL);
    rbpf_vm_destroy(vm);

    /* A program with nothing to check (its load guarded by the length) runs with the lean entry:
     * the same results and the same argument errors. */
    vm = assemble_vm(RBPF_VM_RAW, "jlt r2, 6, +2\nldxw r0, [r1+2]\nexit\nmov r0, 7\nexit");
    CHECK_RC(rbpf_vm_jit_compile(vm), RBPF_OK);
    CHECK_RC(rbpf_vm_jit_function(vm, &fn), RBPF_OK);
    CHECK_RC(fn(mem, 6, NULL, 0, &r), RBPF_OK);
    CHECK(r == 0x44332211u);
    CHECK_RC(fn(mem, 5, NULL, 0, &r), RBPF_OK);
    CHECK(r == 7);
    CHECK_RC(fn(NULL, 0, NULL, 0, &r), RBPF_OK); /* no input at all is an empty input */
    CHECK(r == 7);
    CHECK_RC(fn(mem, 6, mem, 0, &r), RBPF_OK); /* a metadata pointer without a length is no buffer */
    CHECK(r == 0x44332211u);
    r = 77;
    CHECK_RC(fn(NULL, 3, NULL, 0, &r), RBPF_E_INVALID_ARGUMENT);
    CHECK(strstr(rbpf_last_error(), "mem is NULL but mem_len is 3") != NULL);
    CHECK_RC(fn(mem, 6, NULL, 4, &r), RBPF_E_INVALID_ARGUMENT);
    CHECK(strstr(rbpf_last_error(), "mbuff is NULL") != NULL);
    CHECK_RC(fn(mem, 6, mem, 4, &r), RBPF_E_INVALID_ARGUMENT);
    CHECK(strstr(rbpf_last_error(), "takes no metadata buffer") != NULL);
    CHECK_RC(fn(mem, 6, NULL, 0, NULL), RBPF_E_INVALID_ARGUMENT);
    CHECK(strstr(rbpf_last_error(), "result is NULL") != NULL);
    CHECK(r == 77);
    CHECK_RC(rbpf_vm_execute_jit(vm, mem, 6, NULL, 0, &r), RBPF_OK);
    CHECK(r == 0x44332211u);
    CHECK_RC(rbpf_vm_execute_jit(vm, mem, 6, mem, 4, &r), RBPF_E_INVALID_ARGUMENT);
    rbpf_vm_destroy(vm);

    /* Metadata buffers: the caller's, and the one a fixed-mbuff VM builds. */
    uint8_t mbuff[16] = {0x21, 0x43};
    vm = assemble_vm(RBPF_VM_MBUFF, "ldxh r0, [r1]\nadd r0, r2\nexit");
    CHECK_RC(rbpf_vm_jit_compile(vm), RBPF_OK);
    CHECK_RC(rbpf_vm_jit_function(vm, &fn), RBPF_OK);
    CHECK_RC(fn(mem, 6, mbuff, sizeof mbuff, &r), RBPF_OK);
    CHECK(r == 0x4321 + sizeof mbuff);
    rbpf_vm_destroy(vm);
    uint8_t *prog = NULL;
    size_t len = 0;
    CHECK_RC(rbpf_assemble("ldxdw r2, [r1+0x40]\nldxdw r3, [r1+0x50]\nsub r3, r2\nldxb r0, [r2+2]\nadd r0, r3\nexit", &prog, &len), RBPF_OK);
    CHECK_RC(rbpf_vm_create_fixed_mbuff(prog, len, 0x40, 0x50, &vm), RBPF_OK);
    CHECK_RC(rbpf_vm_jit_compile(vm), RBPF_OK);
    CHECK_RC(rbpf_vm_jit_function(vm, &fn), RBPF_OK);
    CHECK_RC(fn(mem, 6, NULL, 0, &r), RBPF_OK);
    CHECK(r == 0x11 + 6);
    rbpf_vm_destroy(vm);
    CHECK_RC(rbpf_vm_create_fixed_mbuff(prog, len, 4000, 4096, &vm), RBPF_OK);
    CHECK_RC(rbpf_vm_jit_compile(vm), RBPF_OK);
    CHECK_RC(rbpf_vm_jit_function(vm, &fn), RBPF_E_UNSUPPORTED); /* a 4 KiB buffer: through the VM only */
    rbpf_vm_destroy(vm);
    rbpf_free(prog);

    /* C helpers directly; the standard (managed) helpers, with their memory checks, through the runtime. */
    vm = assemble_vm(RBPF_VM_NO_DATA, "mov r1, 1\nmov r2, 2\nmov r3, 3\nmov r4, 4\nmov r5, 5\ncall 42\nexit");
    CHECK_RC(rbpf_vm_register_helper(vm, 42, add_all), RBPF_OK);
    CHECK_RC(rbpf_vm_jit_compile(vm), RBPF_OK);
    CHECK_RC(rbpf_vm_jit_function(vm, &fn), RBPF_OK);
    CHECK_RC(fn(NULL, 0, NULL, 0, &r), RBPF_OK);
    CHECK(r == 54321);
    rbpf_vm_destroy(vm);
    vm = assemble_vm(RBPF_VM_NO_DATA, "stdw [r10-8], 0x2a2a\nmov r1, r10\nsub r1, 8\nmov r2, 2\ncall 0x70000002\n"
                                      "ldxdw r0, [r10-8]\nexit");
    CHECK_RC(rbpf_vm_register_standard_helpers(vm), RBPF_OK);
    CHECK_RC(rbpf_vm_jit_compile(vm), RBPF_OK);
    CHECK_RC(rbpf_vm_jit_function(vm, &fn), RBPF_OK);
    CHECK_RC(fn(NULL, 0, NULL, 0, &r), RBPF_OK);
    CHECK(r == 0); /* memfrob xors each byte with 42 */
    rbpf_vm_destroy(vm);
    vm = assemble_vm(RBPF_VM_NO_DATA, "mov r1, r10\nmov r2, 9\ncall 0x70000002\nexit");
    CHECK_RC(rbpf_vm_register_standard_helpers(vm), RBPF_OK);
    CHECK_RC(rbpf_vm_jit_compile(vm), RBPF_OK);
    CHECK_RC(rbpf_vm_jit_function(vm, &fn), RBPF_OK);
    CHECK_RC(fn(NULL, 0, NULL, 0, &r), RBPF_E_OUT_OF_BOUNDS); /* above the stack */
    CHECK(strstr(rbpf_last_error(), "memfrob") != NULL);
    rbpf_vm_destroy(vm);

    /* The instruction limit: a new non-zero limit applies to the same function. */
    vm = assemble_vm(RBPF_VM_NO_DATA, "mov r0, 0\nloop:\nadd r0, 1\njlt r0, 5000, loop\nexit");
    CHECK_RC(rbpf_vm_set_instruction_limit(vm, 1000), RBPF_OK);
    CHECK_RC(rbpf_vm_jit_compile(vm), RBPF_OK);
    CHECK_RC(rbpf_vm_jit_function(vm, &fn), RBPF_OK);
    r = 0x5eed;
    CHECK_RC(fn(NULL, 0, NULL, 0, &r), RBPF_E_INSTRUCTION_LIMIT);
    CHECK(r == 0x5eed); /* a failed run leaves *result as it was */
    CHECK(strstr(rbpf_last_error(), "limit of 1000") != NULL);
    CHECK_RC(rbpf_vm_set_instruction_limit(vm, 100000), RBPF_OK);
    CHECK_RC(fn(NULL, 0, NULL, 0, &r), RBPF_OK);
    CHECK(r == 5000);
    rbpf_vm_destroy(vm);
}

static rbpf_vm *shared_vm;
static rbpf_jit_fn shared_fn;
static int thread_errors;

static void *worker(void *arg)
{
    uint64_t n = (uint64_t)(uintptr_t)arg, r = 0;
    uint8_t mem[8];
    memcpy(mem, &n, 8);
    for (int i = 0; i < 2000; i++) {
        if (rbpf_vm_execute(shared_vm, mem, 8, NULL, 0, &r) != RBPF_OK || r != n * 100)
            __atomic_add_fetch(&thread_errors, 1, __ATOMIC_RELAXED);
        if (rbpf_vm_execute_jit(shared_vm, mem, 8, NULL, 0, &r) != RBPF_OK || r != n * 100)
            __atomic_add_fetch(&thread_errors, 1, __ATOMIC_RELAXED);
        if (shared_fn(mem, 8, NULL, 0, &r) != RBPF_OK || r != n * 100)
            __atomic_add_fetch(&thread_errors, 1, __ATOMIC_RELAXED);
        if (shared_fn(mem, 7, NULL, 0, &r) != RBPF_E_OUT_OF_BOUNDS || strstr(rbpf_last_error(), "load of 8 bytes") == NULL)
            __atomic_add_fetch(&thread_errors, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

static void test_threads(void)
{
    pthread_t threads[4];
    shared_vm = assemble_vm(RBPF_VM_RAW,
                            "ldxdw r2, [r1]\nstxdw [r10-8], r2\nmov r0, 0\nmov r3, 0\n"
                            "loop:\nldxdw r4, [r10-8]\nadd r0, r4\nadd r3, 1\njlt r3, 100, loop\nexit");
    CHECK(shared_vm != NULL);
    CHECK_RC(rbpf_vm_jit_compile(shared_vm), RBPF_OK);
    CHECK_RC(rbpf_vm_jit_function(shared_vm, &shared_fn), RBPF_OK);
    for (uintptr_t t = 0; t < 4; t++) pthread_create(&threads[t], NULL, worker, (void *)(t + 1));
    for (int t = 0; t < 4; t++) pthread_join(threads[t], NULL);
    CHECK(thread_errors == 0);
    rbpf_vm_destroy(shared_vm);
}

/* rbpf_vm_execute_jit calls compiled code without the .NET runtime on Linux: code replaced while a
 * thread runs it must stay until that thread has left it, nested calls must work, and a VM
 * destroyed under callers must give them an error, never a crash. */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static int gate_inside, gate_open;
static rbpf_vm *changing_vm;

static uint64_t wait_at_gate(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e)
{
    (void)b; (void)c; (void)d; (void)e;
    pthread_mutex_lock(&gate_lock);
    gate_inside = 1;
    pthread_cond_broadcast(&gate_cond);
    while (!gate_open) pthread_cond_wait(&gate_cond, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
    return a + 1;
}

static void *run_through_gate(void *arg)
{
    uint64_t *r = arg;
    uint8_t mem[8] = {0};
    return (void *)(intptr_t)rbpf_vm_execute_jit(changing_vm, mem, 8, NULL, 0, r);
}

static rbpf_vm *inner_vm;

static uint64_t call_inner(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e)
{
    (void)b; (void)c; (void)d; (void)e;
    uint8_t mem[8];
    uint64_t r = 0;
    memcpy(mem, &a, 8);
    return rbpf_vm_execute_jit(inner_vm, mem, 8, NULL, 0, &r) == RBPF_OK ? r : 999999;
}

static rbpf_vm *doomed_vm;
static int doomed_bad;

static void *call_doomed(void *arg)
{
    (void)arg;
    uint8_t mem[8] = {5};
    for (int i = 0; i < 200000; i++) {
        uint64_t r = 0;
        int rc = rbpf_vm_execute_jit(doomed_vm, mem, 8, NULL, 0, &r);
        if (rc == RBPF_E_INVALID_HANDLE) break;
        if (rc != RBPF_OK || r != 10) __atomic_add_fetch(&doomed_bad, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

static void test_execute_jit_while_code_changes(void)
{
    /* A thread stops inside a helper called from compiled code; meanwhile the code is compiled
     * again thousands of times (enough to make the library collect discarded code). When the
     * helper returns, the thread goes on in the code it started in. */
    changing_vm = assemble_vm(RBPF_VM_RAW, "mov r1, 40\ncall 1\nadd r0, 1\nexit");
    CHECK(changing_vm != NULL);
    CHECK_RC(rbpf_vm_register_helper(changing_vm, 1, wait_at_gate), RBPF_OK);
    CHECK_RC(rbpf_vm_jit_compile(changing_vm), RBPF_OK);
    rbpf_jit_fn first_code = NULL;
    CHECK_RC(rbpf_vm_jit_function(changing_vm, &first_code), RBPF_OK);
    unsigned char code_before[256];
    memcpy(code_before, (const void *)(uintptr_t)first_code, sizeof code_before);
    pthread_t t;
    uint64_t r = 0;
    pthread_create(&t, NULL, run_through_gate, &r);
    pthread_mutex_lock(&gate_lock);
    while (!gate_inside) pthread_cond_wait(&gate_cond, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
    int compiled = 0;
    for (int i = 0; i < 4500; i++) compiled += rbpf_vm_jit_compile(changing_vm) == RBPF_OK;
    CHECK(compiled == 4500);
    struct timespec pause = {0, 200 * 1000 * 1000}; /* time for finalizers to run */
    nanosleep(&pause, NULL);
    /* The first code is still mapped, and still the same bytes (its page was not reused). */
    long page = sysconf(_SC_PAGESIZE);
    unsigned char resident;
    void *first_page = (void *)((uintptr_t)first_code & ~(uintptr_t)(page - 1));
    int mapped = mincore(first_page, (size_t)page, &resident) == 0;
    CHECK(mapped);
    if (mapped) CHECK(memcmp(code_before, (const void *)(uintptr_t)first_code, sizeof code_before) == 0);
    pthread_mutex_lock(&gate_lock);
    gate_open = 1;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
    void *rc;
    pthread_join(t, &rc);
    CHECK((intptr_t)rc == RBPF_OK);
    CHECK(r == 42);
    /* The new code runs too (the gate stays open). */
    uint8_t mem[8] = {0};
    CHECK_RC(rbpf_vm_execute_jit(changing_vm, mem, 8, NULL, 0, &r), RBPF_OK);
    CHECK(r == 42);
    rbpf_vm_destroy(changing_vm);

    /* A helper that runs another VM through rbpf_vm_execute_jit (a nested call). */
    inner_vm = assemble_vm(RBPF_VM_RAW, "ldxdw r0, [r1]\nmul r0, 3\nexit");
    rbpf_vm *outer = assemble_vm(RBPF_VM_RAW, "mov r1, 7\ncall 2\nadd r0, 1\nexit");
    CHECK(inner_vm != NULL && outer != NULL);
    CHECK_RC(rbpf_vm_register_helper(outer, 2, call_inner), RBPF_OK);
    CHECK_RC(rbpf_vm_jit_compile(inner_vm), RBPF_OK);
    CHECK_RC(rbpf_vm_jit_compile(outer), RBPF_OK);
    for (int i = 0; i < 3; i++) {
        r = 0;
        CHECK_RC(rbpf_vm_execute_jit(outer, mem, 8, NULL, 0, &r), RBPF_OK);
        CHECK(r == 22);
    }
    /* Without compiled code the inner call fails, and the outer one still finishes. */
    CHECK_RC(rbpf_vm_set_instruction_limit(inner_vm, 100), RBPF_OK); /* drops the code */
    CHECK_RC(rbpf_vm_execute_jit(outer, mem, 8, NULL, 0, &r), RBPF_OK);
    CHECK(r == 1000000);
    rbpf_vm_destroy(outer);
    rbpf_vm_destroy(inner_vm);

    /* Two threads call a VM that is destroyed under them: each call works or names the handle. */
    doomed_vm = assemble_vm(RBPF_VM_RAW, "ldxb r0, [r1]\nadd r0, r0\nexit");
    CHECK_RC(rbpf_vm_jit_compile(doomed_vm), RBPF_OK);
    pthread_t callers[2];
    for (int i = 0; i < 2; i++) pthread_create(&callers[i], NULL, call_doomed, NULL);
    struct timespec shortly = {0, 20 * 1000 * 1000};
    nanosleep(&shortly, NULL);
    rbpf_vm_destroy(doomed_vm);
    for (int i = 0; i < 2; i++) pthread_join(callers[i], NULL);
    CHECK(doomed_bad == 0);
    CHECK_RC(rbpf_vm_execute_jit(doomed_vm, mem, 8, NULL, 0, &r), RBPF_E_INVALID_HANDLE);
}

/* Interrupts: from another thread, from a signal handler, and by a signal the VM names. */
#define RUNAWAY "mov r0, 0\nloop:\nadd r0, 1\njne r0, 0, loop\nexit"

struct interrupter {
    rbpf_vm *vm;
    int signum;          /* 0: rbpf_vm_interrupt; else kill(getpid(), signum) */
    volatile int done;
    pthread_t thread;
};

static void *interrupt_until_done(void *arg)
{
    struct interrupter *it = arg;
    struct timespec pause = {0, 5 * 1000 * 1000};
    while (!__atomic_load_n(&it->done, __ATOMIC_ACQUIRE)) {
        nanosleep(&pause, NULL);
        if (it->signum == 0) rbpf_vm_interrupt(it->vm);
        else kill(getpid(), it->signum);
    }
    return NULL;
}

static void start_interrupter(struct interrupter *it, rbpf_vm *vm, int signum)
{
    it->vm = vm;
    it->signum = signum;
    it->done = 0;
    pthread_create(&it->thread, NULL, interrupt_until_done, it);
}

static void stop_interrupter(struct interrupter *it)
{
    __atomic_store_n(&it->done, 1, __ATOMIC_RELEASE);
    pthread_join(it->thread, NULL);
}

static volatile sig_atomic_t alarm_seen;
static void on_alarm(int sig) { (void)sig; alarm_seen++; }

static rbpf_vm *usr1_vm;
static void on_usr1(int sig) { (void)sig; rbpf_vm_interrupt(usr1_vm); }

static void test_interrupts(void)
{
    struct interrupter it;
    uint64_t r = 0;
    rbpf_vm *vm = assemble_vm(RBPF_VM_NO_DATA, RUNAWAY);
    CHECK(vm != NULL);
    CHECK(strcmp(rbpf_error_name(RBPF_E_INTERRUPTED), "RBPF_E_INTERRUPTED") == 0);

    /* A watchdog thread stops the interpreter, the JIT through the handle and the bare function. */
    start_interrupter(&it, vm, 0);
    CHECK_RC(rbpf_vm_execute(vm, NULL, 0, NULL, 0, &r), RBPF_E_INTERRUPTED);
    CHECK(strcmp(rbpf_last_error(), "interrupted at insn #1") == 0);
    stop_interrupter(&it);
    CHECK_RC(rbpf_vm_jit_compile(vm), RBPF_OK);
    start_interrupter(&it, vm, 0);
    CHECK_RC(rbpf_vm_execute_jit(vm, NULL, 0, NULL, 0, &r), RBPF_E_INTERRUPTED);
    CHECK(strcmp(rbpf_last_error(), "interrupted at insn #1") == 0);
    stop_interrupter(&it);
    rbpf_jit_fn fn = NULL;
    CHECK_RC(rbpf_vm_jit_function(vm, &fn), RBPF_OK);
    start_interrupter(&it, vm, 0);
    CHECK(fn != NULL && fn(NULL, 0, NULL, 0, &r) == RBPF_E_INTERRUPTED);
    stop_interrupter(&it);

    /* A signal handler of the host's calls rbpf_vm_interrupt itself. */
    usr1_vm = vm;
    struct sigaction sa, old_usr1, old_alrm, old_usr2;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, &old_usr1);
    start_interrupter(&it, vm, SIGUSR1);
    CHECK(fn(NULL, 0, NULL, 0, &r) == RBPF_E_INTERRUPTED);
    stop_interrupter(&it);
    sigaction(SIGUSR1, &old_usr1, NULL);

    /* The VM names SIGALRM: its runs stop, and the host's own handler still runs. */
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, &old_alrm);
    CHECK_RC(rbpf_vm_set_interrupt_signal(vm, SIGALRM), RBPF_OK);
    alarm_seen = 0;
    start_interrupter(&it, vm, SIGALRM);
    CHECK_RC(rbpf_vm_execute(vm, NULL, 0, NULL, 0, &r), RBPF_E_INTERRUPTED);
    char by_alarm[64];
    snprintf(by_alarm, sizeof by_alarm, "interrupted at insn #1 (signal %d)", SIGALRM);
    CHECK(strcmp(rbpf_last_error(), by_alarm) == 0);
    CHECK_RC(rbpf_vm_execute_jit(vm, NULL, 0, NULL, 0, &r), RBPF_E_INTERRUPTED);
    rbpf_buffer one = {NULL, 0};
    size_t done = 99;
    CHECK_RC(rbpf_vm_execute_batch(vm, &one, 1, RBPF_BATCH_JIT, &r, &done), RBPF_E_INTERRUPTED);
    CHECK(done == 0);
    stop_interrupter(&it);
    CHECK(alarm_seen > 0);
    /* Turned off, the signal only reaches the host's handler (a finite loop then ends normally). */
    CHECK_RC(rbpf_vm_set_interrupt_signal(vm, 0), RBPF_OK);
    rbpf_vm *counter = assemble_vm(RBPF_VM_NO_DATA, "mov r0, 0\nloop:\nadd r0, 1\njlt r0, 20000000, loop\nexit");
    CHECK(counter != NULL);
    start_interrupter(&it, counter, SIGALRM);
    CHECK_RC(rbpf_vm_execute(counter, NULL, 0, NULL, 0, &r), RBPF_OK);
    CHECK(r == 20000000);
    stop_interrupter(&it);
    sigaction(SIGALRM, &old_alrm, NULL);

    /* An ignored signal keeps its meaning: it interrupts nothing. */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGUSR2, &sa, &old_usr2);
    CHECK_RC(rbpf_vm_set_interrupt_signal(counter, SIGUSR2), RBPF_OK);
    start_interrupter(&it, counter, SIGUSR2);
    CHECK_RC(rbpf_vm_execute(counter, NULL, 0, NULL, 0, &r), RBPF_OK);
    stop_interrupter(&it);
    sigaction(SIGUSR2, &old_usr2, NULL);

    /* Code compiled without interrupt checks runs to its end. */
    CHECK_RC(rbpf_vm_jit_compile_ex(counter, RBPF_JIT_NO_INTERRUPT), RBPF_OK);
    start_interrupter(&it, counter, 0);
    CHECK_RC(rbpf_vm_execute_jit(counter, NULL, 0, NULL, 0, &r), RBPF_OK);
    CHECK(r == 20000000);
    stop_interrupter(&it);

    /* An interrupt between runs is lost: the next run is not affected. */
    CHECK_RC(rbpf_vm_interrupt(counter), RBPF_OK);
    CHECK_RC(rbpf_vm_execute(counter, NULL, 0, NULL, 0, &r), RBPF_OK);

    /* Bad arguments. */
    CHECK_RC(rbpf_vm_set_interrupt_signal(vm, SIGKILL), RBPF_E_INVALID_ARGUMENT);
    CHECK_RC(rbpf_vm_set_interrupt_signal(vm, 999), RBPF_E_INVALID_ARGUMENT);
    CHECK_RC(rbpf_vm_set_interrupt_signal(vm, -1), RBPF_E_INVALID_ARGUMENT);
    CHECK_RC(rbpf_vm_set_interrupt_signal(NULL, SIGINT), RBPF_E_INVALID_HANDLE);
    CHECK_RC(rbpf_vm_interrupt(NULL), RBPF_E_INVALID_HANDLE);
    CHECK_RC(rbpf_vm_interrupt((rbpf_vm *)(uintptr_t)0x7777), RBPF_E_INVALID_HANDLE);
    rbpf_vm_destroy(counter);
    CHECK_RC(rbpf_vm_interrupt(counter), RBPF_E_INVALID_HANDLE);
    rbpf_vm_destroy(vm);
    CHECK_RC(rbpf_vm_interrupt(vm), RBPF_E_INVALID_HANDLE);
}

/* Maps: the API, programs using them, ELF-declared maps, ring buffers, tail calls, threads. */
static const char counter_src[] =
    "ldxw r1, [r1]\nstxw [r10-4], r1\nlddw r1, map 0\nmov r2, r10\nadd r2, -4\ncall bpf_map_lookup_elem\n"
    "jne r0, 0, found\nmov r1, 1\nstxdw [r10-16], r1\nlddw r1, map 0\nmov r2, r10\nadd r2, -4\nmov r3, r10\n"
    "add r3, -16\nmov r4, 1\ncall bpf_map_update_elem\njne r0, 0, failed\nmov r0, 1\nexit\n"
    "found:\nmov r1, 1\nlock add64 [r0], r1\nldxdw r0, [r0]\nexit\nfailed:\nmov r0, -1\nexit";

static int records_seen;
static uint8_t first_record[8];
static int on_record(void *ctx, const void *data, size_t len)
{
    (void)ctx;
    if (records_seen++ == 0 && len == 8) memcpy(first_record, data, 8);
    return 0;
}

static rbpf_map *thread_map;
static rbpf_vm *thread_vm;
static void *count_in_map(void *arg)
{
    uint32_t key = (uint32_t)(uintptr_t)arg;
    uint64_t r;
    for (int i = 0; i < 250000; i++) {
        uint32_t k = key * 4 + (uint32_t)(i % 4);
        if (rbpf_vm_execute_jit(thread_vm, (uint8_t *)&k, 4, NULL, 0, &r) != RBPF_OK)
            __atomic_add_fetch(&thread_errors, 1, __ATOMIC_RELAXED);
        /* Every thread also bumps the shared key 999. */
        uint32_t shared = 999;
        if (rbpf_vm_execute_jit(thread_vm, (uint8_t *)&shared, 4, NULL, 0, &r) != RBPF_OK)
            __atomic_add_fetch(&thread_errors, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

static void test_maps(void)
{
    rbpf_map *m = NULL;
    uint32_t k;
    uint64_t v;
    CHECK_RC(rbpf_map_create(RBPF_MAP_HASH, 4, 8, 2, 0, &m), RBPF_OK);
    k = 1; v = 10;
    CHECK_RC(rbpf_map_update(m, &k, &v, RBPF_NOEXIST), RBPF_OK);
    CHECK_RC(rbpf_map_update(m, &k, &v, RBPF_NOEXIST), RBPF_E_KEY_EXISTS);
    k = 2;
    CHECK_RC(rbpf_map_update(m, &k, &v, RBPF_EXIST), RBPF_E_NOT_FOUND);
    CHECK_RC(rbpf_map_update(m, &k, &v, RBPF_ANY), RBPF_OK);
    k = 3;
    CHECK_RC(rbpf_map_update(m, &k, &v, RBPF_ANY), RBPF_E_MAP_FULL);
    CHECK(strstr(rbpf_last_error(), "full") != NULL);
    CHECK_RC(rbpf_map_lookup(m, &k, &v), RBPF_E_NOT_FOUND);
    k = 1;
    CHECK_RC(rbpf_map_lookup(m, &k, &v), RBPF_OK);
    CHECK(v == 10);
    uint32_t keys_seen = 0, next;
    for (int rc = rbpf_map_next_key(m, NULL, &next); rc == RBPF_OK; rc = rbpf_map_next_key(m, &next, &next))
        keys_seen |= 1u << next;
    CHECK(keys_seen == 6);
    rbpf_map_info info;
    CHECK_RC(rbpf_map_get_info(m, &info), RBPF_OK);
    CHECK(info.type == RBPF_MAP_HASH && info.key_size == 4 && info.value_size == 8 && info.max_entries == 2 && info.entries == 2);
    CHECK_RC(rbpf_map_delete(m, &k), RBPF_OK);
    CHECK_RC(rbpf_map_delete(m, &k), RBPF_E_NOT_FOUND);
    CHECK_RC(rbpf_map_update(m, &k, &v, 9), RBPF_E_INVALID_ARGUMENT);
    CHECK_RC(rbpf_map_lookup(m, NULL, &v), RBPF_E_INVALID_ARGUMENT);
    CHECK_RC(rbpf_map_create(RBPF_MAP_ARRAY, 8, 8, 4, 0, &m), RBPF_E_INVALID_ARGUMENT);
    CHECK(m == NULL);
    CHECK_RC(rbpf_map_create(77, 4, 8, 4, 0, &m), RBPF_E_INVALID_ARGUMENT);

    /* A program counts in a map the host reads; the map outlives the VM. */
    rbpf_map *counts = NULL;
    CHECK_RC(rbpf_map_create(RBPF_MAP_HASH, 4, 8, 64, 0, &counts), RBPF_OK);
    rbpf_vm *vm = assemble_vm(RBPF_VM_RAW, counter_src);
    CHECK(vm != NULL);
    CHECK_RC(rbpf_vm_bind_map(vm, 0, counts), RBPF_OK);
    uint64_t r = 0;
    k = 42;
    for (int i = 0; i < 3; i++) CHECK_RC(rbpf_vm_execute(vm, (uint8_t *)&k, 4, NULL, 0, &r), RBPF_OK);
    CHECK_RC(rbpf_vm_jit_compile(vm), RBPF_OK);
    CHECK_RC(rbpf_vm_execute_jit(vm, (uint8_t *)&k, 4, NULL, 0, &r), RBPF_OK);
    CHECK(r == 4);
    rbpf_vm_destroy(vm);
    CHECK_RC(rbpf_map_lookup(counts, &k, &v), RBPF_OK);
    CHECK(v == 4);

    /* Four threads, 1,000,000 runs of JIT-compiled code on one shared map: no count is lost. */
    thread_map = counts;
    thread_vm = assemble_vm(RBPF_VM_RAW, counter_src);
    CHECK_RC(rbpf_vm_bind_map(thread_vm, 0, counts), RBPF_OK);
    CHECK_RC(rbpf_vm_jit_compile(thread_vm), RBPF_OK);
    thread_errors = 0;
    /* The shared key exists first: two threads missing it at once would both try to create it
     * (BPF_NOEXIST), and the program counts the loser's run as a failed update, not a count. */
    k = 999; v = 0;
    CHECK_RC(rbpf_map_update(counts, &k, &v, RBPF_NOEXIST), RBPF_OK);
    pthread_t threads[4];
    for (uintptr_t t = 0; t < 4; t++) pthread_create(&threads[t], NULL, count_in_map, (void *)(t + 1));
    for (int t = 0; t < 4; t++) pthread_join(threads[t], NULL);
    CHECK(thread_errors == 0);
    int bad_counts = 0;
    for (uint32_t t = 1; t <= 4; t++)
        for (uint32_t j = 0; j < 4; j++) {
            k = t * 4 + j;
            if (rbpf_map_lookup(counts, &k, &v) != RBPF_OK || v != 62500) bad_counts++;
        }
    CHECK(bad_counts == 0);
    k = 999;
    CHECK_RC(rbpf_map_lookup(counts, &k, &v), RBPF_OK);
    CHECK(v == 1000000);
    rbpf_vm_destroy(thread_vm);

    /* Updates from compiled code: a present key in place (the native path), a new one through the helper. */
    const char *update_src =
        "ldxw r1, [r1]\nstxw [r10-4], r1\nmov r1, 77\nstxdw [r10-16], r1\nlddw r1, map 0\nmov r2, r10\nadd r2, -4\n"
        "mov r3, r10\nadd r3, -16\nmov r4, 0\ncall bpf_map_update_elem\nexit";
    uint32_t types[2] = {RBPF_MAP_HASH, RBPF_MAP_ARRAY};
    for (int t = 0; t < 2; t++) {
        rbpf_map *um = NULL;
        CHECK_RC(rbpf_map_create(types[t], 4, 8, 8, 0, &um), RBPF_OK);
        vm = assemble_vm(RBPF_VM_RAW, update_src);
        CHECK_RC(rbpf_vm_bind_map(vm, 0, um), RBPF_OK);
        CHECK_RC(rbpf_vm_jit_compile(vm), RBPF_OK);
        k = 5; v = 1;
        CHECK_RC(rbpf_map_update(um, &k, &v, RBPF_ANY), RBPF_OK);
        CHECK_RC(rbpf_vm_execute_jit(vm, (uint8_t *)&k, 4, NULL, 0, &r), RBPF_OK);
        CHECK(r == 0);
        CHECK_RC(rbpf_map_lookup(um, &k, &v), RBPF_OK);
        CHECK(v == 77);
        k = 6; /* hash: missing, inserted by the helper; array: present */
        CHECK_RC(rbpf_vm_execute_jit(vm, (uint8_t *)&k, 4, NULL, 0, &r), RBPF_OK);
        CHECK(r == 0);
        CHECK_RC(rbpf_map_lookup(um, &k, &v), RBPF_OK);
        CHECK(v == 77);
        k = 9; /* array: past the end (-E2BIG); hash: a third key */
        CHECK_RC(rbpf_vm_execute_jit(vm, (uint8_t *)&k, 4, NULL, 0, &r), RBPF_OK);
        CHECK(types[t] == RBPF_MAP_HASH ? r == 0 : r == (uint64_t)-7);
        rbpf_vm_destroy(vm);
        rbpf_map_destroy(um);
    }

    /* Maps an ELF object declares: created by the loader, found by name. */
    size_t len = 0;
    uint8_t *elf = read_file("port_counts.o", &len);
    CHECK(elf != NULL);
    CHECK_RC(rbpf_vm_create_from_elf(RBPF_VM_RAW, elf, len, NULL, &vm), RBPF_OK);
    free(elf);
    uint8_t frame[60] = {0};
    frame[12] = 0x08; frame[14] = 0x45; frame[23] = 17; frame[36] = 0; frame[37] = 53;
    for (int i = 0; i < 5; i++) CHECK_RC(rbpf_vm_execute(vm, frame, sizeof frame, NULL, 0, &r), RBPF_OK);
    rbpf_map *ports = NULL, *again = NULL;
    CHECK_RC(rbpf_vm_get_map(vm, "port_counts", &ports), RBPF_OK);
    CHECK_RC(rbpf_vm_get_map(vm, "port_counts", &again), RBPF_OK);
    CHECK(ports == again);
    uint16_t port = 53;
    CHECK_RC(rbpf_map_lookup(ports, &port, &v), RBPF_OK);
    CHECK(v == 5);
    CHECK_RC(rbpf_vm_get_map(vm, "nope", &again), RBPF_E_NOT_FOUND);
    CHECK(strstr(rbpf_last_error(), "port_counts") != NULL);
    char *names = NULL;
    CHECK_RC(rbpf_vm_map_names(vm, &names), RBPF_OK);
    CHECK(names != NULL && strstr(names, "total_bytes\n") != NULL);
    rbpf_free(names);
    rbpf_vm_destroy(vm);
    CHECK_RC(rbpf_map_lookup(ports, &port, &v), RBPF_OK); /* still there */
    rbpf_map_destroy(ports);
    CHECK_RC(rbpf_map_lookup(ports, &port, &v), RBPF_E_INVALID_HANDLE);

    /* A ring buffer the program writes to. */
    elf = read_file("legacy_maps.o", &len);
    CHECK_RC(rbpf_vm_create_from_elf(RBPF_VM_RAW, elf, len, NULL, &vm), RBPF_OK);
    free(elf);
    uint8_t in[8] = {9, 8, 7, 6, 5, 4, 3, 2};
    CHECK_RC(rbpf_vm_execute(vm, in, 8, NULL, 0, &r), RBPF_OK);
    CHECK_RC(rbpf_vm_execute(vm, in, 8, NULL, 0, &r), RBPF_OK);
    rbpf_map *events = NULL;
    CHECK_RC(rbpf_vm_get_map(vm, "events", &events), RBPF_OK);
    CHECK(rbpf_map_ringbuf_consume(events, on_record, NULL) == 2);
    CHECK(records_seen == 2 && memcmp(first_record, in, 8) == 0);
    CHECK(rbpf_map_ringbuf_consume(events, on_record, NULL) == 0);
    CHECK(rbpf_map_ringbuf_consume(counts, on_record, NULL) == RBPF_E_INVALID_ARGUMENT);
    /* A ring buffer has no keys: the keyed calls refuse it (found by fuzz_capi: lookup said "no entry"). */
    uint8_t none[8];
    CHECK_RC(rbpf_map_lookup(events, NULL, none), RBPF_E_INVALID_ARGUMENT);
    CHECK(strstr(rbpf_last_error(), "ring buffer") != NULL);
    CHECK_RC(rbpf_map_delete(events, NULL), RBPF_E_INVALID_ARGUMENT);
    CHECK_RC(rbpf_map_next_key(events, NULL, none), RBPF_E_INVALID_ARGUMENT);
    CHECK_RC(rbpf_map_update(events, NULL, none, RBPF_ANY), RBPF_E_INVALID_ARGUMENT);
    rbpf_vm_destroy(vm);

    /* Tail calls through a program array. */
    rbpf_map *jumps = NULL;
    CHECK_RC(rbpf_map_create(RBPF_MAP_PROG_ARRAY, 4, 4, 4, 0, &jumps), RBPF_OK);
    rbpf_vm *caller = assemble_vm(RBPF_VM_RAW, "mov r6, r1\nldxb r3, [r6]\nlddw r2, map 0\nmov r1, r6\ncall bpf_tail_call\nmov r0, 7\nexit");
    rbpf_vm *target = assemble_vm(RBPF_VM_RAW, "ldxb r0, [r1+1]\nadd r0, 40\nexit");
    CHECK_RC(rbpf_vm_bind_map(caller, 0, jumps), RBPF_OK);
    CHECK_RC(rbpf_map_set_program(jumps, 1, target), RBPF_OK);
    CHECK_RC(rbpf_vm_jit_compile(caller), RBPF_OK);
    uint8_t two[2] = {1, 2};
    CHECK_RC(rbpf_vm_execute(caller, two, 2, NULL, 0, &r), RBPF_OK);
    CHECK(r == 42);
    CHECK_RC(rbpf_vm_execute_jit(caller, two, 2, NULL, 0, &r), RBPF_OK);
    CHECK(r == 42);
    two[0] = 3;
    CHECK_RC(rbpf_vm_execute_jit(caller, two, 2, NULL, 0, &r), RBPF_OK);
    CHECK(r == 7);
    CHECK_RC(rbpf_map_set_program(jumps, 4, target), RBPF_E_MAP_FULL);
    CHECK_RC(rbpf_map_set_program(counts, 0, target), RBPF_E_INVALID_ARGUMENT);
    rbpf_vm_destroy(caller);
    rbpf_vm_destroy(target);

    /* Handles of one kind are not taken for the other. */
    CHECK_RC(rbpf_vm_bind_map(NULL, 0, counts), RBPF_E_INVALID_HANDLE);
    CHECK_RC(rbpf_map_lookup((rbpf_map *)vm, &k, &v), RBPF_E_INVALID_HANDLE);
    CHECK_RC(rbpf_map_lookup(NULL, &k, &v), RBPF_E_INVALID_HANDLE);
    CHECK_RC(rbpf_map_lookup((rbpf_map *)(uintptr_t)0x1234, &k, &v), RBPF_E_INVALID_HANDLE);
    rbpf_map_destroy(counts);
    rbpf_map_destroy(counts);
    CHECK(rbpf_last_error_code() == RBPF_E_INVALID_HANDLE);
    rbpf_map_destroy(jumps);
}

/* XDP programs compiled by clang from kernel-style C (tests/elf/xdp_progs.c). */
static void xdp_frame(uint8_t *f, size_t len, uint16_t port, int vlan)
{
    memset(f, 0, len);
    for (int k = 0; k < 6; k++) { f[k] = (uint8_t)(0xd0 + k); f[6 + k] = (uint8_t)(0x50 + k); }
    size_t at = 12;
    if (vlan) { f[12] = 0x81; f[15] = 0x64; at = 16; }
    f[at] = 0x08;
    f[at + 2] = 0x45;
    f[at + 2 + 9] = 17;
    f[at + 2 + 20 + 2] = (uint8_t)(port >> 8);
    f[at + 2 + 20 + 3] = (uint8_t)port;
}

static void test_xdp(void)
{
    size_t len = 0;
    uint8_t *elf = read_file("xdp_progs.o", &len);
    CHECK(elf != NULL);
    rbpf_vm *vm = NULL;
    CHECK_RC(rbpf_vm_create_kernel_from_elf(elf, len, "drop_port", 0, &vm), RBPF_OK);
    uint32_t type = 0;
    CHECK_RC(rbpf_vm_get_program_type(vm, &type), RBPF_OK);
    CHECK(type == RBPF_PROG_XDP);
    CHECK_RC(rbpf_vm_jit_compile(vm), RBPF_OK);
    uint8_t f[64];
    rbpf_xdp_result r;
    for (uint32_t flags = 0; flags <= RBPF_XDP_JIT; flags++) {
        xdp_frame(f, sizeof f, 9999, 0);
        CHECK_RC(rbpf_vm_execute_xdp(vm, f, sizeof f, NULL, flags, &r), RBPF_OK);
        CHECK(r.action == RBPF_XDP_DROP && r.offset == 0 && r.length == 64);
        xdp_frame(f, sizeof f, 53, 0);
        CHECK_RC(rbpf_vm_execute_xdp(vm, f, sizeof f, NULL, flags, &r), RBPF_OK);
        CHECK(r.action == RBPF_XDP_PASS);
        CHECK_RC(rbpf_vm_execute_xdp(vm, f, 20, NULL, flags, &r), RBPF_OK); /* too short to be UDP */
        CHECK(r.action == RBPF_XDP_PASS);
    }
    CHECK_RC(rbpf_vm_execute_xdp(vm, f, sizeof f, NULL, 2, &r), RBPF_E_INVALID_ARGUMENT);
    CHECK_RC(rbpf_vm_execute_xdp(vm, f, sizeof f, NULL, 0, NULL), RBPF_E_INVALID_ARGUMENT);
    rbpf_vm_destroy(vm);

    /* VLAN stripping with bpf_xdp_adjust_head, in a buffer with headroom. */
    CHECK_RC(rbpf_vm_create_kernel_from_elf(elf, len, "strip_vlan", RBPF_PROG_XDP, &vm), RBPF_OK);
    uint8_t buf[256 + 64];
    xdp_frame(buf + 256, 64, 80, 1);
    rbpf_xdp_options o = {256, 64, 1, 0, 0};
    CHECK_RC(rbpf_vm_execute_xdp(vm, buf, sizeof buf, &o, 0, &r), RBPF_OK);
    CHECK(r.action == RBPF_XDP_PASS && r.offset == 260 && r.length == 60);
    CHECK(buf[260] == 0xd0 && buf[266] == 0x50 && buf[272] == 0x08 && buf[273] == 0x00);
    o.headroom = 300;
    CHECK_RC(rbpf_vm_execute_xdp(vm, buf, sizeof buf, &o, 0, &r), RBPF_E_INVALID_ARGUMENT);
    rbpf_vm_destroy(vm);

    /* What the kernel's verifier refuses is refused at load, with the field. */
    CHECK_RC(rbpf_vm_create_kernel_from_elf(elf, len, "bad_field", 0, &vm), RBPF_E_INVALID_PROGRAM);
    CHECK(strstr(rbpf_last_error(), "xdp_md") != NULL);
    free(elf);
    CHECK_RC(rbpf_vm_create_for_type(RBPF_PROG_XDP, &vm), RBPF_OK);
    uint8_t *prog = NULL;
    size_t plen = 0;
    CHECK_RC(rbpf_assemble("ldxw r0, [r1+12]\nexit", &prog, &plen), RBPF_OK); /* ingress_ifindex */
    CHECK_RC(rbpf_vm_set_program(vm, prog, plen), RBPF_OK);
    rbpf_free(prog);
    o = (rbpf_xdp_options){0, UINT32_MAX, 42, 0, 0};
    CHECK_RC(rbpf_vm_execute_xdp(vm, f, sizeof f, &o, 0, &r), RBPF_OK);
    CHECK(r.value == 42);
    rbpf_vm_destroy(vm);
    CHECK_RC(rbpf_vm_create_for_type(2, &vm), RBPF_E_UNSUPPORTED); /* kprobe */
    CHECK_RC(rbpf_vm_create_for_type(0, &vm), RBPF_E_INVALID_ARGUMENT);

    /* A capture in memory, through rbpf_vm_run_capture: a pcap of five UDP frames, two to port 9999. */
    {
        uint8_t cap[24 + 5 * (16 + 64)];
        memset(cap, 0, sizeof cap);
        uint32_t hdr[6] = {0xa1b2c3d4, 0x00040002, 0, 0, 65535, 1};
        memcpy(cap, hdr, sizeof hdr);
        for (int i = 0; i < 5; i++) {
            uint8_t *rec = cap + 24 + i * 80;
            uint32_t rh[4] = {(uint32_t)i, 0, 64, 64};
            memcpy(rec, rh, sizeof rh);
            xdp_frame(rec + 16, 64, i % 2 ? 53 : 9999, 0);
        }
        elf = read_file("xdp_progs.o", &len);
        CHECK_RC(rbpf_vm_create_kernel_from_elf(elf, len, "drop_port", 0, &vm), RBPF_OK);
        free(elf);
        CHECK_RC(rbpf_vm_jit_compile(vm), RBPF_OK);
        for (uint32_t flags = 0; flags <= RBPF_CAPTURE_JIT; flags++) {
            uint64_t counts[5] = {0};
            size_t ran = 0;
            CHECK_RC(rbpf_vm_run_capture(vm, cap, sizeof cap, flags, counts, 5, &ran), RBPF_OK);
            CHECK(ran == 5 && counts[RBPF_XDP_DROP] == 3 && counts[RBPF_XDP_PASS] == 2);
        }
        uint64_t c1[1];
        CHECK_RC(rbpf_vm_run_capture(vm, cap, 30, 0, c1, 1, NULL), RBPF_E_INVALID_ARGUMENT);
        CHECK(strstr(rbpf_last_error(), "capture") != NULL);
        CHECK_RC(rbpf_vm_run_capture(vm, cap, sizeof cap, 0, NULL, 0, NULL), RBPF_E_INVALID_ARGUMENT);
        rbpf_vm_destroy(vm);
    }

    /* A tc classifier and a socket filter (tests/elf/tc_progs.c). */
    elf = read_file("tc_progs.o", &len);
    CHECK(elf != NULL);
    CHECK_RC(rbpf_vm_create_kernel_from_elf(elf, len, "classify", 0, &vm), RBPF_OK);
    CHECK_RC(rbpf_vm_get_program_type(vm, &type), RBPF_OK);
    CHECK(type == RBPF_PROG_SCHED_CLS);
    CHECK_RC(rbpf_vm_jit_compile(vm), RBPF_OK);
    uint8_t pkt[60] = {0};
    pkt[12] = 0x08; pkt[14] = 0x45; pkt[15] = 0x2e; pkt[23] = 1; /* ICMP, TOS 0x2e */
    rbpf_skb skb;
    for (uint32_t flags = 0; flags <= RBPF_SKB_JIT; flags++) {
        memset(&skb, 0, sizeof skb);
        skb.ifindex = 3;
        uint64_t verdict = 99;
        CHECK_RC(rbpf_vm_execute_skb(vm, pkt, sizeof pkt, &skb, flags, &verdict), RBPF_OK);
        CHECK(verdict == 2 && skb.mark == 0x2e && skb.priority == 60 && skb.tc_classid == 0x10001 && skb.cb[2] == 3);
        CHECK_RC(rbpf_vm_execute_skb(vm, pkt, sizeof pkt, NULL, flags, &verdict), RBPF_OK);
    }
    CHECK_RC(rbpf_vm_execute_skb(vm, pkt, sizeof pkt, &skb, 0, NULL), RBPF_E_INVALID_ARGUMENT);
    rbpf_vm_destroy(vm);
    CHECK_RC(rbpf_vm_create_kernel_from_elf(elf, len, "tcp_only", 0, &vm), RBPF_OK);
    pkt[23] = 6;
    uint64_t keep = 0;
    CHECK_RC(rbpf_vm_execute_skb(vm, pkt, sizeof pkt, NULL, 0, &keep), RBPF_OK);
    CHECK(keep == 60);
    rbpf_vm_destroy(vm);
    CHECK_RC(rbpf_vm_create_kernel_from_elf(elf, len, "reads_data", 0, &vm), RBPF_E_INVALID_PROGRAM);
    free(elf);
}

int main(void)


{
    test_version_and_errors();
    test_create_and_kinds();
    test_raw_and_bounds();
    test_mbuff_kinds();
    test_program_access();
    test_helpers();
    test_verifier_hooks();
    test_default_verifier_rules();
    test_batches();
    test_limits_and_regions();
    test_jit();
    test_jit_function();
    test_bad_handles();
    test_assembler();
    test_threads();
    test_interrupts();
    test_execute_jit_while_code_changes();
    test_elf();
    test_maps();
    test_xdp();
    printf("c: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
