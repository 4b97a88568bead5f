/*
 * ubpf.h - the uBPF API, implemented by librbpf.
 *
 * C code written against uBPF compiles against this header and links against librbpf
 * (-lrbpf) unchanged. The functions keep uBPF's names, types and conventions: 0 for success and
 * -1 for failure, error strings returned through `char **errmsg` that the caller frees with
 * free(), runtime errors reported through the error print function (fprintf to stderr by
 * default). Where librbpf behaves differently it says so below; docs/ubpf.md has the full list.
 */
#ifndef UBPF_H
#define UBPF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Largest program, in instructions. */
#define UBPF_MAX_INSTS 65536
/** Stack bytes of each call frame. */
#define UBPF_STACK_SIZE 512
/** Deepest nesting of frames (the entry frame plus seven local calls). */
#define UBPF_MAX_CALL_DEPTH 8
/** Number of helper slots for ubpf_register (indices 0 to 63). */
#define UBPF_MAX_EXT_FUNCS 64
/** Total stack of one execution. */
#define UBPF_EBPF_STACK_SIZE (UBPF_STACK_SIZE * UBPF_MAX_CALL_DEPTH)

/** A VM. */
struct ubpf_vm;

/** A compiled program: call it with the input memory; it returns r0 (UINT64_MAX after an error,
 *  which is also reported through the error print function). */
typedef uint64_t (*ubpf_jit_fn)(void *mem, size_t mem_len);

/** A compiled program that takes the caller's stack (see ubpf_compile_ex). */
typedef uint64_t (*ubpf_jit_ex_fn)(void *mem, size_t mem_len, uint8_t *stack, size_t stack_len);

/** What ubpf_compile_ex / ubpf_translate_ex produce. */
enum JitMode { BasicJitMode, ExtendedJitMode };

/** A helper: arguments r1-r5, result in r0. */
typedef uint64_t (*external_function_t)(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t);

/** One function for every helper call: the five arguments, the helper index, and the cookie (the
 *  memory pointer given to ubpf_exec). */
typedef uint64_t (*external_function_dispatcher_t)(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t,
                                                   unsigned int index, void *cookie);

/** Tells at load time whether the dispatcher serves helper `index`. */
typedef bool (*external_function_validate_t)(unsigned int index, const struct ubpf_vm *vm);

/** Called for each global symbol an ELF object's lddw refers to; returns the value to load. */
typedef uint64_t (*ubpf_data_relocation)(void *user_context, const uint8_t *data, uint64_t data_size,
                                         const char *symbol_name, uint64_t symbol_offset, uint64_t symbol_size);

/** Allows an access of `size` bytes at `addr` that lies outside the input and the stack. */
typedef bool (*ubpf_bounds_check)(void *context, uint64_t addr, uint64_t size);

/** Stack bytes the local function starting at `pc` needs (a multiple of 16). */
typedef int (*stack_usage_calculator_t)(const struct ubpf_vm *vm, uint16_t pc, void *cookie);

/** Called before each interpreted instruction. */
typedef void (*ubpf_debug_fn)(void *context, int program_counter, const uint64_t registers[16],
                              const uint8_t *stack_start, size_t stack_length, uint64_t register_mask,
                              const uint8_t *stack_mask);

/** Execution profiles (ubpf_set_execution_profile). */
typedef enum ubpf_execution_profile {
    UBPF_EXECUTION_PROFILE_DEFAULT = 0,
    UBPF_EXECUTION_PROFILE_SAFE = 1
} ubpf_execution_profile;

/** Kinds and permissions of safe regions. */
typedef enum ubpf_safe_region_kind { UBPF_SAFE_REGION_POINTER = 0, UBPF_SAFE_REGION_HANDLE = 1 } ubpf_safe_region_kind;
#define UBPF_SAFE_REGION_READ 1u
#define UBPF_SAFE_REGION_WRITE 2u

/** A block of host memory a program may touch (ubpf_register_safe_region). */
typedef struct ubpf_safe_region {
    uint32_t id;
    void *base;
    size_t size;
    ubpf_safe_region_kind kind;
    uint32_t permissions;
} ubpf_safe_region;

