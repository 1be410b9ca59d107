//! `PlatformMemoryBlock`: the one anonymous mapping reserved at start-up. Every byte the game
//! and the platform's own arenas use after start-up comes from it. Normally memmap2 places it
//! anywhere; to replay a loop recording from an earlier run it is mapped at the address the
//! recording names (Handmade Hero maps its block at a fixed address for the same reason: the
//! game's state holds pointers into it), which memmap2 cannot ask for.

pub mod assets;
pub mod snapshot;

use std::fmt;

use handmade_api::MemoryArena;
use memmap2::{MmapMut, MmapOptions};

pub const MIB: usize = 1 << 20;

/// How the block is split. Zero pages cost nothing until touched, so generous sizes are fine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryLayout {
    pub permanent_bytes: usize,
    pub transient_bytes: usize,
    pub platform_bytes: usize,
}

impl MemoryLayout {
    pub fn from_mib(permanent_mib: usize, transient_mib: usize, platform_mib: usize) -> Result<Self, MemoryError> {
        let bytes = |mib: usize| mib.checked_mul(MIB).ok_or(MemoryError::TooLarge { mib });
        Ok(Self {
            permanent_bytes: bytes(permanent_mib)?,
            transient_bytes: bytes(transient_mib)?,
            platform_bytes: bytes(platform_mib)?,
        })
    }

    pub fn total(&self) -> Option<usize> {
        self.permanent_bytes.checked_add(self.transient_bytes)?.checked_add(self.platform_bytes)
    }
}

#[derive(Debug)]
pub enum MemoryError {
    TooLarge {
        mib: usize,
    },
    Map {
        bytes: usize,
        source: std::io::Error,
    },
    /// The address a recording needs is taken (or this kernel ignores MAP_FIXED_NOREPLACE).
    AddressTaken {
        address: usize,
        source: std::io::Error,
    },
}

impl fmt::Display for MemoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemoryError::TooLarge { mib } => write!(f, "memory size of {mib} MiB does not fit in the address space"),
            MemoryError::Map { bytes, source } => write!(
                f,
                "cannot reserve the {} MiB memory block ({source}); try smaller --permanent-mib/--transient-mib",
                bytes / MIB
            ),
            MemoryError::AddressTaken { address, source } => {
                write!(f, "cannot map the memory block at {address:#x}, where the recording has it ({source})")
            }
        }
    }
}

impl std::error::Error for MemoryError {}

/// The block, mapped once, zeroed by the kernel, never grown or moved: pointers into it (the
/// game's state) stay valid across game reloads.
pub struct PlatformMemoryBlock {
    map: Backing,
    layout: MemoryLayout,
}

/// Where the block's pages come from.
enum Backing {
    /// memmap2's anonymous mapping, wherever the kernel puts it.
    Anywhere(MmapMut),
    /// An anonymous mapping at a chosen address, unmapped on drop.
    Fixed { ptr: std::ptr::NonNull<u8>, len: usize },
}

impl Backing {
    fn bytes(&mut self) -> &mut [u8] {
        match self {
            Backing::Anywhere(map) => map,
            // SAFETY: `ptr..ptr + len` is a live private read/write mapping owned by `self`
            // (created in `reserve_at`, unmapped only in `drop`), and `&mut self` is unique.
            Backing::Fixed { ptr, len } => unsafe { std::slice::from_raw_parts_mut(ptr.as_ptr(), *len) },
        }
    }

    fn len(&self) -> usize {
        match self {
            Backing::Anywhere(map) => map.len(),
            Backing::Fixed { len, .. } => *len,
        }
    }
}

impl Drop for Backing {
    fn drop(&mut self) {
        if let Backing::Fixed { ptr, len } = self {
            // SAFETY: the mapping was created by `reserve_at` with this address and length and
            // is unmapped exactly once; every borrow of it ended with the block's lifetime.
            unsafe { libc::munmap(ptr.as_ptr().cast(), *len) };
        }
    }
}

/// The three regions of the block, borrowed from it for as long as the block lives.
pub struct MemoryRegions<'a> {
    pub permanent: &'a mut [u8],
    pub transient: &'a mut [u8],
    pub platform: MemoryArena<'a>,
}

impl PlatformMemoryBlock {
    pub fn reserve(layout: MemoryLayout) -> Result<Self, MemoryError> {
        let bytes = layout.total().ok_or(MemoryError::TooLarge { mib: usize::MAX / MIB })?;
        // An anonymous private mapping: zero-filled, backed lazily, no file, no swap reservation
        // beyond what is touched (MAP_NORESERVE keeps a large transient size from failing on
        // strict overcommit settings).
        let mut options = MmapOptions::new();
        options.len(bytes.max(1));
        // Miri's mmap shim takes only MAP_PRIVATE|MAP_ANONYMOUS.
        if !cfg!(miri) {
            options.no_reserve_swap();
        }
        let map = options.map_anon().map_err(|source| MemoryError::Map { bytes, source })?;
        Ok(Self { map: Backing::Anywhere(map), layout })
    }

