//! The real OpenClaw 2026.9.6 node host and CLI against a clawgate gateway: device pairing
//! through `openclaw devices`, capability approval through `openclaw nodes approve` and
//! `clawgate nodes approve`, invokes through the real CLI, a clean timeout, and the node shown
//! offline once killed. Runs through ./scripts/test (loopback-only namespace).

use clawgate_testkit::{
    ChildProcess, ClawgateBin, ClawgateGateway, FakeBotApi, IsolatedHome, ModelMock, OpenClaw,
    Output, Reply, Value, WireFormat, json,
};
use std::time::{Duration, Instant};

const TOKEN: &str = "interop-nodes-token-73c1";

async fn clawgate_gateway(config: Value) -> ClawgateGateway {
    ClawgateBin::new(env!("CARGO_BIN_EXE_clawgate"))
        .start_token_gateway(&config, TOKEN)
        .await
}

fn spawn_real_node(
    oc: &OpenClaw,
    gw: &ClawgateGateway,
    home: &IsolatedHome,
    name: &str,
) -> ChildProcess {
    let mut cmd = tokio::process::Command::new(oc.bin());
    cmd.args(["node", "run", "--host", "127.0.0.1", "--port"])
        .arg(gw.port().to_string())
        .args(["--display-name", name]);
    home.apply(&mut cmd);
    cmd.env("OPENCLAW_GATEWAY_TOKEN", TOKEN);
    ChildProcess::spawn(cmd, "openclaw node run").expect("spawning openclaw node run")
}

fn remote(gw: &ClawgateGateway) -> Value {
    json!({"gateway": {"mode": "remote", "remote": {"url": gw.url(), "token": TOKEN}}})
}

/// The real CLI in remote mode against `gw`.
async fn real_cli(oc: &OpenClaw, gw: &ClawgateGateway, args: &[&str]) -> Output {
    oc.cli().config(remote(gw)).args(args).run().await
}

fn ok_json(out: &Output) -> Value {
    out.assert_success();
    out.json()
}

