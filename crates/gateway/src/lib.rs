//! The clawgate gateway: one port serving HTTP probes and the OpenClaw Gateway WebSocket
//! protocol v4.
//!
//! [`serve`] takes already-bound listeners and a shutdown token, so the binary and the tests
//! drive the same code: tests bind `127.0.0.1:0` and never race for ports.

#![forbid(unsafe_code)]

mod agent_host;
mod auth;
pub mod bind;
mod conn;
pub mod discovery;
pub mod exposure;
mod guarded_io;
mod handshake;
mod hello;
mod http;
pub mod ingress;
pub mod lock;
mod methods;
mod nodes;
mod pairing;
mod registry;
mod shared_frame;
pub mod ssh_verify;
pub mod startup;
pub mod state_dir;
pub mod tailscale;
pub mod tls;
mod ui_site;
pub mod wide_area;

use clawgate_config::{GatewayConfig, GatewaySettings, LoadedConfig, Secret};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use conn::serve_websocket;
pub use nodes::{InvokeInputError, NodeInvokeStream};
pub use registry::{BusEvent, EventSubscription, Registry, SubscriptionEnded};
pub use ui_site::ControlUiOptions;

/// How connecting clients prove who they are (`gateway.auth.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    Token,
    Password,
    /// No shared secret; every client must present a device identity.
    None,
    /// The user named by a header a trusted reverse proxy sets (`gateway.auth.trustedProxy`).
    TrustedProxy,
}

impl From<clawgate_config::AuthMode> for AuthMode {
    fn from(mode: clawgate_config::AuthMode) -> Self {
        match mode {
            clawgate_config::AuthMode::Token => AuthMode::Token,
            clawgate_config::AuthMode::Password => AuthMode::Password,
            clawgate_config::AuthMode::None => AuthMode::None,
            clawgate_config::AuthMode::TrustedProxy => AuthMode::TrustedProxy,
        }
    }
}

impl AuthMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Token => "token",
            AuthMode::Password => "password",
            AuthMode::None => "none",
            AuthMode::TrustedProxy => "trusted-proxy",
        }
    }
}

/// Failed-auth limits (`gateway.auth.rateLimit`).
#[derive(Debug, Clone)]
pub struct RateLimit {
    pub max_attempts: u32,
    pub window: Duration,
    pub lockout: Duration,
    /// Loopback clients are never locked out, but each failure still slows the next answer.
    pub exempt_loopback: bool,
    /// First failure delay; doubles per failure up to `max_delay`.
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            max_attempts: 10,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(300),
            exempt_loopback: true,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(5),
        }
    }
}

/// `gateway.auth.trustedProxy`.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxyAuth {
    /// Header carrying the user (lowercased name), e.g. `x-forwarded-user`.
    pub user_header: String,
    /// Headers the proxy must set on every request (lowercased names).
    pub required_headers: Vec<String>,
    /// When non-empty, only these users are admitted.
    pub allow_users: Vec<String>,
    /// Admit a trusted proxy on a loopback address (off by default).
    pub allow_loopback: bool,
}

/// Tailscale identity on the managed Serve listener (`gateway.auth.allowTailscale`).
#[derive(Debug, Clone)]
pub struct TailscaleAuth {
    /// The `tailscale` CLI (`CLAWGATE_TAILSCALE_BIN`).
    pub tailscale_bin: std::ffi::OsString,
    /// tailscaled's LocalAPI socket (`CLAWGATE_TAILSCALE_SOCKET`).
    pub localapi_socket: PathBuf,
}

