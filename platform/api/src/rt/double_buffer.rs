//! A double buffer: a writer (control/game thread) edits the back page and publishes it with an
//! atomic flip; a reader (audio thread) reads a consistent front page without waiting.
//!
//! The naive version (the one the buffer designs this project grew from use) flips a flag and
//! keeps editing "the other" page, which still holds the
//! state from before the previous flip: every edit made before that flip is lost from it (a
//! spectral mask loses columns). Here the writer, before its first edit after a flip, waits until
//! the reader has left the old front page and copies the published page into it, which is
//! equivalent to applying every delta to both pages. Only the writer ever waits, and only for
//! the length of one `read` call.
//!
//! ```
//! use handmade_api::{rt::double_buffer, MemoryArena};
//! let mut backing = vec![0u8; 4096];
//! let mut arena = MemoryArena::new("params", &mut backing);
//! let (mut writer, mut reader) = double_buffer::new(&mut arena, [0.0f32; 4]).unwrap();
//! writer.write()[0] = 1.0;
//! writer.publish();
//! writer.write()[1] = 2.0; // the back page already holds the first edit
//! writer.publish();
//! assert_eq!(reader.load(), [1.0, 2.0, 0.0, 0.0]);
//! ```

use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering::Release, Ordering::SeqCst};

use super::shared_block::push_zeroed;
use crate::{ArenaError, MemoryArena};

/// `reading` is 0 when the reader is idle, else 1 + the page it announced.
#[repr(C, align(128))]
struct Flags {
    front: AtomicUsize,
    reading: AtomicUsize,
}

pub struct DoubleBufferWriter<'a, T: Copy> {
    flags: &'a Flags,
    pages: NonNull<T>,
    /// The writer's own copy of `front` (it is the only one who changes it).
    front: usize,
    /// The back page has been checked free of the reader and synced since the last flip.
    owns_back: bool,
    _pages: PhantomData<&'a mut [T]>,
}

pub struct DoubleBufferReader<'a, T: Copy> {
    flags: &'a Flags,
    pages: NonNull<T>,
    _pages: PhantomData<&'a mut [T]>,
}

// SAFETY: the writer writes only the back page, and only after seeing (SeqCst) that the reader
// is not on it; the reader reads only a page it announced and re-checked is the front. Moving
// either half to another thread keeps that protocol; `T: Send` because values cross threads.
unsafe impl<T: Copy + Send> Send for DoubleBufferWriter<'_, T> {}
// SAFETY: as above.
unsafe impl<T: Copy + Send> Send for DoubleBufferReader<'_, T> {}

/// Two pages holding `initial`, split into the writing and the reading half.
pub fn new<'a, T: Copy>(
    arena: &mut MemoryArena<'a>,
    initial: T,
) -> Result<(DoubleBufferWriter<'a, T>, DoubleBufferReader<'a, T>), ArenaError> {
    // SAFETY: `Flags` is two atomics; zero means "front is page 0, reader idle".
    let flags: &'a Flags = unsafe { push_zeroed(arena) }?;
    let pages = NonNull::from(arena.push_array(2, initial)?).cast::<T>();
    let writer = DoubleBufferWriter {
        flags,
        pages,
        front: 0,
        owns_back: true, // both pages start equal and the reader only reads page 0
        _pages: PhantomData,
    };
    let reader = DoubleBufferReader { flags, pages, _pages: PhantomData };
    Ok((writer, reader))
}

impl<T: Copy> DoubleBufferWriter<'_, T> {
    /// The back page for editing; `None` while the reader still reads it (right after a flip).
    pub fn try_write(&mut self) -> Option<&mut T> {
        if !self.take_back() {
            return None;
        }
        // SAFETY: `take_back` saw the reader off the back page after the last flip; the reader
        // will not enter it before the next one (it re-checks `front` after announcing).
        Some(unsafe { self.pages.add(1 - self.front).as_mut() })
    }

    /// The back page for editing, spinning while the reader finishes with it (one `read`).
    pub fn write(&mut self) -> &mut T {
        while !self.take_back() {
            core::hint::spin_loop();
        }
        // SAFETY: as in `try_write`.
        unsafe { self.pages.add(1 - self.front).as_mut() }
    }

    /// Makes the back page the one the reader sees. Without an edit since the last flip it
    /// does nothing: flipping again would publish the old, unsynced page.
    pub fn publish(&mut self) {
        if !self.owns_back {
            return;
        }
        let back = 1 - self.front;
        self.flags.front.store(back, SeqCst);
        self.front = back;
        self.owns_back = false;
    }

    /// After a flip: once the reader is off the old front page, copy the published page into
    /// it so the next edits start from everything published so far.
    fn take_back(&mut self) -> bool {
        if self.owns_back {
            return true;
        }
        let back = 1 - self.front;
        // SeqCst pairs with the reader's announce-then-recheck: either it sees our flip and
        // moves on, or we see its announcement here and wait.
        if self.flags.reading.load(SeqCst) == back + 1 {
            return false;
        }
        // SAFETY: the reader is not on `back` and cannot enter it (see above); the front page
        // is only read here, which may overlap the reader's reads of it.
        unsafe {
            let published = self.pages.add(self.front).read();
            self.pages.add(back).write(published);
        }
        self.owns_back = true;
        true
    }
}

