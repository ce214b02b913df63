//! `clawgate gateway run`: resolve settings (flag > env > config > default), refuse unsafe or
//! conflicting exposure (exit 78), free the port with `--force`, take the state dir's lock
//! (one gateway per state dir), set up TLS, bind the listeners `gateway.bind` asks for, and
//! serve until SIGTERM/SIGINT.

use clawgate_gateway::lock as gateway_lock;

use clap::Args;
use clawgate_config::{
    self as config, AuthMode, BindMode, GatewayConfig, GatewayRunInputs, GatewaySettings, Secret,
    TailscaleMode,
};
use clawgate_gateway::discovery::{self, Advertisement, Advertiser, MdnsMode};
use clawgate_gateway::exposure::{self, Exposure, RULES, Rule, Startup};
use clawgate_gateway::wide_area::{self, Zone};
use clawgate_gateway::{Gateway, GatewayOptions, bind, ingress, state_dir, tls};
use gateway_lock::{GatewayLock, LockError, Supervision};
use std::path::PathBuf;
use std::process::ExitCode;
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
    let in_container = bind::is_container(&env);
    let detector = bind::TailnetDetector::from_env(&env);
    let plan = match bind::resolve_bind(
        settings.bind,
        settings.custom_bind_host,
        &detector,
        in_container,
    ) {
        Ok(p) => p,
        Err(e) => return config_error(e),
    };
    for note in &plan.notes {
        eprintln!("clawgate: {note}");
    }
    let default_cfg = GatewayConfig::default();
    let gateway_cfg = loaded.as_ref().map_or(&default_cfg, |l| &l.gateway);
    if let Some(refusal) = startup_refusal(
        RULES,
        &settings,
        gateway_cfg,
        plan.is_loopback(),
        in_container,
    ) {
        eprintln!("{refusal}");
        return ExitCode::from(EXIT_CONFIG);
    }
    let runtime = match build_runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("clawgate: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.force
        && let Err(code) = runtime.block_on(force_free_port(settings.port))
    {
        return code;
    }
    let supervision = Supervision::detect(
        &env,
        plan.local_host(),
        settings.tls.as_ref().map(|t| t.cert_path.clone()),
    );
    // Before anything below writes to the state dir (token, certificate, database).
    let mut lock = match GatewayLock::acquire(
        &settings.state_dir,
        &settings.config_path,
        settings.port,
        gateway_lock::allow_multi(&env),
    ) {
        Ok(lock) => lock,
        Err(err) => {
            if let LockError::Held { holder, .. } = &err {
                // The incumbent's own port when its lock names one: it may listen elsewhere.
                let port = holder.and_then(|h| h.port).unwrap_or(settings.port);
                if let Some(code) = runtime.block_on(defer_to_incumbent(&supervision, port)) {
                    return code;
                }
            }
            eprintln!("clawgate: Gateway failed to start: {err}");
            if let Some(fix) = err.fix(&settings.state_dir) {
                eprintln!("clawgate: {fix}");
            }
            return ExitCode::FAILURE;
        }
    };
    let ssh_bin = settings
        .node_ssh_verify
        .enabled
        .then(clawgate_client::tunnel::find_ssh)
        .and_then(|found| {
            // The probe runs the OpenSSH client the SSH tunnels use; without one it is off
            // (said once, at start).
            found
                .inspect_err(|e| tracing::info!("gateway.nodes.pairing.sshVerify is off: {e}"))
                .ok()
        });
    let mut options = match GatewayOptions::from_settings(&settings, loaded.as_ref(), ssh_bin) {
        Ok(o) => o,
        Err(e) => return config_error(e),
    };
    let (gateway_cfg, discovery_cfg) = loaded.map(|l| (l.gateway, l.discovery)).unwrap_or_default();
    let mode = options.auth_mode;
    let mdns_mode = discovery_cfg.mdns_mode.unwrap_or_default();
    let wide_area_domain = discovery_cfg.wide_area_domain;
    let mut tls_fingerprint = None;
    if let Some(tls) = &settings.tls {
        let paths = tls::TlsPaths::from_settings(tls);
        let mut sans = Vec::new();
        if let Some(t) = &plan.tailnet {
            sans.push(t.ipv4.to_string());
            sans.extend(t.dns_name.clone());
        }
        if let Some(h) = settings.custom_bind_host {
            sans.push(h.to_string());
        }
        let status = match tls::ensure_certificate(&paths, &sans) {
            Ok(s) => s,
            Err(e) => return config_error(e),
        };
        if status.generated {
            eprintln!(
                "clawgate: gateway tls: generated self-signed cert at {} (key {}, mode 0600)",
                paths.cert.display(),
                paths.key.display()
            );
        }
        match tls::TlsServer::load(&paths) {
            Ok(server) => options.tls = Some(server),
            Err(e) => return config_error(e),
        }
        eprintln!(
            "clawgate: gateway tls: certificate sha256 fingerprint {} (clients pin it with gateway.remote.tlsFingerprint or --tls-fingerprint; `clawgate gateway tls show` prints it again)",
            status.fingerprint
        );
        tls_fingerprint = Some(status.fingerprint);
    }
    // OpenClaw's Bonjour plugin is on by default only on macOS; elsewhere
    // `plugins.entries.bonjour.enabled: true` turns it on. It advertises whatever the bind: a
    // loopback-only gateway is announced without gatewayDirectReachable, for clients that
    // reach it through an SSH tunnel.
    let bonjour_enabled = discovery_cfg
        .bonjour_plugin
        .unwrap_or(cfg!(target_os = "macos"));
    // The wide-area zone needs the tailnet address whatever the bind.
    let tailnet = plan
        .tailnet
        .clone()
        .or_else(|| wide_area_domain.as_ref().and_then(|_| detector.detect()));
    let gateway_ad = Advertisement::for_this_host(
        &env,
        mdns_mode,
        settings.port,
        tls_fingerprint,
        !plan.is_loopback(),
        tailnet.as_ref().and_then(|t| t.dns_name.as_deref()),
    );
    let announcements = Announcements {
        beacon: (bonjour_enabled
            && mdns_mode != MdnsMode::Off
            && !discovery::disabled_by_env(&env, in_container))
        .then(|| gateway_ad.clone()),
        zone: wide_area_domain
            .and_then(|domain| wide_area_zone(&domain, gateway_ad, tailnet.as_ref())),
    };
    if mode == clawgate_gateway::AuthMode::TrustedProxy {
        options.local_addresses =
            bind::local_ipv4_addresses(std::path::Path::new("/proc/net/fib_trie"))
                .into_iter()
                .map(std::net::IpAddr::V4)
                .collect();
    }
    let tailscale = match settings.tailscale_mode {
        TailscaleMode::Off => None,
        TailscaleMode::Serve => Some(clawgate_gateway::tailscale::RouteMode::Serve),
        TailscaleMode::Funnel => Some(clawgate_gateway::tailscale::RouteMode::Funnel),
    };
    let allow_tailscale = exposure::allow_tailscale(
        gateway_cfg.auth.allow_tailscale,
        settings.tailscale_mode,
        settings.auth.mode,
    );
    if tailscale.is_some() && allow_tailscale {
        options.tailscale_auth = Some(clawgate_gateway::TailscaleAuth {
            tailscale_bin: detector.tailscale_bin.clone(),
            localapi_socket: detector.localapi_socket.clone(),
        });
    }
    let route = tailscale.map(|mode| (mode, detector.tailscale_bin.clone()));
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
    let code = runtime.block_on(serve(
        options,
        plan,
        clawgate_gateway::allowed_origins_seed(&settings, &gateway_cfg),
        route,
        announcements,
        &mut lock,
        &supervision,
    ));
    // Tasks still holding the state end with the runtime; only then may a successor have it.
    drop(runtime);
    drop(lock);
    code
}

