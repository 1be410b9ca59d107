#!/usr/bin/env python3
"""The README figures table from the raw outputs of .ci/figures.sh (two passes).

Usage (called by .ci/figures.sh):
  figures_table.py OUT_DIR --date D --machine M --elapsed S --audio-seconds N --edits N --soak-frames N
      prints the Markdown section (first line, table, notes) built from OUT_DIR/pass1 and pass2
  figures_table.py --splice README.md TABLE.md
      replaces what is between `<!-- figures:begin -->` and `<!-- figures:end -->` with TABLE.md

Every figure comes from the two passes' outputs: a row whose source is missing or failed in
either pass is left out of the table and named in a note below it, never filled in by hand.
Ratios are computed inside one pass (side by side), then shown for both passes.
"""

import argparse
import re
import sys
from pathlib import Path

BEGIN = "<!-- figures:begin -->"
END = "<!-- figures:end -->"

UNIT_NS = {"ps": 1e-3, "ns": 1.0, "µs": 1e3, "us": 1e3, "ms": 1e6, "s": 1e9}


def criterion(text):
    """`group/name  time: [low est high]` -> {name: (low, est, high)} in ns."""
    out, name = {}, None
    for line in text.splitlines():
        m = re.match(r"^(\S.*?)\s+time:\s+\[(.+)\]", line) or re.match(r"^\s+time:\s+\[(.+)\]", line)
        if m:
            if len(m.groups()) == 2:
                name, body = m.group(1).strip(), m.group(2)
            else:
                body = m.group(1)
            parts = body.split()
            if name and len(parts) == 6:
                out[name] = tuple(float(parts[i]) * UNIT_NS[parts[i + 1]] for i in (0, 2, 4))
            continue
        if line and not line[0].isspace() and not line.startswith(("Benchmarking", "Found", "Warning", "Gnuplot")):
            name = line.strip()
    return out


def stats_line(text):
    for line in text.splitlines():
        if line.startswith("stats:"):
            return dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)
    return {}


def failed(text):
    return "figures: exit status" in text


