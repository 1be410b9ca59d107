//! Shared helpers of the lesson examples (`mod common;` in each): quick mode, timing
//! distributions, the claim/measured/why lines, a tiny PNG line plotter, and the platform run
//! in this process. Not a lesson itself. What the tests share too (paths, stats, WAVs) comes
//! from `handmade_support`.
#![allow(dead_code, unused_imports)] // each lesson uses a different subset

pub use handmade_support::*;

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

/// `LESSON_QUICK=1`: a few seconds per lesson (CI), with smaller counts.
pub fn quick() -> bool {
    std::env::var_os("LESSON_QUICK").is_some_and(|v| v != "0")
}

/// `full` normally, `small` in quick mode.
pub fn pick<T>(full: T, small: T) -> T {
    if quick() {
        small
    } else {
        full
    }
}

pub fn header(lesson: &str, title: &str) {
    println!("== {lesson}: {title}");
    let _ = TITLE.set(format!("{lesson}: {title}"));
    let build =
        if cfg!(debug_assertions) { "debug (unoptimised: timings mean little; run with --release)" } else { "release" };
    println!("build: {build}; mode: {}", if quick() { "quick" } else { "full" });
}

/// The course's claim, the measurement beside it, and one line on the difference.
pub fn verdict(claim: &str, measured: &str, why: &str) {
    println!("claim: {claim}");
    println!("measured: {measured}");
    println!("why: {why}");
}

/// Percentiles of a set of samples (any unit).
#[derive(Clone, Copy, Debug)]
pub struct Dist {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

pub fn dist(samples: &[f64]) -> Dist {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let at = |p: f64| s[((p * (s.len() - 1) as f64).round() as usize).min(s.len() - 1)];
    Dist { p50: at(0.50), p99: at(0.99), max: s[s.len() - 1], mean: s.iter().sum::<f64>() / s.len() as f64 }
}

/// Prints `label: p50=.. p99=.. max=.. mean=.. unit` and returns the distribution.
pub fn report(label: &str, samples: &[f64], unit: &str) -> Dist {
    let d = dist(samples);
    println!(
        "{label:<34} p50={:>10.1} p99={:>10.1} max={:>10.1} mean={:>10.1} {unit} (n={})",
        d.p50,
        d.p99,
        d.max,
        d.mean,
        samples.len()
    );
    d
}

/// Times `op` `samples` times, each sample covering `batch` calls, in ns per call. Batching
/// amortises the ~20-40 ns cost of reading the clock; `batch = 1` keeps single-call tails.
pub fn time_ns(samples: usize, batch: usize, mut op: impl FnMut()) -> Vec<f64> {
    for _ in 0..batch.max(1) * 10 {
        op(); // warm caches, page in, train branch predictors
    }
    (0..samples)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..batch {
                op();
            }
            start.elapsed().as_nanos() as f64 / batch as f64
        })
        .collect()
}

/// What reading the clock twice costs, to put single-call timings in perspective.
pub fn clock_overhead_ns() -> f64 {
    dist(&time_ns(2000, 1, || {
        black_box(());
    }))
    .p50
}

/// Minor and major page faults of this process so far (getrusage).
pub fn page_faults() -> (i64, i64) {
    // SAFETY: `getrusage` fills the zeroed struct we pass; RUSAGE_SELF is always valid.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    (usage.ru_minflt, usage.ru_majflt)
}

/// `<target>/lessons/` (under CARGO_TARGET_DIR when set: tests/lessons.rs points it at a
/// private directory), created on first use.
pub fn lessons_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(target_dir);
    let dir = target.join("lessons");
    std::fs::create_dir_all(&dir).expect("cannot create target/lessons");
    dir
}

/// Series colours, in order: red, blue, green, orange, purple.
pub const COLOURS: [[u8; 3]; 5] = [[220, 50, 47], [38, 139, 210], [60, 160, 60], [230, 140, 20], [140, 80, 170]];

