//! A single-producer single-consumer queue: slots and atomic indices carved from an arena, split
//! into a `Producer` and a `Consumer` that can live on two threads (e.g. a control thread
//! sending parameter changes to the audio thread, or the audio thread sending meter values back).
//! Wait-free on both sides: no lock, no allocation, no system call, bounded work.
//!
//! Ordering: the producer writes a slot, then publishes `tail` with `Release`; the consumer loads
//! `tail` with `Acquire` before reading the slot, so it sees the written value. In the other
//! direction the consumer reads a slot, then publishes `head` with `Release`; the producer loads
//! `head` with `Acquire` before overwriting that slot, so the read finished first. With `Relaxed`
//! either side may see the index move before the slot's contents (a stale or torn value, or a
//! slot overwritten while it is read): the compiler and weakly ordered CPUs (ARM) may reorder it.
//!
//! ```
//! use handmade_api::{rt::spsc, MemoryArena};
//! let mut backing = vec![0u8; 4096];
//! let mut arena = MemoryArena::new("queues", &mut backing);
//! let (mut tx, mut rx) = spsc::channel::<u32>(&mut arena, 4).unwrap();
//! std::thread::scope(|s| {
//!     s.spawn(move || for i in 0..100 { while tx.push(i).is_err() { std::hint::spin_loop() } });
//!     let mut expected = 0;
//!     while expected < 100 {
//!         if let Some(v) = rx.pop() { assert_eq!(v, expected); expected += 1; }
//!     }
//! });
//! ```

use core::marker::PhantomData;
use core::mem::MaybeUninit;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering::Acquire, Ordering::Release};

use super::counters::{EventCounter, HighWater, QueueCounters};
use super::shared_block::push_zeroed;
use crate::{ArenaError, MemoryArena};

/// The producer's cache line(s): written by the producer, read by the consumer.
#[repr(C, align(128))]
struct ProducerLine {
    tail: AtomicUsize,
    overruns: EventCounter,
    high_water: HighWater,
}

/// The consumer's cache line(s): written by the consumer, read by the producer.
#[repr(C, align(128))]
struct ConsumerLine {
    head: AtomicUsize,
    underruns: EventCounter,
}

/// The indices are free-running (they wrap at `usize::MAX`); a slot is `index & mask`.
#[repr(C)]
struct Shared {
    producer: ProducerLine,
    consumer: ConsumerLine,
}

/// The writing half. Send it to the thread that produces.
pub struct Producer<'a, T: Copy> {
    shared: &'a Shared,
    slots: NonNull<MaybeUninit<T>>,
    mask: usize,
    /// The producer's own copy of `tail` (it is the only writer).
    tail: usize,
    /// The last `head` it loaded: a lower bound of the real one, refreshed only when needed.
    cached_head: usize,
    high_water: usize,
    _slots: PhantomData<&'a mut [MaybeUninit<T>]>,
}

/// The reading half. Send it to the thread that consumes.
pub struct Consumer<'a, T: Copy> {
    shared: &'a Shared,
    slots: NonNull<MaybeUninit<T>>,
    mask: usize,
    head: usize,
    cached_tail: usize,
    _slots: PhantomData<&'a mut [MaybeUninit<T>]>,
}

// SAFETY: each half only touches the slots the indices give it (the producer `tail..head+cap`,
// the consumer `head..tail`), and hands them over with Release/Acquire, so moving a half to
// another thread cannot create a data race; `T: Send` because values cross threads.
unsafe impl<T: Copy + Send> Send for Producer<'_, T> {}
// SAFETY: as for `Producer`.
unsafe impl<T: Copy + Send> Send for Consumer<'_, T> {}

/// A queue holding `capacity` items (rounded up to a power of two, at least 1).
pub fn channel<'a, T: Copy>(
    arena: &mut MemoryArena<'a>,
    capacity: usize,
) -> Result<(Producer<'a, T>, Consumer<'a, T>), ArenaError> {
    let capacity = capacity.max(1).checked_next_power_of_two().unwrap_or(usize::MAX);
    // SAFETY: `Shared` is made only of atomics, for which all-zero bytes mean 0.
    let shared: &'a Shared = unsafe { push_zeroed(arena) }?;
    let storage = arena.push_array(capacity, MaybeUninit::<T>::uninit())?;
    // From the whole slice (not its first element) so the pointer may reach every slot.
    let slots = NonNull::from(&mut *storage).cast::<MaybeUninit<T>>();
    let mask = storage.len() - 1;
    let producer = Producer { shared, slots, mask, tail: 0, cached_head: 0, high_water: 0, _slots: PhantomData };
    let consumer = Consumer { shared, slots, mask, head: 0, cached_tail: 0, _slots: PhantomData };
    Ok((producer, consumer))
}

