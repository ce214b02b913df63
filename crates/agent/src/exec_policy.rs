//! The gateway's own exec approvals policy (`exec.approvals.get` / `exec.approvals.set`):
//! OpenClaw's exec approvals document, `{version: 1, socket: {path, token}, defaults:
//! {security, ask, askFallback, autoAllowSkills}, agents: {<id>: {…, allowlist}}}`, kept in
//! `<state dir>/exec-approvals.json` (mode 0600, replaced whole and durably) and edited with
//! the hash of the version the editor read (`baseHash`), so that two editors cannot overwrite
//! each other unseen.
//!
//! The `exec` tool applies it as OpenClaw's gateway does on the node path: the agent's
//! `security` and `ask` are floors over what the tool asks for (`full`, `off`) — `deny` refuses
//! before the node is asked, `ask: always` has an operator approve every command before it
//! runs — and both go to the node's `system.run.prepare`; the node's own policy (its own
//! document, `exec.approvals.node.*`) applies on top, on the node.

use clawgate_config::exec_approvals::{
    self as approvals, ApprovalsError, ApprovalsStore, Policy, Snapshot,
};
use serde_json::{Value, json};
use std::path::Path;

/// Why a read or an edit of the policy failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ExecPolicyError {
    /// The caller's request is wrong or stale; the message says what to do.
    #[error("{0}")]
    Invalid(String),
    /// The document could not be read or written.
    #[error("{0}")]
    Storage(String),
}

const BASE_HASH_REQUIRED: &str =
    "exec approvals base hash required; re-run exec.approvals.get and retry";
const CHANGED: &str = "exec approvals changed since last load; re-run exec.approvals.get and retry";

pub(crate) struct ExecPolicy {
    store: ApprovalsStore,
    /// The document as last read or written, read on first use. Edits go through
    /// [`ExecPolicy::set`], one at a time under this lock.
    current: tokio::sync::Mutex<Option<Snapshot>>,
}

impl ExecPolicy {
    pub fn new(state_dir: &Path) -> ExecPolicy {
        ExecPolicy {
            store: ApprovalsStore::new(state_dir),
            current: tokio::sync::Mutex::new(None),
        }
    }

    /// Runs `f` on the document store on a blocking-pool thread (it reads and writes files).
    async fn on_disk<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ApprovalsStore) -> Result<T, ApprovalsError> + Send + 'static,
    ) -> Result<T, ExecPolicyError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| ExecPolicyError::Storage(format!("exec approvals: {e}")))?
            .map_err(|e| match e {
                ApprovalsError::Invalid(m) => ExecPolicyError::Invalid(m),
                ApprovalsError::Storage(m) => ExecPolicyError::Storage(m),
            })
    }

    /// `exec.approvals.get`: the document (created with its socket path and token when there
    /// is none, as OpenClaw does), without the token, with the defaults it resolves to.
    pub async fn get(&self) -> Result<Value, ExecPolicyError> {
        let mut current = self.current.lock().await;
        let snapshot = self.on_disk(ApprovalsStore::ensure).await?;
        let payload = self.payload(&snapshot);
        *current = Some(snapshot);
        Ok(payload)
    }

    /// `exec.approvals.set {file, baseHash}`: replaces the document when `baseHash` is the
    /// hash of the current one (it may be left out while there is none). The socket path and
    /// token are kept unless `file` sets them.
    pub async fn set(&self, params: &Value) -> Result<Value, ExecPolicyError> {
        let mut current = self.current.lock().await;
        let on_disk = self.on_disk(ApprovalsStore::read).await?;
        let base_hash = params
            .get("baseHash")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|h| !h.is_empty());
        match (on_disk.exists, base_hash) {
            (false, Some(h)) if h != on_disk.hash => {
                return Err(ExecPolicyError::Invalid(CHANGED.into()));
            }
            (true, None) => return Err(ExecPolicyError::Invalid(BASE_HASH_REQUIRED.into())),
            (true, Some(h)) if h != on_disk.hash => {
                return Err(ExecPolicyError::Invalid(CHANGED.into()));
            }
            _ => {}
        }
        let mut edit = json!({"file": params.get("file").cloned().unwrap_or(Value::Null)});
        if on_disk.exists {
            edit["baseHash"] = json!(on_disk.hash);
        }
        let written = self.on_disk(move |store| store.set(&edit)).await?;
        let payload = self.payload(&written);
        *current = Some(written);
        Ok(payload)
    }

    /// The policy `exec` applies for `agent_id`. An unreadable document is an error (the
    /// command is refused), never a silent fall back to `full`.
    pub async fn for_agent(&self, agent_id: &str) -> Result<Policy, ExecPolicyError> {
        let mut current = self.current.lock().await;
        if current.is_none() {
            *current = Some(self.on_disk(ApprovalsStore::read).await?);
        }
        let file = current.as_ref().map_or(&Value::Null, |s| &s.file);
        Ok(approvals::resolve_policy(file, Some(agent_id)))
    }

    fn payload(&self, snapshot: &Snapshot) -> Value {
        let mut payload = self.store.redacted(snapshot);
        let defaults = approvals::resolve_policy(
            &json!({"defaults": snapshot.file.get("defaults").cloned().unwrap_or(Value::Null)}),
            None,
        );
        payload["resolvedDefaults"] = json!({
            "security": defaults.security.as_str(),
            "ask": defaults.ask.as_str(),
            "askFallback": defaults.ask_fallback.as_str(),
            "autoAllowSkills": defaults.auto_allow_skills,
        });
        payload
    }
}

