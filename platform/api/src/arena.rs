//! `MemoryArena`: a bump allocator over a slice of the platform's memory block, used by the
//! platform for its own storage and by the game inside its permanent and transient storage.
//!
//! Only `Copy` (plain-data) values can be pushed, so nothing with a destructor, a `Box` or a
//! `Vec` ends up in the block. Temporary memory is a child arena over the free tail: when it is
//! dropped the parent's `used` is exactly what it was, and the borrow checker makes sure nothing
//! pushed into it outlives it.
//!
//! ```
//! use handmade_api::MemoryArena;
//! let mut backing = [0u8; 1024];
//! let mut arena = MemoryArena::new("demo", &mut backing);
//! let counter: &mut u64 = arena.push_struct(0u64).unwrap();
//! *counter += 1;
//! let used = arena.used(); // 8, plus padding if `backing` is not 8-byte aligned
//! {
//!     let mut temp = arena.begin_temp();
//!     let scratch = temp.push_array(100, 0.0f32).unwrap();
//!     scratch[99] = 1.0;
//! } // `used` is back to where it was
//! assert_eq!(arena.used(), used);
//! assert!(arena.high_water() >= used + 400);
//! assert!(arena.push_array(10_000, 0u8).is_err());
//! ```

use core::fmt;
use core::marker::PhantomData;
use core::mem::{align_of, size_of};

/// Arena names are stored inline (no `&'static str` into a library that may be unloaded).
const NAME_LEN: usize = 24;

#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, crate::StateLayout)]
pub struct ArenaName([u8; NAME_LEN]);

impl ArenaName {
    pub fn new(name: &str) -> Self {
        let mut bytes = [0u8; NAME_LEN];
        let mut n = name.len().min(NAME_LEN);
        while !name.is_char_boundary(n) {
            n -= 1;
        }
        bytes[..n].copy_from_slice(&name.as_bytes()[..n]);
        Self(bytes)
    }

    pub fn as_str(&self) -> &str {
        let n = self.0.iter().position(|&b| b == 0).unwrap_or(NAME_LEN);
        core::str::from_utf8(&self.0[..n]).unwrap_or("?")
    }
}

impl fmt::Debug for ArenaName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// A request the arena could not satisfy. Its `Display` is the one line a user sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArenaError {
    pub arena: ArenaName,
    pub requested: usize,
    pub align: usize,
    pub remaining: usize,
    pub size: usize,
}

impl fmt::Display for ArenaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arena '{}' is full: asked for {} bytes (align {}), {} of {} bytes left",
            self.arena.as_str(),
            self.requested,
            self.align,
            self.remaining,
            self.size
        )
    }
}

impl std::error::Error for ArenaError {}

/// A bump allocator over `size` bytes at `base`, valid for `'a`.
#[repr(C)]
#[derive(crate::StateLayout)]
pub struct MemoryArena<'a> {
    base: *mut u8,
    size: usize,
    used: usize,
    high_water: usize,
    name: ArenaName,
    _memory: PhantomData<&'a mut [u8]>,
}

// SAFETY: the arena is the unique owner of its bytes (it was built from a `&'a mut [u8]` or
// from raw parts the caller vouched for), so moving it to another thread moves that ownership.
unsafe impl Send for MemoryArena<'_> {}

impl fmt::Debug for MemoryArena<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryArena")
            .field("name", &self.name)
            .field("size", &self.size)
            .field("used", &self.used)
            .field("high_water", &self.high_water)
            .finish()
    }
}

impl<'a> MemoryArena<'a> {
    /// An arena over `memory`, which it borrows for its whole life.
    pub fn new(name: &str, memory: &'a mut [u8]) -> Self {
        Self {
            base: memory.as_mut_ptr(),
            size: memory.len(),
            used: 0,
            high_water: 0,
            name: ArenaName::new(name),
            _memory: PhantomData,
        }
    }

    /// An arena over raw memory, e.g. the game's permanent storage handed over in `GameMemory`.
    ///
    /// # Safety
    /// `base..base + size` must be valid for reads and writes for `'a` and not be accessed by
    /// anything else while the arena or anything pushed into it is alive.
    pub unsafe fn from_raw_parts(name: &str, base: *mut u8, size: usize) -> Self {
        Self { base, size, used: 0, high_water: 0, name: ArenaName::new(name), _memory: PhantomData }
    }

    pub fn name(&self) -> &str {
        self.name.as_str()
    }
    pub fn size(&self) -> usize {
        self.size
    }
    pub fn used(&self) -> usize {
        self.used
    }
    pub fn remaining(&self) -> usize {
        self.size - self.used
    }
    /// The most bytes this arena (including its temporary memory) has ever had in use.
    pub fn high_water(&self) -> usize {
        self.high_water
    }

