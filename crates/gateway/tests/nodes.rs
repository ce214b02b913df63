//! Nodes end to end over real sockets: capability approval, node.invoke relayed to a node and
//! back, timeouts with cancel, node errors, disconnects, and the bad inputs of the captures;
//! invoke streaming (`node.invoke.progress`, `node.invoke.input`) and legacy protocol-3 nodes,
//! against what the real 2026.9.6 gateway answered to the same frames.

mod common;

use common::*;
use ed25519_dalek::SigningKey;
use serde_json::{Value, json};
use std::ops::ControlFlow;
use std::time::Duration;

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
    assert_eq!(
        r["error"],
        json!({"code":"INVALID_REQUEST","message":"invalid node.invoke.progress params: at /chunk: must not have more than 16384 characters"})
    );
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

/// Sends one request and returns its response with the events that arrived before it (`call`
/// would skip them).
async fn call_seeing_events(
    c: &mut Client,
    id: &str,
    method: &str,
    params: Value,
) -> (Value, Vec<Value>) {
    c.send(json!({"type":"req","id":id,"method":method,"params":params}))
        .await;
    let mut events = Vec::new();
    loop {
        let f = c.recv().await;
        if f["type"] == "res" {
            assert_eq!(f["id"], id);
            return (f, events);
        }
        if !matches!(f["event"].as_str(), Some("tick" | "health" | "presence")) {
            events.push(f);
        }
    }
}

async fn progress(
    n: &mut Client,
    invoke_id: &Value,
    node_id: &str,
    seq: i64,
    chunk: &str,
) -> Value {
    n.call(
        "p",
        "node.invoke.progress",
        json!({"invokeId":invoke_id,"nodeId":node_id,"seq":seq,"chunk":chunk}),
    )
    .await
}

/// Starts a streaming `system.run` on the node through the library API and returns the stream
/// with the `node.invoke.request` the node received.
async fn stream_run(
    gw: &TestGateway,
    n: &mut Client,
    node_id: &str,
    params: Value,
    timeout: Option<Duration>,
    idle_timeout: Option<Duration>,
) -> (clawgate_gateway::NodeInvokeStream, Value) {
    let s = gw
        .gateway
        .invoke_node_streaming(node_id, "system.run", Some(params), timeout, idle_timeout)
        .unwrap();
    (s, next_event(n, "node.invoke.request").await)
}

type StreamItem =
    ControlFlow<Result<(Value, Value), clawgate_protocol::errors::ErrorShape>, String>;

/// The stream's next item, waited for with a bound.
async fn next_item(s: &mut clawgate_gateway::NodeInvokeStream) -> StreamItem {
    tokio::time::timeout(WAIT, s.next())
        .await
        .expect("the stream moves on")
        .expect("the stream is not over")
}

fn chunk(item: StreamItem) -> String {
    match item {
        ControlFlow::Continue(c) => c,
        ControlFlow::Break(end) => panic!("expected a chunk, the invoke ended: {end:?}"),
    }
}

fn end(
    item: ControlFlow<Result<(Value, Value), clawgate_protocol::errors::ErrorShape>, String>,
) -> Result<(Value, Value), Value> {
    match item {
        ControlFlow::Break(end) => end.map_err(|e| serde_json::to_value(e).unwrap()),
        ControlFlow::Continue(c) => panic!("expected the end, got a chunk {c:?}"),
    }
}

