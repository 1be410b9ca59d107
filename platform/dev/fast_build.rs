//! Faster rebuilds on save (issue 15): the watcher's thread builds the game through here.
//!
//! - **rustc run directly**: the first build through cargo runs it with `-vv`, and the rustc
//!   command cargo ran for the game (its environment, program and arguments) is kept. While
//!   only the game's own sources change, later builds run that command without cargo (~30 ms
//!   less). A manifest, `Cargo.lock` or any dependency's source newer than the capture, or a
//!   rustc failure that is not a plain error in the game's code, goes back to cargo.
//! - **tiers**: the game is first built at a low opt-level (its own incremental directory) and
//!   installed; then the profile's optimised build runs and replaces it. A save during the
//!   optimised build stops it: it would be stale. The quick tier also skips rustc's ThinLTO
//!   across codegen units (`-C lto=off`), which at opt-level 1 with 256 units is the largest
//!   single pass of a one-constant rebuild (`-Z time-passes`: `LLVM_thinlto`; measured 235 ->
//!   175 ms); at the default opt-level 0 there is none to skip. Two more choices make the
//!   quick tier's link and incremental bookkeeping smaller (`-Z time-passes` of a one-constant
//!   edit at opt-level 0: link 38 ms of 140): 8 codegen units instead of the profile's 256
//!   (fewer objects to hash, keep and link), and the standard library linked as the toolchain's
//!   `libstd-*.so` (`-C prefer-dynamic`, found through a run path into rustc's own target
//!   library directory) instead of copied into every build. Only the quick tier does either:
//!   the optimised tier, the one that stays, is built as cargo builds it.
//! - cargo's own lock is honoured: the direct build takes `target/<profile>/.cargo-lock` as
//!   cargo does, and a wait for it over a second is said in one line, as is cargo's "Blocking
//!   waiting for file lock" (cargo runs without `--quiet`, its stderr read as it comes).
//!
//! Every lever can be turned off for measuring (examples/edit_to_hear.rs) with
//! `HANDMADE_EDIT_LOOP`, e.g. `direct=off,tiers=off,settle_ms=8,nice=10`.

use std::ffi::OsString;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use crate::dev::game_build::{self, GameCrate};

/// A wait on a lock longer than this is said.
const LOCK_SAY_AFTER: Duration = Duration::from_secs(1);

/// How long the optimised tier waits for the quick one to be probed and loaded (two frames).
const QUICK_TIER_LEAD: Duration = Duration::from_millis(35);

/// Which levers are on. The defaults are the ones measured to help (examples/edit_to_hear.rs):
/// the quick tier is opt-level 0: with edits that really change the code it built in 159 ms
/// against 185 ms at opt-level 1 (9 edits each, interleaved), for a demo frame of 4.3 ms
/// (p99 5.2 ms) instead of 0.6 ms, well inside the 16.7 ms frame, during the few hundred ms
/// until the optimised tier replaces it. A game whose debug build overruns a frame is better
/// served by `HANDMADE_EDIT_LOOP=tiers=1`, and so is sound at a few ms of latency: the slower
/// frame comes before the frame's sound write and delays it by as much (measured at 5 ms: gaps
/// around each save at opt-level 0, fewer at 1; README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Run the captured rustc command instead of cargo when only game sources changed.
    pub direct: bool,
    /// Opt-level of the quick first tier (`None`: one build at the profile's level).
    pub quick_opt_level: Option<u8>,
    /// Quiet time after the last save event before building.
    pub settle: Duration,
    /// CPU niceness of the build the user waits for (the optimised tier always runs at 10).
    pub nice: i32,
    /// Copy, check and test-load each good build on the watcher's thread (`reload::Preparer`),
    /// rather than in the frame loop's reload protocol over the next frames.
    pub check_on_watcher: bool,
    /// Keep rustc's ThinLTO across codegen units in the quick tier (off by default: see the
    /// header). Only the direct build honours it; cargo's `game-quick*` profiles set `lto = "off"`.
    pub quick_thin_lto: bool,
    /// Codegen units of the direct quick tier (`None`: the profile's).
    pub quick_units: Option<u16>,
    /// Link the direct quick tier against the toolchain's shared standard library.
    pub quick_shared_std: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            direct: true,
            quick_opt_level: Some(0),
            settle: Duration::from_millis(2),
            nice: 0,
            check_on_watcher: true,
            quick_thin_lto: false,
            quick_units: Some(8),
            quick_shared_std: true,
        }
    }
}

impl Settings {
    /// The defaults, changed by `HANDMADE_EDIT_LOOP` (`direct=on|off`, `tiers=off|0|1`,
    /// `settle_ms=N`, `nice=N`, `check=watcher|frames`, `thinlto=on|off`, `units=N|profile`,
    /// `std=shared|static`); an unknown item is said once and ignored.
    pub fn from_env() -> Self {
        let mut settings = Self::default();
        let Some(spec) = std::env::var_os("HANDMADE_EDIT_LOOP") else { return settings };
        for item in spec.to_string_lossy().split(',').filter(|s| !s.is_empty()) {
            if let Err(e) = settings.apply(item) {
                log::warn!("HANDMADE_EDIT_LOOP: {e}; ignored");
            }
        }
        settings
    }

