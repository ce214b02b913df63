//! `clawgate node run`: the headless node host in the foreground. Flags and environment
//! are resolved here; the work lives in `clawgate-node-host`.

use crate::output::exit_code;
use clap::Args;
use clawgate_client::failure::tunnel_failure;
use clawgate_client::tunnel::{self, DEFAULT_READY_TIMEOUT, Ensured, TunnelRegistry, TunnelSpec};
use clawgate_config as config;
use clawgate_node_host::host::{Notice, Retry, Wait, log_notice};
use clawgate_node_host::settings::{self, NodeRunInputs, node_state_dir};
use clawgate_node_host::{DEFAULT_MAX_CONCURRENT, FatalError, NodeHostConfig};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Stopped by SIGTERM/SIGINT.
pub const EXIT_OK: u8 = 0;
/// The state directory cannot be used.
pub const EXIT_STATE: u8 = 1;
/// Bad flags or URL.
pub const EXIT_USAGE: u8 = 2;
/// The gateway refused the credentials for good (wrong token or password, revoked device
/// token, incompatible protocol).
pub const EXIT_REJECTED: u8 = 4;

const EXIT_HELP: &str = "\
Exit codes: 0 stopped by SIGTERM/SIGINT, 1 state directory unusable, 2 usage error,
4 rejected by the gateway for good (wrong token/password, revoked device token).
Network errors, gateway restarts and pending pairing approvals are retried forever.";

#[derive(Args, Debug)]
#[command(after_long_help = EXIT_HELP)]
pub struct RunArgs {
    /// Gateway host.
    #[arg(long, default_value = "127.0.0.1", conflicts_with = "url")]
    pub host: String,
    /// Gateway port.
    #[arg(long, default_value_t = config::DEFAULT_PORT, conflicts_with = "url")]
    pub port: u16,
    /// Gateway URL (ws:// or wss://), instead of --host/--port/--tls.
    #[arg(long)]
    pub url: Option<String>,
    /// Reach the gateway through an SSH tunnel to this host ([user@]host[:port]), opened or
    /// reused like `clawgate tunnel up`; --port is then the gateway's port on that host.
    #[arg(long, value_name = "[USER@]HOST[:PORT]", conflicts_with_all = ["url", "host"])]
    pub ssh: Option<String>,
    /// Private key for the SSH tunnel (ssh -i).
    #[arg(long, value_name = "PATH", requires = "ssh")]
    pub ssh_identity: Option<PathBuf>,
    /// Connect with TLS (wss://).
    #[arg(long, conflicts_with = "url")]
    pub tls: bool,
    /// Pin the gateway's TLS certificate (SHA-256 fingerprint); implies --tls. Repeat it
    /// (or separate pins with commas) to accept any of several, e.g. the current and the
    /// staged certificate while the gateway rotates.
    #[arg(long, value_name = "SHA256", value_delimiter = ',')]
    pub tls_fingerprint: Vec<String>,
    /// Name shown in `nodes list` (default: the host name).
    #[arg(long)]
    pub display_name: Option<String>,
    /// Gateway token (else CLAWGATE_GATEWAY_TOKEN, OPENCLAW_GATEWAY_TOKEN).
    #[arg(long)]
    pub token: Option<String>,
    /// Gateway password (else CLAWGATE_GATEWAY_PASSWORD, OPENCLAW_GATEWAY_PASSWORD).
    #[arg(long)]
    pub password: Option<String>,
    /// Node state directory: identity, device token, exec approvals
    /// (default: <state dir>/node).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Invocations served at once.
    #[arg(long, default_value_t = DEFAULT_MAX_CONCURRENT, value_name = "N")]
    pub max_concurrent: usize,
}

impl RunArgs {
    fn inputs(&self) -> NodeRunInputs {
        NodeRunInputs {
            host: self.host.clone(),
            port: self.port,
            url: self.url.clone(),
            through_ssh: self.ssh.is_some(),
            tls: self.tls,
            tls_fingerprint: self.tls_fingerprint.clone(),
            display_name: self.display_name.clone(),
            token: self.token.clone(),
            password: self.password.clone(),
            state_dir: self.state_dir.clone(),
            max_concurrent: self.max_concurrent,
        }
    }
}

