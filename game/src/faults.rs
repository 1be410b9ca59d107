//! Faults the test variants commit on purpose (features in `game/Cargo.toml`, never default):
//! each is a real crash a real game can have, which the platform must contain. None of them
//! unwinds, so `guard` cannot catch them; they fire on every call, as `panic-update` does.
//! With no fault feature both functions are empty. `hitch` is the one that is no crash: a
//! slow frame now and then.

/// Called at the start of every `game_update_and_render`.
pub fn in_update() {
    #[cfg(feature = "null-write")]
    null_write();
    #[cfg(feature = "stack-overflow")]
    core::hint::black_box(recurse(0));
    #[cfg(feature = "endless-loop")]
    while core::hint::black_box(true) {
        core::hint::spin_loop(); // the condition is opaque to the optimiser: it cannot end
    }
    #[cfg(feature = "abort")]
    std::process::abort();
    #[cfg(feature = "sigfpe")]
    divide_by_zero();
    #[cfg(feature = "sigill")]
    illegal_instruction();
    #[cfg(feature = "loader-thread")]
    start_loader_thread();
    #[cfg(feature = "hitch")]
    hitch();
}

/// A game that hitches: every 45th frame takes 40 ms (a level load, a shader compile), more
/// than the sound queued at any usual latency, so the sound breaks for the rest. Not a crash:
/// the platform keeps it; the tests count the gaps it leaves.
#[cfg(feature = "hitch")]
fn hitch() {
    use std::sync::atomic::{AtomicU32, Ordering};
    static FRAMES: AtomicU32 = AtomicU32::new(0);
    if FRAMES.fetch_add(1, Ordering::Relaxed) % 45 == 44 {
        std::thread::sleep(std::time::Duration::from_millis(40));
    }
}

/// An asset loader that never finishes: a thread whose code lives in this library and keeps
/// running after the platform has swapped the library out. Started with `pthread_create`, as a
/// C game or a loader library would (a `std::thread` registers thread-local destructors, and
/// glibc then never unmaps the library, which would hide the fault).
#[cfg(feature = "loader-thread")]
fn start_loader_thread() {
    use core::ffi::c_void;
    use std::sync::atomic::{AtomicBool, Ordering};
    extern "C" {
        fn pthread_create(
            thread: *mut u64,
            attr: *const c_void,
            start: extern "C" fn(*mut c_void) -> *mut c_void,
            arg: *mut c_void,
        ) -> i32;
    }
    extern "C" fn load_forever(_: *mut c_void) -> *mut c_void {
        loop {
            std::thread::sleep(std::time::Duration::from_millis(5));
            core::hint::black_box(());
        }
    }
    static STARTED: AtomicBool = AtomicBool::new(false);
    if !STARTED.swap(true, Ordering::Relaxed) {
        let mut thread = 0u64;
        // SAFETY: `thread` is a valid out-pointer for the id, the attributes are the defaults,
        // and `load_forever` has the start routine's C signature.
        unsafe { pthread_create(&mut thread, core::ptr::null(), load_forever, core::ptr::null_mut()) };
    }
}

/// Called in every `game_output_sound`; faults once the stream has started.
#[cfg_attr(not(feature = "fault-sound"), allow(unused_variables))]
pub fn in_sound(running_sample_index: u64) {
    #[cfg(feature = "fault-sound")]
    if running_sample_index > 0 {
        null_write();
    }
}

#[cfg(any(feature = "null-write", feature = "fault-sound"))]
fn null_write() {
    // SAFETY: not sound, on purpose: the write faults (SIGSEGV) and the platform must contain
    // it. `write_volatile` keeps the optimiser from removing or reasoning about the store.
    unsafe { core::ptr::write_volatile(core::ptr::null_mut::<u32>(), 1) };
}

/// Recursion whose frames cannot be merged or turned into a loop: each keeps a 4 KiB array the
/// optimiser cannot see through, and its result is used after the call returns.
#[cfg(feature = "stack-overflow")]
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let mut frame = [0u8; 4096];
    frame[(depth % 4096) as usize] = depth as u8;
    let frame = core::hint::black_box(frame);
    if core::hint::black_box(depth) == u64::MAX {
        return 0;
    }
    recurse(depth + 1) + u64::from(frame[(depth % 4096) as usize])
}

#[cfg(all(feature = "sigfpe", target_arch = "x86_64"))]
fn divide_by_zero() {
    // SAFETY: not sound, on purpose: `idiv` by zero raises #DE (SIGFPE). Only the named
    // registers are touched. (Rust's own `/` would panic first, so it takes assembly.)
    unsafe {
        core::arch::asm!("xor edx, edx", "xor ecx, ecx", "mov eax, 1", "idiv ecx",
            out("eax") _, out("ecx") _, out("edx") _, options(nomem, nostack));
    }
}

#[cfg(all(feature = "sigill", target_arch = "x86_64"))]
fn illegal_instruction() {
    // SAFETY: not sound, on purpose: `ud2` is the defined invalid opcode (SIGILL).
    unsafe { core::arch::asm!("ud2", options(nomem, nostack)) };
}

#[cfg(all(any(feature = "sigfpe", feature = "sigill"), not(target_arch = "x86_64")))]
compile_error!("the `sigfpe` and `sigill` game variants are x86_64 only");
