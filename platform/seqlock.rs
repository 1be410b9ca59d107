//! A seqlock of `N` words: one thread publishes, any thread reads a consistent copy without a
//! lock, a system call or an allocation. The sequence counter is odd while a publish is under
//! way; a read is good when it saw the same even count before and after its copy. The writer
//! never waits. Nor does a reader: a publish takes a few ns, but its writer can be preempted
//! in the middle (by the very real-time thread that reads, on a busy CPU), and a reader that
//! spun until it finished could then spin until the scheduler moved the writer elsewhere. So
//! `try_read` gives up after a few tries and the reader decides: look again later, or keep
//! what it read last. Used where a helper thread hands the real-time frame thread a few
//! numbers: the ALSA I/O thread's play position, the game library's stamp.

use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{fence, AtomicU64};

/// Looks a reader takes before it gives up on a publish under way: far more than a publish
/// that runs takes (a few stores), far less than a preempted one.
const TRIES: u32 = 64;

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

    /// Reader side: a consistent copy, or `None` if a publish was under way through
    /// `TRIES` looks (its writer is likely preempted: the caller looks again later or keeps
    /// its last copy).
    pub fn try_read(&self) -> Option<[u64; N]> {
        for _ in 0..TRIES {
            let before = self.seq.load(Acquire);
            let words = std::array::from_fn(|i| self.words[i].load(Relaxed));
            fence(Acquire);
            if before % 2 == 0 && self.seq.load(Relaxed) == before {
                return Some(words);
            }
            std::hint::spin_loop();
        }
        None
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
            let mut last = [0; 3];
            for _ in 0..rounds {
                if let Some(words) = lock.try_read() {
                    last = words;
                }
                let [a, b, c] = last;
                assert!(a == b && b == c, "fields from two writes: {a} {b} {c}");
            }
        });
        assert_eq!((lock.publishes(), lock.try_read()), (rounds, Some([rounds; 3])));
    }

    #[test]
    fn a_reader_does_not_wait_for_a_writer_stopped_mid_publish() {
        let lock = SeqLock::new([7u64, 7]);
        // What a writer preempted between its two counter stores leaves behind.
        lock.seq.store(1, Relaxed);
        lock.words[0].store(8, Relaxed);
        assert_eq!(lock.try_read(), None, "half a publish is not read, and the read returns");
        lock.words[1].store(8, Relaxed);
        lock.seq.store(2, Release);
        assert_eq!(lock.try_read(), Some([8, 8]));
    }
}
