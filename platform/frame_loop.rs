//! The frame loop, Handmade Hero style and single-threaded. `run` sets the platform up once,
//! then each `Platform::frame` is a page of named phases: input, dev loop, reload, update and
//! render, sound, present, hold the rate. Everything a frame touches was carved from the
//! memory block before the first one; the stack sample buffers are locals of `run`, lent to
//! the sound phase.

use std::fmt;
use std::time::{Duration, Instant};

use handmade_api::{
    ArenaError, AudioSyncMarker, AudioSyncRing, GameAssets, GameInput, GameMemory, GameOffscreenBuffer, GameSample,
    GameSoundOutputBuffer, GameStateLayout, GameStatus, MemoryArena, MAX_SOUND_FRAMES,
};

use crate::audio::{self, fade, AudioDesc, AudioError, AudioOutput};
use crate::cli::Config;
use crate::dev::game_build;
use crate::dev::live_loop::{recorded_permanent_base, LiveLoop, LoopStep};
use crate::dev::rebuild::{BuildEvent, BuildWatcher};
use crate::guard::{CallGuard, GameCall, GameFault};
use crate::input::script::{InputScript, ScriptError};
use crate::input::{self, Key};
use crate::measure::alloc_count::{self, AllocCounts};
use crate::measure::stats::{self, Counters, Timings};
use crate::memory::snapshot::{permanent_bytes, used_permanent_bytes, Snapshot};
use crate::memory::{assets, MemoryError, MemoryLayout, MemoryRegions, PlatformMemoryBlock};
use crate::reload::{
    mapped_copies, BuildTaken, GameCode, GameCodeError, GameFunctions, Preparer, ReloadOutcome, ShapeChange,
};
use crate::signals;
use crate::window::{screenshot, Video};

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
    /// Exit steps that failed (a WAV that could not be finished, an unwritable screenshot):
    /// each was logged; every other step still ran.
    pub exit_errors: Vec<String>,
}

/// Runs the platform until the frame limit, Escape, a signal, or the window closes.
pub fn run(config: &Config) -> Result<RunReport, PlatformError> {
    alloc_count::register_frame_thread();
    let mut config = config.clone();
    check_sound_buffer(&config)?;
    // The platform's share also holds the rollback snapshot, as large as permanent storage
    // (only the pages a snapshot writes are ever backed).
    let platform_mib = config.platform_mib.saturating_add(config.permanent_mib);
    let layout = MemoryLayout::from_mib(config.permanent_mib, config.transient_mib, platform_mib)?;
    let mut block = reserve_memory(&config, layout)?;
    let mut platform = Platform::new(&mut config, block.carve())?;
    // The stack sample buffer: locals of the loop, sized for the worst case; the game only
    // borrows them for the length of one `game_output_sound` call.
    let mut left = [0.0f32; MAX_SOUND_FRAMES];
    let mut right = [0.0f32; MAX_SOUND_FRAMES];
    while platform.frame(&mut left, &mut right) == Continue::Yes {}
    Ok(platform.finish())
}

/// The memory block: where a `--play-loop` recording had it (its state holds pointers into
/// it), else wherever the kernel puts it.
fn reserve_memory(config: &Config, layout: MemoryLayout) -> Result<PlatformMemoryBlock, PlatformError> {
    let recorded = config.play_loop.as_deref().and_then(recorded_permanent_base);
    if let Some(base) = recorded {
        match PlatformMemoryBlock::reserve_at(layout, base as usize) {
            Ok(block) => return Ok(block),
            Err(e) => log::warn!("{e}; the recording cannot be replayed in this run"),
        }
    }
    Ok(PlatformMemoryBlock::reserve(layout)?)
}

