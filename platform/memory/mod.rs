//! `PlatformMemoryBlock`: the one anonymous mapping reserved at start-up. Every byte the game
//! and the platform's own arenas use after start-up comes from it.

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
    TooLarge { mib: usize },
    Map { bytes: usize, source: std::io::Error },
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
        }
    }
}

impl std::error::Error for MemoryError {}

/// The block, mapped once, zeroed by the kernel, never grown or moved: pointers into it (the
/// game's state) stay valid across game reloads.
pub struct PlatformMemoryBlock {
    map: MmapMut,
    layout: MemoryLayout,
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
        Ok(Self { map, layout })
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Splits the block into the game's permanent and transient storage and the platform arena.
    pub fn carve(&mut self) -> MemoryRegions<'_> {
        let layout = self.layout;
        let (permanent, rest) = self.map.split_at_mut(layout.permanent_bytes);
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
}
