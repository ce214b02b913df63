//! The load client: raw Gateway protocol frames over tokio-tungstenite, the same bytes against
//! both gateways. Kept small on purpose so its own cost stays low and visible.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use clawgate_protocol::device::{self, SignedFields};
use ed25519_dalek::SigningKey;
use futures_util::{SinkExt as _, StreamExt as _};
use serde::Deserialize;
use serde_json::{Value, json};
use std::borrow::Cow;
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// How long one frame may take before a step counts as failed.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(30);

/// Scopes every benchmark connection asks for (enough for `health`).
pub const SCOPES: &[&str] = &["operator.read"];

/// The command the benchmark's node host declares (and the only one it answers).
pub const NODE_COMMANDS: &[&str] = &["system.which"];

/// Who connects: an operator `cli` client with some scopes, or a node host declaring commands.
#[derive(Clone, Copy, Debug)]
pub enum Client<'a> {
    Operator(&'a [&'a str]),
    Node(&'a [&'a str]),
}

impl Client<'_> {
    /// The operator `cli` client the CLIs' own calls look like, asking for [`SCOPES`].
    pub const CLI: Client<'static> = Client::Operator(SCOPES);

    /// `(client.id, client.mode, role, deviceFamily)`.
    fn identity(
        &self,
    ) -> (
        &'static str,
        &'static str,
        &'static str,
        Option<&'static str>,
    ) {
        match self {
            Client::Operator(_) => ("cli", "cli", "operator", None),
            Client::Node(_) => ("node-host", "node", "node", Some("Linux")),
        }
    }

    fn scopes(&self) -> &[&str] {
        match self {
            Client::Operator(s) => s,
            Client::Node(_) => &[],
        }
    }
}

/// An Ed25519 device identity for signed connects.
#[derive(Clone)]
pub struct Device {
    key: SigningKey,
    id: String,
    public_key: String,
}

impl Device {
    pub fn generate() -> Device {
        let key = SigningKey::generate(&mut rand_core::OsRng);
        let vk = key.verifying_key();
        Device {
            id: device::device_id(&vk),
            public_key: device::b64url(vk.as_bytes()),
            key,
        }
    }

    /// The device id (a node's `nodeId`).
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// How a connection authenticates.
#[derive(Clone, Copy)]
pub enum Auth<'a> {
    /// Shared token only (what the CLIs send on loopback).
    Token(&'a str),
    /// Shared token plus a device proof signed over the challenge (payload v3).
    Signed(&'a str, &'a Device),
}

/// The `connect` params on protocol 4: `who` (by default the operator `cli` client asking for
/// [`SCOPES`]), authenticated by `auth`.
pub fn connect_params(
    auth: Auth<'_>,
    who: Client<'_>,
    challenge_nonce: &str,
    challenge_ts: i64,
) -> Value {
    let token = match auth {
        Auth::Token(t) | Auth::Signed(t, _) => t,
    };
    let (client_id, mode, role, family) = who.identity();
    let mut client =
        json!({"id": client_id, "version": "clawgate-bench", "platform": "linux", "mode": mode});
    if let Some(f) = family {
        client["deviceFamily"] = json!(f);
    }
    let mut params = json!({
        "minProtocol": 4,
        "maxProtocol": 4,
        "client": client,
        "caps": [],
        "role": role,
        "scopes": who.scopes(),
        "auth": {"token": token},
    });
    if let Client::Node(commands) = who {
        params["caps"] = json!(["system"]);
        params["commands"] = json!(commands);
    }
    if let Auth::Signed(token, dev) = auth {
        let scopes: Vec<String> = who.scopes().iter().map(|s| s.to_string()).collect();
        let fields = SignedFields {
            device_id: &dev.id,
            client_id,
            client_mode: mode,
            role,
            scopes: &scopes,
            signed_at_ms: challenge_ts,
            token,
            nonce: challenge_nonce,
            platform: Some("linux"),
            device_family: family,
        };
        params["device"] = json!({
            "id": dev.id,
            "publicKey": dev.public_key,
            "signature": device::sign_v3(&dev.key, &fields),
            "signedAt": challenge_ts,
            "nonce": challenge_nonce,
        });
    }
    params
}

pub use clawgate_base::now_ms;

/// The parts of a frame the client looks at; everything else is skipped without building a
/// JSON tree.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    event: Option<Cow<'a, str>>,
    #[serde(default)]
    ok: Option<bool>,
    #[serde(default)]
    payload: Option<PayloadHead>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct PayloadHead {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    ts: Option<i64>,
    #[serde(default)]
    policy: Option<Policy>,
    /// A `node.invoke.request`'s invoke id.
    #[serde(default)]
    id: Option<String>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "camelCase")]
