//! Starting a gateway from its resolved settings, as `clawgate gateway run` does: resolve the
//! bind, refuse unsafe or conflicting exposure ([`exposure::refusal_message`]), free the port
//! with `--force`, take the state dir's lock (one gateway per state dir, deferring to a
//! healthy incumbent under systemd), set up TLS and the token, bind the listeners
//! `gateway.bind` asks for, announce the gateway (Bonjour, wide-area DNS-SD, Tailscale
//! Serve/Funnel) and serve until `stop` resolves.
//!
//! What a person should read along the way goes to `say`, one line at a time; why the
//! gateway could not start or went on serving is a [`StartFailure`], whose [`FailureKind`]
//! the binary turns into an exit code.

use crate::discovery::{self, Advertisement, Advertiser, MdnsMode};
use crate::exposure::{self, RULES};
use crate::lock::{self as gateway_lock, GatewayLock, LockError, Supervision};
use crate::wide_area::{self, Zone};
use crate::{Gateway, GatewayOptions, bind, ingress, state_dir, tls};
use clawgate_config::{GatewayConfig, GatewaySettings, LoadedConfig, TailscaleMode};
use std::future::Future;
use tokio_util::sync::CancellationToken;

/// What `gateway run` starts: the resolved settings and the config they came from.
pub struct StartRequest {
    pub settings: GatewaySettings,
    pub loaded: Option<LoadedConfig>,
    /// `--force`: stop whatever listens on the port first.
    pub force: bool,
    /// A person is at the terminal (`--force` may then stop another gateway).
    pub interactive: bool,
}

/// Why a start failed, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The configuration cannot run, or a healthy incumbent serves already under systemd:
    /// a supervisor should not restart on it.
    Config,
    /// The port is taken by something that is not a healthy incumbent.
    PortInUse,
    /// Anything else (the lock, the listeners, the runtime).
    Other,
}

/// A start that failed: its kind and what to print (one or more lines).
#[derive(Debug)]
pub struct StartFailure {
    pub kind: FailureKind,
    pub message: String,
}

impl StartFailure {
    fn config(msg: impl std::fmt::Display) -> Self {
        StartFailure {
            kind: FailureKind::Config,
            message: format!("clawgate: {msg}"),
        }
    }

    fn other(message: String) -> Self {
        StartFailure {
            kind: FailureKind::Other,
            message,
        }
    }
}

