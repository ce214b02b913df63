//! A private OpenSSH server on a loopback port, for SSH tunnel tests.
//!
//! Debian's `openssh-server` (installed by `scripts/setup-sshd`) runs as
//! `sshd -D -e -f <config> -p <port>` with its own host key, an
//! `authorized_keys` file holding a client key made by the test, and a
//! config that listens on 127.0.0.1 only (`UsePAM no`, `StrictModes no`, public
//! key authentication only). Everything lives in a temp dir removed on drop;
//! the server is stopped on drop.
//!
//! [`Sshd::start_with`] runs one elsewhere: on another address and port, under a launcher such
//! as `ip netns exec NS`, with extra config lines (`ForceCommand …`).
//!
//! ```no_run
//! # async fn demo() {
//! use clawgate_testkit::Sshd;
//! let sshd = Sshd::start().await.unwrap();
//! let target = sshd.target(); // "root@127.0.0.1"
//! let args = sshd.client_args(); // -p PORT -i KEY -o UserKnownHostsFile=… …
//! # }
//! ```

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tempfile::TempDir;
use tokio::process::Command;

use crate::net::free_port;
use crate::process::ChildProcess;

/// The server binary Debian's package installs.
pub const SSHD_BIN: &str = "/usr/sbin/sshd";

/// Where and how [`Sshd::start_with`] runs the server; the default is [`Sshd::start`]'s.
#[derive(Debug, Clone, Default)]
pub struct SshdSpec {
    /// The address it listens on (default 127.0.0.1).
    pub listen: Option<IpAddr>,
    /// The port (default: a free one).
    pub port: Option<u16>,
    /// An argv prefix sshd runs under, e.g. `ip netns exec NS`.
    pub launcher: Vec<OsString>,
    /// Lines added to its config.
    pub extra_config: String,
}

/// A running private sshd. Dropping it stops the server and removes its files.
#[derive(Debug)]
pub struct Sshd {
    dir: TempDir,
    listen: IpAddr,
    port: u16,
    user: String,
    process: ChildProcess,
}