impl<T: Copy> DoubleBufferReader<'_, T> {
    /// Runs `f` on the published page. Never waits for the writer; it retries only if a flip
    /// lands between its two loads of `front`.
    pub fn read<R>(&mut self, f: impl FnOnce(&T) -> R) -> R {
        let page = loop {
            let i = self.flags.front.load(SeqCst);
            self.flags.reading.store(i + 1, SeqCst);
            if self.flags.front.load(SeqCst) == i {
                break i;
            }
        };
        let _leave = LeavePage(&self.flags.reading);
        // SAFETY: the reader announced `page` and then saw it is still the front, so the
        // writer (which checks the announcement before writing its back page) leaves it alone
        // until `_leave` clears the announcement.
        f(unsafe { self.pages.add(page).as_ref() })
    }

    /// A copy of the published page.
    pub fn load(&mut self) -> T {
        self.read(|page| *page)
    }
}

/// Clears the reader's announcement when a read ends, even by a panic in the caller's closure
/// (otherwise the writer would wait forever). Release: the reads happen before the writer's
/// next writes to this page.
struct LeavePage<'f>(&'f AtomicUsize);

impl Drop for LeavePage<'_> {
    fn drop(&mut self) {
        self.0.store(0, Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_update_is_lost_across_flips() {
        let mut backing = vec![0u8; 4096];
        let mut arena = MemoryArena::new("double", &mut backing);
        let (mut w, mut r) = new(&mut arena, [0u32; 8]).unwrap();
        for i in 0..100 {
            w.write()[i % 8] += 1;
            if i % 3 == 0 {
                w.publish();
            }
        }
        w.publish();
        w.publish(); // a second flip with no edit must not publish the stale page
        assert_eq!(r.load().iter().sum::<u32>(), 100, "every increment survives the flips");
    }

    #[test]
    fn the_writer_waits_while_the_reader_holds_the_old_front() {
        let mut backing = vec![0u8; 4096];
        let mut arena = MemoryArena::new("double", &mut backing);
        let (mut w, mut r) = new(&mut arena, 0u64).unwrap();
        *w.write() = 1;
        r.read(|v| {
            assert_eq!(*v, 0);
            w.publish();
            assert!(w.try_write().is_none(), "the back page is the one being read");
        });
        assert_eq!(w.try_write().copied(), Some(1), "synced from the published page");
        assert_eq!(r.load(), 1);
    }

    /// Two threads: the writer publishes pages whose fields must agree (a counter and its
    /// square and a running sum); the reader must never see a torn page or time going back.
    #[test]
    fn two_threads_never_see_a_torn_or_stale_page() {
        let flips: u64 = if cfg!(miri) { 200 } else { 200_000 };
        let mut backing = vec![0u8; 4096];
        let mut arena = MemoryArena::new("double", &mut backing);
        let (mut w, mut r) = new(&mut arena, [0u64; 3]).unwrap();
        std::thread::scope(|s| {
            s.spawn(move || {
                for n in 1..=flips {
                    let page = w.write();
                    assert_eq!(page[0], n - 1, "the back page starts from the last publish");
                    *page = [n, n * n, page[2] + n];
                    w.publish();
                }
            });
            let mut last = 0;
            while last < flips {
                let [n, sq, sum] = r.load();
                assert_eq!((sq, sum), (n * n, n * (n + 1) / 2), "torn page");
                assert!(n >= last, "went back in time");
                last = n;
            }
        });
    }
}
