//! The node host against a scripted gateway speaking the frames of the OpenClaw captures:
//! the connect it sends, what it publishes after hello (and retries), invokes and cancels,
//! reconnects after close 1012, the device token it keeps, and which rejections end it.

use clawgate_node_host::state::{NodeState, StoredDeviceToken};
use clawgate_node_host::{FatalError, NodeHostConfig, run};
use clawgate_protocol::device::{self, SignedFields};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::CancellationToken;

type Ws = WebSocketStream<TcpStream>;

const WAIT: Duration = Duration::from_secs(10);

struct Gateway {
    listener: TcpListener,
    url: String,
}

impl Gateway {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://127.0.0.1:{}", listener.local_addr().unwrap().port());
        Gateway { listener, url }
    }

    /// Accepts the next connection and sends the challenge; returns the `connect` request.
    async fn accept(&self) -> (Ws, Value) {
        let (tcp, _) = tokio::time::timeout(WAIT, self.listener.accept())
            .await
            .expect("the node host reconnects")
            .unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        send(
            &mut ws,
            json!({"type": "event", "event": "connect.challenge", "payload": {"nonce": "nonce-1", "ts": ts, "capabilities": ["model-catalog-snapshot"]}}),
        )
        .await;
        let connect = recv(&mut ws).await;
        assert_eq!(connect["method"], "connect", "{connect}");
        (ws, connect)
    }
}

async fn send(ws: &mut Ws, frame: Value) {
    ws.send(Message::text(frame.to_string())).await.unwrap();
}

/// The next JSON frame (a close frame panics).
async fn recv(ws: &mut Ws) -> Value {
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame")
        {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(t.as_str()).unwrap(),
            Some(Ok(Message::Close(f))) => panic!("closed: {f:?}"),
            Some(Ok(_)) => continue,
            other => panic!("connection ended: {other:?}"),
        }
    }
}

/// The next request for `method`, answering the others with `{ok:true}`.
async fn expect_req(ws: &mut Ws, method: &str) -> Value {
    loop {
        let frame = recv(ws).await;
        if frame["method"] == method {
            return frame;
        }
        ok(ws, &frame, json!({"ok": true})).await;
    }
}

async fn ok(ws: &mut Ws, req: &Value, payload: Value) {
    send(
        ws,
        json!({"type": "res", "id": req["id"], "ok": true, "payload": payload}),
    )
    .await;
}

async fn fail(ws: &mut Ws, req: &Value, error: Value) {
    send(
        ws,
        json!({"type": "res", "id": req["id"], "ok": false, "error": error}),
    )
    .await;
}

async fn event(ws: &mut Ws, name: &str, payload: Value) {
    send(
        ws,
        json!({"type": "event", "event": name, "payload": payload}),
    )
    .await;
}

async fn close(ws: &mut Ws, code: u16, reason: &str) {
    let _ = ws
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: reason.to_owned().into(),
        })))
        .await;
}

fn hello(device_token: Option<&str>, tick_ms: u64) -> Value {
    let mut auth = json!({"method": "token", "role": "node", "scopes": []});
    if let Some(t) = device_token {
        auth["deviceToken"] = json!(t);
        auth["issuedAtMs"] = json!(1795513714059i64);
    }
    json!({
        "type": "hello-ok", "protocol": 4,
        "server": {"version": "2026.9.6", "connId": "c1"},
        "features": {"methods": ["health"], "events": ["tick"]},
        "snapshot": {"presence": [], "health": {}, "stateVersion": {"presence": 0, "health": 0}, "uptimeMs": 1},
        "auth": auth,
        "policy": {"maxPayload": 26214400, "maxBufferedBytes": 52428800, "tickIntervalMs": tick_ms},
    })
}

fn config(url: &str, state: &Path, token: Option<&str>) -> NodeHostConfig {
    NodeHostConfig {
        url: url.into(),
        tls_fingerprint: None,
        token: token.map(str::to_owned),
        password: None,
        display_name: Some("fake-node".into()),
        state_dir: state.to_path_buf(),
        max_concurrent: 4,
    }
}

