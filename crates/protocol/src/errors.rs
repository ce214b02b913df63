//! The wire error table: every error the gateway sends is built here, with the code, message,
//! details, retry hints and close code the real gateway uses. Messages name the fix.

use serde::Serialize;
use serde_json::{Value, json};

/// Top-level `error.code` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    InvalidRequest,
    Forbidden,
    Unavailable,
    NotPaired,
    ApprovalNotFound,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "INVALID_REQUEST",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::NotPaired => "NOT_PAIRED",
            ErrorCode::ApprovalNotFound => "APPROVAL_NOT_FOUND",
        }
    }
}

/// `ErrorShape {code, message, details?, retryable?, retryAfterMs?}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorShape {
    pub code: ErrorCode,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
    #[serde(rename = "retryAfterMs", skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl ErrorShape {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorShape {
            code,
            message: message.into(),
            details: None,
            retryable: None,
            retry_after_ms: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn retry_after(mut self, ms: u64) -> Self {
        self.retryable = Some(true);
        self.retry_after_ms = Some(ms);
        self
    }

    /// `details.code`, when there is one.
    pub fn detail_code(&self) -> Option<&str> {
        self.details.as_ref()?.get("code")?.as_str()
    }
}

/// WebSocket close codes the gateway uses.
pub mod close {
    pub const NORMAL: u16 = 1000;
    pub const PROTOCOL_MISMATCH: u16 = 1002;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    pub const INTERNAL: u16 = 1011;
    pub const SERVICE_RESTART: u16 = 1012;
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

/// An error answered during the handshake, followed by a close.
#[derive(Debug, Clone, PartialEq)]
pub struct HandshakeError {
    pub error: ErrorShape,
    pub close_code: u16,
    pub close_reason: String,
}

impl HandshakeError {
    /// Closed 1008 with the message as reason, the usual case.
    fn policy(error: ErrorShape) -> Self {
        let close_reason = crate::limits::close_reason(&error.message);
        HandshakeError {
            error,
            close_code: close::POLICY,
            close_reason,
        }
    }
}

/// `recommendedNextStep` values clients key their recovery on.
pub mod next_step {
    pub const RETRY_WITH_DEVICE_TOKEN: &str = "retry_with_device_token";
    pub const UPDATE_AUTH_CONFIGURATION: &str = "update_auth_configuration";
    pub const UPDATE_AUTH_CREDENTIALS: &str = "update_auth_credentials";
    pub const WAIT_THEN_RETRY: &str = "wait_then_retry";
    pub const REVIEW_AUTH_CONFIGURATION: &str = "review_auth_configuration";
}

// ---- handshake -------------------------------------------------------------------------------

pub fn first_request_not_connect() -> HandshakeError {
    HandshakeError::policy(ErrorShape::new(
        ErrorCode::InvalidRequest,
        "invalid handshake: first request must be connect",
    ))
}

pub fn invalid_connect_params(schema_error: &str) -> HandshakeError {
    HandshakeError::policy(ErrorShape::new(
        ErrorCode::InvalidRequest,
        format!("invalid connect params: {schema_error}"),
    ))
}

pub fn invalid_role() -> HandshakeError {
    HandshakeError::policy(ErrorShape::new(ErrorCode::InvalidRequest, "invalid role"))
}

pub fn protocol_mismatch(client_min: u64, client_max: u64) -> HandshakeError {
    HandshakeError {
        error: ErrorShape::new(ErrorCode::InvalidRequest, "protocol mismatch").with_details(
            json!({
                "code": "PROTOCOL_MISMATCH",
                "clientMinProtocol": client_min,
                "clientMaxProtocol": client_max,
                "expectedProtocol": crate::PROTOCOL_VERSION,
                "minimumProbeProtocol": crate::MIN_PROBE_PROTOCOL,
            }),
        ),
        close_code: close::PROTOCOL_MISMATCH,
        close_reason: "protocol mismatch".into(),
    }
}

/// Why shared-secret or device-token auth failed; each maps to one message and detail code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    TokenMissing,
    TokenMismatch,
    TokenNotConfigured,
    PasswordMissing,
    PasswordMismatch,
    PasswordNotConfigured,
    DeviceTokenMismatch,
    ScopeMismatch,
    /// Tailscale Serve: no `Tailscale-User-Login` header.
    TailscaleIdentityMissing,
    /// Tailscale Serve: the request did not come through the Serve proxy (forwarding headers
    /// missing).
    TailscaleProxyMissing,
    /// Tailscale Serve: whois of the peer failed.
    TailscaleWhoisFailed,
    /// Tailscale Serve: whois names someone else than the identity header.
    TailscaleIdentityMismatch,
}

