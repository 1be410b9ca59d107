//! The frame loop, Handmade Hero style and single-threaded: poll input, reload the game if it
//! changed, update and render into the offscreen bitmap, fill the stack sample buffer through
//! the game's `game_output_sound`, write it to the audio backend, present, and hold the frame
//! rate. Everything it touches per frame was carved from the memory block before the first one.

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use handmade_api::{
    ArenaError, AudioSyncMarker, AudioSyncRing, GameAssets, GameInput, GameMemory, GameOffscreenBuffer, GameSample,
    GameSoundOutputBuffer, GameStatus, MemoryArena, MAX_SOUND_FRAMES,
};

use crate::alloc_count::{self, AllocCounts};
use crate::audio::{self, AudioDesc, AudioError};
use crate::cli::Args;
use crate::game_code::{self, GameCode, GameCodeError, GameFunctions, ReloadOutcome};
use crate::input::{self, Key};
use crate::input_script::{InputScript, ScriptError};
use crate::live_loop::{LiveLoop, LoopStep};
use crate::memory::{MemoryError, MemoryLayout, PlatformMemoryBlock};
use crate::rebuild::{self, BuildEvent, BuildWatcher};
use crate::snapshot::Snapshot;
use crate::stats::{self, Counters, Timings};
use crate::video::Video;
use crate::audio::fade;
use crate::{assets, game_build, screenshot, signals};

/// Frames before allocation counting starts: first-touch work (lazy symbol binding, the
/// device's first writes, SDL's first events) happens here.
pub const WARMUP_FRAMES: u64 = 60;

#[derive(Debug)]
pub enum PlatformError {
    Memory(MemoryError),
    Arena(ArenaError),
    Game(GameCodeError),
    Audio(AudioError),
    Script(ScriptError),
    Other(String),
}

