//! Where the operator CLI connects, and with which credentials.

use std::fmt;
use std::path::PathBuf;

use crate::error::ConfigError;
use crate::gateway_config::{GatewayConfig, normalize_fingerprint};
use crate::load::LoadedConfig;
use crate::modes::{GatewayMode, RemoteTransport, SshHostKeyPolicy};
use crate::paths::env_with_fallback;
use crate::secret::Secret;
use crate::settings::{
    Credential, DEFAULT_PORT, SecretSource, check_secret, local_port, local_secrets, pick_secret,
    source_label,
};

/// The operator CLI's connection flags. `None` = flag not given.
#[derive(Debug, Clone, Default)]
pub struct ClientFlags {
    /// `--url`.
    pub url: Option<String>,
    /// `--token`.
    pub token: Option<Secret>,
    /// `--password`.
    pub password: Option<Secret>,
    /// `--tls-fingerprint` (SHA-256 of the gateway's certificate); several separated by
    /// commas form a pin set (any one matching accepts).
    pub tls_fingerprint: Option<String>,
}

/// What chose the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSource {
    /// `--url`.
    Flag,
    /// The named environment variable (`CLAWGATE_GATEWAY_URL` / `OPENCLAW_GATEWAY_URL`).
    Env(String),
    /// `gateway.remote.url` (with `gateway.mode: "remote"`).
    RemoteConfig,
    /// The local gateway on `127.0.0.1`.
    Local,
}

impl fmt::Display for TargetSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetSource::Flag => f.write_str("--url"),
            TargetSource::Env(name) => write!(f, "env {name}"),
            TargetSource::RemoteConfig => f.write_str("config gateway.remote.url"),
            TargetSource::Local => f.write_str("local gateway"),
        }
    }
}

/// A resolved connection target for the operator CLI.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientTarget {
    /// `ws://` or `wss://` URL (`http(s)://` input is normalized to `ws(s)://`).
    pub url: String,
    pub token: Option<Secret>,
    pub password: Option<Secret>,
    /// Certificate pin, 64 lowercase hex digits (a pin set: several joined by commas). For
    /// the local `wss://` gateway it is `None`: the caller pins the on-disk certificate
    /// itself.
    pub tls_fingerprint: Option<String>,
    pub source: TargetSource,
    /// Non-fatal findings to print (e.g. remote mode without a remote URL).
    pub warnings: Vec<String>,
    /// `gateway.remote.transport: "ssh"`: the connection goes through an SSH tunnel that
    /// the caller opens (or reuses); `url` then names the tunnel's local end on
    /// `127.0.0.1` with the preferred local port (the caller substitutes the port the
    /// tunnel really got). `None` for every other target.
    pub ssh: Option<SshTunnelTarget>,
}

/// The SSH tunnel a remote-mode target goes through (`gateway.remote.transport: "ssh"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTunnelTarget {
    /// `gateway.remote.sshTarget`: `[user@]host[:port]`.
    pub target: String,
    /// `gateway.remote.sshIdentity` (passed as `ssh -i`).
    pub identity: Option<PathBuf>,
    /// The gateway's port on the SSH host: `gateway.remote.remotePort`, else the port of
    /// `gateway.remote.url`, else 18789.
    pub remote_port: u16,
    /// The local port to prefer: the port of `gateway.remote.url`, else `remote_port`.
    pub local_port: u16,
    /// `gateway.remote.sshHostKeyPolicy` (strict when unset).
    pub host_key_policy: SshHostKeyPolicy,
    /// `gateway.remote.url` when it is a `wss://` URL to a host that is not loopback: it
    /// keeps naming the server (TLS name, Host header) while the connection goes through
    /// the tunnel. `None` otherwise.
    pub server_url: Option<String>,
}

