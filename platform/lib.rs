//! The handmade platform layer as a library: the executable (`platform/main.rs`), the tests,
//! the benchmarks and the lesson examples all use it. What they need is re-exported here; the
//! parts stay private to the crate.
//!
//! ```no_run
//! let config = handmade::Config { headless: true, audio: handmade::AudioChoice::None, frames: 60, ..Default::default() };
//! let report = handmade::run(&config).expect("run");
//! println!("{}", report.stats_line);
//! ```
#![deny(unsafe_op_in_unsafe_fn)]

mod audio;
mod cli;
mod dev;
mod frame_loop;
mod guard;
mod input;
mod measure;
mod memory;
mod private_fs;
mod reload;
mod sdl_context;
mod seqlock;
mod signals;
mod window;

pub use audio::{interleave_i16, AudioChoice};
pub use cli::{Args, Command, Config};
pub use dev::game_build::resolve_game_library;
pub use dev::live_loop::{check_recording, LiveLoop, INPUT_RECORD_BYTES};
pub use dev::scaffold::{new_game, NewGame};
pub use frame_loop::{run, PlatformError, RunReport, WARMUP_FRAMES};
pub use guard::{CallGuard, FaultKind, GameCall, GameFault};
pub use input::script::InputScript;
pub use measure::alloc_count;
pub use measure::stats::Counters;
pub use memory::assets::{decode_wav, MAX_SAMPLE_FRAMES};
pub use memory::{MemoryLayout, PlatformMemoryBlock};
pub use reload::GameCode;

/// The loop recording's file format, for the fuzzer: check a file, and stamp or reseal a
/// mutated one so it reaches the checks behind the layout hash and the checksum.
pub mod loop_file {
    pub use crate::dev::live_loop::{check_recording, reseal_checksum, stamp_layout_hash};
}

/// Keyboard handling, for tests that drive the input the way the window does.
pub mod keys {
    pub use crate::input::{apply_key, begin_frame, Key};
}
