/* The C half of platform/guard: the sigsetjmp around a game call and the signal handler that
 * jumps back to it. C because a function that returns twice (sigsetjmp) must not be a Rust
 * function, and because the handler must be async-signal-safe: it only reads and writes
 * thread-locals, and on the paths that do not jump it calls sigaction/raise/getpid.
 *
 * Modelled on cr.h (github.com/fungos/cr, cr_plugin_main / cr_signal_handler), with three
 * differences: sigsetjmp(..., 0) does not save the signal mask (that would cost an
 * rt_sigprocmask system call per guarded call); the fault path unblocks the handled signals
 * instead. Signals that do not come from a guarded call go to the previous handler, so the
 * platform's own crashes (and Rust's stack-overflow message) are not hidden. And there is a
 * timeout (the watchdog's signal), which waits while the call is inside glibc. */

#define _GNU_SOURCE
#include <errno.h>
#include <link.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>

/* Static TLS: no __tls_get_addr (which may allocate) in the signal handler. */
#define GUARD_TLS static __thread __attribute__((tls_model("initial-exec")))

/* The signals a guarded call turns into a fault; the timeout signal is added at install. */
static const int FAULT_SIGNALS[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT };
#define FAULT_SIGNAL_COUNT (sizeof FAULT_SIGNALS / sizeof FAULT_SIGNALS[0])

/* What the handler saw; read by Rust after a guarded call returned 1. Mirrors `RawFault`. */
struct handmade_guard_fault {
    int signo;
    int overflow;    /* the address lies in the guard area below this thread's stack */
    int timeout;     /* the watchdog's signal, for this very call */
    uintptr_t address;
};

GUARD_TLS sigjmp_buf guard_jump;
/* 0 outside a guarded call, else the call's id (odd, never 0). Written only by this thread;
 * volatile plus signal fences keep the compiler from moving it across `fn(ctx)`. */
GUARD_TLS volatile uintptr_t guard_active;
GUARD_TLS struct handmade_guard_fault guard_fault;
/* Fault addresses in [overflow_lo, overflow_hi) are stack overflows of this thread. */
GUARD_TLS uintptr_t overflow_lo, overflow_hi;
/* How often the watchdog's signal for call `deferred_call` found it inside glibc. */
GUARD_TLS uintptr_t deferred_call;
GUARD_TLS int deferred_count;

/* A timeout that lands inside glibc (or the loader) is put off, up to this many times, until the
 * watchdog fires again one timeout later: jumping out there could leave malloc's arena lock
 * held or its free lists half-updated, or stdio's lock held, and the next malloc or printf would
 * deadlock. A game that hangs in a loop spends most of its time in its own code; one blocked
 * in a system call (PC in glibc for good) is still interrupted after the last deferral. */
#define MAX_TIMEOUT_DEFERRALS 3
#define MAX_TEXT_RANGES 16
/* The executable segments of libc.so and ld-linux.so; set once, before the handler exists. */
static struct { uintptr_t lo, hi; } libc_text[MAX_TEXT_RANGES];
static int libc_text_count;

static int timeout_signal;
/* The handled signals, unblocked again on the fault path (the kernel blocked them while the
 * handler ran, and siglongjmp with savemask 0 does not undo that). */
static sigset_t handled_set;
/* The handlers that were there before ours, indexed by signal number. */
static struct sigaction previous[_NSIG];

static void handle(int signo, siginfo_t *info, void *context);

/* Runs fn(ctx); returns 0 when it returned, 1 when a signal ended it (see handmade_guard_fault).
 * `id` is the call's odd, non-zero id: the watchdog's signal for any other id is ignored. */
int handmade_guarded_call(void (*fn)(void *), void *ctx, uintptr_t id) {
    if (sigsetjmp(guard_jump, 0) == 0) {
        guard_active = id;
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        fn(ctx);
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        guard_active = 0;
        return 0;
    }
    guard_active = 0;
    pthread_sigmask(SIG_UNBLOCK, &handled_set, NULL);
    return 1;
}

void handmade_guard_last_fault(struct handmade_guard_fault *out) {
    *out = guard_fault;
}

/* Per thread, before its first guarded call: where a fault counts as a stack overflow. */
void handmade_guard_thread_init(uintptr_t lo, uintptr_t hi) {
    overflow_lo = lo;
    overflow_hi = hi;
    guard_active = 0;
    memset(&guard_fault, 0, sizeof guard_fault);
}

static int collect_libc_text(struct dl_phdr_info *info, size_t size, void *unused) {
    (void)size;
    (void)unused;
    const char *name = info->dlpi_name;
    if (name == NULL || (strstr(name, "/libc.so") == NULL && strstr(name, "/ld-linux") == NULL))
        return 0;
    for (int i = 0; i < info->dlpi_phnum && libc_text_count < MAX_TEXT_RANGES; i++) {
        const ElfW(Phdr) *segment = &info->dlpi_phdr[i];
        if (segment->p_type != PT_LOAD || !(segment->p_flags & PF_X))
            continue;
        uintptr_t lo = info->dlpi_addr + segment->p_vaddr;
        libc_text[libc_text_count].lo = lo;
        libc_text[libc_text_count].hi = lo + segment->p_memsz;
        libc_text_count++;
    }
    return 0;
}

