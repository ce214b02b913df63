//! A client's device identity: an Ed25519 key, the id derived from it, and a small JSON file
//! (mode 0600) that keeps it between runs.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clawgate_protocol::device;
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use std::io;
use std::path::Path;

/// An Ed25519 device identity.
#[derive(Clone)]
pub struct DeviceIdentity {
    signing_key: SigningKey,
    id: String,
    public_key: String,
}

impl std::fmt::Debug for DeviceIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceIdentity")
            .field("id", &self.id)
            .field("public_key", &self.public_key)
            .finish_non_exhaustive()
    }
}

/// On-disk form. The private key is the raw 32-byte seed, base64url.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredIdentity {
    version: u32,
    device_id: String,
    public_key: String,
    private_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created_at_ms: Option<i64>,
}

impl DeviceIdentity {
    /// A fresh identity from the OS random generator.
    pub fn generate() -> Self {
        Self::from_signing_key(SigningKey::generate(&mut rand_core::OsRng))
    }

    pub fn from_signing_key(signing_key: SigningKey) -> Self {
        let verifying = signing_key.verifying_key();
        DeviceIdentity {
            id: device::device_id(&verifying),
            public_key: device::b64url(verifying.as_bytes()),
            signing_key,
        }
    }

    /// Lowercase hex SHA-256 of the raw public key (what the gateway calls the device id).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The raw public key, base64url without padding (the wire form).
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    pub fn signing_key(&self) -> &SigningKey {
        &self.signing_key
    }

    /// Reads an identity saved by [`DeviceIdentity::save`]. The stored id and public key must
    /// match the private key.
    pub fn load(path: &Path) -> io::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        let stored: StoredIdentity = serde_json::from_str(&text).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })?;
        let seed: [u8; 32] = URL_SAFE_NO_PAD
            .decode(stored.private_key.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: privateKey is not a 32-byte base64url seed",
                        path.display()
                    ),
                )
            })?;
        let identity = Self::from_signing_key(SigningKey::from_bytes(&seed));
        if identity.id != stored.device_id || identity.public_key != stored.public_key {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: deviceId/publicKey do not match the private key",
                    path.display()
                ),
            ));
        }
        Ok(identity)
    }

    /// Writes the identity to `path` with mode 0600 (atomically: a temporary file in the same
    /// directory, then a rename). Creates the parent directory (mode 0700) if needed.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        let stored = StoredIdentity {
            version: 1,
            device_id: self.id.clone(),
            public_key: self.public_key.clone(),
            private_key: URL_SAFE_NO_PAD.encode(self.signing_key.to_bytes()),
            created_at_ms: Some(crate::now_ms()),
        };
        let mut text = serde_json::to_string_pretty(&stored).map_err(io::Error::other)?;
        text.push('\n');
        write_private(path, text.as_bytes())
    }

    /// Loads the identity at `path`, or creates and saves a new one if the file does not exist.
    /// Two processes doing this at once end up with the same identity: the file is created
    /// only if it is still absent, and the loser loads the winner's.
    pub fn load_or_generate(path: &Path) -> io::Result<Self> {
        match Self::load(path) {
            Ok(identity) => Ok(identity),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let identity = Self::generate();
                let stored = StoredIdentity {
                    version: 1,
                    device_id: identity.id.clone(),
                    public_key: identity.public_key.clone(),
                    private_key: URL_SAFE_NO_PAD.encode(identity.signing_key.to_bytes()),
                    created_at_ms: Some(crate::now_ms()),
                };
                let mut text = serde_json::to_string_pretty(&stored).map_err(io::Error::other)?;
                text.push('\n');
                if write_private_new(path, text.as_bytes())? {
                    Ok(identity)
                } else {
                    Self::load(path)
                }
            }
            Err(e) => Err(e),
        }
    }
}

use clawgate_base::{write_private, write_private_new};