impl AuthFailure {
    fn detail_code(self) -> &'static str {
        match self {
            AuthFailure::TokenMissing => "AUTH_TOKEN_MISSING",
            AuthFailure::TokenMismatch => "AUTH_TOKEN_MISMATCH",
            AuthFailure::TokenNotConfigured => "AUTH_TOKEN_NOT_CONFIGURED",
            AuthFailure::PasswordMissing => "AUTH_PASSWORD_MISSING",
            AuthFailure::PasswordMismatch => "AUTH_PASSWORD_MISMATCH",
            AuthFailure::PasswordNotConfigured => "AUTH_PASSWORD_NOT_CONFIGURED",
            AuthFailure::DeviceTokenMismatch => "AUTH_DEVICE_TOKEN_MISMATCH",
            AuthFailure::ScopeMismatch => "AUTH_SCOPE_MISMATCH",
            AuthFailure::TailscaleIdentityMissing => "AUTH_TAILSCALE_IDENTITY_MISSING",
            AuthFailure::TailscaleProxyMissing => "AUTH_TAILSCALE_PROXY_MISSING",
            AuthFailure::TailscaleWhoisFailed => "AUTH_TAILSCALE_WHOIS_FAILED",
            AuthFailure::TailscaleIdentityMismatch => "AUTH_TAILSCALE_IDENTITY_MISMATCH",
        }
    }

    fn auth_reason(self) -> &'static str {
        match self {
            AuthFailure::TokenMissing => "token_missing",
            AuthFailure::TokenMismatch => "token_mismatch",
            AuthFailure::TokenNotConfigured => "token_missing_config",
            AuthFailure::PasswordMissing => "password_missing",
            AuthFailure::PasswordMismatch => "password_mismatch",
            AuthFailure::PasswordNotConfigured => "password_missing_config",
            AuthFailure::DeviceTokenMismatch => "device_token_mismatch",
            AuthFailure::ScopeMismatch => "scope_mismatch",
            AuthFailure::TailscaleIdentityMissing => "tailscale_user_missing",
            AuthFailure::TailscaleProxyMissing => "tailscale_proxy_missing",
            AuthFailure::TailscaleWhoisFailed => "tailscale_whois_failed",
            AuthFailure::TailscaleIdentityMismatch => "tailscale_user_mismatch",
        }
    }

    /// Whether the failure means "a credential was offered and it was wrong" (these count
    /// towards the failed-auth rate limit; a missing credential does not).
    pub fn is_wrong_credential(self) -> bool {
        matches!(
            self,
            AuthFailure::TokenMismatch
                | AuthFailure::PasswordMismatch
                | AuthFailure::DeviceTokenMismatch
        )
    }

    fn message(self, remote_client: bool) -> String {
        let text = match self {
            AuthFailure::TokenMissing => {
                if remote_client {
                    "gateway token missing (set gateway.remote.token to match gateway.auth.token)"
                } else {
                    "gateway token missing (provide gateway auth token)"
                }
            }
            AuthFailure::TokenMismatch => {
                if remote_client {
                    "gateway token mismatch (set gateway.remote.token to match gateway.auth.token)"
                } else {
                    "gateway token mismatch (use this gateway's gateway.auth.token or pair the device)"
                }
            }
            AuthFailure::TokenNotConfigured => {
                "gateway token not configured on gateway (set gateway.auth.token)"
            }
            AuthFailure::PasswordMissing => {
                "gateway password missing (provide gateway auth password)"
            }
            AuthFailure::PasswordMismatch => {
                "gateway password mismatch (use this gateway's gateway.auth.password)"
            }
            AuthFailure::PasswordNotConfigured => {
                "gateway password not configured on gateway (set gateway.auth.password)"
            }
            AuthFailure::DeviceTokenMismatch => {
                "device token mismatch (rotate/reissue device token)"
            }
            AuthFailure::ScopeMismatch => {
                "device token scope mismatch (re-pair or approve scope upgrade)"
            }
            AuthFailure::TailscaleIdentityMissing => {
                "tailscale identity missing (use Tailscale Serve auth or gateway token/password)"
            }
            AuthFailure::TailscaleProxyMissing => {
                "tailscale proxy headers missing (use Tailscale Serve auth or gateway token/password)"
            }
            AuthFailure::TailscaleWhoisFailed => {
                "tailscale identity check failed (use Tailscale Serve auth or gateway token/password)"
            }
            AuthFailure::TailscaleIdentityMismatch => {
                "tailscale identity mismatch (use Tailscale Serve auth or gateway token/password)"
            }
        };
        format!("unauthorized: {text}")
    }

    fn next_step(self) -> &'static str {
        match self {
            AuthFailure::TokenNotConfigured | AuthFailure::PasswordNotConfigured => {
                next_step::UPDATE_AUTH_CONFIGURATION
            }
            AuthFailure::ScopeMismatch => next_step::REVIEW_AUTH_CONFIGURATION,
            _ => next_step::UPDATE_AUTH_CREDENTIALS,
        }
    }
}