impl<T: Copy> Producer<'_, T> {
    pub fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// Slots free right now, refreshing the view of the consumer's position.
    pub fn free_len(&mut self) -> usize {
        self.cached_head = self.shared.consumer.head.load(Acquire);
        self.capacity() - self.tail.wrapping_sub(self.cached_head)
    }

    /// Free slots as far as the producer knows, looking at the consumer's index only when the
    /// cached view says fewer than `wanted` are free.
    #[inline]
    fn free_for(&mut self, wanted: usize) -> usize {
        let free = self.capacity() - self.tail.wrapping_sub(self.cached_head);
        if free >= wanted {
            return free;
        }
        self.free_len()
    }

    /// Appends `value`, or gives it back (counted as an overrun) when the queue is full.
    #[inline]
    pub fn push(&mut self, value: T) -> Result<(), T> {
        if self.free_for(1) == 0 {
            self.shared.producer.overruns.add_single_writer(1);
            return Err(value);
        }
        // SAFETY: `tail & mask < capacity`, and the slot is free: the consumer released it
        // (its `head` store was acquired in `free_for`), and it will not read it before the
        // Release store of `tail` below.
        unsafe { self.slots.add(self.tail & self.mask).write(MaybeUninit::new(value)) };
        self.publish(1);
        Ok(())
    }

    /// Appends as many of `values` as fit, in order; returns how many. A partial write counts
    /// as one overrun.
    pub fn push_slice(&mut self, values: &[T]) -> usize {
        let n = values.len().min(self.free_for(values.len()));
        if n < values.len() {
            self.shared.producer.overruns.add_single_writer(1);
        }
        let start = self.tail & self.mask;
        let first = n.min(self.capacity() - start);
        // SAFETY: slots `start..start+first` and `0..n-first` are free (see `push`) and inside
        // the storage; `values` is a different allocation from the arena's slots.
        unsafe {
            let src = values.as_ptr().cast::<MaybeUninit<T>>();
            core::ptr::copy_nonoverlapping(src, self.slots.add(start).as_ptr(), first);
            core::ptr::copy_nonoverlapping(src.add(first), self.slots.as_ptr(), n - first);
        }
        self.publish(n);
        n
    }

    /// Makes `n` written slots visible to the consumer and tracks the high-water mark.
    #[inline]
    fn publish(&mut self, n: usize) {
        self.tail = self.tail.wrapping_add(n);
        self.shared.producer.tail.store(self.tail, Release);
        // The cached head can only make the queue look fuller than it is; when that apparent
        // length beats the record, look at the real head before recording anything.
        if self.tail.wrapping_sub(self.cached_head) > self.high_water {
            self.cached_head = self.shared.consumer.head.load(Acquire);
            let len = self.tail.wrapping_sub(self.cached_head);
            if len > self.high_water {
                self.high_water = len;
                self.shared.producer.high_water.observe_single_writer(len);
            }
        }
    }

    pub fn counters(&self) -> QueueCounters {
        counters(self.shared)
    }
}