    fn apply(&mut self, item: &str) -> Result<(), String> {
        let (key, value) = item.split_once('=').ok_or_else(|| format!("`{item}` is not KEY=VALUE"))?;
        let bad = || format!("`{item}`: bad value");
        match (key.trim(), value.trim()) {
            ("direct", "on") => self.direct = true,
            ("direct", "off") => self.direct = false,
            ("tiers", "off") => self.quick_opt_level = None,
            ("tiers", level) => self.quick_opt_level = Some(level.parse().ok().filter(|l| *l <= 1).ok_or_else(bad)?),
            ("settle_ms", ms) => self.settle = Duration::from_millis(ms.parse().map_err(|_| bad())?),
            ("nice", n) => self.nice = n.parse().ok().filter(|n| (0..=19).contains(n)).ok_or_else(bad)?,
            ("check", "watcher") => self.check_on_watcher = true,
            ("check", "frames") => self.check_on_watcher = false,
            ("thinlto", "on") => self.quick_thin_lto = true,
            ("thinlto", "off") => self.quick_thin_lto = false,
            ("units", "profile") => self.quick_units = None,
            ("units", n) => self.quick_units = Some(n.parse().ok().filter(|n| (1..=256).contains(n)).ok_or_else(bad)?),
            ("std", "shared") => self.quick_shared_std = true,
            ("std", "static") => self.quick_shared_std = false,
            _ => return Err(format!("unknown setting `{item}`")),
        }
        Ok(())
    }

    /// One line for the log: what the watcher does on a save.
    pub fn describe(&self) -> String {
        let lto = if self.quick_thin_lto { "" } else { " without ThinLTO" };
        let units = self.quick_units.map_or_else(String::new, |n| format!(", {n} codegen units"));
        let std = if self.quick_shared_std { ", shared std" } else { "" };
        let tiers = match self.quick_opt_level {
            Some(level) => format!("opt-level {level}{lto}{units}{std} first, then the profile's"),
            None => "one tier".to_string(),
        };
        let how = if self.direct { "rustc direct when only game sources change" } else { "cargo always" };
        let check = if self.check_on_watcher { "checked on the watcher" } else { "checked in frames" };
        format!("{how}; {tiers}; settle {} ms; nice {}; {check}", self.settle.as_millis(), self.nice)
    }
}

/// One finished tier, for the frame loop and the log.
#[derive(Debug)]
pub struct TierResult {
    /// 1: the quick tier, 2: the optimised one (1 as well when there is only one).
    pub tier: u8,
    pub result: Result<(), String>,
    pub took: Duration,
    /// "rustc" or "cargo": what built it.
    pub by: &'static str,
    pub opt_level: String,
}

/// How a build run ended.
pub enum RunEnd {
    Finished {
        ok: bool,
        stderr: String,
    },
    /// A save came in (the optimised tier is stopped: it would be stale).
    Interrupted,
}

/// Saves arriving while a build runs: `readable` is the inotify descriptor, `relevant` reads its
/// events (keeping them for the next build) and says whether one was a save of the game.
pub struct Interrupt<'a> {
    pub readable: std::os::fd::RawFd,
    pub relevant: &'a mut dyn FnMut() -> bool,
}

/// A captured rustc command: what cargo ran, to run again without it.
#[derive(Debug, Clone, PartialEq)]
pub struct RustcCommand {
    env: Vec<(String, String)>,
    program: String,
    args: Vec<String>,
}

impl RustcCommand {
    /// The game's rustc command in one `cargo build -vv` stderr line (`Running `...``), if it is
    /// one: the primary package's cdylib.
    pub fn from_cargo_line(line: &str) -> Option<Self> {
        let quoted = line.trim_start().strip_prefix("Running `")?.strip_suffix('`')?;
        let words = shell_words(quoted)?;
        let mut words = words.into_iter().peekable();
        let mut env = Vec::new();
        while let Some((key, value)) = words.peek().and_then(|w| env_assignment(w)) {
            env.push((key, value));
            words.next();
        }
        let program = words.next()?;
        let args: Vec<String> = words.collect();
        let primary = env.iter().any(|(k, v)| k == "CARGO_PRIMARY_PACKAGE" && v == "1");
        let cdylib = args.windows(2).any(|w| w[0] == "--crate-type" && w[1] == "cdylib");
        (primary && cdylib).then_some(Self { env, program, args })
    }

    /// The value after `flag` (`--out-dir DIR`) or in `-C key=value`.
    fn value(&self, flag: &str) -> Option<&str> {
        let pos = self.args.iter().position(|a| a == flag)?;
        self.args.get(pos + 1).map(String::as_str)
    }

    fn codegen(&self, key: &str) -> Option<&str> {
        let prefix = format!("{key}=");
        self.args.windows(2).find(|w| w[0] == "-C" && w[1].starts_with(&prefix)).map(|w| &w[1][prefix.len()..])
    }

    pub fn out_dir(&self) -> Option<PathBuf> {
        self.value("--out-dir").map(PathBuf::from)
    }

    pub fn opt_level(&self) -> String {
        self.codegen("opt-level").unwrap_or("0").to_string()
    }