/// A shared-secret or device-token failure. `remote_client` picks the hint: a CLI in remote
/// mode is told about `gateway.remote.token`, a local one about `gateway.auth.token`.
pub fn auth_failed(
    failure: AuthFailure,
    remote_client: bool,
    can_retry_with_device_token: bool,
) -> HandshakeError {
    HandshakeError::policy(
        ErrorShape::new(ErrorCode::InvalidRequest, failure.message(remote_client)).with_details(
            json!({
                "code": failure.detail_code(),
                "authReason": failure.auth_reason(),
                "canRetryWithDeviceToken": can_retry_with_device_token,
                "recommendedNextStep": if can_retry_with_device_token {
                    next_step::RETRY_WITH_DEVICE_TOKEN
                } else {
                    failure.next_step()
                },
            }),
        ),
    )
}

/// `gateway.auth.mode=trusted-proxy` refused the request: `reason` is the real gateway's
/// `trusted_proxy_*` auth reason, `fix` says what to change.
pub fn trusted_proxy_refused(reason: &str, fix: &str) -> HandshakeError {
    HandshakeError::policy(
        ErrorShape::new(
            ErrorCode::InvalidRequest,
            format!("unauthorized: trusted proxy identity required ({fix})"),
        )
        .with_details(json!({
            "code": "AUTH_IDENTITY_HEADER_REQUIRED",
            "authReason": reason,
            "canRetryWithDeviceToken": false,
            "recommendedNextStep": next_step::REVIEW_AUTH_CONFIGURATION,
        })),
    )
}

/// Too many failed attempts from this client address.
/// The message a refused browser origin gets (the real gateway's wording).
pub const ORIGIN_NOT_ALLOWED_MESSAGE: &str = "origin not allowed (open the Control UI from the gateway host or allow it in gateway.controlUi.allowedOrigins)";

/// A browser `Origin` (or a browser client without one) refused by the origin policy
/// (`gateway.controlUi.allowedOrigins`). `reason` is `origin missing or invalid` or
/// `origin not allowed`.
pub fn origin_not_allowed(reason: &str) -> HandshakeError {
    HandshakeError::policy(
        ErrorShape::new(ErrorCode::InvalidRequest, ORIGIN_NOT_ALLOWED_MESSAGE)
            .with_details(json!({"code": "CONTROL_UI_ORIGIN_NOT_ALLOWED", "reason": reason})),
    )
}

