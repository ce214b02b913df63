//! A client that completes the handshake and then stops reading leaves the gateway's write to
//! it pending. The connection (its registry entry, its presence, its queued bytes) must still
//! go away: when it is cut as a slow consumer, when a write makes no progress for the write
//! timeout, and when the gateway shuts down.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

/// Far more than the socket buffers of both ends hold, so writing it cannot finish.
const BIG: usize = 16 << 20;

/// A client with a small receive buffer that reads nothing after its hello.
async fn stalled_client(addr: std::net::SocketAddr) -> WebSocketStream<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/"), stream)
        .await
        .unwrap();
    let connect =
        json!({"type":"req","id":"c","method":"connect","params":cli_params(&["operator.read"])});
    ws.send(Message::text(connect.to_string())).await.unwrap();
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
        if let Some(Ok(Message::Text(t))) = msg
            && t.contains(r#""type":"res""#)
        {
            assert!(t.contains(r#""ok":true"#), "{t}");
            return ws;
        }
    }
}

fn big_tick(gw: &TestGateway) {
    gw.gateway
        .registry
        .broadcast("tick", &json!({"pad": "x".repeat(BIG)}));
}

/// Waits until the gateway's write to `ws` has begun: its first bytes are in the client's
/// socket (nothing else is sent to it after hello).
async fn write_started(ws: &WebSocketStream<TcpStream>) {
    let mut byte = [0u8; 1];
    let peeked = tokio::time::timeout(WAIT, ws.get_ref().peek(&mut byte)).await;
    assert!(
        matches!(peeked, Ok(Ok(1))),
        "nothing was written: {peeked:?}"
    );
}

/// Polls until the gateway holds no connection.
async fn connections_gone(gw: &TestGateway, within: Duration) {
    let started = Instant::now();
    while gw.gateway.registry.connection_count() > 0 {
        assert!(
            started.elapsed() < within,
            "the connection is still registered after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_slow_consumer_cut_wins_over_a_stuck_write() {
    let gw = start(|o| {
        o.max_buffered_bytes = 40 << 20;
        o.write_timeout = Duration::from_secs(60);
    })
    .await;
    let ws = stalled_client(gw.addr).await;
    big_tick(&gw);
    write_started(&ws).await;
    // Two more frames take the queue over its budget while the first is still being written.
    big_tick(&gw);
    big_tick(&gw);
    connections_gone(&gw, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_write_that_makes_no_progress_is_given_up() {
    let gw = start(|o| o.write_timeout = Duration::from_millis(300)).await;
    let ws = stalled_client(gw.addr).await;
    let started = Instant::now();
    big_tick(&gw);
    write_started(&ws).await;
    connections_gone(&gw, WAIT).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn shutdown_completes_with_a_stuck_client() {
    let gw = start(|o| o.write_timeout = Duration::from_secs(60)).await;
    let ws = stalled_client(gw.addr).await;
    big_tick(&gw);
    write_started(&ws).await;
    gw.shutdown.cancel();
    tokio::time::timeout(WAIT, gw.task)
        .await
        .expect("shutdown did not finish")
        .unwrap();
    assert_eq!(gw.gateway.registry.connection_count(), 0);
    drop(ws);
}
