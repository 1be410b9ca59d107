//! Tests of the game-call guard: each fault it must contain, raised for real inside a guarded
//! call on the test's thread; and, in child processes (this test binary run again), the faults it
//! must not hide and the allocations it must not make.
//!
//! Under `.ci/sanitizers.sh` (`--cfg handmade_sanitizer`) AddressSanitizer's own SIGSEGV handler
//! is the previous handler, so a fault outside a guarded call ends the process with ASan's report
//! and exit status instead of the signal; and allocation counting is off.
// The cfg is set only through RUSTFLAGS by that script, so Cargo does not declare it.
#![allow(unexpected_cfgs)]

use std::hint::black_box;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output};
use std::time::Duration;

use super::*;

/// Long enough that only the timeout tests ever see the watchdog fire, even on a loaded machine.
const NO_TIMEOUT: Duration = Duration::from_secs(30);
const CHILD_ENV: &str = "HANDMADE_GUARD_CHILD";

fn guard() -> CallGuard {
    CallGuard::install(NO_TIMEOUT).expect("install the guard")
}

/// This thread's signal mask (as a comparable byte image).
fn signal_mask() -> Vec<u8> {
    // SAFETY: queries this thread's mask into a zeroed `sigset_t`.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_SETMASK, std::ptr::null(), &mut set);
        set
    };
    // SAFETY: `sigset_t` is plain bytes.
    unsafe { std::slice::from_raw_parts((&set as *const libc::sigset_t).cast::<u8>(), std::mem::size_of_val(&set)) }
        .to_vec()
}

/// Runs `fault` guarded, checks that it faulted, that the thread's signal mask is as before,
/// and that the next guarded calls run normally and return their value.
fn fault_then_recover(guard: &mut CallGuard, fault: impl FnOnce()) -> GameFault {
    let mask = signal_mask();
    let result = guard.call(GameCall::UpdateAndRender, fault);
    let fault = result.expect_err("the call must fault");
    assert_eq!(signal_mask(), mask, "the signal mask after the fault differs from before");
    for i in 0..3u64 {
        assert_eq!(guard.call(GameCall::OutputSound, || black_box(i) * 2).ok(), Some(i * 2));
    }
    fault
}

fn write_null() {
    // SAFETY: deliberately not safe: the fault under test. `memset` is plain FFI, so no Rust
    // debug check turns the null pointer into a panic first.
    unsafe { libc::memset(black_box(std::ptr::null_mut()), 0, 4) };
}

/// True (and says why) under ASan: its instrumented frames are not stack-probed (a 33 KiB frame
/// is one `sub rsp` and then written from its lowest address), so a deep recursion jumps over
/// the guard page into whatever mapping lies below, another thread's stack, instead of faulting.
fn cannot_overflow_safely() -> bool {
    if cfg!(handmade_sanitizer) {
        eprintln!("skipped: sanitizer builds do not probe the stack, so overflowing it corrupts other threads");
    }
    cfg!(handmade_sanitizer)
}

#[inline(never)]
fn recurse(depth: usize) -> usize {
    let frame = black_box([depth as u8; 16 * 1024]);
    if black_box(depth) < usize::MAX {
        recurse(depth + 1) + frame[depth % frame.len()] as usize
    } else {
        0
    }
}

#[test]
fn null_write_is_sigsegv_at_address_zero() {
    let mut guard = guard();
    let fault = fault_then_recover(&mut guard, write_null);
    assert_eq!(fault.kind, FaultKind::Signal(libc::SIGSEGV));
    assert_eq!(fault.address, 0);
    assert_eq!(fault.call, GameCall::UpdateAndRender);
}

#[test]
fn stack_overflow_is_reported_as_such() {
    if cannot_overflow_safely() {
        return;
    }
    let mut guard = guard();
    let fault = fault_then_recover(&mut guard, || {
        black_box(recurse(0));
    });
    assert_eq!(fault.kind, FaultKind::StackOverflow, "{fault}");
    // Again: the guard page and the alternate stack are reusable.
    let fault = fault_then_recover(&mut guard, || {
        black_box(recurse(0));
    });
    assert_eq!(fault.kind, FaultKind::StackOverflow, "{fault}");
}

