//! Why an operator command failed, in the words of what to do about it: connect and call
//! failures, a tunnel that did not come up, a pairing to approve, each as a [`Failure`] with
//! its [`FailureKind`] (which the binary turns into an exit code), a human message with its
//! fixes, and a JSON error object.

use crate::session::{PairingEnd, SessionError};
use crate::target::{CredentialOrigin, Target};
use crate::tunnel::{TunnelError, TunnelErrorKind};
use crate::{ClientError, PairingRequired, RpcError, WireError, pin_list};
use clawgate_config::TargetSource;
use serde_json::{Value, json};

/// What kind of failure ended a command (each is one exit code of the operator commands).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The gateway answered the request with an error, or does not know what was named.
    Rpc,
    /// A bad flag, argument, config file or URL: nothing was sent.
    Usage,
    /// No gateway answered: connection refused, DNS failure, timeout, still starting.
    Unreachable,
    /// Refused at connect: credentials, pairing, protocol, TLS pin.
    Rejected,
    /// Connected, but without the scope the method needs.
    Scope,
}

/// A command failure: its kind, human message (stderr), fixes, and the JSON `error` object.
#[derive(Debug)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
    pub fixes: Vec<String>,
    pub json: Value,
}

impl Failure {
    /// A bad flag or argument (`FailureKind::Usage`, `usage_error`).
    pub fn usage(message: String, fixes: Vec<String>) -> Failure {
        Failure {
            kind: FailureKind::Usage,
            json: json!({"type": "usage_error", "message": message}),
            message,
            fixes,
        }
    }

    /// A config file or setting that cannot be used (`FailureKind::Usage`, `config_error`).
    pub fn config(message: String) -> Failure {
        Failure {
            kind: FailureKind::Usage,
            json: json!({"type": "config_error", "message": message}),
            message,
            fixes: Vec::new(),
        }
    }

    /// The gateway does not know what was named (`FailureKind::Rpc`, `not_found`).
    pub fn not_found(message: String, fixes: Vec<String>) -> Failure {
        Failure {
            kind: FailureKind::Rpc,
            json: json!({"type": "not_found", "message": message}),
            message,
            fixes,
        }
    }
}

/// The wire error as the real CLI prints it: the gateway's fields plus
/// `type: "gateway_request_error"` and `retryable` (false when absent).
pub fn request_error_json(e: &WireError) -> Value {
    let mut v = json!({"type": "gateway_request_error", "code": e.code, "message": e.message});
    if let Some(d) = &e.details {
        v["details"] = d.clone();
    }
    v["retryable"] = json!(e.retryable.unwrap_or(false));
    if let Some(ms) = e.retry_after_ms {
        v["retryAfterMs"] = json!(ms);
    }
    v
}

fn unreachable_fix(t: &Target) -> String {
    if let Some(tun) = &t.probe_tunnel {
        return format!(
            "the SSH tunnel to {} is up, but nothing answered through it: is the gateway running on that host and listening on 127.0.0.1:{} there? (--port or gateway.remote.remotePort here says which port)",
            tun.target, tun.remote_port
        );
    }
    if let Some(tun) = &t.tunnel {
        return format!(
            "the SSH tunnel {} → {} is up, but nothing answered through it: is the gateway running on that host and listening on 127.0.0.1:{} there (gateway.port; gateway.remote.remotePort here)? `clawgate tunnel status` shows the tunnel",
            tun.url,
            tun.spec.describe(),
            tun.spec.remote_port
        );
    }
    match &t.source {
        TargetSource::Local => {
            let profile = clawgate_config::active_profile(&clawgate_config::process_env)
                .map(|p| format!(" --profile {p}"))
                .unwrap_or_default();
            format!("is the gateway running? start it with `clawgate{profile} gateway run`, or check --url / gateway.remote.url")
        }
        TargetSource::RemoteConfig => format!(
            "is the remote gateway up and reachable from here (and your SSH tunnel, if you use one)? check gateway.remote.url{}",
            t.config_path.as_ref().map(|p| format!(" in {}", p.display())).unwrap_or_default()
        ),
        TargetSource::Flag => "is the gateway running at that address? start it with `clawgate gateway run`, or check --url".into(),
        TargetSource::Env(var) => format!(
            "is the gateway running at that address? start it with `clawgate gateway run`, or check {var}"
        ),
    }
}

