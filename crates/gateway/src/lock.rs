//! One gateway per state directory, as OpenClaw 2026.9.6 keeps it (`src/infra/gateway-lock.ts`,
//! `src/cli/gateway-cli/run.ts`, `src/cli/ports.ts`, `src/infra/supervisor-markers.ts`):
//!
//! - a state-ownership lock in `<state dir>/tmp/openclaw-<uid>/`, held for the gateway's whole
//!   life, recording who holds it (pid, process start time, port); a second gateway waits
//!   5 s for it, then gives up with OpenClaw's `gateway already running (pid N); lock
//!   timeout after 5000ms`;
//! - a per-config lock next to it recording the port, skipped with
//!   `OPENCLAW_ALLOW_MULTI_GATEWAY=1`. Living in the same directory, it never refuses what
//!   the state lock has let through, in OpenClaw as here: the variable does not let two
//!   gateways share a state dir;
//! - under systemd, a second gateway whose incumbent answers `/healthz` exits 78 instead of
//!   being restarted into the same conflict forever;
//! - `--force`: the processes listening on the port are stopped first (SIGTERM, SIGKILL after
//!   700 ms), unless that is a gateway and there is no terminal to confirm it on.
//!
//! OpenClaw holds its lock with a SQLite coordinator plus a lock file created exclusively and
//! removed on release. clawgate uses an advisory `flock` on a file that stays: the kernel
//! drops the lock with its holder, so a gateway killed with SIGKILL leaves nothing to clean
//! up, and the recorded pid only names the holder in messages. The files are clawgate's own
//! (`clawgate.*.lock`): OpenClaw's lock file has a payload schema and ownership token of its
//! own, and a file it cannot verify blocks it until the file is 30 s old.

use clawgate_client::{TlsOptions, dial, tunnel};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// How long a second gateway waits for a lock (OpenClaw's `DEFAULT_TIMEOUT_MS`).
const LOCK_TIMEOUT: Duration = Duration::from_secs(5);
/// How often it tries again meanwhile (OpenClaw's `DEFAULT_POLL_INTERVAL_MS`).
const LOCK_POLL: Duration = Duration::from_millis(100);
/// The state-ownership lock's file name in the lock directory.
const STATE_LOCK: &str = "clawgate.state.lock";
/// A supervised gateway's liveness probe of the incumbent gets this long (OpenClaw's
/// `SUPERVISED_GATEWAY_HEALTH_PROBE_TIMEOUT_MS`).
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// `--force`: how long a listener has between SIGTERM and SIGKILL, and how long the port
/// may take to free in all (OpenClaw's `sigtermTimeoutMs` and `timeoutMs`).
const FORCE_TERM_GRACE: Duration = Duration::from_millis(700);
const FORCE_TIMEOUT: Duration = Duration::from_secs(2);

/// What a lock file holds (OpenClaw's payload field names), rewritten once the port is known.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    pid: u32,
    /// Field 22 of `/proc/<pid>/stat`: tells the holder from a later process given its pid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    start_time: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    state_dir: PathBuf,
    config_path: PathBuf,
}

/// The gateway holding a lock, as its lock file names it.
#[derive(Debug, Clone, Copy)]
pub struct Holder {
    pub pid: u32,
    pub port: Option<u16>,
}

#[derive(Debug)]
pub enum LockError {
    /// Another process kept the lock for [`LOCK_TIMEOUT`]. `holder` is `None` when its file
    /// names no live process (it is still being written, or names a pid since reused).
    Held {
        path: PathBuf,
        holder: Option<Holder>,
    },
    Io {
        path: PathBuf,
        error: io::Error,
    },
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Held { holder, .. } => {
                write!(f, "gateway already running")?;
                if let Some(h) = holder {
                    write!(f, " (pid {})", h.pid)?;
                }
                write!(f, "; lock timeout after {}ms", LOCK_TIMEOUT.as_millis())
            }
            LockError::Io { path, error } => {
                write!(
                    f,
                    "failed to acquire gateway lock at {}: {error}",
                    path.display()
                )
            }
        }
    }
}