    /// Reserves `bytes` at `align` and returns the start of the reservation.
    fn bump(&mut self, bytes: usize, align: usize) -> Result<*mut u8, ArenaError> {
        debug_assert!(align.is_power_of_two(), "alignment {align} is not a power of two");
        let full =
            ArenaError { arena: self.name, requested: bytes, align, remaining: self.remaining(), size: self.size };
        let address = self.base as usize + self.used;
        let padding = address.wrapping_neg() & (align - 1);
        let end = self.used.checked_add(padding).and_then(|s| s.checked_add(bytes)).ok_or(full)?;
        if end > self.size {
            return Err(full);
        }
        // `wrapping_add` keeps provenance; `end <= size` keeps the pointer inside the arena.
        let start = self.base.wrapping_add(self.used + padding);
        self.used = end;
        self.high_water = self.high_water.max(end);
        debug_assert!(start as usize % align == 0, "bump returned a misaligned pointer");
        Ok(start)
    }

    /// Pushes one value and returns it, living as long as the arena's memory.
    pub fn push_struct<T: Copy>(&mut self, value: T) -> Result<&'a mut T, ArenaError> {
        let ptr = self.bump(size_of::<T>(), align_of::<T>())?.cast::<T>();
        // SAFETY: `bump` returned `size_of::<T>()` bytes aligned for `T`, inside the arena and
        // never handed out before (the cursor only moves forward while `'a` borrows last).
        unsafe {
            ptr.write(value);
            Ok(&mut *ptr)
        }
    }

    /// Pushes `count` copies of `value`.
    pub fn push_array<T: Copy>(&mut self, count: usize, value: T) -> Result<&'a mut [T], ArenaError> {
        let ptr = self.bump_array::<T>(count)?;
        for i in 0..count {
            // SAFETY: `bump_array` reserved `count` aligned, unaliased slots for `T`.
            unsafe { ptr.add(i).write(value) };
        }
        // SAFETY: all `count` elements were just initialised; see `bump_array`.
        Ok(unsafe { core::slice::from_raw_parts_mut(ptr, count) })
    }

    /// Pushes a copy of `values`.
    pub fn push_slice<T: Copy>(&mut self, values: &[T]) -> Result<&'a mut [T], ArenaError> {
        let ptr = self.bump_array::<T>(values.len())?;
        // SAFETY: the reservation is fresh, so it cannot overlap `values`; it holds
        // `values.len()` aligned slots.
        unsafe {
            core::ptr::copy_nonoverlapping(values.as_ptr(), ptr, values.len());
            Ok(core::slice::from_raw_parts_mut(ptr, values.len()))
        }
    }

    /// Reserves `len` bytes at `align` without writing them, so untouched pages of the memory
    /// block stay unbacked (used for snapshot buffers as large as the game's storage).
    pub fn push_bytes_uninit(
        &mut self,
        len: usize,
        align: usize,
    ) -> Result<&'a mut [core::mem::MaybeUninit<u8>], ArenaError> {
        let ptr = self.bump(len, align)?.cast::<core::mem::MaybeUninit<u8>>();
        // SAFETY: `bump` reserved `len` fresh bytes; `MaybeUninit` makes no claim about them.
        Ok(unsafe { core::slice::from_raw_parts_mut(ptr, len) })
    }

    fn bump_array<T>(&mut self, count: usize) -> Result<*mut T, ArenaError> {
        let bytes = size_of::<T>().checked_mul(count).ok_or(ArenaError {
            arena: self.name,
            requested: usize::MAX,
            align: align_of::<T>(),
            remaining: self.remaining(),
            size: self.size,
        })?;
        Ok(self.bump(bytes, align_of::<T>())?.cast::<T>())
    }

    /// Carves a child arena of `size` bytes (aligned to `align`) for a subsystem.
    pub fn sub_arena(&mut self, name: &str, size: usize, align: usize) -> Result<MemoryArena<'a>, ArenaError> {
        let base = self.bump(size, align)?;
        // SAFETY: `bump` reserved these bytes for good; nothing else in this arena will hand
        // them out again during `'a`.
        Ok(unsafe { MemoryArena::from_raw_parts(name, base, size) })
    }

    /// Temporary memory: a child arena over the free tail. Dropping it gives the space back.
    pub fn begin_temp(&mut self) -> TempMemory<'_, 'a> {
        let start = self.used;
        let base = self.base.wrapping_add(start);
        // SAFETY: the tail `used..size` is not handed out while `self` is mutably borrowed by
        // the returned `TempMemory`, and the child's lifetime is tied to that borrow.
        let child = unsafe { MemoryArena::from_raw_parts(self.name.as_str(), base, self.size - start) };
        TempMemory { parent: self, child }
    }

    /// Forgets everything pushed (the caller must hold no references, which `&mut self` and
    /// the `'a` lifetimes of earlier pushes cannot guarantee, hence `unsafe`).
    ///
    /// # Safety
    /// No reference returned by an earlier push may be used afterwards.
    pub unsafe fn reset(&mut self) {
        self.used = 0;
    }
}

