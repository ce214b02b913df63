//! Where an operator connects and with which credentials: flags, env and config via
//! `clawgate_config::resolve_client_target`, plus the zero-config local case (the token the
//! local gateway generated in `<state dir>/gateway.token`), the SSH tunnel of
//! `gateway.remote.transport: "ssh"` (opened or reused through the caller), and the
//! plaintext `ws://` rule, checked against the address actually dialled before anything is
//! sent.

use crate::plaintext;
use crate::tunnel::{TunnelError, TunnelState};
use clawgate_config::{self as config, ClientFlags, Secret, TargetSource};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// File in the state dir where a local clawgate gateway keeps the token it generated.
pub const TOKEN_FILE: &str = "gateway.token";

/// Where a credential came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialOrigin {
    /// Flags, env or config (whatever `resolve_client_target` picked).
    Resolved,
    /// The local gateway's generated token file.
    TokenFile(PathBuf),
    /// No credential at all.
    None,
}

/// A resolved target.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub token: Option<String>,
    pub password: Option<String>,
    /// The pin, or a pin set joined by commas.
    pub tls_fingerprint: Option<String>,
    pub source: TargetSource,
    /// The config file that was read, if any.
    pub config_path: Option<PathBuf>,
    pub state_dir: PathBuf,
    pub credential: CredentialOrigin,
    /// Dial this instead of the URL's host: the local end of the SSH tunnel when the URL
    /// keeps naming the server for TLS (`wss://` through a tunnel).
    pub connect_to: Option<SocketAddr>,
    /// The SSH tunnel the connection goes through (`gateway.remote.transport: "ssh"`).
    pub tunnel: Option<TunnelState>,
    /// The one-shot SSH tunnel of `gateway probe --ssh` the connection goes through.
    pub probe_tunnel: Option<ProbeTunnel>,
}

/// A `gateway probe --ssh` tunnel, for messages and the report.
#[derive(Debug, Clone)]
pub struct ProbeTunnel {
    /// `user@host[:port]` as dialled (after `ssh -G`).
    pub target: String,
    pub local_port: u16,
    pub remote_port: u16,
    pub pid: u32,
}

impl Target {
    /// `ws://… (local gateway)`, for messages.
    pub fn describe(&self) -> String {
        if let Some(t) = &self.probe_tunnel {
            return format!(
                "{} (through the probe's SSH tunnel to {}, port {} there)",
                self.url, t.target, t.remote_port
            );
        }
        if let Some(t) = &self.tunnel {
            return format!(
                "{} (through the SSH tunnel {} → {}, port {} there; gateway.remote.transport ssh{})",
                self.url,
                t.url,
                t.spec.describe(),
                t.spec.remote_port,
                self.config_path
                    .as_ref()
                    .map(|p| format!(" in {}", p.display()))
                    .unwrap_or_default()
            );
        }
        match &self.config_path {
            Some(p) => format!(
                "{} (from {}; config file {})",
                self.url,
                self.source,
                p.display()
            ),
            None => format!("{} (from {})", self.url, self.source),
        }
    }

    pub fn source_label(&self) -> String {
        match &self.probe_tunnel {
            Some(_) => "ssh tunnel (gateway probe --ssh)".to_owned(),
            None => self.source.to_string(),
        }
    }

    pub fn token_file(&self) -> PathBuf {
        self.state_dir.join(TOKEN_FILE)
    }

    /// This machine's device id if an identity exists already (never creates one).
    pub fn local_device_id(&self) -> Option<String> {
        let path = crate::device_auth::identity_path(&self.state_dir);
        path.exists()
            .then(|| crate::DeviceIdentity::load(&path).ok())
            .flatten()
            .map(|i| i.id().to_owned())
    }

    /// The device tokens this machine keeps, of every gateway.
    fn token_store(&self) -> crate::DeviceTokenStore {
        crate::DeviceTokenStore::new(crate::device_auth::tokens_path(&self.state_dir))
    }

    /// Drops every stored token of `device_id` at this gateway (after it was removed there);
    /// how many were dropped.
    pub fn forget_device(&self, device_id: &str) -> usize {
        self.token_store()
            .remove_device(&self.url, device_id)
            .unwrap_or(0)
    }

    /// Drops this gateway's stored token of `device_id` for `role` (after it was revoked
    /// there).
    pub fn forget_token(&self, device_id: &str, role: &str) {
        let _ = self.token_store().remove(&self.url, device_id, role);
    }

    /// Stores a token handed back in-band (a device rotating its own token); the error
    /// names the file.
    pub fn store_rotated(
        &self,
        device_id: &str,
        role: &str,
        token: &str,
        scopes: Vec<String>,
    ) -> Result<(), String> {
        let store = self.token_store();
        let saved = store.put(crate::StoredDeviceToken {
            gateway: self.url.clone(),
            device_id: device_id.to_owned(),
            role: role.to_owned(),
            token: token.to_owned(),
            scopes,
            issued_at_ms: None,
            saved_at_ms: crate::now_ms(),
        });
        saved
            .map(|_| ())
            .map_err(|e| format!("{}: {e}", store.path().display()))
    }
}

/// The connection flags a target is resolved from.
#[derive(Debug, Clone, Default)]
pub struct TargetInputs {
    /// Config file (else the env's or the default one).
    pub config: Option<PathBuf>,
    pub url: Option<String>,
    pub token: Option<String>,
    pub password: Option<String>,
    /// Pins, each possibly a comma-separated set.
    pub tls_fingerprint: Vec<String>,
}

