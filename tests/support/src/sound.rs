//! The sound the platform wrote: 16-bit WAV files read back, and the demo's default tone to
//! compare them with.

use std::path::Path;

pub const RATE: f64 = 48_000.0;
pub const TONE_HZ: f64 = 256.0;
pub const DEFAULT_AMPLITUDE: f64 = 0.25;

/// A 16-bit PCM WAV file, read whole.
pub struct Wav {
    pub rate: u32,
    pub channels: u16,
    /// Interleaved, `channels` per frame.
    pub samples: Vec<i16>,
}

impl Wav {
    /// Reads `path`; one line of error when it cannot be opened or a sample cannot be read.
    pub fn open(path: &Path) -> Result<Wav, String> {
        let mut reader = hound::WavReader::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let spec = reader.spec();
        let samples =
            reader.samples::<i16>().collect::<Result<_, _>>().map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Wav { rate: spec.sample_rate, channels: spec.channels, samples })
    }

    /// One channel's samples (0 is left).
    pub fn channel(&self, index: usize) -> Vec<i16> {
        self.samples.iter().skip(index).step_by(usize::from(self.channels)).copied().collect()
    }
}

/// Reads a 16-bit stereo WAV into (left, right) as floats in -1..1 (divided by 32767).
pub fn read_wav(path: &Path) -> (Vec<f64>, Vec<f64>) {
    let wav = Wav::open(path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(wav.channels, 2, "{}: not stereo", path.display());
    let float = |c: usize| wav.channel(c).into_iter().map(|s| f64::from(s) / 32767.0).collect();
    (float(0), float(1))
}

/// The game's tone at sample `n` when its phase ran continuously from 0.
pub fn ideal_tone(n: usize) -> f64 {
    (std::f64::consts::TAU * (TONE_HZ * n as f64 / RATE).fract()).sin()
}

/// Largest deviation of `samples` from `amplitude(n) * ideal_tone(n)`, in 16-bit steps.
pub fn max_error_steps(samples: &[f64], amplitude: impl Fn(usize) -> f64) -> f64 {
    samples.iter().enumerate().map(|(n, &s)| ((s - amplitude(n) * ideal_tone(n)) * 32767.0).abs()).fold(0.0, f64::max)
}
