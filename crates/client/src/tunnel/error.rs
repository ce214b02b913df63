//! Why a tunnel did not come up, told apart from ssh's stderr, each with its fix.

use super::TunnelSpec;
use serde::{Deserialize, Serialize};
use std::fmt;

/// What went wrong, as a stable machine-readable kind (`kind` in JSON output).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TunnelErrorKind {
    /// No OpenSSH client in the system directories.
    SshNotFound,
    /// The target or options are not usable.
    InvalidSpec,
    /// The server refused every key offered (`Permission denied`).
    AuthFailed,
    /// The host's key is not in known_hosts and checking is strict.
    HostKeyUnknown,
    /// The host's key differs from the one recorded in known_hosts.
    HostKeyChanged,
    /// The local port the tunnel should listen on is taken.
    LocalPortBusy,
    /// The SSH host name does not resolve.
    DnsFailed,
    /// Nothing answered on the SSH port (refused, unreachable).
    SshUnreachable,
    /// Connecting or authenticating took too long.
    Timeout,
    /// ssh exited for another reason (its stderr is attached).
    #[serde(rename = "ssh_exited")]
    Exited,
}

impl TunnelErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TunnelErrorKind::SshNotFound => "ssh_not_found",
            TunnelErrorKind::InvalidSpec => "invalid_spec",
            TunnelErrorKind::AuthFailed => "auth_failed",
            TunnelErrorKind::HostKeyUnknown => "host_key_unknown",
            TunnelErrorKind::HostKeyChanged => "host_key_changed",
            TunnelErrorKind::LocalPortBusy => "local_port_busy",
            TunnelErrorKind::DnsFailed => "dns_failed",
            TunnelErrorKind::SshUnreachable => "ssh_unreachable",
            TunnelErrorKind::Timeout => "timeout",
            TunnelErrorKind::Exited => "ssh_exited",
        }
    }

    /// Whether retrying without a change by a person can help (the SSH host may come
    /// back; a refused key or a wrong host key will not fix itself).
    pub fn transient(self) -> bool {
        matches!(
            self,
            TunnelErrorKind::DnsFailed
                | TunnelErrorKind::SshUnreachable
                | TunnelErrorKind::Timeout
                | TunnelErrorKind::Exited
                | TunnelErrorKind::LocalPortBusy
        )
    }
}

impl fmt::Display for TunnelErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A tunnel failure: what happened, what to do, and what ssh said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelError {
    pub kind: TunnelErrorKind,
    pub message: String,
    /// Each a sentence or a command to run.
    pub fixes: Vec<String>,
    /// ssh's stderr (trimmed), when it said something.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stderr: String,
}

impl TunnelError {
    pub fn new(kind: TunnelErrorKind, message: impl Into<String>) -> Self {
        TunnelError {
            kind,
            message: message.into(),
            fixes: Vec::new(),
            stderr: String::new(),
        }
    }

    pub fn with_fix(mut self, fix: impl Into<String>) -> Self {
        self.fixes.push(fix.into());
        self
    }

    /// The local port is taken (found before ssh was started, or by ssh).
    pub fn local_port_busy(port: u16) -> Self {
        TunnelError::new(
            TunnelErrorKind::LocalPortBusy,
            format!("local port {port} on 127.0.0.1 is already in use, so the tunnel cannot listen there"),
        )
        .with_fix("pick another port with --local-port <port>, or leave --local-port out and clawgate picks a free one")
        .with_fix(format!("see what holds it: ss -ltnp 'sport = :{port}'"))
        .with_fix("if it is an older tunnel: `clawgate tunnel status`, then `clawgate tunnel down`")
    }
}

impl fmt::Display for TunnelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TunnelError {}

/// The last non-empty line of `text`.
fn last_line(text: &str) -> &str {
    text.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("")
}

/// The line containing `needle`, trimmed.
fn line_with<'a>(text: &'a str, needle: &str) -> Option<&'a str> {
    text.lines().map(str::trim).find(|l| l.contains(needle))
}