/// Everything the gateway needs to run, already resolved from flags, env and config.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    pub auth_mode: AuthMode,
    pub token: Option<Secret>,
    pub password: Option<Secret>,
    pub rate_limit: RateLimit,
    pub state_dir: PathBuf,
    pub config_path: Option<PathBuf>,
    /// The config file as loaded (after `${VAR}` substitution); `config.get` serves it redacted.
    pub config: Value,
    pub port: u16,
    pub tick_interval: Duration,
    pub ping_interval: Duration,
    pub handshake_timeout: Duration,
    /// How long checking one `connect` may take (auth, a failure's delay, whois, pairing).
    pub connect_timeout: Duration,
    /// Sockets held open at once, before and after their WebSocket upgrade; a connection
    /// beyond it is refused at once (see [`default_max_connections`]).
    pub max_connections: usize,
    /// How long a connection has to send a complete HTTP request head, counted from when it
    /// opened (or its previous response went out): a silent or trickling one is closed.
    pub request_header_timeout: Duration,
    /// How long a socket write may make no progress (a peer that stopped reading) before the
    /// connection is dropped.
    pub write_timeout: Duration,
    pub max_payload: usize,
    pub max_buffered_bytes: usize,
    /// Pair devices on direct loopback sockets without asking
    /// (`gateway.nodes.pairing.autoApproveLocal`).
    pub auto_approve_local: bool,
    /// `gateway.nodes.pairing.autoApproveCidrs`: a first-time node device asking no scopes
    /// from a client address in one of these pairs without asking (OpenClaw's trusted-CIDR
    /// approval); upgrades, operators and browser clients still ask.
    pub node_auto_approve_cidrs: Vec<ingress::Cidr>,
    /// `gateway.nodes.pairing.sshVerify`: a first-time node device asking no scopes is
    /// approved once the gateway has read its identity back from its host over SSH. `None`
    /// (off) here; `gateway run` turns it on as OpenClaw does.
    pub node_ssh_verify: Option<ssh_verify::SshVerifyPolicy>,
    /// `gateway.nodes.commands.allow`: commands admitted beyond the platform defaults.
    pub node_commands_allow: Vec<String>,
    /// `gateway.nodes.commands.deny`: commands never invoked (deny wins over allow).
    pub node_commands_deny: Vec<String>,
    /// `gateway.trustedProxies`, `allowRealIpFallback` and the browser origin policy.
    pub ingress: ingress::IngressPolicy,
    /// `gateway.tls`: when set, every listener speaks TLS (wss:// and https on the same port).
    pub tls: Option<tls::TlsServer>,
    /// Trusted-proxy auth settings; used when `auth_mode` is `TrustedProxy`.
    pub trusted_proxy: Option<TrustedProxyAuth>,
    /// This host's own interface addresses: a trusted proxy there is refused.
    pub local_addresses: Vec<std::net::IpAddr>,
    /// Set when Tailscale Serve identity headers are believed (after whois).
    pub tailscale_auth: Option<TailscaleAuth>,
    /// `gateway.auth.identityScopes`: operator scopes a verified login (trusted-proxy user or
    /// Tailscale login) gets on top of its device's, for its connections only.
    pub identity_scopes: Vec<(String, Vec<String>)>,
    /// How many device pairing requests are held at once; a new device beyond it displaces the
    /// one that asked least recently (OpenClaw holds every request for its 5-minute TTL, so
    /// connects with the shared token could make it hold any number).
    pub max_pending_pairing_requests: usize,
    /// `models.providers.*` and `agents.defaults.model`: the models the agent runs.
    pub models: clawgate_config::ModelsConfig,
    /// The agent runtime's settings (`agents.defaults.maxConcurrent`, `messages.queue.mode`…).
    pub agent: clawgate_config::AgentConfig,
    /// `channels.telegram`: the Telegram bot, when configured and enabled.
    pub telegram: Option<clawgate_config::TelegramConfig>,
    /// `gateway.controlUi.enabled` and `basePath`: the browser UI on this port.
    pub control_ui: ControlUiOptions,
}

impl GatewayOptions {
    /// Defaults matching the real gateway's policy, for the given auth mode.
    pub fn new(auth_mode: AuthMode, state_dir: PathBuf) -> Self {
        use clawgate_protocol::limits;
        GatewayOptions {
            auth_mode,
            token: None,
            password: None,
            rate_limit: RateLimit::default(),
            state_dir,
            config_path: None,
            config: Value::Object(Default::default()),
            port: 18789,
            tick_interval: limits::TICK_INTERVAL,
            ping_interval: limits::PING_INTERVAL,
            handshake_timeout: limits::HANDSHAKE_TIMEOUT,
            connect_timeout: limits::CONNECT_TIMEOUT,
            max_connections: default_max_connections(),
            request_header_timeout: limits::REQUEST_HEADER_TIMEOUT,
            write_timeout: limits::WRITE_TIMEOUT,
            max_payload: limits::MAX_PAYLOAD,
            max_buffered_bytes: limits::MAX_BUFFERED_BYTES,
            auto_approve_local: true,
            node_auto_approve_cidrs: Vec::new(),
            node_ssh_verify: None,
            node_commands_allow: Vec::new(),
            node_commands_deny: Vec::new(),
            ingress: ingress::IngressPolicy::default(),
            tls: None,
            trusted_proxy: None,
            local_addresses: Vec::new(),
            tailscale_auth: None,
            identity_scopes: Vec::new(),
            max_pending_pairing_requests: 512,
            models: clawgate_config::ModelsConfig::default(),
            agent: clawgate_config::AgentConfig::default(),
            telegram: None,
            control_ui: ControlUiOptions::default(),
        }
    }
}

