//! Counts every heap allocation in the process: `malloc` and friends are defined here, exported
//! from the executable (see build.rs), and so interpose glibc's for Rust code, the game library
//! and the C libraries alike (alsa-lib, SDL2, libpulse). Each forwards to glibc's `__libc_*`.
//!
//! Counting is two relaxed atomic increments; no lock, no thread-local, no allocation. The
//! frame thread registers itself so its allocations can be told apart from helper threads'.
//!
//! Sanitizer builds (`.ci/sanitizers.sh`, `.ci/fuzz.sh`) pass `--cfg handmade_sanitizer`, which
//! leaves the exports out: AddressSanitizer and ThreadSanitizer interpose `malloc` themselves
//! (weakly), so ours would win, hide every heap allocation from the sanitizer and hand its
//! internal allocations to glibc's `free` (the process crashes before `main`). Counting is then
//! off and `is_active()` says so. Miri (its own `malloc` shim clashes with ours) leaves them out too.
// The cfg is set only through RUSTFLAGS by those scripts, so Cargo does not declare it.
#![allow(unexpected_cfgs)]

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

static ALL_THREADS: AtomicU64 = AtomicU64::new(0);
static FRAME_THREAD_COUNT: AtomicU64 = AtomicU64::new(0);
/// `pthread_self()` of the frame thread, 0 until `register_frame_thread`.
static FRAME_THREAD: AtomicUsize = AtomicUsize::new(0);

/// Marks the calling thread as the one running the frame loop.
pub fn register_frame_thread() {
    // SAFETY: `pthread_self` only reads the thread pointer; it cannot fail or allocate.
    FRAME_THREAD.store(unsafe { libc::pthread_self() } as usize, Relaxed);
}

/// Allocations so far, on any thread and on the frame thread.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AllocCounts {
    pub all_threads: u64,
    pub frame_thread: u64,
}

impl AllocCounts {
    pub fn now() -> Self {
        Self { all_threads: ALL_THREADS.load(Relaxed), frame_thread: FRAME_THREAD_COUNT.load(Relaxed) }
    }

    pub fn since(self, earlier: Self) -> Self {
        Self {
            all_threads: self.all_threads - earlier.all_threads,
            frame_thread: self.frame_thread - earlier.frame_thread,
        }
    }
}

/// True when this process's allocations really go through the functions below (they do when
/// the executable exports them; a binary linked without build.rs's flags would count nothing).
pub fn is_active() -> bool {
    let before = ALL_THREADS.load(Relaxed);
    let probe = std::hint::black_box(Box::new(0u64));
    drop(probe);
    ALL_THREADS.load(Relaxed) > before
}

#[cfg(not(any(handmade_sanitizer, miri)))]
mod interposer {
    use super::{Relaxed, ALL_THREADS, FRAME_THREAD, FRAME_THREAD_COUNT};
    use libc::{c_void, size_t};

    extern "C" {
        fn __libc_malloc(size: size_t) -> *mut c_void;
        fn __libc_calloc(n: size_t, size: size_t) -> *mut c_void;
        fn __libc_realloc(ptr: *mut c_void, size: size_t) -> *mut c_void;
        fn __libc_free(ptr: *mut c_void);
        fn __libc_memalign(align: size_t, size: size_t) -> *mut c_void;
    }

    #[inline]
    fn count() {
        ALL_THREADS.fetch_add(1, Relaxed);
        // SAFETY: `pthread_self` only reads the thread pointer; it cannot fail or allocate.
        let me = unsafe { libc::pthread_self() } as usize;
        if me == FRAME_THREAD.load(Relaxed) {
            FRAME_THREAD_COUNT.fetch_add(1, Relaxed);
        }
    }

    // SAFETY (for all exports below): each has exactly the C signature and contract of the
    // function it replaces and forwards to glibc's own implementation of it, so callers see
    // glibc's behaviour; the only addition is `count()`, which neither allocates nor locks.

    /// # Safety
    /// The C `malloc` contract.
    #[no_mangle]
    pub unsafe extern "C" fn malloc(size: size_t) -> *mut c_void {
        count();
        // SAFETY: see the note above the exports.
        unsafe { __libc_malloc(size) }
    }

    /// # Safety
    /// The C `calloc` contract.
    #[no_mangle]
    pub unsafe extern "C" fn calloc(n: size_t, size: size_t) -> *mut c_void {
        count();
        // SAFETY: see the note above the exports.
        unsafe { __libc_calloc(n, size) }
    }

    /// # Safety
    /// The C `realloc` contract.
    #[no_mangle]
    pub unsafe extern "C" fn realloc(ptr: *mut c_void, size: size_t) -> *mut c_void {
        count();
        // SAFETY: see the note above the exports.
        unsafe { __libc_realloc(ptr, size) }
    }

    /// # Safety
    /// The C `free` contract.
    #[no_mangle]
    pub unsafe extern "C" fn free(ptr: *mut c_void) {
        // SAFETY: see the note above the exports.
        unsafe { __libc_free(ptr) }
    }

    /// # Safety
    /// The C `memalign` contract.
    #[no_mangle]
    pub unsafe extern "C" fn memalign(align: size_t, size: size_t) -> *mut c_void {
        count();
        // SAFETY: see the note above the exports.
        unsafe { __libc_memalign(align, size) }
    }

    /// # Safety
    /// The C `aligned_alloc` contract.
    #[no_mangle]
    pub unsafe extern "C" fn aligned_alloc(align: size_t, size: size_t) -> *mut c_void {
        count();
        // SAFETY: see the note above the exports.
        unsafe { __libc_memalign(align, size) }
    }

    /// # Safety
    /// The C `posix_memalign` contract.
    #[no_mangle]
    pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: size_t, size: size_t) -> libc::c_int {
        count();
        let word = std::mem::size_of::<*mut c_void>();
        if align % word != 0 || !align.is_power_of_two() {
            return libc::EINVAL;
        }
        // SAFETY: see the note above the exports; `out` is valid per the caller's contract.
        unsafe {
            let ptr = __libc_memalign(align, size);
            if ptr.is_null() && size != 0 {
                return libc::ENOMEM;
            }
            *out = ptr;
        }
        0
    }
}
