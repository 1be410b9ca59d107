//! `DelayLine`: a power-of-two circular buffer of `f32` samples with fractional-delay reads
//! (linear interpolation), for echoes, chorus and comb filters on the audio path.
//!
//! ```
//! use handmade_api::{rt::DelayLine, MemoryArena};
//! let mut backing = [0u8; 4096];
//! let mut arena = MemoryArena::new("fx", &mut backing);
//! let mut delay = DelayLine::new(&mut arena, 100).unwrap();
//! assert_eq!(delay.capacity(), 128);
//! delay.write(1.0);
//! delay.write(0.0);
//! assert_eq!(delay.read(2.0), 1.0); // the sample written two writes ago
//! assert_eq!(delay.read(1.5), 0.5); // halfway between the last two
//! ```

use crate::{ArenaError, MemoryArena};

/// A delay line whose storage lives in an arena. `read(d)` returns the signal as it was `d`
/// writes ago: `read(1.0)` is the most recent sample. Read before you write when processing
/// sample by sample (`y = read(d); write(x + feedback * y)`).
#[derive(crate::StateLayout)]
pub struct DelayLine<'a> {
    buffer: &'a mut [f32],
    mask: usize,
    /// Where the next `write` goes.
    write_pos: usize,
    max_delay: usize,
}

impl<'a> DelayLine<'a> {
    /// A silent delay line holding up to `max_delay_frames` (at least 1); its storage is
    /// rounded up to a power of two so wrapping is a mask, not a division.
    pub fn new(arena: &mut MemoryArena<'a>, max_delay_frames: usize) -> Result<Self, ArenaError> {
        let max_delay = max_delay_frames.max(1);
        let capacity = max_delay.checked_next_power_of_two().unwrap_or(usize::MAX);
        let buffer = arena.push_array(capacity, 0.0f32)?;
        Ok(Self { mask: buffer.len() - 1, buffer, write_pos: 0, max_delay })
    }

    /// Appends one sample, overwriting the oldest.
    #[inline]
    pub fn write(&mut self, sample: f32) {
        self.buffer[self.write_pos] = sample;
        self.write_pos = (self.write_pos + 1) & self.mask;
    }

    /// The signal `delay_frames` writes ago, linearly interpolated between the two nearest
    /// samples. The delay is clamped to `1..=max_delay()`; NaN reads as 1.
    #[inline]
    pub fn read(&self, delay_frames: f32) -> f32 {
        let max = self.max_delay as f32;
        let delay = if delay_frames >= 1.0 {
            delay_frames.min(max)
        } else {
            1.0 // also catches NaN, which fails every comparison
        };
        let whole = delay as usize; // delay >= 1, so `as` truncates toward zero = floor
        let frac = delay - whole as f32;
        let newer = self.tap(whole);
        if frac == 0.0 || whole >= self.max_delay {
            return newer;
        }
        let older = self.tap(whole + 1);
        newer + (older - newer) * frac
    }

    /// The sample exactly `delay` writes ago (`1..=capacity`).
    #[inline]
    fn tap(&self, delay: usize) -> f32 {
        self.buffer[self.write_pos.wrapping_sub(delay) & self.mask]
    }

    /// Silences the line (the write position is kept; nothing observable depends on it).
    pub fn clear(&mut self) {
        self.buffer.fill(0.0);
    }

    /// The longest delay `read` honours.
    pub fn max_delay(&self) -> usize {
        self.max_delay
    }

    /// Samples of storage: `max_delay()` rounded up to a power of two.
    pub fn capacity(&self) -> usize {
        self.buffer.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rt::test_rng::XorShift;

    fn arena_bytes() -> Vec<u8> {
        vec![0u8; 1 << 16]
    }

    #[test]
    fn capacity_is_the_next_power_of_two() {
        let mut backing = arena_bytes();
        let mut arena = MemoryArena::new("delay", &mut backing);
        for (max, cap) in [(0, 1), (1, 1), (2, 2), (3, 4), (100, 128), (1024, 1024)] {
            let d = DelayLine::new(&mut arena, max).unwrap();
            assert_eq!((d.capacity(), d.max_delay()), (cap, max.max(1)), "max {max}");
        }
    }

    #[test]
    fn integer_delays_return_exactly_what_was_written() {
        let mut backing = arena_bytes();
        let mut arena = MemoryArena::new("delay", &mut backing);
        let mut d = DelayLine::new(&mut arena, 5).unwrap();
        for i in 0..20 {
            d.write(i as f32);
        }
        for k in 1..=5 {
            assert_eq!(d.read(k as f32), (20 - k) as f32);
        }
    }

    #[test]
    fn delays_are_clamped_and_nan_is_harmless() {
        let mut backing = arena_bytes();
        let mut arena = MemoryArena::new("delay", &mut backing);
        let mut d = DelayLine::new(&mut arena, 3).unwrap();
        for i in 1..=8 {
            d.write(i as f32);
        }
        assert_eq!(d.read(0.0), 8.0);
        assert_eq!(d.read(-5.0), 8.0);
        assert_eq!(d.read(f32::NAN), 8.0);
        assert_eq!(d.read(3.0), 6.0);
        assert_eq!(d.read(3.7), 6.0, "beyond max clamps to max, no interpolation past it");
        assert_eq!(d.read(f32::INFINITY), 6.0);
    }

    #[test]
    fn clear_silences() {
        let mut backing = arena_bytes();
        let mut arena = MemoryArena::new("delay", &mut backing);
        let mut d = DelayLine::new(&mut arena, 4).unwrap();
        d.write(1.0);
        d.clear();
        assert!((1..=4).all(|k| d.read(k as f32) == 0.0));
    }

    #[test]
    fn out_of_arena_space_is_an_error_not_a_panic() {
        let mut backing = [0u8; 64];
        let mut arena = MemoryArena::new("tiny", &mut backing);
        assert!(DelayLine::new(&mut arena, 1000).is_err());
    }

    /// Property: against a reference model (the whole history kept in a Vec), every read at a
    /// random fractional delay is the linear interpolation of the two neighbouring samples.
    #[test]
    fn random_reads_match_a_reference_model() {
        let mut backing = arena_bytes();
        let mut arena = MemoryArena::new("delay", &mut backing);
        let mut rng = XorShift::new(7);
        for _ in 0..if cfg!(miri) { 3 } else { 50 } {
            let max = rng.below(200) + 1;
            let mut temp = arena.begin_temp();
            let mut d = DelayLine::new(&mut temp, max).unwrap();
            let mut history: Vec<f32> = Vec::new();
            for _ in 0..if cfg!(miri) { 100 } else { 1000 } {
                let x = rng.unit() * 2.0 - 1.0;
                d.write(x);
                history.push(x);
                let delay = rng.unit() * (max as f32 + 2.0);
                let clamped = delay.clamp(1.0, max as f32);
                let whole = clamped.floor() as usize;
                let frac = clamped - whole as f32;
                let at = |k: usize| history.len().checked_sub(k).map_or(0.0, |i| history[i]);
                let expected = at(whole) + (at(whole + 1) - at(whole)) * frac;
                let got = d.read(delay);
                assert!((got - expected).abs() < 1e-5, "max {max} delay {delay}: {got} vs {expected}");
            }
        }
    }
}
