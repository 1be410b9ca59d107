//! Input to sound (issue 12, item 6): the time from a scripted key press to the first sample
//! whose pitch changed reaching the sound server's sink. Per server (PulseAudio, PipeWire with
//! its pulse server; each a private null sink), backend (ALSA through the pulse plugin; SDL2
//! through its `pulseaudio` driver; on PipeWire also SDL's own `pipewire` driver) and
//! `--latency-ms` (5, 10, 20): 20 presses, p50 and max, beside the device latency plus one
//! frame (16.7 ms), the aim.
//!
//! The game is the demo's, optimised, as `cargo run --release` loads it (until 2026-12-02 the
//! tests' unoptimised build: its sound was written about 5 ms into each frame).
//!
//! The presses: `up` and `down` alternately (the pitch stays near 256 Hz), each held 6 frames
//! (the pitch glides about 5.6 % away and stays), one every 40 frames (667 ms: the pitch has
//! long settled), the first at frame 120.
//!
//! The two clocks. The platform logs when it applied each scripted event: the wall clock read
//! as the event's frame starts its input phase (`platform/input/script.rs`, debug lines after
//! the run). The sink is recorded by this example itself, re-run inside the harness as a
//! wrapper around the platform: it reads `parec --raw` from the sink's monitor, in 10 ms
//! fragments as the harnesses record (2 ms made PulseAudio's null sink run in 2 ms blocks and
//! break up: the recorder must not change what it measures), and notes the wall clock after
//! every read. A monitor delivers every sample the sink took, silence included, so recording
//! position p was taken by the sink at `T0 + p / rate`; every read bounds `T0` from above
//! (`time read - frames so far / rate`: those frames had all been taken by then), and the
//! tightest bound among the reads within 3 s of a press is used (3 s keeps any slew of the
//! wall clock out). The figure therefore says when the sink took in the block holding the
//! sample: late by the smallest delivery delay in those 6 s (near 0 over hundreds of reads),
//! early by up to one sink block (PipeWire: its 256-frame quantum, 5.3 ms; PulseAudio's null
//! sink: its latency, at most the recorder's 10 ms). A device sink would play the block later,
//! by its own buffer: that part is the hardware's, not measured here.
//!
//! The first changed sample: zero crossings of the left channel, interpolated linearly, give
//! each half-cycle's frequency (256 Hz: a half-cycle is 1.95 ms; 16-bit noise is about 1e-5 of
//! it). The settled pitch is the median over 300 ms to 20 ms before the press's sink-clock
//! position; the first changed sample is the zero crossing that starts the first half-cycle
//! more than 0.2 % (3.5 cents) off it, the next half-cycle off too. The game's glide starts at
//! the first sample of the press's frame; its 5 ms one-pole passes 0.2 % a little later, so
//! the point found is after that sample by 0 to one half-cycle plus that: measured on the
//! offline WAV output, where the frame's first sample is known exactly
//! (`INPUT_TO_SOUND_CALIBRATE=1` prints it), 0.4 to 2.2 ms, p50 1.4 ms. The figures include
//! this offset (not subtracted): resolution about 2 ms, plus the sink block above.
//! A press whose window holds a gap in the recording (a silence the server inserted, or a
//! jump; `find_breaks`, since the pitch moves) is not measured but counted (`gapped`): a
//! silence moves the zero crossings. `recording gaps` counts them over the whole run.
//!
//! `INPUT_TO_SOUND_ONLY` limits the cases to those whose label contains it (e.g. `pipewire
//! sdl-pipewire`); `INPUT_TO_SOUND_PRESSES` (default 20); `INPUT_TO_SOUND_REPEATS` runs per
//! case (default 1; presses are pooled).
//! Run with: cargo run --release --example input_to_sound

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use handmade_support::{build_game_like_the_demo, find_breaks, platform_binary, stat, RATE, TONE_HZ};

