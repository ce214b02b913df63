//! The connection: handshake, then a reader task that routes `res` frames to the waiting
//! request (by id) and events to a bounded channel, and a writer task that owns the socket's
//! sending half.

use crate::device::DeviceIdentity;
use crate::error::{ClientError, RpcError, WireError};
use crate::hello::HelloOk;
use crate::transport::{self, TlsOptions, WsStream};
use clawgate_protocol::connect::ClientInfo;
use clawgate_protocol::device::{SignedFields, sign_v3};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Events buffered for [`Client::events`]; past this, new events are dropped (and counted)
/// so a consumer that never reads cannot stall responses, unless
/// [`ConnectOptions::lossless_events`] asks to stop reading instead.
const EVENT_BUFFER: usize = 1024;

/// The tick interval assumed when the hello names none (the gateway's default).
const DEFAULT_TICK_INTERVAL: Duration = Duration::from_secs(30);

/// The close code and reason of a connection given up for silence (as OpenClaw's clients).
const TICK_TIMEOUT_CODE: u16 = 4000;
const TICK_TIMEOUT_REASON: &str = "tick timeout";

/// How long to wait for the close that follows a rejected `connect`.
const REJECT_CLOSE_WAIT: Duration = Duration::from_millis(1000);

/// How long [`Client::close`] waits for the gateway to answer the close.
const CLOSE_WAIT: Duration = Duration::from_millis(2000);

/// Everything [`Client::connect`] needs.
#[derive(Clone)]
pub struct ConnectOptions<'a> {
    /// `ws://host:port[/path]` or `wss://…`.
    pub url: String,
    /// Shared gateway token (`auth.token`).
    pub token: Option<String>,
    /// Shared gateway password (`auth.password`).
    pub password: Option<String>,
    /// A device token issued at an earlier hello (`auth.deviceToken`); needs `device`.
    pub device_token: Option<String>,
    pub client: ClientInfo,
    /// `operator` or `node`.
    pub role: String,
    /// Requested scopes, sent in this order (and signed in this order).
    pub scopes: Vec<String>,
    pub caps: Vec<String>,
    /// Commands a `node` declares (`commands`); sent only when not empty.
    pub commands: Vec<String>,
    /// The `PATH` a `node` declares (`pathEnv`).
    pub path_env: Option<String>,
    /// Sign the challenge with this identity.
    pub device: Option<&'a DeviceIdentity>,
    /// Budget for the whole handshake: TCP/TLS connect, challenge and hello.
    pub timeout: Duration,
    pub min_protocol: u32,
    pub max_protocol: u32,
    pub tls: TlsOptions,
    /// Dial this address instead of the URL's host, e.g. an SSH tunnel's local end. The
    /// URL's host still names the server for TLS (SNI, certificate) and the Host header.
    pub connect_to: Option<std::net::SocketAddr>,
    /// Refuse a plaintext `ws://` URL to a host that is not loopback or private before
    /// dialing (see [`crate::plaintext`]). A caller that checked the URL once itself, before
    /// it started reconnecting (the node host), turns this off.
    pub plaintext_rule: bool,
    /// Give the connection up when the gateway sends nothing for two tick intervals (the
    /// hello's `policy.tickIntervalMs`, 30 s without one): close it with 4000
    /// "tick timeout", like OpenClaw's clients, so that a long-lived client notices a gateway
    /// that went away without a close.
    pub tick_watchdog: bool,
    /// Never drop an event: when the consumer of [`Client::events`] falls its whole buffer
    /// behind, stop reading the socket until it catches up (the gateway's own bound on what
    /// it queues for this client then applies). For a client whose events are work it must
    /// not lose, like a node's `node.invoke.request`s; the consumer must keep reading.
    pub lossless_events: bool,
}

impl<'a> ConnectOptions<'a> {
    /// An operator connection with no scopes and no credentials, protocol 4, 10 s budget.
    pub fn new(url: impl Into<String>, client: ClientInfo) -> Self {
        ConnectOptions {
            url: url.into(),
            token: None,
            password: None,
            device_token: None,
            client,
            role: "operator".into(),
            scopes: Vec::new(),
            caps: Vec::new(),
            commands: Vec::new(),
            path_env: None,
            device: None,
            timeout: Duration::from_secs(10),
            min_protocol: clawgate_protocol::PROTOCOL_VERSION,
            max_protocol: clawgate_protocol::PROTOCOL_VERSION,
            tls: TlsOptions::default(),
            connect_to: None,
            plaintext_rule: true,
            tick_watchdog: false,
            lossless_events: false,
        }
    }