impl GatewayOptions {
    /// The options `gateway run` starts with, from the resolved settings and the loaded
    /// config: auth and its rate limits, node pairing and commands, the ingress policy,
    /// trusted-proxy auth and identity scopes. `ssh_bin` is the OpenSSH client that
    /// `gateway.nodes.pairing.sshVerify` probes with (`None`: no probe). What depends on
    /// this host at start (TLS certificate, Tailscale, interface addresses) the caller adds.
    /// An error names the config key and the fix.
    pub fn from_settings(
        settings: &GatewaySettings,
        loaded: Option<&LoadedConfig>,
        ssh_bin: Option<PathBuf>,
    ) -> Result<Self, String> {
        let default_cfg = GatewayConfig::default();
        let cfg = loaded.map_or(&default_cfg, |l| &l.gateway);
        let mut options =
            GatewayOptions::new(settings.auth.mode.into(), settings.state_dir.clone());
        options.port = settings.port;
        options.token = settings.auth.token.clone();
        options.password = settings.auth.password.clone();
        options.config_path = Some(settings.config_path.clone());
        options.config =
            loaded.map_or_else(|| Value::Object(Default::default()), |l| l.raw.clone());
        let rl = &settings.auth.rate_limit;
        options.rate_limit = RateLimit {
            max_attempts: rl.max_attempts,
            window: Duration::from_millis(rl.window_ms),
            lockout: Duration::from_millis(rl.lockout_ms),
            exempt_loopback: rl.exempt_loopback,
            ..RateLimit::default()
        };
        options.auto_approve_local = settings.auto_approve_local;
        options.node_auto_approve_cidrs = parse_cidrs(
            &settings.node_auto_approve_cidrs,
            "gateway.nodes.pairing.autoApproveCidrs",
        )?;
        let ssh = &settings.node_ssh_verify;
        let ssh_cidrs = parse_cidrs(&ssh.cidrs, "gateway.nodes.pairing.sshVerify.cidrs")?;
        options.node_ssh_verify = ssh_bin.and_then(|bin| {
            ssh_verify::SshVerifyPolicy::resolve(ssh, ssh_cidrs, ssh_verify::process_user(), bin)
        });
        options.node_commands_allow = settings.node_commands_allow.clone();
        options.node_commands_deny = settings.node_commands_deny.clone();
        options.ingress = ingress::IngressPolicy {
            trusted_proxies: parse_cidrs(&settings.trusted_proxies, "gateway.trustedProxies")?,
            allow_real_ip_fallback: cfg.allow_real_ip_fallback == Some(true),
            allowed_origins: cfg
                .control_ui
                .origins()
                .map(str::to_ascii_lowercase)
                .collect(),
            allow_host_header_origin_fallback: cfg.control_ui.host_header_origin_fallback
                == Some(true),
        };
        if options.auth_mode == AuthMode::TrustedProxy {
            options.trusted_proxy = Some(TrustedProxyAuth::from_config(
                cfg.auth.trusted_proxy.as_ref(),
            )?);
        }
        options.identity_scopes = cfg.auth.identity_scopes.clone();
        options.control_ui = ControlUiOptions {
            enabled: cfg.control_ui.serves_ui(),
            base_path: cfg.control_ui.base_path.clone(),
        };
        if let Some(l) = loaded {
            options.models = l.models.clone();
            options.agent = l.agent.clone();
            options.telegram = l.telegram.clone().filter(|t| t.enabled);
        }
        Ok(options)
    }
}

