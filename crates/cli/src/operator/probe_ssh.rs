//! `gateway probe --ssh`: OpenClaw's one-shot SSH tunnel to a remote gateway
//! ([`OneShotTunnel`]), open for the time of the probe and stopped (SIGTERM, SIGKILL after
//! 1.5 s) when the probe is done. A tunnel that does not come up is an `ssh_tunnel_failed` warning with
//! ssh's own words, and the direct probe goes on. With `--ssh-auto` and no target named,
//! the target is the first gateway Bonjour finds, as `$USER@<host>[:<sshPort>]`.

use super::bonjour::ProbeDiscovery;
use super::conn::ConnArgs;
use super::target::{CredentialOrigin, ProbeTunnel, Target};
use crate::output::Failure;
use crate::term::Progress;
use clawgate_client::tunnel::KNOWN_HOSTS_ENV;
use clawgate_client::tunnel::{OneShotSpec, OneShotTunnel, SshTarget, TunnelError};
use clawgate_config::{self as config, ProbeSshFlags, ProbeSshOrigin, ProbeSshTarget, Secret};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where an `--ssh-auto` target came from, in reports.
const DISCOVERED: &str = "Bonjour discovery (--ssh-auto)";

/// The tunnel to open: what the flags and the config ask for.
pub struct Plan {
    pub ssh: ProbeSshTarget,
    /// Where the target came from (`--ssh`, a config key, Bonjour discovery).
    source: String,
    config_path: Option<PathBuf>,
    state_dir: PathBuf,
}

fn config_error(e: config::ConfigError) -> Failure {
    Failure::config(e.to_string())
}

/// The flags of `gateway probe` that decide its SSH tunnel: `--ssh`, `--ssh-identity`,
/// `--port` and the connection flags.
pub fn flags(
    conn: &ConnArgs,
    ssh: Option<String>,
    identity: Option<PathBuf>,
    port: Option<u16>,
) -> ProbeSshFlags {
    ProbeSshFlags {
        ssh,
        identity,
        port,
        url: conn.url.is_some(),
        token: conn.token.clone().map(Secret::new),
        password: conn.password.clone().map(Secret::new),
    }
}

/// The probe's SSH tunnel, if any; a `--ssh` value that cannot be an SSH target is a usage
/// error (one from the config is reported as a failed tunnel instead, as OpenClaw does).
/// `config` is `--config`.
pub fn plan(flags: &ProbeSshFlags, config: Option<&Path>) -> Result<Option<Plan>, Failure> {
    resolve(flags, config, None)
}

/// [`plan`]; `found_by` names where a target that did not come from the command line was
/// found.
fn resolve(
    flags: &ProbeSshFlags,
    config: Option<&Path>,
    found_by: Option<&str>,
) -> Result<Option<Plan>, Failure> {
    let env = config::process_env;
    let location = config::locate_config(config, None, &env);
    let loaded = config::load_config(&location, &env).map_err(config_error)?;
    let Some(ssh) =
        config::resolve_probe_ssh(flags, loaded.as_ref(), &env).map_err(config_error)?
    else {
        return Ok(None);
    };
    if ssh.origin == ProbeSshOrigin::Flag
        && found_by.is_none()
        && let Err(e) = SshTarget::parse(&ssh.target)
    {
        return Err(Failure::usage(
            format!("--ssh: {e}"),
            vec!["pass the gateway host as --ssh user@host or --ssh user@host:port".into()],
        ));
    }
    Ok(Some(Plan {
        source: found_by.map_or_else(|| ssh.origin.to_string(), str::to_owned),
        ssh,
        config_path: loaded.map(|l| l.path),
        state_dir: config::resolve_state_dir(None, &env),
    }))
}