    /// The `connect` params, keys in the order the real CLI sends them.
    pub fn connect_params(&self, challenge_nonce: &str, challenge_ts: i64) -> Value {
        let mut params = Map::new();
        params.insert("minProtocol".into(), json!(self.min_protocol));
        params.insert("maxProtocol".into(), json!(self.max_protocol));
        params.insert("client".into(), client_json(&self.client));
        params.insert("caps".into(), json!(self.caps));
        if !self.commands.is_empty() {
            params.insert("commands".into(), json!(self.commands));
        }
        if let Some(path_env) = &self.path_env {
            params.insert("pathEnv".into(), json!(path_env));
        }
        let mut auth = Map::new();
        if let Some(t) = &self.token {
            auth.insert("token".into(), json!(t));
        }
        if let Some(p) = &self.password {
            auth.insert("password".into(), json!(p));
        }
        if let Some(d) = &self.device_token {
            auth.insert("deviceToken".into(), json!(d));
        }
        if !auth.is_empty() {
            params.insert("auth".into(), Value::Object(auth));
        }
        params.insert("role".into(), json!(self.role));
        params.insert("scopes".into(), json!(self.scopes));
        if let Some(device) = self.device {
            let signed_token = self
                .token
                .as_deref()
                .or(self.device_token.as_deref())
                .unwrap_or("");
            let fields = SignedFields {
                device_id: device.id(),
                client_id: &self.client.id,
                client_mode: &self.client.mode,
                role: &self.role,
                scopes: &self.scopes,
                signed_at_ms: challenge_ts,
                token: signed_token,
                nonce: challenge_nonce,
                platform: Some(&self.client.platform),
                device_family: self.client.device_family.as_deref(),
            };
            params.insert(
                "device".into(),
                json!({
                    "id": device.id(),
                    "publicKey": device.public_key(),
                    "signature": sign_v3(device.signing_key(), &fields),
                    "signedAt": challenge_ts,
                    "nonce": challenge_nonce,
                }),
            );
        }
        Value::Object(params)
    }
}

impl std::fmt::Debug for ConnectOptions<'_> {
    /// Credentials are shown only as present or absent.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |o: &Option<String>| if o.is_some() { "<set>" } else { "<none>" };
        f.debug_struct("ConnectOptions")
            .field("url", &self.url)
            .field("token", &set(&self.token))
            .field("password", &set(&self.password))
            .field("device_token", &set(&self.device_token))
            .field("client", &self.client)
            .field("role", &self.role)
            .field("scopes", &self.scopes)
            .field("commands", &self.commands)
            .field("path_env", &self.path_env)
            .field("device", &self.device.map(DeviceIdentity::id))
            .field("timeout", &self.timeout)
            .field("protocol", &(self.min_protocol, self.max_protocol))
            .field("tls", &self.tls)
            .field("connect_to", &self.connect_to)
            .field("plaintext_rule", &self.plaintext_rule)
            .field("tick_watchdog", &self.tick_watchdog)
            .field("lossless_events", &self.lossless_events)
            .finish()
    }
}

/// `client` in the real CLI's key order.
fn client_json(c: &ClientInfo) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(c.id));
    if let Some(v) = &c.display_name {
        m.insert("displayName".into(), json!(v));
    }
    m.insert("version".into(), json!(c.version));
    m.insert("platform".into(), json!(c.platform));
    if let Some(v) = &c.device_family {
        m.insert("deviceFamily".into(), json!(v));
    }
    if let Some(v) = &c.model_identifier {
        m.insert("modelIdentifier".into(), json!(v));
    }
    m.insert("mode".into(), json!(c.mode));
    if let Some(v) = &c.build_id {
        m.insert("buildId".into(), json!(v));
    }
    if let Some(v) = &c.time_zone {
        m.insert("timeZone".into(), json!(v));
    }
    if let Some(v) = &c.instance_id {
        m.insert("instanceId".into(), json!(v));
    }
    Value::Object(m)
}

/// A server event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event: String,
    /// `null` when the frame had no payload.
    pub payload: Value,
    /// Set on broadcasts only.
    pub seq: Option<u64>,
    pub state_version: Option<Value>,
}

