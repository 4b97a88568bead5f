/* A fuzzing harness for the C ABI: each input (a byte string) is read as a sequence of calls with
 * their arguments: creating, changing, running, compiling and destroying VMs and maps, passing NULL
 * pointers, destroyed and forged handles, bad lengths, unknown kinds and flags, random bytecode,
 * assembly text and classic programs, damaged ELF objects (tests/elf), kernel program types run on
 * random frames, custom verifiers, interrupt signals, and the uBPF API on its own handles. The
 * harness keeps a model of what each VM holds (program, helper, limit, verifier, compiled or not)
 * and checks every call against it: the exact result where the model knows it, INVALID_HANDLE for
 * every handle that is not live, an error code from the header with a message in
 * rbpf_last_error() for every failure, and no crash.
 *
 *   RBPF_CAPI_TRACE=1            prints each call as it is made, on stderr
 *   RBPF_CAPI_SAVE=FILE          with --random: writes each input to FILE before it runs (a crash leaves it there)
 *
 *   fuzz_capi FILE...            runs each file as one input (corpus replay; AFL++ with @@)
 *   fuzz_capi --random N [SEED]  runs N generated inputs
 *   --abort                      abort() at the first failed check (for a fuzzer to record)
 *
 * Prints "capi: N passed, N failed": one check per kind of call that ran without a failure,
 * and one per failure. The harness only ever hands the library memory that is valid for the
 * lengths it passes, as the ABI requires of its callers. */
#include <rbpf.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ubpf.h>

#define VMS 4
#define MAPS 3
#define KINDS 32

/* Programs whose results the model knows. */
enum { P_CONST, P_LOOP, P_HELPER, P_LOAD, P_DIV0, P_STACK, P_CALL, KNOWN, P_RAW = KNOWN, P_NONE };
static const char *sources[KNOWN] = {
    "mov r0, 42\nexit",
    "mov r0, 0\nloop:\nadd r0, 1\njlt r0, 1000, loop\nexit",
    "mov r1, 5\ncall 1\nexit",
    "ldxb r0, [r1]\nexit",
    "mov r0, 9\nmov r1, 0\ndiv r0, r1\nexit",
    "stdw [r10-8], 77\nldxdw r0, [r10-8]\nexit",
    "mov r1, 20\ncall local f\nadd r0, 2\nexit\nf:\nmov r0, r1\nexit",
};
static uint8_t *programs[KNOWN];
static size_t program_lens[KNOWN];

typedef struct {
    rbpf_vm *h;      /* the handle: live, destroyed (kept to call it again) or NULL */
    int live, kind, program, helper, compiled, verifier_off, maps_bound, rejecting;
    uint64_t limit;
} vm_model;

static vm_model vms[VMS];
static rbpf_map *maps[MAPS];
static int map_live[MAPS];
static uint8_t mem[256], mbuff[64], region[4096], keybuf[600], valbuf[8192];

static const uint8_t *in;
static size_t in_len, in_pos;
static int abort_on_failure, trace;
static long failed, calls[KINDS], bad[KINDS];
static int kind;

static uint8_t u8(void) { return in_pos < in_len ? in[in_pos++] : 0; }
static uint32_t u32(void) { uint32_t v = u8(); v |= (uint32_t)u8() << 8; v |= (uint32_t)u8() << 16; return v | (uint32_t)u8() << 24; }
static uint64_t u64(void) { uint64_t v = u32(); return v | (uint64_t)u32() << 32; }

/* Out of line: inlined into a caller with a fixed-size array, gcc -O3 warns that its vectorised
 * loop may write past the array, though n never exceeds it. */
__attribute__((noinline)) static void fill(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) p[i] = u8();
}

static void fail(const char *what, int rc)
{
    bad[kind]++;
    if (++failed <= 20) {
        const char *e = rbpf_last_error();
        fprintf(stderr, "FAIL %s (call kind %d, input byte %zu): rc %d (%s): %s\n", what, kind, in_pos, rc, rbpf_error_name(rc),
                e ? e : "(no message)");
    }
    if (abort_on_failure) abort();
}

#define TRACE(...) do { if (trace) fprintf(stderr, "    " __VA_ARGS__); } while (0)

/* Every failure is a code from the header, and rbpf_last_error() says what went wrong. */
static int known_code(int rc)
{
    return (rc <= 0 && rc >= RBPF_E_MAP_FULL) || rc == RBPF_E_INTERNAL;
}

static void expect_error_reported(const char *what, int rc)
{
    if (rc == RBPF_OK) return;
    const char *e = rbpf_last_error();
    if (!known_code(rc) || rc == RBPF_E_INTERNAL) fail(what, rc);
    else if (e == NULL || e[0] == 0) fail("an error without a message", rc);
    else if (rbpf_last_error_code() != rc) fail("rbpf_last_error_code differs from the returned code", rc);
}

/* Calls on a handle that is not live: always INVALID_HANDLE. */
static void expect_invalid(const char *what, int rc)
{
    if (rc != RBPF_E_INVALID_HANDLE) fail(what, rc);
}

static uint64_t triple(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e) { (void)b, (void)c, (void)d, (void)e; return a * 3; }
static uint64_t plus_one(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e) { (void)b, (void)c, (void)d, (void)e; return a + 1; }

/* A handle that names no live VM: NULL, a map's handle, or a number. */
static rbpf_vm *forged(void)
{
    switch (u8() % 4) {
    case 0: return NULL;
    case 1: for (int i = 0; i < MAPS; i++) if (map_live[i]) return (rbpf_vm *)maps[i];
            return NULL;
    default: {
        uint64_t v = u64();
        for (int i = 0; i < VMS; i++) if (vms[i].live && (uint64_t)(uintptr_t)vms[i].h == v) return NULL;
        return (rbpf_vm *)(uintptr_t)v;
    }
    }
}

