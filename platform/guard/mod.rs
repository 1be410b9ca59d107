//! Fault containment for calls into the hot-reloaded game library, the way cr.h does it
//! (`cr_plugin_main` / `cr_signal_handler`): a SIGSEGV, SIGBUS, SIGILL, SIGFPE, abort() or stack
//! overflow inside a guarded call, or a call that runs past the timeout, returns a `GameFault` to
//! the platform instead of ending the process.
//!
//! ```no_run
//! use std::time::Duration;
//! use handmade::{CallGuard, GameCall};
//! let mut guard = CallGuard::install(Duration::from_millis(250)).expect("guard");
//! match guard.call(GameCall::UpdateAndRender, || 6 * 7) {
//!     Ok(answer) => assert_eq!(answer, 42),
//!     Err(fault) => log::error!("{fault}"), // then roll the game back or pause it
//! }
//! ```
//!
//! How: guard.c runs the call under `sigsetjmp`; its handler (installed process-wide, on an
//! alternate stack) `siglongjmp`s back when the signal comes from a guarded call on the faulting
//! thread, and otherwise chains to the handler that was there before, so the platform's own
//! crashes, and Rust's stack-overflow message, are as before. The watchdog thread sends a
//! real-time signal to interrupt a call that overruns (watchdog.rs).
//!
//! What cannot be contained: a wild write into the platform's own memory (the memory block the
//! game is given included) before the fault; and a call cut short while it held a lock: glibc's
//! (malloc, stdio, the loader's), or one of the game library's own statics (its std's stdout
//! lock in `println!`). The next taker of that lock deadlocks. The watchdog makes this likelier
//! than a crash does, since it interrupts at any instruction. The rule that the game allocates
//! nothing and calls only the platform's services keeps the window small; after a `Timeout` the
//! safest course is to reload the library (fresh statics) rather than keep calling it. A fault
//! is a bug to fix, not a mode to run in.

mod thread_stack;
mod watchdog;

#[cfg(test)]
mod tests;

use std::cell::Cell;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use thread_stack::AltStack;
use watchdog::{timeout_signal, Watchdog};

/// Which game call a fault happened in (for the one log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GameCall {
    UpdateAndRender,
    OutputSound,
    MigrateState,
}

impl GameCall {
    /// The game library's exported symbol for this call.
    pub fn symbol(self) -> &'static str {
        match self {
            GameCall::UpdateAndRender => "game_update_and_render",
            GameCall::OutputSound => "game_output_sound",
            GameCall::MigrateState => "game_migrate_state",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// SIGSEGV, SIGBUS, SIGILL, SIGFPE or SIGABRT.
    Signal(i32),
    StackOverflow,
    Timeout,
}

#[derive(Debug, Clone, Copy)]
pub struct GameFault {
    pub call: GameCall,
    pub kind: FaultKind,
    /// `si_addr` (the bad address, or the faulting instruction for SIGILL/SIGFPE); 0 if none.
    pub address: usize,
    /// From the start of the call to the fault.
    pub elapsed: Duration,
}

impl fmt::Display for GameFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let symbol = self.call.symbol();
        match self.kind {
            FaultKind::Timeout => {
                write!(f, "{symbol} ran for {} ms (--game-timeout-ms): interrupted", self.elapsed.as_millis())
            }
            FaultKind::StackOverflow => {
                write!(f, "game crashed in {symbol}: stack overflow at address {:#x}", self.address)
            }
            FaultKind::Signal(signal) => {
                write!(f, "game crashed in {symbol}: {}", signal_description(signal))?;
                if signal != libc::SIGABRT {
                    write!(f, " at address {:#x}", self.address)?;
                }
                Ok(())
            }
        }
    }
}

fn signal_description(signal: i32) -> String {
    let text = match signal {
        libc::SIGSEGV => "SIGSEGV (invalid memory access)",
        libc::SIGBUS => "SIGBUS (bus error: misaligned access or truncated mapping)",
        libc::SIGILL => "SIGILL (illegal instruction)",
        libc::SIGFPE => "SIGFPE (arithmetic fault, e.g. integer division by zero)",
        libc::SIGABRT => "SIGABRT (abort: a failed assertion or a panic)",
        other => return format!("signal {other}"),
    };
    text.to_string()
}