/// Checks and normalizes a gateway URL; `named` says where it came from, for the message.
fn normalize_url(url: &str, named: &str) -> Result<String, ConfigError> {
    let u = url.trim();
    let lower = u.to_ascii_lowercase();
    let (scheme, rest) = if let Some(r) = lower.strip_prefix("wss://") {
        ("wss://", &u[u.len() - r.len()..])
    } else if let Some(r) = lower.strip_prefix("ws://") {
        ("ws://", &u[u.len() - r.len()..])
    } else if let Some(r) = lower.strip_prefix("https://") {
        ("wss://", &u[u.len() - r.len()..])
    } else if let Some(r) = lower.strip_prefix("http://") {
        ("ws://", &u[u.len() - r.len()..])
    } else {
        ("", "")
    };
    if scheme.is_empty() || rest.is_empty() || rest.starts_with('/') {
        return Err(ConfigError::Client {
            message: format!(
                "{named} must be a ws:// or wss:// URL such as wss://gateway.example.ts.net or ws://127.0.0.1:18789 (got {})",
                serde_json::Value::String(url.to_owned())
            ),
        });
    }
    Ok(format!("{scheme}{rest}"))
}

/// One pin, or several separated by commas: normalized and joined by commas.
fn fingerprints(input: &str, named: &str) -> Result<String, ConfigError> {
    let mut pins: Vec<String> = Vec::new();
    let entries: Vec<&str> = input
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    for entry in entries
        .iter()
        .copied()
        .chain(entries.is_empty().then_some(input))
    {
        let pin = normalize_fingerprint(entry).ok_or_else(|| ConfigError::Client {
            message: format!(
                "{named} must be a SHA-256 fingerprint: 64 hex digits, optionally colon-separated and prefixed with \"sha256:\" (got {})",
                serde_json::Value::String(entry.to_owned())
            ),
        })?;
        if !pins.contains(&pin) {
            pins.push(pin);
        }
    }
    Ok(pins.join(","))
}

