//! After hello: method errors, limits, and the flood guard, against the real gateway's captures.

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn post_handshake_errors_match_the_capture() {
    let cap = Capture::load("post-handshake-errors.jsonl");
    let gw = start(|_| {}).await;
    let mut c = Client::open(gw.addr).await;
    assert_eq!(
        c.connect(cli_params(&["operator.read", "operator.write"]))
            .await["ok"],
        true
    );
    let expected = cap.responses(31);
    // [0] hello, [1] no.such.method, [2] node.invoke.result, [3] health {bogus}, …, [7] system-event
    let r = c.call("m2", "no.such.method", json!({})).await;
    assert_eq!(r, expected[1]);
    let r = c
        .call(
            "m3",
            "node.invoke.result",
            json!({"id":"x","nodeId":"y","ok":true}),
        )
        .await;
    assert_eq!(r, expected[2]);
    let r = c.call("m4", "health", json!({"bogus":1})).await;
    assert_eq!(r["ok"], true);
    assert_eq!(r["payload"]["ok"], true);
    let r = c.call("m8", "system-event", json!({"text":"x"})).await;
    assert_eq!(r, expected[7]);

    let mut admin = Client::open(gw.addr).await;
    let hello = admin.connect(cli_params(&["operator.admin"])).await;
    assert!(hello["payload"]["snapshot"]["stateDir"].is_string());
    assert_eq!(hello["payload"]["snapshot"]["authMode"], "token");
    let r = admin.call("m2", "no.such.method", json!({})).await;
    assert_eq!(r, cap.responses(32)[1]);
    let r = admin.call("m5", "gateway.identity.get", json!({})).await;
    assert_eq!(r["payload"]["deviceId"].as_str().unwrap().len(), 64);
    assert_eq!(r["payload"]["publicKey"].as_str().unwrap().len(), 43);
}

/// OpenClaw's `authorizeGatewayMethod` answers `health` before any role or scope check: a
/// connection whose scopes were cleared (here a device-less UI client) and a node both get it,
/// while every other method keeps its gate.
#[tokio::test]
async fn health_needs_no_scope_and_no_operator_role() {
    let gw = start(|_| {}).await;
    let mut scopeless = Client::open(gw.addr).await;
    let mut p = cli_params(&["operator.read"]);
    p["client"] = json!({"id":"openclaw-tui","version":"2026.9.6","platform":"linux","mode":"ui"});
    let hello = scopeless.connect(p).await;
    assert_eq!(hello["payload"]["auth"]["scopes"], json!([]), "{hello}");
    let r = scopeless.call("h", "health", json!({})).await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["payload"]["ok"], true, "{r}");
    let r = scopeless.call("s", "status", json!({})).await;
    assert_eq!(r["error"]["message"], "missing scope: operator.read", "{r}");

    let mut node = Client::open(gw.addr).await;
    let p = json!({"minProtocol":4,"maxProtocol":4,
        "client":{"id":"node-host","version":"2026.9.6","platform":"linux","mode":"node"},
        "role":"node","scopes":[],"caps":[],"auth":{"token":TOKEN}});
    let hello = node.connect(p).await;
    assert_eq!(hello["payload"]["auth"]["role"], "node", "{hello}");
    let r = node.call("h", "health", json!({})).await;
    assert_eq!(r["ok"], true, "{r}");
    let r = node.call("s", "status", json!({})).await;
    assert_eq!(r["error"]["message"], "unauthorized role: node", "{r}");
}

#[tokio::test]
async fn read_methods_the_cli_flows_need() {
    let gw = start(|o| {
        o.config = json!({"gateway":{"auth":{"token":"secret-in-config"}},"agents":{"x":1}})
    })
    .await;
    let mut c = Client::open(gw.addr).await;
    c.connect(cli_params(&["operator.read"])).await;
    let r = c
        .call("1", "status", json!({"includeChannelSummary":false}))
        .await;
    assert_eq!(r["payload"]["runtimeVersion"], "2026.9.6");
    let r = c.call("2", "system-presence", json!({})).await;
    assert_eq!(r["payload"][0]["reason"], "self");
    let r = c.call("3", "last-heartbeat", json!({})).await;
    assert_eq!(r, json!({"type":"res","id":"3","ok":true,"payload":null}));
    let r = c
        .call(
            "4",
            "channels.status",
            json!({"probe":false,"timeoutMs":8000}),
        )
        .await;
    assert_eq!(r["payload"]["channels"], json!({}));
    let r = c.call("5", "config.get", json!({})).await;
    assert_eq!(
        r["payload"]["config"]["gateway"]["auth"]["token"],
        "__OPENCLAW_REDACTED__"
    );
    assert_eq!(r["payload"]["config"]["agents"], json!({"x":1}));
    let r = c.call("6", "models.list", json!({})).await;
    assert_eq!(r["payload"], json!({"models": []}));
}

