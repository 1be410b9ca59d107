//! `RingBuffer`: a single-threaded power-of-two FIFO of `Copy` items over arena storage, for
//! histories, meters and queues inside one thread (use `spsc` to cross threads). Wrapping is a
//! mask; pushing into a full ring either refuses (`push`) or drops the oldest
//! (`push_overwrite`), and both are counted.
//!
//! ```
//! use handmade_api::{rt::RingBuffer, MemoryArena};
//! let mut backing = [0u8; 1024];
//! let mut arena = MemoryArena::new("meters", &mut backing);
//! let mut peaks = RingBuffer::new(&mut arena, 3, 0.0f32).unwrap();
//! assert_eq!(peaks.capacity(), 4);
//! for p in [0.1, 0.2, 0.3, 0.4, 0.5] {
//!     peaks.push_overwrite(p);
//! }
//! assert_eq!(peaks.iter().collect::<Vec<_>>(), [0.2, 0.3, 0.4, 0.5]);
//! assert_eq!(peaks.counters().overruns, 1);
//! ```

use super::counters::QueueCounters;
use super::drain::PopFront;
use crate::{ArenaError, MemoryArena};

#[derive(crate::StateLayout)]
pub struct RingBuffer<'a, T: Copy> {
    slots: &'a mut [T],
    mask: usize,
    /// Free-running indices; `tail - head` items are stored.
    head: usize,
    tail: usize,
    counters: QueueCounters,
}

impl<'a, T: Copy> RingBuffer<'a, T> {
    /// An empty ring of `capacity` (rounded up to a power of two, at least 1) slots, each
    /// initialised to `fill` so no slot is ever uninitialised.
    pub fn new(arena: &mut MemoryArena<'a>, capacity: usize, fill: T) -> Result<Self, ArenaError> {
        let capacity = capacity.max(1).checked_next_power_of_two().unwrap_or(usize::MAX);
        let slots = arena.push_array(capacity, fill)?;
        Ok(Self { mask: slots.len() - 1, slots, head: 0, tail: 0, counters: QueueCounters::default() })
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }
    pub fn len(&self) -> usize {
        self.tail.wrapping_sub(self.head)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn is_full(&self) -> bool {
        self.len() == self.capacity()
    }

    /// Appends `value`, or gives it back (an overrun) when full.
    #[inline]
    pub fn push(&mut self, value: T) -> Result<(), T> {
        if self.is_full() {
            self.counters.overruns += 1;
            return Err(value);
        }
        self.slots[self.tail & self.mask] = value;
        self.tail = self.tail.wrapping_add(1);
        self.counters.high_water = self.counters.high_water.max(self.len());
        Ok(())
    }

    /// Appends `value`, dropping and returning the oldest item when full (an overrun).
    #[inline]
    pub fn push_overwrite(&mut self, value: T) -> Option<T> {
        let dropped = if self.is_full() {
            self.counters.overruns += 1;
            self.pop_unchecked()
        } else {
            None
        };
        let _ = self.push(value);
        dropped
    }

    /// Takes the oldest item (an empty ring is not an underrun: see `pop_slice`).
    #[inline]
    pub fn pop(&mut self) -> Option<T> {
        self.pop_unchecked()
    }

    fn pop_unchecked(&mut self) -> Option<T> {
        if self.is_empty() {
            return None;
        }
        let value = self.slots[self.head & self.mask];
        self.head = self.head.wrapping_add(1);
        Some(value)
    }

    /// Fills `out` from the oldest items; returns how many. A short read is one underrun.
    pub fn pop_slice(&mut self, out: &mut [T]) -> usize {
        let n = out.len().min(self.len());
        if n < out.len() {
            self.counters.underruns += 1;
        }
        let start = self.head & self.mask;
        let first = n.min(self.capacity() - start);
        out[..first].copy_from_slice(&self.slots[start..start + first]);
        out[first..n].copy_from_slice(&self.slots[..n - first]);
        self.head = self.head.wrapping_add(n);
        n
    }

    /// Appends as many of `values` as fit; returns how many. A short write is one overrun.
    pub fn push_slice(&mut self, values: &[T]) -> usize {
        let n = values.len().min(self.capacity() - self.len());
        if n < values.len() {
            self.counters.overruns += 1;
        }
        let start = self.tail & self.mask;
        let first = n.min(self.capacity() - start);
        self.slots[start..start + first].copy_from_slice(&values[..first]);
        self.slots[..n - first].copy_from_slice(&values[first..n]);
        self.tail = self.tail.wrapping_add(n);
        self.counters.high_water = self.counters.high_water.max(self.len());
        n
    }

    /// The `i`-th oldest item.
    pub fn get(&self, i: usize) -> Option<T> {
        (i < self.len()).then(|| self.slots[self.head.wrapping_add(i) & self.mask])
    }

    /// Stored items, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        (0..self.len()).map(move |i| self.slots[self.head.wrapping_add(i) & self.mask])
    }

