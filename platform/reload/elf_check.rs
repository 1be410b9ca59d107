//! Is this file a complete ELF shared object that the dynamic loader can map without
//! faulting? Checked before a game library is copied and loaded (reload/mod.rs): a file still
//! being written is "incomplete" (try again later), anything else that fails is refused with
//! one reason. What headers cannot show (damaged relocations, a crashing initialiser) is left
//! to the load probe (load_probe.rs).

use std::fs::File;
use std::io::Read;
use std::path::Path;

/// Why a file is not (yet) a loadable library. The caller names the file.
#[derive(Debug)]
pub enum ElfError {
    /// The file cannot be opened or read.
    Io(std::io::Error),
    /// Not a library we can load, with the one reason.
    NotALibrary(&'static str),
    /// A prefix of a library: a linker is still writing it.
    Incomplete,
}

/// A complete ELF shared object ends with its section header table (the linker writes it last),
/// so a file shorter than `e_shoff + e_shnum * e_shentsize` is still being written. A complete
/// one must also have program headers the dynamic loader can follow without faulting: ld.so
/// trusts them, and a segment past the end of the file is a SIGBUS inside `dlopen` (found by
/// the `game_library` fuzz target, see tests/fuzz).
pub fn check_elf(path: &Path) -> Result<(), ElfError> {
    let missing = ElfError::Io;
    let not_lib = ElfError::NotALibrary;
    let mut file = File::open(path).map_err(missing)?;
    let len = file.metadata().map_err(missing)?.len();
    let mut header = [0u8; 64];
    let mut got = 0;
    while got < header.len() {
        match file.read(&mut header[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(missing(e)),
        }
    }
    let magic = b"\x7fELF";
    if header[..got.min(4)] != magic[..got.min(4)] {
        return Err(not_lib("no ELF magic number"));
    }
    if got < header.len() {
        // Empty, or a prefix of an ELF header: a linker is still writing it.
        return Err(ElfError::Incomplete);
    }
    if header[4] != 2 || header[5] != 1 {
        return Err(not_lib("not a 64-bit little-endian ELF file"));
    }
    if u16::from_le_bytes([header[16], header[17]]) != 3 {
        return Err(not_lib("an ELF file but not a shared object"));
    }
    let shoff = u64::from_le_bytes(header[0x28..0x30].try_into().expect("8 bytes"));
    let shentsize = u64::from(u16::from_le_bytes([header[0x3a], header[0x3b]]));
    let shnum = u64::from(u16::from_le_bytes([header[0x3c], header[0x3d]]));
    let end = shoff.checked_add(shentsize * shnum).ok_or_else(|| not_lib("corrupt section header offset"))?;
    if end > len {
        return Err(ElfError::Incomplete);
    }
    let segments = read_segments(&mut file, &header, len).map_err(not_lib)?;
    check_segments(&segments, len).map_err(not_lib)
}

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_NOTE: u32 = 4;
const PT_PHDR: u32 = 6;
const PT_TLS: u32 = 7;
const PT_GNU_PROPERTY: u32 = 0x6474_e553;
const PF_W: u32 = 2;
/// Real libraries have about a dozen program headers; this bounds what `check_elf` reads.
const MAX_SEGMENTS: usize = 128;
/// A game library is a few MiB at most; a larger address span is a corrupt header.
const MAX_SPAN: u64 = 1 << 30;

/// One ELF64 program header (the fields `check_segments` needs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    kind: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    file_size: u64,
    mem_size: u64,
    align: u64,
}

impl Segment {
    fn parse(entry: &[u8]) -> Self {
        let word = |at: usize| u64::from_le_bytes(entry[at..at + 8].try_into().expect("8 bytes"));
        let half = |at: usize| u32::from_le_bytes(entry[at..at + 4].try_into().expect("4 bytes"));
        Self {
            kind: half(0),
            flags: half(4),
            offset: word(8),
            vaddr: word(16),
            file_size: word(32),
            mem_size: word(40),
            align: word(48),
        }
    }

    fn file_end(&self) -> Option<u64> {
        self.offset.checked_add(self.file_size)
    }

