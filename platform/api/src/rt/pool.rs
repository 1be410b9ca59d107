//! `Pool`: a fixed pool of `Copy` slots carved from an arena, with an O(1) free list and
//! generation-checked handles, for voices, grains and other things started and stopped on the
//! audio path. A slot is reset to the pool's `empty` value on every acquire, so no state leaks
//! from one use to the next.
//!
//! ```
//! use handmade_api::{rt::Pool, MemoryArena};
//! let mut backing = [0u8; 4096];
//! let mut arena = MemoryArena::new("voices", &mut backing);
//! let mut voices = Pool::new(&mut arena, 8, 0.0f32).unwrap();
//! let a = voices.acquire().unwrap();
//! *voices.get_mut(a).unwrap() = 440.0;
//! assert!(voices.release(a));
//! assert!(!voices.release(a), "a stale handle is refused");
//! assert!(voices.get_mut(a).is_none());
//! ```

use crate::{ArenaError, MemoryArena};

/// Names one slot of one `Pool` for as long as it stays acquired. After a release the slot's
/// generation moves on, so an old handle no longer matches (it would take 2^31 reuses of the
/// same slot for a stale handle to match again).
#[derive(Clone, Copy, Debug, PartialEq, Eq, crate::StateLayout)]
pub struct PoolHandle {
    index: u32,
    generation: u32,
}

impl PoolHandle {
    /// The slot index, `0..capacity`: handy as a stable per-voice id for display or panning.
    pub fn index(&self) -> usize {
        self.index as usize
    }
}

/// End of the free list.
const NONE: u32 = u32::MAX;

/// A fixed pool. Generations are odd while a slot is acquired and even while it is free.
#[derive(crate::StateLayout)]
pub struct Pool<'a, T: Copy> {
    slots: &'a mut [T],
    generations: &'a mut [u32],
    /// `next_free[i]` is the free slot after `i` in the free list (meaningful while `i` is free).
    next_free: &'a mut [u32],
    free_head: u32,
    active: usize,
    empty: T,
}

impl<'a, T: Copy> Pool<'a, T> {
    /// A pool of `capacity` slots (fewer than `u32::MAX`), all free.
    pub fn new(arena: &mut MemoryArena<'a>, capacity: usize, empty: T) -> Result<Self, ArenaError> {
        assert!(capacity < NONE as usize, "pool capacity {capacity} does not fit a u32 index");
        let slots = arena.push_array(capacity, empty)?;
        let generations = arena.push_array(capacity, 0u32)?;
        let next_free = arena.push_array(capacity, NONE)?;
        for (i, next) in next_free.iter_mut().enumerate() {
            *next = if i + 1 < capacity { i as u32 + 1 } else { NONE };
        }
        Ok(Self { slots, generations, next_free, free_head: if capacity > 0 { 0 } else { NONE }, active: 0, empty })
    }

    /// Takes a free slot, reset to `empty`; `None` when every slot is in use.
    pub fn acquire(&mut self) -> Option<PoolHandle> {
        if self.free_head == NONE {
            return None;
        }
        let index = self.free_head;
        let i = index as usize;
        self.free_head = self.next_free[i];
        self.generations[i] = self.generations[i].wrapping_add(1);
        debug_assert!(self.generations[i] % 2 == 1, "acquired slot {i} has an even generation");
        self.slots[i] = self.empty;
        self.active += 1;
        Some(PoolHandle { index, generation: self.generations[i] })
    }

    /// Returns a slot to the pool. `false` (and nothing changes) for a handle that is stale,
    /// already released, or from another pool of a different size.
    pub fn release(&mut self, handle: PoolHandle) -> bool {
        if !self.is_live(handle) {
            return false;
        }
        let i = handle.index as usize;
        self.generations[i] = self.generations[i].wrapping_add(1);
        self.next_free[i] = self.free_head;
        self.free_head = handle.index;
        self.active -= 1;
        true
    }

    /// True while `handle` names an acquired slot.
    pub fn is_live(&self, handle: PoolHandle) -> bool {
        self.generations.get(handle.index as usize) == Some(&handle.generation) && handle.generation % 2 == 1
    }

    pub fn get(&self, handle: PoolHandle) -> Option<&T> {
        if self.is_live(handle) {
            Some(&self.slots[handle.index as usize])
        } else {
            None
        }
    }

    pub fn get_mut(&mut self, handle: PoolHandle) -> Option<&mut T> {
        if self.is_live(handle) {
            Some(&mut self.slots[handle.index as usize])
        } else {
            None
        }
    }

    /// Calls `f` on every acquired slot, in slot order. Bounded by `capacity()`.
    pub fn for_each_active(&mut self, mut f: impl FnMut(PoolHandle, &mut T)) {
        for (i, (slot, &generation)) in self.slots.iter_mut().zip(self.generations.iter()).enumerate() {
            if generation % 2 == 1 {
                f(PoolHandle { index: i as u32, generation }, slot);
            }
        }
    }