/// The checks of OpenClaw's `ExecApprovalsSetParamsSchema` that matter here, in its words:
/// `{file: {version: 1, …}, baseHash?: non-empty string}` and nothing else.
pub fn check_set_params(params: &Value) -> Result<(), String> {
    let Some(obj) = params.as_object() else {
        return Err("must be object".into());
    };
    if let Some(extra) = obj.keys().find(|k| *k != "file" && *k != "baseHash") {
        return Err(format!("at root: unexpected property '{extra}'"));
    }
    let Some(file) = obj.get("file") else {
        return Err("must have required property 'file'".into());
    };
    if !file.is_object() {
        return Err("at /file: must be object".into());
    }
    if file.get("version") != Some(&json!(1)) {
        return Err("at /file/version: must be equal to constant".into());
    }
    match obj.get("baseHash") {
        None => Ok(()),
        Some(Value::String(h)) if !h.is_empty() => Ok(()),
        Some(Value::String(_)) => Err("at /baseHash: must NOT have fewer than 1 characters".into()),
        Some(_) => Err("at /baseHash: must be string".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_set_needs_the_hash_of_what_it_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let policy = ExecPolicy::new(dir.path());
        let first = policy.get().await.unwrap();
        assert_eq!(first["exists"], true);
        assert!(first["file"]["socket"].get("token").is_none(), "{first}");
        assert_eq!(
            first["resolvedDefaults"],
            json!({"security": "full", "ask": "off", "askFallback": "deny", "autoAllowSkills": false})
        );
        let file = json!({"version": 1, "defaults": {"security": "deny"}, "agents": {}});
        let err = policy.set(&json!({"file": file})).await.unwrap_err();
        assert_eq!(err.to_string(), BASE_HASH_REQUIRED);
        let err = policy
            .set(&json!({"file": file, "baseHash": "stale"}))
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), CHANGED);
        let set = policy
            .set(&json!({"file": file, "baseHash": first["hash"]}))
            .await
            .unwrap();
        assert_eq!(set["resolvedDefaults"]["security"], "deny");
        assert_ne!(set["hash"], first["hash"]);
        assert_eq!(
            set["file"]["socket"], first["file"]["socket"],
            "the socket is kept"
        );
        assert_eq!(
            policy.for_agent("main").await.unwrap().security,
            approvals::Security::Deny
        );
        // Read back by a new process: the same document.
        let again = ExecPolicy::new(dir.path()).get().await.unwrap();
        assert_eq!(again["hash"], set["hash"]);
    }

    #[test]
    fn set_params_are_checked_like_openclaw_does() {
        let file = json!({"version": 1});
        assert_eq!(check_set_params(&json!({"file": file})), Ok(()));
        assert_eq!(
            check_set_params(&json!({})).unwrap_err(),
            "must have required property 'file'"
        );
        assert_eq!(
            check_set_params(&json!({"file": file, "x": 1})).unwrap_err(),
            "at root: unexpected property 'x'"
        );
        assert_eq!(
            check_set_params(&json!({"file": {"version": 2}})).unwrap_err(),
            "at /file/version: must be equal to constant"
        );
        assert!(check_set_params(&json!({"file": file, "baseHash": ""})).is_err());
    }
}
