//! `--input-script`: deterministic input for tests and demos, one event a line:
//! `FRAME KEY down|up` (e.g. `30 right down`). Blank lines and `#` comments are ignored.
//! Events are applied at the start of their frame, in file order.
//!
//! When each event was applied (the wall clock, read once as its frame's input phase starts)
//! is kept in a vector sized at load and logged at debug level when the script is dropped,
//! after the run: `examples/input_to_sound.rs` lines it up with a timestamped recording of the
//! sink. In the frame that costs one clock read, like the frame loop's own `Instant::now()`
//! (a vDSO call where the clocksource allows), and no allocation.

use std::fmt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::input::Key;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScriptEvent {
    pub frame: u64,
    pub key: Key,
    pub down: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub struct ScriptError {
    pub path: String,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            0 => write!(f, "input script {}: {}", self.path, self.message),
            line => write!(f, "input script {} line {line}: {}", self.path, self.message),
        }
    }
}

impl std::error::Error for ScriptError {}

/// A parsed script with a cursor; `events_for` hands out each frame's events once.
#[derive(Debug, Default)]
pub struct InputScript {
    events: Vec<ScriptEvent>,
    next: usize,
    /// Per event, when it was applied: nanoseconds since the Unix epoch, 0 until then.
    applied_unix_ns: Vec<u64>,
}

impl InputScript {
    pub fn load(path: &Path) -> Result<Self, ScriptError> {
        let text = std::fs::read_to_string(path).map_err(|e| ScriptError {
            path: path.display().to_string(),
            line: 0,
            message: e.to_string(),
        })?;
        Self::parse(&text).map_err(|(line, message)| ScriptError { path: path.display().to_string(), line, message })
    }

    pub fn parse(text: &str) -> Result<Self, (usize, String)> {
        let mut events = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            events.push(parse_line(line).map_err(|m| (i + 1, m))?);
        }
        // Stable: events of one frame keep their file order.
        events.sort_by_key(|e| e.frame);
        let applied_unix_ns = vec![0; events.len()];
        Ok(Self { events, next: 0, applied_unix_ns })
    }

    /// The events of `frame` (frames must be asked for in increasing order).
    pub fn events_for(&mut self, frame: u64) -> &[ScriptEvent] {
        while self.next < self.events.len() && self.events[self.next].frame < frame {
            self.next += 1;
        }
        let start = self.next;
        while self.next < self.events.len() && self.events[self.next].frame == frame {
            self.next += 1;
        }
        if start < self.next {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
            self.applied_unix_ns[start..self.next].fill(now);
        }
        &self.events[start..self.next]
    }

    /// When each applied event was applied (ns since the Unix epoch), in the script's order.
    pub fn applied(&self) -> impl Iterator<Item = (&ScriptEvent, u64)> {
        self.events.iter().zip(self.applied_unix_ns.iter().copied()).filter(|&(_, ns)| ns != 0)
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// After the run (the script goes with the frame loop): one debug line per applied event.
impl Drop for InputScript {
    fn drop(&mut self) {
        if !log::log_enabled!(log::Level::Debug) {
            return;
        }
        for (e, ns) in self.applied() {
            let state = if e.down { "down" } else { "up" };
            log::debug!("input script: frame {} {:?} {state} applied at unix_ns {ns}", e.frame, e.key);
        }
    }
}

fn parse_line(line: &str) -> Result<ScriptEvent, String> {
    let mut words = line.split_whitespace();
    let (Some(frame), Some(key), Some(state), None) = (words.next(), words.next(), words.next(), words.next()) else {
        return Err(format!("expected `FRAME KEY down|up`, got `{line}`"));
    };
    let frame = frame.parse().map_err(|_| format!("`{frame}` is not a frame number"))?;
    let key = Key::from_name(key)
        .ok_or_else(|| format!("unknown key `{key}` (use left right up down space l escape or a letter)"))?;
    let down = match state {
        "down" => true,
        "up" => false,
        _ => return Err(format!("`{state}` is neither `down` nor `up`")),
    };
    Ok(ScriptEvent { frame, key, down })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_hands_out_events_per_frame() {
        let mut script =
            InputScript::parse("# demo\n10 right down\n\n5 space down\n10 right up # same frame\n").unwrap();
        assert_eq!(script.len(), 3);
        assert!(script.events_for(0).is_empty());
        assert_eq!(script.events_for(5)[0].key, Key::Space);
        let ten: Vec<bool> = script.events_for(10).iter().map(|e| e.down).collect();
        assert_eq!(ten, [true, false], "file order kept within a frame");
        assert!(script.events_for(11).is_empty());
        let applied: Vec<u64> = script.applied().map(|(e, ns)| e.frame + u64::from(ns > 0)).collect();
        assert_eq!(applied, [6, 11, 11], "each handed-out event has its time");
    }

    #[test]
    fn bad_lines_name_the_line_and_the_problem() {
        assert_eq!(InputScript::parse("1 right down\nx right down").unwrap_err().0, 2);
        assert!(InputScript::parse("1 f1 down").unwrap_err().1.contains("unknown key"));
        assert!(InputScript::parse("1 a sideways").unwrap_err().1.contains("neither"));
        assert!(InputScript::parse("1 a").unwrap_err().1.contains("expected"));
    }
}