impl<T: Copy> Consumer<'_, T> {
    pub fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// Items waiting right now, refreshing the view of the producer's position.
    pub fn len(&mut self) -> usize {
        self.cached_tail = self.shared.producer.tail.load(Acquire);
        self.cached_tail.wrapping_sub(self.head)
    }

    pub fn is_empty(&mut self) -> bool {
        self.len() == 0
    }

    #[inline]
    fn available_for(&mut self, wanted: usize) -> usize {
        let available = self.cached_tail.wrapping_sub(self.head);
        if available >= wanted {
            return available;
        }
        self.len()
    }

    /// Takes the oldest item. An empty queue is not an underrun here: polling is normal.
    #[inline]
    pub fn pop(&mut self) -> Option<T> {
        if self.available_for(1) == 0 {
            return None;
        }
        // SAFETY: `head & mask < capacity`, and the slot was written before the producer's
        // Release store of `tail`, which `available_for` acquired; the producer will not
        // overwrite it before our Release store of `head` below.
        let value = unsafe { self.slots.add(self.head & self.mask).read().assume_init() };
        self.release(1);
        Some(value)
    }

    /// Fills `out` from the oldest items; returns how many. Fewer than `out.len()` counts as
    /// one underrun (a reader that needed a full block, e.g. of audio, did not get it).
    pub fn pop_slice(&mut self, out: &mut [T]) -> usize {
        let n = out.len().min(self.available_for(out.len()));
        if n < out.len() {
            self.record_underrun();
        }
        let start = self.head & self.mask;
        let first = n.min(self.capacity() - start);
        // SAFETY: slots `start..start+first` and `0..n-first` hold published values (see
        // `pop`); `out` is a different allocation; `MaybeUninit<T>` has `T`'s layout and the
        // copied slots are initialised.
        unsafe {
            let dst = out.as_mut_ptr().cast::<MaybeUninit<T>>();
            core::ptr::copy_nonoverlapping(self.slots.add(start).as_ptr(), dst, first);
            core::ptr::copy_nonoverlapping(self.slots.as_ptr(), dst.add(first), n - first);
        }
        self.release(n);
        n
    }

    #[inline]
    fn release(&mut self, n: usize) {
        self.head = self.head.wrapping_add(n);
        self.shared.consumer.head.store(self.head, Release);
    }

    /// Counts an underrun: the consumer needed an item and the queue had none.
    pub fn record_underrun(&mut self) {
        self.shared.consumer.underruns.add_single_writer(1);
    }

    pub fn counters(&self) -> QueueCounters {
        counters(self.shared)
    }
}

fn counters(shared: &Shared) -> QueueCounters {
    QueueCounters {
        overruns: shared.producer.overruns.get(),
        underruns: shared.consumer.underruns.get(),
        high_water: shared.producer.high_water.get(),
    }
}

