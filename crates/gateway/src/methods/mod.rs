//! RPC dispatch: the role and scope gate, then the method's handler, both from [`table`].

mod agent;
mod channels;
mod chat;
mod devices;
mod info;
mod nodes;
mod sessions;
mod table;

use crate::Gateway;
use crate::registry::{ConnHandle, Session};
use clawgate_protocol::connect::Role;
use clawgate_protocol::errors::{self, ErrorShape};
use clawgate_protocol::scopes::{self, Gate, MethodAccess};
use serde_json::Value;
use std::sync::Arc;

pub(crate) use info::{health_payload, presence_list};
pub(crate) use table::advertised;

/// Why a call was refused before reaching its handler.
pub(crate) enum Refusal {
    /// The caller's role may not call this method (counted towards the flood guard).
    Role(ErrorShape),
    Other(ErrorShape),
    /// Not a refusal: the handler sent its response frames itself (`agent` answers twice).
    Answered,
}

/// Checks role and scope, then runs the handler. A method the gateway does not implement is
/// still gated as the real gateway gates it ([`scopes::gate`]: a caller without the scope it
/// would need hears that rather than "unknown method").
pub(crate) async fn dispatch(
    gw: &Gateway,
    session: &Session,
    conn: &Arc<ConnHandle>,
    request_id: &str,
    method: &str,
    params: Option<Value>,
) -> Result<Value, Refusal> {
    let entry = table::find(method);
    check_access(
        session,
        entry.map_or_else(|| scopes::gate(method), |m| m.access),
    )?;
    let Some(entry) = entry else {
        return Err(Refusal::Other(errors::unknown_method(method)));
    };
    let params = params.unwrap_or(Value::Null);
    let call = table::Call {
        gw,
        session,
        conn,
        request_id,
        method,
        params: &params,
    };
    entry.handler.run(&call).await
}

fn check_access(session: &Session, access: Gate) -> Result<(), Refusal> {
    let is_node = session.role == Role::Node;
    match access {
        Gate::Access(MethodAccess::NodeOnly) if !is_node => Err(Refusal::Role(
            errors::unauthorized_role(session.role.as_str()),
        )),
        Gate::AnyOperator | Gate::Access(MethodAccess::Scope(_)) if is_node => Err(Refusal::Role(
            errors::unauthorized_role(session.role.as_str()),
        )),
        Gate::Access(MethodAccess::Scope(scope)) if !scopes::satisfies(&session.scopes, scope) => {
            Err(Refusal::Other(errors::missing_scope(scope)))
        }
        _ => Ok(()),
    }
}