/// The runtime `gateway run` serves on (built before the lock is taken: `--force` and the
/// supervised health probe run on it too).
fn build_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    // Half the cores, at least one: the gateway shares its host with the CLI, node hosts and
    // the agent's tools, and on a small machine one worker beats two that keep waking each
    // other (2 cores: 8-socket `health` 89k → 115k calls/s, handshakes 11k → 16k/s).
    // TOKIO_WORKER_THREADS still decides when set.
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        builder.worker_threads((cores / 2).max(1));
    }
    builder.enable_all().build()
}

/// `--force`: stops what listens on `port`, saying what it stopped (OpenClaw's lines).
async fn force_free_port(port: u16) -> Result<(), ExitCode> {
    use std::io::IsTerminal as _;
    if port == 0 {
        return Ok(());
    }
    let interactive = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    match gateway_lock::free_port(port, interactive).await {
        Ok(stopped) => {
            for l in stopped {
                eprintln!(
                    "clawgate: force: killed pid {} ({}) on port {port}",
                    l.pid, l.command
                );
            }
            Ok(())
        }
        Err(e @ gateway_lock::ForceError::GatewayListeners(_)) => {
            eprintln!("clawgate: {e}");
            Err(ExitCode::FAILURE)
        }
        Err(e) => {
            eprintln!(
                "clawgate: Could not free port {port}: {e}. Inspect the listener with `ss -ltnp 'sport = :{port}'`."
            );
            Err(ExitCode::FAILURE)
        }
    }
}