/// Progress for an operator's `node.invoke` has no consumer: the real gateway acknowledges it
/// as ignored and operators see no event; after progress, `NODE_NOT_READY` becomes a plain
/// failure. Frames as the real 2026.9.6 gateway answered them.
#[tokio::test]
async fn progress_for_an_operator_invoke_is_acknowledged_and_dropped() {
    let gw = start(|_| {}).await;
    let (mut n, node_id) = node(&gw, 50).await;
    approve(&gw, &node_id).await;
    let mut op = operator(&gw, &["operator.write", "operator.read"]).await;
    op.send(json!({"type":"req","id":"w","method":"node.invoke","params":{"nodeId":node_id,"command":"system.which","params":{"bins":["sh"]},"idempotencyKey":"k1","timeoutMs":10000}})).await;
    let req = next_event(&mut n, "node.invoke.request").await;
    let id = &req["payload"]["id"];
    let ignored = json!({"ok": true, "ignored": true});
    for (seq, text) in [(0, "a"), (0, "a"), (5, "a"), (1, "")] {
        assert_eq!(
            progress(&mut n, id, &node_id, seq, text).await["payload"],
            ignored
        );
    }
    let r = n
        .call(
            "r",
            "node.invoke.result",
            json!({"id":id,"nodeId":node_id,"ok":false,"error":{"code":"NODE_NOT_READY","message":"not yet"}}),
        )
        .await;
    assert_eq!(r["payload"], json!({"ok": true}));
    // The operator's next frame is the answer: no progress event came before it.
    let res = loop {
        let f = op.recv().await;
        if f["event"] == "tick" || f["event"] == "health" || f["event"] == "presence" {
            continue;
        }
        break f;
    };
    assert_eq!(
        res,
        json!({"type":"res","id":"w","ok":false,"error":{"code":"UNAVAILABLE","message":"UNAVAILABLE: node reported not-ready after invocation progress","details":{"nodeError":{"code":"UNAVAILABLE","message":"node reported not-ready after invocation progress"},"nodeCommandDispatched":true}}})
    );
    assert_eq!(
        progress(&mut n, id, &node_id, 2, "late").await["payload"],
        ignored
    );
}

/// Bad `node.invoke.progress` frames get the real gateway's answers, checked in its order:
/// schema, node id, UTF-8 size.
#[tokio::test]
async fn bad_progress_gets_the_real_gateways_answers() {
    let gw = start(|_| {}).await;
    let (mut n, node_id) = node(&gw, 51).await;
    let big_chars = "x".repeat(16_385);
    let big_bytes = "é".repeat(9_000);
    let schema = |m: &str| json!({"code":"INVALID_REQUEST","message":format!("invalid node.invoke.progress params: {m}")});
    let mismatch = json!({"code":"INVALID_REQUEST","message":"nodeId mismatch"});
    let cases = [
        (
            json!({"invokeId":"nope","nodeId":node_id,"seq":0,"chunk":"x"}),
            None,
        ),
        (
            json!({"invokeId":"nope","nodeId":"other","seq":0,"chunk":"x"}),
            Some(mismatch.clone()),
        ),
        (
            json!({"invokeId":"nope","nodeId":node_id,"seq":0,"chunk":big_chars}),
            Some(schema(
                "at /chunk: must not have more than 16384 characters",
            )),
        ),
        (
            json!({"invokeId":"nope","nodeId":node_id,"seq":0,"chunk":big_bytes}),
            Some(json!({"code":"INVALID_REQUEST","message":"progress chunk too large"})),
        ),
        (
            json!({"invokeId":"nope","nodeId":node_id,"seq":-1,"chunk":"x"}),
            Some(schema("at /seq: must be >= 0")),
        ),
        (
            json!({"invokeId":"nope","nodeId":node_id}),
            Some(schema("must have required property 'seq'")),
        ),
        (
            json!({"invokeId":"nope","nodeId":node_id,"seq":0,"chunk":"x","foo":1}),
            Some(schema("at root: unexpected property 'foo'")),
        ),
        (
            json!({"invokeId":"","nodeId":node_id,"seq":0,"chunk":"x"}),
            Some(schema(
                "at /invokeId: must not have fewer than 1 characters",
            )),
        ),
        (
            json!({"invokeId":"nope","nodeId":"other","seq":0,"chunk":big_chars}),
            Some(schema(
                "at /chunk: must not have more than 16384 characters",
            )),
        ),
        (
            json!({"invokeId":"nope","nodeId":"other","seq":0,"chunk":big_bytes}),
            Some(mismatch),
        ),
    ];
    for (i, (params, error)) in cases.into_iter().enumerate() {
        let r = n
            .call(&format!("p{i}"), "node.invoke.progress", params)
            .await;
        match error {
            None => assert_eq!(r["payload"], json!({"ok": true, "ignored": true}), "{i}"),
            Some(e) => assert_eq!(r["error"], e, "{i}"),
        }
    }
    let mut op = operator(&gw, &["operator.admin"]).await;
    let r = op
        .call(
            "o",
            "node.invoke.progress",
            json!({"invokeId":"nope","nodeId":node_id,"seq":0,"chunk":"x"}),
        )
        .await;
    assert_eq!(
        r["error"],
        json!({"code":"INVALID_REQUEST","message":"unauthorized role: operator"})
    );
}

