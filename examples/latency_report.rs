//! Latency report (issue 12): the demo's 256 Hz tone through both sound servers people run
//! (PulseAudio, PipeWire with its pulse server; each a private null sink, recorded from its
//! monitor), through ALSA (pulse plugin) and SDL2 (its pulseaudio driver), at 5, 10 and 20 ms,
//! with and without real-time priority (`--no-rt`), with and without three busy loops at
//! nice 0. Per case: the device's underruns, the platform's `gaps` and the gaps found in the
//! recording, write-to-play latency mean and max, and how late after each frame's scheduled
//! start the sound was written (p50/p99/max). Then the lowest clean latency per server and
//! backend. Figures are medians over `LATENCY_REPORT_REPEATS` runs (default 3).
//!
//! ALSA runs both ways of feeding the device (`--alsa-io`): `thread` (an audio I/O thread tops
//! the device up every period from a ring) and `frame` (one write per frame), side by side.
//! Through PipeWire, ALSA also runs a third path: PipeWire's own ALSA plugin (pipewire-alsa,
//! what ALSA's `default` is on a PipeWire desktop; `PIPEWIRE_NULL_SINK_ALSA=pipewire`), labelled
//! `alsa-pw`, beside the pulse plugin into pipewire-pulse (`alsa`).
//!
//! The game is the demo's as `cargo run --release` loads it (optimised: its frame reaches the
//! sound write about 0.3 ms after the frame starts). Until 2026-12-02 this report loaded the
//! tests' unoptimised build, which wrote about 5 ms late every frame.
//! `HANDMADE_SWAP_HEADROOM=0` and `HANDMADE_FRAME_SPIN_US` pass through to the platform;
//! `LATENCY_REPORT_PLATFORM=PATH` runs another build of it (an older commit's, to compare).
//!
//! `LATENCY_REPORT_REBUILD=1`: the game is a copy of the workspace's, watched (`--game-src`),
//! and halfway through each run its source is saved again, so the platform rebuilds (cargo and
//! rustc on the same 2 cores) and reloads it while the sound plays; the reloads are printed.
//! `LATENCY_REPORT_GAPS=1` prints each recorded gap's length and where it is in the recording.
//! `LATENCY_REPORT_PROMOTE=1`: the recorder and the pulse server's main thread at SCHED_FIFO
//! (see `PROMOTE`).
//! `LATENCY_REPORT_MS` lists the latencies (default `5,10,20`).
//! `LATENCY_REPORT_RT` (`on`, `off`, default both) limits the real-time dimension.
//! `LATENCY_REPORT_SECONDS` per run (default 60, the issue's ask); `LATENCY_REPORT_ONLY` limits
//! the cases to those whose label contains it (e.g. `pipewire alsa`).
//! Run with: cargo run --release --example latency_report

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use handmade_support::{
    build_game_like_the_demo, copy_workspace, find_gaps, platform_binary, read_wav, save_like_an_editor, stat,
    steady_part, RATE, TONE_HZ,
};

#[derive(Debug, Clone)]
struct Case {
    server: &'static str,
    backend: &'static str,
    /// ALSA's `default` through PipeWire's own ALSA plugin rather than the pulse plugin.
    pw_plugin: bool,
    /// `--alsa-io` for ALSA (`thread` or `frame`), empty for SDL.
    io: &'static str,
    latency_ms: u32,
    rt: bool,
    load: bool,
}

impl Case {
    fn label(&self) -> String {
        format!(
            "{} {}{}{}{} {} ms {} {}",
            self.server,
            self.backend,
            if self.pw_plugin { "-pw" } else { "" },
            if self.io.is_empty() { "" } else { "-" },
            self.io,
            self.latency_ms,
            if self.rt { "rt" } else { "no-rt" },
            if self.load { "load" } else { "idle" }
        )
    }
}

/// One run's figures.
#[derive(Debug, Clone, Copy, Default)]
struct Figures {
    underruns: f64,
    gaps: f64,
    recorded_gaps: f64,
    latency_ms: f64,
    latency_ms_max: f64,
    late_p50: f64,
    late_p99: f64,
    late_max: f64,
}