static uintptr_t interrupted_pc(const void *context) {
    const ucontext_t *uc = context;
#if defined(__x86_64__)
    return (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
    return (uintptr_t)uc->uc_mcontext.pc;
#else
    (void)uc;
    return 0;
#endif
}

static int in_libc(uintptr_t pc) {
    for (int i = 0; i < libc_text_count; i++)
        if (pc >= libc_text[i].lo && pc < libc_text[i].hi)
            return 1;
    return 0;
}

/* Whether to let this timeout signal for call `active` pass, to be sent again later. */
static int defer_timeout(uintptr_t active, const void *context) {
    if (deferred_call != active) {
        deferred_call = active;
        deferred_count = 0;
    }
    if (deferred_count >= MAX_TIMEOUT_DEFERRALS || !in_libc(interrupted_pc(context)))
        return 0;
    deferred_count++;
    return 1;
}

/* Installs the handler for the fault signals and `timeout`, saving the previous handlers.
 * Process-wide: Rust calls it once (under a lock) before the first guard, and
 * handmade_guard_restore_handlers after the last. Returns 0 or an errno. */
int handmade_guard_install_handlers(int timeout) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = handle;
    /* SA_ONSTACK: a stack overflow leaves no stack to run the handler on. SA_RESTART: a late
     * timeout signal (the call ended just as the watchdog fired) is ignored, and must not make a
     * system call of the platform's fail with EINTR either. */
    action.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
    timeout_signal = timeout;
    libc_text_count = 0;
    dl_iterate_phdr(collect_libc_text, NULL);
    sigemptyset(&handled_set);
    for (size_t i = 0; i < FAULT_SIGNAL_COUNT; i++)
        sigaddset(&handled_set, FAULT_SIGNALS[i]);
    sigaddset(&handled_set, timeout);
    /* No nesting: a timeout arriving during the handling of a fault waits, so the fault that
     * happened first is the one reported. */
    action.sa_mask = handled_set;
    for (size_t i = 0; i <= FAULT_SIGNAL_COUNT; i++) {
        int signo = i < FAULT_SIGNAL_COUNT ? FAULT_SIGNALS[i] : timeout;
        if (sigaction(signo, NULL, &previous[signo]) != 0 || sigaction(signo, &action, NULL) != 0)
            return errno;
    }
    return 0;
}

int handmade_guard_restore_handlers(void) {
    int failed = 0;
    for (size_t i = 0; i <= FAULT_SIGNAL_COUNT; i++) {
        int signo = i < FAULT_SIGNAL_COUNT ? FAULT_SIGNALS[i] : timeout_signal;
        if (sigaction(signo, &previous[signo], NULL) != 0)
            failed = errno;
    }
    return failed;
}

/* Signals sent by a process (kill, raise, abort, sigqueue) rather than by the CPU. */
static int sent_by_process(const siginfo_t *info) {
    return info->si_code <= 0;
}

/* Not ours to handle: behave as if our handler had never been installed. */
static void chain(int signo, siginfo_t *info, void *context) {
    const struct sigaction *prev = &previous[signo];
    if (prev->sa_flags & SA_SIGINFO) {
        prev->sa_sigaction(signo, info, context);
        return;
    }
    if (prev->sa_handler == SIG_IGN && (sent_by_process(info) || signo == timeout_signal))
        return;
    if (prev->sa_handler != SIG_IGN && prev->sa_handler != SIG_DFL) {
        prev->sa_handler(signo);
        return;
    }
    if (signo == timeout_signal)
        return; /* a late timeout for a call that already ended: its default would kill */
    /* The default action: put it back, and let the signal happen again. A CPU fault (SIGSEGV
     * on a bad address...) re-executes the instruction when this handler returns; a sent
     * signal is sent again, and is delivered as soon as the handler returns. */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(signo, &dfl, NULL);
    if (sent_by_process(info))
        raise(signo);
}

static void handle(int signo, siginfo_t *info, void *context) {
    int saved_errno = errno;
    uintptr_t active = guard_active;
    int ours = active != 0;
    if (ours && signo == timeout_signal) {
        ours = info->si_code == SI_QUEUE && info->si_pid == getpid() &&
               (uintptr_t)info->si_value.sival_ptr == active;
        if (ours && defer_timeout(active, context)) {
            errno = saved_errno;
            return;
        }
    }
    else if (ours && sent_by_process(info))
        /* abort()/raise() in the game: sent by this process; a kill from outside is not a
         * fault of the game's.
         * Jumping out of abort() leaves glibc consistent (read in glibc 2.36 stdlib/abort.c,
         * unchanged since the 2.27 rework): abort takes its recursive lock and unblocks
         * SIGABRT, but then sets `stage` back to 0 and releases the lock *before*
         * raise(SIGABRT), precisely so a handler may call abort again; and raise() on the
         * calling thread is a bare tgkill (no lock, no mask change). So no lock is left held and
         * the next abort() behaves like the first (the tests abort several times in a row).
         * Later glibc rewrote abort (2.41): re-check on an upgrade. */
        ours = info->si_pid == getpid();
    if (!ours) {
        chain(signo, info, context);
        errno = saved_errno;
        return;
    }
    uintptr_t address = 0;
    if (signo == SIGSEGV || signo == SIGBUS || signo == SIGILL || signo == SIGFPE)
        address = (uintptr_t)info->si_addr;
    guard_fault.signo = signo;
    guard_fault.address = address;
    guard_fault.timeout = signo == timeout_signal;
    guard_fault.overflow = (signo == SIGSEGV || signo == SIGBUS) && address >= overflow_lo &&
                           address < overflow_hi;
    guard_active = 0;
    siglongjmp(guard_jump, 1);
}
