//! The `connect` request: its parameters, the `connect.challenge` event that precedes it, and
//! protocol negotiation.

use crate::errors::{self, HandshakeError};
use crate::schema::{self, Schema};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `connect.challenge` payload. `capabilities` lets clients send `modelCatalog`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Challenge {
    pub nonce: String,
    pub ts: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientInfo {
    pub id: String,
    pub version: String,
    pub platform: String,
    pub mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_family: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceProof {
    pub id: String,
    pub public_key: String,
    pub signature: String,
    pub signed_at: i64,
    pub nonce: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectAuth {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_runtime_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_runtime_identity_token: Option<String>,
}

impl ConnectAuth {
    /// The token a device signs: `token ?? deviceToken ?? bootstrapToken ?? ""`.
    pub fn signed_token(&self) -> &str {
        self.token
            .as_deref()
            .or(self.device_token.as_deref())
            .or(self.bootstrap_token.as_deref())
            .unwrap_or("")
    }
}

/// Validated `connect` params. Fields clawgate does not act on yet are kept as raw JSON so
/// nothing a client sends is lost.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectParams {
    pub min_protocol: u32,
    pub max_protocol: u32,
    pub client: ClientInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    #[serde(default)]
    pub caps: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commands: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceProof>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<ConnectAuth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computer_use: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_runs: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_catalog: Option<Value>,
}

/// The two roles a connection can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Operator,
    Node,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Node => "node",
        }
    }
}

/// A connect request that passed the schema, role and protocol checks.
#[derive(Debug, Clone)]
pub struct AcceptedConnect {
    pub params: ConnectParams,
    pub role: Role,
    /// The protocol the session speaks (4, or 3 for legacy nodes and probes).
    pub protocol: u32,
}

/// Schema, role and protocol checks, in the real gateway's order. A legacy (protocol 3) node's
/// params keep everything it declared: its pending approval request lists all of it, and only
/// its live session has the plugin surface withheld
/// ([`crate::nodes::withhold_plugin_surface`]), as the real gateway does.
pub fn accept(params: Value) -> Result<AcceptedConnect, HandshakeError> {
    schema::validate(Schema::ConnectParams, &params)
        .map_err(|e| errors::invalid_connect_params(&e))?;
    let params: ConnectParams = serde_json::from_value(params)
        .map_err(|e| errors::invalid_connect_params(&e.to_string()))?;
    let role = match params.role.as_deref() {
        None | Some("operator") => Role::Operator,
        Some("node") => Role::Node,
        Some(_) => return Err(errors::invalid_role()),
    };
    let protocol = negotiate(&params, role)?;
    Ok(AcceptedConnect {
        params,
        role,
        protocol,
    })
}

fn negotiate(p: &ConnectParams, role: Role) -> Result<u32, HandshakeError> {
    let (min, max) = (p.min_protocol, p.max_protocol);
    let v = crate::PROTOCOL_VERSION;
    if max >= v && min <= v {
        return Ok(v);
    }
    if p.client.mode == "probe" && max >= crate::MIN_PROBE_PROTOCOL && min <= v {
        return Ok(max.min(v));
    }
    if role == Role::Node
        && p.client.mode == "node"
        && max >= crate::MIN_NODE_PROTOCOL
        && min <= crate::MIN_NODE_PROTOCOL
    {
        return Ok(crate::MIN_NODE_PROTOCOL);
    }
    Err(errors::protocol_mismatch(min.into(), max.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base(min: u32, max: u32, mode: &str, role: &str) -> Value {
        json!({"minProtocol":min,"maxProtocol":max,"client":{"id":"cli","version":"1","platform":"linux","mode":mode},"role":role})
    }

    #[test]
    fn negotiation() {
        assert_eq!(accept(base(4, 4, "cli", "operator")).unwrap().protocol, 4);
        assert_eq!(accept(base(3, 4, "probe", "operator")).unwrap().protocol, 4);
        assert_eq!(accept(base(3, 3, "probe", "operator")).unwrap().protocol, 3);
        assert_eq!(accept(base(3, 3, "node", "node")).unwrap().protocol, 3);
        let e = accept(base(3, 3, "cli", "operator")).unwrap_err();
        assert_eq!(e.close_code, 1002);
        let e = accept(base(5, 5, "cli", "operator")).unwrap_err();
        assert_eq!(e.error.detail_code(), Some("PROTOCOL_MISMATCH"));
        let e = accept(base(4, 4, "cli", "admin")).unwrap_err();
        assert_eq!(e.error.message, "invalid role");
    }

    #[test]
    fn legacy_nodes_negotiate_3_and_keep_what_they_declare() {
        let node = |min: u32, max: u32| {
            let mut v = base(min, max, "node", "node");
            v["client"]["id"] = json!("node-host");
            v["caps"] = json!(["browser", "ollama", "system"]);
            v["commands"] = json!(["ollama.chat", "system.run"]);
            accept(v).unwrap()
        };
        let legacy = node(3, 3);
        assert_eq!(legacy.protocol, 3);
        assert_eq!(legacy.params.caps, ["browser", "ollama", "system"]);
        let current = node(3, 4);
        assert_eq!(current.protocol, 4);
        assert_eq!(current.params.caps, ["browser", "ollama", "system"]);
        assert_eq!(
            current.params.commands.unwrap(),
            ["ollama.chat", "system.run"]
        );
    }
}