pub fn auth_rate_limited(retry_after_ms: u64) -> HandshakeError {
    HandshakeError::policy(
        ErrorShape::new(
            ErrorCode::InvalidRequest,
            "unauthorized: too many failed authentication attempts (retry later)",
        )
        .retry_after(retry_after_ms)
        .with_details(json!({
            "code": "AUTH_RATE_LIMITED",
            "authReason": "rate_limited",
            "canRetryWithDeviceToken": false,
            "recommendedNextStep": next_step::WAIT_THEN_RETRY,
        })),
    )
}

/// No shared secret and no device: nothing to authenticate with.
pub fn device_identity_required() -> HandshakeError {
    HandshakeError::policy(
        ErrorShape::new(ErrorCode::NotPaired, "device identity required")
            .with_details(json!({"code": "DEVICE_IDENTITY_REQUIRED"})),
    )
}

/// The device proof checks, in the order the gateway runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceAuthFailure {
    DeviceIdMismatch,
    SignatureExpired,
    NonceRequired,
    NonceMismatch,
    SignatureInvalid,
    PublicKeyInvalid,
}

pub fn device_auth_failed(failure: DeviceAuthFailure) -> HandshakeError {
    let (message, code, reason) = match failure {
        DeviceAuthFailure::DeviceIdMismatch => (
            "device identity mismatch",
            "DEVICE_AUTH_DEVICE_ID_MISMATCH",
            "device-id-mismatch",
        ),
        DeviceAuthFailure::SignatureExpired => (
            "device signature expired",
            "DEVICE_AUTH_SIGNATURE_EXPIRED",
            "device-signature-stale",
        ),
        DeviceAuthFailure::NonceRequired => (
            "device nonce required",
            "DEVICE_AUTH_NONCE_REQUIRED",
            "device-nonce-missing",
        ),
        DeviceAuthFailure::NonceMismatch => (
            "device nonce mismatch",
            "DEVICE_AUTH_NONCE_MISMATCH",
            "device-nonce-mismatch",
        ),
        DeviceAuthFailure::SignatureInvalid => (
            "device signature invalid",
            "DEVICE_AUTH_SIGNATURE_INVALID",
            "device-signature",
        ),
        DeviceAuthFailure::PublicKeyInvalid => (
            "device public key invalid",
            "DEVICE_AUTH_PUBLIC_KEY_INVALID",
            "device-public-key",
        ),
    };
    HandshakeError::policy(
        ErrorShape::new(ErrorCode::InvalidRequest, message)
            .with_details(json!({"code": code, "reason": reason})),
    )
}

/// Why a device needs an operator's approval, with the real gateway's wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairingReason {
    NotPaired,
    RoleUpgrade,
    ScopeUpgrade,
    MetadataUpgrade,
}

impl PairingReason {
    pub fn as_str(self) -> &'static str {
        match self {
            PairingReason::NotPaired => "not-paired",
            PairingReason::RoleUpgrade => "role-upgrade",
            PairingReason::ScopeUpgrade => "scope-upgrade",
            PairingReason::MetadataUpgrade => "metadata-upgrade",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::NotPaired,
            Self::RoleUpgrade,
            Self::ScopeUpgrade,
            Self::MetadataUpgrade,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }

    fn requirement(self) -> &'static str {
        match self {
            PairingReason::NotPaired => "device is not approved yet",
            PairingReason::RoleUpgrade => {
                "device is asking for a higher role than currently approved"
            }
            PairingReason::ScopeUpgrade => {
                "device is asking for more scopes than currently approved"
            }
            PairingReason::MetadataUpgrade => "device identity changed and must be re-approved",
        }
    }

    fn remediation(self) -> &'static str {
        match self {
            PairingReason::NotPaired => "Approve this device from the pending pairing requests.",
            PairingReason::RoleUpgrade => {
                "Review the requested role upgrade, then approve the pending request."
            }
            PairingReason::ScopeUpgrade => {
                "Review the requested scopes, then approve the pending upgrade."
            }
            PairingReason::MetadataUpgrade => {
                "Review the refreshed device details, then approve the pending request."
            }
        }
    }
}