struct Policy {
    tick_interval_ms: Option<u64>,
}

/// What the client saw on a connection after the handshake.
#[derive(Debug)]
pub enum Incoming {
    Tick,
    OtherEvent,
    Closed(String),
}

/// One authenticated connection.
pub struct Conn {
    ws: WebSocketStream<TcpStream>,
    next_id: u64,
    /// `policy.tickIntervalMs` from hello-ok.
    pub tick_interval_ms: Option<u64>,
}

fn frame_text(msg: Message) -> anyhow::Result<Option<String>> {
    match msg {
        Message::Text(t) => Ok(Some(t.as_str().to_owned())),
        Message::Close(f) => {
            let (code, reason) = f
                .map(|f| (u16::from(f.code), f.reason.as_str().to_owned()))
                .unwrap_or((1005, String::new()));
            bail!("closed by the gateway: {code} {reason:?}")
        }
        Message::Binary(_) => bail!("unexpected binary frame"),
        _ => Ok(None),
    }
}

impl Conn {
    /// TCP connect, WebSocket upgrade, `connect.challenge`, `connect`, `hello-ok`, as the
    /// operator `cli` client ([`Client::CLI`]).
    pub async fn open(
        addr: SocketAddr,
        auth: Auth<'_>,
        config: Option<WebSocketConfig>,
    ) -> anyhow::Result<Conn> {
        Conn::open_as(addr, auth, Client::CLI, config).await
    }

    /// [`Conn::open`] as `who`.
    pub async fn open_as(
        addr: SocketAddr,
        auth: Auth<'_>,
        who: Client<'_>,
        config: Option<WebSocketConfig>,
    ) -> anyhow::Result<Conn> {
        let tcp = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        tcp.set_nodelay(true)?;
        let (ws, _) =
            tokio_tungstenite::client_async_with_config(format!("ws://{addr}/"), tcp, config)
                .await
                .context("WebSocket upgrade")?;
        let mut conn = Conn {
            ws,
            next_id: 1,
            tick_interval_ms: None,
        };
        let challenge = conn.next_text().await?;
        let head: Head<'_> = serde_json::from_str(&challenge)?;
        let (nonce, ts) = match (head.kind.as_ref(), head.event.as_deref(), head.payload) {
            ("event", Some("connect.challenge"), Some(p)) => (
                p.nonce.ok_or_else(|| anyhow!("challenge without nonce"))?,
                p.ts.unwrap_or_else(now_ms),
            ),
            _ => bail!("expected connect.challenge, got {challenge}"),
        };
        let params = connect_params(auth, who, &nonce, ts);
        let frame = json!({"type": "req", "id": "c", "method": "connect", "params": params});
        conn.send_text(frame.to_string()).await?;
        loop {
            let text = conn.next_text().await?;
            let head: Head<'_> = serde_json::from_str(&text)?;
            if head.kind != "res" || head.id.as_deref() != Some("c") {
                continue;
            }
            let payload = head.payload.as_ref();
            if head.ok != Some(true) || payload.and_then(|p| p.kind.as_deref()) != Some("hello-ok")
            {
                bail!(
                    "connect refused: {}",
                    head.error.unwrap_or(Value::String(text.clone()))
                );
            }
            conn.tick_interval_ms = payload
                .and_then(|p| p.policy)
                .and_then(|p| p.tick_interval_ms);
            return Ok(conn);
        }
    }

    async fn send_text(&mut self, text: String) -> anyhow::Result<()> {
        self.ws.send(Message::text(text)).await.context("sending")
    }

    /// The next text frame (pings are answered by tungstenite while reading).
    async fn next_text(&mut self) -> anyhow::Result<String> {
        loop {
            let msg = tokio::time::timeout(FRAME_TIMEOUT, self.ws.next())
                .await
                .map_err(|_| anyhow!("no frame within {FRAME_TIMEOUT:?}"))?
                .ok_or_else(|| anyhow!("connection closed"))?
                .context("reading")?;
            if let Some(text) = frame_text(msg)? {
                return Ok(text);
            }
        }
    }