def parse_pass(d):
    """All figures of one pass: {key: number}. Missing sources leave their keys out."""
    f = {}

    def read(name):
        p = d / name
        if not p.exists():
            return None
        t = p.read_text(errors="replace")
        return None if failed(t) else t

    t = read("bench_reload.txt")
    if t:
        for name, (lo, est, hi) in criterion(t).items():
            m = re.match(r"reload/dev game library \((\d+) KiB\)", name)
            if m:
                f.update(reload_us=est / 1e3, reload_lo_us=lo / 1e3, reload_hi_us=hi / 1e3, reload_kib=int(m.group(1)))
    t = read("bench_guard.txt")
    if t:
        c = criterion(t)
        if "game call/bare" in c and "game call/guarded" in c:
            bare, guarded = c["game call/bare"][1], c["game call/guarded"][1]
            f.update(guard_bare_ns=bare, guard_guarded_ns=guarded, guard_extra_ns=guarded - bare)
    t = read("bench_toolkit.txt")
    if t:
        c = criterion(t)
        est = {k: v[1] for k, v in c.items()}
        g = "alloc_9600_bytes/"
        if all(g + k in est for k in ("arena_temp", "malloc_box", "bumpalo")):
            a, b, u = est[g + "arena_temp"], est[g + "malloc_box"], est[g + "bumpalo"]
            f.update(arena_ns=a, box_ns=b, bump_ns=u, box_over_arena=b / a, arena_over_bump=a / u)
        g = "mix_8_voices_800_frames/"
        if g + "aos" in est and g + "soa" in est:
            a, s = est[g + "aos"], est[g + "soa"]
            f.update(aos_us=a / 1e3, soa_us=s / 1e3, aos_over_soa=a / s)
        g = "convert_4800_frames_to_i16/"
        if all(g + k in est for k in ("scalar", "platform_interleave_i16", "vectorised_round_by_truncation")):
            s, p, v = est[g + "scalar"], est[g + "platform_interleave_i16"], est[g + "vectorised_round_by_truncation"]
            f.update(conv_scalar_us=s / 1e3, conv_platform_us=p / 1e3, conv_trunc_us=v / 1e3, conv_gain=s / p)
        g = "spsc_100k_items_two_threads/"
        if all(g + k in est for k in ("handmade_spsc", "rtrb", "mutex_vecdeque")):
            o, r, m = est[g + "handmade_spsc"], est[g + "rtrb"], est[g + "mutex_vecdeque"]
            f.update(spsc_ours_ms=o / 1e6, spsc_rtrb_ms=r / 1e6, spsc_mutex_ms=m / 1e6,
                     spsc_rtrb_over_ours=r / o, spsc_mutex_over_ours=m / o)
    t = read("platform_stats.txt")
    s = stats_line(t) if t else {}
    if s:
        f.update(plat_reloads=int(s["reloads"]), plat_reload_fail=int(s["reload_failures"]),
                 plat_reload_p50=float(s["reload_ms_p50"]), plat_reload_max=float(s["reload_ms_max"]),
                 plat_busy_max=float(s["reload_frame_busy_ms_max"]),
                 plat_allocs=int(s["heap_allocs_after_warmup"]))
    t = read("demo_report.txt")
    if t:
        m = re.search(r"p50 ([\d.]+) ms, p99 ([\d.]+) ms", t)
        if m:
            f.update(demo_p50=float(m.group(1)), demo_p99=float(m.group(2)))
        m = re.search(r"([\d.]+)% of one core", t)
        if m:
            f.update(demo_cpu=float(m.group(1)))
    t = read("audio_report.txt")
    if t:
        parse_audio(t, f)
    t = read("edit_to_hear.txt")
    if t:
        # The kept levers' row of edit_to_hear's table, then the bare cargo build's.
        m = re.search(r"^\| [^|]*\(default\) \| ([\d.]+) \| (\d+) \| (\d+|-) \| (\d+) \| \*\*(\d+)\*\* \| (\d+) \|", t, re.M)
        b = re.search(r"^\| bare `cargo build[^|]*\| \| (\d+) \|", t, re.M)
        n = re.search(r"medians over (\d+) edits", t)
        if m and b and n:
            f.update(e2h_log=float(m.group(5)), e2h_out=float(m.group(6)), e2h_build=float(m.group(2)),
                     e2h_bare=float(b.group(1)), e2h_edits=int(n.group(1)))
    t = read("soak.txt")
    if t:
        m = re.search(r"soak: took (\d+) s", t)
        s = stats_line(t)
        r = re.search(r"resident ([\d.]+) MiB after 3,600 frames, ([\d.]+) MiB after (\d+)", t)
        tone = re.search(r"max residual ([\d.]+) LSB, discontinuities (\d+)", t)
        if m and s and r and tone and "soak: FAILED" not in t:
            f.update(soak_s=float(m.group(1)), soak_reloads=int(s["reloads"]),
                     soak_allocs=int(s["heap_allocs_after_warmup"]), soak_rss_short=float(r.group(1)),
                     soak_rss_long=float(r.group(2)), soak_frames=int(r.group(3)),
                     soak_residual=float(tone.group(1)), soak_disc=int(tone.group(2)))
    return f


def parse_audio(t, f):
    m = re.search(r"p50 (\d+) ns, p99 (\d+) ns", t)
    if m:
        f.update(conv800_p50=float(m.group(1)) / 1e3, conv800_p99=float(m.group(2)) / 1e3,
                 conv800_per_frame=float(m.group(1)) / 800)
    under = {}
    allocs = {}
    line = r"^\s+(alsa|sdl)\s+requested\s+([\d.]+) ms -> achieved ([\d.]+) ms, underruns (\d+), .*sound_heap_allocs (\d+)"
    for b, req, ach, u, a in re.findall(line, t, re.M):
        key = f"{b}_{req.replace('.', '_')}"
        f[f"lat_{key}"] = float(ach)
        under[b] = under.get(b, 0) + int(u)
        allocs[b] = allocs.get(b, 0) + int(a)
    for b, n in under.items():
        f[f"lat_{b}_underruns"] = n
        f[f"lat_{b}_sound_allocs"] = allocs[b]
    for b in ("alsa", "sdl"):
        # The first step that had underruns, if the sweep reached one.
        fail = re.search(rf"sweep {b}\s+([\d.]+) ms for \d+ s: underruns ([1-9]\d*)", t)
        n = fail.group(2) if fail else ""
        after = f"{float(fail.group(1)):g} ms had {n} underrun{'' if n == '1' else 's'}" if fail else ""
        m = re.search(rf"lowest zero-underrun --latency-ms through the null sink \({b}, (\d+) s\): ([\d.]+) ms", t)
        if m:
            low = re.search(rf"sweep {b}\s+{re.escape(m.group(2))}\.0 ms .*achieved ([\d.]+) ms", t)
            notes = [f"achieved {low.group(1)} ms"] if low else []
            notes += [after] if after else []
            f[f"low_{b}"] = f"{m.group(2)} ms ({'; '.join(notes)})" if notes else f"{m.group(2)} ms"
        elif re.search(rf"{b}: underruns even at 20 ms", t):
            f[f"low_{b}"] = f"none ({after})" if after else "none"


