//! Nodes end to end over real sockets: capability approval, node.invoke relayed to a node and
//! back, timeouts with cancel, node errors, disconnects, and the bad inputs of the captures.

mod common;

use common::*;
use ed25519_dalek::SigningKey;
use serde_json::{Value, json};
use std::time::Duration;

const COMMANDS: &[&str] = &[
    "system.run",
    "system.which",
    "system.run.prepare",
    "file.fetch",
    "ollama.chat",
];

/// A node host's connect, like the real one's (device-signed, role node).
async fn node(gw: &TestGateway, seed: u8) -> (Client, String) {
    let key = SigningKey::from_bytes(&[seed; 32]);
    let mut c = Client::open(gw.addr).await;
    let nonce = c.nonce();
    let params = json!({"minProtocol":4,"maxProtocol":4,
        "client":{"id":"node-host","displayName":"proto-node","version":"2026.9.6","platform":"linux","deviceFamily":"Linux","mode":"node"},
        "caps":["system"],"commands":COMMANDS,"pathEnv":"/usr/bin:/bin","auth":{"token":TOKEN},"role":"node","scopes":[]});
    let res = c.connect(sign(params, &key, &nonce, now_ms())).await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(res["payload"]["auth"]["role"], "node");
    assert!(res["payload"]["auth"]["deviceToken"].is_string());
    (
        c,
        clawgate_protocol::device::device_id(&key.verifying_key()),
    )
}

async fn operator(gw: &TestGateway, scopes: &[&str]) -> Client {
    let mut c = Client::open(gw.addr).await;
    assert_eq!(c.connect(cli_params(scopes)).await["ok"], true);
    c
}

async fn next_event(c: &mut Client, name: &str) -> Value {
    loop {
        let f = c.recv().await;
        if f["type"] == "event" && f["event"] == name {
            return f;
        }
    }
}

/// Approves the node's pending surface and returns once it is approved.
async fn approve(gw: &TestGateway, node_id: &str) {
    let mut admin = operator(gw, &["operator.pairing", "operator.admin"]).await;
    let list = admin.call("l", "node.pair.list", json!({})).await;
    let req = list["payload"]["pending"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["nodeId"] == node_id)
        .unwrap()
        .clone();
    let r = admin
        .call(
            "a",
            "node.pair.approve",
            json!({"requestId": req["requestId"]}),
        )
        .await;
    assert_eq!(r["ok"], true, "{r}");
}

/// The node side of one invoke: the request event, answered with `result`.
async fn answer(node: &mut Client, node_id: &str, result: Value) -> Value {
    let req = next_event(node, "node.invoke.request").await;
    assert!(req.get("seq").is_none(), "targeted events carry no seq");
    let mut params = result;
    params["id"] = req["payload"]["id"].clone();
    params["nodeId"] = json!(node_id);
    let r = node.call("r", "node.invoke.result", params).await;
    assert_eq!(r["payload"], json!({"ok": true}));
    req["payload"].clone()
}

