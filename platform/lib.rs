//! The handmade platform layer as a library: the executable (`platform/main.rs`), the tests,
//! the benchmarks and the lesson examples all use it.
//!
//! ```no_run
//! use clap::Parser;
//! let args = handmade::cli::Args::parse_from(["handmade", "--headless", "--audio", "none", "--frames", "60"]);
//! let report = handmade::frame_loop::run(&args).expect("run");
//! println!("{}", report.stats_line);
//! ```
#![deny(unsafe_op_in_unsafe_fn)]

pub mod alloc_count;
pub mod analysis;
pub mod assets;
pub mod audio;
pub mod cli;
pub mod elf_check;
pub mod frame_loop;
pub mod game_build;
pub mod game_code;
pub mod input;
pub mod input_script;
pub mod live_loop;
pub mod load_probe;
pub mod memory;
pub mod rebuild;
pub mod screenshot;
pub mod sdl_context;
pub mod signals;
pub mod snapshot;
pub mod stats;
pub mod video;