/// Polls `f` until it returns Some, or fails after `secs`.
async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn the_real_node_host_pairs_is_approved_and_serves_invokes() {
    let oc = OpenClaw::from_env();
    // The node is treated like a remote device: its pairing needs `openclaw devices approve`.
    let gw =
        clawgate_gateway(json!({"gateway": {"nodes": {"pairing": {"autoApproveLocal": false}}}}))
            .await;
    let node_home = IsolatedHome::new();
    let mut node = spawn_real_node(&oc, &gw, &node_home, "interop-node");

    // Device pairing, managed by the real CLI.
    let request = eventually(60, "the node's device pairing request", || async {
        let out = real_cli(&oc, &gw, &["devices", "list", "--json"]).await;
        let list = ok_json(&out);
        list["pending"]
            .as_array()
            .and_then(|p| p.iter().find(|r| r["role"] == "node").cloned())
    })
    .await;
    assert_eq!(request["clientId"], "node-host");
    let node_id = request["deviceId"].as_str().unwrap().to_owned();
    let out = real_cli(
        &oc,
        &gw,
        &["devices", "approve", request["requestId"].as_str().unwrap()],
    )
    .await;
    out.assert_success();

    // Capability approval, with the real CLI.
    let pending = eventually(60, "the node's capability request", || async {
        let out = real_cli(&oc, &gw, &["nodes", "pending", "--json"]).await;
        let list = ok_json(&out);
        list.as_array()
            .and_then(|p| p.iter().find(|r| r["nodeId"] == node_id).cloned())
    })
    .await;
    let out = real_cli(
        &oc,
        &gw,
        &["nodes", "approve", pending["requestId"].as_str().unwrap()],
    )
    .await;
    out.assert_success();
    eventually(30, "approvalState approved", || async {
        let out = real_cli(&oc, &gw, &["nodes", "status", "--json"]).await;
        let status = ok_json(&out);
        status["nodes"].as_array().and_then(|n| {
            n.iter()
                .find(|n| {
                    n["nodeId"] == node_id
                        && n["approvalState"] == "approved"
                        && n["connected"] == true
                })
                .cloned()
        })
    })
    .await;

    let invoke = |command: &str, params: Value, timeout: Option<u64>, key: &str| {
        let mut p =
            json!({"nodeId": node_id, "command": command, "params": params, "idempotencyKey": key});
        if let Some(t) = timeout {
            p["timeoutMs"] = json!(t);
        }
        oc.cli()
            .config(remote(&gw))
            .args(["gateway", "call", "node.invoke", "--json", "--params"])
            .arg(p.to_string())
    };
    let out = invoke(
        "system.which",
        json!({"bins": ["sh", "no-such-binary-here"]}),
        None,
        "which-1",
    )
    .run()
    .await;
    let res = ok_json(&out);
    assert!(
        res["payload"]["bins"]["sh"]
            .as_str()
            .unwrap()
            .ends_with("/sh"),
        "{out}"
    );
    assert!(res["payload"]["bins"].get("no-such-binary-here").is_none());

    let out = invoke(
        "system.run",
        json!({"command": ["echo", "hi"]}),
        None,
        "run-1",
    )
    .run()
    .await;
    let res = ok_json(&out);
    assert_eq!(res["payload"]["stdout"], "hi\n", "{out}");
    assert_eq!(res["payload"]["exitCode"], 0);

    // `sleep 5` with a 1 s budget: the gateway's clean TIMEOUT (and a cancel to the node), not
    // the command's end. (Wall time is not asserted: the real CLI's own start-up dominates it.)
    let out = invoke(
        "system.run",
        json!({"command": ["sleep", "5"]}),
        Some(1000),
        "sleep-1",
    )
    .run()
    .await;
    out.assert_code(1);
    assert_eq!(
        out.json()["error"]["message"],
        "TIMEOUT: node invoke timed out",
        "{out}"
    );
    assert_eq!(
        out.json()["error"]["details"]["nodeError"]["code"],
        "TIMEOUT"
    );

    // Killed: shown disconnected, still paired.
    node.stop(Duration::from_secs(5)).await;
    eventually(30, "the node shown disconnected", || async {
        let out = real_cli(&oc, &gw, &["nodes", "status", "--json"]).await;
        let status = ok_json(&out);
        status["nodes"].as_array().and_then(|n| {
            n.iter()
                .find(|n| n["nodeId"] == node_id && n["connected"] == false)
                .cloned()
        })
    })
    .await;
}

/// Waits until `node.list` (through the real CLI) shows the node connected with `system.run`.
async fn wait_until_it_runs_commands(oc: &OpenClaw, gw: &ClawgateGateway, node_id: &str) {
    eventually(30, "the node connected with system.run", || async {
        let out = real_cli(oc, gw, &["gateway", "call", "node.list", "--json"]).await;
        let list = ok_json(&out);
        list["nodes"].as_array().and_then(|n| {
            n.iter()
                .find(|n| n["nodeId"] == node_id && n["connected"] == true)
                .filter(|n| {
                    n["commands"]
                        .as_array()
                        .is_some_and(|c| c.contains(&json!("system.run")))
                })
                .cloned()
        })
    })
    .await;
}

