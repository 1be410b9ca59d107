//! Sound checks shared by the tests, the soak script and the reports: is a recording one
//! continuous sine? A pure sine obeys `x[n+1] + x[n-1] = 2 cos(w) x[n]` for any amplitude and
//! phase, so the residual of that recurrence is a few LSB of rounding on clean sound and jumps
//! at any discontinuity (a phase jump, a dropped or repeated sample, a gap, a click), wherever
//! in the cycle it happens. Streaming: an hour of sound is checked in one pass, in O(1) memory.

/// What `ToneChecker` found.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ToneReport {
    pub samples: u64,
    /// Largest recurrence residual, in 16-bit LSB.
    pub max_residual_lsb: f64,
    /// Samples whose residual exceeded the threshold (a discontinuity touches ~3 samples).
    pub discontinuities: u64,
    /// Index of the first of them.
    pub first_discontinuity: Option<u64>,
    /// Longest run of consecutive (near-)zero samples.
    pub longest_silence: u64,
    pub peak: f64,
    /// From rising zero crossings.
    pub frequency_hz: f64,
}

/// Feeds samples (-1..1) one at a time.
pub struct ToneChecker {
    two_cos_w: f64,
    rate: f64,
    threshold_lsb: f64,
    history: [f64; 2],
    silence: u64,
    crossings: u64,
    first_crossing: Option<u64>,
    last_crossing: u64,
    report: ToneReport,
}

const LSB: f64 = 1.0 / 32768.0;

impl ToneChecker {
    /// `threshold_lsb`: residual that counts as a discontinuity (4 suits 16-bit sound).
    pub fn new(tone_hz: f64, rate: f64, threshold_lsb: f64) -> Self {
        Self {
            two_cos_w: 2.0 * (std::f64::consts::TAU * tone_hz / rate).cos(),
            rate,
            threshold_lsb,
            history: [0.0; 2],
            silence: 0,
            crossings: 0,
            first_crossing: None,
            last_crossing: 0,
            report: ToneReport::default(),
        }
    }

    pub fn push(&mut self, x: f64) {
        let n = self.report.samples;
        let [older, old] = self.history;
        if n >= 2 {
            let residual = (x + older - self.two_cos_w * old).abs() / LSB;
            let r = &mut self.report;
            r.max_residual_lsb = r.max_residual_lsb.max(residual);
            if residual > self.threshold_lsb {
                r.discontinuities += 1;
                r.first_discontinuity.get_or_insert(n);
            }
        }
        if n >= 1 && old < 0.0 && x >= 0.0 {
            self.crossings += 1;
            self.first_crossing.get_or_insert(n);
            self.last_crossing = n;
        }
        self.silence = if x.abs() <= 1.5 * LSB { self.silence + 1 } else { 0 };
        self.report.longest_silence = self.report.longest_silence.max(self.silence);
        self.report.peak = self.report.peak.max(x.abs());
        self.history = [old, x];
        self.report.samples += 1;
    }

    pub fn finish(mut self) -> ToneReport {
        if let (Some(first), true) = (self.first_crossing, self.crossings > 1) {
            let cycles = (self.crossings - 1) as f64;
            self.report.frequency_hz = cycles * self.rate / (self.last_crossing - first) as f64;
        }
        self.report
    }
}

/// Checks a whole slice.
pub fn check_tone(samples: &[f64], tone_hz: f64, rate: f64) -> ToneReport {
    let mut checker = ToneChecker::new(tone_hz, rate, 4.0);
    samples.iter().for_each(|&s| checker.push(s));
    checker.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(n: usize, phase_jump_at: Option<usize>) -> Vec<f64> {
        (0..n)
            .map(|i| {
                let jump = if phase_jump_at.is_some_and(|j| i >= j) { 0.01 } else { 0.0 };
                let x = 0.25 * (std::f64::consts::TAU * 256.0 * i as f64 / 48_000.0 + jump).sin();
                (x * 32767.0).round() / 32767.0
            })
            .collect()
    }

    #[test]
    fn a_clean_quantised_sine_passes() {
        let r = check_tone(&tone(48_000, None), 256.0, 48_000.0);
        assert_eq!(r.discontinuities, 0, "{r:?}");
        assert!(r.max_residual_lsb < 3.0 && (r.frequency_hz - 256.0).abs() < 0.05, "{r:?}");
        assert!((r.peak - 0.25).abs() < 1e-3);
    }

    #[test]
    fn a_tiny_phase_jump_or_a_dropped_sample_is_caught() {
        let r = check_tone(&tone(48_000, Some(20_000)), 256.0, 48_000.0);
        assert!(r.discontinuities > 0 && r.first_discontinuity.unwrap().abs_diff(20_000) <= 1, "{r:?}");
        let mut dropped = tone(48_000, None);
        dropped.remove(30_001);
        assert!(check_tone(&dropped, 256.0, 48_000.0).discontinuities > 0);
        let mut gap = tone(48_000, None);
        gap[10_000..10_400].fill(0.0);
        let r = check_tone(&gap, 256.0, 48_000.0);
        assert!(r.discontinuities > 0 && r.longest_silence >= 400, "{r:?}");
    }
}
