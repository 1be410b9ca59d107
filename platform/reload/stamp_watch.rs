//! The library file's stamp, polled on a thread of its own, so the real-time frame thread
//! makes no file system call to notice a new build. A path lookup can wait on directory locks
//! and on the disk: `statx` on the frame thread (one a frame, the reload poll) was the one
//! system call there besides the sound device's and the frame-rate sleep.
//!
//! The thread stats the file every `POLL` and publishes what it saw through a `SeqLock`: the
//! frame reads it without a system call or an allocation; an error comes back as its OS code.

use std::io;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use super::FileStamp;
use crate::seqlock::SeqLock;

/// How often the file is looked at: a quarter of a 60 fps frame, so a change is seen by the
/// next frame's poll nearly always, for about 250 `statx` a second on a thread that sleeps
/// between them.
const POLL: Duration = Duration::from_millis(4);

struct Shared {
    /// errno (0: the rest is a stamp), modified (ns since the epoch), len, inode, mode.
    stamp: SeqLock<5>,
    stop: AtomicBool,
}

impl Shared {
    fn publish(&self, seen: &io::Result<FileStamp>) {
        let words = match seen {
            Ok(stamp) => {
                let ns = stamp.modified.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
                [0, ns, stamp.len, stamp.inode, u64::from(stamp.mode)]
            }
            Err(e) => [e.raw_os_error().filter(|&code| code != 0).unwrap_or(libc::EIO) as u64, 0, 0, 0, 0],
        };
        self.stamp.publish(words);
    }

    fn decode([errno, ns, len, inode, mode]: [u64; 5]) -> io::Result<FileStamp> {
        if errno != 0 {
            return Err(io::Error::from_raw_os_error(errno as i32));
        }
        let modified = SystemTime::UNIX_EPOCH + Duration::from_nanos(ns);
        Ok(FileStamp { modified, len, inode, mode: mode as u32 })
    }
}

/// Watches one file until dropped.
pub(super) struct StampWatch {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl StampWatch {
    /// Stats `path` once here (so the first read is current), then every `POLL` on a thread.
    pub fn start(path: &Path) -> io::Result<Self> {
        let shared = Arc::new(Shared { stamp: SeqLock::new([0; 5]), stop: AtomicBool::new(false) });
        shared.publish(&FileStamp::of(path));
        let (theirs, path) = (Arc::clone(&shared), path.to_path_buf());
        let thread = std::thread::Builder::new().name("handmade-libwatch".into()).spawn(move || {
            while !theirs.stop.load(Relaxed) {
                std::thread::sleep(POLL);
                theirs.publish(&FileStamp::of(&path));
            }
        })?;
        Ok(Self { shared, thread: Some(thread) })
    }

    /// The stamp the thread saw last, at most `POLL` old (while the thread gets a CPU), or
    /// `None` while it is publishing a new one: the caller looks again next frame rather than
    /// take an older stamp, which could pass for a change after an install.
    pub fn stamp(&self) -> Option<io::Result<FileStamp>> {
        self.shared.stamp.try_read().map(Shared::decode)
    }

    /// How many looks at the file have been published: one that began after some moment is
    /// in once this is 2 past its value at that moment (one may have been under way).
    pub fn polls(&self) -> u64 {
        self.shared.stamp.publishes()
    }
}

impl Drop for StampWatch {
    fn drop(&mut self) {
        self.shared.stop.store(true, Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_a_change_and_a_removal_within_a_few_polls() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("libgame.so");
        std::fs::write(&path, b"one").unwrap();
        let watch = StampWatch::start(&path).unwrap();
        // A read that meets a publish under way is `None`: the next one is not.
        let read = || loop {
            if let Some(seen) = watch.stamp() {
                return seen;
            }
            std::thread::yield_now();
        };
        assert_eq!(read().unwrap(), FileStamp::of(&path).unwrap(), "current from the start");
        let wait_for = |what: &dyn Fn(&io::Result<FileStamp>) -> bool| {
            let start = std::time::Instant::now();
            while !what(&read()) {
                assert!(start.elapsed() < Duration::from_secs(5), "not seen in 5 s");
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        std::fs::write(&path, b"a longer one").unwrap();
        wait_for(&|s| s.as_ref().is_ok_and(|s| s.len == 12));
        assert_eq!(read().unwrap(), FileStamp::of(&path).unwrap(), "the same stamp a direct stat gives");
        std::fs::remove_file(&path).unwrap();
        wait_for(&|s| s.as_ref().is_err_and(|e| e.kind() == io::ErrorKind::NotFound));
    }
}