#[tokio::test]
async fn capability_approval_gates_the_node_commands() {
    let gw = start(|_| {}).await;
    let mut watcher = operator(&gw, &["operator.admin"]).await;
    let (mut n, node_id) = node(&gw, 40).await;

    let ev = next_event(&mut watcher, "node.pair.requested").await;
    let p = &ev["payload"];
    assert_eq!(p["nodeId"], node_id);
    assert_eq!(
        p["requiredApproveScopes"],
        json!(["operator.pairing", "operator.admin"])
    );
    assert_eq!(p["silent"], true);
    assert_eq!(
        p["commands"],
        json!([
            "ollama.chat",
            "system.run",
            "system.run.prepare",
            "system.which"
        ]),
        "plugin commands (file.*) are not in the approval surface"
    );
    let request_id = p["requestId"].as_str().unwrap().to_owned();

    let r = n
        .call(
            "u",
            "node.runnerInventory.update",
            json!({"protocolFeatures":[],"workerHost":{"enabled":false}}),
        )
        .await;
    assert_eq!(r["error"]["code"], "UNAVAILABLE");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("nodes approve {request_id}")),
        "{r}"
    );

    let mut op = operator(&gw, &["operator.write", "operator.read"]).await;
    let list = op.call("l", "node.list", json!({})).await;
    assert_eq!(
        list["payload"]["nodes"][0]["approvalState"],
        "pending-approval"
    );
    let r = op.call("i", "node.invoke", json!({"nodeId":node_id,"command":"system.which","params":{"bins":["sh"]},"idempotencyKey":"k"})).await;
    assert_eq!(
        r["error"]["details"]["reason"], "node did not declare commands",
        "{r}"
    );

    // Approving shell access takes pairing + admin.
    let mut pairing_only = operator(&gw, &["operator.pairing"]).await;
    let r = pairing_only
        .call("a", "node.pair.approve", json!({"requestId": request_id}))
        .await;
    assert_eq!(r["error"]["message"], "missing scope: operator.admin");
    let mut admin = operator(&gw, &["operator.pairing", "operator.admin"]).await;
    let r = admin
        .call("a", "node.pair.approve", json!({"requestId": request_id}))
        .await;
    assert_eq!(r["payload"]["node"]["nodeId"], node_id);
    let resolved = next_event(&mut n, "node.pair.resolved").await;
    assert!(resolved.get("seq").is_none());
    assert_eq!(resolved["payload"]["decision"], "approved");
    let r = n.call("u2", "node.runnerInventory.update", json!({})).await;
    assert_eq!(r["payload"], json!({"nodeId": node_id}));

    let d = op
        .call("d", "node.describe", json!({"nodeId": node_id}))
        .await["payload"]
        .clone();
    assert_eq!(d["approvalState"], "approved");
    assert_eq!(d["connected"], true);
    assert_eq!(d["paired"], true);
    assert_eq!(d["pathEnv"], "/usr/bin:/bin");
    assert_eq!(
        d["commands"],
        json!([
            "ollama.chat",
            "system.run",
            "system.run.prepare",
            "system.which"
        ])
    );
    assert_eq!(
        op.call("x", "node.describe", json!({"nodeId":"nope"}))
            .await["error"],
        json!({"code":"INVALID_REQUEST","message":"unknown nodeId"})
    );
}