/** What a safe helper returns. */
typedef enum ubpf_safe_helper_result_kind {
    UBPF_SAFE_HELPER_RESULT_SCALAR = 0,
    UBPF_SAFE_HELPER_RESULT_POINTER = 1,
    UBPF_SAFE_HELPER_RESULT_HANDLE = 2
} ubpf_safe_helper_result_kind;

/** A helper registered with a description of its result (ubpf_register_safe_helper). */
typedef struct ubpf_safe_helper_descriptor {
    unsigned int index;
    const char *name;
    external_function_t fn;
    ubpf_safe_helper_result_kind result_kind;
    uint32_t region_id;
    size_t region_size;
} ubpf_safe_helper_descriptor;

/** Creates a VM; NULL if out of memory. */
struct ubpf_vm *ubpf_create(void);

/** Destroys a VM (NULL is ignored). */
void ubpf_destroy(struct ubpf_vm *vm);

/** Turns memory checks on or off (on by default); returns the previous setting. Off lets a
 *  program read and write any memory of the process. */
bool ubpf_toggle_bounds_check(struct ubpf_vm *vm, bool enable);

/** Turns constant blinding in the JIT on or off (off by default); returns the previous setting. */
bool ubpf_toggle_constant_blinding(struct ubpf_vm *vm, bool enable);

/** Accepted and remembered, but librbpf does not track uninitialised registers and stack:
 *  a documented no-op. Returns the previous setting. */
bool ubpf_toggle_undefined_behavior_check(struct ubpf_vm *vm, bool enable);

/** Accepted and remembered (on by default); the loaded program is never writable by programs in
 *  librbpf either way. Returns the previous setting. */
bool ubpf_toggle_readonly_bytecode(struct ubpf_vm *vm, bool enable);

/** Sets the function that reports runtime errors (called as error_printf(stderr, "%s\n", msg)). */
void ubpf_set_error_print(struct ubpf_vm *vm, int (*error_printf)(FILE *stream, const char *format, ...));

/** Registers helper `index` (below UBPF_MAX_EXT_FUNCS) under `name`; 0 or -1. */
int ubpf_register(struct ubpf_vm *vm, unsigned int index, const char *name, external_function_t fn);

/** Routes every helper call through `dispatcher` (taking precedence over ubpf_register);
 *  `validator`, when not NULL, is asked at load time about each helper index the program calls. */
int ubpf_register_external_dispatcher(struct ubpf_vm *vm, external_function_dispatcher_t dispatcher,
                                      external_function_validate_t validator);

/** Registers a helper with a description of its result (see docs/ubpf.md for how librbpf maps it). */
int ubpf_register_safe_helper(struct ubpf_vm *vm, const ubpf_safe_helper_descriptor *helper);

/** Adds a block of memory the program may touch with the given permissions. */
int ubpf_register_safe_region(struct ubpf_vm *vm, const ubpf_safe_region *region);

/** Selects an execution profile: SAFE requires every helper to be registered with
 *  ubpf_register_safe_helper. */
int ubpf_set_execution_profile(struct ubpf_vm *vm, ubpf_execution_profile profile);

/** Sets the callback ELF loading uses for lddw of global symbols (instead of copying sections). */
int ubpf_register_data_relocation(struct ubpf_vm *vm, void *user_context, ubpf_data_relocation relocation);

/** Adds a callback that may allow accesses outside the input and the stack; -1 if one is set. */
int ubpf_register_data_bounds_check(struct ubpf_vm *vm, void *user_context, ubpf_bounds_check bounds_check);

/** Accepted and remembered; librbpf gives every frame 512 bytes. 0. */
int ubpf_register_stack_usage_calculator(struct ubpf_vm *vm, stack_usage_calculator_t calculator, void *cookie);

/** Makes helper `index` the unwind helper: when it returns 0 the program ends at once. */
int ubpf_set_unwind_function_index(struct ubpf_vm *vm, unsigned int index);