/// `--ssh-auto` with nothing else naming a target: OpenClaw's pick, the first gateway
/// the probe's Bonjour browse found whose `$USER@<host>[:<sshPort>]` is a valid SSH target.
/// Finding none is a warning (the direct probe goes on), as is a browse that cannot start.
pub fn discovered(
    flags: &ProbeSshFlags,
    config: Option<&Path>,
    discovery: &ProbeDiscovery,
) -> Result<Plan, Value> {
    let unavailable = |message: String| json!({"code": "ssh_auto_unavailable", "message": message});
    let found = discovery
        .found
        .as_ref()
        .map_err(|e| unavailable(e.clone()))?;
    let user = config::process_env("USER").unwrap_or_default();
    let Some(target) = found
        .iter()
        .filter_map(|b| b.ssh_target(user.trim()))
        .find(|t| SshTarget::parse(t).is_ok())
    else {
        return Err(unavailable(format!(
            "--ssh-auto: Bonjour discovery found no gateway to tunnel to in {} ms ({} found; mDNS does not cross networks); pass --ssh user@host or set gateway.remote.sshTarget",
            discovery.timeout_ms,
            found.len()
        )));
    };
    let flags = ProbeSshFlags {
        ssh: Some(target),
        ..flags.clone()
    };
    match resolve(&flags, config, Some(DISCOVERED)) {
        Ok(Some(plan)) => Ok(plan),
        Ok(None) => Err(unavailable("--ssh-auto: no SSH target".into())),
        Err(f) => Err(unavailable(f.message)),
    }
}

/// OpenClaw's `ssh_tunnel_failed` warning: the reason, then ssh's stderr, line by line.
pub fn failed_warning(e: &TunnelError, plan: &Plan) -> Value {
    let mut message = format!("SSH tunnel failed: {}", e.message);
    for line in e.stderr.lines().map(str::trim).filter(|l| !l.is_empty()) {
        message.push('\n');
        message.push_str(line);
    }
    json!({"code": "ssh_tunnel_failed", "message": message, "kind": e.kind.as_str(),
        "target": plan.ssh.target, "targetSource": plan.source,
        "fixes": e.fixes, "stderr": e.stderr})
}

/// A tunnel that is up.
pub struct Opened {
    tunnel: OneShotTunnel,
    pub info: ProbeTunnel,
}

/// Opens the probe's tunnel ([`OneShotTunnel::open`]) within `budget` (the probe's
/// `--timeout`).
pub async fn open(
    plan: &Plan,
    budget: Duration,
    progress: &Progress,
) -> Result<Opened, TunnelError> {
    let want = OneShotSpec {
        target: &plan.ssh.target,
        source: &plan.source,
        identity: plan.ssh.identity.as_deref(),
        remote_port: plan.ssh.remote_port,
        known_hosts: std::env::var_os(KNOWN_HOSTS_ENV).map(PathBuf::from),
    };
    let tunnel = OneShotTunnel::open(&want, budget, progress).await?;
    Ok(Opened {
        info: ProbeTunnel {
            target: tunnel.target.clone(),
            local_port: tunnel.local_port,
            remote_port: tunnel.remote_port,
            pid: tunnel.pid(),
        },
        tunnel,
    })
}

impl Opened {
    /// Where the probe through the tunnel connects, with the credentials of the remote
    /// gateway (OpenClaw's "remote" surface).
    pub fn target(&self, plan: &Plan) -> Target {
        let token = plan.ssh.token.as_ref().map(|s| s.expose().to_owned());
        let password = plan.ssh.password.as_ref().map(|s| s.expose().to_owned());
        Target {
            url: format!("ws://127.0.0.1:{}", self.info.local_port),
            credential: if token.is_some() || password.is_some() {
                CredentialOrigin::Resolved
            } else {
                CredentialOrigin::None
            },
            token,
            password,
            tls_fingerprint: None,
            source: config::TargetSource::RemoteConfig,
            config_path: plan.config_path.clone(),
            state_dir: plan.state_dir.clone(),
            connect_to: None,
            tunnel: None,
            probe_tunnel: Some(self.info.clone()),
        }
    }

    /// SIGTERM, SIGKILL after 1.5 s.
    pub async fn stop(self) {
        self.tunnel.stop().await;
    }
}

/// `{kind: "ssh", target, localPort, remotePort, pid}`, as OpenClaw reports a tunnel.
pub fn tunnel_json(t: &ProbeTunnel) -> Value {
    json!({"kind": "ssh", "target": t.target, "localPort": t.local_port,
        "remotePort": t.remote_port, "pid": t.pid})
}