impl TrustedProxyAuth {
    /// `gateway.auth.trustedProxy` for trusted-proxy mode, with OpenClaw's refusals when it
    /// is missing or its `userHeader` is empty.
    fn from_config(config: Option<&clawgate_config::TrustedProxyConfig>) -> Result<Self, String> {
        let Some(tp) = config else {
            return Err("gateway auth mode is trusted-proxy, but no trustedProxy config was provided (set gateway.auth.trustedProxy)".into());
        };
        let user_header = tp
            .user_header
            .as_deref()
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .ok_or("gateway auth mode is trusted-proxy, but gateway.auth.trustedProxy.userHeader is empty (set it to the header your proxy puts the user in, e.g. \"x-forwarded-user\")")?;
        Ok(TrustedProxyAuth {
            user_header,
            required_headers: tp
                .required_headers
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .collect(),
            allow_users: tp.allow_users.iter().map(|u| u.trim().to_owned()).collect(),
            allow_loopback: tp.allow_loopback == Some(true),
        })
    }
}

/// The IP addresses and CIDRs of the config list `key`.
fn parse_cidrs(list: &[String], key: &str) -> Result<Vec<ingress::Cidr>, String> {
    list.iter()
        .enumerate()
        .map(|(i, p)| p.parse().map_err(|e| format!("{key}[{i}]: {e}")))
        .collect()
}

/// The settings of the gateway this machine runs from `config_path` (else the env's or the
/// default config) and `state_dir`, with no other flags, and the config they came from: what
/// `gateway tls`, `status --deep` and the operator commands' TLS pin read of it.
pub fn local_settings(
    config_path: Option<&std::path::Path>,
    state_dir: Option<&std::path::Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(GatewaySettings, Option<LoadedConfig>), clawgate_config::ConfigError> {
    let location = clawgate_config::locate_config(config_path, state_dir, env);
    let loaded = clawgate_config::load_config(&location, env)?;
    let inputs = clawgate_config::GatewayRunInputs {
        config_path: config_path.map(std::path::Path::to_path_buf),
        state_dir: state_dir.map(std::path::Path::to_path_buf),
        ..Default::default()
    };
    let settings = clawgate_config::resolve_gateway_settings(&inputs, loaded.as_ref(), env)?;
    Ok((settings, loaded))
}

/// OpenClaw seeds `gateway.controlUi.allowedOrigins` for non-loopback binds when none are
/// configured (for this run only): `Some(hosts)` to seed with when that applies.
pub fn allowed_origins_seed(
    settings: &GatewaySettings,
    cfg: &GatewayConfig,
) -> Option<Vec<String>> {
    let configured = cfg.control_ui.origins().next().is_some();
    let loopback = matches!(settings.bind, clawgate_config::BindMode::Loopback);
    if configured || loopback || cfg.control_ui.host_header_origin_fallback == Some(true) {
        return None;
    }
    let mut hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    if let Some(h) = settings.custom_bind_host {
        hosts.push(h.to_string());
    }
    Some(hosts)
}

/// Descriptors kept free for the gateway's own files (store, listeners, logs, probes).
const FD_HEADROOM: usize = 64;
/// The default connection cap never goes beyond this, whatever the descriptor limit: each
/// connection also costs memory, and a personal gateway has far fewer clients.
const MAX_DEFAULT_CONNECTIONS: usize = 8192;

/// The connection cap when none is set: this process's open-file limit minus
/// [`FD_HEADROOM`], between 16 and [`MAX_DEFAULT_CONNECTIONS`]. Every socket is a descriptor;
/// a gateway out of descriptors can accept no one, so the cap must come first.
pub fn default_max_connections() -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    let fds = limit.map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
    fds.saturating_sub(FD_HEADROOM)
        .clamp(16, MAX_DEFAULT_CONNECTIONS)
}

/// Raises this process's soft limit on open files to its hard limit (the usual soft default,
/// 1024, would cap the gateway long before its memory does). An unlimited hard limit is taken
/// as Linux's default `fs.nr_open`. Where the kernel refuses, the limit stays as it was and
/// [`default_max_connections`] follows it.
pub fn raise_fd_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    const NR_OPEN_DEFAULT: u64 = 1 << 20;
    let limit = getrlimit(Resource::Nofile);
    let target = limit.maximum.unwrap_or(NR_OPEN_DEFAULT);
    if limit.current.is_some_and(|current| current < target) {
        let raised = Rlimit {
            current: Some(target),
            maximum: limit.maximum,
        };
        let _ = setrlimit(Resource::Nofile, raised);
    }
}

