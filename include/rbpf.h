/*
 * rbpf.h - C interface of librbpf, a userspace eBPF virtual machine.
 *
 * One self-contained C99 header, usable from C++. Link with -lrbpf (pkg-config rbpf, or CMake
 * find_package(rbpf) and the target rbpf::rbpf).
 *
 * Conventions
 *  - Every function returning int returns RBPF_OK (0) or a negative RBPF_E_* code; after a
 *    failure, rbpf_last_error() gives a message for the calling thread.
 *  - VM handles are opaque and checked: a NULL, destroyed or forged handle gives
 *    RBPF_E_INVALID_HANDLE, never a crash.
 *  - Input a VM kind does not use must be NULL/0 (a no-data VM takes no memory; only a
 *    metadata-buffer VM takes mbuff): a non-zero length for it is RBPF_E_INVALID_ARGUMENT, as is a
 *    NULL pointer with a non-zero length.
 *  - Buffers returned through out-parameters (rbpf_assemble, rbpf_disassemble,
 *    rbpf_vm_get_program) are owned by the caller and freed with rbpf_free().
 *
 * Threads
 *  - rbpf_vm_execute (and rbpf_vm_execute_jit) may run the same VM on several threads at once:
 *    registers, stack and the fixed metadata buffer live on each calling thread's stack.
 *  - Calls that change a VM (set_program, register_helper, set_verifier, set_instruction_limit,
 *    add/clear_memory_region, set_unwind_helper, jit_compile) must not race with executions or
 *    with each other on the same VM. Different VMs are independent. (Compiled code that is
 *    replaced or destroyed is freed only once no thread still runs it.)
 *  - rbpf_vm_destroy while another thread executes the same VM is memory-safe (the running
 *    execution finishes), but the handle is invalid for every later call.
 *  - rbpf_last_error() is per thread.
 */
#ifndef RBPF_H
#define RBPF_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RBPF_VERSION_MAJOR 0
#define RBPF_VERSION_MINOR 1
#define RBPF_VERSION_PATCH 0
#define RBPF_VERSION_STRING "0.1.0"

#if defined(_WIN32)
#define RBPF_API __declspec(dllimport)
#else
#define RBPF_API
#endif

/** Error codes: 0 is success, every failure is negative. */
typedef enum rbpf_error {
    RBPF_OK = 0,
    RBPF_E_INVALID_ARGUMENT = -1,    /**< NULL pointer, bad length, unknown kind, bad offsets */
    RBPF_E_INVALID_HANDLE = -2,      /**< NULL, destroyed or forged VM handle */
    RBPF_E_INVALID_PROGRAM = -3,     /**< the verifier rejected the program, or it is malformed */
    RBPF_E_OUT_OF_BOUNDS = -4,       /**< a load or store outside the memory the program may touch */
    RBPF_E_UNKNOWN_HELPER = -5,      /**< call to a helper id with no registered function */
    RBPF_E_INSTRUCTION_LIMIT = -6,   /**< the instruction limit was reached */
    RBPF_E_CALL_DEPTH_EXCEEDED = -7, /**< local calls nested deeper than 8 frames */
    RBPF_E_ASSEMBLY_ERROR = -8,      /**< assembly text could not be parsed (message has line and column) */
    RBPF_E_NO_PROGRAM = -9,          /**< no program loaded, or not JIT-compiled */
    RBPF_E_UNSUPPORTED = -10,        /**< not available on this platform or in this build */
    RBPF_E_HELPER_FAILED = -11,      /**< a helper failed */
    RBPF_E_ILLEGAL_INSTRUCTION = -12,/**< an instruction that cannot execute (verifier disabled) */
    RBPF_E_ELF_ERROR = -13,          /**< an ELF object could not be loaded */
    RBPF_E_OUT_OF_MEMORY = -14,      /**< allocation failed */
    RBPF_E_INTERRUPTED = -15,        /**< the run was stopped by rbpf_vm_interrupt or a signal */
    RBPF_E_NOT_FOUND = -16,          /**< a map has no entry for the key, or an iteration reached its end */
    RBPF_E_KEY_EXISTS = -17,         /**< a map update with RBPF_NOEXIST found the key present */
    RBPF_E_MAP_FULL = -18,           /**< a map is full, or an array index is not below max_entries */
    RBPF_E_INTERNAL = -99            /**< unexpected internal failure; please report it */
} rbpf_error;

/** Opaque VM handle. */
typedef struct rbpf_vm rbpf_vm;

/** A helper: arguments r1-r5, result in r0. */
typedef uint64_t (*rbpf_helper_fn)(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t);

/**
 * A custom verifier: return 0 to accept the program, anything else to reject it (the load then
 * fails with RBPF_E_INVALID_PROGRAM). user_data is the pointer given to rbpf_vm_set_verifier.
 */
