//! A gateway on an ephemeral loopback port and a raw WebSocket client that asserts on frames.
#![allow(dead_code)]

use clawgate_config::Secret;
use clawgate_gateway::{AuthMode, Gateway, GatewayOptions};
use clawgate_protocol::device::{self, SignedFields};
use ed25519_dalek::SigningKey;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

pub const TOKEN: &str = "t1";
/// Long enough for a loaded CI machine, short enough to fail fast.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct TestGateway {
    pub addr: SocketAddr,
    pub gateway: Arc<Gateway>,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

pub async fn start(configure: impl FnOnce(&mut GatewayOptions)) -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    let mut options = GatewayOptions::new(AuthMode::Token, dir.path().join("state"));
    options.token = Some(Secret::new(TOKEN));
    configure(&mut options);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let gateway = Gateway::new(options).unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(clawgate_gateway::serve(
        vec![listener],
        gateway.clone(),
        shutdown.clone(),
    ));
    TestGateway {
        addr,
        gateway,
        shutdown,
        task,
        _dir: dir,
    }
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub challenge: Value,
}

impl Client {
    /// Opens a socket and reads the `connect.challenge` event.
    pub async fn open(addr: SocketAddr) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
            .await
            .unwrap();
        let mut c = Client {
            ws,
            challenge: Value::Null,
        };
        let ev = c.recv().await;
        assert_eq!(ev["event"], "connect.challenge", "{ev}");
        c.challenge = ev;
        c
    }

    pub fn nonce(&self) -> String {
        self.challenge["payload"]["nonce"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn send(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).await.unwrap();
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.ws.send(Message::text(text.to_owned())).await.unwrap();
    }

    /// Next text frame as JSON (pings and pongs skipped).
    pub async fn recv(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("timed out waiting for a frame")
                .expect("socket ended")
                .expect("socket error");
            match msg {
                Message::Text(t) => return serde_json::from_str(&t).unwrap(),
                Message::Close(c) => panic!("closed instead of a frame: {c:?}"),
                _ => continue,
            }
        }
    }

    /// Next frame that is not a `tick`/`presence`/`health` broadcast.
    pub async fn recv_res(&mut self) -> Value {
        loop {
            let v = self.recv().await;
            if v["type"] == "res" {
                return v;
            }
        }
    }

    /// Reads until the server closes; returns the close code and reason.
    pub async fn expect_close(&mut self) -> (u16, String) {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("timed out waiting for close");
            match msg {
                Some(Ok(Message::Close(Some(f)))) => {
                    return (u16::from(f.code), f.reason.to_string());
                }
                Some(Ok(Message::Close(None))) => return (1005, String::new()),
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("socket error before close: {e}"),
                None => panic!("socket ended without a close frame"),
            }
        }
    }

    /// Sends `connect` with the given params and returns the response frame.
    pub async fn connect(&mut self, params: Value) -> Value {
        self.send(json!({"type":"req","id":"c1","method":"connect","params":params}))
            .await;
        self.recv_res().await
    }

    pub async fn call(&mut self, id: &str, method: &str, params: Value) -> Value {
        self.send(json!({"type":"req","id":id,"method":method,"params":params}))
            .await;
        let res = self.recv_res().await;
        assert_eq!(res["id"], id);
        res
    }
}

/// Connect params as the real CLI sends them for `gateway call` (loopback, shared token).
pub fn cli_params(scopes: &[&str]) -> Value {
    json!({"minProtocol":4,"maxProtocol":4,
        "client":{"id":"cli","version":"2026.9.6","platform":"linux","deviceFamily":"Linux","mode":"cli","instanceId":"i-1"},
        "caps":[],"auth":{"token":TOKEN},"role":"operator","scopes":scopes})
}

