//! An agent turn on the wire against the real OpenClaw 2026.9.6's
//! (`fixtures/openclaw-agent/chat-send-tool-turn.jsonl`: `chat.send` → `exec host=node` on a
//! node → reply, seen by the client that sent it with `caps:["tool-events"]`): the same events
//! in the same order, each with the same fields, and the responses of the chat methods.
//!
//! OpenClaw also sends streams clawgate does not (`item`, `command_output`, the `finishing`
//! lifecycle phase and a closing `model` phase with no model) and spreads the session row into
//! tool events; those are listed below and left out of the comparison.

mod common;

use clawgate_config::LoadedConfig;
use clawgate_testkit::{ModelMock, Reply, WireFormat};
use common::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::Path;

const MAIN: &str = "agent:main:main";

/// Streams and phases only OpenClaw sends.
fn openclaw_only(label: &str) -> bool {
    label.starts_with("agent:item:")
        || label.starts_with("agent:command_output:")
        || label == "agent:lifecycle:finishing"
}

/// Fields of `data` only OpenClaw sends, per event label.
fn openclaw_only_data(label: &str) -> &'static [&'static str] {
    match label {
        "agent:assistant:" => &["itemId"],
        "agent:tool:result" => &["commandBearing", "meta"],
        "agent:lifecycle:end" => &[
            "executionSettled",
            "livenessState",
            "replayInvalid",
            "terminalReceipt",
        ],
        _ => &[],
    }
}

/// An `agent` event's own fields (OpenClaw spreads the session row into tool events besides).
const AGENT_EVENT_FIELDS: [&str; 8] = [
    "runId",
    "stream",
    "data",
    "sessionKey",
    "agentId",
    "seq",
    "ts",
    "isHeartbeat",
];

fn label(frame: &Value) -> String {
    let p = &frame["payload"];
    if frame["event"] == "chat" {
        format!("chat:{}", p["state"].as_str().unwrap_or_default())
    } else {
        format!(
            "agent:{}:{}",
            p["stream"].as_str().unwrap_or_default(),
            p["data"]["phase"].as_str().unwrap_or_default()
        )
    }
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// The `chat` and `agent` events of one run, labelled, with the repeated text events of a
/// stream (how many depends on timing) kept once, and the closing `model` phase OpenClaw sends
/// after the last answer dropped.
fn turn(frames: &[Value]) -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = Vec::new();
    for f in frames {
        if f["type"] != "event" || !(f["event"] == "chat" || f["event"] == "agent") {
            continue;
        }
        let l = label(f);
        if openclaw_only(&l) {
            continue;
        }
        if l == "agent:lifecycle:model" && f["payload"]["data"]["model"].is_null() {
            continue;
        }
        let repeatable = matches!(l.as_str(), "agent:assistant:" | "chat:delta");
        if repeatable && out.iter().rev().take(2).any(|(p, _)| *p == l) {
            continue;
        }
        out.push((l, f["payload"].clone()));
    }
    out
}

fn captured_turn() -> Vec<(String, Value)> {
    let path = format!(
        "{}/tests/fixtures/openclaw-agent/chat-send-tool-turn.jsonl",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(path).unwrap();
    let frames: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["conn"] == 1 && r["dir"] == "s2c")
        .map(|r| r["frame"].clone())
        .collect();
    let first_run = frames
        .iter()
        .find(|f| f["event"] == "chat")
        .map(|f| f["payload"]["runId"].clone())
        .unwrap();
    let run: Vec<Value> = frames
        .into_iter()
        .filter(|f| f["payload"]["runId"] == first_run)
        .collect();
    turn(&run)
}