fn check_sound_buffer(config: &Config) -> Result<(), PlatformError> {
    let frame_samples = config.sample_rate.div_ceil(config.fps) as usize;
    if frame_samples > MAX_SOUND_FRAMES {
        return Err(PlatformError::Other(format!(
            "--fps {} is too low for --sample-rate {}: a frame would need {frame_samples} samples and the \
             sound buffer holds {MAX_SOUND_FRAMES}",
            config.fps, config.sample_rate
        )));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Continue {
    Yes,
    No,
}

/// What a frame counts as for allocation accounting, decided once per frame: the highest kind
/// any phase reported wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum FrameKind {
    /// Must allocate nothing after warm-up.
    Normal,
    /// A dev-loop event, a failed reload or a game crash: allowed to allocate, counted apart.
    Event,
    /// A library was (re)loaded: `dlopen` allocates, counted apart.
    Reload,
}

/// The sound phase's state between frames.
struct SoundState {
    running_sample_index: u64,
    /// The last sample played, where a fade to silence starts from.
    last_sample: (f32, f32),
    fade_in_next: bool,
    /// Ramp this frame to silence and fade the next one in (the state was just replaced).
    dip: bool,
    /// The device write failed this frame (an event frame, not a quiet one).
    event: bool,
    /// The device failed once (said once); the game keeps running without sound output.
    failed: bool,
    /// Real-time priority for the sound threads: what was granted, undone when the run ends.
    rt: audio::rt::Grant,
    /// `HANDMADE_SWAP_HEADROOM=0` never holds the extra frame (to measure what it does).
    swap_headroom: bool,
}

/// The frame-rate lock.
struct Pacing {
    paced: bool,
    budget: Duration,
    next_frame_start: Instant,
    sleep: audio::rt::AbsoluteSleep,
    /// The end of the wait spun rather than slept (`HANDMADE_FRAME_SPIN_US`, default 0).
    spin: Duration,
}

/// The rebuild watcher and the live loop.
struct DevLoop {
    watcher: Option<BuildWatcher>,
    /// A finished build, kept until its library is loaded (for the save-to-code line).
    build: Option<BuildEvent>,
    live_loop: LiveLoop,
}

/// Everything the frame loop owns, built once by `Platform::new`.
struct Platform<'a> {
    config: Config,
    arena: MemoryArena<'a>,
    memory: &'a mut GameMemory,
    bitmap: &'a mut [u32],
    audio_sync: &'a mut AudioSyncRing,
    rollback_snapshot: Snapshot<'a>,
    frame_times: Timings<'a>,
    reload_times: Timings<'a>,
    /// How late after the frame's scheduled start each sound write happened.
    write_late: Timings<'a>,
    game: GameCode,
    /// Every game call runs through it: a crash or hang in the game comes back as a fault.
    guard: CallGuard,
    game_paused: bool,
    /// The keyboard, pad and script as they are, kept apart from `input` (what the game sees
    /// this frame), which a live-loop replay overwrites: leaving playback leaves no key stuck.
    live_input: GameInput,
    input: GameInput,
    script: Option<InputScript>,
    window: Option<Video>,
    audio: Box<dyn AudioOutput>,
    sound: SoundState,
    dev: DevLoop,
    pacing: Pacing,
    counters: Counters,
    frame_index: u64,
}

