//! The events a run publishes, in OpenClaw's shapes: `agent` (streams `lifecycle`,
//! `assistant`, `tool`), `chat` (states `delta`, `final`, `aborted`, `error`) and
//! `sessions.changed`.
//!
//! Every event of a run carries the run's own `seq`, counted across its `agent` events;
//! a `chat` event carries the `seq` of the last `agent` event before it. Text deltas are
//! coalesced: a `chat` delta goes out at most every [`DELTA_INTERVAL`], carrying the whole
//! text so far, and the text pending is flushed before a tool starts and before the end.

use serde_json::{Value, json};
use std::time::Duration;
use tokio::time::Instant;

/// The shortest time between two `chat` deltas of a run.
pub(crate) const DELTA_INTERVAL: Duration = Duration::from_millis(150);

/// Who may receive an event, beyond the read scope every agent event needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// Every operator with `operator.read`.
    Everyone,
    /// Tool payloads: only the client that started the run (`owner`, its connection id), and
    /// only if it declared `caps: ["tool-events"]`, as OpenClaw sends them.
    ToolEvents { owner: Option<String> },
}

/// Where the runtime's events go; the gateway broadcasts them to its clients and in-process
/// subscribers.
pub trait EventSink: Send + Sync + 'static {
    fn publish(&self, event: &str, payload: Value, audience: Audience);
}

pub(crate) use clawgate_base::now_ms;

/// The events of one run, numbered.
pub(crate) struct RunEvents<'a> {
    sink: &'a dyn EventSink,
    run_id: String,
    session_key: String,
    session_id: String,
    agent_id: String,
    owner: Option<String>,
    seq: u64,
    /// The reply text so far, and what of it no `chat` delta has carried yet.
    text: String,
    unsent: String,
    last_delta: Option<Instant>,
}

impl<'a> RunEvents<'a> {
    pub fn new(
        sink: &'a dyn EventSink,
        run_id: &str,
        session_key: &str,
        session_id: &str,
        agent_id: &str,
        owner: Option<&str>,
    ) -> Self {
        RunEvents {
            sink,
            owner: owner.map(str::to_owned),
            run_id: run_id.to_owned(),
            session_key: session_key.to_owned(),
            session_id: session_id.to_owned(),
            agent_id: agent_id.to_owned(),
            seq: 0,
            text: String::new(),
            unsent: String::new(),
            last_delta: None,
        }
    }

    fn agent(&mut self, stream: &str, data: Value, audience: Audience) {
        self.seq += 1;
        self.agent_at_current_seq(stream, data, audience);
    }

    fn agent_at_current_seq(&self, stream: &str, data: Value, audience: Audience) {
        let mut payload = json!({
            "runId": self.run_id,
            "sessionKey": self.session_key,
            "agentId": self.agent_id,
            "stream": stream,
            "data": data,
            "seq": self.seq,
            "ts": now_ms(),
            "isHeartbeat": false,
        });
        // As OpenClaw: only lifecycle events name the session id.
        if stream == "lifecycle" {
            payload["sessionId"] = json!(self.session_id);
        }
        self.sink.publish("agent", payload, audience);
    }

    /// A `chat.send` run's progress before the model answers: a `chat` status and an `agent`
    /// `run_status` with one `seq` (`preparing_workspace`, `preparing_context`,
    /// `starting_model`).
    pub fn status(&mut self, phase: &str) {
        self.seq += 1;
        self.chat("status", json!({"phase": phase}));
        self.agent_at_current_seq("run_status", json!({"phase": phase}), Audience::Everyone);
    }

    /// Token counts as the provider reported them.
    pub fn usage(&mut self, output_tokens: u64) {
        self.agent(
            "usage",
            json!({"outputTokens": output_tokens}),
            Audience::Everyone,
        );
    }

    fn chat(&self, state: &str, fields: Value) {
        let mut payload = json!({
            "runId": self.run_id,
            "sessionKey": self.session_key,
            "agentId": self.agent_id,
            "seq": self.seq,
            "state": state,
        });
        if let (Some(p), Value::Object(f)) = (payload.as_object_mut(), fields) {
            p.extend(f);
        }
        self.sink.publish("chat", payload, Audience::Everyone);
    }

