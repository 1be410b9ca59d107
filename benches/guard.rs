//! Cost of guarding a game call (platform/guard): a trivial function called through
//! `CallGuard::call` against the same function called bare. The difference is what every frame
//! pays per game call: two atomic stores, a clock read (vDSO), sigsetjmp without the mask.
//! Run with: cargo bench --bench guard

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use handmade::{CallGuard, GameCall};

#[inline(never)]
fn trivial(x: u64) -> u64 {
    x.wrapping_mul(3).wrapping_add(1)
}

fn guarded_call(c: &mut Criterion) {
    let mut guard = CallGuard::install(Duration::from_millis(250)).expect("install the guard");
    let mut group = c.benchmark_group("game call");
    group.bench_function("bare", |b| b.iter(|| trivial(black_box(7))));
    group.bench_function("guarded", |b| b.iter(|| guard.call(GameCall::UpdateAndRender, || trivial(black_box(7)))));
    group.finish();
}

criterion_group!(benches, guarded_call);
criterion_main!(benches);
