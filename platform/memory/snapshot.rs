//! The game's permanent storage as the platform sees it, and snapshots of it: taken just before
//! a new library is swapped in (for crash rollback) and at the start of a loop recording.
//! Only the bytes the game reports using are copied (its arena high-water mark, page-rounded),
//! so a snapshot of a 64 MiB storage holding 1 MiB of state costs a 1 MiB copy.

use std::mem::MaybeUninit;

use handmade_api::{ArenaError, GameMemory, MemoryArena};

const PAGE: usize = 4096;

/// How many leading bytes of permanent storage hold the game's state.
pub fn used_permanent_bytes(memory: &GameMemory) -> usize {
    let size = memory.permanent_storage_size as usize;
    match memory.game_arena_high_water as usize {
        0 => size, // the game does not say: take everything
        used => used.div_ceil(PAGE).saturating_mul(PAGE).min(size),
    }
}

/// The permanent storage lent to the game, as bytes.
///
/// # Safety
/// No game call may run while the returned slice is alive (the game writes through its own
/// pointer), and `memory` must describe the platform's live permanent storage.
pub unsafe fn permanent_bytes<'m>(memory: &GameMemory) -> &'m mut [u8] {
    // SAFETY: the caller guarantees the pointer/size describe live storage with no other access
    // for the slice's lifetime.
    unsafe { std::slice::from_raw_parts_mut(memory.permanent_storage, memory.permanent_storage_size as usize) }
}

/// A copy of the first `len` bytes of the game's permanent storage, in the platform arena.
pub struct Snapshot<'a> {
    buffer: &'a mut [MaybeUninit<u8>],
    len: usize,
}

impl<'a> Snapshot<'a> {
    /// Reserves room for a whole permanent storage; pages are only backed once written.
    pub fn new(arena: &mut MemoryArena<'a>, capacity: usize) -> Result<Self, ArenaError> {
        Ok(Self { buffer: arena.push_bytes_uninit(capacity, 64)?, len: 0 })
    }

    /// Bytes the last snapshot holds.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.len
    }

    /// Copies the used part of `memory`'s permanent storage.
    pub fn take(&mut self, memory: &GameMemory) {
        let len = used_permanent_bytes(memory).min(self.buffer.len());
        // SAFETY: called between game calls, on the platform's own storage description.
        let source = unsafe { permanent_bytes(memory) };
        // SAFETY: `len` is within both the buffer and the storage, which are distinct regions
        // of the memory block (the platform arena and the game's permanent storage).
        unsafe { std::ptr::copy_nonoverlapping(source.as_ptr(), self.buffer.as_mut_ptr().cast::<u8>(), len) };
        self.len = len;
    }

    /// Writes the snapshot back (bytes past it are left as they are).
    pub fn restore(&self, memory: &GameMemory) {
        // SAFETY: as in `take`.
        let target = unsafe { permanent_bytes(memory) };
        // SAFETY: the first `len` bytes were initialised by `take`.
        let saved = unsafe { std::slice::from_raw_parts(self.buffer.as_ptr().cast::<u8>(), self.len) };
        target[..self.len].copy_from_slice(saved);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory_over(storage: &mut [u8], used: u64) -> GameMemory {
        // SAFETY: `GameMemory` is plain data (integers, raw pointers, arrays); all-zero is valid.
        let mut memory: GameMemory = unsafe { std::mem::zeroed() };
        memory.permanent_storage = storage.as_mut_ptr();
        memory.permanent_storage_size = storage.len() as u64;
        memory.game_arena_high_water = used;
        memory
    }

    #[test]
    fn snapshot_restores_only_the_used_pages() {
        let mut storage = vec![1u8; 3 * PAGE];
        let memory = memory_over(&mut storage, 10);
        let mut backing = vec![0u8; 4 * PAGE];
        let mut arena = MemoryArena::new("snapshots", &mut backing);
        let mut snapshot = Snapshot::new(&mut arena, 3 * PAGE).unwrap();
        snapshot.take(&memory);
        assert_eq!(snapshot.len(), PAGE);
        // SAFETY: no game runs in this test.
        unsafe { permanent_bytes(&memory) }.fill(7);
        snapshot.restore(&memory);
        assert!(storage[..PAGE].iter().all(|&b| b == 1));
        assert!(storage[PAGE..].iter().all(|&b| b == 7));
    }

    #[test]
    fn unknown_use_means_everything() {
        let mut storage = vec![0u8; 2 * PAGE];
        assert_eq!(used_permanent_bytes(&memory_over(&mut storage, 0)), 2 * PAGE);
        assert_eq!(used_permanent_bytes(&memory_over(&mut storage, 1 << 40)), 2 * PAGE);
    }
}
