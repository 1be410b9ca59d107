//! Lesson L3.4, underruns: stalls of 10-100 ms against buffers of 20-100 ms on the real
//! `default` device, a matrix of which ones underrun; how each was seen (EPIPE from the device
//! against delay <= 0 read just after the stall); the recovery time; and a frame loop with the
//! audio written first or last in the frame, which gives the same gap between writes.
//!
//! Run with: cargo run --release --example l3_4_underruns

mod common;

use std::time::{Duration, Instant};

use common::*;

fn main() {
    header("L3.4", "underruns: stall against buffer, how they are seen, and recovery");
    let device = "default";
    let stalls: Vec<u64> = pick(vec![10, 25, 50, 75, 100], vec![10, 50, 100]);
    let buffers: Vec<u32> = pick(vec![20, 50, 100], vec![20, 100]);
    let run_ms = pick(1000, 500);
    print!("{:>10} {:>10}", "buffer ms", "granted ms");
    for s in &stalls {
        print!(" {:>22}", format!("stall {s} ms"));
    }
    println!();
    let (mut recovery, mut cells) = (Vec::new(), Vec::new());
    let (mut epipe_cells, mut delay_cells, mut both, mut baseline) = (0, 0, 0, 0);
    for &buffer_ms in &buffers {
        let mut line = String::new();
        let mut granted_ms = 0.0;
        for &stall in &stalls {
            let o = stall_run(device, buffer_ms, stall, run_ms, false);
            granted_ms = o.granted.ms(o.granted.buffer);
            let by_delay = matches!(o.after_stall, Ok((_, d)) if d <= 0);
            let by_epipe = o.epipe > o.epipe_before_stall;
            baseline += o.epipe_before_stall;
            epipe_cells += usize::from(by_epipe);
            delay_cells += usize::from(by_delay);
            both += usize::from(by_epipe && by_delay);
            recovery.extend_from_slice(&o.recovery_ms);
            cells.push((granted_ms, stall, by_epipe));
            let mark = match (by_epipe, by_delay) {
                (true, true) => "XRUN epipe+delay",
                (true, false) => "XRUN epipe",
                (false, true) => "XRUN delay only",
                (false, false) => "ok",
            };
            line.push_str(&format!(
                " {:>22}",
                format!("{mark} ({})", after_stall_text(&o).replace("avail ", "a").replace("delay ", "d"))
            ));
        }
        println!("{buffer_ms:>10} {granted_ms:>10.1}{line}");
    }
    let runs = cells.len();
    let xruns = cells.iter().filter(|c| c.2).count();
    println!(
        "a cell underran if EPIPE came at or after its stall; EPIPEs before any stall (no stall to blame): {baseline}"
    );
    // The boundary: does any stall shorter than its buffer underrun, or a longer one not?
    let surprises: Vec<String> = cells
        .iter()
        .filter(|&&(b, s, x)| x != (s as f64 > b))
        .map(|&(b, s, x)| format!("{s} ms stall vs {b:.0} ms buffer: {}", if x { "underran" } else { "did not" }))
        .collect();
    verdict(
        "underruns fall as the buffer grows from 10 to 100 ms",
        &format!("{xruns} of {runs} stall/buffer pairs underran after the stall; seen as EPIPE in {epipe_cells}, as delay <= 0 right after the stall in {delay_cells}, both in {both}; {baseline} underrun(s) before any stall"),
        &if surprises.is_empty() {
            "in every pair a stall longer than the granted buffer underran and one no longer did not: in this run the buffer length alone predicted which stalls underrun".to_string()
        } else {
            format!(
                "stall > buffer predicted all but these pairs: {}; the push loop refills every 5 ms, so up to 5 ms of the buffer may be empty when a stall begins, and this run counted {baseline} underrun(s) with no stall at all",
                surprises.join("; ")
            )
        },
    );
    if !recovery.is_empty() {
        let r = report("recovery (EPIPE to running again)", &recovery, "ms");
        println!("recovery = snd_pcm_recover (prepare) plus refilling to start_threshold; p50 {:.2} ms", r.p50);
    }
    verdict(
        "an underrun is seen by checking delay <= 0",
        &format!(
            "{epipe_cells} underrun pair(s) gave EPIPE; delay read just after the stall was <= 0 in {delay_cells}"
        ),
        &if delay_cells < epipe_cells {
            "here the status read after the stall returned EPIPE itself (or a positive delay) rather than a delay <= 0: the error code is the signal that was always there; delay <= 0 was not".to_string()
        } else {
            "here delay <= 0 was seen each time EPIPE was: both signals agreed in this run".to_string()
        },
    );
    audio_first_or_last(device);
}

/// A 60 fps frame loop with 5 ms of update work, writing one frame of audio first or last.
fn audio_first_or_last(device: &str) {
    let frames = pick(240, 60);
    let mut gaps = Vec::new();
    for first in [true, false] {
        let (pcm, g) = open_or_exit(device, 48_000, 50_000, Some(1));
        let io = pcm.io_i16().expect("S16 I/O");
        let mut tone = Tone::new(g.rate);
        let mut chunk = vec![0i16; 2 * 800];
        let (mut last, mut gap) = (None::<Instant>, Vec::new());
        let frame = Duration::from_micros(16_667);
        let mut next = Instant::now() + frame;
        for _ in 0..frames {
            let mut write = || {
                let now = Instant::now();
                if let Some(prev) = last.replace(now) {
                    gap.push((now - prev).as_secs_f64() * 1e3);
                }
                if let Err(e) = io.writei(tone.fill(&mut chunk)) {
                    recover(&pcm, e);
                }
            };
            if first {
                write();
            }
            let work = Instant::now();
            while work.elapsed() < Duration::from_millis(5) {
                std::hint::spin_loop(); // the game's update and render
            }
            if !first {
                write();
            }
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
            next += frame;
        }
        let _ = pcm.drop();
        gaps.push(gap);
    }
    let a = report("gap between writes, audio first", &gaps[0], "ms");
    let b = report("gap between writes, audio last", &gaps[1], "ms");
    verdict(
        "writing audio at the end of the frame leaves a longer gap between writes than at the start",
        &format!("audio first: p50 {:.2} ms, p99 {:.2}, max {:.2}; audio last: p50 {:.2} ms, p99 {:.2}, max {:.2}", a.p50, a.p99, a.max, b.p50, b.p99, b.max),
        &format!(
            "both loops write once per 16.67 ms frame, so the start-to-start gap is the frame time either way (p50s {:.2} vs {:.2} ms); the position shifts every write by the same 5 ms of work",
            a.p50, b.p50
        ),
    );
    percentile_plot("l3_4_underruns", &[("audio first", &gaps[0]), ("audio last", &gaps[1])], "ms between writes");
}