    /// Slots in use.
    pub fn active(&self) -> usize {
        self.active
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rt::test_rng::XorShift;

    #[derive(Clone, Copy, Debug, PartialEq)]
    struct Voice {
        phase: f32,
        note: u8,
    }
    const SILENT: Voice = Voice { phase: 0.0, note: 0 };

    #[test]
    fn acquire_until_full_then_none() {
        let mut backing = vec![0u8; 4096];
        let mut arena = MemoryArena::new("pool", &mut backing);
        let mut pool = Pool::new(&mut arena, 4, SILENT).unwrap();
        let handles: Vec<_> = (0..4).map(|_| pool.acquire().unwrap()).collect();
        assert_eq!(pool.acquire(), None);
        assert_eq!(pool.active(), 4);
        let mut indices: Vec<_> = handles.iter().map(|h| h.index()).collect();
        indices.sort();
        assert_eq!(indices, [0, 1, 2, 3]);
    }

    #[test]
    fn slots_are_reset_on_acquire() {
        let mut backing = vec![0u8; 4096];
        let mut arena = MemoryArena::new("pool", &mut backing);
        let mut pool = Pool::new(&mut arena, 1, SILENT).unwrap();
        let h = pool.acquire().unwrap();
        *pool.get_mut(h).unwrap() = Voice { phase: 0.5, note: 60 };
        assert!(pool.release(h));
        let h2 = pool.acquire().unwrap();
        assert_eq!(h2.index(), h.index());
        assert_ne!(h2, h);
        assert_eq!(pool.get(h2), Some(&SILENT));
    }

    #[test]
    fn stale_and_double_releases_are_refused() {
        let mut backing = vec![0u8; 4096];
        let mut arena = MemoryArena::new("pool", &mut backing);
        let mut pool = Pool::new(&mut arena, 2, 0u32).unwrap();
        let a = pool.acquire().unwrap();
        assert!(pool.release(a));
        assert!(!pool.release(a));
        let b = pool.acquire().unwrap(); // reuses a's slot
        assert!(!pool.release(a), "a stale handle must not free the new owner's slot");
        assert!(pool.get_mut(a).is_none());
        assert!(pool.is_live(b));
        assert_eq!(pool.active(), 1);
        let foreign = PoolHandle { index: 99, generation: 1 };
        assert!(!pool.release(foreign));
    }

    #[test]
    fn zero_capacity_pool_is_always_full() {
        let mut backing = vec![0u8; 64];
        let mut arena = MemoryArena::new("pool", &mut backing);
        let mut pool = Pool::new(&mut arena, 0, 0u8).unwrap();
        assert_eq!(pool.acquire(), None);
        assert_eq!(pool.capacity(), 0);
    }

    #[test]
    fn for_each_active_visits_exactly_the_acquired_slots() {
        let mut backing = vec![0u8; 4096];
        let mut arena = MemoryArena::new("pool", &mut backing);
        let mut pool = Pool::new(&mut arena, 8, 0u32).unwrap();
        let hs: Vec<_> = (0..5).map(|_| pool.acquire().unwrap()).collect();
        pool.release(hs[1]);
        pool.release(hs[3]);
        let mut seen = Vec::new();
        pool.for_each_active(|h, v| {
            *v += 1;
            seen.push(h);
        });
        assert_eq!(seen, [hs[0], hs[2], hs[4]]);
        assert_eq!(pool.get(hs[2]), Some(&1));
    }

    /// Property: random acquire/release/write sequences agree with a simple model (a Vec of
    /// live handles and their values); the free list never hands out a live slot.
    #[test]
    fn random_operations_match_a_model() {
        let mut backing = vec![0u8; 1 << 16];
        let mut arena = MemoryArena::new("pool", &mut backing);
        let capacity = 16;
        let mut pool = Pool::new(&mut arena, capacity, 0u64).unwrap();
        let mut live: Vec<(PoolHandle, u64)> = Vec::new();
        let mut dead: Vec<PoolHandle> = Vec::new();
        let mut rng = XorShift::new(42);
        for step in 0..if cfg!(miri) { 500 } else { 20_000 } {
            match rng.below(4) {
                0 | 1 => match pool.acquire() {
                    Some(h) => {
                        assert!(live.iter().all(|(l, _)| l.index() != h.index()), "slot handed out twice");
                        assert_eq!(pool.get(h), Some(&0));
                        live.push((h, 0));
                    }
                    None => assert_eq!(live.len(), capacity),
                },
                2 if !live.is_empty() => {
                    let (h, v) = live.swap_remove(rng.below(live.len()));
                    assert_eq!(pool.get(h), Some(&v));
                    assert!(pool.release(h));
                    dead.push(h);
                }
                _ if !live.is_empty() => {
                    let i = rng.below(live.len());
                    live[i].1 = step;
                    *pool.get_mut(live[i].0).unwrap() = step;
                }
                _ => {}
            }
            if let Some(&d) = dead.last() {
                assert!(!pool.release(d), "double release accepted");
            }
            assert_eq!(pool.active(), live.len());
        }
    }
}