typedef int (*rbpf_verifier_fn)(const uint8_t *prog, size_t prog_len, void *user_data);

/**
 * Called by a custom verifier before it returns non-zero: `reason` becomes part of the error
 * ("the custom verifier rejected the program: REASON"), as rbpf's verifier functions give theirs.
 */
RBPF_API void rbpf_verifier_reject(const char *reason);

/** How a VM hands its input to the program. */
typedef enum rbpf_vm_kind {
    RBPF_VM_MBUFF = 0,       /**< r1 = metadata buffer (or the input when there is none), r2 = its length */
    RBPF_VM_FIXED_MBUFF = 1, /**< r1 = the VM's own buffer holding the input's start and end addresses */
    RBPF_VM_RAW = 2,         /**< r1 = input memory, r2 = its length */
    RBPF_VM_NO_DATA = 3      /**< no input */
} rbpf_vm_kind;

/** Kernel ids of the standard helpers, and ids of our own for rbpf's extra ones. */
#define RBPF_HELPER_KTIME_GETNS 5u
#define RBPF_HELPER_TRACE_PRINTK 6u
#define RBPF_HELPER_GATHER_BYTES 0x70000001u
#define RBPF_HELPER_MEMFROB 0x70000002u
#define RBPF_HELPER_SQRTI 0x70000003u
#define RBPF_HELPER_STRCMP 0x70000004u
#define RBPF_HELPER_RAND 0x70000005u

/* ---- Creating and destroying VMs ---------------------------------------------------------- */

/** The longest program a VM takes, in 8-byte slots (rbpf's PROG_MAX_INSNS, the Linux kernel's
 *  limit for programs loaded with CAP_BPF); a longer one is refused with RBPF_E_INVALID_PROGRAM.
 *  The uBPF API (ubpf.h) keeps uBPF's UBPF_MAX_INSTS. */
#define RBPF_MAX_INSTRUCTIONS 1000000u

/**
 * Creates a VM of `kind` (not RBPF_VM_FIXED_MBUFF: see rbpf_vm_create_fixed_mbuff) and loads
 * `prog` (prog_len bytes, a multiple of 8) after verifying it. `prog` may be NULL (with
 * prog_len 0) to create a VM without a program. On success *out is the new handle; on failure
 * *out is NULL.
 */
RBPF_API int rbpf_vm_create(rbpf_vm_kind kind, const uint8_t *prog, size_t prog_len, rbpf_vm **out);

/**
 * Creates a fixed-metadata-buffer VM: before each run the VM writes the input's start address at
 * byte `data_offset` and its end address at `data_end_offset` of an internal buffer passed in r1.
 * The offsets must be at most 1 MiB and 8 or more bytes apart.
 */
RBPF_API int rbpf_vm_create_fixed_mbuff(const uint8_t *prog, size_t prog_len, size_t data_offset,
                                        size_t data_end_offset, rbpf_vm **out);

/**
 * Creates a VM of `kind` from an ELF object as `clang -O2 -target bpf -c` writes it (64-bit,
 * little-endian, EM_BPF). `section_or_function` names the program's section (e.g. ".classifier",
 * "xdp", "socket") or function; NULL picks the first executable section other than ".text", else
 * ".text". The code sections it reaches (bpf-to-bpf calls into .text) are linked after it, and no
 * others: another program of the same object is left out, with the helpers it calls. Global data
 * (.rodata, .data, .bss) is copied into regions the program may use (see rbpf_vm_get_data_region).
 * A fixed-mbuff VM gets data offsets 0 and 8: change them with rbpf_vm_set_program_fixed_mbuff.
 * Malformed objects give RBPF_E_ELF_ERROR with a precise message. Calls to undefined functions need helpers registered
 * by name before loading: use rbpf_vm_create with no program, rbpf_vm_register_helper_name, then
 * rbpf_vm_load_elf.
 */
RBPF_API int rbpf_vm_create_from_elf(rbpf_vm_kind kind, const uint8_t *elf, size_t elf_len,
                                     const char *section_or_function, rbpf_vm **out);

/** Loads a program from an ELF object into an existing VM (as rbpf_vm_create_from_elf). */
RBPF_API int rbpf_vm_load_elf(rbpf_vm *vm, const uint8_t *elf, size_t elf_len, const char *section_or_function);

/**
 * Describes global-data region `index` (0, 1, ...) of the last ELF object loaded: its section name
 * (may be NULL; the string is owned by the library), address, length and whether the program may
 * write it (may be NULL). RBPF_E_INVALID_ARGUMENT past the last region, RBPF_E_NO_PROGRAM without
 * an ELF object. The memory lives as long as the VM.
 */
RBPF_API int rbpf_vm_get_data_region(rbpf_vm *vm, size_t index, const char **out_name, void **out_addr,
                                     size_t *out_len, int *out_writable);

