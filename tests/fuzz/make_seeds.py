#!/usr/bin/env python3
"""Writes the committed seed corpora under tests/fuzz/corpus/<target>/seed-* (small, a few KB
each). Run from the repository root after `cargo build -p game` (the game library seeds are cut
from target/debug/libgame.so): python3 tests/fuzz/make_seeds.py
"""
import os
import struct
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    os.makedirs(os.path.join(ROOT, target), exist_ok=True)
    with open(os.path.join(ROOT, target, "seed-" + name), "wb") as f:
        f.write(data)


def wav(channels, bits, frames, fmt_tag=1, extensible=False, rate=48000):
    block = channels * ((bits + 7) // 8)
    data = bytes((i * 37) & 0xFF for i in range(frames * block))
    if extensible:
        sub = struct.pack("<H14s", fmt_tag, b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71")
        fmt = struct.pack("<HHIIHHHHI", 0xFFFE, channels, rate, rate * block, block, bits, 22, bits, 3) + sub
    else:
        fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, rate * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def wav_seeds():
    put("wav", "mono16", wav(1, 16, 64))
    put("wav", "stereo16", wav(2, 16, 64))
    put("wav", "mono8", wav(1, 8, 64))
    put("wav", "stereo24", wav(2, 24, 32))
    put("wav", "mono32", wav(1, 32, 32))
    put("wav", "float32", wav(2, 32, 32, fmt_tag=3))
    put("wav", "extensible", wav(2, 16, 32, extensible=True))
    put("wav", "truncated", wav(2, 16, 64)[:100])
    huge = bytearray(wav(1, 16, 8))
    huge[40:44] = struct.pack("<I", 0x7FFFFFF0)  # data chunk claims ~2 GiB
    put("wav", "huge-claim", bytes(huge))


def loop_seeds():
    # live_loop.rs: 72-byte header (magic + 8 u64), snapshot at 4096, then 492-byte inputs.
    # The first byte is the fuzz target's mode: 3 = patch in the layout hash and the checksum.
    record = 492
    for name, snapshot, frames, max_frames in [("empty-snapshot", 0, 1, 2), ("snapshot", 100, 2, 2)]:
        inputs = 4096 + (snapshot + 4095) // 4096 * 4096
        body = bytearray(inputs + max_frames * record)
        body[0:8] = b"HMLOOP\x00\x02"
        struct.pack_into("<8Q", body, 8, 0, snapshot, record, max_frames, frames, 1, 0, 0)
        for i in range(snapshot):
            body[4096 + i] = i & 0xFF
        for f in range(frames):
            struct.pack_into("<Qf", body, inputs + f * record, f, 1 / 60)
            body[inputs + f * record + 12] = 1  # controller 0 connected
        put("loop_recording", name, b"\x03" + bytes(body))
    put("loop_recording", "raw-header-only", b"\x00HMLOOP\x00\x02" + bytes(64))


def script_seeds():
    put("input_script", "demo", b"# demo\n10 right down\n\n5 space down\n10 right up # same frame\n")
    put("input_script", "letters", b"0 l down\n1 l up\n60 a down\n61 z up\n  7\tescape   down\n")
    put("input_script", "bad", b"1 right down\nx right down\n1 f1 down\n18446744073709551616 a up\n")


def elf_seeds(lib):
    with open(lib, "rb") as f:
        elf = f.read()
    put("game_library", "elf-head-4k", elf[:4096])
    put("game_library", "elf-head-1k", elf[:1024])
    # No section table (offset and count zeroed): the length check passes and the dynamic
    # loader sees a file whose segments reach far past its end.
    cut = bytearray(elf[:4096])
    struct.pack_into("<Q", cut, 0x28, 0)
    struct.pack_into("<H", cut, 0x3C, 0)
    put("game_library", "elf-head-no-sections", bytes(cut))
    put("game_library", "elf-magic-only", b"\x7fELF")
    put("game_library", "text", b"this is not a shared object, just some text\n" * 4)
    put("game_library", "empty", b"")


if __name__ == "__main__":
    lib = sys.argv[1] if len(sys.argv) > 1 else "target/debug/libgame.so"
    wav_seeds()
    loop_seeds()
    script_seeds()
    elf_seeds(lib)
