//! Running tunnels, recorded under `<state dir>/clawgate/tunnels/`: per tunnel a state file
//! (`<key>.json`, written by its supervisor), a lock file the supervisor holds for as long
//! as it lives (`<key>.lock`, so "is it running?" never trusts a stale pid), a lock that
//! serializes starting it (`<key>.start`), and the supervisor's log (`<key>.log`).

use super::{TunnelError, TunnelSpec};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

/// What a tunnel is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TunnelStatus {
    /// The first connection is being made.
    Connecting,
    /// The forward accepts connections.
    Up,
    /// ssh exited; waiting to start it again.
    Reconnecting,
    /// The first connection failed (`lastError` says why); the supervisor has exited.
    Failed,
}

impl TunnelStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TunnelStatus::Connecting => "connecting",
            TunnelStatus::Up => "up",
            TunnelStatus::Reconnecting => "reconnecting",
            TunnelStatus::Failed => "failed",
        }
    }
}

/// A state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TunnelState {
    pub key: String,
    pub spec: TunnelSpec,
    pub local_port: u16,
    /// `ws://127.0.0.1:<local port>`.
    pub url: String,
    pub supervisor_pid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_pid: Option<u32>,
    pub status: TunnelStatus,
    pub started_at_ms: i64,
    /// When `status` last changed.
    pub since_ms: i64,
    /// How many times ssh was started again after the tunnel had been up.
    #[serde(default)]
    pub restarts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_retry_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<TunnelError>,
    /// Something worth knowing while up (e.g. nothing listens on the remote port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh_argv: Vec<String>,
}

/// The tunnels directory of one state dir.
#[derive(Debug, Clone)]
pub struct TunnelRegistry {
    dir: PathBuf,
}

impl TunnelRegistry {
    /// `<state dir>/clawgate/tunnels`.
    pub fn new(state_dir: &Path) -> Self {
        TunnelRegistry {
            dir: state_dir.join("clawgate").join("tunnels"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, key: &str, ext: &str) -> PathBuf {
        self.dir.join(format!("{key}.{ext}"))
    }

    pub fn state_path(&self, key: &str) -> PathBuf {
        self.path(key, "json")
    }

    pub fn log_path(&self, key: &str) -> PathBuf {
        self.path(key, "log")
    }

    fn ensure_dir(&self) -> std::io::Result<()> {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
    }

    fn open_lock(&self, key: &str, ext: &str) -> std::io::Result<File> {
        use std::os::unix::fs::OpenOptionsExt as _;
        self.ensure_dir()?;
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(self.path(key, ext))
    }

    /// The state file of `key`, if there is a readable one.
    pub fn read(&self, key: &str) -> Option<TunnelState> {
        let text = std::fs::read_to_string(self.state_path(key)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Writes the state file atomically and durably (0600).
    pub fn write(&self, state: &TunnelState) -> std::io::Result<()> {
        self.ensure_dir()?;
        let mut text = serde_json::to_string_pretty(state).map_err(std::io::Error::other)?;
        text.push('\n');
        clawgate_base::write_private(&self.state_path(&state.key), text.as_bytes())
    }

    /// Removes the state file.
    pub fn remove(&self, key: &str) {
        let _ = std::fs::remove_file(self.state_path(key));
    }

    /// Every state file, sorted by key.
    pub fn list(&self) -> Vec<TunnelState> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut states: Vec<TunnelState> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let key = name.strip_suffix(".json")?;
                self.read(key)
            })
            .collect();
        states.sort_by(|a, b| a.key.cmp(&b.key));
        states
    }

    /// Whether a supervisor holds `key`'s lock, i.e. is alive.
    pub fn is_running(&self, key: &str) -> bool {
        let Ok(file) = std::fs::File::open(self.path(key, "lock")) else {
            return false;
        };
        match file.try_lock_shared() {
            Ok(()) => {
                let _ = file.unlock();
                false
            }
            Err(_) => true,
        }
    }

    /// Takes `key`'s lock for the life of a supervisor (keep the file open); `None` if
    /// another supervisor holds it.
    pub fn hold(&self, key: &str) -> std::io::Result<Option<File>> {
        let file = self.open_lock(key, "lock")?;
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    /// Serializes starting `key` (blocks until other starters are done).
    pub fn start_lock(&self, key: &str) -> std::io::Result<File> {
        let file = self.open_lock(key, "start")?;
        file.lock()?;
        Ok(file)
    }

    /// Removes the files of a tunnel that is not running.
    pub fn clean(&self, key: &str) {
        self.remove(key);
        let _ = std::fs::remove_file(self.path(key, "lock"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(key: &str) -> TunnelState {
        TunnelState {
            key: key.into(),
            spec: TunnelSpec::new("me@host"),
            local_port: 1,
            url: "ws://127.0.0.1:1".into(),
            supervisor_pid: 1,
            ssh_pid: None,
            status: TunnelStatus::Up,
            started_at_ms: 0,
            since_ms: 0,
            restarts: 0,
            next_retry_at_ms: None,
            last_error: None,
            warning: None,
            ssh_argv: Vec::new(),
        }
    }

    #[test]
    fn write_read_list_and_locks() {
        let dir = tempfile::tempdir().unwrap();
        let reg = TunnelRegistry::new(dir.path());
        assert!(reg.list().is_empty());
        reg.write(&state("b")).unwrap();
        reg.write(&state("a")).unwrap();
        assert_eq!(reg.read("a").unwrap(), state("a"));
        let keys: Vec<String> = reg.list().into_iter().map(|s| s.key).collect();
        assert_eq!(keys, ["a", "b"]);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(reg.state_path("a"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        assert!(!reg.is_running("a"));
        let held = reg.hold("a").unwrap().expect("free");
        assert!(reg.is_running("a"));
        assert!(reg.hold("a").unwrap().is_none());
        drop(held);
        assert!(!reg.is_running("a"));
        reg.remove("a");
        assert!(reg.read("a").is_none());
    }
}