    /// The same build with human-readable errors (cargo asks rustc for JSON and renders it).
    fn human(&self) -> Self {
        let mut out = self.clone();
        out.args.retain(|a| {
            !a.starts_with("--error-format") && !a.starts_with("--json") && !a.starts_with("--diagnostic-width")
        });
        out.args.push("--color=never".into());
        out
    }

    /// The quick tier: another opt-level, its own output and incremental directories (an
    /// opt-level change would throw the optimised tier's incremental cache away), no dep-info,
    /// unless `thin_lto` no ThinLTO across codegen units, `units` codegen units, and with
    /// `shared_std` (the toolchain's target library directory) the shared standard library.
    fn quick(&self, q: &Quick<'_>) -> Self {
        let Quick { opt_level, thin_lto, out_dir, incremental, .. } = *q;
        let mut out = self.human();
        let mut i = 0;
        while i + 1 < out.args.len() {
            let (flag, value) = (&out.args[i], &out.args[i + 1]);
            if flag == "-C" && value.starts_with("opt-level=") {
                out.args[i + 1] = format!("opt-level={opt_level}");
            } else if flag == "-C" && value.starts_with("codegen-units=") && q.units.is_some() {
                out.args.drain(i..i + 2);
                continue;
            } else if flag == "-C" && value.starts_with("lto=") && !thin_lto {
                out.args[i + 1] = "lto=off".into();
            } else if flag == "-C" && value.starts_with("incremental=") {
                out.args[i + 1] = format!("incremental={}", incremental.display());
            } else if flag == "--out-dir" {
                out.args[i + 1] = out_dir.display().to_string();
            }
            i += 1;
        }
        for arg in &mut out.args {
            if arg.starts_with("--emit=") {
                *arg = "--emit=link".into();
            }
        }
        if out.codegen("opt-level").is_none() {
            out.args.extend(["-C".into(), format!("opt-level={opt_level}")]);
        }
        if out.codegen("lto").is_none() && !thin_lto {
            out.args.extend(["-C".into(), "lto=off".into()]);
        }
        if let Some(units) = q.units {
            out.args.extend(["-C".into(), format!("codegen-units={units}")]);
        }
        if let Some(dir) = q.shared_std {
            out.args.extend(["-C".into(), "prefer-dynamic".into()]);
            out.args.extend(["-C".into(), format!("link-arg=-Wl,-rpath,{}", dir.display())]);
        }
        out
    }

    /// The directory of the toolchain's `libstd-*.so` (`rustc --print target-libdir`), if it
    /// has one: what a build with `-C prefer-dynamic` needs at run time.
    fn shared_std_dir(&self) -> Option<PathBuf> {
        let mut cmd = Command::new(&self.program);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v))).args(["--print", "target-libdir"]);
        let out = cmd.stderr(Stdio::null()).output().ok().filter(|o| o.status.success())?;
        let dir = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
        let has_std = std::fs::read_dir(&dir).ok()?.flatten().any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("libstd-") && name.ends_with(".so")
        });
        has_std.then_some(dir)
    }

    fn command(&self, cwd: &Path) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args).current_dir(cwd).envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }
}

/// What the quick tier changes in the captured command.
#[derive(Clone, Copy)]
struct Quick<'a> {
    opt_level: u8,
    thin_lto: bool,
    units: Option<u16>,
    shared_std: Option<&'a Path>,
    out_dir: &'a Path,
    incremental: &'a Path,
}

/// `KEY=value` at the head of a shell command line.
fn env_assignment(word: &str) -> Option<(String, String)> {
    let (key, value) = word.split_once('=')?;
    let is_name = !key.is_empty() && key.chars().all(|c| c == '_' || c.is_ascii_alphanumeric());
    is_name.then(|| (key.to_string(), value.to_string()))
}

/// Splits a command line the way cargo quotes it (POSIX shell words: single and double quotes,
/// backslash escapes). `None` on an unclosed quote.
pub fn shell_words(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => words.extend(word.take()),
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => w.push(c),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => w.push(chars.next()?),
                        c => w.push(c),
                    }
                }
            }
            '\\' => word.get_or_insert_with(String::new).push(chars.next()?),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Some(words)
}

/// The captured command and what it depends on besides the game's sources.
struct Captured {
    rustc: RustcCommand,
    /// Manifests, the lock file and every dependency's sources (from cargo's dep-info files).
    inputs: Vec<PathBuf>,
    at: SystemTime,
    /// Where the toolchain's shared standard library is (`None`: it has none).
    std_dir: Option<PathBuf>,
}

/// Builds the game of one workspace, in tiers, by rustc or cargo.
pub struct GameBuilder {
    game: GameCrate,
    workspace: PathBuf,
    game_dir: PathBuf,
    library: PathBuf,
    settings: Settings,
    captured: Option<Captured>,
}

impl GameBuilder {
    /// The dev profile (a debug platform) is already the quick build: one tier then. So is a
    /// game crate whose workspace has none of this project's profiles (`handmade --game`): its
    /// `game-fast` goes on cargo's command line, and a quick tier would need more of them.
    pub fn new(game: &GameCrate, mut settings: Settings) -> Self {
        if game_build::game_profile() == "dev" || game.define_profile {
            settings.quick_opt_level = None;
        }
        Self {
            game: game.clone(),
            workspace: game.workspace_root.clone(),
            game_dir: game.dir.clone(),
            library: game.library.clone(),
            settings,
            captured: None,
        }
    }

