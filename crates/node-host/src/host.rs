//! The node host's life: connect as `role:"node"` with a signed device proof, publish host
//! stats and inventories after hello, serve `node.invoke.request`s concurrently, and
//! reconnect forever (1 s doubling to 30 s, with jitter) — after network errors, gateway
//! restarts (close 1012/1013) and while pairing waits for an operator. Credentials that
//! cannot start working by themselves (a wrong token) end the run with [`FatalError`].

use crate::approvals::ApprovalsStore;
use crate::commands::{self, CAPS, COMMANDS, Context, InvokeRequest, Reply};
use crate::state::{NodeState, StoredDeviceToken};
use crate::stats;
use clawgate_client::{
    Backoff, Client, ClientError, ConnectOptions, DeviceIdentity, Requester, RpcError, TlsOptions,
    WireError,
};
use clawgate_protocol::node_invoke::{self as wire, InvokeCancel};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// `client.id` of a headless node host.
pub const CLIENT_ID: &str = "node-host";
/// First reconnect delay.
pub const BACKOFF_INITIAL: Duration = Duration::from_secs(1);
/// Longest reconnect delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Budget for opening the socket and completing the handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a request waits for its answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Invocations served at once; more are refused with `UNAVAILABLE`.
pub const DEFAULT_MAX_CONCURRENT: usize = 16;
/// Retry delays of the post-hello publications while the gateway says "not yet".
const PUBLISH_RETRY_INITIAL: Duration = Duration::from_millis(250);
const PUBLISH_RETRY_MAX: Duration = Duration::from_secs(5);
/// Consecutive `403 proxy_attribution_required` refusals before giving up.
const MAX_PROXY_REFUSALS: u32 = 3;

/// How to run.
#[derive(Debug, Clone)]
pub struct NodeHostConfig {
    /// `ws://host:port[/path]` or `wss://…`.
    pub url: String,
    pub tls_fingerprint: Option<String>,
    /// Shared gateway token (sent on every connect, like the OpenClaw node host).
    pub token: Option<String>,
    pub password: Option<String>,
    /// Shown in `node.list`; default: the host name.
    pub display_name: Option<String>,
    /// Identity, device token, exec approvals.
    pub state_dir: PathBuf,
    pub max_concurrent: usize,
}

/// Why the node host stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum FatalError {
    /// The gateway refused the credentials in a way retrying cannot fix.
    #[error("{0}")]
    Auth(String),
    /// Bad flags or URL.
    #[error("{0}")]
    Config(String),
    /// The state directory cannot be used.
    #[error("{0}")]
    State(String),
}

/// What the node host tells the person running it, through the `tell` function given to
/// [`run_with`]. [`log_notice`] writes it as log lines (what [`run`] does).
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// A line (or a few) to show as it is.
    Line(String),
    /// Connected to the gateway: a wait, if any, is over.
    Connected(String),
    /// No connection: the next attempt starts in `delay`.
    Retrying(Retry),
}

/// Why the node host waits for its next connect attempt, and how long.
#[derive(Debug, Clone, PartialEq)]
pub struct Retry {
    /// What the log says about the failed attempt or the lost connection, when there is
    /// something new to say (a pending pairing is announced once, by a [`Notice::Line`]).
    pub line: Option<String>,
    pub wait: Wait,
    /// Short: `connection refused`, `closed 1012: service restart`, …
    pub reason: String,
    pub delay: Duration,
    /// The attempt that starts after `delay`, counted from the last connection (or the
    /// start): 1 after a lost connection, 2 after the first failed attempt, ….
    pub attempt: u32,
}

/// What a retry waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// The gateway did not answer, refused for now, or closed the connection.
    Unreachable,
    /// An operator has to approve this node's pairing request.
    PairingApproval,
}

/// Writes a notice as log lines on stderr (like the OpenClaw node host); the delay of a
/// retry goes to the `tracing` log.
pub fn log_notice(notice: Notice) {
    match notice {
        Notice::Line(line) | Notice::Connected(line) => eprintln!("{line}"),
        Notice::Retrying(retry) => {
            if let Some(line) = &retry.line {
                eprintln!("{line}");
            }
            tracing::info!("retrying in {:.1} s", retry.delay.as_secs_f64());
        }
    }
}