/// The lesson's title, kept by `header` so every plot is titled without each lesson saying it.
static TITLE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// A line plot drawn with plotters: a title (the lesson's header), axes with tick values and
/// the units the legend text names, each series in `COLOURS` order with its label in a legend
/// box inside the picture, optional dashed vertical markers, and a log y axis on request.
///
/// The legend text keeps its printed form, `x: <x axis>, y: <y axis>; red: <series>, blue:
/// <series>, dashed: <markers>`: it is parsed for the axis titles and the labels, and printed.
pub struct Plot {
    series: Vec<Vec<(f64, f64)>>,
    markers: Vec<f64>,
    log_y: bool,
    x_ticks: Option<fn(f64) -> String>,
    x_tick_count: Option<usize>,
}

/// The parts of a legend text.
struct Legend {
    x: String,
    y: String,
    labels: Vec<String>,
    markers: Option<String>,
}

fn parse_legend(text: &str, series: usize) -> Legend {
    let (axes, rest) = text.split_once("; ").unwrap_or((text, ""));
    let (x, y) = axes.split_once(", y: ").unwrap_or((axes, ""));
    let x = x.strip_prefix("x: ").unwrap_or(x).to_string();
    // Items start at a colour name or "dashed:"; labels may contain commas of their own.
    let keys: Vec<String> =
        (0..series).map(|k| format!("{}: ", colour_name(k))).chain(["dashed: ".to_string()]).collect();
    let mut starts: Vec<(usize, &String)> = keys.iter().filter_map(|k| rest.find(k.as_str()).map(|i| (i, k))).collect();
    starts.sort();
    let item = |k: usize| -> Option<String> {
        let key = &keys[k];
        let pos = starts.iter().position(|(_, s)| *s == key)?;
        let from = starts[pos].0 + key.len();
        let to = starts.get(pos + 1).map_or(rest.len(), |(i, _)| *i);
        Some(rest[from..to].trim_end_matches([',', ' ', ';']).to_string())
    };
    Legend {
        x,
        y: y.to_string(),
        labels: (0..series)
            .map(|k| item(k).unwrap_or_else(|| if series == 1 { y.to_string() } else { format!("series {}", k + 1) }))
            .collect(),
        markers: item(series),
    }
}

/// Registers DejaVu Sans (found through fontconfig's `fc-match`, else Debian's path) as
/// plotters' "sans-serif", once. Err names what is missing.
fn font_ready() -> Result<(), String> {
    static READY: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    READY
        .get_or_init(|| {
            let found = std::process::Command::new("fc-match")
                .args(["-f", "%{file}", "DejaVu Sans:style=Book"])
                .output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .filter(|p| p.ends_with(".ttf"));
            let path = found.unwrap_or_else(|| "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf".into());
            let bytes = std::fs::read(&path).map_err(|e| {
                format!("no DejaVu Sans font at {path} ({e}): install fonts-dejavu-core (.ci/setup.sh)")
            })?;
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, bytes)
                .map_err(|_| format!("{path} is not a font plotters can read"))
        })
        .clone()
}

impl Plot {
    pub fn new() -> Self {
        Self { series: Vec::new(), markers: Vec::new(), log_y: false, x_ticks: None, x_tick_count: None }
    }

    pub fn series(mut self, points: impl IntoIterator<Item = (f64, f64)>) -> Self {
        self.series.push(points.into_iter().collect());
        self
    }

    pub fn marker(mut self, x: f64) -> Self {
        self.markers.push(x);
        self
    }

    /// A log10 y axis (for times that span decades); values <= 0 are left out.
    pub fn log_y(mut self) -> Self {
        self.log_y = true;
        self
    }

    /// How x tick values are written (default: the number) and, optionally, how many ticks.
    pub fn x_ticks(mut self, format: fn(f64) -> String, count: Option<usize>) -> Self {
        self.x_ticks = Some(format);
        self.x_tick_count = count;
        self
    }

    /// Writes `target/lessons/<name>.png` and prints `plot: <path> (<legend>)`; when it cannot
    /// draw (no font), says why in one line on stderr and prints no `plot:` line.
    pub fn save(&self, name: &str, legend: &str) -> PathBuf {
        let path = lessons_dir().join(format!("{name}.png"));
        match font_ready().and_then(|()| self.draw(&path, legend).map_err(|e| e.to_string())) {
            Ok(()) => println!("plot: {} ({legend})", path.display()),
            Err(e) => eprintln!("plot {name} not drawn: {e}"),
        }
        path
    }