    pub fn settings(&self) -> Settings {
        self.settings
    }

    /// `target/<profile>`, where cargo's lock and the library live.
    fn profile_dir(&self) -> PathBuf {
        self.library.parent().map_or_else(|| self.workspace.join("target"), Path::to_path_buf)
    }

    /// Builds every tier for a save of `changed`; `done` gets each finished tier at once (the
    /// quick one is loaded while the optimised one builds). `interrupt` stops the optimised
    /// tier when another save comes in.
    pub fn build(&mut self, changed: &[PathBuf], interrupt: &mut Interrupt<'_>, done: &mut dyn FnMut(TierResult)) {
        let direct = self.settings.direct && self.direct_is_valid(changed);
        let Some(quick) = self.settings.quick_opt_level else {
            done(self.build_full(direct, 1, None));
            return;
        };
        let first = if direct { self.build_quick_direct(quick) } else { self.build_quick_cargo(quick) };
        let ok = first.result.is_ok();
        done(first);
        // The quick tier's probe and load go first: the compiler would slow them down.
        if ok && !interrupted_within(interrupt, QUICK_TIER_LEAD) {
            let direct = direct || (self.settings.direct && self.captured.is_some());
            done(self.build_full(direct, 2, Some(interrupt)));
        }
    }

    /// Only game sources changed since the command was captured.
    fn direct_is_valid(&mut self, changed: &[PathBuf]) -> bool {
        let Some(captured) = &self.captured else { return false };
        let manifest = changed.iter().any(|p| p.file_name().is_some_and(|n| n == "Cargo.toml" || n == "build.rs"));
        let newer = |p: &PathBuf| p.metadata().and_then(|m| m.modified()).map_or(true, |t| t > captured.at);
        if manifest || captured.inputs.iter().any(newer) {
            log::info!("the game's manifest or dependencies changed: building through cargo");
            self.captured = None;
            return false;
        }
        true
    }

    /// The profile's build (the optimised tier), by rustc when it can, by cargo otherwise.
    fn build_full(&mut self, direct: bool, tier: u8, interrupt: Option<&mut Interrupt<'_>>) -> TierResult {
        let nice = if tier == 2 { 10 } else { self.settings.nice };
        let start = Instant::now();
        if let Some(rustc) = self.captured.as_ref().filter(|_| direct).map(|c| c.rustc.clone()) {
            let opt_level = rustc.opt_level();
            let cmd = rustc.human().command(&self.workspace);
            match self.run_rustc(cmd, nice, interrupt) {
                Direct::Built(result) => {
                    let result = result.and_then(|()| self.install_from(&rustc.out_dir().unwrap_or_default()));
                    return TierResult { tier, result, took: start.elapsed(), by: "rustc", opt_level };
                }
                Direct::Interrupted => {
                    let result = Err("stopped: a newer save is being built".into());
                    return TierResult { tier, result, took: start.elapsed(), by: "rustc", opt_level };
                }
                Direct::Stale(why) => {
                    log::info!("rustc run directly failed ({why}): building through cargo");
                    self.captured = None;
                }
            }
        }
        let result = self.run_cargo(game_build::game_profile(), nice, None);
        let opt_level = self.captured.as_ref().map_or_else(|| "?".into(), |c| c.rustc.opt_level());
        TierResult { tier, result, took: start.elapsed(), by: "cargo", opt_level }
    }

    /// The quick tier by rustc: the captured command at another opt-level, into its own
    /// directory, then installed over the watched library.
    fn build_quick_direct(&mut self, opt_level: u8) -> TierResult {
        let start = Instant::now();
        let captured = self.captured.as_ref().expect("direct builds have a command");
        let rustc = captured.rustc.clone();
        let dir = self.profile_dir().join("handmade-quick");
        let out = dir.join(format!("opt{opt_level}"));
        let _ = std::fs::create_dir_all(&out);
        let incremental = dir.join(format!("incremental-opt{opt_level}"));
        let quick = rustc.quick(&Quick {
            opt_level,
            thin_lto: self.settings.quick_thin_lto,
            units: self.settings.quick_units,
            shared_std: captured.std_dir.as_deref().filter(|_| self.settings.quick_shared_std),
            out_dir: &out,
            incremental: &incremental,
        });
        let by = "rustc";
        let opt = opt_level.to_string();
        match self.run_rustc(quick.command(&self.workspace), self.settings.nice, None) {
            Direct::Built(result) => {
                let result = result.and_then(|()| self.install_from(&out));
                TierResult { tier: 1, result, took: start.elapsed(), by, opt_level: opt }
            }
            Direct::Stale(why) => {
                log::info!("rustc run directly failed ({why}): building through cargo");
                self.captured = None;
                let mut again = self.build_quick_cargo(opt_level);
                again.took = start.elapsed();
                again
            }
            Direct::Interrupted => unreachable!("the quick tier is not interrupted"),
        }
    }

