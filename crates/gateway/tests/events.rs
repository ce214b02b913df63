//! Broadcasts under paused time: tick and per-connection seq, presence with stateVersion, WS
//! pings, and shutdown. Sockets are in-memory pipes so tokio's clock can jump.

mod common;

use clawgate_config::Secret;
use clawgate_gateway::{AuthMode, Gateway, GatewayOptions, PeerInfo};
use common::{TOKEN, cli_params};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::DuplexStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_util::sync::CancellationToken;

struct Harness {
    gw: Arc<Gateway>,
    shutdown: CancellationToken,
    serve: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

async fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let mut o = GatewayOptions::new(AuthMode::Token, dir.path().join("state"));
    o.token = Some(Secret::new(TOKEN));
    let gw = Gateway::new(o).unwrap();
    let shutdown = CancellationToken::new();
    // No listeners: this runs the timers and the shutdown sequence only.
    let serve = tokio::spawn(clawgate_gateway::serve(
        vec![],
        gw.clone(),
        shutdown.clone(),
    ));
    Harness {
        gw,
        shutdown,
        serve,
        _dir: dir,
    }
}

type Ws = WebSocketStream<DuplexStream>;

async fn open(gw: &Arc<Gateway>) -> Ws {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let peer = PeerInfo::direct("127.0.0.1:40000".parse().unwrap());
    tokio::spawn(clawgate_gateway::serve_websocket(gw.clone(), server, peer));
    let mut ws = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
    let ch = next_json(&mut ws).await;
    assert_eq!(ch["event"], "connect.challenge");
    ws
}

async fn next_msg(ws: &mut Ws) -> Message {
    ws.next()
        .await
        .expect("socket ended")
        .expect("socket error")
}

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        match next_msg(ws).await {
            Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            Message::Close(c) => panic!("closed: {c:?}"),
            _ => continue,
        }
    }
}

async fn connect(ws: &mut Ws, params: Value) -> Value {
    ws.send(Message::text(
        json!({"type":"req","id":"c","method":"connect","params":params}).to_string(),
    ))
    .await
    .unwrap();
    let res = next_json(ws).await;
    assert_eq!(res["ok"], true, "{res}");
    res["payload"].clone()
}

#[tokio::test(start_paused = true)]
async fn ticks_every_30_s_with_a_seq_per_connection() {
    let h = harness().await;
    let mut a = open(&h.gw).await;
    connect(&mut a, cli_params(&["operator.read"])).await;
    let t0 = tokio::time::Instant::now();
    let tick = next_json(&mut a).await;
    assert_eq!(t0.elapsed(), Duration::from_secs(30));
    assert_eq!(tick["event"], "tick");
    assert_eq!(tick["seq"], 1);
    assert!(tick["payload"]["ts"].is_i64());
    assert_eq!(
        tick.as_object().unwrap().len(),
        4,
        "type, event, payload, seq: {tick}"
    );

    let mut b = open(&h.gw).await;
    connect(&mut b, cli_params(&["operator.read"])).await;
    assert_eq!(next_json(&mut a).await["seq"], 2);
    assert_eq!(next_json(&mut b).await["seq"], 1);
    assert_eq!(t0.elapsed(), Duration::from_secs(60));
}

#[tokio::test(start_paused = true)]
async fn presence_changes_are_broadcast_with_state_version() {
    let h = harness().await;
    let mut watcher = open(&h.gw).await;
    let hello = connect(&mut watcher, cli_params(&["operator.read"])).await;
    let v0 = hello["snapshot"]["stateVersion"]["presence"]
        .as_u64()
        .unwrap();

    // A UI client (not a short-lived CLI call) shows up in presence.
    let mut ui = open(&h.gw).await;
    let mut p = cli_params(&["operator.read"]);
    p["client"] = json!({"id":"openclaw-tui","displayName":"tui","version":"2026.9.6","platform":"linux","mode":"ui"});
    connect(&mut ui, p).await;
    let ev = next_json(&mut watcher).await;
    assert_eq!(ev["event"], "presence");
    assert_eq!(ev["seq"], 1);
    assert_eq!(ev["stateVersion"]["presence"], v0 + 1);
    let modes: Vec<&str> = ev["payload"]["presence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["mode"].as_str().unwrap())
        .collect();
    assert_eq!(modes, ["gateway", "ui"]);

    drop(ui);
    let ev = next_json(&mut watcher).await;
    assert_eq!(ev["event"], "presence");
    assert_eq!(ev["seq"], 2);
    assert_eq!(ev["stateVersion"]["presence"], v0 + 2);
    assert_eq!(ev["payload"]["presence"].as_array().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn nodes_get_ticks_but_not_presence() {
    let h = harness().await;
    let mut node = open(&h.gw).await;
    // A device-less node: accepted with its shared token, no operator scopes.
    let p = json!({"minProtocol":4,"maxProtocol":4,"client":{"id":"node-host","version":"2026.9.6","platform":"linux","mode":"node"},
        "role":"node","scopes":[],"caps":[],"auth":{"token":TOKEN}});
    connect(&mut node, p).await;
    let mut ui = open(&h.gw).await;
    let mut p = cli_params(&["operator.read"]);
    p["client"] = json!({"id":"openclaw-tui","version":"2026.9.6","platform":"linux","mode":"ui"});
    connect(&mut ui, p).await;
    let ev = next_json(&mut node).await;
    assert_eq!(ev["event"], "tick", "presence must not reach nodes: {ev}");
    assert_eq!(ev["seq"], 1);
}

#[tokio::test(start_paused = true)]
async fn pings_every_25_s_after_auth() {
    let h = harness().await;
    let mut a = open(&h.gw).await;
    connect(&mut a, cli_params(&["operator.read"])).await;
    let t0 = tokio::time::Instant::now();
    loop {
        if let Message::Ping(_) = next_msg(&mut a).await {
            break;
        }
    }
    assert_eq!(t0.elapsed(), Duration::from_secs(25));
}

#[tokio::test(start_paused = true)]
async fn shutdown_sends_the_event_then_closes_1012() {
    let h = harness().await;
    let mut a = open(&h.gw).await;
    connect(&mut a, cli_params(&["operator.read"])).await;
    h.shutdown.cancel();
    let ev = next_json(&mut a).await;
    assert_eq!(
        ev,
        json!({"type":"event","event":"shutdown","payload":{"reason":"gateway stopping"},"seq":1})
    );
    match next_msg(&mut a).await {
        Message::Close(Some(f)) => {
            assert_eq!(u16::from(f.code), 1012);
            assert_eq!(f.reason.as_str(), "service restart");
        }
        other => panic!("expected close, got {other:?}"),
    }
    drop(a);
    tokio::time::timeout(Duration::from_secs(5), h.serve)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(h.gw.registry.connection_count(), 0);
}
