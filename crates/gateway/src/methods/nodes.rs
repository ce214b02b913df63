//! Node methods: what operators call about nodes (`node.list`, `node.invoke`, `node.pair.*`,
//! `exec.approvals.node.*`) and what nodes call (`node.invoke.result`, `node.event`, …).

use super::table::{Call, Reply};
use crate::nodes::{DEFAULT_INVOKE_TIMEOUT_MS, InvokeRequest, NodeInvoker, caller_key};
use clawgate_protocol::errors::{self, ErrorShape};
use clawgate_protocol::schema::{self, Schema};
use serde_json::{Value, json};

fn string_param<'a>(method: &str, params: &'a Value, key: &str) -> Result<&'a str, ErrorShape> {
    params
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            errors::invalid_params(method, &format!("must have required property '{key}'"))
        })
}

pub(crate) fn list(c: &Call<'_>) -> Reply {
    Ok(c.gw.nodes.list())
}

pub(crate) fn describe(c: &Call<'_>) -> Reply {
    c.gw.nodes
        .describe(string_param(c.method, c.params, "nodeId")?)
}

pub(crate) fn pair_list(c: &Call<'_>) -> Reply {
    Ok(c.gw.nodes.pair_list())
}

pub(crate) async fn pair_approve(c: &Call<'_>) -> Reply {
    let id = string_param(c.method, c.params, "requestId")?;
    c.gw.nodes.approve(c.gw, id, &c.session.scopes).await
}

pub(crate) async fn pair_reject(c: &Call<'_>) -> Reply {
    let id = string_param(c.method, c.params, "requestId")?;
    c.gw.nodes.reject(c.gw, id).await
}

pub(crate) async fn pair_remove(c: &Call<'_>) -> Reply {
    let id = string_param(c.method, c.params, "nodeId")?;
    c.gw.nodes.remove(c.gw, id).await
}

pub(crate) async fn rename(c: &Call<'_>) -> Reply {
    let id = string_param(c.method, c.params, "nodeId");
    let name = string_param(c.method, c.params, "displayName");
    c.gw.nodes.rename(id?, name?).await
}

/// `exec.approvals.node.get`: the node's own `system.execApprovals.get`, outside the gateway's
/// command policy.
pub(crate) async fn exec_approvals_get(c: &Call<'_>) -> Reply {
    forward_exec_approvals(c, "system.execApprovals.get", json!({})).await
}

/// `exec.approvals.node.set`: the node's own `system.execApprovals.set`.
pub(crate) async fn exec_approvals_set(c: &Call<'_>) -> Reply {
    let mut forwarded = json!({"file": c.params.get("file").cloned().unwrap_or(Value::Null)});
    if let Some(h) = c.params.get("baseHash") {
        forwarded["baseHash"] = h.clone();
    }
    forward_exec_approvals(c, "system.execApprovals.set", forwarded).await
}

async fn forward_exec_approvals(c: &Call<'_>, command: &str, forwarded: Value) -> Reply {
    let node_id = string_param(c.method, c.params, "nodeId")?;
    let request = InvokeRequest {
        node_id,
        command,
        params: Some(forwarded),
        timeout_ms: DEFAULT_INVOKE_TIMEOUT_MS,
        idempotency_key: None,
        session_key: None,
        policy_checked: false,
        caller: Some(caller_key(c.session)),
    };
    c.gw.invoke_node(request).await.map(|(payload, _)| payload)
}

pub(crate) fn invoke_result(c: &Call<'_>) -> Reply {
    c.gw.nodes.result(c.gw, c.session, c.conn, c.params)
}

pub(crate) fn invoke_progress(c: &Call<'_>) -> Reply {
    c.gw.nodes.progress(c.gw, c.session, c.conn, c.params)
}

pub(crate) fn event(c: &Call<'_>) -> Reply {
    c.gw.nodes.event(c.gw, c.session, c.params)
}

/// `node.skills.update`, `node.pluginTools.update`, `node.runnerInventory.update`.
pub(crate) fn update(c: &Call<'_>) -> Reply {
    c.gw.nodes.update(c.gw, c.session, c.method, c.params)
}

/// `node.invoke`: schema, policy, then the relay. `system.run` gets a `runId` like the real
/// gateway injects.
pub(crate) async fn invoke(c: &Call<'_>) -> Reply {
    const METHOD: &str = "node.invoke";
    let (gw, session, params) = (c.gw, c.session, c.params);
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
    let (payload, payload_json) = gw.invoke_node(request).await?;
    Ok(
        json!({"ok": true, "nodeId": node_id, "command": command, "payload": payload, "payloadJSON": payload_json}),
    )
}
