//! The offline backend: no device and no pacing. Each frame takes exactly one frame's worth of
//! samples (`sample_rate / fps`, spread exactly when that is not whole) and, with `--wav-out`,
//! writes them as 16-bit stereo PCM. Deterministic: the same game gives the same bytes.
//! It doubles as the template for the device backends.
//!
//! The file is valid at every moment that matters: the RIFF and data sizes are rewritten once
//! a second of sound (hound's `flush`: seeks and writes on the `BufWriter`, no allocation), so
//! a SIGKILL loses at most the last second. A plain WAV's sizes are u32: rather than let them
//! wrap past 4 GiB (about 6.2 hours at 48 kHz), the writer stops before the data chunk would
//! overflow, says so in one line and leaves a valid file; the platform runs on. (RF64 would
//! lift the limit, but hound does not write it, and many readers do not read it.)

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;

use handmade_api::MAX_SOUND_FRAMES;

use super::pacing::FrameClock;
use super::{interleave_i16, AudioDesc, AudioError, AudioOutput, AudioStatus};

/// The most data bytes a plain WAV holds: the RIFF size (data + header) must fit a u32. The
/// margin covers any header hound writes; whole 16-bit stereo frames only.
const MAX_DATA_BYTES: u64 = (u32::MAX as u64 - 4096) / BYTES_PER_FRAME * BYTES_PER_FRAME;
const BYTES_PER_FRAME: u64 = 4;

pub struct WavAudio {
    writer: Option<hound::WavWriter<BufWriter<File>>>,
    path: Option<PathBuf>,
    sample_rate: u32,
    clock: FrameClock,
    interleaved: Vec<i16>,
    /// Frames written since the header was last rewritten.
    frames_since_flush: u64,
    data_bytes: u64,
    /// `MAX_DATA_BYTES`; smaller in tests.
    max_data_bytes: u64,
    /// A write failed (a full disk): said once, then nothing more is written until exit,
    /// when `finish` tries once more to leave a valid header.
    failed: bool,
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
            frames_since_flush: 0,
            data_bytes: 0,
            max_data_bytes: MAX_DATA_BYTES,
            failed: false,
        })
    }

    /// Frames of `wanted` that still fit the file; when that is fewer, the file is completed
    /// and closed with one line, and later frames are discarded.
    fn frames_that_fit(&mut self, wanted: usize) -> Result<usize, AudioError> {
        let room = (self.max_data_bytes - self.data_bytes) / BYTES_PER_FRAME;
        if wanted as u64 <= room {
            return Ok(wanted);
        }
        let Some(mut writer) = self.writer.take() else {
            return Ok(0);
        };
        let fits = room as usize;
        for &s in &self.interleaved[..2 * fits] {
            writer.write_sample(s).map_err(|e| self.io_error(e))?;
        }
        writer.finalize().map_err(|e| self.io_error(e))?;
        self.data_bytes += room * BYTES_PER_FRAME;
        log::warn!(
            "wav: {} is full ({} bytes of sound, {:.1} s: a WAV's sizes are 32-bit); it is complete and valid, \
             the rest of the sound is discarded",
            self.path.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
            self.data_bytes,
            (self.data_bytes / BYTES_PER_FRAME) as f64 / f64::from(self.sample_rate.max(1))
        );
        Ok(0)
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
        interleave_i16(left, right, &mut self.interleaved[..2 * n]);
        if self.writer.is_none() || self.failed || self.frames_that_fit(n)? < n {
            return Ok(n);
        }
        let Some(writer) = self.writer.as_mut() else {
            return Ok(n);
        };
        let mut result = self.interleaved[..2 * n].iter().try_for_each(|&s| writer.write_sample(s));
        self.data_bytes += n as u64 * BYTES_PER_FRAME;
        self.frames_since_flush += n as u64;
        if result.is_ok() && self.frames_since_flush >= u64::from(self.sample_rate) {
            // Sizes rewritten: a kill from here on loses at most the next second.
            result = writer.flush();
            self.frames_since_flush = 0;
        }
        if let Err(e) = result {
            self.failed = true;
            return Err(self.io_error(e));
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
        AudioDesc {
            sample_rate: 48_000,
            fps,
            latency_ms: 0.0,
            alsa_device: String::new(),
            alsa_io: Default::default(),
            wav_out: None,
        }
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

    /// Issue 16.3a: the header is rewritten once a second, so a process killed mid-run (here:
    /// the writer forgotten, nothing dropped or finalised) leaves a WAV that reads back all but
    /// the last second.
    #[test]
    fn a_killed_run_leaves_a_valid_file_short_of_at_most_a_second() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("killed.wav");
        let mut wav = WavAudio::open(&desc(60), Some(path.clone())).unwrap();
        for _ in 0..150 {
            let n = wav.frames_wanted();
            wav.write(&vec![0.25; n], &vec![-0.25; n]).unwrap();
        }
        std::mem::forget(wav); // as SIGKILL would: no drop, no finalize, the buffer unwritten
        let reader = hound::WavReader::open(&path).expect("the file is a valid WAV");
        assert_eq!(reader.duration(), 96_000, "the two whole seconds before the kill");
        let samples: Vec<i16> = reader.into_samples().map(|s| s.unwrap()).collect();
        assert_eq!(samples.len(), 192_000);
        assert!(samples.chunks(2).all(|f| f == [8192, -8192]), "the frames read back are the ones written");
    }

    /// Issue 16.3b: at the size limit (a small one injected here; 4 GiB in use) the writer
    /// keeps what fits, completes the file, and the run goes on without error.
    #[test]
    fn the_size_limit_ends_the_file_valid_and_the_run_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("full.wav");
        let mut wav = WavAudio::open(&desc(60), Some(path.clone())).unwrap();
        wav.max_data_bytes = 2_000 * BYTES_PER_FRAME;
        for _ in 0..10 {
            let n = wav.frames_wanted();
            assert_eq!(wav.write(&vec![0.5; n], &vec![0.5; n]).unwrap(), n, "the platform is told all went well");
        }
        wav.finish().unwrap();
        let reader = hound::WavReader::open(&path).unwrap();
        assert_eq!(reader.duration(), 2_000, "exactly what fits, nothing wrapped");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 44 + 2_000 * BYTES_PER_FRAME);
        assert!(MAX_DATA_BYTES + 4096 <= u64::from(u32::MAX) && MAX_DATA_BYTES % BYTES_PER_FRAME == 0);
    }
}
