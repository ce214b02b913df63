//! `device.pair.*` and `device.token.*`: pairing requests, paired devices and their tokens.

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

pub(crate) async fn dispatch(
    gw: &Gateway,
    session: &Session,
    method: &str,
    params: &Value,
) -> Option<Result<Value, ErrorShape>> {
    let now = crate::now_ms();
    let result = match method {
        "device.pair.list" => Ok(gw.pairing.list(&|id| gw.registry.device_connected(id), now)),
        "device.pair.approve" => approve(gw, session, method, params, now).await,
        "device.pair.reject" => reject(gw, method, params, now).await,
        "device.pair.remove" => remove(gw, method, params, now).await,
        "device.pair.rename" => rename(gw, method, params, now).await,
        "device.token.rotate" => rotate(gw, session, method, params, now).await,
        "device.token.revoke" => revoke(gw, method, params, now).await,
        _ => return None,
    };
    Some(result.map(|v| if v.is_null() { json!({}) } else { v }))
}

async fn approve(
    gw: &Gateway,
    session: &Session,
    method: &str,
    params: &Value,
    now: i64,
) -> Result<Value, ErrorShape> {
    let id = param(method, params, "requestId")?;
    check_may_approve(gw, session, id, now)?;
    let (payload, event) = gw
        .pairing
        .approve(id, now)
        .await
        .map_err(|e| failed(e, "requestId"))?;
    gw.registry.broadcast("device.pair.resolved", &event);
    Ok(payload)
}

async fn reject(gw: &Gateway, method: &str, params: &Value, now: i64) -> Result<Value, ErrorShape> {
    let id = param(method, params, "requestId")?;
    let (payload, event) = gw
        .pairing
        .reject(id, now)
        .await
        .map_err(|e| failed(e, "requestId"))?;
    gw.registry.broadcast("device.pair.resolved", &event);
    Ok(payload)
}

async fn remove(gw: &Gateway, method: &str, params: &Value, now: i64) -> Result<Value, ErrorShape> {
    let id = param(method, params, "deviceId")?;
    let payload = gw
        .pairing
        .remove(id, now)
        .await
        .map_err(|e| failed(e, "deviceId"))?;
    gw.registry.disconnect_device(id, None, "device removed");
    Ok(payload)
}

async fn rename(gw: &Gateway, method: &str, params: &Value, now: i64) -> Result<Value, ErrorShape> {
    let id = param(method, params, "deviceId")?;
    let label = param(method, params, "label")?;
    if label.chars().count() > 64 {
        return Err(errors::invalid_params(
            method,
            "at /label: must not have more than 64 characters",
        ));
    }
    gw.pairing
        .rename(id, label, now)
        .await
        .map_err(|e| failed(e, "deviceId"))
}

async fn rotate(
    gw: &Gateway,
    session: &Session,
    method: &str,
    params: &Value,
    now: i64,
) -> Result<Value, ErrorShape> {
    let id = param(method, params, "deviceId")?;
    let role = role_param(method, params)?;
    // Sockets authenticated with the old token keep their session; new connects need the
    // new token.
    gw.pairing
        .rotate(
            id,
            role.as_str(),
            session.device_id.as_deref() == Some(id),
            now,
        )
        .await
        .map_err(|e| failed(e, "deviceId"))
}

async fn revoke(gw: &Gateway, method: &str, params: &Value, now: i64) -> Result<Value, ErrorShape> {
    let id = param(method, params, "deviceId")?;
    let role = role_param(method, params)?;
    let payload = gw
        .pairing
        .revoke(id, role.as_str(), now)
        .await
        .map_err(|e| failed(e, "deviceId"))?;
    gw.registry
        .disconnect_device(id, Some(role), "device token revoked");
    Ok(payload)
}
