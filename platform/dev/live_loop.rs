//! Live loop editing (Handmade Hero days 23-25): `l` starts recording, the next `l` loops the
//! recording, the next turns it off. Recording snapshots the game's permanent storage into a
//! memory-mapped file and appends every frame's input; playback restores the snapshot at each
//! loop start and replays the inputs, while the code is edited and reloaded underneath.
//!
//! The file: a 72-byte header, the snapshot at offset 4096, then fixed-size input records.
//! Space is reserved with `posix_fallocate` when recording starts, so a full disk is one clear
//! error then, never a SIGBUS later. `complete` and the checksum are written last: a file from an
//! interrupted recording is refused, never half used.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use handmade_api::{button, GameButtonState, GameControllerInput, GameInput, GameMemory, LAYOUT_HASH, MAX_CONTROLLERS};
use memmap2::MmapMut;

use crate::memory::snapshot::{permanent_bytes, used_permanent_bytes};

const MAGIC: [u8; 8] = *b"HMLOOP\x00\x03";
const HEADER_BYTES: usize = 80;
const SNAPSHOT_OFFSET: usize = 4096;
const BUTTON_BYTES: usize = 5;
const CONTROLLER_BYTES: usize = 2 + 8 + button::COUNT * BUTTON_BYTES;
/// One serialised `GameInput` (fields written one by one, little-endian: no padding bytes).
pub const INPUT_RECORD_BYTES: usize = 8 + 4 + MAX_CONTROLLERS * CONTROLLER_BYTES + 26 * BUTTON_BYTES;

#[derive(Debug)]
pub enum LoopError {
    Io { path: PathBuf, what: &'static str, source: std::io::Error },
    Corrupt { path: PathBuf, why: String },
}

impl fmt::Display for LoopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoopError::Io { path, what, source } => write!(f, "loop file {}: cannot {what}: {source}", path.display()),
            LoopError::Corrupt { path, why } => write!(f, "loop file {} is not usable: {why}", path.display()),
        }
    }
}

impl std::error::Error for LoopError {}

/// The header fields, in file order (nine little-endian u64s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    layout_hash: u64,
    snapshot_bytes: u64,
    input_record_bytes: u64,
    max_frames: u64,
    frame_count: u64,
    complete: u64,
    checksum: u64,
    /// Where the game's permanent storage was: its state holds pointers into it (its arenas,
    /// delay lines, pools), so a snapshot is only valid at the same address.
    permanent_base: u64,
    /// The game state's layout fingerprint (`game_state_layout`; 0 when the game does not say):
    /// a snapshot of one shape is never replayed into a game of another.
    state_fingerprint: u64,
}

impl Header {
    fn write(&self, out: &mut [u8]) {
        out[..8].copy_from_slice(&MAGIC);
        let fields = [
            self.layout_hash,
            self.snapshot_bytes,
            self.input_record_bytes,
            self.max_frames,
            self.frame_count,
            self.complete,
            self.checksum,
            self.permanent_base,
            self.state_fingerprint,
        ];
        for (i, v) in fields.iter().enumerate() {
            out[8 + i * 8..16 + i * 8].copy_from_slice(&v.to_le_bytes());
        }
    }

    fn read(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() < HEADER_BYTES {
            return Err(format!("{} bytes, shorter than its header", bytes.len()));
        }
        if bytes[..8] != MAGIC {
            return Err("not a handmade loop recording (bad magic)".into());
        }
        let field = |i: usize| u64::from_le_bytes(bytes[8 + i * 8..16 + i * 8].try_into().expect("8 bytes"));
        Ok(Self {
            layout_hash: field(0),
            snapshot_bytes: field(1),
            input_record_bytes: field(2),
            max_frames: field(3),
            frame_count: field(4),
            complete: field(5),
            checksum: field(6),
            permanent_base: field(7),
            state_fingerprint: field(8),
        })
    }

    fn inputs_offset(&self) -> Option<usize> {
        SNAPSHOT_OFFSET.checked_add(usize::try_from(self.snapshot_bytes).ok()?.checked_next_multiple_of(4096)?)
    }

    fn file_len(&self) -> Option<usize> {
        let records = usize::try_from(self.max_frames).ok()?.checked_mul(INPUT_RECORD_BYTES)?;
        self.inputs_offset()?.checked_add(records)
    }
}

fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for part in parts {
        for &b in *part {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// Checks a finished recording held in `bytes`; returns its header. Pure, for the fuzzer.
fn validate(bytes: &[u8], permanent_size: usize) -> Result<Header, String> {
    let header = Header::read(bytes)?;
    if header.layout_hash != LAYOUT_HASH {
        return Err("recorded by a platform with another contract".into());
    }
    if header.input_record_bytes != INPUT_RECORD_BYTES as u64 {
        return Err(format!("input records of {} bytes, expected {INPUT_RECORD_BYTES}", header.input_record_bytes));
    }
    if header.complete != 1 {
        return Err("the recording was interrupted before it was finished".into());
    }
    if header.frame_count == 0 || header.frame_count > header.max_frames {
        return Err(format!("{} frames recorded of at most {}", header.frame_count, header.max_frames));
    }
    if header.snapshot_bytes > permanent_size as u64 {
        return Err(format!(
            "a {} byte snapshot does not fit {permanent_size} bytes of storage",
            header.snapshot_bytes
        ));
    }
    let len = header.file_len().ok_or("sizes overflow")?;
    if bytes.len() < len {
        return Err(format!("truncated: {} of {len} bytes", bytes.len()));
    }
    let (snapshot, inputs) = sections(bytes, &header);
    if fnv1a(&[snapshot, inputs]) != header.checksum {
        return Err("checksum mismatch (the file was changed or damaged)".into());
    }
    Ok(header)
}

/// The snapshot and the recorded inputs of a (validated or being written) file.
fn sections<'b>(bytes: &'b [u8], header: &Header) -> (&'b [u8], &'b [u8]) {
    let inputs_offset = header.inputs_offset().unwrap_or(bytes.len());
    let snapshot = &bytes[SNAPSHOT_OFFSET..SNAPSHOT_OFFSET + header.snapshot_bytes as usize];
    let inputs = &bytes[inputs_offset..inputs_offset + header.frame_count as usize * INPUT_RECORD_BYTES];
    (snapshot, inputs)
}

/// Public entry for the fuzzer and tests: is `bytes` a usable recording?
/// The address of permanent storage when `path` was recorded, read from its header (so the
/// memory block can be mapped there before the recording is opened). `None` if unreadable: the
/// full check in `open_recording` then says why.
pub fn recorded_permanent_base(path: &Path) -> Option<u64> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path).ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut header = [0u8; HEADER_BYTES];
    file.take(HEADER_BYTES as u64).read_exact(&mut header).ok()?;
    Header::read(&header).ok().map(|h| h.permanent_base).filter(|&base| base != 0)
}

pub fn check_recording(bytes: &[u8], permanent_size: usize) -> Result<(), String> {
    validate(bytes, permanent_size).map(|_| ())
}

/// For the fuzzer: writes this build's layout hash into a recording's header (a file shorter
/// than that field is left alone), so mutated files reach the checks behind it.
pub fn stamp_layout_hash(bytes: &mut [u8]) {
    if let Some(field) = bytes.get_mut(8..16) {
        field.copy_from_slice(&LAYOUT_HASH.to_le_bytes());
    }
}

/// For the fuzzer: writes the checksum of a recording's own snapshot and inputs into its
/// header, where the header and both sections fit in `bytes` (else leaves it alone), so
/// mutated files reach the checks behind the checksum.
pub fn reseal_checksum(bytes: &mut [u8]) {
    let Ok(mut header) = Header::read(bytes) else { return };
    let (Ok(snapshot), Ok(frames)) = (usize::try_from(header.snapshot_bytes), usize::try_from(header.frame_count))
    else {
        return;
    };
    let snapshot_end = SNAPSHOT_OFFSET.checked_add(snapshot);
    let inputs_end = header.inputs_offset().and_then(|at| at.checked_add(frames.checked_mul(INPUT_RECORD_BYTES)?));
    if !matches!((snapshot_end, inputs_end), (Some(s), Some(i)) if s <= bytes.len() && i <= bytes.len()) {
        return;
    }
    let (snapshot, inputs) = sections(bytes, &header);
    header.checksum = fnv1a(&[snapshot, inputs]);
    header.write(bytes);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopMode {
    Off,
    Recording,
    Playing,
}

/// What `LiveLoop::begin_frame` did to this frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopStep {
    /// Not playing: the live input stands.
    Live,
    /// Input replaced from the recording.
    Replayed,
    /// Input replaced and the snapshot restored: the loop (re)started here.
    Restarted,
}