    /// The data's extent, with room above it for the legend box (`labels` lines) so the box
    /// sits over empty space, not over the lines.
    fn bounds(&self, labels: usize) -> (f64, f64, f64, f64) {
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        let usable = |&&(x, y): &&(f64, f64)| x.is_finite() && y.is_finite() && (!self.log_y || y > 0.0);
        for &(x, y) in self.series.iter().flatten().filter(usable) {
            (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
        }
        if x0 > x1 {
            (x0, x1, y0, y1) = (0.0, 1.0, 1.0, 2.0);
        }
        if x1 <= x0 {
            x1 = x0 + 1.0;
        }
        let room = 0.06 + 0.075 * labels as f64;
        let (y0, y1) = if self.log_y {
            let (lo, hi) = (y0 / 1.5, (y1 * 1.5).max(y0 * 2.0));
            (lo, hi * (hi / lo).powf(room))
        } else if y1 <= y0 {
            (y0 - 1.0, y1 + 1.0 + 2.0 * room)
        } else {
            let span = y1 - y0;
            (y0 - span * 0.05, y1 + span * room)
        };
        (x0, x1, y0, y1)
    }

    fn draw(&self, path: &std::path::Path, legend_text: &str) -> Result<(), Box<dyn std::error::Error>> {
        use plotters::prelude::*;
        let legend = parse_legend(legend_text, self.series.len());
        let (x0, x1, y0, y1) = self.bounds(self.series.len() + usize::from(legend.markers.is_some()));
        let (w, h) = (900u32, 520u32);
        let mut rgb = vec![255u8; (w * h * 3) as usize];
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        root.fill(&WHITE)?;
        let title = TITLE.get().map_or("lesson plot", |t| t.as_str());
        let mut builder = ChartBuilder::on(&root);
        let chart = builder.caption(title, ("sans-serif", 20)).margin(12).x_label_area_size(48).y_label_area_size(78);
        let x_fmt = self.x_ticks.unwrap_or(tick);
        let colour = |k: usize| {
            let [r, g, b] = COLOURS[k % COLOURS.len()];
            RGBColor(r, g, b)
        };
        macro_rules! finish {
            ($chart:expr) => {{
                let mut chart = $chart;
                chart
                    .configure_mesh()
                    .x_desc(legend.x.as_str())
                    .y_desc(legend.y.as_str())
                    .x_labels(self.x_tick_count.unwrap_or(10))
                    .x_label_formatter(&|v| x_fmt(*v))
                    .y_label_formatter(&|v| tick(*v))
                    .label_style(("sans-serif", 14))
                    .axis_desc_style(("sans-serif", 15))
                    .light_line_style(RGBColor(235, 235, 235))
                    .draw()?;
                for (k, s) in self.series.iter().enumerate() {
                    let points =
                        s.iter().copied().filter(|&(x, y)| x.is_finite() && y.is_finite() && (!self.log_y || y > 0.0));
                    let c = colour(k);
                    // plotters' wide strokes misdraw a segment whose ends share a pixel (a spike
                    // out of the frame): dense series get 1-pixel lines.
                    let width = if s.len() > 300 { 1 } else { 2 };
                    chart
                        .draw_series(LineSeries::new(points, c.stroke_width(width)))?
                        .label(legend.labels[k].as_str())
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 22, y)], c.stroke_width(3)));
                }
                for &m in &self.markers {
                    let dashes = (0..40).map(|i| {
                        let t =
                            |j: f64| if self.log_y { y0 * (y1 / y0).powf(j / 40.0) } else { y0 + (y1 - y0) * j / 40.0 };
                        PathElement::new(vec![(m, t(i as f64)), (m, t(i as f64 + 0.5))], BLACK.stroke_width(1))
                    });
                    chart.draw_series(dashes)?;
                }
                if let Some(text) = &legend.markers {
                    chart
                        .draw_series(std::iter::once(PathElement::new(Vec::<(f64, f64)>::new(), BLACK)))?
                        .label(format!("dashed: {text}"))
                        .legend(|(x, y)| {
                            PathElement::new(vec![(x, y), (x + 8, y), (x + 14, y), (x + 22, y)], BLACK.stroke_width(1))
                        });
                }
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::UpperLeft)
                    .background_style(WHITE.mix(0.85))
                    .border_style(RGBColor(150, 150, 150))
                    .label_font(("sans-serif", 14))
                    .draw()?;
            }};
        }
        if self.log_y {
            finish!(chart.build_cartesian_2d(x0..x1, (y0..y1).log_scale())?);
        } else {
            finish!(chart.build_cartesian_2d(x0..x1, y0..y1)?);
        }
        root.present()?;
        drop(root);
        write_indexed_png(path, w, h, &rgb)
    }
}