/// Mirrors `struct handmade_guard_fault` in guard.c.
#[repr(C)]
#[derive(Default)]
struct RawFault {
    signo: libc::c_int,
    overflow: libc::c_int,
    timeout: libc::c_int,
    address: usize,
}

extern "C" {
    fn handmade_guarded_call(f: extern "C" fn(*mut libc::c_void), ctx: *mut libc::c_void, id: usize) -> libc::c_int;
    fn handmade_guard_last_fault(out: *mut RawFault);
    fn handmade_guard_thread_init(overflow_lo: usize, overflow_hi: usize);
    fn handmade_guard_install_handlers(timeout_signal: libc::c_int) -> libc::c_int;
    fn handmade_guard_restore_handlers() -> libc::c_int;
}

/// Guards the calling thread's calls into the game. One per frame thread, built before warm-up
/// (it allocates: the alternate signal stack, the watchdog thread). Not `Send`: its state is
/// the thread's.
pub struct CallGuard {
    // Dropped in this order: the watchdog is stopped before the handlers can go.
    watchdog: Watchdog,
    _alt_stack: AltStack,
    _handlers: HandlersInUse,
    next_call: usize,
    _this_thread: PhantomData<*mut ()>,
}

thread_local! {
    static THREAD_GUARDED: Cell<bool> = const { Cell::new(false) };
}

impl CallGuard {
    /// Installs the signal handlers (process-wide, once for all guards; SA_SIGINFO|SA_ONSTACK,
    /// chaining to the previous handler for faults outside guarded calls), an alternate signal
    /// stack for this thread, and starts the watchdog thread. A second guard on the same thread
    /// is refused (AlreadyExists).
    pub fn install(timeout: Duration) -> io::Result<CallGuard> {
        if THREAD_GUARDED.get() {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, "this thread already has a CallGuard"));
        }
        let (overflow_lo, overflow_hi) = thread_stack::overflow_range()?;
        let handlers = HandlersInUse::acquire()?;
        let alt_stack = AltStack::install()?;
        unblock_timeout_signal()?;
        // SAFETY: only sets this thread's thread-locals in guard.c.
        unsafe { handmade_guard_thread_init(overflow_lo, overflow_hi) };
        let watchdog = Watchdog::start(timeout)?;
        THREAD_GUARDED.set(true);
        Ok(CallGuard { watchdog, _alt_stack: alt_stack, _handlers: handlers, next_call: 1, _this_thread: PhantomData })
    }

    /// Runs `f` guarded. No heap allocation, lock or system call on this path: two atomic
    /// stores arm and disarm the watchdog, the clock read is vDSO, and sigsetjmp does not save
    /// the signal mask (which would be an rt_sigprocmask per call). The fault path restores the
    /// mask itself (`pthread_sigmask` in guard.c, plus `getpid` for abort()).
    ///
    /// After a fault the frames between this call and the fault are gone without having run
    /// their destructors: `f`'s captures are leaked, and the game's state must be thrown away.
    ///
    /// A panic in `f` itself (platform code in the closure) is not a fault: it propagates.
    #[inline]
    pub fn call<R>(&mut self, call: GameCall, f: impl FnOnce() -> R) -> Result<R, GameFault> {
        let id = self.next_call;
        self.next_call = self.next_call.wrapping_add(2);
        let started = Instant::now();
        self.watchdog.arm(id, started);
        let mut slot = CallSlot { f: Some(f), out: MaybeUninit::uninit() };
        let run = trampoline_for(&slot);
        let ctx: *mut CallSlot<_, R> = &mut slot;
        // SAFETY: `ctx` points to `slot`, which outlives the call, and `trampoline` is
        // instantiated for exactly its type. Jumping out of `f` on a fault skips the frames
        // between guard.c and the fault without running destructors, which is sound to do
        // here because of what those frames hold: `trampoline` holds no value with a destructor
        // while `f` runs (the closure was moved into the call; the result is written through
        // the pointer only after `f` returned), so skipping it leaks at most `f`'s captures; and
        // the game's frames belong to a library whose state the platform throws away (rolls
        // back or pauses) after a fault. guard.c's frame, which `siglongjmp` returns into, is
        // live: it is the one calling `f`.
        let faulted = unsafe { handmade_guarded_call(run, ctx.cast(), id) };
        self.watchdog.disarm(id);
        if faulted == 0 {
            // SAFETY: guard.c returned 0 only after `trampoline` returned normally, and it
            // writes `out` before returning.
            return match unsafe { slot.out.assume_init() } {
                Ok(value) => Ok(value),
                Err(panic) => panic::resume_unwind(panic),
            };
        }
        Err(last_fault(call, started.elapsed()))
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        THREAD_GUARDED.set(false);
    }
}