fn start(config: NodeHostConfig) -> (CancellationToken, JoinHandle<Result<(), FatalError>>) {
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run(config, shutdown.clone()));
    (shutdown, task)
}

/// Checks the device proof: v3 payload over the challenge, signed with the sent key.
fn assert_signed(params: &Value, token: &str) {
    let d = &params["device"];
    let key = device::decode_public_key(d["publicKey"].as_str().unwrap()).unwrap();
    assert_eq!(d["id"], device::device_id(&key));
    let fields = SignedFields {
        device_id: d["id"].as_str().unwrap(),
        client_id: "node-host",
        client_mode: "node",
        role: "node",
        scopes: &[],
        signed_at_ms: d["signedAt"].as_i64().unwrap(),
        token,
        nonce: "nonce-1",
        platform: params["client"]["platform"].as_str(),
        device_family: params["client"]["deviceFamily"].as_str(),
    };
    assert_eq!(
        device::verify(&key, d["signature"].as_str().unwrap(), &fields),
        Some(device::PayloadVersion::V3)
    );
}

#[tokio::test]
async fn session_publications_invokes_and_reconnects() {
    let gw = Gateway::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("node");
    let (_shutdown, task) = start(config(&gw.url, &state, Some("t1")));

    // The connect, shaped like the real node host's.
    let (mut ws, connect) = gw.accept().await;
    let p = &connect["params"];
    assert_eq!(
        (p["minProtocol"].as_u64(), p["maxProtocol"].as_u64()),
        (Some(4), Some(4))
    );
    assert_eq!(p["client"]["id"], "node-host");
    assert_eq!(p["client"]["mode"], "node");
    assert_eq!(p["client"]["displayName"], "fake-node");
    assert!(p["client"]["instanceId"].is_string());
    assert_eq!(p["role"], "node");
    assert_eq!(p["scopes"], json!([]));
    assert_eq!(p["caps"], json!(["system"]));
    assert_eq!(
        p["commands"],
        json!([
            "system.execApprovals.get",
            "system.execApprovals.set",
            "system.run",
            "system.run.prepare",
            "system.which"
        ])
    );
    assert!(p["pathEnv"].is_string());
    assert_eq!(p["auth"], json!({"token": "t1"}));
    assert!(p.get("permissions").is_none());
    assert_signed(p, "t1");
    let node_id = p["device"]["id"].as_str().unwrap().to_owned();
    let instance = p["client"]["instanceId"].clone();
    ok(&mut ws, &connect, hello(Some("dt-1"), 30_000)).await;

    // After hello: stats, runner inventory, skills, plugin tools. The inventory is refused
    // while the capability approval is pending and retried; approval retries it at once.
    let (mut stats_ok, mut skills_ok, mut tools_ok, mut tools_refused) =
        (false, false, false, false);
    let mut inventory_attempts = 0;
    while !(stats_ok && skills_ok && tools_ok && inventory_attempts >= 2) {
        let req = recv(&mut ws).await;
        match req["method"].as_str().unwrap() {
            "node.event" => {
                assert_eq!(req["params"]["event"], "node.host.stats");
                let stats: Value =
                    serde_json::from_str(req["params"]["payloadJSON"].as_str().unwrap()).unwrap();
                assert!(stats["cpuCount"].as_u64().unwrap() >= 1);
                ok(&mut ws, &req, json!({"ok": true, "event": "node.host.stats", "handled": true, "reason": "updated"})).await;
                stats_ok = true;
            }
            "node.runnerInventory.update" => {
                assert_eq!(
                    req["params"],
                    json!({"protocolFeatures": ["node-worker-supervisor-v6"], "workerHost": {"enabled": false}})
                );
                inventory_attempts += 1;
                fail(&mut ws, &req, json!({"code": "UNAVAILABLE", "message": "node capability surface is awaiting operator approval; run `openclaw nodes approve req-9` (see `openclaw nodes pending`), then this node retries automatically"})).await;
            }
            "node.skills.update" => {
                assert_eq!(req["params"], json!({"skills": []}));
                ok(&mut ws, &req, json!({"nodeId": node_id, "skills": []})).await;
                skills_ok = true;
            }
            "node.pluginTools.update" => {
                assert_eq!(req["params"], json!({"tools": []}));
                // A transient refusal first, as captured after a reconnect.
                if !tools_refused {
                    tools_refused = true;
                    fail(&mut ws, &req, json!({"code": "UNAVAILABLE", "message": "node pairing changed before request dispatch", "retryable": true, "details": {"code": "PAIRING_CHANGED"}})).await;
                } else {
                    ok(&mut ws, &req, json!({"nodeId": node_id, "tools": []})).await;
                    tools_ok = true;
                }
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(inventory_attempts, 2, "retried after a refusal");
    let approved_at = Instant::now();
    event(
        &mut ws,
        "node.pair.resolved",
        json!({"requestId": "req-9", "nodeId": node_id, "decision": "approved", "ts": 1}),
    )
    .await;
    let req = expect_req(&mut ws, "node.runnerInventory.update").await;
    assert!(
        approved_at.elapsed() < Duration::from_secs(2),
        "{:?}",
        approved_at.elapsed()
    );
    ok(&mut ws, &req, json!({"nodeId": node_id})).await;

    // The device token from hello is stored (0600).
    let stored = NodeState::open(&state)
        .unwrap()
        .device_token(&node_id, &gw.url)
        .unwrap();
    assert_eq!(stored.token, "dt-1");
    assert_eq!(stored.issued_at_ms, Some(1795513714059));

    // An invoke: exec.finished first, then the result.
    event(&mut ws, "node.invoke.request", json!({"id": "inv-1", "nodeId": node_id, "command": "system.run", "paramsJSON": "{\"command\":[\"echo\",\"hi\"],\"runId\":\"run-1\"}", "timeoutMs": 14994, "idempotencyKey": "k1"})).await;
    let ev = expect_req(&mut ws, "node.event").await;
    assert_eq!(ev["params"]["event"], "exec.finished");
    let finished: Value =
        serde_json::from_str(ev["params"]["payloadJSON"].as_str().unwrap()).unwrap();
    assert_eq!(finished["runId"], "run-1");
    assert_eq!(finished["output"], "hi");
    ok(&mut ws, &ev, json!({"ok": true})).await;
    let res = expect_req(&mut ws, "node.invoke.result").await;
    assert_eq!(
        res["params"],
        json!({"id": "inv-1", "nodeId": node_id, "ok": true, "payloadJSON": "{\"exitCode\":0,\"timedOut\":false,\"success\":true,\"stdout\":\"hi\\n\",\"stderr\":\"\",\"error\":null}"})
    );
    ok(&mut ws, &res, json!({"ok": true})).await;

    // Concurrent invokes; a cancelled one sends nothing.
    event(&mut ws, "node.invoke.request", json!({"id": "inv-2", "nodeId": node_id, "command": "system.run", "paramsJSON": "{\"command\":[\"sleep\",\"30\"]}", "timeoutMs": 30000})).await;
    event(&mut ws, "node.invoke.request", json!({"id": "inv-3", "nodeId": node_id, "command": "system.which", "paramsJSON": "{\"bins\":[\"sh\"]}", "timeoutMs": 30000})).await;
    let res = expect_req(&mut ws, "node.invoke.result").await;
    assert_eq!(
        res["params"]["id"], "inv-3",
        "the quick one is not held up by the slow one"
    );
    ok(&mut ws, &res, json!({"ok": true})).await;
    event(
        &mut ws,
        "node.invoke.cancel",
        json!({"invokeId": "inv-2", "nodeId": node_id}),
    )
    .await;
    let quiet = tokio::time::timeout(Duration::from_millis(1500), recv(&mut ws)).await;
    assert!(
        quiet.is_err(),
        "nothing is sent for a cancelled invoke: {quiet:?}"
    );

    // Gateway restart: close 1012, the node host is back within the first backoff step and
    // keeps sending the shared token.
    close(&mut ws, 1012, "service restart").await;
    drop(ws);
    let closed_at = Instant::now();
    let (mut ws, connect) = gw.accept().await;
    let waited = closed_at.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert_eq!(connect["params"]["auth"], json!({"token": "t1"}));
    assert_eq!(connect["params"]["client"]["instanceId"], instance);
    assert_eq!(connect["params"]["device"]["id"], node_id.as_str());

    // Pairing pending: retried (after 2 s this time), not fatal.
    fail(&mut ws, &connect, json!({"code": "NOT_PAIRED", "message": "pairing required: device is not approved yet", "details": {"code": "PAIRING_REQUIRED", "reason": "not-paired", "requestId": "pr-1", "recommendedNextStep": "wait_then_retry"}, "retryable": true})).await;
    close(&mut ws, 1008, "pairing required").await;
    drop(ws);
    let (mut ws, connect) = gw.accept().await;

    // A wrong token is final.
    fail(&mut ws, &connect, json!({"code": "INVALID_REQUEST", "message": "unauthorized: gateway token mismatch (use this gateway's gateway.auth.token or pair the device)", "details": {"code": "AUTH_TOKEN_MISMATCH", "authReason": "token_mismatch", "canRetryWithDeviceToken": false, "recommendedNextStep": "update_auth_credentials"}})).await;
    close(&mut ws, 1008, "unauthorized").await;
    let result = tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
    match result {
        Err(FatalError::Auth(m)) => assert!(m.contains("--token"), "{m}"),
        other => panic!("expected an auth failure, got {other:?}"),
    }
}

#[tokio::test]
async fn a_stored_device_token_is_used_without_a_shared_secret() {
    let gw = Gateway::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("node");
    let state = NodeState::open(&state_dir).unwrap();
    let identity = state.identity().unwrap();
    state
        .save_device_token(&StoredDeviceToken {
            device_id: identity.id().into(),
            role: "node".into(),
            token: "stored-dt".into(),
            issued_at_ms: None,
            gateway: gw.url.clone(),
        })
        .unwrap();
    let (_shutdown, task) = start(config(&gw.url, &state_dir, None));
    let (mut ws, connect) = gw.accept().await;
    assert_eq!(
        connect["params"]["auth"],
        json!({"deviceToken": "stored-dt"})
    );
    assert_signed(&connect["params"], "stored-dt");
    // Revoked: the token is discarded and the node host stops with a clear message.
    fail(&mut ws, &connect, json!({"code": "INVALID_REQUEST", "message": "unauthorized: device token mismatch (rotate/reissue device token)", "details": {"code": "AUTH_DEVICE_TOKEN_MISMATCH"}})).await;
    close(&mut ws, 1008, "unauthorized").await;
    let result = tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
    assert!(
        matches!(result, Err(FatalError::Auth(ref m)) if m.contains("discarded")),
        "{result:?}"
    );
    assert_eq!(state.device_token(identity.id(), &gw.url), None);
}

#[tokio::test]
async fn shutdown_closes_cleanly_and_silence_trips_the_tick_timeout() {
    let gw = Gateway::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (shutdown, task) = start(config(&gw.url, &dir.path().join("node"), Some("t1")));
    let (mut ws, connect) = gw.accept().await;
    ok(&mut ws, &connect, hello(None, 300)).await;
    // Answer what it publishes, then say nothing: after two tick intervals it gives up on
    // the connection (4000 "tick timeout") and reconnects.
    let silent_from = Instant::now();
    let closed = loop {
        match tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
            Some(Ok(Message::Text(t))) => {
                let req: Value = serde_json::from_str(t.as_str()).unwrap();
                ok(&mut ws, &req, json!({"ok": true})).await;
            }
            Some(Ok(Message::Close(f))) => break f,
            Some(Ok(_)) => {}
            other => panic!("{other:?}"),
        }
    };
    let f = closed.expect("a close frame");
    assert_eq!(
        (u16::from(f.code), f.reason.as_str()),
        (4000, "tick timeout")
    );
    assert!(silent_from.elapsed() < Duration::from_secs(3));
    drop(ws);

    let (mut ws, connect) = gw.accept().await;
    ok(&mut ws, &connect, hello(None, 30_000)).await;
    let _ = recv(&mut ws).await;
    shutdown.cancel();
    let f = loop {
        match tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
            Some(Ok(Message::Close(f))) => break f,
            Some(Ok(_)) => {}
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(f.map(|f| u16::from(f.code)), Some(1000));
    let result = tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn invocations_past_the_limit_are_refused_not_queued() {
    let gw = Gateway::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&gw.url, &dir.path().join("node"), Some("t1"));
    cfg.max_concurrent = 1;
    let (shutdown, task) = start(cfg);
    let (mut ws, connect) = gw.accept().await;
    let node_id = connect["params"]["device"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(&mut ws, &connect, hello(None, 30_000)).await;
    event(&mut ws, "node.invoke.request", json!({"id": "slow", "nodeId": node_id, "command": "system.run", "paramsJSON": "{\"command\":[\"sleep\",\"30\"]}", "timeoutMs": 30000})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    event(&mut ws, "node.invoke.request", json!({"id": "extra", "nodeId": node_id, "command": "system.which", "paramsJSON": "{\"bins\":[\"sh\"]}", "timeoutMs": 30000})).await;
    let res = expect_req(&mut ws, "node.invoke.result").await;
    assert_eq!(res["params"]["id"], "extra");
    assert_eq!(res["params"]["ok"], false);
    assert_eq!(res["params"]["error"]["code"], "UNAVAILABLE");
    assert!(
        res["params"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("busy"),
        "{res}"
    );
    ok(&mut ws, &res, json!({"ok": true})).await;
    // Stopping kills the running command with the connection.
    shutdown.cancel();
    let result = tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
    assert!(result.is_ok());
}

/// Like the real node host, `system.run` does not stream: `node.invoke.input` for it is dropped
/// (the child's stdin stays closed) and no `node.invoke.progress` is sent, only the whole result.
#[tokio::test]
async fn system_run_ignores_invoke_input_and_sends_no_progress() {
    let gw = Gateway::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (shutdown, task) = start(config(&gw.url, &dir.path().join("node"), Some("t1")));
    let (mut ws, connect) = gw.accept().await;
    let node_id = connect["params"]["device"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(&mut ws, &connect, hello(None, 30_000)).await;
    let params = json!({"command": ["sh", "-c", "read line; echo \"read:$line\""]});
    event(&mut ws, "node.invoke.request", json!({"id": "inv-in", "nodeId": node_id, "command": "system.run", "paramsJSON": params.to_string(), "timeoutMs": 30000})).await;
    // The gateway's input frame, as the real gateway shapes it; then one for no invoke at all.
    event(&mut ws, "node.invoke.input", json!({"id": "inv-in", "nodeId": node_id, "seq": 0, "payloadJSON": "{\"kind\":\"data\",\"data\":\"hello\\n\"}"})).await;
    event(
        &mut ws,
        "node.invoke.input",
        json!({"id": "nope", "nodeId": node_id, "seq": 0, "payloadJSON": "{}"}),
    )
    .await;
    let mut methods = Vec::new();
    let res = loop {
        let req = recv(&mut ws).await;
        let method = req["method"].as_str().unwrap().to_owned();
        if method == "node.invoke.result" {
            break req;
        }
        methods.push(method);
        ok(&mut ws, &req, json!({"ok": true})).await;
    };
    assert!(
        !methods.iter().any(|m| m == "node.invoke.progress"),
        "{methods:?}"
    );
    let payload: Value =
        serde_json::from_str(res["params"]["payloadJSON"].as_str().unwrap()).unwrap();
    assert_eq!(
        payload["stdout"], "read:\n",
        "the input never reached stdin"
    );
    ok(&mut ws, &res, json!({"ok": true})).await;
    shutdown.cancel();
    let result = tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
    assert!(result.is_ok());
}