pub struct LiveLoop {
    path: PathBuf,
    _private_dir: Option<tempfile::TempDir>,
    file: Option<File>,
    map: Option<MmapMut>,
    header: Header,
    mode: LoopMode,
    cursor: u64,
    /// Playback was just switched on: it starts at the next frame, so this frame's sound can
    /// fade out before the snapshot is restored (no click at the first seam).
    starting: bool,
    max_frames: u64,
}

impl LiveLoop {
    /// A loop that records to `path`, or to a file in a private 0700 directory.
    pub fn new(path: Option<PathBuf>, max_frames: u64) -> std::io::Result<Self> {
        let (path, private_dir) = match path {
            Some(p) => (p, None),
            None => {
                crate::private_fs::sweep_abandoned(&std::env::temp_dir(), "handmade-loop-");
                let dir = crate::private_fs::private_dir("handmade-loop-")?;
                (dir.path().join("loop.hml"), Some(dir))
            }
        };
        let header = Header {
            layout_hash: LAYOUT_HASH,
            snapshot_bytes: 0,
            input_record_bytes: INPUT_RECORD_BYTES as u64,
            max_frames,
            frame_count: 0,
            complete: 0,
            checksum: 0,
            permanent_base: 0,
            state_fingerprint: 0,
        };
        Ok(Self {
            path,
            _private_dir: private_dir,
            file: None,
            map: None,
            header,
            mode: LoopMode::Off,
            cursor: 0,
            starting: false,
            max_frames,
        })
    }

