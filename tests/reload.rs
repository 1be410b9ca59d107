//! Hot reload, end to end (in the style of hot-lib-reloader's tests): a real variant of the game
//! is built, put in place while the platform runs, and the sound it wrote is checked sample by
//! sample: the change lands on a frame boundary, the phase runs on, the state is kept.

mod common;

use std::fs;
use std::io::Write;
use std::thread::sleep;
use std::time::Duration;

use common::*;

const FRAME: usize = 800;

#[test]
fn offline_runs_are_deterministic_with_and_without_forced_reloads() {
    let game = build_game_variant("");
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, extra: &[&str]| {
        let wav = dir.path().join(name);
        let mut args = vec!["--headless", "--audio", "wav", "--frames", "600", "--stats", "--game-lib"];
        args.push(game.to_str().unwrap());
        args.extend(["--wav-out", wav.to_str().unwrap()]);
        args.extend(extra);
        let out = run_platform(&args);
        expect_success(&out);
        (fs::read(&wav).unwrap(), out)
    };
    let (a, out_a) = run("a.wav", &[]);
    let (b, _) = run("b.wav", &[]);
    let (c, out_c) = run("c.wav", &["--reload-every", "7"]);
    assert_eq!(a.len(), 44 + 600 * FRAME * 4, "10.000 s of 16-bit stereo");
    assert!(a == b, "two runs must give identical bytes");
    assert!(a == c, "85 forced reloads must not change a byte");
    assert_eq!(stat_u64(&out_c.stdout, "reloads"), 85);
    assert_eq!(stat_u64(&out_c.stdout, "reload_failures"), 0);
    assert_eq!(stat_u64(&out_a.stdout, "sound_frames"), 480_000);
    for out in [&out_a, &out_c] {
        assert_eq!(stat(&out.stdout, "alloc_counting"), "true");
        assert_eq!(stat_u64(&out.stdout, "heap_allocs_after_warmup"), 0);
        assert_eq!(stat_u64(&out.stdout, "sound_heap_allocs"), 0);
    }
    // Old libraries are really unmapped: after 85 reloads /proc/self/maps holds the running copy
    // and at most the one kept for crash rollback (closed 60 frames after a swap).
    assert_eq!(stat_u64(&out_a.stdout, "game_libs_mapped"), 1);
    assert!(stat_u64(&out_c.stdout, "game_libs_mapped") <= 2);
    let logged = String::from_utf8_lossy(&out_c.stderr).matches("reloaded").count();
    assert_eq!(logged, 85, "one `reloaded` line per reload");

    let (left, right) = read_wav(&dir.path().join("a.wav"));
    assert!(max_error_steps(&left, |_| DEFAULT_AMPLITUDE) <= 1.0, "a clean 256 Hz sine");
    assert_eq!(left, right);
}

#[test]
fn a_new_build_is_heard_at_a_frame_boundary_with_the_phase_kept() {
    let quiet = build_game_variant("");
    let loud = build_game_variant("loud");
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("libgame.so");
    fs::copy(&quiet, &live).unwrap();
    let wav = dir.path().join("out.wav");
    let child = spawn_paced(&live, &wav, 240, &[]);
    sleep(Duration::from_millis(1500));
    // Write the new library slowly, in place, the way a linker or `cp` would: the platform must
    // wait for the complete file rather than fail on the half-written one.
    let bytes = fs::read(&loud).unwrap();
    let mut file = fs::OpenOptions::new().write(true).truncate(true).open(&live).unwrap();
    file.write_all(&bytes[..bytes.len() / 2]).unwrap();
    file.flush().unwrap();
    sleep(Duration::from_millis(120));
    file.write_all(&bytes[bytes.len() / 2..]).unwrap();
    drop(file);
    let out = child.wait_with_output().unwrap();
    let stderr = expect_success(&out);
    assert_eq!(stat_u64(&out.stdout, "reloads"), 1, "{stderr}");
    assert_eq!(stat_u64(&out.stdout, "reload_failures"), 0, "{stderr}");

    let (left, right) = read_wav(&wav);
    assert_eq!(left.len(), 240 * FRAME);
    let peak = |block: &[f64]| block.iter().fold(0.0f64, |m, s| m.max(s.abs()));
    let loud_from = left.chunks(FRAME).position(|b| peak(b) > 0.4).expect("the loud build was heard");
    assert!(loud_from > 30 && loud_from < 200, "switched at frame {loud_from}");
    // Before the switch 0.25, after it 0.5, and one continuous phase throughout: the new code
    // picked up the phase the old code left in permanent storage.
    let switch = loud_from * FRAME;
    let amplitude = |n: usize| if n < switch { 0.25 } else { 0.5 };
    assert!(max_error_steps(&left, amplitude) <= 1.0, "phase broken at the reload");
    assert_eq!(left, right);
}

