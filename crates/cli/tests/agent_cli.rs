//! `clawgate agent`, `clawgate chat` and `clawgate sessions …` against `clawgate gateway run`
//! with a mock model (`interop_agent_cli.rs` runs them against the real OpenClaw gateway).

use clawgate_testkit::{ChildProcess, IsolatedHome, ModelMock, Reply, WireFormat, json};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt as _;

const TOKEN: &str = "agent-cli-token";

mod agent_support;

use agent_support::*;

#[tokio::test]
async fn agent_streams_the_reply_and_sessions_list_and_reset_follow() {
    let mock = ModelMock::start(WireFormat::OpenAi).await;
    let gw = clawgate()
        .start_token_gateway(&mock.primary_config(), TOKEN)
        .await;
    let url = gw.url();

    // The model asks for a command on a node (there is none), then answers in two chunks.
    mock.push(Reply::tool_call(
        "exec",
        json!({"command": "echo from-the-node", "host": "node"}),
    ));
    mock.push(Reply::text_chunks(["No node ", "is connected."]));
    let out = at(url, TOKEN, &["agent", "--message", "run echo on the node"])
        .run()
        .await;
    out.assert_success();
    assert_eq!(out.stdout, "No node is connected.\n", "{out}");
    assert!(
        out.stderr.contains("[tool] exec: echo from-the-node"),
        "{out}"
    );
    assert!(out.stderr.contains("[tool] exec failed: "), "{out}");
    assert_eq!(mock.requests().len(), 2);
    // The default session is the main agent's main session.
    assert_eq!(sent(&mock, "user").last().unwrap(), "run echo on the node");

    // --json: the final answer's payload, and nothing else on stdout.
    mock.push(Reply::text("Hi from x."));
    let out = at(
        url,
        TOKEN,
        &["agent", "-m", "hello x", "--session-id", "x", "--json"],
    )
    .run()
    .await;
    let payload = ok_json(&out);
    assert_eq!(payload["status"], "ok", "{out}");
    assert_eq!(payload["summary"], "completed", "{out}");
    assert_eq!(
        payload["result"]["payloads"],
        json!([{"text": "Hi from x.", "mediaUrl": null}]),
        "{out}"
    );
    assert_eq!(payload["result"]["meta"]["aborted"], false, "{out}");
    let run_id = payload["runId"].as_str().expect("runId");
    assert_eq!(run_id.len(), 36, "a uuid per call: {out}");
    // The --session-id session is its own: the model saw only this message.
    assert_eq!(sent(&mock, "user"), ["hello x"]);

    // sessions list: both sessions, none running.
    let out = at(url, TOKEN, &["sessions", "list"]).run().await;
    out.assert_success();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["Key", "Session", "id", "Updated", "Running"],
        "{out}"
    );
    for key in ["agent:main:main", "agent:main:explicit:x"] {
        let row = lines
            .iter()
            .find(|l| l.starts_with(&format!("{key} ")))
            .unwrap_or_else(|| panic!("no row for {key}:\n{out}"));
        assert!(row.ends_with(" no"), "{out}");
        assert!(row.contains(" ago "), "{out}");
    }
    let out = at(url, TOKEN, &["sessions", "list", "--json"]).run().await;
    let list = ok_json(&out);
    let main = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == "agent:main:main")
        .unwrap_or_else(|| panic!("{out}"))
        .clone();

    // sessions reset: the next turn in that session starts afresh.
    let out = at(url, TOKEN, &["sessions", "reset", "agent:main:main"])
        .run()
        .await;
    out.assert_success();
    assert!(
        out.stdout.starts_with("Reset agent:main:main (session id "),
        "{out}"
    );
    mock.push(Reply::text("Fresh."));
    let out = at(url, TOKEN, &["agent", "-m", "after the reset"])
        .run()
        .await;
    out.assert_success();
    assert_eq!(out.stdout, "Fresh.\n", "{out}");
    assert_eq!(sent(&mock, "user"), ["after the reset"], "{main:#}");

    // No key: a usage error.
    let out = at(url, TOKEN, &["sessions", "reset"]).run().await;
    out.assert_code(2);
}

