//! The agent runtime's settings: `agents.defaults.{maxConcurrent, timeoutSeconds}`,
//! `messages.queue.mode`, `session.dmScope` and `tools.exec.node`, with OpenClaw's meanings.

use crate::error::ConfigError;
use crate::gateway_config::Reader;
use serde_json::{Map, Value};

/// The agent settings clawgate reads; `None` where the file says nothing (the runtime's
/// defaults apply).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentConfig {
    /// `agents.defaults.maxConcurrent`: runs at once across sessions.
    pub max_concurrent: Option<u64>,
    /// `agents.defaults.timeoutSeconds`: the longest one run may take.
    pub timeout_seconds: Option<u64>,
    /// `messages.queue.mode`: `steer`, `followup`, `collect` or `interrupt`.
    pub queue_mode: Option<String>,
    /// `session.dmScope`: `main`, `per-peer`, `per-channel-peer`, `per-account-channel-peer`.
    pub dm_scope: Option<String>,
    /// `tools.exec.node`: the node `exec` uses when a call names none.
    pub exec_node: Option<String>,
}

const QUEUE_MODES: &[&str] = &["steer", "followup", "collect", "interrupt", "queue"];
const DM_SCOPES: &[&str] = &[
    "main",
    "per-peer",
    "per-channel-peer",
    "per-account-channel-peer",
];

fn section<'v>(root: &'v Map<String, Value>, path: &[&str]) -> Option<&'v Map<String, Value>> {
    let mut at = root;
    for name in path {
        at = at.get(*name)?.as_object()?;
    }
    Some(at)
}

fn one_of(
    r: &Reader<'_>,
    parent: Option<&Map<String, Value>>,
    name: &str,
    key: &str,
    allowed: &[&str],
) -> Result<Option<String>, ConfigError> {
    let Some(parent) = parent else {
        return Ok(None);
    };
    let value = r.string(parent, name, key)?;
    match value {
        Some(v) if !allowed.contains(&v.as_str()) => Err(r.invalid(
            key,
            format!("{key} must be one of {} (got \"{v}\")", allowed.join(", ")),
        )),
        other => Ok(other),
    }
}

pub(crate) fn read_agent(
    r: &Reader<'_>,
    root: &Map<String, Value>,
) -> Result<AgentConfig, ConfigError> {
    let defaults = section(root, &["agents", "defaults"]);
    let mut cfg = AgentConfig::default();
    if let Some(d) = defaults {
        cfg.max_concurrent = r.int(d, "maxConcurrent", "agents.defaults.maxConcurrent", 1, 256)?;
        cfg.timeout_seconds = r.int(
            d,
            "timeoutSeconds",
            "agents.defaults.timeoutSeconds",
            1,
            365 * 24 * 3600,
        )?;
    }
    cfg.queue_mode = one_of(
        r,
        section(root, &["messages", "queue"]),
        "mode",
        "messages.queue.mode",
        QUEUE_MODES,
    )?;
    cfg.dm_scope = one_of(
        r,
        section(root, &["session"]),
        "dmScope",
        "session.dmScope",
        DM_SCOPES,
    )?;
    if let Some(exec) = section(root, &["tools", "exec"]) {
        cfg.exec_node = r.string(exec, "node", "tools.exec.node")?;
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use crate::LoadedConfig;
    use serde_json::json;
    use std::path::Path;

    fn load(doc: serde_json::Value) -> Result<super::AgentConfig, String> {
        LoadedConfig::from_value(Path::new("/t/openclaw.json"), doc, &|_| None)
            .map(|l| l.agent)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn agent_keys_are_typed_and_bad_values_name_the_key() {
        let cfg = load(json!({
            "agents": {"defaults": {"maxConcurrent": 2, "timeoutSeconds": 60}},
            "messages": {"queue": {"mode": "interrupt"}},
            "session": {"dmScope": "per-channel-peer"},
            "tools": {"exec": {"node": "build box"}},
        }))
        .unwrap();
        assert_eq!(cfg.max_concurrent, Some(2));
        assert_eq!(cfg.timeout_seconds, Some(60));
        assert_eq!(cfg.queue_mode.as_deref(), Some("interrupt"));
        assert_eq!(cfg.dm_scope.as_deref(), Some("per-channel-peer"));
        assert_eq!(cfg.exec_node.as_deref(), Some("build box"));
        assert_eq!(load(json!({})).unwrap(), super::AgentConfig::default());

        let err = load(json!({"messages": {"queue": {"mode": "later"}}})).unwrap_err();
        assert!(
            err.contains("messages.queue.mode must be one of steer, followup"),
            "{err}"
        );
        let err = load(json!({"agents": {"defaults": {"maxConcurrent": 0}}})).unwrap_err();
        assert!(
            err.contains("agents.defaults.maxConcurrent must be an integer between 1 and 256"),
            "{err}"
        );
    }
}