fn credential_fixes(t: &Target) -> Vec<String> {
    let token_file = t.token_file();
    let mut fixes = vec![format!(
        "pass --token (or --password), or set gateway.remote.token (remote mode) / CLAWGATE_GATEWAY_TOKEN; a local clawgate gateway without a configured token keeps its generated one in {}",
        token_file.display()
    )];
    match &t.credential {
        CredentialOrigin::TokenFile(path) => fixes.push(format!(
            "the token sent was read from {}; this gateway uses a different one (gateway.auth.token or CLAWGATE_GATEWAY_TOKEN where it runs?)",
            path.display()
        )),
        CredentialOrigin::None => fixes.push("no token or password was sent".into()),
        CredentialOrigin::Resolved => match &t.source {
            TargetSource::Flag => {
                fixes.push("with --url only --token/--password are sent; check their value".into())
            }
            TargetSource::RemoteConfig => fixes.push(
                "in remote mode the token comes from --token, gateway.remote.token, then CLAWGATE_GATEWAY_TOKEN/OPENCLAW_GATEWAY_TOKEN".into(),
            ),
            TargetSource::Env(var) => fixes.push(format!(
                "with {var} only --token/--password and CLAWGATE_GATEWAY_TOKEN/PASSWORD (or OPENCLAW_…) are sent"
            )),
            TargetSource::Local => fixes.push(
                "locally the token comes from --token, CLAWGATE_GATEWAY_TOKEN/OPENCLAW_GATEWAY_TOKEN, then gateway.auth.token".into(),
            ),
        },
    }
    fixes
}

/// The `wss://` server's certificate is none of the pinned ones.
fn pin_mismatch(t: &Target, pins: &[String], actual: &str) -> Failure {
    let config = t
        .config_path
        .as_ref()
        .map(|p| format!(" in {}", p.display()))
        .unwrap_or_default();
    let which = if pins.len() > 1 { "pins" } else { "pin" };
    let message = format!(
        "gateway tls fingerprint mismatch at {}: expected {} (the {which} from --tls-fingerprint or gateway.remote.tlsFingerprint), but the gateway presented sha256:{actual}",
        t.url,
        pin_list(pins)
    );
    let pinned: Vec<String> = pins.iter().map(|p| format!("sha256:{p}")).collect();
    Failure {
        kind: FailureKind::Rejected,
        json: json!({"type": "tls_error", "kind": "fingerprint_mismatch", "message": message,
            "expected": pinned.join(", "), "pins": pinned, "actual": format!("sha256:{actual}"),
            "gateway": {"url": t.url, "urlSource": t.source_label()}}),
        message,
        fixes: vec![
            format!(
                "if the gateway's certificate was replaced on purpose (on the gateway host, `clawgate gateway tls show` prints the current fingerprint), re-pin: pass --tls-fingerprint sha256:{actual} or set gateway.remote.tlsFingerprint to \"sha256:{actual}\"{config}"
            ),
            "to ride through a `clawgate gateway tls rotate`, pin the current and the staged certificate together: --tls-fingerprint <current>,<next> or gateway.remote.tlsFingerprint: [\"sha256:<current>\", \"sha256:<next>\"]".into(),
            "if nothing changed on the gateway, do not re-pin: something between you and the gateway presents its own certificate".into(),
        ],
    }
}

/// `gateway call --expect-url` named another gateway than the one the flags, env and config
/// resolve to now (OpenClaw's message and exit code 1, which scripts written for it test):
/// nothing was sent.
pub fn destination_changed(expected: &str, t: &Target) -> Failure {
    let message = "Gateway destination changed. Refresh the selected Gateway before retrying.";
    Failure {
        kind: FailureKind::Rpc,
        message: message.to_owned(),
        fixes: vec![format!(
            "--expect-url is {expected}, but the target now is {}; nothing was sent. Select the gateway again (or drop --expect-url) and retry",
            t.describe()
        )],
        json: json!({"type": "destination_changed", "message": message,
            "expectedUrl": expected, "gateway": {"url": t.url, "urlSource": t.source_label()}}),
    }
}

