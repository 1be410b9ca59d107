//! One copy of each helper the tests (`tests/common`), the examples (`examples/common`), the
//! benchmarks and the reports share: where the build's artifacts are, building the game and the
//! platform binary, running the platform as a child process and reading its `stats:` line, and
//! reading and checking the sound it wrote. Test code: helpers panic with a clear message
//! instead of returning errors.

mod gaps;
mod paths;
mod process;
mod sound;
mod stats;
mod tone;

pub use gaps::{find_breaks, find_gaps, follow_tone, steady_gaps, steady_part, Gap, ToneArrival};
pub use paths::{
    build_c_library, build_game_like_the_demo, build_game_variant, cargo_build, copy_workspace, example_binary,
    platform_binary, profile_dir, target_dir, workspace,
};
pub use process::{
    expect_success, install_library, run_platform, save_like_an_editor, spawn_paced, spawn_watching,
    spawn_watching_with, stderr_lines, terminate, LogWatcher, Running,
};
pub use sound::{ideal_tone, max_error_steps, read_wav, Wav, DEFAULT_AMPLITUDE, RATE, TONE_HZ};
pub use stats::{parse_stats, stat, stat_u64, StatsSource};
pub use tone::{check_tone, ToneChecker, ToneReport};