    pub fn mode(&self) -> LoopMode {
        self.mode
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn recorded_frames(&self) -> u64 {
        self.header.frame_count
    }

    /// Opens an existing recording for playback (`--play-loop`). Corrupt files are refused.
    /// A recording whose snapshot was taken with permanent storage at another address than
    /// `permanent_base` is refused too (0: do not check, for tools that never run a game on it).
    /// Recordings made afterwards go to `record_to` or a private directory, never over `path`.
    pub fn open_recording(
        path: &Path,
        permanent_base: u64,
        permanent_size: usize,
        record_to: Option<PathBuf>,
    ) -> Result<Self, LoopError> {
        let io = |what, source| LoopError::Io { path: path.into(), what, source };
        let corrupt = |why| LoopError::Corrupt { path: path.into(), why };
        let file = OpenOptions::new().read(true).write(true).open(path).map_err(|e| io("open it", e))?;
        // SAFETY: the file is ours for the run; if someone truncates it underneath, reads past
        // the end fault, which is the documented hazard of any file mapping.
        let map = unsafe { MmapMut::map_mut(&file) }.map_err(|e| io("map it", e))?;
        let header = validate(&map, permanent_size).map_err(corrupt)?;
        if permanent_base != 0 && header.permanent_base != permanent_base {
            return Err(corrupt(format!(
                "recorded with the game's memory at {:#x}, this run has it at {:#x}: the game's pointers \
                 would be wrong (a recording replays in the run that made it)",
                header.permanent_base, permanent_base
            )));
        }
        let same_file = |other: &PathBuf| other.canonicalize().ok() == path.canonicalize().ok();
        let record_to = match record_to {
            Some(other) if same_file(&other) => {
                log::warn!(
                    "--loop-file names the recording being played ({}); new recordings go to a private directory",
                    path.display()
                );
                None
            }
            other => other,
        };
        let mut live = Self::new(record_to, header.max_frames).map_err(|e| io("make a directory for recordings", e))?;
        live.file = Some(file);
        live.map = Some(map);
        live.header = header;
        live.mode = LoopMode::Playing;
        Ok(live)
    }

    /// The running game's state fingerprint, stamped on new recordings.
    pub fn set_state_fingerprint(&mut self, fingerprint: u64) {
        self.header.state_fingerprint = fingerprint;
    }

    /// The state fingerprint the recording being played was made with (0: not said).
    pub fn recorded_state_fingerprint(&self) -> u64 {
        self.header.state_fingerprint
    }

    /// Stops recording or playing (the state it holds no longer fits the game). Returns whether
    /// anything was stopped. A recording in progress is finished first, so its file stays valid.
    pub fn stop(&mut self) -> bool {
        if self.mode == LoopMode::Off {
            return false;
        }
        self.finish();
        self.map = None;
        self.file = None;
        self.mode = LoopMode::Off;
        true
    }

    /// The `l` key: Off -> Recording -> Playing -> Off.
    pub fn toggle(&mut self, memory: &GameMemory) -> Result<LoopMode, LoopError> {
        self.mode = match self.mode {
            LoopMode::Off => {
                self.start_recording(memory)?;
                LoopMode::Recording
            }
            LoopMode::Recording => {
                self.finish_recording();
                self.cursor = 0;
                self.starting = true;
                log::info!("live loop: playing {} recorded frames", self.header.frame_count);
                LoopMode::Playing
            }
            LoopMode::Playing => {
                self.map = None;
                self.file = None;
                LoopMode::Off
            }
        };
        Ok(self.mode)
    }

    fn start_recording(&mut self, memory: &GameMemory) -> Result<(), LoopError> {
        let io = |what, source| LoopError::Io { path: self.path.clone(), what, source };
        let snapshot_bytes = used_permanent_bytes(memory);
        let header = Header {
            snapshot_bytes: snapshot_bytes as u64,
            frame_count: 0,
            complete: 0,
            checksum: 0,
            permanent_base: memory.permanent_storage as u64,
            ..self.header
        };
        let len = header.file_len().expect("sizes fit: the snapshot is at most the permanent storage");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&self.path)
            .map_err(|e| io("create it", e))?;
        // SAFETY: plain syscall on a descriptor we own; reserves real blocks for the whole file.
        let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len as libc::off_t) };
        if rc != 0 {
            drop(file);
            let _ = std::fs::remove_file(&self.path);
            return Err(io("reserve space for it", std::io::Error::from_raw_os_error(rc)));
        }
        // SAFETY: we created the file and hold it open; see `open_recording` on truncation.
        let mut map = unsafe { MmapMut::map_mut(&file) }.map_err(|e| io("map it", e))?;
        // SAFETY: called between game calls on the platform's storage description.
        let storage = unsafe { permanent_bytes(memory) };
        map[SNAPSHOT_OFFSET..SNAPSHOT_OFFSET + snapshot_bytes].copy_from_slice(&storage[..snapshot_bytes]);
        header.write(&mut map[..HEADER_BYTES]);
        self.header = header;
        self.map = Some(map);
        self.file = Some(file);
        log::info!("live loop: recording to {} ({} KiB snapshot)", self.path.display(), snapshot_bytes / 1024);
        Ok(())
    }

    /// Writes `complete` and the checksum; the file is valid from here on.
    fn finish_recording(&mut self) {
        let Some(map) = self.map.as_mut() else { return };
        let (snapshot, inputs) = sections(map, &self.header);
        self.header.checksum = fnv1a(&[snapshot, inputs]);
        self.header.complete = 1;
        self.header.write(&mut map[..HEADER_BYTES]);
        let _ = map.flush_async();
    }

    /// Per frame, before the game's update: records the live input, or replaces it with the
    /// recorded one (restoring the snapshot at each loop start). No allocation, no syscall.
    pub fn begin_frame(&mut self, input: &mut GameInput, memory: &GameMemory) -> LoopStep {
        let Some(map) = self.map.as_mut() else { return LoopStep::Live };
        match self.mode {
            LoopMode::Off => LoopStep::Live,
            LoopMode::Recording => {
                let at =
                    self.header.inputs_offset().unwrap_or(0) + self.header.frame_count as usize * INPUT_RECORD_BYTES;
                write_input(input, &mut map[at..at + INPUT_RECORD_BYTES]);
                self.header.frame_count += 1;
                if self.header.frame_count == self.max_frames {
                    self.finish_recording();
                    log::info!("live loop: recording full; playing {} recorded frames", self.header.frame_count);
                    self.mode = LoopMode::Playing;
                    self.cursor = 0;
                }
                LoopStep::Live
            }
            LoopMode::Playing if self.starting => {
                self.starting = false;
                LoopStep::Live
            }
            LoopMode::Playing => {
                let restart = self.cursor == 0;
                if restart {
                    let (snapshot, _) = sections(map, &self.header);
                    // SAFETY: between game calls, on the platform's storage description.
                    let storage = unsafe { permanent_bytes(memory) };
                    storage[..snapshot.len()].copy_from_slice(snapshot);
                }
                let at = self.header.inputs_offset().unwrap_or(0) + self.cursor as usize * INPUT_RECORD_BYTES;
                let frame_index = input.frame_index;
                read_input(&map[at..at + INPUT_RECORD_BYTES], input);
                input.frame_index = frame_index;
                self.cursor = (self.cursor + 1) % self.header.frame_count.max(1);
                if restart {
                    LoopStep::Restarted
                } else {
                    LoopStep::Replayed
                }
            }
        }
    }

    /// True when the next frame restarts the loop (the platform fades this frame's sound out).
    pub fn restarts_next_frame(&self) -> bool {
        self.mode == LoopMode::Playing && self.cursor == 0
    }

    /// Ends a recording in progress cleanly (on exit or a signal): the file is left valid.
    pub fn finish(&mut self) {
        if self.mode == LoopMode::Recording {
            self.finish_recording();
            self.mode = LoopMode::Off;
        }
        if let Some(map) = self.map.as_ref() {
            let _ = map.flush();
        }
    }
}

