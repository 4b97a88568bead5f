/* A program written the way a uBPF user writes one, built against include/ubpf.h and linked
 * against librbpf: every function of the uBPF API and its error paths. Ends with
 * "ubpf: N passed, N failed". */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "read_file.h"
#include <ubpf.h>

static int passed, failed;
#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (cond) passed++;                                                           \
        else { failed++; fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); } \
    } while (0)

struct insn { uint8_t op; uint8_t regs; int16_t off; int32_t imm; };
#define I(op, dst, src, off, imm) {(op), (uint8_t)((dst) | ((src) << 4)), (off), (imm)}

static char last_error[512];
static int error_calls;
static int capture_error(FILE *stream, const char *format, ...)
{
    va_list ap;
    (void)stream;
    va_start(ap, format);
    vsnprintf(last_error, sizeof last_error, format, ap);
    va_end(ap);
    error_calls++;
    return 0;
}

static uint64_t add5(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e) { return a + b + c + d + e; }
static uint64_t add5_twice(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e) { return 2 * (a + b + c + d + e); }
static uint64_t ident(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e) { (void)b; (void)c; (void)d; (void)e; return a; }

static uint64_t sixth_argument(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e, void *mem)
{
    (void)a; (void)b; (void)c; (void)d; (void)e;
    return (uint64_t)(uintptr_t)mem;
}

static int frame16(const struct ubpf_vm *vm, uint16_t pc, void *cookie) { (void)vm; (void)pc; (void)cookie; return 16; }
static int frame17(const struct ubpf_vm *vm, uint16_t pc, void *cookie) { (void)vm; (void)pc; (void)cookie; return 17; }

static void *dispatch_cookie;
static unsigned dispatch_index;
static uint64_t dispatcher(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e, unsigned int index, void *cookie)
{
    (void)b; (void)c; (void)d; (void)e;
    dispatch_cookie = cookie;
    dispatch_index = index;
    return a * 100 + index;
}
static bool validator(unsigned int index, const struct ubpf_vm *vm) { (void)vm; return index < 10; }

static int debug_calls;
static void debug_fn(void *context, int pc, const uint64_t registers[16], const uint8_t *stack_start, size_t stack_length,
                     uint64_t register_mask, const uint8_t *stack_mask)
{
    (void)pc; (void)stack_start; (void)stack_length; (void)register_mask; (void)stack_mask;
    (*(int *)context)++;
    debug_calls++;
    CHECK(registers != NULL);
}

static uint64_t relocated_value = 0x1122334455667788ull;
static uint64_t relocate(void *ctx, const uint8_t *data, uint64_t size, const char *name, uint64_t offset, uint64_t symbol_size)
{
    (void)data; (void)size; (void)offset; (void)symbol_size;
    CHECK(ctx == &relocated_value);
    CHECK(name != NULL);
    return (uint64_t)(uintptr_t)ctx;
}

static uint8_t extra_memory[16];
static bool allow_extra(void *context, uint64_t addr, uint64_t size)
{
    (void)context;
    return addr >= (uint64_t)(uintptr_t)extra_memory && addr + size <= (uint64_t)(uintptr_t)extra_memory + sizeof extra_memory;
}