/// The device (or a wider role/scope set) waits for an operator; the request id names what to
/// approve. `approved` is the device's current grant, for upgrades.
pub fn pairing_required(
    reason: PairingReason,
    request_id: &str,
    device_id: &str,
    role: &str,
    scopes: &[String],
    approved: Option<(&[String], &[String])>,
) -> HandshakeError {
    let message = format!("pairing required: {}", reason.requirement());
    let mut details = json!({
        "code": "PAIRING_REQUIRED",
        "reason": reason.as_str(),
        "requestId": request_id,
        // OpenClaw's hint, plus the exact command, so nobody has to hunt for the request id.
        "remediationHint": format!(
            "{} On the gateway host run: clawgate devices approve {request_id} (or: openclaw devices approve {request_id})",
            reason.remediation()
        ),
        "deviceId": device_id,
        "requestedRole": role,
        "requestedScopes": scopes,
    });
    if role == "node" {
        // Node hosts run unattended: tell them to keep retrying so an approval brings them
        // online by itself instead of leaving them stopped until someone restarts them.
        details["recommendedNextStep"] = json!(next_step::WAIT_THEN_RETRY);
        details["retryable"] = json!(true);
        details["pauseReconnect"] = json!(false);
    }
    if let Some((roles, approved_scopes)) = approved {
        if !roles.is_empty() {
            details["approvedRoles"] = json!(roles);
        }
        if !approved_scopes.is_empty() {
            details["approvedScopes"] = json!(approved_scopes);
        }
    }
    HandshakeError {
        close_reason: crate::limits::close_reason(&format!("{message} (requestId: {request_id})")),
        error: ErrorShape::new(ErrorCode::NotPaired, message).with_details(details),
        close_code: close::POLICY,
    }
}

/// `device.pair.*` / `node.pair.*` naming a request that does not exist (or expired).
pub fn approval_not_found(what: &str, id: &str, list_command: &str) -> ErrorShape {
    ErrorShape::new(
        ErrorCode::ApprovalNotFound,
        format!("unknown {what}: {id} (it may have expired or been resolved; list pending ones with `{list_command}`)"),
    )
    .with_details(json!({"code": "APPROVAL_NOT_FOUND", "id": id}))
}

/// `device.pair.approve`/`reject` naming a request its device replaced by a wider one: what
/// the approver was shown is no longer what the device asks for.
pub fn approval_superseded(id: &str, by: &str, asks: &str, list_command: &str) -> ErrorShape {
    ErrorShape::new(
        ErrorCode::ApprovalNotFound,
        format!("requestId {id} was superseded by {by}: the device now asks for {asks}; review it with `{list_command}` and approve {by} if that is right"),
    )
    .with_details(json!({"code": "APPROVAL_NOT_FOUND", "id": id, "supersededBy": by}))
}

/// Something on the gateway's side failed; the client may retry. Closed 1011 during connect.
pub fn internal_error(message: &str) -> HandshakeError {
    HandshakeError {
        error: ErrorShape::new(ErrorCode::Unavailable, message).retry_after(1000),
        close_code: close::INTERNAL,
        close_reason: crate::limits::close_reason(message),
    }
}

// ---- nodes -------------------------------------------------------------------------------------

/// The node is known but has no live socket.
pub fn node_not_connected() -> ErrorShape {
    ErrorShape::new(ErrorCode::Unavailable, "node not connected")
        .with_details(json!({"code": "NOT_CONNECTED", "nodeCommandDispatched": false}))
}

/// An unknown node id, or a node whose pairing changed under the call; clients retry.
pub fn node_pairing_changed() -> ErrorShape {
    let mut e = ErrorShape::new(
        ErrorCode::Unavailable,
        "node pairing changed while invocation was active",
    )
    .with_details(json!({"code": "PAIRING_CHANGED"}));
    e.retryable = Some(true);
    e
}

