//! The offline backend: no device and no pacing. Each frame takes exactly one frame's worth of
//! samples (`sample_rate / fps`, spread exactly when that is not whole) and, with `--wav-out`,
//! writes them as 16-bit stereo PCM. Deterministic: the same game gives the same bytes.
//! It doubles as the template for the device backends.

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;

use handmade_api::MAX_SOUND_FRAMES;

use super::pacing::FrameClock;
use super::{interleave_i16, AudioDesc, AudioError, AudioOutput, AudioStatus};

pub struct WavAudio {
    writer: Option<hound::WavWriter<BufWriter<File>>>,
    path: Option<PathBuf>,
    sample_rate: u32,
    clock: FrameClock,
    interleaved: Vec<i16>,
}

impl WavAudio {
    pub fn open(desc: &AudioDesc, path: Option<PathBuf>) -> Result<Self, AudioError> {
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: desc.sample_rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let writer = match &path {
            Some(p) => Some(hound::WavWriter::create(p, spec).map_err(|e| AudioError::Unavailable {
                backend: "wav",
                reason: format!("cannot create {}: {e}", p.display()),
            })?),
            None => None,
        };
        Ok(Self {
            writer,
            path,
            sample_rate: desc.sample_rate,
            clock: FrameClock::new(desc.sample_rate, desc.fps),
            interleaved: vec![0; 2 * MAX_SOUND_FRAMES],
        })
    }

    fn io_error(&self, e: hound::Error) -> AudioError {
        let path = self.path.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
        AudioError::Io { backend: "wav", reason: format!("writing {path}: {e}") }
    }
}

impl AudioOutput for WavAudio {
    fn name(&self) -> &'static str {
        if self.writer.is_some() {
            "wav"
        } else {
            "none"
        }
    }

    fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    fn is_paced(&self) -> bool {
        false
    }

    fn frames_wanted(&mut self) -> usize {
        self.clock.tick()
    }

    fn write(&mut self, left: &[f32], right: &[f32]) -> Result<usize, AudioError> {
        let n = left.len();
        let out = &mut self.interleaved[..2 * n];
        interleave_i16(left, right, out);
        if let Some(writer) = self.writer.as_mut() {
            for &s in out.iter() {
                if let Err(e) = writer.write_sample(s) {
                    return Err(self.io_error(e));
                }
            }
        }
        Ok(n)
    }

    fn status(&self) -> AudioStatus {
        AudioStatus::default()
    }

    fn finish(&mut self) -> Result<(), AudioError> {
        match self.writer.take() {
            Some(writer) => writer.finalize().map_err(|e| self.io_error(e)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(fps: u32) -> AudioDesc {
        AudioDesc { sample_rate: 48_000, fps, latency_ms: 0.0, alsa_device: String::new(), wav_out: None }
    }

    #[test]
    fn exactly_one_frame_of_samples_per_frame() {
        let mut wav = WavAudio::open(&desc(60), None).unwrap();
        assert_eq!(wav.frames_wanted(), 800);
        let mut wav = WavAudio::open(&desc(144), None).unwrap();
        let mut total = 0;
        for _ in 0..144 {
            let n = wav.frames_wanted();
            assert!(n == 333 || n == 334, "{n}");
            wav.write(&vec![0.0; n], &vec![0.0; n]).unwrap();
            total += n;
        }
        assert_eq!(total, 48_000, "one second of frames is one second of sound");
    }

    #[test]
    fn writes_a_valid_wav() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.wav");
        let mut wav = WavAudio::open(&desc(60), Some(path.clone())).unwrap();
        let n = wav.frames_wanted();
        wav.write(&vec![0.5; n], &vec![-0.5; n]).unwrap();
        wav.finish().unwrap();
        let reader = hound::WavReader::open(&path).unwrap();
        assert_eq!(reader.spec().channels, 2);
        assert_eq!(reader.len(), 1600);
    }
}