fn keygen(path: &Path, comment: &str) -> anyhow::Result<()> {
    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .output()
        .context("running ssh-keygen (openssh-client; run scripts/setup-sshd)")?;
    if !out.status.success() {
        bail!(
            "ssh-keygen failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// This process's user name (the one the test logs in as).
fn user_name() -> String {
    if let Ok(out) = std::process::Command::new("id").arg("-un").output()
        && out.status.success()
    {
        let name = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !name.is_empty() {
            return name;
        }
    }
    std::env::var("USER").unwrap_or_else(|_| "root".into())
}

impl Sshd {
    /// Generates the keys and config and starts the server on a free loopback
    /// port; returns once it listens. Fails (with a hint) when openssh-server is
    /// not installed.
    pub async fn start() -> anyhow::Result<Sshd> {
        Self::start_with(SshdSpec::default()).await
    }

    /// [`Sshd::start`] as `spec` says.
    pub async fn start_with(spec: SshdSpec) -> anyhow::Result<Sshd> {
        let listen = spec.listen.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        if !Path::new(SSHD_BIN).exists() {
            bail!("{SSHD_BIN} not found: install Debian's openssh-server (scripts/setup-sshd)");
        }
        // sshd refuses to start without its privilege separation directory.
        if !Path::new("/run/sshd").is_dir() {
            let _ = std::fs::create_dir_all("/run/sshd");
        }
        let dir = tempfile::Builder::new()
            .prefix("clawgate-sshd-")
            .tempdir()?;
        let d = dir.path();
        keygen(&d.join("host_key"), "test-host")?;
        keygen(&d.join("client_key"), "test-client")?;
        keygen(&d.join("other_key"), "not-authorized")?;
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys"))?;
        let config = format!(
            "ListenAddress {listen}\n\
             HostKey {d}/host_key\n\
             PidFile none\n\
             UsePAM no\n\
             StrictModes no\n\
             AuthorizedKeysFile {d}/authorized_keys\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             PermitRootLogin prohibit-password\n\
             AllowTcpForwarding yes\n\
             LogLevel VERBOSE\n\
             {extra}\n",
            d = d.display(),
            extra = spec.extra_config,
        );
        std::fs::write(d.join("sshd_config"), config)?;
        let user = user_name();

        let mut last_error = None;
        for _ in 0..3 {
            let port = spec.port.unwrap_or_else(free_port);
            let mut cmd = match spec.launcher.split_first() {
                Some((program, args)) => {
                    let mut cmd = Command::new(program);
                    cmd.args(args).arg(SSHD_BIN);
                    cmd
                }
                None => Command::new(SSHD_BIN),
            };
            cmd.args(["-D", "-e", "-f"])
                .arg(d.join("sshd_config"))
                .args(["-p", &port.to_string()]);
            let mut process = ChildProcess::spawn(cmd, "sshd")?;
            let deadline = Instant::now() + Duration::from_secs(15);
            match process
                .wait_for_line(|l| l.contains("Server listening on"), deadline)
                .await
            {
                Ok(_) => {
                    let sshd = Sshd {
                        dir,
                        listen,
                        port,
                        user,
                        process,
                    };
                    std::fs::write(sshd.known_hosts(), sshd.known_hosts_line()?)?;
                    return Ok(sshd);
                }
                Err(e) => {
                    last_error = Some(format!("{e:#}\n{}", process.transcript()));
                    if spec.port.is_some()
                        || !process.transcript().contains("Address already in use")
                    {
                        break;
                    }
                }
            }
        }
        bail!(
            "sshd did not start: {}",
            last_error.unwrap_or_else(|| "no output".into())
        )
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `user@ADDRESS` for the current user.
    pub fn target(&self) -> String {
        format!("{}@{}", self.user, self.listen)
    }

    /// How known_hosts names this server: `ADDRESS` on port 22, else `[ADDRESS]:PORT`.
    fn known_hosts_name(&self) -> String {
        if self.port == 22 {
            self.listen.to_string()
        } else {
            format!("[{}]:{}", self.listen, self.port)
        }
    }

    /// The authorized client key.
    pub fn client_key(&self) -> PathBuf {
        self.dir.path().join("client_key")
    }

    /// A key the server does not accept.
    pub fn other_key(&self) -> PathBuf {
        self.dir.path().join("other_key")
    }

    /// A known_hosts file that holds this server's host key.
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.path().join("known_hosts")
    }

    /// `[127.0.0.1]:PORT <type> <key>` (see [`Sshd::known_hosts_name`]).
    pub fn known_hosts_line(&self) -> anyhow::Result<String> {
        let public = std::fs::read_to_string(self.dir.path().join("host_key.pub"))?;
        let mut parts = public.split_whitespace();
        let (kind, key) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        Ok(format!("{} {kind} {key}\n", self.known_hosts_name()))
    }

    /// An empty known_hosts file (the host key is unknown).
    pub fn empty_known_hosts(&self) -> PathBuf {
        let path = self.dir.path().join("known_hosts.empty");
        let _ = std::fs::write(&path, "");
        path
    }

    /// A known_hosts file that records another key for this server (as if it
    /// had been re-keyed, or someone intercepted it).
    pub fn wrong_known_hosts(&self) -> PathBuf {
        let path = self.dir.path().join("known_hosts.wrong");
        let public =
            std::fs::read_to_string(self.dir.path().join("other_key.pub")).unwrap_or_default();
        let mut parts = public.split_whitespace();
        let (kind, key) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let _ = std::fs::write(&path, format!("{} {kind} {key}\n", self.known_hosts_name()));
        path
    }

    /// ssh options that reach this server with the authorized key and the
    /// private known_hosts: `-p PORT -i KEY -o IdentitiesOnly=yes -o
    /// UserKnownHostsFile=… -o GlobalKnownHostsFile=none -o BatchMode=yes`.
    pub fn client_args(&self) -> Vec<String> {
        vec![
            "-p".into(),
            self.port.to_string(),
            "-i".into(),
            self.client_key().display().to_string(),
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-o".into(),
            format!("UserKnownHostsFile={}", self.known_hosts().display()),
            "-o".into(),
            "GlobalKnownHostsFile=none".into(),
            "-o".into(),
            "BatchMode=yes".into(),
        ]
    }

    /// Everything the server logged so far.
    pub fn transcript(&self) -> String {
        self.process.transcript()
    }
}

/// Kills every tunnel supervisor (and its ssh) recorded under
/// `<state_dir>/clawgate/tunnels/`: they run in sessions of their own, out of
/// reach of the process-group cleanup of the command that started them.
pub fn kill_tunnels(state_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(state_dir.join("clawgate").join("tunnels")) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.path().extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        let Ok(state) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        for key in ["supervisorPid", "sshPid"] {
            if let Some(pid) = state[key].as_u64().filter(|p| *p > 1) {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .stderr(std::process::Stdio::null())
                    .status();
            }
        }
    }
}
