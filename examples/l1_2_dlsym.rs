//! Lesson L1.2, symbol tables: what `dlsym` costs (p50/p99/max) against a call through a
//! cached function pointer, and how many functions libasound exports, read from its own
//! `.gnu.hash` table (the table dlsym searches), with the course's three claims checked:
//! the symbol count, the cost ratio, and `snd_config_update_r` being absent.
//!
//! Run with: cargo run --release --example l1_2_dlsym

mod common;

use std::ffi::{c_char, c_void, CStr, CString};
use std::hint::black_box;

use common::*;

const LIBASOUND: &str = "/usr/lib/x86_64-linux-gnu/libasound.so.2";
const SHT_GNU_HASH: u32 = 0x6fff_fff6;
const STT_FUNC: u8 = 2;

/// What libasound's `.gnu.hash` and `.dynsym` say (read from the file, no library code run).
struct Exports {
    buckets: usize,
    hashed: usize,
    functions: Vec<String>, // defined global/weak functions among the hashed symbols
}

fn u16_at(b: &[u8], at: usize) -> usize {
    u16::from_le_bytes([b[at], b[at + 1]]) as usize
}
fn u32_at(b: &[u8], at: usize) -> usize {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes")) as usize
}
fn u64_at(b: &[u8], at: usize) -> usize {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes")) as usize
}

/// (type, offset, link) of each section header of a little-endian ELF64 file.
fn sections(elf: &[u8]) -> Option<Vec<(u32, usize, usize)>> {
    (elf.get(..5)? == b"\x7fELF\x02" && elf[5] == 1).then_some(())?;
    let (shoff, shentsize, shnum) = (u64_at(elf, 0x28), u16_at(elf, 0x3a), u16_at(elf, 0x3c));
    (0..shnum)
        .map(|i| {
            let h = shoff + i * shentsize;
            elf.get(h..h + 64).map(|_| (u32_at(elf, h + 4) as u32, u64_at(elf, h + 0x18), u32_at(elf, h + 0x28)))
        })
        .collect()
}

fn read_exports(path: &str) -> Result<Exports, String> {
    let elf = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    let sections = sections(&elf).ok_or_else(|| format!("{path}: not a little-endian ELF64 file"))?;
    let &(_, hash_off, dynsym_index) =
        sections.iter().find(|s| s.0 == SHT_GNU_HASH).ok_or_else(|| format!("{path}: no .gnu.hash section"))?;
    let &(_, dynsym_off, dynstr_index) = sections.get(dynsym_index).ok_or("bad .dynsym link")?;
    let dynstr_off = sections.get(dynstr_index).ok_or("bad .dynstr link")?.1;
    // .gnu.hash: nbuckets, symoffset, bloom_size, bloom_shift, bloom[u64], buckets[u32], chains[u32].
    let (nbuckets, symoffset, bloom_size) =
        (u32_at(&elf, hash_off), u32_at(&elf, hash_off + 4), u32_at(&elf, hash_off + 8));
    let buckets_off = hash_off + 16 + 8 * bloom_size;
    let chains_off = buckets_off + 4 * nbuckets;
    // The last hashed symbol: start at the highest bucket's first index and follow its chain
    // to the entry whose low bit marks the end.
    let mut last = (0..nbuckets).map(|b| u32_at(&elf, buckets_off + 4 * b)).max().unwrap_or(0);
    if last >= symoffset {
        while u32_at(&elf, chains_off + 4 * (last - symoffset)) & 1 == 0 {
            last += 1;
        }
    }
    let hashed = if last >= symoffset { last + 1 - symoffset } else { 0 };
    let name = |off: usize| {
        let bytes = &elf[dynstr_off + off..];
        String::from_utf8_lossy(&bytes[..bytes.iter().position(|&c| c == 0).unwrap_or(0)]).into_owned()
    };
    let functions = (symoffset..symoffset + hashed)
        .filter_map(|i| {
            let sym = dynsym_off + 24 * i;
            let (info, shndx) = (elf[sym + 4], u16_at(&elf, sym + 6));
            let (binding, kind) = (info >> 4, info & 0xf);
            (kind == STT_FUNC && shndx != 0 && (binding == 1 || binding == 2)).then(|| name(u32_at(&elf, sym)))
        })
        .collect();
    Ok(Exports { buckets: nbuckets, hashed, functions })
}

fn distinct_names(names: &[String]) -> usize {
    let mut sorted: Vec<&String> = names.iter().collect();
    sorted.sort_unstable();
    sorted.dedup();
    sorted.len()
}

