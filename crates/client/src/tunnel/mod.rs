//! Managed SSH tunnels to a gateway on another host.
//!
//! The system OpenSSH client forwards a port on this machine's loopback interface to the
//! gateway's port on the SSH host:
//!
//! ```text
//! ssh -N -L 127.0.0.1:<local>:127.0.0.1:<remote> -p <sshPort>
//!     -o ExitOnForwardFailure=yes -o BatchMode=yes -o StrictHostKeyChecking=yes
//!     -o ConnectTimeout=5 -o ServerAliveInterval=15 -o ServerAliveCountMax=3
//!     -o ControlMaster=no -o ControlPath=none -o ForkAfterAuthentication=no
//!     [-i <identity> -o IdentitiesOnly=yes] [-o UserKnownHostsFile=<file>] -- [user@]host
//! ```
//!
//! so the gateway sees a loopback client and nothing crosses the network in the clear.
//! A one-shot tunnel (`gateway probe --ssh`, [`ArgvProfile::Probe`]) runs OpenClaw's own
//! option set instead (`UpdateHostKeys=yes`, no connection-sharing options) and is opened
//! with [`OneShotTunnel::open`] after its target went through `ssh -G` ([`ssh_config`]).
//! [`supervise`] keeps that process running (restarts with jittered backoff),
//! [`TunnelRegistry`] records running tunnels under the CLI's state dir so every command
//! can find and reuse them, [`ensure`] opens one through a supervisor process
//! ([`ManagedTunnel`]) or reuses the one running, and [`stop`] ends one. Failures that need
//! a person — authentication refused, an unknown or changed host key, a local port in use —
//! are told apart from ssh's stderr
//! ([`TunnelErrorKind`]), each with its fix.

mod error;
mod managed;
mod one_shot;
mod process;
mod ssh_config;
mod state;
mod supervisor;

pub use error::{TunnelError, TunnelErrorKind, classify_ssh_failure};
pub use managed::{
    Ensured, KNOWN_HOSTS_ENV, ManagedTunnel, WaitDisplay, ensure, ensure_supervised, log_line,
    running, stop,
};
pub use one_shot::{OneShotSpec, OneShotTunnel};
pub use process::{
    SshProcess, detach_session, find_ssh, local_port_free, pick_local_port, process_alive,
    stop_process,
};
pub use ssh_config::{SshConfig, ssh_config};
pub use state::{TunnelRegistry, TunnelState, TunnelStatus};
pub use supervisor::{SupervisorEvent, supervise};

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The gateway's default port, also the default remote port of a tunnel.
pub const DEFAULT_REMOTE_PORT: u16 = 18789;

/// How long the first connection of a tunnel may take (SSH connect and authentication).
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(20);

/// How the SSH host's key is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostKeyPolicy {
    /// `StrictHostKeyChecking=yes`: the host must already be in known_hosts.
    #[default]
    Strict,
    /// Leave it to the user's OpenSSH configuration (e.g. `accept-new`).
    Openssh,
}

impl From<clawgate_config::SshHostKeyPolicy> for HostKeyPolicy {
    fn from(p: clawgate_config::SshHostKeyPolicy) -> Self {
        match p {
            clawgate_config::SshHostKeyPolicy::Strict => HostKeyPolicy::Strict,
            clawgate_config::SshHostKeyPolicy::Openssh => HostKeyPolicy::Openssh,
        }
    }
}

impl HostKeyPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            HostKeyPolicy::Strict => "strict",
            HostKeyPolicy::Openssh => "openssh",
        }
    }
}

/// Which option set ssh gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArgvProfile {
    /// A tunnel kept up by a supervisor: one process we can watch and stop (no connection
    /// sharing, no forking), only the given identity offered.
    #[default]
    Managed,
    /// OpenClaw's `startSshPortForward` (`gateway probe --ssh`), option for option: adds
    /// `UpdateHostKeys=yes` and leaves the rest to the user's OpenSSH configuration.
    Probe,
}

/// `[user@]host[:port]` (IPv6 hosts in brackets when a port follows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

