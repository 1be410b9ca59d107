//! Lesson L5.5 final exercise, the audit: run the real platform loop (`handmade::run`,
//! the demo game, the offline WAV backend) and count every heap allocation in the whole process
//! (Rust, the game library and the C libraries, through the interposed `malloc`), showing zero in
//! the sound path (the game's output-sound call, conversion and device write) in every frame.
//!
//! Run with: cargo run --release --example l5_5_audit

mod common;

use common::*;
use handmade::alloc_count::{self, AllocCounts};

fn main() {
    header("L5.5 audit", "heap allocations in the sound path, counted across the whole process");
    let active = alloc_count::is_active();
    let before = AllocCounts::now();
    let probe = std::hint::black_box(vec![0u8; 100]);
    drop(probe);
    let detected = AllocCounts::now().since(before).all_threads;
    println!("allocation counting active: {active}; control: one Vec allocation counted as {detected}");
    if !active {
        println!(
            "counting is not active in this binary (malloc is not interposed): the zeros below would prove nothing"
        );
    }

    let frames = pick(1_200, 240);
    let wav = lessons_dir().join("l5_5_audit.wav");
    let n = frames.to_string();
    let start = AllocCounts::now();
    let stats = run_in_process(&[
        "--headless",
        "--audio",
        "wav",
        "--wav-out",
        wav.to_str().expect("utf-8 path"),
        "--frames",
        &n,
        "--stats",
        "--no-rebuild",
    ]);
    let whole_run = AllocCounts::now().since(start);
    for key in [
        "frames",
        "sound_frames",
        "alloc_counting",
        "sound_heap_allocs",
        "heap_allocs_after_warmup",
        "heap_allocs_other_threads",
        "reload_heap_allocs",
    ] {
        println!("{key}={}", stat(&stats, key));
    }
    println!(
        "whole run, all threads (start-up included: argument parsing, loading the game, opening the WAV): {} allocations",
        whole_run.all_threads
    );
    let sound = stat(&stats, "sound_heap_allocs");
    let after_warmup = stat(&stats, "heap_allocs_after_warmup");
    verdict(
        "the sound path must never allocate; preallocate everything at start-up",
        &format!(
            "sound_heap_allocs={sound} over {frames} frames and heap_allocs_after_warmup={after_warmup} (whole frames after {} warm-up frames), counting {}",
            handmade::WARMUP_FRAMES,
            if active { "active" } else { "INACTIVE" }
        ),
        &format!(
            "the counting allocator ({}) counted {} inside the sound path over the whole run and {} after warm-up in the whole process{}",
            if active { "shown active by the control allocation above" } else { "NOT active: these zeros mean nothing" },
            if sound == "0" { "no allocation".to_string() } else { format!("{sound} allocation(s)") },
            if after_warmup == "0" { "none".to_string() } else { after_warmup.to_string() },
            if sound == "0" { "" } else { "; break on malloc in gdb during game_output_sound to find them" }
        ),
    );
}