int main(void)
{
    char *errmsg = NULL;
    uint64_t r = 0;

    /* Create, register, load, exec. */
    struct ubpf_vm *vm = ubpf_create();
    CHECK(vm != NULL);
    ubpf_set_error_print(vm, capture_error);
    CHECK(ubpf_register(vm, 1, "add5", add5) == 0);
    CHECK(ubpf_register(vm, 64, "too_far", add5) == -1);
    CHECK(ubpf_register(vm, 2, "null", NULL) == -1);
    struct insn call_add5[] = {
        I(0xb7, 1, 0, 0, 1), I(0xb7, 2, 0, 0, 2), I(0xb7, 3, 0, 0, 3), I(0xb7, 4, 0, 0, 4), I(0xb7, 5, 0, 0, 5),
        I(0x85, 0, 0, 0, 1), I(0x95, 0, 0, 0, 0),
    };
    CHECK(ubpf_exec(vm, NULL, 0, &r) == -1); /* nothing loaded */
    CHECK(ubpf_load(vm, call_add5, sizeof call_add5, &errmsg) == 0);
    CHECK(errmsg == NULL);
    CHECK(ubpf_load(vm, call_add5, sizeof call_add5, &errmsg) == -1); /* already loaded */
    CHECK(errmsg != NULL && strstr(errmsg, "ubpf_unload_code") != NULL);
    free(errmsg);
    errmsg = NULL;
    CHECK(ubpf_exec(vm, NULL, 0, &r) == 0 && r == 15);

    /* Compile and call the JIT function. */
    ubpf_jit_fn fn = ubpf_compile(vm, &errmsg);
    CHECK(fn != NULL && errmsg == NULL);
    if (fn) CHECK(fn(NULL, 0) == 15);
    /* Registering a helper after compiling keeps the function working, now calling the new helper
     * (as uBPF, which patches its code in place). */
    CHECK(ubpf_register(vm, 1, "add5_twice", add5_twice) == 0);
    error_calls = 0;
    if (fn) CHECK(fn(NULL, 0) == 30);
    CHECK(error_calls == 0);
    CHECK(ubpf_compile(vm, &errmsg) == fn); /* the same function */
    CHECK(ubpf_register(vm, 1, "add5", add5) == 0);
    if (fn) CHECK(fn(NULL, 0) == 15);
    /* The handle is laid out like uBPF's struct ubpf_vm where uBPF's own tools read it:
     * jitted_size (offset 40 on LP64) is the size of the compiled code. */
    CHECK(*(const size_t *)((const char *)vm + 40) > 22);
    ubpf_jit_ex_fn fn_ex = ubpf_compile_ex(vm, &errmsg, ExtendedJitMode);
    CHECK(fn_ex != NULL);
    uint8_t ex_stack[512];
    if (fn_ex) CHECK(fn_ex(NULL, 0, ex_stack, sizeof ex_stack) == 15);
    CHECK(ExtendedJitMode == 0 && BasicJitMode == 1); /* uBPF's values */
    CHECK(ubpf_compile_ex(vm, &errmsg, (enum JitMode)7) == NULL);
    free(errmsg);
    errmsg = NULL;
    uint8_t code[65536];
    size_t size = sizeof code;
    CHECK(ubpf_translate(vm, code, &size, &errmsg) == 0 && size > 0 && size < sizeof code);
    size_t tiny = 4;
    CHECK(ubpf_translate_ex(vm, code, &tiny, &errmsg, BasicJitMode) == -1);
    CHECK(errmsg != NULL);
    free(errmsg);
    errmsg = NULL;
    uint8_t stub[64];
    CHECK(ubpf_copy_jit(vm, stub, sizeof stub, &errmsg) == (ubpf_jit_fn)(void *)stub);
    CHECK(ubpf_copy_jit(vm, stub, 4, &errmsg) == NULL);
    free(errmsg);
    errmsg = NULL;
    CHECK(ubpf_set_jit_code_size(vm, 16) == 0);
    CHECK(ubpf_compile(vm, &errmsg) == NULL); /* the code no longer fits */
    CHECK(errmsg != NULL && strcmp(errmsg, "Target buffer too small") == 0); /* uBPF's text */
    free(errmsg);
    errmsg = NULL;
    CHECK(ubpf_set_jit_code_size(vm, 65536) == 0);

    /* Unload, reload raw-packet programs; bounds checks report through error_print. */
    ubpf_unload_code(vm);
    CHECK(ubpf_exec(vm, NULL, 0, &r) == -1);
    struct insn load_word[] = {I(0x61, 0, 1, 2, 0), I(0x95, 0, 0, 0, 0)}; /* ldxw r0, [r1+2] */
    uint8_t mem[6] = {0, 0, 0x11, 0x22, 0x33, 0x44};
    CHECK(ubpf_load(vm, load_word, sizeof load_word, &errmsg) == 0);
    CHECK(ubpf_exec(vm, mem, 6, &r) == 0 && r == 0x44332211);
    error_calls = 0;
    CHECK(ubpf_exec(vm, mem, 5, &r) == -1);
    CHECK(error_calls == 1 && strstr(last_error, "out-of-bounds load of 4 bytes") != NULL);
    fn = ubpf_compile(vm, &errmsg);
    CHECK(fn != NULL);
    if (fn) {
        CHECK(fn(mem, 6) == 0x44332211);
        CHECK(fn(mem, 5) == UINT64_MAX); /* errors from compiled code: reported, UINT64_MAX */
        CHECK(error_calls == 2);
    }
    CHECK(ubpf_exec_ex(vm, mem, 6, &r, (uint8_t *)code, 512) == 0 && r == 0x44332211);
    CHECK(ubpf_exec_ex(vm, mem, 6, &r, (uint8_t *)code, 16) == 0 && r == 0x44332211); /* any size, as uBPF */
    CHECK(ubpf_exec_ex(vm, mem, 6, &r, NULL, 512) == -1);
    CHECK(ubpf_exec_ex(vm, mem, 6, NULL, (uint8_t *)code, 512) == -1);
    {
        /* The caller's stack is the program's: r10 points at its end. */
        struct insn stack_prog[] = {I(0x7a, 10, 0, -8, 0x77), I(0xbf, 0, 10, 0, 0), I(0x95, 0, 0, 0, 0)};
        struct ubpf_vm *svm = ubpf_create();
        static uint8_t stack[1024] __attribute__((aligned(16)));
        CHECK(ubpf_load(svm, stack_prog, sizeof stack_prog, &errmsg) == 0);
        CHECK(ubpf_exec_ex(svm, NULL, 0, &r, stack, sizeof stack) == 0);
        CHECK(r == (uint64_t)(uintptr_t)(stack + sizeof stack) && stack[sizeof stack - 8] == 0x77);
        ubpf_jit_ex_fn jit_ex = ubpf_compile_ex(svm, &errmsg, ExtendedJitMode);
        CHECK(jit_ex != NULL);
        memset(stack, 0, sizeof stack);
        if (jit_ex) CHECK(jit_ex(NULL, 0, stack, sizeof stack) == (uint64_t)(uintptr_t)(stack + sizeof stack));
        CHECK(stack[sizeof stack - 8] == 0x77);
        ubpf_destroy(svm);
    }

    /* The bounds check toggle, and the embedder's bounds check for memory outside the regions. */
    CHECK(ubpf_toggle_bounds_check(vm, false) == true);
    CHECK(ubpf_exec(vm, mem, 5, &r) == 0 && r == 0x44332211); /* reads past mem_len, as uBPF allows */
    CHECK(ubpf_toggle_bounds_check(vm, true) == false);
    CHECK(ubpf_exec(vm, mem, 5, &r) == -1);
    ubpf_unload_code(vm);
    struct insn touch_extra[] = {
        I(0x18, 1, 0, 0, (int32_t)(uint32_t)(uintptr_t)extra_memory), I(0, 0, 0, 0, (int32_t)((uint64_t)(uintptr_t)extra_memory >> 32)),
        I(0x72, 1, 0, 3, 0x5a), I(0x71, 0, 1, 3, 0), I(0x95, 0, 0, 0, 0),
    };
    CHECK(ubpf_load(vm, touch_extra, sizeof touch_extra, &errmsg) == 0);
    CHECK(ubpf_exec(vm, NULL, 0, &r) == -1);
    CHECK(ubpf_register_data_bounds_check(vm, NULL, allow_extra) == 0);
    CHECK(ubpf_register_data_bounds_check(vm, NULL, allow_extra) == -1);
    CHECK(ubpf_exec(vm, NULL, 0, &r) == 0 && r == 0x5a && extra_memory[3] == 0x5a);
    fn = ubpf_compile(vm, &errmsg);
    CHECK(fn != NULL && fn(NULL, 0) == 0x5a);

    /* Instruction limit, unwind, debug function. */
    ubpf_unload_code(vm);
    struct insn loop[] = {I(0xb7, 0, 0, 0, 0), I(0x07, 0, 0, 0, 1), I(0x55, 0, 0, -2, 0), I(0x95, 0, 0, 0, 0)}; /* jne r0, 0 */
    CHECK(ubpf_load(vm, loop, sizeof loop, &errmsg) == 0);
    uint32_t previous = 99;
    CHECK(ubpf_set_instruction_limit(vm, 1000, &previous) == 0 && previous == 0);
    CHECK(ubpf_exec(vm, NULL, 0, &r) == -1 && strstr(last_error, "instruction limit") != NULL);
    CHECK(ubpf_set_instruction_limit(vm, 0, &previous) == 0 && previous == 1000);
    ubpf_unload_code(vm);
    struct insn unwind[] = {I(0xb7, 1, 0, 0, 0), I(0x85, 0, 0, 0, 3), I(0xb7, 0, 0, 0, 2), I(0x95, 0, 0, 0, 0)};
    CHECK(ubpf_register(vm, 3, "ident", ident) == 0);
    CHECK(ubpf_load(vm, unwind, sizeof unwind, &errmsg) == 0);
    CHECK(ubpf_exec(vm, NULL, 0, &r) == 0 && r == 2);
    CHECK(ubpf_set_unwind_function_index(vm, 3) == 0);
    CHECK(ubpf_exec(vm, NULL, 0, &r) == 0 && r == 0);
    int seen = 0;
    CHECK(ubpf_register_debug_fn(vm, &seen, NULL) == -1);
    CHECK(ubpf_register_debug_fn(vm, &seen, debug_fn) == 0);
    CHECK(ubpf_register_debug_fn(vm, &seen, debug_fn) == -1);
    CHECK(ubpf_exec(vm, NULL, 0, &r) == 0 && seen == 2); /* mov, call: the unwind ends it */
    CHECK(ubpf_register_debug_fn(vm, NULL, NULL) == 0);

    /* Registers, pointer secret, toggles. */
    CHECK(ubpf_get_registers(vm) == NULL);
    uint64_t regs[16];
    error_calls = 0;
    ubpf_set_registers(vm, regs); /* void, as in uBPF: a warning through the error print function */
    CHECK(error_calls == 1);
    CHECK(ubpf_set_pointer_secret(vm, 42) == -1); /* a program is loaded */
    CHECK(ubpf_toggle_constant_blinding(vm, true) == false);
    CHECK(ubpf_toggle_constant_blinding(vm, false) == true);
    CHECK(ubpf_toggle_undefined_behavior_check(vm, true) == false);
    CHECK(ubpf_toggle_readonly_bytecode(vm, false) == true);
    CHECK(ubpf_register_stack_usage_calculator(vm, NULL, NULL) == 0);
    ubpf_destroy(vm);

    /* Invalid programs are refused with a message. */
    vm = ubpf_create();
    CHECK(ubpf_set_pointer_secret(vm, 42) == 0);
    struct insn bad[] = {I(0xff, 0, 0, 0, 0), I(0x95, 0, 0, 0, 0)};
    CHECK(ubpf_load(vm, bad, sizeof bad, &errmsg) == -1 && errmsg != NULL && strstr(errmsg, "unknown opcode") != NULL);
    free(errmsg);
    errmsg = NULL;
    CHECK(ubpf_load(vm, bad, 7, &errmsg) == -1 && strstr(errmsg, "multiple of 8") != NULL);
    free(errmsg);
    errmsg = NULL;
    CHECK(ubpf_compile(vm, &errmsg) == NULL && errmsg != NULL);
    free(errmsg);
    errmsg = NULL;
    ubpf_destroy(vm);

    /* The external dispatcher: precedence, validator, cookie. */
    vm = ubpf_create();
    ubpf_set_error_print(vm, capture_error);
    CHECK(ubpf_register(vm, 4, "add5", add5) == 0);
    CHECK(ubpf_register_external_dispatcher(vm, dispatcher, validator) == 0);
    struct insn calls4[] = {I(0xb7, 1, 0, 0, 7), I(0x85, 0, 0, 0, 4), I(0x95, 0, 0, 0, 0)};
    CHECK(ubpf_load(vm, calls4, sizeof calls4, &errmsg) == 0);
    uint8_t cookie_mem[4];
    CHECK(ubpf_exec(vm, cookie_mem, sizeof cookie_mem, &r) == 0 && r == 704);
    CHECK(dispatch_index == 4 && dispatch_cookie == cookie_mem);
    fn = ubpf_compile(vm, &errmsg);
    CHECK(fn != NULL && fn(cookie_mem, 4) == 704);
    /* callx reaches the dispatcher for an index the program never names. */
    {
        struct ubpf_vm *cvm = ubpf_create();
        CHECK(ubpf_register_external_dispatcher(cvm, dispatcher, validator) == 0);
        struct insn callx[] = {I(0xb7, 1, 0, 0, 7), I(0xb7, 6, 0, 0, 9), I(0x8d, 6, 0, 0, 0), I(0x95, 0, 0, 0, 0)};
        CHECK(ubpf_load(cvm, callx, sizeof callx, &errmsg) == 0);
        dispatch_index = 0;
        CHECK(ubpf_exec(cvm, cookie_mem, sizeof cookie_mem, &r) == 0 && dispatch_index == 9);
        ubpf_destroy(cvm);
    }
    /* A NULL dispatcher goes back to the registered helpers, in compiled code too. */
    CHECK(ubpf_register_external_dispatcher(vm, NULL, validator) == 0);
    CHECK(ubpf_exec(vm, cookie_mem, sizeof cookie_mem, &r) == 0 && r == 7 + sizeof cookie_mem); /* add5(r1, r2 = length) */
    if (fn) CHECK(fn(cookie_mem, 4) == 7 + sizeof cookie_mem);
    ubpf_unload_code(vm);
    struct insn calls12[] = {I(0x85, 0, 0, 0, 12), I(0x95, 0, 0, 0, 0)};
    /* Without a dispatcher a call must name a registered helper; with one, its validator decides. */
    CHECK(ubpf_load(vm, calls12, sizeof calls12, &errmsg) == -1 && strcmp(errmsg, "call to nonexistent function 12 at PC 0") == 0);
    free(errmsg);
    errmsg = NULL;
    CHECK(ubpf_register_external_dispatcher(vm, dispatcher, validator) == 0);
    CHECK(ubpf_load(vm, calls12, sizeof calls12, &errmsg) == -1 && strcmp(errmsg, "call to nonexistent function 12 at PC 0") == 0);
    free(errmsg);
    errmsg = NULL;
    ubpf_destroy(vm);

    /* Load errors through the uBPF API are uBPF's own texts. */
    {
        struct { struct insn code[3]; size_t n; const char *message; } cases[] = {
            {{I(0x05, 0, 0, -1, 0), I(0x95, 0, 0, 0, 0)}, 2, "infinite loop at PC 0"},
            {{I(0x05, 0, 0, 2, 0), I(0x95, 0, 0, 0, 0)}, 2, "jump out of bounds at PC 0"},
            {{I(0xbf, 0, 11, 0, 0), I(0x95, 0, 0, 0, 0)}, 2, "invalid source register at PC 0"},
            {{I(0xdc, 0, 0, 0, 48), I(0x95, 0, 0, 0, 0)}, 2, "invalid endian immediate at PC 0"},
            {{I(0xb7, 0, 0, 0, 1), I(0x85, 0, 1, 0, 0), I(0x95, 0, 0, 0, 0)}, 3,
             "sub-program does not end with EXIT or unconditional jump at PC 1"},
            {{I(0x95, 0, 0, 0, 1)}, 1, "Invalid immediate value 1 for opcode 95."},
        };
        for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
            vm = ubpf_create();
            CHECK(ubpf_load(vm, cases[k].code, (uint32_t)(cases[k].n * sizeof(struct insn)), &errmsg) == -1);
            CHECK(errmsg != NULL && strcmp(errmsg, cases[k].message) == 0);
            if (errmsg && strcmp(errmsg, cases[k].message) != 0) fprintf(stderr, "got: %s\n", errmsg);
            free(errmsg);
            errmsg = NULL;
            ubpf_destroy(vm);
        }
    }

    /* uBPF's stack for local calls: a function's frame is 256 bytes (UBPF_EBPF_LOCAL_FUNCTION_STACK_SIZE)
     * unless the stack usage calculator says otherwise; r10 starts at the very end of the stack given. */
    {
        /* main: [r10-4] = 0x55; call f; r0 = [r10-4]. f: [r10-4] = 0x66. */
        struct insn use_stack[] = {
            I(0xb7, 0, 0, 0, 0x55), I(0x63, 10, 0, -4, 0), I(0x85, 0, 1, 0, 2), I(0x61, 0, 10, -4, 0), I(0x95, 0, 0, 0, 0),
            I(0xb7, 0, 0, 0, 0x66), I(0x63, 10, 0, -4, 0), I(0x95, 0, 0, 0, 0)};
        static uint8_t stack[512] __attribute__((aligned(16)));
        vm = ubpf_create();
        ubpf_set_error_print(vm, capture_error);
        CHECK(ubpf_load(vm, use_stack, sizeof use_stack, &errmsg) == 0);
        memset(stack, 0, sizeof stack);
        CHECK(ubpf_exec_ex(vm, NULL, 0, &r, stack, sizeof stack) == 0 && r == 0x55);
        CHECK(stack[512 - 4] == 0x55 && stack[512 - UBPF_EBPF_LOCAL_FUNCTION_STACK_SIZE - 4] == 0x66);
        ubpf_jit_ex_fn jit_ex = ubpf_compile_ex(vm, &errmsg, ExtendedJitMode);
        memset(stack, 0, sizeof stack);
        CHECK(jit_ex != NULL && jit_ex(NULL, 0, stack, sizeof stack) == 0x55);
        CHECK(stack[512 - 4] == 0x55 && stack[512 - UBPF_EBPF_LOCAL_FUNCTION_STACK_SIZE - 4] == 0x66);
        ubpf_destroy(vm);

        /* A calculator's 16-byte frames fit a 32-byte stack. */
        vm = ubpf_create();
        CHECK(ubpf_register_stack_usage_calculator(vm, frame16, NULL) == 0);
        CHECK(ubpf_load(vm, use_stack, sizeof use_stack, &errmsg) == 0);
        uint8_t small[32] = {0};
        CHECK(ubpf_exec_ex(vm, NULL, 0, &r, small, sizeof small) == 0 && r == 0x55);
        CHECK(small[32 - 4] == 0x55 && small[32 - 16 - 4] == 0x66);
        ubpf_destroy(vm);

        /* A calculator's size must be a multiple of 16. */
        vm = ubpf_create();
        CHECK(ubpf_register_stack_usage_calculator(vm, frame17, NULL) == 0);
        CHECK(ubpf_load(vm, use_stack, sizeof use_stack, &errmsg) == -1 &&
              strcmp(errmsg, "local function (at PC 0) has improperly sized stack use (17)") == 0);
        free(errmsg);
        errmsg = NULL;
        ubpf_destroy(vm);

        /* Eight nested local calls are allowed (nine frames), as in uBPF; a ninth is refused. */
        struct insn nest[20];
        for (int depth = 8; depth <= 9; depth++) {
            int n = 0;
            for (int k = 0; k < depth; k++) { /* each function: call the next one; exit */
                struct insn call = I(0x85, 0, 1, 0, 1), ret = I(0x95, 0, 0, 0, 0);
                nest[n++] = call;
                nest[n++] = ret;
            }
            struct insn mov = I(0xb7, 0, 0, 0, 9), ex = I(0x95, 0, 0, 0, 0);
            nest[n++] = mov;
            nest[n++] = ex;
            vm = ubpf_create();
            ubpf_set_error_print(vm, capture_error);
            CHECK(ubpf_load(vm, nest, (uint32_t)(n * sizeof nest[0]), &errmsg) == 0);
            error_calls = 0;
            int rc = ubpf_exec(vm, NULL, 0, &r);
            CHECK(depth == 8 ? rc == 0 && r == 9 : rc == -1 && error_calls == 1);
            ubpf_jit_fn jf = ubpf_compile(vm, &errmsg);
            CHECK(jf != NULL && jf(NULL, 0) == (depth == 8 ? 9 : UINT64_MAX));
            ubpf_destroy(vm);
        }
    }

    /* Helpers get the run's memory pointer as an implicit sixth argument, as in uBPF. */
    vm = ubpf_create();
    ubpf_set_error_print(vm, capture_error);
    CHECK(ubpf_register(vm, 1, "sixth", as_external_function_t((void *)sixth_argument)) == 0);
    struct insn call1[] = {I(0x85, 0, 0, 0, 1), I(0x95, 0, 0, 0, 0)};
    CHECK(ubpf_load(vm, call1, sizeof call1, &errmsg) == 0);
    CHECK(ubpf_exec(vm, cookie_mem, sizeof cookie_mem, &r) == 0 && r == (uint64_t)(uintptr_t)cookie_mem);
    fn = ubpf_compile(vm, &errmsg);
    CHECK(fn != NULL && fn(cookie_mem, 4) == (uint64_t)(uintptr_t)cookie_mem);
    ubpf_destroy(vm);

    /* Safe profile, safe helpers and regions. */
    static uint64_t cell;
    vm = ubpf_create();
    ubpf_set_error_print(vm, capture_error);
    CHECK(ubpf_set_execution_profile(vm, UBPF_EXECUTION_PROFILE_SAFE) == 0);
    CHECK(ubpf_set_execution_profile(vm, (enum ubpf_execution_profile)9) == -1);
    struct ubpf_safe_region region = {1, &cell, sizeof cell, UBPF_SAFE_REGION_POINTER, UBPF_SAFE_REGION_READ | UBPF_SAFE_REGION_WRITE};
    CHECK(ubpf_register_safe_region(vm, &region) == 0);
    CHECK(ubpf_register_safe_region(vm, &region) == -1); /* the id is taken */
    struct ubpf_safe_region reserved = {0xffffffffu, &cell, sizeof cell, UBPF_SAFE_REGION_POINTER, UBPF_SAFE_REGION_READ};
    CHECK(ubpf_register_safe_region(vm, &reserved) == -1);
    struct ubpf_safe_region bad_perm = {3, &cell, sizeof cell, UBPF_SAFE_REGION_POINTER, 8};
    CHECK(ubpf_register_safe_region(vm, &bad_perm) == -1);
    CHECK(ubpf_register(vm, 1, "legacy", ident) == 0);
    struct insn use_cell[] = {
        I(0x18, 1, 0, 0, (int32_t)(uint32_t)(uintptr_t)&cell), I(0, 0, 0, 0, (int32_t)((uint64_t)(uintptr_t)&cell >> 32)),
        I(0x85, 0, 0, 0, 1), I(0x7a, 0, 0, 0, 99), I(0x79, 0, 0, 0, 0), I(0x95, 0, 0, 0, 0),
    };
    CHECK(ubpf_load(vm, use_cell, sizeof use_cell, &errmsg) == 0);
    CHECK(ubpf_exec(vm, NULL, 0, &r) == -1); /* helper 1 has no safe descriptor */
    struct ubpf_safe_helper_descriptor helper = {1, "return_cell", ident, UBPF_SAFE_HELPER_RESULT_POINTER, 1, sizeof cell};
    CHECK(ubpf_register_safe_helper(vm, &helper) == 0);
    CHECK(ubpf_exec(vm, NULL, 0, &r) == 0 && r == 99 && cell == 99);
    struct ubpf_safe_helper_descriptor reserved_helper = {7, "x", ident, UBPF_SAFE_HELPER_RESULT_POINTER, 0xfffffffeu, 8};
    CHECK(ubpf_register_safe_helper(vm, &reserved_helper) == -1);
    CHECK(ubpf_compile(vm, &errmsg) == NULL && strstr(errmsg, "interpreter-only") != NULL); /* as uBPF */
    free(errmsg);
    errmsg = NULL;
    CHECK(ubpf_set_execution_profile(vm, UBPF_EXECUTION_PROFILE_LEGACY) == -1); /* fixed once loaded */
    /* A handle from a helper cannot be dereferenced, even where a pointer region lies. */
    struct ubpf_safe_region handle_region = {2, &cell, sizeof cell, UBPF_SAFE_REGION_HANDLE, UBPF_SAFE_REGION_READ};
    CHECK(ubpf_register_safe_region(vm, &handle_region) == 0);
    struct ubpf_safe_helper_descriptor handle_helper = {2, "cell_handle", ident, UBPF_SAFE_HELPER_RESULT_HANDLE, 2, sizeof cell};
    CHECK(ubpf_register_safe_helper(vm, &handle_helper) == 0);
    ubpf_unload_code(vm);
    struct insn use_handle[] = {
        I(0x18, 1, 0, 0, (int32_t)(uint32_t)(uintptr_t)&cell), I(0, 0, 0, 0, (int32_t)((uint64_t)(uintptr_t)&cell >> 32)),
        I(0x85, 0, 0, 0, 2), I(0x79, 0, 0, 0, 0), I(0x95, 0, 0, 0, 0),
    };
    CHECK(ubpf_load(vm, use_handle, sizeof use_handle, &errmsg) == 0);
    error_calls = 0;
    CHECK(ubpf_exec(vm, NULL, 0, &r) == -1 && error_calls == 1 && strstr(last_error, "handle") != NULL);
    ubpf_destroy(vm);
    /* Provenance: pointer + pointer and dereferences of numbers fail; spilled pointers survive. */
    {
        struct { struct insn code[7]; size_t n; int ok; uint64_t result; } cases[] = {
            {{I(0xbf, 1, 10, 0, 0), I(0x07, 1, 0, 0, -8), I(0xbf, 2, 10, 0, 0), I(0x0f, 1, 2, 0, 0), I(0x95, 0, 0, 0, 0)}, 5, 0, 0},
            {{I(0xbf, 1, 10, 0, 0), I(0x04, 1, 0, 0, 0), I(0x79, 0, 1, 0, 0), I(0x95, 0, 0, 0, 0)}, 4, 0, 0},
            {{I(0xbf, 1, 10, 0, 0), I(0x07, 1, 0, 0, -16), I(0x7b, 10, 1, -8, 0), I(0x79, 2, 10, -8, 0),
              I(0xb7, 3, 0, 0, 42), I(0x7b, 2, 3, 0, 0), I(0x79, 0, 10, -16, 0)}, 7, 1, 42},
        };
        for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
            struct insn code[8];
            memcpy(code, cases[k].code, cases[k].n * sizeof(struct insn));
            struct insn ex = I(0x95, 0, 0, 0, 0);
            size_t n = cases[k].n;
            if (code[n - 1].op != 0x95) code[n++] = ex;
            vm = ubpf_create();
            ubpf_set_error_print(vm, capture_error);
            CHECK(ubpf_set_execution_profile(vm, UBPF_EXECUTION_PROFILE_SAFE) == 0);
            CHECK(ubpf_load(vm, code, (uint32_t)(n * sizeof(struct insn)), &errmsg) == 0);
            error_calls = 0;
            int rc = ubpf_exec(vm, NULL, 0, &r);
            if (cases[k].ok) CHECK(rc == 0 && r == cases[k].result);
            else CHECK(rc == -1 && error_calls == 1 && strstr(last_error, "pointer provenance") != NULL);
            ubpf_destroy(vm);
        }
    }

    /* ELF objects, with copies of global data or the embedder's relocation. */
    size_t len = 0;
    uint8_t *elf = read_file("counters.o", &len);
    CHECK(elf != NULL);
    vm = ubpf_create();
    CHECK(ubpf_load_elf(vm, elf, len, &errmsg) == 0);
    CHECK(ubpf_exec(vm, mem, 3, &r) == 0 && r == 101u * 1000000 + 3);
    CHECK(ubpf_load_elf(vm, elf, len, &errmsg) == -1); /* already loaded */
    free(errmsg);
    errmsg = NULL;
    ubpf_unload_code(vm);
    CHECK(ubpf_load_elf_ex(vm, elf, len, "nope", &errmsg) == -1 && strstr(errmsg, "nope") != NULL);
    free(errmsg);
    errmsg = NULL;
    CHECK(ubpf_register_data_relocation(vm, &relocated_value, relocate) == 0);
    CHECK(ubpf_load_elf_ex(vm, elf, len, "count", &errmsg) == 0);
    CHECK(ubpf_toggle_bounds_check(vm, false) == true); /* the relocation points at relocated_value, not a region */
    CHECK(ubpf_exec(vm, mem, 1, &r) == 0);
    CHECK(relocated_value == 0x1122334455667788ull + 2); /* runs and bytes_seen both resolved to it */
    CHECK(ubpf_load_elf(vm, (const uint8_t *)"nonsense", 8, &errmsg) == -1);
    free(errmsg);
    ubpf_destroy(vm);
    free(elf);

    /* uBPF's length limit stays its own (the engine takes up to RBPF_MAX_INSTRUCTIONS): fewer than
     * UBPF_MAX_INSTS slots, refused with uBPF's words at that length. */
    struct insn *longest = calloc(UBPF_MAX_INSTS, sizeof *longest);
    CHECK(longest != NULL);
    for (int i = 0; i < UBPF_MAX_INSTS; i++) longest[i] = (struct insn)I(0x07, 0, 0, 0, 1); /* add r0, 1 */
    longest[UBPF_MAX_INSTS - 1] = (struct insn)I(0x95, 0, 0, 0, 0);
    vm = ubpf_create();
    CHECK(ubpf_load(vm, longest, UBPF_MAX_INSTS * sizeof *longest, &errmsg) == -1);
    CHECK(errmsg != NULL && strcmp(errmsg, "too many instructions (max 65536)") == 0);
    free(errmsg);
    errmsg = NULL;
    longest[UBPF_MAX_INSTS - 2] = (struct insn)I(0x95, 0, 0, 0, 0);
    CHECK(ubpf_load(vm, longest, (UBPF_MAX_INSTS - 1) * sizeof *longest, &errmsg) == 0);
    CHECK(ubpf_exec(vm, NULL, 0, &r) == 0 && r == UBPF_MAX_INSTS - 2);
    ubpf_destroy(vm);
    free(longest);

    /* Bad handles are ignored or refused, never a crash. */
    ubpf_destroy(NULL);
    ubpf_destroy((struct ubpf_vm *)0x1234);
    CHECK(ubpf_exec((struct ubpf_vm *)0x1234, NULL, 0, &r) == -1);
    CHECK(ubpf_register((struct ubpf_vm *)0x1234, 1, "x", add5) == -1);
    CHECK(ubpf_load(NULL, call_add5, sizeof call_add5, &errmsg) == -1);
    free(errmsg);

    printf("ubpf: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
