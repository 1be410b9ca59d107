//! The library file's stamp, polled on a thread of its own, so the real-time frame thread
//! makes no file system call to notice a new build. A path lookup can wait on directory locks
//! and on the disk: `statx` on the frame thread (one a frame, the reload poll) was the one
//! system call there besides the sound device's and the frame-rate sleep.
//!
//! The thread stats the file every `POLL` and publishes what it saw in a few atomics behind a
//! sequence counter (a seqlock: one writer, readers retry while a write is in the middle). The
//! frame reads it without a system call or an allocation; an error comes back as its OS code.

use std::io;
use std::path::Path;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{fence, AtomicBool, AtomicI32, AtomicU32, AtomicU64};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use super::FileStamp;

/// How often the file is looked at: a quarter of a 60 fps frame, so a change is seen by the
/// next frame's poll nearly always, for about 250 `statx` a second on a thread that sleeps
/// between them.
const POLL: Duration = Duration::from_millis(4);

#[derive(Default)]
struct Shared {
    seq: AtomicU64,
    /// 0: the stamp fields hold a stamp; otherwise the OS error code the stat returned.
    errno: AtomicI32,
    modified_ns: AtomicU64,
    len: AtomicU64,
    inode: AtomicU64,
    mode: AtomicU32,
    stop: AtomicBool,
}

impl Shared {
    fn publish(&self, seen: &io::Result<FileStamp>) {
        let seq = self.seq.load(Relaxed);
        self.seq.store(seq.wrapping_add(1), Relaxed);
        fence(Release);
        match seen {
            Ok(stamp) => {
                let ns = stamp.modified.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
                self.modified_ns.store(ns, Relaxed);
                self.len.store(stamp.len, Relaxed);
                self.inode.store(stamp.inode, Relaxed);
                self.mode.store(stamp.mode, Relaxed);
                self.errno.store(0, Relaxed);
            }
            Err(e) => self.errno.store(e.raw_os_error().filter(|&code| code != 0).unwrap_or(libc::EIO), Relaxed),
        }
        self.seq.store(seq.wrapping_add(2), Release);
    }

    fn read(&self) -> io::Result<FileStamp> {
        loop {
            let before = self.seq.load(Acquire);
            let errno = self.errno.load(Relaxed);
            let stamp = FileStamp {
                modified: SystemTime::UNIX_EPOCH + Duration::from_nanos(self.modified_ns.load(Relaxed)),
                len: self.len.load(Relaxed),
                inode: self.inode.load(Relaxed),
                mode: self.mode.load(Relaxed),
            };
            fence(Acquire);
            if before % 2 == 0 && self.seq.load(Relaxed) == before {
                return if errno == 0 { Ok(stamp) } else { Err(io::Error::from_raw_os_error(errno)) };
            }
            std::hint::spin_loop();
        }
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
        let shared = Arc::new(Shared::default());
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

    /// The stamp the thread saw last, at most `POLL` old (while the thread gets a CPU).
    pub fn stamp(&self) -> io::Result<FileStamp> {
        self.shared.read()
    }

    /// How many looks at the file have been published: one that began after some moment is
    /// in once this is 2 past its value at that moment (one may have been under way).
    pub fn polls(&self) -> u64 {
        self.shared.seq.load(Acquire) / 2
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
        assert_eq!(watch.stamp().unwrap(), FileStamp::of(&path).unwrap(), "current from the start");
        let wait_for = |what: &dyn Fn(&io::Result<FileStamp>) -> bool| {
            let start = std::time::Instant::now();
            while !what(&watch.stamp()) {
                assert!(start.elapsed() < Duration::from_secs(5), "not seen in 5 s");
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        std::fs::write(&path, b"a longer one").unwrap();
        wait_for(&|s| s.as_ref().is_ok_and(|s| s.len == 12));
        assert_eq!(watch.stamp().unwrap(), FileStamp::of(&path).unwrap(), "the same stamp a direct stat gives");
        std::fs::remove_file(&path).unwrap();
        wait_for(&|s| s.as_ref().is_err_and(|e| e.kind() == io::ErrorKind::NotFound));
    }

    #[test]
    fn a_torn_read_is_never_returned() {
        let shared = Shared::default();
        let stamp = |len| FileStamp { modified: SystemTime::UNIX_EPOCH, len, inode: len, mode: 0 };
        // Miri (.ci/miri.sh runs this test) explores the weak orderings, slowly: fewer rounds.
        let rounds = if cfg!(miri) { 300 } else { 20_000 };
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 0..rounds {
                    shared.publish(&Ok(stamp(i)));
                }
            });
            for _ in 0..rounds {
                if let Ok(seen) = shared.read() {
                    assert_eq!(seen.len, seen.inode, "fields from two writes");
                }
            }
        });
    }
}
