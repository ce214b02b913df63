//! `clawgate gateway run`: resolve settings (flag > env > config > default), then start and
//! serve until SIGTERM/SIGINT through [`clawgate_gateway::startup`] (refusing unsafe or
//! conflicting exposure, the `--force`, the state dir's lock, TLS, the listeners); its lines
//! go to stderr and its failures become exit codes here.

use clap::Args;
use clawgate_config::{
    self as config, AuthMode, BindMode, GatewayRunInputs, Secret, TailscaleMode,
};
use clawgate_gateway::startup::{self, FailureKind, StartRequest};
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit code for configuration errors (EX_CONFIG); supervisors should not restart on it.
const EXIT_CONFIG: u8 = 78;
/// Exit code when the port is taken (EX_UNAVAILABLE).
const EXIT_PORT_IN_USE: u8 = 69;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Port for HTTP and WebSocket [env: CLAWGATE_GATEWAY_PORT, OPENCLAW_GATEWAY_PORT] [default: 18789]
    #[arg(long)]
    port: Option<u16>,
    /// Interfaces to listen on: loopback (127.0.0.1 and ::1), lan (0.0.0.0), tailnet (the
    /// Tailscale address, plus 127.0.0.1), custom (gateway.customBindHost, plus 127.0.0.1) or
    /// auto (0.0.0.0 in containers, else loopback). Non-loopback binds need a token or password.
    #[arg(long)]
    bind: Option<String>,
    /// How clients authenticate: token, password, none or trusted-proxy
    #[arg(long)]
    auth: Option<String>,
    /// Publish the gateway through Tailscale: off, serve (your tailnet) or funnel (the public
    /// internet; needs password auth). Overrides gateway.tailscale.mode
    #[arg(long)]
    tailscale: Option<String>,
    /// Shared token [env: CLAWGATE_GATEWAY_TOKEN, OPENCLAW_GATEWAY_TOKEN]
    #[arg(long)]
    token: Option<String>,
    /// Shared password [env: CLAWGATE_GATEWAY_PASSWORD, OPENCLAW_GATEWAY_PASSWORD]
    #[arg(long)]
    password: Option<String>,
    /// Config file (JSON5, OpenClaw keys) [env: CLAWGATE_CONFIG_PATH, OPENCLAW_CONFIG_PATH]
    #[arg(long)]
    config: Option<PathBuf>,
    /// State directory [env: CLAWGATE_STATE_DIR, OPENCLAW_STATE_DIR] [default: ~/.openclaw, ~/.openclaw-<profile> with --profile]
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Stop whatever listens on the port first (SIGTERM, then SIGKILL after 700 ms). Without
    /// a terminal it refuses when that is another gateway.
    #[arg(long)]
    force: bool,
}

fn config_error(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("clawgate: {msg}");
    ExitCode::from(EXIT_CONFIG)
}

pub fn run(args: RunArgs) -> ExitCode {
    crate::process::init_logging();
    let env = config::process_env;
    let bind = match args.bind.as_deref().map(str::parse::<BindMode>).transpose() {
        Ok(b) => b,
        Err(e) => return config_error(format_args!("--bind: {e}")),
    };
    let auth_mode = match args.auth.as_deref().map(str::parse::<AuthMode>).transpose() {
        Ok(a) => a,
        Err(e) => return config_error(format_args!("--auth: {e}")),
    };
    let location = config::locate_config(args.config.as_deref(), args.state_dir.as_deref(), &env);
    let loaded = match config::load_config(&location, &env) {
        Ok(l) => l,
        Err(e) => return config_error(e),
    };
    if let Some(l) = &loaded {
        for line in l.diagnostics() {
            tracing::warn!("{line}");
        }
    }
    let inputs = GatewayRunInputs {
        port: args.port,
        bind,
        auth_mode,
        token: args.token.map(Secret::new),
        password: args.password.map(Secret::new),
        config_path: args.config.clone(),
        state_dir: args.state_dir.clone(),
    };
    let mut settings = match config::resolve_gateway_settings(&inputs, loaded.as_ref(), &env) {
        Ok(s) => s,
        Err(e) => return config_error(e),
    };
    if let Some(t) = &args.tailscale {
        match t.parse::<TailscaleMode>() {
            Ok(m) => settings.tailscale_mode = m,
            Err(e) => {
                eprintln!("clawgate: --tailscale: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let interactive = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let request = StartRequest {
        settings,
        loaded,
        force: args.force,
        interactive,
    };
    let stop = crate::process::signalled("clawgate: shutting down (signal received)");
    match startup::run(request, &env, &|line| eprintln!("{line}"), stop) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("{}", failure.message);
            ExitCode::from(match failure.kind {
                FailureKind::Config => EXIT_CONFIG,
                FailureKind::PortInUse => EXIT_PORT_IN_USE,
                FailureKind::Other => 1,
            })
        }
    }
}