/// `config.get`'s hash is keyed with a key of the gateway's own, as OpenClaw's config revision
/// token is: stable for one state dir, different for another, and not the plain SHA-256 of a
/// config that holds secrets (which anyone with read scope could test guesses against).
#[tokio::test]
async fn the_config_hash_is_keyed_per_gateway() {
    let states = tempfile::tempdir().unwrap();
    let secret = json!({"gateway":{"auth":{"token":"secret-in-config"}}});
    let hash_of = |state: &str, config: &serde_json::Value| {
        let (state, config) = (states.path().join(state), config.clone());
        async move {
            let gw = start(move |o| {
                o.state_dir = state;
                o.config = config;
            })
            .await;
            let mut c = Client::open(gw.addr).await;
            c.connect(cli_params(&["operator.read"])).await;
            let r = c.call("1", "config.get", json!({})).await;
            drop(c);
            gw.shutdown.cancel();
            gw.task.await.unwrap();
            r["payload"]["hash"].as_str().unwrap().to_owned()
        }
    };
    let first = hash_of("a", &secret).await;
    let token = first.strip_prefix("hmac-sha256:v1:").unwrap();
    assert_eq!(token.len(), 43, "{first}");
    assert!(!first.contains(&clawgate_config::config_hash(&secret)));
    assert_eq!(hash_of("a", &secret).await, first, "stable across restarts");
    assert_ne!(hash_of("b", &secret).await, first, "keyed per gateway");
    let changed = json!({"gateway":{"auth":{"token":"secret-in-config2"}}});
    assert_ne!(hash_of("a", &changed).await, first, "follows the config");
}

#[tokio::test]
async fn invalid_frames_after_hello_are_answered() {
    let gw = start(|_| {}).await;
    let mut c = Client::open(gw.addr).await;
    c.connect(cli_params(&["operator.read"])).await;
    c.send(json!({"type":"req","id":"z"})).await;
    let r = c.recv_res().await;
    assert_eq!(
        r,
        json!({"type":"res","id":"z","ok":false,"error":{"code":"INVALID_REQUEST","message":"invalid request frame: must have required property 'method'"}})
    );
    // Not JSON after hello: ignored, the connection stays usable.
    c.send_raw("garbage").await;
    assert_eq!(c.call("h", "health", json!({})).await["ok"], true);
}

#[tokio::test]
async fn repeated_node_only_calls_from_an_operator_are_cut_off() {
    let gw = start(|_| {}).await;
    let mut c = Client::open(gw.addr).await;
    c.connect(cli_params(&["operator.admin"])).await;
    for i in 0..11 {
        let r = c.call(&format!("u{i}"), "node.event", json!({})).await;
        assert_eq!(r["error"]["message"], "unauthorized role: operator");
    }
    assert_eq!(
        c.expect_close().await,
        (1008, "repeated unauthorized calls".into())
    );
}

#[tokio::test]
async fn oversize_frame_before_hello_closes_1009_and_after_hello_is_fine() {
    let cap = Capture::load("post-handshake-errors.jsonl");
    let gw = start(|_| {}).await;
    let mut c = Client::open(gw.addr).await;
    c.send(json!({"pad": "x".repeat(70_000)})).await;
    assert_eq!(c.expect_close().await, cap.server_close(30));

    let mut c = Client::open(gw.addr).await;
    c.connect(cli_params(&["operator.read"])).await;
    let r = c
        .call("big", "health", json!({"pad": "x".repeat(200_000)}))
        .await;
    assert_eq!(r["ok"], true);
}

#[tokio::test]
async fn frames_over_max_payload_after_hello_close_1009() {
    let gw = start(|o| o.max_payload = 100_000).await;
    let mut c = Client::open(gw.addr).await;
    c.connect(cli_params(&["operator.read"])).await;
    c.send(json!({"type":"req","id":"big","method":"health","params":{"pad":"x".repeat(150_000)}}))
        .await;
    assert_eq!(c.expect_close().await.0, 1009);
    // The gateway keeps serving everyone else.
    let mut other = Client::open(gw.addr).await;
    assert_eq!(
        other.connect(cli_params(&["operator.read"])).await["ok"],
        true
    );
}