impl Event {
    fn from_frame(mut frame: Map<String, Value>) -> Option<Event> {
        let event = frame.get("event")?.as_str()?.to_owned();
        Some(Event {
            event,
            payload: frame.remove("payload").unwrap_or(Value::Null),
            seq: frame.get("seq").and_then(Value::as_u64),
            state_version: frame.remove("stateVersion"),
        })
    }
}

struct Pending {
    tx: oneshot::Sender<Result<Value, RpcError>>,
    /// Skip an interim `{status:"accepted"}` answer and wait for the final one.
    expect_final: bool,
}

#[derive(Default)]
struct State {
    pending: HashMap<String, Pending>,
    /// Set once the connection is gone; new requests fail at once.
    closed: Option<(u16, String)>,
}

struct Shared {
    state: Mutex<State>,
    next_id: AtomicU64,
    dropped_events: AtomicU64,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock leaves plain data behind; keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A connected gateway client. Requests take `&self` and may run concurrently; tasks that
/// run beside the one reading [`Client::events`] make theirs through a [`Requester`].
pub struct Client {
    rpc: Requester,
    /// The writer's queue; the writer says goodbye once the client drops it.
    out: mpsc::UnboundedSender<Message>,
    events: mpsc::Receiver<Event>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
    url: String,
}

/// A cheap, cloneable handle for requests on a [`Client`]'s connection (see
/// [`Client::requester`]). It does not keep the connection open: once the client is closed or
/// dropped, its requests fail with [`RpcError::Closed`].
#[derive(Clone)]
pub struct Requester {
    shared: Arc<Shared>,
    out: mpsc::WeakUnboundedSender<Message>,
}

impl std::fmt::Debug for Requester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Requester").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// One parsed text frame during the handshake.
enum HandshakeFrame {
    Event(Map<String, Value>),
    Res(Map<String, Value>),
}

impl Client {
    /// Opens the socket, waits for `connect.challenge`, sends `connect` (signing the challenge
    /// when a device identity is given) and returns the client with the gateway's hello.
    pub async fn connect(opts: ConnectOptions<'_>) -> Result<(Client, HelloOk), ClientError> {
        let deadline = Instant::now() + opts.timeout;
        let mut ws = transport::open(
            &opts.url,
            &opts.tls,
            opts.connect_to,
            opts.timeout,
            opts.plaintext_rule,
        )
        .await?;
        let mut early_events: Vec<Event> = Vec::new();

        let (nonce, ts) = loop {
            match next_handshake_frame(&mut ws, deadline, &opts, "connect.challenge").await? {
                HandshakeFrame::Event(frame)
                    if frame.get("event").and_then(Value::as_str) == Some("connect.challenge") =>
                {
                    let payload = frame.get("payload");
                    let nonce = payload
                        .and_then(|p| p.get("nonce"))
                        .and_then(Value::as_str)
                        .filter(|n| !n.trim().is_empty());
                    let ts = payload.and_then(|p| p.get("ts")).and_then(Value::as_i64);
                    match (nonce, ts) {
                        (Some(n), Some(ts)) => break (n.to_owned(), ts),
                        (Some(n), None) if opts.device.is_none() => {
                            break (n.to_owned(), crate::now_ms());
                        }
                        _ => {
                            return Err(ClientError::Protocol(
                                "connect.challenge without a nonce and integer ts".into(),
                            ));
                        }
                    }
                }
                HandshakeFrame::Event(frame) => early_events.extend(Event::from_frame(frame)),
                HandshakeFrame::Res(_) => {
                    return Err(ClientError::Protocol(
                        "the gateway answered before sending connect.challenge".into(),
                    ));
                }
            }
        };

        let connect_id = format!("1:{}", uuid::Uuid::new_v4());
        let frame = json!({
            "type": "req",
            "id": connect_id,
            "method": "connect",
            "params": opts.connect_params(&nonce, ts),
        });
        if let Err(e) = ws.send(Message::text(frame.to_string())).await {
            return Err(ClientError::Closed(1006, e.to_string()));
        }

        let hello = loop {
            match next_handshake_frame(&mut ws, deadline, &opts, "hello").await? {
                HandshakeFrame::Event(frame) => early_events.extend(Event::from_frame(frame)),
                HandshakeFrame::Res(res)
                    if res.get("id").and_then(Value::as_str) == Some(&connect_id) =>
                {
                    if res.get("ok").and_then(Value::as_bool) == Some(true) {
                        let payload = res.get("payload").cloned().unwrap_or(Value::Null);
                        if payload.get("type").and_then(Value::as_str) != Some("hello-ok") {
                            return Err(ClientError::Protocol(format!(
                                "connect succeeded without a hello-ok payload: {payload}"
                            )));
                        }
                        break HelloOk::new(payload);
                    }
                    let error = WireError::from_value(res.get("error"));
                    let wait_until = deadline.min(Instant::now() + REJECT_CLOSE_WAIT);
                    let close_code = wait_for_close(&mut ws, wait_until).await;
                    return Err(ClientError::Handshake {
                        code: error.code.clone(),
                        detail_code: error.detail_code().map(str::to_owned),
                        message: error.message.clone(),
                        error,
                        close_code,
                    });
                }
                HandshakeFrame::Res(_) => {}
            }
        };

        let (sink, stream) = ws.split();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            next_id: AtomicU64::new(2),
            dropped_events: AtomicU64::new(0),
        });
        let (events_tx, events_rx) = mpsc::channel(EVENT_BUFFER);
        for event in early_events {
            let _ = events_tx.try_send(event);
        }
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let silence_limit = opts.tick_watchdog.then(|| {
            hello
                .tick_interval_ms()
                .filter(|t| *t > 0)
                .map_or(DEFAULT_TICK_INTERVAL, Duration::from_millis)
                .saturating_mul(2)
        });
        let reader = tokio::spawn(read_loop(
            stream,
            shared.clone(),
            Delivery {
                events: events_tx,
                lossless: opts.lossless_events,
            },
            Watchdog {
                silence_limit,
                out: out_tx.downgrade(),
            },
        ));
        let writer = tokio::spawn(write_loop(sink, out_rx));
        let client = Client {
            rpc: Requester {
                shared,
                out: out_tx.downgrade(),
            },
            out: out_tx,
            events: events_rx,
            reader,
            writer,
            url: opts.url,
        };
        Ok((client, hello))
    }

    /// The URL this client connected to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Calls `method` and waits for its answer. `params: None` sends no `params` key.
    pub async fn request(&self, method: &str, params: Option<Value>) -> Result<Value, RpcError> {
        self.rpc.call(method, params, false).await
    }

    /// Like [`Client::request`], but an interim `ok:true` answer whose payload has
    /// `status:"accepted"` is skipped: the result is the second answer with the same id.
    pub async fn request_expect_final(
        &self,
        method: &str,
        params: Option<Value>,
    ) -> Result<Value, RpcError> {
        self.rpc.call(method, params, true).await
    }

    /// A handle for requests from other tasks.
    pub fn requester(&self) -> Requester {
        self.rpc.clone()
    }

    /// Server events, in arrival order (including any that came during the handshake). The
    /// channel ends once the connection is gone ([`Client::close_info`] says how).
    pub fn events(&mut self) -> &mut mpsc::Receiver<Event> {
        &mut self.events
    }

    /// Events dropped because [`Client::events`] was not drained fast enough.
    pub fn dropped_events(&self) -> u64 {
        self.rpc.shared.dropped_events.load(Ordering::Relaxed)
    }

    /// The close code and reason, once the connection is gone.
    pub fn close_info(&self) -> Option<(u16, String)> {
        self.rpc.close_info()
    }

    /// Closes with 1000 and waits (briefly) for the gateway's answering close. Requests still
    /// pending fail with [`RpcError::Closed`].
    pub async fn close(self) {
        self.close_with(1000, "").await
    }

    /// Closes with `code` and `reason`, like [`Client::close`].
    pub async fn close_with(self, code: u16, reason: &str) {
        let _ = self.out.send(Message::Close(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: reason.to_owned().into(),
        })));
        let mut reader = self.reader;
        if tokio::time::timeout(CLOSE_WAIT, &mut reader).await.is_err() {
            reader.abort();
        }
        self.writer.abort();
    }
}

