//! A small in-process fake gateway for tests of clients and of the CLI: it sends the
//! challenge, checks a shared token, grants scopes, answers `hello-ok` with the required
//! fields, and answers requests through a handler (a default one serves the read methods,
//! gated like the real gateway gates them).
//!
//! It is deliberately minimal; the real server lives in the gateway crate.

mod pairing;

pub use pairing::FakePairing;

use clawgate_protocol::scopes::{self, Gate, MethodAccess};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

/// How the fake answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// `{ok:true, payload}`.
    Ok(Value),
    /// `{ok:false, error}` with this ErrorShape.
    Err(Value),
    /// An interim `{status:"accepted"}` then the final payload.
    AcceptedThen(Value),
    /// Close the socket with this code and reason instead of answering.
    Close(u16, String),
    /// Never answer.
    Silence,
}

/// What a handler sees.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub params: Option<Value>,
    /// The scopes granted at hello.
    pub scopes: Vec<String>,
    /// The caller's device id, when it connected with a device.
    pub device_id: Option<String>,
}

pub type Handler = Arc<dyn Fn(&Call) -> Reply + Send + Sync>;

/// Fake gateway settings.
#[derive(Clone)]
pub struct FakeConfig {
    /// The shared token clients must send; `None` accepts anyone.
    pub token: Option<String>,
    /// Scopes granted at hello; `None` grants what was asked.
    pub grant_scopes: Option<Vec<String>>,
    pub server_version: String,
    /// Answers each request; see [`default_handler`].
    pub handler: Handler,
    /// Refuse every connect with this ErrorShape, then close with this code.
    pub reject_connect: Option<(Value, u16)>,
    /// Answer the first N connects with `UNAVAILABLE "gateway starting"` (retryAfterMs 100,
    /// close 1013), like a gateway that is still starting.
    pub starting_connects: usize,
    /// Require device pairing for connects that carry a device (see [`FakePairing`]).
    pub pairing: Option<FakePairing>,
}

impl Default for FakeConfig {
    fn default() -> Self {
        FakeConfig {
            token: None,
            grant_scopes: None,
            server_version: "fake-1.0".into(),
            handler: Arc::new(default_handler),
            reject_connect: None,
            starting_connects: 0,
            pairing: None,
        }
    }
}

/// Read methods with the answers the minimal OpenClaw-compatible server gives to an operator;
/// methods are gated as the real gateway gates them ([`scopes::gate`]: `health` for every
/// client whatever its scopes, the rest by the least-privilege table, unknown methods need
/// admin).
pub fn default_handler(call: &Call) -> Reply {
    match scopes::gate(&call.method) {
        Gate::Open | Gate::AnyOperator => {}
        Gate::Access(MethodAccess::NodeOnly) => {
            return Reply::Err(
                json!({"code":"INVALID_REQUEST","message":"unauthorized role: operator"}),
            );
        }
        Gate::Access(MethodAccess::Scope(required)) => {
            if !scopes::satisfies(&call.scopes, required) {
                return Reply::Err(missing_scope(required));
            }
        }
    }
    match call.method.as_str() {
        "health" => Reply::Ok(json!({
            "ok": true, "ts": now_ms(), "durationMs": 3,
            "channels": {"telegram": {"configured": true, "running": true}},
            "channelOrder": ["telegram"], "heartbeatSeconds": 1800, "defaultAgentId": "main",
            "agents": [{"agentId": "main", "isDefault": true}],
        })),
        "status" => {
            Reply::Ok(json!({"runtimeVersion": "fake-1.0", "tasks": {"total": 0, "active": 0}}))
        }
        "system-presence" => Reply::Ok(
            json!([{"host": "fake", "mode": "gateway", "reason": "self", "ts": now_ms()}]),
        ),
        "config.get" => Reply::Ok(json!({})),
        "channels.status" => Reply::Ok(json!({"ts": now_ms(), "channelOrder": [], "channels": {}})),
        "last-heartbeat" => Reply::Ok(Value::Null),
        other => Reply::Err(
            json!({"code":"INVALID_REQUEST","message":format!("unknown method: {other}")}),
        ),
    }
}

/// The real gateway's `FORBIDDEN missing scope` error.
pub fn missing_scope(scope: &str) -> Value {
    json!({"code":"FORBIDDEN","message":format!("missing scope: {scope}"),
           "details":{"code":"MISSING_SCOPE","missingScope":scope,"requiredScopes":[scope]}})
}

