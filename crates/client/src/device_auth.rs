//! What a signing client keeps besides its identity: the device tokens gateways issue in
//! `hello-ok` (`auth.deviceToken` + `issuedAtMs`), one per gateway, device and role, in a small
//! JSON file (mode 0600); and the rule for when a client should sign at all.

use serde::{Deserialize, Serialize};
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Where a clawgate client keeps its device identity: `<state dir>/clawgate/identity.json`
/// (apart from OpenClaw's own `identity/` files, so the two never fight over them).
pub fn identity_path(state_dir: &Path) -> PathBuf {
    state_dir.join("clawgate").join("identity.json")
}

/// Where a clawgate client keeps issued device tokens:
/// `<state dir>/clawgate/device-tokens.json`.
pub fn tokens_path(state_dir: &Path) -> PathBuf {
    state_dir.join("clawgate").join("device-tokens.json")
}

/// One device token as issued by a gateway.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredDeviceToken {
    /// [`gateway_key`] of the gateway that issued it.
    pub gateway: String,
    /// The device it was issued to (a token is useless with another key).
    pub device_id: String,
    /// `operator` or `node`.
    pub role: String,
    pub token: String,
    /// The scopes seen granted with this token (what hello-ok `auth.scopes` said).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// `auth.issuedAtMs`, when the gateway sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at_ms: Option<i64>,
    /// When this client saved it.
    #[serde(default)]
    pub saved_at_ms: i64,
}

impl std::fmt::Debug for StoredDeviceToken {
    /// The token itself is never shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredDeviceToken")
            .field("gateway", &self.gateway)
            .field("device_id", &self.device_id)
            .field("role", &self.role)
            .field("token", &"<redacted>")
            .field("scopes", &self.scopes)
            .field("issued_at_ms", &self.issued_at_ms)
            .field("saved_at_ms", &self.saved_at_ms)
            .finish()
    }
}

#[derive(Default, Serialize, Deserialize)]
struct TokenFile {
    version: u32,
    #[serde(default)]
    tokens: Vec<StoredDeviceToken>,
}

/// A JSON file of device tokens (mode 0600, written atomically).
#[derive(Debug, Clone)]
pub struct DeviceTokenStore {
    path: PathBuf,
}

impl DeviceTokenStore {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        DeviceTokenStore { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> io::Result<TokenFile> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", self.path.display()),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(TokenFile::default()),
            Err(e) => Err(e),
        }
    }

    fn write(&self, file: &TokenFile) -> io::Result<()> {
        let mut text = serde_json::to_string_pretty(file).map_err(io::Error::other)?;
        text.push('\n');
        clawgate_base::write_private(&self.path, text.as_bytes())
    }

    /// Every stored token.
    pub fn all(&self) -> io::Result<Vec<StoredDeviceToken>> {
        Ok(self.read()?.tokens)
    }

    /// The token for `gateway_url` (any URL of the same gateway, see [`gateway_key`]),
    /// `device_id` and `role`.
    pub fn get(
        &self,
        gateway_url: &str,
        device_id: &str,
        role: &str,
    ) -> io::Result<Option<StoredDeviceToken>> {
        let key = gateway_key(gateway_url);
        Ok(self
            .read()?
            .tokens
            .into_iter()
            .find(|t| t.gateway == key && t.device_id == device_id && t.role == role))
    }

    /// Saves `token` (its `gateway` normalised with [`gateway_key`]), replacing the entry for
    /// the same gateway, device and role. Returns whether anything changed.
    pub fn put(&self, mut token: StoredDeviceToken) -> io::Result<bool> {
        token.gateway = gateway_key(&token.gateway);
        let mut file = self.read()?;
        file.version = 1;
        if let Some(existing) = file.tokens.iter_mut().find(|t| {
            t.gateway == token.gateway && t.device_id == token.device_id && t.role == token.role
        }) {
            let same = existing.token == token.token
                && existing.scopes == token.scopes
                && existing.issued_at_ms == token.issued_at_ms;
            if same {
                return Ok(false);
            }
            *existing = token;
        } else {
            file.tokens.push(token);
        }
        self.write(&file)?;
        Ok(true)
    }

    /// Removes the entry for the gateway, device and role. Returns whether one existed.
    pub fn remove(&self, gateway_url: &str, device_id: &str, role: &str) -> io::Result<bool> {
        let key = gateway_key(gateway_url);
        let mut file = self.read()?;
        let before = file.tokens.len();
        file.tokens
            .retain(|t| !(t.gateway == key && t.device_id == device_id && t.role == role));
        if file.tokens.len() == before {
            return Ok(false);
        }
        self.write(&file)?;
        Ok(true)
    }

    /// Removes every entry of `device_id` at the gateway (all roles). Returns how many.
    pub fn remove_device(&self, gateway_url: &str, device_id: &str) -> io::Result<usize> {
        let key = gateway_key(gateway_url);
        let mut file = self.read()?;
        let before = file.tokens.len();
        file.tokens
            .retain(|t| !(t.gateway == key && t.device_id == device_id));
        let removed = before - file.tokens.len();
        if removed > 0 {
            self.write(&file)?;
        }
        Ok(removed)
    }
}