impl SshTarget {
    /// Parses and validates a target: no whitespace or control characters, no leading `-`
    /// (it would be read as an ssh option), a non-empty host, a port in 1–65535.
    pub fn parse(text: &str) -> Result<SshTarget, String> {
        let t = text.trim();
        let bad = |why: &str| {
            Err(format!(
                "invalid SSH target {}: {why} (expected [user@]host[:port], e.g. me@gateway-host or me@gateway-host:2222)",
                serde_json::Value::String(text.to_owned())
            ))
        };
        if t.is_empty() {
            return bad("it is empty");
        }
        if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return bad("it contains whitespace or control characters");
        }
        if t.starts_with('-') {
            return bad("it starts with '-'");
        }
        let (user, hostport) = match t.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, t),
        };
        if let Some(u) = user
            && (u.is_empty() || u.starts_with('-') || u.contains(['/', ':']))
        {
            return bad("the user name is not valid");
        }
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let Some((h, after)) = v6.split_once(']') else {
                return bad("a '[' without ']'");
            };
            match after {
                "" => (h, None),
                _ => match after.strip_prefix(':') {
                    Some(p) => (h, Some(p)),
                    None => return bad("unexpected text after ']'"),
                },
            }
        } else if hostport.matches(':').count() > 1 {
            // A bare IPv6 address: no port.
            (hostport, None)
        } else {
            match hostport.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return bad("the host is empty");
        }
        if host.starts_with('-') || host.contains(['/', '@', '[', ']']) {
            return bad("the host is not valid");
        }
        let port = match port {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => Some(n),
                _ => return bad("the port must be a number from 1 to 65535"),
            },
        };
        Ok(SshTarget {
            user: user.map(str::to_owned),
            host: host.to_owned(),
            port,
        })
    }

    /// What ssh gets as its destination: `user@host` or `host`.
    pub fn destination(&self) -> String {
        match &self.user {
            Some(u) => format!("{u}@{}", self.host),
            None => self.host.clone(),
        }
    }
}

impl fmt::Display for SshTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        match (self.port, self.host.contains(':')) {
            (Some(p), true) => write!(f, "[{}]:{p}", self.host),
            (Some(p), false) => write!(f, "{}:{p}", self.host),
            (None, _) => f.write_str(&self.host),
        }
    }
}

/// What `tunnel up` was given on its command line ([`TunnelSpec::from_flags`]).
#[derive(Debug, Clone, Default)]
pub struct TunnelFlags {
    pub target: Option<String>,
    pub ssh_port: Option<u16>,
    pub identity: Option<PathBuf>,
    pub remote_port: Option<u16>,
    pub local_port: Option<u16>,
    pub known_hosts: Option<PathBuf>,
    pub host_key_policy: Option<HostKeyPolicy>,
}

/// Everything that defines one tunnel. Two specs with the same [`TunnelSpec::key`] are the
/// same tunnel (one SSH host and port, one remote port).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TunnelSpec {
    /// `[user@]host[:port]` as given (validated by [`SshTarget::parse`]).
    pub target: String,
    /// `--ssh-port`; wins over a port in `target`. Unset: ssh's own default (22 or
    /// `~/.ssh/config`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_port: Option<u16>,
    /// Private key for `ssh -i` (then only that key is offered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<PathBuf>,
    /// The gateway's port on the SSH host.
    pub remote_port: u16,
    /// The local port asked for; unset: the remote port if free here, else any free port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_port: Option<u16>,
    /// A known_hosts file to use instead of the user's (and no global one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_hosts: Option<PathBuf>,
    #[serde(default)]
    pub host_key_policy: HostKeyPolicy,
    #[serde(default, skip_serializing_if = "is_managed")]
    pub profile: ArgvProfile,
}

fn is_managed(p: &ArgvProfile) -> bool {
    *p == ArgvProfile::Managed
}

impl TunnelSpec {
    /// A spec with defaults: remote port 18789, local port chosen, strict host keys.
    pub fn new(target: impl Into<String>) -> Self {
        TunnelSpec {
            target: target.into(),
            ssh_port: None,
            identity: None,
            remote_port: DEFAULT_REMOTE_PORT,
            local_port: None,
            known_hosts: None,
            host_key_policy: HostKeyPolicy::Strict,
            profile: ArgvProfile::Managed,
        }
    }

    /// The managed tunnel of `gateway.remote.transport: "ssh"` (the local port is chosen when
    /// it opens; `ssh.local_port` is the one to prefer), checked against the known_hosts file
    /// of [`KNOWN_HOSTS_ENV`] when set.
    pub fn of_remote_transport(ssh: &clawgate_config::SshTunnelTarget) -> Self {
        TunnelSpec {
            target: ssh.target.clone(),
            ssh_port: None,
            identity: ssh.identity.clone(),
            remote_port: ssh.remote_port,
            local_port: None,
            known_hosts: std::env::var_os(KNOWN_HOSTS_ENV).map(PathBuf::from),
            host_key_policy: ssh.host_key_policy.into(),
            profile: ArgvProfile::Managed,
        }
    }

