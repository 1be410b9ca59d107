//! Criterion benchmarks of the real-time toolkit against the usual alternatives, reported as
//! ratios in the lessons: arena vs malloc (`Box`) vs bumpalo; SoA vs AoS mixing; scalar vs
//! vectorised sample conversion; the toolkit's SPSC queue vs rtrb vs `Mutex<VecDeque>`.
//!
//! Run with: cargo bench --bench toolkit   (short: -- --measurement-time 2 --warm-up-time 1)

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::Mutex;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use handmade::interleave_i16;
use handmade_api::{rt::spsc, MemoryArena};

/// One 4800-sample i16 buffer (the course's L5.5 buffer), zeroed, three ways.
fn allocation(c: &mut Criterion) {
    let mut group = c.benchmark_group("alloc_9600_bytes");
    let mut backing = vec![0u8; 1 << 20];
    let mut arena = MemoryArena::new("bench", &mut backing);
    group.bench_function("arena_temp", |b| {
        b.iter(|| {
            let mut temp = arena.begin_temp();
            black_box(temp.push_array(4800, 0i16).unwrap());
        })
    });
    group.bench_function("malloc_box", |b| b.iter(|| black_box(vec![0i16; 4800].into_boxed_slice())));
    let mut bump = bumpalo::Bump::with_capacity(1 << 20);
    group.bench_function("bumpalo", |b| {
        b.iter(|| {
            black_box(bump.alloc_slice_fill_copy(4800, 0i16));
            bump.reset();
        })
    });
    group.finish();
}

#[derive(Clone, Copy, Default)]
struct Frame {
    l: f32,
    r: f32,
}

/// Mix 8 voices of 800 stereo frames into a bus: interleaved frames vs separate channels.
fn mixing(c: &mut Criterion) {
    const VOICES: usize = 8;
    const FRAMES: usize = 800;
    let mut group = c.benchmark_group("mix_8_voices_800_frames");
    group.throughput(Throughput::Elements((VOICES * FRAMES) as u64));
    let aos: Vec<Vec<Frame>> = (0..VOICES).map(|v| vec![Frame { l: v as f32, r: -(v as f32) }; FRAMES]).collect();
    let mut bus_aos = vec![Frame::default(); FRAMES];
    group.bench_function("aos", |b| {
        b.iter(|| {
            for voice in &aos {
                for (o, s) in bus_aos.iter_mut().zip(voice) {
                    o.l += s.l * 0.5;
                    o.r += s.r * 0.5;
                }
            }
            black_box(&mut bus_aos);
        })
    });
    let soa: Vec<(Vec<f32>, Vec<f32>)> =
        (0..VOICES).map(|v| (vec![v as f32; FRAMES], vec![-(v as f32); FRAMES])).collect();
    let (mut bus_l, mut bus_r) = (vec![0.0f32; FRAMES], vec![0.0f32; FRAMES]);
    group.bench_function("soa", |b| {
        b.iter(|| {
            for (l, r) in &soa {
                for (o, s) in bus_l.iter_mut().zip(l) {
                    *o += s * 0.5;
                }
                for (o, s) in bus_r.iter_mut().zip(r) {
                    *o += s * 0.5;
                }
            }
            black_box((&mut bus_l, &mut bus_r));
        })
    });
    group.finish();
}

/// f32 SoA -> interleaved i16 for 100 ms of sound: a loop the compiler cannot vectorise (indices
/// laundered through `black_box`), the platform's, and one that vectorises.
fn conversion(c: &mut Criterion) {
    const FRAMES: usize = 4800;
    let mut group = c.benchmark_group("convert_4800_frames_to_i16");
    group.throughput(Throughput::Elements(FRAMES as u64));
    let left: Vec<f32> = (0..FRAMES).map(|i| (i as f32 * 0.01).sin()).collect();
    let right: Vec<f32> = left.iter().map(|s| -s).collect();
    let mut out = vec![0i16; 2 * FRAMES];
    group.bench_function("scalar", |b| {
        b.iter(|| {
            for i in 0..FRAMES {
                let i = black_box(i);
                out[2 * i] = (left[i] * 32767.0).round() as i16;
                out[2 * i + 1] = (right[i] * 32767.0).round() as i16;
            }
            black_box(&mut out);
        })
    });
    // The platform's loop is branch-free, but `f32::round` is a libm call on baseline x86_64
    // (no SSE4.1), which keeps it from vectorising; rounding by +-0.5 and truncating does not.
    group.bench_function("platform_interleave_i16", |b| {
        b.iter(|| interleave_i16(black_box(&left), black_box(&right), black_box(&mut out)))
    });
    group.bench_function("vectorised_round_by_truncation", |b| {
        b.iter(|| {
            let round = |s: f32| {
                let v = s * 32767.0;
                (v + 0.5f32.copysign(v)) as i16
            };
            for ((frame, &l), &r) in out.chunks_exact_mut(2).zip(&left).zip(&right) {
                frame[0] = round(l);
                frame[1] = round(r);
            }
            black_box(&mut out);
        })
    });
    group.finish();
}

/// Moves 100k u64 items from a producer thread to the bench thread, capacity 1024. A side that
/// finds the queue full/empty yields, so the figures stay meaningful when the two threads share
/// a core (on a loaded 2-core machine pure spinning measures the scheduler instead).
fn queues(c: &mut Criterion) {
    let mut group = c.benchmark_group("spsc_100k_items_two_threads");
    group.throughput(Throughput::Elements(ITEMS));
    group.sample_size(20);
    group.bench_function("handmade_spsc", |b| {
        b.iter_batched(
            || vec![0u8; 1 << 16],
            |mut backing| {
                let mut arena = MemoryArena::new("bench", &mut backing);
                let (mut tx, mut rx) = spsc::channel::<u64>(&mut arena, 1024).unwrap();
                transfer(move |i| tx.push(i).is_ok(), || rx.pop());
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("rtrb", |b| {
        b.iter(|| {
            let (mut tx, mut rx) = rtrb::RingBuffer::<u64>::new(1024);
            transfer(move |i| tx.push(i).is_ok(), || rx.pop().ok());
        })
    });
    group.bench_function("mutex_vecdeque", |b| {
        b.iter(|| {
            let queue = Mutex::new(VecDeque::with_capacity(1024));
            let push = |i| {
                let mut q = queue.lock().unwrap();
                let room = q.len() < 1024;
                if room {
                    q.push_back(i);
                }
                room // the lock is released before the producer yields
            };
            transfer(push, || queue.lock().unwrap().pop_front());
        })
    });
    group.finish();
}

const ITEMS: u64 = 100_000;

/// Moves `ITEMS` values through one queue: `push` (false when full) on a producer thread, `pop`
/// (None when empty) on this one; a side that cannot go on yields.
fn transfer(mut push: impl FnMut(u64) -> bool + Send, mut pop: impl FnMut() -> Option<u64>) {
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut i = 0;
            while i < ITEMS {
                if push(i) {
                    i += 1;
                } else {
                    std::thread::yield_now();
                }
            }
        });
        let mut got = 0;
        while got < ITEMS {
            if let Some(v) = pop() {
                black_box(v);
                got += 1;
            } else {
                std::thread::yield_now();
            }
        }
    });
}

criterion_group!(toolkit, allocation, mixing, conversion, queues);
criterion_main!(toolkit);
