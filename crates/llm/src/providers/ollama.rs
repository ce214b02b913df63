//! `api: "ollama"`: Ollama's native `POST {baseUrl}/api/chat` with `stream: true`,
//! answered with newline-delimited JSON: `message.content` (and `message.thinking`)
//! deltas, whole `message.tool_calls` with object arguments, and a last line with
//! `done: true`, `done_reason` and the eval counts.
//!
//! Request shape as OpenClaw's Ollama extension builds it: a trailing `/v1` of the base
//! URL is dropped, tool results are `role: "tool"` messages with `tool_name` (prefixed
//! `[tool error]` when they failed), `truncate`/`shift` off for local models so Ollama
//! reports an overlong prompt instead of silently cutting it, and `options.num_predict`
//! for the output budget.

use serde_json::{Map, Value, json};

use super::{
    DecodeError, Decoder, Frame, generated_call_id, parse_json, sorted_tools, tool_arguments,
};
use crate::catalog::ResolvedModel;
use crate::types::{AssistantPart, ChatRequest, Message, StopReason, StreamEvent, ToolCall, Usage};

/// The request URL.
pub(crate) fn url(model: &ResolvedModel) -> String {
    let base = model
        .base_url
        .strip_suffix("/v1")
        .unwrap_or(&model.base_url);
    format!("{base}/api/chat")
}

/// Ollama's hosted models (`…:cloud`, or `https://ollama.com`) do not take
/// `truncate`/`shift`.
fn is_cloud(model: &ResolvedModel) -> bool {
    let id = model.model.model.to_ascii_lowercase();
    id.ends_with(":cloud")
        || id.ends_with("-cloud")
        || model.base_url.starts_with("https://ollama.com")
}

/// Ollama rejects tool schemas without a `type`; the root is always an object.
fn tool_schema(schema: &Value) -> Value {
    let mut schema = match schema {
        Value::Object(o) => o.clone(),
        _ => Map::new(),
    };
    if !schema
        .get("type")
        .is_some_and(|t| t.is_string() || t.is_array())
    {
        schema.insert("type".into(), json!("object"));
    }
    if schema.get("type") == Some(&json!("object"))
        && !schema.get("properties").is_some_and(Value::is_object)
    {
        schema.insert("properties".into(), json!({}));
    }
    Value::Object(schema)
}

