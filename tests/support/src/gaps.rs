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
    scan(samples, |i| i >= 2 && (samples[i] + samples[i - 2] - two_cos_w * samples[i - 1]).abs() > 4.0 * LSB)
}

/// Gaps in a tone whose pitch moves (up to `max_hz`), where the sine recurrence of
/// `find_gaps` cannot be used: a run of `SILENT_RUN` near-zero samples, or a step between two
/// samples larger than twice the steepest slope a full-scale sine of `max_hz` has (a jump where
/// sound was dropped or inserted). Coarser than `find_gaps`: a drop that happens to join two
/// samples of nearly equal value is not seen.
pub fn find_breaks(samples: &[f64], max_hz: f64, rate: f64) -> Vec<Gap> {
    let max_step = 2.0 * std::f64::consts::TAU * max_hz / rate;
    scan(samples, |i| i >= 1 && (samples[i] - samples[i - 1]).abs() > max_step)
}

/// Where a recording of the platform's tone is counted: from half a second after its first
/// sound (the platform's own gap count settles for that long after the device starts) to 0.3 s
/// before its last (the stream's end). `None` when it is silent or too short for that.
pub fn steady_part(samples: &[f64], rate: f64) -> Option<std::ops::Range<usize>> {
    let loud = |s: &f64| s.abs() > 0.01;
    let (first, last) = (samples.iter().position(loud)?, samples.iter().rposition(loud)?);
    let (start, end) = (first + (0.5 * rate) as usize, last.saturating_sub((0.3 * rate) as usize));
    (start < end).then_some(start..end)
}

/// The gaps heard in a recording's `steady_part` (0 when it has none).
pub fn steady_gaps(samples: &[f64], tone_hz: f64, rate: f64) -> u64 {
    steady_part(samples, rate).map_or(0, |part| find_gaps(&samples[part], tone_hz, rate).len() as u64)
}

/// The gaps both finders share: runs of `SILENT_RUN` near-zero samples, plus every sample
/// `jumps_at` flags, merged when within `MERGE` samples of each other.
fn scan(samples: &[f64], jumps_at: impl Fn(usize) -> bool) -> Vec<Gap> {
    let mut gaps: Vec<Gap> = Vec::new();
    let mut silent = 0usize;
    let mark = |i: usize, gaps: &mut Vec<Gap>| match gaps.last_mut() {
        Some(g) if i <= g.at + g.span + MERGE => g.span = g.span.max(i + 1 - g.at),
        _ => gaps.push(Gap { at: i, span: 1 }),
    };
    for (i, x) in samples.iter().enumerate() {
        silent = if x.abs() <= 1.5 * LSB { silent + 1 } else { 0 };
        if silent >= SILENT_RUN {
            mark(i + 1 - silent, &mut gaps);
            mark(i, &mut gaps);
        }
        if jumps_at(i) {
            mark(i, &mut gaps);
        }
    }
    gaps
}

/// What of the game's plain tone arrived in a recording: `samples` from the tone's sample 1 on
/// (the first after its phase-0 zero), split at every silence of `SILENT_RUN` or more
/// near-zero samples (a server inserts them when a client is late) and at every jump (sound
/// lost with no silence in its place). Each stretch between them
/// must be the ideal tone (`amplitude * ideal_tone(n)`, within 2 steps) continuing at some
/// later sample index: sound lost before a stretch shows as the indices it skips (found
/// modulo two periods of the 256 Hz tone, 375 samples, so a longer loss counts short).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ToneArrival {
    /// Silences inside the sound.
    pub silences: usize,
    /// Tone samples that never arrived, before the last stretch.
    pub lost: usize,
    /// Places where sound was lost with no silence in its place (the tone jumps).
    pub jumps: usize,
    /// Tone samples that arrived (the index after the last one is `1 + lost + arrived`).
    pub arrived: usize,
}

/// See `ToneArrival`. `Err` names the first stretch that is not the tone.
pub fn follow_tone(samples: &[f64], amplitude: f64) -> Result<ToneArrival, String> {
    const ALIAS: usize = 375;
    let quiet = |x: f64| x.abs() <= 1.5 * LSB;
    // How many samples from the start of `stretch` are the tone from its index `n` on.
    let fitting = |stretch: &[f64], n: usize| {
        stretch
            .iter()
            .enumerate()
            .take_while(|&(k, &x)| ((x - amplitude * crate::ideal_tone(n + k)) / LSB).abs() <= 2.0)
            .count()
    };
    let mut found = ToneArrival::default();
    let mut next = 1; // the tone's sample index the next stretch should start at
    let mut i = 0;
    while i < samples.len() {
        let run = samples[i..].iter().take_while(|&&x| quiet(x)).count();
        if run >= SILENT_RUN {
            found.silences += usize::from(i > 0);
            i += run;
            continue;
        }
        let end = (i + run.max(1)..samples.len())
            .find(|&j| samples[j..].iter().take(SILENT_RUN).filter(|&&x| quiet(x)).count() == SILENT_RUN)
            .unwrap_or(samples.len());
        // A stretch ends at a silence, or where the tone jumps (sound dropped without one).
        // 16 samples: one sample off is 9 steps away even at the tone's peak.
        let probe = (end - i).min(16);
        let (skip, length) = (0..ALIAS)
            .map(|j| (j, fitting(&samples[i..end], next + j)))
            .filter(|&(_, n)| n >= probe)
            .max_by_key(|&(j, n)| (n, std::cmp::Reverse(j)))
            .ok_or_else(|| format!("the {} samples at {i} are not the tone continuing", end - i))?;
        found.lost += skip;
        found.arrived += length;
        found.jumps += usize::from(skip > 0 && i > 0 && !quiet(samples[i - 1]));
        next += skip + length;
        i += length;
    }
    Ok(found)
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

    #[test]
    fn inserted_silences_and_lost_sound_are_told_apart() {
        let ideal: Vec<f64> = (0..48_000).map(|n| (0.25 * crate::ideal_tone(n) * 32767.0).round() / 32767.0).collect();
        let mut x = ideal[1..10_000].to_vec();
        x.extend(std::iter::repeat(0.0).take(256));
        x.extend_from_slice(&ideal[10_000..30_000]);
        x.extend(std::iter::repeat(0.0).take(256));
        x.extend_from_slice(&ideal[30_100..]); // 100 samples lost behind a silence
        let found = follow_tone(&x, 0.25).unwrap();
        assert_eq!(found, ToneArrival { silences: 2, lost: 100, jumps: 0, arrived: 47_899 });
        let mut jumped = ideal[1..20_000].to_vec();
        jumped.extend_from_slice(&ideal[20_256..]);
        assert_eq!(
            follow_tone(&jumped, 0.25).unwrap(),
            ToneArrival { silences: 0, lost: 256, jumps: 1, arrived: 47_743 }
        );
        x[20_000] += 0.1; // a click is no tone
        assert!(follow_tone(&x, 0.25).is_err());
    }
}