/// The node answered an invoke with an error, timed out, or went away: `CODE: message`.
pub fn node_error(code: &str, message: &str) -> ErrorShape {
    ErrorShape::new(ErrorCode::Unavailable, format!("{code}: {message}")).with_details(json!({
        "nodeError": {"code": code, "message": message},
        "nodeCommandDispatched": true,
    }))
}

pub fn node_invoke_timeout() -> ErrorShape {
    node_error("TIMEOUT", "node invoke timed out")
}

pub fn node_disconnected() -> ErrorShape {
    node_error("DISCONNECTED", "node disconnected before it answered")
}

/// The node did not answer, nor send progress, within the idle budget of a streaming invoke.
pub fn node_idle_timeout() -> ErrorShape {
    node_error("IDLE_TIMEOUT", "node invoke produced no progress")
}

/// `NODE_NOT_READY` means "retry me" only before any progress was sent; after progress the
/// command already ran, so the real gateway turns it into this.
pub fn node_not_ready_after_progress() -> ErrorShape {
    node_error(
        "UNAVAILABLE",
        "node reported not-ready after invocation progress",
    )
}

/// A streaming invoke whose caller stopped taking progress chunks while the node kept sending
/// them: the invoke is cancelled instead of buffering without end.
pub fn node_progress_overflow() -> ErrorShape {
    node_error(
        "PROGRESS_OVERFLOW",
        "node invoke progress arrived faster than the caller consumed it; the invoke was cancelled",
    )
}

/// A node answering (`node.invoke.result`, `node.invoke.progress`) in another node's name.
pub fn node_id_mismatch() -> ErrorShape {
    ErrorShape::new(ErrorCode::InvalidRequest, "nodeId mismatch")
}

/// A `node.invoke.progress` chunk within the schema's 16384 characters but over 16 KiB of UTF-8.
pub fn progress_chunk_too_large() -> ErrorShape {
    ErrorShape::new(ErrorCode::InvalidRequest, "progress chunk too large")
}

/// The gateway's policy refuses the command (`reason`: "command not allowlisted", …).
pub fn node_command_not_allowed(message: &str, reason: &str, command: &str) -> ErrorShape {
    ErrorShape::new(ErrorCode::InvalidRequest, message)
        .with_details(json!({"reason": reason, "command": command}))
}

/// A node method called before the node's command surface was approved.
pub fn node_awaiting_approval(request_id: &str) -> ErrorShape {
    ErrorShape::new(
        ErrorCode::Unavailable,
        format!(
            "node capability surface is awaiting operator approval; run `clawgate nodes approve {request_id}` or `openclaw nodes approve {request_id}` (see `clawgate nodes pending`), then this node retries automatically"
        ),
    )
}

/// Too many invokes in flight for one node (or the gateway); bounded so a stuck node cannot
/// grow memory.
pub fn node_busy() -> ErrorShape {
    ErrorShape::new(
        ErrorCode::Unavailable,
        "too many pending invokes for this node; retry when some have finished",
    )
    .retry_after(1000)
}

/// One caller already has `limit` node invokes waiting for an answer.
pub fn node_caller_busy(limit: usize) -> ErrorShape {
    ErrorShape::new(
        ErrorCode::Unavailable,
        format!(
            "too many pending node invokes from this caller ({limit} at most at once); retry when some have finished"
        ),
    )
    .retry_after(1000)
}

/// `exec.approvals.set` refused: its `baseHash` is missing or not the current policy's (the
/// message says to read the policy again and retry).
pub fn exec_approvals_stale(message: &str) -> ErrorShape {
    ErrorShape::new(ErrorCode::InvalidRequest, message)
}

/// A store write failed; nothing was changed.
/// `chat.inject` and the like on a session key the agent has never seen (OpenClaw's text).
pub fn session_not_found() -> ErrorShape {
    ErrorShape::new(ErrorCode::InvalidRequest, "session not found")
}

