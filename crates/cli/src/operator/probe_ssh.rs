//! `gateway probe --ssh`'s flags, and `--ssh-auto`: with no target named, the target is the
//! first gateway Bonjour finds, as `$USER@<host>[:<sshPort>]`. The tunnel itself, what it is
//! planned from and how it shows in the report are [`clawgate_client::probe_tunnel`]'s.

use super::bonjour::ProbeDiscovery;
use super::conn::ConnArgs;
use clawgate_client::probe_tunnel::{Plan, plan_found};
use clawgate_client::tunnel::SshTarget;
use clawgate_config::{self as config, ProbeSshFlags, Secret};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// Where an `--ssh-auto` target came from, in reports.
const DISCOVERED: &str = "Bonjour discovery (--ssh-auto)";

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
    match plan_found(flags, config, target, DISCOVERED) {
        Ok(Some(plan)) => Ok(plan),
        Ok(None) => Err(unavailable("--ssh-auto: no SSH target".into())),
        Err(f) => Err(unavailable(f.message)),
    }
}
