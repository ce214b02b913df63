//! One WebSocket connection to the gateway as a node: open (`ws://`, or `wss://` with the
//! web PKI or a pinned certificate), the challenge → `connect` → hello handshake, then
//! correlated requests and the stream of server events. A reader task closes the socket
//! with 4000 "tick timeout" when the gateway goes silent for two tick intervals.

use clawgate_client::{ClientError, TlsOptions, WsStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Budget for opening the socket and completing the handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a request waits for its answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// An `ErrorShape` from the gateway.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayError {
    pub code: String,
    pub message: String,
    pub details: Option<Value>,
    pub retryable: Option<bool>,
    pub retry_after_ms: Option<u64>,
}

impl GatewayError {
    pub fn from_value(v: Option<&Value>) -> Self {
        let v = v.cloned().unwrap_or(Value::Null);
        GatewayError {
            code: v
                .get("code")
                .and_then(Value::as_str)
                .unwrap_or("UNKNOWN")
                .to_owned(),
            message: v
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            details: v.get("details").cloned(),
            retryable: v.get("retryable").and_then(Value::as_bool),
            retry_after_ms: v.get("retryAfterMs").and_then(Value::as_u64),
        }
    }

    /// `details.<key>` as a string.
    pub fn detail(&self, key: &str) -> Option<&str> {
        self.details.as_ref()?.get(key)?.as_str()
    }

    /// `details.code`.
    pub fn detail_code(&self) -> Option<&str> {
        self.detail("code")
    }
}

impl std::fmt::Display for GatewayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// Why a connection attempt failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectError {
    #[error("invalid gateway URL {0}")]
    InvalidUrl(String),
    #[error("gateway unreachable: {0}")]
    Unreachable(String),
    #[error("gateway refused the WebSocket upgrade (HTTP {status}): {message}")]
    Http {
        status: u16,
        message: String,
        error_type: Option<String>,
    },
    #[error("gateway rejected connect: {error}")]
    Rejected {
        error: GatewayError,
        close_code: Option<u16>,
    },
    #[error("gateway closed the connection during the handshake ({code}{})", if .reason.is_empty() { String::new() } else { format!(": {}", .reason) })]
    Closed { code: u16, reason: String },
    #[error("gateway protocol error: {0}")]
    Protocol(String),
}

/// Why a request failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RpcFailure {
    #[error("{0}")]
    Gateway(GatewayError),
    #[error("connection closed")]
    Closed,
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

impl RpcFailure {
    pub fn gateway(&self) -> Option<&GatewayError> {
        match self {
            RpcFailure::Gateway(e) => Some(e),
            _ => None,
        }
    }
}

/// What the reader task passes on.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// `{event, payload, seq?}`.
    Event { event: String, payload: Value },
    /// The connection is gone.
    Closed { code: u16, reason: String },
}

type Pending = HashMap<String, oneshot::Sender<Result<Value, RpcFailure>>>;

struct Shared {
    pending: Mutex<Pending>,
    next_id: AtomicU64,
}

impl Shared {
    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A live connection. Cheap to clone; requests may run concurrently.
#[derive(Clone)]
pub struct Connection {
    out: mpsc::UnboundedSender<Message>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").finish_non_exhaustive()
    }
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub url: String,
    /// SHA-256 of the gateway's certificate (hex, optionally colon-separated or
    /// `sha256:`-prefixed); replaces CA validation.
    pub tls_fingerprint: Option<String>,
}

/// Opens the socket with the client's transport, TLS pinning included. The plaintext `ws://`
/// rule is applied once, before the node host starts (`clawgate node run`), not at each dial.
async fn open(endpoint: &Endpoint) -> Result<WsStream, ConnectError> {
    let tls = TlsOptions {
        fingerprint: endpoint.tls_fingerprint.clone(),
    };
    clawgate_client::dial(&endpoint.url, &tls, HANDSHAKE_TIMEOUT)
        .await
        .map_err(|e| match e {
            ClientError::InvalidUrl { url, reason } => {
                ConnectError::InvalidUrl(format!("{url}: {reason}"))
            }
            ClientError::Unreachable { url, reason, .. } => {
                ConnectError::Unreachable(format!("{url}: {reason}"))
            }
            // A refused upgrade comes as `HTTP_<status>`.
            ClientError::Handshake {
                code,
                detail_code,
                message,
                ..
            } => match code.strip_prefix("HTTP_").and_then(|s| s.parse().ok()) {
                Some(status) => ConnectError::Http {
                    status,
                    message,
                    error_type: detail_code,
                },
                None => ConnectError::Protocol(format!("{code}: {message}")),
            },
            // A pin mismatch stays retryable, like any other failure to reach the gateway.
            other => ConnectError::Unreachable(other.to_string()),
        })
}

fn close_parts(frame: Option<CloseFrame>) -> (u16, String) {
    frame
        .map(|f| (u16::from(f.code), f.reason.to_string()))
        .unwrap_or((1005, String::new()))
}

