//! `exec`: a shell command on a node (`host: "node"`), through the node's `system.run` as
//! `["/bin/sh", "-lc", command]`. The node's own exec policy and approvals apply there.
//!
//! The result reads as OpenClaw's: `Node: <nodeId>` on the first line, then the command's
//! output; a failed or refused command is an error result that says why.

use super::{NodeCall, NodeInfo, ToolContext, ToolOutput, describe_failure, find_node};
use clawgate_config::exec_approvals::{Ask, Policy, Security};
use clawgate_llm::ToolSpec;
use serde_json::{Value, json};

/// How long a command may run when the call gives no `timeout` (seconds; OpenClaw's
/// `tools.exec.timeoutSec` default).
const DEFAULT_TIMEOUT_SECS: u64 = 1800;
/// The invoke's budget beyond the command's own timeout, for the node to report back.
const REPORT_MARGIN_MS: u64 = 5_000;
/// How long a node may take to prepare a run (OpenClaw's budget).
const PREPARE_TIMEOUT_MS: u64 = 15_000;
/// What a node answers `system.run` with when its exec policy wants an approval first.
const APPROVAL_REQUIRED: &str = "SYSTEM_RUN_DENIED: approval required";

pub(super) fn spec() -> ToolSpec {
    ToolSpec {
        name: "exec".into(),
        description: "Run a shell command on a paired node (host \"node\"). Returns the node id, then the command's output (stdout and stderr). Use `node` to pick a node by id or name when several are connected.".into(),
        parameters: json!({
            "type": "object",
            "properties": {
                "command": {"type": "string", "description": "Shell command to execute"},
                "host": {"type": "string", "enum": ["node"], "description": "Where to run it: a paired node"},
                "node": {"type": "string", "description": "Node id, name or IP address (when several are connected)"},
                "workdir": {"type": "string", "description": "Working directory on the node"},
                "env": {"type": "object", "additionalProperties": {"type": "string"}},
                "timeout": {"type": "number", "description": "Timeout in seconds"}
            },
            "required": ["command"]
        }),
    }
}

const NO_NODE: &str = "exec host=node requires a connected node that supports system.run (none available). Pair a node on the machine that should run commands: `clawgate node run --host <gateway>` (or `openclaw node run`), then approve it with `clawgate nodes approve`.";

/// The node `exec` runs on: the one named (by the call, else `tools.exec.node`), or the only
/// connected node that can run commands.
fn pick<'a>(nodes: &'a [NodeInfo], wanted: Option<&str>) -> Result<&'a NodeInfo, String> {
    let runs = |n: &&NodeInfo| n.connected && n.commands.iter().any(|c| c == "system.run");
    if let Some(wanted) = wanted {
        let Some(node) = find_node(nodes, wanted) else {
            return Err(format!(
                "exec host=node: no node matches \"{wanted}\". Known nodes: {}.",
                known(nodes)
            ));
        };
        if !node.connected {
            return Err(format!(
                "exec host=node: node {} is not connected; start its node host again (`clawgate node run`).",
                label(node)
            ));
        }
        if !runs(&node) {
            return Err(format!(
                "exec host=node: node {} does not support system.run (it was not declared, approved or allowed: see `clawgate nodes describe {}`).",
                label(node),
                node.node_id
            ));
        }
        return Ok(node);
    }
    let eligible: Vec<&NodeInfo> = nodes.iter().filter(runs).collect();
    match eligible.as_slice() {
        [] => Err(NO_NODE.to_owned()),
        [one] => Ok(one),
        many => Err(format!(
            "exec host=node: {} connected nodes support system.run; say which with `node` ({}), or set tools.exec.node in the config.",
            many.len(),
            many.iter().map(|n| label(n)).collect::<Vec<_>>().join(", ")
        )),
    }
}

