//! `clawgate tunnel up|status|down`: managed SSH tunnels to a gateway on another host.
//!
//! `tunnel up` starts a supervisor in the background (its own session, so it outlives the
//! terminal) that runs the system `ssh -N -L …` and restarts it with backoff whenever it
//! exits. The supervisor records itself under `<state dir>/clawgate/tunnels/` (state file,
//! lock held for its life, log), which is what `tunnel status`, `tunnel down` and every
//! operator command with `gateway.remote.transport: "ssh"` read. See
//! [`clawgate_client::tunnel`] for the ssh options.

use crate::output::{
    EXIT_UNREACHABLE, EXIT_USAGE, Failure, Report, exit_code, now_ms, print_json, print_out,
};
use crate::term::Progress;
use clap::{Args, Subcommand, ValueEnum};
use clawgate_client::failure::tunnel_failure;
use clawgate_client::tunnel::{
    self, HostKeyPolicy, ManagedTunnel, SupervisorEvent, TunnelError, TunnelErrorKind, TunnelFlags,
    TunnelRegistry, TunnelSpec, TunnelState, TunnelStatus,
};
use clawgate_config as config;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

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
    #[arg(long, value_name = "PATH", env = tunnel::KNOWN_HOSTS_ENV)]
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

// ---- up -------------------------------------------------------------------------------------

/// The spec of the flags, falling back to `gateway.remote.*` ([`TunnelSpec::from_flags`]).
fn spec_from_args(args: &UpArgs) -> Result<TunnelSpec, Failure> {
    let env = config::process_env;
    let location = config::locate_config(args.config.as_deref(), None, &env);
    let loaded =
        config::load_config(&location, &env).map_err(|e| Failure::config(e.to_string()))?;
    let remote = loaded.map(|l| l.gateway.remote).unwrap_or_default();
    let flags = TunnelFlags {
        target: args.target.clone(),
        ssh_port: args.ssh_port,
        identity: args.identity.clone(),
        remote_port: args.remote_port,
        local_port: args.local_port,
        known_hosts: args.known_hosts.clone(),
        host_key_policy: args.host_key_policy.map(|p| match p {
            PolicyArg::Strict => HostKeyPolicy::Strict,
            PolicyArg::Openssh => HostKeyPolicy::Openssh,
        }),
    };
    TunnelSpec::from_flags(flags, &remote).ok_or_else(|| {
        Failure::usage(
            "which host? pass the SSH target: clawgate tunnel up [user@]host[:port]".into(),
            vec!["or set gateway.remote.sshTarget in the config file to use it by default".into()],
        )
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
        let e = TunnelError::new(TunnelErrorKind::InvalidSpec, e);
        return tunnel_failure(&e).report(args.json);
    }
    if args.foreground {
        return up_foreground(spec, &args);
    }
    let progress = Progress::new(args.json);
    let timeout = Duration::from_millis(args.timeout.max(1));
    let result = tunnel::ensure_supervised(&spec, None, &state_dir(), &progress, timeout);
    progress.clear();
    match result {
        Ok(tunnel::Ensured { state, reused }) => {
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
        let mut managed = match ManagedTunnel::claim(&spec, args.local_port, &state_dir()) {
            Ok(Some(m)) => m,
            Ok(None) => {
                eprintln!("tunnel supervise: another supervisor runs this tunnel");
                return ExitCode::from(EXIT_USAGE);
            }
            Err(e) => {
                eprintln!("tunnel supervise: cannot lock the tunnel state: {e}");
                return ExitCode::from(EXIT_USAGE);
            }
        };
        let log = |line: &str| eprintln!("{}", tunnel::log_line(&spec.key(), line));
        log("supervisor started");
        let result = managed
            .run(ready, |_, line, _| log(line), stop_signal())
            .await;
        match result {
            Ok(()) => {
                log("stopped");
                ExitCode::SUCCESS
            }
            Err(e) => {
                log(&format!("failed: {} [{}]", e.message, e.kind));
                managed.record_failure(&e);
                ExitCode::from(exit_code(tunnel_failure(&e).kind))
            }
        }
    })
}

/// `tunnel up --foreground`: the supervisor in this process, with progress on a terminal.
fn up_foreground(spec: TunnelSpec, args: &UpArgs) -> ExitCode {
    let mut managed = match ManagedTunnel::claim_here(&spec, &state_dir()) {
        Ok(m) => m,
        Err(e) => return tunnel_failure(&e).report(args.json),
    };
    let (key, local_port) = (spec.key(), managed.state().local_port);
    let Some(rt) = runtime() else {
        return ExitCode::from(EXIT_USAGE);
    };
    let json_out = args.json;
    let ready = Duration::from_millis(args.timeout.max(1));
    rt.block_on(async move {
        let progress = Progress::new(json_out);
        progress.restart(format!(
            "Opening SSH tunnel to {} (127.0.0.1:{local_port} → port {} on the host)",
            spec.describe(),
            spec.remote_port
        ));
        let result = managed
            .run(
            ready,
            |event, line, state| {
                let when = now_ms();
                match &event {
                    SupervisorEvent::Up { .. } => {
                        if json_out {
                            // One JSON object per line (a stream of events).
                            print_out(
                                &json!({"event": "up", "ts": when,
                                    "tunnel": state_json(state, true)})
                                .to_string(),
                            );
                        } else {
                            progress.println(&format!("SSH tunnel {line}"));
                        }
                        progress.restart(format!(
                            "SSH tunnel up: {} → {} (Ctrl-C stops it)",
                            state.url,
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
                managed.registry().clean(&key);
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

fn status(args: StatusArgs) -> ExitCode {
    let registry = TunnelRegistry::new(&state_dir());
    let tunnels = tunnel::running(&registry);
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

fn down(args: DownArgs) -> ExitCode {
    let registry = TunnelRegistry::new(&state_dir());
    let tunnels: Vec<TunnelState> = tunnel::running(&registry)
        .into_iter()
        .filter(|s| args.target.as_deref().is_none_or(|t| s.matches(t)))
        .collect();
    let Some(rt) = runtime() else {
        return ExitCode::from(EXIT_USAGE);
    };
    let mut stopped = Vec::new();
    rt.block_on(async {
        for s in &tunnels {
            tunnel::stop(&registry, s).await;
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
