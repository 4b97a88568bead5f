/*
 * rbpf_vm_execute_jit without the .NET runtime in the way.
 *
 * Every function the managed library exports pays for a reverse P/Invoke on entry and, to run
 * generated code, a P/Invoke back out: about 125 instructions of a 250-instruction call. This
 * file, linked into librbpf, exports rbpf_vm_execute_jit itself: it finds the VM's compiled entry
 * in a table the managed side keeps (one slot per handle: the handle and the entry, published
 * whenever a VM's code changes) and calls it directly. Anything it cannot do that way (no code, a
 * stale handle, a NULL result, a VM whose code needs extra arguments) goes to the managed
 * function, which gives the same errors as before.
 *
 * The code a slot points at must not be freed while a thread runs it. Each calling thread has a
 * record with a counter that is odd while the thread is inside a call (nested calls leave it
 * alone). When the managed side replaces or removes an entry, it keeps the old code alive, takes a
 * process-wide memory barrier, notes which records are odd, and lets the code go only once each of
 * them has moved on. A call costs two plain stores and no atomic operation.
 */
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define SLOT_BITS 24                       /* as HandleTable: (generation << 24) | (slot + 1) */
#define CHUNK_BITS 10
#define CHUNK_SLOTS (1u << CHUNK_BITS)
#define CHUNK_COUNT (1u << (SLOT_BITS - CHUNK_BITS))

typedef int (*entry_fn)(void *mem, size_t mem_len, void *mbuff, size_t mbuff_len, uint64_t *result);
typedef int (*slow_fn)(uint64_t vm, void *mem, size_t mem_len, void *mbuff, size_t mbuff_len, uint64_t *result);

/* Shared with FastCalls.cs: keep the layouts in step. */
struct fast_slot {
    uint64_t handle;                       /* 0 when empty; written last when filled, first when emptied */
    entry_fn entry;
};

struct reader {
    uint64_t state;                        /* odd while the owning thread is inside a call */
    struct reader *next;
    int32_t in_use;                        /* 0 once the owning thread has exited: the record is reused */
    int32_t nesting;                       /* calls of this thread in progress (owner only) */
};

struct fast_state {
    struct fast_slot **chunks;             /* CHUNK_COUNT pointers, each NULL or CHUNK_SLOTS slots */
    slow_fn slow;                          /* the managed rbpf_vm_execute_jit */
    struct reader *readers;                /* every record ever made, pushed at the front */
};

static struct fast_state *g_state;
/* initial-exec: read straight from the thread pointer (general-dynamic, the default for -fPIC, cost a
 * call to __tls_get_addr on every rbpf_vm_execute_jit); one pointer fits the static TLS surplus
 * glibc keeps for libraries loaded with dlopen, as Python loads this one. */
static __thread struct reader *t_reader __attribute__((tls_model("initial-exec")));
static pthread_key_t g_reader_key;
static pthread_once_t g_key_once = PTHREAD_ONCE_INIT;

/* Called once by the managed library as it starts (FastCalls.Initialize). */
__attribute__((visibility("hidden"))) void rbpf_fastcall_init(struct fast_state *state)
{
    __atomic_store_n(&g_state, state, __ATOMIC_RELEASE);
}

int rbpf_last_error_code(void);

static void release_reader(void *p)
{
    struct reader *r = p;
    __atomic_store_n(&r->in_use, 0, __ATOMIC_RELEASE);
}

static void make_key(void)
{
    pthread_key_create(&g_reader_key, release_reader);
}

/* This thread's record: a free one taken over, or a new one pushed on the list. NULL without memory. */
static struct reader *attach(struct fast_state *s)
{
    pthread_once(&g_key_once, make_key);
    struct reader *r;
    for (r = __atomic_load_n(&s->readers, __ATOMIC_ACQUIRE); r != NULL; r = r->next) {
        int32_t unused = 0;
        if (__atomic_compare_exchange_n(&r->in_use, &unused, 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
            break;
    }
    if (r == NULL) {
        r = calloc(1, sizeof *r);
        if (r == NULL)
            return NULL;
        r->in_use = 1;
        struct reader *head = __atomic_load_n(&s->readers, __ATOMIC_RELAXED);
        do
            r->next = head;
        while (!__atomic_compare_exchange_n(&s->readers, &head, r, 1, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
    }
    if (pthread_setspecific(g_reader_key, r) != 0) {
        __atomic_store_n(&r->in_use, 0, __ATOMIC_RELEASE);
        return NULL;
    }
    t_reader = r;
    return r;
}

__attribute__((visibility("default")))
int rbpf_vm_execute_jit(uint64_t vm, void *mem, size_t mem_len, void *mbuff, size_t mbuff_len, uint64_t *result)
{
    struct fast_state *s = __atomic_load_n(&g_state, __ATOMIC_ACQUIRE);
    if (__builtin_expect(s == NULL, 0)) {
        /* No managed export has run yet in this process: any exported call starts the runtime,
         * whose startup hands over the table. Without it, every handle is unknown anyway. */
        (void)rbpf_last_error_code();
        s = __atomic_load_n(&g_state, __ATOMIC_ACQUIRE);
        if (s == NULL)
            return -99; /* RBPF_E_INTERNAL: the runtime did not start */
    }
    struct reader *r = t_reader;
    if (__builtin_expect(r == NULL, 0)) {
        r = attach(s);
        if (r == NULL)
            return s->slow(vm, mem, mem_len, mbuff, mbuff_len, result);
    }
    int outer = r->nesting++ == 0;
    if (outer) {
        /* Odd from here. The managed side's process-wide barrier orders this store before the
         * loads below as far as it is concerned, so no fence is needed here. */
        __atomic_store_n(&r->state, r->state + 1, __ATOMIC_RELAXED);
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
    }
    entry_fn entry = NULL;
    uint64_t index = (vm & ((1u << SLOT_BITS) - 1)) - 1; /* a NULL handle wraps to a huge index */
    if (index < (uint64_t)CHUNK_COUNT * CHUNK_SLOTS && result != NULL) {
        struct fast_slot *chunk = __atomic_load_n(&s->chunks[index >> CHUNK_BITS], __ATOMIC_ACQUIRE);
        if (chunk != NULL) {
            struct fast_slot *slot = &chunk[index & (CHUNK_SLOTS - 1)];
            /* The handle is read before and after the entry: a slot being refilled for another
             * VM empties its handle first, so an entry read between two equal handles is this VM's. */
            uint64_t before = __atomic_load_n(&slot->handle, __ATOMIC_ACQUIRE);
            entry = __atomic_load_n(&slot->entry, __ATOMIC_ACQUIRE);
            uint64_t after = __atomic_load_n(&slot->handle, __ATOMIC_ACQUIRE);
            if (before != vm || after != vm)
                entry = NULL;
        }
    }
    int status = entry != NULL ? entry(mem, mem_len, mbuff, mbuff_len, result)
                               : s->slow(vm, mem, mem_len, mbuff, mbuff_len, result);
    if (outer) {
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        __atomic_store_n(&r->state, r->state + 1, __ATOMIC_RELEASE);
    }
    r->nesting--;
    return status;
}
