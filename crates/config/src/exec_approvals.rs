//! Exec approvals: the policy document that decides whether `system.run` may run a command
//! (`security` full/allowlist/deny, `ask` off/on-miss/always, allowlists per agent), kept as
//! JSON in a state directory in the shape OpenClaw uses:
//! `{path, exists, file:{version:1, socket:{path}, defaults:{…}, agents:{…}}, hash}`. The node
//! host serves its own through `system.execApprovals.get/set`; the gateway keeps one for its
//! exec tool (`exec.approvals.get/set`). Matching commands against an allowlist is the node
//! host's.
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// File name inside the node state directory.
pub const APPROVALS_FILE: &str = "exec-approvals.json";
/// Socket path recorded in the document (the approval prompt socket of desktop apps).
pub const SOCKET_FILE: &str = "exec-approvals.sock";
/// Agent whose policy applies when a request names none.
pub const DEFAULT_AGENT_ID: &str = "main";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Security {
    Deny,
    Allowlist,
    Full,
}

impl Security {
    pub fn parse(v: Option<&str>) -> Option<Security> {
        match v?.trim() {
            "deny" => Some(Security::Deny),
            "allowlist" => Some(Security::Allowlist),
            "full" => Some(Security::Full),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Security::Deny => "deny",
            Security::Allowlist => "allowlist",
            Security::Full => "full",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ask {
    Off,
    OnMiss,
    Always,
}

impl Ask {
    pub fn parse(v: Option<&str>) -> Option<Ask> {
        match v?.trim() {
            "off" => Some(Ask::Off),
            "on-miss" => Some(Ask::OnMiss),
            "always" => Some(Ask::Always),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Ask::Off => "off",
            Ask::OnMiss => "on-miss",
            Ask::Always => "always",
        }
    }
}

/// One allowlist entry: a path glob or bare executable name, optionally narrowed by an
/// argument pattern (a regex over the arguments, or a generated `sha256:cwd-argv:v1:` hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowEntry {
    pub pattern: String,
    pub arg_pattern: Option<String>,
    pub source: Option<String>,
}

/// The effective policy for one agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub security: Security,
    pub ask: Ask,
    pub ask_fallback: Security,
    pub auto_allow_skills: bool,
    pub allowlist: Vec<AllowEntry>,
}

impl Policy {
    /// `policySnapshot` as `system.run.prepare` reports it and approved runs check it.
    pub fn snapshot(&self) -> Value {
        let mut rules: Vec<(String, Value)> = self
            .allowlist
            .iter()
            .map(|e| {
                let mut rule = Map::new();
                rule.insert("pattern".into(), json!(e.pattern));
                if let Some(a) = &e.arg_pattern {
                    rule.insert("argPattern".into(), json!(a));
                }
                if e.source.as_deref() == Some("allow-always") {
                    rule.insert("source".into(), json!("allow-always"));
                }
                let key = format!(
                    "{}\u{0}{}\u{0}{}",
                    e.pattern,
                    e.arg_pattern.as_deref().unwrap_or(""),
                    rule.get("source").and_then(Value::as_str).unwrap_or("")
                );
                (key, Value::Object(rule))
            })
            .collect();
        rules.sort_by(|a, b| a.0.cmp(&b.0));
        rules.dedup_by(|a, b| a.0 == b.0);
        json!({
            "security": self.security.as_str(),
            "ask": self.ask.as_str(),
            "askFallback": self.ask_fallback.as_str(),
            "autoAllowSkills": self.auto_allow_skills,
            "allowlistRules": rules.into_iter().map(|(_, r)| r).collect::<Vec<_>>(),
        })
    }
}

/// An approvals document as read from disk.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub exists: bool,
    /// Normalized document, socket token included.
    pub file: Value,
    /// SHA-256 of the stored bytes (`missing:<sha256("")>` when there is no file).
    pub hash: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApprovalsError {
    /// The caller's fault; the message already starts with `INVALID_REQUEST: `.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Storage(String),
}

/// Lower-case hex SHA-256 (the document hash, and allow-always argument patterns).
pub fn sha256_hex(bytes: &[u8]) -> String {
    clawgate_protocol::device::hex(&Sha256::digest(bytes))
}

fn str_field<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.get(key)?.as_str()
}

/// `{security?, ask?, askFallback?, autoAllowSkills?}` with unknown values dropped.
fn sanitize_policy(policy: Option<&Value>) -> Map<String, Value> {
    let mut out = Map::new();
    let Some(policy) = policy else {
        return out;
    };
    if let Some(s) = Security::parse(str_field(policy, "security")) {
        out.insert("security".into(), json!(s.as_str()));
    }
    if let Some(a) = Ask::parse(str_field(policy, "ask")) {
        out.insert("ask".into(), json!(a.as_str()));
    }
    if let Some(s) = Security::parse(str_field(policy, "askFallback")) {
        out.insert("askFallback".into(), json!(s.as_str()));
    }
    if let Some(b) = policy.get("autoAllowSkills").and_then(Value::as_bool) {
        out.insert("autoAllowSkills".into(), json!(b));
    }
    out
}