/// Under systemd, a healthy incumbent on `port` ends this start with exit 78 (see
/// [`Supervision::defer_to_incumbent`]).
async fn defer_to_incumbent(supervision: &Supervision, port: u16) -> Option<ExitCode> {
    let reason = supervision.defer_to_incumbent(port).await?;
    eprintln!("clawgate: Gateway failed to start: {reason}");
    Some(ExitCode::from(EXIT_CONFIG))
}

/// The start-up refusal of `rules` for these settings, as `gateway run` prints it before
/// exiting 78: OpenClaw's CLI-layer refusal as a paragraph (the refusal, what to do, then
/// the hints), its runtime checks as one line.
pub(crate) fn startup_refusal(
    rules: &[Rule],
    settings: &GatewaySettings,
    cfg: &GatewayConfig,
    loopback: bool,
    in_container: bool,
) -> Option<String> {
    let facts = Exposure::of_gateway(settings, cfg, loopback, in_container);
    let (startup, f) = exposure::startup_refusal(rules, &facts)?;
    Some(match startup {
        Startup::RefusedWithFix => {
            let mut lines = vec![f.title];
            lines.extend((!f.detail.is_empty()).then_some(f.detail));
            lines.extend(f.remediation);
            lines.extend(settings.hints.iter().cloned());
            lines.join("\n")
        }
        Startup::Refused | Startup::Starts => format!("clawgate: {}", f.title),
    })
}

type TailscaleRoute = Option<(clawgate_gateway::tailscale::RouteMode, std::ffi::OsString)>;

/// With `gateway.tailscale.mode` serve|funnel: the dedicated loopback listener and the
/// supervised `tailscale serve|funnel` child publishing it.
async fn with_tailscale_listener(
    listeners: Vec<tokio::net::TcpListener>,
    route: TailscaleRoute,
    gateway: &Gateway,
    scheme: &str,
    shutdown: &CancellationToken,
) -> Result<
    (
        Vec<(tokio::net::TcpListener, ingress::ListenerKind)>,
        Option<tokio::task::JoinHandle<()>>,
    ),
    ExitCode,