/** Destroys a VM. A NULL, destroyed or forged handle is ignored and recorded in rbpf_last_error(). */
RBPF_API void rbpf_vm_destroy(rbpf_vm *vm);

/** Returns 1 if `vm` is a live handle, 0 otherwise. */
RBPF_API int rbpf_vm_is_valid(const rbpf_vm *vm);

/* ---- Programs and verification ------------------------------------------------------------- */

/** Verifies and loads a new program, replacing the current one (which stays if this fails). */
RBPF_API int rbpf_vm_set_program(rbpf_vm *vm, const uint8_t *prog, size_t prog_len);

/** As rbpf_vm_set_program, for a fixed-mbuff VM, with new buffer offsets. */
RBPF_API int rbpf_vm_set_program_fixed_mbuff(rbpf_vm *vm, const uint8_t *prog, size_t prog_len,
                                             size_t data_offset, size_t data_end_offset);

/** Copies the loaded program into a new buffer (*out_prog, freed with rbpf_free) of *out_len bytes. */
RBPF_API int rbpf_vm_get_program(rbpf_vm *vm, uint8_t **out_prog, size_t *out_len);

/**
 * Replaces the verifier with `fn` (NULL restores the default verifier) and re-checks the loaded
 * program at once; if the new verifier rejects it, the previous verifier stays and the error is
 * returned.
 */
RBPF_API int rbpf_vm_set_verifier(rbpf_vm *vm, rbpf_verifier_fn fn, void *user_data);

/**
 * Disables verification of later programs. The engine still refuses, at run time, any
 * instruction that cannot execute (RBPF_E_ILLEGAL_INSTRUCTION); it cannot crash the host.
 */
RBPF_API int rbpf_vm_disable_verifier(rbpf_vm *vm);

/** Runs the default verifier on a program without loading it. */
RBPF_API int rbpf_verify(const uint8_t *prog, size_t prog_len);

/* ---- Helpers ------------------------------------------------------------------------------- */

/** Registers (or replaces) helper `key`; `fn` is called directly for every call instruction with that
 *  id, with r1-r5 and, as a sixth argument it may declare (void *), the run's memory pointer. */
RBPF_API int rbpf_vm_register_helper(rbpf_vm *vm, uint32_t key, rbpf_helper_fn fn);

/**
 * Called by a helper, before it returns, to fail the run that called it: the run stops right after
 * the call with RBPF_E_HELPER_FAILED, and rbpf_last_error() names the instruction, the helper and
 * `message` (NULL: a default text). Interpreter and JIT alike; the report belongs to the calling thread.
 */
RBPF_API void rbpf_helper_fail(const char *message);

/** As rbpf_vm_register_helper, also under `name`, so ELF objects calling an undefined function
 *  of that name are linked to helper `key`. */
RBPF_API int rbpf_vm_register_helper_name(rbpf_vm *vm, uint32_t key, const char *name, rbpf_helper_fn fn);

/** Registers the standard helpers under the RBPF_HELPER_* ids. */
RBPF_API int rbpf_vm_register_standard_helpers(rbpf_vm *vm);

/**
 * Makes helper `key` the unwind helper (enabled != 0) or clears it (enabled == 0): when the unwind
 * helper returns 0, the program stops at once with r0 = 0.
 */
RBPF_API int rbpf_vm_set_unwind_helper(rbpf_vm *vm, uint32_t key, int enabled);

/* ---- Limits and memory --------------------------------------------------------------------- */

/**
 * Stops each run that would execute more than `limit` instructions with RBPF_E_INSTRUCTION_LIMIT;
 * 0 means no limit (the default). Both engines charge the limit a basic block at a time as the
 * block begins (a straight run of instructions up to a jump, call or exit, at most 255 long): a
 * block that would go past the limit does not start, and the error names its first instruction,
 * the same one in the interpreter and the JIT. A run of N instructions succeeds with any limit of N
 * or more. The JIT counts only in code compiled while a limit is set: switching between no limit
 * and a limit discards compiled code, so call rbpf_vm_jit_compile after this.
 */
RBPF_API int rbpf_vm_set_instruction_limit(rbpf_vm *vm, uint64_t limit);

/**
 * Stops every run of `vm` in progress, on any thread, soon: each returns RBPF_E_INTERRUPTED at its
 * next loop head or function entry (the interpreter and the JIT alike; code from
 * rbpf_vm_jit_function too). In raw VMs, compiled code does not check in a loop that goes round
 * at most once per input byte (an index moved on every round and compared with the input's
 * length): such a loop ends by itself, and the run stops at the next check after it. Runs that begin afterwards are not affected: an interrupt that arrives
 * between runs is lost. Thread-safe, lock-free and async-signal-safe on Linux: call it from a
 * signal handler or a watchdog thread. Returns 0, or RBPF_E_INVALID_HANDLE (without setting
 * rbpf_last_error, which is not signal-safe) for a NULL, destroyed or forged handle.
 */