#[test]
fn abort_is_sigabrt_and_can_happen_again() {
    let mut guard = guard();
    for _ in 0..3 {
        // SAFETY: `abort` has no preconditions; ending the call is the point.
        let fault = fault_then_recover(&mut guard, || unsafe { libc::abort() });
        assert_eq!(fault.kind, FaultKind::Signal(libc::SIGABRT));
        assert_eq!(fault.address, 0);
    }
    let fault = fault_then_recover(&mut guard, || std::process::abort());
    assert_eq!(fault.kind, FaultKind::Signal(libc::SIGABRT));
}

#[cfg(target_arch = "x86_64")]
#[test]
fn ud2_is_sigill() {
    let mut guard = guard();
    // SAFETY: `ud2` raises SIGILL, the fault under test; it touches no memory.
    let fault = fault_then_recover(&mut guard, || unsafe { core::arch::asm!("ud2") });
    assert_eq!(fault.kind, FaultKind::Signal(libc::SIGILL));
    assert_ne!(fault.address, 0, "SIGILL reports the instruction's address");
}

#[cfg(target_arch = "x86_64")]
#[test]
fn division_by_zero_is_sigfpe() {
    let mut guard = guard();
    // SAFETY: `div` by a zero register raises SIGFPE (#DE), the fault under test; only the
    // declared registers change.
    let fault = fault_then_recover(&mut guard, || unsafe {
        core::arch::asm!("div {0:e}", in(reg) black_box(0u32), inout("eax") 1u32 => _, inout("edx") 0u32 => _);
    });
    assert_eq!(fault.kind, FaultKind::Signal(libc::SIGFPE));
}

#[test]
fn endless_loop_is_interrupted_after_the_timeout() {
    let timeout = Duration::from_millis(100);
    let mut guard = CallGuard::install(timeout).expect("install the guard");
    let fault = fault_then_recover(&mut guard, || loop {
        black_box(0);
    });
    assert_eq!(fault.kind, FaultKind::Timeout);
    assert!(fault.elapsed >= timeout, "interrupted after {:?}, before the timeout", fault.elapsed);
    let line = fault.to_string();
    assert!(
        line.starts_with("game_update_and_render ran for ") && line.ends_with(" ms (--game-timeout-ms): interrupted"),
        "{line}"
    );
}

#[test]
fn a_timeout_inside_glibc_waits_for_later_signals_then_interrupts() {
    // Blocked in glibc's nanosleep: each signal finds the call inside glibc (where jumping out
    // could leave a lock held), so the guard lets three pass before it interrupts.
    let timeout = Duration::from_millis(50);
    let mut guard = CallGuard::install(timeout).expect("install the guard");
    let fault = fault_then_recover(&mut guard, || loop {
        // SAFETY: `usleep` has no preconditions.
        unsafe { libc::usleep(1_000_000) };
    });
    assert_eq!(fault.kind, FaultKind::Timeout);
    assert!(fault.elapsed >= 4 * timeout, "interrupted after {:?}, before the fourth signal", fault.elapsed);
}

#[test]
fn calls_shorter_than_the_timeout_are_left_alone() {
    let mut guard = CallGuard::install(Duration::from_millis(50)).expect("install the guard");
    // Many short calls spread over several timeouts: none may be interrupted, although the
    // watchdog sees them armed and the sum of their durations is far past the timeout.
    for i in 0..40u64 {
        let value = guard.call(GameCall::UpdateAndRender, || {
            std::thread::sleep(Duration::from_millis(5));
            i
        });
        assert_eq!(value.ok(), Some(i));
    }
}

