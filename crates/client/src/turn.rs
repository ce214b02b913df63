//! An agent turn over the gateway, followed through the events of its run: `agent`
//! (answered a second time when the run ends) or `chat.send` (answered at once; the run ends
//! with a `chat` `final`, `aborted` or `error` event).
//!
//! The reply text comes from the run's `chat` deltas, whose `message.content[0].text` is the
//! whole text so far; [`RunFollower`] turns them into increments. Tool calls come from the
//! `agent` events of stream `tool`, which a gateway sends only to the connection that
//! started the run and declared [`TOOL_EVENTS_CAP`] in its `connect`.
//!
//! ```no_run
//! # async fn demo(client: &mut clawgate_client::Client) -> Result<(), clawgate_client::RpcError> {
//! use clawgate_client::turn::{AgentParams, TurnUpdate, run_agent};
//! let params = AgentParams::new("hello").agent_id("main");
//! let payload = run_agent(client, &params, &mut |u| {
//!     if let TurnUpdate::Text(t) = u {
//!         print!("{t}");
//!     }
//! })
//! .await?;
//! println!("\n{}", payload["status"]);
//! # Ok(()) }
//! ```

use crate::client::{Client, Event};
use crate::error::RpcError;
use serde_json::{Map, Value, json};
use std::future::Future;

/// The `connect` capability asking for the `tool` stream of the runs the connection starts.
pub const TOOL_EVENTS_CAP: &str = "tool-events";

/// The run time limit OpenClaw's `agent` command sends, in seconds.
pub const DEFAULT_AGENT_TIMEOUT_SECS: u64 = 600;

/// Something to show while a run goes on.
#[derive(Debug, Clone, PartialEq)]
pub enum TurnUpdate<'a> {
    /// More reply text: the part not shown yet.
    Text(&'a str),
    /// A new answer begins after text was shown (the model answered again after tool calls).
    NewAnswer,
    /// A tool started.
    ToolStart {
        name: &'a str,
        call_id: &'a str,
        args: &'a Value,
    },
    /// A tool ended; `text` is what it returned (or its error).
    ToolResult {
        name: &'a str,
        call_id: &'a str,
        is_error: bool,
        text: String,
    },
    /// An abort of the run was asked for.
    Aborting,
}

/// How a run ended, as its `chat` events tell.
#[derive(Debug, Clone, PartialEq)]
pub enum TurnEnd {
    /// The reply (the final answer's whole text) and why the model stopped.
    Final {
        text: String,
        stop_reason: Option<String>,
    },
    /// Aborted; the text it had, if any.
    Aborted { text: Option<String> },
    /// The run failed.
    Error { message: String },
}

/// Follows the events of one run and says what they add.
#[derive(Debug, Clone)]
pub struct RunFollower {
    run_id: String,
    /// The text of the current answer shown so far.
    shown: String,
    /// Whether any text was shown in this run.
    any_text: bool,
}

/// `message.content[*].text` joined: the text a `chat` event carries.
fn message_text(message: &Value) -> Option<String> {
    match message.get("content")? {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => Some(
            parts
                .iter()
                .filter(|p| p.get("type").and_then(Value::as_str).unwrap_or("text") == "text")
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect(),
        ),
        _ => None,
    }
}

/// A tool result as text: a plain string, or OpenClaw's `{content:[{type:"text",text}]}`.
fn result_text(result: &Value) -> String {
    match result {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => message_text(other).unwrap_or_else(|| other.to_string()),
    }
}

