//! The client against tiny in-test servers that script the gateway's side frame by frame.

use clawgate_client::{
    Client, ClientError, ClientInfo, ConnectOptions, DeviceIdentity, RpcError, client_info,
};
use clawgate_protocol::device::{self, PayloadVersion, SignedFields};
use clawgate_testkit::fake_gateway::{FakeConfig, FakeGateway, Reply};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

type Ws = WebSocketStream<TcpStream>;

/// Serves one connection with `script`; returns the URL.
async fn serve_one<F, Fut>(script: F) -> String
where
    F: FnOnce(Ws) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        script(ws).await;
    });
    url
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

/// The next text frame as JSON; `None` once the client closed.
async fn recv(ws: &mut Ws) -> Option<Value> {
    loop {
        match ws.next().await? {
            Ok(Message::Text(t)) => return Some(serde_json::from_str(t.as_str()).unwrap()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

const NONCE: &str = "872ead67-ae7a-4fc9-83f9-b57cdb87d403";
const TS: i64 = 1795513456318;

async fn challenge(ws: &mut Ws) {
    send(ws, json!({"type":"event","event":"connect.challenge","payload":{"nonce":NONCE,"ts":TS,"capabilities":["model-catalog-snapshot"]}})).await;
}

fn hello(scopes: Value) -> Value {
    json!({"type":"hello-ok","protocol":4,
        "server":{"version":"2026.9.6","connId":"conn-1"},
        "features":{"methods":["health"],"events":["tick"]},
        "snapshot":{"presence":[],"health":{},"stateVersion":{"presence":0,"health":0},"uptimeMs":5},
        "auth":{"method":"token","role":"operator","scopes":scopes},
        "policy":{"maxPayload":26214400,"maxBufferedBytes":52428800,"tickIntervalMs":30000}})
}

/// Challenge, read connect, answer hello-ok with the requested scopes; returns the connect
/// frame.
async fn handshake(ws: &mut Ws) -> Value {
    challenge(ws).await;
    let connect = recv(ws).await.expect("connect frame");
    let scopes = connect["params"]["scopes"].clone();
    send(
        ws,
        json!({"type":"res","id":connect["id"],"ok":true,"payload":hello(scopes)}),
    )
    .await;
    connect
}

fn cli_info() -> ClientInfo {
    ClientInfo {
        id: "cli".into(),
        version: "2026.9.6".into(),
        platform: "linux".into(),
        mode: "cli".into(),
        device_family: Some("Linux".into()),
        instance_id: Some("1317cd48-14db-4505-8306-168b2db9ba39".into()),
        ..ClientInfo::default()
    }
}

fn opts(url: &str) -> ConnectOptions<'static> {
    let mut o = ConnectOptions::new(url, cli_info());
    o.token = Some("t1".into());
    o.scopes = vec!["operator.read".into()];
    o.timeout = Duration::from_secs(5);
    o
}

#[tokio::test]
async fn connect_frame_matches_the_real_cli() {
    let (tx, rx) = oneshot::channel();
    let url = serve_one(|mut ws| async move {
        let connect = handshake(&mut ws).await;
        tx.send(connect).unwrap();
        let _ = recv(&mut ws).await;
    })
    .await;
    let (client, hello) = Client::connect(opts(&url)).await.unwrap();
    let connect = rx.await.unwrap();
    let id = connect["id"].as_str().unwrap().to_owned();
    let (n, uuid) = id.split_once(':').unwrap();
    assert_eq!(n, "1");
    assert!(uuid::Uuid::parse_str(uuid).is_ok(), "{id}");
    // The frame recorded from the real `openclaw gateway call health`.
    let expected = json!({"type":"req","id":id,"method":"connect","params":{"minProtocol":4,"maxProtocol":4,
        "client":{"id":"cli","version":"2026.9.6","platform":"linux","deviceFamily":"Linux","mode":"cli","instanceId":"1317cd48-14db-4505-8306-168b2db9ba39"},
        "caps":[],"auth":{"token":"t1"},"role":"operator","scopes":["operator.read"]}});
    assert_eq!(connect, expected);
    // Same key order as the real CLI, too.
    assert_eq!(
        serde_json::to_string(&connect["params"]).unwrap(),
        serde_json::to_string(&expected["params"]).unwrap()
    );
    assert_eq!(hello.server_version(), Some("2026.9.6"));
    assert_eq!(hello.conn_id(), Some("conn-1"));
    assert_eq!(hello.scopes(), vec!["operator.read".to_string()]);
    assert_eq!(hello.auth_method(), Some("token"));
    assert_eq!(hello.protocol(), Some(4));
    assert_eq!(hello.tick_interval_ms(), Some(30000));
    client.close().await;
}

#[tokio::test]
async fn device_proof_signs_the_challenge() {
    let identity = DeviceIdentity::generate();
    let (tx, rx) = oneshot::channel();
    let url = serve_one(|mut ws| async move {
        let connect = handshake(&mut ws).await;
        tx.send(connect).unwrap();
        let _ = recv(&mut ws).await;
    })
    .await;
    let mut o = opts(&url);
    o.device = Some(&identity);
    o.scopes = vec!["operator.read".into(), "operator.write".into()];
    let (client, _) = Client::connect(o).await.unwrap();
    let params = rx.await.unwrap()["params"].clone();
    let dev = &params["device"];
    assert_eq!(dev["id"], identity.id());
    assert_eq!(dev["publicKey"], identity.public_key());
    assert_eq!(dev["signedAt"], TS);
    assert_eq!(dev["nonce"], NONCE);
    let key = device::decode_public_key(dev["publicKey"].as_str().unwrap()).unwrap();
    assert_eq!(device::device_id(&key), identity.id());
    let scopes = vec!["operator.read".to_string(), "operator.write".to_string()];
    let fields = SignedFields {
        device_id: identity.id(),
        client_id: "cli",
        client_mode: "cli",
        role: "operator",
        scopes: &scopes,
        signed_at_ms: TS,
        token: "t1",
        nonce: NONCE,
        platform: Some("linux"),
        device_family: Some("Linux"),
    };
    assert_eq!(
        device::verify(&key, dev["signature"].as_str().unwrap(), &fields),
        Some(PayloadVersion::V3)
    );
    let wrong = SignedFields {
        nonce: "other",
        ..fields
    };
    assert_eq!(
        device::verify(&key, dev["signature"].as_str().unwrap(), &wrong),
        None
    );
    client.close().await;
}

#[tokio::test]
async fn out_of_order_answers_reach_their_callers() {
    let url = serve_one(|mut ws| async move {
        handshake(&mut ws).await;
        let mut reqs = Vec::new();
        for _ in 0..3 {
            reqs.push(recv(&mut ws).await.unwrap());
        }
        // Ids are "<n>:<uuid>", n counting on from the connect's 1.
        let mut ns: Vec<u64> = reqs
            .iter()
            .map(|r| r["id"].as_str().unwrap().split(':').next().unwrap().parse().unwrap())
            .collect();
        ns.sort();
        assert_eq!(ns, vec![2, 3, 4]);
        for r in reqs.iter().rev() {
            send(&mut ws, json!({"type":"res","id":r["id"],"ok":true,"payload":{"echo":r["method"],"params":r["params"]}})).await;
        }
        let _ = recv(&mut ws).await;
    })
    .await;
    let (client, _) = Client::connect(opts(&url)).await.unwrap();
    let (a, b, c) = tokio::join!(
        client.request("a", Some(json!({"n":1}))),
        client.request("b", None),
        client.request("c", Some(json!({}))),
    );
    assert_eq!(a.unwrap(), json!({"echo":"a","params":{"n":1}}));
    assert_eq!(b.unwrap(), json!({"echo":"b","params":null}));
    assert_eq!(c.unwrap(), json!({"echo":"c","params":{}}));
    client.close().await;
}

#[tokio::test]
async fn expect_final_skips_the_accepted_answer() {
    let url = serve_one(|mut ws| async move {
        handshake(&mut ws).await;
        for _ in 0..2 {
            let r = recv(&mut ws).await.unwrap();
            send(&mut ws, json!({"type":"res","id":r["id"],"ok":true,"payload":{"runId":"r1","status":"accepted"}})).await;
            send(&mut ws, json!({"type":"event","event":"agent","payload":{"runId":"r1"},"seq":1})).await;
            send(&mut ws, json!({"type":"res","id":r["id"],"ok":true,"payload":{"runId":"r1","status":"ok","summary":"completed"}})).await;
        }
        let r = recv(&mut ws).await.unwrap();
        send(&mut ws, json!({"type":"res","id":r["id"],"ok":true,"payload":{"runId":"r2","status":"accepted"}})).await;
        send(&mut ws, json!({"type":"res","id":r["id"],"ok":false,"payload":{"runId":"r2","status":"error","summary":"boom"},
            "error":{"code":"UNAVAILABLE","message":"boom"}})).await;
        let _ = recv(&mut ws).await;
    })
    .await;
    let (mut client, _) = Client::connect(opts(&url)).await.unwrap();
    let fin = client
        .request_expect_final("agent", Some(json!({"message":"hi"})))
        .await
        .unwrap();
    assert_eq!(fin["status"], "ok");
    // Without expect-final, the interim answer is the result (the final is ignored).
    let interim = client.request("agent", None).await.unwrap();
    assert_eq!(interim["status"], "accepted");
    match client.request_expect_final("agent", None).await {
        Err(RpcError::Gateway { error, payload }) => {
            assert_eq!(error.code, "UNAVAILABLE");
            assert_eq!(payload.unwrap()["status"], "error");
        }
        other => panic!("unexpected {other:?}"),
    }
    let ev = client.events().recv().await.unwrap();
    assert_eq!(ev.event, "agent");
    assert_eq!(ev.seq, Some(1));
    client.close().await;
}

#[tokio::test]
async fn error_answers_keep_the_wire_shape() {
    let url = serve_one(|mut ws| async move {
        handshake(&mut ws).await;
        let r = recv(&mut ws).await.unwrap();
        send(&mut ws, json!({"type":"res","id":r["id"],"ok":false,"error":{"code":"FORBIDDEN","message":"missing scope: operator.admin",
            "details":{"code":"MISSING_SCOPE","missingScope":"operator.admin","requiredScopes":["operator.admin"]}}})).await;
        let r = recv(&mut ws).await.unwrap();
        send(&mut ws, json!({"type":"res","id":r["id"],"ok":false,"error":{"code":"UNAVAILABLE","message":"later","retryable":true,"retryAfterMs":500}})).await;
        let _ = recv(&mut ws).await;
    })
    .await;
    let (client, _) = Client::connect(opts(&url)).await.unwrap();
    let e = client.request("wizard.start", None).await.unwrap_err();
    let w = e.wire().unwrap();
    assert_eq!(w.code, "FORBIDDEN");
    assert_eq!(w.message, "missing scope: operator.admin");
    assert_eq!(w.detail_code(), Some("MISSING_SCOPE"));
    assert_eq!(w.missing_scope(), Some("operator.admin"));
    let e = client.request("x", None).await.unwrap_err();
    let w = e.wire().unwrap();
    assert_eq!(
        (w.retryable, w.retry_after_ms, w.missing_scope()),
        (Some(true), Some(500), None)
    );
    assert_eq!(
        serde_json::to_value(w).unwrap(),
        json!({"code":"UNAVAILABLE","message":"later","retryable":true,"retryAfterMs":500})
    );
    client.close().await;
}

#[tokio::test]
async fn a_close_mid_call_fails_every_pending_request() {
    let url = serve_one(|mut ws| async move {
        handshake(&mut ws).await;
        recv(&mut ws).await.unwrap();
        recv(&mut ws).await.unwrap();
        send(
            &mut ws,
            json!({"type":"event","event":"shutdown","payload":{"reason":"gateway stopping"},"seq":1}),
        )
        .await;
        ws.send(Message::Close(Some(CloseFrame {
            code: 1012.into(),
            reason: "service restart".into(),
        })))
        .await
        .unwrap();
        while ws.next().await.is_some() {}
    })
    .await;
    let (client, _) = Client::connect(opts(&url)).await.unwrap();
    let (a, b) = tokio::time::timeout(Duration::from_secs(5), async {
        tokio::join!(
            client.request("health", None),
            client.request("status", None)
        )
    })
    .await
    .expect("pending requests must not hang");
    for r in [a, b] {
        match r {
            Err(RpcError::Closed { code, reason }) => {
                assert_eq!((code, reason.as_str()), (1012, "service restart"))
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // Later requests fail at once.
    assert!(matches!(
        client.request("health", None).await,
        Err(RpcError::Closed { code: 1012, .. })
    ));
    assert_eq!(client.close_info(), Some((1012, "service restart".into())));
    client.close().await;
}

#[tokio::test]
async fn a_dropped_connection_fails_pending_requests() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        handshake(&mut ws).await;
        recv(&mut ws).await.unwrap();
        drop(ws); // no close frame: the TCP connection just goes away
    });
    let (client, _) = Client::connect(opts(&url)).await.unwrap();
    let r = tokio::time::timeout(Duration::from_secs(5), client.request("health", None))
        .await
        .expect("no hang");
    assert!(matches!(r, Err(RpcError::Closed { .. })), "{r:?}");
}

#[tokio::test]
async fn rejected_connect_reports_code_detail_and_close() {
    let url = serve_one(|mut ws| async move {
        challenge(&mut ws).await;
        let c = recv(&mut ws).await.unwrap();
        send(&mut ws, json!({"type":"res","id":c["id"],"ok":false,"error":{"code":"INVALID_REQUEST",
            "message":"unauthorized: gateway token mismatch (use this gateway's gateway.auth.token or pair the device)",
            "details":{"code":"AUTH_TOKEN_MISMATCH","authReason":"token_mismatch","canRetryWithDeviceToken":false,"recommendedNextStep":"update_auth_credentials"}}})).await;
        ws.send(Message::Close(Some(CloseFrame { code: 1008.into(), reason: "unauthorized".into() })))
            .await
            .unwrap();
        while ws.next().await.is_some() {}
    })
    .await;
    match Client::connect(opts(&url)).await {
        Err(ClientError::Handshake {
            code,
            detail_code,
            message,
            close_code,
            error,
        }) => {
            assert_eq!(code, "INVALID_REQUEST");
            assert_eq!(detail_code.as_deref(), Some("AUTH_TOKEN_MISMATCH"));
            assert!(message.starts_with("unauthorized: gateway token mismatch"));
            assert_eq!(close_code, Some(1008));
            assert_eq!(
                error.detail_str("recommendedNextStep"),
                Some("update_auth_credentials")
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn protocol_mismatch_is_a_handshake_error_with_close_1002() {
    let url = serve_one(|mut ws| async move {
        challenge(&mut ws).await;
        let c = recv(&mut ws).await.unwrap();
        send(&mut ws, json!({"type":"res","id":c["id"],"ok":false,"error":{"code":"INVALID_REQUEST","message":"protocol mismatch",
            "details":{"code":"PROTOCOL_MISMATCH","clientMinProtocol":4,"clientMaxProtocol":4,"expectedProtocol":5,"minimumProbeProtocol":3}}})).await;
        ws.send(Message::Close(Some(CloseFrame { code: 1002.into(), reason: "protocol mismatch".into() })))
            .await
            .unwrap();
        while ws.next().await.is_some() {}
    })
    .await;
    let e = Client::connect(opts(&url)).await.unwrap_err();
    assert!(
        matches!(&e, ClientError::Handshake { detail_code: Some(d), close_code: Some(1002), .. } if d == "PROTOCOL_MISMATCH"),
        "{e:?}"
    );
}

#[tokio::test]
async fn refused_port_is_unreachable_and_names_the_url() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    drop(listener);
    match Client::connect(opts(&url)).await {
        Err(ClientError::Unreachable {
            url: u, timed_out, ..
        }) => {
            assert_eq!(u, url);
            assert!(!timed_out);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn missing_challenge_times_out() {
    let url = serve_one(|mut ws| async move {
        // A WebSocket server that never speaks.
        let _ = ws.next().await;
    })
    .await;
    let mut o = opts(&url);
    o.timeout = Duration::from_millis(300);
    let started = std::time::Instant::now();
    let e = Client::connect(o).await.unwrap_err();
    assert!(
        matches!(&e, ClientError::Unreachable { timed_out: true, reason, .. } if reason.contains("connect.challenge")),
        "{e:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn bad_urls_are_rejected_before_any_io() {
    let e = Client::connect(opts("http://127.0.0.1:1"))
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::InvalidUrl { .. }), "{e:?}");
    let mut o = opts("ws://127.0.0.1:1");
    o.tls.fingerprint = Some("ab".repeat(32));
    let e = Client::connect(o).await.unwrap_err();
    assert!(matches!(e, ClientError::InvalidUrl { .. }), "{e:?}");
}

#[tokio::test]
async fn close_sends_1000() {
    let (tx, rx) = oneshot::channel();
    let url = serve_one(|mut ws| async move {
        handshake(&mut ws).await;
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(f))) => {
                    tx.send(f.map(|f| u16::from(f.code))).unwrap();
                    break;
                }
                Some(Ok(_)) => {}
                _ => break,
            }
        }
    })
    .await;
    let (client, _) = Client::connect(opts(&url)).await.unwrap();
    client.close().await;
    assert_eq!(rx.await.unwrap(), Some(1000));
}

#[tokio::test]
async fn the_fake_gateway_enforces_tokens_and_scopes() {
    let gw = FakeGateway::start(FakeConfig {
        token: Some("t1".into()),
        handler: Arc::new(|call| match call.method.as_str() {
            "agent" => Reply::AcceptedThen(json!({"status":"ok"})),
            _ => clawgate_testkit::fake_gateway::default_handler(call),
        }),
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let mut o = ConnectOptions::new(gw.url(), client_info("cli", "cli"));
    o.token = Some("t1".into());
    o.scopes = vec!["operator.read".into()];
    let (client, hello) = Client::connect(o.clone()).await.unwrap();
    assert_eq!(hello.scopes(), vec!["operator.read".to_string()]);
    assert_eq!(client.request("health", None).await.unwrap()["ok"], true);
    let e = client.request("wizard.start", None).await.unwrap_err();
    assert_eq!(e.wire().unwrap().missing_scope(), Some("operator.admin"));
    client.close().await;
    assert_eq!(gw.connects().len(), 1);
    assert_eq!(gw.connects()[0]["client"]["mode"], "cli");

    o.token = Some("nope".into());
    let e = Client::connect(o).await.unwrap_err();
    assert!(
        matches!(&e, ClientError::Handshake { detail_code: Some(d), close_code: Some(1008), .. } if d == "AUTH_TOKEN_MISMATCH"),
        "{e:?}"
    );
}

#[test]
fn device_identity_round_trips_through_a_private_file() {
    let dir = std::env::temp_dir().join(format!("clawgate-client-test-{}", uuid::Uuid::new_v4()));
    let path = dir.join("identity").join("device.json");
    let id = DeviceIdentity::load_or_generate(&path).unwrap();
    let again = DeviceIdentity::load_or_generate(&path).unwrap();
    assert_eq!(id.id(), again.id());
    assert_eq!(id.public_key(), again.public_key());
    assert_eq!(id.id().len(), 64);
    assert_eq!(id.public_key().len(), 43);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    std::fs::write(
        &path,
        r#"{"version":1,"deviceId":"x","publicKey":"y","privateKey":"z"}"#,
    )
    .unwrap();
    assert!(DeviceIdentity::load(&path).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A node's connect: its caps, commands and `pathEnv` in the real node host's key order, and
/// a proof signed for role `node` with no scopes.
#[test]
fn a_node_connect_declares_its_surface_in_the_real_order() {
    let device = DeviceIdentity::generate();
    let mut o = ConnectOptions::new("ws://127.0.0.1:1", cli_info());
    o.role = "node".into();
    o.caps = vec!["system".into()];
    o.commands = vec!["system.run".into(), "system.which".into()];
    o.path_env = Some("/usr/bin:/bin".into());
    o.token = Some("t1".into());
    o.device = Some(&device);
    let p = o.connect_params("nonce-1", 1795513712676);
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
    assert_eq!(p["pathEnv"], "/usr/bin:/bin");
    assert_eq!(p["commands"], json!(["system.run", "system.which"]));
    let fields = SignedFields {
        device_id: device.id(),
        client_id: "cli",
        client_mode: "cli",
        role: "node",
        scopes: &[],
        signed_at_ms: 1795513712676,
        token: "t1",
        nonce: "nonce-1",
        platform: Some("linux"),
        device_family: Some("Linux"),
    };
    assert_eq!(
        device::verify(
            &device.signing_key().verifying_key(),
            p["device"]["signature"].as_str().unwrap(),
            &fields
        ),
        Some(PayloadVersion::V3)
    );
}

/// With the tick watchdog, a gateway that says nothing for two tick intervals is given up:
/// close 4000 "tick timeout", the events end, and requests fail as closed.
#[tokio::test]
async fn the_tick_watchdog_gives_up_on_a_silent_gateway() {
    let (tx, rx) = oneshot::channel();
    let url = serve_one(|mut ws| async move {
        challenge(&mut ws).await;
        let connect = recv(&mut ws).await.unwrap();
        let mut h = hello(json!([]));
        h["policy"]["tickIntervalMs"] = json!(150);
        send(
            &mut ws,
            json!({"type":"res","id":connect["id"],"ok":true,"payload":h}),
        )
        .await;
        let close = loop {
            match ws.next().await {
                Some(Ok(Message::Close(f))) => break f,
                Some(Ok(_)) => {}
                other => panic!("{other:?}"),
            }
        };
        tx.send(close.map(|f| (u16::from(f.code), f.reason.to_string())))
            .unwrap();
    })
    .await;
    let mut o = opts(&url);
    o.tick_watchdog = true;
    let started = tokio::time::Instant::now();
    let (mut client, _) = Client::connect(o).await.unwrap();
    let rpc = client.requester();
    assert!(
        tokio::time::timeout(Duration::from_secs(5), client.events().recv())
            .await
            .unwrap()
            .is_none()
    );
    let silent_for = started.elapsed();
    assert!(
        silent_for >= Duration::from_millis(300) && silent_for < Duration::from_secs(3),
        "{silent_for:?}"
    );
    assert_eq!(client.close_info(), Some((4000, "tick timeout".into())));
    assert_eq!(rx.await.unwrap(), Some((4000, "tick timeout".into())));
    let r = rpc.request("health", None).await;
    assert!(
        matches!(r, Err(RpcError::Closed { code: 4000, .. })),
        "{r:?}"
    );
}

/// Lossless events: a consumer that falls far behind still gets every event, in order; the
/// reader waits for it instead of dropping.
#[tokio::test]
async fn lossless_events_wait_for_a_slow_consumer() {
    const N: u64 = 3000;
    let (sent_tx, sent_rx) = oneshot::channel();
    let url = serve_one(|mut ws| async move {
        handshake(&mut ws).await;
        for seq in 0..N {
            send(
                &mut ws,
                json!({"type":"event","event":"node.invoke.request","payload":{"n":seq}}),
            )
            .await;
        }
        let _ = sent_tx.send(());
        let _ = recv(&mut ws).await;
    })
    .await;
    let mut o = opts(&url);
    o.lossless_events = true;
    let (mut client, _) = Client::connect(o).await.unwrap();
    // Nothing is read until the gateway has written everything.
    sent_rx.await.unwrap();
    for n in 0..N {
        let e = tokio::time::timeout(Duration::from_secs(5), client.events().recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(e.payload["n"], n);
    }
    assert_eq!(client.dropped_events(), 0);
    client.close().await;
}

/// A requester outlives nothing: once the client is closed, its requests fail as closed.
#[tokio::test]
async fn a_requester_calls_beside_the_event_reader() {
    let url = serve_one(|mut ws| async move {
        handshake(&mut ws).await;
        let req = recv(&mut ws).await.unwrap();
        send(
            &mut ws,
            json!({"type":"res","id":req["id"],"ok":true,"payload":{"ok":true}}),
        )
        .await;
        let _ = recv(&mut ws).await;
    })
    .await;
    let (client, _) = Client::connect(opts(&url)).await.unwrap();
    let rpc = client.requester();
    let r = tokio::spawn(async move { rpc.request("health", None).await.map(|_| rpc) });
    let rpc = r.await.unwrap().unwrap();
    client.close_with(1000, "done").await;
    assert!(matches!(
        rpc.request("health", None).await,
        Err(RpcError::Closed { .. })
    ));
}
