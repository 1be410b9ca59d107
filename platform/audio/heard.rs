//! What a listener hears, measured from the platform's side (issue 12): the gaps in the sound
//! and how long a sample waits between its write and its play.
//!
//! Gaps: a sound server that finds a client's queue short plays silence for the rest of its
//! cycle (PipeWire: one 256-frame quantum, 5.3 ms), and the client's own `underruns` figure
//! (the ALSA pulse plugin's EPIPE, an empty SDL queue) sees almost none of it. What it does
//! see: the device's play position (frames written minus the delay) stops advancing while the
//! clock goes on. `GapDetector` watches that offset between the clock and the play position; a
//! step up by more than `GAP_THRESHOLD_MS` that stays is one gap. The offset is taken as the
//! lowest of the last `WINDOW` measurements, so the steps a device makes when it takes its
//! data in chunks (SDL's callback, a server's quantum) are not mistaken for gaps; a slow
//! climb (a device clock a little slower than ours) is followed, not counted. Where the
//! device says itself that it ran out (EPIPE; PipeWire's ALSA plugin does for every cycle it
//! pads with silence), each report is one gap (`device_gaps`).
//!
//! Latency: a write of `n` frames onto a queue of `d` frames plays its first frame after `d`
//! frames and its last after `d + n - 1`. `WriteLatency` keeps the mean over every sample
//! written and the largest. Pure arithmetic on plain integers: it runs in the frame.

/// Measurements the offset's minimum is taken over (one per frame), at most: see `new`.
const MAX_WINDOW: usize = 16;
/// Measurements ignored after a (re)start: the device starts playing some time after its
/// first write (a server's prebuffer, its first cycle), which is not a gap.
const SETTLE: u32 = 30;
/// Measurements (frames) over which the noise estimate halves: a second at 60 fps.
const NOISE_HALF_LIFE: u32 = 60;
/// A rise this large right after a gap continues it (see `in_gap`).
const CONTINUED_MS: u64 = 8;
/// How fast the baseline may follow a slow climb. Sound cards run a few hundred ppm off the
/// system clock; a loaded machine's PipeWire dummy driver (what drives a null sink) was seen
/// to fall 0.5-1% behind it. 2% of a 16.7 ms frame is 16 frames: a 256-frame silence still
/// stands out.
const DRIFT_PPM: u64 = 20_000;

/// Counts heard gaps from the device's play position and the clock. Fed once per frame.
#[derive(Debug, Clone, Copy)]
pub struct GapDetector {
    rate: u64,
    /// A rise of the clock-minus-play offset by at least this many frames is a gap, or twice
    /// the noise seen, whichever is more.
    threshold: i64,
    /// How far below the baseline the offset has dipped lately (frames): the figure's own
    /// noise. Gaps only ever push the offset up, so its dips measure the jitter alone
    /// (PipeWire's pulse server updates its timing once per quantum: its figure is coarser
    /// than PulseAudio's). Halves every `NOISE_HALF_LIFE` measurements.
    noise: i64,
    /// The first measurement since the (re)start: the clock and play position offsets count from it.
    origin: Option<(u64, i64)>,
    seen: u32,
    window: usize,
    /// Measurements a rise must hold before it counts (0: at once); see `new`.
    confirm: u32,
    /// A rise not yet confirmed: the lowest offset since it began, and its age.
    pending: Option<(i64, u32)>,
    /// The last measurement counted a gap: a rise of `CONTINUED_MS` or more at the next one
    /// is the same silence going on (PipeWire, after an underrun, can stay silent for several
    /// quanta while the client writes), not another. Smaller rises in a row are separate
    /// gaps with sound between (PulseAudio at too low a latency: a short gap every frame).
    in_gap: bool,
    recent: [i64; MAX_WINDOW],
    /// After a gap the device reported (`device_gaps`): measurements up to this one set the
    /// baseline rather than count.
    rebase_until: u32,
    /// The offset (frames) the sound was heard without a gap at.
    baseline: i64,
    last_ns: u64,
    gaps: u64,
    gap_frames: u64,
}

impl GapDetector {
    /// `window`: how many measurements (frames) the offset's minimum is taken over, 1 to 16.
    /// A device fed in small pieces (the ALSA pulse plugin) needs few: 4. One that takes its
    /// data in chunks as long as half a frame or more (SDL's callback, 5-11 ms) shows a saw
    /// tooth whose bottom is only met every several frames: 16. Gaps closer together than
    /// the window count as one.
    ///
    /// `confirm`: measurements a rise must hold before it counts. A device whose position
    /// figure is exact (ALSA's delay) needs none. SDL's queue only says what SDL's thread took,
    /// and that thread, when late, takes less for a while and catches up from the server's
    /// buffer: a rise that goes away again was no gap. Gaps closer than `confirm` merge.
    ///
    /// `threshold_us`: the smallest rise that is a gap. Below a PipeWire quantum at its
    /// smallest common size (128 frames, 2.7 ms), above the jitter of the device's figure.
    pub fn new(rate: u32, window: usize, confirm: u32, threshold_us: u32) -> Self {
        Self {
            rate: u64::from(rate.max(1)),
            threshold: (u64::from(rate) * u64::from(threshold_us) / 1_000_000).max(1) as i64,
            origin: None,
            seen: 0,
            window: window.clamp(1, MAX_WINDOW),
            confirm,
            pending: None,
            noise: 0,
            in_gap: false,
            recent: [0; MAX_WINDOW],
            rebase_until: 0,
            baseline: 0,
            last_ns: 0,
            gaps: 0,
            gap_frames: 0,
        }
    }