impl Requester {
    /// [`Client::request`].
    pub async fn request(&self, method: &str, params: Option<Value>) -> Result<Value, RpcError> {
        self.call(method, params, false).await
    }

    /// [`Client::request_expect_final`].
    pub async fn request_expect_final(
        &self,
        method: &str,
        params: Option<Value>,
    ) -> Result<Value, RpcError> {
        self.call(method, params, true).await
    }

    /// [`Client::close_info`].
    pub fn close_info(&self) -> Option<(u16, String)> {
        self.shared.lock().closed.clone()
    }

    async fn call(
        &self,
        method: &str,
        params: Option<Value>,
        expect_final: bool,
    ) -> Result<Value, RpcError> {
        let n = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let id = format!("{n}:{}", uuid::Uuid::new_v4());
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.shared.lock();
            if let Some((code, reason)) = &state.closed {
                return Err(RpcError::Closed {
                    code: *code,
                    reason: reason.clone(),
                });
            }
            state
                .pending
                .insert(id.clone(), Pending { tx, expect_final });
        }
        // Removes the entry if this future is dropped (a caller's timeout) before the answer.
        let _guard = PendingGuard {
            shared: &self.shared,
            id: &id,
        };
        let mut frame = Map::new();
        frame.insert("type".into(), json!("req"));
        frame.insert("id".into(), json!(id));
        frame.insert("method".into(), json!(method));
        if let Some(params) = params {
            frame.insert("params".into(), params);
        }
        let text = Value::Object(frame).to_string();
        let sent = self
            .out
            .upgrade()
            .is_some_and(|out| out.send(Message::text(text)).is_ok());
        if !sent {
            return Err(self.closed_error());
        }
        match rx.await {
            Ok(result) => result,
            Err(_) => Err(self.closed_error()),
        }
    }

    fn closed_error(&self) -> RpcError {
        let state = self.shared.lock();
        let (code, reason) = state
            .closed
            .clone()
            .unwrap_or((1006, "connection lost".into()));
        RpcError::Closed { code, reason }
    }
}