/// Shared state of one running gateway.
pub struct Gateway {
    pub options: GatewayOptions,
    pub registry: Registry,
    pub(crate) rate_limiter: auth::RateLimiter,
    pub(crate) connection_slots: http::ConnectionSlots,
    pub(crate) pairing: pairing::Pairing,
    pub(crate) nodes: nodes::Nodes,
    /// The agent runtime: sessions, runs and the turn loop.
    pub(crate) agent: clawgate_agent::Agent,
    /// The Telegram bots (`channels.telegram` and its `accounts`), run by [`serve`].
    pub(crate) telegram: Vec<clawgate_telegram::TelegramChannel>,
    pub(crate) store: Arc<clawgate_store::Store>,
    pub(crate) ssh_probes: ssh_verify::Probes,
    pub(crate) identity: state_dir::GatewayIdentity,
    pub(crate) boot_id: String,
    pub(crate) started: Instant,
    pub(crate) whois: Option<tailscale::Whois>,
    /// The browser UI served on this port.
    pub(crate) ui: ui_site::UiSite,
}

/// Why the gateway could not prepare its state.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Store(#[from] clawgate_store::StoreError),
    /// The configuration cannot run (the message names the key and the fix).
    #[error("{0}")]
    Config(String),
}

/// The OpenClaw release whose protocol clawgate speaks; reported as `server.version`.
pub const SERVER_VERSION: &str = clawgate_protocol::OPENCLAW_COMPAT_VERSION;
/// clawgate's own version, reported as `server.buildId`.
pub const BUILD_ID: &str = concat!("clawgate-", env!("CARGO_PKG_VERSION"));

impl Gateway {
    /// Builds the gateway state: its identity key and the pairing store in the state dir.
    pub fn new(options: GatewayOptions) -> Result<Arc<Self>, InitError> {
        let identity = state_dir::GatewayIdentity::load_or_create(&options.state_dir)?;
        let store = Arc::new(clawgate_store::Store::open(&options.state_dir)?);
        let pairing = pairing::Pairing::open(
            store.clone(),
            &options.state_dir,
            identity.device_token_key,
            options.max_pending_pairing_requests,
            now_ms(),
        )?;
        let nodes = nodes::Nodes::open(store.clone())?;
        let rate_limiter = auth::RateLimiter::new(options.rate_limit.clone());
        let host_name = host_name();
        let instance_id = uuid::Uuid::new_v4().to_string();
        let self_entry = self_presence(&host_name, &instance_id);
        let llm = clawgate_llm::Llm::new(&options.models, &clawgate_config::process_env)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let agent_options = agent_host::agent_options(&options.agent);
        let sessions = clawgate_agent::LoadedSessions::load(&store)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let bots: Vec<clawgate_config::TelegramConfig> = options
            .telegram
            .as_ref()
            .map(|cfg| cfg.bots().into_iter().cloned().collect())
            .unwrap_or_default();
        for bot in &bots {
            if bot.token.is_none() {
                let (key, extra) = if bot.account_id == clawgate_config::DEFAULT_ACCOUNT_ID {
                    ("channels.telegram".to_owned(), ", or TELEGRAM_BOT_TOKEN")
                } else {
                    (format!("channels.telegram.accounts.{}", bot.account_id), "")
                };
                return Err(InitError::Config(format!(
                    "{key} is enabled but has no bot token: set {key}.botToken (or {key}.tokenFile{extra}), or set {key}.enabled to false"
                )));
            }
        }
        let mut telegram_error = None;
        let gateway = Arc::new_cyclic(|weak: &std::sync::Weak<Gateway>| {
            let handler = Arc::new(agent_host::GatewayTelegram::new(
                weak.clone(),
                options.agent.dm_scope.as_deref(),
            ));
            let telegram = bots
                .iter()
                .filter_map(|cfg| {
                    let mut opts =
                        clawgate_telegram::ChannelOptions::new(options.state_dir.clone());
                    opts.account = cfg.account_id.clone();
                    clawgate_telegram::TelegramChannel::new(
                        cfg,
                        opts,
                        store.clone(),
                        handler.clone(),
                    )
                    .map_err(|e| telegram_error = Some(format!("account {}: {e}", cfg.account_id)))
                    .ok()
                })
                .collect();
            let agent = clawgate_agent::Agent::with_sessions(
                sessions,
                store.clone(),
                llm,
                Arc::new(agent_host::GatewayNodes(weak.clone())),
                Arc::new(agent_host::GatewayEvents(weak.clone())),
                agent_options,
            );
            Gateway {
                telegram,
                store,
                registry: Registry::new(options.max_buffered_bytes, self_entry),
                rate_limiter,
                connection_slots: http::ConnectionSlots::new(options.max_connections),
                pairing,
                nodes,
                agent,
                ssh_probes: ssh_verify::Probes::default(),
                identity,
                boot_id: uuid::Uuid::new_v4().to_string(),
                started: Instant::now(),
                whois: options.tailscale_auth.as_ref().map(|t| {
                    tailscale::Whois::new(t.tailscale_bin.clone(), t.localapi_socket.clone())
                }),
                ui: ui_site::UiSite::new(options.control_ui.clone()),
                options,
            }
        });
        match telegram_error {
            Some(e) => Err(InitError::Config(format!("channels.telegram: {e}"))),
            None => Ok(gateway),
        }
    }

