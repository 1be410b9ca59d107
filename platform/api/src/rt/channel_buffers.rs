//! `ChannelBuffers`: structure-of-arrays sample storage sized exactly from a channel
//! configuration (`channels * frames` samples, one contiguous block, channel after channel),
//! not from a worst case; a mono effect gets one channel, a stereo mixer two.
//!
//! ```
//! use handmade_api::{rt::ChannelBuffers, MemoryArena};
//! let mut backing = vec![0u8; 1 << 16];
//! let mut arena = MemoryArena::new("mix", &mut backing);
//! let mut bus = ChannelBuffers::new(&mut arena, 2, 800).unwrap();
//! assert_eq!(bus.bytes(), 2 * 800 * 4); // and the arena gave exactly that (plus alignment)
//! let (left, right) = bus.stereo_mut();
//! left[0] = 0.5;
//! right[0] = -0.5;
//! assert_eq!(bus.channel(1)[0], -0.5);
//! ```

use crate::{ArenaError, MemoryArena};

#[derive(crate::StateLayout)]
pub struct ChannelBuffers<'a> {
    samples: &'a mut [f32],
    channels: usize,
    frames: usize,
}

impl<'a> ChannelBuffers<'a> {
    /// Silent buffers for `channels` channels of `frames` frames each.
    pub fn new(arena: &mut MemoryArena<'a>, channels: usize, frames: usize) -> Result<Self, ArenaError> {
        let count = channels.checked_mul(frames).unwrap_or(usize::MAX / 4);
        Ok(Self { samples: arena.push_array(count, 0.0f32)?, channels, frames })
    }

    pub fn channels(&self) -> usize {
        self.channels
    }
    pub fn frames(&self) -> usize {
        self.frames
    }
    /// Bytes of sample storage (exactly `channels * frames * 4`).
    pub fn bytes(&self) -> usize {
        core::mem::size_of_val(self.samples)
    }

    /// One channel's samples. Panics if `channel >= channels()`.
    pub fn channel(&self, channel: usize) -> &[f32] {
        assert!(channel < self.channels, "channel {channel} of {}", self.channels);
        &self.samples[channel * self.frames..(channel + 1) * self.frames]
    }

    pub fn channel_mut(&mut self, channel: usize) -> &mut [f32] {
        assert!(channel < self.channels, "channel {channel} of {}", self.channels);
        &mut self.samples[channel * self.frames..(channel + 1) * self.frames]
    }

    /// Every channel at once, in order (empty when there are no frames).
    pub fn channels_mut(&mut self) -> impl Iterator<Item = &mut [f32]> {
        self.samples.chunks_exact_mut(self.frames.max(1))
    }

    /// The first two channels, e.g. to lend as a `GameSoundOutputBuffer`. Panics if mono.
    pub fn stereo_mut(&mut self) -> (&mut [f32], &mut [f32]) {
        assert!(self.channels >= 2, "stereo_mut on {} channel(s)", self.channels);
        let (left, rest) = self.samples.split_at_mut(self.frames);
        (left, &mut rest[..self.frames])
    }

    pub fn clear(&mut self) {
        self.samples.fill(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_is_sized_exactly_from_the_configuration() {
        let mut backing = vec![0u8; 1 << 16];
        let mut arena = MemoryArena::new("bus", &mut backing);
        arena.push_struct(0.0f32).unwrap(); // align the cursor: the backing may not be
        for (channels, frames) in [(1, 64), (2, 800), (6, 256), (3, 0)] {
            let before = arena.used();
            let b = ChannelBuffers::new(&mut arena, channels, frames).unwrap();
            assert_eq!(b.bytes(), channels * frames * 4);
            assert_eq!(arena.used() - before, channels * frames * 4);
        }
    }

    #[test]
    fn channels_are_disjoint_and_in_order() {
        let mut backing = vec![0u8; 4096];
        let mut arena = MemoryArena::new("bus", &mut backing);
        let mut b = ChannelBuffers::new(&mut arena, 3, 4).unwrap();
        for (c, ch) in b.channels_mut().enumerate() {
            ch.fill(c as f32);
        }
        assert_eq!(b.channel(0), [0.0; 4]);
        assert_eq!(b.channel(2), [2.0; 4]);
        b.channel_mut(1)[3] = 9.0;
        assert_eq!(b.stereo_mut().1, [1.0, 1.0, 1.0, 9.0]);
        b.clear();
        assert!(b.channels_mut().all(|c| c.iter().all(|&s| s == 0.0)));
    }

    #[test]
    fn too_big_a_configuration_is_an_arena_error() {
        let mut backing = vec![0u8; 64];
        let mut arena = MemoryArena::new("bus", &mut backing);
        assert!(ChannelBuffers::new(&mut arena, 2, 4800).is_err());
        assert!(ChannelBuffers::new(&mut arena, usize::MAX, 2).is_err());
    }
}
