//! The agent's tools: `exec` (a shell command on a node) and `nodes` (status, describe,
//! which, invoke, run). Both reach nodes through [`NodeAccess`], which the gateway
//! implements over its node registry and `node.invoke`.
//!
//! A tool never fails the run: whatever goes wrong becomes an error result the model reads,
//! naming the fix where there is one.

mod exec;
mod nodes;

use clawgate_llm::{ToolCall, ToolSpec};
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;

/// A node as the tools see it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeInfo {
    pub node_id: String,
    pub display_name: Option<String>,
    pub remote_ip: Option<String>,
    pub platform: Option<String>,
    /// The commands it may be invoked with (declared, approved and allowed).
    pub commands: Vec<String>,
    pub connected: bool,
    /// Its `node.list` row, for `nodes status` / `describe`.
    pub row: Value,
}

/// One command for one node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeCall {
    pub node_id: String,
    pub command: String,
    pub params: Value,
    pub timeout_ms: u64,
    pub idempotency_key: String,
    pub session_key: String,
}

/// Why a node call failed: the wire error's code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCallError {
    pub code: String,
    pub message: String,
}

pub type NodeFuture<'a> = Pin<Box<dyn Future<Output = Result<Value, NodeCallError>> + Send + 'a>>;

/// How the runtime reaches nodes.
pub trait NodeAccess: Send + Sync + 'static {
    /// Every known node, connected ones first.
    fn nodes(&self) -> Vec<NodeInfo>;
    /// Invokes a command and returns the node's payload.
    fn invoke(&self, call: NodeCall) -> NodeFuture<'_>;
}

/// What a tool call produced, for the transcript and the model.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ToolOutput {
    pub text: String,
    pub is_error: bool,
}

impl ToolOutput {
    pub fn ok(text: impl Into<String>) -> Self {
        ToolOutput {
            text: text.into(),
            is_error: false,
        }
    }

    pub fn error(text: impl Into<String>) -> Self {
        ToolOutput {
            text: text.into(),
            is_error: true,
        }
    }
}

/// What a tool call needs besides its arguments.
pub(crate) struct ToolContext<'a> {
    pub nodes: &'a dyn NodeAccess,
    /// Where a command waits for an operator's approval, and where that is announced.
    pub approvals: &'a crate::approvals::Approvals,
    /// The gateway's exec approvals policy.
    pub policy: &'a crate::exec_policy::ExecPolicy,
    pub events: &'a dyn crate::EventSink,
    pub session_key: &'a str,
    pub run_id: &'a str,
    pub agent_id: &'a str,
    /// `tools.exec.node`: the node `exec` uses when the call names none.
    pub default_node: Option<&'a str>,
}

/// The tools offered to the model.
pub(crate) fn specs() -> Vec<ToolSpec> {
    vec![exec::spec(), nodes::spec()]
}

/// Runs one tool call.
pub(crate) async fn run(call: &ToolCall, cx: &ToolContext<'_>) -> ToolOutput {
    match call.name.as_str() {
        "exec" => exec::run(&call.arguments, &call.id, cx).await,
        "nodes" => nodes::run(&call.arguments, &call.id, cx).await,
        other => ToolOutput::error(format!(
            "Tool {other} not found. Available tools: exec, nodes."
        )),
    }
}

/// Finds the node a call means: by exact id, remote IP or display name (case and spacing
/// ignored), then by an id prefix of at least 6 characters; connected nodes first.
pub(crate) fn find_node<'a>(nodes: &'a [NodeInfo], wanted: &str) -> Option<&'a NodeInfo> {
    let wanted = wanted.trim();
    let norm = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    };
    let by = |pred: &dyn Fn(&NodeInfo) -> bool| {
        nodes.iter().filter(|n| pred(n)).max_by_key(|n| n.connected)
    };
    by(&|n| n.node_id == wanted)
        .or_else(|| by(&|n| n.remote_ip.as_deref() == Some(wanted)))
        .or_else(|| {
            by(&|n| {
                n.display_name
                    .as_deref()
                    .is_some_and(|d| norm(d) == norm(wanted))
            })
        })
        .or_else(|| {
            (wanted.len() >= 6)
                .then(|| by(&|n| n.node_id.starts_with(wanted)))
                .flatten()
        })
}

/// How a node's failure reads in a tool result.
pub(crate) fn describe_failure(e: &NodeCallError) -> String {
    if e.message.is_empty() {
        e.code.clone()
    } else {
        format!("{}: {}", e.code, e.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn node(id: &str, name: &str, connected: bool) -> NodeInfo {
        NodeInfo {
            node_id: id.into(),
            display_name: Some(name.into()),
            remote_ip: Some("10.0.0.5".into()),
            platform: Some("linux".into()),
            commands: vec!["system.run".into(), "system.which".into()],
            connected,
            row: json!({"nodeId": id}),
        }
    }

    #[test]
    fn a_node_is_found_by_id_address_name_or_prefix() {
        let nodes = vec![
            node("abcdef123456", "Build Box", false),
            node("abcdef999999", "Laptop", true),
        ];
        assert_eq!(
            find_node(&nodes, "abcdef123456").unwrap().node_id,
            "abcdef123456"
        );
        assert_eq!(
            find_node(&nodes, "10.0.0.5").unwrap().node_id,
            "abcdef999999",
            "connected first"
        );
        assert_eq!(
            find_node(&nodes, "  build   box ").unwrap().node_id,
            "abcdef123456"
        );
        assert_eq!(
            find_node(&nodes, "abcdef9").unwrap().node_id,
            "abcdef999999"
        );
        assert!(
            find_node(&nodes, "abc").is_none(),
            "short prefixes never match"
        );
        assert!(find_node(&nodes, "zzz").is_none());
    }
}
