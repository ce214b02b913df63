//! `clawgate gateway run`: resolve settings (flag > env > config > default), bind the loopback
//! listeners, and serve until SIGTERM/SIGINT.

use clap::Args;
use clawgate_config::{self as config, AuthMode, BindMode, GatewayRunInputs, Secret};
use clawgate_gateway::{Gateway, GatewayOptions, RateLimit, state_dir};
use std::net::{Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Exit code for configuration errors (EX_CONFIG); supervisors should not restart on it.
const EXIT_CONFIG: u8 = 78;
/// Exit code when the port is taken (EX_UNAVAILABLE).
const EXIT_PORT_IN_USE: u8 = 69;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Port for HTTP and WebSocket [env: CLAWGATE_GATEWAY_PORT, OPENCLAW_GATEWAY_PORT] [default: 18789]
    #[arg(long)]
    port: Option<u16>,
    /// Interfaces to listen on: loopback (127.0.0.1 and ::1)
    #[arg(long)]
    bind: Option<String>,
    /// How clients authenticate: token, password or none
    #[arg(long)]
    auth: Option<String>,
    /// Shared token [env: CLAWGATE_GATEWAY_TOKEN, OPENCLAW_GATEWAY_TOKEN]
    #[arg(long)]
    token: Option<String>,
    /// Shared password [env: CLAWGATE_GATEWAY_PASSWORD, OPENCLAW_GATEWAY_PASSWORD]
    #[arg(long)]
    password: Option<String>,
    /// Config file (JSON5, OpenClaw keys) [env: CLAWGATE_CONFIG_PATH, OPENCLAW_CONFIG_PATH]
    #[arg(long)]
    config: Option<PathBuf>,
    /// State directory [env: CLAWGATE_STATE_DIR, OPENCLAW_STATE_DIR] [default: ~/.openclaw]
    #[arg(long)]
    state_dir: Option<PathBuf>,
}

fn config_error(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("clawgate: {msg}");
    ExitCode::from(EXIT_CONFIG)
}

pub fn run(args: RunArgs) -> ExitCode {
    init_logging();
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
    let settings = match config::resolve_gateway_settings(&inputs, loaded.as_ref(), &env) {
        Ok(s) => s,
        Err(e) => return config_error(e),
    };
    if settings.bind != BindMode::Loopback {
        return config_error(format_args!(
            "gateway.bind={} is not supported by this version; use loopback (the default) and reach the gateway from other machines through an SSH tunnel: ssh -N -L {port}:127.0.0.1:{port} user@gateway-host",
            settings.bind,
            port = settings.port
        ));
    }
    let mode = match settings.auth.mode {
        AuthMode::Token => clawgate_gateway::AuthMode::Token,
        AuthMode::Password => clawgate_gateway::AuthMode::Password,
        AuthMode::None => clawgate_gateway::AuthMode::None,
        AuthMode::TrustedProxy => {
            return config_error(
                "gateway.auth.mode=trusted-proxy is not supported by this version; use token (the default) or password",
            );
        }
    };
    let mut options = GatewayOptions::new(mode, settings.state_dir.clone());
    options.port = settings.port;
    options.password = settings.auth.password.clone();
    options.token = settings.auth.token.clone();
    options.config_path = Some(settings.config_path.clone());
    options.auto_approve_local = settings.auto_approve_local;
    options.node_commands_allow = settings.node_commands_allow.clone();
    options.node_commands_deny = settings.node_commands_deny.clone();
    options.config = loaded
        .as_ref()
        .map(|l| l.raw.clone())
        .unwrap_or_else(|| serde_json::json!({}));
    let rl = &settings.auth.rate_limit;
    options.rate_limit = RateLimit {
        max_attempts: rl.max_attempts,
        window: Duration::from_millis(rl.window_ms),
        lockout: Duration::from_millis(rl.lockout_ms),
        exempt_loopback: rl.exempt_loopback,
        ..RateLimit::default()
    };
    if mode == clawgate_gateway::AuthMode::Token && options.token.is_none() {
        match state_dir::load_or_create_token(&settings.state_dir) {
            Ok(stored) => {
                let verb = if stored.created {
                    "generated a token and stored it in"
                } else {
                    "using the token stored in"
                };
                eprintln!(
                    "clawgate: no gateway token configured; {verb} {} (mode 0600)",
                    stored.path.display()
                );
                eprintln!(
                    "clawgate: local `clawgate` commands read it from there; for other clients: export CLAWGATE_GATEWAY_TOKEN=\"$(cat {})\"",
                    stored.path.display()
                );
                options.token = Some(stored.token);
            }
            Err(e) => {
                return config_error(format_args!(
                    "cannot store the generated token in {}: {e} (choose another --state-dir or set gateway.auth.token)",
                    settings.state_dir.display()
                ));
            }
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("clawgate: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(options))
}

async fn serve(mut options: GatewayOptions) -> ExitCode {
    let port = options.port;
    let v4 = match TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            eprintln!(
                "clawgate: port {port} on 127.0.0.1 is already in use (is another gateway running? `clawgate gateway status` checks it); stop it or choose another port with --port or CLAWGATE_GATEWAY_PORT"
            );
            return ExitCode::from(EXIT_PORT_IN_USE);
        }
        Err(e) => {
            eprintln!("clawgate: cannot listen on 127.0.0.1:{port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let port = v4.local_addr().map(|a| a.port()).unwrap_or(port);
    options.port = port;
    let mut listeners = vec![v4];
    // ::1 is optional: hosts without IPv6 loopback still serve on 127.0.0.1.
    match TcpListener::bind(SocketAddr::from((Ipv6Addr::LOCALHOST, port))).await {
        Ok(l) => listeners.push(l),
        Err(e) => tracing::info!("not listening on [::1]:{port}: {e}"),
    }
    let also_v6 = if listeners.len() > 1 {
        format!(" and ws://[::1]:{port}")
    } else {
        String::new()
    };
    let gateway = match Gateway::new(options) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("clawgate: cannot open the gateway state: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    eprintln!(
        "clawgate gateway listening on ws://127.0.0.1:{port}{also_v6} (auth: {}, state: {})",
        gateway.options.auth_mode.as_str(),
        gateway.options.state_dir.display()
    );
    let shutdown = CancellationToken::new();
    tokio::spawn(wait_for_signal(shutdown.clone()));
    clawgate_gateway::serve(listeners, gateway, shutdown).await;
    eprintln!("clawgate gateway stopped");
    ExitCode::SUCCESS
}

async fn wait_for_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    eprintln!("clawgate: shutting down (signal received)");
    shutdown.cancel();
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CLAWGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