/// Where notices go.
type Tell = Arc<dyn Fn(Notice) + Send + Sync>;

fn hostname() -> String {
    let uname = rustix::system::uname();
    let name = uname.nodename().to_string_lossy().trim().to_owned();
    if name.is_empty() { "node".into() } else { name }
}

/// Credentials for one connect.
#[derive(Debug, Clone, Default)]
struct Auth {
    token: Option<String>,
    password: Option<String>,
    device_token: Option<String>,
}

struct Identity {
    device: DeviceIdentity,
    instance_id: String,
    display_name: String,
    path_env: String,
}

/// Where to connect.
struct Endpoint {
    url: String,
    tls: TlsOptions,
}

/// The connect the real node host sends: client `node-host` in mode `node`, role `node`
/// with no scopes, its caps, commands and `PATH`, signed with the node's device identity.
fn connect_options<'a>(
    id: &'a Identity,
    auth: &Auth,
    protocol: u32,
    endpoint: &Endpoint,
) -> ConnectOptions<'a> {
    let mut client = clawgate_client::client_info(CLIENT_ID, "node");
    client.display_name = Some(id.display_name.clone());
    client.instance_id = Some(id.instance_id.clone());
    let mut o = ConnectOptions::new(endpoint.url.clone(), client);
    o.token = auth.token.clone();
    o.password = auth.password.clone();
    o.device_token = auth.device_token.clone();
    o.role = "node".into();
    o.caps = CAPS.iter().map(|c| (*c).to_owned()).collect();
    o.commands = COMMANDS.iter().map(|c| (*c).to_owned()).collect();
    o.path_env = Some(id.path_env.clone());
    o.device = Some(&id.device);
    o.timeout = HANDSHAKE_TIMEOUT;
    o.min_protocol = protocol;
    o.max_protocol = protocol;
    o.tls = endpoint.tls.clone();
    // `clawgate node run` applies the plaintext rule once, before the first attempt.
    o.plaintext_rule = false;
    o.tick_watchdog = true;
    // Invoke requests are work the gateway waits for: none may be dropped.
    o.lossless_events = true;
    o
}

/// Calls `method`, waiting at most [`REQUEST_TIMEOUT`] for the answer.
async fn call(rpc: &Requester, method: &str, params: Value) -> Result<Value, RpcError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, rpc.request(method, Some(params))).await {
        Ok(answer) => answer,
        Err(_) => Err(RpcError::Protocol(format!(
            "no answer to {method} within {} s",
            REQUEST_TIMEOUT.as_secs()
        ))),
    }
}

/// `requestId` out of "…run `openclaw nodes approve <id>` …".
fn approve_request_id(message: &str) -> Option<&str> {
    let rest = message.split("nodes approve ").nth(1)?;
    let id = rest
        .split(|c: char| c == '`' || c.is_whitespace() || c == ')')
        .next()?;
    (!id.is_empty()).then_some(id)
}

/// What one connection's session ended with.
enum SessionEnd {
    Shutdown,
    Closed { code: u16, reason: String },
}

/// Runs until `shutdown` fires (`Ok`) or a fatal error, logging to stderr.
pub async fn run(config: NodeHostConfig, shutdown: CancellationToken) -> Result<(), FatalError> {
    run_with(config, shutdown, log_notice).await
}

