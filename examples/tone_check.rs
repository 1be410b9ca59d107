//! Checks that a 16-bit WAV holds one continuous sine (the demo's default tone), streaming, so
//! an hour-long soak recording fits: no discontinuity anywhere in the cycle, no gap, the right
//! pitch. Leading/trailing silence and 0.3 s after/before it are skipped (a device's start and
//! drain). Used by .ci/soak.sh; exits 1 when the sound is broken.
//!
//! Run with: cargo run --release --example tone_check -- FILE.wav [TONE_HZ]

use handmade_support::{ToneChecker, Wav};

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: tone_check FILE.wav [TONE_HZ]");
        std::process::exit(2);
    };
    let tone_hz: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(256.0);
    let wav = match Wav::open(path.as_ref()) {
        Ok(wav) => wav,
        Err(e) => {
            eprintln!("tone_check: {e}");
            std::process::exit(2);
        }
    };
    let rate = f64::from(wav.rate);
    let trim = (0.3 * rate) as usize;
    // The left channel, first pass: where the sound starts and ends.
    let left = wav.channel(0);
    let loud = |s: &i16| s.unsigned_abs() > 300;
    let (Some(first), Some(last)) = (left.iter().position(loud), left.iter().rposition(loud)) else {
        println!("tone_check: {path}: silent");
        std::process::exit(1);
    };
    let (from, to) = (first + trim, last.saturating_sub(trim));
    let mut checker = ToneChecker::new(tone_hz, rate, 4.0);
    for &s in &left[from.min(to)..to] {
        checker.push(f64::from(s) / 32768.0);
    }
    let r = checker.finish();
    let seconds = r.samples as f64 / rate;
    println!(
        "tone_check: {path}: {seconds:.1} s checked, {:.2} Hz, peak {:.4}, max residual {:.1} LSB, \
         discontinuities {}, longest silence {} samples",
        r.frequency_hz, r.peak, r.max_residual_lsb, r.discontinuities, r.longest_silence
    );
    if let Some(at) = r.first_discontinuity {
        println!("tone_check: first discontinuity at {:.4} s", (from as u64 + at) as f64 / rate);
    }
    let ok = r.discontinuities == 0 && r.longest_silence <= 2 && (r.frequency_hz - tone_hz).abs() < 0.5;
    std::process::exit(if ok { 0 } else { 1 });
}
