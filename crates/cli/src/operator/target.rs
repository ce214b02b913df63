//! Where an operator command connects and with which credentials: flags, env and config via
//! `clawgate_config::resolve_client_target`, plus the zero-config local case (the token the
//! local gateway generated in `<state dir>/gateway.token`), the SSH tunnel of
//! `gateway.remote.transport: "ssh"` (opened or reused here), and the plaintext `ws://`
//! rule, checked against the address actually dialled before anything is sent.

use super::conn::ConnArgs;
use crate::output::{EXIT_USAGE, Failure};
use clawgate_client::plaintext;
use clawgate_client::tunnel::{
    ArgvProfile, DEFAULT_READY_TIMEOUT, HostKeyPolicy, TunnelSpec, TunnelState,
};
use clawgate_config::{self as config, ClientFlags, Secret, TargetSource};
use serde_json::json;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

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
}

/// The certificate fingerprint of this machine's gateway when its config enables TLS.
pub fn local_tls_fingerprint(config_path: Option<&std::path::Path>) -> Option<String> {
    let env = config::process_env;
    let location = config::locate_config(config_path, None, &env);
    let loaded = config::load_config(&location, &env).ok()?;
    let inputs = config::GatewayRunInputs {
        config_path: config_path.map(std::path::Path::to_path_buf),
        ..Default::default()
    };
    let settings = config::resolve_gateway_settings(&inputs, loaded.as_ref(), &env).ok()?;
    clawgate_gateway::tls::configured_fingerprint(&settings)
}

/// Resolves the target; configuration problems are usage errors (exit 2).
pub fn resolve(args: &ConnArgs) -> Result<Target, Failure> {
    resolve_with_env(args, &config::process_env, Which::Configured)
}

/// Which gateway [`resolve_with_env`] resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// The one flags, env and config name ([`config::resolve_client_target`]).
    Configured,
    /// This machine's gateway whatever they name ([`config::resolve_local_target`]): the
    /// second target of `gateway probe`. Resolved after the configured one, so the config
    /// file's warnings are not printed again.
    LocalLoopback,
}

/// [`resolve`] with another environment (`gateway probe --port` stands for
/// `CLAWGATE_GATEWAY_PORT`), of the configured gateway or this machine's.
pub fn resolve_with_env(
    args: &ConnArgs,
    env: &dyn Fn(&str) -> Option<String>,
    which: Which,
) -> Result<Target, Failure> {
    let location = config::locate_config(args.config.as_deref(), None, env);
    let loaded = config::load_config(&location, env).map_err(|e| Failure::config(e.to_string()))?;
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
    .map_err(|e| Failure::config(e.to_string()))?;
    let config_warnings = loaded
        .iter()
        .filter(|_| which == Which::Configured)
        .flat_map(|l| &l.warnings);
    for w in target.warnings.iter().chain(config_warnings) {
        eprintln!("warning: {w}");
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
        let state = open_tunnel(ssh, &state_dir, args)?;
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
            return Err(plaintext_failure(
                &url,
                &r.host,
                &r.reason,
                &target.source,
                config_path.as_deref(),
                break_glass.is_some(),
            ));
        }
    }
    // This machine's own TLS gateway: pin the certificate its config names.
    let tls_fingerprint = target.tls_fingerprint.or_else(|| {
        (target.source == TargetSource::Local && url.starts_with("wss://"))
            .then(|| local_tls_fingerprint(config_path.as_deref()))
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

/// A plaintext `ws://` URL to a host that is not loopback or private: OpenClaw's SECURITY
/// ERROR, with the fixes clawgate offers. Exit 2 (a configuration problem: nothing was
/// sent).
pub fn plaintext_failure(
    url: &str,
    host: &str,
    reason: &str,
    source: &TargetSource,
    config: Option<&std::path::Path>,
    break_glass: bool,
) -> Failure {
    let source_text = match source {
        TargetSource::Flag => "--url".to_owned(),
        TargetSource::Env(var) => format!("env {var}"),
        TargetSource::RemoteConfig => "config gateway.remote.url".to_owned(),
        TargetSource::Local => "local gateway".to_owned(),
    };
    let mut message = format!(
        "SECURITY ERROR: Gateway URL \"{url}\" uses plaintext ws:// to a non-loopback address ({reason}).\nBoth credentials and chat data would be exposed to network interception.\nSource: {source_text}"
    );
    if let Some(p) = config {
        message.push_str(&format!("\nConfig: {}", p.display()));
    }
    let mut fixes = vec![
        "Fix: use wss:// for remote gateway URLs (a self-signed gateway certificate is pinned with --tls-fingerprint or gateway.remote.tlsFingerprint)".to_owned(),
        format!(
            "or keep gateway.bind=loopback on the gateway host and go through SSH: `clawgate tunnel up <user>@{host}` then use ws://127.0.0.1:18789, or set gateway.remote.transport to \"ssh\" and gateway.remote.sshTarget to \"<user>@{host}\" so every command opens the tunnel itself"
        ),
        "or use Tailscale Serve for HTTPS remote access".to_owned(),
    ];
    fixes.push(if break_glass {
        "CLAWGATE_ALLOW_INSECURE_PRIVATE_WS is set, but it only admits host names whose every address is private (RFC 1918, 100.64.0.0/10, link-local, IPv6 ULA); it never admits a public address".to_owned()
    } else {
        "Break-glass (trusted private networks only): CLAWGATE_ALLOW_INSECURE_PRIVATE_WS=1 (or OPENCLAW_ALLOW_INSECURE_PRIVATE_WS=1) admits a host name whose every address is private; private IP literals, localhost, *.local and *.ts.net need nothing".to_owned()
    });
    Failure {
        exit: EXIT_USAGE,
        json: json!({"type": "security_error", "kind": "plaintext_ws", "message": message,
            "url": url, "host": host, "reason": reason, "source": source_text}),
        message,
        fixes,
    }
}

/// `ws://127.0.0.1:<old>/path` with another port.
fn with_port(url: &str, port: u16) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    format!("{scheme}://127.0.0.1:{port}{path}")
}

/// Opens (or reuses) the SSH tunnel of `gateway.remote.transport: "ssh"`, with a spinner on
/// a terminal while it comes up.
fn open_tunnel(
    ssh: &config::SshTunnelTarget,
    state_dir: &std::path::Path,
    args: &ConnArgs,
) -> Result<TunnelState, Failure> {
    let spec = TunnelSpec {
        target: ssh.target.clone(),
        ssh_port: None,
        identity: ssh.identity.clone(),
        remote_port: ssh.remote_port,
        local_port: None,
        known_hosts: std::env::var_os(crate::managed_tunnel::KNOWN_HOSTS_ENV).map(PathBuf::from),
        host_key_policy: match ssh.host_key_policy {
            config::SshHostKeyPolicy::Openssh => HostKeyPolicy::Openssh,
            config::SshHostKeyPolicy::Strict => HostKeyPolicy::Strict,
        },
        profile: ArgvProfile::Managed,
    };
    let progress = crate::term::Progress::new(args.json);
    let budget = Duration::from_millis(args.timeout.max(1)).max(DEFAULT_READY_TIMEOUT);
    let result =
        crate::managed_tunnel::ensure(&spec, Some(ssh.local_port), state_dir, &progress, budget);
    progress.clear();
    result.map(|e| e.state).map_err(|e| {
        let mut f = crate::managed_tunnel::failure(&e);
        f.message = format!(
            "cannot open the SSH tunnel to the gateway (gateway.remote.transport \"ssh\"): {}",
            f.message
        );
        f
    })
}
