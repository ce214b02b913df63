//! The `hello-ok` payload and the advertised feature lists.

use crate::registry::Session;
use crate::{BUILD_ID, Gateway, SERVER_VERSION, methods};
use clawgate_protocol::scopes;
use serde_json::{Value, json};

/// Events this gateway emits. Clients read the lists for discovery, so only what is really
/// sent is listed.
pub(crate) const EVENTS: &[&str] = &[
    "connect.challenge",
    "tick",
    "presence",
    "shutdown",
    "health",
];

pub(crate) fn hello_ok(gw: &Gateway, conn_id: &str, session: &Session, auth_method: &str) -> Value {
    let o = &gw.options;
    let is_operator = session.role == clawgate_protocol::connect::Role::Operator;
    // Nodes and probes see no presence, as with the real gateway.
    let presence = if is_operator && session.client.mode != "probe" {
        methods::presence_list(gw)
    } else {
        Vec::new()
    };
    let mut snapshot = json!({
        "presence": presence,
        "health": methods::health_payload(gw),
        "stateVersion": gw.registry.state_version(),
        "uptimeMs": gw.uptime_ms(),
    });
    if is_operator && scopes::satisfies(&session.scopes, scopes::ADMIN) {
        snapshot["configPath"] = json!(o.config_path.as_ref().map(|p| p.display().to_string()));
        snapshot["stateDir"] = json!(o.state_dir.display().to_string());
        snapshot["authMode"] = json!(o.auth_mode.as_str());
    }
    json!({
        "type": "hello-ok",
        // Protocol 4 even to a legacy protocol-3 node, as the real gateway answers.
        "protocol": clawgate_protocol::PROTOCOL_VERSION,
        "server": {
            "version": SERVER_VERSION,
            "buildId": BUILD_ID,
            "bootId": gw.boot_id,
            "connId": conn_id,
        },
        "features": {
            "methods": methods::advertised(),
            "events": EVENTS,
        },
        "snapshot": snapshot,
        "auth": {
            "method": auth_method,
            "role": session.role.as_str(),
            "scopes": session.scopes,
        },
        "policy": {
            "maxPayload": o.max_payload,
            "maxBufferedBytes": o.max_buffered_bytes,
            "tickIntervalMs": o.tick_interval.as_millis() as u64,
        },
    })
}