#[tokio::test]
async fn chat_answers_piped_lines_in_order() {
    let mock = ModelMock::start(WireFormat::OpenAi).await;
    let gw = clawgate()
        .start_token_gateway(&mock.primary_config(), TOKEN)
        .await;
    mock.push(Reply::text_chunks(["First ", "answer."]));
    mock.push(Reply::text_chunks(["Second ", "answer."]));
    let out = at(gw.url(), TOKEN, &["chat"])
        .stdin("one\n\ntwo\n")
        .run()
        .await;
    out.assert_success();
    assert_eq!(out.stdout, "First answer.\nSecond answer.\n", "{out}");
    // One session: the second request carries the first exchange.
    assert_eq!(mock.requests().len(), 2);
    assert_eq!(sent(&mock, "user"), ["one", "two"]);
    assert_eq!(sent(&mock, "assistant"), ["First answer."]);
}

#[tokio::test]
async fn agent_without_a_model_names_the_key_to_set() {
    let gw = clawgate().start_token_gateway(&json!({}), TOKEN).await;
    let out = at(gw.url(), TOKEN, &["agent", "--message", "hi"])
        .run()
        .await;
    out.assert_code(1);
    assert_eq!(out.stdout, "", "{out}");
    assert!(
        out.stderr.contains("agents.defaults.model.primary"),
        "{out}"
    );
    let out = at(gw.url(), TOKEN, &["agent", "--message", "hi", "--json"])
        .run()
        .await;
    out.assert_code(1);
    let report = out.json();
    assert_eq!(report["ok"], false, "{out}");
    assert_eq!(report["error"]["type"], "agent_run_failed", "{out}");
    assert!(
        report["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("agents.defaults.model.primary")),
        "{out}"
    );
    // In a chat, the error is told and the exit code says a turn failed.
    let out = at(gw.url(), TOKEN, &["chat"]).stdin("hi\n").run().await;
    out.assert_code(1);
    assert!(
        out.stderr.contains("agents.defaults.model.primary"),
        "{out}"
    );
}

/// Ctrl-C during a reply aborts it (`chat.abort`) and the chat goes on; the end of input ends it.
#[tokio::test]
async fn ctrl_c_in_a_chat_aborts_the_reply_only() {
    let mock = ModelMock::start(WireFormat::OpenAi).await;
    let gw = clawgate()
        .start_token_gateway(&mock.primary_config(), TOKEN)
        .await;
    let home = IsolatedHome::new();
    home.write_config(&json!({}));
    let mut cmd = clawgate().command(&home);
    cmd.args(["chat", "--url", gw.url(), "--token", TOKEN]);
    let (mut chat, mut stdin) = ChildProcess::spawn_with_stdin(cmd, "clawgate chat").unwrap();
    let deadline = || Instant::now() + Duration::from_secs(30);

    mock.push(Reply::text_chunks(["Counting: ", "one, two"]).then_stall());
    stdin.write_all(b"count forever\n").await.unwrap();
    // The run is under way once the model is asked (the chat listens for Ctrl-C from the
    // moment it sends the line).
    mock.wait_for_requests(1, Duration::from_secs(30)).await;
    chat.signal("INT");
    chat.wait_for_line(|l| l.contains("(reply aborted)"), deadline())
        .await
        .unwrap();

    mock.push(Reply::text("Still here."));
    stdin.write_all(b"are you there?\n").await.unwrap();
    chat.wait_for_line(|l| l == "Still here.", deadline())
        .await
        .unwrap();
    drop(stdin);
    let status = chat.wait_timeout(Duration::from_secs(30)).await;
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "{}",
        chat.transcript()
    );
    let transcript = chat.transcript();
    assert!(transcript.contains("(aborting the reply…)"), "{transcript}");
    // The model's second request carries the user's second line; the stalled one was cut.
    assert_eq!(mock.requests().len(), 2);
    assert_eq!(
        sent(&mock, "user").last().map(String::as_str),
        Some("are you there?")
    );
}
