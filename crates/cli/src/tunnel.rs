//! `clawgate tunnel up|status|down`: managed SSH tunnels to a gateway on another host.
//!
//! `tunnel up` starts a supervisor in the background (its own session, so it outlives the
//! terminal) that runs the system `ssh -N -L …` and restarts it with backoff whenever it
//! exits. The supervisor records itself under `<state dir>/clawgate/tunnels/` (state file,
//! lock held for its life, log), which is what `tunnel status`, `tunnel down` and every
//! operator command with `gateway.remote.transport: "ssh"` read. See
//! [`clawgate_client::tunnel`] for the ssh options.

use crate::output::{
    EXIT_REJECTED, EXIT_UNREACHABLE, EXIT_USAGE, Failure, now_ms, print_json, print_out,
};
use crate::term::Progress;
use clap::{Args, Subcommand, ValueEnum};
use clawgate_client::tunnel::{
    self, DEFAULT_READY_TIMEOUT, HostKeyPolicy, SupervisorEvent, TunnelError, TunnelErrorKind,
    TunnelRegistry, TunnelSpec, TunnelState, TunnelStatus,
};
use clawgate_config as config;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

/// A known_hosts file for every tunnel this process opens (instead of the user's).
pub const KNOWN_HOSTS_ENV: &str = "CLAWGATE_SSH_KNOWN_HOSTS";

const TUNNEL_HELP: &str = "\
Exit codes:
  0  the tunnel is up (status: every tunnel listed is up)
  2  usage or configuration error: bad target, no ssh client, local port in use
  3  the SSH host is unreachable: connection refused, DNS failure, timeout
     (status: no tunnel running, or one is not up)
  4  the SSH host refused us: authentication failed, unknown or changed host key

The tunnel runs `ssh -N -L 127.0.0.1:<local>:127.0.0.1:<remote-port> [user@]host` with
BatchMode=yes, ExitOnForwardFailure=yes, StrictHostKeyChecking=yes (unless
--host-key-policy openssh), ServerAliveInterval=15 and no connection sharing, and restarts it
with backoff when it exits. With gateway.mode \"remote\", gateway.remote.transport \"ssh\" and
gateway.remote.sshTarget set, every clawgate command opens or reuses this tunnel itself.";