def num(v):
    """Three significant figures, no exponent: 0.0634, 1.28, 22.3, 275, 9100. Text stays text."""
    if isinstance(v, str):
        return v
    if isinstance(v, int):
        return f"{v:,}"
    if v != v:
        return "none"
    a = abs(v)
    if a >= 100:
        return f"{v:,.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


# Rows: (what, template, how). `{key}` is a timing or ratio shown as "pass 1 / pass 2" and
# counted in the variation; `{=key}` is a count shown the same way but not counted (a count of
# zero against one would be an infinite relative difference and says nothing about noise).
ROWS = [
    ("Full reload (stat, ELF check, private copy, dlopen, contract check, symbols, swap) of the "
     "dev-profile game library ({=reload_kib} KiB)",
     "{reload_us} µs (criterion estimate; interval {reload_lo_us#1}-{reload_hi_us#1} / {reload_lo_us#2}-{reload_hi_us#2})",
     "`cargo bench --bench reload`"),
    ("Reloads in a running release platform, forced every 7 frames over 3,600",
     "{=plat_reloads} reloads, {=plat_reload_fail} failed; p50 {plat_reload_p50} ms, max {plat_reload_max} ms; "
     "the reload frame's whole work at most {plat_busy_max} ms of its 16.7 ms; "
     "{=plat_allocs} allocations after warm-up",
     "`target/release/handmade --headless --audio none --frames 3600 --reload-every 7 --stats --no-rebuild`"),
    ("A guarded game call (`CallGuard::call`: two atomic stores, a vDSO clock read, sigsetjmp) vs a bare call",
     "{guard_guarded_ns} ns vs {guard_bare_ns} ns: {guard_extra_ns} ns a call on top",
     "`cargo bench --bench guard`"),
    ("Save to new code running, {=e2h_edits} one-line edits of `game/src/sound.rs` "
     "(release platform, `game-fast` game)",
     "median {e2h_log} ms in the platform log, {e2h_out} ms seen from outside (quick-tier build "
     "{e2h_build} ms); a bare `cargo build` of the same edit {e2h_bare} ms; goal 150 ms",
     "`VARIANTS=final EDITS={edits} cargo run --release --example edit_to_hear`"),
    ("Game update+render at 960x540",
     "p50 {demo_p50} ms, p99 {demo_p99} ms",
     "`cargo run --release --example demo_report`"),
    ("Demo CPU at 60 fps (headless, paced, 5 s)",
     "{demo_cpu}% of one core",
     "same"),
    ("SoA f32 -> interleaved i16, one frame (800 frames)",
     "p50 {conv800_p50} µs, p99 {conv800_p99} µs ({conv800_per_frame} ns a frame)",
     "`cargo run --release --example audio_report`"),
    ("the same, 4,800 frames: platform vs a `f32::round` loop",
     "{conv_platform_us} µs vs {conv_scalar_us} µs: {conv_gain}x (rounding by +-0.5 and truncating: {conv_trunc_us} µs)",
     "`cargo bench --bench toolkit`"),
    ("ALSA latency, requested -> achieved (mean device delay at write time, 5 s runs)",
     "33.3 -> {lat_alsa_33_3} ms, 20 -> {lat_alsa_20_0} ms, 10 -> {lat_alsa_10_0} ms; {=lat_alsa_underruns} underruns and {=lat_alsa_sound_allocs} sound-path allocations in the three runs",
     "`.ci/pulse-null-sink.sh run -- cargo run --release --example audio_report`"),
    ("SDL2 latency, requested -> achieved",
     "33.3 -> {lat_sdl_33_3} ms, 20 -> {lat_sdl_20_0} ms, 10 -> {lat_sdl_10_0} ms; {=lat_sdl_underruns} underruns and {=lat_sdl_sound_allocs} sound-path allocations in the three runs "
     "(one SDL device buffer and one frame come on top, see below)",
     "same"),
    ("Lowest `--latency-ms` with zero underruns through the null sink, {audio_seconds} s per step "
     "(20, 15, 10, 8, 6, 5, 4, 3, 2 ms)",
     "ALSA {=low_alsa}; SDL2 {=low_sdl}. "
     "SDL2 counts underruns only as an empty queue at write time, which misses SDL padding a callback "
     "with silence, so its sweep is not a gap-free guarantee",
     "`AUDIO_REPORT_SECONDS={audio_seconds} .ci/pulse-null-sink.sh run -- cargo run --release --example audio_report` "
     "(60 s per step without it)"),
    ("9,600-byte buffer: arena vs `Box` (malloc) vs bumpalo",
     "{arena_ns} ns vs {box_ns} ns vs {bump_ns} ns: malloc {box_over_arena}x the arena, the arena {arena_over_bump}x bumpalo",
     "`cargo bench --bench toolkit`"),
    ("Mixing 8 voices x 800 frames, AoS vs SoA",
     "{aos_us} µs vs {soa_us} µs: AoS {aos_over_soa}x the SoA time",
     "same"),
    ("SPSC queue, 100k items between two threads: ours vs rtrb vs `Mutex<VecDeque>`",
     "{spsc_ours_ms} ms vs {spsc_rtrb_ms} ms vs {spsc_mutex_ms} ms: rtrb {spsc_rtrb_over_ours}x our time, "
     "the mutex {spsc_mutex_over_ours}x",
     "same"),
    ("{=soak_frames} frames offline (one hour of game time at 60 fps), a reload every 300 frames",
     "{soak_s} s; {=soak_reloads} reloads; {=soak_allocs} allocations after warm-up; resident {soak_rss_short} MiB "
     "after 3,600 frames and {soak_rss_long} MiB after all; one sine, {=soak_disc} discontinuities "
     "(largest residual {soak_residual} LSB)",
     "`SOAK_REALTIME_MINUTES=0 .ci/soak.sh` (add the real-time part with `SOAK_REALTIME_MINUTES=N`)"),
]