/// [`run`], telling what happens (and why it waits) to `tell` instead of the log.
pub async fn run_with(
    config: NodeHostConfig,
    shutdown: CancellationToken,
    tell: impl Fn(Notice) + Send + Sync + 'static,
) -> Result<(), FatalError> {
    let tell: Tell = Arc::new(tell);
    let say = |line: String| tell(Notice::Line(line));
    let endpoint = Endpoint {
        url: config.url.clone(),
        tls: TlsOptions {
            fingerprint: config.tls_fingerprint.clone(),
        },
    };
    let state = NodeState::open(&config.state_dir).map_err(|e| {
        FatalError::State(format!(
            "cannot use the node state directory {}: {e}",
            config.state_dir.display()
        ))
    })?;
    let state_err = |what: &str, e: std::io::Error| {
        FatalError::State(format!("{what} in {}: {e}", state.dir().display()))
    };
    let device = state
        .identity()
        .map_err(|e| state_err("cannot load or create the device identity", e))?;
    let instance_id = state
        .instance_id()
        .map_err(|e| state_err("cannot load or create the instance id", e))?;
    let secrets: Vec<&str> = [&config.token, &config.password]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
    let ctx =
        Arc::new(Context::new(ApprovalsStore::new(state.dir())).without_secret_values(&secrets));
    let identity = Identity {
        display_name: config
            .display_name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(hostname),
        path_env: ctx.path_env(),
        device,
        instance_id,
    };
    let node_id = identity.device.id().to_owned();
    say(format!(
        "node host starting: node id {node_id}, state {}, gateway {}",
        state.dir().display(),
        endpoint.url
    ));

    let mut backoff = Backoff::new(BACKOFF_INITIAL, BACKOFF_MAX);
    let mut protocol = clawgate_protocol::PROTOCOL_VERSION;
    let mut announced_pairing: HashSet<String> = HashSet::new();
    let announced_capability: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut proxy_refusals = 0u32;
    // Connect attempts since the last connection.
    let mut attempts = 0u32;
    loop {
        if shutdown.is_cancelled() {
            return Ok(());
        }
        attempts += 1;
        let stored = if config.token.is_none() && config.password.is_none() {
            state.device_token(&node_id, &endpoint.url)
        } else {
            None
        };
        let auth = Auth {
            token: config.token.clone(),
            password: config.password.clone(),
            device_token: stored.as_ref().map(|s| s.token.clone()),
        };
        let attempt = Client::connect(connect_options(&identity, &auth, protocol, &endpoint));
        let result = tokio::select! {
            r = attempt => r,
            _ = shutdown.cancelled() => return Ok(()),
        };
        let mut min_delay = Duration::ZERO;
        let (wait, reason, line) = match result {
            Ok((client, hello)) => {
                proxy_refusals = 0;
                attempts = 0;
                backoff.reset();
                if let Some(token) = hello.device_token() {
                    let record = StoredDeviceToken {
                        device_id: node_id.clone(),
                        role: "node".into(),
                        token: token.to_owned(),
                        issued_at_ms: hello.issued_at_ms(),
                        gateway: endpoint.url.clone(),
                    };
                    if let Err(e) = state.save_device_token(&record) {
                        say(format!("node host could not store its device token: {e}"));
                    }
                }
                tell(Notice::Connected(format!(
                    "node host gateway connected: {}",
                    endpoint.url
                )));
                let end = session(
                    client,
                    ctx.clone(),
                    node_id.clone(),
                    config.max_concurrent.max(1),
                    announced_capability.clone(),
                    shutdown.clone(),
                    tell.clone(),
                )
                .await;
                match end {
                    SessionEnd::Shutdown => return Ok(()),
                    SessionEnd::Closed { code, reason } => (
                        Wait::Unreachable,
                        format!("closed {code}: {reason}"),
                        Some(format!("node host gateway closed ({code}): {reason}")),
                    ),
                }
            }
            Err(ClientError::InvalidUrl { url, reason }) => {
                return Err(FatalError::Config(format!("{url}: {reason}")));
            }
            Err(ClientError::Handshake {
                code,
                detail_code,
                message,
                ..
            }) if code.starts_with("HTTP_") => {
                let status = code.trim_start_matches("HTTP_");
                let line = format!("node host gateway connect failed: HTTP {status}: {message}");
                if status == "403" && detail_code.as_deref() == Some("proxy_attribution_required") {
                    proxy_refusals += 1;
                    if proxy_refusals >= MAX_PROXY_REFUSALS {
                        say(line);
                        return Err(FatalError::Auth(format!(
                            "the gateway permanently refused this connection (proxy_attribution_required): {message}"
                        )));
                    }
                }
                (
                    Wait::Unreachable,
                    format!("HTTP {status}: {message}"),
                    Some(line),
                )
            }
            Err(ClientError::Handshake {
                error, close_code, ..
            }) => match rejection(&error, stored.is_some(), &mut protocol) {
                Rejection::Fatal(message) => {
                    if error.detail_code() == Some("AUTH_DEVICE_TOKEN_MISMATCH") {
                        let _ = state.clear_device_token();
                    }
                    return Err(FatalError::Auth(message));
                }
                Rejection::RetryNow => {
                    attempts -= 1;
                    continue;
                }
                Rejection::Pairing(request_id) => {
                    let key = request_id.clone().unwrap_or_default();
                    if announced_pairing.insert(key) {
                        say(pairing_message(&error, request_id.as_deref(), &node_id));
                    }
                    min_delay = Duration::from_millis(error.retry_after_ms.unwrap_or(0));
                    let reason = match &request_id {
                        Some(id) => format!("request {id}"),
                        None => "`clawgate devices list` shows the request".to_owned(),
                    };
                    (Wait::PairingApproval, reason, None)
                }
                Rejection::Retry => {
                    min_delay = Duration::from_millis(error.retry_after_ms.unwrap_or(0));
                    (
                        Wait::Unreachable,
                        format!("{} {}", error.code, error.message),
                        Some(format!(
                            "node host gateway connect failed: {} {}{}",
                            error.code,
                            error.message,
                            close_code
                                .map(|c| format!(" (close {c})"))
                                .unwrap_or_default()
                        )),
                    )
                }
            },
            Err(e) => {
                let reason = match &e {
                    ClientError::Unreachable { reason, .. } => reason.clone(),
                    other => other.to_string(),
                };
                (
                    Wait::Unreachable,
                    reason,
                    Some(format!("node host gateway connect failed: {e}")),
                )
            }
        };
        let delay = backoff.next_delay().max(min_delay);
        tell(Notice::Retrying(Retry {
            line,
            wait,
            reason,
            delay,
            attempt: attempts + 1,
        }));
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => return Ok(()),
        }
    }
}