RBPF_API int rbpf_vm_interrupt(rbpf_vm *vm);

/**
 * Makes signal `signum` (e.g. SIGINT, SIGALRM) interrupt the runs of `vm` that rbpf_vm_execute,
 * rbpf_vm_execute_jit and the batch calls make, as rbpf_vm_interrupt does; 0 turns it off. While
 * such a run is in progress, the library's handler for the signal interrupts it and then calls
 * the handler that was installed before (so Python still sees its KeyboardInterrupt). A signal
 * whose disposition is SIG_DFL or SIG_IGN while the run starts keeps its meaning and interrupts
 * nothing (install a handler first). rbpf_last_error() of a run the signal stopped ends in
 * "(signal N)". Calls through rbpf_vm_jit_function are not covered: use
 * rbpf_vm_interrupt from your own handler there. Linux only: RBPF_E_UNSUPPORTED elsewhere;
 * RBPF_E_INVALID_ARGUMENT for SIGKILL, SIGSTOP or a number that is not a signal.
 */
RBPF_API int rbpf_vm_set_interrupt_signal(rbpf_vm *vm, int signum);

/**
 * Lets the program touch `len` bytes at `addr` besides its input, stack and metadata buffer
 * (read-only unless `writable`). The memory must stay valid while registered. Returns the
 * region's index (>= 0) or a negative error code.
 */
RBPF_API int rbpf_vm_add_memory_region(rbpf_vm *vm, void *addr, size_t len, int writable);

/** Removes every region added with rbpf_vm_add_memory_region. */
RBPF_API int rbpf_vm_clear_memory_regions(rbpf_vm *vm);

/* ---- Running ------------------------------------------------------------------------------- */

/**
 * Interprets the program. `mem` is the input memory (packet), `mbuff` the metadata buffer
 * (RBPF_VM_MBUFF only); both may be NULL with length 0. On success *result is r0; a failed run
 * leaves *result as it was. Every load and store is checked: an access outside the allowed memory
 * fails with RBPF_E_OUT_OF_BOUNDS and a message naming the instruction, address and size.
 */
RBPF_API int rbpf_vm_execute(rbpf_vm *vm, uint8_t *mem, size_t mem_len, uint8_t *mbuff,
                             size_t mbuff_len, uint64_t *result);

/**
 * JIT-compiles the loaded program to machine code: x86-64 (Linux, macOS, Windows) or AArch64
 * (Linux); elsewhere RBPF_E_UNSUPPORTED. Memory accesses are checked as in the interpreter. Register helpers first:
 * rbpf_vm_set_program, rbpf_vm_register_helper and rbpf_vm_set_unwind_helper discard the code.
 */
RBPF_API int rbpf_vm_jit_compile(rbpf_vm *vm);

/** rbpf_vm_jit_compile_ex flag: skip memory checks. Faster, but a faulty or hostile program can
 *  then read and write any memory of the process: only for trusted programs. */
#define RBPF_JIT_UNCHECKED 1u
/** rbpf_vm_jit_compile_ex flag: blind immediates so a program cannot plant chosen bytes in executable memory. */
#define RBPF_JIT_BLIND_CONSTANTS 2u
/** rbpf_vm_jit_compile_ex flag: no interrupt checks at loop heads and function entries: rbpf_vm_interrupt and signals cannot stop
 *  the code (only the instruction limit can); the tightest loops run up to a fifth faster. */
#define RBPF_JIT_NO_INTERRUPT 4u

/** As rbpf_vm_jit_compile, with RBPF_JIT_* flags. */
RBPF_API int rbpf_vm_jit_compile_ex(rbpf_vm *vm, uint32_t flags);

/**
 * Runs the JIT-compiled program, with the arguments and results of rbpf_vm_execute (the same
 * errors, found the same way). RBPF_E_NO_PROGRAM if the program is not compiled.
 */
RBPF_API int rbpf_vm_execute_jit(rbpf_vm *vm, uint8_t *mem, size_t mem_len, uint8_t *mbuff,
                                 size_t mbuff_len, uint64_t *result);

/** One input of a batch: memory and its length (as rbpf_vm_execute's mem and mem_len). */
typedef struct rbpf_buffer {
    uint8_t *data;
    size_t len;
} rbpf_buffer;

/** rbpf_vm_execute_batch and rbpf_vm_count_verdicts flag: run the JIT-compiled code. */
#define RBPF_BATCH_JIT 1u

/**
 * Runs the program once per buffer, as rbpf_vm_execute (or, with RBPF_BATCH_JIT,
 * rbpf_vm_execute_jit) would with that buffer as mem and no mbuff, writing each r0 into
 * results[i]: one call for many packets, for callers that pay for each crossing (Python). Stops at
 * the first run that fails and returns its error; *done (when not NULL) is the number of runs that
 * succeeded before it (all `count` on success). With RBPF_BATCH_JIT on x86-64 (System V) the
 * compiled code loops over the buffers itself, paying its entry once per batch rather than once per
 * buffer; each run still starts from fresh registers and a zeroed stack, with its own instruction
 * limit, and an interrupt (rbpf_vm_interrupt) also stops the batch between runs.
 */