#[test]
fn a_timeout_signal_for_another_call_is_ignored() {
    let mut guard = guard();
    // SAFETY: `pthread_self` only reads the thread pointer.
    let me = unsafe { libc::pthread_self() };
    let send = move |id: usize| {
        let value = libc::sigval { sival_ptr: id as *mut libc::c_void };
        // SAFETY: this thread is alive; the handler for the signal is installed (`guard`).
        assert_eq!(unsafe { libc::pthread_sigqueue(me, timeout_signal(), value) }, 0);
    };
    // Call ids are 1, 3, 5...: this first call is 1.
    assert_eq!(guard.call(GameCall::UpdateAndRender, || black_box(1)).ok(), Some(1));
    // Outside any call (a late signal after call 1 ended): ignored, not fatal.
    send(1);
    // Inside call 3, but for call 1 or a call to come: ignored; the call finishes.
    let value = guard.call(GameCall::UpdateAndRender, || {
        send(1);
        send(5);
        black_box(7)
    });
    assert_eq!(value.ok(), Some(7));
    // For the running call (5) itself, sent from another thread while the call runs its own
    // code (not glibc's: see the next test): that is a timeout.
    let running = std::sync::atomic::AtomicBool::new(false);
    let fault = thread::scope(|scope| {
        scope.spawn(|| {
            while !running.load(std::sync::atomic::Ordering::Acquire) {
                thread::yield_now();
            }
            send(5);
        });
        fault_then_recover(&mut guard, || {
            running.store(true, std::sync::atomic::Ordering::Release);
            loop {
                black_box(0);
            }
        })
    });
    assert_eq!(fault.kind, FaultKind::Timeout);
    assert!(fault.elapsed < NO_TIMEOUT, "the watchdog ended the call, not the signal sent");
}

#[test]
fn a_lost_timeout_signal_is_sent_again() {
    let timeout = Duration::from_millis(100);
    let mut guard = CallGuard::install(timeout).expect("install the guard");
    let fault = fault_then_recover(&mut guard, || {
        // SAFETY: blocks, takes one pending instance of, and unblocks the watchdog's signal on
        // this thread; `set` is initialised by `sigemptyset` first.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, timeout_signal());
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            let wait = libc::timespec { tv_sec: 10, tv_nsec: 0 };
            assert_eq!(libc::sigtimedwait(&set, std::ptr::null_mut(), &wait), timeout_signal());
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        }
        loop {
            black_box(0);
        }
    });
    assert_eq!(fault.kind, FaultKind::Timeout);
    assert!(fault.elapsed >= 2 * timeout, "interrupted after {:?}, before the second deadline", fault.elapsed);
}

#[test]
fn dropping_the_guard_puts_the_alternate_stack_back() {
    let alt_stack = || {
        let mut current = libc::stack_t { ss_sp: std::ptr::null_mut(), ss_flags: 0, ss_size: 0 };
        // SAFETY: only queries this thread's alternate stack.
        assert_eq!(unsafe { libc::sigaltstack(std::ptr::null(), &mut current) }, 0);
        (current.ss_sp as usize, current.ss_flags, current.ss_size)
    };
    let before = alt_stack();
    let guard = guard();
    assert_ne!(alt_stack(), before, "the guard installs its own alternate stack");
    drop(guard);
    assert_eq!(alt_stack(), before);
}

#[test]
fn a_panic_in_the_closure_propagates_and_the_guard_still_works() {
    let mut guard = guard();
    let caught = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let _ = guard.call(GameCall::MigrateState, || panic!("platform bug"));
    }));
    assert!(caught.is_err(), "the panic must reach the caller");
    let fault = fault_then_recover(&mut guard, write_null);
    assert_eq!(fault.kind, FaultKind::Signal(libc::SIGSEGV));
}

#[test]
fn a_second_guard_on_the_same_thread_is_refused() {
    let _guard = guard();
    let second = CallGuard::install(NO_TIMEOUT).err().map(|e| e.kind());
    assert_eq!(second, Some(io::ErrorKind::AlreadyExists));
}

