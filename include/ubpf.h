/*
 * ubpf.h - the uBPF API, implemented by librbpf.
 *
 * Every name, value, type and prototype here is uBPF's (iovisor/ubpf, vm/inc/ubpf.h), so code
 * written against uBPF compiles against this header and links against librbpf (-lrbpf, or -lubpf
 * through the installed alias) unchanged, and a binary compiled against uBPF's own header runs on
 * librbpf: the enum values, structure layouts and calling conventions are the same.
 * tests/ubpf-suite/compare_headers.py checks that mechanically against uBPF's header.
 *
 * Conventions: functions return 0 for success and -1 for failure; error strings come back through
 * `char **errmsg` and the caller frees them with free(); runtime errors go to the error print
 * function (fprintf to stderr by default). Where librbpf behaves differently from uBPF the comment
 * says so; docs/ubpf.md has the whole list.
 */
#ifndef UBPF_H
#define UBPF_H

#ifdef __cplusplus
extern "C" {
#endif

#include "ubpf_config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The limits below are the values librbpf was built with. uBPF lets a build override them; a
 * program that defines different values before including this header does not change librbpf. */

/** A program must have fewer instructions than this. */
#if !defined(UBPF_MAX_INSTS)
#define UBPF_MAX_INSTS 65536
#endif

/** Deepest nesting of local calls (bpf-to-bpf calls) below the entry function. */
#if !defined(UBPF_MAX_CALL_DEPTH)
#define UBPF_MAX_CALL_DEPTH 8
#endif

/** The stack ubpf_exec and ubpf_compile's functions give a program. */
#if !defined(UBPF_EBPF_STACK_SIZE)
#define UBPF_EBPF_STACK_SIZE (UBPF_MAX_CALL_DEPTH * 512)
#endif

/** Stack a local function gets when the stack usage calculator gives no size for it. */
#if !defined(UBPF_EBPF_LOCAL_FUNCTION_STACK_SIZE)
#define UBPF_EBPF_LOCAL_FUNCTION_STACK_SIZE 256
#endif

/** Helper slots for ubpf_register (indices 0 to UBPF_MAX_EXT_FUNCS - 1). */
#if !defined(UBPF_MAX_EXT_FUNCS)
#define UBPF_MAX_EXT_FUNCS 64
#endif

/** Bytes a local call keeps for the caller's r6-r9 and its return address. */
#define UBPF_EBPF_NONVOLATILE_SIZE (sizeof(uint64_t) * 5)

/** A VM. In librbpf the pointer is a checked handle: a freed or forged one gives an error. */
struct ubpf_vm;

/** A compiled program: r1 = mem, r2 = mem_len; returns r0 (UINT64_MAX after an error, which is
 *  also reported through the error print function). */
typedef uint64_t (*ubpf_jit_fn)(void* mem, size_t mem_len);

/** A compiled program that runs on the stack the caller gives it. */
typedef uint64_t (*ubpf_jit_ex_fn)(void* mem, size_t mem_len, uint8_t* stack, size_t stack_len);

/** Which kind of function ubpf_compile_ex and ubpf_translate_ex produce: ExtendedJitMode gives a
 *  ubpf_jit_ex_fn, BasicJitMode a ubpf_jit_fn (cast from the ubpf_jit_ex_fn returned). */
enum JitMode
{
    ExtendedJitMode,
    BasicJitMode
};

/** Creates a VM; NULL if out of memory. */
struct ubpf_vm*
ubpf_create(void);

/** Destroys a VM (NULL and already destroyed VMs are ignored). */
void
ubpf_destroy(struct ubpf_vm* vm);

/** Turns memory checks on or off (on by default); returns the previous setting. Off lets a
 *  program read and write any memory of the process. */
bool
ubpf_toggle_bounds_check(struct ubpf_vm* vm, bool enable);

/** Turns constant blinding in the JIT on or off (off by default); returns the previous setting. */
bool
ubpf_toggle_constant_blinding(struct ubpf_vm* vm, bool enable);

/** Execution profiles. */
enum ubpf_execution_profile
{
    /** Interpreter and JIT with uBPF's classic rules. */
    UBPF_EXECUTION_PROFILE_LEGACY = 0,
    /** Interpreter only; helpers must describe their results (ubpf_register_safe_helper). */
    UBPF_EXECUTION_PROFILE_SAFE = 1,
};

/** Selects the execution profile; only before a program is loaded, compiled or run (-1 after). */
int
ubpf_set_execution_profile(struct ubpf_vm* vm, enum ubpf_execution_profile profile);

/** Sets the function that reports runtime errors (called as error_printf(stderr, "%s\n", msg)). */
void
ubpf_set_error_print(struct ubpf_vm* vm, int (*error_printf)(FILE* stream, const char* format, ...));

/** A helper: arguments r1-r5, result in r0. Helpers also get a sixth argument, the `mem`
 *  pointer of the run (ubpf_exec's, or the compiled function's), which they may declare. */
typedef uint64_t (*external_function_t)(uint64_t p0, uint64_t p1, uint64_t p2, uint64_t p3, uint64_t p4);

/** What a region of the safe profile is. */
enum ubpf_safe_region_kind
{
    /** Memory the program may dereference. */
    UBPF_SAFE_REGION_POINTER = 0,
    /** A value helpers accept but the program may not dereference. */
    UBPF_SAFE_REGION_HANDLE = 1,
};

/** What a program may do with a region (bits). */
enum ubpf_safe_region_permissions
{
    UBPF_SAFE_REGION_READ = 1,
    UBPF_SAFE_REGION_WRITE = 2,
    UBPF_SAFE_REGION_ATOMIC = 4,
};

/** A block of host memory (or a handle) made known to the VM (ubpf_register_safe_region). */
struct ubpf_safe_region
{
    uint32_t id;
    void* base;
    uint64_t size;
    enum ubpf_safe_region_kind kind;
    uint32_t permissions;
};

/** What a safe helper returns. */
enum ubpf_safe_helper_result_kind
{
    UBPF_SAFE_HELPER_RESULT_SCALAR = 0,
    UBPF_SAFE_HELPER_RESULT_POINTER = 1,
    UBPF_SAFE_HELPER_RESULT_HANDLE = 2,
};

/** A helper with a description of its result (ubpf_register_safe_helper): a pointer result points
 *  into region `region_id` and `region_size` bytes of it may be used. */
struct ubpf_safe_helper_descriptor
{
    unsigned int index;
    const char* name;
    external_function_t fn;
    enum ubpf_safe_helper_result_kind result_kind;
    uint32_t region_id;
    uint64_t region_size;
};

/** Casts any function to external_function_t (for helpers with fewer arguments, or that take the
 *  sixth, implicit one). */
external_function_t
as_external_function_t(void* f);

/** Registers helper `index` (below UBPF_MAX_EXT_FUNCS) under `name`; 0 or -1. Programs already
 *  compiled call the new helper from then on. */
int
ubpf_register(struct ubpf_vm* vm, unsigned int index, const char* name, external_function_t fn);

/** Registers a helper with a description of its result, for the safe profile (and as an ordinary
 *  helper for the legacy one). */
int
ubpf_register_safe_helper(struct ubpf_vm* vm, const struct ubpf_safe_helper_descriptor* descriptor);

/** One function for every helper call: the five arguments, the helper index, and the cookie (the
 *  `mem` pointer of the run). */
typedef uint64_t (*external_function_dispatcher_t)(
    uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, unsigned int index, void* cookie);

/** Tells at load time whether the dispatcher serves helper `index`. */
typedef bool (*external_function_validate_t)(unsigned int index, const struct ubpf_vm* vm);

/** Routes helper calls through `dispatcher` (taking precedence over ubpf_register; NULL goes back
 *  to the registered helpers); `validater`, when not NULL, is asked at load time about each helper
 *  index the program calls. Programs already compiled use the new dispatcher from then on. */
int
ubpf_register_external_dispatcher(
    struct ubpf_vm* vm, external_function_dispatcher_t dispatcher, external_function_validate_t validater);

/** Returns the stack bytes the local function starting at instruction `pc` needs (a multiple of
 *  16; 0 means UBPF_EBPF_LOCAL_FUNCTION_STACK_SIZE). */
typedef int (*stack_usage_calculator_t)(const struct ubpf_vm* vm, uint16_t pc, void* cookie);

/** Sets the calculator asked at load time for the stack size of each local function. */
int
ubpf_register_stack_usage_calculator(struct ubpf_vm* vm, stack_usage_calculator_t calculator, void* cookie);

/** Verifies and loads a program of `code_len` bytes; -1 with *errmsg (free it) when it is refused
 *  or a program is already loaded (call ubpf_unload_code first). */
int
ubpf_load(struct ubpf_vm* vm, const void* code, uint32_t code_len, char** errmsg);

/** Unloads the program and its compiled code; helpers stay registered. */
void
ubpf_unload_code(struct ubpf_vm* vm);

#if defined(UBPF_HAS_ELF_H)
/** Loads a program from an ELF object (librbpf's loader, docs/elf.md). */
int
ubpf_load_elf(struct ubpf_vm* vm, const void* elf, size_t elf_len, char** errmsg);

/** Loads a program from an ELF object, starting at the section or function `main_section_name`. */
int
ubpf_load_elf_ex(struct ubpf_vm* vm, const void* elf, size_t elf_len, const char* main_section_name, char** errmsg);
#endif

/** Interprets the program: r1 = mem, r2 = mem_len. 0 with *bpf_return_value = r0, or -1 after
 *  reporting the error through the error print function. */
int
ubpf_exec(const struct ubpf_vm* vm, void* mem, size_t mem_len, uint64_t* bpf_return_value);

/** As ubpf_exec, on the caller's stack: r10 starts at its end; each local call takes the stack
 *  size of the function it calls (see ubpf_register_stack_usage_calculator). */
int
ubpf_exec_ex(
    const struct ubpf_vm* vm,
    void* mem,
    size_t mem_len,
    uint64_t* bpf_return_value,
    uint8_t* stack,
    size_t stack_len);

/** Compiles the program to x86-64 code (not under the safe profile); NULL with *errmsg on failure.
 *  The function stays valid until the VM is destroyed or the program unloaded. */
ubpf_jit_fn
ubpf_compile(struct ubpf_vm* vm, char** errmsg);

/** As ubpf_compile, for the given mode (ExtendedJitMode: a function taking its stack). */
ubpf_jit_ex_fn
ubpf_compile_ex(struct ubpf_vm* vm, char** errmsg, enum JitMode jit_mode);

/** Copies the compiled function into `buffer` (which the caller then makes executable). In
 *  librbpf the copy is a small entry into this VM's compiled code, so it works while the VM lives;
 *  it needs no more bytes than the code itself. NULL with *errmsg if `size` is too small. */
ubpf_jit_fn
ubpf_copy_jit(struct ubpf_vm* vm, void* buffer, size_t size, char** errmsg);

/** Writes the generated machine code into `buffer` (at most *size bytes) and its length into
 *  *size. The code expects librbpf's execution context: it is for inspection, not for calling. */
int
ubpf_translate(struct ubpf_vm* vm, uint8_t* buffer, size_t* size, char** errmsg);

/** As ubpf_translate, for the given mode. */
int
ubpf_translate_ex(struct ubpf_vm* vm, uint8_t* buffer, size_t* size, char** errmsg, enum JitMode jit_mode);

/** Makes helper `idx` the unwind helper: when it returns 0 the program ends at once. */
int
ubpf_set_unwind_function_index(struct ubpf_vm* vm, unsigned int idx);

/** Register access, as in a release build of uBPF: not available; prints a warning. */
void
ubpf_set_registers(struct ubpf_vm* vm, uint64_t* regs);

/** Register access, as in a release build of uBPF: not available; prints a warning, returns NULL. */
uint64_t*
ubpf_get_registers(const struct ubpf_vm* vm);

/** Accepted before a program is loaded (-1 after); librbpf does not keep the program XOR-encoded. */
int
ubpf_set_pointer_secret(struct ubpf_vm* vm, uint64_t secret);

/** Called for each global symbol an ELF object's lddw refers to; returns the value to load. */
typedef uint64_t (*ubpf_data_relocation)(
    void* user_context,
    const uint8_t* data,
    uint64_t data_size,
    const char* symbol_name,
    uint64_t symbol_offset,
    uint64_t symbol_size);

/** Sets the callback ELF loading uses for lddw of global symbols (instead of copying sections). */
int
ubpf_register_data_relocation(struct ubpf_vm* vm, void* user_context, ubpf_data_relocation relocation);

/** Allows an access of `size` bytes at `addr` that lies outside the input and the stack. */
typedef bool (*ubpf_bounds_check)(void* context, uint64_t addr, uint64_t size);

/** Adds a callback that may allow accesses outside the input and the stack; -1 if one is set. */
int
ubpf_register_data_bounds_check(struct ubpf_vm* vm, void* user_context, ubpf_bounds_check bounds_check);

/** Adds a block of memory (or a handle) the program may use with the given permissions. */
int
ubpf_register_safe_region(struct ubpf_vm* vm, const struct ubpf_safe_region* region);

/** Limits the size of the generated code (65536 bytes by default). */
int
ubpf_set_jit_code_size(struct ubpf_vm* vm, size_t code_size);

/** Stops runs after `limit` instructions (0: no limit); the previous limit goes to *previous_limit.
 *  In librbpf the compiled code honours it too when compiled after the limit is set. */
int
ubpf_set_instruction_limit(struct ubpf_vm* vm, uint32_t limit, uint32_t* previous_limit);

/** Accepted and remembered; librbpf does not track uninitialised registers and stack (the stack
 *  starts zeroed). Returns the previous setting. */
bool
ubpf_toggle_undefined_behavior_check(struct ubpf_vm* vm, bool enable);

/** Accepted and remembered (on by default); the loaded program is never writable by programs in
 *  librbpf either way. Returns the previous setting. */
bool
ubpf_toggle_readonly_bytecode(struct ubpf_vm* vm, bool enable);

/** Called before each interpreted instruction with r0-r10 (16 slots), the current frame and
 *  register mask 0x7ff (librbpf does not track which registers were written). */
typedef void (*ubpf_debug_fn)(
    void* context,
    int program_counter,
    const uint64_t registers[16],
    const uint8_t* stack_start,
    size_t stack_length,
    uint64_t register_mask,
    const uint8_t* stack_mask_start);

/** Calls `debug_function` before each interpreted instruction; -1 when replacing one with another
 *  or clearing an unset one (pass NULL to clear). */
int
ubpf_register_debug_fn(struct ubpf_vm* vm, void* context, ubpf_debug_fn debug_function);

#ifdef __cplusplus
}
#endif

#endif /* UBPF_H */
