//! The middle of the seed flow, end to end with clawgate's own processes: `chat.send` → the
//! model asks for `exec host=node` → `clawgate node run` runs it → the follow-up model request
//! carries the result → the reply arrives in `chat` events and `chat.history`; then `agent`
//! (two responses with one id) and `agent.wait`.

use clawgate_testkit::{
    ClawgateBin, ClawgateGateway, FakeBotApi, IsolatedHome, ModelMock, Output, RawWs, Reply,
    WireFormat, connect_params, free_port, json,
};
use serde_json::Value;
use std::time::{Duration, Instant};

mod agent_support;
use agent_support::{approved_node, ask_for_every_command};

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

/// An operator that may read, write and approve, and gets its runs' tool payloads.
async fn operator(url: &str) -> RawWs {
    let mut params = connect_params(
        Some(TOKEN),
        &["operator.read", "operator.write", "operator.admin"],
    );
    params["caps"] = json!(["tool-events"]);
    RawWs::handshake(url, params).await.unwrap().0
}

/// `clawgate <args> --url <gateway> --token <token>`, as an operator types it.
async fn operator_cli(gw: &ClawgateGateway, args: &[&str]) -> Output {
    clawgate()
        .cli()
        .config(json!({}))
        .args(args.iter().copied())
        .args(["--url", gw.url(), "--token", TOKEN])
        .run()
        .await
}

/// An `agent` request with `id`: every frame up to its final response (after `accepted`).
async fn agent_call(ws: &mut RawWs, id: &str, params: Value) -> Vec<Value> {
    ws.send_json(&json!({"type": "req", "id": id, "method": "agent", "params": params}))
        .await
        .unwrap();
    frames_until(ws, Duration::from_secs(60), |f| {
        f["type"] == "res" && f["id"] == id && f["payload"]["status"] != "accepted"
    })
    .await
}

async fn chat_send(ws: &mut RawWs, id: &str, message: &str, run_id: &str) {
    ws.send_json(&json!({"type": "req", "id": id, "method": "chat.send",
        "params": {"sessionKey": MAIN, "message": message, "idempotencyKey": run_id}}))
        .await
        .unwrap();
}

fn is_final(f: &Value) -> bool {
    f["event"] == "chat"
        && matches!(
            f["payload"]["state"].as_str(),
            Some("final" | "error" | "aborted")
        )
}

fn tool_event<'a>(frames: &'a [Value], phase: &str) -> &'a Value {
    frames
        .iter()
        .find(|f| f["payload"]["stream"] == "tool" && f["payload"]["data"]["phase"] == phase)
        .unwrap_or_else(|| panic!("no tool {phase} event in {frames:#?}"))
}