    /// Sends a `req` and waits for its `res` (events in between are skipped). Fails if the
    /// gateway answers `ok: false`.
    pub async fn request(&mut self, method: &str, params: &str) -> anyhow::Result<()> {
        let id = self.next_id;
        self.next_id += 1;
        let id_text = id.to_string();
        self.send_text(format!(
            r#"{{"type":"req","id":"{id}","method":"{method}","params":{params}}}"#
        ))
        .await?;
        loop {
            let text = self.next_text().await?;
            let head: Head<'_> = serde_json::from_str(&text)?;
            if head.kind == "res" && head.id.as_deref() == Some(id_text.as_str()) {
                if head.ok != Some(true) {
                    bail!("{method} failed: {}", head.error.unwrap_or(Value::Null));
                }
                return Ok(());
            }
        }
    }

    /// Sends a WebSocket ping and waits for its pong (frames in between are skipped): a round
    /// trip through both kernels and the gateway's WebSocket layer, with no gateway work.
    pub async fn ping(&mut self) -> anyhow::Result<()> {
        self.ws
            .send(Message::Ping("bench".into()))
            .await
            .context("sending a ping")?;
        loop {
            let msg = tokio::time::timeout(FRAME_TIMEOUT, self.ws.next())
                .await
                .map_err(|_| anyhow!("no pong within {FRAME_TIMEOUT:?}"))?
                .ok_or_else(|| anyhow!("connection closed"))?
                .context("reading")?;
            if matches!(msg, Message::Pong(_)) {
                return Ok(());
            }
            frame_text(msg)?;
        }
    }

    /// Like [`Conn::request`], and returns the response's `payload`.
    pub async fn request_value(&mut self, method: &str, params: &Value) -> anyhow::Result<Value> {
        let id = format!("v{}", self.next_id);
        self.next_id += 1;
        let frame = json!({"type": "req", "id": id, "method": method, "params": params});
        self.send_text(frame.to_string()).await?;
        loop {
            let text = self.next_text().await?;
            let mut frame: Value = serde_json::from_str(&text)?;
            if frame["type"] == "res" && frame["id"] == id.as_str() {
                if frame["ok"] != true {
                    bail!("{method} failed: {}", frame["error"]);
                }
                return Ok(frame["payload"].take());
            }
        }
    }

    /// One chat turn: `chat.send {sessionKey, message, idempotencyKey: run_id}`, then frames
    /// until the `chat` event of that run with `state: "final"`. Fails on a refused send, an
    /// `error` or `aborted` chat state, a closed connection, or at `deadline`.
    pub async fn chat_turn(
        &mut self,
        session_key: &str,
        message: &str,
        run_id: &str,
        deadline: tokio::time::Instant,
    ) -> anyhow::Result<()> {
        let id = format!("chat{}", self.next_id);
        self.next_id += 1;
        let params =
            json!({"sessionKey": session_key, "message": message, "idempotencyKey": run_id});
        let frame = json!({"type": "req", "id": id, "method": "chat.send", "params": params});
        self.send_text(frame.to_string()).await?;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .map_err(|_| anyhow!("no `chat` final for run {run_id} in time"))?
                .ok_or_else(|| anyhow!("connection closed during run {run_id}"))?
                .context("reading")?;
            let Some(text) = frame_text(msg)? else {
                continue;
            };
            match chat_turn_step(&text, &id, run_id)? {
                TurnStep::Final => return Ok(()),
                TurnStep::Other => {}
            }
        }
    }

    /// Plays a node host until the connection closes: every `node.invoke.request` is answered
    /// at once with `node.invoke.result {id, nodeId, ok: true, payloadJSON: payload_json}`;
    /// everything else (the results' own responses, ticks, other events) is read and dropped.
    /// Returns how many requests were answered.
    pub async fn serve_node(mut self, node_id: &str, payload_json: &str) -> u64 {
        let mut answered = 0;
        loop {
            let msg = match self.ws.next().await {
                Some(Ok(m)) => m,
                None | Some(Err(_)) => return answered,
            };
            let text = match frame_text(msg) {
                Ok(Some(t)) => t,
                Ok(None) => continue,
                Err(_) => return answered,
            };
            let Ok(head) = serde_json::from_str::<Head<'_>>(&text) else {
                continue;
            };
            if head.kind != "event" || head.event.as_deref() != Some("node.invoke.request") {
                continue;
            }
            let Some(invoke_id) = head.payload.and_then(|p| p.id) else {
                continue;
            };
            let frame = invoke_result_frame(self.next_id, &invoke_id, node_id, payload_json);
            self.next_id += 1;
            if self.send_text(frame).await.is_err() {
                return answered;
            }
            answered += 1;
        }
    }

    /// The next thing that happens on an idle connection.
    pub async fn next_incoming(&mut self) -> Incoming {
        loop {
            let msg = match self.ws.next().await {
                None => return Incoming::Closed("connection closed".into()),
                Some(Err(e)) => return Incoming::Closed(e.to_string()),
                Some(Ok(m)) => m,
            };
            match frame_text(msg) {
                Err(e) => return Incoming::Closed(e.to_string()),
                Ok(None) => continue,
                Ok(Some(text)) => {
                    let event = serde_json::from_str::<Head<'_>>(&text)
                        .ok()
                        .and_then(|h| h.event.map(Cow::into_owned));
                    return match event.as_deref() {
                        Some("tick") => Incoming::Tick,
                        _ => Incoming::OtherEvent,
                    };
                }
            }
        }
    }

    /// Sends a normal close, waits for the gateway's close frame, then for the gateway to close
    /// the TCP connection (as RFC 6455 has the server do first). The closing side keeps the
    /// socket in TIME_WAIT: waiting here leaves that to the gateway instead of tying up the
    /// client's ports across tens of thousands of handshakes.
    pub async fn close(mut self) -> anyhow::Result<()> {
        self.ws.close(None).await.context("sending close")?;
        tokio::time::timeout(FRAME_TIMEOUT, async move {
            while let Some(Ok(msg)) = self.ws.next().await {
                if matches!(msg, Message::Close(_)) {
                    break;
                }
            }
            let mut tcp = self.ws.into_inner();
            let mut buf = [0u8; 64];
            while matches!(tcp.read(&mut buf).await, Ok(n) if n > 0) {}
        })
        .await
        .map_err(|_| anyhow!("the gateway did not close within {FRAME_TIMEOUT:?}"))
    }
}

