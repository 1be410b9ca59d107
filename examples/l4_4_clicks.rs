//! Lesson L4.4, the click detector: a simulated device plays a tone the frame loop writes 800
//! frames at a time; one frame stalls (a page fault, a slow disk, a debugger), the device runs
//! dry and plays silence. Two detectors find it: the play cursor jumping by more than one frame's
//! worth between frames, and a sample-domain detector flagging steps no sine of that pitch makes.
//!
//! Run with: cargo run --release --example l4_4_clicks

mod common;

use std::f64::consts::TAU;

use common::*;

const RATE: usize = 48_000;
const FRAME: usize = 800; // 60 fps
const HZ: f64 = 440.0;

fn main() {
    header("L4.4", "inject a stall, detect the jump");
    let frames = pick(600, 120);
    let stall_at = frames / 2;
    let stall_ms = 50;
    let latency = 2 * FRAME; // the device queue target: two frames
    let stall_frames = RATE * stall_ms / 1000;

    // Device model: `queued` frames ahead of the play cursor; the device plays FRAME frames of
    // wall time per game frame, plus `stall_frames` during the stalled one.
    let mut played: Vec<f32> = Vec::new();
    let mut queue: std::collections::VecDeque<f32> = std::collections::VecDeque::new();
    let mut phase = 0.0f64;
    let mut play_cursor = 0usize;
    let mut cursor_log = Vec::new();
    let mut underrun_frames = 0;
    let mut silent: Vec<usize> = Vec::new(); // indices of `played` the device filled with silence
    for f in 0..frames {
        // Write: top the queue up to the latency target (what frames_wanted does).
        while queue.len() < latency {
            queue.push_back((TAU * phase).sin() as f32 * 0.5);
            phase = (phase + HZ / RATE as f64).fract();
        }
        // Wall time passes: the device consumes.
        let elapsed = FRAME + if f == stall_at { stall_frames } else { 0 };
        for _ in 0..elapsed {
            match queue.pop_front() {
                Some(s) => played.push(s),
                None => {
                    silent.push(played.len());
                    played.push(0.0);
                    underrun_frames += 1;
                }
            }
        }
        play_cursor += elapsed;
        cursor_log.push(play_cursor);
    }

    // Detector 1: the play cursor advanced by much more than one frame between two frames.
    let jumps: Vec<(usize, usize)> = cursor_log
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[1] - w[0] > FRAME * 3 / 2)
        .map(|(i, w)| (i + 1, w[1] - w[0]))
        .collect();
    // Detector 2: sample steps larger than the steepest a 0.5-amplitude sine at HZ can make.
    let max_step = (TAU * HZ / RATE as f64 * 0.5 * 1.05) as f32;
    let clicks: Vec<usize> =
        played.windows(2).enumerate().filter(|(_, w)| (w[1] - w[0]).abs() > max_step).map(|(i, _)| i + 1).collect();
    println!("stall injected at frame {stall_at}: {stall_ms} ms ({stall_frames} frames of device time)");
    for (frame, advance) in &jumps {
        println!("cursor jump: frame {frame} advanced {advance} frames (expected {FRAME})");
    }
    println!("underrun: {underrun_frames} frames of silence played; clicks detected at samples {:?}", clicks);
    verdict(
        "a stalled frame shows as a jump in the play/write position and as an audible click",
        &format!(
            "{} cursor jump(s) detected (frame {}), {} click(s) in the samples, {underrun_frames} silent frames",
            jumps.len(),
            jumps.first().map_or(0, |j| j.0),
            clicks.len()
        ),
        &format!(
            "in the stalled frame the device played {:.1} ms (one frame plus the {stall_ms} ms stall) from a queue holding {:.1} ms, so it ran dry for {:.1} ms; {}",
            (FRAME + stall_frames) as f64 * 1e3 / RATE as f64,
            latency as f64 * 1e3 / RATE as f64,
            underrun_frames as f64 * 1e3 / RATE as f64,
            click_places(&clicks, &silent)
        ),
    );
    // Both edges of the gap, with 400 samples either side.
    let first = clicks.first().or(silent.first()).copied().unwrap_or(0);
    let last = clicks.last().or(silent.last()).copied().unwrap_or(first);
    let window = first.saturating_sub(400)..(last + 400).min(played.len());
    let mut plot = Plot::new().series(window.clone().map(|i| (i as f64, played[i] as f64)));
    for &c in &clicks {
        plot = plot.marker(c as f64);
    }
    plot.save(
        "l4_4_clicks",
        &format!(
            "x: sample played, y: amplitude; red: output around the gap (samples {}..{}), dashed: the {} detected clicks",
            window.start,
            window.end,
            clicks.len()
        ),
    );
}

/// Where the detected clicks sit relative to the silent gap, as checked on the samples.
fn click_places(clicks: &[usize], silent: &[usize]) -> String {
    let (Some(&start), Some(&end)) = (silent.first(), silent.last()) else {
        return format!("no silence was played, and {} click(s) were detected", clicks.len());
    };
    let into = clicks.contains(&start);
    let out = clicks.contains(&(end + 1));
    let others = clicks.iter().filter(|&&c| c != start && c != end + 1).count();
    format!(
        "checked on the samples: {} at the first silent sample ({start}), {} at the first sample after the gap ({}), {others} elsewhere",
        if into { "a click" } else { "no click" },
        if out { "a click" } else { "no click" },
        end + 1
    )
}
