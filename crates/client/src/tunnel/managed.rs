//! Tunnels kept up by a supervisor process and shared by every command: [`ensure`] opens one
//! in the background (or reuses the one running) and returns once it is up;
//! [`ManagedTunnel`] is the supervisor's side, recording each event in the registry's state
//! file that [`ensure`], `tunnel status` and `tunnel down` read; [`stop`] ends one.

use super::{
    SupervisorEvent, TunnelError, TunnelErrorKind, TunnelRegistry, TunnelSpec, TunnelState,
    TunnelStatus, find_ssh, local_port_free, pick_local_port, stop_process, supervise,
};
use crate::now_ms;
use std::fs::File;
use std::future::Future;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where [`ensure`] says what it waits for (a spinner on a terminal, nothing elsewhere).
pub trait WaitDisplay {
    /// A new wait begins: its elapsed time starts now.
    fn begin(&self, message: String);
    /// The same wait, said anew.
    fn update(&self, message: String);
}

/// Shows nothing.
impl WaitDisplay for () {
    fn begin(&self, _: String) {}
    fn update(&self, _: String) {}
}

fn invalid(message: impl Into<String>) -> TunnelError {
    TunnelError::new(TunnelErrorKind::InvalidSpec, message)
}

/// A tunnel that is up.
pub struct Ensured {
    pub state: TunnelState,
    /// It was already running.
    pub reused: bool,
}

/// A known_hosts file for every tunnel this process opens (instead of the user's).
pub const KNOWN_HOSTS_ENV: &str = "CLAWGATE_SSH_KNOWN_HOSTS";

/// [`ensure`] with this very binary's hidden `tunnel supervise` as the supervisor, under the
/// same profile (the supervisor finds its registry in the state dir: the same profile's).
pub fn ensure_supervised(
    spec: &TunnelSpec,
    preferred_local: Option<u16>,
    state_dir: &Path,
    display: &dyn WaitDisplay,
    timeout: Duration,
) -> Result<Ensured, TunnelError> {
    let exe = std::env::current_exe()
        .map_err(|e| invalid(format!("cannot find the clawgate binary: {e}")))?;
    let mut supervisor = Command::new(exe);
    for (name, value) in clawgate_config::cli_env_overrides() {
        match value {
            Some(v) => supervisor.env(name, v),
            None => supervisor.env_remove(name),
        };
    }
    supervisor.args(["tunnel", "supervise"]);
    ensure(
        spec,
        preferred_local,
        state_dir,
        supervisor,
        display,
        timeout,
    )
}

