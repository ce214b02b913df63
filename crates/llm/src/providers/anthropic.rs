//! `api: "anthropic-messages"`: `POST {baseUrl}/v1/messages` with `stream: true`,
//! `x-api-key` and `anthropic-version: 2023-06-01`, answered with server-sent events
//! (`message_start`, `content_block_start` / `_delta` / `_stop`, `message_delta`,
//! `message_stop`, `ping`, `error`).
//!
//! Request shape as OpenClaw builds it: the system prompt as a text block, assistant tool
//! calls as `tool_use` blocks, consecutive tool results as `tool_result` blocks of one user
//! message (with `is_error`), tools with `input_schema`, and a required `max_tokens`.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::{
    DecodeError, Decoder, Frame, parse_json, sorted_tools, tool_arguments, tool_result_text,
};
use crate::catalog::{ANTHROPIC_DEFAULT_MAX_TOKENS, ResolvedModel};
use crate::types::{AssistantPart, ChatRequest, Message, StopReason, StreamEvent, ToolCall, Usage};

/// The API version header value.
pub(crate) const VERSION: &str = "2023-06-01";

/// The request URL. A `baseUrl` written with the `/v1` suffix (as for OpenAI) is accepted.
pub(crate) fn url(model: &ResolvedModel) -> String {
    let base = model
        .base_url
        .strip_suffix("/v1")
        .unwrap_or(&model.base_url);
    format!("{base}/v1/messages")
}

/// Tool-use ids must match `^[a-zA-Z0-9_-]+$` (max 64): ids made by other providers are
/// mapped into that alphabet, consistently for a call and its result.
fn tool_use_id(id: &str) -> String {
    let mapped: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if mapped.is_empty() {
        "call".to_owned()
    } else {
        mapped
    }
}