struct PendingGuard<'a> {
    shared: &'a Shared,
    id: &'a str,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.shared.lock().pending.remove(self.id);
    }
}

/// Reads until the next JSON frame the handshake cares about.
async fn next_handshake_frame(
    ws: &mut WsStream,
    deadline: Instant,
    opts: &ConnectOptions<'_>,
    waiting_for: &str,
) -> Result<HandshakeFrame, ClientError> {
    loop {
        let msg = match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => {
                return Err(ClientError::Unreachable {
                    url: opts.url.clone(),
                    reason: format!(
                        "connected, but no {waiting_for} within {} ms",
                        opts.timeout.as_millis()
                    ),
                    timed_out: true,
                });
            }
            Ok(None) => return Err(ClientError::Closed(1006, "connection lost".into())),
            Ok(Some(Err(e))) => return Err(ClientError::Closed(1006, e.to_string())),
            Ok(Some(Ok(msg))) => msg,
        };
        match msg {
            Message::Text(text) => {
                let value: Value = serde_json::from_str(text.as_str()).map_err(|_| {
                    ClientError::Protocol(format!(
                        "non-JSON text frame while waiting for {waiting_for}"
                    ))
                })?;
                let Value::Object(frame) = value else {
                    continue;
                };
                match frame.get("type").and_then(Value::as_str) {
                    Some("event") => return Ok(HandshakeFrame::Event(frame)),
                    Some("res") => return Ok(HandshakeFrame::Res(frame)),
                    _ => continue,
                }
            }
            Message::Close(frame) => {
                let (code, reason) = close_parts(frame);
                return Err(ClientError::Closed(code, reason));
            }
            _ => continue,
        }
    }
}

/// After a rejected connect: the close code that follows, if it comes before `until`.
async fn wait_for_close(ws: &mut WsStream, until: Instant) -> Option<u16> {
    loop {
        match tokio::time::timeout_at(until, ws.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => return Some(close_parts(frame).0),
            Ok(Some(Ok(_))) => continue,
            _ => return None,
        }
    }
}

fn close_parts(frame: Option<CloseFrame>) -> (u16, String) {
    frame
        .map(|f| (u16::from(f.code), f.reason.to_string()))
        .unwrap_or((1005, String::new()))
}

async fn write_loop(
    mut sink: SplitSink<WsStream, Message>,
    mut rx: mpsc::UnboundedReceiver<Message>,
) {
    while let Some(msg) = rx.recv().await {
        let is_close = matches!(msg, Message::Close(_));
        if sink.send(msg).await.is_err() || is_close {
            return;
        }
    }
    // The client was dropped without close(): say goodbye properly.
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        })))
        .await;
}