/* A program from the known ones, random bytes of the input, or none. Sets *which. */
static const uint8_t *pick_program(size_t *len, int *which, uint8_t *raw, size_t raw_cap)
{
    uint8_t c = u8() % 10;
    if (c < KNOWN) { *which = c; *len = program_lens[c]; return programs[c]; }
    if (c == 7 || c == 8) {
        size_t n = (size_t)(u8() % 9) * 8 + (c == 8 ? u8() % 8 : 0);
        if (n > raw_cap) n = raw_cap;
        fill(raw, n);
        *which = P_RAW; *len = n;
        if (trace) { fprintf(stderr, "    bytes"); for (size_t i = 0; i < n; i++) fprintf(stderr, " %02x", raw[i]); fprintf(stderr, "\n"); }
        return raw;
    }
    *which = P_NONE; *len = 0; return NULL;
}

/* The outcome of running vm's program in the model: exact where it is known. */
static void check_run(const char *what, vm_model *m, int rc, uint64_t r0, int jit, size_t mem_len)
{
    expect_error_reported(what, rc);
    if (jit && !m->compiled) {
        if (rc != RBPF_E_NO_PROGRAM) fail("running code that was never compiled or was discarded", rc);
        return;
    }
    if (m->limit != 0 && m->limit < 16 && m->program < KNOWN && rc == RBPF_E_INSTRUCTION_LIMIT) return; /* each is longer than that */
    switch (m->program) {
    case P_NONE: if (rc != RBPF_E_NO_PROGRAM) fail(what, rc); return;
    case P_CONST: if (rc != RBPF_OK || r0 != 42) fail(what, rc); return;
    case P_DIV0: if (rc != RBPF_OK || r0 != 0) fail(what, rc); return;
    case P_STACK: if (rc != RBPF_OK || r0 != 77) fail(what, rc); return;
    case P_CALL: if (rc != RBPF_OK || r0 != 22) fail(what, rc); return;
    case P_LOOP:
        if (m->limit == 0 ? rc != RBPF_OK || r0 != 1000 : !((rc == RBPF_OK && r0 == 1000) || rc == RBPF_E_INSTRUCTION_LIMIT)) fail(what, rc);
        return;
    case P_HELPER:
        if (m->helper == 1 && (rc != RBPF_OK || r0 != 15)) fail(what, rc);
        if (m->helper == 2 && (rc != RBPF_OK || r0 != 6)) fail(what, rc);
        return;
    case P_LOAD: /* r1 is the input, the metadata buffer or nothing, by the VM's kind */
        if (rc != RBPF_OK && rc != RBPF_E_OUT_OF_BOUNDS) fail(what, rc);
        (void)mem_len;
        return;
    default: /* random bytecode: any outcome but an internal error */
        return;
    }
}

static void discard(vm_model *m) { m->compiled = 0; }

static void op_create(void)
{
    int s = u8() % VMS, which;
    vm_model *m = &vms[s];
    if (m->live) { rbpf_vm_destroy(m->h); m->live = 0; }
    uint8_t raw[80];
    size_t len;
    const uint8_t *prog = pick_program(&len, &which, raw, sizeof raw);
    int k = u8() % 8, rc;
    rbpf_vm *out = (rbpf_vm *)(uintptr_t)1;
    if (k == 7) { /* NULL out */
        rc = rbpf_vm_create(RBPF_VM_RAW, prog, len, NULL);
        if (rc != RBPF_E_INVALID_ARGUMENT) fail("create with out NULL", rc);
        return;
    }
    if (k == 6) rc = rbpf_vm_create_fixed_mbuff(prog, len, u8() % 80, u8() % 80, &out);
    else if (k == 5 && prog != NULL) rc = rbpf_vm_create(RBPF_VM_RAW, NULL, len ? len : 8, &out); /* NULL with a length */
    else rc = rbpf_vm_create((rbpf_vm_kind)(k % 5), prog, len, &out); /* 4: an unknown kind */
    TRACE("create slot %d form %d program %d: %d\n", s, k, which, rc);
    expect_error_reported("create", rc);
    if (rc != RBPF_OK) {
        if (out != NULL) fail("a failed create left *out set", rc);
        if (k == 4 || (k == 5 && prog != NULL) || k == 1) { if (rc != RBPF_E_INVALID_ARGUMENT) fail("create with bad arguments", rc); }
        else if (k == 6) { if (which < KNOWN && rc != RBPF_E_INVALID_ARGUMENT) fail("fixed-mbuff create with a known program", rc); } /* offsets */
        else if (which < KNOWN) fail("create with a known program", rc);
        m->h = out;
        return;
    }
    if (k == 4 || (k == 5 && prog != NULL) || k == 1) fail("create accepted bad arguments", rc);
    *m = (vm_model){.h = out, .live = 1, .kind = k == 6 ? RBPF_VM_FIXED_MBUFF : k % 5, .program = which, .helper = 0};
}

static void op_destroy(void)
{
    vm_model *m = &vms[u8() % VMS];
    rbpf_vm_destroy(m->h);
    if (!m->live && rbpf_last_error_code() != RBPF_E_INVALID_HANDLE) fail("destroying a handle twice", rbpf_last_error_code());
    m->live = 0;
}

static vm_model *target(rbpf_vm **h)
{
    vm_model *m = &vms[u8() % VMS];
    if (u8() % 8 == 0) { *h = forged(); return NULL; }
    *h = m->h;
    TRACE("on slot %d (%s)\n", (int)(m - vms), m->live ? "live" : "dead");
    return m->live ? m : NULL;
}

static void op_set_program(void)
{
    rbpf_vm *h;
    vm_model *m = target(&h);
    uint8_t raw[80];
    size_t len;
    int which;
    const uint8_t *prog = pick_program(&len, &which, raw, sizeof raw);
    int rc = rbpf_vm_set_program(h, prog, len);
    TRACE("set_program %d: %d\n", which, rc);
    if (!m) { expect_invalid("set_program", rc); return; }
    expect_error_reported("set_program", rc);
    if (rc == RBPF_OK) { m->program = which; discard(m); }
    else if (which < KNOWN && !(m->rejecting && rc == RBPF_E_INVALID_PROGRAM)) fail("set_program with a known program", rc);
}