/// Writes an 8-bit palette PNG (a fraction of the RGB file's size): the exact colours when
/// there are at most 256, else a 6x6x6 colour cube plus 40 greys (text and lines stay sharp).
fn write_indexed_png(path: &std::path::Path, w: u32, h: u32, rgb: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
    use std::collections::HashMap;
    let mut palette: Vec<[u8; 3]> = Vec::new();
    let mut index: HashMap<[u8; 3], u8> = HashMap::new();
    let mut exact = true;
    for px in rgb.chunks_exact(3) {
        let c = [px[0], px[1], px[2]];
        let next = palette.len();
        if let std::collections::hash_map::Entry::Vacant(slot) = index.entry(c) {
            if next == 256 {
                exact = false;
                break;
            }
            slot.insert(next as u8);
            palette.push(c);
        }
    }
    let pixels: Vec<u8> = if exact {
        rgb.chunks_exact(3).map(|px| index[&[px[0], px[1], px[2]]]).collect()
    } else {
        palette = (0..216u32).map(|i| [(i / 36 * 51) as u8, (i / 6 % 6 * 51) as u8, (i % 6 * 51) as u8]).collect();
        palette.extend((0..40u32).map(|g| [(g * 255 / 39) as u8; 3]));
        rgb.chunks_exact(3)
            .map(|px| {
                let spread = px.iter().max().unwrap() - px.iter().min().unwrap();
                if spread < 12 {
                    let grey = (u32::from(px[0]) + u32::from(px[1]) + u32::from(px[2])) / 3;
                    (216 + (grey * 39 + 127) / 255) as u8
                } else {
                    let q = |v: u8| (u32::from(v) + 25) / 51;
                    (q(px[0]) * 36 + q(px[1]) * 6 + q(px[2])) as u8
                }
            })
            .collect()
    };
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut encoder = png::Encoder::new(file, w, h);
    encoder.set_color(png::ColorType::Indexed);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_palette(palette.concat());
    encoder.set_compression(png::Compression::High);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&pixels)?;
    Ok(())
}

/// A tick value in few characters: 1234567 -> 1.23M, 0.000012 -> 1.2e-5.
fn tick(v: f64) -> String {
    let a = v.abs();
    if a < 1e-9 {
        "0".into()
    } else if a >= 1e6 {
        let s = format!("{:.3}", v / 1e6);
        s.trim_end_matches('0').trim_end_matches('.').to_string() + "M"
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else if a >= 0.001 {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{v:.1e}")
    }
}

/// A percentile plot of timing samples: x is -log10(1 - quantile), so the tail gets room
/// (ticks read min, p90, p99, p99.9), and y is the time on a log scale.
pub fn percentile_plot(name: &str, series: &[(&str, &[f64])], unit: &str) {
    // One tick per decade of the tail: min, p90, p99, p99.9, ...
    let most = series.iter().map(|(_, s)| s.len()).max().unwrap_or(1).max(2) as f64;
    let decades = most.log10().floor() as usize + 1;
    let mut plot = Plot::new().log_y().x_ticks(
        |v| {
            if v < 0.05 {
                "min".to_string()
            } else {
                let p = 100.0 * (1.0 - 10f64.powf(-v));
                let s = format!("p{p:.3}");
                s.trim_end_matches('0').trim_end_matches('.').to_string()
            }
        },
        Some(decades),
    );
    let mut legend = Vec::new();
    for (k, (label, samples)) in series.iter().enumerate() {
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let n = s.len() as f64;
        plot = plot.series(s.iter().enumerate().map(|(i, &v)| (-(1.0 - i as f64 / n).log10(), v)));
        legend.push(format!("{}: {label}", colour_name(k)));
    }
    plot.save(name, &format!("x: percentile (log of 1 - quantile), y: {unit} (log scale); {}", legend.join(", ")));
}

pub fn colour_name(k: usize) -> &'static str {
    ["red", "blue", "green", "orange", "purple"][k % 5]
}

