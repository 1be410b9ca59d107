//! Reload cost: the whole protocol (stat, ELF completeness check, copy into the private
//! directory, dlopen, version/layout check, symbol resolution, swap, dlclose of the library
//! two swaps back) on the dev-profile game library, as the dev loop does it.
//! Run with: cargo bench --bench reload

use std::path::PathBuf;
use std::process::Command;

use criterion::{criterion_group, criterion_main, Criterion};
use handmade::game_code::GameCode;

/// `<target>/debug/libgame.so`, built with `cargo build -p game` (the dev profile) if missing.
fn dev_game_library() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let library = target.join("debug/libgame.so");
    if !library.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["build", "-p", "game"])
            .status()
            .expect("run cargo");
        assert!(status.success(), "building the game failed");
    }
    library
}

fn reload(c: &mut Criterion) {
    let library = dev_game_library();
    let size = std::fs::metadata(&library).map(|m| m.len()).unwrap_or(0);
    let mut game = GameCode::load(&library).expect("load the game library");
    let mut group = c.benchmark_group("reload");
    group.sample_size(200);
    group.bench_function(format!("dev game library ({} KiB)", size / 1024), |b| {
        b.iter(|| game.force_reload(&mut || {}))
    });
    group.finish();
}

criterion_group!(benches, reload);
criterion_main!(benches);