/// Adds a device proof signed by `key` over the challenge to `params`.
pub fn sign(mut params: Value, key: &SigningKey, nonce: &str, signed_at: i64) -> Value {
    let vk = key.verifying_key();
    let id = device::device_id(&vk);
    let scopes: Vec<String> = serde_json::from_value(params["scopes"].clone()).unwrap_or_default();
    let auth = &params["auth"];
    let token = auth["token"]
        .as_str()
        .or(auth["deviceToken"].as_str())
        .unwrap_or("")
        .to_owned();
    let fields = SignedFields {
        device_id: &id,
        client_id: params["client"]["id"].as_str().unwrap(),
        client_mode: params["client"]["mode"].as_str().unwrap(),
        role: params["role"].as_str().unwrap_or("operator"),
        scopes: &scopes,
        signed_at_ms: signed_at,
        token: &token,
        nonce,
        platform: params["client"]["platform"].as_str(),
        device_family: params["client"]["deviceFamily"].as_str(),
    };
    let signature = device::sign_v3(key, &fields);
    params["device"] = json!({"id": id, "publicKey": device::b64url(vk.as_bytes()), "signature": signature, "signedAt": signed_at, "nonce": nonce});
    params
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

// ---- in-memory sockets, for tests under paused time -------------------------------------------

/// A gateway without listeners (its timers and shutdown sequence run); clients reach it over
/// in-memory pipes, so tokio's paused clock can jump.
pub struct InMemory {
    pub gw: Arc<Gateway>,
    pub shutdown: CancellationToken,
    pub serve: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

pub async fn in_memory(configure: impl FnOnce(&mut GatewayOptions)) -> InMemory {
    let dir = tempfile::tempdir().unwrap();
    let mut o = GatewayOptions::new(AuthMode::Token, dir.path().join("state"));
    o.token = Some(Secret::new(TOKEN));
    configure(&mut o);
    let gw = Gateway::new(o).unwrap();
    let shutdown = CancellationToken::new();
    let serve = tokio::spawn(clawgate_gateway::serve(
        vec![],
        gw.clone(),
        shutdown.clone(),
    ));
    InMemory {
        gw,
        shutdown,
        serve,
        _dir: dir,
    }
}

pub type Pipe = WebSocketStream<tokio::io::DuplexStream>;

/// A loopback client's socket, past its `connect.challenge`.
pub async fn open_pipe(gw: &Arc<Gateway>) -> Pipe {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let peer = clawgate_gateway::PeerInfo::direct("127.0.0.1:40000".parse().unwrap());
    tokio::spawn(clawgate_gateway::serve_websocket(gw.clone(), server, peer));
    let mut ws = WebSocketStream::from_raw_socket(
        client,
        tokio_tungstenite::tungstenite::protocol::Role::Client,
        None,
    )
    .await;
    let ch = next_json(&mut ws).await;
    assert_eq!(ch["event"], "connect.challenge");
    ws
}

pub async fn next_msg(ws: &mut Pipe) -> Message {
    ws.next()
        .await
        .expect("socket ended")
        .expect("socket error")
}

/// The next text frame as JSON (pings skipped).
pub async fn next_json(ws: &mut Pipe) -> Value {
    loop {
        match next_msg(ws).await {
            Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            Message::Close(c) => panic!("closed: {c:?}"),
            _ => continue,
        }
    }
}

pub async fn send_connect(ws: &mut Pipe, params: Value) {
    ws.send(Message::text(
        json!({"type":"req","id":"c","method":"connect","params":params}).to_string(),
    ))
    .await
    .unwrap();
}

/// Connects and returns the hello-ok payload.
pub async fn connect_pipe(ws: &mut Pipe, params: Value) -> Value {
    send_connect(ws, params).await;
    let res = next_json(ws).await;
    assert_eq!(res["ok"], true, "{res}");
    res["payload"].clone()
}

/// A recorded conversation of the real gateway (`tests/fixtures/*.jsonl`).
pub struct Capture(Vec<Value>);

impl Capture {
    pub fn load(name: &str) -> Capture {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        Capture(
            text.lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect(),
        )
    }

    /// The server's responses on connection `conn`, in order.
    pub fn responses(&self, conn: u64) -> Vec<Value> {
        self.0
            .iter()
            .filter(|r| r["conn"] == conn && r["dir"] == "s2c" && r["frame"]["type"] == "res")
            .map(|r| r["frame"].clone())
            .collect()
    }

    /// The server's close on connection `conn`.
    pub fn server_close(&self, conn: u64) -> (u16, String) {
        let r = self
            .0
            .iter()
            .find(|r| r["conn"] == conn && r["dir"] == "close-by-server")
            .expect("capture has a server close");
        (
            r["code"].as_u64().unwrap() as u16,
            r["reason"].as_str().unwrap().to_owned(),
        )
    }

    /// The client's connect params on connection `conn`.
    pub fn connect_params(&self, conn: u64) -> Value {
        self.0
            .iter()
            .find(|r| r["conn"] == conn && r["dir"] == "c2s" && r["frame"]["method"] == "connect")
            .map(|r| r["frame"]["params"].clone())
            .expect("capture has a connect")
    }
}

// Nodes and operators over real sockets, shared by the node and agent tests.

pub const COMMANDS: &[&str] = &[
    "system.run",
    "system.which",
    "system.run.prepare",
    "file.fetch",
    "ollama.chat",
];

/// A node host's connect, like the real one's (device-signed, role node).
pub async fn node(gw: &TestGateway, seed: u8) -> (Client, String) {
    node_with(gw, seed, 4, json!(["system"]), json!(COMMANDS)).await
}

/// A node speaking `protocol` (4, or 3 like a legacy node host) that declares `caps` and
/// `commands`.
pub async fn node_with(
    gw: &TestGateway,
    seed: u8,
    protocol: u32,
    caps: Value,
    commands: Value,
) -> (Client, String) {
    let key = SigningKey::from_bytes(&[seed; 32]);
    let mut c = Client::open(gw.addr).await;
    let nonce = c.nonce();
    let params = json!({"minProtocol":protocol,"maxProtocol":protocol,
        "client":{"id":"node-host","displayName":"proto-node","version":"2026.9.6","platform":"linux","deviceFamily":"Linux","mode":"node"},
        "caps":caps,"commands":commands,"pathEnv":"/usr/bin:/bin","auth":{"token":TOKEN},"role":"node","scopes":[]});
    let res = c.connect(sign(params, &key, &nonce, now_ms())).await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(res["payload"]["auth"]["role"], "node");
    assert!(res["payload"]["auth"]["deviceToken"].is_string());
    (
        c,
        clawgate_protocol::device::device_id(&key.verifying_key()),
    )
}

pub async fn operator(gw: &TestGateway, scopes: &[&str]) -> Client {
    let mut c = Client::open(gw.addr).await;
    assert_eq!(c.connect(cli_params(scopes)).await["ok"], true);
    c
}

pub async fn next_event(c: &mut Client, name: &str) -> Value {
    loop {
        let f = c.recv().await;
        if f["type"] == "event" && f["event"] == name {
            return f;
        }
    }
}

/// Approves the node's pending surface and returns once it is approved.
pub async fn approve(gw: &TestGateway, node_id: &str) {
    let mut admin = operator(gw, &["operator.pairing", "operator.admin"]).await;
    let list = admin.call("l", "node.pair.list", json!({})).await;
    let req = list["payload"]["pending"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["nodeId"] == node_id)
        .unwrap()
        .clone();
    let r = admin
        .call(
            "a",
            "node.pair.approve",
            json!({"requestId": req["requestId"]}),
        )
        .await;
    assert_eq!(r["ok"], true, "{r}");
}

/// The node side of one invoke: the request event, answered with `result`.
pub async fn answer(node: &mut Client, node_id: &str, result: Value) -> Value {
    let req = next_event(node, "node.invoke.request").await;
    assert!(req.get("seq").is_none(), "targeted events carry no seq");
    let mut params = result;
    params["id"] = req["payload"]["id"].clone();
    params["nodeId"] = json!(node_id);
    let r = node.call("r", "node.invoke.result", params).await;
    assert_eq!(r["payload"], json!({"ok": true}));
    req["payload"].clone()
}