fn label(n: &NodeInfo) -> String {
    match &n.display_name {
        Some(name) => format!("\"{name}\" ({})", n.node_id),
        None => n.node_id.clone(),
    }
}

fn known(nodes: &[NodeInfo]) -> String {
    if nodes.is_empty() {
        return "none".into();
    }
    nodes.iter().map(label).collect::<Vec<_>>().join(", ")
}

pub(super) async fn run(args: &Value, call_id: &str, cx: &ToolContext<'_>) -> ToolOutput {
    let Some(command) = args["command"].as_str().filter(|c| !c.trim().is_empty()) else {
        return ToolOutput::error("exec: `command` is required (a shell command string).");
    };
    if let Some(host) = args["host"].as_str().filter(|h| *h != "node") {
        return ToolOutput::error(format!(
            "exec host={host} is not available: this gateway runs commands on paired nodes only. Call exec with host \"node\"."
        ));
    }
    // The gateway's own exec approvals policy for this agent (`exec.approvals.set`).
    let policy = match cx.policy.for_agent(cx.agent_id).await {
        Ok(p) => p,
        Err(e) => {
            return ToolOutput::error(format!(
                "exec denied: the gateway's exec approvals could not be read ({e}); fix or remove the file, or set a new policy with exec.approvals.set"
            ));
        }
    };
    let gate = match gate(&policy) {
        Ok(g) => g,
        Err(denied) => return ToolOutput::error(denied),
    };
    let nodes = cx.nodes.nodes();
    let wanted = args["node"].as_str().or(cx.default_node);
    let node = match pick(&nodes, wanted) {
        Ok(n) => n,
        Err(e) => return ToolOutput::error(e),
    };
    let timeout_secs = args["timeout"]
        .as_f64()
        .filter(|t| t.is_finite() && *t > 0.0)
        .map_or(DEFAULT_TIMEOUT_SECS, |t| t.ceil() as u64);
    let timeout_ms = timeout_secs.saturating_mul(1000);
    let argv = json!(["/bin/sh", "-lc", command]);
    let workdir = args["workdir"].as_str();
    let env = args["env"].as_object().cloned().map(Value::Object);
    let invoke = |command: &str, params: Value, timeout_ms: u64, key: &str| {
        cx.nodes.invoke(NodeCall {
            node_id: node.node_id.clone(),
            command: command.to_owned(),
            params,
            timeout_ms,
            idempotency_key: format!("{}:{call_id}:{key}", cx.run_id),
            session_key: cx.session_key.to_owned(),
        })
    };
    let mut params = json!({
        "command": argv,
        "rawCommand": command,
        "timeoutMs": timeout_ms,
        "agentId": cx.agent_id,
        "sessionKey": cx.session_key,
        "runId": cx.run_id,
    });
    if let Some(cwd) = workdir {
        params["cwd"] = json!(cwd);
    }
    if let Some(env) = &env {
        params["env"] = env.clone();
    }
    // A node that can prepare runs pins the command first (its resolved argv and working
    // directory, checked against its exec policy), and runs exactly that plan, as OpenClaw's
    // exec does.
    if node.commands.iter().any(|c| c == "system.run.prepare") {
        let mut prepare = json!({
            "command": argv,
            "rawCommand": command,
            "security": policy.security.as_str(),
            "ask": policy.ask.as_str(),
            "agentId": cx.agent_id,
            "sessionKey": cx.session_key,
        });
        if let Some(cwd) = workdir {
            prepare["cwd"] = json!(cwd);
        }
        if let Some(env) = &env {
            prepare["env"] = env.clone();
        }
        let plan = match invoke("system.run.prepare", prepare, PREPARE_TIMEOUT_MS, "prepare").await
        {
            Ok(payload) => payload["plan"].clone(),
            Err(e) => {
                return ToolOutput::error(format!(
                    "Node: {}\nexec failed while preparing the command: {}",
                    node.node_id,
                    describe_failure(&e)
                ));
            }
        };
        let Some(plan_argv) = plan["argv"].as_array().filter(|a| !a.is_empty()) else {
            return ToolOutput::error(format!(
                "Node: {}\nexec failed: the node's system.run.prepare answered without a plan",
                node.node_id
            ));
        };
        params["command"] = Value::Array(plan_argv.clone());
        if let Some(text) = plan["commandText"].as_str() {
            params["rawCommand"] = json!(text);
        }
        if let Some(cwd) = plan["cwd"].as_str() {
            params["cwd"] = json!(cwd);
        }
        params["systemRunPlan"] = plan;
    }
    if gate == Gate::Ask && params.get("systemRunPlan").is_none() {
        return ToolOutput::error(format!(
            "Node: {}\nexec denied: the gateway's exec approvals ask for an approval, which needs a node that supports system.run.prepare.",
            node.node_id
        ));
    }
    let budget = timeout_ms.saturating_add(REPORT_MARGIN_MS);
    // The gateway's policy wants an operator to approve first (before the node is asked to
    // run anything); the node's own policy may still ask too, below.
    if gate == Gate::Ask
        && let Err(refused) = approve(&mut params, command, &node.node_id, call_id, cx).await
    {
        return refused;
    }
    let approved = gate == Gate::Ask;
    let mut outcome = invoke("system.run", params.clone(), budget, "run").await;
    // The node's own policy asks for an approval: ask an operator, then run the same plan
    // approved (the node checks it is the plan that was prepared).
    if !approved
        && let Err(e) = &outcome
        && e.message.contains(APPROVAL_REQUIRED)
    {
        if let Err(refused) = approve(&mut params, command, &node.node_id, call_id, cx).await {
            return refused;
        }
        outcome = invoke("system.run", params, budget, "approved-run").await;
    }
    match outcome {
        Ok(payload) => render(&node.node_id, &payload),
        Err(e) => ToolOutput::error(format!(
            "Node: {}\nexec failed: {}",
            node.node_id,
            describe_failure(&e)
        )),
    }
}

