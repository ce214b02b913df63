//! A deliberately small, raw Gateway protocol client for tests: JSON frames
//! over a WebSocket, nothing hidden. Independent of the project's own client
//! crate so that it can check a gateway (real or ours) without sharing bugs.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Protocol version spoken by the raw client.
pub const PROTOCOL_VERSION: u64 = 4;

/// Default time to wait for a single frame.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// What went wrong talking to a gateway.
#[derive(Debug, thiserror::Error)]
pub enum WsError {
    /// TCP/WebSocket-level failure (refused, reset, bad upgrade, …).
    #[error("transport: {0}")]
    Transport(String),
    /// The server sent a close frame (or closed without one: code 1005).
    #[error("closed by server: {code} {reason:?}")]
    Closed { code: u16, reason: String },
    /// The server answered the request with `ok: false`; holds the `res` frame.
    #[error("request rejected: {}", .0["error"])]
    Rejected(Value),
    /// A frame that breaks the protocol as this client understands it.
    #[error("protocol: {0}")]
    Protocol(String),
    /// Nothing arrived in time.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
}

impl WsError {
    /// The `error` object of a rejected request.
    pub fn error_object(&self) -> Option<&Value> {
        match self {
            WsError::Rejected(res) => res.get("error"),
            _ => None,
        }
    }

    /// `error.details.code` of a rejected request (e.g. "AUTH_TOKEN_MISMATCH").
    pub fn detail_code(&self) -> Option<&str> {
        self.error_object()?.get("details")?.get("code")?.as_str()
    }

    /// True for a close with code 1013 ("gateway starting" and similar).
    pub fn is_try_again_later(&self) -> bool {
        matches!(self, WsError::Closed { code: 1013, .. })
    }
}

/// One frame from the server.
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    /// A text frame, parsed as JSON.
    Json(Value),
    /// A close frame (code 1005 when the server sent none).
    Close { code: u16, reason: String },
}

/// The `params` of a `connect` request: operator role, the `cli` client id,
/// protocol 4 only, shared-token auth when `token` is given.
pub fn connect_params(token: Option<&str>, scopes: &[&str]) -> Value {
    let mut params = json!({
        "minProtocol": PROTOCOL_VERSION,
        "maxProtocol": PROTOCOL_VERSION,
        "client": { "id": "cli", "version": "test", "platform": "linux", "mode": "cli" },
        "role": "operator",
        "scopes": scopes,
    });
    if let Some(token) = token {
        params["auth"] = json!({ "token": token });
    }
    params
}

/// A raw WebSocket connection speaking Gateway JSON frames.
pub struct RawWs {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl std::fmt::Debug for RawWs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawWs")
            .field("next_id", &self.next_id)
            .finish_non_exhaustive()
    }
}

impl RawWs {
    /// Opens the WebSocket only (no protocol handshake).
    pub async fn open(url: &str) -> Result<Self, WsError> {
        let (ws, _) = tokio::time::timeout(FRAME_TIMEOUT, tokio_tungstenite::connect_async(url))
            .await
            .map_err(|_| WsError::Timeout("the WebSocket upgrade"))?
            .map_err(|e| WsError::Transport(e.to_string()))?;
        Ok(Self { ws, next_id: 1 })
    }

    /// Opens the socket, reads the `connect.challenge` event and sends
    /// `connect` with `params`. Returns the connection and the whole `res`
    /// frame of a successful connect (its `payload.type` is "hello-ok").
    pub async fn handshake(url: &str, params: Value) -> Result<(Self, Value), WsError> {
        let mut ws = Self::open(url).await?;
        let challenge = ws.recv_json(FRAME_TIMEOUT).await?;
        if challenge["type"] != "event" || challenge["event"] != "connect.challenge" {
            return Err(WsError::Protocol(format!(
                "expected connect.challenge, got {challenge}"
            )));
        }
        let res = ws.request("connect", params, FRAME_TIMEOUT).await?;
        if res["payload"]["type"] != "hello-ok" {
            return Err(WsError::Protocol(format!("expected hello-ok, got {res}")));
        }
        Ok((ws, res))
    }

    /// [`RawWs::handshake`] as an operator with a shared token.
    pub async fn connect_operator(
        url: &str,
        token: &str,
        scopes: &[&str],
    ) -> Result<(Self, Value), WsError> {
        Self::handshake(url, connect_params(Some(token), scopes)).await
    }

    /// Sends a JSON frame.
    pub async fn send_json(&mut self, frame: &Value) -> Result<(), WsError> {
        self.ws
            .send(Message::text(frame.to_string()))
            .await
            .map_err(|e| WsError::Transport(e.to_string()))
    }

    /// The next frame, skipping pings/pongs. A closed stream reads as a close
    /// with code 1006.
    pub async fn recv(&mut self, timeout: Duration) -> Result<Frame, WsError> {
        loop {
            let msg = tokio::time::timeout(timeout, self.ws.next())
                .await
                .map_err(|_| WsError::Timeout("a frame"))?;
            match msg {
                None => {
                    return Ok(Frame::Close {
                        code: 1006,
                        reason: String::new(),
                    });
                }
                Some(Err(e)) => return Err(WsError::Transport(e.to_string())),
                Some(Ok(Message::Text(text))) => {
                    return serde_json::from_str(text.as_str())
                        .map(Frame::Json)
                        .map_err(|e| {
                            WsError::Protocol(format!("bad JSON frame ({e}): {}", text.as_str()))
                        });
                }
                Some(Ok(Message::Binary(b))) => {
                    return Err(WsError::Protocol(format!(
                        "unexpected binary frame ({} bytes)",
                        b.len()
                    )));
                }
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = frame
                        .map(|f| (u16::from(f.code), f.reason.as_str().to_owned()))
                        .unwrap_or((1005, String::new()));
                    return Ok(Frame::Close { code, reason });
                }
                Some(Ok(_)) => {}
            }
        }
    }

    /// The next JSON frame; a close becomes [`WsError::Closed`].
    pub async fn recv_json(&mut self, timeout: Duration) -> Result<Value, WsError> {
        match self.recv(timeout).await? {
            Frame::Json(v) => Ok(v),
            Frame::Close { code, reason } => Err(WsError::Closed { code, reason }),
        }
    }

    /// Sends a `req` frame and waits for the `res` with the same id, skipping
    /// events and other responses. Returns the whole `res` frame when `ok` is
    /// true, [`WsError::Rejected`] with it otherwise.
    pub async fn request(
        &mut self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, WsError> {
        let id = self.next_id.to_string();
        self.next_id += 1;
        self.send_json(&json!({ "type": "req", "id": id, "method": method, "params": params }))
            .await?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self.recv_json(left).await.map_err(|e| match e {
                WsError::Timeout(_) => WsError::Timeout("the response"),
                e => e,
            })?;
            if frame["type"] == "res" && frame["id"] == id.as_str() {
                return if frame["ok"] == true {
                    Ok(frame)
                } else {
                    Err(WsError::Rejected(frame))
                };
            }
        }
    }

    /// Sends a normal close and waits briefly for the server's close.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
    }
}