> {
    use clawgate_gateway::tailscale::{RouteError, RouteMode, route_args, start_route_owner};
    let mut all: Vec<_> = listeners
        .into_iter()
        .map(|l| (l, ingress::ListenerKind::Ordinary))
        .collect();
    let Some((mode, bin)) = route else {
        return Ok((all, None));
    };
    let ts_listener = match tokio::net::TcpListener::bind(("127.0.0.1", 0)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("clawgate: cannot open the Tailscale listener on 127.0.0.1: {e}");
            return Err(ExitCode::FAILURE);
        }
    };
    let ts_port = ts_listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let task =
        match start_route_owner(bin, mode, ts_port, gateway.options.port, shutdown.clone()).await {
            Ok(task) => task,
            Err(e @ RouteError::MissingBinary { .. }) => return Err(config_error(e)),
            Err(e) => {
                eprintln!("clawgate: tailscale {}: {e}", mode.as_str());
                return Err(ExitCode::FAILURE);
            }
        };
    eprintln!(
        "clawgate: tailscale {} listener on {scheme}://127.0.0.1:{ts_port} (`tailscale {}` publishes it; identity headers {})",
        mode.as_str(),
        route_args(mode, ts_port).join(" "),
        if gateway.options.tailscale_auth.is_some() {
            "accepted after whois (gateway.auth.allowTailscale)"
        } else {
            "not used (gateway.auth.allowTailscale is off)"
        }
    );
    let kind = match mode {
        RouteMode::Serve => ingress::ListenerKind::TailscaleServe,
        RouteMode::Funnel => ingress::ListenerKind::TailscaleFunnel,
    };
    all.push((ts_listener, kind));
    Ok((all, Some(task)))
}

