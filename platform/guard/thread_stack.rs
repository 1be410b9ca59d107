//! The frame thread's stacks, as `CallGuard::install` sets them up: an alternate signal stack
//! (the handler must run somewhere when the thread's own stack has overflowed) and the address
//! range in which a fault means "stack overflow".

use std::io;
use std::ptr;

/// Room for guard.c's handler, and for the previous handler it may chain to (Rust's prints the
/// stack-overflow message from there). Rust's own alternate stacks are SIGSTKSZ (8 KiB here).
const ALT_STACK_SIZE: usize = 64 * 1024;

fn page_size() -> usize {
    // SAFETY: `sysconf` has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}

fn check(result: libc::c_int) -> io::Result<()> {
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// An mmap'ed alternate signal stack, with a PROT_NONE page below it, installed for the
/// calling thread; dropping it puts the previous one (Rust's, usually) back.
pub struct AltStack {
    map: *mut libc::c_void,
    len: usize,
    previous: libc::stack_t,
}

impl AltStack {
    pub fn install() -> io::Result<AltStack> {
        let page = page_size();
        let len = ALT_STACK_SIZE + page;
        // SAFETY: a fresh anonymous private mapping; no existing memory is touched.
        let map = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mut alt = AltStack { map, len, previous: zeroed_stack() };
        // SAFETY: the first page lies inside the mapping just made, which nothing else uses.
        check(unsafe { libc::mprotect(map, page, libc::PROT_NONE) })?;
        let top_part = map.cast::<u8>().wrapping_add(page).cast();
        let stack = libc::stack_t { ss_sp: top_part, ss_flags: 0, ss_size: ALT_STACK_SIZE };
        // SAFETY: both pointers are to valid `stack_t`s; the mapping outlives its use as the
        // signal stack, since `drop` reinstalls the previous stack before unmapping it.
        check(unsafe { libc::sigaltstack(&stack, &mut alt.previous) })?;
        Ok(alt)
    }
}

impl Drop for AltStack {
    fn drop(&mut self) {
        // SAFETY: `previous` came from `sigaltstack` (possibly SS_DISABLE, which disables it
        // again); then the mapping is no longer the signal stack and can go.
        unsafe {
            libc::sigaltstack(&self.previous, ptr::null_mut());
            libc::munmap(self.map, self.len);
        }
    }
}

fn zeroed_stack() -> libc::stack_t {
    libc::stack_t { ss_sp: ptr::null_mut(), ss_flags: 0, ss_size: 0 }
}

/// `[lo, hi)`: fault addresses that mean the calling thread ran out of stack. The stack's lowest
/// address comes from `pthread_getattr_np`; glibc puts a thread's guard pages right below it
/// (since 2.27), and the main thread's stack cannot grow past its rlimit, which is that address
/// too. Rust probes every page of a big frame in order, so the first fault is within the guard;
/// a frame that skips past the guard without probing is reported as a plain SIGSEGV instead.
pub fn overflow_range() -> io::Result<(usize, usize)> {
    // SAFETY: `attr` is initialised by `pthread_getattr_np` before it is read and destroyed
    // after; the out-pointers are to locals.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        let error = libc::pthread_getattr_np(libc::pthread_self(), &mut attr);
        if error != 0 {
            return Err(io::Error::from_raw_os_error(error));
        }
        let (mut addr, mut size, mut guard) = (ptr::null_mut(), 0, 0);
        let got = libc::pthread_attr_getstack(&attr, &mut addr, &mut size);
        libc::pthread_attr_getguardsize(&attr, &mut guard);
        libc::pthread_attr_destroy(&mut attr);
        if got != 0 {
            return Err(io::Error::from_raw_os_error(got));
        }
        let page = page_size();
        let lo = addr as usize;
        Ok((lo.saturating_sub(guard.max(page)), lo + page))
    }
}