fn main() {
    let seconds: u64 = env_or("LATENCY_REPORT_SECONDS", 60);
    let repeats: usize = env_or("LATENCY_REPORT_REPEATS", 3);
    let only = std::env::var("LATENCY_REPORT_ONLY").unwrap_or_default();
    let game = build_game_like_the_demo();
    // `LATENCY_REPORT_PLATFORM`: another build of the platform (an older commit's, to compare).
    let binary = std::env::var_os("LATENCY_REPORT_PLATFORM").map_or_else(platform_binary, PathBuf::from);
    let rebuild = (std::env::var("LATENCY_REPORT_REBUILD").as_deref() == Ok("1")).then(Rebuild::new);
    let cases: Vec<Case> = all_cases().into_iter().filter(|c| c.label().contains(only.as_str())).collect();
    println!("latency report: {} cases, {seconds} s each, median of {repeats}", cases.len());
    println!("| server | backend | ms | rt | load | underruns | gaps (platform) | gaps (recording) | latency mean / max ms | write late p50 / p99 / max ms |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut results = Vec::new();
    // Cases that differ only in backend and `--alsa-io` run in turn, repeat by repeat, so a
    // shared machine's changing load falls on each of them alike.
    let mut groups: Vec<Vec<Case>> = Vec::new();
    for case in cases {
        match groups.last_mut() {
            Some(group) if same_conditions(&group[0], &case) => group.push(case),
            _ => groups.push(vec![case]),
        }
    }
    for group in groups {
        let mut runs: Vec<Vec<Figures>> = vec![Vec::new(); group.len()];
        for _ in 0..repeats {
            for (case, runs) in group.iter().zip(&mut runs) {
                runs.push(run_case(case, seconds, &binary, &game, rebuild.as_ref()));
            }
        }
        for (case, runs) in group.into_iter().zip(runs) {
            let f = median(&runs);
            print_row(&case, &f);
            results.push((case, f));
        }
    }
    lowest_clean(&results);
}

fn same_conditions(a: &Case, b: &Case) -> bool {
    (a.server, a.latency_ms, a.rt, a.load) == (b.server, b.latency_ms, b.rt, b.load)
}

fn print_row(case: &Case, f: &Figures) {
    println!(
        "| {} | {}{}{}{} | {} | {} | {} | {} | {} | {} | {:.1} / {:.1} | {:.1} / {:.1} / {:.1} |",
        case.server,
        case.backend,
        if case.pw_plugin { " (pipewire plugin)" } else { "" },
        if case.io.is_empty() { "" } else { " " },
        case.io,
        case.latency_ms,
        if case.rt { "on" } else { "off" },
        if case.load { "3 busy" } else { "none" },
        f.underruns,
        f.gaps,
        f.recorded_gaps,
        f.latency_ms,
        f.latency_ms_max,
        f.late_p50,
        f.late_p99,
        f.late_max
    );
}

fn all_cases() -> Vec<Case> {
    let rts: &[bool] = match std::env::var("LATENCY_REPORT_RT").as_deref() {
        Ok("on") => &[true],
        Ok("off") => &[false],
        _ => &[true, false],
    };
    let latencies: Vec<u32> = std::env::var("LATENCY_REPORT_MS")
        .unwrap_or_else(|_| "5,10,20".into())
        .split(',')
        .filter_map(|ms| ms.trim().parse().ok())
        .collect();
    let mut cases = Vec::new();
    for server in ["pipewire", "pulse"] {
        for load in [false, true] {
            for &rt in rts {
                for &latency_ms in &latencies {
                    for (backend, pw_plugin, io) in paths(server) {
                        cases.push(Case { server, backend, pw_plugin, io, latency_ms, rt, load });
                    }
                }
            }
        }
    }
    cases
}

/// Backend, PipeWire's ALSA plugin, `--alsa-io`: every way the platform's sound reaches
/// `server` that the report compares.
fn paths(server: &str) -> Vec<(&'static str, bool, &'static str)> {
    let mut paths = vec![("alsa", false, "thread"), ("alsa", false, "frame")];
    if server == "pipewire" {
        paths.extend([("alsa", true, "thread"), ("alsa", true, "frame")]);
    }
    paths.push(("sdl", false, ""));
    paths
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Three threads spinning at nice 0 until dropped: the issue's "load".
struct BusyLoops(Arc<AtomicBool>, Vec<std::thread::JoinHandle<()>>);

impl BusyLoops {
    fn start(n: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..n)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        Self(stop, threads)
    }
}

impl Drop for BusyLoops {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
        for t in self.1.drain(..) {
            let _ = t.join();
        }
    }
}