static void op_execute(int jit)
{
    rbpf_vm *h;
    vm_model *m = target(&h);
    size_t mem_len = u8() % (sizeof mem + 1), mbuff_len = u8() % (sizeof mbuff + 1);
    uint8_t choice = u8();
    uint8_t *pm = mem, *pb = mbuff;
    if (choice % 7 == 0) { pm = NULL; mem_len = 0; }
    if (choice % 5 == 0) { pb = NULL; mbuff_len = 0; }
    uint64_t r0 = 0;
    int null_with_length = choice % 11 == 0, rc;
    if (null_with_length) rc = (jit ? rbpf_vm_execute_jit : rbpf_vm_execute)(h, NULL, 16, pb, mbuff_len, &r0);
    else if (choice % 13 == 0) rc = (jit ? rbpf_vm_execute_jit : rbpf_vm_execute)(h, pm, mem_len, pb, mbuff_len, NULL);
    else rc = (jit ? rbpf_vm_execute_jit : rbpf_vm_execute)(h, pm, mem_len, pb, mbuff_len, &r0);
    if (!m) { expect_invalid(jit ? "execute_jit" : "execute", rc); return; }
    /* What each kind takes: a raw or fixed-mbuff VM no metadata buffer, a no-data VM nothing. */
    int refused = (mbuff_len > 0 && m->kind != RBPF_VM_MBUFF) || (mem_len > 0 && m->kind == RBPF_VM_NO_DATA);
    if (null_with_length || choice % 13 == 0 || refused) {
        if (rc != RBPF_E_INVALID_ARGUMENT && !((m->program == P_NONE || (jit && !m->compiled)) && rc == RBPF_E_NO_PROGRAM)) fail("execute with NULL memory and a length, no result pointer, or memory its kind does not take", rc);
        return;
    }
    check_run(jit ? "execute_jit" : "execute", m, rc, r0, jit, mem_len);
}

static void op_compile(void)
{
    rbpf_vm *h;
    vm_model *m = target(&h);
    uint32_t flags = u8() % 16;
    /* Unchecked code may touch any memory (the header says so): only for the programs known safe. */
    if (m && (m->program == P_RAW || m->program == P_LOAD)) flags &= ~RBPF_JIT_UNCHECKED;
    int rc = rbpf_vm_jit_compile_ex(h, flags);
    TRACE("compile flags %u: %d\n", flags, rc);
    if (!m) { expect_invalid("jit_compile", rc); return; }
    expect_error_reported("jit_compile", rc);
    if (rc == RBPF_OK) {
        if (flags > 7) fail("compile accepted unknown flags", rc);
        if (m->program == P_NONE) fail("compiled without a program", rc);
        m->compiled = 1;
        return;
    }
    /* A failed compile leaves the code that was there. */
    if (flags > 7) { if (rc != RBPF_E_INVALID_ARGUMENT) fail("compile with unknown flags", rc); }
    else if (m->program == P_NONE) { if (rc != RBPF_E_NO_PROGRAM) fail("compile without a program", rc); }
    else if (m->program != P_RAW) fail("compiling a known program", rc);
}

static void op_helper(void)
{
    rbpf_vm *h;
    vm_model *m = target(&h);
    uint8_t c = u8();
    uint32_t key = c % 2 ? 1 : u32();
    rbpf_helper_fn fn = c % 3 == 0 ? NULL : c % 3 == 1 ? triple : plus_one;
    int rc = rbpf_vm_register_helper(h, key, fn);
    if (!m) { expect_invalid("register_helper", rc); return; }
    if (fn == NULL) { if (rc != RBPF_E_INVALID_ARGUMENT) fail("registering a NULL helper", rc); return; }
    if (rc != RBPF_OK) { fail("register_helper", rc); return; }
    if (key == 1) m->helper = fn == triple ? 1 : 2;
    discard(m);
}

static void op_limit(void)
{
    rbpf_vm *h;
    vm_model *m = target(&h);
    static const uint64_t limits[] = {0, 1, 500, 3000, 100000, UINT64_MAX};
    uint64_t limit = limits[u8() % 6];
    int rc = rbpf_vm_set_instruction_limit(h, limit);
    if (!m) { expect_invalid("set_instruction_limit", rc); return; }
    if (rc != RBPF_OK) { fail("set_instruction_limit", rc); return; }
    if ((m->limit == 0) != (limit == 0)) discard(m);
    m->limit = limit;
}

static void op_regions(void)
{
    rbpf_vm *h;
    vm_model *m = target(&h);
    uint8_t c = u8();
    size_t off = u32() % sizeof region, len = u32() % (sizeof region - off + 1);
    int rc;
    if (c % 4 == 0) rc = rbpf_vm_clear_memory_regions(h);
    else if (c % 4 == 1) rc = rbpf_vm_add_memory_region(h, NULL, len + 1, c & 4);
    else rc = rbpf_vm_add_memory_region(h, region + off, len, c & 4);
    TRACE("regions %d off %zu len %zu: %d\n", c % 4, off, len, rc);
    if (!m) { expect_invalid("memory regions", rc); return; }
    if (c % 4 == 1) { if (rc != RBPF_E_INVALID_ARGUMENT) fail("a NULL region", rc); return; }
    if (rc < 0) expect_error_reported("memory regions", rc);
    if (c % 4 == 0 && rc != RBPF_OK) fail("clear_memory_regions", rc);
    if (c % 4 >= 2 && rc < 0 && len > 0) fail("add_memory_region", rc);
}

