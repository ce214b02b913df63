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
    /// A plaintext `ws://` URL to a host that is not loopback or private: refused before
    /// any socket was opened (see [`crate::plaintext`]).
    #[error("refusing plaintext ws:// to {host}: {reason}; use wss:// or an SSH tunnel")]
    Insecure {
        url: String,
        host: String,
        reason: String,
    },
    /// The `wss://` server presented a certificate other than the pinned one(s). All are
    /// SHA-256 fingerprints, 64 lowercase hex digits.
    #[error(
        "gateway tls fingerprint mismatch at {url}: expected {}, got sha256:{actual}; if the gateway's certificate was replaced on purpose, re-pin to sha256:{actual} (--tls-fingerprint; during a rotation several pins may be given)",
        pin_list(.pins)
    )]
    TlsPinMismatch {
        url: String,
        /// The pins, comma-separated (one pin unless a pin set was given).
        expected: String,
        /// The pins, one by one.
        pins: Vec<String>,
        actual: String,
    },
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

/// What a `NOT_PAIRED` / `PAIRING_REQUIRED` connect rejection says (see
/// [`WireError::pairing_required`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PairingRequired {
    /// The pending request an operator approves; the same while the client keeps asking for
    /// the same role and scopes.
    pub request_id: Option<String>,
    /// `not-paired`, `role-upgrade`, `scope-upgrade` or `metadata-upgrade`.
    pub reason: Option<String>,
    pub device_id: Option<String>,
    pub requested_role: Option<String>,
    pub requested_scopes: Vec<String>,
    /// For upgrades: what the device already holds.
    pub approved_roles: Vec<String>,
    pub approved_scopes: Vec<String>,
    pub remediation_hint: Option<String>,
}

/// `sha256:a` or `sha256:a or sha256:b`, for messages.
pub fn pin_list(pins: &[String]) -> String {
    pins.iter()
        .map(|p| format!("sha256:{p}"))
        .collect::<Vec<_>>()
        .join(" or ")
}

fn str_list(v: Option<&Value>) -> Vec<String> {
    v.map(crate::fields::strings).unwrap_or_default()
}

impl WireError {
    /// The pairing request behind a `PAIRING_REQUIRED` (or other `NOT_PAIRED`) rejection;
    /// `None` for any other error, including `NOT_PAIRED DEVICE_IDENTITY_REQUIRED` (no device
    /// was sent, so there is nothing to approve).
    pub fn pairing_required(&self) -> Option<PairingRequired> {
        let detail = self.detail_code();
        let pairing = detail == Some("PAIRING_REQUIRED")
            || (self.code == "NOT_PAIRED" && detail != Some("DEVICE_IDENTITY_REQUIRED"));
        if !pairing {
            return None;
        }
        let d = self.details.as_ref();
        let get = |k: &str| d.and_then(|d| d.get(k)).and_then(Value::as_str);
        let request_id = get("requestId").map(str::to_owned).or_else(|| {
            // The close reason form: "… (requestId: <id>)".
            let (_, rest) = self.message.split_once("requestId: ")?;
            let id = rest.trim_end_matches(')').trim();
            (!id.is_empty()).then(|| id.to_owned())
        });
        Some(PairingRequired {
            request_id,
            reason: get("reason").map(str::to_owned),
            device_id: get("deviceId").map(str::to_owned),
            requested_role: get("requestedRole").map(str::to_owned),
            requested_scopes: str_list(d.and_then(|d| d.get("requestedScopes"))),
            approved_roles: str_list(d.and_then(|d| d.get("approvedRoles"))),
            approved_scopes: str_list(d.and_then(|d| d.get("approvedScopes"))),
            remediation_hint: get("remediationHint").map(str::to_owned),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pairing_required_from_the_real_rejection() {
        // As captured from OpenClaw 2026.9.6 (scope upgrade).
        let e = WireError::from_value(Some(
            &json!({"code":"NOT_PAIRED","message":"pairing required: device is asking for more scopes than currently approved","details":{"code":"PAIRING_REQUIRED","reason":"scope-upgrade","requestId":"3c51e6c7-3206-47a6-950b-8b25d0b26260","remediationHint":"Review the requested scopes, then approve the pending upgrade.","deviceId":"b4c1ece898ece24e24e601232f95c6a18971689a0dd669e6d78218537c21c389","requestedRole":"operator","requestedScopes":["operator.read","operator.write","operator.admin"],"approvedRoles":["operator"],"approvedScopes":["operator.read","operator.write"]}}),
        ));
        let p = e.pairing_required().unwrap();
        assert_eq!(
            p.request_id.as_deref(),
            Some("3c51e6c7-3206-47a6-950b-8b25d0b26260")
        );
        assert_eq!(p.reason.as_deref(), Some("scope-upgrade"));
        assert_eq!(p.requested_role.as_deref(), Some("operator"));
        assert_eq!(p.requested_scopes.len(), 3);
        assert_eq!(p.approved_scopes, ["operator.read", "operator.write"]);

        let no_device = WireError::from_value(Some(
            &json!({"code":"NOT_PAIRED","message":"device identity required","details":{"code":"DEVICE_IDENTITY_REQUIRED"}}),
        ));
        assert_eq!(no_device.pairing_required(), None);
        let auth = WireError::from_value(Some(
            &json!({"code":"INVALID_REQUEST","message":"unauthorized","details":{"code":"AUTH_TOKEN_MISMATCH"}}),
        ));
        assert_eq!(auth.pairing_required(), None);

        // Only the close reason survived.
        let bare = WireError::from_value(Some(
            &json!({"code":"NOT_PAIRED","message":"pairing required: device is not approved yet (requestId: abc-1)"}),
        ));
        assert_eq!(
            bare.pairing_required().unwrap().request_id.as_deref(),
            Some("abc-1")
        );
    }
}