/// Runs the real platform (`handmade::run`) in this process with `flags` and returns its
/// `stats:` pairs (read them with `stat`). The game library is found (and built if stale) the
/// way the binary does, unless `LESSON_GAME_LIB` names one.
pub fn run_in_process(flags: &[&str]) -> Vec<(String, String)> {
    use clap::Parser;
    let mut argv = vec!["handmade"];
    argv.extend_from_slice(flags);
    // tests/lessons.rs passes the game library it built, so no cargo runs inside `cargo test`.
    let game_lib = std::env::var("LESSON_GAME_LIB").ok();
    if let Some(lib) = &game_lib {
        argv.extend_from_slice(&["--game-lib", lib]);
    }
    let config = handmade::Config::from_args(&handmade::Args::parse_from(argv)).unwrap_or_else(|e| {
        eprintln!("bad platform flags: {e}");
        std::process::exit(2);
    });
    let report = handmade::run(&config).unwrap_or_else(|e| {
        eprintln!("the platform failed: {e}");
        std::process::exit(1);
    });
    parse_stats(&report.stats_line).expect("the platform's stats line")
}

/// What an ALSA playback PCM was granted after asking (the device lessons print both).
#[derive(Clone, Copy, Debug)]
pub struct Granted {
    pub rate: u32,
    pub buffer: i64,
    pub period: i64,
    pub start_threshold: i64,
}

impl Granted {
    pub fn ms(&self, frames: i64) -> f64 {
        frames as f64 * 1e3 / f64::from(self.rate)
    }
}

/// Opens `device` for stereo S16 playback the way the course's `snd_pcm_set_params` does
/// (alsa-lib `pcm.c`): interleaved access, the rate near `rate`, a buffer near `buffer_us`,
/// periods of a quarter of it, `start_threshold = (buffer / period) * period` (so it starts
/// only once the buffer is full) and `avail_min = period`. `start` overrides the threshold.
pub fn open_playback(
    device: &str,
    rate: u32,
    buffer_us: u32,
    start: Option<i64>,
) -> alsa::Result<(alsa::PCM, Granted)> {
    use alsa::pcm::{Access, Format, HwParams};
    use alsa::{Direction, ValueOr};
    let pcm = alsa::PCM::new(device, Direction::Playback, false)?;
    let granted_rate = {
        let hw = HwParams::any(&pcm)?;
        hw.set_access(Access::RWInterleaved)?;
        hw.set_format(Format::s16())?;
        hw.set_channels(2)?;
        let granted_rate = hw.set_rate_near(rate, ValueOr::Nearest)?;
        hw.set_buffer_time_near(buffer_us, ValueOr::Nearest)?;
        hw.set_period_time_near(buffer_us / 4, ValueOr::Nearest)?;
        pcm.hw_params(&hw)?;
        granted_rate
    };
    let (buffer, period) = {
        let hw = pcm.hw_params_current()?;
        (hw.get_buffer_size()?, hw.get_period_size()?)
    };
    let threshold = start.unwrap_or((buffer / period.max(1)) * period);
    {
        let sw = pcm.sw_params_current()?;
        sw.set_start_threshold(threshold)?;
        sw.set_avail_min(period)?;
        pcm.sw_params(&sw)?;
    }
    Ok((pcm, Granted { rate: granted_rate, buffer, period, start_threshold: threshold }))
}

/// The one line a device lesson prints when no device opens, then a non-zero exit: it never
/// prints figures it did not measure.
pub fn no_device(device: &str, error: &alsa::Error) -> ! {
    eprintln!(
        "no device: ALSA `{device}` did not open ({}: {error}); nothing measured (tests run this under .ci/pulse-null-sink.sh)",
        errno_name(error.errno())
    );
    std::process::exit(1);
}