RBPF_API int rbpf_vm_execute_batch(rbpf_vm *vm, const rbpf_buffer *buffers, size_t count, uint32_t flags,
                                   uint64_t *results, size_t *done);

/**
 * As rbpf_vm_execute_batch, but counts the results instead of keeping them: counts[r0] += 1 when
 * r0 < ncounts, else counts[ncounts - 1] += 1 (ncounts at least 1). For filters that return
 * verdicts (0 drop, 1 pass, ...): counts are added to what the array holds.
 */
RBPF_API int rbpf_vm_count_verdicts(rbpf_vm *vm, const rbpf_buffer *buffers, size_t count, uint32_t flags,
                                    uint64_t *counts, size_t ncounts, size_t *done);

/**
 * As rbpf_vm_execute_batch, for inputs laid out back to back in `data`: input i is the
 * `lengths[i]` bytes that follow input i - 1. With `counts` not NULL the results are counted there
 * (ncounts slots, as rbpf_vm_count_verdicts) instead of written to `results`. One array of
 * lengths is all a caller builds per batch (the Python binding's execute_many uses it).
 */
RBPF_API int rbpf_vm_execute_packed(rbpf_vm *vm, uint8_t *data, const size_t *lengths, size_t count, uint32_t flags,
                                    uint64_t *results, uint64_t *counts, size_t ncounts, size_t *done);

/**
 * The JIT-compiled program as a plain C function, for the hottest paths: calling it does what
 * rbpf_vm_execute_jit does (same arguments, result, checks and error codes, the message in
 * rbpf_last_error() of the calling thread) without the handle lookup (and, off Linux, without
 * the two runtime transitions of an exported call). Any number of threads may call it at once.
 */
typedef int (*rbpf_jit_fn)(uint8_t *mem, size_t mem_len, uint8_t *mbuff, size_t mbuff_len, uint64_t *result);

/**
 * Gets the compiled program as an rbpf_jit_fn (*out_fn). The function is valid until the VM is
 * destroyed or its compiled code is discarded or replaced (rbpf_vm_set_program, registering a
 * helper, rbpf_vm_set_unwind_helper, switching the instruction limit between 0 and non-zero,
 * compiling again); calling it after that is undefined, as calling freed code is. Errors:
 * RBPF_E_NO_PROGRAM (not compiled), RBPF_E_UNSUPPORTED (a fixed-mbuff VM whose buffer is over
 * 1024 bytes: use rbpf_vm_execute_jit).
 */
RBPF_API int rbpf_vm_jit_function(rbpf_vm *vm, rbpf_jit_fn *out_fn);

/** The generated machine code (x86-64 or AArch64) as text under each eBPF instruction (*out_text, freed with rbpf_free). */
RBPF_API int rbpf_vm_jit_disassemble(rbpf_vm *vm, char **out_text);

/* ---- Maps ---------------------------------------------------------------------------------- */

/**
 * A map shared by the host and programs: userspace maps with the kernel's semantics. Map handles
 * are checked like VM handles (NULL, destroyed or forged handles give RBPF_E_INVALID_HANDLE). A map
 * outlives the VMs it is bound to and lives while a VM uses it, even after rbpf_map_destroy.
 * Lookups and updates are safe from several threads, including runs on other threads.
 */
typedef struct rbpf_map rbpf_map;

/** Map types: the kernel's numbers (enum bpf_map_type). Per-CPU maps have one CPU here. */
typedef enum rbpf_map_type {
    RBPF_MAP_HASH = 1,
    RBPF_MAP_ARRAY = 2,
    RBPF_MAP_PROG_ARRAY = 3,     /**< VMs for bpf_tail_call: see rbpf_map_set_program */
    RBPF_MAP_PERCPU_HASH = 5,
    RBPF_MAP_PERCPU_ARRAY = 6,
    RBPF_MAP_LRU_HASH = 9,       /**< a full map evicts its least recently used key */
    RBPF_MAP_RINGBUF = 27        /**< key and value sizes 0, max_entries its size (a power of 2, >= 4096) */
} rbpf_map_type;

/** Update flags (BPF_ANY, BPF_NOEXIST, BPF_EXIST). */
#define RBPF_ANY 0u
#define RBPF_NOEXIST 1u
#define RBPF_EXIST 2u

/** What rbpf_map_get_info reports. */
typedef struct rbpf_map_info {
    uint32_t type, key_size, value_size, max_entries, flags;
    uint32_t entries;            /**< entries now present (max_entries for arrays) */
} rbpf_map_info;

