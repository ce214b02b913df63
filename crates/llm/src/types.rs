//! The normalized request and the normalized event stream, shared by every provider.
//!
//! The message shapes follow OpenClaw's transcript (`role` `user` / `assistant` /
//! `toolResult`; assistant parts `text` and `toolCall`), so the agent runtime can store
//! them as they are.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use clawgate_config::ModelRef;

use crate::error::LlmError;

/// One model request: everything a provider needs to produce the next assistant message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatRequest {
    /// The system prompt (sent as a `system` message, or Anthropic's `system` field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// The conversation so far, oldest first.
    pub messages: Vec<Message>,
    /// The tools the model may call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSpec>,
    /// Output budget in tokens. `None`: the model's `maxTokens` from the config (and for
    /// Anthropic, which requires one, 8192 when that is not set either).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
}

/// One message of the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "camelCase")]
pub enum Message {
    /// What the user said.
    User { content: String },
    /// An earlier answer of the model: text and the tool calls it made.
    Assistant { content: Vec<AssistantPart> },
    /// The result of one tool call, answering the assistant part with the same id.
    #[serde(rename_all = "camelCase")]
    ToolResult {
        tool_call_id: String,
        tool_name: String,
        content: String,
        #[serde(default)]
        is_error: bool,
    },
}

impl Message {
    /// A user message.
    pub fn user(text: impl Into<String>) -> Message {
        Message::User {
            content: text.into(),
        }
    }

    /// A tool result for `call`.
    pub fn tool_result(call: &ToolCall, content: impl Into<String>, is_error: bool) -> Message {
        Message::ToolResult {
            tool_call_id: call.id.clone(),
            tool_name: call.name.clone(),
            content: content.into(),
            is_error,
        }
    }
}

/// A part of an assistant message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum AssistantPart {
    Text { text: String },
    ToolCall(ToolCall),
}

/// A tool call made by the model, with its arguments complete and parsed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The provider's call id; the tool result refers to it.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments: always a JSON object.
    pub arguments: Value,
}

/// A tool the model may call: a function with a JSON Schema for its arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: Value,
}

/// Why the model stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StopReason {
    /// It finished its answer.
    Stop,
    /// It wants the tool calls of this message run, then to be called again.
    ToolUse,
    /// It hit the output budget; tool calls of a truncated message are dropped.
    Length,
}

/// Token counts of one request, as the provider reported them. `input_tokens` excludes
/// tokens read from or written to the provider's prompt cache, which are counted apart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
}

/// One event of a model's answer, whichever provider produced it.
///
/// A stream is `Started`, then any number of `TextDelta` / `ThinkingDelta` /
/// `ToolCall`, then at most one `Usage`, then `Done`; or it ends early with an error
/// item. Retries and fallbacks happen only before `Started`, so nothing after it is ever
/// replayed.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// The model that is answering, and the models that failed before it (fallbacks
    /// taken), each with its error.
    Started {
        model: ModelRef,
        failed: Vec<LlmError>,
    },
    /// More answer text.
    TextDelta(String),
    /// More reasoning text, from providers that stream it apart from the answer.
    ThinkingDelta(String),
    /// A complete tool call.
    ToolCall(ToolCall),
    /// Token counts, when the provider sent them.
    Usage(Usage),
    /// The answer is complete.
    Done { stop_reason: StopReason },
}
