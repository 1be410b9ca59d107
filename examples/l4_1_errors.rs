//! Lessons L4.1 and L4.3, ALSA error codes and init failures: each scenario triggered for real
//! on the `default` device (and on names that do not exist), the errno it gave, and the
//! recovery that worked, as a table. EBUSY comes only from a `hw:` device opened twice:
//! `default` is shared, and this lesson opens it twice to show it.
//!
//! Run with: cargo run --release --example l4_1_errors

mod common;

use std::time::Duration;

use alsa::pcm::{Access, Format, HwParams};
use alsa::{Direction, ValueOr, PCM};
use common::*;

/// One row: the scenario, what it returned, and what the recovery did.
struct Row {
    scenario: &'static str,
    got: String,
    recovery: String,
}

fn errno_of<T>(r: &alsa::Result<T>) -> String {
    r.as_ref().err().map_or("ok".to_string(), |e| errno_name(e.errno()))
}

fn main() {
    header("L4.1", "ALSA errors: scenario, errno, recovery");
    let device = "default";
    let mut rows = Vec::new();

    let r = PCM::new("handmade_no_such_pcm", Direction::Playback, false);
    rows.push(Row {
        scenario: "open a PCM name no configuration defines",
        got: errno_of(&r),
        recovery: format!("open `{device}` instead: {}", errno_of(&PCM::new(device, Direction::Playback, false))),
    });

    let hw_first = PCM::new("hw:0,0", Direction::Playback, true);
    let hw_row = match &hw_first {
        Ok(_) => Row {
            scenario: "open hw:0,0 while this process holds it",
            got: errno_of(&PCM::new("hw:0,0", Direction::Playback, true)),
            recovery: "close the first handle, or open `default` (shared)".into(),
        },
        Err(e) => Row {
            scenario: "open hw:0,0 (EBUSY needs a card to hold)",
            got: errno_name(e.errno()),
            recovery: "hw:0,0 did not open, so EBUSY cannot be shown here; `default` below".into(),
        },
    };
    rows.push(hw_row);
    drop(hw_first);

    let (first, g) = open_or_exit(device, 48_000, 50_000, None);
    let second = open_playback(device, 48_000, 50_000, None);
    rows.push(Row {
        scenario: "open `default` while this process holds it",
        got: errno_of(&second),
        recovery: "none needed: `default` is shared".into(),
    });
    drop(second);

    let exact = HwParams::any(&PCM::new(device, Direction::Playback, false).expect("reopen")).and_then(|hw| {
        hw.set_access(Access::RWInterleaved)?;
        hw.set_format(Format::s16())?;
        hw.set_rate(999_999, ValueOr::Nearest)
    });
    let near = PCM::new(device, Direction::Playback, false)
        .and_then(|p| HwParams::any(&p).and_then(|hw| hw.set_rate_near(999_999, ValueOr::Nearest)));
    rows.push(Row {
        scenario: "set_rate(999999) exactly",
        got: errno_of(&exact),
        recovery: format!(
            "set_rate_near: {}",
            near.map_or_else(|e| errno_name(e.errno()), |r| format!("granted {r} Hz"))
        ),
    });

    let raw = PCM::new(device, Direction::Playback, false).expect("reopen");
    let unconfigured = raw.io_bytes().writei(&[0u8; 64]);
    rows.push(Row {
        scenario: "write before hw_params (state OPEN)",
        got: format!("{} (state {:?})", errno_of(&unconfigured), raw.state()),
        recovery: "configure (hw_params) first; nothing to recover at run time".into(),
    });

    let io = first.io_i16().expect("S16 I/O");
    let mut tone = Tone::new(g.rate);
    let mut chunk = vec![0i16; 2 * g.buffer as usize];
    io.writei(tone.fill(&mut chunk)).expect("fill");
    first.drop().expect("drop");
    let after_drop = io.writei(tone.fill(&mut chunk[..2 * g.period as usize]));
    let state = first.state();
    let fixed = first.prepare().and_then(|_| io.writei(tone.fill(&mut chunk[..2 * g.period as usize])));
    rows.push(Row {
        scenario: "write after snd_pcm_drop (state SETUP)",
        got: format!("{} (state {state:?})", errno_of(&after_drop)),
        recovery: format!(
            "prepare, then write: {}",
            fixed.map_or_else(|e| errno_name(e.errno()), |n| format!("{n} frames"))
        ),
    });

    io.writei(tone.fill(&mut chunk)).expect("fill");
    std::thread::sleep(
        Duration::from_secs_f64(g.ms(first.delay().unwrap_or(g.buffer)) / 1e3) + Duration::from_millis(100),
    );
    let underrun = io.writei(tone.fill(&mut chunk[..2 * g.period as usize]));
    let recovered = match &underrun {
        Err(e) => first.try_recover(alsa::Error::new("snd_pcm_writei", -e.errno()), true),
        Ok(_) => Ok(()),
    };
    let again = io.writei(tone.fill(&mut chunk[..2 * g.period as usize]));
    rows.push(Row {
        scenario: "write after the buffer ran dry (100 ms unfed)",
        got: errno_of(&underrun),
        recovery: format!(
            "snd_pcm_recover: {}, then write: {}",
            errno_of(&recovered),
            again.map_or_else(|e| errno_name(e.errno()), |n| format!("{n} frames"))
        ),
    });
    drop(io);
    drop(first);

    let (nb, g) = {
        let pcm = PCM::new(device, Direction::Playback, true).unwrap_or_else(|e| no_device(device, &e));
        {
            let hw = HwParams::any(&pcm).expect("hw");
            hw.set_access(Access::RWInterleaved).expect("access");
            hw.set_format(Format::s16()).expect("format");
            hw.set_channels(2).expect("channels");
            hw.set_rate_near(48_000, ValueOr::Nearest).expect("rate");
            hw.set_buffer_time_near(50_000, ValueOr::Nearest).expect("buffer");
            pcm.hw_params(&hw).expect("hw_params");
        }
        let buffer = pcm.hw_params_current().and_then(|h| h.get_buffer_size()).expect("buffer size");
        (pcm, buffer)
    };
    let io = nb.io_i16().expect("S16 I/O");
    let mut big = vec![0i16; 2 * g as usize];
    let mut results = Vec::new();
    for _ in 0..3 {
        results.push(io.writei(&big));
    }
    let eagain = results.iter().find_map(|r| r.as_ref().err().map(|e| e.errno()));
    let waited = nb.wait(Some(1000));
    let after_wait = io.writei(&big[..2 * 64]);
    rows.push(Row {
        scenario: "non-blocking write into a full buffer",
        got: eagain.map_or("no error (never full)".into(), errno_name),
        recovery: format!(
            "snd_pcm_wait: {}, then write: {}",
            waited.map_or_else(|e| errno_name(e.errno()), |r| format!("ready={r}")),
            after_wait.map_or_else(|e| errno_name(e.errno()), |n| format!("{n} frames"))
        ),
    });
    big.clear();
    drop(io);
    let _ = nb.drop();

    println!("{:<48} {:<28} recovery", "scenario", "errno");
    for r in &rows {
        println!("{:<48} {:<28} {}", r.scenario, r.got, r.recovery);
    }
    let find = |s: &str| rows.iter().find(|r| r.scenario.starts_with(s)).map_or("?".into(), |r| r.got.clone());
    verdict(
        "EBUSY when the device is in use; EINVAL for 999999 Hz; EPIPE for an underrun",
        &format!(
            "second open of `default`: {}; hw:0,0: {}; 999999 Hz exactly: {}; unfed write: {}; write in state OPEN: {}; after drop: {}",
            find("open `default`"),
            find("open hw"),
            find("set_rate"),
            find("write after the buffer"),
            find("write before"),
            find("write after snd_pcm_drop")
        ),
        &format!(
            "`default` opened twice {} here (EBUSY is a `hw:` device's answer to a second open, and hw:0,0 gave {}); the EPIPE came from the write after the queue ran dry, an underrun, and snd_pcm_recover fixed it; the wrong-state writes gave {} and {}, and configuring or prepare fixes them",
            if find("open `default`") == "ok" { "without EBUSY: it is shared" } else { "with an error" },
            find("open hw"),
            find("write before"),
            find("write after snd_pcm_drop")
        ),
    );
}