enum Rejection {
    Fatal(String),
    Pairing(Option<String>),
    RetryNow,
    Retry,
}

fn rejection(error: &WireError, used_device_token: bool, protocol: &mut u32) -> Rejection {
    let code = error.detail_code().unwrap_or("");
    let fix_token = "give the gateway's token with --token or CLAWGATE_GATEWAY_TOKEN \
                     (OPENCLAW_GATEWAY_TOKEN)";
    match code {
        "PAIRING_REQUIRED" | "NOT_PAIRED" => {
            Rejection::Pairing(error.detail_str("requestId").map(str::to_owned))
        }
        "AUTH_TOKEN_MISMATCH" => Rejection::Fatal(format!(
            "the gateway rejected the token ({}): {fix_token} — it must equal the gateway's gateway.auth.token",
            error.message
        )),
        "AUTH_TOKEN_MISSING" | "AUTH_REQUIRED" | "AUTH_UNAUTHORIZED" => Rejection::Fatal(format!(
            "the gateway requires credentials ({}): {fix_token}, or --password",
            error.message
        )),
        "AUTH_PASSWORD_MISMATCH" | "AUTH_PASSWORD_MISSING" => Rejection::Fatal(format!(
            "the gateway rejected the password ({}): give it with --password or \
             CLAWGATE_GATEWAY_PASSWORD (OPENCLAW_GATEWAY_PASSWORD)",
            error.message
        )),
        "AUTH_TOKEN_NOT_CONFIGURED" | "AUTH_PASSWORD_NOT_CONFIGURED" => Rejection::Fatal(format!(
            "the gateway does not use that kind of credential ({}): use the one it is configured for",
            error.message
        )),
        "AUTH_DEVICE_TOKEN_MISMATCH" if used_device_token => Rejection::Fatal(format!(
            "the gateway rejected this node's stored device token ({}); it was rotated or revoked \
             and has been discarded: {fix_token} and start the node host again",
            error.message
        )),
        "AUTH_BOOTSTRAP_TOKEN_INVALID"
        | "AUTH_IDENTITY_HEADER_REQUIRED"
        | "AUTH_SCOPE_MISMATCH"
        | "CLIENT_VERSION_MISMATCH"
        | "AUTH_DEVICE_TOKEN_MISMATCH" => Rejection::Fatal(format!(
            "the gateway rejected this node host: {} ({code})",
            error.message
        )),
        "PROTOCOL_MISMATCH" => {
            let expected = error
                .details
                .as_ref()
                .and_then(|d| d.get("expectedProtocol"))
                .and_then(Value::as_u64);
            if expected == Some(u64::from(clawgate_protocol::MIN_NODE_PROTOCOL)) && *protocol != 3 {
                *protocol = clawgate_protocol::MIN_NODE_PROTOCOL;
                Rejection::RetryNow
            } else {
                Rejection::Fatal(format!(
                    "the gateway speaks another protocol version ({}): update clawgate or the gateway",
                    error.message
                ))
            }
        }
        _ => Rejection::Retry,
    }
}