async fn serve(
    mut options: GatewayOptions,
    plan: bind::BindPlan,
    seed_hosts: Option<Vec<String>>,
    route: TailscaleRoute,
    announcements: Announcements,
    lock: &mut GatewayLock,
    supervision: &Supervision,
) -> ExitCode {
    let (listeners, port) = match bind::bind_listeners(&plan, options.port).await {
        Ok(x) => x,
        Err(e @ bind::BindFailure::InUse { .. }) => {
            if let Some(code) = defer_to_incumbent(supervision, options.port).await {
                return code;
            }
            eprintln!(
                "clawgate: {e} (port {} is already in use); stop that gateway (`clawgate gateway status` checks it) or choose another port with --port or CLAWGATE_GATEWAY_PORT",
                options.port
            );
            return ExitCode::from(EXIT_PORT_IN_USE);
        }
        Err(e) => {
            eprintln!("clawgate: {e}");
            return ExitCode::FAILURE;
        }
    };
    options.port = port;
    if let Err(e) = lock.record_port(port) {
        tracing::warn!(
            "cannot record port {port} in {}: {e}",
            lock.state_lock_path().display()
        );
    }
    if let Some(hosts) = seed_hosts {
        let scheme = if options.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let seeded: Vec<String> = hosts
            .iter()
            .map(|h| format!("{scheme}://{h}:{port}"))
            .collect();
        eprintln!(
            "clawgate: gateway: seeded gateway.controlUi.allowedOrigins {seeded:?} for bind={} (required since v2026.2.26; see issue #29385). Applied for this runtime without writing config; set gateway.controlUi.allowedOrigins to choose the origins yourself.",
            plan.mode
        );
        options.ingress.allowed_origins = seeded;
    }
    let scheme = if options.tls.is_some() { "wss" } else { "ws" };
    let urls: Vec<String> = listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .map(|a| format!("{scheme}://{a}"))
        .collect();
    if !plan.is_loopback() {
        eprintln!(
            "clawgate: gateway is binding to a non-loopback address ({}: {}); anyone who can reach it can try to authenticate — keep the token/password secret{}",
            plan.mode,
            plan.host,
            if options.tls.is_none() {
                " and prefer TLS (gateway.tls.enabled) or an SSH tunnel on untrusted networks"
            } else {
                ""
            }
        );
    }
    if let Some(zone) = announcements.zone {
        write_zone(
            Zone {
                gateway: Advertisement {
                    gateway_port: port,
                    ..zone.gateway
                },
                ..zone
            },
            &options.state_dir,
        );
    }
    let gateway = match Gateway::new(options) {
        Ok(g) => g,
        Err(clawgate_gateway::InitError::Config(e)) => {
            eprintln!("clawgate: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
        Err(e) => {
            eprintln!("clawgate: cannot open the gateway state: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // Published before the readiness line, so whoever waits for that line can browse for it.
    let advertiser = announcements.beacon.and_then(|ad| {
        advertise(Advertisement {
            gateway_port: port,
            ..ad
        })
    });
    eprintln!(
        "clawgate gateway listening on {} (auth: {}, state: {})",
        urls.join(" and "),
        gateway.options.auth_mode.as_str(),
        gateway.options.state_dir.display()
    );
    let shutdown = CancellationToken::new();
    let (all, route_task) =
        match with_tailscale_listener(listeners, route, &gateway, scheme, &shutdown).await {
            Ok(x) => x,
            Err(code) => return code,
        };
    tokio::spawn(crate::process::cancel_on_signal(
        shutdown.clone(),
        "clawgate: shutting down (signal received)",
    ));
    clawgate_gateway::serve_listeners(all, gateway, shutdown).await;
    if let Some(a) = advertiser {
        let _ = tokio::task::spawn_blocking(move || a.stop()).await;
    }
    if let Some(task) = route_task {
        let _ = task.await;
    }
    eprintln!("clawgate gateway stopped");
    ExitCode::SUCCESS
}

/// How the gateway makes itself known once it listens.
struct Announcements {
    /// The Bonjour beacon, unless Bonjour is off.
    beacon: Option<Advertisement>,
    /// The wide-area DNS-SD zone, when `discovery.wideArea.domain` is set and usable.
    zone: Option<Zone>,
}

/// The zone for `discovery.wideArea.domain`, or `None` with OpenClaw's reason as a warning:
/// like OpenClaw, the gateway serves without it.
fn wide_area_zone(
    domain: &str,
    gateway: Advertisement,
    tailnet: Option<&bind::TailnetInfo>,
) -> Option<Zone> {
    let domain = match wide_area::normalize_domain(domain) {
        Ok(d) => d?,
        Err(e) => {
            tracing::warn!(
                "{} {domain:?}: {e}; skipping unicast DNS-SD zone update",
                wide_area::DOMAIN_KEY
            );
            return None;
        }
    };
    let Some(tailnet) = tailnet else {
        tracing::warn!(
            "{} is set, but no Tailscale IPv4 address was found; skipping unicast DNS-SD zone update",
            wide_area::DOMAIN_KEY
        );
        return None;
    };
    Some(Zone::for_this_host(
        gateway,
        domain,
        tailnet.ipv4,
        wide_area::tailnet_ipv6(),
    ))
}

/// Writes the wide-area zone; a failure is a warning, as in OpenClaw.
fn write_zone(zone: Zone, state_dir: &std::path::Path) {
    match zone.write(state_dir, std::time::SystemTime::now()) {
        Ok(written) => eprintln!(
            "clawgate: discovery: wide-area DNS-SD {} ({} → {})",
            if written.changed {
                "updated"
            } else {
                "unchanged"
            },
            zone.domain,
            written.path.display()
        ),
        Err(e) => tracing::warn!("wide-area discovery update failed: {e}"),
    }
}

/// Publishes the Bonjour beacon; a failure is a warning, as in OpenClaw: the gateway serves
/// without it.
fn advertise(ad: Advertisement) -> Option<Advertiser> {
    match Advertiser::start(&ad) {
        Ok(a) => {
            eprintln!(
                "clawgate: bonjour: advertised {} on port {} (discovery.mdns.mode {}; \"off\" or OPENCLAW_DISABLE_BONJOUR=1 turns it off)",
                a.fullname(),
                ad.gateway_port,
                ad.mode.as_str()
            );
            Some(a)
        }
        Err(e) => {
            tracing::warn!("bonjour: not advertising the gateway: {e}");
            None
        }
    }
}