impl LockError {
    /// What to do about it, for the line after the error.
    pub fn fix(&self, state_dir: &Path) -> Option<String> {
        let LockError::Held { path, holder } = self else {
            return None;
        };
        Some(format!(
            "that gateway owns the state dir {}{} (lock file {}). Stop it first ({}or through the service manager that runs it), or give this gateway a state dir of its own with --state-dir or CLAWGATE_STATE_DIR",
            state_dir.display(),
            holder
                .and_then(|h| h.port)
                .map(|p| format!(" and listens on port {p}"))
                .unwrap_or_default(),
            path.display(),
            holder
                .map(|h| format!("`kill {}`, ", h.pid))
                .unwrap_or_default(),
        ))
    }
}

/// One held lock file.
struct LockFile {
    file: File,
    path: PathBuf,
    payload: Payload,
}

impl LockFile {
    /// Opens (creating, mode 0600) and locks `path`, trying every [`LOCK_POLL`] for up to
    /// [`LOCK_TIMEOUT`], then records `payload` in it.
    fn acquire(path: PathBuf, payload: Payload) -> Result<Self, LockError> {
        let io_err = |error| LockError::Io {
            path: path.clone(),
            error,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io_err)?;
        // A file left by an older run keeps its mode; tighten it as for the token file.
        let _ = file.set_permissions(fs::Permissions::from_mode(0o600));
        let deadline = Instant::now() + LOCK_TIMEOUT;
        // `try_lock` is flock(LOCK_EX | LOCK_NB): released by the kernel when the holder dies.
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(fs::TryLockError::WouldBlock) => {}
                Err(fs::TryLockError::Error(e)) => return Err(io_err(e)),
            }
            if Instant::now() >= deadline {
                return Err(LockError::Held {
                    holder: read_holder(&path),
                    path,
                });
            }
            std::thread::sleep(LOCK_POLL);
        }
        let lock = LockFile {
            file,
            path: path.clone(),
            payload,
        };
        lock.record().map_err(io_err)?;
        Ok(lock)
    }

    /// Overwrites the file with the payload. Written over the old contents and then cut to
    /// length, so a waiting gateway reading it meanwhile never sees an empty file.
    fn record(&self) -> io::Result<()> {
        let mut text = serde_json::to_vec_pretty(&self.payload)?;
        text.push(b'\n');
        self.file.write_all_at(&text, 0)?;
        self.file.set_len(text.len() as u64)
    }
}

/// The locks a running gateway holds; dropping it releases them. The files stay: removing
/// one would let a gateway that opened it while waiting lock the removed file while a third
/// creates and locks a new one.
pub struct GatewayLock {
    state: LockFile,
    config: Option<LockFile>,
}

impl GatewayLock {
    /// Takes the state-ownership lock of `state_dir`, then (unless `allow_multi`) the lock of
    /// `config_path`, both recording `port` (0: not known before the bind).
    pub fn acquire(
        state_dir: &Path,
        config_path: &Path,
        port: u16,
        allow_multi: bool,
    ) -> Result<Self, LockError> {
        let dir = lock_dir(state_dir);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|error| LockError::Io {
                path: dir.clone(),
                error,
            })?;
        let config_path = std::path::absolute(config_path).unwrap_or(config_path.into());
        let pid = std::process::id();
        let payload = || Payload {
            pid,
            start_time: process_start_time(pid),
            port: (port != 0).then_some(port),
            state_dir: state_dir.to_path_buf(),
            config_path: config_path.clone(),
        };
        let state = LockFile::acquire(dir.join(STATE_LOCK), payload())?;
        let config = if allow_multi {
            None
        } else {
            // OpenClaw names it by the first 8 hex digits of the config path's SHA-256.
            let hash = clawgate_config::config_hash(&config_path.to_string_lossy().as_ref().into());
            let name = format!("clawgate.{}.lock", &hash[..8]);
            Some(LockFile::acquire(dir.join(name), payload())?)
        };
        Ok(GatewayLock { state, config })
    }

    /// Records the port the gateway got (with `--port 0`, known only once bound).
    pub fn record_port(&mut self, port: u16) -> io::Result<()> {
        for f in std::iter::once(&mut self.state).chain(self.config.as_mut()) {
            f.payload.port = Some(port);
            f.record()?;
        }
        Ok(())
    }

    /// The state-ownership lock file.
    pub fn state_lock_path(&self) -> &Path {
        &self.state.path
    }
}

