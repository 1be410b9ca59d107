//! Run statistics for `--stats`: frame and reload time distributions kept in fixed histograms
//! carved from the platform arena (recording a frame time allocates nothing), plus counters.

use std::fmt::Write as _;
use std::time::Duration;

use handmade_api::{ArenaError, MemoryArena};

/// A histogram of durations in 10 µs buckets; longer ones land in the last bucket but still
/// count toward `max`.
pub struct Timings<'a> {
    buckets: &'a mut [u32],
    count: u64,
    max: Duration,
}

const BUCKET_NS: u128 = 10_000;

impl<'a> Timings<'a> {
    pub fn new(arena: &mut MemoryArena<'a>, longest: Duration) -> Result<Self, ArenaError> {
        let n = (longest.as_nanos() / BUCKET_NS) as usize + 1;
        Ok(Self { buckets: arena.push_array(n, 0u32)?, count: 0, max: Duration::ZERO })
    }

    pub fn record(&mut self, d: Duration) {
        let i = ((d.as_nanos() / BUCKET_NS) as usize).min(self.buckets.len() - 1);
        self.buckets[i] = self.buckets[i].saturating_add(1);
        self.count += 1;
        self.max = self.max.max(d);
    }

    #[cfg(test)]
    fn count(&self) -> u64 {
        self.count
    }