/// Turns a failed ssh run (its stderr, exit code) into a [`TunnelError`] for `spec`
/// listening on `local_port`.
pub fn classify_ssh_failure(
    stderr: &str,
    exit_code: Option<i32>,
    spec: &TunnelSpec,
    local_port: u16,
) -> TunnelError {
    let text = stderr.replace('\r', "");
    let lower = text.to_ascii_lowercase();
    let who = spec.describe();
    let host = spec
        .parsed_target()
        .map(|t| t.host)
        .unwrap_or_else(|_| spec.target.clone());
    let port_arg = spec
        .effective_ssh_port()
        .map(|p| format!("-p {p} "))
        .unwrap_or_default();
    let known_hosts_key = match spec.effective_ssh_port() {
        Some(p) if p != 22 => format!("[{host}]:{p}"),
        _ => host.clone(),
    };
    let known_hosts_file = spec.known_hosts.as_ref().map_or_else(
        || "~/.ssh/known_hosts".to_owned(),
        |p| p.display().to_string(),
    );

    let mut e = if lower.contains("remote host identification has changed")
        || lower.contains("host key for") && lower.contains("has changed")
    {
        let mut e = TunnelError::new(
            TunnelErrorKind::HostKeyChanged,
            format!(
                "the SSH host key of {known_hosts_key} has CHANGED since it was recorded in known_hosts: the host was reinstalled or re-keyed, or someone is intercepting the connection"
            ),
        )
        .with_fix(format!(
            "check the new key with the host's administrator (on the host: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub); ssh saw {}",
            line_with(&text, "SHA256:").unwrap_or("a different key")
        ));
        let remove = text
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("ssh-keygen") && l.contains("-R"))
            .map(str::to_owned)
            .unwrap_or_else(|| format!("ssh-keygen -f {known_hosts_file} -R '{known_hosts_key}'"));
        e = e.with_fix(format!(
            "only if the change is expected, drop the old key and record the new one: {remove}; then ssh-keyscan {port_arg}{host} >> {known_hosts_file}"
        ));
        e
    } else if lower.contains("host key verification failed")
        || lower.contains("no ") && lower.contains("host key is known for")
    {
        TunnelError::new(
            TunnelErrorKind::HostKeyUnknown,
            format!(
                "the SSH host key of {known_hosts_key} is not in {known_hosts_file}, and host keys are checked strictly"
            ),
        )
        .with_fix(format!(
            "compare the host's key fingerprint out of band (on the host: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then record it: ssh-keyscan {port_arg}{host} >> {known_hosts_file} (or connect once by hand: ssh {port_arg}{})",
            spec.parsed_target().map(|t| t.destination()).unwrap_or_else(|_| spec.target.clone())
        ))
        .with_fix("to let your OpenSSH configuration decide instead (e.g. StrictHostKeyChecking accept-new in ~/.ssh/config), pass --host-key-policy openssh or set gateway.remote.sshHostKeyPolicy to \"openssh\"")
    } else if lower.contains("permission denied")
        || lower.contains("too many authentication failures")
        || lower.contains("no more authentication methods")
    {
        let mut e = TunnelError::new(
            TunnelErrorKind::AuthFailed,
            format!(
                "SSH authentication to {who} failed: the server accepted none of the keys offered ({})",
                line_with(&text, "Permission denied")
                    .or_else(|| line_with(&text, "Too many authentication failures"))
                    .unwrap_or("permission denied")
            ),
        );
        e = match &spec.identity {
            Some(key) => e.with_fix(format!(
                "the key {} was refused: add {}.pub to ~/.ssh/authorized_keys of that user on {host} (e.g. ssh-copy-id -i {}.pub {port_arg}{})",
                key.display(),
                key.display(),
                key.display(),
                spec.parsed_target().map(|t| t.destination()).unwrap_or_default()
            )),
            None => e.with_fix(
                "name the private key that is authorized on the host with --identity <path> (config: gateway.remote.sshIdentity)",
            ),
        };
        e.with_fix("check the user name: the target is [user@]host; without a user, ssh uses your local user name")
            .with_fix("ssh runs with BatchMode=yes and never prompts: a passphrase-protected key must be loaded into ssh-agent (ssh-add <key>); passwords are not used")
    } else if lower.contains("address already in use")
        || lower.contains("cannot listen to port")
        || lower.contains("could not request local forwarding")
    {
        TunnelError::local_port_busy(local_port)
    } else if lower.contains("could not resolve hostname")
        || lower.contains("name or service not known")
    {
        TunnelError::new(
            TunnelErrorKind::DnsFailed,
            format!("cannot resolve the SSH host name {host}"),
        )
        .with_fix("check the host name in the target (a Host alias from ~/.ssh/config works too), or use its IP address")
    } else if lower.contains("connection refused") {
        TunnelError::new(
            TunnelErrorKind::SshUnreachable,
            format!(
                "no SSH server answered at {host} port {} (connection refused)",
                spec.effective_ssh_port().unwrap_or(22)
            ),
        )
        .with_fix("check that sshd runs on the host and the port is right (--ssh-port, or user@host:port)")
    } else if lower.contains("timed out") {
        TunnelError::new(
            TunnelErrorKind::Timeout,
            format!("connecting to the SSH server {who} timed out"),
        )
        .with_fix(
            "check that the host is reachable from here (VPN, firewall) and the SSH port is right",
        )
    } else if lower.contains("no route to host") || lower.contains("network is unreachable") {
        TunnelError::new(
            TunnelErrorKind::SshUnreachable,
            format!("the SSH host {host} is unreachable ({})", last_line(&text)),
        )
        .with_fix("check the network path to the host (VPN, firewall)")
    } else {
        let said = last_line(&text);
        TunnelError::new(
            TunnelErrorKind::Exited,
            match (exit_code, said.is_empty()) {
                (Some(c), false) => format!("ssh to {who} exited with status {c}: {said}"),
                (Some(c), true) => format!("ssh to {who} exited with status {c}"),
                (None, false) => format!("ssh to {who} was killed: {said}"),
                (None, true) => format!("ssh to {who} was killed by a signal"),
            },
        )
        .with_fix(format!(
            "run it by hand to see more: ssh -v {port_arg}{} (with the same key and user)",
            spec.parsed_target()
                .map(|t| t.destination())
                .unwrap_or_default()
        ))
    };
    e.stderr = text.trim().chars().take(4000).collect();
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> TunnelSpec {
        let mut s = TunnelSpec::new("root@127.0.0.1");
        s.ssh_port = Some(2222);
        s.identity = Some("/t/key".into());
        s.known_hosts = Some("/t/known".into());
        s
    }

    fn kind(stderr: &str) -> TunnelErrorKind {
        classify_ssh_failure(stderr, Some(255), &spec(), 19000).kind
    }

    #[test]
    fn kinds_from_stderr() {
        assert_eq!(
            kind(
                "No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict checking.\r\nHost key verification failed.\r\n"
            ),
            TunnelErrorKind::HostKeyUnknown
        );
        assert_eq!(
            kind("root@127.0.0.1: Permission denied (publickey).\r\n"),
            TunnelErrorKind::AuthFailed
        );
        assert_eq!(
            kind(
                "@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\nHost key for [127.0.0.1]:2222 has changed and you have requested strict checking.\nHost key verification failed.\n"
            ),
            TunnelErrorKind::HostKeyChanged
        );
        assert_eq!(
            kind(
                "bind [127.0.0.1]:18000: Address already in use\nchannel_setup_fwd_listener_tcpip: cannot listen to port: 18000\nCould not request local forwarding.\n"
            ),
            TunnelErrorKind::LocalPortBusy
        );
        assert_eq!(
            kind("ssh: connect to host 127.0.0.1 port 2223: Connection refused\n"),
            TunnelErrorKind::SshUnreachable
        );
        assert_eq!(
            kind(
                "ssh: Could not resolve hostname nosuchhost.invalid: Temporary failure in name resolution\n"
            ),
            TunnelErrorKind::DnsFailed
        );
        assert_eq!(
            kind("ssh: connect to host 10.0.0.1 port 22: Connection timed out\n"),
            TunnelErrorKind::Timeout
        );
        assert_eq!(kind("something else\n"), TunnelErrorKind::Exited);
    }

    #[test]
    fn json_kinds_match_as_str() {
        for k in [
            TunnelErrorKind::SshNotFound,
            TunnelErrorKind::InvalidSpec,
            TunnelErrorKind::AuthFailed,
            TunnelErrorKind::HostKeyUnknown,
            TunnelErrorKind::HostKeyChanged,
            TunnelErrorKind::LocalPortBusy,
            TunnelErrorKind::DnsFailed,
            TunnelErrorKind::SshUnreachable,
            TunnelErrorKind::Timeout,
            TunnelErrorKind::Exited,
        ] {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
    }

    #[test]
    fn messages_name_the_fix() {
        let e = classify_ssh_failure(
            "No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict checking.\nHost key verification failed.\n",
            Some(255),
            &spec(),
            1,
        );
        assert!(e.message.contains("[127.0.0.1]:2222"), "{e:?}");
        assert!(
            e.fixes
                .iter()
                .any(|f| f.contains("ssh-keyscan -p 2222 127.0.0.1 >> /t/known")),
            "{e:?}"
        );
        let e = classify_ssh_failure("x: Permission denied (publickey).", Some(255), &spec(), 1);
        assert!(e.fixes[0].contains("/t/key.pub"), "{e:?}");
        let e = classify_ssh_failure("Address already in use", Some(255), &spec(), 18000);
        assert!(e.message.contains("18000"), "{e:?}");
    }
}
