//! What the agent command tests share: the binary under test, a command aimed at a gateway,
//! and what the model was sent.
#![allow(dead_code)]

use clawgate_testkit::{ClawgateBin, CliCommand, ModelMock, Output, Value, json};

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
