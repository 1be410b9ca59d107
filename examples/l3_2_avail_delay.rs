//! Lesson L3.2, avail and delay: on the real `default` device, avail + delay against the
//! buffer size as p50/p99/max over a paced run, and the not-started stall the course's Ex1 loop
//! falls into: `snd_pcm_set_params` sets `start_threshold` to the whole buffer, so a loop that
//! writes only while `avail > chunk` never fills it and the device never starts.
//!
//! Run with: cargo run --release --example l3_2_avail_delay

mod common;

use std::time::{Duration, Instant};

use alsa::pcm::State;
use common::*;

fn main() {
    header("L3.2", "avail + delay against the buffer, and the stall that never starts");
    let device = "default";

    // Part 1: the course's Ex1 loop with set_params' start threshold (the whole buffer).
    let (pcm, g) = open_or_exit(device, 48_000, 50_000, None);
    let io = pcm.io_i16().expect("S16 I/O");
    let chunk_frames = g.buffer / 3;
    let mut tone = Tone::new(g.rate);
    let mut chunk = vec![0i16; 2 * chunk_frames as usize];
    let (mut writes, mut polls) = (0, 0);
    let until = Instant::now() + Duration::from_millis(pick(500, 200));
    while Instant::now() < until {
        polls += 1;
        if pcm.avail().is_ok_and(|a| a > chunk_frames) {
            io.writei(tone.fill(&mut chunk)).expect("write");
            writes += 1;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let avail = pcm.avail().unwrap_or_else(|e| no_device(device, &e));
    // A plugin may have no delay to report for a stream that never started.
    let delay = pcm.delay().map_or_else(|e| errno_name(e.errno()), |d| d.to_string());
    let state = pcm.state();
    println!(
        "buffer {} frames, chunk {chunk_frames}, start_threshold {}; Ex1 loop (write while avail > chunk) for {polls} polls: {writes} writes, then avail {avail}, delay {delay}, state {state:?}",
        g.buffer, g.start_threshold
    );
    verdict(
        "L3.2 Ex1 prints avail/delay 2400/0, 1600/800, 1368/1032 as the device plays",
        &format!("after {writes} writes and {polls} polls: avail {avail}, delay {delay}, state {state:?}"),
        &if state == State::Prepared {
            format!(
                "the device never started: {} frames queued is below start_threshold {} (the whole buffer, as snd_pcm_set_params sets it), and avail {avail} is not > {chunk_frames}, so the loop never writes again; numbers like 1368/1032 need a running device",
                g.buffer - avail,
                g.start_threshold
            )
        } else {
            format!("this device started anyway (state {state:?}): the lesson prints what it got")
        },
    );
    drop(io);
    drop(pcm);

    // Part 2: a paced run, with avail + delay sampled before every write.
    let (pcm, g) = open_or_exit(device, 48_000, 50_000, Some(1));
    let io = pcm.io_i16().expect("S16 I/O");
    let mut chunk = vec![0i16; 2 * g.period as usize];
    let (mut sums, mut delays) = (Vec::new(), Vec::new());
    let (mut negative, mut trace, mut errors) = (0, Vec::new(), Vec::<String>::new());
    let start = Instant::now();
    let end = start + Duration::from_millis(pick(5_000, 1_000));
    while Instant::now() < end {
        // Wait until a period fits, as a pull loop does, then measure and write.
        if pcm.state() == State::Running {
            let _ = pcm.wait(Some(1000));
        }
        let (avail, delay) = match pcm.avail_delay() {
            Ok(v) => v,
            Err(e) => {
                errors.push(errno_name(recover(&pcm, e)));
                continue;
            }
        };
        negative += usize::from(delay < 0);
        sums.push((avail + delay - g.buffer) as f64);
        delays.push(g.ms(delay));
        trace.push((start.elapsed().as_secs_f64() * 1e3, (avail + delay - g.buffer) as f64));
        if avail >= g.period {
            if let Err(e) = io.writei(tone.fill(&mut chunk)) {
                errors.push(errno_name(recover(&pcm, e)));
            }
        }
    }
    println!(
        "buffer {} frames ({:.1} ms), period {}; {} samples; errors recovered from: {}",
        g.buffer,
        g.ms(g.buffer),
        g.period,
        sums.len(),
        if errors.is_empty() { "none".to_string() } else { errors.join(", ") }
    );
    if sums.is_empty() {
        eprintln!("no device: `{device}` never ran in the paced part; nothing measured");
        std::process::exit(1);
    }
    let d = report("avail + delay - buffer", &sums, "frames");
    let q = report("delay", &delays, "ms");
    verdict(
        "avail + delay = buffer size, within 1-2 frames",
        &format!(
            "avail + delay - buffer: p50 {:.0}, p99 {:.0}, max {:.0} frames (p50 {:.1} ms); delay p50 {:.1} ms, max {:.1} ms; negative delays: {negative}",
            d.p50,
            d.p99,
            d.max,
            d.p50 * 1e3 / f64::from(g.rate),
            q.p50,
            q.max
        ),
        &if d.p50.abs() <= 2.0 {
            "on this device the two add up to the buffer: delay counts only this ring".to_string()
        } else {
            format!(
                "on this device delay ran {:.0} frames past what this ring holds at p50: delay is the time until a sample written now is heard, and it counts queues after this ring that avail does not see",
                d.p50
            )
        },
    );
    Plot::new().series(trace).save(
        "l3_2_avail_delay",
        "x: ms since start, y: frames; red: avail + delay - buffer before each write (0 = the course's identity)",
    );
}
