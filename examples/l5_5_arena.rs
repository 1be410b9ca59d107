//! Lesson L5.5 Exercise 2, the arena and the one-hour soak: push, temporary memory and the
//! high-water mark of a `MemoryArena`, then the real platform (`handmade::run`, the
//! game library loaded as the executable loads it) run unpaced for 216,000 frames (one hour at
//! 60 fps) and for a short run, showing the same arena high-water mark: nothing grows.
//!
//! Run with: cargo run --release --example l5_5_arena

mod common;

use std::time::Instant;

use common::*;
use handmade_api::MemoryArena;

#[derive(Clone, Copy)]
struct GameState {
    frame: u64,
    phase: f64,
}

fn arena_basics() {
    let mut backing = vec![0u8; 64 * 1024];
    let mut arena = MemoryArena::new("lesson", &mut backing);
    let state = arena.push_struct(GameState { frame: 0, phase: 0.0 }).expect("fits");
    let permanent = arena.used();
    for frame in 0..1000u64 {
        let mut scratch = arena.begin_temp(); // per-frame scratch, given back at the end
        let mix = scratch.push_array(800 * 2, 0.0f32).expect("fits");
        mix[0] = frame as f32;
        state.frame = frame;
        state.phase = (state.phase + 440.0 / 48_000.0 * 800.0).fract();
    }
    println!(
        "arena: {} bytes permanent, after 1000 frames of 6400-byte scratch: used={} high_water={} (size {})",
        permanent,
        arena.used(),
        arena.high_water(),
        arena.size()
    );
    let err = arena.push_array(1 << 20, 0u8).unwrap_err();
    println!("a request that does not fit: {err}");
}

/// Runs the platform unpaced for `frames` and returns (high-water bytes, resident MiB, seconds).
fn soak(frames: u64) -> (String, String, f64) {
    let start = Instant::now();
    let n = frames.to_string();
    let stats = run_in_process(&["--frames", &n, "--audio", "none", "--headless", "--stats", "--no-rebuild"]);
    let seconds = start.elapsed().as_secs_f64();
    println!("soak {frames} frames: {} ({seconds:.1} s, {:.0} frames/s)", summary(&stats), frames as f64 / seconds);
    (stat(&stats, "arena_high_water_bytes").to_string(), stat(&stats, "resident_mib").to_string(), seconds)
}

fn summary(stats: &[(String, String)]) -> String {
    [
        "frames",
        "arena_high_water_bytes",
        "heap_allocs_after_warmup",
        "resident_mib",
        "frame_ms_p50",
        "frame_ms_p99",
        "frame_ms_max",
    ]
    .iter()
    .map(|k| format!("{k}={}", stat(stats, k)))
    .collect::<Vec<_>>()
    .join(" ")
}

fn main() {
    header("L5.5 Ex2", "a bump arena, and the one-hour soak of the real platform");
    arena_basics();
    println!("note: the course credits the memory block to Handmade Hero day 25-26; `game_memory` with permanent and transient storage arrives on day 14 (days 23-25 build live loop editing on it)");
    let long = pick(216_000, 1_200);
    let short = pick(600, 300);
    let (short_hw, short_rss, _) = soak(short);
    let (long_hw, long_rss, seconds) = soak(long);
    let same = short_hw == long_hw;
    verdict(
        "with all memory reserved up front, an hour of frames uses no more memory than the first second",
        &format!(
            "arena_high_water_bytes {short_hw} after {short} frames and {long_hw} after {long} frames ({}); resident {short_rss} vs {long_rss} MiB; {long} frames took {seconds:.1} s unpaced",
            if same { "constant" } else { "DIFFERENT" }
        ),
        if same {
            "the platform's high-water mark of its arenas, read after both runs, was the same after the long run as after the short one: no frame pushed past what the first frames did"
        } else {
            "the high-water mark read after the long run is higher than after the short one: frames kept pushing into an arena beyond the first ones"
        },
    );
}