static void op_texts(void)
{
    rbpf_vm *h;
    vm_model *m = target(&h);
    char *text = NULL;
    uint8_t *prog = NULL;
    size_t len = 0;
    uint8_t c = u8() % 4;
    int rc;
    if (c == 0) {
        rc = rbpf_vm_jit_disassemble(h, &text);
        if (!m) expect_invalid("jit_disassemble", rc);
        else if (m->compiled ? rc != RBPF_OK || text == NULL || text[0] == 0 : rc != RBPF_E_NO_PROGRAM) fail("jit_disassemble", rc);
    } else if (c == 1) {
        rc = rbpf_vm_get_program(h, &prog, &len);
        if (!m) expect_invalid("get_program", rc);
        else if (m->program == P_NONE ? rc != RBPF_E_NO_PROGRAM && !(rc == RBPF_OK && len == 0)
                                      : rc != RBPF_OK || (m->program < KNOWN && (len != program_lens[m->program] || memcmp(prog, programs[m->program], len))))
            fail("get_program", rc);
    } else if (c == 2) {
        rc = rbpf_vm_get_program(h, NULL, &len);
        if (m ? rc != RBPF_E_INVALID_ARGUMENT : rc != RBPF_E_INVALID_HANDLE && rc != RBPF_E_INVALID_ARGUMENT) fail("get_program with NULL", rc);
    } else {
        rc = rbpf_vm_jit_disassemble(h, NULL);
        if (m ? rc != RBPF_E_INVALID_ARGUMENT : rc != RBPF_E_INVALID_HANDLE && rc != RBPF_E_INVALID_ARGUMENT) fail("jit_disassemble with NULL", rc);
    }
    rbpf_free(text);
    rbpf_free(prog);
}

/* The calls that take bytes or text and no VM. */
static void op_bytes(void)
{
    uint8_t c = u8() % 5, raw[128];
    size_t n = u8() % sizeof raw;
    fill(raw, n);
    char *text = NULL;
    uint8_t *out = NULL;
    size_t out_len = 0;
    int rc;
    switch (c) {
    case 0:
        rc = rbpf_disassemble_ex(raw, n, u8(), &text);
        expect_error_reported("disassemble", rc);
        if (rc == RBPF_OK && text == NULL) fail("disassemble gave no text", rc);
        break;
    case 1: {
        char src[129];
        for (size_t i = 0; i < n; i++) src[i] = (char)(raw[i] % 2 ? "rmovaddexit0123,[]-+ \n:lddwjcallr10"[raw[i] % 35] : raw[i]);
        src[n] = 0;
        rc = rbpf_assemble(src, &out, &out_len);
        expect_error_reported("assemble", rc);
        if (rc == RBPF_OK && out_len % 8) fail("assemble gave a partial instruction", rc);
        break;
    }
    case 2:
        rc = rbpf_verify(raw, n);
        expect_error_reported("verify", rc);
        break;
    case 3:
        rc = rbpf_cbpf_translate(raw, n, &out, &out_len);
        expect_error_reported("cbpf_translate", rc);
        if (rc == RBPF_OK && (out == NULL || out_len == 0 || out_len % 8)) fail("cbpf_translate output", rc);
        break;
    default:
        rc = u8() % 2 ? rbpf_disassemble(NULL, 8, &text) : rbpf_assemble(NULL, &out, &out_len);
        if (rc != RBPF_E_INVALID_ARGUMENT) fail("NULL text or bytecode", rc);
        break;
    }
    rbpf_free(text);
    rbpf_free(out);
}

static rbpf_map *pick_map(int *live)
{
    int i = u8() % (MAPS + 1);
    if (i == MAPS) { *live = 0; return (rbpf_map *)(uintptr_t)(u8() % 2 ? 0 : u64()); }
    *live = map_live[i];
    return maps[i];
}

static void op_map_create(void)
{
    static const uint32_t types[] = {1, 2, 3, 5, 6, 9, 27, 0, 4, 99};
    static const uint32_t sizes[] = {0, 1, 4, 8, 16, 100, 512, 513, 4096, 8192, 1u << 20, (1u << 20) + 1};
    int i = u8() % MAPS;
    if (map_live[i]) { rbpf_map_destroy(maps[i]); map_live[i] = 0; }
    uint32_t type = types[u8() % 10], key = sizes[u8() % 12], value = sizes[u8() % 12];
    uint32_t entries = u8() % 3 == 0 ? 4096 : u8() % 70;
    if ((uint64_t)value * entries > (64u << 20)) entries %= 70; /* valid, but gigabytes the harness does not need */
    rbpf_map *out = NULL;
    int rc = rbpf_map_create(type, key, value, entries, u8() % 4 == 0 ? u32() : 0, u8() % 16 ? &out : NULL);
    expect_error_reported("map_create", rc);
    if (rc == RBPF_OK) {
        rbpf_map_info info;
        if (rbpf_map_get_info(out, &info) != RBPF_OK || info.key_size != key || info.value_size != value || info.type != type)
            fail("map_get_info of a new map", rc);
        if (key > 512 || value > (1u << 20)) fail("map_create accepted sizes past the documented ones", rc);
        if (value > sizeof valbuf) { rbpf_map_destroy(out); return; } /* the harness has no buffer that big */
        maps[i] = out;
        map_live[i] = 1;
    } else if (out != NULL) fail("a failed map_create left *out set", rc);
}

static void op_map_use(void)
{
    int live;
    rbpf_map *map = pick_map(&live);
    uint8_t c = u8() % 6;
    memset(keybuf, u8() % 4, sizeof keybuf); /* few distinct keys, so they meet again */
    keybuf[0] = u8() % 8;
    int rc;
    switch (c) {
    case 0: rc = rbpf_map_lookup(map, keybuf, valbuf); break;
    case 1: rc = rbpf_map_update(map, keybuf, valbuf, u8() % 4); break;
    case 2: rc = rbpf_map_delete(map, keybuf); break;
    case 3: rc = rbpf_map_next_key(map, u8() % 2 ? keybuf : NULL, keybuf); break;
    case 4: { rbpf_map_info info; rc = rbpf_map_get_info(map, &info); break; }
    default: rc = rbpf_map_lookup(map, NULL, valbuf); if (live && rc != RBPF_E_INVALID_ARGUMENT) fail("map_lookup with a NULL key", rc); break;
    }
    if (!live) { expect_invalid("a map call on a dead handle", rc); return; }
    expect_error_reported("map call", rc);
}