impl<'a> Platform<'a> {
    fn new(config: &mut Config, regions: MemoryRegions<'a>) -> Result<Self, PlatformError> {
        let mut arena = regions.platform;
        let (width, height) = config.size;
        let bitmap = arena.push_array(width as usize * height as usize, 0u32)?;
        let audio_sync = arena.push_struct(AudioSyncRing::EMPTY)?;
        let frame_times = Timings::new(&mut arena, Duration::from_secs(1))?;
        let reload_times = Timings::new(&mut arena, Duration::from_millis(200))?;
        let write_late = Timings::new(&mut arena, Duration::from_millis(50))?;
        let loop_sample = load_loop_sample(config, &mut arena);
        let memory = arena.push_struct(GameMemory {
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
        let script = config.input_script.as_deref().map(InputScript::load).transpose()?;
        let (library, watched) = game_build::resolve_game(config).map_err(PlatformError::Other)?;
        let mut game = GameCode::load(&library)?;
        log::info!("loaded game library {}", library.display());
        if let Err(e) = game.watch_source() {
            log::warn!("cannot start the thread that watches {} ({e}); the frame polls it itself", library.display());
        }
        let timeout = Duration::from_millis(u64::from(config.game_timeout_ms));
        let guard = CallGuard::install(timeout)
            .map_err(|e| PlatformError::Other(format!("cannot guard the game's calls: {e}")))?;
        let watcher = watched.and_then(|source| start_watcher(&source, game.preparer()));
        let rollback_snapshot = Snapshot::new(&mut arena, regions.permanent.len())?;
        let state = game.state_fingerprint();
        let live_loop = open_live_loop(config, memory.permanent_storage as u64, regions.permanent.len(), state)?;
        signals::install();
        let window = if config.headless { None } else { open_window(config) };
        let (audio, rt) = open_audio(config, audio_sync)?;
        let paced = audio.is_paced() || config.realtime || !config.headless;
        let budget = Duration::from_secs_f64(1.0 / f64::from(config.fps));
        Ok(Self {
            config: config.clone(),
            arena,
            memory,
            bitmap,
            audio_sync,
            rollback_snapshot,
            frame_times,
            reload_times,
            write_late,
            game,
            guard,
            game_paused: false,
            live_input: GameInput::default(),
            input: GameInput::default(),
            script,
            window,
            audio,
            sound: SoundState {
                running_sample_index: 0,
                last_sample: (0.0, 0.0),
                fade_in_next: false,
                dip: false,
                event: false,
                failed: false,
                rt,
                swap_headroom: std::env::var("HANDMADE_SWAP_HEADROOM").as_deref() != Ok("0"),
            },
            dev: DevLoop { watcher, build: None, live_loop },
            pacing: Pacing {
                paced,
                budget,
                next_frame_start: Instant::now(),
                sleep: audio::rt::AbsoluteSleep::new(),
                spin: Duration::from_micros(
                    std::env::var("HANDMADE_FRAME_SPIN_US").ok().and_then(|v| v.parse().ok()).unwrap_or(0),
                ),
            },
            counters: Counters { alloc_counting: alloc_count::is_active(), ..Default::default() },
            frame_index: 0,
        })
    }

    /// One frame. Returns `Continue::No` at the frame limit, Escape, a signal or a closed window.
    fn frame(&mut self, left: &mut [f32; MAX_SOUND_FRAMES], right: &mut [f32; MAX_SOUND_FRAMES]) -> Continue {
        let limit_reached = self.config.frames != 0 && self.frame_index >= self.config.frames;
        if limit_reached || signals::stop_requested() {
            return Continue::No;
        }
        let start = Instant::now();
        let allocs_at_start = AllocCounts::now();
        if self.read_input() == Continue::No {
            return Continue::No;
        }
        let mut kind = self.run_dev_loop();
        kind = kind.max(self.reload_game());
        let mut failed = self.update_and_render();
        failed |= self.output_sound(left, right);
        self.present();
        let waited = self.hold_frame_rate();
        if self.game.end_frame() || failed || std::mem::take(&mut self.sound.event) {
            kind = kind.max(FrameKind::Event);
        }
        self.account(kind, start.elapsed(), waited, AllocCounts::now().since(allocs_at_start));
        self.frame_index += 1;
        Continue::Yes
    }

    /// Input: the script's events for this frame, then the window's.
    fn read_input(&mut self) -> Continue {
        let live = &mut self.live_input;
        input::begin_frame(live, self.frame_index, self.pacing.budget.as_secs_f32());
        let mut quit = false;
        if let Some(script) = self.script.as_mut() {
            for event in script.events_for(self.frame_index) {
                quit |= event.key == Key::Escape && event.down;
                input::apply_key(live, event.key, event.down);
            }
        }
        if let Some(window) = self.window.as_mut() {
            quit |= window.pump_events(live);
        }
        self.input = *live;
        if quit {
            Continue::No
        } else {
            Continue::Yes
        }
    }

    /// Dev loop: the live loop's key and its record/replay, then a finished build, which is
    /// loaded at once (cargo is done writing it).
    fn run_dev_loop(&mut self) -> FrameKind {
        let mut kind = FrameKind::Normal;
        if self.input.letter('l').was_pressed() {
            kind = FrameKind::Event;
            match self.dev.live_loop.toggle(self.memory) {
                Ok(mode) => log::info!("live loop: {mode:?}"),
                Err(e) => log::error!("{e}"),
            }
        }
        if self.dev.live_loop.begin_frame(&mut self.input, self.memory) == LoopStep::Restarted {
            self.sound.fade_in_next = true;
        }
        let Some(watcher) = self.dev.watcher.as_mut() else { return kind };
        if watcher.build_started() {
            kind = FrameKind::Event;
            if let Some(window) = self.window.as_mut() {
                window.set_title("building the game...");
            }
        }
        if let Some(mut build) = watcher.poll() {
            kind = FrameKind::Event;
            if let Some(window) = self.window.as_mut() {
                window.set_title(&build_title(&build));
            }
            if build.ok {
                let taken = match build.prepared.take() {
                    Some(prepared) => self.game.take_prepared(prepared),
                    None => self.game.mark_settled(),
                };
                match taken {
                    BuildTaken::New => self.dev.build = Some(build),
                    BuildTaken::AlreadyRunning => log_reload(self.game.source(), None, Some(build)),
                    // Refused by the per-frame poll, which said why: once is enough.
                    BuildTaken::AlreadyRefused => {}
                }
            }
        }
        kind
    }

    /// Reload: the library changed on disk (or a reload is forced): check, load and swap it,
    /// with a snapshot of the game's memory taken just before, for a rollback.
    fn reload_game(&mut self) -> FrameKind {
        let every = self.config.reload_every;
        let forced = every != 0 && self.frame_index != 0 && self.frame_index % every == 0;
        let (snapshot, memory) = (&mut self.rollback_snapshot, &*self.memory);
        let mut take_snapshot = || snapshot.take(memory);
        let outcome = if forced {
            self.game.force_reload(&mut take_snapshot)
        } else {
            self.game.reload_if_changed(&mut take_snapshot)
        };
        let kind = match outcome {
            ReloadOutcome::Unchanged => FrameKind::Normal,
            // Spawning the probe process, and saying that the library is gone, allocate.
            ReloadOutcome::Checking | ReloadOutcome::Missing | ReloadOutcome::Waiting => FrameKind::Event,
            ReloadOutcome::Reloaded { load_time, shape } => {
                log_reload(self.game.source(), Some(load_time), self.dev.build.take());
                self.reload_times.record(load_time);
                self.counters.reloads += 1;
                self.memory.reloaded = 1;
                self.game_paused = false;
                if let Some(change) = shape {
                    self.adapt_state(change);
                }
                FrameKind::Reload
            }
            ReloadOutcome::Failed => {
                self.dev.build = None; // its library is not coming
                self.counters.reload_failures += 1;
                FrameKind::Event // the attempt and its log line allocate
            }
        };
        if forced {
            FrameKind::Reload
        } else {
            kind
        }
    }

    /// The new library's state has another shape: let it migrate the old bytes (a copy, in the
    /// rollback snapshot taken just before the swap), or start its state afresh. Either way
    /// the sound dips over 5 ms and comes back, and a live loop of the old shape stops.
    fn adapt_state(&mut self, change: ShapeChange) {
        let size = |layout: Option<GameStateLayout>| layout.map_or("?".to_string(), |l| group_digits(l.size));
        let sizes = format!("{} -> {} bytes", size(change.old), size(change.new));
        let migrated = match (self.game.functions().migrate_state, change.old) {
            (Some(migrate), Some(old)) => {
                let saved = self.rollback_snapshot.bytes();
                let memory = &mut *self.memory;
                // SAFETY: `memory` is the platform's live game memory and `saved` a separate,
                // 64-byte aligned copy of the old permanent storage that outlives the call.
                let call = || unsafe { migrate(memory, saved.as_ptr(), saved.len() as u64, old) };
                match self.guard.call(GameCall::MigrateState, call) {
                    Ok(GameStatus::Ok) => Ok(()),
                    Ok(GameStatus::CannotMigrate) => Err("game_migrate_state does not know the old shape".to_string()),
                    Ok(other) => Err(format!("game_migrate_state returned {other:?}")),
                    Err(fault) => {
                        self.counters.game_faults += 1;
                        Err(fault.to_string())
                    }
                }
            }
            (Some(_), None) => Err("the old library did not say its state's shape".to_string()),
            (None, _) => Err("the game exports no game_migrate_state".to_string()),
        };
        match migrated {
            Ok(()) => log::info!("game state changed shape ({sizes}): migrated by game_migrate_state"),
            Err(why) => {
                let used = used_permanent_bytes(self.memory);
                // SAFETY: between game calls, on the platform's own storage description.
                let storage = unsafe { permanent_bytes(self.memory) };
                storage[..used].fill(0);
                self.memory.game_arena_high_water = 0;
                log::warn!("game state changed shape ({sizes}): {why}; the state starts afresh");
            }
        }
        self.memory.reloaded = 1;
        self.sound.dip = true;
        self.dev.live_loop.set_state_fingerprint(change.new.map_or(0, |l| l.fingerprint));
        if self.dev.live_loop.stop() {
            log::warn!("live loop stopped: its recording holds the state's old shape");
        }
    }

    /// The functions to call this frame: the stubs while the game is paused.
    fn functions(&self) -> GameFunctions {
        if self.game_paused {
            GameFunctions::STUBS
        } else {
            self.game.functions()
        }
    }

    /// Update and render into the offscreen bitmap. Returns whether the game failed.
    fn update_and_render(&mut self) -> bool {
        self.memory.audio_sync = &*self.audio_sync;
        let (width, height) = self.config.size;
        let update = self.functions().update_and_render;
        let mut offscreen = GameOffscreenBuffer::lend(self.bitmap, width, height);
        let (memory, input) = (&mut *self.memory, &self.input);
        // SAFETY: the game gets exclusive access to its memory, the input and the bitmap for
        // the call; all three are live, initialised `repr(C)` values of the contract's types.
        let call = || unsafe { update(memory, input, &mut offscreen) };
        let result = self.guard.call(GameCall::UpdateAndRender, call);
        let failed = !matches!(result, Ok(GameStatus::Ok));
        if failed {
            self.recover(GameCall::UpdateAndRender, result);
        }
        self.memory.reloaded = 0;
        failed
    }

    /// Sound: ask the backend how much it needs, let the game fill the stack buffer, check
    /// and fade what it wrote, write it. Returns whether the game failed.
    fn output_sound(&mut self, left: &mut [f32; MAX_SOUND_FRAMES], right: &mut [f32; MAX_SOUND_FRAMES]) -> bool {
        if self.sound.rt.check_demoted() {
            self.sound.event = true; // its one line allocates
        }
        if self.pacing.paced {
            let late = Instant::now().saturating_duration_since(self.pacing.next_frame_start);
            self.write_late.record(late);
        }
        let allocs_before = AllocCounts::now();
        let hold = self.sound.swap_headroom && self.swap_coming();
        self.counters.swap_hold_frames += u64::from(hold);
        self.audio.hold_extra_frame(hold);
        let wanted = self.audio.frames_wanted().min(MAX_SOUND_FRAMES);
        let queued_before = self.audio.status().queued_frames; // as `frames_wanted` just measured it
        let (status, count_from_game) = self.call_output_sound(left, right, wanted);
        let failed = !matches!(status, Ok(GameStatus::Ok));
        let (l, r) = (&mut left[..wanted], &mut right[..wanted]);
        self.check_samples(l, r, wanted, count_from_game);
        self.fade(l, r, failed);
        let written = self.audio.write(l, r);
        if let Err(e) = &written {
            if !self.sound.failed {
                log::warn!("{e}; the game keeps running without sound output");
                self.sound.failed = true;
            }
            self.sound.event = true; // the error and its line allocate: counted as an event
        } else {
            self.counters.sound_heap_allocs += AllocCounts::now().since(allocs_before).frame_thread;
        }
        let index = self.sound.running_sample_index;
        self.audio_sync.push(AudioSyncMarker {
            write_cursor: index,
            frames_written: wanted as u32,
            queued_frames: queued_before,
            expected_frame_boundary: index + wanted as u64,
        });
        self.sound.running_sample_index += wanted as u64;
        self.counters.sound_frames += wanted as u64;
        // After the sound is out: recovering (its log line, a rollback) is not the sound path.
        if failed {
            self.recover(GameCall::OutputSound, status);
        }
        failed
    }

    /// Whether a new game library may come in soon: a build is running (until its last tier
    /// is in, so the quick tier's own frames keep the margin too), a finished one waits to be
    /// loaded, a changed library is on its way in (`GameCode::swap_pending`: seen, being checked,
    /// or prepared), or a forced reload is due next frame.
    /// Until then the device holds one frame more than the target, because the new library's
    /// first frames can reach the sound write much later than the frame before did (the quick
    /// tier's opt-level 0 frame: 4.7 ms against 0.2 optimised), and at a small `--latency-ms`
    /// that lateness is a gap.
    fn swap_coming(&self) -> bool {
        let every = self.config.reload_every;
        let forced_next = every != 0 && (self.frame_index + 1) % every == 0;
        let building = self.dev.watcher.as_ref().is_some_and(BuildWatcher::building);
        building || self.dev.build.is_some() || self.game.swap_pending() || forced_next
    }

    /// The whole stack buffer is lent and `sample_count` says how much of it to fill, so a game
    /// that writes past the count (it cannot go past MAX_SOUND_FRAMES) stays inside it.
    fn call_output_sound(
        &mut self,
        left: &mut [f32],
        right: &mut [f32],
        wanted: usize,
    ) -> (Result<GameStatus, GameFault>, u32) {
        let rate = self.audio.sample_rate();
        let mut sound = GameSoundOutputBuffer::lend(rate, self.sound.running_sample_index, left, right);
        sound.sample_count = wanted as u32;
        let output_sound = self.functions().output_sound;
        let (memory, sound_ref) = (&mut *self.memory, &mut sound);
        // SAFETY: as in `update_and_render`; `sound` lends the two stack channels for this call.
        let call = || unsafe { output_sound(memory, sound_ref) };
        let result = self.guard.call(GameCall::OutputSound, call);
        // After a fault the count is whatever the game left: `check_samples` ignores it.
        (result, if result.is_ok() { sound.sample_count } else { wanted as u32 })
    }

    /// The frame count is the platform's (what the game wrote beyond it is not played), and
    /// NaN/inf become silence; each said once.
    fn check_samples(&mut self, l: &mut [f32], r: &mut [f32], wanted: usize, count_from_game: u32) {
        if count_from_game as usize != wanted {
            if self.counters.bad_sample_counts == 0 {
                log::warn!(
                    "game_output_sound changed the frame count to {count_from_game} (asked for {wanted}); ignored"
                );
            }
            self.counters.bad_sample_counts += 1;
        }
        let bad = (audio::sanitize(l) + audio::sanitize(r)) as u64;
        if bad > 0 && self.counters.nonfinite_samples == 0 {
            log::warn!("the game wrote NaN or infinite samples; they are played as silence");
        }
        self.counters.nonfinite_samples += bad;
    }

    /// A crash, a rollback or a loop restart is a jump in the waveform: dip instead of click.
    fn fade(&mut self, l: &mut [f32], r: &mut [f32], failed: bool) {
        let rate = self.audio.sample_rate();
        if failed || std::mem::take(&mut self.sound.dip) {
            fade::ramp_to_silence(l, r, self.sound.last_sample, rate);
            self.sound.fade_in_next = true;
        } else if self.sound.fade_in_next && !self.game_paused {
            fade::fade_in(l, r, rate);
            self.sound.fade_in_next = false;
        }
        if self.dev.live_loop.restarts_next_frame() {
            fade::fade_out(l, r, rate);
        }
        if let (Some(&last_l), Some(&last_r)) = (l.last(), r.last()) {
            self.sound.last_sample = (last_l, last_r);
        }
    }

    /// A game call failed: it panicked, returned an error, crashed or hung. A library swapped
    /// in moments ago is rolled back (with the memory snapshot taken just before the swap);
    /// otherwise the game is paused until the next good build. Jumping out of a crashed call
    /// is acceptable because what it leaves half-done (the library's frames, its state) is
    /// thrown away here: rolled back, or paused and replaced by the next build.
    fn recover(&mut self, call: GameCall, result: Result<GameStatus, GameFault>) {
        let function = call.symbol();
        let what = match result {
            Ok(GameStatus::Panicked) => {
                self.counters.game_panics += 1;
                format!("game panicked in {function}: {}", self.memory.panic_text())
            }
            Ok(other) => {
                self.counters.game_panics += 1;
                format!("game returned {other:?} from {function}")
            }
            Err(fault) => {
                self.counters.game_faults += 1;
                fault.to_string()
            }
        };
        if self.game.roll_back() {
            self.rollback_snapshot.restore(self.memory);
            self.memory.reloaded = 1;
            self.counters.rollbacks += 1;
            self.game_paused = false;
            log::error!("{what}; rolled back to the previous library and its state");
        } else {
            self.game_paused = true;
            log::error!("{what}; game paused until the next good build");
        }
    }

    fn present(&mut self) {
        if let Some(window) = self.window.as_mut() {
            window.present(self.bitmap);
        }
    }

    /// Hold the frame rate: sleep to the next frame's absolute start (spinning the last
    /// `spin` of it, if asked). Returns the wait.
    fn hold_frame_rate(&mut self) -> Duration {
        let pacing = &mut self.pacing;
        if !pacing.paced {
            return Duration::ZERO;
        }
        pacing.next_frame_start += pacing.budget;
        let wait_start = Instant::now();
        let deadline = pacing.next_frame_start;
        pacing.sleep.until(deadline.checked_sub(pacing.spin).unwrap_or(deadline));
        while Instant::now() < deadline {
            std::hint::spin_loop();
        }
        if Instant::now() > pacing.next_frame_start + pacing.budget {
            pacing.next_frame_start = Instant::now(); // fell far behind: do not try to catch up
        }
        wait_start.elapsed()
    }

    /// Frame time, reload work time and this frame's allocations, by the frame's kind.
    fn account(&mut self, kind: FrameKind, frame_time: Duration, waited: Duration, allocs: AllocCounts) {
        let counters = &mut self.counters;
        counters.frames += 1;
        self.frame_times.record(frame_time);
        match kind {
            FrameKind::Reload => {
                // Work time of the reload frame, without the frame-rate wait.
                let busy_ms = frame_time.saturating_sub(waited).as_secs_f64() * 1e3;
                counters.reload_frame_busy_ms_max = counters.reload_frame_busy_ms_max.max(busy_ms);
                counters.reload_heap_allocs += allocs.frame_thread;
            }
            FrameKind::Event => counters.event_heap_allocs += allocs.frame_thread,
            FrameKind::Normal if self.frame_index >= WARMUP_FRAMES => {
                counters.heap_allocs_after_warmup += allocs.frame_thread;
                counters.heap_allocs_other_threads += allocs.all_threads - allocs.frame_thread;
            }
            FrameKind::Normal => {}
        }
    }

    /// Teardown: every exit step runs, whatever failed before it; each failure is one line.
    fn finish(mut self) -> RunReport {
        let mut exit_errors = Vec::new();
        self.dev.live_loop.finish();
        if let Err(e) = self.audio.finish() {
            exit_errors.push(e.to_string());
        }
        let status = self.audio.status();
        let counters = &mut self.counters;
        counters.underruns = status.underruns;
        let ms = |frames: f64| frames * 1e3 / f64::from(self.audio.sample_rate().max(1));
        counters.gaps = status.gaps;
        counters.gap_ms = ms(status.gap_frames as f64);
        counters.latency_ms = ms(f64::from(status.latency_mean_frames));
        counters.latency_ms_max = ms(f64::from(status.latency_max_frames));
        // The device's delay averaged over the run (the last figure alone is one sample of a saw).
        counters.queue_ms = ms(f64::from(status.mean_queued_frames));
        let late = &self.write_late;
        counters.write_late_ms = [late.percentile_ms(50.0), late.percentile_ms(99.0), late.max_ms()];
        counters.arena_high_water_bytes = self.arena.high_water() as u64 + self.memory.game_arena_high_water;
        counters.game_libs_mapped = mapped_copies(self.game.copies_dir());
        if let Some(path) = &self.config.sync_dump {
            if let Err(e) = write_sync_dump(path, self.audio_sync) {
                exit_errors.push(e);
            }
        }
        if let Some(path) = &self.config.screenshot {
            let (width, height) = self.config.size;
            match screenshot::write_png(path, self.bitmap, width, height) {
                Ok(()) => log::info!("screenshot written to {}", path.display()),
                Err(e) => exit_errors.push(e.to_string()),
            }
        }
        for e in &exit_errors {
            log::error!("{e}");
        }
        let resident = stats::resident_mib();
        let stats_line = stats::format_line(&self.counters, &self.frame_times, &self.reload_times, resident);
        RunReport { stats_line, counters: self.counters, exit_errors }
    }
}

fn start_watcher(game: &game_build::GameCrate, preparer: Preparer) -> Option<BuildWatcher> {
    let game_dir = &game.dir;
    match BuildWatcher::start(game, Some(preparer)) {
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

/// Opens the sound output, then real-time priority for the threads that move the sound: the
/// frame thread (this one) and the sound library's I/O thread the open started.
fn open_audio(
    config: &Config,
    audio_sync: &mut AudioSyncRing,
) -> Result<(Box<dyn AudioOutput>, audio::rt::Grant), PlatformError> {
    let desc = AudioDesc {
        sample_rate: config.sample_rate,
        fps: config.fps,
        latency_ms: config.latency_ms,
        alsa_device: config.alsa_device.clone(),
        alsa_io: config.alsa_io,
        wav_out: config.wav_out.clone(),
    };
    let audio = audio::open(config.audio, &desc)?;
    audio_sync.samples_per_second = audio.sample_rate();
    audio_sync.device_buffer_frames = audio.status().buffer_frames;
    if !audio.is_paced() && config.realtime {
        log::info!("--realtime: the offline sound is paced by the clock at {} fps", config.fps);
    }
    let mut rt = audio::rt::Grant::frame_thread(config.rt, audio.is_paced());
    rt.io_threads_and_say();
    Ok((audio, rt))
}

/// Live loop editing: `--play-loop` plays a recording from the start (a bad file is one line,
/// and the run goes on live); otherwise `l` records to `--loop-file` or a private directory.
/// A recording of another state shape than the game's (`state`, its fingerprint) is refused.
fn open_live_loop(
    config: &Config,
    permanent_base: u64,
    permanent_len: usize,
    state: u64,
) -> Result<LiveLoop, PlatformError> {
    if let Some(path) = &config.play_loop {
        match LiveLoop::open_recording(path, permanent_base, permanent_len, config.loop_file.clone()) {
            Ok(recording) if state != 0 && ![0, state].contains(&recording.recorded_state_fingerprint()) => {
                log::error!(
                "loop file {} is not usable: recorded with the game's state in another shape (fingerprint {:016x}, \
                 this game's is {state:016x}); playing live instead",
                path.display(),
                recording.recorded_state_fingerprint()
            )
            }
            Ok(recording) => {
                log::info!("live loop: playing {} ({} recorded frames)", path.display(), recording.recorded_frames());
                return Ok(recording);
            }
            Err(e) => log::error!("{e}; playing live instead"),
        }
    }
    // A recording that was refused is still never recorded over.
    let same_as_played = |f: &std::path::PathBuf| {
        config.play_loop.as_ref().is_some_and(|p| p.canonicalize().ok() == f.canonicalize().ok())
    };
    let loop_file = config.loop_file.clone().filter(|f| !same_as_played(f));
    let max_frames = u64::from(config.fps) * 120;
    let mut live = LiveLoop::new(loop_file, max_frames)
        .map_err(|e| PlatformError::Other(format!("cannot create the loop recording directory: {e}")))?;
    live.set_state_fingerprint(state);
    Ok(live)
}

/// The window, or, where none can open, the headless fallback (which changes `config`).
fn open_window(config: &mut Config) -> Option<Video> {
    // With neither variable set there is no display to find; asking SDL anyway makes its
    // Wayland probe print an "error:" line about XDG_RUNTIME_DIR.
    let display_named =
        ["DISPLAY", "WAYLAND_DISPLAY"].iter().any(|v| std::env::var_os(v).is_some_and(|d| !d.is_empty()));
    if !display_named {
        fall_back_to_headless(config, "neither DISPLAY nor WAYLAND_DISPLAY is set");
        return None;
    }
    match Video::open(config.size) {
        Ok(video) => Some(video),
        Err(e) => {
            fall_back_to_headless(config, &e.to_string());
            None
        }
    }
}

/// No display: run the demo headless for a while and leave its sound and last frame in files,
/// so a first run on a server still shows something (README: "Run the demo").
fn fall_back_to_headless(config: &mut Config, why: &str) {
    config.headless = true;
    if config.frames == 0 {
        config.frames = 600;
    }
    let wav = config.wav_out.get_or_insert_with(|| "handmade-demo.wav".into()).display().to_string();
    let png = config.screenshot.get_or_insert_with(|| "handmade-demo.png".into()).display().to_string();
    log::warn!(
        "no window ({why}): running headless for {} frames instead; without a sound device the sound goes to {wav}, \
         the last frame to {png}",
        config.frames
    );
}

/// The window title's state after a build (the window adds the "handmade - " prefix).
fn build_title(build: &BuildEvent) -> String {
    if build.ok {
        String::new()
    } else {
        let first = build.summary.lines().next().unwrap_or("build failed");
        format!("BUILD FAILED: {}", first.chars().take(100).collect::<String>())
    }
}

/// One line per new library running: its load time, and for a build the save-to-code time with
/// its parts. `load_time` is `None` when the per-frame poll had loaded the build's library
/// before the build reported: the save-to-code time is then taken at the report, a little late.
fn log_reload(source: &std::path::Path, load_time: Option<Duration>, build: Option<BuildEvent>) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let done = match load_time {
        Some(t) => format!("reloaded {} in {:.3} ms", source.display(), ms(t)),
        None => format!("{} was already reloaded by the per-frame poll", source.display()),
    };
    let Some(b) = build else {
        log::info!("{done}");
        return;
    };
    let save_to_code = std::time::SystemTime::now().duration_since(b.saved_at).unwrap_or_default();
    log::info!(
        "{done}; save-to-code {:.0} ms (detect {:.1} ms, build {:.0} ms, {} {:.1} ms, load {:.1} ms)",
        ms(save_to_code),
        ms(b.detect),
        ms(b.build),
        if b.prepared_on_watcher { "checked on the watcher" } else { "checked in frames" },
        ms(b.prepare),
        ms(load_time.unwrap_or_default()),
    );
}

fn load_loop_sample(config: &Config, arena: &mut MemoryArena<'_>) -> GameSample {
    let dir = config.data_dir.clone().unwrap_or_else(assets::default_data_dir);
    let path = dir.join("loop.wav");
    match assets::load_wav(&path, arena) {
        Ok(sample) => sample,
        Err(e) => {
            log::warn!("{e}; the demo runs without its loop sound");
            GameSample { left: std::ptr::null(), right: std::ptr::null(), frame_count: 0, samples_per_second: 0 }
        }
    }
}

/// `2104` as `2,104`, as people read sizes.
fn group_digits(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn write_sync_dump(path: &std::path::Path, ring: &AudioSyncRing) -> Result<(), String> {
    let mut text = String::from("# write_cursor frames_written queued_frames expected_frame_boundary\n");
    for m in ring.iter() {
        text += &format!("{} {} {} {}\n", m.write_cursor, m.frames_written, m.queued_frames, m.expected_frame_boundary);
    }
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_sizes() {
        assert_eq!(
            (group_digits(2104), group_digits(35880), group_digits(7)),
            ("2,104".into(), "35,880".into(), "7".into())
        );
    }

    #[test]
    fn a_frame_counts_as_its_highest_kind() {
        assert_eq!(FrameKind::Normal.max(FrameKind::Event), FrameKind::Event);
        assert_eq!(FrameKind::Reload.max(FrameKind::Event), FrameKind::Reload);
    }

    #[test]
    fn build_titles_carry_no_prefix_of_their_own() {
        let ok = BuildEvent {
            ok: true,
            summary: String::new(),
            saved_at: std::time::SystemTime::now(),
            detect: Duration::ZERO,
            build: Duration::ZERO,
            prepared: None,
            prepare: Duration::ZERO,
            prepared_on_watcher: false,
        };
        assert_eq!(build_title(&ok), "");
        let failed = BuildEvent { ok: false, summary: "error[E0308]: mismatched types\nmore".into(), ..ok };
        assert_eq!(build_title(&failed), "BUILD FAILED: error[E0308]: mismatched types");
    }
}