/// Allowlist entries: strings become `{pattern}`, blank patterns go, every entry gets an id,
/// `commandText` is stripped.
fn normalize_allowlist(list: &Value) -> Option<Value> {
    let items = list.as_array()?;
    let mut out = Vec::new();
    for item in items {
        let mut entry = match item {
            Value::String(s) if !s.trim().is_empty() => {
                let mut m = Map::new();
                m.insert("pattern".into(), json!(s.trim()));
                m
            }
            Value::Object(m)
                if m.get("pattern")
                    .and_then(Value::as_str)
                    .is_some_and(|p| !p.trim().is_empty()) =>
            {
                m.clone()
            }
            _ => continue,
        };
        entry.remove("commandText");
        if entry
            .get("id")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            entry.insert("id".into(), json!(uuid::Uuid::new_v4().to_string()));
        }
        out.push(Value::Object(entry));
    }
    (!out.is_empty()).then_some(Value::Array(out))
}

/// The stored shape: `{version:1, socket:{path?, token?}, defaults:{…}, agents:{…}}`. A legacy
/// `agents.default` is folded into `agents.main`.
pub fn normalize(file: &Value) -> Value {
    let socket = file.get("socket");
    let trimmed = |key: &str| {
        socket
            .and_then(|s| str_field(s, key))
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let mut socket_out = Map::new();
    if let Some(p) = trimmed("path") {
        socket_out.insert("path".into(), json!(p));
    }
    if let Some(t) = trimmed("token") {
        socket_out.insert("token".into(), json!(t));
    }
    let mut agents = file
        .get("agents")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if let Some(legacy) = agents.remove("default") {
        let merged = match agents.remove(DEFAULT_AGENT_ID) {
            Some(Value::Object(mut main)) => {
                if let Value::Object(legacy) = &legacy {
                    for (k, v) in legacy {
                        if k == "allowlist" {
                            let mut list = main
                                .get("allowlist")
                                .and_then(Value::as_array)
                                .cloned()
                                .unwrap_or_default();
                            list.extend(v.as_array().cloned().unwrap_or_default());
                            main.insert("allowlist".into(), Value::Array(list));
                        } else {
                            main.entry(k.clone()).or_insert_with(|| v.clone());
                        }
                    }
                }
                Value::Object(main)
            }
            _ => legacy,
        };
        agents.insert(DEFAULT_AGENT_ID.into(), merged);
    }
    for agent in agents.values_mut() {
        let Value::Object(map) = agent else {
            *agent = json!({});
            continue;
        };
        let policy = sanitize_policy(Some(&Value::Object(map.clone())));
        for key in ["security", "ask", "askFallback"] {
            match policy.get(key) {
                Some(v) => {
                    map.insert(key.into(), v.clone());
                }
                None => {
                    map.remove(key);
                }
            }
        }
        match map.get("allowlist").and_then(normalize_allowlist) {
            Some(list) => {
                map.insert("allowlist".into(), list);
            }
            None => {
                map.remove("allowlist");
            }
        }
    }
    json!({
        "version": 1,
        "socket": Value::Object(socket_out),
        "defaults": Value::Object(sanitize_policy(file.get("defaults"))),
        "agents": Value::Object(agents),
    })
}

fn allow_entries(agent: Option<&Value>) -> Vec<AllowEntry> {
    agent
        .and_then(|a| a.get("allowlist"))
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|e| {
                    let pattern = e.get("pattern")?.as_str()?.trim();
                    (!pattern.is_empty()).then(|| AllowEntry {
                        pattern: pattern.to_owned(),
                        arg_pattern: e
                            .get("argPattern")
                            .and_then(Value::as_str)
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned),
                        source: e.get("source").and_then(Value::as_str).map(str::to_owned),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The policy for `agent_id` (default `main`): the agent's own fields, then the `*` agent's,
/// then `defaults`, then full / off / deny / false. Allowlists of `*` and the agent combine.
pub fn resolve_policy(file: &Value, agent_id: Option<&str>) -> Policy {
    let defaults = file.get("defaults");
    let agents = file.get("agents");
    let agent = agents.and_then(|a| a.get(agent_id.unwrap_or(DEFAULT_AGENT_ID)));
    let wildcard = agents.and_then(|a| a.get("*"));
    let layered = |key: &str| {
        [agent, wildcard, defaults]
            .into_iter()
            .flatten()
            .find_map(|layer| str_field(layer, key))
    };
    let security = [agent, wildcard, defaults]
        .into_iter()
        .flatten()
        .find_map(|l| Security::parse(str_field(l, "security")))
        .unwrap_or(Security::Full);
    let ask = [agent, wildcard, defaults]
        .into_iter()
        .flatten()
        .find_map(|l| Ask::parse(str_field(l, "ask")))
        .unwrap_or(Ask::Off);
    let ask_fallback = Security::parse(layered("askFallback")).unwrap_or(Security::Deny);
    let auto_allow_skills = [agent, wildcard, defaults]
        .into_iter()
        .flatten()
        .find_map(|l| l.get("autoAllowSkills").and_then(Value::as_bool))
        .unwrap_or(false);
    let mut allowlist = allow_entries(wildcard);
    allowlist.extend(allow_entries(agent));
    Policy {
        security,
        ask,
        ask_fallback,
        auto_allow_skills,
        allowlist,
    }
}

/// The approvals document on disk.
#[derive(Debug, Clone)]
pub struct ApprovalsStore {
    path: PathBuf,
    socket_path: PathBuf,
}

impl ApprovalsStore {
    pub fn new(state_dir: &Path) -> Self {
        ApprovalsStore {
            path: state_dir.join(APPROVALS_FILE),
            socket_path: state_dir.join(SOCKET_FILE),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path as reported on the wire: `~/…` when under `$HOME`.
    pub fn display_path(&self) -> String {
        if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty())
            && let Ok(rest) = self.path.strip_prefix(Path::new(&home))
        {
            return format!("~/{}", rest.display());
        }
        self.path.display().to_string()
    }

    /// Reads the document. A missing file is an empty document with `exists:false`; an
    /// unreadable one is a storage error (the policy must never silently fall back to full).
    pub fn read(&self) -> Result<Snapshot, ApprovalsError> {
        match std::fs::read_to_string(&self.path) {
            Ok(raw) => {
                let parsed: Value = serde_json::from_str(&raw).map_err(|e| {
                    ApprovalsError::Storage(format!(
                        "exec approvals file {} is not valid JSON: {e}",
                        self.path.display()
                    ))
                })?;
                if !parsed.is_object() {
                    return Err(ApprovalsError::Storage(format!(
                        "exec approvals file {} is not a JSON object",
                        self.path.display()
                    )));
                }
                Ok(Snapshot {
                    exists: true,
                    file: normalize(&parsed),
                    hash: sha256_hex(raw.as_bytes()),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Snapshot {
                exists: false,
                file: normalize(&json!({"version": 1, "agents": {}})),
                hash: format!("missing:{}", sha256_hex(b"")),
            }),
            Err(e) => Err(ApprovalsError::Storage(format!(
                "reading {}: {e}",
                self.path.display()
            ))),
        }
    }

    /// Reads the document, creating it (empty policy, socket path and token) if missing.
    pub fn ensure(&self) -> Result<Snapshot, ApprovalsError> {
        let snapshot = self.read()?;
        if snapshot.exists {
            return Ok(snapshot);
        }
        let file = self.with_socket_defaults(snapshot.file, None);
        self.write(&file)
    }

    fn with_socket_defaults(&self, mut file: Value, current: Option<&Value>) -> Value {
        let pick = |key: &str| {
            file.pointer(&format!("/socket/{key}"))
                .and_then(Value::as_str)
                .or_else(|| current?.pointer(&format!("/socket/{key}"))?.as_str())
                .map(str::to_owned)
        };
        let path = pick("path").unwrap_or_else(|| self.socket_path.display().to_string());
        let token = pick("token").unwrap_or_else(generate_token);
        file["socket"] = json!({"path": path, "token": token});
        file
    }

    fn write(&self, file: &Value) -> Result<Snapshot, ApprovalsError> {
        let mut raw = serde_json::to_string_pretty(file)
            .map_err(|e| ApprovalsError::Storage(e.to_string()))?;
        raw.push('\n');
        clawgate_base::write_private(&self.path, raw.as_bytes()).map_err(|e| {
            ApprovalsError::Storage(format!("writing {}: {e}", self.path.display()))
        })?;
        Ok(Snapshot {
            exists: true,
            file: file.clone(),
            hash: sha256_hex(raw.as_bytes()),
        })
    }

    /// `system.execApprovals.set {file, baseHash}`: replaces the document if `baseHash` is
    /// the current hash (optional while no document exists). The socket path and token are
    /// kept unless the new document sets them.
    pub fn set(&self, params: &Value) -> Result<Snapshot, ApprovalsError> {
        let file = params
            .get("file")
            .filter(|f| f.is_object())
            .ok_or_else(|| {
                ApprovalsError::Invalid("INVALID_REQUEST: exec approvals file required".into())
            })?;
        let normalized = normalize(file);
        let current = self.read()?;
        let base_hash = params
            .get("baseHash")
            .and_then(Value::as_str)
            .map(str::trim)
            .unwrap_or("");
        let changed = || {
            ApprovalsError::Invalid(
                "INVALID_REQUEST: exec approvals changed; reload and retry".into(),
            )
        };
        if !current.exists {
            if !base_hash.is_empty() && base_hash != current.hash {
                return Err(changed());
            }
        } else if base_hash.is_empty() {
            return Err(ApprovalsError::Invalid(
                "INVALID_REQUEST: exec approvals base hash required; reload and retry".into(),
            ));
        } else if base_hash != current.hash {
            return Err(changed());
        }
        let next = self.with_socket_defaults(normalized, Some(&current.file));
        self.write(&next)
    }

    /// The wire view of a snapshot: socket token removed.
    pub fn redacted(&self, snapshot: &Snapshot) -> Value {
        let mut file = snapshot.file.clone();
        if let Some(obj) = file.as_object_mut() {
            let path = obj
                .get("socket")
                .and_then(|s| s.get("path"))
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_owned);
            match path {
                Some(p) => {
                    obj.insert("socket".into(), json!({ "path": p }));
                }
                None => {
                    obj.remove("socket");
                }
            }
        }
        json!({
            "path": self.display_path(),
            "exists": snapshot.exists,
            "file": file,
            "hash": snapshot.hash,
        })
    }
}

fn generate_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    clawgate_protocol::device::b64url(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_full_and_off() {
        let p = resolve_policy(&normalize(&json!({"version": 1})), None);
        assert_eq!(p.security, Security::Full);
        assert_eq!(p.ask, Ask::Off);
        assert_eq!(p.ask_fallback, Security::Deny);
        assert_eq!(
            p.snapshot(),
            json!({"security":"full","ask":"off","askFallback":"deny","autoAllowSkills":false,"allowlistRules":[]})
        );
    }

    #[test]
    fn agent_over_wildcard_over_defaults() {
        let file = normalize(&json!({
            "defaults": {"security": "allowlist", "ask": "bogus"},
            "agents": {
                "*": {"ask": "on-miss", "allowlist": ["/usr/bin/*"]},
                "main": {"security": "full", "allowlist": [{"pattern": "ls"}]},
                "ops": {}
            }
        }));
        let main = resolve_policy(&file, None);
        assert_eq!((main.security, main.ask), (Security::Full, Ask::OnMiss));
        assert_eq!(main.allowlist.len(), 2);
        let ops = resolve_policy(&file, Some("ops"));
        assert_eq!((ops.security, ops.ask), (Security::Allowlist, Ask::OnMiss));
        // Every allowlist entry got an id; the bogus ask was dropped.
        assert!(file.pointer("/agents/main/allowlist/0/id").is_some());
        assert_eq!(file["defaults"], json!({"security": "allowlist"}));
    }

    #[test]
    fn store_round_trip_and_base_hash() {
        let dir = tempfile::tempdir().unwrap();
        let store = ApprovalsStore::new(dir.path());
        let missing = store.read().unwrap();
        assert!(!missing.exists);
        assert!(missing.hash.starts_with("missing:"));
        let got = store.ensure().unwrap();
        assert!(got.exists);
        let view = store.redacted(&got);
        assert_eq!(view["file"]["version"], 1);
        assert_eq!(view["file"]["defaults"], json!({}));
        assert!(view["file"]["socket"]["path"].is_string());
        assert!(view["file"]["socket"].get("token").is_none());
        let token = got.file["socket"]["token"].as_str().unwrap().to_owned();
        let mode = std::fs::metadata(store.path()).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );

        let new_file =
            json!({"version":1,"defaults":{"security":"allowlist","ask":"off"},"agents":{}});
        let err = store.set(&json!({"file": new_file})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "INVALID_REQUEST: exec approvals base hash required; reload and retry"
        );
        let err = store
            .set(&json!({"file": new_file, "baseHash": "nope"}))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "INVALID_REQUEST: exec approvals changed; reload and retry"
        );
        let next = store
            .set(&json!({"file": new_file, "baseHash": got.hash}))
            .unwrap();
        assert_ne!(next.hash, got.hash);
        assert_eq!(next.file["socket"]["token"], token.as_str());
        assert_eq!(store.read().unwrap().hash, next.hash);
        let p = resolve_policy(&store.read().unwrap().file, None);
        assert_eq!(p.security, Security::Allowlist);
        let err = store.set(&json!({"baseHash": next.hash})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "INVALID_REQUEST: exec approvals file required"
        );
    }
}