/// The library's streaming invoke: progress in `seq` order whatever order it arrives in
/// (duplicates and heartbeats dropped), `node.invoke.input` frames with their own `seq`, the
/// result after every chunk.
#[tokio::test]
async fn a_streaming_invoke_relays_ordered_progress_and_sends_input() {
    let gw = start(|_| {}).await;
    let (mut n, node_id) = node(&gw, 52).await;
    approve(&gw, &node_id).await;
    let (mut s, req) = stream_run(
        &gw,
        &mut n,
        &node_id,
        json!({"command":["cat"]}),
        Some(Duration::from_secs(20)),
        None,
    )
    .await;
    let id = req["payload"]["id"].clone();
    assert_eq!(id, s.invoke_id());
    assert_eq!(req["payload"]["command"], "system.run");
    assert_eq!(req["payload"]["paramsJSON"], "{\"command\":[\"cat\"]}");
    let budget = req["payload"]["timeoutMs"].as_u64().unwrap();
    assert!(budget <= 20_000 && budget > 19_000, "{budget}");

    let accepted = json!({"ok": true, "ignored": false});
    let ignored = json!({"ok": true, "ignored": true});
    assert_eq!(
        progress(&mut n, &id, &node_id, 1, "b").await["payload"],
        accepted,
        "held until 0 comes"
    );
    assert_eq!(
        progress(&mut n, &id, &node_id, 1, "b").await["payload"],
        ignored,
        "a duplicate"
    );
    assert_eq!(
        progress(&mut n, &id, &node_id, 0, "a").await["payload"],
        accepted
    );
    assert_eq!(
        progress(&mut n, &id, &node_id, 0, "a").await["payload"],
        ignored,
        "already passed"
    );
    assert_eq!(
        progress(&mut n, &id, &node_id, 2, "").await["payload"],
        accepted,
        "a heartbeat"
    );
    assert_eq!(
        progress(&mut n, &id, &node_id, 3, "c").await["payload"],
        accepted
    );
    assert_eq!(chunk(next_item(&mut s).await), "a");
    assert_eq!(chunk(next_item(&mut s).await), "b");
    assert_eq!(chunk(next_item(&mut s).await), "c");

    // Input: targeted events (no seq of the connection), seq 0, 1, … per invoke.
    for (seq, data) in ["hello\n", "world\n"].into_iter().enumerate() {
        gw.gateway
            .send_node_invoke_input(s.invoke_id(), &json!({"kind":"data","data":data}))
            .unwrap();
        let ev = next_event(&mut n, "node.invoke.input").await;
        assert_eq!(
            ev,
            json!({"type":"event","event":"node.invoke.input","payload":{"id":id,"nodeId":node_id,"seq":seq,"payloadJSON":format!("{{\"kind\":\"data\",\"data\":{}}}", json!(data))}})
        );
    }
    let too_big = json!({"kind":"data","data":"x".repeat(16_384)});
    assert_eq!(
        gw.gateway
            .send_node_invoke_input(s.invoke_id(), &too_big)
            .unwrap_err()
            .to_string(),
        "node invoke input exceeds 16 KiB"
    );
    assert_eq!(
        gw.gateway
            .send_node_invoke_input("nope", &json!({}))
            .unwrap_err()
            .to_string(),
        "node invoke is not pending"
    );

    // Chunks sent before the result all come before the outcome.
    assert_eq!(
        progress(&mut n, &id, &node_id, 4, "d").await["payload"],
        accepted
    );
    let r = n
        .call(
            "r",
            "node.invoke.result",
            json!({"id":id,"nodeId":node_id,"ok":true,"payloadJSON":"{\"exitCode\":0}"}),
        )
        .await;
    assert_eq!(r["payload"], json!({"ok": true}));
    assert_eq!(chunk(next_item(&mut s).await), "d");
    assert_eq!(
        end(next_item(&mut s).await),
        Ok((json!({"exitCode":0}), json!("{\"exitCode\":0}")))
    );
    assert!(s.next().await.is_none(), "nothing after the end");
    assert_eq!(
        gw.gateway
            .send_node_invoke_input(s.invoke_id(), &json!({}))
            .unwrap_err()
            .to_string(),
        "node invoke is not pending"
    );
    assert_eq!(
        progress(&mut n, &id, &node_id, 5, "late").await["payload"],
        ignored
    );
}