    /// The quick tier by cargo: the `game-quick` profile (Cargo.toml), installed over the
    /// watched library. Also captures the optimised command when the game needs compiling.
    fn build_quick_cargo(&mut self, opt_level: u8) -> TierResult {
        let start = Instant::now();
        let profile = format!("game-quick{opt_level}");
        let result = self.run_cargo(&profile, self.settings.nice, Some(opt_level));
        let out = self.game.target_dir.join(&profile);
        let result = result.and_then(|()| self.install_from(&out));
        TierResult { tier: 1, result, took: start.elapsed(), by: "cargo", opt_level: opt_level.to_string() }
    }

    /// Puts `dir/libgame.so` in place of the watched library in one rename, so the reloader
    /// never sees a half-written file (cargo's own uplift removes, then links).
    fn install_from(&self, dir: &Path) -> Result<(), String> {
        let name = self.library.file_name().unwrap_or_default();
        let built = dir.join(name);
        let staged = self.library.with_extension("so.handmade-new");
        let _ = std::fs::remove_file(&staged);
        // A copy, not a link: the next build must not rewrite the file the reloader reads.
        std::fs::copy(&built, &staged)
            .and_then(|_| std::fs::rename(&staged, &self.library))
            .map_err(|e| format!("cannot install {} as {}: {e}", built.display(), self.library.display()))
    }

    /// Runs rustc holding cargo's lock on the profile directory, as cargo would.
    fn run_rustc(&self, cmd: Command, nice: i32, interrupt: Option<&mut Interrupt<'_>>) -> Direct {
        let _lock = match CargoLock::take(&self.profile_dir()) {
            Ok(lock) => lock,
            Err(e) => return Direct::Stale(format!("cannot take cargo's lock: {e}")),
        };
        let mut cmd = background(cmd, nice);
        let child = match cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn() {
            Ok(child) => child,
            Err(e) => return Direct::Stale(format!("cannot run rustc: {e}")),
        };
        match follow(child, interrupt, &mut |_| {}) {
            RunEnd::Interrupted => Direct::Interrupted,
            RunEnd::Finished { ok: true, .. } => Direct::Built(Ok(())),
            RunEnd::Finished { ok: false, stderr } if is_code_error(&stderr, &self.game_dir, &self.workspace) => {
                Direct::Built(Err(game_build::first_error(&stderr)))
            }
            RunEnd::Finished { stderr, .. } => Direct::Stale(game_build::first_error(&stderr)),
        }
    }

    /// `cargo build` of the game with `profile`, its stderr read as it comes: the game's rustc
    /// command is captured (profile builds only), a lock wait is said.
    fn run_cargo(&mut self, profile: &str, nice: i32, quick: Option<u8>) -> Result<(), String> {
        let mut cmd = background(cargo_command(&self.game, profile), nice);
        let child =
            cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().map_err(|e| format!("cannot run cargo: {e}"))?;
        let mut seen = None;
        let end = follow(child, None, &mut |line| {
            if let Some(rustc) = RustcCommand::from_cargo_line(line) {
                seen = Some(rustc);
            }
        });
        let RunEnd::Finished { ok, stderr } = end else { unreachable!("cargo builds are not interrupted") };
        if let (Some(rustc), None) = (seen, quick) {
            self.capture(rustc);
        }
        if ok {
            Ok(())
        } else {
            Err(game_build::first_error(&stderr))
        }
    }

    fn capture(&mut self, rustc: RustcCommand) {
        let Some(deps) = rustc.out_dir() else { return };
        let mut inputs = vec![
            self.workspace.join("Cargo.lock"),
            self.workspace.join("Cargo.toml"),
            self.game_dir.join("Cargo.toml"),
        ];
        inputs.extend(dependency_sources(&deps, &self.workspace, &self.game_dir));
        log::debug!("captured the game's rustc command ({} other inputs watched)", inputs.len());
        let std_dir = if self.settings.quick_shared_std { rustc.shared_std_dir() } else { None };
        if self.settings.quick_shared_std && std_dir.is_none() {
            log::info!("this toolchain has no shared standard library: the quick tier links it in");
        }
        self.captured = Some(Captured { rustc, inputs, at: SystemTime::now(), std_dir });
    }
}

/// Waits `lead`, or less when a save comes in (true then).
fn interrupted_within(interrupt: &mut Interrupt<'_>, lead: Duration) -> bool {
    let start = Instant::now();
    while let Some(left) = lead.checked_sub(start.elapsed()).filter(|l| !l.is_zero()) {
        let mut fd = libc::pollfd { fd: interrupt.readable, events: libc::POLLIN, revents: 0 };
        // SAFETY: `fd` is a valid pollfd for the duration of the call.
        let ready = unsafe { libc::poll(&mut fd, 1, left.as_millis() as i32 + 1) };
        if ready > 0 && (interrupt.relevant)() {
            return true;
        }
    }
    false
}

enum Direct {
    Built(Result<(), String>),
    Interrupted,
    /// The command no longer fits (a crate it names is gone or from another compiler...).
    Stale(String),
}