const FIRST_PRESS: u64 = 120;
const PRESS_EVERY: u64 = 40;
const HOLD: u64 = 6;
const THRESHOLD: f64 = 0.002;
const FRAME_MS: f64 = 1000.0 / 60.0;
/// Set (to a directory) when this example runs as the recording wrapper inside the harness.
const WRAP_ENV: &str = "INPUT_TO_SOUND_RECORD_INTO";

#[derive(Debug, Clone, Copy)]
struct Case {
    server: &'static str,
    /// `alsa`, or `sdl` with SDL's driver.
    backend: &'static str,
    sdl_driver: Option<&'static str>,
    latency_ms: u32,
}

impl Case {
    fn label(&self) -> String {
        let backend = match self.sdl_driver {
            Some(driver) => format!("sdl-{driver}"),
            None => self.backend.to_string(),
        };
        format!("{} {backend} {} ms", self.server, self.latency_ms)
    }
}

/// One run: each press's input-to-sound time (ms), and what kept presses from being measured.
#[derive(Debug, Default)]
struct Run {
    delays_ms: Vec<f64>,
    gapped: usize,
    /// Presses with no change found: no recorder read within 3 s, the window outside the
    /// recording, or no half-cycle off by the threshold within 300 ms.
    not_found: usize,
    recorded_gaps: usize,
    latency_ms: f64,
}

fn main() {
    if let Some(dir) = std::env::var_os(WRAP_ENV) {
        std::process::exit(record_around(Path::new(&dir)));
    }
    let presses: u64 = env_or("INPUT_TO_SOUND_PRESSES", 20);
    let repeats: usize = env_or("INPUT_TO_SOUND_REPEATS", 1);
    let only = std::env::var("INPUT_TO_SOUND_ONLY").unwrap_or_default();
    let game = build_game_like_the_demo();
    let binary = platform_binary();
    if std::env::var("INPUT_TO_SOUND_CALIBRATE").is_ok() {
        calibrate(&binary, &game);
    }
    let cases: Vec<Case> = all_cases().into_iter().filter(|c| c.label().contains(only.as_str())).collect();
    println!("input to sound: {} cases, {presses} presses each, {repeats} run(s) per case", cases.len());
    println!("| server | backend | --latency-ms | presses measured | gapped / not found | p50 ms | max ms | device latency + 1 frame ms | recording gaps | write-to-play mean ms |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for case in cases {
        let runs: Vec<Run> = (0..repeats).map(|_| run_case(&case, presses, &binary, &game)).collect();
        print_row(&case, &runs);
    }
}

fn all_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for server in ["pulse", "pipewire"] {
        let mut backends = vec![("alsa", None), ("sdl", Some("pulseaudio"))];
        if server == "pipewire" {
            backends.push(("sdl", Some("pipewire")));
        }
        for (backend, sdl_driver) in backends {
            for latency_ms in [5, 10, 20] {
                cases.push(Case { server, backend, sdl_driver, latency_ms });
            }
        }
    }
    cases
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn print_row(case: &Case, runs: &[Run]) {
    let mut all: Vec<f64> = runs.iter().flat_map(|r| r.delays_ms.iter().copied()).collect();
    all.sort_by(f64::total_cmp);
    let sum = |f: fn(&Run) -> usize| runs.iter().map(f).sum::<usize>();
    let (p50, max) = match all.len() {
        0 => (f64::NAN, f64::NAN),
        n => (all[n / 2], all[n - 1]),
    };
    let backend = case.sdl_driver.map_or("alsa".to_string(), |d| format!("sdl ({d})"));
    let latency = runs.iter().map(|r| r.latency_ms).sum::<f64>() / runs.len().max(1) as f64;
    println!(
        "| {} | {backend} | {} | {} | {} / {} | {p50:.1} | {max:.1} | {:.1} | {} | {latency:.1} |",
        case.server,
        case.latency_ms,
        all.len(),
        sum(|r| r.gapped),
        sum(|r| r.not_found),
        f64::from(case.latency_ms) + FRAME_MS,
        sum(|r| r.recorded_gaps),
    );
}