/// Opens like `open_playback` or ends the lesson through `no_device`.
pub fn open_or_exit(device: &str, rate: u32, buffer_us: u32, start: Option<i64>) -> (alsa::PCM, Granted) {
    open_playback(device, rate, buffer_us, start).unwrap_or_else(|e| no_device(device, &e))
}

/// The symbolic name of an errno value (the ones ALSA playback returns), else its number.
pub fn errno_name(errno: i32) -> String {
    let name = match errno {
        libc::ENOENT => "ENOENT",
        libc::EINVAL => "EINVAL",
        libc::EPIPE => "EPIPE",
        libc::EBADFD => "EBADFD",
        libc::EBUSY => "EBUSY",
        libc::EAGAIN => "EAGAIN",
        libc::ESTRPIPE => "ESTRPIPE",
        libc::ENODEV => "ENODEV",
        libc::ENXIO => "ENXIO",
        libc::EIO => "EIO",
        libc::EPERM => "EPERM",
        libc::ENOTTY => "ENOTTY",
        _ => return format!("errno {errno}"),
    };
    name.to_string()
}

/// A stereo S16 sine (440 Hz, -12 dBFS) that carries its phase across calls.
pub struct Tone {
    phase: f64,
    step: f64,
}

impl Tone {
    pub fn new(rate: u32) -> Self {
        Self { phase: 0.0, step: 440.0 * std::f64::consts::TAU / f64::from(rate) }
    }

    /// Fills `out` (interleaved L R) and returns it.
    pub fn fill<'a>(&mut self, out: &'a mut [i16]) -> &'a [i16] {
        for frame in out.chunks_exact_mut(2) {
            let s = (self.phase.sin() * 8192.0) as i16;
            frame.fill(s);
            self.phase = (self.phase + self.step) % std::f64::consts::TAU;
        }
        out
    }
}

/// What one stall did to a playing device (`stall_run`).
#[derive(Clone, Debug)]
pub struct StallOutcome {
    pub granted: Granted,
    /// avail and delay read just after the stall, before any write (or the errno it gave).
    pub after_stall: Result<(i64, i64), i32>,
    /// Errors seen by the writes and status reads over the run: EPIPE (underrun) and others.
    pub epipe: u32,
    /// Of `epipe`, those before the stall: underruns the stall did not cause (a loaded machine).
    pub epipe_before_stall: u32,
    pub other_errors: u32,
    /// From each EPIPE to the device running again (recover, then refill to start_threshold).
    pub recovery_ms: Vec<f64>,
    /// Start-to-start gaps between writes, ms.
    pub write_gaps_ms: Vec<f64>,
}

/// Plays a tone on `device` (buffer near `buffer_ms`) for `run_ms`, keeping the buffer full,
/// and stalls once for `stall_ms` at 40% of the run. `pull`: the loop waits for the device to
/// ask (`snd_pcm_wait`) and writes one period; push: the loop wakes on its own 5 ms clock and
/// writes whatever fits. Either way the stall sits where the sound is made, before the write.
pub fn stall_run(device: &str, buffer_ms: u32, stall_ms: u64, run_ms: u64, pull: bool) -> StallOutcome {
    use std::time::Duration;
    let (pcm, g) = open_or_exit(device, 48_000, buffer_ms * 1000, None);
    let io = pcm.io_i16().expect("S16 I/O");
    let mut tone = Tone::new(g.rate);
    let mut buf = vec![0i16; 2 * g.buffer as usize];
    let start = Instant::now();
    let (stall_at, end) = (start + Duration::from_millis(run_ms * 2 / 5), start + Duration::from_millis(run_ms));
    let mut out = StallOutcome {
        granted: g,
        after_stall: Ok((0, 0)),
        epipe: 0,
        epipe_before_stall: 0,
        other_errors: 0,
        recovery_ms: Vec::new(),
        write_gaps_ms: Vec::new(),
    };
    let (mut stalled, mut xrun_at, mut last_write) = (false, None::<Instant>, None::<Instant>);
    let failed = |e: alsa::Error, out: &mut StallOutcome, xrun_at: &mut Option<Instant>| {
        if e.errno() == libc::EPIPE {
            out.epipe += 1;
            xrun_at.get_or_insert_with(Instant::now);
        } else {
            out.other_errors += 1;
        }
        recover(&pcm, e);
    };
    while Instant::now() < end {
        if pull && pcm.state() == alsa::pcm::State::Running {
            let _ = pcm.wait(Some(200));
        } else {
            std::thread::sleep(Duration::from_millis(5));
        }
        let just_stalled = !stalled && Instant::now() >= stall_at;
        if just_stalled {
            out.epipe_before_stall = out.epipe;
            stalled = true;
            std::thread::sleep(Duration::from_millis(stall_ms));
        }
        let (avail, _) = match pcm.avail_delay() {
            Ok(v) => {
                if just_stalled {
                    out.after_stall = Ok(v);
                }
                v
            }
            Err(e) => {
                if just_stalled {
                    out.after_stall = Err(e.errno());
                }
                failed(e, &mut out, &mut xrun_at);
                continue;
            }
        };
        let frames = if pull { g.period.min(avail) } else { avail };
        if frames <= 0 || (pull && avail < g.period && pcm.state() == alsa::pcm::State::Running) {
            continue;
        }
        let now = Instant::now();
        if let Some(prev) = last_write.replace(now) {
            out.write_gaps_ms.push((now - prev).as_secs_f64() * 1e3);
        }
        let samples = &mut buf[..2 * frames.min(g.buffer) as usize];
        if let Err(e) = io.writei(tone.fill(samples)) {
            failed(e, &mut out, &mut xrun_at);
            continue;
        }
        if let Some(at) = xrun_at {
            if pcm.state() == alsa::pcm::State::Running {
                out.recovery_ms.push(at.elapsed().as_secs_f64() * 1e3);
                xrun_at = None;
            }
        }
    }
    let _ = pcm.drop();
    out
}