fn write_button(b: &GameButtonState, out: &mut [u8]) {
    out[..4].copy_from_slice(&b.half_transition_count.to_le_bytes());
    out[4] = b.ended_down;
}

fn read_button(bytes: &[u8]) -> GameButtonState {
    GameButtonState {
        half_transition_count: u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes")),
        ended_down: bytes[4],
    }
}

fn write_input(input: &GameInput, out: &mut [u8]) {
    out[..8].copy_from_slice(&input.frame_index.to_le_bytes());
    out[8..12].copy_from_slice(&input.dt_for_frame.to_le_bytes());
    let mut at = 12;
    for c in &input.controllers {
        out[at] = c.is_connected;
        out[at + 1] = c.is_analog;
        out[at + 2..at + 6].copy_from_slice(&c.stick_average_x.to_le_bytes());
        out[at + 6..at + 10].copy_from_slice(&c.stick_average_y.to_le_bytes());
        at += 10;
        for b in &c.buttons {
            write_button(b, &mut out[at..at + BUTTON_BYTES]);
            at += BUTTON_BYTES;
        }
    }
    for b in &input.letters {
        write_button(b, &mut out[at..at + BUTTON_BYTES]);
        at += BUTTON_BYTES;
    }
    debug_assert_eq!(at, INPUT_RECORD_BYTES, "input record layout");
}