/// A copy of the workspace whose game the runs watch and rebuild (`LATENCY_REPORT_REBUILD`).
struct Rebuild {
    workspace: tempfile::TempDir,
    source: String,
}

impl Rebuild {
    fn new() -> Self {
        let workspace = tempfile::tempdir().expect("temp dir");
        copy_workspace(workspace.path());
        let source = std::fs::read_to_string(workspace.path().join("game/src/lib.rs")).expect("the game's lib.rs");
        Self { workspace, source }
    }

    fn target(&self) -> PathBuf {
        self.workspace.path().join("target")
    }
}

fn run_case(case: &Case, seconds: u64, binary: &Path, game: &Path, rebuild: Option<&Rebuild>) -> Figures {
    let dir = tempfile::tempdir().expect("temp dir");
    let wav = dir.path().join("case.wav");
    let script: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(".ci/{}-null-sink.sh", case.server));
    let _load = case.load.then(|| BusyLoops::start(3));
    let frames = (seconds * 60).to_string();
    let latency = case.latency_ms.to_string();
    let mut command = Command::new(script);
    command.env("PIPEWIRE_NULL_SINK_ALSA", if case.pw_plugin { "pipewire" } else { "pulse" });
    command.arg("run").arg("--record").arg(&wav).arg("--");
    if std::env::var("LATENCY_REPORT_PROMOTE").as_deref() == Ok("1") {
        command.args(["bash", "-c", PROMOTE, "promote"]);
    }
    command.arg(binary);
    command.args(["--headless", "--stats", "--audio", case.backend, "--latency-ms", &latency, "--frames", &frames]);
    match rebuild {
        Some(r) => command.arg("--game-src").arg(r.workspace.path().join("game")).env("CARGO_TARGET_DIR", r.target()),
        None => command.args(["--no-rebuild", "--game-lib"]).arg(game),
    };
    if !case.rt {
        command.arg("--no-rt");
    }
    if !case.io.is_empty() {
        command.args(["--alsa-io", case.io]);
    }
    // Halfway (after a start-up allowance: the first run builds the copy), the game is saved.
    let saver = rebuild.map(|r| {
        let (touch, stamp) = (r.workspace.path().join("game/src/lib.rs"), std::time::Instant::now());
        let source = r.source.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_secs(2 + seconds / 2));
            let text = format!("{source}\n// latency_report rebuild {}\n", stamp.elapsed().as_nanos());
            save_like_an_editor(&touch, &text);
        })
    });
    let steal_before = steal_ms();
    let output = command.output().expect("run the null-sink harness");
    // Time the host ran something else on this machine's CPUs: on a virtual machine, stops
    // of the whole machine that no thread in it can see coming (`machine_stalls`).
    eprintln!("{}: steal {:.0} ms over the run", case.label(), steal_ms() - steal_before);
    if let Some(saver) = saver {
        let _ = saver.join();
        eprintln!("{}: reloads={}", case.label(), stat(&output.stdout, "reloads"));
    }
    if !output.status.success() {
        eprintln!("{}: failed: {}", case.label(), String::from_utf8_lossy(&output.stderr));
        return Figures::default();
    }
    let num = |key: &str| stat(&output.stdout, key).parse::<f64>().unwrap_or(f64::NAN);
    Figures {
        underruns: num("underruns"),
        gaps: num("gaps"),
        recorded_gaps: recorded_gaps(&wav),
        latency_ms: num("latency_ms"),
        latency_ms_max: num("latency_ms_max"),
        late_p50: num("write_late_ms_p50"),
        late_p99: num("write_late_ms_p99"),
        late_max: num("write_late_ms_max"),
    }
}

