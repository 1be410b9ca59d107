//! Lesson L9.3, the event system: the course's 64-slot queue (no full check: head and tail are
//! kept masked, so the 64th unread event makes it look empty) against the toolkit's SPSC queue
//! (`handmade_api::rt::spsc`), which refuses a push when full and counts it; then, in the real
//! platform, how far after a key event its first changed sample is written.
//!
//! The course's queue is ported from its description in the course map (`COURSE.md`, L9.3).
//!
//! Run with: cargo run --release --example l9_3_events

mod common;

use std::process::Command;

use common::*;
use handmade_api::{rt::spsc, MemoryArena};

/// The course's queue: 64 slots, head and tail stored masked, empty when they are equal,
/// and a push that never checks for full.
struct CourseQueue {
    slots: [u32; 64],
    head: usize,
    tail: usize,
}

impl CourseQueue {
    fn push(&mut self, event: u32) {
        self.slots[self.head] = event;
        self.head = (self.head + 1) & 63;
    }

    fn pop(&mut self) -> Option<u32> {
        if self.head == self.tail {
            return None;
        }
        let e = self.slots[self.tail];
        self.tail = (self.tail + 1) & 63;
        Some(e)
    }
}

/// Pushes `n` events into each queue before reading any; returns (course read, course events
/// in order?, toolkit read, toolkit refused (counted), toolkit order ok).
fn burst(n: u32) -> (usize, bool, usize, u64, bool) {
    let mut course = CourseQueue { slots: [0; 64], head: 0, tail: 0 };
    (0..n).for_each(|e| course.push(e));
    let got: Vec<u32> = std::iter::from_fn(|| course.pop()).collect();
    let course_ordered = got.iter().enumerate().all(|(i, &e)| e == i as u32);

    let mut backing = vec![0u8; 4096];
    let mut arena = MemoryArena::new("events", &mut backing);
    let (mut tx, mut rx) = spsc::channel::<u32>(&mut arena, 64).expect("64 slots fit");
    let refused = (0..n).filter(|&e| tx.push(e).is_err()).count() as u64;
    let counted = tx.counters().overruns;
    assert_eq!(refused, counted, "every refused push is counted");
    let read: Vec<u32> = std::iter::from_fn(|| rx.pop()).collect();
    let ordered = read.iter().enumerate().all(|(i, &e)| e == i as u32);
    (got.len(), course_ordered, read.len(), counted, ordered)
}

/// Runs the platform offline (WAV, unpaced) for `frames` with `script`; returns the WAV's
/// interleaved samples and the sync markers' write cursors (frame -> cursor).
fn platform_run(dir: &std::path::Path, name: &str, script: &str, frames: u64) -> (Vec<i16>, Vec<(u64, u64)>) {
    let (script_path, wav, dump) =
        (dir.join(format!("{name}.txt")), dir.join(format!("{name}.wav")), dir.join(format!("{name}.sync")));
    std::fs::write(&script_path, script).expect("write the input script");
    let game = std::env::var("LESSON_GAME_LIB").map_or_else(|_| build_game_variant(""), std::path::PathBuf::from);
    let output = Command::new(platform_binary())
        .args(["--headless", "--audio", "wav", "--frames", &frames.to_string(), "--no-rebuild"])
        .arg("--game-lib")
        .arg(&game)
        .arg("--wav-out")
        .arg(&wav)
        .arg("--input-script")
        .arg(&script_path)
        .arg("--sync-dump")
        .arg(&dump)
        .output()
        .expect("run the platform");
    if !output.status.success() {
        eprintln!("the platform failed: {}", String::from_utf8_lossy(&output.stderr).lines().last().unwrap_or(""));
        std::process::exit(1);
    }
    let samples = hound::WavReader::open(&wav)
        .expect("the platform's WAV")
        .into_samples::<i16>()
        .map(|s| s.expect("a sample"))
        .collect();
    let text = std::fs::read_to_string(&dump).expect("the sync dump");
    let rows: Vec<u64> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    let first = frames - rows.len() as u64;
    (samples, rows.iter().enumerate().map(|(i, &c)| (first + i as u64, c)).collect())
}

fn main() {
    header("L9.3", "a fixed event queue: overflow, drops, and event-to-sample latency");
    println!(
        "{:>7} {:>12} {:>12} {:>14} {:>12} {:>16}",
        "pushed", "course read", "course lost", "course order", "spsc read", "spsc refused"
    );
    let mut rows = Vec::new();
    for n in [10u32, 63, 64, 65, 100] {
        let (c, c_ok, s, refused, s_ok) = burst(n);
        let order = if c == 0 {
            "-"
        } else if c_ok {
            "in order"
        } else {
            "WRONG"
        };
        println!("{n:>7} {c:>12} {:>12} {order:>14} {s:>12} {refused:>16}", n as usize - c);
        assert!(s_ok, "the toolkit queue keeps order");
        rows.push((n, c, s, refused));
    }
    let at = |n: u32| rows.iter().find(|r| r.0 == n).copied().expect("row");
    let (_, c64, s64, r64) = at(64);
    let (_, c65, _, r65) = at(65);
    verdict(
        "the 64-slot atomic queue holds the game's events",
        &format!("64 unread events: the course's queue reads back {c64}, the toolkit's {s64} (refused {r64}); 65: the course's reads {c65}, the toolkit refuses {r65} and counts it"),
        &format!(
            "with head and tail both masked to 0..63, the 64th push brought head back onto tail, the empty condition: all {} events became unreadable, and no count says so; the toolkit's queue keeps unmasked indices, so it tells full from empty, and its full check turned each extra event into a counted refusal",
            64 - c64
        ),
    );

    let frames = pick(240u64, 120);
    // Late enough to be among the markers the platform keeps (the newest 64).
    let event_frame = frames - 32;
    let dir = tempfile::tempdir().expect("temp dir");
    let (quiet_a, _) = platform_run(dir.path(), "quiet_a", "", frames);
    let (quiet_b, _) = platform_run(dir.path(), "quiet_b", "", frames);
    let (pressed, cursors) = platform_run(dir.path(), "pressed", &format!("{event_frame} up down\n"), frames);
    let deterministic = quiet_a == quiet_b;
    let first_diff = pressed.chunks(2).zip(quiet_a.chunks(2)).position(|(a, b)| a != b);
    let cursor = cursors.iter().find(|c| c.0 == event_frame).map(|c| c.1);
    println!("the platform offline (WAV, unpaced), {frames} frames, `up` pressed at frame {event_frame}; two runs without it identical: {deterministic}");
    match (first_diff, cursor) {
        (Some(d), Some(w)) if deterministic => {
            let after = d as i64 - w as i64;
            println!("frame {event_frame} starts writing at sample {w}; the first sample that differs is {d}");
            verdict(
                "an event reaches the sound within a frame",
                &format!("first changed sample {after} samples ({:.2} ms at 48 kHz) after the write cursor of the event's frame", after as f64 / 48.0),
                &format!(
                    "the event was applied at the start of frame {event_frame} and that frame's own sound already carried it (its first {after} samples came out the same in i16); on a device it is heard one device queue later (L2.6, L4.5 measure that queue)"
                ),
            );
        }
        _ => {
            eprintln!("cannot locate the event's first sample (deterministic {deterministic}, diff {first_diff:?}, cursor {cursor:?}); nothing measured");
            std::process::exit(1);
        }
    }
}
