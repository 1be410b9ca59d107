//! Reload cost: the whole protocol (stat, ELF completeness check, copy into the private
//! directory, dlopen, version/layout check, symbol resolution, swap, dlclose of the library
//! two swaps back) on the dev-profile game library, as the dev loop does it.
//! Run with: cargo bench --bench reload

use criterion::{criterion_group, criterion_main, Criterion};
use handmade::GameCode;

fn reload(c: &mut Criterion) {
    // The dev-profile game, as the tests load it (built if missing or stale).
    let library = handmade_support::build_game_variant("");
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
