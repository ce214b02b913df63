//! The connect handshake, frame for frame against what the real gateway answered.

mod common;

use common::*;
use ed25519_dalek::SigningKey;
use serde_json::{Value, json};

/// Replays the client's connect of `conn` from the capture and asserts our error response and
/// close equal the real gateway's.
async fn replay_error(capture: &Capture, conn: u64, params: Value) {
    let gw = start(|_| {}).await;
    let mut c = Client::open(gw.addr).await;
    let res = c.connect(params).await;
    let expected = &capture.responses(conn)[0];
    assert_eq!(res["ok"], false);
    assert_eq!(res["error"], expected["error"], "conn {conn}");
    assert_eq!(
        c.expect_close().await,
        capture.server_close(conn),
        "conn {conn}"
    );
}

#[tokio::test]
async fn challenge_comes_first_without_seq() {
    let gw = start(|_| {}).await;
    let c = Client::open(gw.addr).await;
    let ch = &c.challenge;
    assert_eq!(ch["type"], "event");
    assert!(ch.get("seq").is_none());
    assert_eq!(ch["payload"]["nonce"].as_str().unwrap().len(), 36);
    assert!(ch["payload"]["ts"].is_i64());
}

#[tokio::test]
async fn hello_ok_for_the_real_cli_connect() {
    let capture = Capture::load("handshake-errors.jsonl");
    let gw = start(|_| {}).await;
    let mut c = Client::open(gw.addr).await;
    let mut params = cli_params(&["operator.read"]);
    params["client"]["instanceId"] = json!("1317cd48-14db-4505-8306-168b2db9ba39");
    let res = c.connect(params).await;
    assert_eq!(res["type"], "res");
    assert_eq!(res["id"], "c1");
    assert_eq!(res["ok"], true);
    let hello = &res["payload"];
    assert_eq!(hello["type"], "hello-ok");
    assert_eq!(hello["protocol"], 4);
    assert_eq!(
        hello["auth"],
        json!({"method":"token","role":"operator","scopes":["operator.read"]})
    );
    assert_eq!(
        hello["policy"],
        json!({"maxPayload":26214400,"maxBufferedBytes":52428800,"tickIntervalMs":30000})
    );
    assert_eq!(hello["server"]["version"], "2026.9.6");
    assert!(
        hello["server"]["connId"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    let methods: Vec<&str> = hello["features"]["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    for m in [
        "health",
        "status",
        "system-presence",
        "config.get",
        "last-heartbeat",
        "channels.status",
    ] {
        assert!(methods.contains(&m), "{m} advertised");
    }
    let snap = &hello["snapshot"];
    assert_eq!(snap["presence"][0]["mode"], "gateway");
    assert_eq!(snap["health"]["ok"], true);
    assert!(snap["stateVersion"]["presence"].is_u64());
    assert!(snap["uptimeMs"].is_u64());
    // Only admins see paths.
    assert!(snap.get("stateDir").is_none());
    // The keys hello-ok may carry are the closed schema's.
    for k in hello.as_object().unwrap().keys() {
        assert!(
            [
                "type", "protocol", "server", "features", "snapshot", "auth", "policy"
            ]
            .contains(&k.as_str()),
            "{k}"
        );
    }
    let _ = capture;
}

#[tokio::test]
async fn protocol_mismatch_matches_the_capture() {
    let cap = Capture::load("handshake-errors.jsonl");
    replay_error(&cap, 3, cap.connect_params(3)).await;
    replay_error(&cap, 4, cap.connect_params(4)).await;
}

#[tokio::test]
async fn wrong_token_matches_the_capture() {
    let cap = Capture::load("handshake-errors.jsonl");
    replay_error(&cap, 5, cap.connect_params(5)).await;
}

#[tokio::test]
async fn no_credentials_and_no_device_matches_the_capture() {
    let cap = Capture::load("handshake-errors.jsonl");
    replay_error(&cap, 6, cap.connect_params(6)).await;
}

#[tokio::test]
async fn missing_client_and_bad_role_match_the_capture() {
    let cap = Capture::load("handshake-errors.jsonl");
    let gw = start(|_| {}).await;
    let mut c = Client::open(gw.addr).await;
    c.send(json!({"type":"req","id":"x2","method":"connect","params":{"minProtocol":4,"maxProtocol":4}})).await;
    let res = c.recv_res().await;
    assert_eq!(res, cap.responses(9)[0]);
    assert_eq!(c.expect_close().await, cap.server_close(9));
    replay_error(&cap, 10, cap.connect_params(10)).await;
}

/// A pre-auth frame fits thousands of array items: an array over its `maxItems` is refused for
/// that bound alone, before its items are checked or compared with each other.
#[tokio::test]
async fn an_array_over_its_max_items_is_refused_for_that_alone() {
    let gw = start(|_| {}).await;
    let mut c = Client::open(gw.addr).await;
    let mut p = cli_params(&["operator.read"]);
    p["workerRuns"] = json!({"bundleHash": "0".repeat(64), "openclawVersion": "2026.9.6",
        "protocolFeatures": vec!["x"; 12_000]});
    let res = c.connect(p).await;
    assert_eq!(
        res["error"]["message"],
        "invalid connect params: at /workerRuns/protocolFeatures: must not have more than 64 items",
        "{res}"
    );
    assert_eq!(c.expect_close().await.0, 1008);
}

#[tokio::test]
async fn first_request_must_be_connect() {
    let cap = Capture::load("handshake-errors.jsonl");
    let gw = start(|_| {}).await;
    let mut c = Client::open(gw.addr).await;
    c.send(json!({"type":"req","id":"x1","method":"health","params":{}}))
        .await;
    assert_eq!(c.recv_res().await, cap.responses(7)[0]);
    assert_eq!(c.expect_close().await, cap.server_close(7));
}

#[tokio::test]
async fn invalid_json_closes_1000_without_answer() {
    let cap = Capture::load("handshake-errors.jsonl");
    let gw = start(|_| {}).await;
    let mut c = Client::open(gw.addr).await;
    c.send_raw("hello").await;
    assert_eq!(c.expect_close().await, cap.server_close(8));
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

#[tokio::test]
async fn device_proof_errors_match_the_capture() {
    let cap = Capture::load("handshake-errors.jsonl");
    // conn 11: nonce mismatch; 12: stale signature; 13: id mismatch; 14: bad signature.
    type MakeParams = Box<dyn Fn(Value, &str) -> Value>;
    let cases: Vec<(u64, MakeParams)> = vec![
        (
            11,
            Box::new(|p, _n| sign(p, &key(1), "not-the-nonce", now_ms())),
        ),
        (12, Box::new(|p, n| sign(p, &key(2), n, 1000))),
        (
            13,
            Box::new(|p, n| {
                let mut p = sign(p, &key(3), n, now_ms());
                p["device"]["id"] = json!("0".repeat(64));
                p
            }),
        ),
        (
            14,
            Box::new(|p, n| {
                let mut p = sign(p, &key(4), n, now_ms());
                p["device"]["signature"] = json!("AAAA");
                p
            }),
        ),
    ];
    for (conn, make) in cases {
        let gw = start(|_| {}).await;
        let mut c = Client::open(gw.addr).await;
        let nonce = c.nonce();
        let res = c
            .connect(make(cli_params(&["operator.read"]), &nonce))
            .await;
        assert_eq!(res["error"], cap.responses(conn)[0]["error"], "conn {conn}");
        assert_eq!(
            c.expect_close().await,
            cap.server_close(conn),
            "conn {conn}"
        );
    }
    // conn 15: an empty nonce fails the schema.
    let gw = start(|_| {}).await;
    let mut c = Client::open(gw.addr).await;
    let mut p = sign(
        cli_params(&["operator.read"]),
        &key(5),
        &c.nonce(),
        now_ms(),
    );
    p["device"]["nonce"] = json!("");
    let res = c.connect(p).await;
    assert_eq!(res["error"], cap.responses(15)[0]["error"]);
    assert_eq!(c.expect_close().await, cap.server_close(15));
}

#[tokio::test]
async fn signed_device_on_loopback_is_paired_silently_with_its_scopes() {
    let gw = start(|_| {}).await;
    let mut c = Client::open(gw.addr).await;
    let nonce = c.nonce();
    let res = c
        .connect(sign(
            cli_params(&["operator.read", "operator.write"]),
            &key(9),
            &nonce,
            now_ms(),
        ))
        .await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(
        res["payload"]["auth"]["scopes"],
        json!(["operator.read", "operator.write"])
    );
    assert_eq!(res["payload"]["auth"]["method"], "token");
}

#[tokio::test]
async fn probes_and_other_deviceless_clients_lose_their_scopes() {
    let gw = start(|_| {}).await;
    let mut c = Client::open(gw.addr).await;
    let mut p = cli_params(&["operator.read"]);
    p["client"]["mode"] = json!("probe");
    p["minProtocol"] = json!(3);
    let res = c.connect(p).await;
    assert_eq!(res["payload"]["auth"]["scopes"], json!([]));
    assert_eq!(res["payload"]["snapshot"]["presence"], json!([]));
    let r = c.call("2", "status", json!({})).await;
    assert_eq!(
        r["error"],
        json!({"code":"FORBIDDEN","message":"missing scope: operator.read","details":{"code":"MISSING_SCOPE","missingScope":"operator.read","requiredScopes":["operator.read"]}})
    );

    // gateway-client/backend keeps them on loopback; a UI client without a device does not.
    let mut c = Client::open(gw.addr).await;
    let mut p = cli_params(&["operator.read"]);
    p["client"] = json!({"id":"gateway-client","displayName":"gateway:health","version":"2026.9.6","platform":"linux","mode":"backend"});
    assert_eq!(
        c.connect(p).await["payload"]["auth"]["scopes"],
        json!(["operator.read"])
    );
    let mut c = Client::open(gw.addr).await;
    let mut p = cli_params(&["operator.read"]);
    p["client"] = json!({"id":"openclaw-tui","version":"2026.9.6","platform":"linux","mode":"ui"});
    assert_eq!(c.connect(p).await["payload"]["auth"]["scopes"], json!([]));
}

#[tokio::test]
async fn password_mode_accepts_the_token_field() {
    let gw = start(|o| {
        o.auth_mode = clawgate_gateway::AuthMode::Password;
        o.token = None;
        o.password = Some(clawgate_config::Secret::new("pw"));
    })
    .await;
    let mut c = Client::open(gw.addr).await;
    let mut p = cli_params(&["operator.read"]);
    p["auth"] = json!({"token":"pw"});
    let res = c.connect(p).await;
    assert_eq!(res["payload"]["auth"]["method"], "password");
    let mut c = Client::open(gw.addr).await;
    let mut p = cli_params(&["operator.read"]);
    p["auth"] = json!({"password":"nope"});
    let res = c.connect(p).await;
    assert_eq!(res["error"]["details"]["code"], "AUTH_PASSWORD_MISMATCH");
    assert_eq!(
        res["error"]["message"],
        "unauthorized: gateway password mismatch (use this gateway's gateway.auth.password)"
    );
}

#[tokio::test]
async fn none_mode_requires_a_device() {
    let gw = start(|o| {
        o.auth_mode = clawgate_gateway::AuthMode::None;
        o.token = None;
    })
    .await;
    let mut c = Client::open(gw.addr).await;
    let mut p = cli_params(&["operator.read"]);
    p["auth"] = json!({});
    let res = c.connect(p.clone()).await;
    assert_eq!(res["error"]["details"]["code"], "DEVICE_IDENTITY_REQUIRED");
    let mut c = Client::open(gw.addr).await;
    let nonce = c.nonce();
    let res = c.connect(sign(p, &key(7), &nonce, now_ms())).await;
    assert_eq!(res["payload"]["auth"]["method"], "none");
    assert_eq!(res["payload"]["auth"]["scopes"], json!(["operator.read"]));
}

#[tokio::test]
async fn legacy_v3_node_and_probe_negotiate() {
    let gw = start(|_| {}).await;
    let mut c = Client::open(gw.addr).await;
    let nonce = c.nonce();
    let p = json!({"minProtocol":3,"maxProtocol":3,"client":{"id":"node-host","version":"2026.9.6","platform":"linux","mode":"node"},
        "role":"node","scopes":[],"caps":[],"auth":{"token":TOKEN}});
    let res = c.connect(sign(p, &key(8), &nonce, now_ms())).await;
    // The real gateway answers 4 here too.
    assert_eq!(res["payload"]["protocol"], 4, "{res}");
    assert_eq!(res["payload"]["auth"]["role"], "node");
    assert_eq!(res["payload"]["snapshot"]["presence"], json!([]));
}

#[tokio::test]
async fn a_blank_nonce_is_required_and_a_replayed_proof_is_refused() {
    let gw = start(|_| {}).await;
    let mut c = Client::open(gw.addr).await;
    let res = c
        .connect(sign(
            cli_params(&["operator.read"]),
            &key(11),
            " ",
            now_ms(),
        ))
        .await;
    assert_eq!(
        res["error"],
        json!({"code":"INVALID_REQUEST","message":"device nonce required","details":{"code":"DEVICE_AUTH_NONCE_REQUIRED","reason":"device-nonce-missing"}})
    );
    assert_eq!(
        c.expect_close().await,
        (1008, "device nonce required".into())
    );

    // A valid proof captured from one connection does not open another.
    let mut first = Client::open(gw.addr).await;
    let proof = sign(
        cli_params(&["operator.read"]),
        &key(12),
        &first.nonce(),
        now_ms(),
    );
    assert_eq!(first.connect(proof.clone()).await["ok"], true);
    let mut replay = Client::open(gw.addr).await;
    let res = replay.connect(proof).await;
    assert_eq!(
        res["error"]["details"]["code"],
        "DEVICE_AUTH_NONCE_MISMATCH"
    );
    // Bad input on one socket leaves the others working.
    assert_eq!(first.call("h", "health", json!({})).await["ok"], true);
}

/// Every advertised method reaches a handler: none answers "unknown method", whatever it then
/// says about the empty params (nodes' methods refuse an operator by role, before any handler).
#[tokio::test]
async fn every_advertised_method_is_dispatched() {
    let gw = start(|_| {}).await;
    let mut c = Client::open(gw.addr).await;
    let res = c
        .connect(cli_params(&[
            "operator.admin",
            "operator.read",
            "operator.write",
            "operator.pairing",
        ]))
        .await;
    let methods = res["payload"]["features"]["methods"]
        .as_array()
        .unwrap()
        .clone();
    assert!(methods.len() >= 30, "{methods:?}");
    for (i, method) in methods.iter().enumerate() {
        let method = method.as_str().unwrap();
        let r = c.call(&format!("m{i}"), method, json!({})).await;
        let message = r["error"]["message"].as_str().unwrap_or_default();
        assert!(!message.starts_with("unknown method"), "{method}: {r}");
    }
    let r = c.call("x", "no.such.method", json!({})).await;
    assert_eq!(r["error"]["message"], "unknown method: no.such.method");
}