#[tokio::test]
async fn too_many_frames_during_connect_close_1008() {
    let gw = start(|_| {}).await;
    let mut c = Client::open(gw.addr).await;
    let mut p = cli_params(&["operator.read"]);
    p["auth"]["token"] = json!("wrong");
    // The wrong token is answered after the limiter's delay; frames sent meanwhile queue up.
    c.send(json!({"type":"req","id":"c1","method":"connect","params":p}))
        .await;
    for i in 0..16 {
        c.send(json!({"type":"req","id":format!("q{i}"),"method":"health"}))
            .await;
    }
    assert_eq!(
        c.expect_close().await,
        (1008, "too many pending handshake frames".into())
    );
}

#[tokio::test]
async fn no_connect_in_time_closes() {
    let gw = start(|o| o.handshake_timeout = Duration::from_millis(200)).await;
    let mut c = Client::open(gw.addr).await;
    assert_eq!(c.expect_close().await, (1000, String::new()));
}

#[tokio::test]
async fn wrong_tokens_are_rate_limited_and_others_keep_working() {
    let gw = start(|o| {
        o.rate_limit.exempt_loopback = false;
        o.rate_limit.max_attempts = 2;
        o.rate_limit.base_delay = Duration::from_millis(1);
    })
    .await;
    let mut bad = cli_params(&["operator.read"]);
    bad["auth"]["token"] = json!("wrong");
    for _ in 0..2 {
        let mut c = Client::open(gw.addr).await;
        let r = c.connect(bad.clone()).await;
        assert_eq!(r["error"]["details"]["code"], "AUTH_TOKEN_MISMATCH", "{r}");
    }
    let mut c = Client::open(gw.addr).await;
    let r = c.connect(bad.clone()).await;
    let e = &r["error"];
    assert_eq!(e["code"], "INVALID_REQUEST");
    assert_eq!(
        e["message"],
        "unauthorized: too many failed authentication attempts (retry later)"
    );
    assert_eq!(e["retryable"], true);
    assert!(e["retryAfterMs"].as_u64().unwrap() > 200_000);
    assert_eq!(
        e["details"],
        json!({"code":"AUTH_RATE_LIMITED","authReason":"rate_limited","canRetryWithDeviceToken":false,"recommendedNextStep":"wait_then_retry"})
    );
    assert_eq!(c.expect_close().await.0, 1008);
}

#[tokio::test]
async fn loopback_brute_force_is_slowed() {
    let gw = start(|o| o.rate_limit.base_delay = Duration::from_millis(50)).await;
    let mut bad = cli_params(&["operator.read"]);
    bad["auth"]["token"] = json!("wrong");
    let started = std::time::Instant::now();
    for _ in 0..4 {
        let mut c = Client::open(gw.addr).await;
        assert_eq!(
            c.connect(bad.clone()).await["error"]["details"]["code"],
            "AUTH_TOKEN_MISMATCH"
        );
    }
    // 50 + 100 + 200 + 400 ms of enforced delay.
    assert!(started.elapsed() >= Duration::from_millis(750));
    let mut ok = Client::open(gw.addr).await;
    assert_eq!(ok.connect(cli_params(&["operator.read"])).await["ok"], true);
}

#[tokio::test]
async fn a_slow_consumer_is_cut_off() {
    let gw = start(|o| o.max_buffered_bytes = 10_000).await;
    let mut c = Client::open(gw.addr).await;
    c.connect(cli_params(&["operator.read"])).await;
    gw.gateway
        .registry
        .broadcast("tick", &json!({"pad": "x".repeat(20_000)}));
    assert_eq!(c.expect_close().await, (1008, "slow consumer".into()));
}

#[tokio::test]
async fn websocket_upgrade_on_any_path_and_http_probes() {
    let gw = start(|_| {}).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/some/other/path", gw.addr))
        .await
        .unwrap();
    use futures_util::StreamExt;
    let first = ws.next().await.unwrap().unwrap();
    assert!(first.to_text().unwrap().contains("connect.challenge"));
    for (path, body) in [
        ("/healthz", json!({"ok":true,"status":"live"})),
        ("/readyz", json!({"ready":true,"status":"ready"})),
    ] {
        let (status, text) = http_get(gw.addr, path).await;
        assert_eq!(status, 200);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).unwrap(),
            body
        );
    }
    let (status, text) = http_get(gw.addr, "/startupz").await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["status"], "started");
    assert_eq!(v["version"], "2026.9.6");
    assert!(v["uptimeMs"].is_u64());
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.unwrap();
    let status = buf[9..12].parse().unwrap();
    let body = buf.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}