    pub fn uptime_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}

/// The gateway's presence entry, shaped like the real gateway's `reason: "self"` entry.
fn self_presence(host: &str, instance_id: &str) -> serde_json::Value {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    serde_json::json!({
        "host": host,
        "ip": "127.0.0.1",
        "version": SERVER_VERSION,
        "platform": format!("{} {}", std::env::consts::OS, kernel.trim()).trim(),
        "deviceFamily": "Linux",
        "mode": "gateway",
        "reason": "self",
        "instanceId": instance_id,
        "text": format!("Gateway: {host} · app {SERVER_VERSION} · mode gateway · reason self"),
        "ts": 0,
    })
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

pub(crate) use clawgate_base::now_ms;

/// Serves HTTP and WebSocket on every listener until `shutdown` is cancelled, then sends
/// `shutdown` to every client, closes them with 1012 and returns once they are gone (or after
/// a short grace period).
pub async fn serve(
    listeners: Vec<TcpListener>,
    gateway: Arc<Gateway>,
    shutdown: CancellationToken,
) {
    let listeners = listeners
        .into_iter()
        .map(|l| (l, ingress::ListenerKind::Ordinary))
        .collect();
    serve_listeners(listeners, gateway, shutdown).await
}

/// [`serve`] with each listener's kind (the managed Tailscale listener classifies its own
/// requests).
pub async fn serve_listeners(
    listeners: Vec<(TcpListener, ingress::ListenerKind)>,
    gateway: Arc<Gateway>,
    shutdown: CancellationToken,
) {
    if let Err(e) = gateway.agent.end_interrupted_runs().await {
        tracing::error!("could not end the agent runs the previous gateway left unfinished: {e}");
    }
    let timers = tokio::spawn(registry::run_timers(gateway.clone(), shutdown.clone()));
    if let Some(path) = gateway.options.config_path.clone()
        && !gateway.telegram.is_empty()
    {
        tokio::spawn(follow_telegram_allow_from(
            gateway.telegram.clone(),
            path,
            shutdown.child_token(),
        ));
    }
    let telegram: Vec<_> = gateway
        .telegram
        .iter()
        .cloned()
        .map(|channel| {
            let shutdown = shutdown.child_token();
            tokio::spawn(agent_host::telegram_approval_cards(
                Arc::downgrade(&gateway),
                channel.clone(),
                shutdown.clone(),
            ));
            tokio::spawn(async move {
                if let Err(e) = channel.run(shutdown).await {
                    tracing::error!(
                        account = channel.account(),
                        "the Telegram channel stopped: {e}"
                    );
                }
            })
        })
        .collect();
    let mut accept_loops = Vec::new();
    for (listener, kind) in listeners {
        accept_loops.push(tokio::spawn(http::accept_loop(
            listener,
            kind,
            gateway.clone(),
            shutdown.clone(),
        )));
    }
    shutdown.cancelled().await;
    gateway.ssh_probes.shut_down();
    for a in accept_loops {
        let _ = a.await;
    }
    let _ = timers.await;
    for channel in telegram {
        let _ = channel.await;
    }
    gateway.pairing.flush_last_seen().await;
    gateway.registry.shutdown("gateway stopping");
    // Connections close themselves after flushing `shutdown` + close 1012; give them a moment.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while gateway.registry.connection_count() > 0 && tokio::time::Instant::now() < deadline {
        gateway.registry.wait_for_change(deadline).await;
    }
}