impl fmt::Display for PlatformError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlatformError::Memory(e) => e.fmt(f),
            PlatformError::Arena(e) => e.fmt(f),
            PlatformError::Game(e) => e.fmt(f),
            PlatformError::Audio(e) => e.fmt(f),
            PlatformError::Script(e) => e.fmt(f),
            PlatformError::Other(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for PlatformError {}

macro_rules! from_error {
    ($($variant:ident($ty:ty)),*) => {$(
        impl From<$ty> for PlatformError {
            fn from(e: $ty) -> Self { PlatformError::$variant(e) }
        }
    )*};
}
from_error!(Memory(MemoryError), Arena(ArenaError), Game(GameCodeError), Audio(AudioError), Script(ScriptError));

/// What a run leaves behind for `main` to print.
pub struct RunReport {
    pub stats_line: String,
    pub counters: Counters,
}

/// Runs the platform until the frame limit, Escape, or the window closes.
pub fn run(requested: &Args) -> Result<RunReport, PlatformError> {
    alloc_count::register_frame_thread();
    let mut args = requested.clone();
    let frame_samples = args.sample_rate.div_ceil(args.fps) as usize;
    if frame_samples > MAX_SOUND_FRAMES {
        return Err(PlatformError::Other(format!(
            "--fps {} is too low for --sample-rate {}: a frame would need {frame_samples} samples and the \
             sound buffer holds {MAX_SOUND_FRAMES}",
            args.fps, args.sample_rate
        )));
    }
    // The platform's share also holds the rollback snapshot, as large as permanent storage
    // (only the pages a snapshot writes are ever backed).
    let platform_mib = args.platform_mib.saturating_add(args.permanent_mib);
    let layout = MemoryLayout::from_mib(args.permanent_mib, args.transient_mib, platform_mib)?;
    let mut block = PlatformMemoryBlock::reserve(layout)?;
    let regions = block.carve();
    let mut arena = regions.platform;

    let (width, height) = args.size;
    let bitmap = arena.push_array(width as usize * height as usize, 0u32)?;
    let audio_sync = arena.push_struct(AudioSyncRing::EMPTY)?;
    let mut frame_times = Timings::new(&mut arena, Duration::from_secs(1))?;
    let mut reload_times = Timings::new(&mut arena, Duration::from_millis(200))?;
    let loop_sample = load_loop_sample(&args, &mut arena);
    let game_memory = arena.push_struct(GameMemory {
        permanent_storage: regions.permanent.as_mut_ptr(),
        permanent_storage_size: regions.permanent.len() as u64,
        transient_storage: regions.transient.as_mut_ptr(),
        transient_storage_size: regions.transient.len() as u64,
        assets: GameAssets { loop_sample },
        audio_sync: std::ptr::null(),
        reloaded: 1,
        game_arena_high_water: 0,
        panic_message: [0; 256],
        panic_message_len: 0,
    })?;

    let mut script = match &args.input_script {
        Some(path) => Some(InputScript::load(path)?),
        None => None,
    };
    let sources = if args.no_rebuild { None } else { rebuild::game_source_dir(args.game_src.as_deref()) };
    let library = game_build::resolve_game_library(args.game_lib.as_deref(), sources.as_ref().map(|s| s.0.as_path()));
    let mut game = GameCode::load(&library)?;
    log::info!("loaded game library {}", library.display());
    let mut watcher = sources.and_then(|(workspace, game_dir)| start_watcher(&workspace, &game_dir));
    let mut pending_build: Option<BuildEvent> = None;
    let mut rollback_snapshot = Snapshot::new(&mut arena, regions.permanent.len())?;
    let mut live_loop = open_live_loop(&args, game_memory.permanent_storage as u64, regions.permanent.len())?;
    signals::install();
    let mut window = if args.headless { None } else { open_window(&mut args) };
    let args = &args;

    let desc = AudioDesc {
        sample_rate: args.sample_rate,
        fps: args.fps,
        latency_ms: args.latency_ms(),
        alsa_device: args.alsa_device.clone(),
        wav_out: args.wav_out.clone(),
    };
    let mut audio = audio::open(args.audio, &desc)?;
    audio_sync.samples_per_second = audio.sample_rate();
    audio_sync.device_buffer_frames = audio.status().buffer_frames;
    let paced = audio.is_paced() || args.realtime || !args.headless;
    let frame_budget = Duration::from_secs_f64(1.0 / f64::from(args.fps));

    // The stack sample buffer: a local of the loop, sized for the worst case; the game only
    // borrows it for the length of one `game_output_sound` call.
    let mut left = [0.0f32; MAX_SOUND_FRAMES];
    let mut right = [0.0f32; MAX_SOUND_FRAMES];

    let mut counters = Counters { alloc_counting: alloc_count::is_active(), ..Default::default() };
    let mut input = GameInput::default();
    let mut running_sample_index: u64 = 0;
    let mut game_paused = false;
    let mut audio_failed = false;
    let mut fade_in_next = false;
    let mut last_sample = (0.0f32, 0.0f32);
    let mut next_frame_start = Instant::now();

    for frame_index in 0.. {
        if (args.frames != 0 && frame_index >= args.frames) || signals::stop_requested() {
            break;
        }
        let frame_start = Instant::now();
        let allocs_at_start = AllocCounts::now();

        // Input.
        input::begin_frame(&mut input, frame_index, frame_budget.as_secs_f32());
        let mut quit = false;
        if let Some(script) = script.as_mut() {
            for event in script.events_for(frame_index) {
                quit |= event.key == Key::Escape && event.down;
                input::apply_key(&mut input, event.key, event.down);
            }
        }
        if let Some(window) = window.as_mut() {
            quit |= window.pump_events(&mut input);
        }
        if quit {
            break;
        }
        let mut event_frame = false;
        if input.letter('l').was_pressed() {
            event_frame = true;
            match live_loop.toggle(game_memory) {
                Ok(mode) => log::info!("live loop: {mode:?}"),
                Err(e) => log::error!("{e}"),
            }
        }
        let loop_step = live_loop.begin_frame(&mut input, game_memory);
        fade_in_next |= loop_step == LoopStep::Restarted;

        // Dev loop: a finished build is loaded at once (cargo is done writing it).
        if let Some(watcher) = watcher.as_mut() {
            if watcher.build_started() {
                event_frame = true;
                if let Some(window) = window.as_mut() {
                    window.set_title("handmade - building the game...");
                }
            }
            if let Some(build) = watcher.poll() {
                event_frame = true;
                if let Some(window) = window.as_mut() {
                    window.set_title(&build_title(&build));
                }
                if build.ok {
                    game.mark_settled();
                    pending_build = Some(build);
                }
            }
        }

        // Reload the game if its library changed (or a reload is forced).
        let forced = args.reload_every != 0 && frame_index != 0 && frame_index % args.reload_every == 0;
        let mut take_snapshot = || rollback_snapshot.take(game_memory);
        let outcome =
            if forced { game.force_reload(&mut take_snapshot) } else { game.reload_if_changed(&mut take_snapshot) };
        let reloaded = match outcome {
            ReloadOutcome::Unchanged => false,
            // Spawning the probe process, and saying that the library is gone, allocate.
            ReloadOutcome::Checking | ReloadOutcome::Missing => {
                event_frame = true;
                false
            }
            ReloadOutcome::Reloaded { load_time } => {
                log_reload(game.source(), load_time, pending_build.take());
                reload_times.record(load_time);
                counters.reloads += 1;
                game_memory.reloaded = 1;
                game_paused = false;
                true
            }
            ReloadOutcome::Failed => {
                counters.reload_failures += 1;
                event_frame = true; // the attempt and its log line allocate
                false
            }
        };
        let functions = if game_paused { GameFunctions::STUBS } else { game.functions() };
        game_memory.audio_sync = &*audio_sync;

        // Update and render.
        let mut offscreen = GameOffscreenBuffer::lend(bitmap, width, height);
        // SAFETY: the game gets exclusive access to its memory, the input and the bitmap for
        // the call; all three are live, initialised `repr(C)` values of the contract's types.
        let status = unsafe { (functions.update_and_render)(&mut *game_memory, &input, &mut offscreen) };
        let mut failed = status != GameStatus::Ok;
        if failed {
            game_paused = recover_from_failure(
                "game_update_and_render",
                status,
                &mut game,
                &rollback_snapshot,
                game_memory,
                &mut counters,
            );
        }
        game_memory.reloaded = 0;

        // Sound: ask the backend how much it needs, let the game fill the stack buffer, write.
        let sound_allocs_before = AllocCounts::now();
        let wanted = audio.frames_wanted().min(MAX_SOUND_FRAMES);
        let queued_before = audio.status().queued_frames; // as `frames_wanted` just measured it
                                                          // The whole stack buffer is lent and `sample_count` says how much of it to fill, so a
                                                          // game that writes past the count (it cannot go past MAX_SOUND_FRAMES) stays inside it.
        let mut sound = GameSoundOutputBuffer::lend(audio.sample_rate(), running_sample_index, &mut left, &mut right);
        sound.sample_count = wanted as u32;
        let functions = if game_paused { GameFunctions::STUBS } else { game.functions() };
        // SAFETY: as above; `sound` lends the two stack channels for this call only.
        let status = unsafe { (functions.output_sound)(&mut *game_memory, &mut sound) };
        let count_from_game = sound.sample_count;
        let (l, r) = (&mut left[..wanted], &mut right[..wanted]);
        if status != GameStatus::Ok {
            failed = true;
            game_paused = recover_from_failure(
                "game_output_sound",
                status,
                &mut game,
                &rollback_snapshot,
                game_memory,
                &mut counters,
            );
        }
        if count_from_game as usize != wanted {
            // The count is the platform's: what the game wrote beyond it is not played.
            if counters.bad_sample_counts == 0 {
                log::warn!(
                    "game_output_sound changed the frame count to {count_from_game} (asked for {wanted}); ignored"
                );
            }
            counters.bad_sample_counts += 1;
        }
        counters.nonfinite_samples +=
            warn_nonfinite(audio::sanitize(l) + audio::sanitize(r), counters.nonfinite_samples);
        // A crash, a rollback or a loop restart is a jump in the waveform: dip instead of click.
        let rate = audio.sample_rate();
        if failed {
            fade::ramp_to_silence(l, r, last_sample, rate);
            fade_in_next = true;
        } else if fade_in_next && !game_paused {
            fade::fade_in(l, r, rate);
            fade_in_next = false;
        }
        if live_loop.restarts_next_frame() {
            fade::fade_out(l, r, rate);
        }
        if wanted > 0 {
            last_sample = (l[wanted - 1], r[wanted - 1]);
        }
        match audio.write(l, r) {
            Ok(_) => {}
            Err(e) if !audio_failed => {
                log::warn!("{e}; the game keeps running without sound output");
                audio_failed = true;
            }
            Err(_) => {}
        }
        counters.sound_heap_allocs += AllocCounts::now().since(sound_allocs_before).frame_thread;
        audio_sync.push(AudioSyncMarker {
            write_cursor: running_sample_index,
            frames_written: wanted as u32,
            queued_frames: queued_before,
            expected_frame_boundary: running_sample_index + wanted as u64,
        });
        running_sample_index += wanted as u64;
        counters.sound_frames += wanted as u64;

        // Present the frame the game drew.
        if let Some(window) = window.as_mut() {
            window.present(bitmap);
        }

        // Hold the frame rate: sleep most of the way, spin the last millisecond.
        let mut pace_wait = Duration::ZERO;
        if paced {
            next_frame_start += frame_budget;
            let wait_start = Instant::now();
            wait_until(next_frame_start);
            pace_wait = wait_start.elapsed();
            if Instant::now() > next_frame_start + frame_budget {
                next_frame_start = Instant::now(); // fell far behind: do not try to catch up
            }
        }

        event_frame |= game.end_frame();
        counters.frames += 1;
        let frame_time = frame_start.elapsed();
        frame_times.record(frame_time);
        if reloaded {
            // Work time of the reload frame, without the frame-rate wait.
            let busy = frame_time.saturating_sub(pace_wait);
            counters.reload_frame_busy_ms_max = counters.reload_frame_busy_ms_max.max(busy.as_secs_f64() * 1e3);
        }
        let allocs = AllocCounts::now().since(allocs_at_start);
        if reloaded || forced {
            counters.reload_heap_allocs += allocs.frame_thread;
        } else if event_frame || failed {
            counters.event_heap_allocs += allocs.frame_thread;
        } else if frame_index >= WARMUP_FRAMES {
            counters.heap_allocs_after_warmup += allocs.frame_thread;
            counters.heap_allocs_other_threads += allocs.all_threads - allocs.frame_thread;
        }
    }

    live_loop.finish();
    audio.finish()?;
    let status = audio.status();
    counters.underruns = status.underruns;
    // The device's delay averaged over the run (the last figure alone is one sample of a saw).
    counters.latency_ms = f64::from(status.mean_queued_frames) * 1e3 / f64::from(audio.sample_rate());
    counters.arena_high_water_bytes = arena.high_water() as u64 + game_memory.game_arena_high_water;
    counters.game_libs_mapped = game_code::mapped_copies(game.copies_dir());
    if let Some(path) = &args.sync_dump {
        write_sync_dump(path, audio_sync)?;
    }
    if let Some(path) = &args.screenshot {
        screenshot::write_png(path, bitmap, width, height).map_err(|e| PlatformError::Other(e.to_string()))?;
        log::info!("screenshot written to {}", path.display());
    }
    let stats_line = stats::format_line(&counters, &frame_times, &reload_times, stats::resident_mib());
    Ok(RunReport { stats_line, counters })
}

/// A game call failed. A library swapped in moments ago is rolled back (with the memory
/// snapshot taken just before the swap); otherwise the game is paused until the next reload.
/// Returns whether the game is now paused.
fn recover_from_failure(
    function: &str,
    status: GameStatus,
    game: &mut GameCode,
    snapshot: &Snapshot<'_>,
    memory: &mut GameMemory,
    counters: &mut Counters,
) -> bool {
    counters.game_panics += 1;
    let what = match status {
        GameStatus::Panicked => format!("game panicked in {function}: {}", memory.panic_text()),
        other => format!("game returned {other:?} from {function}"),
    };
    if game.roll_back() {
        snapshot.restore(memory);
        memory.reloaded = 1;
        counters.rollbacks += 1;
        log::error!("{what}; rolled back to the previous library and its state");
        false
    } else {
        log::error!("{what}; game paused until the next good build");
        true
    }
}

fn start_watcher(workspace: &std::path::Path, game_dir: &std::path::Path) -> Option<BuildWatcher> {
    match BuildWatcher::start(workspace, game_dir) {
        Ok(watcher) => {
            log::info!("rebuilding the game when {} changes (--no-rebuild to stop)", game_dir.display());
            Some(watcher)
        }
        Err(e) => {
            log::warn!("cannot watch {} for changes ({e}); rebuild on save is off", game_dir.display());
            None
        }
    }
}

/// Live loop editing: `--play-loop` plays a recording from the start (a bad file is one line,
/// and the run goes on live); otherwise `l` records to `--loop-file` or a private directory.
fn open_live_loop(args: &Args, permanent_base: u64, permanent_len: usize) -> Result<LiveLoop, PlatformError> {
    if let Some(path) = &args.play_loop {
        match LiveLoop::open_recording(path, permanent_base, permanent_len, args.loop_file.clone()) {
            Ok(recording) => return Ok(recording),
            Err(e) => log::error!("{e}; playing live instead"),
        }
    }
    let max_frames = u64::from(args.fps) * 120;
    LiveLoop::new(args.loop_file.clone(), max_frames)
        .map_err(|e| PlatformError::Other(format!("cannot create the loop recording directory: {e}")))
}

/// The window, or, where none can open, the headless fallback (which changes `args`).
fn open_window(args: &mut Args) -> Option<Video> {
    // With neither variable set there is no display to find; asking SDL anyway makes its
    // Wayland probe print an "error:" line about XDG_RUNTIME_DIR.
    let display_named =
        ["DISPLAY", "WAYLAND_DISPLAY"].iter().any(|v| std::env::var_os(v).is_some_and(|d| !d.is_empty()));
    if !display_named {
        fall_back_to_headless(args, "neither DISPLAY nor WAYLAND_DISPLAY is set");
        return None;
    }
    match Video::open(args.size) {
        Ok(video) => Some(video),
        Err(e) => {
            fall_back_to_headless(args, &e.to_string());
            None
        }
    }
}

/// No display: run the demo headless for a while and leave its sound and last frame in files,
/// so a first run on a server still shows something (README: "Run the demo").
fn fall_back_to_headless(args: &mut Args, why: &str) {
    args.headless = true;
    if args.frames == 0 {
        args.frames = 600;
    }
    let wav = args.wav_out.get_or_insert_with(|| "handmade-demo.wav".into()).display().to_string();
    let png = args.screenshot.get_or_insert_with(|| "handmade-demo.png".into()).display().to_string();
    log::warn!(
        "no window ({why}): running headless for {} frames instead; without a sound device the sound goes to {wav}, \
         the last frame to {png}",
        args.frames
    );
}

fn build_title(build: &BuildEvent) -> String {
    if build.ok {
        "handmade".to_string()
    } else {
        let first = build.summary.lines().next().unwrap_or("build failed");
        format!("handmade - BUILD FAILED: {}", first.chars().take(100).collect::<String>())
    }
}

fn log_reload(source: &std::path::Path, load_time: Duration, build: Option<BuildEvent>) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    match build {
        Some(b) => {
            let save_to_code = std::time::SystemTime::now().duration_since(b.saved_at).unwrap_or_default();
            log::info!(
                "reloaded {} in {:.3} ms; save-to-code {:.0} ms (detect {:.1} ms, build {:.0} ms, load {:.1} ms)",
                source.display(),
                ms(load_time),
                ms(save_to_code),
                ms(b.detect),
                ms(b.build),
                ms(load_time)
            );
        }
        None => log::info!("reloaded {} in {:.3} ms", source.display(), ms(load_time)),
    }
}

