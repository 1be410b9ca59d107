//! Lesson L9.2, loading WAV files: the course's PCM16 loader against `hound` (what the platform
//! uses) on edge-case files this example writes: a canonical file, fmt chunks of 18 and 40
//! bytes, a LIST chunk before fmt, an odd-sized chunk with its pad byte, no data chunk, and a
//! 44.1 kHz file played at 48 kHz without resampling.
//!
//! The course's C source is not in this repository: `course_load` ports the loader's logic as
//! the course map (`COURSE.md`, L9.2) describes it: "fmt " expected at byte 12 and read as 16
//! bytes whatever its size field says, then chunk headers read and skipped by their size (no
//! pad byte) until "data", with C's `fread` semantics at end of file (nothing read, the
//! previous header left in place, so the search never ends), and the sample rate ignored.
//!
//! Run with: cargo run --release --example l9_2_wav

mod common;

use common::*;

/// Writes a chunk (id, size, body, and the pad byte RIFF requires after an odd size).
fn chunk(out: &mut Vec<u8>, id: &[u8; 4], body: &[u8]) {
    out.extend_from_slice(id);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
    if body.len() % 2 == 1 {
        out.push(0);
    }
}

/// A PCM16 fmt body: 16 bytes, or 18 (cbSize = 0), or 40 (WAVE_FORMAT_EXTENSIBLE, PCM).
fn fmt_body(size: usize, channels: u16, rate: u32) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&(if size == 40 { 0xFFFEu16 } else { 1u16 }).to_le_bytes());
    b.extend_from_slice(&channels.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * u32::from(channels) * 2).to_le_bytes());
    b.extend_from_slice(&(channels * 2).to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    if size >= 18 {
        b.extend_from_slice(&(if size == 40 { 22u16 } else { 0u16 }).to_le_bytes());
    }
    if size == 40 {
        b.extend_from_slice(&16u16.to_le_bytes()); // valid bits
        b.extend_from_slice(&3u32.to_le_bytes()); // channel mask: front left | right
                                                  // KSDATAFORMAT_SUBTYPE_PCM {00000001-0000-0010-8000-00aa00389b71}
        b.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xaa, 0, 0x38, 0x9b, 0x71]);
    }
    b
}

/// The test tone: `frames` stereo frames of `hz` at `rate`, as i16.
fn tone(frames: usize, hz: f64, rate: u32) -> Vec<i16> {
    (0..frames)
        .flat_map(|i| {
            let s = ((i as f64 * hz * std::f64::consts::TAU / f64::from(rate)).sin() * 12_000.0) as i16;
            [s, s]
        })
        .collect()
}

struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    samples: Vec<i16>,
    rate: u32,
}