    /// The `p`-th percentile (0..=100) in milliseconds, to bucket resolution (midpoint).
    pub fn percentile_ms(&self, p: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let rank = ((p / 100.0) * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0u64;
        for (i, &c) in self.buckets.iter().enumerate() {
            seen += u64::from(c);
            if seen >= rank {
                let mid_ns = i as f64 * BUCKET_NS as f64 + BUCKET_NS as f64 / 2.0;
                return (mid_ns / 1e6).min(self.max_ms());
            }
        }
        self.max_ms()
    }

    pub fn max_ms(&self) -> f64 {
        self.max.as_secs_f64() * 1e3
    }
}

/// Everything `--stats` prints. Counters only; timings live in `Timings`.
#[derive(Debug, Default, Clone)]
pub struct Counters {
    pub frames: u64,
    pub sound_frames: u64,
    pub reloads: u64,
    pub reload_failures: u64,
    /// Allocations on the frame thread in frames without a reload, after warm-up.
    pub heap_allocs_after_warmup: u64,
    /// Allocations on other threads (sound server client threads, the rebuild watcher) after warm-up.
    pub heap_allocs_other_threads: u64,
    /// Allocations made by reloads themselves (`dlopen` allocates).
    pub reload_heap_allocs: u64,
    /// Allocations inside the sound path (output-sound call, conversion, device write), all frames.
    pub sound_heap_allocs: u64,
    /// Underruns the device itself reported (see `gaps` for what a listener hears).
    pub underruns: u64,
    /// Gaps a listener hears: the device's play position fell behind the clock (the platform
    /// inserted no silence, so a server or the device did). Through PipeWire each is one
    /// quantum of silence or more.
    pub gaps: u64,
    /// The silence those gaps add up to.
    pub gap_ms: f64,
    /// Time from a sample's write to its play, mean over every sample written: the device's
    /// delay at the write plus what was written before the sample in the same write. The delay
    /// is the figure the device (the ALSA plugin, SDL's queue plus its device buffer) gives;
    /// a sound server's own queue beyond that figure (its graph cycle, its sink's buffer) is
    /// not visible to the platform and not included.
    pub latency_ms: f64,
    /// The largest such time over the run.
    pub latency_ms_max: f64,
    /// The device's delay at write time, averaged over the frames (the old `latency_ms`).
    pub queue_ms: f64,
    /// How late after the frame's scheduled start the sound was written: the frame thread's
    /// wake-up lateness plus the input and update work before the sound phase (for the demo
    /// a fraction of a millisecond). p50, p99, max.
    pub write_late_ms: [f64; 3],
    /// Frames in which the device was asked to keep one frame more queued than the target,
    /// because a new game library could come in (a build running, a check, a forced reload
    /// next frame). The offline backend ignores the request.
    pub swap_hold_frames: u64,
    pub arena_high_water_bytes: u64,
    pub nonfinite_samples: u64,
    /// Frames in which the game changed the sound buffer's frame count (ignored).
    pub bad_sample_counts: u64,
    pub game_panics: u64,
    /// Crashes (signals) and hangs (watchdog) inside game calls, contained.
    pub game_faults: u64,
    pub rollbacks: u64,
    /// The longest a frame with a reload worked (its frame-rate wait left out).
    pub reload_frame_busy_ms_max: f64,
    /// Allocations in frames with a dev-loop event (build finished, loop toggled, game crash).
    pub event_heap_allocs: u64,
    pub game_libs_mapped: usize,
    pub alloc_counting: bool,
}

/// The one `stats:` line: space-separated `key=value` pairs.
pub fn format_line(c: &Counters, frame: &Timings<'_>, reload: &Timings<'_>, resident_mib: f64) -> String {
    let mut s = String::from("stats:");
    let mut kv = |k: &str, v: &dyn std::fmt::Display| {
        let _ = write!(s, " {k}={v}");
    };
    kv("frames", &c.frames);
    kv("sound_frames", &c.sound_frames);
    kv("reloads", &c.reloads);
    kv("reload_failures", &c.reload_failures);
    kv("reload_ms_p50", &format!("{:.3}", reload.percentile_ms(50.0)));
    kv("reload_ms_max", &format!("{:.3}", reload.max_ms()));
    kv("reload_frame_busy_ms_max", &format!("{:.3}", c.reload_frame_busy_ms_max));
    kv("frame_ms_p50", &format!("{:.3}", frame.percentile_ms(50.0)));
    kv("frame_ms_p99", &format!("{:.3}", frame.percentile_ms(99.0)));
    kv("frame_ms_max", &format!("{:.3}", frame.max_ms()));
    kv("heap_allocs_after_warmup", &c.heap_allocs_after_warmup);
    kv("heap_allocs_other_threads", &c.heap_allocs_other_threads);
    kv("reload_heap_allocs", &c.reload_heap_allocs);
    kv("sound_heap_allocs", &c.sound_heap_allocs);
    kv("alloc_counting", &c.alloc_counting);
    kv("underruns", &c.underruns);
    kv("gaps", &c.gaps);
    kv("gap_ms", &format!("{:.1}", c.gap_ms));
    kv("latency_ms", &format!("{:.2}", c.latency_ms));
    kv("latency_ms_max", &format!("{:.2}", c.latency_ms_max));
    kv("queue_ms", &format!("{:.2}", c.queue_ms));
    kv("write_late_ms_p50", &format!("{:.1}", c.write_late_ms[0]));
    kv("write_late_ms_p99", &format!("{:.1}", c.write_late_ms[1]));
    kv("write_late_ms_max", &format!("{:.2}", c.write_late_ms[2]));
    kv("swap_hold_frames", &c.swap_hold_frames);
    kv("arena_high_water_bytes", &c.arena_high_water_bytes);
    kv("resident_mib", &format!("{resident_mib:.1}"));
    kv("nonfinite_samples", &c.nonfinite_samples);
    kv("bad_sample_counts", &c.bad_sample_counts);
    kv("game_panics", &c.game_panics);
    kv("game_faults", &c.game_faults);
    kv("rollbacks", &c.rollbacks);
    kv("event_heap_allocs", &c.event_heap_allocs);
    kv("game_libs_mapped", &c.game_libs_mapped);
    s
}

/// Resident set size from `/proc/self/statm`, in MiB.
pub fn resident_mib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0.0);
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64;
    pages * page / (1024.0 * 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_from_the_histogram() {
        let mut backing = vec![0u8; 1 << 20];
        let mut arena = MemoryArena::new("stats", &mut backing);
        let mut t = Timings::new(&mut arena, Duration::from_millis(100)).unwrap();
        for ms in 1..=100 {
            t.record(Duration::from_millis(ms));
        }
        t.record(Duration::from_secs(5)); // beyond the range: last bucket, exact max
        assert!((t.percentile_ms(50.0) - 51.005).abs() < 0.01, "the 51st of 101: {}", t.percentile_ms(50.0));
        assert_eq!(t.max_ms(), 5000.0);
        assert_eq!(t.count(), 101);
    }

    #[test]
    fn line_round_trips() {
        let mut backing = vec![0u8; 1 << 16];
        let mut arena = MemoryArena::new("stats", &mut backing);
        let t = Timings::new(&mut arena, Duration::from_millis(10)).unwrap();
        let c = Counters { frames: 600, ..Default::default() };
        let line = format_line(&c, &t, &t, 12.5);
        assert!(line.starts_with("stats: frames=600 "));
        assert!(line.split_whitespace().any(|kv| kv == "resident_mib=12.5"));
    }
}
