//! Failed-auth delays and the connect deadline under paused time: a wrong secret slows the
//! connection that sent it, never the next login from the same address. Sockets are in-memory
//! pipes so tokio's clock can jump.

mod common;

use common::{cli_params, connect_pipe, in_memory, next_json, next_msg, open_pipe, send_connect};
use serde_json::json;
use std::time::Duration;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// Twenty wrong-token connects from loopback are each answered after their own escalating
/// delay, and a correct login that comes in meanwhile is answered at once (it used to wait
/// behind every failure's delay: over 80 s).
#[tokio::test(start_paused = true)]
async fn wrong_guesses_never_delay_a_correct_login_from_the_same_address() {
    let h = in_memory(|_| {}).await;
    let mut wrong = cli_params(&["operator.read"]);
    wrong["auth"]["token"] = json!("wrong");
    let start = Instant::now();
    let mut guesses = Vec::new();
    for _ in 0..20 {
        let mut ws = open_pipe(&h.gw).await;
        send_connect(&mut ws, wrong.clone()).await;
        guesses.push(ws);
    }
    let mut ok = open_pipe(&h.gw).await;
    let hello = connect_pipe(&mut ok, cli_params(&["operator.read"])).await;
    assert_eq!(hello["auth"]["method"], "token");
    assert!(
        start.elapsed() < Duration::from_millis(250),
        "the correct login waited {:?}",
        start.elapsed()
    );

    // Every guess is still slowed: the first by 250 ms, the later ones by up to 5 s each.
    for ws in &mut guesses {
        let res = next_json(ws).await;
        assert_eq!(
            res["error"]["details"]["code"], "AUTH_TOKEN_MISMATCH",
            "{res}"
        );
    }
    assert_eq!(start.elapsed(), Duration::from_secs(5));
}

/// Checking a connect has a deadline: past it the client is told to retry and the socket is
/// closed 1013, whatever held the check up (here a failure delay longer than the deadline).
#[tokio::test(start_paused = true)]
async fn connect_processing_has_a_deadline() {
    let h = in_memory(|o| {
        o.connect_timeout = Duration::from_secs(10);
        o.rate_limit.base_delay = Duration::from_secs(60);
        o.rate_limit.max_delay = Duration::from_secs(60);
    })
    .await;
    let mut ws = open_pipe(&h.gw).await;
    let mut wrong = cli_params(&["operator.read"]);
    wrong["auth"]["token"] = json!("wrong");
    let start = Instant::now();
    send_connect(&mut ws, wrong).await;
    let res = next_json(&mut ws).await;
    assert_eq!(start.elapsed(), Duration::from_secs(10));
    assert_eq!(
        res["error"],
        json!({"code":"UNAVAILABLE","message":"the gateway took longer than 10000 ms to check this connect; retry","retryable":true,"retryAfterMs":1000})
    );
    match next_msg(&mut ws).await {
        Message::Close(Some(f)) => assert_eq!(
            (u16::from(f.code), f.reason.as_str()),
            (1013, "connect timed out")
        ),
        other => panic!("expected a close, got {other:?}"),
    }
}