/// The script: `up`/`down` alternately, each held `HOLD` frames.
fn press_script(presses: u64) -> String {
    let mut text = String::from("# input_to_sound: alternate presses, the pitch stays near 256 Hz\n");
    for i in 0..presses {
        let frame = FIRST_PRESS + i * PRESS_EVERY;
        let key = if i % 2 == 0 { "up" } else { "down" };
        text += &format!("{frame} {key} down\n{} {key} up\n", frame + HOLD);
    }
    text
}

fn run_case(case: &Case, presses: u64, binary: &Path, game: &Path) -> Run {
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("presses.txt");
    std::fs::write(&script, press_script(presses)).expect("write the input script");
    let frames = (FIRST_PRESS + presses * PRESS_EVERY + 30).to_string();
    let harness: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(".ci/{}-null-sink.sh", case.server));
    let latency = case.latency_ms.to_string();
    let mut command = Command::new(harness);
    command.args(["run", "--"]).arg(std::env::current_exe().expect("this example's path")).arg(binary);
    command.args(["--headless", "--stats", "--no-rebuild", "--audio", case.backend, "--latency-ms", &latency]);
    command.args(["--frames", &frames, "--input-script"]).arg(&script).arg("--game-lib").arg(game);
    command.env(WRAP_ENV, dir.path()).env("RUST_LOG", "info,handmade::input=debug");
    if let Some(driver) = case.sdl_driver {
        // The PipeWire harness sets SDL_AUDIODRIVER from this; the PulseAudio one always sets
        // `pulseaudio` (the driver line is checked below either way).
        command.env("PIPEWIRE_NULL_SINK_SDL_DRIVER", driver);
    }
    let output = command.output().expect("run the null-sink harness");
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        eprintln!("{}: failed: {stderr}", case.label());
        return Run::default();
    }
    if let Some(driver) = case.sdl_driver {
        assert!(
            stderr.contains(&format!("sdl: driver {driver}")),
            "{}: not SDL's {driver} driver:\n{stderr}",
            case.label()
        );
    }
    let events = applied_presses(&stderr);
    eprintln!("{}: {} presses applied", case.label(), events.len());
    let recording = Recording::load(dir.path());
    let mut run = measure(&recording, &events);
    run.latency_ms = stat(&output.stdout, "latency_ms").parse().unwrap_or(f64::NAN);
    run
}

/// The key-down events' wall-clock times (ns since the epoch), from the platform's debug lines.
fn applied_presses(stderr: &str) -> Vec<u64> {
    stderr
        .lines()
        .filter(|l| l.contains("input script: frame") && l.contains(" down applied at unix_ns "))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect()
}

/// What the wrapper recorded: the left channel, and after each read the frames so far and
/// the wall clock (ns since the epoch).
struct Recording {
    left: Vec<f64>,
    reads: Vec<(u64, u64)>,
}

impl Recording {
    fn load(dir: &Path) -> Self {
        let raw = std::fs::read(dir.join("monitor.raw")).expect("the wrapper's recording");
        let left = raw.chunks_exact(4).map(|f| f64::from(i16::from_le_bytes([f[0], f[1]])) / 32768.0).collect();
        let reads = std::fs::read_to_string(dir.join("monitor.reads"))
            .expect("the wrapper's read times")
            .lines()
            .filter_map(|l| {
                let (frames, ns) = l.split_once(' ')?;
                Some((frames.parse().ok()?, ns.parse().ok()?))
            })
            .collect();
        Self { left, reads }
    }