/// A session that could not be opened; `wait_timeout` is `--wait-timeout`, in seconds.
pub fn session_failure(e: SessionError, t: &Target, wait_timeout: u64) -> Failure {
    match e {
        SessionError::Identity { path, error } => Failure {
            fixes: vec![
                "the file must be readable and writable by you (it is created with mode 0600); move a damaged one aside to create a new identity (the gateway then sees a new device to approve), or pass --device-auth never to connect with the shared token only".into(),
            ],
            ..Failure::config(format!(
                "cannot use the device identity {}: {error}",
                path.display()
            ))
        },
        SessionError::Connect(error) => connect_failure(&error, t),
        SessionError::DeviceTokenRefused {
            error,
            store,
            device_id,
            ..
        } => {
            let mut f = connect_failure(&error, t);
            f.fixes = vec![format!(
                "the device token stored for {} was refused (rotated or revoked on the gateway) and has been dropped from {}; connect once with the shared token (--token/--password) to get a new one, or have an operator run `clawgate devices rotate {}` on the gateway host",
                t.url,
                store.display(),
                &device_id[..12.min(device_id.len())]
            )];
            f
        }
        SessionError::PairingRequired {
            error,
            pairing,
            device_id,
            end,
        } => {
            let why = match end {
                PairingEnd::NotWaiting => "this device must be approved first".to_owned(),
                PairingEnd::Replaced { waited_for } => format!(
                    "request {} is no longer pending (rejected, expired or replaced); the gateway opened request {}",
                    waited_for.as_deref().unwrap_or("?"),
                    pairing.request_id.as_deref().unwrap_or("?")
                ),
                PairingEnd::TimedOut => format!("still not approved after {wait_timeout}s"),
            };
            pairing_failure(&error, &pairing, &device_id, t, &why)
        }
    }
}

/// A connect that ended at "approve this device first".
fn pairing_failure(
    error: &WireError,
    p: &PairingRequired,
    device_id: &str,
    t: &Target,
    why: &str,
) -> Failure {
    let mut json = request_error_json(error);
    json["gateway"] = json!({"url": t.url, "urlSource": t.source_label()});
    json["pairing"] = pairing_json(p, device_id);
    let mut fixes = instructions(p, device_id, t);
    fixes.push("then run this command again (add --wait to wait for the approval instead)".into());
    Failure {
        kind: FailureKind::Rejected,
        message: format!("{why}: {}", error.message),
        fixes,
        json,
    }
}