async fn next_frame(
    ws: &mut WsStream,
    deadline: Instant,
    waiting_for: &str,
) -> Result<Map<String, Value>, ConnectError> {
    loop {
        let msg = match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => {
                return Err(ConnectError::Unreachable(format!(
                    "connected, but no {waiting_for} within {} s",
                    HANDSHAKE_TIMEOUT.as_secs()
                )));
            }
            Ok(None) => {
                return Err(ConnectError::Closed {
                    code: 1006,
                    reason: "connection lost".into(),
                });
            }
            Ok(Some(Err(e))) => {
                return Err(ConnectError::Closed {
                    code: 1006,
                    reason: e.to_string(),
                });
            }
            Ok(Some(Ok(msg))) => msg,
        };
        match msg {
            Message::Text(text) => {
                if let Ok(Value::Object(frame)) = serde_json::from_str::<Value>(text.as_str()) {
                    return Ok(frame);
                }
            }
            Message::Close(frame) => {
                let (code, reason) = close_parts(frame);
                return Err(ConnectError::Closed { code, reason });
            }
            _ => {}
        }
    }
}

/// The hello and what followed it.
pub struct Established {
    pub conn: Connection,
    pub hello: Value,
    pub incoming: mpsc::UnboundedReceiver<Incoming>,
}

/// Connects and completes the handshake. `params` builds the `connect` params from the
/// challenge's nonce and ts.
pub async fn connect(
    endpoint: &Endpoint,
    params: impl FnOnce(&str, i64) -> Value,
) -> Result<Established, ConnectError> {
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    let mut ws = open(endpoint).await?;
    let mut early: Vec<Incoming> = Vec::new();
    let (nonce, ts) = loop {
        let frame = next_frame(&mut ws, deadline, "connect.challenge").await?;
        if frame.get("type").and_then(Value::as_str) != Some("event") {
            continue;
        }
        let event = frame.get("event").and_then(Value::as_str).unwrap_or("");
        if event != "connect.challenge" {
            early.push(Incoming::Event {
                event: event.to_owned(),
                payload: frame.get("payload").cloned().unwrap_or(Value::Null),
            });
            continue;
        }
        let payload = frame.get("payload");
        let nonce = payload
            .and_then(|p| p.get("nonce"))
            .and_then(Value::as_str)
            .filter(|n| !n.trim().is_empty());
        let ts = payload.and_then(|p| p.get("ts")).and_then(Value::as_i64);
        match (nonce, ts) {
            (Some(n), Some(ts)) => break (n.to_owned(), ts),
            _ => {
                return Err(ConnectError::Protocol(
                    "connect.challenge without a nonce and an integer ts".into(),
                ));
            }
        }
    };
    let connect_id = format!("1:{}", uuid::Uuid::new_v4());
    let frame =
        json!({"type": "req", "id": connect_id, "method": "connect", "params": params(&nonce, ts)});
    if let Err(e) = ws.send(Message::text(frame.to_string())).await {
        return Err(ConnectError::Closed {
            code: 1006,
            reason: e.to_string(),
        });
    }
    let hello = loop {
        let frame = next_frame(&mut ws, deadline, "hello").await?;
        match frame.get("type").and_then(Value::as_str) {
            Some("event") => early.push(Incoming::Event {
                event: frame
                    .get("event")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                payload: frame.get("payload").cloned().unwrap_or(Value::Null),
            }),
            Some("res") if frame.get("id").and_then(Value::as_str) == Some(&connect_id) => {
                if frame.get("ok").and_then(Value::as_bool) == Some(true) {
                    break frame.get("payload").cloned().unwrap_or(Value::Null);
                }
                let error = GatewayError::from_value(frame.get("error"));
                let close_code = wait_for_close(&mut ws).await;
                return Err(ConnectError::Rejected { error, close_code });
            }
            _ => {}
        }
    };
    let tick_ms = hello
        .pointer("/policy/tickIntervalMs")
        .and_then(Value::as_u64)
        .filter(|t| *t > 0)
        .unwrap_or(30_000);
    let (sink, stream) = ws.split();
    let shared = Arc::new(Shared {
        pending: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(2),
    });
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let (in_tx, in_rx) = mpsc::unbounded_channel();
    for e in early {
        let _ = in_tx.send(e);
    }
    tokio::spawn(write_loop(sink, out_rx));
    tokio::spawn(read_loop(
        stream,
        shared.clone(),
        in_tx,
        out_tx.clone(),
        Duration::from_millis(tick_ms.saturating_mul(2)),
    ));
    Ok(Established {
        conn: Connection {
            out: out_tx,
            shared,
        },
        hello,
        incoming: in_rx,
    })
}