#[tokio::test]
async fn a_tool_turn_sends_openclaws_events_in_openclaws_order() {
    let mock = ModelMock::start(WireFormat::OpenAi).await;
    mock.push(
        Reply::tool_call("exec", json!({"command": "echo captured", "host": "node"}))
            .with_usage(10, 20),
    );
    mock.push(Reply::text_chunks(["The node ", "ran it."]).with_usage(30, 40));
    let config = mock.primary_config();
    let models = LoadedConfig::from_value(Path::new("/t/openclaw.json"), config, &|_| None)
        .unwrap()
        .models;
    let gw = start(|o| o.models = models).await;
    let (mut node, node_id) = node(&gw, 7).await;
    approve(&gw, &node_id).await;
    let mut params = cli_params(&["operator.read", "operator.write"]);
    params["caps"] = json!(["tool-events"]);
    let mut op = Client::open(gw.addr).await;
    assert_eq!(op.connect(params).await["ok"], true);

    let sent = op
        .call(
            "s",
            "chat.send",
            json!({"sessionKey": MAIN, "message": "run it", "idempotencyKey": "wire-1"}),
        )
        .await;
    assert_eq!(
        sent["payload"],
        json!({"runId": "wire-1", "status": "started"})
    );
    // The fake node declares system.run.prepare: the plan comes first.
    let prepare = answer(
        &mut node,
        &node_id,
        json!({"ok": true, "payloadJSON": json!({"plan": {"argv": ["/bin/sh", "-lc", "echo captured"], "cwd": null, "commandText": "echo captured"}}).to_string()}),
    )
    .await;
    assert_eq!(prepare["command"], "system.run.prepare");
    let request = answer(
        &mut node,
        &node_id,
        json!({"ok": true, "payloadJSON": json!({"exitCode": 0, "timedOut": false, "success": true, "stdout": "captured\n", "stderr": "", "error": null}).to_string()}),
    )
    .await;
    assert_eq!(request["command"], "system.run");
    let params: Value = serde_json::from_str(request["paramsJSON"].as_str().unwrap()).unwrap();
    assert_eq!(
        params["command"],
        json!(["/bin/sh", "-lc", "echo captured"])
    );

    let mut frames = Vec::new();
    loop {
        let f = op.recv().await;
        let done = f["event"] == "chat" && f["payload"]["state"] == "final";
        frames.push(f);
        if done {
            break;
        }
    }
    let ours = turn(&frames);
    let theirs = captured_turn();
    let labels = |t: &[(String, Value)]| t.iter().map(|(l, _)| l.clone()).collect::<Vec<_>>();
    assert_eq!(labels(&ours), labels(&theirs));

    for ((l, mine), (_, real)) in ours.iter().zip(&theirs) {
        let real_top = if l.starts_with("agent:tool:") {
            AGENT_EVENT_FIELDS.map(String::from).into_iter().collect()
        } else {
            keys(real)
        };
        assert_eq!(keys(mine), real_top, "{l}: fields of {mine:#}");
        let mut real_data = keys(&real["data"]);
        real_data.retain(|k| !openclaw_only_data(l).contains(&k.as_str()));
        assert_eq!(keys(&mine["data"]), real_data, "{l}: data of {mine:#}");
        if l == "chat:final" || l == "chat:delta" {
            assert_eq!(
                keys(&mine["message"]),
                keys(&real["message"]),
                "{l}: message"
            );
        }
        if l == "agent:tool:result" {
            assert_eq!(
                keys(&mine["data"]["result"]),
                keys(&real["data"]["result"]),
                "{l}: result"
            );
        }
    }
    // One seq per run, shared by chat and agent events, never going back.
    let seqs: Vec<u64> = ours
        .iter()
        .map(|(_, p)| p["seq"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] <= w[1]), "{seqs:?}");
}