static void op_map_bind(void)
{
    int live;
    rbpf_map *map = pick_map(&live);
    rbpf_vm *h;
    vm_model *m = target(&h);
    uint8_t c = u8() % 3;
    int rc;
    if (c == 0) rc = rbpf_vm_bind_map(h, u8(), live || u8() % 2 ? map : NULL);
    else if (c == 1) rc = rbpf_map_set_program(map, u8() % 8, u8() % 2 ? h : NULL);
    else { rbpf_map_destroy(map); if (live) for (int i = 0; i < MAPS; i++) if (maps[i] == map) map_live[i] = 0; return; }
    expect_error_reported("bind", rc);
    if (c == 0 && !m && rc != RBPF_E_INVALID_HANDLE) fail("bind_map on a dead VM", rc);
    if (c == 0 && m && rc == RBPF_OK) { m->maps_bound = 1; discard(m); if (m->helper == 0) m->helper = 3; }
    if (c == 1 && !live && rc != RBPF_E_INVALID_HANDLE) fail("map_set_program on a dead map", rc);
}

static void op_batch(void)
{
    rbpf_vm *h;
    vm_model *m = target(&h);
    rbpf_buffer bufs[4];
    size_t n = u8() % 5, done = 99, lengths[4];
    uint64_t results[4] = {0}, counts[3] = {0};
    for (size_t i = 0; i < n; i++) { bufs[i].len = u8() % 64; bufs[i].data = mem + i * 64; lengths[i] = bufs[i].len; }
    uint32_t flags = u8() % 3;
    uint8_t c = u8() % 4;
    int rc;
    if (c == 0) rc = rbpf_vm_execute_batch(h, bufs, n, flags, results, &done);
    else if (c == 1) rc = rbpf_vm_count_verdicts(h, bufs, n, flags, counts, 1 + u8() % 3, &done);
    else if (c == 2) rc = rbpf_vm_execute_packed(h, mem, lengths, n, flags, results, NULL, 0, &done);
    else rc = rbpf_vm_execute_batch(h, NULL, n ? n : 1, flags, results, &done);
    TRACE("batch form %d n %zu flags %u: %d\n", c, n, flags, rc);
    if (!m) { expect_invalid("batch", rc); return; }
    expect_error_reported("batch", rc);
    if (c == 3) {
        if (rc != RBPF_E_INVALID_ARGUMENT && !(rc == RBPF_E_NO_PROGRAM && (flags & 1) && !m->compiled)) fail("a batch of NULL buffers", rc);
        return;
    }
    if (flags > 1) { if (rc != RBPF_E_INVALID_ARGUMENT) fail("a batch with unknown flags", rc); return; }
    if (rc == RBPF_OK && done != n) fail("a batch that succeeded did not run every input", rc);
    if (rc != RBPF_OK && done >= n && n > 0) fail("a batch that failed counted every input done", rc);
    if (rc == RBPF_OK && c != 1 && n > 0 && m->program == P_CONST && (!flags || m->compiled) && results[0] != 42) fail("batch results", rc);
    if (c == 1 && rc == RBPF_OK && counts[0] + counts[1] + counts[2] != n) fail("count_verdicts counts", rc);
}

static void op_misc(void)
{
    rbpf_vm *h;
    vm_model *m = target(&h);
    uint8_t c = u8() % 8;
    int rc = RBPF_OK;
    switch (c) {
    case 0: {
        int code = (int)u32() % 200 - 100;
        const char *name = rbpf_error_name(code);
        if (name == NULL || name[0] == 0) fail("error_name gave nothing", code);
        return;
    }
    case 1: {
        int valid = rbpf_vm_is_valid(h);
        if (valid != (m != NULL)) fail("is_valid differs from the model", valid);
        return;
    }
    case 2:
        rc = rbpf_vm_interrupt(h); /* nothing runs: a no-op for live handles */
        if (!m) expect_invalid("interrupt", rc);
        else if (rc != RBPF_OK) fail("interrupt", rc);
        return;
    case 3:
        rc = rbpf_vm_disable_verifier(h);
        TRACE("disable verifier: %d\n", rc);
        if (m && rc == RBPF_OK) m->verifier_off = 1;
        break;
    case 4:
        rc = rbpf_vm_register_standard_helpers(h);
        if (m && rc == RBPF_OK) discard(m);
        break;
    case 5:
        rc = rbpf_vm_set_unwind_helper(h, u8() % 2 ? 1 : u32(), u8() % 2);
        if (m && rc == RBPF_OK) discard(m);
        break;
    case 6: {
        rbpf_jit_fn fn = NULL;
        rc = rbpf_vm_jit_function(h, &fn);
        if (m && rc == RBPF_OK) {
            if (!m->compiled) { fail("jit_function without compiled code", rc); return; }
            uint64_t r0 = 0;
            size_t mem_len = m->kind == RBPF_VM_NO_DATA ? 0 : u8() % (sizeof mem + 1);
            int run = fn(mem, mem_len, NULL, 0, &r0);
            if (m->maps_bound && run == RBPF_E_HELPER_FAILED) return; /* a tail call through the bare function */
            check_run("jit_function", m, run, r0, 1, mem_len);
        } else if (m && m->compiled && rc != RBPF_E_UNSUPPORTED) fail("jit_function of compiled code", rc);
        break;
    }
    default: {
        rbpf_vm *out = NULL;
        uint32_t type = u8() % 40;
        rc = rbpf_vm_create_for_type(type, u8() % 8 ? &out : NULL);
        expect_error_reported("create_for_type", rc);
        if (rc == RBPF_OK) rbpf_vm_destroy(out);
        return;
    }
    }
    if (!m) { expect_invalid("a call on a dead VM", rc); return; }
    expect_error_reported("a call on a VM", rc);
}

/* ELF objects: the committed test objects (tests/elf), damaged at a few places the input picks. */
#ifndef RBPF_TEST_ELF_DIR
#define RBPF_TEST_ELF_DIR "tests/elf"
#endif
static const char *elf_names[] = {"block_port.o", "calls.o", "counters.o", "legacy_maps.o", "port_counts.o",
                                  "rodata.o", "tc_progs.o", "xdp_progs.o", "calls.v4.o", "signed_v4.v4.o"};