async fn wait_for_close(ws: &mut WsStream) -> Option<u16> {
    let until = Instant::now() + Duration::from_secs(1);
    loop {
        match tokio::time::timeout_at(until, ws.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => return Some(close_parts(frame).0),
            Ok(Some(Ok(_))) => continue,
            _ => return None,
        }
    }
}

async fn write_loop(
    mut sink: futures_util::stream::SplitSink<WsStream, Message>,
    mut rx: mpsc::UnboundedReceiver<Message>,
) {
    while let Some(msg) = rx.recv().await {
        let is_close = matches!(msg, Message::Close(_));
        if sink.send(msg).await.is_err() || is_close {
            break;
        }
    }
    let _ = sink.close().await;
}

async fn read_loop(
    mut stream: futures_util::stream::SplitStream<WsStream>,
    shared: Arc<Shared>,
    incoming: mpsc::UnboundedSender<Incoming>,
    out: mpsc::UnboundedSender<Message>,
    silence_limit: Duration,
) {
    let (code, reason) = loop {
        let msg = match tokio::time::timeout(silence_limit, stream.next()).await {
            Err(_) => {
                let _ = out.send(Message::Close(Some(CloseFrame {
                    code: CloseCode::from(4000),
                    reason: "tick timeout".into(),
                })));
                break (4000, "tick timeout".to_owned());
            }
            Ok(None) => break (1006, "connection lost".to_owned()),
            Ok(Some(Err(e))) => break (1006, e.to_string()),
            Ok(Some(Ok(msg))) => msg,
        };
        match msg {
            Message::Text(text) => {
                let Ok(Value::Object(mut frame)) = serde_json::from_str::<Value>(text.as_str())
                else {
                    continue;
                };
                match frame.get("type").and_then(Value::as_str) {
                    Some("res") => {
                        let Some(id) = frame.get("id").and_then(Value::as_str) else {
                            continue;
                        };
                        let Some(tx) = shared.pending().remove(id) else {
                            continue;
                        };
                        let result = if frame.get("ok").and_then(Value::as_bool) == Some(true) {
                            Ok(frame.remove("payload").unwrap_or(Value::Null))
                        } else {
                            Err(RpcFailure::Gateway(GatewayError::from_value(
                                frame.get("error"),
                            )))
                        };
                        let _ = tx.send(result);
                    }
                    Some("event") => {
                        let event = frame
                            .get("event")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_owned();
                        let payload = frame.remove("payload").unwrap_or(Value::Null);
                        let _ = incoming.send(Incoming::Event { event, payload });
                    }
                    _ => {}
                }
            }
            Message::Close(frame) => break close_parts(frame),
            _ => {}
        }
    };
    let pending: Vec<_> = shared.pending().drain().map(|(_, tx)| tx).collect();
    for tx in pending {
        let _ = tx.send(Err(RpcFailure::Closed));
    }
    let _ = incoming.send(Incoming::Closed { code, reason });
    // Let the writer answer the close handshake, then stop.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while stream.next().await.is_some() {}
    })
    .await;
}

impl Connection {
    /// Calls `method` and waits (at most [`REQUEST_TIMEOUT`]) for the answer.
    pub async fn request(&self, method: &str, params: Value) -> Result<Value, RpcFailure> {
        let n = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let id = format!("{n}:{}", uuid::Uuid::new_v4());
        let (tx, rx) = oneshot::channel();
        self.shared.pending().insert(id.clone(), tx);
        let frame = json!({"type": "req", "id": id, "method": method, "params": params});
        if self.out.send(Message::text(frame.to_string())).is_err() {
            self.shared.pending().remove(&id);
            return Err(RpcFailure::Closed);
        }
        match tokio::time::timeout(REQUEST_TIMEOUT, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(RpcFailure::Closed),
            Err(_) => {
                self.shared.pending().remove(&id);
                Err(RpcFailure::Timeout(REQUEST_TIMEOUT))
            }
        }
    }

    /// Sends a close frame.
    pub fn close(&self, code: u16, reason: &str) {
        let _ = self.out.send(Message::Close(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: reason.to_owned().into(),
        })));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bad_urls_fail_before_connecting() {
        let pin = "ab".repeat(32);
        for (url, fp) in [
            ("http://127.0.0.1:1", None),
            ("ws://127.0.0.1:1", Some(pin.as_str())),
            ("wss://127.0.0.1:1", Some("nothex")),
        ] {
            let endpoint = Endpoint {
                url: url.into(),
                tls_fingerprint: fp.map(str::to_owned),
            };
            let r = connect(&endpoint, |_, _| Value::Null).await;
            assert!(matches!(r, Err(ConnectError::InvalidUrl(_))), "{url}");
        }
    }

    #[tokio::test]
    async fn refused_connections_are_unreachable() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let endpoint = Endpoint {
            url: format!("ws://127.0.0.1:{port}"),
            tls_fingerprint: None,
        };
        let r = connect(&endpoint, |_, _| Value::Null).await;
        assert!(matches!(r, Err(ConnectError::Unreachable(_))));
    }
}