/**
 * Creates a map. Array maps (and per-CPU arrays, program arrays) have 4-byte keys; hash maps keys
 * of 1-512 bytes; values 1 byte to 1 MiB. RBPF_E_INVALID_ARGUMENT names what the type does not allow.
 */
RBPF_API int rbpf_map_create(uint32_t type, uint32_t key_size, uint32_t value_size, uint32_t max_entries,
                             uint32_t flags, rbpf_map **out);

/** Copies the value of `key` (key_size bytes) into `value` (value_size bytes); RBPF_E_NOT_FOUND if missing. */
RBPF_API int rbpf_map_lookup(rbpf_map *map, const void *key, void *value);

/**
 * Sets the value of `key`: RBPF_ANY creates or replaces, RBPF_NOEXIST only creates
 * (RBPF_E_KEY_EXISTS), RBPF_EXIST only replaces (RBPF_E_NOT_FOUND). A full hash map refuses new keys
 * (RBPF_E_MAP_FULL); an LRU map evicts instead; an array index past the end is RBPF_E_MAP_FULL.
 */
RBPF_API int rbpf_map_update(rbpf_map *map, const void *key, const void *value, uint64_t flags);

/** Deletes `key`: RBPF_E_NOT_FOUND if missing; array entries cannot be deleted (RBPF_E_INVALID_ARGUMENT). */
RBPF_API int rbpf_map_delete(rbpf_map *map, const void *key);

/**
 * Writes the key after `key` into `next_key`; `key` NULL (or a key not present) gives the first.
 * RBPF_E_NOT_FOUND after the last key:
 *     for (int rc = rbpf_map_next_key(m, NULL, k); rc == RBPF_OK; rc = rbpf_map_next_key(m, k, k)) ...
 */
RBPF_API int rbpf_map_next_key(rbpf_map *map, const void *key, void *next_key);

/** The map's type, sizes, flags and current number of entries. */
RBPF_API int rbpf_map_get_info(rbpf_map *map, rbpf_map_info *info);

/** Program arrays: puts `vm` at `index` (NULL clears it) for bpf_tail_call. The VM must be of the caller's kind. */
RBPF_API int rbpf_map_set_program(rbpf_map *map, uint32_t index, rbpf_vm *vm);

/**
 * Ring buffers: hands each submitted record, in order, to `cb` (its data and length) and frees it,
 * until no record is ready or `cb` returns non-zero. Returns the number of records handed over, the
 * callback's non-zero result, or a negative error code.
 */
RBPF_API int64_t rbpf_map_ringbuf_consume(rbpf_map *map, int (*cb)(void *ctx, const void *data, size_t len), void *ctx);

/** Releases the handle (the map lives on while a VM uses it). NULL or a bad handle only sets rbpf_last_error. */
RBPF_API void rbpf_map_destroy(rbpf_map *map);

/**
 * Binds `map` to file descriptor `fd` of `vm`: the program names it with `lddw rN, map FD` (lddw
 * with source 1, BPF_PSEUDO_MAP_FD, as the kernel's loader writes it) and passes it to the map
 * helpers, which the VM gets with the kernel's ids where none is registered (bpf_map_lookup_elem 1,
 * update 2, delete 3, bpf_get_prandom_u32 7, bpf_get_smp_processor_id 8, bpf_tail_call 12,
 * bpf_csum_diff 28, bpf_ringbuf_output/reserve/submit/discard/query 130-134). Its values become
 * memory the program may read and write, checked like any region. `map` NULL unbinds the fd. A VM
 * with a program array bound runs tail calls through rbpf_vm_execute and rbpf_vm_execute_jit; its
 * bare rbpf_jit_fn returns RBPF_E_HELPER_FAILED at a tail call instead.
 */
RBPF_API int rbpf_vm_bind_map(rbpf_vm *vm, uint32_t fd, rbpf_map *map);

/**
 * A map the VM's ELF object declared (in .maps, from its BTF, or the legacy maps section), by its
 * variable's name: the loader created it empty and bound it. The handle is the map's (the same on
 * each call); RBPF_E_NOT_FOUND lists the names there are.
 */
RBPF_API int rbpf_vm_get_map(rbpf_vm *vm, const char *name, rbpf_map **out);

/** The names of the maps the VM's ELF object declared, one per line (*out_names freed with rbpf_free). */
RBPF_API int rbpf_vm_map_names(rbpf_vm *vm, char **out_names);

/* ---- Assembler and disassembler ------------------------------------------------------------ */

/**
 * Assembles NUL-terminated UTF-8 `source` (rbpf's, bpf_conformance's or LLVM's syntax, as
 * `clang -S -target bpf` and `llvm-objdump -d` print it, line by line) into *out_prog
 * (*out_len bytes, freed with rbpf_free). Errors (RBPF_E_ASSEMBLY_ERROR) name the line and column.
 */