    /// Recording position of the wall-clock time `ns` (see the header): the tightest bound
    /// on the time of position 0 among the reads within 3 s of `ns`.
    fn position_at(&self, ns: u64) -> Option<f64> {
        const WINDOW_NS: u64 = 3_000_000_000;
        let t0 = self
            .reads
            .iter()
            .filter(|&&(_, at)| at.abs_diff(ns) <= WINDOW_NS)
            .map(|&(frames, at)| at as f64 - frames as f64 * 1e9 / RATE)
            .min_by(f64::total_cmp)?;
        Some((ns as f64 - t0) * RATE / 1e9)
    }
}

/// Each press's delay: its sink-clock position, then the first changed sample after it.
fn measure(recording: &Recording, presses: &[u64]) -> Run {
    let mut run = Run::default();
    let gaps: Vec<usize> = find_breaks(&recording.left, 2.0 * TONE_HZ, RATE).iter().map(|g| g.at).collect();
    run.recorded_gaps = count_gaps_in_sound(&recording.left, &gaps);
    for (i, &press) in presses.iter().enumerate() {
        let Some(at) = recording.position_at(press) else {
            eprintln!("  press {i}: no recorder read within 3 s of it");
            run.not_found += 1;
            continue;
        };
        let from = at - 0.3 * RATE;
        let to = at + 0.3 * RATE;
        if from < 0.0 || to >= recording.left.len() as f64 {
            eprintln!(
                "  press {i}: at {at:.0}, its window is outside the recording ({} samples)",
                recording.left.len()
            );
            run.not_found += 1;
            continue;
        }
        match first_changed_sample(&recording.left, from as usize, at, to as usize) {
            Some(changed) if gaps.iter().any(|&g| (from as usize..changed as usize + 48).contains(&g)) => {
                run.gapped += 1;
            }
            Some(changed) => run.delays_ms.push((changed - at) * 1e3 / RATE),
            None => {
                eprintln!("  press {i}: at {at:.0}, no settled pitch before it or no change within 300 ms");
                run.not_found += 1;
            }
        }
    }
    run
}

/// Gaps between the sound's start and end (the silences before and after are not gaps).
fn count_gaps_in_sound(left: &[f64], gaps: &[usize]) -> usize {
    let loud = |s: &f64| s.abs() > 0.01;
    let (Some(first), Some(last)) = (left.iter().position(loud), left.iter().rposition(loud)) else {
        return 0;
    };
    gaps.iter().filter(|&&g| g > first + 48 && g + 48 < last).count()
}

/// Zero crossings of `x[from..to]`, as fractional positions in `x`.
fn zero_crossings(x: &[f64], from: usize, to: usize) -> Vec<f64> {
    (from.max(1)..to.min(x.len()))
        .filter(|&i| (x[i - 1] < 0.0) != (x[i] < 0.0))
        .map(|i| (i - 1) as f64 + x[i - 1] / (x[i - 1] - x[i]))
        .collect()
}

/// The first changed sample after `from` (see the header): settled pitch from the half-cycles
/// in `from .. at - 20 ms`, then the first crossing at or after `at - 20 ms` that starts two
/// half-cycles off it by more than `THRESHOLD`.
fn first_changed_sample(x: &[f64], from: usize, at: f64, to: usize) -> Option<f64> {
    let crossings = zero_crossings(x, from, to);
    let settled_until = at - 0.02 * RATE;
    let mut settled: Vec<f64> = crossings.windows(2).filter(|w| w[1] < settled_until).map(|w| w[1] - w[0]).collect();
    if settled.len() < 20 {
        return None;
    }
    settled.sort_by(f64::total_cmp);
    let half = settled[settled.len() / 2];
    let off = |w: &[f64]| ((w[1] - w[0]) / half - 1.0).abs() > THRESHOLD;
    crossings.windows(3).find(|w| w[0] >= settled_until && off(&w[..2]) && off(&w[1..])).map(|w| w[0])
}

