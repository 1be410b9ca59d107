//! Monitoring counters for the toolkit's queues: event counts and high-water marks that one
//! thread writes and any thread may read (a UI, a `--stats` line), without locks or
//! read-modify-write instructions on the hot path.

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// What a queue reports: how often it was full, how often it was found empty when something
/// was needed, and the most items it ever held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, crate::StateLayout)]
pub struct QueueCounters {
    /// Pushes refused (or, for an overwriting ring, items dropped) because the queue was full.
    pub overruns: u64,
    /// Reads that wanted items and found fewer than asked for.
    pub underruns: u64,
    /// The most items the queue has held at once.
    pub high_water: usize,
}

/// An event count with a single writer. Relaxed is enough: readers only want a recent value,
/// nothing else is published through it. Zero-initialised memory is a valid counter at 0.
#[repr(transparent)]
#[derive(Default)]
pub struct EventCounter(AtomicU64);

impl EventCounter {
    /// Adds `n`. Only one thread may call this (a load and a store, no locked instruction).
    #[inline]
    pub fn add_single_writer(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// The largest value observed, with a single writer. Zero-initialised memory is valid.
#[repr(transparent)]
#[derive(Default)]
pub struct HighWater(AtomicUsize);

impl HighWater {
    /// Records `value` if it is a new maximum. Only one thread may call this.
    #[inline]
    pub fn observe_single_writer(&self, value: usize) {
        if value > self.0.load(Relaxed) {
            self.0.store(value, Relaxed);
        }
    }

    pub fn get(&self) -> usize {
        self.0.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_count_and_keep_the_maximum() {
        let c = EventCounter::default();
        c.add_single_writer(2);
        c.add_single_writer(3);
        assert_eq!(c.get(), 5);
        let h = HighWater::default();
        for v in [3, 9, 4, 9, 1] {
            h.observe_single_writer(v);
        }
        assert_eq!(h.get(), 9);
    }

    #[test]
    fn readers_on_another_thread_see_a_monotonic_count() {
        let c = EventCounter::default();
        let n = if cfg!(miri) { 200 } else { 100_000 };
        std::thread::scope(|s| {
            s.spawn(|| (0..n).for_each(|_| c.add_single_writer(1)));
            s.spawn(|| {
                let mut last = 0;
                for _ in 0..n {
                    let now = c.get();
                    assert!(now >= last);
                    last = now;
                }
            });
        });
        assert_eq!(c.get(), n);
    }
}
