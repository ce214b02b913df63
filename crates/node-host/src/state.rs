//! The node's state directory: its device identity (`identity.json`, 0600), the device token
//! the gateway issued (`device-token.json`, 0600), a stable instance id (`node.json`), and the
//! exec approvals document.

use clawgate_client::DeviceIdentity;
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};

pub const IDENTITY_FILE: &str = "identity.json";
pub const DEVICE_TOKEN_FILE: &str = "device-token.json";
pub const NODE_FILE: &str = "node.json";

/// Creates `dir` (and parents) with mode 0700 if it does not exist.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// A device token issued in `hello-ok.auth.deviceToken`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredDeviceToken {
    pub device_id: String,
    pub role: String,
    pub token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at_ms: Option<i64>,
    /// The gateway that issued it (`ws://host:port`); a token is only offered to it.
    pub gateway: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NodeFile {
    instance_id: String,
}

/// Paths inside the node state directory.
#[derive(Debug, Clone)]
pub struct NodeState {
    dir: PathBuf,
}

impl NodeState {
    /// Uses (and creates, 0700) `dir`.
    pub fn open(dir: &Path) -> io::Result<Self> {
        create_private_dir(dir)?;
        Ok(NodeState {
            dir: dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The device identity, created on first use.
    pub fn identity(&self) -> io::Result<DeviceIdentity> {
        DeviceIdentity::load_or_generate(&self.dir.join(IDENTITY_FILE))
    }

    /// A stable id for this node host installation, sent as `client.instanceId`.
    pub fn instance_id(&self) -> io::Result<String> {
        let path = self.dir.join(NODE_FILE);
        if let Ok(text) = std::fs::read_to_string(&path)
            && let Ok(file) = serde_json::from_str::<NodeFile>(&text)
            && !file.instance_id.trim().is_empty()
        {
            return Ok(file.instance_id);
        }
        let file = NodeFile {
            instance_id: uuid::Uuid::new_v4().to_string(),
        };
        let text = serde_json::to_string_pretty(&file).map_err(io::Error::other)? + "\n";
        clawgate_base::write_private(&path, text.as_bytes())?;
        Ok(file.instance_id)
    }

    /// The stored device token for `device_id`, if it was issued by `gateway`.
    pub fn device_token(&self, device_id: &str, gateway: &str) -> Option<StoredDeviceToken> {
        let text = std::fs::read_to_string(self.dir.join(DEVICE_TOKEN_FILE)).ok()?;
        let stored: StoredDeviceToken = serde_json::from_str(&text).ok()?;
        (stored.device_id == device_id
            && stored.role == "node"
            && stored.gateway == gateway
            && !stored.token.is_empty())
        .then_some(stored)
    }

    /// Stores a token unless the same one is stored already.
    pub fn save_device_token(&self, token: &StoredDeviceToken) -> io::Result<()> {
        let path = self.dir.join(DEVICE_TOKEN_FILE);
        if let Ok(text) = std::fs::read_to_string(&path)
            && serde_json::from_str::<StoredDeviceToken>(&text)
                .ok()
                .as_ref()
                == Some(token)
        {
            return Ok(());
        }
        let text = serde_json::to_string_pretty(token).map_err(io::Error::other)? + "\n";
        clawgate_base::write_private(&path, text.as_bytes())
    }

    /// Forgets the stored token (after the gateway rejected it).
    pub fn clear_device_token(&self) -> io::Result<()> {
        match std::fs::remove_file(self.dir.join(DEVICE_TOKEN_FILE)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn identity_token_and_instance_id_persist_privately() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("node");
        let state = NodeState::open(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let a = state.identity().unwrap();
        let b = state.identity().unwrap();
        assert_eq!(a.id(), b.id());
        assert_eq!(mode(&dir.join(IDENTITY_FILE)), 0o600);
        let id = state.instance_id().unwrap();
        assert_eq!(state.instance_id().unwrap(), id);

        assert_eq!(state.device_token(a.id(), "ws://127.0.0.1:1"), None);
        let token = StoredDeviceToken {
            device_id: a.id().into(),
            role: "node".into(),
            token: "tok".into(),
            issued_at_ms: Some(1),
            gateway: "ws://127.0.0.1:1".into(),
        };
        state.save_device_token(&token).unwrap();
        assert_eq!(mode(&dir.join(DEVICE_TOKEN_FILE)), 0o600);
        assert_eq!(state.device_token(a.id(), "ws://127.0.0.1:1"), Some(token));
        assert_eq!(state.device_token(a.id(), "ws://127.0.0.1:2"), None);
        assert_eq!(state.device_token("other", "ws://127.0.0.1:1"), None);
        state.clear_device_token().unwrap();
        state.clear_device_token().unwrap();
        assert_eq!(state.device_token(a.id(), "ws://127.0.0.1:1"), None);
    }
}