/// A streaming invoke ends with `TIMEOUT` at its deadline, with `IDLE_TIMEOUT` when the node
/// goes quiet, and when its caller drops it; each time the node gets `node.invoke.cancel`.
#[tokio::test]
async fn streaming_invokes_end_on_deadline_idleness_or_drop_and_cancel_at_the_node() {
    let gw = start(|_| {}).await;
    let (mut n, node_id) = node(&gw, 53).await;
    approve(&gw, &node_id).await;
    let run = json!({"command":["sleep","30"]});

    // Deadline.
    let (mut s, req) = stream_run(
        &gw,
        &mut n,
        &node_id,
        run.clone(),
        Some(Duration::from_millis(300)),
        None,
    )
    .await;
    assert!(req["payload"]["timeoutMs"].as_u64().unwrap() <= 300);
    assert_eq!(
        end(next_item(&mut s).await),
        Err(
            json!({"code":"UNAVAILABLE","message":"TIMEOUT: node invoke timed out","details":{"nodeError":{"code":"TIMEOUT","message":"node invoke timed out"},"nodeCommandDispatched":true}})
        )
    );
    let cancel = next_event(&mut n, "node.invoke.cancel").await;
    assert_eq!(
        cancel["payload"],
        json!({"invokeId": req["payload"]["id"], "nodeId": node_id})
    );

    // Idle: no deadline (the node is told 0), only an idle budget, which progress renews.
    let (mut s, req) = stream_run(
        &gw,
        &mut n,
        &node_id,
        run.clone(),
        None,
        Some(Duration::from_millis(300)),
    )
    .await;
    let id = req["payload"]["id"].clone();
    assert_eq!(req["payload"]["timeoutMs"], 0);
    progress(&mut n, &id, &node_id, 0, "working").await;
    assert_eq!(chunk(next_item(&mut s).await), "working");
    assert_eq!(
        end(next_item(&mut s).await),
        Err(
            json!({"code":"UNAVAILABLE","message":"IDLE_TIMEOUT: node invoke produced no progress","details":{"nodeError":{"code":"IDLE_TIMEOUT","message":"node invoke produced no progress"},"nodeCommandDispatched":true}})
        )
    );
    let cancel = next_event(&mut n, "node.invoke.cancel").await;
    assert_eq!(
        cancel["payload"],
        json!({"invokeId": id, "nodeId": node_id})
    );
    assert_eq!(
        progress(&mut n, &id, &node_id, 1, "late").await["payload"],
        json!({"ok": true, "ignored": true})
    );

    // Dropped by its caller.
    let (s, req) = stream_run(
        &gw,
        &mut n,
        &node_id,
        run,
        Some(Duration::from_secs(20)),
        None,
    )
    .await;
    drop(s);
    let cancel = next_event(&mut n, "node.invoke.cancel").await;
    assert_eq!(cancel["payload"]["invokeId"], req["payload"]["id"]);

    // Not invocable: the command policy applies as for node.invoke.
    let refused = gw
        .gateway
        .invoke_node_streaming(&node_id, "camera.snap", None, None, None)
        .err()
        .unwrap();
    assert_eq!(
        refused.details.as_ref().unwrap()["reason"],
        "command not allowlisted"
    );
}