    /// The device was (re)started or lost: what it played before says nothing about after.
    pub fn restart(&mut self) {
        self.recent = [0; MAX_WINDOW];
        self.origin = None;
        self.seen = 0;
        self.pending = None;
        self.in_gap = false;
        self.rebase_until = 0;
        self.baseline = 0;
    }

    /// The device itself said it ran out (ALSA's EPIPE), `reported` times: the server played
    /// silence for part of a cycle, each a gap whatever the position figure shows. PipeWire's
    /// ALSA plugin flags every cycle it had to pad with silence, while its delay figure moves
    /// a whole quantum at a time, too coarse for `measured` to see a quantum's silence in
    /// (issue 12: 12 of 64 recorded gaps at 2 ms). Counted here; the rise the silence leaves
    /// in the offset is this gap, not another: the baseline follows it over the next window,
    /// and the rise goes to `gap_frames`.
    pub fn device_gaps(&mut self, reported: u64) {
        if reported == 0 {
            return;
        }
        self.gaps += reported;
        self.pending = None;
        self.rebase_until = self.seen.saturating_add(self.window as u32);
    }

    /// One measurement: `now_ns` on a monotonic clock, `played` the frames the device has
    /// played since it started (written minus its delay).
    pub fn measured(&mut self, now_ns: u64, played: i64) {
        let (t0, p0) = *self.origin.get_or_insert((now_ns, played));
        let clock_frames = (u128::from(now_ns.saturating_sub(t0)) * u128::from(self.rate) / 1_000_000_000) as i64;
        let offset = clock_frames - (played - p0);
        let recent = &mut self.recent[..self.window];
        recent[self.seen as usize % recent.len()] = offset;
        self.seen = self.seen.saturating_add(1);
        let filled = (self.seen as usize).min(recent.len());
        let low = recent[..filled].iter().copied().min().unwrap_or(offset);
        log::trace!("gap detector: offset {offset} low {low} baseline {}", self.baseline);
        let settling = self.seen <= SETTLE.max(self.window as u32);
        let counted = if settling || self.seen <= self.rebase_until {
            if !settling {
                self.gap_frames += (low - self.baseline).max(0) as u64;
            }
            self.baseline = low;
            false
        } else {
            if self.seen % NOISE_HALF_LIFE == 0 {
                self.noise /= 2;
            }
            self.noise = self.noise.max(self.baseline - offset);
            self.follow(low, now_ns)
        };
        self.in_gap = counted;
        self.last_ns = now_ns;
    }

    /// Moves the baseline with `low` (the offset's recent minimum); returns true when a rise
    /// was counted as a gap (or as more of the gap the last measurement counted).
    fn follow(&mut self, low: i64, now_ns: u64) -> bool {
        // The baseline may climb by the drift allowed since the last measurement: a rise is
        // what goes beyond that.
        let elapsed = now_ns.saturating_sub(self.last_ns);
        let drift = (u128::from(elapsed) * u128::from(self.rate * DRIFT_PPM) / 1_000_000_000_000_000) as i64;
        let threshold = self.threshold.max(2 * self.noise) + drift.max(0);
        let pending = match self.pending {
            Some((lowest, age)) => Some((lowest.min(low), age + 1)),
            None if low - self.baseline >= threshold => Some((low, 0)),
            None => None,
        };
        self.pending = pending.filter(|&(lowest, _)| lowest - self.baseline >= threshold);
        match self.pending {
            Some((lowest, age)) if age >= self.confirm => {
                let continued = self.in_gap && lowest - self.baseline >= (self.rate * CONTINUED_MS / 1000) as i64;
                self.gaps += u64::from(!continued);
                self.gap_frames += (lowest - self.baseline) as u64;
                self.baseline = lowest;
                self.pending = None;
                true
            }
            Some(_) => false,
            None => {
                self.baseline = low.min(self.baseline + drift.max(0));
                false
            }
        }
    }

    pub fn gaps(&self) -> u64 {
        self.gaps
    }

    /// Frames of the clock that played no sound of ours, over all gaps.
    pub fn gap_frames(&self) -> u64 {
        self.gap_frames
    }
}

/// Time from a sample's write to its play, in frames: mean over every sample, and the largest.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteLatency {
    sum: f64,
    samples: u64,
    max: u64,
}