/// The request body.
pub(crate) fn body(model: &ResolvedModel, req: &ChatRequest) -> Value {
    let mut messages: Vec<Value> = Vec::with_capacity(req.messages.len());
    let mut pending_results: Vec<Value> = Vec::new();
    let flush = |pending: &mut Vec<Value>, messages: &mut Vec<Value>| {
        if !pending.is_empty() {
            messages.push(json!({"role": "user", "content": std::mem::take(pending)}));
        }
    };
    for message in &req.messages {
        match message {
            Message::ToolResult {
                tool_call_id,
                content,
                is_error,
                ..
            } => pending_results.push(json!({
                "type": "tool_result",
                "tool_use_id": tool_use_id(tool_call_id),
                "content": tool_result_text(content),
                "is_error": is_error,
            })),
            Message::User { content } => {
                flush(&mut pending_results, &mut messages);
                if !content.trim().is_empty() {
                    messages.push(json!({"role": "user", "content": content}));
                }
            }
            Message::Assistant { content } => {
                flush(&mut pending_results, &mut messages);
                let blocks: Vec<Value> = content
                    .iter()
                    .filter_map(|part| match part {
                        AssistantPart::Text { text } if !text.trim().is_empty() => {
                            Some(json!({"type": "text", "text": text}))
                        }
                        AssistantPart::Text { .. } => None,
                        AssistantPart::ToolCall(call) => Some(json!({
                            "type": "tool_use",
                            "id": tool_use_id(&call.id),
                            "name": call.name,
                            "input": call.arguments,
                        })),
                    })
                    .collect();
                if !blocks.is_empty() {
                    messages.push(json!({"role": "assistant", "content": blocks}));
                }
            }
        }
    }
    flush(&mut pending_results, &mut messages);

    let max_tokens = req
        .max_tokens
        .or(model.max_tokens)
        .unwrap_or(ANTHROPIC_DEFAULT_MAX_TOKENS);
    let max_tokens = model
        .max_tokens
        .map_or(max_tokens, |limit| max_tokens.min(limit));
    let mut body = Map::new();
    body.insert("model".into(), json!(model.model.model));
    body.insert("messages".into(), Value::Array(messages));
    body.insert("max_tokens".into(), json!(max_tokens));
    body.insert("stream".into(), json!(true));
    if let Some(system) = req.system.as_deref().filter(|s| !s.is_empty()) {
        body.insert("system".into(), json!([{"type": "text", "text": system}]));
    }
    if !req.tools.is_empty() {
        let tools: Vec<Value> = sorted_tools(&req.tools)
            .into_iter()
            .map(|t| {
                json!({
                    "name": t.name,
                    "description": t.description,
                    "input_schema": t.parameters,
                })
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
        body.insert("tool_choice".into(), json!({"type": "auto"}));
    }
    Value::Object(body)
}

#[derive(Debug)]
enum Block {
    Text,
    Thinking,
    Tool {
        id: String,
        name: String,
        /// The `input` of `content_block_start`, used when no JSON delta follows.
        initial: Value,
        json: String,
    },
    /// Server tools, citations, redacted thinking: nothing to emit.
    Other,
}

/// Decodes the Messages API event stream.
#[derive(Debug, Default)]
pub(crate) struct AnthropicDecoder {
    blocks: HashMap<u64, Block>,
    stop: Option<StopReason>,
    usage: Option<Usage>,
}

fn stop_reason(reason: &str, delta: &Value) -> Result<StopReason, DecodeError> {
    match reason {
        "end_turn" | "pause_turn" | "stop_sequence" | "compaction" => Ok(StopReason::Stop),
        "max_tokens" | "model_context_window_exceeded" => Ok(StopReason::Length),
        "tool_use" => Ok(StopReason::ToolUse),
        "refusal" | "sensitive" => {
            let details = delta.get("stop_details");
            let explanation = details
                .and_then(|d| d.get("explanation"))
                .and_then(Value::as_str);
            let category = details
                .and_then(|d| d.get("category"))
                .and_then(Value::as_str);
            Err(DecodeError::refused(match (category, explanation) {
                (Some(c), Some(e)) => format!("Anthropic refusal (category: {c}): {e}"),
                (Some(c), None) => format!("Anthropic refusal (category: {c})"),
                (None, Some(e)) => format!("Anthropic refusal: {e}"),
                (None, None) => format!("Anthropic ended the answer with stop_reason {reason:?}"),
            }))
        }
        other => Err(DecodeError::invalid(format!(
            "the provider ended the answer with an unknown stop_reason {}",
            Value::String(other.to_owned())
        ))),
    }
}

/// Reads the token counts present in `raw` into `usage`.
fn add_usage(usage: &mut Usage, raw: &Value) {
    let count = |name: &str| raw.get(name).and_then(Value::as_u64);
    if let Some(n) = count("input_tokens") {
        usage.input_tokens = n;
    }
    if let Some(n) = count("output_tokens") {
        usage.output_tokens = n;
    }
    if let Some(n) = count("cache_read_input_tokens") {
        usage.cache_read_tokens = n;
    }
    if let Some(n) = count("cache_creation_input_tokens") {
        usage.cache_write_tokens = n;
    }
}

impl AnthropicDecoder {
    fn usage_from(&mut self, raw: Option<&Value>) {
        if let Some(raw) = raw.filter(|u| u.is_object()) {
            add_usage(self.usage.get_or_insert_with(Usage::default), raw);
        }
    }
}

impl Decoder for AnthropicDecoder {
    fn frame(&mut self, frame: Frame<'_>, out: &mut Vec<StreamEvent>) -> Result<bool, DecodeError> {
        let Frame::Sse { event, data } = frame else {
            return Ok(false);
        };
        if event == "ping" || data.trim().is_empty() {
            return Ok(false);
        }
        let doc = parse_json(data)?;
        // The event name and the payload's `type` agree; proxies sometimes drop one.
        let kind = doc
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or(event)
            .to_owned();
        let index = doc.get("index").and_then(Value::as_u64).unwrap_or(0);
        match kind.as_str() {
            "message_start" => {
                self.usage_from(doc.get("message").and_then(|m| m.get("usage")));
            }
            "content_block_start" => {
                let block = doc.get("content_block").unwrap_or(&Value::Null);
                let block = match block.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        if let Some(text) = block
                            .get("text")
                            .and_then(Value::as_str)
                            .filter(|t| !t.is_empty())
                        {
                            out.push(StreamEvent::TextDelta(text.to_owned()));
                        }
                        Block::Text
                    }
                    Some("thinking") => Block::Thinking,
                    Some("tool_use") => Block::Tool {
                        id: block
                            .get("id")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                        name: block
                            .get("name")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                        initial: block.get("input").cloned().unwrap_or(Value::Null),
                        json: String::new(),
                    },
                    _ => Block::Other,
                };
                self.blocks.insert(index, block);
            }
            "content_block_delta" => {
                let delta = doc.get("delta").unwrap_or(&Value::Null);
                let text =
                    |field: &str| delta.get(field).and_then(Value::as_str).unwrap_or_default();
                match (
                    delta.get("type").and_then(Value::as_str),
                    self.blocks.get_mut(&index),
                ) {
                    (Some("text_delta"), _) if !text("text").is_empty() => {
                        out.push(StreamEvent::TextDelta(text("text").to_owned()));
                    }
                    (Some("thinking_delta"), _) if !text("thinking").is_empty() => {
                        out.push(StreamEvent::ThinkingDelta(text("thinking").to_owned()));
                    }
                    (Some("input_json_delta"), Some(Block::Tool { json, .. })) => {
                        json.push_str(text("partial_json"));
                    }
                    (Some("input_json_delta"), _) => {
                        return Err(DecodeError::invalid(format!(
                            "the provider sent tool arguments for content block {index}, which is not a tool call"
                        )));
                    }
                    _ => {}
                }
            }
            "content_block_stop" => {
                if let Some(Block::Tool {
                    id,
                    name,
                    initial,
                    json,
                }) = self.blocks.remove(&index)
                {
                    if name.trim().is_empty() {
                        return Err(DecodeError::invalid(
                            "the model sent a tool call without a tool name",
                        ));
                    }
                    let arguments = if json.trim().is_empty() && initial.is_object() {
                        initial
                    } else {
                        tool_arguments(&name, &json)?
                    };
                    out.push(StreamEvent::ToolCall(ToolCall {
                        id: if id.is_empty() {
                            super::generated_call_id("toolu")
                        } else {
                            id
                        },
                        name,
                        arguments,
                    }));
                }
            }
            "message_delta" => {
                let delta = doc.get("delta").unwrap_or(&Value::Null);
                if let Some(reason) = delta.get("stop_reason").and_then(Value::as_str) {
                    self.stop = Some(stop_reason(reason, delta)?);
                }
                self.usage_from(doc.get("usage"));
            }
            "message_stop" => {
                if self
                    .blocks
                    .values()
                    .any(|b| matches!(b, Block::Tool { .. }))
                {
                    return Err(DecodeError::transient(
                        "the answer ended inside a tool call (its content block never closed)",
                    ));
                }
                let Some(stop) = self.stop else {
                    return Err(DecodeError::invalid(
                        "the provider ended the answer without a stop_reason",
                    ));
                };
                out.extend(self.usage.map(StreamEvent::Usage));
                out.push(StreamEvent::Done { stop_reason: stop });
                return Ok(true);
            }
            "error" => {
                let error = doc.get("error").unwrap_or(&Value::Null);
                let kind = error.get("type").and_then(Value::as_str).unwrap_or("error");
                let message = error
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("an error without a message");
                let detail = format!("the provider reported {kind} in the stream: {message}");
                return Err(match kind {
                    "overloaded_error" | "api_error" | "rate_limit_error" | "timeout_error" => {
                        DecodeError::transient(detail)
                    }
                    _ => DecodeError::invalid(detail),
                });
            }
            // `ping` and future event types.
            _ => {}
        }
        Ok(false)
    }

    fn end(&mut self, _out: &mut Vec<StreamEvent>) -> Result<(), DecodeError> {
        Err(DecodeError::transient(
            "the stream ended before message_stop: the answer is incomplete",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::DecodeErrorKind;

    fn run(frames: &[(&str, &str)]) -> (Vec<StreamEvent>, Result<(), DecodeError>) {
        let mut d = AnthropicDecoder::default();
        let mut out = Vec::new();
        for (event, data) in frames {
            match d.frame(Frame::Sse { event, data }, &mut out) {
                Ok(true) => return (out, Ok(())),
                Ok(false) => {}
                Err(e) => return (out, Err(e)),
            }
        }
        let end = d.end(&mut out);
        (out, end)
    }

    #[test]
    fn text_tool_use_usage() {
        let (events, end) = run(&[
            (
                "message_start",
                r#"{"type":"message_start","message":{"id":"msg_1","usage":{"input_tokens":20,"cache_read_input_tokens":5,"output_tokens":1}}}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            ),
            ("ping", r#"{"type":"ping"}"#),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Let me check."}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":0}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"exec","input":{}}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"comm"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"and\": \"ls\"}"}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":1}"#,
            ),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":30}}"#,
            ),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ]);
        end.unwrap();
        assert_eq!(
            events,
            vec![
                StreamEvent::TextDelta("Let me check.".into()),
                StreamEvent::ToolCall(ToolCall {
                    id: "toolu_1".into(),
                    name: "exec".into(),
                    arguments: json!({"command": "ls"})
                }),
                StreamEvent::Usage(Usage {
                    input_tokens: 20,
                    output_tokens: 30,
                    cache_read_tokens: 5,
                    cache_write_tokens: 0
                }),
                StreamEvent::Done {
                    stop_reason: StopReason::ToolUse
                },
            ]
        );
    }

    #[test]
    fn errors() {
        let (_, end) = run(&[(
            "error",
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        )]);
        let err = end.unwrap_err();
        assert_eq!(err.kind, DecodeErrorKind::Transient);
        assert_eq!(
            err.detail,
            "the provider reported overloaded_error in the stream: Overloaded"
        );

        let (_, end) = run(&[
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t","name":"exec","input":{}}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{oops"}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":0}"#,
            ),
        ]);
        assert!(end.unwrap_err().detail.contains("malformed JSON arguments"));

        let (_, end) = run(&[(
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"refusal","stop_details":{"category":"cyber"}}}"#,
        )]);
        assert_eq!(end.unwrap_err().kind, DecodeErrorKind::Refused);

        let (_, end) = run(&[(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#,
        )]);
        assert!(end.unwrap_err().detail.contains("before message_stop"));
    }

    #[test]
    fn request_shape() {
        assert_eq!(tool_use_id("call_1|fc_2"), "call_1_fc_2");
        assert_eq!(tool_use_id(&"x".repeat(80)).len(), 64);
    }
}