/// A caller that stops reading does not make the gateway buffer without end: past the queue
/// bound the invoke is cancelled at the node, and the caller gets what was queued, then
/// `PROGRESS_OVERFLOW`.
#[tokio::test]
async fn a_caller_that_stops_reading_gets_its_invoke_cancelled() {
    let gw = start(|_| {}).await;
    let (mut n, node_id) = node(&gw, 54).await;
    approve(&gw, &node_id).await;
    let (mut s, req) = stream_run(
        &gw,
        &mut n,
        &node_id,
        json!({"command":["yes"]}),
        Some(Duration::from_secs(20)),
        None,
    )
    .await;
    let id = req["payload"]["id"].clone();
    // 128 held out of order, then the gap fills: all 129 reach the queue at once.
    for seq in 1..=128 {
        progress(&mut n, &id, &node_id, seq, "x").await;
    }
    assert_eq!(
        progress(&mut n, &id, &node_id, 129, "x").await["payload"],
        json!({"ok": true, "ignored": true}),
        "past the out-of-order bound"
    );
    progress(&mut n, &id, &node_id, 0, "x").await;
    // The queue takes 256; the next chunk stalls it and cancels the invoke, so the one after
    // is for an invoke no longer pending. (Responses may overtake the cancel event.)
    let mut seq = 129;
    let mut events = Vec::new();
    loop {
        let (r, seen) = call_seeing_events(
            &mut n,
            "p",
            "node.invoke.progress",
            json!({"invokeId":id,"nodeId":node_id,"seq":seq,"chunk":"x"}),
        )
        .await;
        events.extend(seen);
        if r["payload"]["ignored"] == true {
            break;
        }
        seq += 1;
        assert!(seq < 1_000, "never cut off");
    }
    assert_eq!(seq, 257, "chunk 256 found the queue full");
    let cancel = match events.into_iter().next() {
        Some(ev) => ev,
        None => next_event(&mut n, "node.invoke.cancel").await,
    };
    assert_eq!(
        cancel,
        json!({"type":"event","event":"node.invoke.cancel","payload":{"invokeId":id,"nodeId":node_id}})
    );
    for _ in 0..256 {
        assert_eq!(chunk(next_item(&mut s).await), "x");
    }
    assert_eq!(
        end(next_item(&mut s).await).unwrap_err()["details"]["nodeError"]["code"],
        "PROGRESS_OVERFLOW"
    );
}

/// Progress for invokes a node does not own is acknowledged, but a node that keeps sending it
/// is cut off like one sending stray results; the gateway stays healthy.
#[tokio::test]
async fn a_node_flooding_stray_progress_is_cut_off() {
    let gw = start(|_| {}).await;
    let (mut n, node_id) = node(&gw, 55).await;
    for i in 0..300 {
        n.send(json!({"type":"req","id":format!("p{i}"),"method":"node.invoke.progress","params":{"invokeId":"nope","nodeId":node_id,"seq":i,"chunk":"x"}})).await;
    }
    assert_eq!(
        n.expect_close().await,
        (1008, "too many progress chunks for unknown invokes".into())
    );
    let mut op = operator(&gw, &["operator.read"]).await;
    assert_eq!(op.call("h", "health", json!({})).await["ok"], true);
}