/// `dlsym(handle, name)`.
fn lookup(handle: *mut c_void, name: &CStr) -> *mut c_void {
    // SAFETY: `handle` came from a successful dlopen and stays open for the whole program;
    // `name` is NUL-terminated.
    unsafe { libc::dlsym(handle, name.as_ptr()) }
}

fn main() {
    header("L1.2", "dlsym vs a cached function pointer, and libasound's exported symbols");
    let exports = match read_exports(LIBASOUND) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("cannot read libasound's symbol table: {e}");
            std::process::exit(1);
        }
    };
    let path = CString::new(LIBASOUND).expect("no NUL");
    // SAFETY: dlopen with a NUL-terminated path; libasound's initialisers are safe to run.
    let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        eprintln!("cannot dlopen {LIBASOUND}");
        std::process::exit(1);
    }
    let version_name = c"snd_asoundlib_version";
    let version_ptr = lookup(handle, version_name);
    assert!(!version_ptr.is_null(), "libasound exports snd_asoundlib_version");
    // SAFETY: snd_asoundlib_version is `const char *snd_asoundlib_version(void)` in libasound.
    let version: extern "C" fn() -> *const c_char = unsafe { std::mem::transmute(version_ptr) };
    // SAFETY: it returns a pointer to a static NUL-terminated string.
    let version_text = unsafe { CStr::from_ptr(version()) }.to_string_lossy();
    println!("libasound {version_text} at {LIBASOUND}");

    let samples = pick(20_000, 2_000);
    let batch = 100;
    let missing = c"snd_no_such_function_here";
    let t_dlsym_one = time_ns(samples, 1, || {
        black_box(lookup(handle, black_box(version_name)));
    });
    let t_dlsym = time_ns(samples, batch, || {
        black_box(lookup(handle, black_box(version_name)));
    });
    let t_miss = time_ns(samples, batch, || {
        black_box(lookup(handle, black_box(missing)));
    });
    let cached = black_box(version);
    let t_call = time_ns(samples, batch, || {
        black_box(cached());
    });
    let d1 = report("dlsym, one per sample", &t_dlsym_one, "ns");
    let d = report("dlsym found, 100 per sample", &t_dlsym, "ns/call");
    let m = report("dlsym missing name, 100 per sample", &t_miss, "ns/call");
    let c = report("cached pointer call, 100 per sample", &t_call, "ns/call");

    verdict(
        "readelf counts 1847 symbols in libasound",
        &format!(
            "{} symbols in .gnu.hash, of which {} are defined global functions ({} distinct names; the rest are versions of the same name), read from {LIBASOUND}",
            exports.hashed,
            exports.functions.len(),
            distinct_names(&exports.functions)
        ),
        &format!(
            "counted here from the .gnu.hash chains and the .dynsym entries they index; the count depends on the libasound build ({version_text})"
        ),
    );
    verdict(
        "dlsym takes 12.5 us, a cached pointer 0.05 ns: 250000x",
        &format!(
            "p50 dlsym {:.0} ns (100 per sample: p99 {:.0}, max {:.0}; one per sample p50/p99/max {:.0}/{:.0}/{:.0} ns), missing name {:.0} ns, cached pointer call {:.1} ns: {:.0}x",
            d.p50,
            d.p99,
            d.max,
            d1.p50,
            d1.p99,
            d1.max,
            m.p50,
            c.p50,
            d.p50 / c.p50
        ),
        &format!(
            "both timed in their own samples; libasound's .gnu.hash has {} buckets for {} hashed symbols ({:.1} per bucket, read from the file), and a lookup took {:.0} ns here, not microseconds",
            exports.buckets,
            exports.hashed,
            exports.hashed as f64 / exports.buckets as f64,
            d.p50
        ),
    );
    let update_r = c"snd_config_update_r";
    let found = !lookup(handle, update_r).is_null();
    let in_table = exports.functions.iter().any(|f| f == "snd_config_update_r");
    verdict(
        "dlsym(\"snd_config_update_r\") returns NULL: it is not exported",
        &format!(
            "dlsym returned {}; in .gnu.hash as a defined function: {}",
            if found { "an address" } else { "NULL" },
            if in_table { "yes" } else { "no" }
        ),
        if found && in_table {
            "checked two ways: dlsym found it, and the symbol table lists it as a defined global function"
        } else {
            "checked two ways: this libasound does not export it"
        },
    );
    percentile_plot(
        "l1_2_dlsym",
        &[
            ("dlsym one per sample", &t_dlsym_one),
            ("dlsym", &t_dlsym),
            ("dlsym missing", &t_miss),
            ("cached call", &t_call),
        ],
        "ns per call",
    );
}