/// A failed connect.
pub fn connect_failure(e: &ClientError, t: &Target) -> Failure {
    let gateway = json!({"url": t.url, "urlSource": t.source_label()});
    match e {
        ClientError::InvalidUrl { .. } => Failure {
            kind: FailureKind::Usage,
            message: e.to_string(),
            fixes: vec!["use a ws:// or wss:// URL such as ws://127.0.0.1:18789".into()],
            json: json!({"type": "config_error", "message": e.to_string()}),
        },
        ClientError::Insecure { host, reason, .. } => plaintext_failure(
            &t.url,
            host,
            reason,
            &t.source,
            t.config_path.as_deref(),
            false,
        ),
        ClientError::TlsPinMismatch { pins, actual, .. } => pin_mismatch(t, pins, actual),
        ClientError::Unreachable {
            reason, timed_out, ..
        } => {
            let message = if *timed_out {
                format!("gateway at {} did not answer in time ({reason})", t.url)
            } else {
                format!("gateway unreachable at {} ({reason})", t.url)
            };
            let mut fixes = vec![unreachable_fix(t)];
            if t.url.starts_with("wss://") && reason.contains("certificate") {
                fixes.insert(
                    0,
                    "the gateway's TLS certificate is not signed by a CA this machine trusts (a self-signed gateway certificate?): pin it with --tls-fingerprint sha256:<fingerprint> or gateway.remote.tlsFingerprint; the gateway host shows it with `clawgate gateway tls show`".into(),
                );
            }
            if *timed_out {
                fixes.push("a slow link may need a larger --timeout (milliseconds)".into());
            }
            Failure {
                kind: FailureKind::Unreachable,
                json: json!({"type": "gateway_transport_error",
                    "kind": if *timed_out { "timeout" } else { "unreachable" },
                    "message": format!("Gateway not reachable at {} ({reason}).", t.url),
                    "reason": reason, "gateway": gateway}),
                message,
                fixes,
            }
        }
        ClientError::Handshake {
            code,
            detail_code,
            message,
            error,
            close_code,
        } => {
            let mut json = request_error_json(error);
            json["gateway"] = gateway;
            if let Some(c) = close_code {
                json["closeCode"] = json!(c);
            }
            let (kind, fixes) = handshake_advice(code, detail_code.as_deref(), error, t);
            Failure {
                kind,
                message: if kind == FailureKind::Unreachable {
                    format!(
                        "gateway at {} is not accepting connections: {message}",
                        t.url
                    )
                } else {
                    format!("gateway at {} rejected the connection: {message}", t.url)
                },
                fixes,
                json,
            }
        }
        ClientError::Closed(code, reason) => {
            let restarting = matches!(code, 1012 | 1013);
            Failure {
                kind: if restarting {
                    FailureKind::Unreachable
                } else {
                    FailureKind::Rejected
                },
                message: format!(
                    "gateway at {} closed the connection during the handshake ({code}{})",
                    t.url,
                    if reason.is_empty() {
                        String::new()
                    } else {
                        format!(": {reason}")
                    }
                ),
                fixes: vec![if restarting {
                    "the gateway is restarting; retry shortly".into()
                } else {
                    "check that --url points at an OpenClaw-compatible gateway and that your credentials are right".into()
                }],
                json: json!({"type": "gateway_transport_error", "kind": "closed",
                    "message": e.to_string(), "closeCode": code, "reason": reason, "gateway": gateway}),
            }
        }
        ClientError::Protocol(detail) => Failure {
            kind: FailureKind::Rejected,
            message: format!(
                "the server at {} does not speak the gateway protocol: {detail}",
                t.url
            ),
            fixes: vec![
                "check --url / gateway.remote.url: it must point at the gateway's port".into(),
            ],
            json: json!({"type": "gateway_transport_error", "kind": "protocol",
                "message": e.to_string(), "gateway": gateway}),
        },
    }
}

fn handshake_advice(
    code: &str,
    detail: Option<&str>,
    error: &WireError,
    t: &Target,
) -> (FailureKind, Vec<String>) {
    let detail = detail.unwrap_or("");
    if code == "UNAVAILABLE" {
        return (
            FailureKind::Unreachable,
            vec![
                "the gateway is starting or restarting; retry shortly (or raise --timeout)".into(),
            ],
        );
    }
    if detail == "AUTH_RATE_LIMITED" {
        let wait = error
            .retry_after_ms
            .map(|ms| format!("{}s", ms.div_ceil(1000)))
            .unwrap_or_else(|| "a while".into());
        let mut fixes = vec![format!(
            "too many failed attempts from this address: wait {wait}, then retry with the right credentials"
        )];
        fixes.extend(credential_fixes(t));
        return (FailureKind::Rejected, fixes);
    }
    if detail == "PROTOCOL_MISMATCH" {
        let expected = error
            .details
            .as_ref()
            .and_then(|d| d.get("expectedProtocol"))
            .map(Value::to_string)
            .unwrap_or_else(|| "another version".into());
        return (
            FailureKind::Rejected,
            vec![format!(
                "this clawgate speaks gateway protocol {} but the gateway expects {expected}: upgrade the older side",
                clawgate_protocol::PROTOCOL_VERSION
            )],
        );
    }
    if let Some(p) = error.pairing_required() {
        let request = p.request_id.as_deref().unwrap_or("<requestId>");
        return (
            FailureKind::Rejected,
            vec![format!(
                "this device is not approved yet: approve request {request} on the gateway host with `{}` (OpenClaw: `{}`), then retry",
                approve_command(request),
                openclaw_approve_command(request)
            )],
        );
    }
    if detail == "AUTH_SCOPE_MISMATCH" {
        return (
            FailureKind::Rejected,
            vec![
                "this device's token does not hold every scope this command needs: connect once with the shared token (--token/--password) so the gateway opens an upgrade request to approve, or have an operator widen the token with `clawgate devices rotate <deviceId> --scope …`".into(),
            ],
        );
    }
    if detail == "AUTH_DEVICE_TOKEN_MISMATCH" {
        return (
            FailureKind::Rejected,
            vec![
                "the device token was refused (rotated or revoked on the gateway): connect with the shared token (--token/--password) to be issued a new one".into(),
            ],
        );
    }
    if detail == "DEVICE_IDENTITY_REQUIRED" {
        return (
            FailureKind::Rejected,
            vec![
                "the gateway wants a credential: pass --token or --password (a gateway in auth mode \"none\" only admits paired devices)".into(),
            ],
        );
    }
    if detail.starts_with("DEVICE_AUTH_") {
        return (
            FailureKind::Rejected,
            vec!["the device proof was refused: check this machine's clock (signatures are valid for ±2 minutes) and the device identity file".into()],
        );
    }
    if code.starts_with("HTTP_") {
        return (
            FailureKind::Rejected,
            vec!["the gateway refused the WebSocket upgrade; if a reverse proxy sits in front of it, list the proxy in gateway.trustedProxies".into()],
        );
    }
    (FailureKind::Rejected, credential_fixes(t))
}