    pub fn clear(&mut self) {
        self.head = self.tail;
    }

    pub fn counters(&self) -> QueueCounters {
        self.counters
    }
}

impl<T: Copy> PopFront<T> for RingBuffer<'_, T> {
    fn pop_front(&mut self) -> Option<T> {
        self.pop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rt::test_rng::XorShift;
    use std::collections::VecDeque;

    #[test]
    fn refuses_when_full_and_counts() {
        let mut backing = [0u8; 256];
        let mut arena = MemoryArena::new("ring", &mut backing);
        let mut r = RingBuffer::new(&mut arena, 2, 0u8).unwrap();
        assert_eq!((r.push(1), r.push(2), r.push(3)), (Ok(()), Ok(()), Err(3)));
        assert_eq!(r.pop(), Some(1));
        let mut out = [0u8; 4];
        assert_eq!(r.pop_slice(&mut out), 1);
        assert_eq!(r.counters(), QueueCounters { overruns: 1, underruns: 1, high_water: 2 });
    }

    #[test]
    fn storage_is_exactly_the_rounded_capacity() {
        let mut backing = [0u8; 256];
        let mut arena = MemoryArena::new("ring", &mut backing);
        arena.push_struct(0u32).unwrap(); // align the cursor: the backing may not be
        let before = arena.used();
        let _r = RingBuffer::new(&mut arena, 5, 0u32).unwrap();
        assert_eq!(arena.used() - before, 8 * 4);
    }

    /// Property: random single and slice operations (including across the wrap of the
    /// free-running indices) agree with a VecDeque bounded to the same capacity.
    #[test]
    fn random_operations_match_a_bounded_vecdeque() {
        let mut backing = vec![0u8; 4096];
        let mut arena = MemoryArena::new("ring", &mut backing);
        let mut r = RingBuffer::new(&mut arena, 8, 0u32).unwrap();
        (r.head, r.tail) = (usize::MAX - 20, usize::MAX - 20);
        let mut model: VecDeque<u32> = VecDeque::new();
        let mut rng = XorShift::new(5);
        let mut next = 0u32;
        for _ in 0..if cfg!(miri) { 500 } else { 50_000 } {
            match rng.below(5) {
                0 => {
                    assert_eq!(r.push(next).is_ok(), model.len() < 8);
                    if model.len() < 8 {
                        model.push_back(next);
                    }
                }
                1 => {
                    let dropped = r.push_overwrite(next);
                    let expected = if model.len() == 8 { model.pop_front() } else { None };
                    assert_eq!(dropped, expected);
                    model.push_back(next);
                }
                2 => assert_eq!(r.pop(), model.pop_front()),
                3 => {
                    let batch: Vec<u32> = (0..rng.below(12) as u32).map(|k| next + k).collect();
                    let n = r.push_slice(&batch);
                    model.extend(&batch[..n]);
                }
                _ => {
                    let mut out = vec![0u32; rng.below(12)];
                    let n = r.pop_slice(&mut out);
                    let expected: Vec<u32> = (0..n).filter_map(|_| model.pop_front()).collect();
                    assert_eq!(&out[..n], &expected[..]);
                }
            }
            next += 100;
            assert_eq!(r.len(), model.len());
            assert!(r.iter().eq(model.iter().copied()));
            assert_eq!(r.get(0), model.front().copied());
        }
    }
}