/// What the gateway's policy lets `exec` do before the node's own policy has its say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    Run,
    /// An operator approves the command first.
    Ask,
}

/// OpenClaw's gateway-side floors on the node path: `deny` refuses; `ask: always` asks an
/// operator; `allowlist` is satisfied only by a `*` entry here (the gateway does not match
/// executables it cannot see; the node matches its own allowlist), so a command is a miss:
/// asked with `ask: on-miss`, refused with `ask: off`.
fn gate(policy: &Policy) -> Result<Gate, String> {
    if policy.security == Security::Deny {
        return Err("exec denied: host=node security=deny".into());
    }
    let allowlisted = policy.security != Security::Allowlist
        || policy
            .allowlist
            .iter()
            .any(|e| e.pattern.trim() == "*" && e.arg_pattern.is_none());
    match policy.ask {
        Ask::Always => Ok(Gate::Ask),
        _ if allowlisted => Ok(Gate::Run),
        Ask::OnMiss => Ok(Gate::Ask),
        Ask::Off => Err("exec denied: host=node allowlist miss (ask=off)".into()),
    }
}

/// Asks an operator to approve the prepared plan in `params` (`exec.approval.requested`,
/// answered with `exec.approval.resolve`) and marks `params` approved; the refusal as the
/// tool's result otherwise.
async fn approve(
    params: &mut Value,
    command: &str,
    node_id: &str,
    call_id: &str,
    cx: &ToolContext<'_>,
) -> Result<(), ToolOutput> {
    if params.get("systemRunPlan").is_none() {
        return Err(ToolOutput::error(format!(
            "Node: {node_id}\nexec denied: the node asks for an approval, which needs a node that supports system.run.prepare."
        )));
    }
    let request = json!({
        "command": command,
        "commandText": params["rawCommand"],
        "systemRunPlan": params["systemRunPlan"],
        "nodeId": node_id,
        "host": "node",
        "allowedDecisions": ["allow-once", "allow-always", "deny"],
        "agentId": cx.agent_id,
        "sessionKey": cx.session_key,
        "runId": cx.run_id,
        "toolCallId": call_id,
    });
    let decision = cx
        .approvals
        .ask(cx.events, request)
        .await
        .map_err(|refused| ToolOutput::error(format!("exec denied: {}", refused.reason())))?;
    params["approved"] = json!(true);
    params["approvalDecision"] = json!(decision.as_str());
    params["approvalSource"] = json!("operator");
    Ok(())
}

