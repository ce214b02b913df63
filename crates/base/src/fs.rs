//! Private files: written whole or not at all, mode 0600, durable before the call returns.
//!
//! Every write goes to a temporary file in the same directory (created with the final mode,
//! whatever the umask), is fsynced, renamed (or linked) over the target, and the directory is
//! fsynced, so a reader sees the old file or the new one and a crash after the call keeps the
//! new one.

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Creates `dir` and its missing parents with mode 0700.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Writes `bytes` to `path` atomically and durably with mode 0600, creating the parent
/// directory (mode 0700) if it is missing.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    ensure_parent(path)?;
    replace_file(path, bytes, 0o600)
}

/// Like [`write_private`], but only if `path` does not exist yet: two processes racing to
/// create it end with one of their files, whole. Returns whether this call wrote it.
pub fn write_private_new(path: &Path, bytes: &[u8]) -> io::Result<bool> {
    ensure_parent(path)?;
    let tmp = write_tmp(path, bytes, 0o600)?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_parent(path);
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Replaces `path` with `bytes` atomically and durably; the new file has exactly `mode`.
/// The parent directory must exist.
pub fn replace_file(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let tmp = write_tmp(path, bytes, mode)?;
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_parent(path);
    Ok(())
}

fn ensure_parent(path: &Path) -> io::Result<()> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) if !dir.is_dir() => create_private_dir(dir),
        _ => Ok(()),
    }
}

/// A new temporary file next to `path` holding `bytes`, fsynced, with exactly `mode`.
fn write_tmp(path: &Path, bytes: &[u8], mode: u32) -> io::Result<PathBuf> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} has no file name", path.display()),
            )
        })?
        .to_string_lossy();
    let tmp = path.with_file_name(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        // The umask may have taken bits off the mode asked for.
        file.set_permissions(Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    match written {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Makes a rename or link in `path`'s directory durable (best effort: some file systems
/// cannot fsync a directory).
fn sync_parent(path: &Path) {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    }

    #[test]
    fn writes_0600_and_creates_a_0700_parent() {
        let home = tempfile::tempdir().unwrap();
        let path = home.path().join("a/b/secret.json");
        write_private(&path, b"one").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one");
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(mode_of(&home.path().join("a/b")), 0o700);
        write_private(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert!(leftovers(&home.path().join("a/b")).is_empty());
    }

    #[test]
    fn replace_keeps_the_mode_asked_for() {
        let home = tempfile::tempdir().unwrap();
        let path = home.path().join("zone.db");
        replace_file(&path, b"x", 0o644).unwrap();
        assert_eq!(mode_of(&path), 0o644);
        replace_file(&path, b"y", 0o640).unwrap();
        assert_eq!(mode_of(&path), 0o640);
        assert_eq!(fs::read(&path).unwrap(), b"y");
    }

    #[test]
    fn new_only_writes_once() {
        let home = tempfile::tempdir().unwrap();
        let path = home.path().join("id.json");
        assert!(write_private_new(&path, b"first").unwrap());
        assert!(!write_private_new(&path, b"second").unwrap());
        assert_eq!(fs::read(&path).unwrap(), b"first");
        assert_eq!(mode_of(&path), 0o600);
        assert!(leftovers(home.path()).is_empty());
    }

    #[test]
    fn a_failed_write_leaves_no_temp_file() {
        let home = tempfile::tempdir().unwrap();
        // The target is a non-empty directory: the rename fails.
        let path = home.path().join("taken");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("inside"), b"").unwrap();
        assert!(write_private(&path, b"x").is_err());
        assert!(leftovers(home.path()).is_empty());
    }
}
