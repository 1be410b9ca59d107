//! Files other users cannot choose for us: the private directories the platform writes into
//! (library copies, loop recordings), and the check that refuses a game library or game source
//! someone else could replace. Loading or building such a file would run their code as us.
//! Used by the reload path (reload/) and the dev loop (dev/).

use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A new directory in the temporary directory with an unpredictable name and mode 0700 from
/// the moment it exists (the umask would otherwise leave it 0755), so nobody else can plant a
/// library where we `dlopen` or list what we record. The name carries this process's id
/// (`{prefix}{pid}-{random}`), so a later run can remove it if this one is killed before it
/// could (see `sweep_abandoned`).
pub fn private_dir(prefix: &str) -> io::Result<tempfile::TempDir> {
    let prefix = format!("{prefix}{}-", std::process::id());
    tempfile::Builder::new().prefix(&prefix).permissions(fs::Permissions::from_mode(0o700)).tempdir()
}

/// Removes the private directories (see `private_dir`) that runs which have ended left in
/// `root`: a process killed with SIGKILL, or one that died in code it could not recover from,
/// never gets to remove its own. Only a directory named `{prefix}{pid}-...` whose process no
/// longer runs, owned by this user and mode 0700, is removed; a reused pid keeps its directory.
/// Does nothing where `/proc` cannot tell which processes run. Returns how many were removed.
pub fn sweep_abandoned(root: &Path, prefix: &str) -> usize {
    if !Path::new("/proc/self").exists() {
        return 0;
    }
    let Ok(entries) = fs::read_dir(root) else { return 0 };
    let me = current_uid();
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(prefix)).and_then(|rest| rest.split_once('-')) else {
            continue;
        };
        let Ok(pid) = pid.0.parse::<u32>() else { continue };
        if pid == std::process::id() || Path::new("/proc").join(pid.to_string()).exists() {
            continue;
        }
        // Not followed if it is a symbolic link: only a real directory of ours goes.
        let Ok(meta) = fs::symlink_metadata(entry.path()) else { continue };
        if !meta.is_dir() || meta.uid() != me || meta.mode() & 0o777 != 0o700 {
            continue;
        }
        if fs::remove_dir_all(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Why a path is not safe to load or build from.
#[derive(Debug)]
pub enum UnsafePath {
    /// The file, or a directory on its way from the root, can be written by other users.
    WritableByOthers {
        path: PathBuf,
        mode: u32,
    },
    /// Owned by neither this user nor root: its owner can change it at any time.
    OwnedByOther {
        path: PathBuf,
        uid: u32,
    },
    /// Not a regular file (a FIFO would block the open forever, a device never ends).
    NotAFile {
        path: PathBuf,
        what: &'static str,
    },
    Io {
        path: PathBuf,
        source: io::Error,
    },
}

impl fmt::Display for UnsafePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnsafePath::WritableByOthers { path, mode } => write!(
                f,
                "refusing {}: it is writable by other users (mode {:o}); run `chmod go-w {}`",
                path.display(),
                mode & 0o7777,
                path.display()
            ),
            UnsafePath::OwnedByOther { path, uid } => {
                write!(f, "refusing {}: it belongs to another user (uid {uid})", path.display())
            }
            UnsafePath::NotAFile { path, what } => write!(f, "{} is {what}, not a file", path.display()),
            UnsafePath::Io { path, source } => write!(f, "{} cannot be read: {source}", path.display()),
        }
    }
}

impl std::error::Error for UnsafePath {}

/// The user this process runs as.
fn current_uid() -> u32 {
    // SAFETY: `geteuid` takes no arguments, cannot fail and touches no memory of ours.
    unsafe { libc::geteuid() }
}

/// What a file type is called in a one-line error, or `None` for a regular file.
pub fn non_file_kind(meta: &fs::Metadata) -> Option<&'static str> {
    let kind = meta.file_type();
    if kind.is_file() {
        None
    } else if kind.is_dir() {
        Some("a directory")
    } else if kind.is_fifo() {
        Some("a FIFO")
    } else if kind.is_char_device() || kind.is_block_device() {
        Some("a device")
    } else if kind.is_socket() {
        Some("a socket")
    } else {
        Some("not a regular file")
    }
}

/// Refuses `path` unless it is a regular file (or, with `dir_ok`, a directory) that only this
/// user or root can change: the file itself and every directory from it up to `/`, for the
/// path as given and for its real path (a symlink's target can live anywhere).
/// A world-writable directory with the sticky bit (`/tmp`) is fine when the entry in it that
/// leads to our file belongs to us or root: others cannot rename or delete it there.
/// Group write counts only for a shared group: with user private groups (gid == uid, the
/// umask-002 default of many distributions) the group is the owner alone.
pub fn refuse_unsafe(path: &Path, dir_ok: bool) -> Result<(), UnsafePath> {
    let io_err = |source| UnsafePath::Io { path: path.into(), source };
    let meta = fs::metadata(path).map_err(io_err)?;
    match non_file_kind(&meta) {
        Some(_) if dir_ok && meta.is_dir() => {}
        Some(what) => return Err(UnsafePath::NotAFile { path: path.into(), what }),
        None => {}
    }
    let absolute = std::path::absolute(path).map_err(io_err)?;
    let real = fs::canonicalize(path).map_err(io_err)?;
    check_chain(&absolute)?;
    if real != absolute {
        check_chain(&real)?;
    }
    Ok(())
}