# What the Varied column calls a figure.
LABELS = {
    "reload_us": "estimate", "plat_reload_p50": "p50", "plat_reload_max": "max", "plat_busy_max": "reload frame",
    "guard_guarded_ns": "guarded", "guard_bare_ns": "bare", "guard_extra_ns": "on top",
    "e2h_log": "log median", "e2h_out": "outside median", "e2h_build": "build", "e2h_busy": "reload frame",
    "demo_p50": "p50", "demo_p99": "p99", "demo_cpu": "CPU", "conv800_p50": "p50", "conv800_p99": "p99",
    "conv800_per_frame": "per frame", "conv_platform_us": "platform", "conv_scalar_us": "round loop",
    "conv_gain": "ratio", "conv_trunc_us": "truncating", "arena_ns": "arena", "box_ns": "Box", "bump_ns": "bumpalo",
    "box_over_arena": "malloc/arena", "arena_over_bump": "arena/bumpalo", "aos_us": "AoS", "soa_us": "SoA",
    "aos_over_soa": "ratio", "spsc_ours_ms": "ours", "spsc_rtrb_ms": "rtrb", "spsc_mutex_ms": "mutex",
    "spsc_rtrb_over_ours": "rtrb/ours", "spsc_mutex_over_ours": "mutex/ours", "soak_s": "time",
    "soak_rss_short": "resident", "soak_rss_long": "resident", "soak_residual": "residual",
}
for _b in ("alsa", "sdl"):
    for _r in ("33_3", "20_0", "10_0"):
        LABELS[f"lat_{_b}_{_r}"] = _r.replace("_", ".").removesuffix(".0") + " ms"