/// A node at protocol 3 gets no plugin caps or commands: as observed on the real 2026.9.6
/// gateway, `node.describe` after approval lacks `browser`, `canvas`, `ollama` and
/// `ollama.chat`/`ollama.models`, which the same node at protocol 4 keeps. Its approval
/// request still lists them, as the real gateway's does.
#[tokio::test]
async fn a_legacy_node_has_its_plugin_surface_withheld() {
    let gw = start(|_| {}).await;
    let caps = json!([
        "browser",
        "file",
        "local-inference",
        "mcp",
        "system",
        "canvas",
        "ollama"
    ]);
    let commands = json!([
        "browser.proxy",
        "desktop.stream",
        "file.fetch",
        "mcp.tools.call.v1",
        "ollama.chat",
        "ollama.models",
        "system.run",
        "system.which"
    ]);
    let mut op = operator(&gw, &["operator.write", "operator.read"]).await;
    let mut admin = operator(&gw, &["operator.pairing"]).await;
    for (seed, protocol) in [(56, 3), (57, 4)] {
        let (_n, node_id) = node_with(&gw, seed, protocol, caps.clone(), commands.clone()).await;
        let pending = admin.call("p", "node.pair.list", json!({})).await["payload"]["pending"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["nodeId"] == node_id.as_str())
            .cloned()
            .unwrap();
        assert_eq!(pending["caps"], caps, "{pending}");
        let listed = pending["commands"].as_array().unwrap();
        assert!(listed.contains(&json!("ollama.chat")), "{pending}");
        approve(&gw, &node_id).await;
        let d = op
            .call("d", "node.describe", json!({"nodeId": node_id}))
            .await["payload"]
            .clone();
        if protocol == 3 {
            assert_eq!(
                d["caps"],
                json!(["file", "local-inference", "mcp", "system"])
            );
            assert_eq!(
                d["commands"],
                json!([
                    "browser.proxy",
                    "desktop.stream",
                    "mcp.tools.call.v1",
                    "system.run",
                    "system.which"
                ])
            );
            let r = op
                .call("i", "node.invoke", json!({"nodeId":node_id,"command":"ollama.chat","params":{},"idempotencyKey":"k"}))
                .await;
            assert_eq!(r["error"]["code"], "INVALID_REQUEST", "{r}");
            assert_eq!(r["error"]["details"]["command"], "ollama.chat");
        } else {
            assert_eq!(d["caps"], caps);
            assert_eq!(
                d["commands"],
                json!([
                    "browser.proxy",
                    "desktop.stream",
                    "mcp.tools.call.v1",
                    "ollama.chat",
                    "ollama.models",
                    "system.run",
                    "system.which"
                ])
            );
        }
    }
}

/// `NODE_NOT_READY` (before any progress) is retried as a new invoke after 100, 250, 500 and
/// 1000 ms, as the real gateway does; any other answer, or a fifth refusal, is final.
#[tokio::test]
async fn a_node_not_ready_yet_is_asked_again() {
    let gw = start(|_| {}).await;
    let (mut n, node_id) = node(&gw, 56).await;
    approve(&gw, &node_id).await;
    let mut op = operator(&gw, &["operator.write"]).await;
    let not_ready = json!({"ok":false,"error":{"code":"NODE_NOT_READY","message":"starting up"}});
    let invoke = json!({"type":"req","id":"w","method":"node.invoke","params":{"nodeId":node_id,"command":"system.which","params":{"bins":["sh"]},"idempotencyKey":"nr-1"}});

    // Ready on the third try: the caller sees only the answer, the node three invokes.
    op.send(invoke.clone()).await;
    let first = answer(&mut n, &node_id, not_ready.clone()).await;
    let second = answer(&mut n, &node_id, not_ready.clone()).await;
    let third = answer(
        &mut n,
        &node_id,
        json!({"ok":true,"payloadJSON":"{\"bins\":{}}"}),
    )
    .await;
    assert_ne!(first["id"], second["id"]);
    assert_ne!(second["id"], third["id"]);
    assert_eq!(third["idempotencyKey"], "nr-1");
    let res = op.recv_res().await;
    assert_eq!(res["payload"]["payload"], json!({"bins": {}}), "{res}");

    // Never ready: four retries, then the node's own error.
    op.send(invoke).await;
    for _ in 0..5 {
        answer(&mut n, &node_id, not_ready.clone()).await;
    }
    let res = op.recv_res().await;
    assert_eq!(
        res["error"],
        json!({"code":"UNAVAILABLE","message":"NODE_NOT_READY: starting up","details":{"nodeError":{"code":"NODE_NOT_READY","message":"starting up"},"nodeCommandDispatched":true}})
    );
}

