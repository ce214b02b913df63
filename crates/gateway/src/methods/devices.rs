//! `device.pair.*` and `device.token.*`: pairing requests, paired devices and their tokens.

use super::table::{Call, Reply};
use crate::Gateway;
use crate::pairing::PairingError;
use crate::registry::Session;
use clawgate_protocol::connect::Role;
use clawgate_protocol::errors::{self, ErrorShape};
use clawgate_protocol::scopes;
use serde_json::{Value, json};

fn param<'a>(method: &str, params: &'a Value, key: &str) -> Result<&'a str, ErrorShape> {
    params
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            errors::invalid_params(method, &format!("must have required property '{key}'"))
        })
}

fn role_param(method: &str, params: &Value) -> Result<Role, ErrorShape> {
    match params
        .get("role")
        .and_then(Value::as_str)
        .unwrap_or("operator")
    {
        "operator" => Ok(Role::Operator),
        "node" => Ok(Role::Node),
        other => Err(errors::invalid_params(
            method,
            &format!("role must be operator or node (got {other:?})"),
        )),
    }
}

/// Approving must not hand out more than the approver holds: admin for any role other than
/// operator (refused with OpenClaw's "device pairing approval denied", which its CLI answers by
/// retrying with admin), and every requested scope.
fn check_may_approve(
    gw: &Gateway,
    session: &Session,
    request_id: &str,
    now: i64,
) -> Result<(), ErrorShape> {
    let Some(request) = gw.pairing.request(request_id, now) else {
        return Ok(()); // the approval itself reports the unknown id
    };
    if request.role != "operator" && !scopes::satisfies(&session.scopes, scopes::ADMIN) {
        return Err(ErrorShape::new(
            errors::ErrorCode::InvalidRequest,
            "device pairing approval denied",
        ));
    }
    match request
        .scopes
        .iter()
        .find(|s| !scopes::satisfies(&session.scopes, s))
    {
        Some(missing) => Err(ErrorShape::new(
            errors::ErrorCode::InvalidRequest,
            format!(
                "missing scope: {missing} (approving grants it; connect with it to approve this request)"
            ),
        )),
        None => Ok(()),
    }
}

fn failed(e: PairingError, what: &str) -> ErrorShape {
    match e {
        PairingError::NotFound(id) => {
            errors::approval_not_found(what, &id, "clawgate devices list")
        }
        PairingError::Superseded { id, by } => {
            let asks = if by.scopes.is_empty() {
                format!("role {} without scopes", by.role)
            } else {
                format!("role {} with {}", by.role, by.scopes.join(", "))
            };
            errors::approval_superseded(&id, &by.request_id, &asks, "clawgate devices list")
        }
        PairingError::Store(e) => {
            tracing::error!("pairing store: {e}");
            errors::unavailable(
                "the gateway could not write its pairing state; nothing was changed (see its log)",
            )
        }
    }
}

/// The methods answer `{}` where the store has nothing to say, as the real gateway does.
fn or_empty(v: Value) -> Value {
    if v.is_null() { json!({}) } else { v }
}

pub(crate) fn list(c: &Call<'_>) -> Reply {
    let gw = c.gw;
    Ok(or_empty(gw.pairing.list(
        &|id| gw.registry.device_connected(id),
        crate::now_ms(),
    )))
}

pub(crate) async fn approve(c: &Call<'_>) -> Reply {
    let (gw, now) = (c.gw, crate::now_ms());
    let id = param(c.method, c.params, "requestId")?;
    check_may_approve(gw, c.session, id, now)?;
    let (payload, event) = gw
        .pairing
        .approve(id, now)
        .await
        .map_err(|e| failed(e, "requestId"))?;
    gw.registry.broadcast("device.pair.resolved", &event);
    Ok(or_empty(payload))
}

pub(crate) async fn reject(c: &Call<'_>) -> Reply {
    let gw = c.gw;
    let id = param(c.method, c.params, "requestId")?;
    let (payload, event) = gw
        .pairing
        .reject(id, crate::now_ms())
        .await
        .map_err(|e| failed(e, "requestId"))?;
    gw.registry.broadcast("device.pair.resolved", &event);
    Ok(or_empty(payload))
}

pub(crate) async fn remove(c: &Call<'_>) -> Reply {
    let gw = c.gw;
    let id = param(c.method, c.params, "deviceId")?;
    let payload = gw
        .pairing
        .remove(id, crate::now_ms())
        .await
        .map_err(|e| failed(e, "deviceId"))?;
    gw.registry.disconnect_device(id, None, "device removed");
    Ok(or_empty(payload))
}

pub(crate) async fn rename(c: &Call<'_>) -> Reply {
    let id = param(c.method, c.params, "deviceId")?;
    let label = param(c.method, c.params, "label")?;
    if label.chars().count() > 64 {
        return Err(errors::invalid_params(
            c.method,
            "at /label: must not have more than 64 characters",
        ));
    }
    c.gw.pairing
        .rename(id, label, crate::now_ms())
        .await
        .map(or_empty)
        .map_err(|e| failed(e, "deviceId"))
}

pub(crate) async fn rotate(c: &Call<'_>) -> Reply {
    let id = param(c.method, c.params, "deviceId")?;
    let role = role_param(c.method, c.params)?;
    // Sockets authenticated with the old token keep their session; new connects need the
    // new token.
    c.gw.pairing
        .rotate(
            id,
            role.as_str(),
            c.session.device_id.as_deref() == Some(id),
            crate::now_ms(),
        )
        .await
        .map(or_empty)
        .map_err(|e| failed(e, "deviceId"))
}

pub(crate) async fn revoke(c: &Call<'_>) -> Reply {
    let gw = c.gw;
    let id = param(c.method, c.params, "deviceId")?;
    let role = role_param(c.method, c.params)?;
    let payload = gw
        .pairing
        .revoke(id, role.as_str(), crate::now_ms())
        .await
        .map_err(|e| failed(e, "deviceId"))?;
    gw.registry
        .disconnect_device(id, Some(role), "device token revoked");
    Ok(or_empty(payload))
}