impl RunFollower {
    pub fn new(run_id: impl Into<String>) -> Self {
        RunFollower {
            run_id: run_id.into(),
            shown: String::new(),
            any_text: false,
        }
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Shows `full`, the whole text of the current answer so far.
    fn show_text(&mut self, full: &str, on: &mut dyn FnMut(TurnUpdate<'_>)) {
        if let Some(rest) = full.strip_prefix(self.shown.as_str()) {
            if !rest.is_empty() {
                on(TurnUpdate::Text(rest));
                self.shown.push_str(rest);
                self.any_text = true;
            }
            return;
        }
        // Shorter than what was shown: the same text trimmed (a final drops trailing space).
        if self.shown.starts_with(full) {
            return;
        }
        // Another answer.
        if self.any_text {
            on(TurnUpdate::NewAnswer);
        }
        self.shown.clear();
        if !full.is_empty() {
            on(TurnUpdate::Text(full));
            self.shown.push_str(full);
            self.any_text = true;
        }
    }

    /// Feeds one event; returns how the run ended when this event ends it.
    pub fn on_event(
        &mut self,
        event: &Event,
        on: &mut dyn FnMut(TurnUpdate<'_>),
    ) -> Option<TurnEnd> {
        let p = &event.payload;
        if p.get("runId").and_then(Value::as_str) != Some(self.run_id.as_str()) {
            return None;
        }
        match event.event.as_str() {
            "chat" => self.on_chat(p, on),
            "agent" => {
                self.on_agent(p, on);
                None
            }
            _ => None,
        }
    }

    fn on_chat(&mut self, p: &Value, on: &mut dyn FnMut(TurnUpdate<'_>)) -> Option<TurnEnd> {
        let text = p.get("message").and_then(message_text);
        match p.get("state").and_then(Value::as_str)? {
            "delta" => {
                if let Some(full) = text {
                    self.show_text(&full, on);
                }
                None
            }
            "final" => {
                let text = text.unwrap_or_else(|| self.shown.clone());
                self.show_text(&text, on);
                Some(TurnEnd::Final {
                    text,
                    stop_reason: p
                        .get("stopReason")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                })
            }
            "aborted" => {
                if let Some(full) = &text {
                    self.show_text(full, on);
                }
                Some(TurnEnd::Aborted { text })
            }
            "error" => Some(TurnEnd::Error {
                message: p
                    .get("errorMessage")
                    .and_then(Value::as_str)
                    .unwrap_or("the run failed")
                    .to_owned(),
            }),
            _ => None,
        }
    }

    fn on_agent(&mut self, p: &Value, on: &mut dyn FnMut(TurnUpdate<'_>)) {
        if p.get("stream").and_then(Value::as_str) != Some("tool") {
            return;
        }
        let Some(data) = p.get("data") else { return };
        let name = data.get("name").and_then(Value::as_str).unwrap_or("tool");
        let call_id = data.get("toolCallId").and_then(Value::as_str).unwrap_or("");
        match data.get("phase").and_then(Value::as_str) {
            Some("start") => on(TurnUpdate::ToolStart {
                name,
                call_id,
                args: data.get("args").unwrap_or(&Value::Null),
            }),
            Some("result") => on(TurnUpdate::ToolResult {
                name,
                call_id,
                is_error: data.get("isError").and_then(Value::as_bool) == Some(true),
                text: result_text(data.get("result").unwrap_or(&Value::Null)),
            }),
            _ => {}
        }
    }

    /// After an `agent` final answer: the reply from its payload (`result.payloads[].text`)
    /// when no `chat` event brought all of it.
    pub fn finish_from_payload(&mut self, payload: &Value, on: &mut dyn FnMut(TurnUpdate<'_>)) {
        let texts: Vec<&str> = payload
            .pointer("/result/payloads")
            .and_then(Value::as_array)
            .map(|ps| {
                ps.iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect()
            })
            .unwrap_or_default();
        if !texts.is_empty() {
            self.show_text(&texts.join("\n\n"), on);
        }
    }
}

/// What `agent` is asked: the params OpenClaw's `agent` command sends.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentParams {
    pub message: String,
    pub agent_id: Option<String>,
    pub session_key: Option<String>,
    pub session_id: Option<String>,
    /// The run's time limit in seconds (`timeout`).
    pub timeout_secs: u64,
    /// Also the run's id.
    pub idempotency_key: String,
}

impl AgentParams {
    /// `message` with a fresh idempotency key and the default time limit.
    pub fn new(message: impl Into<String>) -> Self {
        AgentParams {
            message: message.into(),
            agent_id: None,
            session_key: None,
            session_id: None,
            timeout_secs: DEFAULT_AGENT_TIMEOUT_SECS,
            idempotency_key: uuid::Uuid::new_v4().to_string(),
        }
    }

    pub fn agent_id(mut self, id: impl Into<String>) -> Self {
        self.agent_id = Some(id.into());
        self
    }

    /// `{message, agentId?, sessionKey?, sessionId?, deliver:false, timeout, idempotencyKey}`,
    /// in the real CLI's key order.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("message".into(), json!(self.message));
        if let Some(v) = &self.agent_id {
            m.insert("agentId".into(), json!(v));
        }
        if let Some(v) = &self.session_key {
            m.insert("sessionKey".into(), json!(v));
        }
        if let Some(v) = &self.session_id {
            m.insert("sessionId".into(), json!(v));
        }
        m.insert("deliver".into(), json!(false));
        m.insert("timeout".into(), json!(self.timeout_secs));
        m.insert("idempotencyKey".into(), json!(self.idempotency_key));
        Value::Object(m)
    }
}

/// The connection ended while the run was followed.
fn lost(client: &Client) -> RpcError {
    let (code, reason) = client
        .close_info()
        .unwrap_or((1006, "connection lost".into()));
    RpcError::Closed { code, reason }
}

/// Runs `agent` and reports the run's text and tool calls through `on` as they come.
/// Returns the final answer's payload; a run that failed is `Err(RpcError::Gateway)` with
/// the final payload in `payload`.
pub async fn run_agent(
    client: &mut Client,
    params: &AgentParams,
    on: &mut dyn FnMut(TurnUpdate<'_>),
) -> Result<Value, RpcError> {
    let mut follower = RunFollower::new(&params.idempotency_key);
    let requester = client.requester();
    let request = requester.request_expect_final("agent", Some(params.to_json()));
    tokio::pin!(request);
    let mut events_open = true;
    let answer = loop {
        tokio::select! {
            answer = &mut request => break answer,
            event = client.events().recv(), if events_open => match event {
                Some(e) => { follower.on_event(&e, on); }
                None => events_open = false,
            },
        }
    };
    // The events that came before the answer are queued already.
    while let Ok(e) = client.events().try_recv() {
        follower.on_event(&e, on);
    }
    if let Ok(payload) = &answer {
        follower.finish_from_payload(payload, on);
    }
    answer
}

/// Sends `message` to the session with `chat.send` and follows the run to its end,
/// reporting its text and tool calls through `on`. When `interrupt` completes first, the
/// run is aborted (`chat.abort`) and followed to its `aborted` end.
pub async fn chat_turn(
    client: &mut Client,
    session_key: &str,
    message: &str,
    interrupt: impl Future<Output = ()>,
    on: &mut dyn FnMut(TurnUpdate<'_>),
) -> Result<TurnEnd, RpcError> {
    let run_id = uuid::Uuid::new_v4().to_string();
    let mut follower = RunFollower::new(&run_id);
    let requester = client.requester();
    let send = requester.request(
        "chat.send",
        Some(json!({"sessionKey": session_key, "message": message, "idempotencyKey": run_id})),
    );
    tokio::pin!(send);
    tokio::pin!(interrupt);
    let mut sent = false;
    let mut interrupted = false;
    let (abort_tx, mut abort_rx) = tokio::sync::mpsc::channel::<Result<Value, RpcError>>(1);
    loop {
        tokio::select! {
            answer = &mut send, if !sent => {
                answer?;
                sent = true;
            }
            event = client.events().recv() => match event {
                Some(e) => {
                    if let Some(end) = follower.on_event(&e, on) {
                        return Ok(end);
                    }
                }
                None => return Err(lost(client)),
            },
            () = &mut interrupt, if !interrupted => {
                interrupted = true;
                on(TurnUpdate::Aborting);
                let requester = requester.clone();
                let params = json!({"sessionKey": session_key, "runId": run_id});
                let tx = abort_tx.clone();
                // Its answer may come after the run's end (OpenClaw sends the `aborted` event
                // first); nobody waits for it then.
                tokio::spawn(async move {
                    let _ = tx.send(requester.request("chat.abort", Some(params)).await).await;
                });
            }
            Some(answer) = abort_rx.recv() => {
                // A refused abort ends the wait; one that found nothing running leaves the
                // end event to come (or come already).
                answer?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event: &str, payload: Value) -> Event {
        Event {
            event: event.into(),
            payload,
            seq: None,
            state_version: None,
        }
    }

    fn delta(run: &str, text: &str) -> Event {
        ev(
            "chat",
            json!({"runId": run, "state": "delta", "deltaText": "x",
                "message": {"role": "assistant", "content": [{"type": "text", "text": text}]}}),
        )
    }

    fn feed(f: &mut RunFollower, events: &[Event]) -> (Vec<String>, Option<TurnEnd>) {
        let mut out = Vec::new();
        let mut end = None;
        for e in events {
            let got = f.on_event(e, &mut |u| {
                out.push(match u {
                    TurnUpdate::Text(t) => format!("text:{t}"),
                    TurnUpdate::NewAnswer => "new".into(),
                    TurnUpdate::ToolStart { name, args, .. } => format!("start:{name}:{args}"),
                    TurnUpdate::ToolResult {
                        name,
                        is_error,
                        text,
                        ..
                    } => format!("result:{name}:{is_error}:{text}"),
                    TurnUpdate::Aborting => "aborting".into(),
                })
            });
            if got.is_some() {
                end = got;
            }
        }
        (out, end)
    }

    #[test]
    fn cumulative_deltas_become_increments_and_other_runs_are_ignored() {
        let mut f = RunFollower::new("r1");
        let (out, end) = feed(
            &mut f,
            &[
                delta("r1", "Hel"),
                delta("r2", "other run"),
                delta("r1", "Hello wor"),
                ev(
                    "chat",
                    json!({"runId": "r1", "state": "final", "stopReason": "stop",
                    "message": {"content": [{"type": "text", "text": "Hello world"}]}}),
                ),
            ],
        );
        assert_eq!(out, ["text:Hel", "text:lo wor", "text:ld"]);
        assert_eq!(
            end,
            Some(TurnEnd::Final {
                text: "Hello world".into(),
                stop_reason: Some("stop".into())
            })
        );
    }

    #[test]
    fn a_trimmed_final_adds_nothing_and_a_new_answer_is_marked() {
        let mut f = RunFollower::new("r");
        let (out, _) = feed(
            &mut f,
            &[
                delta("r", "Let me look. "),
                ev(
                    "agent",
                    json!({"runId": "r", "stream": "tool", "data": {"phase": "start",
                    "name": "exec", "toolCallId": "c1", "args": {"command": "ls"}}}),
                ),
                ev(
                    "agent",
                    json!({"runId": "r", "stream": "tool", "data": {"phase": "result",
                    "name": "exec", "toolCallId": "c1", "isError": false,
                    "result": {"content": [{"type": "text", "text": "a b"}]}}}),
                ),
                delta("r", "Two files. "),
                ev(
                    "chat",
                    json!({"runId": "r", "state": "final",
                    "message": {"content": [{"type": "text", "text": "Two files."}]}}),
                ),
            ],
        );
        assert_eq!(
            out,
            [
                "text:Let me look. ",
                r#"start:exec:{"command":"ls"}"#,
                "result:exec:false:a b",
                "new",
                "text:Two files. ",
            ]
        );
    }

    #[test]
    fn errors_and_aborts_end_the_run() {
        let mut f = RunFollower::new("r");
        let (_, end) = feed(
            &mut f,
            &[ev(
                "chat",
                json!({"runId": "r", "state": "error", "errorMessage": "no model is configured"}),
            )],
        );
        assert_eq!(
            end,
            Some(TurnEnd::Error {
                message: "no model is configured".into()
            })
        );
        let mut f = RunFollower::new("r");
        let (out, end) = feed(
            &mut f,
            &[
                delta("r", "w0"),
                ev(
                    "chat",
                    json!({"runId": "r", "state": "aborted", "stopReason": "rpc",
                    "message": {"content": [{"type": "text", "text": "w0 w1"}]}}),
                ),
            ],
        );
        assert_eq!(out, ["text:w0", "text: w1"]);
        assert_eq!(
            end,
            Some(TurnEnd::Aborted {
                text: Some("w0 w1".into())
            })
        );
    }

    #[test]
    fn the_agent_payload_completes_what_events_missed() {
        let mut f = RunFollower::new("r");
        let (out, _) = feed(&mut f, &[delta("r", "Hello")]);
        assert_eq!(out, ["text:Hello"]);
        let mut rest = Vec::new();
        f.finish_from_payload(
            &json!({"result": {"payloads": [{"text": "Hello there", "mediaUrl": null}]}}),
            &mut |u| {
                if let TurnUpdate::Text(t) = u {
                    rest.push(t.to_owned());
                }
            },
        );
        assert_eq!(rest, [" there"]);
    }

    #[test]
    fn agent_params_in_the_real_cli_order() {
        let mut p = AgentParams::new("hi").agent_id("main");
        p.idempotency_key = "k".into();
        assert_eq!(
            serde_json::to_string(&p.to_json()).unwrap(),
            r#"{"message":"hi","agentId":"main","deliver":false,"timeout":600,"idempotencyKey":"k"}"#
        );
    }
}