/// What a guarded call runs: the closure, then where its result goes.
struct CallSlot<F, R> {
    f: Option<F>,
    out: MaybeUninit<thread::Result<R>>,
}

/// `trampoline` for the slot's (unnameable, `impl FnOnce`) closure type.
fn trampoline_for<F: FnOnce() -> R, R>(_: &CallSlot<F, R>) -> extern "C" fn(*mut libc::c_void) {
    trampoline::<F, R>
}

/// Called by guard.c with the `CallSlot` pointer. A panic is caught here and handed back to
/// `call`, which resumes it: it must not unwind into C.
extern "C" fn trampoline<F: FnOnce() -> R, R>(ctx: *mut libc::c_void) {
    // SAFETY: `call` passes a pointer to its own live `CallSlot<F, R>`, used by nobody else
    // until this returns (or jumps out).
    let slot = unsafe { &mut *ctx.cast::<CallSlot<F, R>>() };
    if let Some(f) = slot.f.take() {
        let result = panic::catch_unwind(AssertUnwindSafe(f));
        slot.out.write(result);
    }
}

fn last_fault(call: GameCall, elapsed: Duration) -> GameFault {
    let mut raw = RawFault::default();
    // SAFETY: copies this thread's last fault record into a valid `RawFault`.
    unsafe { handmade_guard_last_fault(&mut raw) };
    let kind = if raw.timeout != 0 {
        FaultKind::Timeout
    } else if raw.overflow != 0 {
        FaultKind::StackOverflow
    } else {
        FaultKind::Signal(raw.signo)
    };
    GameFault { call, kind, address: raw.address, elapsed }
}

/// The watchdog's signal must get through on the frame thread.
fn unblock_timeout_signal() -> io::Result<()> {
    // SAFETY: `set` is initialised by `sigemptyset` before use; only this thread's mask changes.
    let error = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, timeout_signal());
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut())
    };
    if error == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(error))
    }
}

/// How many `CallGuard`s exist: the process-wide handlers are installed when the first one is
/// made and the previous ones restored when the last one goes.
static HANDLER_USERS: Mutex<usize> = Mutex::new(0);

struct HandlersInUse;

impl HandlersInUse {
    fn acquire() -> io::Result<HandlersInUse> {
        let mut users = HANDLER_USERS.lock().unwrap_or_else(PoisonError::into_inner);
        if *users == 0 {
            // SAFETY: guard.c's handler is async-signal-safe; installing under the lock means
            // no other guard installs or restores at the same time.
            let error = unsafe { handmade_guard_install_handlers(timeout_signal()) };
            if error != 0 {
                // SAFETY: as above; puts back whatever was saved before the failure.
                unsafe { handmade_guard_restore_handlers() };
                return Err(io::Error::from_raw_os_error(error));
            }
        }
        *users += 1;
        Ok(HandlersInUse)
    }
}

impl Drop for HandlersInUse {
    fn drop(&mut self) {
        let mut users = HANDLER_USERS.lock().unwrap_or_else(PoisonError::into_inner);
        *users -= 1;
        if *users == 0 {
            // SAFETY: no guard is left, so no guarded call runs and no watchdog can send.
            let error = unsafe { handmade_guard_restore_handlers() };
            if error != 0 {
                log::warn!("guard: restoring the previous signal handlers: {}", io::Error::from_raw_os_error(error));
            }
        }
    }
}
