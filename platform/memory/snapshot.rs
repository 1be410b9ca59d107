//! The game's permanent storage as the platform sees it, and snapshots of it: taken just before
//! a new library is swapped in (for crash rollback) and at the start of a loop recording.
//! Only the bytes the game reports using are copied (its arena high-water mark, page-rounded),
//! so a snapshot of a 64 MiB storage holding 1 MiB of state costs a 1 MiB copy.

use std::mem::MaybeUninit;

use handmade_api::{ArenaError, GameMemory, MemoryArena};

const PAGE: usize = 4096;

/// How many leading bytes of permanent storage hold the game's state: what the game reports
/// using, or, when it does not say (a C game, or before its first frame), up to the last page
/// that was ever touched. Untouched pages of the anonymous mapping were never backed, and a
/// snapshot of them would back them all: 64 MiB copied for a few KiB of state.
pub fn used_permanent_bytes(memory: &GameMemory) -> usize {
    let size = memory.permanent_storage_size as usize;
    match memory.game_arena_high_water as usize {
        0 => touched_bytes(memory.permanent_storage, size),
        used => used.div_ceil(PAGE).saturating_mul(PAGE).min(size),
    }
}

/// The length of `base..base + len` up to and including its last resident page, asked of the
/// kernel with `mincore` in chunks (no allocation). Falls back to `len` if it cannot tell.
fn touched_bytes(base: *mut u8, len: usize) -> usize {
    const CHUNK_PAGES: usize = 4096;
    if cfg!(miri) || base as usize % PAGE != 0 {
        return len; // Miri runs no system calls; `mincore` wants a page-aligned start
    }
    let mut residency = [0u8; CHUNK_PAGES];
    let pages = len.div_ceil(PAGE);
    let mut last_touched = None;
    let mut first = 0;
    while first < pages {
        let count = (pages - first).min(CHUNK_PAGES);
        let bytes = (count * PAGE).min(len - first * PAGE);
        // SAFETY: `base` is page-aligned (it starts a region carved at a page boundary of the
        // memory block) and `base + first * PAGE .. + bytes` lies inside the mapping;
        // `residency` holds one byte for each of the `count` pages asked about.
        let rc = unsafe { libc::mincore(base.add(first * PAGE).cast(), bytes, residency.as_mut_ptr()) };
        if rc != 0 {
            return len;
        }
        if let Some(i) = residency[..count].iter().rposition(|r| r & 1 != 0) {
            last_touched = Some(first + i);
        }
        first += count;
    }
    last_touched.map_or(0, |page| ((page + 1) * PAGE).min(len))
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

    /// The saved bytes (64-byte aligned, as `new` reserved them).
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the first `len` bytes were initialised by `take`.
        unsafe { std::slice::from_raw_parts(self.buffer.as_ptr().cast::<u8>(), self.len) }
    }

    /// Writes the snapshot back. Bytes past it are left as they are when the game reports its
    /// use; when it does not, the snapshot ended at the last touched page, so pages touched
    /// since were zero then and are zeroed again.
    pub fn restore(&self, memory: &GameMemory) {
        let touched_since = if memory.game_arena_high_water == 0 { used_permanent_bytes(memory) } else { 0 };
        // SAFETY: as in `take`.
        let target = unsafe { permanent_bytes(memory) };
        // SAFETY: the first `len` bytes were initialised by `take`.
        let saved = unsafe { std::slice::from_raw_parts(self.buffer.as_ptr().cast::<u8>(), self.len) };
        target[..self.len].copy_from_slice(saved);
        if touched_since > self.len {
            target[self.len..touched_since].fill(0);
        }
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
    fn use_beyond_the_storage_is_the_whole_storage() {
        let mut storage = vec![0u8; 2 * PAGE];
        assert_eq!(used_permanent_bytes(&memory_over(&mut storage, 1 << 40)), 2 * PAGE);
    }

    #[test]
    #[cfg_attr(miri, ignore = "asks the kernel with mincore")]
    fn unknown_use_is_up_to_the_last_touched_page() {
        let layout =
            crate::memory::MemoryLayout { permanent_bytes: 64 * PAGE, transient_bytes: PAGE, platform_bytes: PAGE };
        let mut block = crate::memory::PlatformMemoryBlock::reserve(layout).unwrap();
        let regions = block.carve();
        let storage = regions.permanent;
        assert_eq!(used_permanent_bytes(&memory_over(storage, 0)), 0, "nothing touched yet");
        storage[5 * PAGE + 17] = 1;
        assert_eq!(used_permanent_bytes(&memory_over(storage, 0)), 6 * PAGE);
    }
}
