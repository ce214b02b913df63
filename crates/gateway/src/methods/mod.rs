//! RPC dispatch: the role and scope gate, then one handler per method.

mod devices;
mod info;
mod nodes;

use crate::Gateway;
use crate::registry::{ConnHandle, Session};
use clawgate_protocol::connect::Role;
use clawgate_protocol::errors::{self, ErrorShape};
use clawgate_protocol::scopes::{self, Gate, MethodAccess};
use serde_json::Value;
use std::sync::Arc;

pub(crate) use info::{health_payload, presence_list};

/// Methods this gateway implements (advertised in `hello-ok.features.methods`).
pub(crate) const METHODS: &[&str] = &[
    "health",
    "status",
    "system-presence",
    "last-heartbeat",
    "config.get",
    "channels.status",
    "models.list",
    "gateway.identity.get",
    "device.pair.list",
    "device.pair.approve",
    "device.pair.reject",
    "device.pair.remove",
    "device.pair.rename",
    "device.token.rotate",
    "device.token.revoke",
    "node.list",
    "node.describe",
    "node.invoke",
    "node.invoke.result",
    "node.invoke.progress",
    "node.event",
    "node.pair.list",
    "node.pair.approve",
    "node.pair.reject",
    "node.pair.remove",
    "node.rename",
    "node.skills.update",
    "node.pluginTools.update",
    "exec.approvals.node.get",
    "exec.approvals.node.set",
];

/// Why a call was refused before reaching its handler.
pub(crate) enum Refusal {
    /// The caller's role may not call this method (counted towards the flood guard).
    Role(ErrorShape),
    Other(ErrorShape),
}

/// Checks role and scope ([`scopes::gate`]), then runs the handler.
pub(crate) async fn dispatch(
    gw: &Gateway,
    session: &Session,
    conn: &Arc<ConnHandle>,
    method: &str,
    params: Option<Value>,
) -> Result<Value, Refusal> {
    let is_node = session.role == Role::Node;
    match scopes::gate(method) {
        Gate::Access(MethodAccess::NodeOnly) if !is_node => {
            return Err(Refusal::Role(errors::unauthorized_role(
                session.role.as_str(),
            )));
        }
        Gate::AnyOperator | Gate::Access(MethodAccess::Scope(_)) if is_node => {
            return Err(Refusal::Role(errors::unauthorized_role(
                session.role.as_str(),
            )));
        }
        Gate::Access(MethodAccess::Scope(scope)) if !scopes::satisfies(&session.scopes, scope) => {
            return Err(Refusal::Other(errors::missing_scope(scope)));
        }
        _ => {}
    }
    // Extra params are tolerated like the real gateway does (`health {"bogus":1}` answers).
    let params = params.unwrap_or(Value::Null);
    if let Some(reply) = devices::dispatch(gw, session, method, &params).await {
        return reply.map_err(Refusal::Other);
    }
    if let Some(reply) = nodes::dispatch(gw, session, conn, method, &params).await {
        return reply.map_err(Refusal::Other);
    }
    let reply = match method {
        "health" => Ok(health_payload(gw)),
        "status" => Ok(info::status(gw)),
        "system-presence" => Ok(Value::Array(presence_list(gw))),
        "last-heartbeat" => Ok(Value::Null),
        "config.get" => Ok(info::config_get(gw)),
        "channels.status" => Ok(info::channels_status()),
        "models.list" => Ok(serde_json::json!({"models": []})),
        "gateway.identity.get" => Ok(info::identity(gw)),
        _ => Err(errors::unknown_method(method)),
    };
    reply.map_err(Refusal::Other)
}