/// The wrapper (run inside the harness): records the sink's monitor with `parec`, noting the
/// wall clock after every read, runs the platform (its output passed through), and stops the
/// recording 0.3 s after it ends. Returns the platform's exit code.
fn record_around(dir: &Path) -> i32 {
    let mut args = std::env::args_os().skip(1);
    let program = args.next().expect("the platform to run");
    let sink = std::env::var("PULSE_SINK_NAME").expect("PULSE_SINK_NAME from the harness");
    let mut parec = Command::new("parec")
        .arg(format!("--device={sink}.monitor"))
        .args(["--rate=48000", "--channels=2", "--format=s16le", "--latency-msec=10", "--raw"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start parec");
    let stdout = parec.stdout.take().expect("parec's stdout");
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || read_timestamped(stdout, started_tx));
    // The platform starts once the recording delivers (the monitor streams silence too).
    let _ = started_rx.recv_timeout(Duration::from_secs(3));
    let status = Command::new(program).args(args).status().expect("run the platform");
    std::thread::sleep(Duration::from_millis(300));
    let _ = parec.kill();
    let _ = parec.wait();
    let (raw, reads) = reader.join().expect("the recording thread");
    std::fs::write(dir.join("monitor.raw"), raw).expect("write the recording");
    let mut times = std::fs::File::create(dir.join("monitor.reads")).expect("write the read times");
    for (frames, ns) in reads {
        writeln!(times, "{frames} {ns}").expect("write the read times");
    }
    status.code().unwrap_or(1)
}

fn read_timestamped(mut from: impl Read, started: std::sync::mpsc::Sender<()>) -> (Vec<u8>, Vec<(u64, u64)>) {
    let mut raw = Vec::with_capacity(4 * 48_000 * 60);
    let mut reads = Vec::with_capacity(60_000);
    let mut buffer = [0u8; 4096];
    while let Ok(n) = from.read(&mut buffer) {
        if n == 0 {
            break;
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        raw.extend_from_slice(&buffer[..n]);
        reads.push(((raw.len() / 4) as u64, now));
        if reads.len() == 1 {
            let _ = started.send(());
        }
    }
    (raw, reads)
}

/// The detector's own offset: the same presses written offline (`--audio wav`, no device),
/// where each frame writes exactly 800 frames (48 kHz / 60 fps), so the first sample of a
/// press's frame is `frame * 800` (checked against the file's length).
fn calibrate(binary: &Path, game: &Path) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (script, wav) = (dir.path().join("p.txt"), dir.path().join("out.wav"));
    std::fs::write(&script, press_script(20)).expect("write the input script");
    let frames = FIRST_PRESS + 20 * PRESS_EVERY + 30;
    let output = Command::new(binary)
        .args(["--headless", "--no-rebuild", "--audio", "wav", "--wav-out"])
        .arg(&wav)
        .args(["--frames", &frames.to_string(), "--input-script"])
        .arg(&script)
        .arg("--game-lib")
        .arg(game)
        .output()
        .expect("run the platform offline");
    assert!(output.status.success(), "offline run: {}", String::from_utf8_lossy(&output.stderr));
    let (left, _) = handmade_support::read_wav(&wav);
    let per_frame = RATE as u64 / 60;
    assert_eq!(left.len() as u64, frames * per_frame, "offline frames are not {per_frame} samples each");
    let mut offsets: Vec<f64> = (0..20)
        .filter_map(|i| {
            let at = ((FIRST_PRESS + i * PRESS_EVERY) * per_frame) as f64;
            let changed = first_changed_sample(&left, (at - 0.3 * RATE) as usize, at, (at + 0.3 * RATE) as usize)?;
            Some((changed - at) * 1e3 / RATE)
        })
        .collect();
    offsets.sort_by(f64::total_cmp);
    let n = offsets.len();
    println!(
        "calibration (offline): the detector finds the change {:.2} .. {:.2} ms (p50 {:.2}) after the press frame's first sample, {n} of 20 presses",
        offsets.first().copied().unwrap_or(f64::NAN),
        offsets.last().copied().unwrap_or(f64::NAN),
        offsets.get(n / 2).copied().unwrap_or(f64::NAN)
    );
}