#define ELFS (sizeof elf_names / sizeof *elf_names)
static uint8_t *elfs[ELFS];
static size_t elf_lens[ELFS];
static uint8_t elfbuf[65536], frame[2048];
static uint8_t *read_all(const char *path, size_t *len);

static void load_elfs(void)
{
    const char *dir = getenv("RBPF_TEST_ELF_DIR");
    if (dir == NULL) dir = RBPF_TEST_ELF_DIR;
    for (size_t i = 0; i < ELFS; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, elf_names[i]);
        elfs[i] = read_all(path, &elf_lens[i]); /* NULL when missing: the ELF calls are then skipped */
    }
}

static const uint8_t *damaged_elf(size_t *len)
{
    size_t i = u8() % ELFS;
    if (elfs[i] == NULL || elf_lens[i] > sizeof elfbuf || elf_lens[i] == 0) return NULL;
    memcpy(elfbuf, elfs[i], elf_lens[i]);
    *len = elf_lens[i];
    for (int k = u8() % 2 ? 0 : u8() % 5; k > 0; k--) elfbuf[u32() % *len] = u8(); /* half of them whole */
    if (u8() % 8 == 0) *len = u32() % (*len + 1);
    return elfbuf;
}

/* A kernel-type VM: a few runs on frames the input fills (XDP, sk_buff, a capture), in both engines. */
static void kernel_runs(rbpf_vm *h, uint32_t type)
{
    for (size_t i = 0; i < sizeof frame; i++) frame[i] = (uint8_t)(i * 7);
    for (int n = u8() % 6; n > 0; n--) {
        uint8_t c = u8() % 5;
        size_t len = u32() % (sizeof frame + 1);
        for (int k = u8() % 8; k > 0 && len > 0; k--) frame[u32() % len] = u8();
        int rc;
        if (c == 0) {
            rc = rbpf_vm_jit_compile_ex(h, u8() % 8 & ~RBPF_JIT_UNCHECKED);
        } else if (c == 1) {
            rbpf_xdp_options o = {.headroom = u8() % 2 ? 256 : u32() % 4096, .length = u8() % 2 ? UINT32_MAX : u32() % 4096};
            rbpf_xdp_result res;
            rc = rbpf_vm_execute_xdp(h, frame, len, u8() % 2 ? &o : NULL, u8() % 3, u8() % 8 ? &res : NULL);
        } else if (c == 2) {
            rbpf_skb skb;
            memset(&skb, 0, sizeof skb);
            skb.protocol = u8() % 2 ? 0 : u32();
            skb.mark = u32();
            uint64_t r0;
            rc = rbpf_vm_execute_skb(h, frame, len, u8() % 2 ? &skb : NULL, u8() % 3, u8() % 8 ? &r0 : NULL);
        } else if (c == 3) {
            uint64_t counts[4] = {0};
            size_t packets = 0;
            rc = rbpf_vm_run_capture(h, frame, len, u8() % 3, counts, 1 + u8() % 4, &packets);
        } else {
            uint64_t r0;
            rc = (u8() % 2 ? rbpf_vm_execute : rbpf_vm_execute_jit)(h, frame, len, NULL, 0, &r0);
        }
        TRACE("kernel run %d (type %u) on %zu bytes: %d\n", c, type, len, rc);
        expect_error_reported("a kernel-type run", rc);
    }
}

static int accept_all(const uint8_t *prog, size_t len, void *user) { (void)prog, (void)len, (void)user; return 0; }
static int reject_all(const uint8_t *prog, size_t len, void *user)
{
    (void)prog, (void)len, (void)user;
    rbpf_verifier_reject("the harness rejects everything");
    return 1;
}
static int ring_cb(void *ctx, const void *data, size_t len) { (void)data; *(size_t *)ctx += len; return 0; }

static void op_elf(void)
{
    size_t len = 0;
    const uint8_t *elf = damaged_elf(&len);
    if (elf == NULL) return;
    static const char *sections[] = {NULL, "xdp", "tc", "classifier", "socket", ".text", "no such section", "entry"};
    const char *section = sections[u8() % 8];
    rbpf_vm *out = NULL;
    uint8_t c = u8() % 4;
    int kind = u8() % 4, rc;
    uint32_t type = u8() % 2 ? 0 : u8() % 8; /* 0: from the section's name */
    if (c == 0) rc = rbpf_vm_create_from_elf((rbpf_vm_kind)kind, elf, len, section, &out);
    else if (c == 1) rc = rbpf_vm_create_kernel_from_elf(elf, len, section, type, &out);
    else if (c == 2) rc = rbpf_vm_create_for_type(type, &out);
    else rc = rbpf_vm_create_from_elf(RBPF_VM_RAW, NULL, len ? len : 1, section, &out);
    TRACE("elf form %d: %d\n", c, rc);
    expect_error_reported("an ELF load", rc);
    if (c == 3) { if (rc != RBPF_E_INVALID_ARGUMENT) fail("an ELF object at NULL", rc); return; }
    if (rc != RBPF_OK) { if (out != NULL) fail("a failed ELF load left *out set", rc); return; }
    if (c == 2 && u8() % 2) { /* a program for the type: damaged bytes, or an object's */
        int lr = u8() % 2 ? rbpf_vm_load_elf(out, elf, len, section) : rbpf_vm_set_program(out, elf, len & ~(size_t)7);
        expect_error_reported("loading into a kernel-type VM", lr);
    }
    uint32_t got = 99;
    int tr = rbpf_vm_get_program_type(out, &got);
    if (tr != RBPF_OK || (c == 0 && got != 0)) fail("get_program_type", tr);
    char *names = NULL;
    int nr = rbpf_vm_map_names(out, &names);
    expect_error_reported("map_names", nr);
    rbpf_free(names);
    rbpf_map *map = NULL;
    nr = rbpf_vm_get_map(out, u8() % 2 ? "counts" : "no such map", &map);
    expect_error_reported("get_map", nr);
    if (c == 0) {
        /* A VM of rbpf's kinds joins the slots, with a program the model knows nothing about. */
        vm_model *m = &vms[u8() % VMS];
        if (m->live) rbpf_vm_destroy(m->h);
        *m = (vm_model){.h = out, .live = 1, .kind = kind, .program = P_RAW};
        return;
    }
    kernel_runs(out, got);
    rbpf_vm_destroy(out);
}