#[tokio::test]
async fn chat_send_runs_a_command_on_the_node_and_replies() {
    let mock = ModelMock::start(WireFormat::OpenAi).await;
    let gw = clawgate()
        .start_token_gateway(&mock.primary_config(), TOKEN)
        .await;
    let mut ws = operator(gw.url()).await;
    let (node, node_id) = approved_node(gw.home(), gw.port(), TOKEN, &mut ws).await;
    let node_pid = node.pid();

    // Only the node host's own shell knows its parent's pid.
    mock.push(Reply::tool_call(
        "exec",
        json!({"command": "echo node-parent-$PPID", "host": "node"}),
    ));
    mock.push(Reply::text_chunks(["It printed ", "its parent."]));
    chat_send(&mut ws, "s1", "where do you run?", "e2e-run-1").await;
    let frames = frames_until(&mut ws, Duration::from_secs(60), is_final).await;
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
    let tool_result = tool_event(&frames, "result");
    let expected = format!("Node: {node_id}\nnode-parent-{node_pid}");
    assert_eq!(
        tool_result["payload"]["data"]["result"]["content"][0]["text"],
        expected.as_str()
    );

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
    let frames = agent_call(
        &mut ws,
        "a1",
        json!({"message": "hi", "agentId": "main", "idempotencyKey": "e2e-agent-1"}),
    )
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

    // `--session-id x`: a session of its own, whose id is x, as OpenClaw does.
    mock.push(Reply::text("Explicit."));
    let frames = agent_call(
        &mut ws,
        "a2",
        json!({"message": "hi", "sessionId": "sess-x", "idempotencyKey": "e2e-agent-2"}),
    )
    .await;
    let meta = &frames.last().unwrap()["payload"]["result"]["meta"]["agentMeta"];
    assert_eq!(meta["sessionId"], "sess-x", "{meta}");
    assert_eq!(meta["sessionKey"], "agent:main:explicit:sess-x");

    let sessions = ws
        .request("sessions.list", json!({}), Duration::from_secs(5))
        .await
        .unwrap();
    let keys: Vec<&str> = sessions["payload"]["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["agent:main:explicit:sess-x", MAIN],
        "most recent first"
    );
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

/// The node goes away while it runs the agent's command: the tool result is an error that says
/// so, the model is told, and the turn still ends with a reply.
#[tokio::test]
async fn a_node_killed_mid_command_gives_an_error_result_and_a_reply() {
    let mock = ModelMock::start(WireFormat::OpenAi).await;
    let gw = clawgate()
        .start_token_gateway(&mock.primary_config(), TOKEN)
        .await;
    let mut ws = operator(gw.url()).await;
    let (node, node_id) = approved_node(gw.home(), gw.port(), TOKEN, &mut ws).await;
    mock.push(Reply::tool_call(
        "exec",
        json!({"command": "sleep 5", "host": "node"}),
    ));
    mock.push(Reply::text(
        "The node went away before the command finished.",
    ));
    chat_send(&mut ws, "s1", "sleep a while", "kill-node-1").await;
    frames_until(&mut ws, Duration::from_secs(30), |f| {
        f["payload"]["stream"] == "tool" && f["payload"]["data"]["phase"] == "start"
    })
    .await;
    node.signal("KILL");
    let frames = frames_until(&mut ws, Duration::from_secs(60), is_final).await;
    let result = &tool_event(&frames, "result")["payload"]["data"];
    assert_eq!(result["isError"], true, "{result:#}");
    let text = result["result"]["content"][0]["text"].as_str().unwrap();
    // The kill lands before the call reaches the node (the tool call's commit overlaps it),
    // while the node prepares the run, or while it runs it.
    assert!(
        text.starts_with(&format!("Node: {node_id}\nexec failed"))
            && (text.contains("DISCONNECTED") || text.contains("node not connected")),
        "{text}"
    );
    let last = frames.last().unwrap();
    assert_eq!(last["payload"]["state"], "final", "{last:#}");
    let follow_up = &mock.requests()[1].body["messages"];
    assert!(
        follow_up.to_string().contains("exec failed"),
        "the model is told: {follow_up:#}"
    );
}

/// `kill -9` of the gateway while the model answers: after the restart the transcript says the
/// run was interrupted, the model was not asked again, and the same key answers `interrupted`.
#[tokio::test]
async fn a_gateway_killed_mid_run_ends_the_run_as_interrupted_after_restart() {
    let mock = ModelMock::start(WireFormat::OpenAi).await;
    mock.push(Reply::text_chunks(["thinking"]).then_stall());
    let home = IsolatedHome::new();
    home.write_config(&mock.primary_config());
    let port = free_port().to_string();
    let argv = ["gateway", "run", "--port", &port, "--token", TOKEN];
    let gw = clawgate()
        .spawn_gateway_in(home, argv, [("CLAWGATE_LOG", "warn")])
        .await
        .unwrap();
    let mut ws = operator(gw.url()).await;
    chat_send(&mut ws, "s1", "a long question", "kill-gw-1").await;
    // The first text is out: the run and the message are on disk.
    frames_until(&mut ws, Duration::from_secs(30), |f| {
        f["event"] == "chat" && f["payload"]["state"] == "delta"
    })
    .await;
    let (process, home) = gw.into_parts();
    process.signal("KILL");
    let mut process = process;
    process
        .wait_timeout(Duration::from_secs(10))
        .await
        .expect("killed");

    let gw = clawgate()
        .spawn_gateway_in(home, argv, [("CLAWGATE_LOG", "warn")])
        .await
        .unwrap();
    let mut ws = operator(gw.url()).await;
    let history = ws
        .request(
            "chat.history",
            json!({"sessionKey": MAIN}),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    let messages = history["payload"]["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "{history:#}");
    assert_eq!(messages[0]["content"], "a long question");
    let note = messages[1]["errorMessage"].as_str().unwrap();
    assert!(note.contains("interrupted"), "{note}");
    let again = ws
        .request(
            "chat.send",
            json!({"sessionKey": MAIN, "message": "a long question", "idempotencyKey": "kill-gw-1"}),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(again["payload"]["status"], "interrupted");
    assert_eq!(mock.requests().len(), 1, "nothing ran again");
}

/// A node host whose exec policy asks for every command: the run waits for an operator, who
/// gets `exec.approval.requested` and answers `exec.approval.resolve`; the command then runs
/// on the node.
#[tokio::test]
async fn a_node_that_asks_runs_the_command_once_an_operator_approves() {
    let mock = ModelMock::start(WireFormat::OpenAi).await;
    let gw = clawgate()
        .start_token_gateway(&mock.primary_config(), TOKEN)
        .await;
    let mut ws = operator(gw.url()).await;
    let (_node, node_id) = approved_node(gw.home(), gw.port(), TOKEN, &mut ws).await;
    ask_for_every_command(&mut ws, &node_id).await;
    let mut approver = {
        let params = connect_params(Some(TOKEN), &["operator.approvals"]);
        RawWs::handshake(gw.url(), params).await.unwrap().0
    };

    mock.push(Reply::tool_call(
        "exec",
        json!({"command": "echo approved-run", "host": "node"}),
    ));
    mock.push(Reply::text("It ran."));
    chat_send(&mut ws, "s1", "run it", "approve-1").await;
    let asked = frames_until(&mut approver, Duration::from_secs(30), |f| {
        f["event"] == "exec.approval.requested"
    })
    .await;
    let request = &asked.last().unwrap()["payload"];
    assert_eq!(request["request"]["command"], "echo approved-run");
    assert_eq!(request["request"]["nodeId"], node_id.as_str());
    let id = request["id"].as_str().unwrap();
    let resolved = approver
        .request(
            "exec.approval.resolve",
            json!({"id": id, "decision": "allow-once"}),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(resolved["payload"]["ok"], true);
    let frames = frames_until(&mut ws, Duration::from_secs(60), is_final).await;
    let result = &tool_event(&frames, "result")["payload"]["data"];
    assert_eq!(result["isError"], false, "{result:#}");
    assert_eq!(
        result["result"]["content"][0]["text"],
        format!("Node: {node_id}\napproved-run").as_str()
    );
    let again = approver
        .request(
            "exec.approval.resolve",
            json!({"id": id, "decision": "deny"}),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
    assert!(again.to_string().contains("APPROVAL_NOT_FOUND"), "{again}");
}

/// The seed flow: a Telegram DM reaches the gateway, the agent runs a command on a node, the
/// reply goes back to that chat. An unknown sender first gets a pairing code and no model call;
/// an operator approves it over `channels.pairing.approve`.
#[tokio::test]
async fn a_telegram_dm_runs_a_node_command_and_the_reply_reaches_the_chat() {
    const BOT_TOKEN: &str = "123456:seed-flow-token";
    const USER: i64 = 4242;
    let bot = FakeBotApi::start(BOT_TOKEN).await;
    let mock = ModelMock::start(WireFormat::OpenAi).await;
    let mut config = mock.primary_config();
    config["channels"] = json!({"telegram": {"botToken": BOT_TOKEN, "apiRoot": bot.api_root()}});
    let gw = clawgate().start_token_gateway(&config, TOKEN).await;
    let mut ws = operator(gw.url()).await;
    let (node, node_id) = approved_node(gw.home(), gw.port(), TOKEN, &mut ws).await;
    let node_pid = node.pid();

    // An unknown sender: a pairing code, no turn.
    bot.inject_dm(USER, "hello?");
    let sent = bot
        .wait_for_calls("sendMessage", 1, Duration::from_secs(30))
        .await;
    let pairing_reply = sent[0].text().unwrap().to_owned();
    assert_eq!(
        sent[0].chat_id().as_deref(),
        Some(USER.to_string().as_str())
    );
    assert!(pairing_reply.contains(&USER.to_string()), "{pairing_reply}");
    assert!(
        mock.requests().is_empty(),
        "no model call for an unknown sender"
    );
    let list = ws
        .request(
            "channels.pairing.list",
            json!({"channel": "telegram"}),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    let request = list["payload"]["requests"][0].clone();
    assert_eq!(request["senderId"], USER.to_string());
    let code = request["requestId"].as_str().unwrap().to_owned();
    assert!(
        pairing_reply.contains(&format!("clawgate pairing approve telegram {code}")),
        "{pairing_reply}"
    );
    let out = operator_cli(&gw, &["pairing", "list", "telegram"]).await;
    out.assert_success();
    assert!(out.stdout.contains(&code), "{out}");
    let out = operator_cli(&gw, &["pairing", "approve", "telegram", &code]).await;
    out.assert_success();
    assert!(
        out.stdout
            .contains(&format!("Approved telegram sender {USER}")),
        "{out}"
    );
    let again = operator_cli(&gw, &["pairing", "approve", "telegram", &code]).await;
    assert_eq!(
        again.status.code(),
        Some(1),
        "an approved code is gone: {again}"
    );
    assert!(
        again.stderr.contains("no pending Telegram pairing request"),
        "{again}"
    );

    // Now the DM runs: model → exec on the node → model → the reply in the chat.
    mock.push(Reply::tool_call(
        "exec",
        json!({"command": "echo node-parent-$PPID", "host": "node"}),
    ));
    mock.push(Reply::text("Your node says hello."));
    bot.inject_dm(USER, "run something on my node");
    let sent = bot
        .wait_for_calls("sendMessage", 2, Duration::from_secs(60))
        .await;
    assert_eq!(
        sent[1].chat_id().as_deref(),
        Some(USER.to_string().as_str())
    );
    assert_eq!(sent[1].text(), Some("Your node says hello."));
    assert!(
        !bot.calls_to("sendChatAction").is_empty(),
        "typing was shown"
    );
    let requests = mock.requests();
    assert_eq!(requests.len(), 2);
    let follow_up = requests[1].body["messages"].to_string();
    assert!(
        follow_up.contains(&format!("Node: {node_id}\\nnode-parent-{node_pid}")),
        "{follow_up}"
    );
    // The turn ran in the sender's session (dmScope main: the main session).
    let history = ws
        .request(
            "chat.history",
            json!({"sessionKey": MAIN}),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(
        history["payload"]["messages"][0]["content"],
        "run something on my node"
    );
    let status = ws
        .request("channels.status", json!({}), Duration::from_secs(5))
        .await
        .unwrap();
    let telegram = &status["payload"]["channels"]["telegram"];
    assert_eq!(telegram["running"], true, "{status:#}");
    assert!(telegram["lastPollAt"].is_i64(), "{status:#}");
}

/// No model configured: the Telegram user gets an error reply naming the key to set, not
/// silence.
#[tokio::test]
async fn a_telegram_dm_without_a_model_gets_an_error_reply() {
    const BOT_TOKEN: &str = "42:no-model";
    let bot = FakeBotApi::start(BOT_TOKEN).await;
    let config = json!({"channels": {"telegram": {
        "botToken": BOT_TOKEN, "apiRoot": bot.api_root(), "dmPolicy": "allowlist", "allowFrom": ["7"],
    }}});
    let _gw = clawgate().start_token_gateway(&config, TOKEN).await;
    bot.inject_dm(7, "hi");
    let sent = bot
        .wait_for_calls("sendMessage", 1, Duration::from_secs(30))
        .await;
    let text = sent[0].text().unwrap();
    assert!(text.contains("agents.defaults.model.primary"), "{text}");
}

/// A sender added to `channels.telegram.allowFrom` in the config file by hand is let in
/// without a restart; before that, their DM is dropped without a model call.
#[tokio::test]
async fn a_sender_added_to_allow_from_in_the_config_file_is_let_in_without_a_restart() {
    const BOT_TOKEN: &str = "43:reload";
    let bot = FakeBotApi::start(BOT_TOKEN).await;
    let mock = ModelMock::start(WireFormat::OpenAi).await;
    let mut config = mock.primary_config();
    config["channels"] = json!({"telegram": {
        "botToken": BOT_TOKEN, "apiRoot": bot.api_root(), "dmPolicy": "allowlist", "allowFrom": [],
    }});
    let home = IsolatedHome::new();
    home.write_config(&config);
    let mut gw = clawgate()
        .spawn_gateway_in(
            home,
            ["gateway", "run", "--port", "0", "--token", TOKEN],
            [("CLAWGATE_LOG", "info")],
        )
        .await
        .unwrap();
    let mut ws = operator(gw.url()).await;
    bot.inject_dm(9, "let me in");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = ws
            .request("channels.status", json!({}), Duration::from_secs(5))
            .await
            .unwrap();
        if status["payload"]["channels"]["telegram"]["handled"].as_u64() >= Some(1) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the DM was never handled: {status:#}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(bot.sent_messages().is_empty(), "not allowed yet: no reply");
    assert!(mock.requests().is_empty(), "not allowed yet: no model call");

    config["channels"]["telegram"]["allowFrom"] = json!(["9"]);
    gw.home().write_config(&config);
    gw.process
        .wait_for_line(
            |l| l.contains("channels.telegram.allowFrom reloaded"),
            Instant::now() + Duration::from_secs(30),
        )
        .await
        .expect("the new allowFrom is read");
    mock.push(Reply::text("Welcome."));
    bot.inject_dm(9, "let me in now");
    let sent = bot
        .wait_for_calls("sendMessage", 1, Duration::from_secs(30))
        .await;
    assert_eq!(sent[0].text(), Some("Welcome."));
}

/// One-tap exec approvals in Telegram: the node asks before running a command, the owner
/// (`commands.ownerAllowFrom`) gets a card with Allow Once / Allow Always / Deny; a press by
/// someone who may not approve gets an alert and changes nothing; the owner's press runs the
/// command, the card is edited with the outcome and the reply reaches the chat.
#[tokio::test]
async fn a_telegram_exec_approval_is_answered_with_an_inline_button() {
    const BOT_TOKEN: &str = "44:approve-buttons";
    const OWNER: i64 = 6001;
    const STRANGER: i64 = 6002;
    let bot = FakeBotApi::start(BOT_TOKEN).await;
    let mock = ModelMock::start(WireFormat::OpenAi).await;
    let mut config = mock.primary_config();
    config["channels"] = json!({"telegram": {
        "botToken": BOT_TOKEN, "apiRoot": bot.api_root(),
        "dmPolicy": "allowlist", "allowFrom": [OWNER.to_string()],
    }});
    config["commands"] = json!({"ownerAllowFrom": [format!("telegram:{OWNER}")]});
    let gw = clawgate().start_token_gateway(&config, TOKEN).await;
    let mut ws = operator(gw.url()).await;
    let (_node, node_id) = approved_node(gw.home(), gw.port(), TOKEN, &mut ws).await;
    ask_for_every_command(&mut ws, &node_id).await;
    mock.push(Reply::tool_call(
        "exec",
        json!({"command": "echo approved-from-telegram", "host": "node"}),
    ));
    mock.push(Reply::text("It ran."));
    bot.inject_dm(OWNER, "run it");

    let deadline = Instant::now() + Duration::from_secs(30);
    let card = loop {
        let card = bot
            .calls_to("sendMessage")
            .into_iter()
            .find(|c| c.params.get("reply_markup").is_some());
        if let Some(card) = card {
            break card;
        }
        assert!(
            Instant::now() < deadline,
            "no approval card: {:?}",
            bot.calls()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(card.chat_id().as_deref(), Some(OWNER.to_string().as_str()));
    let text = card.text().unwrap();
    assert!(text.contains("echo approved-from-telegram"), "{text}");
    assert!(text.contains(&node_id), "{text}");
    let buttons = card.params["reply_markup"]["inline_keyboard"][0]
        .as_array()
        .unwrap()
        .clone();
    let labels: Vec<&str> = buttons
        .iter()
        .map(|b| b["text"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["Allow Once", "Allow Always", "Deny"]);
    let allow_once = buttons[0]["callback_data"].as_str().unwrap().to_owned();
    assert!(allow_once.starts_with("tga1:e:o:"), "{allow_once}");
    let press = |query_id: &str, from: i64| {
        json!({"callback_query": {
            "id": query_id,
            "from": {"id": from, "is_bot": false, "first_name": "Presser"},
            "message": {"message_id": 1, "chat": {"id": OWNER, "type": "private"}, "text": text},
            "data": allow_once,
        }})
    };

    // Someone who may not approve: an alert, and the approval still waits.
    bot.inject_update(press("q-stranger", STRANGER));
    let answers = bot
        .wait_for_calls("answerCallbackQuery", 1, Duration::from_secs(30))
        .await;
    assert_eq!(answers[0].params["callback_query_id"], "q-stranger");
    assert_eq!(answers[0].params["show_alert"], true);
    let alert = answers[0].params["text"].as_str().unwrap();
    assert!(alert.contains("may not answer exec approvals"), "{alert}");
    let pending = ws
        .request("exec.approval.list", json!({}), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        pending["payload"]["approvals"].as_array().map(Vec::len),
        Some(1),
        "{pending:#}"
    );

    // The owner: the command runs, the reply arrives, the card shows the outcome.
    bot.inject_update(press("q-owner", OWNER));
    let answers = bot
        .wait_for_calls("answerCallbackQuery", 2, Duration::from_secs(30))
        .await;
    assert_eq!(answers[1].params["callback_query_id"], "q-owner");
    assert_eq!(answers[1].params["text"], "✅ Allowed once.");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !bot
        .sent_messages()
        .iter()
        .any(|(chat, text)| *chat == OWNER.to_string() && text == "It ran.")
    {
        assert!(
            Instant::now() < deadline,
            "no reply: {:?}",
            bot.sent_messages()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let follow_up = mock.requests()[1].body["messages"].to_string();
    assert!(
        follow_up.contains(&format!("Node: {node_id}\\napproved-from-telegram")),
        "{follow_up}"
    );
    let edits = bot
        .wait_for_calls("editMessageText", 1, Duration::from_secs(30))
        .await;
    let edited = edits[0].text().unwrap();
    assert!(edited.contains("Allowed once"), "{edited}");
    assert!(edited.contains("echo approved-from-telegram"), "{edited}");
    assert!(
        edits[0].params.get("reply_markup").is_none(),
        "the buttons are gone"
    );
}