/// The pending capability request of node `node_id`, as `node.pair.list` shows it.
async fn pending_request(op: &mut Client, node_id: &str) -> Option<Value> {
    let list = op.call("l", "node.pair.list", json!({})).await;
    list["payload"]["pending"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["nodeId"] == node_id)
        .cloned()
}

/// A node that declares more commands while its request waits gets a new request id: the
/// approver of the old one was shown the narrower surface, and that id now grants nothing (as
/// in OpenClaw, the old request is resolved as rejected). An unchanged reconnect keeps its id.
#[tokio::test]
async fn a_wider_surface_while_pending_is_a_new_request() {
    let gw = start(|_| {}).await;
    let mut admin = operator(&gw, &["operator.pairing", "operator.admin"]).await;
    let (narrow, node_id) = node_with(&gw, 60, 4, json!(["system"]), json!(["system.which"])).await;
    let shown = next_event(&mut admin, "node.pair.requested").await["payload"].clone();
    assert_eq!(shown["commands"], json!(["system.which"]));
    let first_id = shown["requestId"].as_str().unwrap().to_owned();
    drop(narrow);

    // The same surface again: the same request, nothing new to approve.
    let (same, _) = node_with(&gw, 60, 4, json!(["system"]), json!(["system.which"])).await;
    assert_eq!(
        pending_request(&mut admin, &node_id).await.unwrap()["requestId"],
        first_id
    );
    drop(same);

    // Wider: the old request is resolved as rejected and a new one asks for the new surface.
    let (_wide, _) = node_with(
        &gw,
        60,
        4,
        json!(["system"]),
        json!(["system.which", "system.run"]),
    )
    .await;
    let resolved = next_event(&mut admin, "node.pair.resolved").await["payload"].clone();
    assert_eq!(resolved["requestId"], first_id);
    assert_eq!(resolved["decision"], "rejected");
    let requested = next_event(&mut admin, "node.pair.requested").await["payload"].clone();
    let second_id = requested["requestId"].as_str().unwrap().to_owned();
    assert_ne!(second_id, first_id);
    assert_eq!(requested["commands"], json!(["system.run", "system.which"]));

    // Approving what the approver saw first grants nothing, least of all system.run.
    let r = admin
        .call("a1", "node.pair.approve", json!({"requestId": first_id}))
        .await;
    assert_eq!(r["ok"], false, "{r}");
    assert!(
        r["error"]["message"].as_str().unwrap().contains(&first_id),
        "{r}"
    );
    let d = admin
        .call("d", "node.describe", json!({"nodeId": node_id}))
        .await;
    assert_eq!(d["payload"]["paired"], false, "{d}");
    assert_eq!(d["payload"]["approvalState"], "pending-approval");
    assert_eq!(
        pending_request(&mut admin, &node_id).await.unwrap()["requestId"],
        second_id
    );

    // The new request grants exactly what it shows.
    let r = admin
        .call("a2", "node.pair.approve", json!({"requestId": second_id}))
        .await;
    assert_eq!(
        r["payload"]["node"]["commands"],
        json!(["system.run", "system.which"]),
        "{r}"
    );
}

/// `timeoutMs` is clamped to the real gateway's timer maximum (2,147,000,000 ms), and a value
/// past what a timer can hold is no panic.
#[tokio::test]
async fn a_huge_invoke_timeout_is_clamped() {
    let gw = start(|_| {}).await;
    let (mut n, node_id) = node(&gw, 61).await;
    approve(&gw, &node_id).await;
    let mut op = operator(&gw, &["operator.write"]).await;
    for (i, timeout) in [json!(1_000_000_000_000_000u64), json!(u64::MAX)]
        .into_iter()
        .enumerate()
    {
        op.send(json!({"type":"req","id":format!("w{i}"),"method":"node.invoke","params":{"nodeId":node_id,"command":"system.which","params":{"bins":["sh"]},"idempotencyKey":"k","timeoutMs":timeout}})).await;
        let req = answer(
            &mut n,
            &node_id,
            json!({"ok":true,"payloadJSON":"{\"bins\":{}}"}),
        )
        .await;
        let budget = req["timeoutMs"].as_u64().unwrap();
        assert!(
            budget <= 2_147_000_000 && budget > 2_146_000_000,
            "{budget}"
        );
        assert_eq!(op.recv_res().await["ok"], true);
    }
}