/// Starts the gateway of `request` and serves until `stop` resolves (the binary passes its
/// SIGTERM/SIGINT wait), on a runtime of its own that ends before the state dir's lock is
/// released.
pub fn run(
    request: StartRequest,
    env: &dyn Fn(&str) -> Option<String>,
    say: &dyn Fn(&str),
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartFailure> {
    let StartRequest {
        settings,
        loaded,
        force,
        interactive,
    } = request;
    let in_container = bind::is_container(env);
    let detector = bind::TailnetDetector::from_env(env);
    let plan = match bind::resolve_bind(
        settings.bind,
        settings.custom_bind_host,
        &detector,
        in_container,
    ) {
        Ok(p) => p,
        Err(e) => return Err(StartFailure::config(e)),
    };
    for note in &plan.notes {
        say(&format!("clawgate: {note}"));
    }
    let default_cfg = GatewayConfig::default();
    let gateway_cfg = loaded.as_ref().map_or(&default_cfg, |l| &l.gateway);
    if let Some(message) = exposure::refusal_message(
        RULES,
        &settings,
        gateway_cfg,
        plan.is_loopback(),
        in_container,
    ) {
        return Err(StartFailure {
            kind: FailureKind::Config,
            message,
        });
    }
    let runtime = build_runtime().map_err(|e| {
        StartFailure::other(format!("clawgate: cannot start the async runtime: {e}"))
    })?;
    if force {
        runtime.block_on(force_free_port(settings.port, interactive, say))?;
    }
    let supervision = Supervision::detect(
        env,
        plan.local_host(),
        settings.tls.as_ref().map(|t| t.cert_path.clone()),
    );
    // Before anything below writes to the state dir (token, certificate, database).
    let mut lock = match GatewayLock::acquire(
        &settings.state_dir,
        &settings.config_path,
        settings.port,
        gateway_lock::allow_multi(env),
    ) {
        Ok(lock) => lock,
        Err(err) => {
            if let LockError::Held { holder, .. } = &err {
                // The incumbent's own port when its lock names one: it may listen elsewhere.
                let port = holder.and_then(|h| h.port).unwrap_or(settings.port);
                if let Some(deferred) = runtime.block_on(defer_to_incumbent(&supervision, port)) {
                    return Err(deferred);
                }
            }
            let mut message = format!("clawgate: Gateway failed to start: {err}");
            if let Some(fix) = err.fix(&settings.state_dir) {
                message.push_str(&format!("\nclawgate: {fix}"));
            }
            return Err(StartFailure::other(message));
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
        Err(e) => return Err(StartFailure::config(e)),
    };
    let (gateway_cfg, discovery_cfg) = loaded.map(|l| (l.gateway, l.discovery)).unwrap_or_default();
    let mode = options.auth_mode;
    let mdns_mode = discovery_cfg.mdns_mode.unwrap_or_default();
    let wide_area_domain = discovery_cfg.wide_area_domain;
    let mut tls_fingerprint = None;
    if let Some(tls) = &settings.tls {
        let paths = tls::TlsPaths::from_settings(tls);
        let sans = tls::extra_sans(plan.tailnet.as_ref(), settings.custom_bind_host);
        let status = match tls::ensure_certificate(&paths, &sans) {
            Ok(s) => s,
            Err(e) => return Err(StartFailure::config(e)),
        };
        if status.generated {
            say(&format!(
                "clawgate: gateway tls: generated self-signed cert at {} (key {}, mode 0600)",
                paths.cert.display(),
                paths.key.display()
            ));
        }
        match tls::TlsServer::load(&paths) {
            Ok(server) => options.tls = Some(server),
            Err(e) => return Err(StartFailure::config(e)),
        }
        say(&format!(
            "clawgate: gateway tls: certificate sha256 fingerprint {} (clients pin it with gateway.remote.tlsFingerprint or --tls-fingerprint; `clawgate gateway tls show` prints it again)",
            status.fingerprint
        ));
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
        env,
        mdns_mode,
        settings.port,
        tls_fingerprint,
        !plan.is_loopback(),
        tailnet.as_ref().and_then(|t| t.dns_name.as_deref()),
    );
    let announcements = Announcements {
        beacon: (bonjour_enabled
            && mdns_mode != MdnsMode::Off
            && !discovery::disabled_by_env(env, in_container))
        .then(|| gateway_ad.clone()),
        zone: wide_area_domain
            .and_then(|domain| wide_area_zone(&domain, gateway_ad, tailnet.as_ref())),
    };
    if mode == crate::AuthMode::TrustedProxy {
        options.local_addresses =
            bind::local_ipv4_addresses(std::path::Path::new("/proc/net/fib_trie"))
                .into_iter()
                .map(std::net::IpAddr::V4)
                .collect();
    }
    let tailscale = match settings.tailscale_mode {
        TailscaleMode::Off => None,
        TailscaleMode::Serve => Some(crate::tailscale::RouteMode::Serve),
        TailscaleMode::Funnel => Some(crate::tailscale::RouteMode::Funnel),
    };
    let allow_tailscale = exposure::allow_tailscale(
        gateway_cfg.auth.allow_tailscale,
        settings.tailscale_mode,
        settings.auth.mode,
    );
    if tailscale.is_some() && allow_tailscale {
        options.tailscale_auth = Some(crate::TailscaleAuth {
            tailscale_bin: detector.tailscale_bin.clone(),
            localapi_socket: detector.localapi_socket.clone(),
        });
    }
    let route = tailscale.map(|mode| (mode, detector.tailscale_bin.clone()));
    if mode == crate::AuthMode::Token && options.token.is_none() {
        match state_dir::load_or_create_token(&settings.state_dir) {
            Ok(stored) => {
                let verb = if stored.created {
                    "generated a token and stored it in"
                } else {
                    "using the token stored in"
                };
                say(&format!(
                    "clawgate: no gateway token configured; {verb} {} (mode 0600)",
                    stored.path.display()
                ));
                say(&format!(
                    "clawgate: local `clawgate` commands read it from there; for other clients: export CLAWGATE_GATEWAY_TOKEN=\"$(cat {})\"",
                    stored.path.display()
                ));
                options.token = Some(stored.token);
            }
            Err(e) => {
                return Err(StartFailure::config(format_args!(
                    "cannot store the generated token in {}: {e} (choose another --state-dir or set gateway.auth.token)",
                    settings.state_dir.display()
                )));
            }
        }
    }
    let served = runtime.block_on(serve(
        Serving {
            options,
            plan,
            seed_hosts: crate::allowed_origins_seed(&settings, &gateway_cfg),
            route,
            announcements,
        },
        &mut lock,
        &supervision,
        say,
        stop,
    ));
    // Tasks still holding the state end with the runtime; only then may a successor have it.
    drop(runtime);
    drop(lock);
    served
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
async fn force_free_port(
    port: u16,
    interactive: bool,
    say: &dyn Fn(&str),
) -> Result<(), StartFailure> {
    if port == 0 {
        return Ok(());
    }
    match gateway_lock::free_port(port, interactive).await {
        Ok(stopped) => {
            for l in stopped {
                say(&format!(
                    "clawgate: force: killed pid {} ({}) on port {port}",
                    l.pid, l.command
                ));
            }
            Ok(())
        }
        Err(e @ gateway_lock::ForceError::GatewayListeners(_)) => {
            Err(StartFailure::other(format!("clawgate: {e}")))
        }
        Err(e) => Err(StartFailure::other(format!(
            "clawgate: Could not free port {port}: {e}. Inspect the listener with `ss -ltnp 'sport = :{port}'`."
        ))),
    }
}

/// Under systemd, a healthy incumbent on `port` ends this start as a configuration failure
/// (exit 78: see [`Supervision::defer_to_incumbent`]).
async fn defer_to_incumbent(supervision: &Supervision, port: u16) -> Option<StartFailure> {
    let reason = supervision.defer_to_incumbent(port).await?;
    Some(StartFailure {
        kind: FailureKind::Config,
        message: format!("clawgate: Gateway failed to start: {reason}"),
    })
}

type TailscaleRoute = Option<(crate::tailscale::RouteMode, std::ffi::OsString)>;

/// With `gateway.tailscale.mode` serve|funnel: the dedicated loopback listener and the
/// supervised `tailscale serve|funnel` child publishing it.
async fn with_tailscale_listener(
    listeners: Vec<tokio::net::TcpListener>,
    route: TailscaleRoute,
    gateway: &Gateway,
    scheme: &str,
    shutdown: &CancellationToken,
    say: &dyn Fn(&str),
) -> Result<
    (
        Vec<(tokio::net::TcpListener, ingress::ListenerKind)>,
        Option<tokio::task::JoinHandle<()>>,
    ),
    StartFailure,
> {
    use crate::tailscale::{RouteError, RouteMode, route_args, start_route_owner};
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
            return Err(StartFailure::other(format!(
                "clawgate: cannot open the Tailscale listener on 127.0.0.1: {e}"
            )));
        }
    };
    let ts_port = ts_listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let task =
        match start_route_owner(bin, mode, ts_port, gateway.options.port, shutdown.clone()).await {
            Ok(task) => task,
            Err(e @ RouteError::MissingBinary { .. }) => return Err(StartFailure::config(e)),
            Err(e) => {
                return Err(StartFailure::other(format!(
                    "clawgate: tailscale {}: {e}",
                    mode.as_str()
                )));
            }
        };
    say(&format!(
        "clawgate: tailscale {} listener on {scheme}://127.0.0.1:{ts_port} (`tailscale {}` publishes it; identity headers {})",
        mode.as_str(),
        route_args(mode, ts_port).join(" "),
        if gateway.options.tailscale_auth.is_some() {
            "accepted after whois (gateway.auth.allowTailscale)"
        } else {
            "not used (gateway.auth.allowTailscale is off)"
        }
    ));
    let kind = match mode {
        RouteMode::Serve => ingress::ListenerKind::TailscaleServe,
        RouteMode::Funnel => ingress::ListenerKind::TailscaleFunnel,
    };
    all.push((ts_listener, kind));
    Ok((all, Some(task)))
}

/// What [`serve`] starts from: the options and what the gateway binds and announces.
struct Serving {
    options: GatewayOptions,
    plan: bind::BindPlan,
    /// The hosts of the `gateway.controlUi.allowedOrigins` seeded for this bind.
    seed_hosts: Option<Vec<String>>,
    route: TailscaleRoute,
    announcements: Announcements,
}

async fn serve(
    serving: Serving,
    lock: &mut GatewayLock,
    supervision: &Supervision,
    say: &dyn Fn(&str),
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartFailure> {
    let Serving {
        mut options,
        plan,
        seed_hosts,
        route,
        announcements,
    } = serving;
    let (listeners, port) = match bind::bind_listeners(&plan, options.port).await {
        Ok(x) => x,
        Err(e @ bind::BindFailure::InUse { .. }) => {
            if let Some(deferred) = defer_to_incumbent(supervision, options.port).await {
                return Err(deferred);
            }
            return Err(StartFailure {
                kind: FailureKind::PortInUse,
                message: format!(
                    "clawgate: {e} (port {} is already in use); stop that gateway (`clawgate gateway status` checks it) or choose another port with --port or CLAWGATE_GATEWAY_PORT",
                    options.port
                ),
            });
        }
        Err(e) => return Err(StartFailure::other(format!("clawgate: {e}"))),
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
        say(&format!(
            "clawgate: gateway: seeded gateway.controlUi.allowedOrigins {seeded:?} for bind={} (required since v2026.2.26; see issue #29385). Applied for this runtime without writing config; set gateway.controlUi.allowedOrigins to choose the origins yourself.",
            plan.mode
        ));
        options.ingress.allowed_origins = seeded;
    }
    let scheme = if options.tls.is_some() { "wss" } else { "ws" };
    let urls: Vec<String> = listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .map(|a| format!("{scheme}://{a}"))
        .collect();
    if !plan.is_loopback() {
        say(&format!(
            "clawgate: gateway is binding to a non-loopback address ({}: {}); anyone who can reach it can try to authenticate — keep the token/password secret{}",
            plan.mode,
            plan.host,
            if options.tls.is_none() {
                " and prefer TLS (gateway.tls.enabled) or an SSH tunnel on untrusted networks"
            } else {
                ""
            }
        ));
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
            say,
        );
    }
    let gateway = match Gateway::new(options) {
        Ok(g) => g,
        Err(crate::InitError::Config(e)) => return Err(StartFailure::config(e)),
        Err(e) => {
            return Err(StartFailure::config(format_args!(
                "cannot open the gateway state: {e}"
            )));
        }
    };
    // Published before the readiness line, so whoever waits for that line can browse for it.
    let advertiser = announcements.beacon.and_then(|ad| {
        advertise(
            Advertisement {
                gateway_port: port,
                ..ad
            },
            say,
        )
    });
    say(&format!(
        "clawgate gateway listening on {} (auth: {}, state: {})",
        urls.join(" and "),
        gateway.options.auth_mode.as_str(),
        gateway.options.state_dir.display()
    ));
    let shutdown = CancellationToken::new();
    let (all, route_task) =
        with_tailscale_listener(listeners, route, &gateway, scheme, &shutdown, say).await?;
    let cancel = shutdown.clone();
    tokio::spawn(async move {
        stop.await;
        cancel.cancel();
    });
    crate::serve_listeners(all, gateway, shutdown).await;
    if let Some(a) = advertiser {
        let _ = tokio::task::spawn_blocking(move || a.stop()).await;
    }
    if let Some(task) = route_task {
        let _ = task.await;
    }
    say("clawgate gateway stopped");
    Ok(())
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
fn write_zone(zone: Zone, state_dir: &std::path::Path, say: &dyn Fn(&str)) {
    match zone.write(state_dir, std::time::SystemTime::now()) {
        Ok(written) => say(&format!(
            "clawgate: discovery: wide-area DNS-SD {} ({} → {})",
            if written.changed {
                "updated"
            } else {
                "unchanged"
            },
            zone.domain,
            written.path.display()
        )),
        Err(e) => tracing::warn!("wide-area discovery update failed: {e}"),
    }
}

/// Publishes the Bonjour beacon; a failure is a warning, as in OpenClaw: the gateway serves
/// without it.
fn advertise(ad: Advertisement, say: &dyn Fn(&str)) -> Option<Advertiser> {
    match Advertiser::start(&ad) {
        Ok(a) => {
            say(&format!(
                "clawgate: bonjour: advertised {} on port {} (discovery.mdns.mode {}; \"off\" or OPENCLAW_DISABLE_BONJOUR=1 turns it off)",
                a.fullname(),
                ad.gateway_port,
                ad.mode.as_str()
            ));
            Some(a)
        }
        Err(e) => {
            tracing::warn!("bonjour: not advertising the gateway: {e}");
            None
        }
    }
}