/// Where the reader puts events.
struct Delivery {
    events: mpsc::Sender<Event>,
    /// Wait for room rather than drop ([`ConnectOptions::lossless_events`]).
    lossless: bool,
}

impl Delivery {
    async fn deliver(&self, shared: &Shared, event: Event) {
        if self.lossless {
            // An error means nobody reads events any more: nothing to keep them for.
            let _ = self.events.send(event).await;
        } else if self.events.try_send(event).is_err() {
            shared.dropped_events.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// How long the reader waits for the next frame ([`ConnectOptions::tick_watchdog`]).
struct Watchdog {
    silence_limit: Option<Duration>,
    /// Where the close for a silent gateway goes (weak: the reader must not keep the writer
    /// waiting for a client that was dropped).
    out: mpsc::WeakUnboundedSender<Message>,
}

async fn read_loop(
    mut stream: SplitStream<WsStream>,
    shared: Arc<Shared>,
    delivery: Delivery,
    watchdog: Watchdog,
) {
    let close = loop {
        let next = match watchdog.silence_limit {
            None => stream.next().await,
            Some(limit) => match tokio::time::timeout(limit, stream.next()).await {
                Ok(next) => next,
                Err(_) => {
                    if let Some(out) = watchdog.out.upgrade() {
                        let _ = out.send(Message::Close(Some(CloseFrame {
                            code: CloseCode::from(TICK_TIMEOUT_CODE),
                            reason: TICK_TIMEOUT_REASON.into(),
                        })));
                    }
                    break (TICK_TIMEOUT_CODE, TICK_TIMEOUT_REASON.to_owned());
                }
            },
        };
        match next {
            None => break (1006, "connection lost".to_owned()),
            Some(Err(e)) => break (1006, e.to_string()),
            Some(Ok(Message::Text(text))) => {
                if let Some(event) = handle_text(&shared, text.as_str()) {
                    delivery.deliver(&shared, event).await;
                }
            }
            Some(Ok(Message::Close(frame))) => break close_parts(frame),
            Some(Ok(_)) => {}
        }
    };
    fail_all(&shared, close);
    // The events end here, before the close handshake is done.
    drop(delivery);
    // Keep polling briefly so the answering close frame is flushed.
    let _ =
        tokio::time::timeout(CLOSE_WAIT, async { while stream.next().await.is_some() {} }).await;
}

fn fail_all(shared: &Shared, close: (u16, String)) {
    let pending: Vec<Pending> = {
        let mut state = shared.lock();
        state.closed.get_or_insert(close.clone());
        state.pending.drain().map(|(_, p)| p).collect()
    };
    for p in pending {
        let _ = p.tx.send(Err(RpcError::Closed {
            code: close.0,
            reason: close.1.clone(),
        }));
    }
}

/// Routes a `res` to its request; returns an event for the consumer.
fn handle_text(shared: &Shared, text: &str) -> Option<Event> {
    let Ok(Value::Object(mut frame)) = serde_json::from_str::<Value>(text) else {
        tracing::debug!("ignoring a frame that is not a JSON object");
        return None;
    };
    match frame.get("type").and_then(Value::as_str) {
        Some("res") => {
            let id = frame.get("id").and_then(Value::as_str).map(str::to_owned)?;
            let ok = frame.get("ok").and_then(Value::as_bool) == Some(true);
            let payload = frame.remove("payload");
            let pending = {
                let mut state = shared.lock();
                let interim = ok
                    && state.pending.get(&id).is_some_and(|p| p.expect_final)
                    && payload
                        .as_ref()
                        .and_then(|p| p.get("status"))
                        .and_then(Value::as_str)
                        == Some("accepted");
                if interim {
                    return None;
                }
                state.pending.remove(&id)
            };
            let Some(pending) = pending else {
                tracing::debug!(%id, "answer for an unknown or abandoned request");
                return None;
            };
            let result = if ok {
                Ok(payload.unwrap_or(Value::Null))
            } else {
                Err(RpcError::Gateway {
                    error: WireError::from_value(frame.get("error")),
                    payload,
                })
            };
            let _ = pending.tx.send(result);
        }
        Some("event") => return Event::from_frame(frame),
        _ => {}
    }
    None
}