/// How `after_stall` reads in a table.
pub fn after_stall_text(o: &StallOutcome) -> String {
    match o.after_stall {
        Ok((avail, delay)) => format!("avail {avail} delay {delay}"),
        Err(errno) => errno_name(errno),
    }
}

/// Recovers `pcm` after `error` (snd_pcm_recover: prepare after an underrun, resume after a
/// suspend) and, where that fails (an error it does not handle, e.g. EIO from a plugin whose
/// server stream failed), prepares it anyway. Returns the errno the device gave.
pub fn recover(pcm: &alsa::PCM, error: alsa::Error) -> i32 {
    let errno = error.errno();
    if pcm.try_recover(error, true).is_err() {
        let _ = pcm.prepare();
    }
    errno
}

/// The calling thread's scheduling: `Ok` when `policy` (libc::SCHED_OTHER/SCHED_FIFO) at
/// `priority` was set, `Err(errno name)` when the kernel refused (EPERM without the right).
pub fn set_thread_policy(policy: i32, priority: i32) -> Result<(), String> {
    let param = libc::sched_param { sched_priority: priority };
    // SAFETY: pthread_self is always valid for the calling thread; `param` outlives the call.
    let rc = unsafe { libc::pthread_setschedparam(libc::pthread_self(), policy, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(errno_name(rc))
    }
}

/// Pins the calling thread to `cpu`; Err names the errno.
pub fn pin_thread(cpu: usize) -> Result<(), String> {
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET writes inside it for cpu < 1024.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(errno_name(std::io::Error::last_os_error().raw_os_error().unwrap_or(0)))
    }
}

/// RLIMIT_RTPRIO (soft, hard), whether this process runs as root, and whether an rtkit
/// daemon is running (its process found in /proc): the ways to get real-time priority.
pub fn realtime_rights() -> String {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit fills the struct we pass.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_RTPRIO, &mut limit) };
    let show = |v: libc::rlim_t| if v == libc::RLIM_INFINITY { "unlimited".to_string() } else { v.to_string() };
    let rtprio =
        if rc == 0 { format!("{}/{}", show(limit.rlim_cur), show(limit.rlim_max)) } else { "unreadable".into() };
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let rtkit = std::fs::read_dir("/proc").ok().is_some_and(|dir| {
        dir.flatten().any(|e| std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == "rtkit-daemon"))
    });
    format!("RLIMIT_RTPRIO soft/hard {rtprio}; euid 0 (root, CAP_SYS_NICE): {root}; rtkit-daemon running: {rtkit}")
}