RBPF_API int rbpf_assemble(const char *source, uint8_t **out_prog, size_t *out_len);

/**
 * Disassembles `prog` into NUL-terminated text (*out_text, freed with rbpf_free), one instruction
 * per line; rbpf_assemble turns it back into the same bytes.
 */
RBPF_API int rbpf_disassemble(const uint8_t *prog, size_t prog_len, char **out_text);

/** rbpf_disassemble_ex flag: the LLVM/kernel syntax (r0 = 1, if r1 > r2 goto +3) instead of rbpf's. */
#define RBPF_DISASM_LLVM 1u
/** rbpf_disassemble_ex flag: label every jump and call target (L7: before slot 7) and name it in the jumps. */
#define RBPF_DISASM_LABELS 2u

/** As rbpf_disassemble, with RBPF_DISASM_* flags (RBPF_E_INVALID_ARGUMENT for others). */
RBPF_API int rbpf_disassemble_ex(const uint8_t *prog, size_t prog_len, uint32_t flags, char **out_text);

/* ---- Kernel program types ------------------------------------------------------------------- */

/** Kernel program types (enum bpf_prog_type). */
typedef enum rbpf_prog_type {
    RBPF_PROG_NONE = 0,          /**< rbpf's VM kinds */
    RBPF_PROG_SOCKET_FILTER = 1, /**< r1 a struct __sk_buff (no direct packet access); rbpf_vm_execute_skb */
    RBPF_PROG_SCHED_CLS = 3,     /**< tc classifier: r1 a struct __sk_buff; rbpf_vm_execute_skb */
    RBPF_PROG_SCHED_ACT = 4,     /**< tc action: as SCHED_CLS */
    RBPF_PROG_XDP = 6
} rbpf_prog_type;

/** XDP verdicts (enum xdp_action). */
enum { RBPF_XDP_ABORTED = 0, RBPF_XDP_DROP = 1, RBPF_XDP_PASS = 2, RBPF_XDP_TX = 3, RBPF_XDP_REDIRECT = 4 };

/**
 * A VM for programs of a kernel type, written as for the kernel: for XDP, r1 is a struct xdp_md
 * (for tc programs and socket filters a struct __sk_buff, run with rbpf_vm_execute_skb),
 * and the loader rewrites the program's accesses to it as the kernel's verifier does (the 32-bit
 * data, data_end and data_meta fields become real pointers), refusing with the instruction and the
 * field what the kernel refuses (a field the type does not have, a narrow read of a pointer, a
 * write to a read-only field). Load the program with rbpf_vm_set_program or rbpf_vm_load_elf; run
 * it with rbpf_vm_execute_xdp. bpf_xdp_adjust_head (44), _meta (54) and _tail (65) are registered.
 */
RBPF_API int rbpf_vm_create_for_type(uint32_t type, rbpf_vm **out);

/**
 * A VM from a kernel program in an ELF object: `type` 0 takes it from the section name as libbpf
 * does (xdp, xdp.frags, ...; RBPF_E_ELF_ERROR if the section names none). `section` may name a
 * section or a function (several XDP programs share the section "xdp").
 */
RBPF_API int rbpf_vm_create_kernel_from_elf(const uint8_t *elf, size_t elf_len, const char *section, uint32_t type,
                                            rbpf_vm **out);

/** The VM's program type (RBPF_PROG_NONE for rbpf's kinds). */
RBPF_API int rbpf_vm_get_program_type(rbpf_vm *vm, uint32_t *type);

/** Where the frame is in the buffer given to rbpf_vm_execute_xdp, and where it came from. */
typedef struct rbpf_xdp_options {
    uint32_t headroom;          /**< bytes before the frame (room for bpf_xdp_adjust_head; the kernel gives 256) */
    uint32_t length;            /**< the frame's length; UINT32_MAX: the rest of the buffer */
    uint32_t ingress_ifindex, rx_queue_index, egress_ifindex;
} rbpf_xdp_options;

/** What an XDP run gives: the verdict, and where the frame is now (moved by the adjust helpers). */
typedef struct rbpf_xdp_result {
    uint32_t action;            /**< RBPF_XDP_* (the low 32 bits of r0) */
    uint32_t offset, length;    /**< the frame's start in the buffer and its length after the run */
    uint32_t reserved;
    uint64_t value;             /**< r0 */
} rbpf_xdp_result;

#define RBPF_XDP_JIT 1u  /**< rbpf_vm_execute_xdp flag: run the JIT-compiled code */

/**
 * Runs an XDP program on the frame in `buffer` (which the program may rewrite in place). `options`
 * NULL: the whole buffer is the frame, no headroom, ingress interface 1. The program may read and
 * write the whole buffer (headroom and tailroom too), never memory outside it.
 */
