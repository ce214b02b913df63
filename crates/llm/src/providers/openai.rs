//! `api: "openai-completions"`: `POST {baseUrl}/chat/completions` with `stream: true`,
//! answered with server-sent events ending in `data: [DONE]`.
//!
//! Request shape as OpenClaw's direct transport builds it: the system prompt as a
//! `system` message (`developer` for reasoning models on OpenAI's own API), assistant
//! tool calls with JSON-string arguments, tool results as `role: "tool"` messages, function
//! tools sorted by name, `tool_choice: "auto"`, `max_completion_tokens`, and
//! `stream_options.include_usage` where the endpoint supports it (OpenAI itself and local
//! servers).

use serde_json::{Map, Value, json};

use super::{
    DecodeError, Decoder, Frame, generated_call_id, parse_json, sorted_tools, tool_arguments,
    tool_result_text,
};
use crate::catalog::ResolvedModel;
use crate::types::{AssistantPart, ChatRequest, Message, StopReason, StreamEvent, ToolCall, Usage};

/// The request URL.
pub(crate) fn url(model: &ResolvedModel) -> String {
    format!("{}/chat/completions", model.base_url)
}

/// The request body.
pub(crate) fn body(model: &ResolvedModel, req: &ChatRequest) -> Value {
    let native = model.is_native_openai();
    let mut messages = Vec::with_capacity(req.messages.len() + 1);
    if let Some(system) = req.system.as_deref().filter(|s| !s.is_empty()) {
        let role = if native && model.reasoning == Some(true) {
            "developer"
        } else {
            "system"
        };
        messages.push(json!({"role": role, "content": system}));
    }
    for message in &req.messages {
        match message {
            Message::User { content } => messages.push(json!({"role": "user", "content": content})),
            Message::Assistant { content } => {
                let text: Vec<&str> = content
                    .iter()
                    .filter_map(|p| match p {
                        AssistantPart::Text { text } if !text.trim().is_empty() => {
                            Some(text.as_str())
                        }
                        _ => None,
                    })
                    .collect();
                let calls: Vec<Value> = content
                    .iter()
                    .filter_map(|p| match p {
                        AssistantPart::ToolCall(call) => Some(json!({
                            "id": call.id,
                            "type": "function",
                            "function": {"name": call.name, "arguments": call.arguments.to_string()},
                        })),
                        AssistantPart::Text { .. } => None,
                    })
                    .collect();
                if text.is_empty() && calls.is_empty() {
                    continue;
                }
                let mut m = Map::new();
                m.insert("role".into(), json!("assistant"));
                m.insert(
                    "content".into(),
                    if text.is_empty() {
                        Value::Null
                    } else {
                        json!(text.join("\n"))
                    },
                );
                if !calls.is_empty() {
                    m.insert("tool_calls".into(), Value::Array(calls));
                }
                messages.push(Value::Object(m));
            }
            Message::ToolResult {
                tool_call_id,
                content,
                ..
            } => messages.push(json!({
                "role": "tool",
                "content": tool_result_text(content),
                "tool_call_id": tool_call_id,
            })),
        }
    }

    let mut body = Map::new();
    body.insert("model".into(), json!(model.model.model));
    body.insert("messages".into(), Value::Array(messages));
    body.insert("stream".into(), json!(true));
    if native || model.local {
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if native {
        body.insert("store".into(), json!(false));
    }
    if !req.tools.is_empty() {
        let tools: Vec<Value> = sorted_tools(&req.tools)
            .into_iter()
            .map(|t| {
                let mut function = json!({
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.parameters,
                });
                if native {
                    function["strict"] = json!(false);
                }
                json!({"type": "function", "function": function})
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
        body.insert("tool_choice".into(), json!("auto"));
    }
    if let Some(max) = req.max_tokens.or(model.max_tokens) {
        let max = model.max_tokens.map_or(max, |limit| max.min(limit));
        body.insert("max_completion_tokens".into(), json!(max));
    }
    Value::Object(body)
}

/// A tool call being assembled from argument fragments.
#[derive(Debug, Default)]
struct PartialCall {
    index: Option<u64>,
    id: String,
    name: String,
    arguments: String,
}

/// Decodes `chat.completion.chunk` events.
#[derive(Debug, Default)]
pub(crate) struct OpenAiDecoder {
    calls: Vec<PartialCall>,
    finish: Option<StopReason>,
    usage: Option<Usage>,
    sent_text: bool,
    finished: bool,
}

impl OpenAiDecoder {
    fn fragment(&mut self, delta: &Value) {
        let index = delta.get("index").and_then(Value::as_u64);
        let id = delta
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        let function = delta.get("function");
        let name = function
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        let args = function
            .and_then(|f| f.get("arguments"))
            .and_then(Value::as_str)
            .unwrap_or("");
        // Fragments are keyed by index; servers that send no index repeat the id, or
        // continue the last call.
        let existing = match (index, id) {
            (Some(i), _) => self.calls.iter().position(|c| c.index == Some(i)),
            (None, Some(id)) => self.calls.iter().position(|c| c.id == id),
            (None, None) => self.calls.len().checked_sub(1),
        };
        let call = match existing {
            Some(pos) => &mut self.calls[pos],
            None => {
                self.calls.push(PartialCall {
                    index,
                    ..PartialCall::default()
                });
                let last = self.calls.len() - 1;
                &mut self.calls[last]
            }
        };
        if let Some(id) = id
            && call.id.is_empty()
        {
            call.id = id.to_owned();
        }
        if let Some(name) = name
            && call.name.is_empty()
        {
            call.name = name.to_owned();
        }
        call.arguments.push_str(args);
    }

    /// Emits the tool calls, usage and `Done`.
    fn complete(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), DecodeError> {
        self.finished = true;
        let Some(mut stop) = self.finish else {
            return Err(DecodeError::transient(
                "the stream ended without a finish_reason: the answer is incomplete",
            ));
        };
        // OpenClaw's rules: tool calls under finish_reason "stop" count when there is no
        // text; "tool_calls" without any call is a plain stop.
        if stop == StopReason::Stop && !self.calls.is_empty() && !self.sent_text {
            stop = StopReason::ToolUse;
        }
        if stop == StopReason::ToolUse && self.calls.is_empty() {
            stop = StopReason::Stop;
        }
        if stop == StopReason::ToolUse {
            let mut calls = Vec::with_capacity(self.calls.len());
            for call in std::mem::take(&mut self.calls) {
                if call.name.trim().is_empty() {
                    return Err(DecodeError::invalid(
                        "the model sent a tool call without a tool name",
                    ));
                }
                let arguments = tool_arguments(&call.name, &call.arguments)?;
                calls.push(ToolCall {
                    id: if call.id.is_empty() {
                        generated_call_id("call")
                    } else {
                        call.id
                    },
                    name: call.name,
                    arguments,
                });
            }
            out.extend(calls.into_iter().map(StreamEvent::ToolCall));
        }
        out.extend(self.usage.map(StreamEvent::Usage));
        out.push(StreamEvent::Done { stop_reason: stop });
        Ok(())
    }
}

fn finish_reason(reason: &str) -> Result<StopReason, DecodeError> {
    match reason {
        "stop" | "end" => Ok(StopReason::Stop),
        "length" => Ok(StopReason::Length),
        "tool_calls" | "function_call" | "tool_call" => Ok(StopReason::ToolUse),
        "content_filter" => Err(DecodeError::refused(
            "the provider's content filter stopped the answer (finish_reason \"content_filter\")",
        )),
        other => Err(DecodeError::invalid(format!(
            "the provider ended the answer with an unknown finish_reason {}",
            Value::String(other.to_owned())
        ))),
    }
}

fn usage(raw: &Value) -> Usage {
    let count = |v: Option<&Value>| v.and_then(Value::as_u64).unwrap_or(0);
    let details = raw.get("prompt_tokens_details");
    let cache_read = details
        .and_then(|d| d.get("cached_tokens"))
        .or_else(|| raw.get("prompt_cache_hit_tokens"));
    let cache_read = count(cache_read);
    let cache_write = count(
        details
            .and_then(|d| d.get("cache_write_tokens"))
            .or_else(|| raw.get("cache_creation_input_tokens")),
    );
    Usage {
        input_tokens: count(raw.get("prompt_tokens")).saturating_sub(cache_read + cache_write),
        output_tokens: count(raw.get("completion_tokens")),
        cache_read_tokens: cache_read,
        cache_write_tokens: cache_write,
    }
}

impl Decoder for OpenAiDecoder {
    fn frame(&mut self, frame: Frame<'_>, out: &mut Vec<StreamEvent>) -> Result<bool, DecodeError> {
        let Frame::Sse { data, .. } = frame else {
            return Ok(false);
        };
        let data = data.trim();
        if data.is_empty() {
            return Ok(false);
        }
        if data == "[DONE]" {
            self.complete(out)?;
            return Ok(true);
        }
        let chunk = parse_json(data)?;
        if let Some(error) = chunk.get("error").filter(|e| !e.is_null()) {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .or_else(|| error.as_str())
                .unwrap_or("an error without a message");
            return Err(DecodeError::transient(format!(
                "the provider reported an error in the stream: {message}"
            )));
        }
        if let Some(raw) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(usage(raw));
        }
        let Some(choice) = chunk.get("choices").and_then(|c| c.get(0)) else {
            return Ok(false);
        };
        if self.usage.is_none()
            && let Some(raw) = choice.get("usage").filter(|u| u.is_object())
        {
            self.usage = Some(usage(raw));
        }
        if let Some(delta) = choice.get("delta").or_else(|| choice.get("message")) {
            for field in ["reasoning_content", "reasoning"] {
                if let Some(text) = delta
                    .get(field)
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                {
                    out.push(StreamEvent::ThinkingDelta(text.to_owned()));
                }
            }
            for field in ["content", "refusal"] {
                if let Some(text) = delta
                    .get(field)
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                {
                    self.sent_text |= !text.trim().is_empty();
                    out.push(StreamEvent::TextDelta(text.to_owned()));
                }
            }
            if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
                for call in calls {
                    self.fragment(call);
                }
            }
        }
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish = Some(finish_reason(reason)?);
        }
        Ok(false)
    }

    fn end(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), DecodeError> {
        if self.finished {
            return Ok(());
        }
        self.complete(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::DecodeErrorKind;

    fn run(frames: &[&str]) -> (Vec<StreamEvent>, Result<(), DecodeError>) {
        let mut d = OpenAiDecoder::default();
        let mut out = Vec::new();
        for data in frames {
            match d.frame(
                Frame::Sse {
                    event: "message",
                    data,
                },
                &mut out,
            ) {
                Ok(true) => return (out, Ok(())),
                Ok(false) => {}
                Err(e) => return (out, Err(e)),
            }
        }
        let end = d.end(&mut out);
        (out, end)
    }

    #[test]
    fn text_usage_and_done() {
        let (events, end) = run(&[
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":2}}}"#,
            "[DONE]",
        ]);
        end.unwrap();
        assert_eq!(
            events,
            vec![
                StreamEvent::TextDelta("Hel".into()),
                StreamEvent::TextDelta("lo".into()),
                StreamEvent::Usage(Usage {
                    input_tokens: 10,
                    output_tokens: 3,
                    cache_read_tokens: 2,
                    cache_write_tokens: 0
                }),
                StreamEvent::Done {
                    stop_reason: StopReason::Stop
                },
            ]
        );
    }

    #[test]
    fn tool_calls_are_assembled_by_index() {
        let (events, end) = run(&[
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"exec","arguments":""}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":1,"id":"call_b","function":{"name":"nodes","arguments":"{\"act"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"command\":"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"uname -s\"}"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":1,"function":{"arguments":"ion\":\"which\"}"}}]}}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"tool_calls"}]}"#,
        ]);
        end.unwrap();
        assert_eq!(
            events,
            vec![
                StreamEvent::ToolCall(ToolCall {
                    id: "call_a".into(),
                    name: "exec".into(),
                    arguments: json!({"command": "uname -s"})
                }),
                StreamEvent::ToolCall(ToolCall {
                    id: "call_b".into(),
                    name: "nodes".into(),
                    arguments: json!({"action": "which"})
                }),
                StreamEvent::Done {
                    stop_reason: StopReason::ToolUse
                },
            ]
        );
    }

    #[test]
    fn malformed_arguments_are_an_error_not_a_panic() {
        let (_, end) = run(&[
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c","function":{"name":"exec","arguments":"{\"command\": \"ls"}}]}}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"tool_calls"}]}"#,
            "[DONE]",
        ]);
        let err = end.unwrap_err();
        assert_eq!(err.kind, DecodeErrorKind::Invalid);
        assert!(
            err.detail
                .contains("tool \"exec\" with malformed JSON arguments"),
            "{}",
            err.detail
        );
    }

    #[test]
    fn stop_without_text_promotes_calls_and_length_drops_them() {
        let (events, _) = run(&[
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c","function":{"name":"t","arguments":"{}"}}]},"finish_reason":"stop"}]}"#,
        ]);
        assert_eq!(
            events.last(),
            Some(&StreamEvent::Done {
                stop_reason: StopReason::ToolUse
            })
        );
        let (events, _) = run(&[
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c","function":{"name":"t","arguments":"{\"a"}}]},"finish_reason":"length"}]}"#,
        ]);
        assert_eq!(
            events,
            vec![StreamEvent::Done {
                stop_reason: StopReason::Length
            }]
        );
    }

    #[test]
    fn broken_streams() {
        let (_, end) = run(&[r#"{"choices":[{"delta":{"content":"Hi"}}]}"#]);
        assert_eq!(end.unwrap_err().kind, DecodeErrorKind::Transient);
        let (_, end) = run(&["{not json"]);
        let err = end.unwrap_err();
        assert_eq!(err.kind, DecodeErrorKind::Invalid);
        assert!(
            err.detail
                .starts_with("the provider sent a malformed stream event"),
            "{}",
            err.detail
        );
        let (_, end) = run(&[r#"{"choices":[{"delta":{},"finish_reason":"content_filter"}]}"#]);
        assert_eq!(end.unwrap_err().kind, DecodeErrorKind::Refused);
        let (_, end) = run(&[r#"{"error":{"message":"upstream overloaded"}}"#]);
        assert!(end.unwrap_err().detail.contains("upstream overloaded"));
    }
}