#[tokio::test]
async fn invoke_round_trip_and_the_recorded_errors() {
    let cap = Capture::load("node-invoke-timeout-and-errors.jsonl");
    let gw = start(|_| {}).await;
    let (mut n, node_id) = node(&gw, 41).await;
    approve(&gw, &node_id).await;
    let mut op = operator(&gw, &["operator.write", "operator.read"]).await;

    // system.which: params re-serialized to paramsJSON, the remaining budget, the key.
    op.send(json!({"type":"req","id":"w","method":"node.invoke","params":{"nodeId":node_id,"command":"system.which","params":{"bins":["echo","sh","nonexistent-bin"]},"idempotencyKey":"ccc","timeoutMs":15000}})).await;
    let req = answer(&mut n, &node_id, json!({"ok":true,"payloadJSON":"{\"bins\":{\"echo\":\"/usr/bin/echo\",\"sh\":\"/usr/bin/sh\"}}"})).await;
    assert_eq!(
        req["paramsJSON"],
        "{\"bins\":[\"echo\",\"sh\",\"nonexistent-bin\"]}"
    );
    assert_eq!(req["idempotencyKey"], "ccc");
    let budget = req["timeoutMs"].as_u64().unwrap();
    assert!(budget <= 15000 && budget > 14000, "{budget}");
    let res = op.recv_res().await;
    assert_eq!(
        res["payload"],
        json!({"ok":true,"nodeId":node_id,"command":"system.which","payload":{"bins":{"echo":"/usr/bin/echo","sh":"/usr/bin/sh"}},"payloadJSON":"{\"bins\":{\"echo\":\"/usr/bin/echo\",\"sh\":\"/usr/bin/sh\"}}"})
    );

    // system.run gets a runId; a node error passes through as the capture shows.
    op.send(json!({"type":"req","id":"r","method":"node.invoke","params":{"nodeId":node_id,"command":"system.run","params":{"command":["echo","hi"]},"idempotencyKey":"run-1"}})).await;
    let req = answer(&mut n, &node_id, json!({"ok":false,"error":{"code":"SYSTEM_RUN_DENIED","message":"SYSTEM_RUN_DENIED: allowlist miss"}})).await;
    let forwarded: Value = serde_json::from_str(req["paramsJSON"].as_str().unwrap()).unwrap();
    assert_eq!(forwarded["command"], json!(["echo", "hi"]));
    assert_eq!(forwarded["runId"].as_str().unwrap().len(), 36);
    let budget = req["timeoutMs"].as_u64().unwrap();
    assert!(
        budget <= 30_000 && budget > 29_000,
        "default budget is 30 s: {budget}"
    );
    let res = op.recv_res().await;
    assert_eq!(
        res["error"],
        json!({"code":"UNAVAILABLE","message":"SYSTEM_RUN_DENIED: SYSTEM_RUN_DENIED: allowlist miss","details":{"nodeError":{"code":"SYSTEM_RUN_DENIED","message":"SYSTEM_RUN_DENIED: allowlist miss"},"nodeCommandDispatched":true}})
    );

    // A silent node: TIMEOUT for the caller, node.invoke.cancel for the node.
    op.send(json!({"type":"req","id":"m2","method":"node.invoke","params":{"nodeId":node_id,"command":"system.run","params":{"command":["sleep","5"]},"idempotencyKey":"to-1","timeoutMs":300}})).await;
    let req = next_event(&mut n, "node.invoke.request").await;
    let res = op.recv_res().await;
    assert_eq!(res["error"], cap.responses(33)[1]["error"]);
    let cancel = next_event(&mut n, "node.invoke.cancel").await;
    assert_eq!(
        cancel["payload"],
        json!({"invokeId": req["payload"]["id"], "nodeId": node_id})
    );
    // Its late result is acknowledged and ignored.
    let late = n
        .call(
            "late",
            "node.invoke.result",
            json!({"id":req["payload"]["id"],"nodeId":node_id,"ok":true}),
        )
        .await;
    assert_eq!(late["payload"], json!({"ok": true, "ignored": true}));

    // Not allowlisted, as captured.
    let r = op
        .call(
            "m3",
            "node.invoke",
            json!({"nodeId":node_id,"command":"camera.snap","params":{},"idempotencyKey":"bad-1"}),
        )
        .await;
    assert_eq!(r["error"], cap.responses(33)[2]["error"]);

    // The same idempotency key twice reaches the node twice (node.invoke is not deduplicated).
    for i in 0..2 {
        op.send(json!({"type":"req","id":format!("dup{i}"),"method":"node.invoke","params":{"nodeId":node_id,"command":"system.which","params":{"bins":["ls"]},"idempotencyKey":"dup-1"}})).await;
        answer(
            &mut n,
            &node_id,
            json!({"ok":true,"payloadJSON":"{\"bins\":{}}"}),
        )
        .await;
        assert_eq!(op.recv_res().await["ok"], true);
    }
}