fn read_input(bytes: &[u8], input: &mut GameInput) {
    let f32_at = |at: usize| f32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    input.frame_index = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    input.dt_for_frame = f32_at(8);
    let mut at = 12;
    for c in input.controllers.iter_mut() {
        *c = GameControllerInput {
            is_connected: bytes[at],
            is_analog: bytes[at + 1],
            stick_average_x: f32_at(at + 2),
            stick_average_y: f32_at(at + 6),
            buttons: c.buttons,
        };
        at += 10;
        for b in c.buttons.iter_mut() {
            *b = read_button(&bytes[at..]);
            at += BUTTON_BYTES;
        }
    }
    for b in input.letters.iter_mut() {
        *b = read_button(&bytes[at..]);
        at += BUTTON_BYTES;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory_over(storage: &mut [u8]) -> GameMemory {
        // SAFETY: `GameMemory` is plain data; all-zero is a valid value.
        let mut memory: GameMemory = unsafe { std::mem::zeroed() };
        memory.permanent_storage = storage.as_mut_ptr();
        memory.permanent_storage_size = storage.len() as u64;
        memory.game_arena_high_water = 100;
        memory
    }

    fn input_with(frame: u64, right_down: bool) -> GameInput {
        let mut input = GameInput { frame_index: frame, dt_for_frame: 1.0 / 60.0, ..Default::default() };
        input.controllers[0].buttons[button::MOVE_RIGHT].ended_down = u8::from(right_down);
        input.letters[3].half_transition_count = 2;
        input
    }

    #[test]
    fn input_records_round_trip() {
        let mut input = input_with(42, true);
        input.controllers[2].stick_average_x = -0.5;
        let mut bytes = [0u8; INPUT_RECORD_BYTES];
        write_input(&input, &mut bytes);
        let mut back = GameInput::default();
        read_input(&bytes, &mut back);
        assert_eq!(back, input);
    }

    #[test]
    fn record_then_play_restores_the_snapshot_and_replays_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let mut storage = vec![0u8; 8192];
        storage[0] = 11;
        let memory = memory_over(&mut storage);
        let mut live = LiveLoop::new(Some(dir.path().join("l.hml")), 100).unwrap();
        assert_eq!(live.toggle(&memory).unwrap(), LoopMode::Recording);
        for frame in 0..3 {
            let mut input = input_with(frame, frame == 1);
            assert_eq!(live.begin_frame(&mut input, &memory), LoopStep::Live);
        }
        assert_eq!(live.toggle(&memory).unwrap(), LoopMode::Playing);
        assert!(live.restarts_next_frame(), "the toggle frame fades out: playback starts next frame");
        let mut toggle_frame = GameInput { frame_index: 9, ..Default::default() };
        assert_eq!(live.begin_frame(&mut toggle_frame, &memory), LoopStep::Live, "the toggle frame stays live");
        storage[0] = 99; // the game moved on
        let mut seen = Vec::new();
        for frame in 10..16 {
            let mut input = GameInput { frame_index: frame, ..Default::default() };
            let step = live.begin_frame(&mut input, &memory);
            if step == LoopStep::Restarted {
                assert_eq!(storage[0], 11, "snapshot restored at the loop start");
                storage[0] = 50;
            }
            seen.push((step, input.controllers[0].buttons[button::MOVE_RIGHT].ended_down, input.frame_index));
        }
        let steps: Vec<LoopStep> = seen.iter().map(|s| s.0).collect();
        use LoopStep::*;
        assert_eq!(steps, [Restarted, Replayed, Replayed, Restarted, Replayed, Replayed]);
        assert_eq!(seen.iter().map(|s| s.1).collect::<Vec<_>>(), [0, 1, 0, 0, 1, 0]);
        assert_eq!(seen[0].2, 10, "the frame counter keeps running");
        // The finished file is valid and reloadable.
        let bytes = std::fs::read(live.path()).unwrap();
        assert!(check_recording(&bytes, 8192).is_ok());
        let base = storage.as_ptr() as u64;
        assert!(LiveLoop::open_recording(live.path(), base, 8192, None).is_ok());
        let moved = LiveLoop::open_recording(live.path(), base + 4096, 8192, None).err().unwrap().to_string();
        assert!(moved.contains("this run has it at"), "{moved}");
        let mut replaying = LiveLoop::open_recording(live.path(), base, 8192, None).unwrap();
        assert_ne!(replaying.path(), live.path(), "new recordings never overwrite the one played");
        replaying.toggle(&memory).unwrap(); // playing -> off
        assert_eq!(std::fs::read(live.path()).unwrap(), bytes);
        // Even when --loop-file names the file being played.
        let mut same = LiveLoop::open_recording(live.path(), base, 8192, Some(live.path().into())).unwrap();
        assert_ne!(same.path(), live.path());
        same.toggle(&memory).unwrap(); // playing -> off
        same.toggle(&memory).unwrap(); // off -> recording, elsewhere
        same.finish();
        assert_eq!(std::fs::read(live.path()).unwrap(), bytes, "the played file is untouched");
    }

    #[test]
    fn damaged_and_interrupted_files_are_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let mut storage = vec![0u8; 8192];
        let memory = memory_over(&mut storage);
        let path = dir.path().join("l.hml");
        let mut live = LiveLoop::new(Some(path.clone()), 10).unwrap();
        live.toggle(&memory).unwrap();
        live.begin_frame(&mut GameInput::default(), &memory);
        let interrupted = std::fs::read(&path).unwrap();
        assert!(check_recording(&interrupted, 8192).unwrap_err().contains("interrupted"));
        live.finish();
        let good = std::fs::read(&path).unwrap();
        assert!(check_recording(&good, 8192).is_ok());
        assert!(check_recording(&good[..5000], 8192).unwrap_err().contains("truncated"));
        assert!(check_recording(&good[..10], 8192).unwrap_err().contains("shorter than its header"));
        let mut flipped = good.clone();
        flipped[SNAPSHOT_OFFSET + 3] ^= 1;
        assert!(check_recording(&flipped, 8192).unwrap_err().contains("checksum"));
        reseal_checksum(&mut flipped); // what the fuzzer does to reach the checks behind it
        assert!(check_recording(&flipped, 8192).is_ok());
        reseal_checksum(&mut flipped[..5000]); // sections beyond the end: left alone
        let mut other = good.clone();
        other[8] ^= 1;
        assert!(check_recording(&other, 8192).unwrap_err().contains("another contract"));
        stamp_layout_hash(&mut other);
        assert_eq!(other, good);
        assert!(check_recording(&good, 100).unwrap_err().contains("does not fit"));
        std::fs::write(&path, &good[..5000]).unwrap();
        let err = LiveLoop::open_recording(&path, 0, 8192, None).err().unwrap();
        assert!(err.to_string().starts_with("loop file ") && err.to_string().contains("truncated"), "{err}");
    }
}