/// Why no target could be resolved.
#[derive(Debug)]
pub enum TargetError {
    /// The config file or a setting cannot be used.
    Config(String),
    /// A plaintext `ws://` URL to a host that is neither loopback nor private.
    Plaintext {
        url: String,
        host: String,
        reason: String,
        source: TargetSource,
        config_path: Option<PathBuf>,
        /// Whether the private-network break-glass variable was set.
        break_glass: bool,
    },
    /// The SSH tunnel of `gateway.remote.transport: "ssh"` could not be opened.
    Tunnel(TunnelError),
}

/// Which gateway [`resolve`] resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// The one flags, env and config name ([`config::resolve_client_target`]).
    Configured,
    /// This machine's gateway whatever they name ([`config::resolve_local_target`]): the
    /// second target of `gateway probe`. Resolved after the configured one, so the config
    /// file's warnings are not printed again.
    LocalLoopback,
}

/// Resolves the target of the configured gateway or this machine's, in `env`. Warnings (of
/// the target and of the config file) go to `warn` as they are found; `local_pin` gives
/// the certificate fingerprint of this machine's TLS gateway (from its config file);
/// `open_tunnel` opens or reuses the SSH tunnel of `gateway.remote.transport: "ssh"` in the
/// state dir given.
pub fn resolve(
    args: &TargetInputs,
    env: &dyn Fn(&str) -> Option<String>,
    which: Which,
    warn: &mut dyn FnMut(&str),
    local_pin: &dyn Fn(Option<&Path>) -> Option<String>,
    open_tunnel: &mut dyn FnMut(
        &config::SshTunnelTarget,
        &Path,
    ) -> Result<TunnelState, TunnelError>,
) -> Result<Target, TargetError> {
    let location = config::locate_config(args.config.as_deref(), None, env);
    let loaded =
        config::load_config(&location, env).map_err(|e| TargetError::Config(e.to_string()))?;
    let flags = ClientFlags {
        url: args.url.clone(),
        token: args.token.clone().map(Secret::new),
        password: args.password.clone().map(Secret::new),
        tls_fingerprint: (!args.tls_fingerprint.is_empty()).then(|| args.tls_fingerprint.join(",")),
    };
    let target = match which {
        Which::Configured => config::resolve_client_target(&flags, loaded.as_ref(), env),
        Which::LocalLoopback => config::resolve_local_target(&flags, loaded.as_ref(), env),
    }
    .map_err(|e| TargetError::Config(e.to_string()))?;
    let config_warnings = loaded
        .iter()
        .filter(|_| which == Which::Configured)
        .flat_map(|l| &l.warnings);
    for w in target.warnings.iter().chain(config_warnings) {
        warn(w);
    }
    let state_dir = config::resolve_state_dir(None, env);
    let mut token = target.token.map(|s| s.expose().to_owned());
    let password = target.password.map(|s| s.expose().to_owned());
    let mut credential = if token.is_some() || password.is_some() {
        CredentialOrigin::Resolved
    } else {
        CredentialOrigin::None
    };
    if target.source == TargetSource::Local && credential == CredentialOrigin::None {
        let path = state_dir.join(TOKEN_FILE);
        if let Ok(text) = std::fs::read_to_string(&path) {
            let text = text.trim();
            if !text.is_empty() {
                token = Some(text.to_owned());
                credential = CredentialOrigin::TokenFile(path);
            }
        }
    }
    let config_path = loaded.map(|l| l.path);
    let mut url = target.url;
    let mut connect_to = None;
    let mut tunnel = None;
    if let Some(ssh) = &target.ssh {
        let state = open_tunnel(ssh, &state_dir).map_err(TargetError::Tunnel)?;
        let local = SocketAddr::from(([127, 0, 0, 1], state.local_port));
        match &ssh.server_url {
            // wss:// keeps the server's name for TLS; only the dialled address changes.
            Some(server) => {
                url = server.clone();
                connect_to = Some(local);
            }
            None => url = with_port(&url, state.local_port),
        }
        tunnel = Some(state);
    }
    // Plaintext ws:// only to loopback or private addresses: checked against what is
    // dialled (the tunnel's local end when there is one), before any socket is opened.
    if connect_to.is_none() {
        let break_glass = plaintext::break_glass(env);
        if let Err(r) = plaintext::check(&url, break_glass.is_some()) {
            return Err(TargetError::Plaintext {
                url,
                host: r.host,
                reason: r.reason,
                source: target.source,
                config_path,
                break_glass: break_glass.is_some(),
            });
        }
    }
    // This machine's own TLS gateway: pin the certificate its config names.
    let tls_fingerprint = target.tls_fingerprint.or_else(|| {
        (target.source == TargetSource::Local && url.starts_with("wss://"))
            .then(|| local_pin(config_path.as_deref()))
            .flatten()
    });
    Ok(Target {
        url,
        token,
        password,
        tls_fingerprint,
        source: target.source,
        config_path,
        state_dir,
        credential,
        connect_to,
        tunnel,
        probe_tunnel: None,
    })
}

/// `ws://127.0.0.1:<old>/path` with another port.
fn with_port(url: &str, port: u16) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    format!("{scheme}://127.0.0.1:{port}{path}")
}
