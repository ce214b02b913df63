//! A tunnel for one command, OpenClaw's `startSshPortForward` (`gateway probe --ssh`): the
//! target goes through `ssh -G` (aliases, `HostName`, `User`, `Port`, the first identity
//! file) and is checked again; the local port is the remote one when it is free here, else
//! any; ssh runs OpenClaw's option set ([`ArgvProfile::Probe`]); the forward is polled for
//! max(250, min(1500, budget)) ms. Not supervised: it ends with [`OneShotTunnel::stop`].

use super::{
    ArgvProfile, HostKeyPolicy, SshProcess, SshTarget, TunnelError, TunnelErrorKind, TunnelSpec,
    WaitDisplay, pick_local_port, ssh_config,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a one-shot tunnel is to reach.
pub struct OneShotSpec<'a> {
    /// `[user@]host[:port]`.
    pub target: &'a str,
    /// Where the target came from, for the message when it is not valid.
    pub source: &'a str,
    pub identity: Option<&'a Path>,
    /// The gateway's port on the SSH host.
    pub remote_port: u16,
    /// A known_hosts file instead of the user's.
    pub known_hosts: Option<PathBuf>,
}

/// A one-shot tunnel that is up.
pub struct OneShotTunnel {
    process: SshProcess,
    /// `user@host:port` as dialled (after `ssh -G`).
    pub target: String,
    pub local_port: u16,
    pub remote_port: u16,
}

impl OneShotTunnel {
    /// Resolves the target, starts ssh and waits until the forward listens, within `budget`.
    pub async fn open(
        want: &OneShotSpec<'_>,
        budget: Duration,
        display: &dyn WaitDisplay,
    ) -> Result<OneShotTunnel, TunnelError> {
        let invalid = |e: String| {
            TunnelError::new(
                TunnelErrorKind::InvalidSpec,
                format!("{e} (from {})", want.source),
            )
        };
        let given = SshTarget::parse(want.target).map_err(invalid)?;
        let lookup = budget.clamp(Duration::from_millis(200), Duration::from_millis(800));
        let (target, identity) = match ssh_config(&given, want.identity, lookup).await {
            Some(c) => (
                // What the user's OpenSSH configuration printed is checked like input.
                SshTarget::parse(&c.target(&given).to_string()).map_err(invalid)?,
                want.identity
                    .map(Path::to_path_buf)
                    .or_else(|| c.identity_files.first().map(PathBuf::from)),
            ),
            None => (given, want.identity.map(Path::to_path_buf)),
        };
        let spec = TunnelSpec {
            ssh_port: Some(target.port.unwrap_or(22)),
            target: target.to_string(),
            identity,
            remote_port: want.remote_port,
            local_port: None,
            known_hosts: want.known_hosts.clone(),
            host_key_policy: HostKeyPolicy::Strict,
            profile: ArgvProfile::Probe,
        };
        let local_port = pick_local_port(Some(spec.remote_port)).map_err(|e| {
            TunnelError::new(
                TunnelErrorKind::LocalPortBusy,
                format!("cannot find a free local port: {e}"),
            )
        })?;
        display.begin(format!(
            "Opening an SSH tunnel to {} for the probe (127.0.0.1:{local_port} → port {} there)",
            spec.describe(),
            spec.remote_port
        ));
        let ready = budget.clamp(Duration::from_millis(250), Duration::from_millis(1500));
        let process = SshProcess::start(&spec, local_port, ready).await?;
        Ok(OneShotTunnel {
            process,
            target: spec.describe(),
            local_port,
            remote_port: spec.remote_port,
        })
    }

    /// ssh's process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// SIGTERM, SIGKILL after 1.5 s.
    pub async fn stop(mut self) {
        self.process.stop().await;
    }
}
