//! Command-line flags of the `handmade` executable (`Args`), and the checked configuration a
//! run is built from (`Config`), which tests and examples build directly, without argv strings.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::audio::AudioChoice;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "handmade",
    version,
    about = "A Handmade-Hero-style platform layer with audio and a hot-reloaded game",
    long_about = "A Handmade-Hero-style platform layer with audio and a hot-reloaded game.\n\n\
        With no command it runs the bundled demo (or the game crate `--game DIR` names), rebuilding \
        and reloading the game whenever its sources are saved. Your own game in two commands:\n  \
        handmade new DIR\n  handmade --game DIR",
    args_conflicts_with_subcommands = true
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Sound output: auto tries alsa, then sdl, then runs offline without sound output.
    #[arg(long, value_enum, default_value = "auto")]
    pub audio: AudioChoice,
    /// Where the wav backend writes 16-bit stereo PCM (without it, `--audio wav` discards the sound and says so).
    #[arg(long, value_name = "PATH")]
    pub wav_out: Option<PathBuf>,
    /// Run without a window.
    #[arg(long)]
    pub headless: bool,
    /// Stop after this many frames (0: run until closed).
    #[arg(long, default_value_t = 0)]
    pub frames: u64,
    /// Pace offline/headless runs like a device would (otherwise they run as fast as they can).
    #[arg(long)]
    pub realtime: bool,
    /// Frames per second of the game loop.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub fps: u32,
    /// Sample rate of the sound output.
    #[arg(long, default_value_t = 48_000, value_parser = clap::value_parser!(u32).range(8_000..=192_000))]
    pub sample_rate: u32,
    /// How far ahead of the play position to keep the device queue (default: about two frames).
    #[arg(long, value_name = "MS")]
    pub latency_ms: Option<f32>,
    /// ALSA device name.
    #[arg(long, default_value = "default")]
    pub alsa_device: String,
    /// How ALSA is fed: an audio I/O thread topping the device up every period from a ring
    /// the frame loop fills (thread), or one write per frame from the frame loop (frame).
    #[arg(long, value_enum, default_value_t = crate::audio::AlsaIo::default(), value_name = "MODE")]
    pub alsa_io: crate::audio::AlsaIo,
    /// Force a full reload (copy, load, check, swap) every N frames; 0 never forces one.
    #[arg(long, default_value_t = 0)]
    pub reload_every: u64,
    /// Print one `stats:` line on exit.
    #[arg(long)]
    pub stats: bool,
    /// Run the game crate in DIR (a cdylib depending on handmade_api, as `handmade new` makes):
    /// built first, then rebuilt and reloaded on save like the demo.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["game_lib", "game_src"])]
    pub game: Option<PathBuf>,
    /// The game library (default: the one this workspace builds, built first if missing or stale).
    #[arg(long, value_name = "PATH")]
    pub game_lib: Option<PathBuf>,
    /// The game's sources to watch and rebuild on save (default: found from the workspace).
    #[arg(long, value_name = "DIR")]
    pub game_src: Option<PathBuf>,
    /// Do not rebuild the game when its sources change.
    #[arg(long)]
    pub no_rebuild: bool,
    /// Game permanent storage (survives reloads), MiB.
    #[arg(long, default_value_t = 64)]
    pub permanent_mib: usize,
    /// Game transient storage, MiB.
    #[arg(long, default_value_t = 256)]
    pub transient_mib: usize,
    /// The platform's own arenas (bitmap, statistics, loop recording, sounds), MiB.
    #[arg(long, default_value_t = 64)]
    pub platform_mib: usize,
    /// Offscreen bitmap size, WIDTHxHEIGHT.
    #[arg(long, default_value = "960x540", value_parser = parse_size)]
    pub size: (u32, u32),
    /// Write the last frame as a PNG on exit.
    #[arg(long, value_name = "PATH")]
    pub screenshot: Option<PathBuf>,
    /// Scripted input, one `FRAME KEY down|up` event a line.
    #[arg(long, value_name = "PATH")]
    pub input_script: Option<PathBuf>,
    /// Directory holding the demo's assets (loop.wav).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Where live loop editing (`l`) records; default: a file in a private temporary directory.
    #[arg(long, value_name = "PATH")]
    pub loop_file: Option<PathBuf>,
    /// Play a finished loop recording from the start, over and over.
    #[arg(long, value_name = "PATH")]
    pub play_loop: Option<PathBuf>,
    /// Write the audio-sync markers (one line per frame) to this file on exit.
    #[arg(long, value_name = "PATH")]
    pub sync_dump: Option<PathBuf>,
    /// Do not ask for real-time priority for the threads that move sound (the frame thread and
    /// the sound library's I/O thread: SCHED_FIFO where root or RLIMIT_RTPRIO allows, else rtkit).
    #[arg(long)]
    pub no_rt: bool,
    /// A game call running longer than this is interrupted and treated like a crash.
    #[arg(long, value_name = "MS", default_value_t = 250, value_parser = clap::value_parser!(u32).range(10..=60_000))]
    pub game_timeout_ms: u32,
}

