//! The ssh process of one tunnel: finding the system client, starting it, knowing when the
//! forward listens, and stopping it.

use super::{TunnelError, TunnelErrorKind, TunnelSpec, classify_ssh_failure};
use rustix::process::{Pid, Signal};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Where the OpenSSH client is looked for: the system's own directories only (a `ssh`
/// earlier on `PATH` is not trusted with the tunnel's keys).
pub const SSH_LOCATIONS: [&str; 2] = ["/usr/bin/ssh", "/bin/ssh"];

/// How much of ssh's stderr is kept.
const STDERR_KEEP: usize = 16 * 1024;

/// The system OpenSSH client.
pub fn find_ssh() -> Result<PathBuf, TunnelError> {
    SSH_LOCATIONS
        .iter()
        .map(PathBuf::from)
        .find(|p| is_executable(p))
        .ok_or_else(|| {
            TunnelError::new(
                TunnelErrorKind::SshNotFound,
                format!(
                    "the OpenSSH client (ssh) is not installed (looked in {})",
                    SSH_LOCATIONS.join(", ")
                ),
            )
            .with_fix("install it: apt-get install openssh-client (Debian/Ubuntu), dnf install openssh-clients (Fedora)")
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether a listener could be opened on `127.0.0.1:port` right now.
pub fn local_port_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// `preferred` if it is free, else a port the kernel picks.
pub fn pick_local_port(preferred: Option<u16>) -> std::io::Result<u16> {
    if let Some(p) = preferred
        && p != 0
        && local_port_free(p)
    {
        return Ok(p);
    }
    std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()
        .map(|a| a.port())
}

/// Whether a process with this id exists (a zombie counts).
pub fn process_alive(pid: u32) -> bool {
    i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .is_some_and(|p| rustix::process::test_kill_process(p).is_ok())
}

/// Moves this process into a session of its own, so it outlives the terminal and the
/// process group that started it (a background tunnel supervisor). False if it already
/// leads a process group.
pub fn detach_session() -> bool {
    rustix::process::setsid().is_ok()
}

/// SIGTERM, then SIGKILL if it still runs after `grace`. Returns whether it is gone.
pub async fn stop_process(pid: u32, grace: Duration) -> bool {
    let Some(p) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return true;
    };
    if rustix::process::kill_process(p, Signal::TERM).is_err() {
        return !process_alive(pid);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if !process_alive(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = rustix::process::kill_process(p, Signal::KILL);
    tokio::time::sleep(Duration::from_millis(50)).await;
    !process_alive(pid)
}

/// One running `ssh -N -L …`.
pub struct SshProcess {
    child: Child,
    pid: u32,
    local_port: u16,
    stderr: Arc<Mutex<String>>,
    /// `channel N: open failed: connect failed` lines: the SSH host could not reach the
    /// gateway's port.
    remote_refusals: Arc<AtomicU64>,
    reader: Option<JoinHandle<()>>,
}

impl SshProcess {
    /// Starts ssh for `spec` listening on `local_port`. A port that is taken already is
    /// refused here: the readiness probe could not tell another listener from ssh's.
    pub fn spawn(ssh: &Path, spec: &TunnelSpec, local_port: u16) -> Result<Self, TunnelError> {
        let args = spec
            .ssh_args(local_port)
            .map_err(|e| TunnelError::new(TunnelErrorKind::InvalidSpec, e))?;
        if !local_port_free(local_port) {
            return Err(TunnelError::local_port_busy(local_port));
        }
        let mut child = Command::new(ssh)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                TunnelError::new(
                    TunnelErrorKind::SshNotFound,
                    format!("cannot start {}: {e}", ssh.display()),
                )
            })?;
        let pid = child.id().unwrap_or(0);
        let stderr = Arc::new(Mutex::new(String::new()));
        let remote_refusals = Arc::new(AtomicU64::new(0));
        let reader = child.stderr.take().map(|pipe| {
            let stderr = stderr.clone();
            let refusals = remote_refusals.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(pipe).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if line.contains("open failed") {
                        refusals.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Ok(mut buf) = stderr.lock() {
                        buf.push_str(&line);
                        buf.push('\n');
                        if buf.len() > STDERR_KEEP {
                            let cut = buf.len() - STDERR_KEEP;
                            let cut = (cut..buf.len())
                                .find(|i| buf.is_char_boundary(*i))
                                .unwrap_or(buf.len());
                            buf.drain(..cut);
                        }
                    }
                }
            })
        });
        Ok(SshProcess {
            child,
            pid,
            local_port,
            stderr,
            remote_refusals,
            reader,
        })
    }

    /// Starts ssh and waits until the forward listens: a tunnel for one command
    /// (`gateway probe --ssh`), not supervised. On failure ssh is gone and the error
    /// carries what it printed.
    pub async fn start(
        spec: &TunnelSpec,
        local_port: u16,
        ready_timeout: Duration,
    ) -> Result<Self, TunnelError> {
        let mut process = SshProcess::spawn(&find_ssh()?, spec, local_port)?;
        match process.wait_ready(spec, ready_timeout).await {
            Ok(()) => Ok(process),
            Err(e) => {
                process.stop().await;
                Err(e)
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn local_port(&self) -> u16 {
        self.local_port
    }

    /// Everything ssh printed so far (the last 16 KiB).
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// How many forwarded connections the SSH host could not deliver to the gateway port.
    pub fn remote_refusals(&self) -> u64 {
        self.remote_refusals.load(Ordering::Relaxed)
    }

    /// Waits until the forward accepts connections on `127.0.0.1:<local port>`; if ssh
    /// exits first (or `timeout` passes) the classified reason.
    pub async fn wait_ready(
        &mut self,
        spec: &TunnelSpec,
        timeout: Duration,
    ) -> Result<(), TunnelError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(self.exit_reason(spec, status.code()).await);
            }
            let probe = tokio::time::timeout(
                Duration::from_millis(250),
                TcpStream::connect(("127.0.0.1", self.local_port)),
            )
            .await;
            if let Ok(Ok(_stream)) = probe {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let mut e = TunnelError::new(
                    TunnelErrorKind::Timeout,
                    format!(
                        "the tunnel to {} was not listening on 127.0.0.1:{} after {} ms",
                        spec.describe(),
                        self.local_port,
                        timeout.as_millis()
                    ),
                )
                .with_fix("check that the SSH host is reachable from here and answers quickly (ssh -v shows where it hangs)");
                e.stderr = self.stderr();
                self.stop().await;
                return Err(e);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for ssh to exit and says why it did.
    pub async fn wait_exit(&mut self, spec: &TunnelSpec) -> TunnelError {
        let code = self.child.wait().await.ok().and_then(|s| s.code());
        self.exit_reason(spec, code).await
    }

    async fn exit_reason(&mut self, spec: &TunnelSpec, code: Option<i32>) -> TunnelError {
        if let Some(reader) = self.reader.take() {
            let _ = tokio::time::timeout(Duration::from_millis(500), reader).await;
        }
        classify_ssh_failure(&self.stderr(), code, spec, self.local_port)
    }

    /// Stops ssh (SIGTERM, SIGKILL after 1.5 s).
    pub async fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // Our own child: waiting on it (not polling its pid, which stays taken by the
            // zombie until reaped) tells when it is gone.
            if let Some(pid) = i32::try_from(self.pid).ok().and_then(Pid::from_raw) {
                let _ = rustix::process::kill_process(pid, Signal::TERM);
            }
            let grace = Duration::from_millis(1500);
            if tokio::time::timeout(grace, self.child.wait())
                .await
                .is_err()
            {
                let _ = self.child.start_kill();
                let _ = self.child.wait().await;
            }
        }
        if let Some(reader) = self.reader.take() {
            reader.abort();
        }
    }
}
