//! What the agent command tests share: the binary under test, a command aimed at a gateway,
//! and what the model was sent.
#![allow(dead_code)]

use clawgate_testkit::{
    ChildProcess, ClawgateBin, CliCommand, IsolatedHome, ModelMock, Output, RawWs, Value, json,
};
use std::time::{Duration, Instant};

pub fn clawgate() -> ClawgateBin {
    ClawgateBin::new(env!("CARGO_BIN_EXE_clawgate"))
}

/// `clawgate <args> --url <url> --token <token>` in a fresh home with an empty config file.
pub fn at<'h>(url: &str, token: &str, args: &[&str]) -> CliCommand<'h> {
    clawgate()
        .cli()
        .config(json!({}))
        .args(args)
        .args(["--url", url, "--token", token])
}

#[track_caller]
pub fn ok_json(out: &Output) -> Value {
    out.assert_success();
    out.json()
}

/// The text of every message the model was sent with `role`, in order, in its last request.
pub fn sent(mock: &ModelMock, role: &str) -> Vec<String> {
    let requests = mock.requests();
    let last = requests.last().expect("the model was called");
    last.body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["role"] == role)
        .map(|m| match &m["content"] {
            Value::String(s) => bare_text(s),
            other => other.to_string(),
        })
        .collect()
}

/// A message as it was written: without the gateway's `[<time>] ` prefix and the runtime
/// line it appends to a session's first message.
pub fn bare_text(sent: &str) -> String {
    let text = match sent.strip_prefix('[').and_then(|r| r.split_once("] ")) {
        Some((_, rest)) => rest,
        None => sent,
    };
    text.split("\n\nRuntime: ")
        .next()
        .unwrap_or(text)
        .to_owned()
}

/// `clawgate node run` against the gateway on `port`, connected and its command surface
/// approved through `ws` (as an operator does with `clawgate nodes approve`). Returns it and
/// its node id.
pub async fn approved_node(
    gw_home: &IsolatedHome,
    port: u16,
    token: &str,
    ws: &mut RawWs,
) -> (ChildProcess, String) {
    let port = port.to_string();
    let mut node = clawgate()
        .spawn(
            gw_home,
            [
                "node",
                "run",
                "--port",
                &port,
                "--token",
                token,
                "--display-name",
                "e2e-node",
            ],
            [("CLAWGATE_LOG", "info")],
        )
        .expect("clawgate node run");
    node.wait_for_line(
        |l| l.contains("node host gateway connected"),
        Instant::now() + Duration::from_secs(30),
    )
    .await
    .expect("the node connects");
    let deadline = Instant::now() + Duration::from_secs(30);
    let request_id = loop {
        let pending = ws
            .request("node.pair.list", json!({}), Duration::from_secs(5))
            .await
            .unwrap();
        if let Some(id) = pending["payload"]["pending"][0]["requestId"].as_str() {
            break id.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no node approval request: {pending:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    ws.request(
        "node.pair.approve",
        json!({"requestId": request_id}),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    // Listed, connected, with system.run.
    let node_id = loop {
        let list = ws
            .request("node.list", json!({}), Duration::from_secs(5))
            .await
            .unwrap();
        let ready = list["payload"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| {
                n["connected"] == true
                    && n["commands"]
                        .as_array()
                        .is_some_and(|c| c.contains(&json!("system.run")))
            });
        if let Some(n) = ready {
            break n["nodeId"].as_str().unwrap().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no connected node with system.run: {list:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    (node, node_id)
}

/// Sets the node's exec policy (over `exec.approvals.node.set`) to ask an operator before
/// every command.
pub async fn ask_for_every_command(ws: &mut RawWs, node_id: &str) {
    let got = ws
        .request(
            "exec.approvals.node.get",
            json!({"nodeId": node_id}),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    ws.request(
        "exec.approvals.node.set",
        json!({
            "nodeId": node_id,
            "baseHash": got["payload"]["hash"],
            "file": {"version": 1, "defaults": {"security": "full", "ask": "always"}, "agents": {}},
        }),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
}