/// `sessions.changed` goes only to connections that called `sessions.subscribe`, as OpenClaw
/// sends it; `chat.history` says how much there is.
#[tokio::test]
async fn sessions_changed_reaches_subscribers_only() {
    let gw = start(|_| {}).await;
    let mut subscribed =
        operator(&gw, &["operator.read", "operator.write", "operator.admin"]).await;
    let mut other = operator(&gw, &["operator.read"]).await;
    let r = subscribed
        .call("sub", "sessions.subscribe", json!({}))
        .await;
    assert_eq!(r["payload"], json!({"subscribed": true}));
    // No model is configured: the run ends at once with an error, then the session changed.
    subscribed
        .call(
            "s",
            "chat.send",
            json!({"sessionKey": MAIN, "message": "hi", "idempotencyKey": "sub-1"}),
        )
        .await;
    let changed = next_event(&mut subscribed, "sessions.changed").await;
    assert_eq!(changed["payload"]["sessionKey"], MAIN);
    // A later event to everyone: anything sent to `other` before it has arrived by then.
    subscribed
        .call(
            "i",
            "chat.inject",
            json!({"sessionKey": MAIN, "message": "note"}),
        )
        .await;
    loop {
        let f = other.recv().await;
        assert_ne!(f["event"], "sessions.changed", "not subscribed: {f}");
        if f["event"] == "chat"
            && f["payload"]["runId"]
                .as_str()
                .is_some_and(|r| r.starts_with("inject-"))
        {
            break;
        }
    }
    let history = subscribed
        .call("h", "chat.history", json!({"sessionKey": MAIN, "limit": 1}))
        .await;
    assert_eq!(history["payload"]["totalMessages"], 3, "{history}");
    assert_eq!(history["payload"]["hasMore"], true);
    assert_eq!(history["payload"]["messages"].as_array().unwrap().len(), 1);
}

/// `chat.abort` mid-stream, as the real gateway answers it (`fixtures/openclaw-agent/
/// chat-abort.jsonl`): the `chat` aborted event with the partial text and the lifecycle end
/// (one seq) come before the response; aborting again finds nothing.
#[tokio::test]
async fn an_abort_mid_stream_answers_after_the_aborted_event() {
    let mock = ModelMock::start(WireFormat::OpenAi).await;
    mock.push(Reply::text_chunks(["w0 ", "w1"]).then_stall());
    let config = mock.primary_config();
    let models = LoadedConfig::from_value(Path::new("/t/openclaw.json"), config, &|_| None)
        .unwrap()
        .models;
    let gw = start(|o| o.models = models).await;
    let mut op = operator(&gw, &["operator.read", "operator.write"]).await;
    op.call(
        "s",
        "chat.send",
        json!({"sessionKey": MAIN, "message": "stream slowly", "idempotencyKey": "abort-1"}),
    )
    .await;
    loop {
        let f = op.recv().await;
        if f["event"] == "agent" && f["payload"]["data"]["text"] == "w0 w1" {
            break;
        }
    }
    op.send(json!({"type": "req", "id": "a", "method": "chat.abort",
        "params": {"sessionKey": MAIN, "runId": "abort-1"}}))
        .await;
    let mut seen = Vec::new();
    let res = loop {
        let f = op.recv().await;
        if f["type"] == "res" && f["id"] == "a" {
            break f;
        }
        seen.push(f);
    };
    assert_eq!(
        res["payload"],
        json!({"ok": true, "aborted": true, "runIds": ["abort-1"]})
    );
    let aborted = seen
        .iter()
        .find(|f| f["event"] == "chat" && f["payload"]["state"] == "aborted")
        .expect("the aborted event before the answer");
    assert_eq!(aborted["payload"]["stopReason"], "rpc");
    assert_eq!(aborted["payload"]["message"]["content"][0]["text"], "w0 w1");
    let end = seen
        .iter()
        .find(|f| f["payload"]["stream"] == "lifecycle" && f["payload"]["data"]["phase"] == "end")
        .expect("the lifecycle end before the answer");
    assert_eq!(end["payload"]["data"]["status"], "cancelled");
    assert_eq!(end["payload"]["seq"], aborted["payload"]["seq"]);
    let again = op
        .call("b", "chat.abort", json!({"sessionKey": MAIN}))
        .await;
    assert_eq!(
        again["payload"],
        json!({"ok": true, "aborted": false, "runIds": []})
    );
}