#[derive(Debug, PartialEq, Eq)]
enum TurnStep {
    Final,
    Other,
}

/// What one frame means for a chat turn: the `chat.send` response `req_id` (refused: an
/// error), the run's `chat` event (final: done; error or aborted: an error), or anything else.
fn chat_turn_step(text: &str, req_id: &str, run_id: &str) -> anyhow::Result<TurnStep> {
    let head: Head<'_> = serde_json::from_str(text)?;
    match (
        head.kind.as_ref(),
        head.id.as_deref(),
        head.event.as_deref(),
    ) {
        ("res", Some(id), _) if id == req_id => {
            if head.ok != Some(true) {
                bail!("chat.send failed: {}", head.error.unwrap_or(Value::Null));
            }
            Ok(TurnStep::Other)
        }
        ("event", _, Some("chat")) => {
            let frame: Value = serde_json::from_str(text)?;
            let p = &frame["payload"];
            if p["runId"] != run_id {
                return Ok(TurnStep::Other);
            }
            match p["state"].as_str() {
                Some("final") => Ok(TurnStep::Final),
                Some(state @ ("error" | "aborted")) => {
                    let why = p["errorMessage"]
                        .as_str()
                        .or(p["stopReason"].as_str())
                        .unwrap_or("no reason given");
                    bail!("run {run_id} ended {state}: {why}")
                }
                _ => Ok(TurnStep::Other),
            }
        }
        _ => Ok(TurnStep::Other),
    }
}