/// The node host config ([`settings::resolve`]), its warnings printed.
pub fn resolve(args: &RunArgs) -> Result<NodeHostConfig, String> {
    let resolved = settings::resolve(&args.inputs())?;
    for w in &resolved.warnings {
        eprintln!("warning: {w}");
    }
    Ok(resolved.config)
}

/// `clawgate node identity`.
#[derive(Debug, Args)]
pub struct IdentityArgs {
    /// Output JSON
    #[arg(long)]
    pub json: bool,
    /// Node state directory (default: <state dir>/node), as for `node run`.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

/// `clawgate node identity [--json]`: the node host's device id and public key, printed as
/// OpenClaw's `openclaw node identity` prints them. Read-only: a gateway verifying a pairing
/// over SSH runs it on this host, and a host that never ran the node host must not get a
/// fresh identity from that.
pub fn identity(args: IdentityArgs) -> ExitCode {
    let path =
        node_state_dir(args.state_dir.as_deref()).join(clawgate_node_host::state::IDENTITY_FILE);
    let identity = match clawgate_client::DeviceIdentity::load(&path) {
        Ok(identity) => identity,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "no node device identity found (start the node host once with `clawgate node run`)"
            );
            return ExitCode::from(1);
        }
        Err(e) => {
            eprintln!("clawgate: cannot read the node device identity: {e}");
            return ExitCode::from(1);
        }
    };
    if args.json {
        println!(
            "{}",
            serde_json::json!({"deviceId": identity.id(), "publicKey": identity.public_key()})
        );
    } else {
        println!("deviceId:  {}", identity.id());
        println!("publicKey: {}", identity.public_key());
    }
    ExitCode::SUCCESS
}

/// `--ssh`: opens (or reuses) the tunnel; the node host then dials its local end.
fn open_ssh_tunnel(args: &RunArgs, target: &str) -> Result<Ensured, ExitCode> {
    let mut spec = TunnelSpec::new(target);
    spec.remote_port = args.port;
    spec.identity = args.ssh_identity.clone();
    spec.known_hosts = std::env::var_os(tunnel::KNOWN_HOSTS_ENV).map(PathBuf::from);
    let progress = crate::term::Progress::new(false);
    let state_dir = config::resolve_state_dir(None, &config::process_env);
    let result =
        tunnel::ensure_supervised(&spec, None, &state_dir, &progress, DEFAULT_READY_TIMEOUT);
    progress.clear();
    result.map_err(|e| {
        let f = tunnel_failure(&e);
        eprintln!(
            "clawgate node run: cannot open the SSH tunnel: {}",
            f.message
        );
        for fix in &f.fixes {
            eprintln!("  {}", fix.trim_start());
        }
        ExitCode::from(exit_code(f.kind))
    })
}

/// What the spinner says while the node host waits for its next attempt:
/// `gateway unreachable (connection refused); retrying in 4s (attempt 3)`.
pub fn retry_message(retry: &Retry, remaining: Duration) -> String {
    const REASON_MAX: usize = 80;
    let mut reason: String = retry.reason.chars().take(REASON_MAX).collect();
    if retry.reason.chars().count() > REASON_MAX {
        reason.push('…');
    }
    let what = match retry.wait {
        Wait::Unreachable => format!("gateway unreachable ({reason})"),
        Wait::PairingApproval => format!("waiting for an operator to approve this node ({reason})"),
    };
    let when = match remaining.as_millis().div_ceil(1000) {
        0 => "connecting".to_owned(),
        secs => format!("retrying in {secs}s"),
    };
    format!("{what}; {when} (attempt {})", retry.attempt)
}