/// Invokes whose caller went away (its socket closed) are dropped from the table and
/// cancelled at the node, instead of waiting out their budget.
#[tokio::test]
async fn an_invoke_whose_caller_left_is_cancelled() {
    let gw = start(|_| {}).await;
    let (mut n, node_id) = node(&gw, 62).await;
    approve(&gw, &node_id).await;
    let mut op = operator(&gw, &["operator.write"]).await;
    op.send(json!({"type":"req","id":"w","method":"node.invoke","params":{"nodeId":node_id,"command":"system.which","params":{"bins":["sh"]},"idempotencyKey":"k","timeoutMs":600_000}})).await;
    let req = next_event(&mut n, "node.invoke.request").await;
    drop(op);
    let cancel = next_event(&mut n, "node.invoke.cancel").await;
    assert_eq!(
        cancel["payload"],
        json!({"invokeId": req["payload"]["id"], "nodeId": node_id})
    );
    let late = n
        .call(
            "late",
            "node.invoke.result",
            json!({"id":req["payload"]["id"],"nodeId":node_id,"ok":true}),
        )
        .await;
    assert_eq!(late["payload"], json!({"ok": true, "ignored": true}));
}

/// One caller (a device, or a device-less client's address) has at most 256 invokes pending:
/// past that it is told the limit, while other callers still reach the same nodes.
#[tokio::test]
async fn one_caller_cannot_fill_the_invoke_table() {
    let gw = start(|_| {}).await;
    let (mut a, a_id) = node(&gw, 63).await;
    let (mut b, b_id) = node(&gw, 64).await;
    approve(&gw, &a_id).await;
    approve(&gw, &b_id).await;
    // Device-less operators on loopback: one caller however many sockets it opens. Each
    // socket has 64 requests in flight at most.
    let mut sockets = Vec::new();
    for s in 0..4 {
        let (node, node_id) = if s < 2 {
            (&mut a, &a_id)
        } else {
            (&mut b, &b_id)
        };
        let mut op = operator(&gw, &["operator.write"]).await;
        for i in 0..64 {
            op.send(json!({"type":"req","id":format!("s{s}-{i}"),"method":"node.invoke","params":{"nodeId":node_id,"command":"system.which","params":{"bins":["sh"]},"idempotencyKey":"k","timeoutMs":600_000}})).await;
        }
        for _ in 0..64 {
            next_event(node, "node.invoke.request").await;
        }
        sockets.push(op);
    }
    let mut op = operator(&gw, &["operator.write"]).await;
    let r = op
        .call(
            "over",
            "node.invoke",
            json!({"nodeId":a_id,"command":"system.which","params":{"bins":["sh"]},"idempotencyKey":"k"}),
        )
        .await;
    assert_eq!(r["error"]["code"], "UNAVAILABLE", "{r}");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("256"),
        "the limit is named: {r}"
    );

    // Another caller (its own device) still gets through to node a.
    let key = SigningKey::from_bytes(&[65; 32]);
    let mut other = Client::open(gw.addr).await;
    let nonce = other.nonce();
    let res = other
        .connect(sign(
            cli_params(&["operator.write"]),
            &key,
            &nonce,
            now_ms(),
        ))
        .await;
    assert_eq!(res["ok"], true, "{res}");
    other.send(json!({"type":"req","id":"d","method":"node.invoke","params":{"nodeId":a_id,"command":"system.which","params":{"bins":["sh"]},"idempotencyKey":"k"}})).await;
    answer(
        &mut a,
        &a_id,
        json!({"ok":true,"payloadJSON":"{\"bins\":{}}"}),
    )
    .await;
    assert_eq!(other.recv_res().await["ok"], true);
    drop(sockets);
}
