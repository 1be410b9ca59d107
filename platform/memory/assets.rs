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

/// `data/` of the checkout this binary belongs to (found at run time), else `./data`.
pub fn default_data_dir() -> PathBuf {
    crate::dev::game_build::workspace_dir().map_or_else(|| PathBuf::from("data"), |w| w.join("data"))
}

/// The file cut down to its RIFF header, `fmt ` and `data` chunks, or `None` if it is not a
/// RIFF/WAVE file with both (hound then says what is wrong). RIFF pads an odd-sized chunk with
/// one byte; hound 3.5 skips such a chunk (a `LIST` of odd length before `data`) without its pad
/// and then fails on a valid file, so the chunks it does not need are dropped first.
fn essential_chunks(bytes: &[u8]) -> Option<Vec<u8>> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return None;
    }
    let (mut fmt, mut data) = (None, None);
    let mut at = 12usize;
    while at + 8 <= bytes.len() && (fmt.is_none() || data.is_none()) {
        let size = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes")) as usize;
        let body = at + 8;
        let end = body.checked_add(size)?.min(bytes.len());
        match &bytes[at..at + 4] {
            b"fmt " => fmt = Some(&bytes[at..end]),
            b"data" => data = Some(&bytes[at..end]),
            _ => {}
        }
        at = body.checked_add(size)?.checked_add(size & 1)?;
    }
    let (fmt, data) = (fmt?, data?);
    let mut out = Vec::with_capacity(12 + fmt.len() + data.len() + 1);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&((4 + fmt.len() + (fmt.len() & 1) + data.len()) as u32).to_le_bytes());
    out.extend_from_slice(b"WAVE");
    out.extend_from_slice(fmt);
    if fmt.len() & 1 == 1 {
        out.push(0);
    }
    out.extend_from_slice(data);
    Some(out)
}

/// The most bytes a WAV of `MAX_SAMPLE_FRAMES` stereo 32-bit frames takes, plus room for chunks.
const MAX_WAV_BYTES: u64 = MAX_SAMPLE_FRAMES as u64 * 8 + (1 << 20);

/// Decodes a mono or stereo 8/16/24/32-bit integer or 32-bit float WAV into two channels.
/// The file's type and size are checked before anything is read, and no more than
/// `MAX_WAV_BYTES` is ever read: a FIFO does not block start-up, `/dev/zero` does not eat memory.
pub fn load_wav(path: &Path, arena: &mut MemoryArena<'_>) -> Result<GameSample, AssetError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |reason: String| AssetError { path: path.to_path_buf(), reason };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| err(e.to_string()))?;
    let meta = file.metadata().map_err(|e| err(e.to_string()))?;
    if let Some(what) = crate::private_fs::non_file_kind(&meta) {
        return Err(err(format!("it is {what}, not a WAV file")));
    }
    if meta.len() > MAX_WAV_BYTES {
        return Err(err(format!("{} bytes; the most a sample may take is {MAX_WAV_BYTES}", meta.len())));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_WAV_BYTES + 1).read_to_end(&mut bytes).map_err(|e| err(e.to_string()))?;
    if bytes.len() as u64 > MAX_WAV_BYTES {
        return Err(err(format!("it grew past {MAX_WAV_BYTES} bytes while being read")));
    }
    decode_wav(&bytes, arena).map_err(err)
}

/// The decoder behind `load_wav`, on bytes (also what the fuzzer drives).
pub fn decode_wav(bytes: &[u8], arena: &mut MemoryArena<'_>) -> Result<GameSample, String> {
    let essential = essential_chunks(bytes);
    let bytes = essential.as_deref().unwrap_or(bytes);
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

    /// A valid file hound 3.5 alone refuses: an odd-sized chunk (with its pad byte) before
    /// `data`.
    #[test]
    fn an_odd_sized_chunk_before_the_data_is_skipped_with_its_pad() {
        let mut wav = Vec::new();
        let fmt: [u8; 16] = [1, 0, 1, 0, 0x80, 0xbb, 0, 0, 0, 0x77, 1, 0, 2, 0, 16, 0]; // PCM mono 48 kHz 16-bit
        let list = b"INFOabc"; // 7 bytes: padded to 8
        let samples: [i16; 4] = [0, 16384, -16384, 32767];
        let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let riff_len = 4 + (8 + 16) + (8 + 8) + (8 + data.len());
        wav.extend_from_slice(b"RIFF");
        wav.extend_from_slice(&(riff_len as u32).to_le_bytes());
        wav.extend_from_slice(b"WAVEfmt ");
        wav.extend_from_slice(&16u32.to_le_bytes());
        wav.extend_from_slice(&fmt);
        wav.extend_from_slice(b"LIST");
        wav.extend_from_slice(&7u32.to_le_bytes());
        wav.extend_from_slice(list);
        wav.push(0);
        wav.extend_from_slice(b"data");
        wav.extend_from_slice(&(data.len() as u32).to_le_bytes());
        wav.extend_from_slice(&data);
        assert!(
            hound::WavReader::new(&wav[..])
                .and_then(|r| r.into_samples::<i16>().collect::<Result<Vec<_>, _>>())
                .is_err(),
            "hound alone refuses it"
        );
        let mut backing = vec![0u8; 1 << 16];
        let mut arena = MemoryArena::new("assets", &mut backing);
        let sample = decode_wav(&wav, &mut arena).unwrap();
        assert_eq!(sample.frame_count, 4);
        // SAFETY: `left` points at `frame_count` decoded samples in the arena, alive here.
        let left = unsafe { std::slice::from_raw_parts(sample.left, 4) };
        assert_eq!(left[1], 0.5);
    }

    #[test]
    #[cfg_attr(miri, ignore = "mkfifo is a system call")]
    fn a_fifo_or_a_device_is_refused_before_any_read() {
        let mut backing = vec![0u8; 1 << 16];
        let mut arena = MemoryArena::new("assets", &mut backing);
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("loop.wav");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: `c` is a valid NUL-terminated path for the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let err = load_wav(&fifo, &mut arena).unwrap_err().to_string();
        assert!(err.contains("it is a FIFO, not a WAV file"), "{err}");
        let link = dir.path().join("zero.wav");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        let err = load_wav(&link, &mut arena).unwrap_err().to_string();
        assert!(err.contains("it is a device, not a WAV file"), "{err}");
    }

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