/// Checks `path` and each of its ancestors (lexically: a symlink on the way is judged by the
/// directory that holds it, then `refuse_unsafe` checks the real path too).
fn check_chain(path: &Path) -> Result<(), UnsafePath> {
    let me = current_uid();
    let mut child_owner: Option<u32> = None;
    for dir in path.ancestors().filter(|p| !p.as_os_str().is_empty()) {
        // `symlink_metadata` for the entry itself: a link's own mode is always 0777.
        let meta = fs::symlink_metadata(dir).map_err(|source| UnsafePath::Io { path: dir.into(), source })?;
        let is_link = meta.file_type().is_symlink();
        if !is_link && meta.uid() != me && meta.uid() != 0 {
            return Err(UnsafePath::OwnedByOther { path: dir.into(), uid: meta.uid() });
        }
        let shared_group = meta.gid() != meta.uid();
        let others_write = meta.mode() & 0o002 != 0 || (shared_group && meta.mode() & 0o020 != 0);
        let sticky_ok = meta.is_dir() && meta.mode() & 0o1000 != 0 && child_owner.is_some_and(|o| o == me || o == 0);
        if others_write && !is_link && !sticky_ok {
            return Err(UnsafePath::WritableByOthers { path: dir.into(), mode: meta.mode() });
        }
        child_owner = Some(meta.uid());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A 0755 test root under a private directory, so the chain above it is clean.
    fn root() -> (tempfile::TempDir, PathBuf) {
        let dir = private_dir("handmade-fs-test-").unwrap();
        let root = dir.path().join("r");
        fs::create_dir(&root).unwrap();
        (dir, root)
    }

    #[test]
    fn directories_left_by_ended_runs_are_swept_and_no_others() {
        let (_keep, root) = root();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let make = |name: String, mode: u32| {
            let dir = root.join(name);
            fs::create_dir(&dir).unwrap();
            fs::write(dir.join("libgame-1.so"), b"x").unwrap();
            chmod(&dir, mode);
            dir
        };
        let abandoned = make(format!("handmade-game-{dead}-aB3d"), 0o700);
        let mine = make(format!("handmade-game-{}-xY9z", std::process::id()), 0o700);
        let running = make("handmade-game-1-q".into(), 0o700); // init runs as long as we do
        let not_private = make(format!("handmade-game-{dead}-open"), 0o755);
        let older_name = make("handmade-game-Qw3rTy".into(), 0o700);
        let other_prefix = make(format!("handmade-loop-{dead}-aB3d"), 0o700);
        assert_eq!(sweep_abandoned(&root, "handmade-game-"), 1);
        assert!(!abandoned.exists());
        for kept in [&mine, &running, &not_private, &older_name, &other_prefix] {
            assert!(kept.join("libgame-1.so").exists(), "{kept:?} was removed");
        }
        assert_eq!(sweep_abandoned(&root, "handmade-game-"), 0);
    }

    #[test]
    fn the_private_directory_names_its_process() {
        let dir = private_dir("handmade-test-").unwrap();
        let name = dir.path().file_name().unwrap().to_str().unwrap().to_owned();
        assert!(name.starts_with(&format!("handmade-test-{}-", std::process::id())), "{name}");
    }

    #[test]
    fn the_private_directory_is_0700() {
        let dir = private_dir("handmade-test-").unwrap();
        assert_eq!(fs::metadata(dir.path()).unwrap().permissions().mode() & 0o777, 0o700);
    }

    #[test]
    fn writable_files_and_directories_on_the_way_are_refused() {
        let (_keep, root) = root();
        let lib = root.join("a/b/libgame.so");
        fs::create_dir_all(lib.parent().unwrap()).unwrap();
        fs::write(&lib, b"x").unwrap();
        refuse_unsafe(&lib, false).unwrap();
        chmod(&lib, 0o666);
        let err = refuse_unsafe(&lib, false).unwrap_err().to_string();
        assert!(err.contains("writable by other users (mode 666)") && err.contains("chmod go-w"), "{err}");
        chmod(&lib, 0o644);
        // A 0755 directory inside a 0777 one: the grandparent lets anyone rename `b` away.
        chmod(&root.join("a"), 0o777);
        let err = refuse_unsafe(&lib, false).unwrap_err().to_string();
        assert!(err.contains("/a:") || err.contains("/a "), "names the open directory: {err}");
        // Sticky, like /tmp: fine, because `b` is ours.
        chmod(&root.join("a"), 0o1777);
        refuse_unsafe(&lib, false).unwrap();
    }

    #[test]
    fn a_symlink_is_judged_by_its_target_too() {
        let (_keep, root) = root();
        let open = root.join("open");
        fs::create_dir(&open).unwrap();
        chmod(&open, 0o777);
        fs::write(open.join("libgame.so"), b"x").unwrap();
        let link = root.join("libgame.so");
        std::os::unix::fs::symlink(open.join("libgame.so"), &link).unwrap();
        let err = refuse_unsafe(&link, false).unwrap_err().to_string();
        assert!(err.contains("open") && err.contains("777"), "{err}");
    }

    #[test]
    fn fifos_and_directories_are_not_files() {
        let (_keep, root) = root();
        let fifo = root.join("fifo.so");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: `c` is a valid NUL-terminated path for the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        assert!(refuse_unsafe(&fifo, false).unwrap_err().to_string().contains("is a FIFO, not a file"));
        assert!(refuse_unsafe(&root, false).unwrap_err().to_string().contains("is a directory"));
        refuse_unsafe(&root, true).unwrap();
    }

    #[test]
    fn files_of_another_user_are_refused() {
        if current_uid() != 0 {
            return; // only root can give a file away
        }
        let (_keep, root) = root();
        let lib = root.join("libgame.so");
        fs::write(&lib, b"x").unwrap();
        std::os::unix::fs::chown(&lib, Some(65534), None).unwrap();
        let err = refuse_unsafe(&lib, false).unwrap_err().to_string();
        assert!(err.contains("belongs to another user (uid 65534)"), "{err}");
    }
}