/// A plain error in the game's code (cargo would say the same), not a stale command: the
/// first error points into the game's sources and is not about finding a crate.
fn is_code_error(stderr: &str, game_dir: &Path, workspace: &Path) -> bool {
    const STALE: [&str; 6] = ["E0460", "E0461", "E0462", "E0463", "E0514", "E0786"];
    if STALE.iter().any(|code| stderr.contains(code)) {
        return false;
    }
    let game = game_dir.strip_prefix(workspace).unwrap_or(game_dir).display().to_string();
    stderr.lines().any(|l| l.trim_start().strip_prefix("--> ").is_some_and(|place| place.starts_with(&game)))
}

/// Every source file listed in the dep-info files in `deps`, but the game's own.
fn dependency_sources(deps: &Path, workspace: &Path, game_dir: &Path) -> Vec<PathBuf> {
    let mut files = std::collections::BTreeSet::new();
    let entries = std::fs::read_dir(deps).map(|d| d.flatten().collect::<Vec<_>>()).unwrap_or_default();
    for entry in entries.into_iter().filter(|e| e.path().extension().is_some_and(|x| x == "d")) {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for line in text.lines().filter(|l| !l.starts_with(' ') && l.ends_with(':')) {
            let path = workspace.join(line.trim_end_matches(':'));
            if !path.starts_with(game_dir) {
                files.insert(path);
            }
        }
    }
    files.into_iter().collect()
}

/// The game's `cargo build` (from game_build), without `--quiet` and with `-vv`: cargo then
/// says when it waits for a lock, and prints the rustc command with its environment.
fn cargo_command(game: &GameCrate, profile: &str) -> Command {
    let base = game_build::cargo_build_command(game, profile);
    let mut cmd = Command::new(base.get_program());
    let mut args: Vec<OsString> = base.get_args().filter(|a| *a != "--quiet").map(OsString::from).collect();
    if let Some(pos) = args.iter().position(|a| a == "--profile") {
        if let Some(value) = args.get_mut(pos + 1) {
            *value = profile.into();
        }
    }
    cmd.args(args).arg("-vv").arg("--color=never");
    carry_env_and_dir(&base, &mut cmd);
    cmd
}

/// Copies `from`'s environment changes and working directory onto `to` (`env_clear` is not
/// visible through `Command` and is not used here).
fn carry_env_and_dir(from: &Command, to: &mut Command) {
    for (key, value) in from.get_envs() {
        match value {
            Some(value) => to.env(key, value),
            None => to.env_remove(key),
        };
    }
    if let Some(dir) = from.get_current_dir() {
        to.current_dir(dir);
    }
}