/// What `handmade` does instead of running a game.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Make a new game crate in DIR (new or empty): a tone, a square and its README; then run
    /// it with `handmade --game DIR`.
    New {
        /// Where the crate goes; its name is the folder's.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

/// Everything a run needs, checked. `Config::default()` is what `handmade` with no flags runs.
#[derive(Debug, Clone)]
pub struct Config {
    pub audio: AudioChoice,
    pub wav_out: Option<PathBuf>,
    pub headless: bool,
    /// 0: until closed.
    pub frames: u64,
    pub realtime: bool,
    pub fps: u32,
    pub sample_rate: u32,
    /// The device-queue target, in milliseconds.
    pub latency_ms: f32,
    pub alsa_device: String,
    pub alsa_io: crate::audio::AlsaIo,
    pub reload_every: u64,
    /// A game crate to build, load and watch instead of the demo (`--game`).
    pub game: Option<PathBuf>,
    pub game_lib: Option<PathBuf>,
    pub game_src: Option<PathBuf>,
    pub rebuild: bool,
    pub permanent_mib: usize,
    pub transient_mib: usize,
    pub platform_mib: usize,
    pub size: (u32, u32),
    pub screenshot: Option<PathBuf>,
    pub input_script: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub loop_file: Option<PathBuf>,
    pub play_loop: Option<PathBuf>,
    pub sync_dump: Option<PathBuf>,
    pub game_timeout_ms: u32,
    /// Real-time priority for the sound threads (off with `--no-rt`).
    pub rt: bool,
}

/// The range `--latency-ms` accepts: below 1 ms no device keeps up; above 1 s is not a game.
const LATENCY_MS: std::ops::RangeInclusive<f32> = 1.0..=1000.0;

impl Config {
    /// Checks what clap cannot: one line saying what is wrong.
    pub fn from_args(args: &Args) -> Result<Self, String> {
        let latency_ms = args.latency_ms.unwrap_or(2000.0 / args.fps as f32);
        if !LATENCY_MS.contains(&latency_ms) {
            return Err(format!(
                "--latency-ms must be between {} and {} (got {latency_ms})",
                LATENCY_MS.start(),
                LATENCY_MS.end()
            ));
        }
        Ok(Self {
            audio: args.audio,
            wav_out: args.wav_out.clone(),
            headless: args.headless,
            frames: args.frames,
            realtime: args.realtime,
            fps: args.fps,
            sample_rate: args.sample_rate,
            latency_ms,
            alsa_device: args.alsa_device.clone(),
            alsa_io: args.alsa_io,
            reload_every: args.reload_every,
            game: args.game.clone(),
            game_lib: args.game_lib.clone(),
            game_src: args.game_src.clone(),
            rebuild: !args.no_rebuild,
            permanent_mib: args.permanent_mib,
            transient_mib: args.transient_mib,
            platform_mib: args.platform_mib,
            size: args.size,
            screenshot: args.screenshot.clone(),
            input_script: args.input_script.clone(),
            data_dir: args.data_dir.clone(),
            loop_file: args.loop_file.clone(),
            play_loop: args.play_loop.clone(),
            sync_dump: args.sync_dump.clone(),
            game_timeout_ms: args.game_timeout_ms,
            rt: !args.no_rt,
        })
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::from_args(&Args::parse_from(["handmade"])).expect("the defaults are valid")
    }
}

fn parse_size(text: &str) -> Result<(u32, u32), String> {
    let (w, h) = text.split_once('x').ok_or_else(|| format!("expected WIDTHxHEIGHT, got `{text}`"))?;
    let w: u32 = w.parse().map_err(|_| format!("bad width `{w}`"))?;
    let h: u32 = h.parse().map_err(|_| format!("bad height `{h}`"))?;
    if !(16..=7680).contains(&w) || !(16..=4320).contains(&h) {
        return Err(format!("size {w}x{h} out of range (16x16 to 7680x4320)"));
    }
    Ok((w, h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn sizes_parse_and_bad_ones_explain_themselves() {
        assert_eq!(parse_size("960x540"), Ok((960, 540)));
        assert!(parse_size("960").unwrap_err().contains("WIDTHxHEIGHT"));
        assert!(parse_size("1x1").unwrap_err().contains("out of range"));
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let args = Args::parse_from(["handmade"]);
        assert_eq!((args.fps, args.sample_rate, args.permanent_mib), (60, 48_000, 64));
        let config = Config::default();
        assert!((config.latency_ms - 33.33).abs() < 0.01);
        assert!(config.rebuild && config.game_timeout_ms == 250);
        assert!(config.rt, "real-time priority is on by default");
        assert!(!Config::from_args(&Args::parse_from(["handmade", "--no-rt"])).unwrap().rt);
    }

    #[test]
    fn bad_latencies_are_refused_in_one_line() {
        for bad in ["-5", "NaN", "100000", "0"] {
            let flag = format!("--latency-ms={bad}");
            let args = Args::parse_from(["handmade", flag.as_str()]);
            let err = Config::from_args(&args).unwrap_err();
            assert!(err.starts_with("--latency-ms must be between 1 and 1000"), "{bad}: {err}");
        }
        assert_eq!(Config::from_args(&Args::parse_from(["handmade", "--latency-ms", "5"])).unwrap().latency_ms, 5.0);
    }

    #[test]
    fn new_is_a_command_and_game_a_flag_that_excludes_the_library_flags() {
        let args = Args::parse_from(["handmade", "new", "/tmp/my game"]);
        assert!(matches!(args.command, Some(Command::New { dir }) if dir == Path::new("/tmp/my game")));
        let args = Args::parse_from(["handmade", "--game", "g", "--headless"]);
        assert_eq!((args.command.is_none(), args.game), (true, Some(PathBuf::from("g"))));
        assert!(Args::try_parse_from(["handmade", "--game", "g", "--game-lib", "x.so"]).is_err());
        assert!(Args::try_parse_from(["handmade", "--headless", "new", "g"]).is_err(), "flags belong to a run");
        assert!(Args::try_parse_from(["handmade", "new"]).is_err(), "new needs a folder");
    }
}