/// A `system.run` result (`{exitCode, timedOut, success, stdout, stderr, error}`) as text.
fn render(node_id: &str, payload: &Value) -> ToolOutput {
    let stdout = payload["stdout"].as_str().unwrap_or_default();
    let stderr = payload["stderr"].as_str().unwrap_or_default();
    let mut output = String::new();
    for part in [stdout, stderr] {
        if part.is_empty() {
            continue;
        }
        if !output.is_empty() && !output.ends_with('\n') {
            output.push('\n');
        }
        output.push_str(part);
    }
    let output = output.trim_end();
    let exit = payload["exitCode"].as_i64();
    let timed_out = payload["timedOut"].as_bool() == Some(true);
    let success = payload["success"]
        .as_bool()
        .unwrap_or(exit == Some(0) && !timed_out);
    let mut text = format!("Node: {node_id}\n");
    text.push_str(if output.is_empty() {
        "(no output)"
    } else {
        output
    });
    if timed_out {
        text.push_str("\n\nCommand timed out.");
    } else if !success {
        match (exit, payload["error"].as_str()) {
            (_, Some(e)) if !e.is_empty() => text.push_str(&format!("\n\nCommand failed: {e}")),
            (Some(code), _) => text.push_str(&format!("\n\nCommand exited with code {code}.")),
            _ => text.push_str("\n\nCommand failed."),
        }
    }
    ToolOutput {
        text,
        is_error: !success,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::node;
    use super::*;

    #[test]
    fn one_eligible_node_is_picked_several_need_a_name() {
        let mut offline = node("n3", "Old", false);
        offline.commands.clear();
        let nodes = vec![node("n1", "A", true), node("n2", "B", true), offline];
        let err = pick(&nodes, None).unwrap_err();
        assert!(
            err.contains("2 connected nodes") && err.contains("tools.exec.node"),
            "{err}"
        );
        assert_eq!(pick(&nodes, Some("b")).unwrap().node_id, "n2");
        let err = pick(&nodes, Some("old")).unwrap_err();
        assert!(err.contains("not connected"), "{err}");
        assert_eq!(pick(&nodes[..1], None).unwrap().node_id, "n1");
        assert_eq!(pick(&[], None).unwrap_err(), NO_NODE);
        assert!(NO_NODE.starts_with(
            "exec host=node requires a connected node that supports system.run (none available)"
        ));
    }

    #[test]
    fn results_read_node_first_then_output() {
        let ok = render(
            "n1",
            &json!({"exitCode": 0, "timedOut": false, "success": true, "stdout": "Linux\n", "stderr": "", "error": null}),
        );
        assert_eq!(ok, ToolOutput::ok("Node: n1\nLinux"));
        let failed = render(
            "n1",
            &json!({"exitCode": 2, "timedOut": false, "success": false, "stdout": "", "stderr": "ls: nope\n"}),
        );
        assert!(failed.is_error);
        assert_eq!(
            failed.text,
            "Node: n1\nls: nope\n\nCommand exited with code 2."
        );
        let timed_out = render(
            "n1",
            &json!({"exitCode": 124, "timedOut": true, "success": false}),
        );
        assert_eq!(
            timed_out.text,
            "Node: n1\n(no output)\n\nCommand timed out."
        );
    }
}