#[tokio::test]
async fn bad_input_from_operators_and_nodes() {
    let post = Capture::load("post-handshake-errors.jsonl");
    let gw = start(|_| {}).await;
    let (mut n, node_id) = node(&gw, 42).await;
    let (mut other, other_id) = node(&gw, 43).await;
    approve(&gw, &node_id).await;
    let mut op = operator(&gw, &["operator.write", "operator.read"]).await;

    let r = op
        .call(
            "m5",
            "node.invoke",
            json!({"nodeId":"nope","command":"system.which","params":{}}),
        )
        .await;
    assert_eq!(r, {
        let mut e = post.responses(31)[4].clone();
        e["id"] = json!("m5");
        e
    });
    let r = op
        .call(
            "m6",
            "node.invoke",
            json!({"nodeId":"nope","command":"system.which","params":{},"idempotencyKey":"k1"}),
        )
        .await;
    assert_eq!(r, {
        let mut e = post.responses(31)[5].clone();
        e["id"] = json!("m6");
        e
    });

    // A result claiming another node's id; a result for someone else's invoke.
    op.send(json!({"type":"req","id":"w","method":"node.invoke","params":{"nodeId":node_id,"command":"system.which","params":{"bins":["sh"]},"idempotencyKey":"k2"}})).await;
    let req = next_event(&mut n, "node.invoke.request").await;
    let invoke_id = req["payload"]["id"].clone();
    let r = other
        .call(
            "x",
            "node.invoke.result",
            json!({"id":invoke_id,"nodeId":node_id,"ok":true}),
        )
        .await;
    assert_eq!(r["error"]["message"], "nodeId mismatch");
    let r = other
        .call(
            "y",
            "node.invoke.result",
            json!({"id":invoke_id,"nodeId":other_id,"ok":true,"payloadJSON":"{\"forged\":true}"}),
        )
        .await;
    assert_eq!(r["payload"], json!({"ok": true, "ignored": true}));
    // The real owner still answers it.
    let r = n.call("z", "node.invoke.result", json!({"id":invoke_id,"nodeId":node_id,"ok":true,"payloadJSON":"{\"bins\":{\"sh\":\"/bin/sh\"}}"})).await;
    assert_eq!(r["payload"], json!({"ok": true}));
    assert_eq!(
        op.recv_res().await["payload"]["payload"],
        json!({"bins":{"sh":"/bin/sh"}})
    );

    // Oversize progress chunks are refused; a node calling operator methods is refused.
    let r = n
        .call(
            "p",
            "node.invoke.progress",
            json!({"invokeId":"i","nodeId":node_id,"seq":1,"chunk":"x".repeat(20_000)}),
        )
        .await;
    assert_eq!(r["error"]["code"], "INVALID_REQUEST");
    let r = n.call("q", "node.list", json!({})).await;
    assert_eq!(
        r["error"],
        json!({"code":"INVALID_REQUEST","message":"unauthorized role: node"})
    );

    // Host stats reach operators as node.hostStats.
    let r = n
        .call(
            "s",
            "node.event",
            json!({"event":"node.host.stats","payloadJSON":"{\"cpuCount\":2}"}),
        )
        .await;
    assert_eq!(
        r["payload"],
        json!({"ok":true,"event":"node.host.stats","handled":true,"reason":"updated"})
    );
    let ev = next_event(&mut op, "node.hostStats").await;
    assert_eq!(ev["payload"]["hostStats"]["cpuCount"], 2);
    let r = n
        .call(
            "pa",
            "node.event",
            json!({"event":"node.presence.alive","payloadJSON":"{}"}),
        )
        .await;
    assert_eq!(r["payload"]["handled"], true);
    let ev = next_event(&mut op, "node.presence").await;
    assert_eq!(ev["payload"]["nodeId"], node_id);

    // The gateway is still healthy.
    assert_eq!(op.call("h", "health", json!({})).await["ok"], true);
}

#[tokio::test]
async fn a_node_that_drops_fails_its_invokes_and_shows_offline() {
    let gw = start(|_| {}).await;
    let (mut n, node_id) = node(&gw, 44).await;
    approve(&gw, &node_id).await;
    let mut op = operator(&gw, &["operator.write", "operator.read"]).await;
    op.send(json!({"type":"req","id":"w","method":"node.invoke","params":{"nodeId":node_id,"command":"system.which","params":{"bins":["sh"]},"idempotencyKey":"k","timeoutMs":10000}})).await;
    next_event(&mut n, "node.invoke.request").await;
    drop(n);
    let res = op.recv_res().await;
    assert_eq!(
        res["error"]["details"]["nodeError"]["code"], "DISCONNECTED",
        "{res}"
    );
    let mut tries = 0;
    loop {
        let d = op
            .call("d", "node.describe", json!({"nodeId": node_id}))
            .await["payload"]
            .clone();
        if d["connected"] == false {
            assert_eq!(d["paired"], true);
            break;
        }
        tries += 1;
        assert!(tries < 100, "node still shown connected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = op
        .call(
            "i",
            "node.invoke",
            json!({"nodeId":node_id,"command":"system.which","params":{},"idempotencyKey":"k"}),
        )
        .await;
    assert_eq!(
        r["error"],
        json!({"code":"UNAVAILABLE","message":"node not connected","details":{"code":"NOT_CONNECTED","nodeCommandDispatched":false}})
    );
}

#[tokio::test]
async fn a_node_flooding_events_is_cut_off_and_the_gateway_stays_healthy() {
    let gw = start(|_| {}).await;
    let (mut n, node_id) = node(&gw, 45).await;
    for i in 0..400 {
        n.send(json!({"type":"req","id":format!("e{i}"),"method":"node.event","params":{"event":"exec.finished","payloadJSON":"{}"}})).await;
    }
    assert_eq!(
        n.expect_close().await,
        (1008, "too many node events".into())
    );
    let mut op = operator(&gw, &["operator.read"]).await;
    assert_eq!(op.call("h", "health", json!({})).await["ok"], true);
    let _ = node_id;
}