/// An agent run that ended in an error: the run's own message (it names the fix).
pub fn agent_run_failed(message: &str) -> ErrorShape {
    ErrorShape::new(ErrorCode::Unavailable, message)
}

pub fn unavailable(message: impl Into<String>) -> ErrorShape {
    ErrorShape::new(ErrorCode::Unavailable, message).retry_after(1000)
}

/// The gateway is still starting (or draining): retry shortly, close 1013.
pub fn gateway_starting() -> HandshakeError {
    HandshakeError {
        error: ErrorShape::new(ErrorCode::Unavailable, "gateway starting; retry shortly")
            .retry_after(500)
            .with_details(json!({"reason": "startup-sidecars"})),
        close_code: close::TRY_AGAIN_LATER,
        close_reason: "gateway starting".into(),
    }
}

/// Checking a connect took longer than the gateway allows: retry, close 1013.
pub fn connect_timed_out(limit_ms: u128) -> HandshakeError {
    HandshakeError {
        error: ErrorShape::new(
            ErrorCode::Unavailable,
            format!("the gateway took longer than {limit_ms} ms to check this connect; retry"),
        )
        .retry_after(1000),
        close_code: close::TRY_AGAIN_LATER,
        close_reason: "connect timed out".into(),
    }
}

// ---- after hello ------------------------------------------------------------------------------

/// `FORBIDDEN missing scope: <scope>`.
pub fn missing_scope(scope: &str) -> ErrorShape {
    ErrorShape::new(ErrorCode::Forbidden, format!("missing scope: {scope}")).with_details(json!({
        "code": "MISSING_SCOPE",
        "missingScope": scope,
        "requiredScopes": [scope],
    }))
}

pub fn unknown_method(method: &str) -> ErrorShape {
    ErrorShape::new(
        ErrorCode::InvalidRequest,
        format!("unknown method: {method}"),
    )
}

/// A node-only method called by an operator (or the reverse).
pub fn unauthorized_role(role: &str) -> ErrorShape {
    ErrorShape::new(
        ErrorCode::InvalidRequest,
        format!("unauthorized role: {role}"),
    )
}

/// Params that fail a method's schema: `invalid <method> params: <schema error>`.
pub fn invalid_params(method: &str, schema_error: &str) -> ErrorShape {
    ErrorShape::new(
        ErrorCode::InvalidRequest,
        format!("invalid {method} params: {schema_error}"),
    )
}

/// A request frame that fails the frame schema after the handshake.
pub fn invalid_request_frame(schema_error: &str) -> ErrorShape {
    ErrorShape::new(
        ErrorCode::InvalidRequest,
        format!("invalid request frame: {schema_error}"),
    )
}

/// A second `connect` on an established connection.
pub fn already_connected() -> ErrorShape {
    ErrorShape::new(
        ErrorCode::InvalidRequest,
        "connect is only valid as the first request",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_mismatch_matches_the_capture() {
        let e = auth_failed(AuthFailure::TokenMismatch, false, false);
        assert_eq!(
            serde_json::to_value(&e.error).unwrap(),
            json!({"code":"INVALID_REQUEST","message":"unauthorized: gateway token mismatch (use this gateway's gateway.auth.token or pair the device)","details":{"code":"AUTH_TOKEN_MISMATCH","authReason":"token_mismatch","canRetryWithDeviceToken":false,"recommendedNextStep":"update_auth_credentials"}})
        );
        assert_eq!(e.close_code, 1008);
        assert_eq!(e.close_reason, e.error.message);
    }

    #[test]
    fn missing_scope_matches_the_capture() {
        assert_eq!(
            serde_json::to_value(missing_scope("operator.admin")).unwrap(),
            json!({"code":"FORBIDDEN","message":"missing scope: operator.admin","details":{"code":"MISSING_SCOPE","missingScope":"operator.admin","requiredScopes":["operator.admin"]}})
        );
    }
}
