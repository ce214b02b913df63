//! What can go wrong: connecting ([`ClientError`]) and calling a method ([`RpcError`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// The wire `ErrorShape` as a client receives it. `code` stays a string so a code this crate
/// does not know yet is still shown as sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireError {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
    #[serde(
        rename = "retryAfterMs",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub retry_after_ms: Option<u64>,
}

impl WireError {
    /// Reads an `error` object from a `res` frame; anything malformed becomes a readable
    /// placeholder rather than a decoding failure.
    pub fn from_value(value: Option<&Value>) -> WireError {
        value
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_else(|| WireError {
                code: "UNKNOWN".into(),
                message: value
                    .map(|v| format!("malformed error object: {v}"))
                    .unwrap_or_else(|| "the gateway answered ok:false without an error".into()),
                details: None,
                retryable: None,
                retry_after_ms: None,
            })
    }

    /// `details.code`, e.g. `AUTH_TOKEN_MISMATCH` or `MISSING_SCOPE`.
    pub fn detail_code(&self) -> Option<&str> {
        self.details.as_ref()?.get("code")?.as_str()
    }

    /// The scope named by a `FORBIDDEN missing scope` error.
    pub fn missing_scope(&self) -> Option<&str> {
        if self.code != "FORBIDDEN" {
            return None;
        }
        if let Some(scope) = self
            .details
            .as_ref()
            .and_then(|d| d.get("missingScope"))
            .and_then(Value::as_str)
        {
            return Some(scope);
        }
        self.message.strip_prefix("missing scope: ")
    }

    /// A string field of `details`.
    pub fn detail_str(&self, key: &str) -> Option<&str> {
        self.details.as_ref()?.get(key)?.as_str()
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.message)
    }
}

/// Why [`crate::Client::connect`] failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The URL cannot be used (bad scheme, no host, …). Nothing was sent.
    #[error("invalid gateway URL {url}: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// No gateway answered: connection refused, DNS failure, TLS failure or a timeout before
    /// the handshake completed.
    #[error("gateway unreachable at {url}: {reason}")]
    Unreachable {
        url: String,
        reason: String,
        /// Whether the time budget ran out (as opposed to an immediate refusal).
        timed_out: bool,
    },
    /// The gateway answered `connect` (or the HTTP upgrade) with an error: bad credentials,
    /// pairing required, protocol mismatch, still starting….
    #[error("gateway rejected the connection: {message}")]
    Handshake {
        /// Top-level error code (`INVALID_REQUEST`, `NOT_PAIRED`, `UNAVAILABLE`, or
        /// `HTTP_<status>` for a refused upgrade).
        code: String,
        /// `details.code` (`AUTH_TOKEN_MISMATCH`, `PAIRING_REQUIRED`, `PROTOCOL_MISMATCH`…).
        detail_code: Option<String>,
        message: String,
        /// The whole error as sent.
        error: WireError,
        /// The close code that followed (1008, 1002, 1013…), if it came in time.
        close_code: Option<u16>,
    },
    /// The connection closed without an answer.
    #[error("gateway closed the connection ({0}{reason})", reason = if .1.is_empty() { String::new() } else { format!(": {}", .1) })]
    Closed(u16, String),
    /// The peer did not speak the gateway protocol.
    #[error("gateway protocol error: {0}")]
    Protocol(String),
}

/// Why a request failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RpcError {
    /// The gateway answered `ok:false`. A failed final may carry a payload too.
    #[error("{error}")]
    Gateway {
        error: WireError,
        payload: Option<Value>,
    },
    /// The connection closed before the answer came.
    #[error("connection closed before the answer ({code}{reason})", reason = if .reason.is_empty() { String::new() } else { format!(": {}", .reason) })]
    Closed { code: u16, reason: String },
    /// Nothing could be sent or the answer was unreadable.
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl RpcError {
    /// The wire error, when the gateway sent one.
    pub fn wire(&self) -> Option<&WireError> {
        match self {
            RpcError::Gateway { error, .. } => Some(error),
            _ => None,
        }
    }
}
