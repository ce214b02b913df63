//! One poller per bot token across processes: an exclusive `flock` on
//! `<state dir>/telegram/poll-<hash of the token>.lock`, held while the channel polls. The
//! file holds the holder's pid, for the error the next one gets. The kernel drops the lock
//! when the process ends, however it ends.

use std::fs::{self, File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use clawgate_config::Secret;
use rustix::fs::{FlockOperation, flock};
use sha2::{Digest, Sha256};

use crate::error::TelegramError;

/// The held lock; dropping it releases it.
#[derive(Debug)]
pub struct PollerLock {
    _file: File,
    path: PathBuf,
}

impl PollerLock {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The lock file of `token` in `state_dir`.
pub fn lock_path(state_dir: &Path, token: &Secret) -> PathBuf {
    let digest = Sha256::digest(token.expose().as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    state_dir.join("telegram").join(format!("poll-{hex}.lock"))
}

/// Takes the poller lock of `token`, or says who holds it.
pub fn acquire(state_dir: &Path, token: &Secret) -> Result<PollerLock, TelegramError> {
    let path = lock_path(state_dir, token);
    let state = |e: std::io::Error| {
        TelegramError::State(format!(
            "cannot open the poller lock {}: {e}",
            path.display()
        ))
    };
    if let Some(dir) = path.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(state)?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(state)?;
    if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        let holder = match holder.trim() {
            "" => "pid unknown".to_owned(),
            pid => format!("pid {pid}"),
        };
        return Err(TelegramError::Locked { path, holder });
    }
    file.set_len(0).map_err(state)?;
    file.seek(SeekFrom::Start(0)).map_err(state)?;
    write!(file, "{}", std::process::id()).map_err(state)?;
    Ok(PollerLock { _file: file, path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_per_token() {
        let dir = tempfile::tempdir().unwrap();
        let token = Secret::new("1:abc");
        let held = acquire(dir.path(), &token).unwrap();
        let err = acquire(dir.path(), &token).unwrap_err().to_string();
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        assert!(!err.contains("1:abc"), "{err}");
        let other = acquire(dir.path(), &Secret::new("2:def"));
        assert!(other.is_ok(), "another token has its own lock");
        drop(held);
        assert!(acquire(dir.path(), &token).is_ok(), "released on drop");
    }
}
