//! [`LlmError`]: every way a model request can fail, each message naming the model, what
//! happened and the config key to check. No message ever contains an API key.

use std::fmt;
use std::time::Duration;

use clawgate_config::ModelRef;

/// A failed model request.
///
/// Errors are plain data (`Clone`): a fallback chain reports every model's error in
/// [`StreamEvent::Started`](crate::StreamEvent::Started) and [`LlmError::AllFailed`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum LlmError {
    /// Neither `agents.defaults.model.primary` nor a key for a built-in provider is set.
    #[error(
        "no model is configured: set agents.defaults.model.primary to \"<provider>/<model>\" and give that provider a key (models.providers.<id>.apiKey, or OPENAI_API_KEY / ANTHROPIC_API_KEY), or run a local model with Ollama (\"ollama/<model>\")"
    )]
    NoModelConfigured,

    /// The model cannot be used as configured: unknown provider, unsupported `api`, no
    /// `baseUrl`, no key, an unset `${VAR}`. `key` is the config key to fix; `model` is
    /// `None` when no model could be named at all (an unset `${VAR}` as the primary).
    #[error("{}: {message}", model.as_ref().map_or_else(|| "no model is configured".to_owned(), ToString::to_string))]
    Config {
        model: Option<ModelRef>,
        key: String,
        message: String,
    },

    /// The provider answered with an HTTP error status.
    #[error("{model}: HTTP {status}{} from {url}: {message} ({hint})", reason(*status))]
    Http {
        model: ModelRef,
        status: u16,
        url: String,
        /// The provider's own error message (with any API key scrubbed out).
        message: String,
        /// What to check, naming the config key.
        hint: String,
        /// The `retry-after` the provider asked for.
        retry_after: Option<Duration>,
    },

    /// The provider could not be reached.
    #[error("{model}: cannot reach {url}: {detail} (is it running and reachable? check {key})")]
    Connect {
        model: ModelRef,
        url: String,
        detail: String,
        /// The `baseUrl` key in effect.
        key: String,
    },

    /// The provider went silent, or the whole request took too long.
    #[error("{model}: {}", timeout_message(*kind, *after, url, key))]
    Timeout {
        model: ModelRef,
        kind: TimeoutKind,
        after: Duration,
        url: String,
        /// `models.providers.<id>.timeoutSeconds`.
        key: String,
    },

    /// The answer broke off or could not be understood: malformed events, a tool call
    /// whose arguments are not a JSON object, an error event in the stream, a stream that
    /// ended before its last event.
    #[error("{model}: {detail}")]
    Stream {
        model: ModelRef,
        detail: String,
        /// Whether trying again may help (an overloaded provider, a cut-off stream).
        retryable: bool,
    },

    /// The provider declined to answer (a content filter, a refusal).
    #[error("{model}: the provider refused to answer: {detail}")]
    Refused { model: ModelRef, detail: String },

    /// Every model of the fallback chain failed; one error per model, in order.
    #[error("every configured model failed: {}", numbered(errors))]
    AllFailed { errors: Vec<LlmError> },

    /// The HTTP client could not be set up.
    #[error("cannot set up the HTTP client for model requests: {0}")]
    Client(String),
}

/// Which limit a [`LlmError::Timeout`] hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutKind {
    /// No bytes arrived for the idle limit (before the first byte, or mid-stream).
    Idle,
    /// The request as a whole exceeded `timeoutSeconds`.
    Request,
}

fn reason(status: u16) -> String {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .map(|r| format!(" {r}"))
        .unwrap_or_default()
}

fn seconds(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

fn timeout_message(kind: TimeoutKind, after: Duration, url: &str, key: &str) -> String {
    match kind {
        TimeoutKind::Idle => format!(
            "no data from {url} for {} (the model idle limit); for a slow or local model raise {key}",
            seconds(after)
        ),
        TimeoutKind::Request => format!(
            "the request to {url} took longer than {key} ({})",
            seconds(after)
        ),
    }
}

fn numbered(errors: &[LlmError]) -> String {
    errors
        .iter()
        .enumerate()
        .map(|(i, e)| format!("{}) {e}", i + 1))
        .collect::<Vec<_>>()
        .join("; ")
}

impl LlmError {
    /// The model the error is about, if it is about one.
    pub fn model(&self) -> Option<&ModelRef> {
        match self {
            LlmError::Config { model, .. } => model.as_ref(),
            LlmError::Http { model, .. }
            | LlmError::Connect { model, .. }
            | LlmError::Timeout { model, .. }
            | LlmError::Stream { model, .. }
            | LlmError::Refused { model, .. } => Some(model),
            LlmError::NoModelConfigured | LlmError::AllFailed { .. } | LlmError::Client(_) => None,
        }
    }

    /// Whether the same request to the same model may succeed if sent again: rate limits,
    /// server errors, unreachable servers, timeouts, streams that broke off.
    pub fn is_retryable(&self) -> bool {
        match self {
            LlmError::Http { status, .. } => matches!(status, 408 | 409 | 429 | 500..=599),
            LlmError::Connect { .. } | LlmError::Timeout { .. } => true,
            LlmError::Stream { retryable, .. } => *retryable,
            _ => false,
        }
    }

    /// The delay the provider asked for (`retry-after`), if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            LlmError::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Formats `detail` for the end of a message: one line, at most `max` characters.
pub(crate) fn one_line(detail: &str, max: usize) -> String {
    let collapsed: String = detail.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().count() <= max {
        collapsed
    } else {
        let cut: String = collapsed.chars().take(max).collect();
        format!("{cut}…")
    }
}

/// Displays a value in quotes as JSON does, for messages.
pub(crate) struct Quoted<'a>(pub &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", serde_json::Value::String(self.0.to_owned()))
    }
}