/// Resolves where the operator CLI connects (OpenClaw's rules, see below), with these
/// deliberate differences: in local mode env credentials beat `gateway.auth.*` (the same
/// order the gateway uses, so both agree on the secret in effect), local mode never falls
/// back to `gateway.remote.*` credentials, and remote mode never sends the local
/// `gateway.auth.*` secret to the remote host.
///
/// 1. `--url`: only `--token` / `--password` are used, never saved or env credentials
///    (they belong to another gateway); without either it is an error.
/// 2. `CLAWGATE_GATEWAY_URL` / `OPENCLAW_GATEWAY_URL`: credentials from flags, then only
///    `CLAWGATE_GATEWAY_TOKEN|PASSWORD` / `OPENCLAW_GATEWAY_TOKEN|PASSWORD`.
/// 3. `gateway.mode: "remote"` with `gateway.remote.url`: flags > `gateway.remote.token`
///    / `password` > env; the pin (or pin set) is `--tls-fingerprint` >
///    `gateway.remote.tlsFingerprint`.
///    With `gateway.remote.transport: "ssh"` the URL may be omitted: the target then says
///    which SSH tunnel to use ([`ClientTarget::ssh`]) and `url` is its local end.
/// 4. Otherwise the local gateway, always `ws://127.0.0.1:<port>` (`wss://` when
///    `gateway.tls.enabled`), port from env > `gateway.port` > the profile's port > 18789;
///    credentials flags > env > `gateway.auth.*`.
pub fn resolve_client_target(
    flags: &ClientFlags,
    loaded: Option<&LoadedConfig>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ClientTarget, ConfigError> {
    let default_cfg = GatewayConfig::default();
    let cfg = loaded.map_or(&default_cfg, |l| &l.gateway);
    let flag_fp = flags
        .tls_fingerprint
        .as_deref()
        .map(|fp| fingerprints(fp, "--tls-fingerprint"))
        .transpose()?;
    let mut warnings = Vec::new();
    let mut ssh = None;

    let (url, token, password, tls_fingerprint, source) = if let Some(url) = &flags.url {
        let url = normalize_url(url, "--url")?;
        if flags.token.is_none() && flags.password.is_none() {
            return Err(ConfigError::Client {
                message: "gateway url override requires explicit credentials\nFix: pass --token or --password with --url.\nFor the default local or SSH-tunneled Gateway, remove --url to use the configured target.".to_owned(),
            });
        }
        let token = flags.token.clone().map(|s| (s, SecretSource::Flag));
        let password = flags.password.clone().map(|s| (s, SecretSource::Flag));
        (url, token, password, flag_fp, TargetSource::Flag)
    } else if let Some((var, url)) = env_with_fallback(env, "GATEWAY_URL") {
        let url = normalize_url(&url, &var)?;
        let token = pick_secret(flags.token.as_ref(), env, "GATEWAY_TOKEN", None);
        let password = pick_secret(flags.password.as_ref(), env, "GATEWAY_PASSWORD", None);
        (url, token, password, flag_fp, TargetSource::Env(var))
    } else if cfg.mode == Some(GatewayMode::Remote)
        && (cfg.remote.url.is_some() || cfg.remote.transport == Some(RemoteTransport::Ssh))
    {
        let url = match &cfg.remote.url {
            Some(url) => normalize_url(url, "gateway.remote.url")?,
            None => String::new(),
        };
        let url = if cfg.remote.transport == Some(RemoteTransport::Ssh) {
            let (tunnel, local_url) = ssh_tunnel(cfg, &url)?;
            ssh = Some(tunnel);
            local_url
        } else {
            url
        };
        let token = remote_first(
            flags.token.as_ref(),
            cfg.remote.token.as_ref(),
            "gateway.remote.token",
            env,
            "GATEWAY_TOKEN",
        );
        let password = remote_first(
            flags.password.as_ref(),
            cfg.remote.password.as_ref(),
            "gateway.remote.password",
            env,
            "GATEWAY_PASSWORD",
        );
        let fp = flag_fp.or_else(|| cfg.remote.tls_fingerprint.clone());
        (url, token, password, fp, TargetSource::RemoteConfig)
    } else {
        if cfg.mode == Some(GatewayMode::Remote) {
            warnings.push(
                "gateway.mode=remote but gateway.remote.url is missing; connecting to the local gateway. Set gateway.remote.url (e.g. wss://gateway.example.ts.net) to use the remote one.".to_owned(),
            );
        }
        let (url, token, password) = local_gateway(flags, cfg, env)?;
        (url, token, password, flag_fp, TargetSource::Local)
    };
    finish_target(url, token, password, tls_fingerprint, source, warnings, ssh)
}

/// This machine's gateway (case 4 of [`resolve_client_target`]) whatever `--url`, the
/// environment's URL and `gateway.mode` say: `gateway probe` checks it next to the
/// configured target, as OpenClaw does (its `localLoopback` target). `--token` /
/// `--password` apply; `--tls-fingerprint` does not (it pins the other target).
pub fn resolve_local_target(
    flags: &ClientFlags,
    loaded: Option<&LoadedConfig>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ClientTarget, ConfigError> {
    let default_cfg = GatewayConfig::default();
    let cfg = loaded.map_or(&default_cfg, |l| &l.gateway);
    let (url, token, password) = local_gateway(flags, cfg, env)?;
    finish_target(
        url,
        token,
        password,
        None,
        TargetSource::Local,
        Vec::new(),
        None,
    )
}

/// The local gateway's URL (`ws[s]://127.0.0.1:<port>`) and credentials
/// ([`local_secrets`]).
fn local_gateway(
    flags: &ClientFlags,
    cfg: &GatewayConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, Credential, Credential), ConfigError> {
    let port = local_port(cfg.port, env)?;
    let scheme = if cfg.tls.enabled == Some(true) {
        "wss"
    } else {
        "ws"
    };
    let (token, password) = local_secrets(flags.token.as_ref(), flags.password.as_ref(), cfg, env);
    Ok((format!("{scheme}://127.0.0.1:{port}"), token, password))
}

/// Checks the secrets and the pin of a resolved target.
fn finish_target(
    url: String,
    token: Credential,
    password: Credential,
    tls_fingerprint: Option<String>,
    source: TargetSource,
    warnings: Vec<String>,
    ssh: Option<SshTunnelTarget>,
) -> Result<ClientTarget, ConfigError> {
    if let Some((secret, source)) = &token {
        check_secret("token", secret, &source_label(source, "--token"))?;
    }
    if let Some((secret, source)) = &password {
        check_secret("password", secret, &source_label(source, "--password"))?;
    }
    if tls_fingerprint.is_some() && !url.starts_with("wss://") {
        return Err(ConfigError::Client {
            message: format!(
                "a TLS fingerprint requires a wss:// gateway url (got {url}); use wss:// or remove the fingerprint"
            ),
        });
    }

    Ok(ClientTarget {
        url,
        token: token.map(|(s, _)| s),
        password: password.map(|(s, _)| s),
        tls_fingerprint,
        source,
        warnings,
        ssh,
    })
}

/// The port of a `ws[s]://` URL (explicit, else 80/443), if it parses.
fn url_port(url: &str) -> Option<u16> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let port = if let Some(v6) = authority.strip_prefix('[') {
        v6.split_once(']')?.1.strip_prefix(':')
    } else {
        authority.rsplit_once(':').map(|(_, p)| p)
    };
    match port {
        Some(p) => p.parse().ok().filter(|p| *p > 0),
        None if scheme == "wss" => Some(443),
        None => Some(80),
    }
}

/// The host of a `ws[s]://` URL, brackets removed, lowercased.
fn url_host(url: &str) -> Option<String> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split_once(']')?.0
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `gateway.remote.transport: "ssh"`: the tunnel to open and the local URL to use.
/// Like OpenClaw's apps, `gateway.remote.url` (optional) names the tunnel's local end:
/// its port is the preferred local port; `remotePort` is the gateway's port on the SSH
/// host (fallback: the URL's port, then 18789).
fn ssh_tunnel(cfg: &GatewayConfig, url: &str) -> Result<(SshTunnelTarget, String), ConfigError> {
    let Some(target) = cfg
        .remote
        .ssh_target
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    else {
        return Err(ConfigError::Client {
            message: "gateway.remote.transport is \"ssh\" but gateway.remote.sshTarget is not set\nFix: set gateway.remote.sshTarget to the gateway host as user@host (or user@host:port), or open a tunnel by hand with `clawgate tunnel up user@host` and point gateway.remote.url at it.".to_owned(),
        });
    };
    let configured_port = if url.is_empty() { None } else { url_port(url) };
    let remote_port = cfg
        .remote
        .remote_port
        .or(configured_port)
        .unwrap_or(DEFAULT_PORT);
    let local_port = configured_port.unwrap_or(remote_port);
    let scheme = if url.starts_with("wss://") {
        "wss"
    } else {
        "ws"
    };
    let server_url = url_host(url)
        .filter(|h| scheme == "wss" && !is_loopback_host(h))
        .map(|_| url.to_owned());
    let path = url
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
        .unwrap_or("");
    let local_url = format!("{scheme}://127.0.0.1:{local_port}{path}");
    Ok((
        SshTunnelTarget {
            target: target.to_owned(),
            identity: cfg.remote.ssh_identity.clone(),
            remote_port,
            local_port,
            host_key_policy: cfg
                .remote
                .ssh_host_key_policy
                .unwrap_or(SshHostKeyPolicy::Strict),
            server_url,
        },
        local_url,
    ))
}

/// `gateway probe`'s SSH flags (`None` = not given).
#[derive(Debug, Clone, Default)]
pub struct ProbeSshFlags {
    /// `--ssh`.
    pub ssh: Option<String>,
    /// `--ssh-identity`.
    pub identity: Option<PathBuf>,
    /// `--port`: the gateway's port.
    pub port: Option<u16>,
    /// `--url` was given.
    pub url: bool,
    pub token: Option<Secret>,
    pub password: Option<Secret>,
}

/// Where the SSH target of a probe came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeSshOrigin {
    /// `--ssh`.
    Flag,
    /// `gateway.remote.sshTarget`.
    Config,
    /// `$USER@<host of gateway.remote.url>`.
    RemoteUrl,
}

