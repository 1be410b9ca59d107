//! The sync arithmetic the device backends share: how many frames to write each frame to stay
//! `latency` ahead of the play position (Handmade Hero style), the running mean of the measured
//! queue, and the frame clock: one frame of sound per frame, for the offline backend and for
//! devices that report no queue at all (with the detector that notices them).
//!
//! Pure arithmetic on plain integers: no clock reads, no allocation, so it runs in the frame.

use handmade_api::MAX_SOUND_FRAMES;

/// Queue target and per-frame amount, in frames at the rate the device granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacing {
    /// Queue depth to find at each write (`latency_ms`), in frames.
    pub target_frames: u32,
    /// One game frame of sound: what the loop writes per frame once the queue is at target.
    pub tick_frames: u32,
}

impl Pacing {
    /// `rate` must be the rate the device runs at (not the one asked for): the queue is
    /// measured in the device's frames.
    pub fn new(rate: u32, fps: u32, latency_ms: f32) -> Self {
        let tick = (rate / fps.max(1)).clamp(1, MAX_SOUND_FRAMES as u32);
        let target = (f64::from(latency_ms.max(0.0)) * f64::from(rate) / 1000.0).round();
        Self { target_frames: (target as u32).clamp(1, MAX_SOUND_FRAMES as u32), tick_frames: tick }
    }

    /// The queue depth a write aims for: the target, the frame about to pass and `headroom`
    /// (sound a backend knows will leave the queue early, e.g. SDL's device buffer).
    pub fn goal(&self, headroom: u32) -> u32 {
        self.target_frames + self.tick_frames + headroom
    }

    /// Frames to write now: what brings `queued` back to the goal, no more than `room` (free
    /// space in the device buffer) nor `MAX_SOUND_FRAMES`.
    pub fn frames_to_write(&self, queued: i64, headroom: u32, room: i64) -> usize {
        let missing = i64::from(self.goal(headroom)) - queued.max(0);
        missing.clamp(0, room.max(0)).min(MAX_SOUND_FRAMES as i64) as usize
    }
}

/// The device's queue as measured each frame: the last figure and the mean over all of them
/// (the latency achieved).
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueStats {
    last: u32,
    sum: f64,
    count: u64,
}

impl QueueStats {
    pub fn record(&mut self, queued: i64) {
        self.last = queued.clamp(0, i64::from(u32::MAX)) as u32;
        self.sum += f64::from(self.last);
        self.count += 1;
    }

    pub fn last(&self) -> u32 {
        self.last
    }

    pub fn mean(&self) -> f32 {
        if self.count == 0 {
            0.0
        } else {
            (self.sum / self.count as f64) as f32
        }
    }
}

/// Exactly one frame of sound per frame, spread exactly when `rate / fps` is not whole: the
/// amount for a device that cannot say how much it holds (the loop's own clock paces it), and
/// for the offline backend.
#[derive(Debug, Clone, Copy)]
pub struct FrameClock {
    rate: u64,
    fps: u64,
    frames: u64,
    due_total: u64,
}

impl FrameClock {
    pub fn new(rate: u32, fps: u32) -> Self {
        Self { rate: u64::from(rate), fps: u64::from(fps.max(1)), frames: 0, due_total: 0 }
    }

    /// Advances one frame and returns the sound frames it covers.
    pub fn tick(&mut self) -> usize {
        self.frames += 1;
        let due = self.frames * self.rate / self.fps;
        let now = (due - self.due_total) as usize;
        self.due_total = due;
        now.min(MAX_SOUND_FRAMES)
    }
}

/// Notices a device whose delay stays 0 while sound is written to it (alsa-lib's `null`
/// device, some `file` setups): it consumes instantly, so its queue cannot pace anything.
/// One empty queue is an underrun; `FRAMES` of them in a row, each after a write, is a device
/// that does not report a delay. Half a second of them: a loaded machine can starve a real
/// device a few frames running (seen: 23 underruns in 600 frames at load 16 on 2 cores), and
/// taking a real device for one without delay would stop its latency control.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDelayDetector {
    zero_after_write: u32,
    wrote_since_last: bool,
}