/// A failed call on an established connection. `granted` = the hello's scopes.
pub fn rpc_failure(method: &str, e: &RpcError, granted: &[String], t: &Target) -> Failure {
    match e {
        RpcError::Gateway { error, .. } => {
            let json = request_error_json(error);
            if let Some(scope) = error.missing_scope() {
                let granted_text = if granted.is_empty() {
                    "none".to_owned()
                } else {
                    granted.join(", ")
                };
                let mut fixes = vec![format!(
                    "the gateway accepted the connection, but this credential/device was not granted {scope} (granted: {granted_text}); connect with a credential or a paired device that holds {scope}"
                )];
                if granted.is_empty() {
                    fixes.push(
                        "OpenClaw gateways clear the scopes of device-less connections that do not come over loopback: use an SSH tunnel (ssh -N -L 18789:127.0.0.1:18789 <host>) and a loopback --url, or a paired device".into(),
                    );
                }
                return Failure {
                    kind: FailureKind::Scope,
                    message: format!("{method}: missing scope: {scope}"),
                    fixes,
                    json,
                };
            }
            let mut fixes = Vec::new();
            if error.message.starts_with("unknown method") {
                fixes.push(
                    "check the method name; the gateway lists its methods in hello-ok features.methods".into(),
                );
            } else if error
                .message
                .starts_with(&format!("invalid {method} params"))
            {
                fixes.push("check --params against the method's parameters".into());
            } else if error.retryable == Some(true) {
                fixes.push(match error.retry_after_ms {
                    Some(ms) => format!("retryable: try again in {ms} ms"),
                    None => "retryable: try again shortly".into(),
                });
            }
            Failure {
                kind: FailureKind::Rpc,
                message: format!("{method} failed: {}", error.message),
                fixes,
                json,
            }
        }
        RpcError::Closed { code, reason } => Failure {
            kind: FailureKind::Unreachable,
            message: format!(
                "{method}: the gateway closed the connection before answering ({code}{})",
                if reason.is_empty() {
                    String::new()
                } else {
                    format!(": {reason}")
                }
            ),
            fixes: vec!["the gateway may be restarting; retry shortly".into()],
            json: json!({"type": "gateway_transport_error", "kind": "closed", "message": e.to_string(),
                "closeCode": code, "reason": reason, "gateway": {"url": t.url, "urlSource": t.source_label()}}),
        },
        RpcError::Protocol(detail) => Failure {
            kind: FailureKind::Rpc,
            message: format!("{method}: {detail}"),
            fixes: Vec::new(),
            json: json!({"type": "gateway_transport_error", "kind": "protocol", "message": e.to_string()}),
        },
    }
}

