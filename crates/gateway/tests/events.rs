//! Broadcasts under paused time: tick and per-connection seq, presence with stateVersion, WS
//! pings, and shutdown. Sockets are in-memory pipes so tokio's clock can jump.

mod common;

use common::{TOKEN, cli_params, connect_pipe, in_memory, next_json, next_msg, open_pipe};
use serde_json::json;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(start_paused = true)]
async fn ticks_every_30_s_with_a_seq_per_connection() {
    let h = in_memory(|_| {}).await;
    let mut a = open_pipe(&h.gw).await;
    connect_pipe(&mut a, cli_params(&["operator.read"])).await;
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

    let mut b = open_pipe(&h.gw).await;
    connect_pipe(&mut b, cli_params(&["operator.read"])).await;
    assert_eq!(next_json(&mut a).await["seq"], 2);
    assert_eq!(next_json(&mut b).await["seq"], 1);
    assert_eq!(t0.elapsed(), Duration::from_secs(60));
}

#[tokio::test(start_paused = true)]
async fn presence_changes_are_broadcast_with_state_version() {
    let h = in_memory(|_| {}).await;
    let mut watcher = open_pipe(&h.gw).await;
    let hello = connect_pipe(&mut watcher, cli_params(&["operator.read"])).await;
    let v0 = hello["snapshot"]["stateVersion"]["presence"]
        .as_u64()
        .unwrap();

    // A UI client (not a short-lived CLI call) shows up in presence.
    let mut ui = open_pipe(&h.gw).await;
    let mut p = cli_params(&["operator.read"]);
    p["client"] = json!({"id":"openclaw-tui","displayName":"tui","version":"2026.9.6","platform":"linux","mode":"ui"});
    connect_pipe(&mut ui, p).await;
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
    let h = in_memory(|_| {}).await;
    let mut node = open_pipe(&h.gw).await;
    // A device-less node: accepted with its shared token, no operator scopes.
    let p = json!({"minProtocol":4,"maxProtocol":4,"client":{"id":"node-host","version":"2026.9.6","platform":"linux","mode":"node"},
        "role":"node","scopes":[],"caps":[],"auth":{"token":TOKEN}});
    connect_pipe(&mut node, p).await;
    let mut ui = open_pipe(&h.gw).await;
    let mut p = cli_params(&["operator.read"]);
    p["client"] = json!({"id":"openclaw-tui","version":"2026.9.6","platform":"linux","mode":"ui"});
    connect_pipe(&mut ui, p).await;
    let ev = next_json(&mut node).await;
    assert_eq!(ev["event"], "tick", "presence must not reach nodes: {ev}");
    assert_eq!(ev["seq"], 1);
}

#[tokio::test(start_paused = true)]
async fn pings_every_25_s_after_auth() {
    let h = in_memory(|_| {}).await;
    let mut a = open_pipe(&h.gw).await;
    connect_pipe(&mut a, cli_params(&["operator.read"])).await;
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
    let h = in_memory(|_| {}).await;
    let mut a = open_pipe(&h.gw).await;
    connect_pipe(&mut a, cli_params(&["operator.read"])).await;
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