impl NoDelayDetector {
    pub const FRAMES: u32 = 30;

    /// For a device just started with a write (of silence).
    pub fn after_a_write() -> Self {
        Self { zero_after_write: 0, wrote_since_last: true }
    }

    pub fn wrote(&mut self, frames: usize) {
        self.wrote_since_last |= frames > 0;
    }

    /// Feeds one delay measurement; true once the device has shown it reports no delay.
    pub fn measured(&mut self, delay: i64) -> bool {
        if delay > 0 {
            self.zero_after_write = 0;
        } else if self.wrote_since_last {
            self.zero_after_write += 1;
        }
        self.wrote_since_last = false;
        self.zero_after_write >= Self::FRAMES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacing_follows_rate_fps_and_latency() {
        let p = Pacing::new(48_000, 60, 10.0);
        assert_eq!((p.target_frames, p.tick_frames), (480, 800));
        let p = Pacing::new(44_100, 60, 10.0);
        assert_eq!((p.target_frames, p.tick_frames), (441, 735));
        assert_eq!(Pacing::new(48_000, 60, 0.0).target_frames, 1, "never an empty target");
    }

    #[test]
    fn writes_back_to_the_goal_within_the_room() {
        let p = Pacing::new(48_000, 60, 10.0);
        assert_eq!(p.frames_to_write(0, 0, 10_000), 1280, "an empty queue is refilled to target + tick");
        assert_eq!(p.frames_to_write(480, 0, 10_000), 800, "at target: one frame's worth");
        assert_eq!(p.frames_to_write(480, 256, 10_000), 1056, "headroom is kept on top");
        assert_eq!(p.frames_to_write(2000, 0, 10_000), 0, "over the goal: nothing");
        assert_eq!(p.frames_to_write(0, 0, 100), 100, "never more than the device has room for");
        assert_eq!(p.frames_to_write(-5, 0, -1), 0, "negative figures from a device are no room");
        let big = Pacing::new(192_000, 1, 1000.0);
        assert_eq!(big.frames_to_write(0, 0, i64::MAX), MAX_SOUND_FRAMES);
    }

    #[test]
    fn queue_mean_is_over_every_measurement() {
        let mut q = QueueStats::default();
        assert_eq!(q.mean(), 0.0);
        for d in [100, 200, -50, 300] {
            q.record(d);
        }
        assert_eq!((q.last(), q.mean()), (300, 150.0));
    }

    #[test]
    fn frame_clock_spreads_a_second_exactly() {
        let mut c = FrameClock::new(48_000, 144);
        let ticks: Vec<usize> = (0..144).map(|_| c.tick()).collect();
        assert!(ticks.iter().all(|&n| n == 333 || n == 334), "{ticks:?}");
        assert_eq!(ticks.iter().sum::<usize>(), 48_000);
        assert_eq!(FrameClock::new(48_000, 60).tick(), 800);
    }

    #[test]
    fn a_device_without_delay_is_noticed_but_an_underrun_is_not() {
        let mut d = NoDelayDetector::default();
        for _ in 0..20 {
            d.wrote(800);
            assert!(!d.measured(1600), "a device with a queue");
        }
        d.wrote(800);
        assert!(!d.measured(0), "one underrun is not a device without delay");
        assert!(!d.measured(0), "nor is an empty queue when nothing was written");
        d.wrote(800);
        assert!(!d.measured(1600), "a queue again starts the count over");
        let mut noticed = 0;
        for _ in 0..NoDelayDetector::FRAMES {
            d.wrote(2400);
            noticed += usize::from(d.measured(0));
        }
        assert_eq!(noticed, 1, "noticed exactly on the FRAMES-th empty queue after a write");
    }
}