/// The call did not finish within the budget.
pub fn call_timeout(method: &str, timeout_ms: u64, t: &Target) -> Failure {
    Failure {
        kind: FailureKind::Unreachable,
        message: format!("{method}: no answer from {} within {timeout_ms} ms", t.url),
        fixes: vec!["the gateway is reachable but slow; raise --timeout (milliseconds)".into()],
        json: json!({"type": "gateway_transport_error", "kind": "timeout",
            "message": format!("no answer within {timeout_ms} ms"),
            "gateway": {"url": t.url, "urlSource": t.source_label()}}),
    }
}

/// `clawgate devices approve <id>`.
pub fn approve_command(request_id: &str) -> String {
    format!("clawgate devices approve {request_id}")
}

/// The OpenClaw CLI's spelling, for gateways run by OpenClaw.
pub fn openclaw_approve_command(request_id: &str) -> String {
    format!("openclaw devices approve {request_id}")
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn scopes_text(scopes: &[String]) -> String {
    if scopes.is_empty() {
        "no scopes".into()
    } else {
        scopes.join(", ")
    }
}

/// What the device asks for, in words.
pub fn asking(p: &PairingRequired) -> String {
    format!(
        "role {}, {}",
        p.requested_role.as_deref().unwrap_or("operator"),
        scopes_text(&p.requested_scopes)
    )
}

/// The lines explaining a pairing request and how to approve it.
pub fn instructions(p: &PairingRequired, device_id: &str, t: &Target) -> Vec<String> {
    let id = p.request_id.as_deref().unwrap_or("<requestId>");
    let device = p.device_id.as_deref().unwrap_or(device_id);
    let mut lines = Vec::new();
    match p.reason.as_deref() {
        Some("scope-upgrade") => lines.push(format!(
            "The gateway at {} knows this device ({}), but approved only {}; this command needs {}.",
            t.url,
            short(device),
            scopes_text(&p.approved_scopes),
            scopes_text(&p.requested_scopes)
        )),
        Some("role-upgrade") => lines.push(format!(
            "The gateway at {} knows this device ({}), but not for role {}.",
            t.url,
            short(device),
            p.requested_role.as_deref().unwrap_or("operator")
        )),
        _ => lines.push(format!(
            "This device ({}) is not approved by the gateway at {} yet ({}).",
            short(device),
            t.url,
            asking(p)
        )),
    }
    lines.push(format!(
        "Approve request {id} on the gateway host (or from any session allowed to pair devices):"
    ));
    lines.push(format!("    {}", approve_command(id)));
    lines.push(format!(
        "    {}    (gateways run by OpenClaw)",
        openclaw_approve_command(id)
    ));
    lines
}

/// The JSON `pairing` object of a pairing failure.
pub fn pairing_json(p: &PairingRequired, device_id: &str) -> Value {
    let id = p.request_id.as_deref().unwrap_or("");
    json!({
        "requestId": p.request_id,
        "reason": p.reason,
        "deviceId": p.device_id.as_deref().unwrap_or(device_id),
        "requestedRole": p.requested_role,
        "requestedScopes": p.requested_scopes,
        "approvedScopes": p.approved_scopes,
        "approveCommand": approve_command(id),
        "openclawApproveCommand": openclaw_approve_command(id),
    })
}

/// A plaintext `ws://` URL to a host that is not loopback or private: OpenClaw's SECURITY
/// ERROR, with the fixes clawgate offers. Exit 2 (a configuration problem: nothing was
/// sent).
pub fn plaintext_failure(
    url: &str,
    host: &str,
    reason: &str,
    source: &TargetSource,
    config: Option<&std::path::Path>,
    break_glass: bool,
) -> Failure {
    let source_text = match source {
        TargetSource::Flag => "--url".to_owned(),
        TargetSource::Env(var) => format!("env {var}"),
        TargetSource::RemoteConfig => "config gateway.remote.url".to_owned(),
        TargetSource::Local => "local gateway".to_owned(),
    };
    let mut message = format!(
        "SECURITY ERROR: Gateway URL \"{url}\" uses plaintext ws:// to a non-loopback address ({reason}).\nBoth credentials and chat data would be exposed to network interception.\nSource: {source_text}"
    );
    if let Some(p) = config {
        message.push_str(&format!("\nConfig: {}", p.display()));
    }
    let mut fixes = vec![
        "Fix: use wss:// for remote gateway URLs (a self-signed gateway certificate is pinned with --tls-fingerprint or gateway.remote.tlsFingerprint)".to_owned(),
        format!(
            "or keep gateway.bind=loopback on the gateway host and go through SSH: `clawgate tunnel up <user>@{host}` then use ws://127.0.0.1:18789, or set gateway.remote.transport to \"ssh\" and gateway.remote.sshTarget to \"<user>@{host}\" so every command opens the tunnel itself"
        ),
        "or use Tailscale Serve for HTTPS remote access".to_owned(),
    ];
    fixes.push(if break_glass {
        "CLAWGATE_ALLOW_INSECURE_PRIVATE_WS is set, but it only admits host names whose every address is private (RFC 1918, 100.64.0.0/10, link-local, IPv6 ULA); it never admits a public address".to_owned()
    } else {
        "Break-glass (trusted private networks only): CLAWGATE_ALLOW_INSECURE_PRIVATE_WS=1 (or OPENCLAW_ALLOW_INSECURE_PRIVATE_WS=1) admits a host name whose every address is private; private IP literals, localhost, *.local and *.ts.net need nothing".to_owned()
    });
    Failure {
        kind: FailureKind::Usage,
        json: json!({"type": "security_error", "kind": "plaintext_ws", "message": message,
            "url": url, "host": host, "reason": reason, "source": source_text}),
        message,
        fixes,
    }
}

/// A tunnel error as a command failure: its kind by the tunnel's, fixes, ssh's own words.
pub fn tunnel_failure(e: &TunnelError) -> Failure {
    let kind = match e.kind {
        TunnelErrorKind::InvalidSpec
        | TunnelErrorKind::SshNotFound
        | TunnelErrorKind::LocalPortBusy => FailureKind::Usage,
        TunnelErrorKind::AuthFailed
        | TunnelErrorKind::HostKeyUnknown
        | TunnelErrorKind::HostKeyChanged => FailureKind::Rejected,
        TunnelErrorKind::DnsFailed
        | TunnelErrorKind::SshUnreachable
        | TunnelErrorKind::Timeout
        | TunnelErrorKind::Exited => FailureKind::Unreachable,
    };
    let mut fixes = e.fixes.clone();
    if !e.stderr.is_empty() {
        fixes.push("ssh said:".into());
        fixes.extend(
            e.stderr
                .lines()
                .filter(|l| !l.trim().is_empty())
                .take(20)
                .map(|l| format!("    {l}")),
        );
    }
    Failure {
        kind,
        message: e.message.clone(),
        fixes,
        json: json!({"type": "tunnel_error", "kind": e.kind.as_str(), "message": e.message,
            "fixes": e.fixes, "stderr": e.stderr}),
    }
}

/// Whether a gateway error says the request, device or node named is unknown.
pub fn is_unknown(e: &RpcError, what: &str) -> bool {
    e.wire().is_some_and(|w| {
        w.code == "APPROVAL_NOT_FOUND"
            || w.message == format!("unknown {what}")
            || w.message.starts_with(&format!("unknown {what}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tunnel::TunnelErrorKind;

    #[test]
    fn tunnel_failures_have_a_kind_by_cause() {
        let f = tunnel_failure(&TunnelError::local_port_busy(5));
        assert_eq!(f.kind, FailureKind::Usage);
        assert_eq!(f.json["kind"], "local_port_busy");
        let mut e = TunnelError::new(TunnelErrorKind::AuthFailed, "no");
        e.stderr = "Permission denied (publickey).".into();
        let f = tunnel_failure(&e);
        assert_eq!(f.kind, FailureKind::Rejected);
        assert!(f.fixes.iter().any(|l| l.contains("Permission denied")));
    }
}