#[test]
fn bad_libraries_at_reload_keep_the_old_code_running() {
    let good = build_game_variant("");
    let other_abi = build_game_variant("other-abi");
    let dir = tempfile::tempdir().unwrap();
    let no_symbols = library_without_game_symbols(dir.path());
    let live = dir.path().join("libgame.so");
    fs::copy(&good, &live).unwrap();
    let wav = dir.path().join("out.wav");
    let child = spawn_paced(&live, &wav, 300, &[]);
    let replace = |from: &std::path::Path| {
        let staged = dir.path().join("staged.so");
        fs::copy(from, &staged).unwrap();
        fs::rename(&staged, &live).unwrap();
    };
    let garbage = dir.path().join("garbage.so");
    fs::write(&garbage, vec![0x5a; 100_000]).unwrap();
    for bad in [&garbage, &no_symbols, &other_abi] {
        sleep(Duration::from_millis(1000));
        replace(bad);
    }
    let out = child.wait_with_output().unwrap();
    let stderr = expect_success(&out);
    assert_eq!(stat_u64(&out.stdout, "reloads"), 0, "{stderr}");
    assert_eq!(stat_u64(&out.stdout, "reload_failures"), 3, "{stderr}");
    for reason in ["no ELF magic number", "does not export `game_api_version`", "built against another contract"] {
        let lines = stderr.lines().filter(|l| l.contains(reason)).count();
        assert_eq!(lines, 1, "`{reason}` must be logged exactly once:\n{stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
    // The old code kept playing: one unbroken sine from the first sample to the last.
    let (left, _) = read_wav(&wav);
    assert_eq!(left.len(), 300 * FRAME);
    assert!(max_error_steps(&left, |_| DEFAULT_AMPLITUDE) <= 1.0);
}

#[test]
fn bad_libraries_at_start_up_are_one_line_and_a_failure_exit() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.so");
    fs::write(&text, "not a library at all, just some text that is long enough").unwrap();
    let cases = [
        (dir.path().join("missing.so"), "cannot be read".to_string()),
        (text, "no ELF magic number".to_string()),
        (library_without_game_symbols(dir.path()), "does not export `game_api_version`".to_string()),
        (build_game_variant("other-abi"), "built against another contract".to_string()),
    ];
    for (library, reason) in cases {
        let out =
            run_platform(&["--headless", "--audio", "none", "--frames", "5", "--game-lib", library.to_str().unwrap()]);
        assert!(!out.status.success());
        let errors: Vec<String> = stderr_lines(&out).into_iter().filter(|l| l.starts_with("handmade:")).collect();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains(&reason), "{} should say {reason}", errors[0]);
        let all = String::from_utf8_lossy(&out.stderr);
        assert!(!all.contains("panicked") && !all.contains("backtrace"), "{all}");
    }
}

/// A real shared library that exports none of the game's symbols.
fn library_without_game_symbols(dir: &std::path::Path) -> std::path::PathBuf {
    build_c_library(dir, "other", "int not_a_game(void) { return 42; }\n")
}

#[test]
fn the_audio_sync_markers_can_be_dumped() {
    let game = build_game_variant("");
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("sync.txt");
    let out = run_platform(&[
        "--headless",
        "--audio",
        "none",
        "--frames",
        "100",
        "--no-rebuild",
        "--game-lib",
        game.to_str().unwrap(),
        "--sync-dump",
        dump.to_str().unwrap(),
    ]);
    expect_success(&out);
    let text = fs::read_to_string(&dump).unwrap();
    let rows: Vec<Vec<u64>> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split_whitespace().map(|v| v.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), handmade_api::AUDIO_SYNC_MARKERS, "the ring keeps the newest markers");
    for pair in rows.windows(2) {
        assert_eq!(pair[1][0], pair[0][0] + pair[0][1], "each write starts where the last one ended");
        assert_eq!(pair[0][3], pair[0][0] + pair[0][1], "the expected boundary is the end of the write");
    }
    assert_eq!(rows.last().unwrap()[0] + rows.last().unwrap()[1], 100 * FRAME as u64);
}
