//! What the commands that open a managed SSH tunnel share (`tunnel up`, `node run --ssh`,
//! every operator command with `gateway.remote.transport: "ssh"`): the supervisor is this
//! binary's hidden `tunnel supervise` under the same profile
//! ([`tunnel::ensure_supervised`]), and a tunnel error is a command failure with an exit
//! code by kind.

use crate::output::{EXIT_REJECTED, EXIT_UNREACHABLE, EXIT_USAGE, Failure};
use crate::term::Progress;
use clawgate_client::tunnel::{self, Ensured, TunnelError, TunnelErrorKind, TunnelSpec};
use serde_json::json;
use std::path::Path;
use std::time::Duration;

pub use tunnel::KNOWN_HOSTS_ENV;

/// Opens the tunnel for `spec` through a `clawgate tunnel supervise` process, or reuses the
/// one running ([`tunnel::ensure_supervised`]), showing the wait on `progress`.
pub fn ensure(
    spec: &TunnelSpec,
    preferred_local: Option<u16>,
    state_dir: &Path,
    progress: &Progress,
    timeout: Duration,
) -> Result<Ensured, TunnelError> {
    tunnel::ensure_supervised(spec, preferred_local, state_dir, progress, timeout)
}

/// A tunnel error as a command failure: exit code by kind, fixes, ssh's own words.
pub fn failure(e: &TunnelError) -> Failure {
    let exit = match e.kind {
        TunnelErrorKind::InvalidSpec
        | TunnelErrorKind::SshNotFound
        | TunnelErrorKind::LocalPortBusy => EXIT_USAGE,
        TunnelErrorKind::AuthFailed
        | TunnelErrorKind::HostKeyUnknown
        | TunnelErrorKind::HostKeyChanged => EXIT_REJECTED,
        TunnelErrorKind::DnsFailed
        | TunnelErrorKind::SshUnreachable
        | TunnelErrorKind::Timeout
        | TunnelErrorKind::Exited => EXIT_UNREACHABLE,
    };
    let mut fixes = e.fixes.clone();
    if !e.stderr.is_empty() {
        fixes.push("ssh said:".into());
        fixes.extend(
            e.stderr
                .lines()
                .filter(|l| !l.trim().is_empty())
                .take(20)
                .map(|l| format!("    {l}")),
        );
    }
    Failure {
        exit,
        message: e.message.clone(),
        fixes,
        json: json!({"type": "tunnel_error", "kind": e.kind.as_str(), "message": e.message,
            "fixes": e.fixes, "stderr": e.stderr}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_map_to_exit_codes() {
        let f = failure(&TunnelError::local_port_busy(5));
        assert_eq!(f.exit, EXIT_USAGE);
        assert_eq!(f.json["kind"], "local_port_busy");
        let mut e = TunnelError::new(TunnelErrorKind::AuthFailed, "no");
        e.stderr = "Permission denied (publickey).".into();
        let f = failure(&e);
        assert_eq!(f.exit, EXIT_REJECTED);
        assert!(f.fixes.iter().any(|l| l.contains("Permission denied")));
    }
}