PLACEHOLDER = re.compile(r"\{(=?)(\w+)(#[12])?\}")


def rel_diff(a, b):
    if a != a or b != b:
        return 0.0 if (a != a) == (b != b) else float("inf")
    lo = min(abs(a), abs(b))
    if lo == 0:
        return 0.0 if a == b else float("inf")
    return abs(a - b) / lo


def render(template, p1, p2, consts, diffs):
    """Fills a template; returns None when a figure is missing in either pass."""
    missing = []

    def sub(m):
        count, key, second = m.group(1), m.group(2), m.group(3)
        if key in consts:
            return str(consts[key])
        if key not in p1 or key not in p2:
            missing.append(key)
            return "?"
        if second:  # one pass alone (`#1`, `#2`), inside a phrase that already pairs them
            return num((p1 if second == "#1" else p2)[key])
        a, b = p1[key], p2[key]
        if not count:
            diffs.append((rel_diff(a, b), key))
        return num(a) if num(a) == num(b) and count else f"{num(a)} / {num(b)}"

    text = PLACEHOLDER.sub(sub, template)
    return None if missing else text


def table(out, args):
    p1, p2 = parse_pass(out / "pass1"), parse_pass(out / "pass2")
    loads = [(out / p / "loadavg").read_text().split()[0] if (out / p / "loadavg").exists() else "?" for p in ("pass1", "pass2")]
    consts = {"audio_seconds": args.audio_seconds, "edits": args.edits}
    lines = [
        f"Generated {args.date} by `bash .ci/figures.sh` (this run took {args.elapsed // 60} min "
        f"{args.elapsed % 60} s) on {args.machine}; load average (1 min) {loads[0]} when pass 1 started and "
        f"{loads[1]} when pass 2 did (the machine is shared with other builds). Each figure is **pass 1 / pass 2**: two complete "
        f"passes of the script, one after the other; ratios are taken inside one pass. *Varied* is the "
        f"largest difference between the two passes over the row's timings and ratios, "
        f"|p1 - p2| / min(p1, p2), and which figure it was. Bench figures are criterion's point estimates. "
        f"Counts and text shown once were equal in both passes.",
        "",
        "| What | Figure (pass 1 / pass 2) | Varied | How |",
        "|---|---|---|---|",
    ]
    left_out, spread = [], []
    for what, figure, how in ROWS:
        diffs = []
        w = render(what, p1, p2, consts, diffs)
        f = render(figure, p1, p2, consts, diffs)
        h = render(how, p1, p2, consts, [])
        if w is None or f is None or h is None:
            left_out.append(PLACEHOLDER.sub(lambda m: consts.get(m.group(2), "N"), what))
            continue
        worst, key = max(diffs) if diffs else (0.0, "")
        varied = f"{worst * 100:.0f}% ({LABELS.get(key, key)})" if diffs else ("same in both" if "/" not in f else "differs")
        spread.append((worst, key, w))
        lines.append(f"| {w} | {f} | {varied} | {h} |")
    lines.append("")
    if left_out:
        lines.append("Left out of this run (their measurement failed or was not run; raw output in "
                     "`target/figures/pass{1,2}/`): " + "; ".join(left_out) + ".")
        lines.append("")
    lines.append("Not in the table: the figures for the peer hot-lib-reloader 0.8.2 (864 ms at its default "
                 "debounce, 280 ms at 20 ms) are quoted from issue 5 and were never measured on this machine.")
    return "\n".join(lines)


def splice(readme, table_file):
    text = Path(readme).read_text()
    new = Path(table_file).read_text().rstrip("\n")
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        sys.exit(f"figures: {readme} needs exactly one {BEGIN} before one {END}")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    Path(readme).write_text(f"{head}{BEGIN}\n{new}\n\n{END}{tail}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out", nargs="?")
    ap.add_argument("--splice", nargs=2, metavar=("README", "TABLE"))
    for a in ("date", "machine"):
        ap.add_argument(f"--{a}", default="?")
    for a in ("elapsed", "audio-seconds", "edits", "soak-frames"):
        ap.add_argument(f"--{a}", type=int, default=0)
    args = ap.parse_args()
    if args.splice:
        splice(*args.splice)
    else:
        print(table(Path(args.out), args))


if __name__ == "__main__":
    main()