/// `<state dir>/tmp/openclaw-<uid>` (OpenClaw's `resolveGatewayLockDir`; `openclaw` alone
/// when the uid cannot be read).
pub fn lock_dir(state_dir: &Path) -> PathBuf {
    let name = match fs::metadata("/proc/self") {
        Ok(m) => format!("openclaw-{}", m.uid()),
        Err(_) => "openclaw".to_owned(),
    };
    state_dir.join("tmp").join(name)
}

/// `OPENCLAW_ALLOW_MULTI_GATEWAY=1` (or `CLAWGATE_…`): skip the per-config lock. The
/// state-ownership lock stays, as in OpenClaw: it never lets two gateways share a state dir.
pub fn allow_multi(env: &dyn Fn(&str) -> Option<String>) -> bool {
    [
        "CLAWGATE_ALLOW_MULTI_GATEWAY",
        "OPENCLAW_ALLOW_MULTI_GATEWAY",
    ]
    .iter()
    .any(|k| env(k).as_deref() == Some("1"))
}

/// The holder a lock file names, if that process still runs and is the same process (its
/// start time matches: a pid reused by another process does not count).
fn read_holder(path: &Path) -> Option<Holder> {
    let payload: Payload = serde_json::from_slice(&fs::read(path).ok()?).ok()?;
    let alive = match payload.start_time {
        Some(t) => process_start_time(payload.pid) == Some(t),
        None => Path::new(&format!("/proc/{}", payload.pid)).exists(),
    };
    alive.then_some(Holder {
        pid: payload.pid,
        port: payload.port,
    })
}

/// Field 22 (`starttime`, clock ticks since boot) of `/proc/<pid>/stat`, counted after the
/// command name, which may itself hold spaces and parentheses.
fn process_start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(19)?.parse().ok()
}

/// The systemd markers OpenClaw's `detectRespawnSupervisor` looks for on Linux (systemd sets
/// `INVOCATION_ID` and `JOURNAL_STREAM` for every service).
const SYSTEMD_MARKERS: [&str; 4] = [
    "OPENCLAW_SYSTEMD_UNIT",
    "INVOCATION_ID",
    "SYSTEMD_EXEC_PID",
    "JOURNAL_STREAM",
];

/// How a second gateway under a supervisor checks whether the incumbent is healthy.
pub struct Supervision {
    systemd: bool,
    /// Where the incumbent is probed: this gateway's own local address.
    host: IpAddr,
    /// With `gateway.tls`, the certificate whose fingerprint the probe pins.
    tls_cert: Option<PathBuf>,
}

impl Supervision {
    pub fn detect(
        env: &dyn Fn(&str) -> Option<String>,
        host: IpAddr,
        tls_cert: Option<PathBuf>,
    ) -> Self {
        let systemd = SYSTEMD_MARKERS
            .iter()
            .any(|k| env(k).is_some_and(|v| !v.trim().is_empty()));
        Supervision {
            systemd,
            host,
            tls_cert,
        }
    }

    /// Under systemd, when a gateway on `port` is healthy: OpenClaw's reason for exiting 78
    /// (which the unit's `RestartPreventExitStatus=78` does not restart) and leaving it in
    /// control. `None` otherwise: the start fails as it would unsupervised.
    pub async fn defer_to_incumbent(&self, port: u16) -> Option<&'static str> {
        (self.systemd && port != 0 && self.incumbent_healthy(port).await).then_some(
            "gateway already running under systemd; existing gateway is healthy, exiting with code 78 to prevent a systemd Restart=always loop",
        )
    }

    /// `GET /healthz` answers 200 `{"ok":true,"status":"live"}` within [`PROBE_TIMEOUT`].
    /// Over TLS, a WebSocket opened with the state dir's certificate pinned stands in for it.
    async fn incumbent_healthy(&self, port: u16) -> bool {
        let addr = SocketAddr::new(self.host, port);
        let probe = async {
            match &self.tls_cert {
                Some(cert) => {
                    let Ok(pin) = crate::tls::fingerprint_file(cert) else {
                        return false;
                    };
                    let tls = TlsOptions {
                        fingerprint: Some(pin),
                    };
                    dial(&format!("wss://{addr}/healthz"), &tls, PROBE_TIMEOUT)
                        .await
                        .is_ok()
                }
                None => http_healthz(addr).await.unwrap_or(false),
            }
        };
        tokio::time::timeout(PROBE_TIMEOUT, probe)
            .await
            .unwrap_or(false)
    }
}

