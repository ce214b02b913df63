//! The middle of the seed flow, end to end with clawgate's own processes: `chat.send` → the
//! model asks for `exec host=node` → `clawgate node run` runs it → the follow-up model request
//! carries the result → the reply arrives in `chat` events and `chat.history`; then `agent`
//! (two responses with one id) and `agent.wait`.

use clawgate_testkit::{ClawgateBin, ModelMock, RawWs, Reply, WireFormat, connect_params, json};
use serde_json::Value;
use std::time::{Duration, Instant};

const TOKEN: &str = "agent-e2e-token";
const MAIN: &str = "agent:main:main";

fn clawgate() -> ClawgateBin {
    ClawgateBin::new(env!("CARGO_BIN_EXE_clawgate"))
}

/// Every frame up to and including the first that `stop` accepts.
async fn frames_until(
    ws: &mut RawWs,
    within: Duration,
    stop: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let frame = ws
            .recv_json(left)
            .await
            .unwrap_or_else(|e| panic!("{e}; frames so far: {seen:#?}"));
        let done = stop(&frame);
        seen.push(frame);
        if done {
            return seen;
        }
    }
}

#[tokio::test]
async fn chat_send_runs_a_command_on_the_node_and_replies() {
    let mock = ModelMock::start(WireFormat::OpenAi).await;
    let config = json!({
        "models": {"providers": {"mock": mock.provider_config("k", "mock-1")}},
        "agents": {"defaults": {"model": {"primary": "mock/mock-1"}}},
    });
    let gw = clawgate().start_token_gateway(&config, TOKEN).await;
    let port = gw.port().to_string();
    let mut node = clawgate()
        .spawn(
            gw.home(),
            [
                "node",
                "run",
                "--port",
                &port,
                "--token",
                TOKEN,
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
    let node_pid = node.pid();

    let mut params = connect_params(
        Some(TOKEN),
        &["operator.read", "operator.write", "operator.admin"],
    );
    params["caps"] = json!(["tool-events"]);
    let (mut ws, _) = RawWs::handshake(gw.url(), params).await.unwrap();
    // Its command surface is approved, as an operator does with `clawgate nodes approve`.
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
    // The node is listed, connected, with system.run.
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

    // Only the node host's own shell knows its parent's pid.
    mock.push(Reply::tool_call(
        "exec",
        json!({"command": "echo node-parent-$PPID", "host": "node"}),
    ));
    mock.push(Reply::text_chunks(["It printed ", "its parent."]));
    ws.send_json(&json!({"type": "req", "id": "s1", "method": "chat.send",
        "params": {"sessionKey": MAIN, "message": "where do you run?", "idempotencyKey": "e2e-run-1"}}))
        .await
        .unwrap();
    let frames = frames_until(&mut ws, Duration::from_secs(60), |f| {
        f["event"] == "chat" && f["payload"]["state"] == "final"
    })
    .await;
    let res = frames
        .iter()
        .find(|f| f["type"] == "res" && f["id"] == "s1")
        .expect("a response");
    assert_eq!(
        res["payload"],
        json!({"runId": "e2e-run-1", "status": "started"})
    );
    let labels: Vec<String> = frames
        .iter()
        .filter(|f| f["type"] == "event" && (f["event"] == "agent" || f["event"] == "chat"))
        .map(|f| {
            let p = &f["payload"];
            if f["event"] == "chat" {
                format!("chat:{}", p["state"].as_str().unwrap())
            } else {
                format!(
                    "agent:{}:{}",
                    p["stream"].as_str().unwrap(),
                    p["data"]["phase"].as_str().unwrap_or("")
                )
            }
        })
        .collect();
    let pos = |l: &str| {
        labels
            .iter()
            .position(|x| x == l)
            .unwrap_or_else(|| panic!("{l} missing: {labels:?}"))
    };
    assert!(
        pos("agent:lifecycle:start") < pos("agent:tool:start"),
        "{labels:?}"
    );
    assert!(
        pos("agent:tool:start") < pos("agent:tool:result"),
        "{labels:?}"
    );
    assert!(pos("agent:tool:result") < pos("chat:delta"), "{labels:?}");
    assert!(pos("agent:lifecycle:end") < pos("chat:final"), "{labels:?}");
    let tool_result = frames
        .iter()
        .find(|f| f["payload"]["stream"] == "tool" && f["payload"]["data"]["phase"] == "result")
        .unwrap();
    let expected = format!("Node: {node_id}\nnode-parent-{node_pid}");
    assert_eq!(tool_result["payload"]["data"]["result"], expected.as_str());

    // The follow-up model request carries what the node printed.
    let requests = mock.requests();
    assert_eq!(requests.len(), 2);
    let tool_message = requests[1].body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "tool")
        .expect("a tool message")
        .clone();
    assert_eq!(tool_message["content"], expected.as_str());

    // The transcript.
    let history = ws
        .request(
            "chat.history",
            json!({"sessionKey": MAIN}),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    let messages = history["payload"]["messages"].as_array().unwrap();
    let roles: Vec<&str> = messages
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        ["user", "assistant", "toolResult", "assistant"],
        "{history:#}"
    );
    assert_eq!(messages[3]["content"][0]["text"], "It printed its parent.");

    // The same key again: the finished run is answered, not run again.
    let again = ws
        .request("chat.send", json!({"sessionKey": MAIN, "message": "where do you run?", "idempotencyKey": "e2e-run-1"}), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        again["payload"],
        json!({"runId": "e2e-run-1", "status": "ok"})
    );

    // `agent`: accepted, then the final, with one id; then agent.wait.
    mock.push(Reply::text("Hello from the agent."));
    ws.send_json(&json!({"type": "req", "id": "a1", "method": "agent",
        "params": {"message": "hi", "agentId": "main", "idempotencyKey": "e2e-agent-1"}}))
        .await
        .unwrap();
    let frames = frames_until(&mut ws, Duration::from_secs(60), |f| {
        f["type"] == "res" && f["id"] == "a1" && f["payload"]["status"] != "accepted"
    })
    .await;
    let answers: Vec<&Value> = frames
        .iter()
        .filter(|f| f["type"] == "res" && f["id"] == "a1")
        .collect();
    assert_eq!(answers.len(), 2, "{answers:#?}");
    assert_eq!(answers[0]["payload"]["status"], "accepted");
    assert_eq!(answers[0]["payload"]["sessionKey"], MAIN);
    assert_eq!(answers[1]["ok"], true);
    assert_eq!(answers[1]["payload"]["status"], "ok");
    assert_eq!(
        answers[1]["payload"]["result"]["payloads"][0]["text"],
        "Hello from the agent."
    );
    let waited = ws
        .request(
            "agent.wait",
            json!({"runId": "e2e-agent-1"}),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(waited["payload"]["status"], "ok");
    assert_eq!(
        waited["payload"]["terminalReply"]["text"],
        "Hello from the agent."
    );
    let unknown = ws
        .request(
            "agent.wait",
            json!({"runId": "nope", "timeoutMs": 10}),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(
        unknown["payload"],
        json!({"runId": "nope", "status": "timeout"})
    );

    let sessions = ws
        .request("sessions.list", json!({}), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(sessions["payload"]["sessions"][0]["key"], MAIN);
    let models = ws
        .request("models.list", json!({}), Duration::from_secs(5))
        .await
        .unwrap();
    assert!(
        models["payload"]["models"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "mock-1"),
        "{models:#}"
    );
    ws.close().await;
    drop(node);
}