    fn mem_end(&self) -> Option<u64> {
        self.vaddr.checked_add(self.mem_size)
    }
}

/// Reads the program header table named by the ELF header, after checking its place and size.
fn read_segments(file: &mut File, header: &[u8; 64], len: u64) -> Result<Vec<Segment>, &'static str> {
    use std::io::{Seek, SeekFrom};
    let phoff = u64::from_le_bytes(header[0x20..0x28].try_into().expect("8 bytes"));
    let entry_size = usize::from(u16::from_le_bytes([header[0x36], header[0x37]]));
    let count = usize::from(u16::from_le_bytes([header[0x38], header[0x39]]));
    if entry_size != 56 {
        return Err("corrupt program headers (wrong entry size)");
    }
    if count == 0 || count > MAX_SEGMENTS {
        return Err("corrupt program headers (no segments, or implausibly many)");
    }
    let table_len = (count * entry_size) as u64;
    if phoff.checked_add(table_len).map_or(true, |end| end > len) {
        return Err("corrupt program headers (the table lies outside the file)");
    }
    let mut table = vec![0u8; count * entry_size];
    file.seek(SeekFrom::Start(phoff))
        .and_then(|_| file.read_exact(&mut table))
        .map_err(|_| "program headers cannot be read")?;
    Ok(table.chunks_exact(entry_size).map(Segment::parse).collect())
}

/// What ld.so needs to map the library without touching memory it did not map: loadable
/// segments inside the file, sane alignment, in address order, and the segments it reads at
/// load time (dynamic section, notes, TLS image, the header table itself) inside a loaded one.
fn check_segments(segments: &[Segment], len: u64) -> Result<(), &'static str> {
    let loads: Vec<&Segment> = segments.iter().filter(|s| s.kind == PT_LOAD).collect();
    let (Some(first), Some(last)) = (loads.first(), loads.last()) else {
        return Err("corrupt program headers (no loadable segment)");
    };
    for (i, load) in loads.iter().enumerate() {
        check_load(load, len)?;
        if i > 0 && load.vaddr < loads[i - 1].vaddr {
            return Err("corrupt program headers (loadable segments out of address order)");
        }
    }
    let span = last.mem_end().and_then(|end| end.checked_sub(first.vaddr & !0xfff));
    if span.map_or(true, |span| span > MAX_SPAN) {
        return Err("corrupt program headers (segments span more than 1 GiB)");
    }
    if segments.iter().filter(|s| s.kind == PT_DYNAMIC).count() != 1 {
        return Err("not a dynamically linked library (needs exactly one dynamic segment)");
    }
    let read_at_load = [PT_DYNAMIC, PT_NOTE, PT_PHDR, PT_TLS, PT_GNU_PROPERTY];
    for segment in segments.iter().filter(|s| read_at_load.contains(&s.kind) && s.mem_size > 0) {
        if segment.file_end().map_or(true, |end| end > len) || segment.file_size > segment.mem_size {
            return Err("corrupt program headers (a segment lies outside the file)");
        }
        let end = segment.mem_end().ok_or("corrupt program headers (a segment wraps around)")?;
        if !loads.iter().any(|l| l.vaddr <= segment.vaddr && l.mem_end().is_some_and(|e| end <= e)) {
            return Err("corrupt program headers (a segment the loader reads is not loaded)");
        }
    }
    Ok(())
}

