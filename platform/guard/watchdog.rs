//! The watchdog thread of a `CallGuard`: interrupts a guarded call that runs past the timeout.
//!
//! The frame thread arms and disarms it with two atomic stores per call (no lock, no system
//! call, no allocation); the watchdog polls them. When the armed call has run past the timeout
//! it sends the frame thread `timeout_signal()` with `pthread_sigqueue`, carrying the call's id,
//! and the handler (guard.c) jumps out of the call only if that id is still the running call's.
//!
//! "Run past the timeout" means the frame thread spent that much CPU time in the call, not that
//! that much wall time passed: a process stopped (Ctrl-Z, a debugger) or starved of CPU by
//! other processes must not look like a game stuck in a loop. A call that blocks without using
//! CPU is interrupted once it has lasted `WALL_CAP_FACTOR` timeouts of wall time.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The signal the watchdog sends: a real-time one, because it queues and carries a value (the
/// call id, so a late signal for a call that already ended is recognised and ignored), and
/// because SDL2, ALSA and PulseAudio leave these alone. `SIGRTMIN + 1` rather than `SIGRTMIN`,
/// the one other libraries pick first; glibc's own two (32, 33) lie below `SIGRTMIN()`.
pub fn timeout_signal() -> libc::c_int {
    libc::SIGRTMIN() + 1
}

/// A call blocked (not spinning) is interrupted after this many timeouts of wall time.
const WALL_CAP_FACTOR: u64 = 20;

/// State both threads see. `call` is odd while a call is armed (its id), even otherwise.
struct Shared {
    base: Instant,
    call: AtomicUsize,
    started_ns: AtomicU64,
    stop: AtomicBool,
}

pub struct Watchdog {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    /// Starts the watchdog for the calling thread.
    pub fn start(timeout: Duration) -> io::Result<Watchdog> {
        let shared = Arc::new(Shared {
            base: Instant::now(),
            call: AtomicUsize::new(0),
            started_ns: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        // SAFETY: `pthread_self` only reads the thread pointer. The id stays valid for the
        // watchdog's whole life: `CallGuard` is !Send and joins the watchdog when dropped, so the
        // target thread outlives every `pthread_sigqueue` to it.
        let target = unsafe { libc::pthread_self() };
        let mut cpu_clock: libc::clockid_t = 0;
        // SAFETY: `target` is this (live) thread and `cpu_clock` a valid out-pointer.
        let error = unsafe { libc::pthread_getcpuclockid(target, &mut cpu_clock) };
        if error != 0 {
            return Err(io::Error::from_raw_os_error(error));
        }
        let seen = Arc::clone(&shared);
        let thread = thread::Builder::new().name("game-watchdog".into()).spawn(move || {
            let _platform = crate::reload::platform_thread();
            watch(&seen, target, cpu_clock, timeout);
        })?;
        Ok(Watchdog { shared, thread: Some(thread) })
    }

    /// Marks call `id` (odd) as started now. Two stores; `started_ns` before `call`, so a
    /// watchdog that sees the id sees this start time or a later one (never fires early).
    #[inline]
    pub fn arm(&self, id: usize, now: Instant) {
        debug_assert!(id % 2 == 1, "call ids are odd; even means disarmed");
        let ns = now.saturating_duration_since(self.shared.base).as_nanos() as u64;
        self.shared.started_ns.store(ns, Ordering::Relaxed);
        self.shared.call.store(id, Ordering::Release);
    }

    #[inline]
    pub fn disarm(&self, id: usize) {
        self.shared.call.store(id.wrapping_add(1), Ordering::Release);
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// Polls in steps of a tenth of the timeout (1 to 10 ms) while nothing is armed, and sleeps to
/// the deadline once a call is. Fires when the frame thread has spent the timeout's worth of
/// CPU time in the call (or the wall-time cap passed), and again each further timeout the same
/// call is still armed: a signal that landed in the few instructions between arming and guard.c
/// marking the call active was ignored, and the call must still end.
fn watch(shared: &Shared, target: libc::pthread_t, cpu_clock: libc::clockid_t, timeout: Duration) {
    let step = (timeout / 10).clamp(Duration::from_millis(1), Duration::from_millis(10));
    let timeout_ns = timeout.as_nanos() as u64;
    let mut fired = (0usize, 0u64);
    // The call being watched and the frame thread's CPU time when the watchdog first saw it
    // (at most one `step` after it started, so the CPU it counts is short by at most a step).
    let mut watching = (0usize, 0u64);
    while !shared.stop.load(Ordering::Acquire) {
        let call = shared.call.load(Ordering::Acquire);
        if call % 2 == 0 {
            thread::park_timeout(step);
            continue;
        }
        if watching.0 != call {
            watching = (call, cpu_ns(cpu_clock));
        }
        let started = shared.started_ns.load(Ordering::Relaxed);
        let now = shared.base.elapsed().as_nanos() as u64;
        let over = if fired.0 == call {
            now.saturating_sub(fired.1) >= timeout_ns
        } else {
            let cpu = cpu_ns(cpu_clock).saturating_sub(watching.1) + step.as_nanos() as u64;
            let wall = now.saturating_sub(started);
            (wall >= timeout_ns && cpu >= timeout_ns) || wall >= timeout_ns.saturating_mul(WALL_CAP_FACTOR)
        };
        if !over {
            thread::park_timeout(step.max(Duration::from_millis(1)));
            continue;
        }
        interrupt(target, call);
        fired = (call, now);
    }
}

/// The frame thread's CPU time in nanoseconds (a system call, on the watchdog's thread only).
fn cpu_ns(clock: libc::clockid_t) -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `clock` came from `pthread_getcpuclockid` for a thread that outlives the watchdog,
    // and `now` is a valid out-pointer.
    if unsafe { libc::clock_gettime(clock, &mut now) } != 0 {
        return u64::MAX; // cannot tell: let wall time decide
    }
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

fn interrupt(target: libc::pthread_t, call: usize) {
    let value = libc::sigval { sival_ptr: call as *mut libc::c_void };
    // SAFETY: `target` is a live thread (see `Watchdog::start`); the handler for the signal is
    // installed for as long as any `CallGuard` exists, and this watchdog belongs to one.
    let error = unsafe { libc::pthread_sigqueue(target, timeout_signal(), value) };
    if error != 0 {
        log::error!("game watchdog: cannot interrupt the frame thread: {}", io::Error::from_raw_os_error(error));
    }
}
