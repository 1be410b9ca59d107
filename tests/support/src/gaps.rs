//! Gaps a listener hears in a recorded sine (issue 12): every place where the recording stops
//! being one continuous tone — a run of silence a sound server inserted when a client's queue
//! ran dry, or a jump where sound was dropped — counted once however many samples it touches.
//! This is the ground truth the platform's own `gaps` figure is compared with.

/// One heard gap: where it starts (sample index into the slice checked) and how many samples
/// it spans (a 256-frame silence spans 257: the jump into it and the jump out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    pub at: usize,
    pub span: usize,
}

/// Discontinuities closer than this (1 ms at 48 kHz) are one gap: the jump into a silence and
/// the jump out of it, or the few samples one jump disturbs.
const MERGE: usize = 48;
/// A silence this long (in samples) is a gap even without a jump at its edges; a 256 Hz sine
/// at any audible amplitude is near zero for one sample per crossing.
const SILENT_RUN: usize = 3;
const LSB: f64 = 1.0 / 32768.0;

/// Finds every gap in `samples` (-1..1), a sine of `tone_hz` at `rate`: a sample whose sine
/// recurrence residual exceeds 4 LSB (see `tone.rs`), or a run of `SILENT_RUN` near-zero samples.
pub fn find_gaps(samples: &[f64], tone_hz: f64, rate: f64) -> Vec<Gap> {
    let two_cos_w = 2.0 * (std::f64::consts::TAU * tone_hz / rate).cos();
    let mut gaps: Vec<Gap> = Vec::new();
    let mut silent = 0usize;
    let mark = |i: usize, gaps: &mut Vec<Gap>| match gaps.last_mut() {
        Some(g) if i <= g.at + g.span + MERGE => g.span = g.span.max(i + 1 - g.at),
        _ => gaps.push(Gap { at: i, span: 1 }),
    };
    for i in 0..samples.len() {
        let x = samples[i];
        silent = if x.abs() <= 1.5 * LSB { silent + 1 } else { 0 };
        if silent >= SILENT_RUN {
            mark(i + 1 - silent, &mut gaps);
            mark(i, &mut gaps);
        }
        if i >= 2 && (x + samples[i - 2] - two_cos_w * samples[i - 1]).abs() > 4.0 * LSB {
            mark(i, &mut gaps);
        }
    }
    gaps
}

/// Gaps in a tone whose pitch moves (up to `max_hz`), where the sine recurrence of
/// `find_gaps` cannot be used: a run of `SILENT_RUN` near-zero samples, or a step between two
/// samples larger than twice the steepest slope a full-scale sine of `max_hz` has (a jump where
/// sound was dropped or inserted). Coarser than `find_gaps`: a drop that happens to join two
/// samples of nearly equal value is not seen.
pub fn find_breaks(samples: &[f64], max_hz: f64, rate: f64) -> Vec<Gap> {
    let max_step = 2.0 * std::f64::consts::TAU * max_hz / rate;
    let mut gaps: Vec<Gap> = Vec::new();
    let mut silent = 0usize;
    let mark = |i: usize, gaps: &mut Vec<Gap>| match gaps.last_mut() {
        Some(g) if i <= g.at + g.span + MERGE => g.span = g.span.max(i + 1 - g.at),
        _ => gaps.push(Gap { at: i, span: 1 }),
    };
    for i in 0..samples.len() {
        silent = if samples[i].abs() <= 1.5 * LSB { silent + 1 } else { 0 };
        if silent >= SILENT_RUN {
            mark(i + 1 - silent, &mut gaps);
            mark(i, &mut gaps);
        }
        if i >= 1 && (samples[i] - samples[i - 1]).abs() > max_step {
            mark(i, &mut gaps);
        }
    }
    gaps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| (0.25 * (std::f64::consts::TAU * 256.0 * i as f64 / 48_000.0).sin() * 32767.0).round() / 32767.0)
            .collect()
    }

    #[test]
    fn a_clean_tone_has_none() {
        assert_eq!(find_gaps(&tone(48_000), 256.0, 48_000.0), []);
    }

    #[test]
    fn an_inserted_quantum_of_silence_and_a_drop_are_one_gap_each() {
        let clean = tone(48_000);
        let mut x = clean[..10_000].to_vec();
        x.extend(std::iter::repeat(0.0).take(256));
        x.extend_from_slice(&clean[10_000..30_000]);
        x.extend_from_slice(&clean[30_100..]); // 100 samples dropped
        let gaps = find_gaps(&x, 256.0, 48_000.0);
        assert_eq!(gaps.len(), 2, "{gaps:?}");
        assert!(gaps[0].at.abs_diff(10_000) <= 1 && (256..=260).contains(&gaps[0].span), "{gaps:?}");
        assert!(gaps[1].at.abs_diff(30_256) <= 2 && gaps[1].span < 8, "{gaps:?}");
    }

    #[test]
    fn gaps_further_apart_than_a_millisecond_count_apart() {
        let mut x = tone(48_000);
        x[1000..1256].fill(0.0);
        x[1400..1656].fill(0.0);
        assert_eq!(find_gaps(&x, 256.0, 48_000.0).len(), 2);
    }

    #[test]
    fn breaks_are_found_in_a_gliding_tone_and_a_glide_is_none() {
        let mut phase = 0.0;
        let glide: Vec<f64> = (0..48_000)
            .map(|i| {
                phase += (128.0 + 384.0 * i as f64 / 48_000.0) / 48_000.0;
                (0.25 * (std::f64::consts::TAU * phase).sin() * 32767.0).round() / 32767.0
            })
            .collect();
        assert_eq!(find_breaks(&glide, 512.0, 48_000.0), []);
        let mut x = glide[..20_000].to_vec();
        x.extend(std::iter::repeat(0.0).take(256));
        x.extend_from_slice(&glide[20_000..30_000]);
        x.extend_from_slice(&glide[30_050..]); // 50 samples dropped mid-slope
        let breaks = find_breaks(&x, 512.0, 48_000.0);
        assert_eq!(breaks.len(), 2, "{breaks:?}");
        assert!(breaks[0].at.abs_diff(20_000) <= 2, "{breaks:?}");
    }
}