/// On a terminal: a spinner with what the node host waits for, since when, and the live
/// countdown to the next attempt; the log lines it would print go above it (each new one
/// once, not at every attempt).
struct LiveWait {
    state: Mutex<LiveState>,
}

#[derive(Default)]
struct LiveState {
    /// Shown from the first failed attempt until the next connection.
    spinner: Option<crate::term::Progress>,
    retry: Option<(Retry, Instant)>,
    last_line: Option<String>,
}

impl LiveWait {
    /// Starts the countdown ticker on the current runtime.
    fn start() -> Arc<LiveWait> {
        let live = Arc::new(LiveWait {
            state: Mutex::default(),
        });
        let weak = Arc::downgrade(&live);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                let Some(live) = weak.upgrade() else {
                    break;
                };
                let state = live.lock();
                if let (Some(spinner), Some((retry, at))) = (&state.spinner, &state.retry) {
                    spinner.set(retry_message(
                        retry,
                        at.saturating_duration_since(Instant::now()),
                    ));
                }
            }
        });
        live
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LiveState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn notice(&self, notice: Notice) {
        let mut guard = self.lock();
        let state = &mut *guard;
        match notice {
            Notice::Line(line) => match &state.spinner {
                Some(spinner) => spinner.println(&line),
                None => eprintln!("{line}"),
            },
            Notice::Connected(line) => {
                state.spinner = None;
                state.retry = None;
                state.last_line = None;
                eprintln!("{line}");
            }
            Notice::Retrying(retry) => {
                let message = retry_message(&retry, retry.delay);
                let spinner = match &mut state.spinner {
                    Some(spinner) => {
                        spinner.set(message);
                        spinner
                    }
                    // A new wait: its elapsed time starts now.
                    none => {
                        let spinner = none.insert(crate::term::Progress::new(false));
                        spinner.restart(message);
                        spinner
                    }
                };
                if let Some(line) = &retry.line
                    && state.last_line.as_ref() != Some(line)
                {
                    spinner.println(line);
                    state.last_line = Some(line.clone());
                }
                state.retry = Some((retry.clone(), Instant::now() + retry.delay));
            }
        }
    }

    /// Removes the spinner (before the last words).
    fn finish(&self) {
        *self.lock() = LiveState::default();
    }
}