impl<T: Copy> super::drain::PopFront<T> for Consumer<'_, T> {
    fn pop_front(&mut self) -> Option<T> {
        self.pop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rt::test_rng::XorShift;
    use core::sync::atomic::Ordering::Relaxed;
    use std::collections::VecDeque;

    #[test]
    fn fifo_order_capacity_and_overruns() {
        let mut backing = vec![0u8; 4096];
        let mut arena = MemoryArena::new("spsc", &mut backing);
        let (mut tx, mut rx) = channel::<u8>(&mut arena, 3).unwrap();
        assert_eq!(tx.capacity(), 4);
        for i in 0..4 {
            tx.push(i).unwrap();
        }
        assert_eq!(tx.push(9), Err(9));
        assert_eq!(rx.pop(), Some(0));
        tx.push(4).unwrap();
        let got: Vec<_> = std::iter::from_fn(|| rx.pop()).collect();
        assert_eq!(got, [1, 2, 3, 4]);
        let c = rx.counters();
        assert_eq!((c.overruns, c.underruns, c.high_water), (1, 0, 4));
    }

    #[test]
    fn indices_and_counters_sit_on_separate_cache_lines() {
        assert_eq!(core::mem::offset_of!(Shared, consumer), 128);
        assert_eq!(core::mem::align_of::<Shared>(), 128);
    }

    #[test]
    fn slices_wrap_around_and_short_reads_are_underruns() {
        let mut backing = vec![0u8; 4096];
        let mut arena = MemoryArena::new("spsc", &mut backing);
        let (mut tx, mut rx) = channel::<u32>(&mut arena, 8).unwrap();
        assert_eq!(tx.push_slice(&[0, 1, 2, 3, 4, 5]), 6);
        let mut out = [0u32; 5];
        assert_eq!(rx.pop_slice(&mut out), 5);
        assert_eq!(tx.push_slice(&[6, 7, 8, 9, 10, 11, 12, 13, 14]), 7, "7 free slots");
        let mut out = [0u32; 10];
        assert_eq!(rx.pop_slice(&mut out), 8);
        assert_eq!(&out[..8], &[5, 6, 7, 8, 9, 10, 11, 12]);
        let c = tx.counters();
        assert_eq!((c.overruns, c.underruns), (1, 1));
    }

    /// Property (one thread): random pushes, pops and slice operations agree with a VecDeque
    /// bounded to the same capacity, including across index wrap-around.
    #[test]
    fn random_operations_match_a_bounded_vecdeque() {
        let mut backing = vec![0u8; 1 << 14];
        let mut arena = MemoryArena::new("spsc", &mut backing);
        let (mut tx, mut rx) = channel::<u64>(&mut arena, 16).unwrap();
        // Start near the wrap of the free-running indices.
        let start = usize::MAX - 40;
        (tx.tail, tx.cached_head, rx.head, rx.cached_tail) = (start, start, start, start);
        tx.shared.producer.tail.store(start, Relaxed);
        rx.shared.consumer.head.store(start, Relaxed);
        let mut model = VecDeque::new();
        let mut rng = XorShift::new(3);
        let mut next = 0u64;
        for _ in 0..if cfg!(miri) { 400 } else { 50_000 } {
            match rng.below(4) {
                0 => {
                    let ok = tx.push(next).is_ok();
                    assert_eq!(ok, model.len() < 16);
                    if ok {
                        model.push_back(next);
                    }
                    next += 1;
                }
                1 => assert_eq!(rx.pop(), model.pop_front()),
                2 => {
                    let batch: Vec<u64> = (next..next + rng.below(20) as u64).collect();
                    let n = tx.push_slice(&batch);
                    assert_eq!(n, batch.len().min(16 - model.len()));
                    model.extend(&batch[..n]);
                    next += batch.len() as u64;
                }
                _ => {
                    let mut out = vec![0u64; rng.below(20)];
                    let n = rx.pop_slice(&mut out);
                    let expected: Vec<u64> = (0..n).filter_map(|_| model.pop_front()).collect();
                    assert_eq!(&out[..n], &expected[..]);
                    assert!(n == out.len() || model.is_empty());
                }
            }
            assert_eq!(rx.len(), model.len());
        }
    }

    /// Two threads, a small queue so it is often full and often empty: every item arrives
    /// once, in order. Under Miri (which checks the orderings for data races) it is shorter.
    #[test]
    fn two_threads_keep_order_and_lose_nothing() {
        let items: u64 = if cfg!(miri) { 2_000 } else { 2_000_000 };
        let mut backing = vec![0u8; 1 << 14];
        let mut arena = MemoryArena::new("spsc", &mut backing);
        let (mut tx, mut rx) = channel::<u64>(&mut arena, 64).unwrap();
        std::thread::scope(|s| {
            s.spawn(move || {
                let mut batch = [0u64; 7];
                let mut next = 0;
                while next < items {
                    if next % 3 == 0 {
                        let len = batch.len().min((items - next) as usize);
                        for (k, b) in batch[..len].iter_mut().enumerate() {
                            *b = next + k as u64;
                        }
                        next += tx.push_slice(&batch[..len]) as u64;
                    } else if tx.push(next).is_ok() {
                        next += 1;
                    }
                }
            });
            let mut expected = 0u64;
            let mut out = [0u64; 5];
            while expected < items {
                let n = if expected % 2 == 0 {
                    rx.pop_slice(&mut out)
                } else {
                    rx.pop().map(|v| out[0] = v).map_or(0, |_| 1)
                };
                for &v in &out[..n] {
                    assert_eq!(v, expected, "lost or reordered item");
                    expected += 1;
                }
            }
            assert_eq!(rx.pop(), None);
        });
    }

    /// The stress test with payloads wider than one word: a torn or stale slot read (what a
    /// Relaxed index store would allow) shows up as a mismatched pair.
    #[test]
    #[cfg_attr(miri, ignore)]
    fn two_thread_stress_with_wide_items() {
        const ITEMS: u64 = 5_000_000;
        let mut backing = vec![0u8; 1 << 16];
        let mut arena = MemoryArena::new("spsc", &mut backing);
        let (mut tx, mut rx) = channel::<[u64; 4]>(&mut arena, 256).unwrap();
        std::thread::scope(|s| {
            s.spawn(move || {
                for i in 0..ITEMS {
                    let item = [i, !i, i.wrapping_mul(31), i ^ 0x5555];
                    while tx.push(item).is_err() {
                        core::hint::spin_loop();
                    }
                }
            });
            let mut expected = 0;
            while expected < ITEMS {
                if let Some(v) = rx.pop() {
                    let i = expected;
                    assert_eq!(v, [i, !i, i.wrapping_mul(31), i ^ 0x5555]);
                    expected += 1;
                }
            }
            assert!(rx.counters().high_water <= 256);
        });
    }
}