/// After a successful hello with a device: saves the `auth.deviceToken` the gateway issued (if
/// any, and if it is for `role`) for `gateway_url` and `device_id`. Returns whether the store
/// changed.
pub fn remember_device_token(
    store: &DeviceTokenStore,
    gateway_url: &str,
    device_id: &str,
    role: &str,
    hello: &crate::HelloOk,
) -> io::Result<bool> {
    let Some(token) = hello.device_token() else {
        return Ok(false);
    };
    if hello.role().is_some_and(|r| r != role) {
        return Ok(false);
    }
    let mut scopes = hello.scopes();
    // A connection may ask for fewer scopes than the token holds: keep what was seen before
    // for the same token.
    if let Some(prev) = store.get(gateway_url, device_id, role)?
        && prev.token == token
    {
        for s in prev.scopes {
            if !scopes.contains(&s) {
                scopes.push(s);
            }
        }
    }
    store.put(StoredDeviceToken {
        gateway: gateway_url.to_owned(),
        device_id: device_id.to_owned(),
        role: role.to_owned(),
        token: token.to_owned(),
        scopes,
        issued_at_ms: hello.issued_at_ms(),
        saved_at_ms: crate::now_ms(),
    })
}

/// The part of a gateway URL that names the gateway: `scheme://host:port`, lower-cased, with
/// the default port filled in (`ws://gw` and `ws://GW:80/` are the same gateway). A path is
/// dropped: a reverse-proxy prefix does not make another gateway.
pub fn gateway_key(url: &str) -> String {
    let u = url.trim();
    let (scheme, rest) = match u.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None => return u.to_ascii_lowercase(),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let (host, port) = split_host_port(authority);
    let default_port = match scheme.as_str() {
        "wss" | "https" => "443",
        _ => "80",
    };
    let host = host.to_ascii_lowercase();
    let port = port.unwrap_or(default_port);
    if host.contains(':') {
        format!("{scheme}://[{host}]:{port}")
    } else {
        format!("{scheme}://{host}:{port}")
    }
}

/// `host[:port]` or `[v6][:port]` → (host without brackets, port).
fn split_host_port(authority: &str) -> (&str, Option<&str>) {
    if let Some(rest) = authority.strip_prefix('[') {
        if let Some((host, after)) = rest.split_once(']') {
            let port = after.strip_prefix(':').filter(|p| !p.is_empty());
            return (host, port);
        }
        return (rest, None);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host, Some(port).filter(|p| !p.is_empty())),
        _ => (authority, None),
    }
}

/// The host of a `ws://` / `wss://` URL (brackets removed), if it has one.
pub fn url_host(url: &str) -> Option<String> {
    let (_, rest) = url.trim().split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let (host, _) = split_host_port(authority);
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// Whether the URL's host is this machine: `localhost` (and `*.localhost`), `127.0.0.0/8`,
/// `::1`, or an IPv4-mapped loopback address.
pub fn is_loopback_url(url: &str) -> bool {
    let Some(host) = url_host(url) else {
        return false;
    };
    if host == "localhost" || host.ends_with(".localhost") {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.is_loopback(),
        Ok(IpAddr::V6(v6)) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => false,
    }
}

/// When a client signs its `connect` with its device identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceAuthMode {
    /// Sign unless the gateway is on this machine (loopback URL) and a shared secret is sent:
    /// the OpenClaw CLI's rule. A loopback client with the secret keeps its scopes without
    /// pairing; anything else needs a paired device (or gets its scopes cleared).
    #[default]
    Auto,
    /// Always sign (e.g. to pair this machine through a loopback tunnel).
    Always,
    /// Never sign: shared secret only.
    Never,
}

impl DeviceAuthMode {
    /// Whether to sign for `url` given whether a shared token or password is sent.
    pub fn signs(self, url: &str, has_shared_secret: bool) -> bool {
        match self {
            DeviceAuthMode::Always => true,
            DeviceAuthMode::Never => false,
            DeviceAuthMode::Auto => !(is_loopback_url(url) && has_shared_secret),
        }
    }
}

impl std::str::FromStr for DeviceAuthMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(DeviceAuthMode::Auto),
            "always" | "on" | "yes" | "true" => Ok(DeviceAuthMode::Always),
            "never" | "off" | "no" | "false" => Ok(DeviceAuthMode::Never),
            other => Err(format!(
                "unknown device auth mode {other:?} (expected auto, always or never)"
            )),
        }
    }
}

