//! The three wire protocols: each maps a [`ChatRequest`](crate::ChatRequest) to its
//! request body and decodes its streamed answer into [`StreamEvent`]s.
//!
//! Decoders are plain state machines fed one frame at a time (an SSE event or an NDJSON
//! line), so they are tested without any network.

pub(crate) mod anthropic;
pub(crate) mod ollama;
pub(crate) mod openai;

use serde_json::{Value, json};

use crate::error::{Quoted, one_line};
use crate::types::{StreamEvent, ToolSpec};

/// One unit of a streamed answer.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Frame<'a> {
    /// A server-sent event (`event:` name, `data:` text).
    Sse { event: &'a str, data: &'a str },
    /// One line of newline-delimited JSON.
    Line(&'a str),
}

/// What went wrong while decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodeError {
    pub detail: String,
    pub kind: DecodeErrorKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DecodeErrorKind {
    /// The answer is not what the protocol allows (malformed JSON, bad tool arguments).
    Invalid,
    /// The answer broke off, or the provider reported a temporary failure in the stream.
    Transient,
    /// The provider declined to answer.
    Refused,
}

impl DecodeError {
    pub(crate) fn invalid(detail: impl Into<String>) -> DecodeError {
        DecodeError {
            detail: detail.into(),
            kind: DecodeErrorKind::Invalid,
        }
    }

    pub(crate) fn transient(detail: impl Into<String>) -> DecodeError {
        DecodeError {
            detail: detail.into(),
            kind: DecodeErrorKind::Transient,
        }
    }

    pub(crate) fn refused(detail: impl Into<String>) -> DecodeError {
        DecodeError {
            detail: detail.into(),
            kind: DecodeErrorKind::Refused,
        }
    }
}

/// A provider's answer decoder.
pub(crate) trait Decoder: Send {
    /// Feeds one frame; appends the events it completes to `out`. Returns true once the
    /// answer is complete (the rest of the body, if any, is not read).
    fn frame(&mut self, frame: Frame<'_>, out: &mut Vec<StreamEvent>) -> Result<bool, DecodeError>;

    /// The body ended without the frame that completes the answer: finish it or report
    /// what is missing.
    fn end(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), DecodeError>;
}

/// Parses a frame's JSON payload.
pub(crate) fn parse_json(text: &str) -> Result<Value, DecodeError> {
    serde_json::from_str(text).map_err(|e| {
        DecodeError::invalid(format!(
            "the provider sent a malformed stream event ({e}): {}",
            one_line(text, 200)
        ))
    })
}

/// The complete arguments of a tool call, which must form a JSON object. Empty arguments
/// (a tool without parameters) are `{}`.
pub(crate) fn tool_arguments(tool: &str, raw: &str) -> Result<Value, DecodeError> {
    let text = raw.trim();
    if text.is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_str::<Value>(text) {
        Ok(args @ Value::Object(_)) => Ok(args),
        Ok(other) => Err(DecodeError::invalid(format!(
            "the model called tool {} with arguments that are not a JSON object: {}",
            Quoted(tool),
            one_line(&other.to_string(), 120)
        ))),
        Err(e) => Err(DecodeError::invalid(format!(
            "the model called tool {} with malformed JSON arguments ({e}): {}",
            Quoted(tool),
            one_line(text, 120)
        ))),
    }
}

/// Tools sorted by name: a stable order keeps the providers' prompt caches warm.
pub(crate) fn sorted_tools(tools: &[ToolSpec]) -> Vec<&ToolSpec> {
    let mut sorted: Vec<&ToolSpec> = tools.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    sorted
}

/// A tool result's text as sent to a provider: never empty.
pub(crate) fn tool_result_text(content: &str) -> &str {
    if content.trim().is_empty() {
        "(no output)"
    } else {
        content
    }
}

/// A fresh id for a tool call the provider sent without one.
pub(crate) fn generated_call_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_argument_rules() {
        assert_eq!(tool_arguments("t", " ").unwrap(), json!({}));
        assert_eq!(tool_arguments("t", r#"{"a":1}"#).unwrap(), json!({"a": 1}));
        let err = tool_arguments("exec", r#"{"command": "ls"#).unwrap_err();
        assert_eq!(err.kind, DecodeErrorKind::Invalid);
        assert!(
            err.detail.starts_with(
                "the model called tool \"exec\" with malformed JSON arguments (EOF while parsing"
            ),
            "{}",
            err.detail
        );
        let err = tool_arguments("exec", "[1]").unwrap_err();
        assert!(err.detail.contains("not a JSON object"), "{}", err.detail);
    }
}