async fn http_healthz(addr: SocketAddr) -> io::Result<bool> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.take(64 * 1024).read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Ok(false);
    };
    let ok = head
        .lines()
        .next()
        .is_some_and(|status| status.split_whitespace().nth(1) == Some("200"));
    let body: serde_json::Value = serde_json::from_str(body.trim()).unwrap_or_default();
    Ok(ok && body["ok"] == true && body["status"] == "live")
}

/// A process listening on the port `--force` frees.
pub struct PortListener {
    pub pid: u32,
    /// Its command name (`/proc/<pid>/comm`).
    pub command: String,
    /// Whether its command line is a gateway's (clawgate's or OpenClaw's).
    pub gateway: bool,
}

#[derive(Debug)]
pub enum ForceError {
    /// Gateways listen on the port and there is no terminal to confirm stopping them on.
    GatewayListeners(Vec<u32>),
    Failed(String),
}

impl std::fmt::Display for ForceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ForceError::GatewayListeners(pids) => write!(
                f,
                "Refusing to kill the operator's running gateway service from a non-interactive shell. Use an isolated gateway (clawgate gateway run --state-dir <dir> --port <free port>) for testing. Existing gateway listener pid{}: {}.",
                if pids.len() == 1 { "" } else { "s" },
                pids.iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            ForceError::Failed(reason) => f.write_str(reason),
        }
    }
}

