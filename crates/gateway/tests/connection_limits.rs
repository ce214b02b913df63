//! What an unauthenticated peer can hold: a connection beyond the cap is refused at once (an
//! HTTP 503 saying why) while the clients already in keep working, and a connection that does
//! not send a complete request in time, silent or trickling, is closed.

mod common;

use common::*;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the peer closes; returns what it sent (a reset counts as a close).
async fn read_to_close(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let read = tokio::time::timeout(WAIT, async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    });
    read.await.expect("the gateway kept the connection open");
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn connections_beyond_the_cap_are_refused_while_clients_in_keep_working() {
    let gw = start(|o| o.max_connections = 8).await;
    let mut client = Client::open(gw.addr).await;
    client.connect(cli_params(&["operator.read"])).await;
    let mut idle = Vec::new();
    for _ in 0..7 {
        idle.push(TcpStream::connect(gw.addr).await.unwrap());
    }
    // Accepted after the seven idle ones (the listen queue is first in, first out).
    let mut refused = TcpStream::connect(gw.addr).await.unwrap();
    let answer = read_to_close(&mut refused).await;
    assert!(
        answer.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{answer}"
    );
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(body).unwrap(),
        json!({"error": {"type": "connection_limit",
            "message": "the gateway is at its connection limit (8 connections); retry later"}})
    );
    assert_eq!(client.call("h", "health", json!({})).await["ok"], true);

    // A slot that frees up is taken by the next connection.
    drop(idle.pop());
    let deadline = Instant::now() + WAIT;
    loop {
        match tokio_tungstenite::connect_async(format!("ws://{}/", gw.addr)).await {
            Ok(_) => break,
            Err(e) => assert!(Instant::now() < deadline, "no slot came free: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_request_timeout() {
    let gw = start(|o| o.request_header_timeout = Duration::from_millis(300)).await;
    let started = Instant::now();
    let mut silent = TcpStream::connect(gw.addr).await.unwrap();
    read_to_close(&mut silent).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn a_request_head_trickled_in_is_cut_off() {
    let gw = start(|o| o.request_header_timeout = Duration::from_millis(500)).await;
    let mut slow = TcpStream::connect(gw.addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    // A header line every 100 ms, never the blank line that ends the head.
    let closed = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if slow.write_all(b"X-Slow: 1\r\n").await.is_err() {
            break true;
        }
        let mut buf = [0u8; 64];
        match tokio::time::timeout(Duration::from_millis(1), slow.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break true,
            _ if started.elapsed() > WAIT => break false,
            _ => {}
        }
    };
    assert!(closed, "the trickle kept the connection open");
    assert!(started.elapsed() >= Duration::from_millis(400));
}
