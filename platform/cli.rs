//! Command-line flags of the `handmade` executable.

use std::path::PathBuf;

use clap::Parser;

use crate::audio::AudioChoice;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "handmade",
    version,
    about = "A Handmade-Hero-style platform layer with audio and a hot-reloaded game"
)]
pub struct Args {
    /// Sound output: auto tries alsa, then sdl, then writes nowhere (offline).
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
    /// Force a full reload (copy, load, check, swap) every N frames; 0 never forces one.
    #[arg(long, default_value_t = 0)]
    pub reload_every: u64,
    /// Print one `stats:` line on exit.
    #[arg(long)]
    pub stats: bool,
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

impl Args {
    /// The device-queue target: the flag, or about two frames.
    pub fn latency_ms(&self) -> f32 {
        self.latency_ms.unwrap_or(2000.0 / self.fps as f32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!((args.latency_ms() - 33.33).abs() < 0.01);
    }
}