impl WriteLatency {
    /// `queued`: the device's delay when the write was made; `written`: frames in the write.
    pub fn wrote(&mut self, queued: i64, written: usize) {
        if written == 0 {
            return;
        }
        let (d, n) = (queued.max(0) as f64, written as f64);
        self.sum += n * d + n * (n - 1.0) / 2.0;
        self.samples += written as u64;
        self.max = self.max.max(queued.max(0) as u64 + written as u64 - 1);
    }

    pub fn mean_frames(&self) -> f32 {
        if self.samples == 0 {
            0.0
        } else {
            (self.sum / self.samples as f64) as f32
        }
    }

    pub fn max_frames(&self) -> u32 {
        self.max.min(u64::from(u32::MAX)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// A device playing 48 frames a millisecond, measured every 16.667 ms, with silences of
    /// `gaps` (at measurement index, frames) inserted, and `jitter` frames of noise.
    fn run(frames: usize, gaps: &[(usize, i64)], jitter: impl Fn(usize) -> i64) -> GapDetector {
        let mut d = GapDetector::new(48_000, 16, 0, 1000);
        let mut silent = 0;
        for i in 0..frames {
            let now = i as u64 * 16_667 * 1000;
            silent += gaps.iter().filter(|g| g.0 == i).map(|g| g.1).sum::<i64>();
            let played = (now * 48 / MS) as i64 - silent - jitter(i);
            d.measured(now + 5 * MS, played);
        }
        d
    }

    #[test]
    fn clean_sound_has_no_gaps_even_taken_in_chunks() {
        // SDL takes 512 frames per 10.67 ms callback: the play position moves in steps, and a
        // measurement every 16.67 ms meets the step's bottom every few frames.
        let d = run(600, &[], |i| ((i as u64 * 800) % 512) as i64);
        assert_eq!((d.gaps(), d.gap_frames()), (0, 0));
    }

    #[test]
    fn each_silence_is_one_gap() {
        let d = run(600, &[(100, 256), (200, 256), (300, 768)], |i| ((i * 31) % 20) as i64);
        assert_eq!(d.gaps(), 3, "{d:?}");
        assert!((1200..=1300).contains(&d.gap_frames()), "{d:?}");
    }

    #[test]
    fn the_start_and_a_slow_clock_are_not_gaps() {
        let d = run(600, &[(3, 2000)], |_| 0);
        assert_eq!(d.gaps(), 0, "the start settles");
        // 300 ppm slow: 14 frames a second, 140 over the run.
        let mut d = GapDetector::new(48_000, 4, 0, 1000);
        for i in 0..600u64 {
            let now = i * 16_667 * 1000;
            d.measured(now, (now as f64 * 48.0 / 1e6 * (1.0 - 300e-6)) as i64);
        }
        assert_eq!(d.gaps(), 0, "{d:?}");
    }

    #[test]
    fn a_rise_that_goes_away_again_is_no_gap_when_confirming() {
        let mut d = GapDetector::new(48_000, 4, 30, 1000);
        let mut lag = 0;
        for i in 0..600u64 {
            let now = i * 16_667 * 1000;
            // A late reader: 600 frames behind for 10 frames, then caught up; a real gap at 400.
            lag = if (100..110).contains(&i) {
                600
            } else if i >= 400 {
                256
            } else {
                0
            };
            d.measured(now, (now * 48 / MS) as i64 - lag);
        }
        assert_eq!((d.gaps(), lag), (1, 256), "{d:?}");
    }

    #[test]
    fn a_gap_the_device_reports_is_counted_once() {
        // Two silences of a quantum: the first also reported by the device (EPIPE), the second
        // only seen in the position.
        let mut d = GapDetector::new(48_000, 4, 0, 250);
        let mut silent = 0;
        for i in 0..600u64 {
            let now = i * 16_667 * 1000;
            if i == 100 || i == 300 {
                silent += 256;
            }
            if i == 100 {
                d.device_gaps(1);
            }
            d.measured(now, (now * 48 / MS) as i64 - silent);
        }
        assert_eq!(d.gaps(), 2, "{d:?}");
        assert_eq!(d.gap_frames(), 512, "both silences' length: {d:?}");
        // One the position cannot show at all (a figure too coarse) still counts.
        let mut d = run(600, &[], |_| 0);
        d.device_gaps(1);
        assert_eq!(d.gaps(), 1);
    }

    #[test]
    fn a_restart_keeps_the_count_and_settles_again() {
        let mut d = run(600, &[(100, 256)], |_| 0);
        d.restart();
        d.measured(0, 0);
        d.measured(16 * MS, -5000);
        assert_eq!(d.gaps(), 1);
    }

    #[test]
    fn write_latency_is_per_sample() {
        let mut l = WriteLatency::default();
        l.wrote(480, 800);
        assert_eq!((l.mean_frames(), l.max_frames()), (480.0 + 799.0 / 2.0, 1279));
        l.wrote(-3, 1);
        l.wrote(100, 0);
        assert_eq!(l.max_frames(), 1279);
        assert!((l.mean_frames() - (800.0 * 879.5) / 801.0).abs() < 1e-3);
    }
}
