//! Transcript messages in the shape `chat.history` serves them (OpenClaw's): `user`,
//! `assistant` (parts `text` and `toolCall`, `stopReason`, `usage`) and `toolResult`; and the
//! model's view of them ([`to_model`]).

use clawgate_llm::{AssistantPart, Message, ToolCall, Usage};
use serde_json::{Value, json};

/// A final reply that is exactly this is not delivered (OpenClaw's silent reply).
pub const NO_REPLY: &str = "NO_REPLY";

/// The date prefix OpenClaw puts before what the user said, so the model knows when:
/// `[Mon 2026-12-07 21:50 UTC] `.
pub(crate) fn stamped(text: &str, at_ms: i64) -> String {
    format!("[{}] {text}", utc_stamp(at_ms))
}

fn utc_stamp(at_ms: i64) -> String {
    let secs = at_ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let rem = secs.rem_euclid(86_400);
    format!(
        "{weekday} {y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

use clawgate_base::civil_from_days;

/// What the user said, as sent (the model gets it with the date stamp, the transcript
/// without, as OpenClaw keeps it).
pub(crate) fn user(text: &str, at_ms: i64) -> Value {
    json!({"role": "user", "content": text, "timestamp": at_ms})
}

/// An assistant message: its text, its tool calls, why it stopped.
pub(crate) fn assistant(
    text: &str,
    calls: &[ToolCall],
    stop_reason: &str,
    usage: Option<Usage>,
    model: Option<(&str, &str)>,
    at_ms: i64,
) -> Value {
    let mut content = Vec::new();
    if !text.is_empty() {
        content.push(json!({"type": "text", "text": text}));
    }
    for c in calls {
        content.push(
            json!({"type": "toolCall", "id": c.id, "name": c.name, "arguments": c.arguments}),
        );
    }
    let mut m = json!({
        "role": "assistant",
        "content": content,
        "stopReason": stop_reason,
        "timestamp": at_ms,
    });
    if let Some(u) = usage {
        m["usage"] = json!({
            "input": u.input_tokens,
            "output": u.output_tokens,
            "cacheRead": u.cache_read_tokens,
            "cacheWrite": u.cache_write_tokens,
            "totalTokens": u.input_tokens + u.output_tokens + u.cache_read_tokens + u.cache_write_tokens,
        });
    }
    if let Some((provider, model)) = model {
        m["provider"] = json!(provider);
        m["model"] = json!(model);
    }
    m
}

/// An assistant message that ends a run without an answer from the model: an error, an
/// abort, an interruption. `errorMessage` says what happened.
pub(crate) fn assistant_note(text: &str, stop_reason: &str, error: &str, at_ms: i64) -> Value {
    let mut m = assistant(text, &[], stop_reason, None, None, at_ms);
    m["errorMessage"] = json!(error);
    m
}

pub(crate) fn tool_result(call: &ToolCall, text: &str, is_error: bool, at_ms: i64) -> Value {
    json!({
        "role": "toolResult",
        "toolCallId": call.id,
        "toolName": call.name,
        "content": [{"type": "text", "text": text}],
        "isError": is_error,
        "timestamp": at_ms,
    })
}

fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter(|p| p["type"] == "text")
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// What the model is sent of a transcript: every message in order, except the notes of
/// runs that ended without an answer (they are for people, not for the model), and no
/// tool result whose call is not in the messages before it.
pub(crate) fn to_model(messages: &[Value]) -> Vec<Message> {
    let mut out = Vec::new();
    let mut open_calls: Vec<String> = Vec::new();
    for m in messages {
        match m["role"].as_str() {
            Some("user") => {
                let text = text_of(&m["content"]);
                out.push(Message::user(match m["timestamp"].as_i64() {
                    Some(at) => stamped(&text, at),
                    None => text,
                }));
            }
            Some("assistant") => {
                if m.get("errorMessage").is_some() {
                    continue;
                }
                let mut parts = Vec::new();
                for p in m["content"].as_array().into_iter().flatten() {
                    match p["type"].as_str() {
                        Some("text") => parts.push(AssistantPart::Text {
                            text: p["text"].as_str().unwrap_or_default().to_owned(),
                        }),
                        Some("toolCall") => {
                            let id = p["id"].as_str().unwrap_or_default().to_owned();
                            open_calls.push(id.clone());
                            parts.push(AssistantPart::ToolCall(ToolCall {
                                id,
                                name: p["name"].as_str().unwrap_or_default().to_owned(),
                                arguments: p["arguments"].clone(),
                            }));
                        }
                        _ => {}
                    }
                }
                if !parts.is_empty() {
                    out.push(Message::Assistant { content: parts });
                }
            }
            Some("toolResult") => {
                let id = m["toolCallId"].as_str().unwrap_or_default();
                if let Some(i) = open_calls.iter().position(|c| c == id) {
                    open_calls.remove(i);
                    out.push(Message::ToolResult {
                        tool_call_id: id.to_owned(),
                        tool_name: m["toolName"].as_str().unwrap_or_default().to_owned(),
                        content: text_of(&m["content"]),
                        is_error: m["isError"].as_bool().unwrap_or(false),
                    });
                }
            }
            _ => {}
        }
    }
    // A call left without a result (the run was cut off between the two) would make the
    // provider refuse the whole request: answer it.
    let mut fixed = Vec::with_capacity(out.len());
    let mut pending: Vec<(String, String)> = Vec::new();
    for m in out {
        if !matches!(m, Message::ToolResult { .. }) {
            for (id, name) in pending.drain(..) {
                fixed.push(interrupted_result(id, name));
            }
        }
        match &m {
            Message::Assistant { content } => {
                for p in content {
                    if let AssistantPart::ToolCall(c) = p {
                        pending.push((c.id.clone(), c.name.clone()));
                    }
                }
            }
            Message::ToolResult { tool_call_id, .. } => {
                pending.retain(|(id, _)| id != tool_call_id);
            }
            Message::User { .. } => {}
        }
        fixed.push(m);
    }
    for (id, name) in pending {
        fixed.push(interrupted_result(id, name));
    }
    fixed
}

fn interrupted_result(id: String, name: String) -> Message {
    Message::ToolResult {
        tool_call_id: id,
        tool_name: name,
        content: "This tool call was interrupted before it returned a result.".into(),
        is_error: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_text_carries_openclaws_date_stamp() {
        // 2026-11-24 09:50 UTC was a Tuesday.
        assert_eq!(
            stamped("hi", 1_795_513_800_000 + 3_000),
            "[Tue 2026-11-24 09:50 UTC] hi"
        );
        assert_eq!(utc_stamp(0), "Thu 1970-01-01 00:00 UTC");
    }

    #[test]
    fn the_model_sees_calls_and_results_in_pairs() {
        let call = ToolCall {
            id: "c1".into(),
            name: "exec".into(),
            arguments: json!({"command": "true"}),
        };
        let messages = vec![
            user("hi", 1),
            assistant("", std::slice::from_ref(&call), "toolUse", None, None, 2),
            tool_result(&call, "Node: n1\nok", false, 3),
            assistant("done", &[], "stop", None, None, 4),
            assistant_note("", "error", "interrupted", 5),
            tool_result(
                &ToolCall {
                    id: "stray".into(),
                    ..call.clone()
                },
                "x",
                false,
                6,
            ),
            user("again", 7),
            assistant("", std::slice::from_ref(&call), "toolUse", None, None, 8),
        ];
        let model = to_model(&messages);
        assert_eq!(model.len(), 7, "{model:#?}");
        assert_eq!(model[0], Message::user("[Thu 1970-01-01 00:00 UTC] hi"));
        assert!(
            matches!(&model[2], Message::ToolResult { content, .. } if content == "Node: n1\nok")
        );
        assert!(
            matches!(&model[6], Message::ToolResult { is_error: true, .. }),
            "a call without a result is answered as interrupted"
        );
    }
}