/// The request body.
pub(crate) fn body(model: &ResolvedModel, req: &ChatRequest) -> Value {
    let mut messages = Vec::with_capacity(req.messages.len() + 1);
    if let Some(system) = req.system.as_deref().filter(|s| !s.is_empty()) {
        messages.push(json!({"role": "system", "content": system}));
    }
    for message in &req.messages {
        match message {
            Message::User { content } => messages.push(json!({"role": "user", "content": content})),
            Message::Assistant { content } => {
                let text: String = content
                    .iter()
                    .filter_map(|p| match p {
                        AssistantPart::Text { text } => Some(text.as_str()),
                        AssistantPart::ToolCall(_) => None,
                    })
                    .collect();
                let calls: Vec<Value> = content
                    .iter()
                    .filter_map(|p| match p {
                        AssistantPart::ToolCall(call) => Some(json!({
                            "id": call.id,
                            "function": {"name": call.name, "arguments": call.arguments},
                        })),
                        AssistantPart::Text { .. } => None,
                    })
                    .collect();
                let mut m = Map::new();
                m.insert("role".into(), json!("assistant"));
                m.insert("content".into(), json!(text));
                if !calls.is_empty() {
                    m.insert("tool_calls".into(), Value::Array(calls));
                }
                messages.push(Value::Object(m));
            }
            Message::ToolResult {
                tool_call_id,
                tool_name,
                content,
                is_error,
            } => {
                let text = if content.trim().is_empty() {
                    "(no tool output)"
                } else {
                    content.as_str()
                };
                let prefix = if *is_error { "[tool error] " } else { "" };
                messages.push(json!({
                    "role": "tool",
                    "content": format!("{prefix}{text}"),
                    "tool_call_id": tool_call_id,
                    "tool_name": tool_name,
                }));
            }
        }
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(model.model.model));
    body.insert("messages".into(), Value::Array(messages));
    body.insert("stream".into(), json!(true));
    if !req.tools.is_empty() {
        let tools: Vec<Value> = sorted_tools(&req.tools)
            .into_iter()
            .map(|t| {
                json!({"type": "function", "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": tool_schema(&t.parameters),
                }})
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(max) = req.max_tokens.or(model.max_tokens) {
        let max = model.max_tokens.map_or(max, |limit| max.min(limit));
        body.insert("options".into(), json!({"num_predict": max}));
    }
    if !is_cloud(model) {
        body.insert("truncate".into(), json!(false));
        body.insert("shift".into(), json!(false));
    }
    Value::Object(body)
}

/// Decodes `/api/chat` NDJSON lines.
#[derive(Debug, Default)]
pub(crate) struct OllamaDecoder {
    calls: Vec<ToolCall>,
    done: bool,
}

impl OllamaDecoder {
    fn collect_calls(&mut self, calls: &[Value]) -> Result<(), DecodeError> {
        for call in calls {
            let function = call.get("function").unwrap_or(&Value::Null);
            let name = function
                .get("name")
                .and_then(Value::as_str)
                .map(str::trim)
                .unwrap_or_default();
            if name.is_empty() {
                return Err(DecodeError::invalid(
                    "the model sent a tool call without a tool name",
                ));
            }
            let arguments = match function.get("arguments") {
                None | Some(Value::Null) => json!({}),
                Some(args @ Value::Object(_)) => args.clone(),
                Some(Value::String(text)) => tool_arguments(name, text)?,
                Some(other) => tool_arguments(name, &other.to_string())?,
            };
            let id = call
                .get("id")
                .and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty())
                .map_or_else(|| generated_call_id("ollama_call"), str::to_owned);
            self.calls.push(ToolCall {
                id,
                name: name.to_owned(),
                arguments,
            });
        }
        Ok(())
    }
}

impl Decoder for OllamaDecoder {
    fn frame(&mut self, frame: Frame<'_>, out: &mut Vec<StreamEvent>) -> Result<bool, DecodeError> {
        let Frame::Line(line) = frame else {
            return Ok(false);
        };
        let line = line.trim();
        if line.is_empty() {
            return Ok(false);
        }
        let doc = parse_json(line)?;
        // Errors inside a 200 stream come from the model runner (crashed, out of
        // memory, busy); requests that can never work fail with an HTTP status instead.
        if let Some(error) = doc.get("error").and_then(Value::as_str) {
            return Err(DecodeError::transient(format!(
                "Ollama reported an error in the stream: {error}"
            )));
        }
        let (Some(message), Some(done)) = (
            doc.get("message").filter(|m| m.is_object()),
            doc.get("done").and_then(Value::as_bool),
        ) else {
            return Err(DecodeError::invalid(format!(
                "Ollama sent a line without message and done: {}",
                crate::error::one_line(line, 200)
            )));
        };
        let text = |field: &str| {
            message
                .get(field)
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
        };
        if let Some(thinking) = text("thinking").or_else(|| text("reasoning")) {
            out.push(StreamEvent::ThinkingDelta(thinking.to_owned()));
        }
        if let Some(content) = text("content") {
            out.push(StreamEvent::TextDelta(content.to_owned()));
        }
        if let Some(calls) = message.get("tool_calls").and_then(Value::as_array) {
            self.collect_calls(calls)?;
        }
        if !done {
            return Ok(false);
        }
        self.done = true;
        let stop = if doc.get("done_reason").and_then(Value::as_str) == Some("length") {
            StopReason::Length
        } else if !self.calls.is_empty() {
            StopReason::ToolUse
        } else {
            StopReason::Stop
        };
        if stop == StopReason::ToolUse {
            out.extend(
                std::mem::take(&mut self.calls)
                    .into_iter()
                    .map(StreamEvent::ToolCall),
            );
        }
        let count = |name: &str| doc.get(name).and_then(Value::as_u64);
        if let (Some(prompt), Some(output)) = (count("prompt_eval_count"), count("eval_count")) {
            let cached = count("prompt_eval_cached_count").unwrap_or(0).min(prompt);
            out.push(StreamEvent::Usage(Usage {
                input_tokens: prompt - cached,
                output_tokens: output,
                cache_read_tokens: cached,
                cache_write_tokens: 0,
            }));
        }
        out.push(StreamEvent::Done { stop_reason: stop });
        Ok(true)
    }

    fn end(&mut self, _out: &mut Vec<StreamEvent>) -> Result<(), DecodeError> {
        if self.done {
            return Ok(());
        }
        Err(DecodeError::transient(
            "the Ollama stream ended without a final response (done: true)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(lines: &[&str]) -> (Vec<StreamEvent>, Result<(), DecodeError>) {
        let mut d = OllamaDecoder::default();
        let mut out = Vec::new();
        for line in lines {
            match d.frame(Frame::Line(line), &mut out) {
                Ok(true) => return (out, Ok(())),
                Ok(false) => {}
                Err(e) => return (out, Err(e)),
            }
        }
        let end = d.end(&mut out);
        (out, end)
    }

    #[test]
    fn text_tool_calls_and_counts() {
        let (events, end) = run(&[
            r#"{"model":"llama3.2","message":{"role":"assistant","content":"Checking"},"done":false}"#,
            r#"{"model":"llama3.2","message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"exec","arguments":{"command":"ls"}}}]},"done":false}"#,
            r#"{"model":"llama3.2","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","prompt_eval_count":40,"eval_count":9}"#,
        ]);
        end.unwrap();
        assert_eq!(events[0], StreamEvent::TextDelta("Checking".into()));
        let StreamEvent::ToolCall(call) = &events[1] else {
            panic!("{events:?}")
        };
        assert_eq!(call.name, "exec");
        assert_eq!(call.arguments, json!({"command": "ls"}));
        assert!(call.id.starts_with("ollama_call_"), "{}", call.id);
        assert_eq!(
            events[2..],
            [
                StreamEvent::Usage(Usage {
                    input_tokens: 40,
                    output_tokens: 9,
                    ..Usage::default()
                }),
                StreamEvent::Done {
                    stop_reason: StopReason::ToolUse
                }
            ]
        );
    }

    #[test]
    fn broken_lines() {
        let (_, end) = run(&[r#"{"message":{"content":"hi"},"done":false}"#]);
        assert!(end.unwrap_err().detail.contains("without a final response"));
        let (_, end) = run(&[r#"{"error":"model \"x\" not found"}"#]);
        assert!(end.unwrap_err().detail.contains("model \"x\" not found"));
        let (_, end) = run(&["{\"message\":"]);
        assert!(end.unwrap_err().detail.contains("malformed stream event"));
    }

    #[test]
    fn schema_types_are_filled_in() {
        assert_eq!(
            tool_schema(&json!(null)),
            json!({"type": "object", "properties": {}})
        );
        assert_eq!(
            tool_schema(&json!({"properties": {"a": {"type": "string"}}})),
            json!({"properties": {"a": {"type": "string"}}, "type": "object"})
        );
    }
}