fn pairing_message(error: &WireError, request_id: Option<&str>, node_id: &str) -> String {
    match request_id {
        Some(id) => format!(
            "node host is waiting for device pairing approval ({}). On the gateway host run:\n  \
             clawgate devices approve {id}\n(OpenClaw: openclaw devices approve {id}). \
             Device {node_id}; this node retries automatically.",
            error.message
        ),
        None => format!(
            "node host is waiting for device pairing approval ({}). List pending requests with \
             `clawgate devices list` (OpenClaw: `openclaw devices list`) and approve device \
             {node_id}; this node retries automatically.",
            error.message
        ),
    }
}

/// Runs one publication (`node.runnerInventory.update`, …) until it is accepted, retrying
/// transient refusals (the capability approval is pending, pairing changed) with 250 ms
/// doubling to 5 s. `refresh` starts it over (after an approval).
async fn publish(
    rpc: Requester,
    method: &'static str,
    params: Value,
    refresh: Arc<Notify>,
    announced: Arc<Mutex<HashSet<String>>>,
    tell: Tell,
) {
    let mut delay = PUBLISH_RETRY_INITIAL;
    let mut last_logged = String::new();
    loop {
        match call(&rpc, method, params.clone()).await {
            Ok(_) => {
                delay = PUBLISH_RETRY_INITIAL;
                refresh.notified().await;
                continue;
            }
            Err(RpcError::Closed { .. }) => return,
            Err(RpcError::Gateway { error: e, .. }) if e.code == "INVALID_REQUEST" => {
                // Unknown method, wrong role or bad params: retrying cannot help.
                tracing::debug!(method, error = %e, "publication refused");
                refresh.notified().await;
                delay = PUBLISH_RETRY_INITIAL;
                continue;
            }
            Err(failure) => {
                let text = failure.to_string();
                if let Some(id) = failure
                    .wire()
                    .filter(|e| e.message.contains("awaiting operator approval"))
                    .and_then(|e| approve_request_id(&e.message))
                {
                    let first = announced
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(id.to_owned());
                    if first {
                        tell(Notice::Line(format!(
                            "node host is connected but its commands await operator approval. \
                             On the gateway host run:\n  clawgate nodes approve {id}\n(OpenClaw: \
                             openclaw nodes approve {id}). This node retries automatically."
                        )));
                    }
                } else if is_pairing_changed(&failure) {
                    tracing::debug!(method, "pairing changed; retrying");
                } else if text != last_logged {
                    tell(Notice::Line(format!(
                        "node host {method} publish failed: {text}"
                    )));
                }
                last_logged = text;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = refresh.notified() => {}
        }
        delay = (delay * 2).min(PUBLISH_RETRY_MAX);
    }
}

/// Publishes `node.host.stats` now and every 60 s; a refused publication (pairing still
/// settling) is retried sooner, 250 ms doubling to 5 s.
async fn publish_stats(rpc: Requester, home: PathBuf, tell: Tell) {
    let mut logged = false;
    loop {
        let mut delay = PUBLISH_RETRY_INITIAL;
        loop {
            let payload = stats::sample(&home);
            let params = json!({"event": "node.host.stats", "payloadJSON": payload.to_string()});
            match call(&rpc, "node.event", params).await {
                Ok(_) => break,
                Err(RpcError::Closed { .. }) => return,
                Err(RpcError::Gateway { error: e, .. }) if e.code == "INVALID_REQUEST" => {
                    tracing::debug!(error = %e, "node.host.stats refused");
                    break;
                }
                Err(e) => {
                    if !logged && !is_pairing_changed(&e) {
                        logged = true;
                        tell(Notice::Line(format!("node host stats publish failed: {e}")));
                    }
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(PUBLISH_RETRY_MAX);
        }
        tokio::time::sleep(stats::INTERVAL).await;
    }
}

/// `UNAVAILABLE` + `PAIRING_CHANGED`: the gateway is still settling this node's pairing
/// (seen right after every connect); worth a retry, not a message.
fn is_pairing_changed(failure: &RpcError) -> bool {
    failure
        .wire()
        .is_some_and(|e| e.detail_code() == Some("PAIRING_CHANGED"))
}

type Running = Arc<Mutex<HashMap<String, CancellationToken>>>;

async fn session(
    mut client: Client,
    ctx: Arc<Context>,
    node_id: String,
    max_concurrent: usize,
    announced: Arc<Mutex<HashSet<String>>>,
    shutdown: CancellationToken,
    tell: Tell,
) -> SessionEnd {
    let say = |line: String| tell(Notice::Line(line));
    let rpc = client.requester();
    let session_token = CancellationToken::new();
    let mut background = JoinSet::new();
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"));
    background.spawn(publish_stats(rpc.clone(), home, tell.clone()));
    let inventory_refresh = Arc::new(Notify::new());
    background.spawn(publish(
        rpc.clone(),
        "node.runnerInventory.update",
        json!({"protocolFeatures": ["node-worker-supervisor-v6"], "workerHost": {"enabled": false}}),
        inventory_refresh.clone(),
        announced.clone(),
        tell.clone(),
    ));
    background.spawn(publish(
        rpc.clone(),
        "node.skills.update",
        json!({"skills": []}),
        Arc::new(Notify::new()),
        announced.clone(),
        tell.clone(),
    ));
    background.spawn(publish(
        rpc.clone(),
        "node.pluginTools.update",
        json!({"tools": []}),
        Arc::new(Notify::new()),
        announced.clone(),
        tell.clone(),
    ));

    let running: Running = Arc::default();
    let permits = Arc::new(Semaphore::new(max_concurrent));
    let mut invocations = JoinSet::new();
    let end = loop {
        let next = tokio::select! {
            m = client.events().recv() => m,
            _ = shutdown.cancelled() => break SessionEnd::Shutdown,
            Some(_) = invocations.join_next(), if !invocations.is_empty() => continue,
        };
        let Some(clawgate_client::Event { event, payload, .. }) = next else {
            let (code, reason) = client
                .close_info()
                .unwrap_or((1006, "connection lost".into()));
            break SessionEnd::Closed { code, reason };
        };
        match event.as_str() {
            wire::REQUEST_EVENT => {
                let req = match InvokeRequest::from_payload(&payload) {
                    Ok(req) => req,
                    Err(e) => {
                        tracing::debug!(%payload, "ignoring a malformed request: {e}");
                        continue;
                    }
                };
                let token = session_token.child_token();
                {
                    let mut map = running.lock().unwrap_or_else(|e| e.into_inner());
                    if map.contains_key(&req.id) {
                        continue;
                    }
                    map.insert(req.id.clone(), token.clone());
                }
                let permit = permits.clone().try_acquire_owned().ok();
                invocations.spawn(invoke(
                    req,
                    rpc.clone(),
                    ctx.clone(),
                    token,
                    running.clone(),
                    permit,
                    max_concurrent,
                ));
            }
            wire::CANCEL_EVENT => {
                let cancel = serde_json::from_value::<InvokeCancel>(payload);
                if let Ok(InvokeCancel { invoke_id: id, .. }) = cancel
                    && let Some(token) = running
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&id)
                {
                    say(format!("node host invoke {id} cancelled by the gateway"));
                    token.cancel();
                }
            }
            "node.pair.resolved"
                if payload.get("nodeId").and_then(Value::as_str) == Some(node_id.as_str())
                    && payload.get("decision").and_then(Value::as_str) == Some("approved") =>
            {
                say("node host commands approved by an operator".to_owned());
                inventory_refresh.notify_one();
            }
            "shutdown" => {
                let reason = payload
                    .get("reason")
                    .and_then(Value::as_str)
                    .unwrap_or("shutdown");
                say(format!("node host: gateway is shutting down ({reason})"));
            }
            // Streaming input is for commands this host does not have.
            wire::INPUT_EVENT => tracing::debug!("ignoring node.invoke.input"),
            _ => {}
        }
    };
    // Running commands die with the connection: their results could not be delivered.
    session_token.cancel();
    background.abort_all();
    if matches!(end, SessionEnd::Shutdown) {
        // Events that come now are not read: the reader must not wait for room for them.
        client.events().close();
        // Waits (briefly) for the gateway's answering close so the close handshake completes
        // before the process exits.
        client.close_with(1000, "node host stopping").await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        while invocations.join_next().await.is_some() {}
    })
    .await;
    end
}

async fn invoke(
    req: InvokeRequest,
    rpc: Requester,
    ctx: Arc<Context>,
    cancel: CancellationToken,
    running: Running,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    max_concurrent: usize,
) {
    let outcome = match permit {
        Some(_) => commands::handle(&req, &ctx, cancel.clone()).await,
        None => Some(
            Reply::Err {
                code: "UNAVAILABLE".into(),
                message: format!(
                    "node host is busy: {max_concurrent} invocations are already running"
                ),
            }
            .into(),
        ),
    };
    running
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&req.id);
    let Some(outcome) = outcome else {
        return;
    };
    if cancel.is_cancelled() {
        return;
    }
    for (event, payload) in outcome.events {
        let params = json!({"event": event, "payloadJSON": payload.to_string()});
        let _ = call(&rpc, "node.event", params).await;
    }
    if cancel.is_cancelled() {
        return;
    }
    let result = outcome.reply.to_params(&req.id, &req.node_id);
    if let Err(e) = call(&rpc, wire::RESULT_METHOD, result).await {
        tracing::warn!(id = %req.id, error = %e, "node.invoke.result was not accepted");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clawgate_protocol::device::SignedFields;

    #[test]
    fn backoff_doubles_to_thirty_seconds_with_jitter() {
        let mut b = Backoff::new(BACKOFF_INITIAL, BACKOFF_MAX);
        let delays: Vec<Duration> = (0..8).map(|_| b.next_delay()).collect();
        let bases = [1, 2, 4, 8, 16, 30, 30, 30];
        for (d, base) in delays.iter().zip(bases) {
            let base = Duration::from_secs(base);
            assert!(
                *d >= base && *d <= (base.mul_f64(1.2)).min(BACKOFF_MAX),
                "{d:?} vs {base:?}"
            );
        }
        b.reset();
        assert!(b.next_delay() < Duration::from_millis(1300));
    }

    /// Nothing listens: the failed attempt is told with its log line, the reason, the delay
    /// and the number of the next attempt, which grows with each failure.
    #[tokio::test]
    async fn waits_for_the_next_attempt_are_told() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let state = tempfile::tempdir().unwrap();
        let config = NodeHostConfig {
            url: format!("ws://127.0.0.1:{port}"),
            tls_fingerprint: None,
            token: Some("t".into()),
            password: None,
            display_name: None,
            state_dir: state.path().to_owned(),
            max_concurrent: 1,
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let shutdown = CancellationToken::new();
        let host = tokio::spawn(run_with(config, shutdown.clone(), move |n| {
            let _ = tx.send(n);
        }));
        let mut retries = Vec::new();
        while retries.len() < 2 {
            let notice = tokio::time::timeout(Duration::from_secs(20), rx.recv())
                .await
                .expect("a notice in time")
                .expect("the host runs");
            match notice {
                Notice::Line(line) => assert!(line.starts_with("node host starting"), "{line}"),
                Notice::Retrying(r) => retries.push(r),
                other => panic!("{other:?}"),
            }
        }
        shutdown.cancel();
        assert!(host.await.unwrap().is_ok());
        for (r, attempt) in retries.iter().zip([2, 3]) {
            assert_eq!(r.attempt, attempt);
            assert_eq!(r.wait, Wait::Unreachable);
            assert_eq!(r.reason, "connection refused");
            let line = r.line.as_deref().unwrap_or_default();
            assert!(
                line.starts_with("node host gateway connect failed: "),
                "{line}"
            );
        }
        assert!(retries[0].delay >= BACKOFF_INITIAL && retries[1].delay >= 2 * BACKOFF_INITIAL);
    }

    /// A URL or pin that cannot work stops the node host before anything is dialed.
    #[tokio::test]
    async fn bad_urls_fail_before_connecting() {
        let pin = "ab".repeat(32);
        for (url, fp) in [
            ("http://127.0.0.1:1", None),
            ("ws://127.0.0.1:1", Some(pin.as_str())),
            ("wss://127.0.0.1:1", Some("nothex")),
        ] {
            let state = tempfile::tempdir().unwrap();
            let config = NodeHostConfig {
                url: url.into(),
                tls_fingerprint: fp.map(str::to_owned),
                token: Some("t".into()),
                password: None,
                display_name: None,
                state_dir: state.path().to_owned(),
                max_concurrent: 1,
            };
            let r = tokio::time::timeout(
                Duration::from_secs(10),
                run_with(config, CancellationToken::new(), |_| {}),
            )
            .await
            .expect("stops at once");
            assert!(matches!(r, Err(FatalError::Config(_))), "{url}: {r:?}");
        }
    }

    #[test]
    fn approve_ids_are_read_from_the_gateway_message() {
        let m = "node capability surface is awaiting operator approval; run `openclaw nodes approve 531d427a-ea8b-45f2-bc63-88c153a8d8c1` (see `openclaw nodes pending`), then this node retries automatically";
        assert_eq!(
            approve_request_id(m),
            Some("531d427a-ea8b-45f2-bc63-88c153a8d8c1")
        );
        assert_eq!(approve_request_id("something else"), None);
    }

    fn gw_error(detail: Value) -> WireError {
        WireError {
            code: "INVALID_REQUEST".into(),
            message: "m".into(),
            details: Some(detail),
            retryable: None,
            retry_after_ms: None,
        }
    }

    #[test]
    fn which_rejections_stop_the_node_host() {
        let mut p = 4;
        assert!(matches!(
            rejection(
                &gw_error(json!({"code": "AUTH_TOKEN_MISMATCH"})),
                false,
                &mut p
            ),
            Rejection::Fatal(_)
        ));
        assert!(matches!(
            rejection(
                &gw_error(json!({"code": "PAIRING_REQUIRED", "requestId": "r1", "recommendedNextStep": "wait_then_retry"})),
                false,
                &mut p
            ),
            Rejection::Pairing(Some(ref id)) if id == "r1"
        ));
        assert!(matches!(
            rejection(
                &gw_error(json!({"code": "AUTH_RATE_LIMITED"})),
                false,
                &mut p
            ),
            Rejection::Retry
        ));
        assert!(matches!(
            rejection(
                &gw_error(json!({"code": "PROTOCOL_MISMATCH", "expectedProtocol": 3})),
                false,
                &mut p
            ),
            Rejection::RetryNow
        ));
        assert_eq!(p, 3);
        assert!(matches!(
            rejection(
                &gw_error(json!({"code": "PROTOCOL_MISMATCH", "expectedProtocol": 3})),
                false,
                &mut p
            ),
            Rejection::Fatal(_)
        ));
    }

    #[test]
    fn connect_params_look_like_the_real_node_host() {
        let id = Identity {
            device: DeviceIdentity::generate(),
            instance_id: "inst".into(),
            display_name: "n1".into(),
            path_env: "/usr/bin:/bin".into(),
        };
        let auth = Auth {
            token: Some("t1".into()),
            ..Auth::default()
        };
        let endpoint = Endpoint {
            url: "ws://127.0.0.1:18789".into(),
            tls: TlsOptions::default(),
        };
        let p = connect_options(&id, &auth, 4, &endpoint).connect_params("nonce-1", 1795513712676);
        let keys: Vec<&str> = p.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "minProtocol",
                "maxProtocol",
                "client",
                "caps",
                "commands",
                "pathEnv",
                "auth",
                "role",
                "scopes",
                "device"
            ]
        );
        assert_eq!(p["client"]["id"], "node-host");
        assert_eq!(p["client"]["mode"], "node");
        assert_eq!(p["role"], "node");
        assert_eq!(p["scopes"], json!([]));
        assert_eq!(p["auth"], json!({"token": "t1"}));
        assert_eq!(p["device"]["signedAt"], 1795513712676i64);
        let fields = SignedFields {
            device_id: id.device.id(),
            client_id: "node-host",
            client_mode: "node",
            role: "node",
            scopes: &[],
            signed_at_ms: 1795513712676,
            token: "t1",
            nonce: "nonce-1",
            platform: Some(clawgate_client::platform()),
            device_family: Some(clawgate_client::device_family()),
        };
        assert!(
            clawgate_protocol::device::verify(
                &id.device.signing_key().verifying_key(),
                p["device"]["signature"].as_str().unwrap(),
                &fields
            ) == Some(clawgate_protocol::device::PayloadVersion::V3)
        );
    }
}