/// Builds a file: `before` chunks, then fmt of `fmt_size`, then `between`, then data (unless
/// `data` is false).
fn file(
    fmt_size: usize,
    rate: u32,
    before: &[(&[u8; 4], Vec<u8>)],
    between: &[(&[u8; 4], Vec<u8>)],
    data: bool,
    samples: &[i16],
) -> Vec<u8> {
    let mut body = b"WAVE".to_vec();
    for (id, b) in before {
        chunk(&mut body, id, b);
    }
    chunk(&mut body, b"fmt ", &fmt_body(fmt_size, 2, rate));
    for (id, b) in between {
        chunk(&mut body, id, b);
    }
    if data {
        let pcm: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        chunk(&mut body, b"data", &pcm);
    }
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// What the course's loader ends with.
#[derive(Debug)]
enum CourseResult {
    Loaded { channels: u16, rate: u32, samples: Vec<i16> },
    Rejected(&'static str),
    LoopsForever { rereads: usize },
}

/// The course's loader (see the file header): a C-style cursor over the bytes.
fn course_load(bytes: &[u8]) -> CourseResult {
    let mut pos = 0usize;
    // fread: copies what is there; at or past the end copies nothing and leaves `buf` as it was.
    let fread = |buf: &mut [u8], pos: &mut usize| -> usize {
        let n = buf.len().min(bytes.len().saturating_sub(*pos));
        buf[..n].copy_from_slice(&bytes[(*pos).min(bytes.len())..(*pos).min(bytes.len()) + n]);
        *pos += buf.len(); // the file position moves as fseek would; reads past the end get 0
        n
    };
    let mut riff = [0u8; 12];
    fread(&mut riff, &mut pos);
    if &riff[0..4] != b"RIFF" || &riff[8..12] != b"WAVE" {
        return CourseResult::Rejected("not RIFF/WAVE");
    }
    let mut fmt = [0u8; 24]; // "fmt " header and 16 bytes, whatever the size says
    fread(&mut fmt, &mut pos);
    if &fmt[0..4] != b"fmt " {
        // The course checks only the format tag below, not the chunk id: read on as it does.
    }
    let tag = u16::from_le_bytes([fmt[8], fmt[9]]);
    let channels = u16::from_le_bytes([fmt[10], fmt[11]]);
    let rate = u32::from_le_bytes([fmt[12], fmt[13], fmt[14], fmt[15]]);
    if tag != 1 {
        return CourseResult::Rejected("format tag is not 1 (PCM)");
    }
    let mut header = [0u8; 8];
    fread(&mut header, &mut pos);
    let mut rereads = 0;
    while &header[0..4] != b"data" {
        let size = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        pos += size; // fseek(f, size, SEEK_CUR): no pad byte
        if fread(&mut header, &mut pos) == 0 {
            rereads += 1;
            if rereads == 10_000 {
                return CourseResult::LoopsForever { rereads };
            }
        }
    }
    let size = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
    let end = (pos + size).min(bytes.len());
    let samples = bytes[pos.min(end)..end].chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
    CourseResult::Loaded { channels, rate, samples }
}

/// Frequency from rising zero crossings of the left channel, as played at `play_rate`.
fn played_hz(samples: &[i16], play_rate: f64) -> f64 {
    let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
    let ups: Vec<usize> = (1..left.len()).filter(|&i| left[i - 1] < 0 && left[i] >= 0).collect();
    if ups.len() < 2 {
        return 0.0;
    }
    (ups.len() - 1) as f64 * play_rate / (ups[ups.len() - 1] - ups[0]) as f64
}

fn main() {
    header("L9.2", "the course's WAV loader against hound on edge-case files");
    let frames = pick(4800, 960);
    let s48 = tone(frames, 440.0, 48_000);
    let s44 = tone(frames, 441.0, 44_100);
    let list = (b"LIST", b"INFOISFT\x06\x00\x00\x00handm\x00".to_vec());
    let odd = (b"note", b"hello".to_vec()); // 5 bytes: a pad byte follows
    let cases = vec![
        Case {
            name: "canonical (fmt 16)",
            bytes: file(16, 48_000, &[], &[], true, &s48),
            samples: s48.clone(),
            rate: 48_000,
        },
        Case {
            name: "fmt chunk of 18 bytes",
            bytes: file(18, 48_000, &[], &[], true, &s48),
            samples: s48.clone(),
            rate: 48_000,
        },
        Case {
            name: "fmt chunk of 40 (extensible)",
            bytes: file(40, 48_000, &[], &[], true, &s48),
            samples: s48.clone(),
            rate: 48_000,
        },
        Case {
            name: "LIST before fmt",
            bytes: file(16, 48_000, std::slice::from_ref(&list), &[], true, &s48),
            samples: s48.clone(),
            rate: 48_000,
        },
        Case {
            name: "odd-sized chunk + pad byte",
            bytes: file(16, 48_000, &[], &[odd], true, &s48),
            samples: s48.clone(),
            rate: 48_000,
        },
        Case {
            name: "no data chunk",
            bytes: file(16, 48_000, &[], &[list], false, &s48),
            samples: Vec::new(),
            rate: 48_000,
        },
        Case {
            name: "44.1 kHz file",
            bytes: file(16, 44_100, &[], &[], true, &s44),
            samples: s44.clone(),
            rate: 44_100,
        },
    ];
    let dir = lessons_dir().join("l9_2_wav");
    std::fs::create_dir_all(&dir).expect("create target/lessons/l9_2_wav");
    println!("{:<30} {:>6} {:<40} course's loader", "file", "bytes", "hound");
    let (mut hound_right, mut course_right) = (0, 0);
    let (mut course_wrong, mut hound_wrong) = (Vec::new(), Vec::new());
    let mut rate_case = None;
    for case in &cases {
        let path = dir.join(format!(
            "{}.wav",
            case.name.split_whitespace().collect::<Vec<_>>().join("_").replace(['(', ')', '.', '+'], "")
        ));
        std::fs::write(&path, &case.bytes).expect("write the edge-case file");
        let hound = hound::WavReader::open(&path).map_err(|e| e.to_string()).and_then(|r| {
            let spec = r.spec();
            let samples: Result<Vec<i16>, _> = r.into_samples::<i16>().collect();
            samples.map(|s| (spec, s)).map_err(|e| e.to_string())
        });
        let hound_text = match &hound {
            Ok((spec, s)) => {
                let right = *s == case.samples && spec.sample_rate == case.rate;
                hound_right += usize::from(right);
                format!(
                    "{} frames, {} Hz, {}",
                    s.len() / 2,
                    spec.sample_rate,
                    if right { "samples right" } else { "samples WRONG" }
                )
            }
            Err(e) => {
                let right = case.samples.is_empty();
                hound_right += usize::from(right);
                if !right {
                    hound_wrong.push(case.name);
                }
                format!("error: {e}")
            }
        };
        let course = course_load(&case.bytes);
        let course_text = match &course {
            CourseResult::Loaded { channels, rate, samples } => {
                let right = *samples == case.samples && *channels == 2 && !case.samples.is_empty();
                course_right += usize::from(right);
                if !right {
                    course_wrong.push(case.name);
                }
                if case.rate != 48_000 {
                    rate_case = Some((samples.clone(), *rate));
                }
                format!(
                    "{} frames, header says {rate} Hz, {}",
                    samples.len() / 2,
                    if right { "samples right" } else { "samples WRONG" }
                )
            }
            CourseResult::Rejected(why) => {
                course_wrong.push(case.name);
                format!("rejected: {why}")
            }
            CourseResult::LoopsForever { rereads } => {
                course_wrong.push(case.name);
                format!("loops forever (the same header re-read {rereads} times at end of file; stopped here)")
            }
        };
        println!("{:<30} {:>6} {:<40} {course_text}", case.name, case.bytes.len(), hound_text);
    }
    println!("files written to {}", dir.display());
    verdict(
        "a PCM16 loader that reads the 44-byte header works for WAV files",
        &format!("hound read {hound_right} of {} files right (the no-data file as an error); the course's loader {course_right} of {}", cases.len(), cases.len()),
        &format!(
            "the course's loader failed on: {}; each file is valid RIFF (chunks found by id and size, odd sizes padded to even), which a fixed-offset reader does not follow{}",
            course_wrong.join(", "),
            if hound_wrong.is_empty() {
                String::new()
            } else {
                format!(
                    "; hound failed too on: {} (the platform loads assets with hound: a valid file with an odd-sized chunk before data is refused)",
                    hound_wrong.join(", ")
                )
            }
        ),
    );
    if let Some((samples, header_rate)) = rate_case {
        let heard = played_hz(&samples, 48_000.0);
        let true_hz = played_hz(&samples, f64::from(header_rate));
        verdict(
            "a 44.1 kHz file plays correctly on the 48 kHz device",
            &format!("the 441 Hz tone written at {header_rate} Hz, played at 48000 Hz without resampling, measures {heard:.1} Hz ({:+.1}%); at its own rate it measures {true_hz:.1} Hz", (heard / true_hz - 1.0) * 100.0),
            &format!("the loader ignores the header's rate and the samples are played 48000/{header_rate} = {:.4}x too fast; resample (or open the device at the file's rate)", 48_000.0 / f64::from(header_rate)),
        );
    }
}