    pub fn lifecycle(&mut self, data: Value) {
        self.agent("lifecycle", data, Audience::Everyone);
    }

    /// More reply text: an `assistant` event now, a `chat` delta when one is due.
    pub fn text_delta(&mut self, delta: &str) {
        self.text.push_str(delta);
        self.unsent.push_str(delta);
        self.agent(
            "assistant",
            json!({"text": self.text, "delta": delta}),
            Audience::Everyone,
        );
        let due = self
            .last_delta
            .is_none_or(|at| at.elapsed() >= DELTA_INTERVAL);
        if due {
            self.flush_delta();
        }
    }

    /// When the text no `chat` delta has carried yet is due to go out even if no more comes
    /// (a model that pauses mid-reply): `None` when nothing waits.
    pub fn delta_due_at(&self) -> Option<Instant> {
        if self.unsent.is_empty() {
            return None;
        }
        Some(
            self.last_delta
                .map_or_else(Instant::now, |t| t + DELTA_INTERVAL),
        )
    }

    /// Sends the text no `chat` delta has carried yet.
    pub fn flush_delta(&mut self) {
        if self.unsent.is_empty() {
            return;
        }
        let delta = std::mem::take(&mut self.unsent);
        self.last_delta = Some(Instant::now());
        self.chat(
            "delta",
            json!({
                "deltaText": delta,
                "message": {
                    "role": "assistant",
                    "content": [{"type": "text", "text": self.text}],
                    "timestamp": now_ms(),
                },
            }),
        );
    }

    /// A model answer ended in tool calls: the next answer's text starts afresh.
    pub fn next_answer(&mut self) {
        self.flush_delta();
        self.text.clear();
    }

    pub fn tool_start(&mut self, name: &str, call_id: &str, args: &Value) {
        self.flush_delta();
        self.agent(
            "tool",
            json!({"phase": "start", "name": name, "toolCallId": call_id, "args": args}),
            Audience::ToolEvents {
                owner: self.owner.clone(),
            },
        );
    }

    pub fn tool_result(&mut self, name: &str, call_id: &str, result: &str, is_error: bool) {
        self.agent(
            "tool",
            json!({
                "phase": "result",
                "name": name,
                "toolCallId": call_id,
                "isError": is_error,
                "result": {
                    "content": [{"type": "text", "text": result}],
                    "details": {"status": if is_error { "error" } else { "completed" }},
                },
            }),
            Audience::ToolEvents {
                owner: self.owner.clone(),
            },
        );
    }

    /// The reply as `chat` events show it: its text, no tool calls or usage.
    fn display(text: &str) -> Value {
        json!({"role": "assistant", "content": [{"type": "text", "text": text}], "timestamp": now_ms()})
    }

    pub fn chat_final(&mut self, text: &str, stop_reason: &str) {
        self.flush_delta();
        self.chat(
            "final",
            json!({"stopReason": stop_reason, "message": Self::display(text.trim_end())}),
        );
    }

    /// An aborted run: the `chat` aborted event with the text it had so far (OpenClaw's
    /// `stopReason` for an abort asked over RPC is `rpc`), then, at the same `seq`, the
    /// lifecycle `data` given (`None`: a run aborted before it started has no lifecycle).
    pub fn aborted(&mut self, stop_reason: &str, lifecycle: Option<Value>) {
        self.flush_delta();
        self.seq += 1;
        let mut fields = json!({"stopReason": stop_reason});
        if !self.text.is_empty() {
            fields["message"] = Self::display(&self.text);
        }
        self.chat("aborted", fields);
        if let Some(data) = lifecycle {
            self.agent_at_current_seq("lifecycle", data, Audience::Everyone);
        }
    }

    pub fn chat_error(&mut self, message: &str) {
        self.flush_delta();
        self.chat("error", json!({"errorMessage": message}));
    }
}