#[derive(Subcommand, Debug)]
pub enum TunnelCommand {
    /// Open an SSH tunnel to a gateway host (or reuse the running one) and keep it up in
    /// the background
    Up(UpArgs),
    /// Show the SSH tunnels kept up on this machine
    Status(StatusArgs),
    /// Stop SSH tunnels (all of them, or the one to TARGET)
    Down(DownArgs),
    /// The background supervisor of one tunnel (started by `tunnel up`)
    #[command(hide = true)]
    Supervise(SuperviseArgs),
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PolicyArg {
    Strict,
    Openssh,
}

#[derive(Args, Debug)]
#[command(after_long_help = TUNNEL_HELP)]
pub struct UpArgs {
    /// SSH target [user@]host[:port] [default: gateway.remote.sshTarget]
    pub target: Option<String>,
    /// The gateway's port on the SSH host [default: gateway.remote.remotePort, else 18789]
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub remote_port: Option<u16>,
    /// Local port to listen on (127.0.0.1) [default: the remote port if free, else any
    /// free port]
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub local_port: Option<u16>,
    /// Private key for ssh -i [default: gateway.remote.sshIdentity]
    #[arg(long, short = 'i', value_name = "PATH")]
    pub identity: Option<PathBuf>,
    /// SSH port on the host [default: the port in TARGET, else ssh's own default]
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub ssh_port: Option<u16>,
    /// known_hosts file to check the host key against (instead of ~/.ssh/known_hosts)
    #[arg(long, value_name = "PATH", env = KNOWN_HOSTS_ENV)]
    pub known_hosts: Option<PathBuf>,
    /// strict: the host key must already be known; openssh: your OpenSSH config decides
    /// [default: gateway.remote.sshHostKeyPolicy, else strict]
    #[arg(long, value_enum, value_name = "POLICY")]
    pub host_key_policy: Option<PolicyArg>,
    /// Stay in the foreground (for a service manager); Ctrl-C stops the tunnel
    #[arg(long)]
    pub foreground: bool,
    /// Config file [env: CLAWGATE_CONFIG_PATH, OPENCLAW_CONFIG_PATH]
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
    /// How long the first connection may take, in milliseconds
    #[arg(long, value_name = "MS", default_value_t = 20_000)]
    pub timeout: u64,
}

#[derive(Args, Debug)]
#[command(after_long_help = TUNNEL_HELP)]
pub struct StatusArgs {
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
#[command(after_long_help = TUNNEL_HELP)]
pub struct DownArgs {
    /// Only the tunnel to this target ([user@]host[:port], as given to `tunnel up`)
    pub target: Option<String>,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct SuperviseArgs {
    /// The tunnel, as JSON.
    #[arg(long)]
    pub spec: String,
    #[arg(long)]
    pub local_port: u16,
    /// Milliseconds the first connection may take.
    #[arg(long, default_value_t = 20_000)]
    pub ready_timeout: u64,
}

pub fn run(command: TunnelCommand) -> ExitCode {
    match command {
        TunnelCommand::Up(args) => up(args),
        TunnelCommand::Status(args) => status(args),
        TunnelCommand::Down(args) => down(args),
        TunnelCommand::Supervise(args) => supervise_background(args),
    }
}

fn state_dir() -> PathBuf {
    config::resolve_state_dir(None, &config::process_env)
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

// ---- errors ---------------------------------------------------------------------------------

/// A tunnel error as a command failure: exit code by kind, fixes, ssh's own words.
pub fn tunnel_failure(e: &TunnelError) -> Failure {
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

fn invalid(message: impl Into<String>) -> TunnelError {
    TunnelError::new(TunnelErrorKind::InvalidSpec, message)
}

// ---- ensure ---------------------------------------------------------------------------------

/// A tunnel that is up.
pub struct Ensured {
    pub state: TunnelState,
    /// It was already running.
    pub reused: bool,
}

/// Opens the tunnel for `spec` in the background, or reuses the one running; returns once it
/// is up (or with the classified reason it is not). `preferred_local` is tried when
/// `spec.local_port` is unset (then the remote port, then any free port).
pub fn ensure(
    spec: &TunnelSpec,
    preferred_local: Option<u16>,
    state_dir: &Path,
    progress: &Progress,
    timeout: Duration,
) -> Result<Ensured, TunnelError> {
    spec.parsed_target().map_err(invalid)?;
    tunnel::find_ssh()?;
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
        let state = wait_until_up(&registry, &key, progress, spec, deadline)?;
        return Ok(Ensured {
            state,
            reused: true,
        });
    }
    registry.clean(&key);

    let local_port = match spec.local_port {
        Some(p) if !tunnel::local_port_free(p) => return Err(TunnelError::local_port_busy(p)),
        Some(p) => p,
        None => tunnel::pick_local_port(preferred_local.or(Some(spec.remote_port)))
            .map_err(|e| invalid(format!("cannot find a free local port: {e}")))?,
    };
    progress.restart(format!(
        "Opening SSH tunnel to {} (127.0.0.1:{local_port} → port {} on the host)",
        spec.describe(),
        spec.remote_port
    ));

    let exe = std::env::current_exe()
        .map_err(|e| invalid(format!("cannot find the clawgate binary: {e}")))?;
    let spec_json = serde_json::to_string(spec).map_err(|e| invalid(e.to_string()))?;
    let log = open_log(&registry.log_path(&key)).map_err(|e| io_error("open the tunnel log", e))?;
    let mut command = std::process::Command::new(exe);
    // The supervisor finds its registry in the state dir: the same profile's.
    for (name, value) in config::cli_env_overrides() {
        match value {
            Some(v) => command.env(name, v),
            None => command.env_remove(name),
        };
    }
    let mut child = command
        .args(["tunnel", "supervise", "--spec", &spec_json])
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

fn open_log(path: &Path) -> std::io::Result<std::fs::File> {
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
    progress: &Progress,
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
                    progress.set(text);
                } else {
                    progress.restart(text);
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

// ---- up -------------------------------------------------------------------------------------

/// Builds the spec from the flags, falling back to `gateway.remote.*`.
fn spec_from_args(args: &UpArgs) -> Result<TunnelSpec, Failure> {
    let env = config::process_env;
    let location = config::locate_config(args.config.as_deref(), None, &env);
    let loaded =
        config::load_config(&location, &env).map_err(|e| Failure::config(e.to_string()))?;
    let remote = loaded.as_ref().map(|l| l.gateway.remote.clone());
    let remote = remote.unwrap_or_default();
    let target = match args.target.clone().or(remote.ssh_target.clone()) {
        Some(t) => t,
        None => {
            return Err(Failure::usage(
                "which host? pass the SSH target: clawgate tunnel up [user@]host[:port]".into(),
                vec![
                    "or set gateway.remote.sshTarget in the config file to use it by default"
                        .into(),
                ],
            ));
        }
    };
    let policy = match args.host_key_policy {
        Some(PolicyArg::Strict) => HostKeyPolicy::Strict,
        Some(PolicyArg::Openssh) => HostKeyPolicy::Openssh,
        None => match remote.ssh_host_key_policy {
            Some(config::SshHostKeyPolicy::Openssh) => HostKeyPolicy::Openssh,
            _ => HostKeyPolicy::Strict,
        },
    };
    Ok(TunnelSpec {
        target,
        ssh_port: args.ssh_port,
        identity: args.identity.clone().or(remote.ssh_identity.clone()),
        remote_port: args
            .remote_port
            .or(remote.remote_port)
            .unwrap_or(tunnel::DEFAULT_REMOTE_PORT),
        local_port: args.local_port,
        known_hosts: args.known_hosts.clone(),
        host_key_policy: policy,
        profile: tunnel::ArgvProfile::Managed,
    })
}

fn state_json(s: &TunnelState, running: bool) -> Value {
    let mut v = serde_json::to_value(s).unwrap_or(Value::Null);
    v["running"] = json!(running);
    v["target"] = json!(s.spec.describe());
    v
}

fn up(args: UpArgs) -> ExitCode {
    let spec = match spec_from_args(&args) {
        Ok(s) => s,
        Err(f) => return f.report(args.json),
    };
    if let Err(e) = spec.parsed_target() {
        return tunnel_failure(&invalid(e)).report(args.json);
    }
    if args.foreground {
        return up_foreground(spec, &args);
    }
    let progress = Progress::new(args.json);
    let timeout = Duration::from_millis(args.timeout.max(1));
    let result = ensure(&spec, None, &state_dir(), &progress, timeout);
    progress.clear();
    match result {
        Ok(Ensured { state, reused }) => {
            if args.json {
                print_json(&json!({"ok": true, "reused": reused,
                    "tunnel": state_json(&state, true)}));
            } else {
                print_out(&up_text(&state, reused));
            }
            ExitCode::SUCCESS
        }
        Err(e) => tunnel_failure(&e).report(args.json),
    }
}

fn up_text(s: &TunnelState, reused: bool) -> String {
    let mut out = format!(
        "SSH tunnel {}: {} → {} → 127.0.0.1:{} there (supervisor pid {})\n",
        if reused { "already up" } else { "up" },
        s.url,
        s.spec.describe(),
        s.spec.remote_port,
        s.supervisor_pid
    );
    out.push_str(&format!(
        "Use it:  clawgate health --url {} --token <gateway token>\n         (or set gateway.remote.url to {} in remote mode)\n",
        s.url, s.url
    ));
    if let Some(w) = &s.warning {
        out.push_str(&format!("Warning: {w}\n"));
    }
    out.push_str(&format!("Stop it: clawgate tunnel down {}", s.spec.target));
    out
}

// ---- supervisor -----------------------------------------------------------------------------

/// Writes the state and logs each supervisor event.
struct Recorder {
    registry: TunnelRegistry,
    state: TunnelState,
    ever_up: bool,
}

impl Recorder {
    fn new(spec: &TunnelSpec, local_port: u16, state_dir: &Path) -> Self {
        let now = now_ms();
        Recorder {
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
        }
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

/// Resolves on SIGTERM, SIGINT or SIGHUP.
async fn stop_signal() {
    use tokio::signal::unix::{Signal, SignalKind, signal};
    async fn next(s: Option<Signal>) {
        match s {
            Some(mut s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    }
    let term = signal(SignalKind::terminate()).ok();
    let int = signal(SignalKind::interrupt()).ok();
    let hup = signal(SignalKind::hangup()).ok();
    tokio::select! {
        () = next(term) => {}
        () = next(int) => {}
        () = next(hup) => {}
    }
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| eprintln!("error: cannot start the async runtime: {e}"))
        .ok()
}

/// `tunnel supervise`: the detached background supervisor.
fn supervise_background(args: SuperviseArgs) -> ExitCode {
    tunnel::detach_session();
    let spec: TunnelSpec = match serde_json::from_str(&args.spec) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tunnel supervise: bad --spec: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let Some(rt) = runtime() else {
        return ExitCode::from(EXIT_USAGE);
    };
    let ready = Duration::from_millis(args.ready_timeout.max(1));
    rt.block_on(async move {
        let mut rec = Recorder::new(&spec, args.local_port, &state_dir());
        let _held = match rec.registry.hold(&rec.state.key) {
            Ok(Some(f)) => f,
            Ok(None) => {
                eprintln!("tunnel supervise: another supervisor runs this tunnel");
                return ExitCode::from(EXIT_USAGE);
            }
            Err(e) => {
                eprintln!("tunnel supervise: cannot lock the tunnel state: {e}");
                return ExitCode::from(EXIT_USAGE);
            }
        };
        rec.save();
        let log = |line: &str| eprintln!("{} tunnel {}: {line}", utc_stamp(now_ms()), spec.key());
        log("supervisor started");
        let result = tunnel::supervise(
            &spec,
            args.local_port,
            ready,
            |event| {
                let line = rec.record(&event);
                log(&line);
            },
            stop_signal(),
        )
        .await;
        match result {
            Ok(()) => {
                log("stopped");
                rec.registry.remove(&rec.state.key);
                ExitCode::SUCCESS
            }
            Err(e) => {
                log(&format!("failed: {} [{}]", e.message, e.kind));
                rec.set_status(TunnelStatus::Failed);
                rec.state.last_error = Some(e.clone());
                rec.state.ssh_pid = None;
                rec.save();
                ExitCode::from(tunnel_failure(&e).exit)
            }
        }
    })
}

/// `tunnel up --foreground`: the supervisor in this process, with progress on a terminal.
fn up_foreground(spec: TunnelSpec, args: &UpArgs) -> ExitCode {
    let dir = state_dir();
    let registry = TunnelRegistry::new(&dir);
    let key = spec.key();
    if registry.is_running(&key) {
        let state = registry.read(&key);
        return tunnel_failure(
            &invalid(format!(
                "a tunnel to {} is already running{}",
                spec.describe(),
                state
                    .map(|s| format!(" on {} (supervisor pid {})", s.url, s.supervisor_pid))
                    .unwrap_or_default()
            ))
            .with_fix(format!(
                "stop it first: clawgate tunnel down {}",
                spec.target
            )),
        )
        .report(args.json);
    }
    let local_port = match spec.local_port {
        Some(p) if !tunnel::local_port_free(p) => {
            return tunnel_failure(&TunnelError::local_port_busy(p)).report(args.json);
        }
        Some(p) => p,
        None => match tunnel::pick_local_port(Some(spec.remote_port)) {
            Ok(p) => p,
            Err(e) => {
                return tunnel_failure(&invalid(format!("cannot find a free local port: {e}")))
                    .report(args.json);
            }
        },
    };
    let Some(rt) = runtime() else {
        return ExitCode::from(EXIT_USAGE);
    };
    let json_out = args.json;
    let ready = Duration::from_millis(args.timeout.max(1));
    rt.block_on(async move {
        let progress = Progress::new(json_out);
        let mut rec = Recorder::new(&spec, local_port, &dir);
        let _held = match rec.registry.hold(&key) {
            Ok(Some(f)) => f,
            _ => {
                return tunnel_failure(&invalid("another supervisor runs this tunnel"))
                    .report(json_out);
            }
        };
        rec.save();
        progress.restart(format!(
            "Opening SSH tunnel to {} (127.0.0.1:{local_port} → port {} on the host)",
            spec.describe(),
            spec.remote_port
        ));
        let result = tunnel::supervise(
            &spec,
            local_port,
            ready,
            |event| {
                let line = rec.record(&event);
                let when = now_ms();
                match &event {
                    SupervisorEvent::Up { .. } => {
                        if json_out {
                            // One JSON object per line (a stream of events).
                            print_out(
                                &json!({"event": "up", "ts": when,
                                    "tunnel": state_json(&rec.state, true)})
                                .to_string(),
                            );
                        } else {
                            progress.println(&format!("SSH tunnel {line}"));
                        }
                        progress.restart(format!(
                            "SSH tunnel up: {} → {} (Ctrl-C stops it)",
                            rec.state.url,
                            spec.describe()
                        ));
                    }
                    SupervisorEvent::Down {
                        error, retry_in, ..
                    } => {
                        if json_out {
                            print_out(
                                &json!({"event": "down", "ts": when,
                                    "error": {"kind": error.kind.as_str(), "message": error.message},
                                    "retryInMs": retry_in.as_millis() as u64})
                                .to_string(),
                            );
                        } else {
                            progress.println(&format!("SSH tunnel {line}"));
                        }
                        progress.restart(format!(
                            "Reconnecting the SSH tunnel to {} in {:.1}s",
                            spec.describe(),
                            retry_in.as_secs_f64()
                        ));
                    }
                    SupervisorEvent::Connecting { attempt, .. } if *attempt > 1 => {
                        progress.restart(format!(
                            "Reconnecting the SSH tunnel to {} (attempt {attempt})",
                            spec.describe()
                        ));
                    }
                    SupervisorEvent::RemoteRefused { .. } => {
                        if !json_out {
                            progress.println(&format!("warning: {line}"));
                        }
                    }
                    SupervisorEvent::Connecting { .. } => {}
                }
            },
            stop_signal(),
        )
        .await;
        progress.clear();
        match result {
            Ok(()) => {
                rec.registry.remove(&key);
                if json_out {
                    print_out(
                        &json!({"event": "stopped", "ts": now_ms()}).to_string(),
                    );
                } else {
                    eprintln!("SSH tunnel to {} stopped", spec.describe());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                rec.registry.clean(&key);
                tunnel_failure(&e).report(json_out)
            }
        }
    })
}

// ---- status / down --------------------------------------------------------------------------

fn ago(ms: i64) -> String {
    let secs = ((now_ms() - ms).max(0) / 1000) as u64;
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {}s", s / 60, s % 60),
        s => format!("{}h {}m", s / 3600, (s % 3600) / 60),
    }
}

/// Running tunnels; records of supervisors that are gone are removed.
fn running(registry: &TunnelRegistry) -> Vec<TunnelState> {
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

fn status(args: StatusArgs) -> ExitCode {
    let registry = TunnelRegistry::new(&state_dir());
    let tunnels = running(&registry);
    let all_up = !tunnels.is_empty() && tunnels.iter().all(|s| s.status == TunnelStatus::Up);
    if args.json {
        let list: Vec<Value> = tunnels.iter().map(|s| state_json(s, true)).collect();
        print_json(&json!({"ok": all_up, "tunnels": list}));
    } else if tunnels.is_empty() {
        print_out("No SSH tunnel is running. Start one with: clawgate tunnel up [user@]host");
    } else {
        let mut out = String::new();
        for s in &tunnels {
            out.push_str(&format!(
                "{}  {} → {} → 127.0.0.1:{} there\n",
                s.status.as_str(),
                s.url,
                s.spec.describe(),
                s.spec.remote_port
            ));
            out.push_str(&format!(
                "    {} for {}, started {} ago, {} restart{}, supervisor pid {}{}\n",
                s.status.as_str(),
                ago(s.since_ms),
                ago(s.started_at_ms),
                s.restarts,
                if s.restarts == 1 { "" } else { "s" },
                s.supervisor_pid,
                s.ssh_pid
                    .map(|p| format!(", ssh pid {p}"))
                    .unwrap_or_default()
            ));
            if let Some(e) = &s.last_error {
                out.push_str(&format!("    last error: {} [{}]\n", e.message, e.kind));
            }
            if let (TunnelStatus::Reconnecting, Some(at)) = (s.status, s.next_retry_at_ms) {
                out.push_str(&format!(
                    "    next attempt in {}s\n",
                    (at - now_ms()).max(0) / 1000
                ));
            }
            if let Some(w) = &s.warning {
                out.push_str(&format!("    warning: {w}\n"));
            }
            out.push_str(&format!(
                "    log: {}\n",
                registry.log_path(&s.key).display()
            ));
        }
        print_out(out.trim_end());
    }
    if all_up {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_UNREACHABLE)
    }
}

/// Whether `state` is the tunnel `target` names (as given to `up`, with or without port).
fn matches_target(state: &TunnelState, target: &str) -> bool {
    let t = target.trim();
    if t == state.spec.target || t == state.spec.describe() || t == state.key {
        return true;
    }
    match (tunnel::SshTarget::parse(t), state.spec.parsed_target()) {
        (Ok(want), Ok(have)) => {
            want.host == have.host
                && (want.user.is_none() || want.user == have.user)
                && want
                    .port
                    .is_none_or(|p| Some(p) == state.spec.effective_ssh_port())
        }
        _ => false,
    }
}

/// Stops the supervisor (and its ssh, should it outlive it).
async fn stop_tunnel(registry: &TunnelRegistry, s: &TunnelState) -> bool {
    let stopped = tunnel::stop_process(s.supervisor_pid, Duration::from_secs(3)).await;
    if let Some(ssh) = s.ssh_pid
        && ssh_is_ours(ssh, s.local_port)
    {
        tunnel::stop_process(ssh, Duration::from_millis(1500)).await;
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

/// Stops a tunnel this process opened (e.g. `node run --ssh` on exit).
pub async fn stop(state_dir: &Path, state: &TunnelState) {
    stop_tunnel(&TunnelRegistry::new(state_dir), state).await;
}

/// Whether `pid` is still the ssh forwarding `local_port` (not a recycled pid).
fn ssh_is_ours(pid: u32, local_port: u16) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
        let text = String::from_utf8_lossy(&c);
        text.contains("ssh") && text.contains(&format!("127.0.0.1:{local_port}:"))
    })
}

fn down(args: DownArgs) -> ExitCode {
    let registry = TunnelRegistry::new(&state_dir());
    let tunnels: Vec<TunnelState> = running(&registry)
        .into_iter()
        .filter(|s| args.target.as_deref().is_none_or(|t| matches_target(s, t)))
        .collect();
    let Some(rt) = runtime() else {
        return ExitCode::from(EXIT_USAGE);
    };
    let mut stopped = Vec::new();
    rt.block_on(async {
        for s in &tunnels {
            stop_tunnel(&registry, s).await;
            stopped.push(s.clone());
        }
    });
    if args.json {
        let list: Vec<Value> = stopped.iter().map(|s| state_json(s, false)).collect();
        print_json(&json!({"ok": true, "stopped": list}));
    } else if stopped.is_empty() {
        print_out(&match &args.target {
            Some(t) => format!("No SSH tunnel to {t} is running."),
            None => "No SSH tunnel is running.".to_owned(),
        });
    } else {
        let lines: Vec<String> = stopped
            .iter()
            .map(|s| format!("Stopped the SSH tunnel {} → {}", s.url, s.spec.describe()))
            .collect();
        print_out(&lines.join("\n"));
    }
    ExitCode::SUCCESS
}

/// The ready timeout used when a command opens a tunnel itself.
pub fn default_ready_timeout() -> Duration {
    DEFAULT_READY_TIMEOUT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_match() {
        let mut spec = TunnelSpec::new("me@gw:2222");
        spec.remote_port = 18789;
        let state = Recorder::new(&spec, 1, Path::new("/nonexistent")).state;
        for t in ["me@gw:2222", "me@gw", "gw", "gw:2222", &spec.key()] {
            assert!(matches_target(&state, t), "{t}");
        }
        for t in ["other@gw", "gw:22", "gw2"] {
            assert!(!matches_target(&state, t), "{t}");
        }
    }

    #[test]
    fn log_stamps() {
        assert_eq!(utc_stamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc_stamp(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(utc_stamp(1_795_602_296_383), "2026-11-25T10:24:56.383Z");
    }

    #[test]
    fn failures_map_to_exit_codes() {
        let f = tunnel_failure(&TunnelError::local_port_busy(5));
        assert_eq!(f.exit, EXIT_USAGE);
        assert_eq!(f.json["kind"], "local_port_busy");
        let mut e = TunnelError::new(TunnelErrorKind::AuthFailed, "no");
        e.stderr = "Permission denied (publickey).".into();
        let f = tunnel_failure(&e);
        assert_eq!(f.exit, EXIT_REJECTED);
        assert!(f.fixes.iter().any(|l| l.contains("Permission denied")));
    }
}