    /// `tunnel up`'s tunnel: each of `flags` where given, else `gateway.remote.*` (target,
    /// identity, remote port, host key policy); `None` when neither names a target.
    pub fn from_flags(flags: TunnelFlags, remote: &clawgate_config::RemoteConfig) -> Option<Self> {
        Some(TunnelSpec {
            target: flags.target.or_else(|| remote.ssh_target.clone())?,
            ssh_port: flags.ssh_port,
            identity: flags.identity.or_else(|| remote.ssh_identity.clone()),
            remote_port: flags
                .remote_port
                .or(remote.remote_port)
                .unwrap_or(DEFAULT_REMOTE_PORT),
            local_port: flags.local_port,
            known_hosts: flags.known_hosts,
            host_key_policy: flags
                .host_key_policy
                .or(remote.ssh_host_key_policy.map(HostKeyPolicy::from))
                .unwrap_or_default(),
            profile: ArgvProfile::Managed,
        })
    }

    /// The parsed target (`Err` names what is wrong with it).
    pub fn parsed_target(&self) -> Result<SshTarget, String> {
        SshTarget::parse(&self.target)
    }

    /// The SSH port in effect, if one was given.
    pub fn effective_ssh_port(&self) -> Option<u16> {
        self.ssh_port
            .or_else(|| self.parsed_target().ok().and_then(|t| t.port))
    }

    /// `user@host` plus `:port` when one is set, for messages.
    pub fn describe(&self) -> String {
        match self.parsed_target() {
            Ok(mut t) => {
                t.port = self.effective_ssh_port();
                t.to_string()
            }
            Err(_) => self.target.clone(),
        }
    }

