/*
 * rbpf_vm_interrupt, and runs that a signal interrupts.
 *
 * Every VM made through the C API has an interrupt word here, in memory that is never freed: the
 * interpreter and the compiled code note the word's value as a run begins and stop the run with
 * RBPF_E_INTERRUPTED at the next loop head or function entry once it has changed. So stopping a
 * run is one atomic increment, done here in C, with no lock, no allocation and no call into the
 * .NET runtime: safe from any thread and from a signal handler.
 *
 * A VM may also name a signal (rbpf_vm_set_interrupt_signal). While a run of it is in progress, the
 * run is "armed": it has a place in a small table that a handler installed here for that signal
 * walks, interrupting each armed run of that signal after it has handed the signal on to the
 * handler that was installed before (Python's, for SIGINT). A signal whose disposition is the default or
 * ignore is left alone: arming does nothing then, and the signal keeps its meaning.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define SLOT_BITS 24                       /* as HandleTable: (generation << 24) | (slot + 1) */
#define CHUNK_BITS 10
#define CHUNK_SLOTS (1u << CHUNK_BITS)
#define CHUNK_COUNT (1u << (SLOT_BITS - CHUNK_BITS))
#define MAX_ARMED 64
#define MAX_SIGNAL 64

/* Shared with Interrupts.cs: keep the layout in step. */
struct vm_word {
    uint64_t handle;                       /* the VM's handle while it lives, else 0 */
    uint32_t epoch;                        /* moved on by each interrupt */
    int32_t signum;                        /* the signal that interrupts its runs, or 0 */
    int32_t fired;                         /* that signal, once it has interrupted a run */
    int32_t unused;
};

static struct vm_word **g_chunks;          /* CHUNK_COUNT pointers, each NULL or CHUNK_SLOTS words */
static struct vm_word *g_armed[MAX_ARMED];  /* runs in progress that a signal may interrupt */
static struct sigaction g_previous[MAX_SIGNAL + 1];
static pthread_mutex_t g_install = PTHREAD_MUTEX_INITIALIZER;

/* Called once by the managed library as it starts (Interrupts.Initialize). */
__attribute__((visibility("hidden"))) void rbpf_interrupt_init(struct vm_word **chunks)
{
    __atomic_store_n(&g_chunks, chunks, __ATOMIC_RELEASE);
}

__attribute__((visibility("default"))) int rbpf_vm_interrupt(uint64_t vm)
{
    struct vm_word **chunks = __atomic_load_n(&g_chunks, __ATOMIC_ACQUIRE);
    uint64_t index = (vm & ((1u << SLOT_BITS) - 1)) - 1; /* a NULL handle wraps to a huge index */
    if (chunks == NULL || index >= (uint64_t)CHUNK_COUNT * CHUNK_SLOTS)
        return -2; /* RBPF_E_INVALID_HANDLE */
    struct vm_word *chunk = __atomic_load_n(&chunks[index >> CHUNK_BITS], __ATOMIC_ACQUIRE);
    if (chunk == NULL)
        return -2;
    struct vm_word *w = &chunk[index & (CHUNK_SLOTS - 1)];
    if (__atomic_load_n(&w->handle, __ATOMIC_ACQUIRE) != vm)
        return -2;
    __atomic_add_fetch(&w->epoch, 1, __ATOMIC_SEQ_CST);
    return 0;
}

static void on_signal(int sig, siginfo_t *info, void *context)
{
    int saved = errno;
    /* The handler before ours first: whoever sees the run end (Python's execute(), say, on another
     * thread than this one) then also sees what that handler recorded. */
    const struct sigaction *p = &g_previous[sig];
    if (p->sa_flags & SA_SIGINFO) {
        if (p->sa_sigaction != NULL)
            p->sa_sigaction(sig, info, context);
    } else if (p->sa_handler != SIG_DFL && p->sa_handler != SIG_IGN) {
        p->sa_handler(sig);
    }
    for (int i = 0; i < MAX_ARMED; i++) {
        struct vm_word *w = __atomic_load_n(&g_armed[i], __ATOMIC_ACQUIRE);
        if (w != NULL && __atomic_load_n(&w->signum, __ATOMIC_RELAXED) == sig) {
            __atomic_store_n(&w->fired, sig, __ATOMIC_RELAXED);
            __atomic_add_fetch(&w->epoch, 1, __ATOMIC_SEQ_CST);
        }
    }
    errno = saved;
}

/* Whether our handler is the one installed for sig, installing it in front of the current
 * handler if there is one. */
static int install(int sig)
{
    struct sigaction current;
    if (sigaction(sig, NULL, &current) != 0)
        return 0;
    if ((current.sa_flags & SA_SIGINFO) && current.sa_sigaction == on_signal)
        return 1;
    if (!(current.sa_flags & SA_SIGINFO) && (current.sa_handler == SIG_DFL || current.sa_handler == SIG_IGN))
        return 0; /* nothing to hand on to: the signal keeps its meaning */
    int ok = 0;
    pthread_mutex_lock(&g_install);
    /* Again under the lock: another thread may have installed it meanwhile. */
    if (sigaction(sig, NULL, &current) == 0) {
        if ((current.sa_flags & SA_SIGINFO) && current.sa_sigaction == on_signal) {
            ok = 1;
        } else if ((current.sa_flags & SA_SIGINFO) || (current.sa_handler != SIG_DFL && current.sa_handler != SIG_IGN)) {
            /* Ours is not installed, so nothing reads the record while it changes. */
            g_previous[sig] = current;
            struct sigaction ours = current;
            ours.sa_sigaction = on_signal;
            ours.sa_flags = (current.sa_flags | SA_SIGINFO) & ~SA_RESETHAND;
            ok = sigaction(sig, &ours, NULL) == 0;
        }
    }
    pthread_mutex_unlock(&g_install);
    return ok;
}

/* Arms a run of the VM whose word this is (its signal set): the place to give back to disarm, or
 * -1 (no signal, a default or ignored disposition, or MAX_ARMED runs armed already). */
__attribute__((visibility("hidden"))) int rbpf_signal_arm(struct vm_word *w)
{
    int sig = __atomic_load_n(&w->signum, __ATOMIC_RELAXED);
    if (sig <= 0 || sig > MAX_SIGNAL || !install(sig))
        return -1;
    for (int i = 0; i < MAX_ARMED; i++) {
        struct vm_word *empty = NULL;
        if (__atomic_compare_exchange_n(&g_armed[i], &empty, w, 0, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
            return i;
    }
    return -1;
}

__attribute__((visibility("hidden"))) void rbpf_signal_disarm(int place)
{
    if (place >= 0 && place < MAX_ARMED)
        __atomic_store_n(&g_armed[place], NULL, __ATOMIC_RELEASE);
}

/* Whether sig may interrupt runs: a real signal that a handler can catch. */
__attribute__((visibility("hidden"))) int rbpf_signal_valid(int sig)
{
    return sig > 0 && sig <= MAX_SIGNAL && sig < NSIG && sig != SIGKILL && sig != SIGSTOP;
}
