//! Carving the toolkit's cross-thread state (atomic indices, counters) out of an arena: the
//! arena only pushes `Copy` values, and atomics are not `Copy`, so their memory is pushed as
//! zeroed cache lines and viewed as the atomic type (all-zero bytes are a valid atomic).

use core::mem::{align_of, size_of};

use crate::{ArenaError, MemoryArena};

/// What the toolkit pads shared indices to. 128 rather than 64 bytes because x86's adjacent-line
/// prefetcher and Apple's M-series cores move cache lines in pairs (crossbeam's `CachePadded`
/// picks 128 for the same reason).
pub const CACHE_LINE: usize = 128;

#[repr(C, align(128))]
#[derive(Clone, Copy)]
struct ZeroLine([u8; CACHE_LINE]);

/// Pushes zeroed, cache-line-aligned memory for a `T` and returns it as a shared reference.
/// Nothing is ever dropped: `T`'s destructor (if any) never runs.
///
/// # Safety
/// All-zero bytes must be a valid `T` (true of atomics and structs made only of them).
pub(crate) unsafe fn push_zeroed<'a, T>(arena: &mut MemoryArena<'a>) -> Result<&'a T, ArenaError> {
    assert!(align_of::<T>() <= CACHE_LINE, "push_zeroed: alignment above a cache line");
    let lines = size_of::<T>().div_ceil(CACHE_LINE).max(1);
    let memory = arena.push_array(lines, ZeroLine([0; CACHE_LINE]))?;
    // SAFETY: `memory` is `lines * CACHE_LINE >= size_of::<T>()` initialised (zero) bytes,
    // aligned to 128 >= align_of::<T>(), borrowed exclusively for `'a`; the caller guarantees
    // that zero bytes are a valid `T`. Converting the unique `&'a mut` into a shared `&'a T`
    // gives up the unique access for good, so no other path can write these bytes.
    Ok(unsafe { &*memory.as_mut_ptr().cast::<T>() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

    #[test]
    fn zeroed_atomics_are_aligned_and_start_at_zero() {
        let mut backing = vec![0xffu8; 4096];
        let mut arena = MemoryArena::new("zeroed", &mut backing);
        arena.push_struct(1u8).unwrap();
        // SAFETY: a zeroed `[AtomicUsize; 3]` is three atomics holding 0.
        let atoms: &[AtomicUsize; 3] = unsafe { push_zeroed(&mut arena) }.unwrap();
        assert_eq!(atoms as *const _ as usize % CACHE_LINE, 0);
        assert!(atoms.iter().all(|a| a.load(Relaxed) == 0));
        atoms[2].store(7, Relaxed);
        assert_eq!(atoms[2].load(Relaxed), 7);
    }
}