/// Approves the command surface of the real node host named `name` with `clawgate nodes
/// approve`; returns its node id.
async fn approve_with_clawgate(gw: &ClawgateGateway, name: &str) -> String {
    let cg = |args: &[&str]| {
        ClawgateBin::new(env!("CARGO_BIN_EXE_clawgate"))
            .cli()
            .config(json!({}))
            .args(args.iter().copied())
            .args(["--url", gw.url(), "--token", TOKEN])
    };
    let request = eventually(60, "the capability request", || async {
        let out = cg(&["nodes", "pending", "--json"]).run().await;
        let list = ok_json(&out);
        let rows = list
            .as_array()
            .cloned()
            .or_else(|| list["pending"].as_array().cloned())
            .unwrap_or_default();
        rows.into_iter().find(|r| r["displayName"] == name)
    })
    .await;
    let out = cg(&["nodes", "approve", request["requestId"].as_str().unwrap()])
        .run()
        .await;
    out.assert_success();
    request["nodeId"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn clawgate_nodes_approve_approves_a_real_node_host() {
    let oc = OpenClaw::from_env();
    let gw = clawgate_gateway(json!({})).await;
    let node_home = IsolatedHome::new();
    let mut node = spawn_real_node(&oc, &gw, &node_home, "second-node");
    let node_id = approve_with_clawgate(&gw, "second-node").await;
    let out = oc
        .cli()
        .config(remote(&gw))
        .args(["gateway", "call", "node.invoke", "--json", "--params"])
        .arg(json!({"nodeId": node_id, "command": "system.which", "params": {"bins": ["sh"]}, "idempotencyKey": "w"}).to_string())
        .run()
        .await;
    assert!(ok_json(&out)["payload"]["bins"]["sh"].is_string(), "{out}");
    node.stop(Duration::from_secs(5)).await;
}

/// `gateway.nodes.pairing.autoApproveCidrs` covering the real node host's address: it pairs
/// on its first connect with no `devices approve` (the real CLI lists it as paired through
/// `trusted-cidr`, nothing pending), and then asks only for its command surface.
#[tokio::test]
async fn the_real_node_host_from_a_trusted_cidr_pairs_without_asking() {
    let oc = OpenClaw::from_env();
    let gw = clawgate_gateway(json!({"gateway": {"nodes": {"pairing": {
        "autoApproveLocal": false, "autoApproveCidrs": ["127.0.0.0/8"]}}}}))
    .await;
    let node_home = IsolatedHome::new();
    let mut node = spawn_real_node(&oc, &gw, &node_home, "cidr-node");
    let paired = eventually(60, "the node paired through trusted-cidr", || async {
        let out = real_cli(&oc, &gw, &["devices", "list", "--json"]).await;
        let list = ok_json(&out);
        let node = list["paired"]
            .as_array()?
            .iter()
            .find(|d| d["clientId"] == "node-host")
            .cloned()?;
        Some((node, list))
    })
    .await;
    let (device, list) = paired;
    assert_eq!(device["approvedVia"], "trusted-cidr", "{list:#}");
    assert!(
        list["pending"].as_array().is_none_or(|p| p.is_empty()),
        "{list:#}"
    );
    let node_id = device["deviceId"].as_str().unwrap().to_owned();
    // Its command surface still waits for an operator.
    eventually(60, "the node's capability request", || async {
        let out = real_cli(&oc, &gw, &["nodes", "pending", "--json"]).await;
        ok_json(&out)
            .as_array()
            .and_then(|p| p.iter().find(|r| r["nodeId"] == node_id).cloned())
    })
    .await;
    node.stop(Duration::from_secs(10)).await;
}

/// The seed's middle with the real OpenClaw processes around clawgate: the real CLI sends
/// `chat.send`, the agent's `exec host=node` runs on the real `openclaw node run` (its output
/// names the node host's own home, which only that process has), the follow-up model request
/// carries it, and the real CLI reads the reply with `chat.history` and runs `openclaw agent`.
#[tokio::test]
async fn the_agent_runs_a_command_on_the_real_node_host_for_the_real_cli() {
    let oc = OpenClaw::from_env();
    let mock = ModelMock::start(WireFormat::OpenAi).await;
    let gw = clawgate_gateway(mock.primary_config()).await;
    let node_home = IsolatedHome::new();
    let mut node = spawn_real_node(&oc, &gw, &node_home, "agent-node");
    let node_id = approve_with_clawgate(&gw, "agent-node").await;
    wait_until_it_runs_commands(&oc, &gw, &node_id).await;

    mock.push(Reply::tool_call(
        "exec",
        json!({"command": "echo node-home=$HOME", "host": "node"}),
    ));
    mock.push(Reply::text("It runs in its own home."));
    let call = |method: &str, params: Value| {
        oc.cli()
            .config(remote(&gw))
            .args(["gateway", "call", method, "--json", "--params"])
            .arg(params.to_string())
    };
    let out = call(
        "chat.send",
        json!({"sessionKey": "agent:main:main", "message": "where?", "idempotencyKey": "real-cli-1"}),
    )
    .run()
    .await;
    assert_eq!(
        ok_json(&out),
        json!({"runId": "real-cli-1", "status": "started"}),
        "{out}"
    );
    let history = eventually(60, "the reply in chat.history", || async {
        let out = call("chat.history", json!({"sessionKey": "agent:main:main"}))
            .run()
            .await;
        let history = ok_json(&out);
        let done = history["messages"].as_array().is_some_and(|m| m.len() == 4);
        done.then_some(history)
    })
    .await;
    let messages = history["messages"].as_array().unwrap();
    let expected = format!("Node: {node_id}\nnode-home={}", node_home.home().display());
    assert_eq!(
        messages[2]["content"][0]["text"],
        expected.as_str(),
        "{history:#}"
    );
    assert_eq!(
        messages[3]["content"][0]["text"],
        "It runs in its own home."
    );
    let follow_up = mock.requests()[1].body["messages"].to_string();
    assert!(follow_up.contains("node-home="), "{follow_up}");

    // The real `openclaw agent` through the gateway.
    mock.push(Reply::text("Hi from clawgate."));
    let out = oc
        .cli()
        .config(remote(&gw))
        .args(["agent", "--message", "hi", "--agent", "main", "--json"])
        .run()
        .await;
    out.assert_success();
    assert!(out.stdout.contains("Hi from clawgate."), "{out}");
    node.stop(Duration::from_secs(5)).await;
}

/// The seed flow with the real node host: a Telegram DM from an approved sender runs
/// `exec host=node` on the real `openclaw node run`, whose output (its own home, which only
/// its process has) reaches the model and the reply reaches the chat.
#[tokio::test]
async fn a_telegram_dm_runs_a_command_on_the_real_node_host() {
    const BOT_TOKEN: &str = "654321:seed-real-node";
    const USER: i64 = 777;
    let oc = OpenClaw::from_env();
    let bot = FakeBotApi::start(BOT_TOKEN).await;
    let mock = ModelMock::start(WireFormat::OpenAi).await;
    let mut config = mock.primary_config();
    config["channels"] = json!({"telegram": {"botToken": BOT_TOKEN, "apiRoot": bot.api_root(), "dmPolicy": "allowlist", "allowFrom": [USER.to_string()]}});
    let gw = clawgate_gateway(config).await;
    let node_home = IsolatedHome::new();
    let mut node = spawn_real_node(&oc, &gw, &node_home, "seed-node");
    let node_id = approve_with_clawgate(&gw, "seed-node").await;
    wait_until_it_runs_commands(&oc, &gw, &node_id).await;
    mock.push(Reply::tool_call(
        "exec",
        json!({"command": "echo node-home=$HOME", "host": "node"}),
    ));
    mock.push(Reply::text("Done on your node."));
    bot.inject_dm(USER, "where does my node live?");
    let sent = bot
        .wait_for_calls("sendMessage", 1, Duration::from_secs(60))
        .await;
    assert_eq!(sent[0].text(), Some("Done on your node."));
    let follow_up = mock.requests()[1].body["messages"].to_string();
    let expected = format!("Node: {node_id}\\nnode-home={}", node_home.home().display());
    assert!(follow_up.contains(&expected), "{follow_up}");
    node.stop(Duration::from_secs(5)).await;
}