/// How often the config file is checked for a new `channels.telegram.allowFrom`.
const CONFIG_POLL: Duration = Duration::from_secs(1);

/// Keeps the Telegram channel's `allowFrom` and `commands.ownerAllowFrom` as the config file
/// says, without a restart: an approval written there by hand (or by OpenClaw's `openclaw
/// pairing approve`, which edits those keys) takes effect at the next message. Other keys
/// still need a restart.
async fn follow_telegram_allow_from(
    channels: Vec<clawgate_telegram::TelegramChannel>,
    path: PathBuf,
    shutdown: CancellationToken,
) {
    let modified = |path: PathBuf| async move {
        tokio::fs::metadata(&path)
            .await
            .and_then(|m| m.modified())
            .ok()
    };
    let mut seen = modified(path.clone()).await;
    let mut tick = tokio::time::interval(CONFIG_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = modified(path.clone()).await;
        if now == seen {
            continue;
        }
        seen = now;
        let file = path.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            clawgate_config::load_file(&file, &clawgate_config::process_env)
        })
        .await;
        match loaded {
            Ok(Ok(config)) => {
                for channel in &channels {
                    let account = config.telegram.as_ref().and_then(|t| {
                        t.bots()
                            .into_iter()
                            .find(|b| b.account_id == channel.account())
                            .cloned()
                    });
                    let (allow_from, owners) = account
                        .map(|t| (t.allow_from, t.owner_allow_from))
                        .unwrap_or_default();
                    let count = allow_from.len();
                    if channel.set_allow_from(allow_from) {
                        tracing::info!(
                            account = channel.account(),
                            "channels.telegram.allowFrom reloaded from {}: {count} sender(s)",
                            path.display()
                        );
                    }
                    let count = owners.len();
                    if channel.set_owners(owners) {
                        tracing::info!(
                            "commands.ownerAllowFrom reloaded from {}: {count} Telegram owner(s)",
                            path.display()
                        );
                    }
                }
            }
            Ok(Err(e)) => tracing::warn!(
                "the config file changed but cannot be read, so channels.telegram.allowFrom was kept: {e}"
            ),
            Err(_) => {}
        }
    }
}

/// Information about the peer of one connection, decided once at upgrade time.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// The socket's peer.
    pub addr: SocketAddr,
    /// Direct loopback socket without forwarding headers or browser Origin, whose `Host` names
    /// this machine: "local".
    pub is_local: bool,
    pub host: Option<String>,
    pub origin: Option<String>,
    /// How the connection arrived (direct, through a trusted proxy…).
    pub ingress: ingress::IngressKind,
    /// The client the gateway holds responsible (rate limits, presence): the socket peer, or
    /// the client named by a trusted proxy.
    pub client_ip: std::net::IpAddr,
    /// Request headers the handshake reads (`tailscale-user-*`, the trusted-proxy user and
    /// required headers, the `x-openclaw-scopes` cap), lowercased names.
    pub identity_headers: Vec<(String, String)>,
}

impl PeerInfo {
    /// The first value of an identity header, trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.identity_headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
    }
}

impl PeerInfo {
    /// A direct connection from `addr` with no headers (tests, in-process transports).
    pub fn direct(addr: SocketAddr) -> Self {
        let local = addr.ip().is_loopback();
        PeerInfo {
            addr,
            is_local: local,
            host: None,
            origin: None,
            ingress: if local {
                ingress::IngressKind::DirectLocal
            } else {
                ingress::IngressKind::DirectRemote
            },
            client_ip: addr.ip(),
            identity_headers: Vec::new(),
        }
    }
}