/// `cmd` at lower CPU priority, tied to the platform's life (SIGTERM when the thread that
/// started it ends), and started without forking the platform: through `handmade-probe
/// --background`, so `cmd` needs no `pre_exec` and std starts it with `posix_spawn` (a clone
/// that shares the memory map until the exec). A `fork` of the platform copies its page tables
/// while holding its memory-map lock, and write-protects every page it has written: the
/// real-time frame thread (and the sound library's threads in the process) then wait on that
/// lock, held by this normal-priority thread that a loaded machine preempts, and take a fault
/// on the next write to each page of game memory and bitmap. (Removing it made no difference
/// to the gaps that two 60 s runs could show, README "A rebuild at 5 ms"; the inversion is
/// there all the same.) Carries the program, arguments, environment changes and directory.
/// With no probe built, the old way: fork, then `setpriority` and `prctl` in the child.
fn background(cmd: Command, nice: i32) -> Command {
    if let Some(probe) = crate::reload::LoadProbe::find() {
        let mut launch = Command::new(probe.program());
        launch.arg("--background").arg(nice.to_string()).arg(std::process::id().to_string()).arg("--");
        launch.arg(cmd.get_program()).args(cmd.get_args());
        carry_env_and_dir(&cmd, &mut launch);
        return launch;
    }
    let mut cmd = cmd;
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec and only makes two plain
    // system calls (`setpriority`, `prctl`) that neither allocate nor take locks.
    unsafe {
        cmd.pre_exec(move || {
            libc::setpriority(libc::PRIO_PROCESS, 0, nice);
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    cmd
}

/// Reads the child's stderr as it comes (each line to `on_line`), says a lock wait over a
/// second in one line, and stops the child when `interrupt` reports a save.
fn follow(mut child: Child, mut interrupt: Option<&mut Interrupt<'_>>, on_line: &mut dyn FnMut(&str)) -> RunEnd {
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let mut text = String::new();
    let mut partial = Vec::new();
    let mut blocked: Option<(Instant, String)> = None;
    let mut said = false;
    loop {
        let timeout = match &blocked {
            Some((since, _)) if !said => (LOCK_SAY_AFTER.saturating_sub(since.elapsed())).as_millis() as i32 + 1,
            _ => -1,
        };
        let mut fds = [libc::pollfd { fd: stderr.as_raw_fd(), events: libc::POLLIN, revents: 0 }; 2];
        let mut count = 1;
        if let Some(i) = interrupt.as_ref() {
            fds[1] = libc::pollfd { fd: i.readable, events: libc::POLLIN, revents: 0 };
            count = 2;
        }
        // SAFETY: `fds` holds `count` valid pollfd entries for the duration of the call.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), count, timeout) };
        if ready < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            break;
        }
        if let Some((since, what)) = blocked.as_ref().filter(|_| !said) {
            if since.elapsed() >= LOCK_SAY_AFTER {
                log::warn!(
                    "game build waits for another cargo: {what} (for {:.1} s now)",
                    since.elapsed().as_secs_f64()
                );
                said = true;
            }
        }
        if count == 2 && fds[1].revents != 0 && interrupt.as_mut().is_some_and(|i| (i.relevant)()) {
            let _ = child.kill();
            let _ = child.wait();
            return RunEnd::Interrupted;
        }
        if fds[0].revents == 0 {
            continue;
        }
        let mut buf = [0u8; 4096];
        let n = match stderr.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        partial.extend_from_slice(&buf[..n]);
        while let Some(end) = partial.iter().position(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(&partial[..end]).into_owned();
            partial.drain(..=end);
            if line.contains("Blocking waiting for file lock") {
                blocked.get_or_insert((Instant::now(), line.trim().to_string()));
            } else if !line.trim().is_empty() {
                if said {
                    log::info!("the other cargo is done: building");
                }
                (blocked, said) = (None, false);
            }
            on_line(&line);
            text.push_str(&line);
            text.push('\n');
        }
    }
    text.push_str(&String::from_utf8_lossy(&partial));
    let ok = child.wait().is_ok_and(|s| s.success());
    RunEnd::Finished { ok, stderr: text }
}

/// Cargo's build lock on `target/<profile>` (`flock` on `.cargo-lock`, as cargo takes it):
/// held while rustc runs directly, so a cargo in the same directory and we never overlap.
struct CargoLock {
    _file: std::fs::File,
}

impl CargoLock {
    fn take(profile_dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(profile_dir)?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(profile_dir.join(".cargo-lock"))?;
        let start = Instant::now();
        let mut said = false;
        loop {
            // SAFETY: `file` is an open descriptor for the duration of the call.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                if said {
                    log::info!("the other cargo is done: building");
                }
                return Ok(Self { _file: file });
            }
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(e);
            }
            if !said && start.elapsed() >= LOCK_SAY_AFTER {
                log::warn!(
                    "game build waits for another cargo: file lock on {} held (for {:.1} s now)",
                    profile_dir.display(),
                    start.elapsed().as_secs_f64()
                );
                said = true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A build starts through the probe (no `pre_exec`, so no fork of the platform), at the
    /// niceness asked for, in the directory and environment asked for, and gets SIGTERM when
    /// the thread that started it ends.
    #[test]
    fn builds_start_through_the_probe_niced_and_tied_to_their_thread() {
        use std::os::unix::process::ExitStatusExt;
        if crate::reload::LoadProbe::find().is_none() {
            eprintln!("SKIPPED: handmade-probe is not built beside this test");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo \"$(cut -d' ' -f19 /proc/self/stat) $(pwd) $HANDMADE_TEST_VALUE\""]);
        cmd.current_dir(dir.path()).env("HANDMADE_TEST_VALUE", "passed on");
        let mut launch = background(cmd, 7);
        assert!(launch.get_program().to_string_lossy().ends_with("handmade-probe"));
        let out = launch.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let expected = format!("7 {} passed on", dir.path().canonicalize().unwrap().display());
        assert_eq!(text.trim(), expected, "stderr: {}", String::from_utf8_lossy(&out.stderr));

        let mut sleeper = std::thread::spawn(|| {
            let mut cmd = Command::new("sleep");
            cmd.arg("30");
            let child = background(cmd, 0).spawn().unwrap();
            // The launcher asks for the signal once it runs: a thread that ends at once can
            // beat it (the rebuild thread lives as long as the platform).
            std::thread::sleep(Duration::from_millis(300));
            child
        })
        .join()
        .unwrap();
        let start = Instant::now();
        let status = loop {
            if let Some(status) = sleeper.try_wait().unwrap() {
                break status;
            }
            if start.elapsed() > Duration::from_secs(10) {
                let _ = sleeper.kill();
                panic!("the build outlived the thread that started it");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(status.signal(), Some(libc::SIGTERM));
    }

    const LINE: &str = "     Running `CARGO=/bin/cargo CARGO_CRATE_NAME=game CARGO_PKG_AUTHORS='' CARGO_PKG_DESCRIPTION='The demo: a cdylib' CARGO_PRIMARY_PACKAGE=1 /bin/rustc --crate-name game --edition=2021 game/src/lib.rs --error-format=json --json=diagnostic-rendered-ansi,artifacts --crate-type cdylib --emit=dep-info,link -C opt-level=3 --check-cfg 'cfg(feature, values(\"loud\"))' --out-dir /t/game-fast/deps -C incremental=/t/game-fast/incremental -L dependency=/t/game-fast/deps`";

    #[test]
    fn cargo_lines_give_the_games_rustc_command() {
        let cmd = RustcCommand::from_cargo_line(LINE).expect("the game's command");
        assert_eq!(cmd.program, "/bin/rustc");
        assert!(cmd.env.contains(&("CARGO_PKG_DESCRIPTION".into(), "The demo: a cdylib".into())));
        assert!(cmd.env.contains(&("CARGO_PKG_AUTHORS".into(), String::new())));
        assert!(cmd.args.contains(&"cfg(feature, values(\"loud\"))".to_string()));
        assert_eq!(cmd.out_dir(), Some(PathBuf::from("/t/game-fast/deps")));
        assert_eq!(cmd.opt_level(), "3");
        let not_primary = LINE.replace("CARGO_PRIMARY_PACKAGE=1 ", "");
        assert_eq!(RustcCommand::from_cargo_line(&not_primary), None, "a dependency's command is not the game's");
        assert_eq!(RustcCommand::from_cargo_line("   Compiling game v0.1.0"), None);
    }

    #[test]
    fn the_quick_tier_has_its_own_level_and_directories() {
        let cmd = RustcCommand::from_cargo_line(LINE).unwrap();
        let q = Quick {
            opt_level: 1,
            thin_lto: false,
            units: None,
            shared_std: None,
            out_dir: Path::new("/t/q/out"),
            incremental: Path::new("/t/q/inc"),
        };
        let quick = cmd.quick(&q);
        assert_eq!(quick.opt_level(), "1");
        assert_eq!(quick.codegen("lto"), Some("off"), "no ThinLTO across codegen units");
        assert!(!quick.args.iter().any(|a| a.contains("prefer-dynamic") || a.contains("rpath")));
        let with_lto = cmd.quick(&Quick { thin_lto: true, ..q });
        assert_eq!(with_lto.codegen("lto"), None, "rustc's default, as cargo's `lto = false`");
        let units = cmd.quick(&Quick { units: Some(8), ..q }).quick(&Quick { units: Some(4), ..q });
        assert_eq!(units.args.iter().filter(|a| a.starts_with("codegen-units=")).count(), 1, "{:?}", units.args);
        assert_eq!(units.codegen("codegen-units"), Some("4"));
        let shared = cmd.quick(&Quick { shared_std: Some(Path::new("/sys/lib")), ..q });
        assert_eq!(shared.codegen("prefer-dynamic"), None, "a flag without a value");
        assert!(shared.args.windows(2).any(|w| w[0] == "-C" && w[1] == "prefer-dynamic"));
        assert_eq!(shared.codegen("link-arg"), Some("-Wl,-rpath,/sys/lib"));
        assert_eq!(quick.out_dir(), Some(PathBuf::from("/t/q/out")));
        assert_eq!(quick.codegen("incremental"), Some("/t/q/inc"));
        assert!(quick.args.contains(&"--emit=link".to_string()));
        assert!(!quick.args.iter().any(|a| a.starts_with("--error-format") || a.starts_with("--json")));
        assert_eq!(cmd.opt_level(), "3", "the captured command is left as it was");
    }

    #[test]
    fn shell_words_follow_posix_quoting() {
        assert_eq!(shell_words("a 'b c' \"d\\\"e\" f\\ g ''").unwrap(), ["a", "b c", "d\"e", "f g", ""]);
        assert_eq!(shell_words("'it'\\''s'").unwrap(), ["it's"]);
        assert_eq!(shell_words("'open"), None);
    }

    #[test]
    fn settings_come_from_the_environment_string() {
        let mut s = Settings::default();
        s.apply("direct=off").unwrap();
        s.apply("tiers=off").unwrap();
        s.apply("settle_ms=8").unwrap();
        s.apply("nice=0").unwrap();
        s.apply("check=frames").unwrap();
        let old_way = Settings {
            direct: false,
            quick_opt_level: None,
            settle: Duration::from_millis(8),
            nice: 0,
            check_on_watcher: false,
            quick_thin_lto: false,
            quick_units: Some(8),
            quick_shared_std: true,
        };
        assert_eq!(s, old_way);
        assert!(s.apply("tiers=7").is_err() && s.apply("speed=11").is_err() && s.apply("nice").is_err());
        s.apply("units=profile").unwrap();
        s.apply("std=static").unwrap();
        assert_eq!((s.quick_units, s.quick_shared_std), (None, false));
        assert!(s.apply("units=0").is_err() && s.apply("std=maybe").is_err());
    }

    #[test]
    fn errors_in_the_games_code_are_not_stale_commands() {
        let (game, ws) = (Path::new("/w/game"), Path::new("/w"));
        let code = "error[E0308]: mismatched types\n  --> game/src/sound.rs:3:5\n";
        assert!(is_code_error(code, game, ws));
        let missing = "error[E0463]: can't find crate for `handmade_api`\n  --> game/src/lib.rs:1:5\n";
        assert!(!is_code_error(missing, game, ws));
        assert!(!is_code_error("error: linking with `cc` failed", game, ws));
    }

    #[test]
    fn a_held_lock_is_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let held = CargoLock::take(dir.path()).unwrap();
        let path = dir.path().to_path_buf();
        let waiter = std::thread::spawn(move || {
            let start = Instant::now();
            drop(CargoLock::take(&path).unwrap());
            start.elapsed()
        });
        std::thread::sleep(Duration::from_millis(200));
        drop(held);
        assert!(waiter.join().unwrap() >= Duration::from_millis(150), "the second taker waited for the first");
    }
}