impl fmt::Display for ProbeSshOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProbeSshOrigin::Flag => "--ssh",
            ProbeSshOrigin::Config => "gateway.remote.sshTarget",
            ProbeSshOrigin::RemoteUrl => "$USER@<host of gateway.remote.url>",
        })
    }
}

/// The one-shot SSH tunnel `gateway probe` opens to a remote gateway, and what it sends
/// through it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeSshTarget {
    /// `[user@]host[:port]`, as given (a leading `ssh ` removed); not validated yet.
    pub target: String,
    pub origin: ProbeSshOrigin,
    /// `--ssh-identity`, else `gateway.remote.sshIdentity`.
    pub identity: Option<PathBuf>,
    /// The gateway's port on the SSH host.
    pub remote_port: u16,
    pub token: Option<Secret>,
    pub password: Option<Secret>,
}

/// `[user@]host…` without surrounding blanks or a leading `ssh ` (a pasted command).
fn sanitize_ssh_target(raw: &str) -> Option<String> {
    let t = raw.trim();
    let t = match t.strip_prefix("ssh") {
        Some(rest) if rest.starts_with(char::is_whitespace) => rest.trim_start(),
        _ => t,
    };
    (!t.is_empty()).then(|| t.to_owned())
}

/// OpenClaw's `gateway probe` SSH target: `--ssh`, else (unless `--port` is given without
/// `--url`) `gateway.remote.sshTarget`, else `$USER@<host of gateway.remote.url>`; the
/// identity `--ssh-identity`, else `gateway.remote.sshIdentity`. The gateway's port there:
/// `--port`, else `gateway.remote.remotePort`, else this machine's gateway port (env,
/// `gateway.port`, the profile's port, 18789). Credentials: `--token`/`--password`, else
/// the remote ones (`gateway.remote.token`, else `gateway.remote.password`, else the
/// environment's).
///
/// One difference: when the configured target already goes through clawgate's managed
/// tunnel (`gateway.mode: "remote"` with `gateway.remote.transport: "ssh"`), the config
/// opens no second tunnel; only `--ssh` does.
pub fn resolve_probe_ssh(
    flags: &ProbeSshFlags,
    loaded: Option<&LoadedConfig>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<ProbeSshTarget>, ConfigError> {
    let default_cfg = GatewayConfig::default();
    let cfg = loaded.map_or(&default_cfg, |l| &l.gateway);
    let managed =
        cfg.mode == Some(GatewayMode::Remote) && cfg.remote.transport == Some(RemoteTransport::Ssh);
    let use_config = (flags.port.is_none() || flags.url) && !managed;
    let from_url = || {
        let host = url_host(cfg.remote.url.as_deref()?)?;
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        Some(match env("USER").filter(|u| !u.trim().is_empty()) {
            Some(user) => format!("{}@{host}", user.trim()),
            None => host,
        })
    };
    let picked = match flags.ssh.as_deref().and_then(sanitize_ssh_target) {
        Some(t) => Some((t, ProbeSshOrigin::Flag)),
        None if use_config => match cfg
            .remote
            .ssh_target
            .as_deref()
            .and_then(sanitize_ssh_target)
        {
            Some(t) => Some((t, ProbeSshOrigin::Config)),
            None => from_url().map(|t| (t, ProbeSshOrigin::RemoteUrl)),
        },
        None => None,
    };
    let Some((target, origin)) = picked else {
        return Ok(None);
    };
    let identity = flags.identity.clone().or_else(|| {
        use_config
            .then(|| cfg.remote.ssh_identity.clone())
            .flatten()
    });
    let remote_port = match flags.port.or(cfg.remote.remote_port) {
        Some(p) => p,
        None => local_port(cfg.port, env)?,
    };
    let (token, password) = if flags.token.is_some() || flags.password.is_some() {
        (flags.token.clone(), flags.password.clone())
    } else if let Some(t) = &cfg.remote.token {
        (Some(t.clone()), None)
    } else if let Some(p) = &cfg.remote.password {
        (None, Some(p.clone()))
    } else {
        (
            env_with_fallback(env, "GATEWAY_TOKEN").map(|(_, v)| Secret::new(v)),
            env_with_fallback(env, "GATEWAY_PASSWORD").map(|(_, v)| Secret::new(v)),
        )
    };
    Ok(Some(ProbeSshTarget {
        target,
        origin,
        identity,
        remote_port,
        token,
        password,
    }))
}

/// flag > remote config > env.
fn remote_first(
    flag: Option<&Secret>,
    remote: Option<&Secret>,
    remote_key: &str,
    env: &dyn Fn(&str) -> Option<String>,
    env_suffix: &str,
) -> Option<(Secret, SecretSource)> {
    if let Some(s) = flag {
        return Some((s.clone(), SecretSource::Flag));
    }
    if let Some(s) = remote {
        return Some((s.clone(), SecretSource::Config(remote_key.to_owned())));
    }
    pick_secret(None, env, env_suffix, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(normalize_url("ws://h:1", "x").unwrap(), "ws://h:1");
        assert_eq!(normalize_url(" WSS://H/p ", "x").unwrap(), "wss://H/p");
        assert_eq!(normalize_url("https://h", "x").unwrap(), "wss://h");
        assert_eq!(normalize_url("http://h:80", "x").unwrap(), "ws://h:80");
        assert_eq!(
            normalize_url("h:18789", "--url").unwrap_err().to_string(),
            "--url must be a ws:// or wss:// URL such as wss://gateway.example.ts.net or ws://127.0.0.1:18789 (got \"h:18789\")"
        );
        assert!(normalize_url("ws://", "x").is_err());
    }

    fn probe_ssh(
        flags: &ProbeSshFlags,
        config: &str,
        env: &[(&str, &str)],
    ) -> Option<ProbeSshTarget> {
        let lookup = |k: &str| {
            env.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        };
        let loaded =
            LoadedConfig::from_json5(std::path::Path::new("/c.json"), config, &lookup).unwrap();
        resolve_probe_ssh(flags, Some(&loaded), &lookup).unwrap()
    }

    #[test]
    fn the_probe_tunnel_target_follows_openclaw() {
        let none = ProbeSshFlags::default();
        // Nothing configured: no tunnel.
        assert_eq!(probe_ssh(&none, "{}", &[]), None);
        // --ssh wins; a pasted `ssh ` is dropped; the port is this gateway's.
        let flags = ProbeSshFlags {
            ssh: Some(" ssh me@gw:2222 ".into()),
            ..Default::default()
        };
        let t = probe_ssh(&flags, "{gateway: {port: 19001}}", &[]).unwrap();
        assert_eq!(
            (t.target.as_str(), t.origin),
            ("me@gw:2222", ProbeSshOrigin::Flag)
        );
        assert_eq!(t.remote_port, 19001);
        // Config target, identity and remote credentials; remotePort beats gateway.port.
        let cfg = "{gateway: {port: 1, remote: {sshTarget: 'ops@box', sshIdentity: '/k/id',
                   remotePort: 2, token: 'remote-tok', password: 'remote-pw'}}}";
        let t = probe_ssh(&none, cfg, &[("OPENCLAW_GATEWAY_TOKEN", "env-tok")]).unwrap();
        assert_eq!(
            (t.target.as_str(), t.origin),
            ("ops@box", ProbeSshOrigin::Config)
        );
        assert_eq!(t.identity.as_deref(), Some(std::path::Path::new("/k/id")));
        assert_eq!(t.remote_port, 2);
        assert_eq!(t.token.as_ref().map(Secret::expose), Some("remote-tok"));
        assert_eq!(t.password, None);
        // --port without --url leaves the config out.
        let port_only = ProbeSshFlags {
            port: Some(5),
            ..Default::default()
        };
        assert_eq!(probe_ssh(&port_only, cfg, &[]), None);
        // $USER@<host of remote.url>; env credentials when the config has none.
        let cfg = "{gateway: {remote: {url: 'wss://GW.example:8443/x'}}}";
        let env = [("USER", "alice"), ("CLAWGATE_GATEWAY_PASSWORD", "env-pw")];
        let t = probe_ssh(&none, cfg, &env).unwrap();
        assert_eq!(
            (t.target.as_str(), t.origin),
            ("alice@gw.example", ProbeSshOrigin::RemoteUrl)
        );
        assert_eq!(t.remote_port, DEFAULT_PORT);
        assert_eq!(t.password.as_ref().map(Secret::expose), Some("env-pw"));
        assert_eq!(
            probe_ssh(&none, "{gateway: {remote: {url: 'ws://[::1]:1'}}}", &[])
                .unwrap()
                .target,
            "[::1]"
        );
        // The managed tunnel of transport "ssh" is the configured path already.
        let managed =
            "{gateway: {mode: 'remote', remote: {transport: 'ssh', sshTarget: 'ops@box'}}}";
        assert_eq!(probe_ssh(&none, managed, &[]), None);
        assert!(probe_ssh(&flags, managed, &[]).is_some());
    }

    #[test]
    fn pin_sets_from_the_flag() {
        let (a, b) = ("ab".repeat(32), "cd".repeat(32));
        let colons = vec!["CD"; 32].join(":");
        assert_eq!(
            fingerprints(&format!("sha256:{a}, {colons},{a}"), "--tls-fingerprint").unwrap(),
            format!("{a},{b}")
        );
        assert_eq!(
            fingerprints(&format!("{a},zz"), "--tls-fingerprint")
                .unwrap_err()
                .to_string(),
            "--tls-fingerprint must be a SHA-256 fingerprint: 64 hex digits, optionally colon-separated and prefixed with \"sha256:\" (got \"zz\")"
        );
        assert!(fingerprints(",", "--tls-fingerprint").is_err());
    }
}