/* Verifiers, signals, ring buffers. */
static void op_more(void)
{
    rbpf_vm *h;
    vm_model *m = target(&h);
    uint8_t c = u8() % 3;
    int rc;
    if (c == 0) {
        uint8_t v = u8() % 3;
        rc = rbpf_vm_set_verifier(h, v == 0 ? NULL : v == 1 ? accept_all : reject_all, NULL);
        TRACE("set_verifier %d: %d\n", v, rc);
        if (!m) { expect_invalid("set_verifier", rc); return; }
        expect_error_reported("set_verifier", rc);
        /* The loaded program is checked again at once: a rejecting verifier is refused while one is loaded. */
        if (v == 2 && m->program != P_NONE) { if (rc != RBPF_E_INVALID_PROGRAM) fail("a rejecting verifier over a loaded program", rc); }
        else if (rc == RBPF_OK) m->rejecting = v == 2;
        else if (v != 0 || m->program < KNOWN) fail("set_verifier", rc);
    } else if (c == 1) {
        static const int signals[] = {0, SIGUSR1, SIGUSR2, SIGKILL, SIGSTOP, 9999, -1};
        int sig = signals[u8() % 7];
        rc = rbpf_vm_set_interrupt_signal(h, sig);
        if (!m) { expect_invalid("set_interrupt_signal", rc); return; }
        expect_error_reported("set_interrupt_signal", rc);
        if ((sig == 0 || sig == SIGUSR1 || sig == SIGUSR2) ? rc != RBPF_OK : rc != RBPF_E_INVALID_ARGUMENT) fail("set_interrupt_signal", rc);
    } else {
        int live;
        rbpf_map *map = pick_map(&live);
        size_t seen = 0;
        int64_t n = rbpf_map_ringbuf_consume(map, u8() % 4 ? ring_cb : NULL, &seen);
        if (!live && n != RBPF_E_INVALID_HANDLE) fail("ringbuf_consume on a dead map", (int)n);
        if (n < 0) expect_error_reported("ringbuf_consume", (int)n);
    }
}

/* The uBPF API on its own handles: the same checks where uBPF's contract gives them. */
typedef struct {
    struct ubpf_vm *h;
    int live, program, helper1;
    uint32_t limit;  /* ubpf_set_instruction_limit's: uBPF's interpreter honours it, and librbpf's
                        compiled code too when compiled after it was set (docs/ubpf.md) */
    ubpf_jit_fn fn;
} ubpf_model;

/* Whether u's instruction limit may stop a known program whose result is checked (each runs fewer than 16 instructions). */
static int ubpf_may_stop(const ubpf_model *u) { return u->limit != 0 && u->limit < 16; }
static ubpf_model uvms[2];

static int quiet(FILE *stream, const char *format, ...) { (void)stream, (void)format; return 0; }
static uint64_t ubpf_triple(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e) { (void)b, (void)c, (void)d, (void)e; return a * 3; }

static void op_ubpf(void)
{
    ubpf_model *u = &uvms[u8() % 2];
    uint8_t c = u8() % 9;
    char *err = NULL;
    int rc = 0;
    switch (c) {
    case 0:
        if (u->live) ubpf_destroy(u->h);
        *u = (ubpf_model){.h = ubpf_create(), .live = 1, .program = P_NONE};
        if (u->h == NULL) { fail("ubpf_create", 0); u->live = 0; }
        else ubpf_set_error_print(u->h, quiet); /* uBPF prints its errors to stderr by default */
        break;
    case 1: /* a destroyed handle is refused (uBPF's layer keeps destroyed blocks in quarantine): destroying it again is harmless */
        if (u->h != NULL) ubpf_destroy(u->h);
        u->live = 0;
        u->fn = NULL;
        break;
    case 2: {
        uint8_t raw[80];
        size_t len;
        int which;
        const uint8_t *prog = pick_program(&len, &which, raw, sizeof raw);
        rc = ubpf_load(u->h, prog, (uint32_t)len, &err);
        if (!u->live) { if (rc >= 0) fail("ubpf_load on a destroyed VM", rc); break; }
        if (rc >= 0) { if (u->program != P_NONE) fail("ubpf_load over loaded code", rc); u->program = which; u->fn = NULL; }
        else if (which < KNOWN && u->program == P_NONE && !(which == P_HELPER && !u->helper1)) /* uBPF's loader wants its helpers */
            fail("ubpf_load of a known program", rc);
        if (rc < 0 && err == NULL) fail("ubpf_load failed without a message", rc);
        break;
    }
    case 3:
        if (u->live) { ubpf_unload_code(u->h); u->program = P_NONE; u->fn = NULL; }
        break;
    case 4: {
        uint64_t r0 = 0;
        size_t mem_len = u8() % (sizeof mem + 1);
        rc = ubpf_exec(u->h, mem, mem_len, &r0);
        if (!u->live || u->program == P_NONE) { if (rc >= 0) fail("ubpf_exec without a VM or code", rc); break; }
        if (rc < 0 && ubpf_may_stop(u)) break;
        if (u->program == P_CONST && (rc < 0 || r0 != 42)) fail("ubpf_exec", rc);
        if (u->program == P_CALL && (rc < 0 || r0 != 22)) fail("ubpf_exec", rc);
        if (u->program == P_STACK && (rc < 0 || r0 != 77)) fail("ubpf_exec", rc);
        break;
    }
    case 5: {
        ubpf_jit_fn fn = ubpf_compile(u->h, &err);
        if (!u->live || u->program == P_NONE) { if (fn != NULL) fail("ubpf_compile without a VM or code", 0); break; }
        if (fn == NULL) { if (u->program < KNOWN) fail("ubpf_compile of a known program", 0); break; }
        u->fn = fn;
        if (u->program != P_CONST && u->program != P_CALL) break;
        uint64_t r = fn(mem, sizeof mem);
        if (r == UINT64_MAX && ubpf_may_stop(u)) break; /* a failed run gives UINT64_MAX */
        if (u->program == P_CONST && r != 42) fail("ubpf_compile's function", 0);
        if (u->program == P_CALL && r != 22) fail("ubpf_compile's function", 0);
        break;
    }
    case 6:
    {
        unsigned index = u8() % 2 ? 1 : u32();
        rc = ubpf_register(u->h, index, "triple", ubpf_triple);
        if (!u->live && rc >= 0) fail("ubpf_register on a destroyed VM", rc);
        if (u->live && rc >= 0 && index == 1) u->helper1 = 1;
        if (u->live) u->fn = NULL;
    }
        break;
    case 7: {
        uint8_t buf[4096];
        size_t size = u32() % (sizeof buf + 1);
        rc = ubpf_translate(u->h, buf, &size, &err);
        if ((!u->live || u->program == P_NONE) && rc >= 0) fail("ubpf_translate without a VM or code", rc);
        break;
    }
    default: {
        uint32_t previous = 0;
        uint32_t limit = u8() % 2 ? 0 : 1 + u8();
        rc = ubpf_set_instruction_limit(u->h, limit, &previous);
        if (!u->live && rc >= 0) fail("ubpf_set_instruction_limit on a destroyed VM", rc);
        if (u->live && rc >= 0) {
            if (previous != u->limit) fail("ubpf_set_instruction_limit's previous limit", rc);
            u->limit = limit;
        }
        break;
    }
    }
    TRACE("ubpf call %d on %s VM: %d\n", c, u->live ? "a live" : "a destroyed", rc);
    free(err);
}