use clawgate_base::now_ms;

/// A running fake gateway. Stops when dropped.
pub struct FakeGateway {
    addr: SocketAddr,
    /// Every `connect`'s params, in arrival order.
    connects: Arc<Mutex<Vec<Value>>>,
    _stop: Stop,
}

/// Stops the server when dropped.
enum Stop {
    Task(tokio::task::JoinHandle<()>),
    /// The server thread ends when this sender is dropped.
    Thread(#[allow(dead_code)] tokio::sync::oneshot::Sender<()>),
}

impl Drop for Stop {
    fn drop(&mut self) {
        if let Stop::Task(task) = self {
            task.abort();
        }
    }
}

impl FakeGateway {
    /// Listens on `127.0.0.1:0` on the current runtime.
    pub async fn start(config: FakeConfig) -> std::io::Result<FakeGateway> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let connects = Arc::new(Mutex::new(Vec::new()));
        let recorded = connects.clone();
        let config = Arc::new(config);
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let config = config.clone();
                let recorded = recorded.clone();
                tokio::spawn(async move {
                    let _ = serve(tcp, &config, &recorded).await;
                });
            }
        });
        Ok(FakeGateway {
            addr,
            connects,
            _stop: Stop::Task(task),
        })
    }

    /// Starts on a dedicated thread with its own runtime, for tests that are not async (e.g.
    /// ones that run the CLI binary). The thread ends when the returned value is dropped.
    pub fn start_in_thread(config: FakeConfig) -> FakeGateway {
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let gw = FakeGateway::start(config).await.expect("bind 127.0.0.1:0");
                tx.send((gw.addr, gw.connects.clone()))
                    .expect("report address");
                let _ = stop_rx.await;
                drop(gw);
            });
        });
        let (addr, connects) = rx.recv().expect("fake gateway thread");
        FakeGateway {
            addr,
            connects,
            _stop: Stop::Thread(stop_tx),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// The `connect` params received so far.
    pub fn connects(&self) -> Vec<Value> {
        self.connects
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

async fn serve(
    tcp: tokio::net::TcpStream,
    config: &FakeConfig,
    recorded: &Mutex<Vec<Value>>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let _ = tcp.set_nodelay(true);
    let mut ws = tokio_tungstenite::accept_async(tcp).await?;
    let nonce = uuid::Uuid::new_v4().to_string();
    let challenge =
        json!({"type":"event","event":"connect.challenge","payload":{"nonce":nonce,"ts":now_ms()}});
    ws.send(Message::text(challenge.to_string())).await?;

    // Handshake.
    let (connect_id, params) = loop {
        let Some(msg) = ws.next().await else {
            return Ok(());
        };
        if let Message::Text(text) = msg? {
            let frame: Value = serde_json::from_str(text.as_str())?;
            let id = frame["id"].as_str().unwrap_or("").to_owned();
            break (id, frame["params"].clone());
        }
    };
    let nth = {
        let mut r = recorded.lock().unwrap_or_else(|e| e.into_inner());
        r.push(params.clone());
        r.len()
    };
    let refusal = if nth <= config.starting_connects {
        Some((
            json!({"code":"UNAVAILABLE","message":"gateway starting; retry shortly","retryable":true,"retryAfterMs":100,"details":{"reason":"startup-sidecars"}}),
            1013,
        ))
    } else {
        config.reject_connect.clone()
    };
    if let Some((error, close_code)) = refusal {
        let reason = error["message"].as_str().unwrap_or("").to_owned();
        let res = json!({"type":"res","id":connect_id,"ok":false,"error":error});
        ws.send(Message::text(res.to_string())).await?;
        ws.send(Message::Close(Some(CloseFrame {
            code: close_code.into(),
            reason: reason.into(),
        })))
        .await?;
        return Ok(());
    }
    let device_id = params
        .pointer("/device/id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut auth_method = if config.token.is_some() {
        "token"
    } else {
        "none"
    };
    let mut issued: Option<(String, i64)> = None;
    let shared_token = params.pointer("/auth/token").and_then(Value::as_str);
    match (&config.pairing, &device_id) {
        (Some(pairing), Some(_)) => {
            let shared = shared_token.map(|t| config.token.as_deref().is_none_or(|e| e == t));
            match pairing.on_connect(&params, shared, config.token.is_some()) {
                pairing::ConnectDecision::Accept {
                    method,
                    device_token,
                } => {
                    auth_method = method;
                    issued = device_token;
                }
                pairing::ConnectDecision::Refuse(error) => {
                    let message = error["message"].as_str().unwrap_or("").to_owned();
                    let reason = match error.pointer("/details/requestId").and_then(Value::as_str) {
                        Some(id) => format!("{message} (requestId: {id})"),
                        None => message,
                    };
                    let res = json!({"type":"res","id":connect_id,"ok":false,"error":error});
                    ws.send(Message::text(res.to_string())).await?;
                    ws.send(Message::Close(Some(CloseFrame {
                        code: 1008.into(),
                        reason: reason.into(),
                    })))
                    .await?;
                    return Ok(());
                }
            }
        }
        _ => {
            if let Some(expected) = &config.token {
                let got = shared_token;
                if got != Some(expected.as_str()) {
                    let (message, code, reason) = match got {
                        None => (
                            "unauthorized: gateway token missing (provide gateway auth token)",
                            "AUTH_TOKEN_MISSING",
                            "token_missing",
                        ),
                        Some(_) => (
                            "unauthorized: gateway token mismatch (use this gateway's gateway.auth.token or pair the device)",
                            "AUTH_TOKEN_MISMATCH",
                            "token_mismatch",
                        ),
                    };
                    let res = json!({"type":"res","id":connect_id,"ok":false,"error":{"code":"INVALID_REQUEST","message":message,
                        "details":{"code":code,"authReason":reason,"canRetryWithDeviceToken":false,"recommendedNextStep":"update_auth_credentials"}}});
                    ws.send(Message::text(res.to_string())).await?;
                    ws.send(Message::Close(Some(CloseFrame {
                        code: 1008.into(),
                        reason: message.into(),
                    })))
                    .await?;
                    return Ok(());
                }
            }
        }
    }
    let granted: Vec<String> = config.grant_scopes.clone().unwrap_or_else(|| {
        params["scopes"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    });
    let hello = json!({
        "type": "hello-ok", "protocol": 4,
        "server": {"version": config.server_version, "connId": uuid::Uuid::new_v4().to_string()},
        "features": {"methods": ["health","status","system-presence","config.get","channels.status","last-heartbeat"], "events": ["tick","health"]},
        "snapshot": {"presence": [], "health": {}, "stateVersion": {"presence": 0, "health": 0}, "uptimeMs": 1234},
        "auth": {"method": auth_method, "role": params["role"].as_str().unwrap_or("operator"), "scopes": granted},
        "policy": {"maxPayload": 26214400, "maxBufferedBytes": 52428800, "tickIntervalMs": 30000},
    });
    let mut hello = hello;
    if let Some((token, at)) = issued {
        hello["auth"]["deviceToken"] = json!(token);
        hello["auth"]["issuedAtMs"] = json!(at);
    }
    let res = json!({"type":"res","id":connect_id,"ok":true,"payload":hello});
    ws.send(Message::text(res.to_string())).await?;

    while let Some(msg) = ws.next().await {
        let text = match msg? {
            Message::Text(t) => t,
            Message::Close(_) => break,
            _ => continue,
        };
        let frame: Value = serde_json::from_str(text.as_str())?;
        let id = frame["id"].clone();
        let call = Call {
            method: frame["method"].as_str().unwrap_or("").to_owned(),
            params: frame.get("params").cloned(),
            scopes: granted.clone(),
            device_id: device_id.clone(),
        };
        match (config.handler)(&call) {
            Reply::Ok(payload) => {
                let res = json!({"type":"res","id":id,"ok":true,"payload":payload});
                ws.send(Message::text(res.to_string())).await?;
            }
            Reply::Err(error) => {
                let res = json!({"type":"res","id":id,"ok":false,"error":error});
                ws.send(Message::text(res.to_string())).await?;
            }
            Reply::AcceptedThen(payload) => {
                let interim =
                    json!({"type":"res","id":id,"ok":true,"payload":{"status":"accepted"}});
                ws.send(Message::text(interim.to_string())).await?;
                let res = json!({"type":"res","id":id,"ok":true,"payload":payload});
                ws.send(Message::text(res.to_string())).await?;
            }
            Reply::Close(code, reason) => {
                ws.send(Message::Close(Some(CloseFrame {
                    code: code.into(),
                    reason: reason.into(),
                })))
                .await?;
            }
            Reply::Silence => {}
        }
    }
    Ok(())
}