/// Opens the tunnel for `spec` in the background, or reuses the one running; returns once it
/// is up (or with the classified reason it is not). `preferred_local` is tried when
/// `spec.local_port` is unset (then the remote port, then any free port).
///
/// `supervisor` is the command that runs [`ManagedTunnel`] for the tunnel in its own
/// session; it is started with `--spec <spec as JSON> --local-port <port> --ready-timeout
/// <milliseconds>` appended, its stderr going to the tunnel's log.
pub fn ensure(
    spec: &TunnelSpec,
    preferred_local: Option<u16>,
    state_dir: &Path,
    mut supervisor: Command,
    display: &dyn WaitDisplay,
    timeout: Duration,
) -> Result<Ensured, TunnelError> {
    spec.parsed_target().map_err(invalid)?;
    find_ssh()?;
    let registry = TunnelRegistry::new(state_dir);
    let key = spec.key();
    let io_error = |what: &str, e: std::io::Error| {
        invalid(format!(
            "cannot {what} in {}: {e}",
            registry.dir().display()
        ))
    };
    let _starting = registry
        .start_lock(&key)
        .map_err(|e| io_error("lock the tunnel state", e))?;
    let deadline = Instant::now() + timeout;

    if registry.is_running(&key) {
        let state = wait_for_state(&registry, &key, None, deadline);
        if let Some(state) = &state
            && let Some(wanted) = spec.local_port
            && wanted != state.local_port
        {
            return Err(invalid(format!(
                "a tunnel to {} is already running on 127.0.0.1:{} (not {wanted})",
                spec.describe(),
                state.local_port
            ))
            .with_fix(format!(
                "stop it first with `clawgate tunnel down {}`, or use port {}",
                spec.target, state.local_port
            )));
        }
        let state = wait_until_up(&registry, &key, display, spec, deadline)?;
        return Ok(Ensured {
            state,
            reused: true,
        });
    }
    registry.clean(&key);

    let local_port = local_port_for(spec, preferred_local)?;
    display.begin(format!(
        "Opening SSH tunnel to {} (127.0.0.1:{local_port} → port {} on the host)",
        spec.describe(),
        spec.remote_port
    ));

    let spec_json = serde_json::to_string(spec).map_err(|e| invalid(e.to_string()))?;
    let log = open_log(&registry.log_path(&key)).map_err(|e| io_error("open the tunnel log", e))?;
    let mut child = supervisor
        .args(["--spec", &spec_json])
        .args(["--local-port", &local_port.to_string()])
        .args(["--ready-timeout", &timeout.as_millis().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| invalid(format!("cannot start the tunnel supervisor: {e}")))?;
    let pid = child.id();

    // The supervisor reports through its state file: wait for "up" or "failed".
    loop {
        let exited = matches!(child.try_wait(), Ok(Some(_)));
        let state = registry.read(&key).filter(|s| s.supervisor_pid == pid);
        match (&state, exited) {
            (Some(s), false) if s.status == TunnelStatus::Up => {
                return Ok(Ensured {
                    state: s.clone(),
                    reused: false,
                });
            }
            (Some(s), _) if s.status == TunnelStatus::Failed => {
                let _ = child.wait();
                registry.clean(&key);
                return Err(s.last_error.clone().unwrap_or_else(|| {
                    invalid("the tunnel failed without saying why".to_owned())
                }));
            }
            (_, true) => {
                let _ = child.wait();
                registry.clean(&key);
                return Err(TunnelError::new(
                    TunnelErrorKind::Exited,
                    format!(
                        "the tunnel supervisor exited before the tunnel was up; its log is {}",
                        registry.log_path(&key).display()
                    ),
                ));
            }
            _ => {}
        }
        if Instant::now() >= deadline + Duration::from_secs(2) {
            let _ = child.kill();
            let _ = child.wait();
            registry.clean(&key);
            return Err(TunnelError::new(
                TunnelErrorKind::Timeout,
                format!(
                    "the tunnel to {} was not up after {} s",
                    spec.describe(),
                    timeout.as_secs()
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The local port a new tunnel listens on: the one `spec` asks for if it is free, else
/// `preferred`, the remote port or any free port.
fn local_port_for(spec: &TunnelSpec, preferred: Option<u16>) -> Result<u16, TunnelError> {
    match spec.local_port {
        Some(p) if !local_port_free(p) => Err(TunnelError::local_port_busy(p)),
        Some(p) => Ok(p),
        None => pick_local_port(preferred.or(Some(spec.remote_port)))
            .map_err(|e| invalid(format!("cannot find a free local port: {e}"))),
    }
}

fn open_log(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// The state of a running supervisor (it may not have written it yet).
fn wait_for_state(
    registry: &TunnelRegistry,
    key: &str,
    pid: Option<u32>,
    deadline: Instant,
) -> Option<TunnelState> {
    loop {
        if let Some(s) = registry.read(key)
            && pid.is_none_or(|p| s.supervisor_pid == p)
        {
            return Some(s);
        }
        if Instant::now() >= deadline || !registry.is_running(key) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for a running tunnel to be up (it may be reconnecting), showing why it waits.
fn wait_until_up(
    registry: &TunnelRegistry,
    key: &str,
    display: &dyn WaitDisplay,
    spec: &TunnelSpec,
    deadline: Instant,
) -> Result<TunnelState, TunnelError> {
    let mut shown = false;
    loop {
        let running = registry.is_running(key);
        let state = registry.read(key);
        match &state {
            Some(s) if running && s.status == TunnelStatus::Up => return Ok(s.clone()),
            Some(s) if running => {
                let why = s
                    .last_error
                    .as_ref()
                    .map(|e| format!(": {}", e.message))
                    .unwrap_or_default();
                let retry = s
                    .next_retry_at_ms
                    .map(|at| (at - now_ms()).max(0) / 1000)
                    .map(|secs| format!(", next attempt in {secs}s"))
                    .unwrap_or_default();
                let text = format!(
                    "Waiting for the SSH tunnel to {} to reconnect{why}{retry}",
                    spec.describe()
                );
                if shown {
                    display.update(text);
                } else {
                    display.begin(text);
                    shown = true;
                }
            }
            _ if !running => {
                return Err(TunnelError::new(
                    TunnelErrorKind::Exited,
                    format!(
                        "the tunnel to {} stopped; start it again with `clawgate tunnel up {}`",
                        spec.describe(),
                        spec.target
                    ),
                ));
            }
            _ => {}
        }
        if Instant::now() >= deadline {
            let last = state.and_then(|s| s.last_error);
            let mut e = TunnelError::new(
                TunnelErrorKind::Timeout,
                format!(
                    "the tunnel to {} is running but not up (still reconnecting){}",
                    spec.describe(),
                    last.as_ref()
                        .map(|e| format!("; last error: {}", e.message))
                        .unwrap_or_default()
                ),
            );
            if let Some(last) = last {
                e.fixes = last.fixes;
                e.stderr = last.stderr;
            }
            return Err(e.with_fix("`clawgate tunnel status` shows what it is doing"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The supervisor of one tunnel: holds its lock for its life and writes its state file at
/// every event.
pub struct ManagedTunnel {
    registry: TunnelRegistry,
    state: TunnelState,
    ever_up: bool,
    _held: Option<File>,
}

impl ManagedTunnel {
    fn new(spec: &TunnelSpec, local_port: u16, state_dir: &Path) -> Self {
        let now = now_ms();
        ManagedTunnel {
            registry: TunnelRegistry::new(state_dir),
            state: TunnelState {
                key: spec.key(),
                spec: spec.clone(),
                local_port,
                url: format!("ws://127.0.0.1:{local_port}"),
                supervisor_pid: std::process::id(),
                ssh_pid: None,
                status: TunnelStatus::Connecting,
                started_at_ms: now,
                since_ms: now,
                restarts: 0,
                next_retry_at_ms: None,
                last_error: None,
                warning: None,
                ssh_argv: spec.ssh_args(local_port).unwrap_or_default(),
            },
            ever_up: false,
            _held: None,
        }
    }

    /// Takes the tunnel's lock for this process's life and writes its first state; `None`
    /// when another supervisor runs the tunnel.
    pub fn claim(
        spec: &TunnelSpec,
        local_port: u16,
        state_dir: &Path,
    ) -> std::io::Result<Option<ManagedTunnel>> {
        let mut tunnel = ManagedTunnel::new(spec, local_port, state_dir);
        let Some(held) = tunnel.registry.hold(&tunnel.state.key)? else {
            return Ok(None);
        };
        tunnel._held = Some(held);
        tunnel.save();
        Ok(Some(tunnel))
    }

    /// The supervisor in this process (`tunnel up --foreground`): fails when the tunnel runs
    /// already, else takes its local port and [`ManagedTunnel::claim`]s it.
    pub fn claim_here(spec: &TunnelSpec, state_dir: &Path) -> Result<ManagedTunnel, TunnelError> {
        let registry = TunnelRegistry::new(state_dir);
        if registry.is_running(&spec.key()) {
            let state = registry.read(&spec.key());
            return Err(invalid(format!(
                "a tunnel to {} is already running{}",
                spec.describe(),
                state
                    .map(|s| format!(" on {} (supervisor pid {})", s.url, s.supervisor_pid))
                    .unwrap_or_default()
            ))
            .with_fix(format!(
                "stop it first: clawgate tunnel down {}",
                spec.target
            )));
        }
        let local_port = local_port_for(spec, None)?;
        match ManagedTunnel::claim(spec, local_port, state_dir) {
            Ok(Some(tunnel)) => Ok(tunnel),
            _ => Err(invalid("another supervisor runs this tunnel")),
        }
    }

    pub fn state(&self) -> &TunnelState {
        &self.state
    }

    pub fn registry(&self) -> &TunnelRegistry {
        &self.registry
    }

    fn save(&self) {
        if let Err(e) = self.registry.write(&self.state) {
            eprintln!("tunnel: cannot write the state file: {e}");
        }
    }

    fn set_status(&mut self, status: TunnelStatus) {
        if self.state.status != status {
            self.state.status = status;
            self.state.since_ms = now_ms();
        }
    }

    /// Runs the tunnel ([`supervise`]) until `stop` completes, recording every event;
    /// `on_event` gets the event, a line saying it, and the state just written. Stopped, the
    /// state file is removed.
    pub async fn run(
        &mut self,
        ready_timeout: Duration,
        mut on_event: impl FnMut(&SupervisorEvent, &str, &TunnelState),
        stop: impl Future<Output = ()>,
    ) -> Result<(), TunnelError> {
        let spec = self.state.spec.clone();
        let local_port = self.state.local_port;
        supervise(
            &spec,
            local_port,
            ready_timeout,
            |event| {
                let line = self.record(&event);
                on_event(&event, &line, &self.state);
            },
            stop,
        )
        .await?;
        self.registry.remove(&self.state.key);
        Ok(())
    }

    /// The first connection failed: the state file says so and why, for [`ensure`] to report.
    pub fn record_failure(&mut self, error: &TunnelError) {
        self.set_status(TunnelStatus::Failed);
        self.state.last_error = Some(error.clone());
        self.state.ssh_pid = None;
        self.save();
    }

    /// Records `event`; returns a line for the log / a person.
    fn record(&mut self, event: &SupervisorEvent) -> String {
        let who = self.state.spec.describe();
        let line = match event {
            SupervisorEvent::Connecting { attempt, ssh_pid } => {
                self.state.ssh_pid = Some(*ssh_pid);
                self.state.next_retry_at_ms = None;
                if self.ever_up {
                    self.state.restarts += 1;
                }
                format!("connecting to {who} (attempt {attempt}, ssh pid {ssh_pid})")
            }
            SupervisorEvent::Up { ssh_pid } => {
                self.ever_up = true;
                self.set_status(TunnelStatus::Up);
                self.state.ssh_pid = Some(*ssh_pid);
                format!(
                    "up: {} → {who} → 127.0.0.1:{} there",
                    self.state.url, self.state.spec.remote_port
                )
            }
            SupervisorEvent::Down {
                error,
                retry_in,
                attempt,
            } => {
                self.set_status(TunnelStatus::Reconnecting);
                self.state.ssh_pid = None;
                self.state.last_error = Some(error.clone());
                self.state.next_retry_at_ms = Some(now_ms() + retry_in.as_millis() as i64);
                format!(
                    "down after attempt {attempt}: {} [{}]; reconnecting in {:.1}s",
                    error.message,
                    error.kind,
                    retry_in.as_secs_f64()
                )
            }
            SupervisorEvent::RemoteRefused { count } => {
                let w = format!(
                    "the SSH host could not connect to 127.0.0.1:{} there ({count}×): is the gateway running on the host, on that port (gateway.port)?",
                    self.state.spec.remote_port
                );
                self.state.warning = Some(w.clone());
                w
            }
        };
        self.save();
        line
    }
}

/// A line of a supervisor's log: `2026-11-25T10:30:01.123Z tunnel <key>: <line>`.
pub fn log_line(key: &str, line: &str) -> String {
    format!("{} tunnel {key}: {line}", utc_stamp(now_ms()))
}

/// `2026-11-25T10:30:01.123Z` for a Unix time in milliseconds (log lines).
fn utc_stamp(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

/// Running tunnels; records of supervisors that are gone are removed.
pub fn running(registry: &TunnelRegistry) -> Vec<TunnelState> {
    registry
        .list()
        .into_iter()
        .filter(|s| {
            let alive = registry.is_running(&s.key);
            if !alive {
                registry.clean(&s.key);
            }
            alive
        })
        .collect()
}

impl TunnelState {
    /// Whether `target` names this tunnel (as given to `tunnel up`, with or without port).
    pub fn matches(&self, target: &str) -> bool {
        let t = target.trim();
        if t == self.spec.target || t == self.spec.describe() || t == self.key {
            return true;
        }
        match (super::SshTarget::parse(t), self.spec.parsed_target()) {
            (Ok(want), Ok(have)) => {
                want.host == have.host
                    && (want.user.is_none() || want.user == have.user)
                    && want
                        .port
                        .is_none_or(|p| Some(p) == self.spec.effective_ssh_port())
            }
            _ => false,
        }
    }
}

/// Stops a tunnel's supervisor (and its ssh, should it outlive it) and removes its files.
/// Returns whether the supervisor stopped.
pub async fn stop(registry: &TunnelRegistry, s: &TunnelState) -> bool {
    let stopped = stop_process(s.supervisor_pid, Duration::from_secs(3)).await;
    if let Some(ssh) = s.ssh_pid
        && ssh_is_ours(ssh, s.local_port)
    {
        stop_process(ssh, Duration::from_millis(1500)).await;
    }
    // The lock is released when the supervisor is gone.
    for _ in 0..40 {
        if !registry.is_running(&s.key) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    registry.clean(&s.key);
    stopped
}

/// Whether `pid` is still the ssh forwarding `local_port` (not a recycled pid).
fn ssh_is_ours(pid: u32, local_port: u16) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
        let text = String::from_utf8_lossy(&c);
        text.contains("ssh") && text.contains(&format!("127.0.0.1:{local_port}:"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_match() {
        let mut spec = TunnelSpec::new("me@gw:2222");
        spec.remote_port = 18789;
        let state = ManagedTunnel::new(&spec, 1, Path::new("/nonexistent")).state;
        for t in ["me@gw:2222", "me@gw", "gw", "gw:2222", &spec.key()] {
            assert!(state.matches(t), "{t}");
        }
        for t in ["other@gw", "gw:22", "gw2"] {
            assert!(!state.matches(t), "{t}");
        }
    }

    #[test]
    fn log_stamps() {
        assert_eq!(utc_stamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc_stamp(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(utc_stamp(1_795_602_296_383), "2026-11-25T10:24:56.383Z");
    }
}
