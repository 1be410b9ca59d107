//! A seqlock of `N` words: one thread publishes, any thread reads a consistent copy without a
//! lock, a system call or an allocation. The sequence counter is odd while a publish is under
//! way; a reader retries until it saw the same even count before and after its copy. The
//! writer never waits, so a reader spins for a few ns at most. Used where a helper thread
//! hands the real-time frame thread a few numbers: the ALSA I/O thread's play position, the
//! game library's stamp.

use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{fence, AtomicU64};

pub struct SeqLock<const N: usize> {
    seq: AtomicU64,
    words: [AtomicU64; N],
}

impl<const N: usize> SeqLock<N> {
    pub fn new(words: [u64; N]) -> Self {
        Self { seq: AtomicU64::new(0), words: words.map(AtomicU64::new) }
    }

    /// Writer side: one thread only.
    pub fn publish(&self, words: [u64; N]) {
        let seq = self.seq.load(Relaxed);
        self.seq.store(seq.wrapping_add(1), Relaxed);
        fence(Release);
        for (word, value) in self.words.iter().zip(words) {
            word.store(value, Relaxed);
        }
        self.seq.store(seq.wrapping_add(2), Release);
    }

    /// Reader side: retries while a publish is in the middle.
    pub fn read(&self) -> [u64; N] {
        loop {
            let before = self.seq.load(Acquire);
            let words = std::array::from_fn(|i| self.words[i].load(Relaxed));
            fence(Acquire);
            if before % 2 == 0 && self.seq.load(Relaxed) == before {
                return words;
            }
            std::hint::spin_loop();
        }
    }

    /// Publishes completed so far.
    pub fn publishes(&self) -> u64 {
        self.seq.load(Acquire) / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_read_is_never_returned() {
        let lock = SeqLock::new([0u64; 3]);
        // Miri (.ci/miri.sh runs this test) explores the weak orderings, slowly: fewer rounds.
        let rounds = if cfg!(miri) { 300 } else { 20_000 };
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 1..=rounds {
                    lock.publish([i, i, i]);
                }
            });
            for _ in 0..rounds {
                let [a, b, c] = lock.read();
                assert!(a == b && b == c, "fields from two writes: {a} {b} {c}");
            }
        });
        assert_eq!((lock.publishes(), lock.read()), (rounds, [rounds; 3]));
    }
}
