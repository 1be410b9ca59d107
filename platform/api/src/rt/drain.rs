//! Bounded drains: take at most `max` items from a queue per audio block, so a burst of
//! messages (a UI dragging a slider, a flood of note events) costs a bounded amount of work in
//! one block and the rest waits for the next, instead of the block overrunning its deadline.
//!
//! ```
//! use handmade_api::{rt::{drain_bounded, spsc}, MemoryArena};
//! let mut backing = vec![0u8; 4096];
//! let mut arena = MemoryArena::new("events", &mut backing);
//! let (mut tx, mut rx) = spsc::channel::<u8>(&mut arena, 64).unwrap();
//! tx.push_slice(&[1; 40]);
//! let mut sum = 0;
//! let first = drain_bounded(&mut rx, 16, |v| sum += v);
//! assert_eq!((first.taken, first.limit_reached), (16, true));
//! let _ = drain_bounded(&mut rx, 16, |v| sum += v);
//! let last = drain_bounded(&mut rx, 16, |v| sum += v);
//! assert_eq!((last.taken, last.limit_reached, sum), (8, false, 40));
//! ```

/// Something items can be taken from, oldest first.
pub trait PopFront<T> {
    fn pop_front(&mut self) -> Option<T>;
}

/// What one bounded drain did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Drained {
    pub taken: usize,
    /// The drain stopped at `max`; more items may be waiting for the next block.
    pub limit_reached: bool,
}

/// Hands at most `max` items to `apply`, oldest first, and stops early when the source is empty.
pub fn drain_bounded<T>(source: &mut impl PopFront<T>, max: usize, mut apply: impl FnMut(T)) -> Drained {
    let mut taken = 0;
    while taken < max {
        match source.pop_front() {
            Some(item) => {
                apply(item);
                taken += 1;
            }
            None => break,
        }
    }
    Drained { taken, limit_reached: taken == max }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rt::test_rng::XorShift;
    use std::collections::VecDeque;

    struct Model(VecDeque<u32>);
    impl PopFront<u32> for Model {
        fn pop_front(&mut self) -> Option<u32> {
            self.0.pop_front()
        }
    }

    #[test]
    fn zero_limit_takes_nothing() {
        let mut q = Model((0..3).collect());
        let d = drain_bounded(&mut q, 0, |_| panic!("applied"));
        assert_eq!(d, Drained { taken: 0, limit_reached: true });
        assert_eq!(q.0.len(), 3);
    }

    /// Property: over random arrivals, every drain takes min(max, waiting) items, in order, and
    /// nothing is lost or applied twice.
    #[test]
    fn random_bursts_are_drained_in_order_within_the_bound() {
        let mut rng = XorShift::new(11);
        let mut q = Model(VecDeque::new());
        let (mut sent, mut seen) = (0u32, 0u32);
        for _ in 0..if cfg!(miri) { 100 } else { 5_000 } {
            for _ in 0..rng.below(40) {
                q.0.push_back(sent);
                sent += 1;
            }
            let max = rng.below(20);
            let waiting = q.0.len();
            let d = drain_bounded(&mut q, max, |v| {
                assert_eq!(v, seen);
                seen += 1;
            });
            assert_eq!(d.taken, max.min(waiting));
        }
        assert_eq!(seen + q.0.len() as u32, sent);
    }
}