pub fn run(mut args: RunArgs) -> ExitCode {
    crate::process::init_logging();
    let mut tunnel_reused = false;
    let tunnel = match args.ssh.clone() {
        Some(target) => match open_ssh_tunnel(&args, &target) {
            Ok(Ensured { state, reused }) => {
                tunnel_reused = reused;
                let scheme = if args.tls || !args.tls_fingerprint.is_empty() {
                    "wss"
                } else {
                    "ws"
                };
                args.url = Some(format!("{scheme}://127.0.0.1:{}", state.local_port));
                eprintln!(
                    "node host: through the SSH tunnel {} → {} (port {} there)",
                    state.url,
                    state.spec.describe(),
                    state.spec.remote_port
                );
                Some(state)
            }
            Err(code) => return code,
        },
        None => None,
    };
    let config = match resolve(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("clawgate node run: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("clawgate node run: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_STATE);
        }
    };
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        tokio::spawn(crate::process::cancel_on_signal(
            shutdown.clone(),
            "node host stopping (signal received)",
        ));
        let result = if crate::term::stderr_is_live() {
            let live = LiveWait::start();
            let tell = live.clone();
            let result =
                clawgate_node_host::host::run_with(config, shutdown, move |n| tell.notice(n)).await;
            live.finish();
            result
        } else {
            clawgate_node_host::host::run_with(config, shutdown, log_notice).await
        };
        // A tunnel this command opened goes with it; one it reused stays.
        if let Some(state) = &tunnel
            && !tunnel_reused
        {
            let dir = config::resolve_state_dir(None, &config::process_env);
            tunnel::stop(&TunnelRegistry::new(&dir), state).await;
        }
        match result {
            Ok(()) => {
                eprintln!("node host stopped");
                ExitCode::from(EXIT_OK)
            }
            Err(e) => {
                eprintln!("clawgate node run: {e}");
                ExitCode::from(match e {
                    FatalError::Auth(_) => EXIT_REJECTED,
                    FatalError::Config(_) => EXIT_USAGE,
                    FatalError::State(_) => EXIT_STATE,
                })
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: RunArgs,
    }

    fn parse(argv: &[&str]) -> Result<RunArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("node-run").chain(argv.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn urls_from_flags() {
        let a = parse(&[]).unwrap();
        assert_eq!(
            settings::gateway_url(&a.inputs()).unwrap(),
            "ws://127.0.0.1:18789"
        );
        let a = parse(&["--host", "gw.example", "--port", "443", "--tls"]).unwrap();
        assert_eq!(
            settings::gateway_url(&a.inputs()).unwrap(),
            "wss://gw.example:443"
        );
        let a = parse(&["--host", "::1", "--port", "1"]).unwrap();
        assert_eq!(settings::gateway_url(&a.inputs()).unwrap(), "ws://[::1]:1");
        let a = parse(&["--host", "h", "--tls-fingerprint", "ab"]).unwrap();
        assert!(
            settings::gateway_url(&a.inputs())
                .unwrap()
                .starts_with("wss://")
        );
        let a = parse(&[
            "--host",
            "h",
            "--tls-fingerprint",
            "ab,cd",
            "--tls-fingerprint",
            "ef",
        ])
        .unwrap();
        assert_eq!(a.tls_fingerprint, ["ab", "cd", "ef"]);
        let a = parse(&["--url", "ws://10.0.0.1:9/"]).unwrap();
        assert_eq!(
            settings::gateway_url(&a.inputs()).unwrap(),
            "ws://10.0.0.1:9"
        );
        let a = parse(&["--url", "http://x"]).unwrap();
        assert!(settings::gateway_url(&a.inputs()).is_err());
        assert!(parse(&["--url", "ws://x:1", "--host", "y"]).is_err());
    }

    #[test]
    fn pin_sets_are_checked_and_normalised() {
        let (a, b) = ("ab".repeat(32), "cd".repeat(32));
        let current = format!("sha256:{}", a.to_uppercase());
        let args = [
            "--url",
            "wss://gw.example:443",
            "--token",
            "t",
            "--tls-fingerprint",
            &current,
            "--tls-fingerprint",
            &b,
        ];
        let config = resolve(&parse(&args).unwrap()).unwrap();
        assert_eq!(config.tls_fingerprint, Some(format!("{a},{b}")));
        let bad = parse(&[
            "--url",
            "wss://h:1",
            "--token",
            "t",
            "--tls-fingerprint",
            "nope",
        ]);
        let err = resolve(&bad.unwrap()).unwrap_err();
        assert!(
            err.contains("--tls-fingerprint") && err.contains("\"nope\""),
            "{err}"
        );
    }

    #[test]
    fn the_retry_spinner_says_what_it_waits_for() {
        let mut retry = Retry {
            line: None,
            wait: Wait::Unreachable,
            reason: "connection refused".into(),
            delay: Duration::from_secs(4),
            attempt: 3,
        };
        assert_eq!(
            retry_message(&retry, Duration::from_millis(3200)),
            "gateway unreachable (connection refused); retrying in 4s (attempt 3)"
        );
        assert_eq!(
            retry_message(&retry, Duration::ZERO),
            "gateway unreachable (connection refused); connecting (attempt 3)"
        );
        retry.reason = "x".repeat(200);
        let long = retry_message(&retry, Duration::from_secs(1));
        assert!(long.contains(&format!("({}…)", "x".repeat(80))), "{long}");
        retry.wait = Wait::PairingApproval;
        retry.reason = "request r1".into();
        assert_eq!(
            retry_message(&retry, Duration::from_secs(30)),
            "waiting for an operator to approve this node (request r1); retrying in 30s (attempt 3)"
        );
    }
}