/** Verifies and loads a program (code_len bytes); -1 with *errmsg (free it) if it is rejected or
 *  a program is already loaded (call ubpf_unload_code first). */
int ubpf_load(struct ubpf_vm *vm, const void *code, uint32_t code_len, char **errmsg);

/** Unloads the program and its compiled code; helpers stay registered. */
void ubpf_unload_code(struct ubpf_vm *vm);

/** Loads a program from an ELF object (the first code section other than .text, else .text). */
int ubpf_load_elf(struct ubpf_vm *vm, const void *elf, size_t elf_len, char **errmsg);

/** Loads a program from an ELF object, from the section or function `main_section_name`. */
int ubpf_load_elf_ex(struct ubpf_vm *vm, const void *elf, size_t elf_len, const char *main_section_name, char **errmsg);

/** Interprets the program: r1 = mem, r2 = mem_len. 0 with *bpf_return_value = r0, or -1 after
 *  reporting the error through the error print function. */
int ubpf_exec(const struct ubpf_vm *vm, void *mem, size_t mem_len, uint64_t *bpf_return_value);

/** As ubpf_exec, on the caller's stack (at least 512 bytes): r10 starts at its end, rounded down
 *  to 16 bytes; each frame is zeroed when entered, as far as the program can read it; a local call
 *  whose frame would not fit fails. */
int ubpf_exec_ex(const struct ubpf_vm *vm, void *mem, size_t mem_len, uint64_t *bpf_return_value,
                 uint8_t *stack_start, size_t stack_length);

/** Compiles the program to x86-64 code; NULL with *errmsg on failure. The function stays valid
 *  until the VM is destroyed, the program unloaded, or it is compiled again. */
ubpf_jit_fn ubpf_compile(struct ubpf_vm *vm, char **errmsg);

/** As ubpf_compile; ExtendedJitMode returns a ubpf_jit_ex_fn (cast from ubpf_jit_fn) that runs
 *  on the stack it is given, as ubpf_exec_ex does. */
ubpf_jit_fn ubpf_compile_ex(struct ubpf_vm *vm, char **errmsg, enum JitMode mode);

/** Copies the compiled entry point into `buffer` (made executable by the caller); it calls into
 *  this VM, so it works only while the VM lives. NULL with *errmsg if `size` is too small. */
ubpf_jit_fn ubpf_copy_jit(struct ubpf_vm *vm, void *buffer, size_t size, char **errmsg);

/** Writes the generated machine code into `buffer` (at most *size bytes) and its length into
 *  *size. The code expects librbpf's execution context: it is for inspection, not for calling. */
int ubpf_translate(struct ubpf_vm *vm, uint8_t *buffer, size_t *size, char **errmsg);

/** As ubpf_translate (both modes produce the same code). */
int ubpf_translate_ex(struct ubpf_vm *vm, uint8_t *buffer, size_t *size, char **errmsg, enum JitMode mode);

/** Limits the size of the generated code (65536 bytes by default). */
int ubpf_set_jit_code_size(struct ubpf_vm *vm, size_t code_size);

/** Stops runs after `limit` instructions (0: no limit); the previous limit goes to *previous_limit. */
int ubpf_set_instruction_limit(struct ubpf_vm *vm, uint32_t limit, uint32_t *previous_limit);

/** Register access, as in a release build of uBPF: not available. Prints a warning; returns -1. */
int ubpf_set_registers(struct ubpf_vm *vm, uint64_t *regs);

/** Register access, as in a release build of uBPF: not available. Prints a warning; returns NULL. */
uint64_t *ubpf_get_registers(const struct ubpf_vm *vm);

/** Accepted before a program is loaded (-1 after); librbpf does not keep the program XOR-encoded. */
int ubpf_set_pointer_secret(struct ubpf_vm *vm, uint64_t secret);

/** Calls `debug_function` before each interpreted instruction; -1 when replacing one with another
 *  or clearing an unset one (pass NULL to clear). */
int ubpf_register_debug_fn(struct ubpf_vm *vm, void *context, ubpf_debug_fn debug_function);

#ifdef __cplusplus
}
#endif

#endif /* UBPF_H */