impl std::fmt::Display for DeviceAuthMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DeviceAuthMode::Auto => "auto",
            DeviceAuthMode::Always => "always",
            DeviceAuthMode::Never => "never",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_keys_name_the_gateway() {
        assert_eq!(gateway_key("ws://127.0.0.1:18789"), "ws://127.0.0.1:18789");
        assert_eq!(
            gateway_key("WS://GW.example:80/path?x=1"),
            "ws://gw.example:80"
        );
        assert_eq!(gateway_key("ws://gw.example"), "ws://gw.example:80");
        assert_eq!(gateway_key("wss://gw.example/"), "wss://gw.example:443");
        assert_eq!(gateway_key("ws://[::1]:18789/x"), "ws://[::1]:18789");
        assert_eq!(gateway_key("ws://user@host:1"), "ws://host:1");
    }

    #[test]
    fn loopback_urls() {
        for url in [
            "ws://127.0.0.1:18789",
            "ws://127.0.0.2:1",
            "ws://localhost:1",
            "ws://LOCALHOST",
            "wss://[::1]:443/",
            "ws://[::ffff:127.0.0.1]:1",
            "ws://app.localhost:1",
        ] {
            assert!(is_loopback_url(url), "{url}");
        }
        for url in [
            "ws://192.168.1.2:1",
            "wss://gw.example.ts.net",
            "ws://[::2]:1",
            "ws://localhost.example.com",
            "not a url",
        ] {
            assert!(!is_loopback_url(url), "{url}");
        }
    }

    #[test]
    fn auto_signs_unless_loopback_with_a_secret() {
        let m = DeviceAuthMode::Auto;
        assert!(!m.signs("ws://127.0.0.1:1", true));
        assert!(m.signs("ws://127.0.0.1:1", false));
        assert!(m.signs("wss://gw.example", true));
        assert!(DeviceAuthMode::Always.signs("ws://127.0.0.1:1", true));
        assert!(!DeviceAuthMode::Never.signs("wss://gw.example", false));
        assert_eq!(
            "ALWAYS".parse::<DeviceAuthMode>(),
            Ok(DeviceAuthMode::Always)
        );
        assert!("sometimes".parse::<DeviceAuthMode>().is_err());
    }

    fn token(gateway: &str, device: &str, role: &str, t: &str) -> StoredDeviceToken {
        StoredDeviceToken {
            gateway: gateway.into(),
            device_id: device.into(),
            role: role.into(),
            token: t.into(),
            scopes: vec!["operator.read".into()],
            issued_at_ms: Some(1),
            saved_at_ms: 2,
        }
    }

    #[test]
    fn store_round_trip_per_gateway_device_and_role() {
        let dir = tempfile::tempdir().unwrap();
        let store = DeviceTokenStore::new(dir.path().join("sub/tokens.json"));
        assert_eq!(store.get("ws://gw:1", "d1", "operator").unwrap(), None);
        assert!(
            store
                .put(token("ws://GW:1/x", "d1", "operator", "t1"))
                .unwrap()
        );
        assert!(
            !store
                .put(token("ws://gw:1", "d1", "operator", "t1"))
                .unwrap()
        );
        store.put(token("ws://gw:1", "d1", "node", "t2")).unwrap();
        store
            .put(token("ws://gw:1", "d2", "operator", "t3"))
            .unwrap();
        store
            .put(token("ws://other:1", "d1", "operator", "t4"))
            .unwrap();
        let got = store.get("ws://gw:1/", "d1", "operator").unwrap().unwrap();
        assert_eq!(got.token, "t1");
        assert_eq!(got.gateway, "ws://gw:1");
        store
            .put(token("ws://gw:1", "d1", "operator", "t5"))
            .unwrap();
        assert_eq!(
            store
                .get("ws://gw:1", "d1", "operator")
                .unwrap()
                .unwrap()
                .token,
            "t5"
        );
        assert_eq!(store.all().unwrap().len(), 4);
        assert!(store.remove("ws://gw:1", "d1", "operator").unwrap());
        assert!(!store.remove("ws://gw:1", "d1", "operator").unwrap());
        assert_eq!(store.remove_device("ws://gw:1", "d1").unwrap(), 1);
        assert_eq!(store.all().unwrap().len(), 2);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(store.path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let shown = format!("{:?}", token("ws://gw:1", "d1", "operator", "secret-t"));
        assert!(!shown.contains("secret-t"), "{shown}");
    }

    #[test]
    fn a_corrupt_store_is_an_error_not_a_silent_reset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        std::fs::write(&path, "{not json").unwrap();
        let store = DeviceTokenStore::new(&path);
        let err = store.get("ws://gw:1", "d", "operator").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("tokens.json"), "{err}");
    }
}