static void run_input(const uint8_t *data, size_t len)
{
    in = data; in_len = len; in_pos = 0;
    memset(vms, 0, sizeof vms);
    memset(map_live, 0, sizeof map_live);
    memset(uvms, 0, sizeof uvms);
    for (int i = 0; i < 256; i++) mem[i] = (uint8_t)i;
    while (in_pos < in_len) {
        kind = u8() % 23;
        calls[kind]++;
        if (trace) fprintf(stderr, "call kind %d at input byte %zu\n", kind, in_pos - 1);
        switch (kind) {
        case 0: case 1: op_create(); break;
        case 2: op_destroy(); break;
        case 3: op_set_program(); break;
        case 4: case 5: op_execute(0); break;
        case 6: case 7: op_execute(1); break;
        case 8: op_compile(); break;
        case 9: op_helper(); break;
        case 10: op_limit(); break;
        case 11: op_regions(); break;
        case 12: op_texts(); break;
        case 13: op_bytes(); break;
        case 14: op_map_create(); break;
        case 15: op_map_use(); break;
        case 16: op_map_bind(); break;
        case 17: op_batch(); break;
        case 18: op_elf(); break;
        case 19: op_more(); break;
        case 20: op_ubpf(); break;
        default: op_misc(); break;
        }
    }
    for (int i = 0; i < VMS; i++) if (vms[i].live) rbpf_vm_destroy(vms[i].h);
    for (int i = 0; i < MAPS; i++) if (map_live[i]) rbpf_map_destroy(maps[i]);
    for (int i = 0; i < 2; i++) if (uvms[i].live) ubpf_destroy(uvms[i].h);
}

static uint8_t *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    *len = n;
    return buf;
}

int main(int argc, char **argv)
{
    for (int i = 0; i < KNOWN; i++)
        if (rbpf_assemble(sources[i], &programs[i], &program_lens[i]) != RBPF_OK) {
            fprintf(stderr, "FAIL assembling the harness's programs: %s\n", rbpf_last_error());
            printf("capi: 0 passed, 1 failed\n");
            return 1;
        }
    load_elfs();
    int argi = 1, inputs = 0;
    trace = getenv("RBPF_CAPI_TRACE") != NULL; /* each call's kind and place in the input, on stderr */
    if (argi < argc && strcmp(argv[argi], "--abort") == 0) { abort_on_failure = 1; argi++; }
    if (argi < argc && strcmp(argv[argi], "--random") == 0) {
        long n = argi + 1 < argc ? atol(argv[argi + 1]) : 1000;
        uint64_t seed = argi + 2 < argc ? strtoull(argv[argi + 2], NULL, 0) : 1;
        static uint8_t buf[2048];
        const char *save = getenv("RBPF_CAPI_SAVE");
        for (long k = 0; k < n; k++) {
            size_t len = 16 + (size_t)(seed % 2000);
            for (size_t i = 0; i < len; i++) {
                seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17;
                buf[i] = (uint8_t)(seed >> 24);
            }
            if (save) { /* the input about to run, so a crash leaves it behind */
                FILE *f = fopen(save, "wb");
                if (f) { fwrite(buf, 1, len, f); fclose(f); }
            }
            run_input(buf, len);
            inputs++;
        }
    } else {
        for (; argi < argc; argi++) {
            size_t len;
            uint8_t *data = read_all(argv[argi], &len);
            if (!data) { fprintf(stderr, "FAIL cannot read %s\n", argv[argi]); failed++; continue; }
            run_input(data, len);
            free(data);
            inputs++;
        }
    }
    long passed = 0, total = 0;
    for (int k = 0; k < KINDS; k++) {
        total += calls[k];
        if (calls[k] > 0 && bad[k] == 0) passed++;
    }
    for (int i = 0; i < KNOWN; i++) rbpf_free(programs[i]);
    printf("%d inputs, %ld calls\ncapi: %ld passed, %ld failed\n", inputs, total, passed, failed);
    return failed != 0;
}
