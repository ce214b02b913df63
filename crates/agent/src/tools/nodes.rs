//! `nodes`: what the model may ask about and of nodes — `status` (every node), `describe`
//! (one), `which` (where binaries are, through `system.which`), `invoke` (any other allowed
//! command; never `system.run*`, which only `exec` runs) and `run` (a command line, as
//! `exec` does it).

use super::{NodeCall, ToolContext, ToolOutput, describe_failure, find_node};
use clawgate_llm::ToolSpec;
use serde_json::{Value, json};

/// `invokeTimeoutMs` when the call gives none.
const DEFAULT_INVOKE_TIMEOUT_MS: u64 = 30_000;

pub(super) fn spec() -> ToolSpec {
    ToolSpec {
        name: "nodes".into(),
        description: "Inspect and use paired nodes: action \"status\" lists them, \"describe\" shows one, \"which\" finds binaries on a node (bins), \"invoke\" calls one of its commands (invokeCommand, invokeParamsJson), \"run\" runs a shell command on it (command).".into(),
        parameters: json!({
            "type": "object",
            "properties": {
                "action": {"type": "string", "enum": ["status", "describe", "which", "invoke", "run"]},
                "node": {"type": "string", "description": "Node id, name or IP address"},
                "bins": {"type": "array", "items": {"type": "string"}},
                "invokeCommand": {"type": "string"},
                "invokeParamsJson": {"type": "string"},
                "invokeTimeoutMs": {"type": "number"},
                "command": {"type": "string", "description": "Shell command (action run)"}
            },
            "required": ["action"]
        }),
    }
}

pub(super) async fn run(args: &Value, call_id: &str, cx: &ToolContext<'_>) -> ToolOutput {
    let action = args["action"].as_str().unwrap_or_default();
    let nodes = cx.nodes.nodes();
    if action == "status" {
        let rows: Vec<&Value> = nodes.iter().map(|n| &n.row).collect();
        return ToolOutput::ok(json!({"nodes": rows}).to_string());
    }
    if !matches!(action, "describe" | "which" | "invoke" | "run") {
        return ToolOutput::error(format!(
            "nodes: unknown action \"{action}\"; use status, describe, which, invoke or run."
        ));
    }
    if action == "run" {
        let mut exec_args = json!({"command": args["command"], "host": "node"});
        if let Some(node) = args.get("node") {
            exec_args["node"] = node.clone();
        }
        return super::exec::run(&exec_args, call_id, cx).await;
    }
    let Some(wanted) = args["node"].as_str().filter(|s| !s.trim().is_empty()) else {
        return ToolOutput::error(format!("nodes action={action}: `node` is required."));
    };
    let Some(node) = find_node(&nodes, wanted) else {
        return ToolOutput::error(format!("nodes action={action}: unknown node \"{wanted}\"."));
    };
    if action == "describe" {
        return ToolOutput::ok(node.row.to_string());
    }
    if !node.connected {
        return ToolOutput::error(format!("nodes action={action}: node not connected"));
    }
    let (command, params, timeout_ms) = if action == "which" {
        let bins: Vec<&str> = args["bins"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if bins.is_empty() {
            return ToolOutput::error("nodes action=which: `bins` is required (a list of names).");
        }
        (
            "system.which".to_owned(),
            json!({"bins": bins}),
            DEFAULT_INVOKE_TIMEOUT_MS,
        )
    } else {
        let Some(command) = args["invokeCommand"].as_str().filter(|c| !c.is_empty()) else {
            return ToolOutput::error("nodes action=invoke: `invokeCommand` is required.");
        };
        if command.starts_with("system.run") {
            return ToolOutput::error(
                "nodes action=invoke: system.run commands go through the exec tool (host \"node\").",
            );
        }
        let params = match args["invokeParamsJson"].as_str() {
            None | Some("") => json!({}),
            Some(text) => match serde_json::from_str(text) {
                Ok(v) => v,
                Err(e) => {
                    return ToolOutput::error(format!(
                        "nodes action=invoke: invokeParamsJson is not JSON ({e})."
                    ));
                }
            },
        };
        let timeout = args["invokeTimeoutMs"]
            .as_u64()
            .filter(|t| *t > 0)
            .unwrap_or(DEFAULT_INVOKE_TIMEOUT_MS);
        (command.to_owned(), params, timeout)
    };
    if !node.commands.contains(&command) {
        return ToolOutput::error(format!(
            "nodes action={action}: node {} does not allow {command}.",
            node.node_id
        ));
    }
    let outcome = cx
        .nodes
        .invoke(NodeCall {
            node_id: node.node_id.clone(),
            command,
            params,
            timeout_ms,
            idempotency_key: format!("{}:{call_id}", cx.run_id),
            session_key: cx.session_key.to_owned(),
        })
        .await;
    match outcome {
        Ok(payload) => ToolOutput::ok(payload.to_string()),
        Err(e) => ToolOutput::error(format!("nodes action={action}: {}", describe_failure(&e))),
    }
}
