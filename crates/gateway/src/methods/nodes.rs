//! Node methods: what operators call about nodes (`node.list`, `node.invoke`, `node.pair.*`,
//! `exec.approvals.node.*`) and what nodes call (`node.invoke.result`, `node.event`, …).

use crate::Gateway;
use crate::nodes::{DEFAULT_INVOKE_TIMEOUT_MS, InvokeRequest, caller_key};
use crate::registry::{ConnHandle, Session};
use clawgate_protocol::errors::{self, ErrorShape};
use clawgate_protocol::schema::{self, Schema};
use serde_json::{Value, json};
use std::sync::Arc;

fn string_param<'a>(method: &str, params: &'a Value, key: &str) -> Result<&'a str, ErrorShape> {
    params
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            errors::invalid_params(method, &format!("must have required property '{key}'"))
        })
}

pub(crate) async fn dispatch(
    gw: &Gateway,
    session: &Session,
    conn: &Arc<ConnHandle>,
    method: &str,
    params: &Value,
) -> Option<Result<Value, ErrorShape>> {
    let nodes = &gw.nodes;
    let result = match method {
        "node.list" => Ok(nodes.list()),
        "node.describe" => match string_param(method, params, "nodeId") {
            Ok(id) => nodes.describe(id),
            Err(e) => Err(e),
        },
        "node.pair.list" => Ok(nodes.pair_list()),
        "node.pair.approve" => match string_param(method, params, "requestId") {
            Ok(id) => nodes.approve(gw, id, &session.scopes).await,
            Err(e) => Err(e),
        },
        "node.pair.reject" => match string_param(method, params, "requestId") {
            Ok(id) => nodes.reject(gw, id).await,
            Err(e) => Err(e),
        },
        "node.pair.remove" => match string_param(method, params, "nodeId") {
            Ok(id) => nodes.remove(gw, id).await,
            Err(e) => Err(e),
        },
        "node.rename" => match (
            string_param(method, params, "nodeId"),
            string_param(method, params, "displayName"),
        ) {
            (Ok(id), Ok(name)) => nodes.rename(id, name).await,
            (Err(e), _) | (_, Err(e)) => Err(e),
        },
        "node.invoke" => invoke(gw, session, params).await,
        "exec.approvals.node.get" | "exec.approvals.node.set" => {
            match string_param(method, params, "nodeId") {
                Ok(id) => {
                    let (command, forwarded) = if method.ends_with(".get") {
                        ("system.execApprovals.get", json!({}))
                    } else {
                        let mut f =
                            json!({"file": params.get("file").cloned().unwrap_or(Value::Null)});
                        if let Some(h) = params.get("baseHash") {
                            f["baseHash"] = h.clone();
                        }
                        ("system.execApprovals.set", f)
                    };
                    let request = InvokeRequest {
                        node_id: id,
                        command,
                        params: Some(forwarded),
                        timeout_ms: DEFAULT_INVOKE_TIMEOUT_MS,
                        idempotency_key: None,
                        session_key: None,
                        policy_checked: false,
                        caller: Some(caller_key(session)),
                    };
                    nodes.invoke(gw, request).await.map(|(payload, _)| payload)
                }
                Err(e) => Err(e),
            }
        }
        "node.invoke.result" => nodes.result(gw, session, conn, params),
        "node.invoke.progress" => nodes.progress(gw, session, conn, params),
        "node.event" => nodes.event(gw, session, params),
        "node.skills.update" | "node.pluginTools.update" | "node.runnerInventory.update" => {
            nodes.update(gw, session, method, params)
        }
        _ => return None,
    };
    Some(result)
}

/// `node.invoke`: schema, policy, then the relay. `system.run` gets a `runId` like the real
/// gateway injects.
async fn invoke(gw: &Gateway, session: &Session, params: &Value) -> Result<Value, ErrorShape> {
    const METHOD: &str = "node.invoke";
    schema::validate(Schema::NodeInvokeParams, params)
        .map_err(|e| errors::invalid_params(METHOD, &e))?;
    let node_id = string_param(METHOD, params, "nodeId")?;
    let command = string_param(METHOD, params, "command")?;
    // Past what a u64 holds is still "as long as allowed": `Nodes::invoke` clamps it.
    let timeout_ms = params
        .get("timeoutMs")
        .and_then(Value::as_f64)
        .map_or(DEFAULT_INVOKE_TIMEOUT_MS, |t| t as u64);
    let mut forwarded = params.get("params").cloned();
    if command == "system.run" {
        let p = forwarded.get_or_insert_with(|| json!({}));
        if let Value::Object(map) = p {
            map.entry("runId")
                .or_insert_with(|| json!(uuid::Uuid::new_v4().to_string()));
        }
    }
    let request = InvokeRequest {
        node_id,
        command,
        params: forwarded,
        timeout_ms,
        idempotency_key: params.get("idempotencyKey").and_then(Value::as_str),
        session_key: params.get("sessionKey").and_then(Value::as_str),
        policy_checked: true,
        caller: Some(caller_key(session)),
    };
    let (payload, payload_json) = gw.nodes.invoke(gw, request).await?;
    Ok(
        json!({"ok": true, "nodeId": node_id, "command": command, "payload": payload, "payloadJSON": payload_json}),
    )
}