/// `LATENCY_REPORT_PROMOTE=1`: before the platform starts, the recorder (`parec`, a child of
/// the harness, found from the command's parent) and the pulse server's main thread (it moves
/// the clients' data; PipeWire's own data threads are SCHED_FIFO already) go to SCHED_FIFO 5,
/// so a machine busy compiling does not starve them: the gaps left are the client's.
const PROMOTE: &str = r#"for p in $(pgrep -P $PPID parec); do chrt -f -p 5 $p; done
for p in $(cat "$(dirname "$PULSE_NULL_SINK_KILL")/server.pids" 2>/dev/null); do
  case $(cat /proc/$p/comm 2>/dev/null) in pipewire-pulse|pulseaudio) chrt -f -p 5 $p;; esac
done
exec "$@""#;

/// Steal time of all CPUs together so far (`/proc/stat`), in ms.
fn steal_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: f64 =
        stat.lines().next().and_then(|l| l.split_whitespace().nth(8)).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks * 1000.0 / USER_HZ
}

/// The unit of `/proc/stat`'s times: fixed by the kernel's ABI at 100 a second, whatever the
/// kernel's own tick (`sysconf(_SC_CLK_TCK)` reports the same 100).
const USER_HZ: f64 = 100.0;

/// Gaps in the recording from half a second into the sound to 0.3 s before its end (as the
/// tests count them).
fn recorded_gaps(wav: &Path) -> f64 {
    let (left, _) = read_wav(wav);
    let Some(std::ops::Range { start, end }) = steady_part(&left, RATE) else { return f64::NAN };
    let gaps = find_gaps(&left[start..end], TONE_HZ, RATE);
    if std::env::var("LATENCY_REPORT_GAPS").as_deref() == Ok("1") {
        let at = |g: &handmade_support::Gap| (start + g.at) as f64 / RATE;
        let ms: Vec<String> =
            gaps.iter().map(|g| format!("{:.1}@{:.1}s", g.span as f64 * 1000.0 / RATE, at(g))).collect();
        eprintln!("recorded gaps (ms@s into the recording): {}", ms.join(" "));
    }
    gaps.len() as f64
}

fn median(runs: &[Figures]) -> Figures {
    let m = |f: fn(&Figures) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    Figures {
        underruns: m(|f| f.underruns),
        gaps: m(|f| f.gaps),
        recorded_gaps: m(|f| f.recorded_gaps),
        latency_ms: m(|f| f.latency_ms),
        latency_ms_max: m(|f| f.latency_ms_max),
        late_p50: m(|f| f.late_p50),
        late_p99: m(|f| f.late_p99),
        late_max: m(|f| f.late_max),
    }
}

/// The lowest `--latency-ms` whose recording had no gap, per server, backend, load and RT.
fn lowest_clean(results: &[(Case, Figures)]) {
    println!("\nlowest clean --latency-ms (median recording gaps 0):");
    let key = |c: &Case| (c.server, c.backend, c.pw_plugin, c.io, c.load, c.rt);
    let mut keys: Vec<_> = results.iter().map(|(c, _)| key(c)).collect();
    keys.sort();
    keys.dedup();
    for (server, backend, pw_plugin, io, load, rt) in keys {
        let clean = results
            .iter()
            .filter(|(c, f)| key(c) == (server, backend, pw_plugin, io, load, rt) && f.recorded_gaps == 0.0)
            .map(|(c, f)| (c.latency_ms, f.latency_ms, f.latency_ms_max))
            .min_by_key(|&(ms, _, _)| ms);
        let what = format!(
            "{server} {backend}{} {io} {} {}",
            if pw_plugin { " (pipewire plugin)" } else { "" },
            if rt { "rt" } else { "no-rt" },
            if load { "3 busy" } else { "idle" }
        );
        match clean {
            Some((ms, mean, max)) => println!("  {what}: {ms} ms (write-to-play mean {mean:.1} ms, max {max:.1} ms)"),
            None => println!("  {what}: not clean at any latency run"),
        }
    }
}