fn warn_nonfinite(bad: usize, seen_before: u64) -> u64 {
    if bad > 0 && seen_before == 0 {
        log::warn!("the game wrote NaN or infinite samples; they are played as silence");
    }
    bad as u64
}

fn load_loop_sample(args: &Args, arena: &mut MemoryArena<'_>) -> GameSample {
    let dir = args.data_dir.clone().unwrap_or_else(assets::default_data_dir);
    let path = dir.join("loop.wav");
    match assets::load_wav(&path, arena) {
        Ok(sample) => sample,
        Err(e) => {
            log::warn!("{e}; the demo runs without its loop sound");
            GameSample { left: std::ptr::null(), right: std::ptr::null(), frame_count: 0, samples_per_second: 0 }
        }
    }
}

fn wait_until(deadline: Instant) {
    let now = Instant::now();
    if deadline > now + Duration::from_millis(1) {
        std::thread::sleep(deadline - now - Duration::from_millis(1));
    }
    while Instant::now() < deadline {
        std::hint::spin_loop();
    }
}

fn write_sync_dump(path: &PathBuf, ring: &AudioSyncRing) -> Result<(), PlatformError> {
    let mut text = String::from("# write_cursor frames_written queued_frames expected_frame_boundary\n");
    for m in ring.iter() {
        text += &format!("{} {} {} {}\n", m.write_cursor, m.frames_written, m.queued_frames, m.expected_frame_boundary);
    }
    std::fs::write(path, text).map_err(|e| PlatformError::Other(format!("cannot write {}: {e}", path.display())))
}
