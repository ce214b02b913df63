//! Files the gateway keeps in its state dir: its own identity key and the generated token.

use clawgate_config::Secret;
use clawgate_protocol::device;
use ed25519_dalek::SigningKey;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// File (in the state dir) holding the token generated when token auth had none.
pub const TOKEN_FILE: &str = "gateway.token";
const IDENTITY_FILE: &str = "gateway-identity.key";

/// Creates the state dir (0700) if needed.
pub fn ensure_dir(dir: &Path) -> io::Result<()> {
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    Ok(())
}

/// Private files (0600) and replaced files are written the one durable way: temp file,
/// fsync, rename, directory fsync.
pub use clawgate_base::{replace_file, write_private};

/// The token for token auth when none was configured: read from `<state>/gateway.token`, or
/// generated (256 bits, base64url) and stored there with mode 0600 on first start.
pub struct StoredToken {
    pub token: Secret,
    pub path: PathBuf,
    pub created: bool,
}

pub fn load_or_create_token(state_dir: &Path) -> io::Result<StoredToken> {
    ensure_dir(state_dir)?;
    let path = state_dir.join(TOKEN_FILE);
    match fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => {
            // Tighten permissions a user may have loosened by hand.
            let _ = fs::set_permissions(&path, fs::Permissions::from_mode(0o600));
            return Ok(StoredToken {
                token: Secret::new(text.trim()),
                path,
                created: false,
            });
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let bytes: [u8; 32] = rand::random();
    let token = device::b64url(&bytes);
    write_private(&path, format!("{token}\n").as_bytes())?;
    Ok(StoredToken {
        token: Secret::new(token),
        path,
        created: true,
    })
}

/// The gateway's own Ed25519 identity (`gateway.identity.get`).
pub struct GatewayIdentity {
    pub device_id: String,
    pub public_key: String,
    /// Key for deriving device tokens, derived from the identity seed so a fresh state dir
    /// needs no second key file (and no second fsync) before the gateway listens.
    pub(crate) device_token_key: [u8; 32],
    /// Key of `config.get`'s hash (OpenClaw's config revision token), derived the same way.
    pub(crate) config_revision_key: [u8; 32],
}

impl GatewayIdentity {
    pub fn load_or_create(state_dir: &Path) -> io::Result<Self> {
        ensure_dir(state_dir)?;
        let path = state_dir.join(IDENTITY_FILE);
        let key = match fs::read(&path) {
            Ok(bytes) if bytes.len() == 32 => {
                let mut raw = [0u8; 32];
                raw.copy_from_slice(&bytes);
                SigningKey::from_bytes(&raw)
            }
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{} is not a 32-byte Ed25519 seed; move it away to create a new identity",
                        path.display()
                    ),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let key = SigningKey::from_bytes(&rand::random());
                write_private(&path, &key.to_bytes())?;
                key
            }
            Err(e) => return Err(e),
        };
        let vk = key.verifying_key();
        Ok(GatewayIdentity {
            device_id: device::device_id(&vk),
            public_key: device::b64url(vk.as_bytes()),
            device_token_key: derive_key(&key, b"clawgate device-token key v1"),
            config_revision_key: derive_key(&key, b"clawgate config-revision key v1"),
        })
    }
}

/// A key for one purpose, derived from the identity seed.
fn derive_key(identity: &SigningKey, purpose: &[u8]) -> [u8; 32] {
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(&identity.to_bytes())
        .expect("any key length works");
    hmac::Mac::update(&mut mac, purpose);
    hmac::Mac::finalize(mac).into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_created_once_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let first = load_or_create_token(&state).unwrap();
        assert!(first.created);
        assert_eq!(first.token.expose().len(), 43);
        let mode = fs::metadata(&first.path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            fs::metadata(&state).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let second = load_or_create_token(&state).unwrap();
        assert!(!second.created);
        assert_eq!(second.token.expose(), first.token.expose());
    }

    #[test]
    fn identity_is_stable() {
        let dir = tempfile::tempdir().unwrap();
        let a = GatewayIdentity::load_or_create(dir.path()).unwrap();
        let b = GatewayIdentity::load_or_create(dir.path()).unwrap();
        assert_eq!(a.device_id, b.device_id);
        assert_eq!(a.device_id.len(), 64);
    }
}