#[test]
fn guards_on_two_threads_keep_their_faults_apart() {
    // One thread hangs until its watchdog interrupts it; the other, meanwhile, makes normal
    // calls and one crash. Each sees exactly its own faults.
    let hanging = thread::spawn(|| {
        let mut guard = CallGuard::install(Duration::from_millis(200)).expect("install");
        fault_then_recover(&mut guard, || loop {
            black_box(0);
        })
        .kind
    });
    let busy = thread::spawn(|| {
        let mut guard = CallGuard::install(Duration::from_secs(30)).expect("install");
        let mut sum = 0u64;
        for i in 0..200_000u64 {
            sum += guard.call(GameCall::OutputSound, || black_box(i)).expect("a normal call");
        }
        (sum, fault_then_recover(&mut guard, write_null).kind)
    });
    assert_eq!(hanging.join().expect("hanging thread"), FaultKind::Timeout);
    let (sum, kind) = busy.join().expect("busy thread");
    assert_eq!(sum, (0..200_000u64).sum::<u64>());
    assert_eq!(kind, FaultKind::Signal(libc::SIGSEGV));
}

#[test]
fn fault_lines_name_the_call_and_the_signal() {
    let fault = |kind, address| GameFault {
        call: GameCall::UpdateAndRender,
        kind,
        address,
        elapsed: Duration::from_millis(250),
    };
    assert_eq!(
        fault(FaultKind::Signal(libc::SIGSEGV), 0).to_string(),
        "game crashed in game_update_and_render: SIGSEGV (invalid memory access) at address 0x0"
    );
    assert_eq!(
        fault(FaultKind::Timeout, 0).to_string(),
        "game_update_and_render ran for 250 ms (--game-timeout-ms): interrupted"
    );
    assert_eq!(
        fault(FaultKind::Signal(libc::SIGABRT), 0).to_string(),
        "game crashed in game_update_and_render: SIGABRT (abort: a failed assertion or a panic)"
    );
    let overflow = GameFault { call: GameCall::OutputSound, ..fault(FaultKind::StackOverflow, 0x7000) };
    assert_eq!(overflow.to_string(), "game crashed in game_output_sound: stack overflow at address 0x7000");
}

// ---- In child processes -------------------------------------------------------------------