RBPF_API int rbpf_vm_execute_xdp(rbpf_vm *vm, uint8_t *buffer, size_t buffer_len, const rbpf_xdp_options *options,
                                 uint32_t flags, rbpf_xdp_result *result);

/** The sk_buff metadata given to, and partly set by, a tc program or socket filter. */
typedef struct rbpf_skb {
    uint32_t protocol;          /**< host order (0x0800); 0: the frame's EtherType */
    uint32_t pkt_type, mark, priority, queue_mapping, ifindex, ingress_ifindex, tc_index, tc_classid, hash;
    uint32_t vlan_present, vlan_tci;
    uint32_t cb[5];
} rbpf_skb;

#define RBPF_SKB_JIT 1u  /**< rbpf_vm_execute_skb flag: run the JIT-compiled code */

/**
 * Runs a tc program or socket filter (rbpf_vm_create_for_type, rbpf_vm_create_kernel_from_elf
 * with a "tc", "classifier" or "socket" section) on an Ethernet frame. *result is r0 (a TC_ACT_*
 * code; for a socket filter the bytes to keep). `skb` may be NULL; when given, the fields the
 * program may set (mark, priority, queue_mapping, tc_index, tc_classid, cb) come back in it.
 * bpf_skb_load_bytes (26) is registered, and for tc programs bpf_l3_csum_replace (10) and
 * bpf_l4_csum_replace (11), which update checksums in the frame. LD_ABS and LD_IND have the kernel's meaning in these
 * types: network byte order, and a load outside the packet ends the program with 0.
 */
RBPF_API int rbpf_vm_execute_skb(rbpf_vm *vm, uint8_t *frame, size_t frame_len, rbpf_skb *skb, uint32_t flags,
                                 uint64_t *result);

#define RBPF_CAPTURE_JIT 1u  /**< rbpf_vm_run_capture flag: run the JIT-compiled code */

/**
 * Runs the program over every packet of a pcap or pcapng capture held in memory (`capture`, the
 * file's bytes): XDP programs with 256 bytes of headroom, tc programs and socket filters with
 * default metadata, VM kinds with the packet as input memory. counts[v] counts the packets whose
 * r0 was v (the last slot also every larger value); *packets (may be NULL) is how many ran. The
 * first failing run ends the call with its error, naming the packet; a damaged capture is
 * RBPF_E_INVALID_ARGUMENT saying where.
 */
RBPF_API int rbpf_vm_run_capture(rbpf_vm *vm, const uint8_t *capture, size_t capture_len, uint32_t flags, uint64_t *counts,
                                 size_t ncounts, size_t *packets);

/* ---- Classic BPF ----------------------------------------------------------------------------- */

/**
 * Translates a classic BPF program (tcpdump and libpcap filters, Linux socket filters: an array of
 * 8-byte instructions { uint16_t code; uint8_t jt, jf; uint32_t k; } in host byte order, libpcap's
 * struct bpf_insn; cbpf_len in bytes) into eBPF for a raw VM, which returns what libpcap's
 * bpf_filter() returns for the packet:
 *
 *     uint8_t *prog; size_t len;
 *     rbpf_cbpf_translate((const uint8_t *)fp.bf_insns, fp.bf_len * 8, &prog, &len);
 *     rbpf_vm_create(RBPF_VM_RAW, prog, len, &vm);  rbpf_free(prog);
 *     rbpf_vm_jit_compile(vm);  rbpf_vm_execute_jit(vm, packet, caplen, NULL, 0, &verdict);
 *
 * A load outside the packet and a division by X = 0 end the program with 0, as in bpf_filter; the
 * scratch words start at 0. RBPF_E_INVALID_PROGRAM for what libpcap's bpf_validate or Linux's
 * checker refuse (unknown opcodes, jumps past the end, no final return, scratch index over 15,
 * division by a constant 0) and for Linux's ancillary loads (SKF_AD_OFF and the like), with the
 * instruction. *out is freed with rbpf_free.
 */
RBPF_API int rbpf_cbpf_translate(const uint8_t *cbpf, size_t cbpf_len, uint8_t **out, size_t *out_len);

/** Frees a buffer returned by this library. NULL is ignored. */
RBPF_API void rbpf_free(void *ptr);

/* ---- Errors and version -------------------------------------------------------------------- */

/** Message of the calling thread's last failure ("no error" if none). Valid until its next failure. */
RBPF_API const char *rbpf_last_error(void);

/** Code of the calling thread's last failure (0 if none). */
RBPF_API int rbpf_last_error_code(void);

/** Name of an error code, e.g. "RBPF_E_OUT_OF_BOUNDS"; "RBPF_E_UNKNOWN" for other numbers. */
RBPF_API const char *rbpf_error_name(int code);

/** Version of the library, e.g. "0.1.0". */
RBPF_API const char *rbpf_version(void);

#ifdef __cplusplus
}
#endif

#endif /* RBPF_H */