/// The node's `node.invoke.result` request answering invoke `invoke_id` with success.
pub fn invoke_result_frame(
    req_id: u64,
    invoke_id: &str,
    node_id: &str,
    payload_json: &str,
) -> String {
    json!({
        "type": "req",
        "id": format!("r{req_id}"),
        "method": "node.invoke.result",
        "params": {"id": invoke_id, "nodeId": node_id, "ok": true, "payloadJSON": payload_json},
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_params_verify_with_the_gateway_rules() {
        let dev = Device::generate();
        let params = connect_params(
            Auth::Signed("t", &dev),
            Client::CLI,
            "nonce-1",
            1_700_000_000_000,
        );
        let d = &params["device"];
        let key = device::decode_public_key(d["publicKey"].as_str().unwrap()).unwrap();
        assert_eq!(device::device_id(&key), d["id"]);
        let scopes: Vec<String> = SCOPES.iter().map(|s| s.to_string()).collect();
        let fields = SignedFields {
            device_id: &dev.id,
            client_id: "cli",
            client_mode: "cli",
            role: "operator",
            scopes: &scopes,
            signed_at_ms: 1_700_000_000_000,
            token: "t",
            nonce: "nonce-1",
            platform: Some("linux"),
            device_family: None,
        };
        assert_eq!(
            device::verify(&key, d["signature"].as_str().unwrap(), &fields),
            Some(device::PayloadVersion::V3)
        );
        let plain = connect_params(Auth::Token("t"), Client::CLI, "n", 1);
        assert!(plain.get("device").is_none());
        assert_eq!(plain["auth"]["token"], "t");
    }

    #[test]
    fn node_params_are_signed_as_the_node_host() {
        let dev = Device::generate();
        let p = connect_params(
            Auth::Signed("t", &dev),
            Client::Node(NODE_COMMANDS),
            "n-2",
            1_700_000_000_001,
        );
        assert_eq!(p["role"], "node");
        assert_eq!(p["scopes"], json!([]));
        assert_eq!(p["commands"], json!(["system.which"]));
        assert_eq!(
            p["client"],
            json!({"id": "node-host", "version": "clawgate-bench", "platform": "linux",
                   "mode": "node", "deviceFamily": "Linux"})
        );
        let d = &p["device"];
        let key = device::decode_public_key(d["publicKey"].as_str().unwrap()).unwrap();
        assert_eq!(d["id"], dev.id());
        let fields = SignedFields {
            device_id: dev.id(),
            client_id: "node-host",
            client_mode: "node",
            role: "node",
            scopes: &[],
            signed_at_ms: 1_700_000_000_001,
            token: "t",
            nonce: "n-2",
            platform: Some("linux"),
            device_family: Some("Linux"),
        };
        assert_eq!(
            device::verify(&key, d["signature"].as_str().unwrap(), &fields),
            Some(device::PayloadVersion::V3)
        );
        let op = connect_params(
            Auth::Token("t"),
            Client::Operator(&["operator.write"]),
            "n",
            1,
        );
        assert_eq!(op["scopes"], json!(["operator.write"]));
        assert!(op.get("commands").is_none());
    }

    #[test]
    fn a_chat_turn_ends_with_its_runs_final() {
        let step = |t: &str| chat_turn_step(t, "chat1", "run-1");
        let res_ok = r#"{"type":"res","id":"chat1","ok":true,"payload":{"runId":"run-1","status":"started"}}"#;
        assert_eq!(step(res_ok).unwrap(), TurnStep::Other);
        let refused = r#"{"type":"res","id":"chat1","ok":false,"error":{"code":"INVALID_REQUEST","message":"no"}}"#;
        assert!(
            step(refused)
                .unwrap_err()
                .to_string()
                .contains("INVALID_REQUEST")
        );
        let delta = r#"{"type":"event","event":"chat","payload":{"runId":"run-1","state":"delta"},"seq":3}"#;
        assert_eq!(step(delta).unwrap(), TurnStep::Other);
        let other_final =
            r#"{"type":"event","event":"chat","payload":{"runId":"run-0","state":"final"}}"#;
        assert_eq!(step(other_final).unwrap(), TurnStep::Other);
        let agent =
            r#"{"type":"event","event":"agent","payload":{"runId":"run-1","stream":"lifecycle"}}"#;
        assert_eq!(step(agent).unwrap(), TurnStep::Other);
        let fin = r#"{"type":"event","event":"chat","payload":{"runId":"run-1","state":"final","message":{}}}"#;
        assert_eq!(step(fin).unwrap(), TurnStep::Final);
        let err = r#"{"type":"event","event":"chat","payload":{"runId":"run-1","state":"error","errorMessage":"model down"}}"#;
        assert!(
            step(err)
                .unwrap_err()
                .to_string()
                .contains("ended error: model down")
        );
        let aborted = r#"{"type":"event","event":"chat","payload":{"runId":"run-1","state":"aborted","stopReason":"rpc"}}"#;
        assert!(
            step(aborted)
                .unwrap_err()
                .to_string()
                .contains("ended aborted: rpc")
        );
    }

    #[test]
    fn the_invoke_request_is_read_and_answered() {
        let ev = r#"{"type":"event","event":"node.invoke.request","payload":{"id":"a\"b","nodeId":"n1","command":"system.which","paramsJSON":"{}","timeoutMs":10000}}"#;
        let head: Head<'_> = serde_json::from_str(ev).unwrap();
        assert_eq!(head.event.as_deref(), Some("node.invoke.request"));
        let id = head.payload.and_then(|p| p.id).unwrap();
        assert_eq!(id, "a\"b");
        let frame: Value =
            serde_json::from_str(&invoke_result_frame(7, &id, "n1", r#"{"bins":{}}"#)).unwrap();
        assert_eq!(
            frame,
            json!({"type": "req", "id": "r7", "method": "node.invoke.result",
                   "params": {"id": "a\"b", "nodeId": "n1", "ok": true, "payloadJSON": "{\"bins\":{}}"}})
        );
    }
}