/// Runs `child_process` below in a fresh copy of this test binary, as `case`.
fn run_child(case: &str) -> Output {
    let exe = std::env::current_exe().expect("the test binary's path");
    Command::new(exe)
        .args(["guard::tests::child_process", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, case)
        .output()
        .expect("run the test binary again")
}

/// The child died of `signal`, as it would have without the guard (or, under ASan, of ASan's
/// report, when ASan's handler was the one before ours).
fn assert_killed_by(output: &Output, signal: libc::c_int) {
    if cfg!(handmade_sanitizer) && output.status.signal().is_none() {
        assert!(String::from_utf8_lossy(&output.stderr).contains("AddressSanitizer"), "{output:?}");
        assert!(!output.status.success(), "{output:?}");
    } else {
        assert_eq!(output.status.signal(), Some(signal), "{output:?}");
    }
}

#[test]
fn a_fault_outside_a_guarded_call_still_kills() {
    let output = run_child("segv-outside");
    assert_killed_by(&output, libc::SIGSEGV);
    assert!(String::from_utf8_lossy(&output.stdout).contains("guarded call survived"), "{output:?}");
}

#[test]
fn a_stack_overflow_outside_a_guarded_call_still_gets_rusts_message() {
    if cannot_overflow_safely() {
        return;
    }
    let output = run_child("overflow-outside");
    assert_eq!(output.status.signal(), Some(libc::SIGABRT), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("has overflowed its stack"), "{stderr}");
}

#[test]
fn an_abort_outside_a_guarded_call_still_aborts() {
    let output = run_child("abort-outside");
    assert_eq!(output.status.signal(), Some(libc::SIGABRT), "{output:?}");
}

#[test]
fn the_last_guard_puts_the_previous_handlers_back() {
    let output = run_child("restore");
    assert!(output.status.success(), "{output:?}");
}

#[test]
fn guarded_calls_allocate_nothing() {
    if cfg!(handmade_sanitizer) {
        eprintln!("skipped: allocation counting is off in sanitizer builds");
        return;
    }
    let output = run_child("allocations");
    assert!(output.status.success(), "{output:?}");
}

#[test]
#[ignore = "the child process of the tests above; does nothing on its own"]
fn child_process() {
    let Ok(case) = std::env::var(CHILD_ENV) else { return };
    if case == "restore" {
        check_handlers_restored();
    }
    // Short enough for the allocation case to wait for one timeout; no other case hangs.
    let mut guard = CallGuard::install(Duration::from_secs(1)).expect("install the guard");
    match case.as_str() {
        "segv-outside" => {
            assert!(guard.call(GameCall::UpdateAndRender, write_null).is_err());
            println!("guarded call survived");
            write_null();
        }
        "overflow-outside" => {
            black_box(recurse(0));
        }
        "abort-outside" => std::process::abort(),
        "allocations" => count_allocations(&mut guard),
        other => panic!("unknown child case {other}"),
    }
    panic!("the {case} case should not have got here");
}

/// Fails unless counting works here and normal calls, and every fault path, allocate nothing on
/// the calling thread.
fn count_allocations(guard: &mut CallGuard) {
    use crate::alloc_count::{self, AllocCounts};
    assert!(alloc_count::is_active(), "allocation counting is off in this test binary");
    alloc_count::register_frame_thread();
    let before = AllocCounts::now();
    for i in 0..10_000u64 {
        assert_eq!(guard.call(GameCall::OutputSound, || black_box(i)).ok(), Some(i));
    }
    let faults = [
        guard.call(GameCall::UpdateAndRender, write_null),
        // SAFETY: `abort` has no preconditions; ending the call is the point.
        guard.call(GameCall::UpdateAndRender, || unsafe { libc::abort() }),
        guard.call(GameCall::UpdateAndRender, || {
            black_box(recurse(0));
        }),
        guard.call(GameCall::UpdateAndRender, || loop {
            black_box(0);
        }),
    ];
    let kinds = faults.map(|fault| fault.expect_err("a fault").kind);
    let expected = [libc::SIGSEGV, libc::SIGABRT].map(FaultKind::Signal);
    assert_eq!(kinds, [expected[0], expected[1], FaultKind::StackOverflow, FaultKind::Timeout]);
    let counted = AllocCounts::now().since(before);
    assert_eq!(counted.frame_thread, 0, "guarded calls allocated");
    std::process::exit(0);
}

/// In a process where no other guard exists: the handlers before the first guard are the ones
/// after the last (here, Rust's stack-overflow handler for SIGSEGV and SIGBUS).
fn check_handlers_restored() {
    let signals = [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE, libc::SIGABRT, timeout_signal()];
    let handlers = || {
        signals.map(|signal| {
            // SAFETY: only queries the current action into a zeroed struct.
            let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
            // SAFETY: as above.
            assert_eq!(unsafe { libc::sigaction(signal, std::ptr::null(), &mut action) }, 0);
            // glibc adds SA_RESTORER to every action it installs, SIG_DFL put back included.
            const SA_RESTORER: libc::c_int = 0x0400_0000;
            (action.sa_sigaction, action.sa_flags & !SA_RESTORER)
        })
    };
    let before = handlers();
    let first = guard();
    let during = handlers();
    let second = thread::spawn(|| drop(guard()));
    second.join().expect("a guard on another thread");
    assert_eq!(handlers(), during, "a guard other than the last one restored the handlers");
    drop(first);
    assert_ne!(during, before);
    assert_eq!(handlers(), before);
    std::process::exit(0);
}
