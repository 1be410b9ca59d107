//! Demo report: the game's update+render time per frame at 960x540 (p50/p99, the library
//! loaded and called directly, with input moving the player so every overlay is drawn), and the
//! demo's CPU use at 60 fps (the platform paced headless with no sound device for a few
//! seconds, measured with getrusage). Aim: under 10% of one core.
//! Run with: cargo run --release --example demo_report

use std::time::{Duration, Instant};

use clap::Parser;
use handmade::keys::{self, Key};
use handmade::{GameCode, MemoryLayout, PlatformMemoryBlock};
use handmade_api::{
    AudioSyncMarker, AudioSyncRing, GameAssets, GameInput, GameMemory, GameOffscreenBuffer, GameSample,
    GameSoundOutputBuffer, MAX_SOUND_FRAMES,
};

const FRAMES: usize = 2000;
const CPU_SECONDS: u64 = 5;

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let library = handmade::resolve_game_library(None, None);
    let (p50, p99) = update_render_times(&library);
    println!("game update+render at 960x540 over {FRAMES} frames: p50 {p50:.3} ms, p99 {p99:.3} ms");
    let cpu = cpu_percent_at_60fps();
    println!("demo CPU at 60 fps (--headless --realtime --audio none, {CPU_SECONDS} s): {cpu:.2}% of one core");
}

/// Calls the game's `game_update_and_render` (and its sound call, so the scope has data) the
/// way the frame loop does, timing only update+render.
fn update_render_times(library: &std::path::Path) -> (f64, f64) {
    let game = GameCode::load(library).expect("load the game library");
    let functions = game.functions();
    let mut block = PlatformMemoryBlock::reserve(MemoryLayout::from_mib(64, 16, 16).unwrap()).unwrap();
    let regions = block.carve();
    let mut sync = AudioSyncRing::EMPTY;
    sync.samples_per_second = 48_000;
    sync.device_buffer_frames = 4096;
    let mut memory = GameMemory {
        permanent_storage: regions.permanent.as_mut_ptr(),
        permanent_storage_size: regions.permanent.len() as u64,
        transient_storage: regions.transient.as_mut_ptr(),
        transient_storage_size: regions.transient.len() as u64,
        assets: GameAssets {
            loop_sample: GameSample {
                left: std::ptr::null(),
                right: std::ptr::null(),
                frame_count: 0,
                samples_per_second: 0,
            },
        },
        audio_sync: &sync,
        reloaded: 1,
        game_arena_high_water: 0,
        panic_message: [0; 256],
        panic_message_len: 0,
    };
    let mut bitmap = vec![0u32; 960 * 540];
    let (mut left, mut right) = (vec![0.0f32; MAX_SOUND_FRAMES], vec![0.0f32; MAX_SOUND_FRAMES]);
    let mut input = GameInput::default();
    let mut times = Vec::with_capacity(FRAMES);
    for frame in 0..FRAMES {
        keys::begin_frame(&mut input, frame as u64, 1.0 / 60.0);
        // Wander: right for a second, left for a second, and so on.
        keys::apply_key(&mut input, Key::Right, (frame / 60) % 2 == 0);
        keys::apply_key(&mut input, Key::Left, (frame / 60) % 2 == 1);
        let mut buffer = GameOffscreenBuffer::lend(&mut bitmap, 960, 540);
        let start = Instant::now();
        // SAFETY: memory, input and bitmap are live, initialised contract values, exclusively
        // lent for the call, as the frame loop lends them.
        unsafe { (functions.update_and_render)(&mut memory, &input, &mut buffer) };
        times.push(start.elapsed());
        memory.reloaded = 0;
        let mut sound = GameSoundOutputBuffer::lend(48_000, frame as u64 * 800, &mut left[..800], &mut right[..800]);
        // SAFETY: as above; the sound buffer lends two distinct slices for the call.
        unsafe { (functions.output_sound)(&mut memory, &mut sound) };
        sync.push(AudioSyncMarker {
            write_cursor: frame as u64 * 800,
            frames_written: 800,
            queued_frames: 1600,
            expected_frame_boundary: frame as u64 * 800 + 800,
        });
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (ms(times[FRAMES / 2]), ms(times[FRAMES * 99 / 100]))
}

/// Runs the whole platform in this process, paced at 60 fps, and reads the CPU time it used.
fn cpu_percent_at_60fps() -> f64 {
    let frames = (CPU_SECONDS * 60).to_string();
    let args = handmade::Args::parse_from([
        "handmade",
        "--headless",
        "--realtime",
        "--audio",
        "none",
        "--no-rebuild",
        "--frames",
        &frames,
    ]);
    let config = handmade::Config::from_args(&args).expect("valid flags");
    let before = cpu_time();
    let wall = Instant::now();
    handmade::run(&config).expect("run the platform");
    let used = cpu_time() - before;
    100.0 * used.as_secs_f64() / wall.elapsed().as_secs_f64()
}

/// User plus system CPU time of this process so far.
fn cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: `getrusage` fills the struct it is given; RUSAGE_SELF is always valid.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}