    /// The block at exactly `address` (page-aligned), or an error if anything is mapped there:
    /// `MAP_FIXED_NOREPLACE` never replaces another mapping.
    pub fn reserve_at(layout: MemoryLayout, address: usize) -> Result<Self, MemoryError> {
        let bytes = layout.total().ok_or(MemoryError::TooLarge { mib: usize::MAX / MIB })?.max(1);
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED_NOREPLACE;
        // SAFETY: a new anonymous mapping; NOREPLACE makes the kernel refuse (EEXIST) rather
        // than unmap anything already at `address`, so no memory of ours can be clobbered.
        let got = unsafe { libc::mmap(address as *mut _, bytes, libc::PROT_READ | libc::PROT_WRITE, flags, -1, 0) };
        if got == libc::MAP_FAILED {
            return Err(MemoryError::AddressTaken { address, source: std::io::Error::last_os_error() });
        }
        if got as usize != address {
            // A kernel before 4.17 treats the flag as a hint and maps elsewhere.
            // SAFETY: `got` is the mapping just made, of `bytes` bytes, used by nobody.
            unsafe { libc::munmap(got, bytes) };
            let source = std::io::Error::other("the kernel placed it elsewhere");
            return Err(MemoryError::AddressTaken { address, source });
        }
        let ptr = std::ptr::NonNull::new(got.cast::<u8>()).expect("mmap does not return null on success");
        Ok(Self { map: Backing::Fixed { ptr, len: bytes }, layout })
    }

    /// Where the block starts (where permanent storage starts).
    pub fn address(&mut self) -> usize {
        self.map.bytes().as_ptr() as usize
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }

    /// Splits the block into the game's permanent and transient storage and the platform arena.
    pub fn carve(&mut self) -> MemoryRegions<'_> {
        let layout = self.layout;
        let (permanent, rest) = self.map.bytes().split_at_mut(layout.permanent_bytes);
        let (transient, rest) = rest.split_at_mut(layout.transient_bytes);
        let platform = MemoryArena::new("platform", &mut rest[..layout.platform_bytes]);
        MemoryRegions { permanent, transient, platform }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_is_zeroed_and_carved_exactly() {
        let layout = MemoryLayout { permanent_bytes: 4096, transient_bytes: 8192, platform_bytes: 4096 };
        let mut block = PlatformMemoryBlock::reserve(layout).unwrap();
        assert_eq!(block.len(), 16384);
        let regions = block.carve();
        assert_eq!(regions.permanent.len(), 4096);
        assert_eq!(regions.transient.len(), 8192);
        assert_eq!(regions.platform.size(), 4096);
        assert!(regions.permanent.iter().chain(regions.transient.iter()).all(|&b| b == 0));
        let end_of_permanent = regions.permanent.as_ptr() as usize + 4096;
        assert_eq!(end_of_permanent, regions.transient.as_ptr() as usize);
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot model a mapping the kernel refuses")]
    fn impossible_size_is_one_clear_error() {
        let err = MemoryLayout::from_mib(usize::MAX / 2, 1, 1).unwrap_err();
        assert!(err.to_string().contains("does not fit"));
        let huge = MemoryLayout { permanent_bytes: 1 << 46, transient_bytes: 1 << 46, platform_bytes: 1 << 46 };
        let err = PlatformMemoryBlock::reserve(huge).err().expect("a 192 TiB mapping must fail");
        assert!(err.to_string().starts_with("cannot reserve the"), "{err}");
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri runs no MAP_FIXED_NOREPLACE")]
    fn a_block_maps_again_where_an_earlier_one_was_but_never_over_another() {
        let layout = MemoryLayout { permanent_bytes: 1 << 20, transient_bytes: 1 << 20, platform_bytes: 4096 };
        let mut first = PlatformMemoryBlock::reserve(layout).unwrap();
        let address = first.address();
        let err = PlatformMemoryBlock::reserve_at(layout, address).err().expect("the address is taken");
        assert!(err.to_string().contains(&format!("{address:#x}")), "{err}");
        first.carve().permanent[0] = 7;
        drop(first);
        let mut again = PlatformMemoryBlock::reserve_at(layout, address).unwrap();
        assert_eq!(again.address(), address);
        let regions = again.carve();
        assert_eq!((regions.permanent[0], regions.permanent.len()), (0, 1 << 20), "a new, zeroed block");
    }
}