    /// A file-name-safe identity of the tunnel: destination, SSH port, remote port.
    pub fn key(&self) -> String {
        let dest = self
            .parsed_target()
            .map(|t| t.destination())
            .unwrap_or_else(|_| self.target.clone());
        let port = self
            .effective_ssh_port()
            .map_or_else(|| "default".to_owned(), |p| p.to_string());
        let raw = format!("{dest}_{port}_{}", self.remote_port);
        raw.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@') {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    }

    /// ssh's arguments (without the program) for a tunnel listening on `local_port`.
    pub fn ssh_args(&self, local_port: u16) -> Result<Vec<String>, String> {
        let target = self.parsed_target()?;
        let mut args: Vec<String> = vec![
            "-N".into(),
            "-L".into(),
            format!("127.0.0.1:{local_port}:127.0.0.1:{}", self.remote_port),
        ];
        if let Some(p) = self.effective_ssh_port() {
            args.extend(["-p".into(), p.to_string()]);
        }
        let managed = self.profile == ArgvProfile::Managed;
        let mut opt = |o: &str| args.extend(["-o".into(), o.to_owned()]);
        opt("ExitOnForwardFailure=yes");
        opt("BatchMode=yes");
        if self.host_key_policy == HostKeyPolicy::Strict {
            opt("StrictHostKeyChecking=yes");
        }
        if !managed {
            opt("UpdateHostKeys=yes");
        }
        opt("ConnectTimeout=5");
        opt("ServerAliveInterval=15");
        opt("ServerAliveCountMax=3");
        if managed {
            // One process per tunnel that we can supervise and stop: no multiplexing, no
            // forking into the background, no forwardings cleared by the user's config.
            opt("ControlMaster=no");
            opt("ControlPath=none");
            opt("ForkAfterAuthentication=no");
            opt("ClearAllForwardings=no");
            opt("PermitLocalCommand=no");
        }
        if let Some(file) = &self.known_hosts {
            opt(&format!("UserKnownHostsFile={}", file.display()));
            opt("GlobalKnownHostsFile=none");
        }
        if let Some(identity) = &self.identity {
            if managed {
                opt("IdentitiesOnly=yes");
            }
            args.extend(["-i".into(), identity.display().to_string()]);
        }
        args.push("--".into());
        args.push(target.destination());
        Ok(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flag wins over `gateway.remote.*`, which fills in what the flags leave out.
    #[test]
    fn tunnel_up_flags_fall_back_to_the_remote_config() {
        let remote = clawgate_config::RemoteConfig {
            ssh_target: Some("me@gw".into()),
            ssh_identity: Some("/k".into()),
            remote_port: Some(19000),
            ssh_host_key_policy: Some(clawgate_config::SshHostKeyPolicy::Openssh),
            ..Default::default()
        };
        let spec = TunnelSpec::from_flags(TunnelFlags::default(), &remote).unwrap();
        assert_eq!(spec.target, "me@gw");
        assert_eq!(spec.identity.as_deref(), Some(std::path::Path::new("/k")));
        assert_eq!(spec.remote_port, 19000);
        assert_eq!(spec.host_key_policy, HostKeyPolicy::Openssh);
        let flags = TunnelFlags {
            target: Some("you@other".into()),
            remote_port: Some(18800),
            host_key_policy: Some(HostKeyPolicy::Strict),
            ..Default::default()
        };
        let spec = TunnelSpec::from_flags(flags, &remote).unwrap();
        assert_eq!(
            (spec.target.as_str(), spec.remote_port, spec.host_key_policy),
            ("you@other", 18800, HostKeyPolicy::Strict)
        );
        let none = clawgate_config::RemoteConfig::default();
        assert!(TunnelSpec::from_flags(TunnelFlags::default(), &none).is_none());
        let defaults = TunnelSpec::from_flags(
            TunnelFlags {
                target: Some("h".into()),
                ..Default::default()
            },
            &none,
        )
        .unwrap();
        assert_eq!(defaults.remote_port, DEFAULT_REMOTE_PORT);
        assert_eq!(defaults.host_key_policy, HostKeyPolicy::Strict);
    }

    #[test]
    fn targets() {
        let t = SshTarget::parse("me@gw.example:2222").unwrap();
        assert_eq!(
            (t.user.as_deref(), t.host.as_str(), t.port),
            (Some("me"), "gw.example", Some(2222))
        );
        assert_eq!(t.destination(), "me@gw.example");
        assert_eq!(t.to_string(), "me@gw.example:2222");
        let t = SshTarget::parse("gw").unwrap();
        assert_eq!((t.user, t.host.as_str(), t.port), (None, "gw", None));
        let t = SshTarget::parse("root@[::1]:22").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", Some(22)));
        assert_eq!(t.to_string(), "root@[::1]:22");
        let t = SshTarget::parse("fe80::1").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("fe80::1", None));
        for bad in [
            "",
            "-oProxyCommand=x",
            "me@-oX",
            "me@host:0",
            "me@host:99999",
            "me@host x",
            "me@",
            "@host",
            "me@[::1",
            "a\nb",
        ] {
            assert!(SshTarget::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn argv() {
        let mut spec = TunnelSpec::new("me@gw.example:2200");
        spec.remote_port = 18789;
        spec.identity = Some("/k/id".into());
        spec.known_hosts = Some("/k/known".into());
        let args = spec.ssh_args(40000).unwrap();
        let text = args.join(" ");
        assert!(
            text.starts_with("-N -L 127.0.0.1:40000:127.0.0.1:18789 -p 2200 "),
            "{text}"
        );
        for o in [
            "-o ExitOnForwardFailure=yes",
            "-o BatchMode=yes",
            "-o StrictHostKeyChecking=yes",
            "-o ServerAliveInterval=15",
            "-o ControlMaster=no",
            "-o UserKnownHostsFile=/k/known",
            "-o IdentitiesOnly=yes -i /k/id",
        ] {
            assert!(text.contains(o), "{o} in {text}");
        }
        assert!(text.ends_with("-- me@gw.example"), "{text}");
        spec.ssh_port = Some(2222);
        spec.host_key_policy = HostKeyPolicy::Openssh;
        let text = spec.ssh_args(1).unwrap().join(" ");
        assert!(text.contains("-p 2222"), "{text}");
        assert!(!text.contains("StrictHostKeyChecking"), "{text}");
        assert_eq!(spec.key(), "me@gw.example_2222_18789");
        assert_eq!(spec.describe(), "me@gw.example:2222");
    }

    #[test]
    fn probe_argv_is_openclaws() {
        let mut spec = TunnelSpec::new("me@gw.example");
        spec.ssh_port = Some(22);
        spec.remote_port = 18789;
        spec.identity = Some("/k/id".into());
        spec.profile = ArgvProfile::Probe;
        assert_eq!(
            spec.ssh_args(18789).unwrap().join(" "),
            "-N -L 127.0.0.1:18789:127.0.0.1:18789 -p 22 -o ExitOnForwardFailure=yes \
             -o BatchMode=yes -o StrictHostKeyChecking=yes -o UpdateHostKeys=yes \
             -o ConnectTimeout=5 -o ServerAliveInterval=15 -o ServerAliveCountMax=3 \
             -i /k/id -- me@gw.example"
        );
        // A private known_hosts (CLAWGATE_SSH_KNOWN_HOSTS) is the one addition.
        spec.identity = None;
        spec.known_hosts = Some("/k/known".into());
        let text = spec.ssh_args(1).unwrap().join(" ");
        assert!(
            text.ends_with(
                "-o ServerAliveCountMax=3 -o UserKnownHostsFile=/k/known \
                 -o GlobalKnownHostsFile=none -- me@gw.example"
            ),
            "{text}"
        );
        // The state file of a managed tunnel does not change.
        let managed = serde_json::to_value(TunnelSpec::new("gw")).unwrap();
        assert!(managed.get("profile").is_none(), "{managed}");
    }
}