/// One PT_LOAD: its bytes in the file, no more file than memory, a power-of-two alignment
/// that file offset and address agree on (what mmap needs).
fn check_load(load: &Segment, len: u64) -> Result<(), &'static str> {
    if load.file_end().map_or(true, |end| end > len) {
        return Err("corrupt program headers (a loadable segment reaches past the end of the file)");
    }
    // Only a writable segment has zero-filled memory (.bss) beyond its file bytes; a short
    // code or read-only segment would run or read zeros instead of what the linker wrote.
    let writable = load.flags & PF_W != 0;
    if load.file_size > load.mem_size || (!writable && load.file_size != load.mem_size) || load.mem_end().is_none() {
        return Err("corrupt program headers (a loadable segment has bad sizes)");
    }
    if load.align > 1 && (!load.align.is_power_of_two() || load.vaddr % load.align != load.offset % load.align) {
        return Err("corrupt program headers (a loadable segment is misaligned)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    use crate::reload::GameCode;

    #[test]
    fn truncated_elf_is_incomplete() {
        let dir = tempfile::tempdir().unwrap();
        let own = fs::read("/proc/self/exe").unwrap();
        let path = dir.path().join("half.so");
        let mut half = own[..own.len() / 2].to_vec();
        half[16] = 3; // pretend to be ET_DYN so only the length is wrong
        fs::write(&path, &half).unwrap();
        assert!(matches!(check_elf(&path), Err(ElfError::Incomplete)));
    }

    fn own_head(keep: usize) -> Vec<u8> {
        let mut own = fs::read("/proc/self/exe").unwrap();
        own.truncate(keep);
        own
    }

    #[test]
    fn linker_output_passes_the_program_header_checks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("own.so");
        fs::write(&path, own_head(usize::MAX)).unwrap();
        check_elf(&path).unwrap();
    }

    /// Regression (fuzz target `game_library`, seed `elf-head-no-sections`): a truncated ELF
    /// whose section table was zeroed passed `check_elf`, and `dlopen` died of SIGBUS zeroing
    /// the tail of a segment that lies past the end of the file.
    #[test]
    fn segments_past_the_end_of_the_file_are_refused_before_dlopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut.so");
        let mut cut = own_head(4096);
        cut[0x28..0x30].fill(0); // e_shoff
        cut[0x3c..0x3e].fill(0); // e_shnum
        fs::write(&path, &cut).unwrap();
        let err = GameCode::load(&path).err().unwrap().to_string();
        assert!(err.contains("past the end of the file") && !err.contains('\n'), "{err}");
    }

    #[test]
    fn garbled_program_headers_give_one_reason() {
        let load = Segment {
            kind: PT_LOAD,
            flags: PF_W,
            offset: 0,
            vaddr: 0,
            file_size: 0x2000,
            mem_size: 0x3000,
            align: 0x1000,
        };
        let dynamic = Segment {
            kind: PT_DYNAMIC,
            flags: PF_W,
            offset: 0x1000,
            vaddr: 0x1000,
            file_size: 0x100,
            mem_size: 0x100,
            align: 8,
        };
        assert_eq!(check_segments(&[load, dynamic], 0x2000), Ok(()));
        let reason = |segments: &[Segment]| check_segments(segments, 0x2000).unwrap_err();
        assert!(reason(&[dynamic]).contains("no loadable segment"));
        assert!(reason(&[load]).contains("exactly one dynamic"));
        assert!(reason(&[load, Segment { vaddr: 0x5000, ..dynamic }]).contains("not loaded"));
        assert!(reason(&[load, Segment { offset: u64::MAX, ..dynamic }]).contains("outside the file"));
        assert!(reason(&[Segment { align: 0x1800, ..load }, dynamic]).contains("misaligned"));
        assert!(reason(&[Segment { vaddr: 0x1000, ..load }, load, dynamic]).contains("address order"));
        assert!(reason(&[Segment { mem_size: 1 << 40, ..load }, dynamic]).contains("1 GiB"));
        assert!(reason(&[Segment { flags: 5, ..load }, dynamic]).contains("bad sizes"), "short code segment");
    }

    #[test]
    fn program_header_table_must_fit_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("phdr.so");
        let mut own = own_head(usize::MAX);
        let len = own.len() as u64;
        own[0x20..0x28].copy_from_slice(&(len - 8).to_le_bytes()); // e_phoff near the end
        fs::write(&path, &own).unwrap();
        let err = format!("{:?}", check_elf(&path).unwrap_err());
        assert!(err.contains("outside the file"), "{err}");
        own[0x36] = 32; // e_phentsize
        fs::write(&path, &own).unwrap();
        assert!(format!("{:?}", check_elf(&path).unwrap_err()).contains("wrong entry size"));
    }
}
