//! Start-up asset loading: WAV files decoded once with `hound` into the platform arena and lent
//! to the game as structure-of-arrays `f32` channels.

use std::fmt;
use std::path::{Path, PathBuf};

use handmade_api::{GameSample, MemoryArena};

/// Longest sample the platform accepts: 60 s at 48 kHz, so a huge file cannot eat the arena.
pub const MAX_SAMPLE_FRAMES: u32 = 48_000 * 60;

#[derive(Debug)]
pub struct AssetError {
    pub path: PathBuf,
    pub reason: String,
}

impl fmt::Display for AssetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot load {}: {}", self.path.display(), self.reason)
    }
}

impl std::error::Error for AssetError {}

/// `data/` of the workspace this binary was built from, else `./data`.
pub fn default_data_dir() -> PathBuf {
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    if built.is_dir() {
        built
    } else {
        PathBuf::from("data")
    }
}

/// Decodes a mono or stereo 8/16/24/32-bit integer or 32-bit float WAV into two channels.
pub fn load_wav(path: &Path, arena: &mut MemoryArena<'_>) -> Result<GameSample, AssetError> {
    let err = |reason: String| AssetError { path: path.to_path_buf(), reason };
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    decode_wav(&bytes, arena).map_err(err)
}

/// The decoder behind `load_wav`, on bytes (also what the fuzzer drives).
pub fn decode_wav(bytes: &[u8], arena: &mut MemoryArena<'_>) -> Result<GameSample, String> {
    let reader = hound::WavReader::new(bytes).map_err(|e| format!("not a valid WAV file ({e})"))?;
    let spec = reader.spec();
    let channels = usize::from(spec.channels);
    if !(1..=2).contains(&channels) {
        return Err(format!("{channels} channels; only mono and stereo are supported"));
    }
    let frames = reader.duration();
    if frames == 0 || frames > MAX_SAMPLE_FRAMES {
        return Err(format!("{frames} frames; expected 1 to {MAX_SAMPLE_FRAMES}"));
    }
    let left = arena.push_array(frames as usize, 0.0f32).map_err(|e| e.to_string())?;
    let right = arena.push_array(frames as usize, 0.0f32).map_err(|e| e.to_string())?;
    let mut decoded = 0usize;
    for (i, sample) in samples_f32(reader, spec).enumerate() {
        let sample = sample.map_err(|e| format!("not a valid WAV file ({e})"))?;
        let frame = i / channels;
        if frame >= frames as usize {
            break;
        }
        if i % channels == 0 {
            left[frame] = sample;
            right[frame] = sample;
        } else {
            right[frame] = sample;
        }
        decoded = i + 1;
    }
    if decoded < frames as usize * channels {
        return Err(format!("truncated: {} of {} samples present", decoded, frames as usize * channels));
    }
    Ok(GameSample {
        left: left.as_ptr(),
        right: right.as_ptr(),
        frame_count: frames,
        samples_per_second: spec.sample_rate,
    })
}

fn samples_f32<'r>(
    reader: hound::WavReader<&'r [u8]>,
    spec: hound::WavSpec,
) -> Box<dyn Iterator<Item = Result<f32, hound::Error>> + 'r> {
    match spec.sample_format {
        hound::SampleFormat::Float => Box::new(reader.into_samples::<f32>()),
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
            Box::new(reader.into_samples::<i32>().map(move |s| s.map(|v| v as f32 * scale)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav_bytes(channels: u16, frames: usize) -> Vec<u8> {
        let spec = hound::WavSpec {
            channels,
            sample_rate: 48_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut cursor = std::io::Cursor::new(Vec::new());
        let mut w = hound::WavWriter::new(&mut cursor, spec).unwrap();
        for i in 0..frames * channels as usize {
            w.write_sample(if i % 2 == 0 { 16384i16 } else { -16384 }).unwrap();
        }
        w.finalize().unwrap();
        cursor.into_inner()
    }

    #[test]
    fn decodes_stereo_into_the_arena() {
        let mut backing = vec![0u8; 1 << 16];
        let mut arena = MemoryArena::new("assets", &mut backing);
        let sample = decode_wav(&wav_bytes(2, 100), &mut arena).unwrap();
        assert_eq!(sample.frame_count, 100);
        // SAFETY: `decode_wav` pushed `frame_count` floats per channel into `arena`.
        let (l, r) = unsafe { (*sample.left, *sample.right.add(99)) };
        assert_eq!((l, r), (0.5, -0.5));
        assert!((800..804).contains(&arena.used()), "two 100-frame channels (plus alignment padding)");
    }

    #[test]
    fn malformed_and_truncated_files_say_why() {
        let mut backing = vec![0u8; 1 << 16];
        let mut arena = MemoryArena::new("assets", &mut backing);
        assert!(decode_wav(b"RIFF....WAVEjunk", &mut arena).unwrap_err().contains("not a valid WAV"));
        let mut cut = wav_bytes(2, 100);
        cut.truncate(cut.len() - 40);
        let e = decode_wav(&cut, &mut arena).unwrap_err();
        assert!(e.contains("truncated") || e.contains("not a valid"), "{e}");
    }

    #[test]
    fn a_full_arena_is_reported_not_overrun() {
        let mut backing = vec![0u8; 256];
        let mut arena = MemoryArena::new("assets", &mut backing);
        assert!(decode_wav(&wav_bytes(1, 100), &mut arena).unwrap_err().contains("arena 'assets' is full"));
    }
}