/// Temporary memory from `MemoryArena::begin_temp`; derefs to an arena. On drop the parent's
/// `used` is unchanged and its high-water mark includes what the temporary memory used.
pub struct TempMemory<'p, 'a> {
    parent: &'p mut MemoryArena<'a>,
    child: MemoryArena<'p>,
}

impl<'p> core::ops::Deref for TempMemory<'p, '_> {
    type Target = MemoryArena<'p>;
    fn deref(&self) -> &Self::Target {
        &self.child
    }
}

impl<'p> core::ops::DerefMut for TempMemory<'p, '_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.child
    }
}

impl Drop for TempMemory<'_, '_> {
    fn drop(&mut self) {
        let peak = self.parent.used + self.child.high_water;
        self.parent.high_water = self.parent.high_water.max(peak);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(C, align(64))]
    #[derive(Clone, Copy)]
    struct CacheLine([u8; 64]);

    /// Backing with a known alignment, so exact `used()` figures hold wherever it lands
    /// (Miri places a plain `[u8]` at 1-byte-aligned addresses).
    #[repr(C, align(16))]
    struct Aligned<const N: usize>([u8; N]);

    fn aligned<const N: usize>() -> Box<Aligned<N>> {
        Box::new(Aligned([0; N]))
    }

    #[test]
    fn pushes_are_aligned_and_disjoint() {
        let mut backing = vec![0u8; 4096];
        let mut arena = MemoryArena::new("align", &mut backing);
        let a = arena.push_struct(1u8).unwrap() as *mut u8 as usize;
        let b = arena.push_struct(2u64).unwrap() as *mut u64 as usize;
        let c = arena.push_struct(CacheLine([3; 64])).unwrap() as *mut CacheLine as usize;
        let d = arena.push_array(3, 7u16).unwrap();
        assert_eq!(b % 8, 0);
        assert_eq!(c % 64, 0);
        assert!(a < b && b + 8 <= c && c + 64 <= d.as_ptr() as usize);
        assert_eq!(d, &[7, 7, 7]);
    }

    #[test]
    fn full_arena_names_itself_and_changes_nothing() {
        let mut backing = [0u8; 64];
        let mut arena = MemoryArena::new("sound", &mut backing);
        arena.push_array(40, 0u8).unwrap();
        let err = arena.push_array(32, 0u8).unwrap_err();
        assert_eq!(arena.used(), 40);
        assert_eq!(err.to_string(), "arena 'sound' is full: asked for 32 bytes (align 1), 24 of 64 bytes left");
        assert!(arena.push_array(usize::MAX / 2, 0u32).is_err(), "size overflow must not wrap");
        assert!(arena.push_array(24, 0u8).is_ok(), "exact fit");
    }

    #[test]
    fn nested_temporary_memory_restores_used() {
        let mut backing = aligned::<1024>();
        let mut arena = MemoryArena::new("temp", &mut backing.0);
        arena.push_struct(0u32).unwrap();
        {
            let mut t1 = arena.begin_temp();
            t1.push_array(100, 1u8).unwrap();
            {
                let mut t2 = t1.begin_temp();
                t2.push_array(200, 2u8).unwrap();
            }
            assert_eq!(t1.used(), 100);
            assert_eq!(t1.high_water(), 300);
        }
        assert_eq!(arena.used(), 4);
        assert_eq!(arena.high_water(), 304);
        // The space is reusable, and values written into it are the new ones.
        let again = arena.push_array(300, 9u8).unwrap();
        assert!(again.iter().all(|&b| b == 9));
    }

    #[test]
    fn sub_arena_is_bounded_by_its_own_size() {
        let mut backing = aligned::<1024>();
        let mut arena = MemoryArena::new("parent", &mut backing.0);
        let mut child = arena.sub_arena("child", 100, 16).unwrap();
        assert_eq!(arena.used(), 100);
        assert!(child.push_array(100, 0u8).is_ok());
        let err = child.push_struct(0u8).unwrap_err();
        assert_eq!(err.arena.as_str(), "child");
    }

    #[test]
    fn long_names_are_truncated_on_char_boundaries() {
        let name = ArenaName::new("ééééééééééééééééééééééééé");
        assert!(name.as_str().len() <= NAME_LEN);
        assert!(name.as_str().chars().all(|c| c == 'é'));
    }

    #[test]
    fn randomised_pushes_never_overlap_or_exceed() {
        let mut backing = vec![0u8; 1 << 14];
        let mut arena = MemoryArena::new("rand", &mut backing);
        let mut seed = 0x9e37_79b9_u32;
        let mut spans = Vec::new();
        loop {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let len = (seed % 97) as usize + 1;
            match arena.push_array(len, seed as u8) {
                Ok(s) => spans.push((s.as_ptr() as usize, len)),
                Err(e) => {
                    assert!(e.remaining < len + 1);
                    break;
                }
            }
        }
        spans.windows(2).for_each(|w| assert!(w[0].0 + w[0].1 <= w[1].0));
        assert!(arena.used() <= arena.size());
    }
}
