//! `gateway probe --ssh`: OpenClaw's one-shot SSH tunnel to a remote gateway
//! ([`OneShotTunnel`]), open for the time of the probe and stopped (SIGTERM, SIGKILL after
//! 1.5 s) when the probe is done: which tunnel the flags and the config ask for ([`plan`]),
//! opening it, the target the probe then connects to ([`Opened::target`]), and how a tunnel
//! shows in the probe's report. A tunnel that does not come up is an `ssh_tunnel_failed`
//! warning with ssh's own words ([`failed_warning`]), and the direct probe goes on.

use crate::failure::Failure;
use crate::target::{CredentialOrigin, ProbeTunnel, Target};
use crate::tunnel::{
    KNOWN_HOSTS_ENV, OneShotSpec, OneShotTunnel, SshTarget, TunnelError, WaitDisplay,
};
use clawgate_config::{self as config, ProbeSshFlags, ProbeSshOrigin, ProbeSshTarget};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The tunnel to open: what the flags and the config ask for.
pub struct Plan {
    pub ssh: ProbeSshTarget,
    /// Where the target came from (`--ssh`, a config key, Bonjour discovery).
    pub source: String,
    pub config_path: Option<PathBuf>,
    pub state_dir: PathBuf,
}

fn config_error(e: config::ConfigError) -> Failure {
    Failure::config(e.to_string())
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

/// The plan for `target`, found by `found_by` (`--ssh-auto`'s Bonjour discovery) rather than
/// named on the command line: a target that cannot be an SSH target is then a failed tunnel,
/// not a usage error.
pub fn plan_found(
    flags: &ProbeSshFlags,
    config: Option<&Path>,
    target: String,
    found_by: &str,
) -> Result<Option<Plan>, Failure> {
    let flags = ProbeSshFlags {
        ssh: Some(target),
        ..flags.clone()
    };
    resolve(&flags, config, Some(found_by))
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
    display: &dyn WaitDisplay,
) -> Result<Opened, TunnelError> {
    let want = OneShotSpec {
        target: &plan.ssh.target,
        source: &plan.source,
        identity: plan.ssh.identity.as_deref(),
        remote_port: plan.ssh.remote_port,
        known_hosts: std::env::var_os(KNOWN_HOSTS_ENV).map(PathBuf::from),
    };
    let tunnel = OneShotTunnel::open(&want, budget, display).await?;
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