/// `--force`: stops every process listening on TCP `port` (SIGTERM, SIGKILL after
/// [`FORCE_TERM_GRACE`]) and waits up to [`FORCE_TIMEOUT`] for the port to free. Without a
/// terminal (`interactive` false) it refuses when one of them is a gateway, as OpenClaw does:
/// a script must not take down the operator's service. Returns the processes stopped.
pub async fn free_port(port: u16, interactive: bool) -> Result<Vec<PortListener>, ForceError> {
    let inodes = listening_inodes(port);
    if inodes.is_empty() {
        return Ok(Vec::new());
    }
    let listeners = socket_holders(&inodes);
    if listeners.is_empty() {
        return Err(ForceError::Failed(format!(
            "port {port} is still busy after --force, but no listener PID could be determined (a process of another user?)"
        )));
    }
    if !interactive {
        let gateways: Vec<u32> = listeners
            .iter()
            .filter(|l| l.gateway)
            .map(|l| l.pid)
            .collect();
        if !gateways.is_empty() {
            return Err(ForceError::GatewayListeners(gateways));
        }
    }
    let started = Instant::now();
    let mut stops = tokio::task::JoinSet::new();
    for l in &listeners {
        stops.spawn(tunnel::stop_process(l.pid, FORCE_TERM_GRACE));
    }
    // A stopped listener may linger as a zombie its parent has not reaped yet; what counts
    // is that its socket is gone.
    while stops.join_next().await.is_some() {}
    let deadline = started + FORCE_TIMEOUT;
    loop {
        let left = listening_inodes(port);
        if left.is_empty() {
            return Ok(listeners);
        }
        if Instant::now() >= deadline {
            let pids: Vec<String> = socket_holders(&left)
                .iter()
                .map(|l| l.pid.to_string())
                .collect();
            return Err(ForceError::Failed(format!(
                "port {port} still has listeners after --force: {}",
                pids.join(", ")
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Inodes of the sockets listening on TCP `port`, IPv4 and IPv6, any address.
fn listening_inodes(port: u16) -> HashSet<u64> {
    const LISTEN: &str = "0A";
    let mut inodes = HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(&state), Some(inode)) =
                (fields.get(1), fields.get(3), fields.get(9))
            else {
                continue;
            };
            let local_port = local
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            if state == LISTEN
                && local_port == Some(port)
                && let Ok(inode) = inode.parse()
            {
                inodes.insert(inode);
            }
        }
    }
    inodes
}

/// The processes (other than this one) holding one of `inodes` open. Those of other users
/// cannot be seen unless running as root.
fn socket_holders(inodes: &HashSet<u64>) -> Vec<PortListener> {
    let me = std::process::id();
    let Ok(procs) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            fs::read_link(fd.path()).is_ok_and(|target| {
                target
                    .to_str()
                    .and_then(|t| t.strip_prefix("socket:["))
                    .and_then(|t| t.strip_suffix(']'))
                    .and_then(|n| n.parse::<u64>().ok())
                    .is_some_and(|n| inodes.contains(&n))
            })
        });
        if !holds || pid == me {
            continue;
        }
        let command = fs::read_to_string(entry.path().join("comm"))
            .map(|c| c.trim().to_owned())
            .unwrap_or_default();
        let argv: Vec<String> = fs::read(entry.path().join("cmdline"))
            .map(|raw| {
                raw.split(|b| *b == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect()
            })
            .unwrap_or_default();
        out.push(PortListener {
            pid,
            command,
            gateway: is_gateway_argv(&argv),
        });
    }
    out
}

/// Whether a command line runs a gateway: `clawgate … gateway …`, or OpenClaw's rule
/// (`isGatewayArgv`: an `openclaw` executable or entry script with a `gateway` argument, or
/// the `openclaw-gateway` process title its gateway sets).
fn is_gateway_argv(argv: &[String]) -> bool {
    const OPENCLAW_ENTRIES: [&str; 6] = [
        "dist/index.js",
        "dist/entry.js",
        "openclaw.mjs",
        "scripts/run-node.mjs",
        "src/entry.ts",
        "src/index.ts",
    ];
    let args: Vec<String> = argv.iter().map(|a| a.to_lowercase()).collect();
    let exe = args
        .first()
        .map(|a| a.rsplit('/').next().unwrap_or(a))
        .unwrap_or("");
    let has_gateway = args.iter().skip(1).any(|a| a == "gateway");
    let openclaw = exe == "openclaw"
        || args
            .iter()
            .any(|a| OPENCLAW_ENTRIES.iter().any(|e| a.ends_with(e)));
    exe == "openclaw-gateway" || ((exe == "clawgate" || openclaw) && has_gateway)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_owned).collect()
    }

    #[test]
    fn gateway_command_lines() {
        assert!(is_gateway_argv(&argv(
            "/usr/bin/clawgate gateway run --port 1"
        )));
        assert!(is_gateway_argv(&argv(
            "node /opt/openclaw/openclaw.mjs gateway --port 18789"
        )));
        assert!(is_gateway_argv(&argv("openclaw-gateway")));
        assert!(!is_gateway_argv(&argv("/usr/bin/clawgate node run")));
        assert!(!is_gateway_argv(&argv("python3 -m http.server 8000")));
        assert!(!is_gateway_argv(&[]));
    }

    #[test]
    fn second_lock_on_a_state_dir_waits_then_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("openclaw.json");
        let mut held = GatewayLock::acquire(dir.path(), &config, 0, false).unwrap();
        held.record_port(4321).unwrap();
        let mode = fs::metadata(held.state_lock_path()).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let started = Instant::now();
        let err = GatewayLock::acquire(dir.path(), &config, 1234, true)
            .err()
            .unwrap();
        assert!(started.elapsed() >= LOCK_TIMEOUT);
        assert_eq!(
            err.to_string(),
            format!(
                "gateway already running (pid {}); lock timeout after 5000ms",
                std::process::id()
            )
        );
        let LockError::Held { holder, .. } = err else {
            panic!("{err}")
        };
        assert_eq!(holder.unwrap().port, Some(4321));
        drop(held);
        GatewayLock::acquire(dir.path(), &config, 0, false).unwrap();
    }

    #[test]
    fn a_recorded_pid_with_another_start_time_names_no_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let me = std::process::id();
        let payload = |start_time| Payload {
            pid: me,
            start_time,
            port: Some(1),
            state_dir: dir.path().into(),
            config_path: dir.path().into(),
        };
        fs::write(&path, serde_json::to_vec(&payload(Some(1))).unwrap()).unwrap();
        assert!(read_holder(&path).is_none());
        let now = process_start_time(me);
        fs::write(&path, serde_json::to_vec(&payload(now)).unwrap()).unwrap();
        assert_eq!(read_holder(&path).unwrap().pid, me);
    }
}
