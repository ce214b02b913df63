//! The commands this node host serves, one `node.invoke.request` at a time:
//! `system.run`, `system.run.prepare`, `system.which`, `system.execApprovals.get/set`.
//! Each handler returns the `node.event`s to send first and the invoke result; error codes
//! and messages are those the OpenClaw node host sends (captures show e.g.
//! `INVALID_REQUEST` / `Error: INVALID_REQUEST: bins required`).
//!
//! None of these commands streams. The OpenClaw 2026.9.6 node host sends `node.invoke.progress`
//! only for duplex plugin commands (with `enableDuplexPluginCommands`/agent runs) and
//! `desktop.stream`, and routes `node.invoke.input` only to those; for `system.run` and the
//! rest, output comes whole in the result, the child's stdin stays closed, and an input frame is
//! dropped ("dropped inactive or duplicate input for invoke …"). This host does the same: it
//! never sends progress, and the session loop ignores `node.invoke.input`.

use crate::approvals::{self, ApprovalsStore, Ask, ResolvedCommand, Security, Verdict};
use crate::argv;
use crate::env_policy;
use crate::exec::{self, RunSpec};
use clawgate_protocol::node_invoke::InvokeResult;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Commands advertised in `connect.commands` (sorted, like the real node host).
pub const COMMANDS: &[&str] = &[
    "system.execApprovals.get",
    "system.execApprovals.set",
    "system.run",
    "system.run.prepare",
    "system.which",
];

/// Capabilities advertised in `connect.caps`.
pub const CAPS: &[&str] = &["system"];

/// `exec.finished` output keeps this many trailing characters.
const EVENT_OUTPUT_TAIL: usize = 20_000;
/// How long `system.run` may still run past the invoke's budget. The gateway gives up first
/// and, if it cancels the invoke (`node.invoke.cancel`), that ends the command at once; this
/// bound is for a gateway that does not.
const INVOKE_BUDGET_GRACE: Duration = Duration::from_secs(1);

/// A `node.invoke.request` payload; its `timeout_ms` is what the gateway still waits for the
/// answer (`0`: no limit), and `system.run` is stopped by it (give or take a second's grace).
pub use clawgate_protocol::node_invoke::InvokeRequest;

/// The invoke result (`node.invoke.result` without `id`/`nodeId`).
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Ok { payload_json: String },
    Err { code: String, message: String },
}

impl Reply {
    fn json(payload: &Value) -> Reply {
        Reply::Ok {
            payload_json: payload.to_string(),
        }
    }

    fn err(code: &str, message: impl Into<String>) -> Reply {
        Reply::Err {
            code: code.into(),
            message: message.into(),
        }
    }

    /// `response.invalid(err)` of the real host: the JS error's string form.
    fn invalid(message: &str) -> Reply {
        Reply::err("INVALID_REQUEST", format!("Error: {message}"))
    }

    /// The `node.invoke.result` for invoke `id`.
    pub fn to_result(&self, id: &str, node_id: &str) -> InvokeResult {
        match self {
            Reply::Ok { payload_json } => InvokeResult::success(id, node_id, payload_json.clone()),
            Reply::Err { code, message } => InvokeResult::failure(id, node_id, code, message),
        }
    }

    /// The `node.invoke.result` params, as JSON.
    pub fn to_params(&self, id: &str, node_id: &str) -> Value {
        // Strings and a bool: serialization cannot fail.
        serde_json::to_value(self.to_result(id, node_id)).unwrap_or(Value::Null)
    }
}

/// What one invocation produced: `node.event`s (event name, payload) to send before the
/// result, then the result.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub events: Vec<(String, Value)>,
    pub reply: Reply,
}

impl From<Reply> for Outcome {
    fn from(reply: Reply) -> Self {
        Outcome {
            events: Vec::new(),
            reply,
        }
    }
}

/// What the handlers need from the host.
#[derive(Debug, Clone)]
pub struct Context {
    pub approvals: ApprovalsStore,
    /// The node host's environment (children inherit a filtered copy).
    pub env: Vec<(String, String)>,
    /// Output cap per stream for `system.run`.
    pub output_cap: usize,
}

impl Context {
    pub fn new(approvals: ApprovalsStore) -> Self {
        Context {
            approvals,
            env: std::env::vars().collect(),
            output_cap: exec::OUTPUT_CAP,
        }
    }

    /// Forgets every variable of the node host's environment that holds one of `secrets`
    /// (its gateway token or password), whatever its name: whoever handed the node host its
    /// credential under a name of their own did not mean to hand it to every command it runs.
    pub fn without_secret_values(mut self, secrets: &[&str]) -> Self {
        self.env
            .retain(|(_, value)| !secrets.iter().any(|s| !s.is_empty() && value == s));
        self
    }

    /// `PATH` for lookups: the node's own, else the default.
    pub fn path_env(&self) -> String {
        self.env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| argv::DEFAULT_PATH.to_owned())
    }
}

fn decode_params(raw: Option<&str>) -> Result<Value, Reply> {
    let raw = raw
        .filter(|r| !r.is_empty())
        .ok_or_else(|| Reply::invalid("INVALID_REQUEST: paramsJSON required"))?;
    serde_json::from_str(raw)
        .map_err(|_| Reply::invalid("INVALID_REQUEST: paramsJSON malformed JSON"))
}

/// Handles one invocation. `None` means it was cancelled: send nothing.
pub async fn handle(
    req: &InvokeRequest,
    ctx: &Context,
    cancel: CancellationToken,
) -> Option<Outcome> {
    let outcome = match req.command.as_str() {
        "system.which" => which(req, ctx).into(),
        "system.execApprovals.get" => approvals_get(req, ctx).into(),
        "system.execApprovals.set" => approvals_set(req, ctx).into(),
        "system.run.prepare" => prepare(req, ctx).into(),
        "system.run" => return run(req, ctx, cancel).await,
        _ => Reply::err("UNAVAILABLE", "command not supported").into(),
    };
    (!cancel.is_cancelled()).then_some(outcome)
}

// ---------------------------------------------------------------------------------------
// system.which

fn which(req: &InvokeRequest, ctx: &Context) -> Reply {
    let params = match decode_params(req.params_json.as_deref()) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Some(bins) = params.get("bins").and_then(Value::as_array) else {
        return Reply::invalid("INVALID_REQUEST: bins required");
    };
    let path_env = ctx.path_env();
    let mut found = Map::new();
    for bin in bins.iter().map(js_string) {
        let bin = bin.trim();
        if bin.is_empty() {
            continue;
        }
        if let Some(p) = argv::which(bin, &path_env) {
            found.insert(bin.to_owned(), json!(p.display().to_string()));
        }
    }
    Reply::json(&json!({ "bins": found }))
}

/// `String(v)` of JavaScript, for values that should have been strings.
fn js_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => a.iter().map(js_string).collect::<Vec<_>>().join(","),
        Value::Object(_) => "[object Object]".into(),
    }
}

// ---------------------------------------------------------------------------------------
// system.execApprovals.get / set

fn approvals_get(req: &InvokeRequest, ctx: &Context) -> Reply {
    let mut include_defaults = false;
    if let Some(raw) = req.params_json.as_deref() {
        let params = match decode_params(Some(raw)) {
            Ok(p) => p,
            Err(r) => return r,
        };
        match params.get("includeResolvedDefaults") {
            _ if !params.is_object() => {
                return Reply::invalid("INVALID_REQUEST: includeResolvedDefaults must be boolean");
            }
            None => {}
            Some(Value::Bool(b)) => include_defaults = *b,
            Some(_) => {
                return Reply::invalid("INVALID_REQUEST: includeResolvedDefaults must be boolean");
            }
        }
    }
    match ctx.approvals.ensure() {
        Ok(snapshot) => {
            let mut view = ctx.approvals.redacted(&snapshot);
            if include_defaults {
                let policy = approvals::resolve_policy(
                    &json!({"defaults": snapshot.file.get("defaults").cloned().unwrap_or_default()}),
                    Some("\u{0}none"),
                );
                view["resolvedDefaults"] = json!({
                    "security": policy.security.as_str(),
                    "ask": policy.ask.as_str(),
                    "askFallback": policy.ask_fallback.as_str(),
                    "autoAllowSkills": policy.auto_allow_skills,
                });
            }
            Reply::json(&view)
        }
        Err(e) => Reply::err("UNAVAILABLE", format!("Error: {e}")),
    }
}

fn approvals_set(req: &InvokeRequest, ctx: &Context) -> Reply {
    let params = match decode_params(req.params_json.as_deref()) {
        Ok(p) => p,
        Err(r) => return r,
    };
    match ctx.approvals.set(&params) {
        Ok(snapshot) => Reply::json(&ctx.approvals.redacted(&snapshot)),
        Err(approvals::ApprovalsError::Invalid(m)) => Reply::invalid(&m),
        Err(e) => Reply::err("UNAVAILABLE", format!("Error: {e}")),
    }
}

// ---------------------------------------------------------------------------------------
// Shared command parsing

fn opt_str(params: &Value, key: &str) -> Option<String> {
    params
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The command of a `system.run(.prepare)`: argv, its display text and shell payload.
struct CommandRequest {
    argv: Vec<String>,
    command_text: String,
    shell_payload: Option<String>,
}

/// `command` + optional `rawCommand` (which must match the argv's display text or, for a
/// shell wrapper, its payload).
fn command_request(params: &Value) -> Result<CommandRequest, String> {
    let raw = opt_str(params, "rawCommand");
    let argv: Vec<String> = params
        .get("command")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(js_string).collect())
        .unwrap_or_default();
    if argv.is_empty() {
        return Err(if raw.is_some() {
            "rawCommand requires params.command".into()
        } else {
            "command required".into()
        });
    }
    let command_text = argv::format_exec_command(&argv);
    let shell_payload = argv::shell_payload(&argv).map(str::to_owned);
    if let Some(raw) = raw {
        let preview = shell_payload.as_deref().map(str::trim);
        if raw != command_text && Some(raw.as_str()) != preview {
            return Err("INVALID_REQUEST: rawCommand does not match command".into());
        }
    }
    Ok(CommandRequest {
        argv,
        command_text,
        shell_payload,
    })
}

/// The commands the allowlist must cover: the argv itself, or each simple command of a
/// shell payload. `None` if the payload cannot be analysed.
fn analysed_segments(
    req: &CommandRequest,
    cwd: Option<&Path>,
    path_env: &str,
) -> Option<Vec<ResolvedCommand>> {
    let segments = match &req.shell_payload {
        Some(payload) => argv::split_shell_payload(payload)?,
        None => vec![req.argv.clone()],
    };
    let resolved: Vec<ResolvedCommand> = segments
        .into_iter()
        .map(|s| ResolvedCommand::resolve(s, cwd, path_env))
        .collect();
    resolved
        .iter()
        .all(|r| r.resolved.is_some())
        .then_some(resolved)
}

/// A canonical, existing directory for an approved run (default: the node's cwd).
fn canonical_cwd(cwd: Option<&str>) -> Result<PathBuf, String> {
    let requested = match cwd {
        Some(c) => PathBuf::from(c),
        None => std::env::current_dir().map_err(|_| {
            "SYSTEM_RUN_DENIED: approval requires an existing canonical cwd".to_owned()
        })?,
    };
    let real = std::fs::canonicalize(&requested)
        .map_err(|_| "SYSTEM_RUN_DENIED: approval requires an existing canonical cwd".to_owned())?;
    if !real.is_dir() {
        return Err("SYSTEM_RUN_DENIED: approval requires cwd to be a directory".into());
    }
    let lexical = Path::new(&normalize_lexically(&requested.to_string_lossy())).to_path_buf();
    if requested.is_absolute() && lexical != real {
        return Err(
            "SYSTEM_RUN_DENIED: approval requires canonical cwd (no symlink path components)"
                .into(),
        );
    }
    Ok(real)
}

fn normalize_lexically(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Interpreters whose first operand is the script that really runs.
const INTERPRETERS: &[&str] = &[
    "bash", "bun", "dash", "deno", "ksh", "node", "perl", "php", "python", "python2", "python3",
    "ruby", "sh", "zsh",
];

/// Which argv word names the file whose contents an approval binds: the script of an
/// interpreter, else the executable itself.
fn mutable_operand_index(argv: &[String]) -> usize {
    if INTERPRETERS.contains(&argv::basename(&argv[0]))
        && let Some(i) = argv
            .iter()
            .enumerate()
            .skip(1)
            .find(|(_, a)| !a.starts_with('-'))
            .map(|(i, _)| i)
    {
        return i;
    }
    0
}

fn file_sha256(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    Some(clawgate_protocol::device::hex(&Sha256::digest(bytes)))
}

fn mutable_file_operand(argv: &[String], cwd: &Path) -> Result<Value, String> {
    let index = mutable_operand_index(argv);
    let operand = argv[index].trim();
    if operand.is_empty() {
        return Err("SYSTEM_RUN_DENIED: approval requires a stable script operand".into());
    }
    let real = std::fs::canonicalize(cwd.join(operand)).map_err(|_| {
        "SYSTEM_RUN_DENIED: approval requires an existing script operand".to_owned()
    })?;
    let sha = file_sha256(&real).ok_or_else(|| {
        "SYSTEM_RUN_DENIED: approval requires an existing script operand".to_owned()
    })?;
    Ok(json!({"argvIndex": index, "path": real.display().to_string(), "sha256": sha}))
}

// ---------------------------------------------------------------------------------------
// system.run.prepare

fn prepare(req: &InvokeRequest, ctx: &Context) -> Reply {
    let params = match decode_params(req.params_json.as_deref()) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let agent_id = opt_str(&params, "agentId");
    let snapshot = match ctx.approvals.read() {
        Ok(s) => s,
        Err(e) => return Reply::err("UNAVAILABLE", format!("Error: {e}")),
    };
    let policy = approvals::resolve_policy(&snapshot.file, agent_id.as_deref());
    let req_security = Security::parse(params.get("security").and_then(Value::as_str));
    let req_ask = Ask::parse(params.get("ask").and_then(Value::as_str));
    let bind = params.get("security").is_none()
        || params.get("ask").is_none()
        || policy.security.min(req_security.unwrap_or(Security::Full)) != Security::Full
        || policy.ask.max(req_ask.unwrap_or(Ask::Off)) != Ask::Off
        || params.get("strictInlineEval") == Some(&Value::Bool(true));
    let command = match command_request(&params) {
        Ok(c) => c,
        Err(m) => return Reply::err("INVALID_REQUEST", m),
    };
    let path_env = ctx.path_env();
    let requested_cwd = opt_str(&params, "cwd");
    let cwd = if bind {
        match canonical_cwd(requested_cwd.as_deref()) {
            Ok(c) => c,
            Err(m) => return Reply::err("INVALID_REQUEST", m),
        }
    } else {
        match std::fs::canonicalize(
            requested_cwd
                .map(PathBuf::from)
                .unwrap_or_else(|| std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"))),
        ) {
            Ok(c) => c,
            Err(_) => {
                return Reply::err(
                    "INVALID_REQUEST",
                    "SYSTEM_RUN_DENIED: working directory does not exist or is inaccessible",
                );
            }
        }
    };
    let mut plan_argv = command.argv.clone();
    let mut trust_path = None;
    if bind && command.shell_payload.is_none() {
        let resolved = ResolvedCommand::resolve(plan_argv.clone(), Some(&cwd), &path_env);
        match resolved.trust_path() {
            Some(p) => {
                plan_argv[0] = p.display().to_string();
                trust_path = Some(p);
            }
            None => {
                return Reply::err(
                    "INVALID_REQUEST",
                    "SYSTEM_RUN_DENIED: approval requires a stable executable path",
                );
            }
        }
    }
    let command_text = argv::format_exec_command(&plan_argv);
    let preview = command
        .shell_payload
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty() && *p != command_text)
        .map(str::to_owned);
    let mutable = if bind && command.shell_payload.is_none() {
        match mutable_file_operand(&plan_argv, &cwd) {
            Ok(v) => Some(v),
            Err(m) => return Reply::err("INVALID_REQUEST", m),
        }
    } else {
        None
    };
    let overrides = params.get("env").and_then(Value::as_object);
    let rejection = env_policy::inspect_overrides(overrides);
    if !rejection.is_empty() {
        return Reply::err("INVALID_REQUEST", rejection.message());
    }
    let mut plan = Map::new();
    plan.insert("argv".into(), json!(plan_argv));
    plan.insert("cwd".into(), json!(cwd.display().to_string()));
    plan.insert("commandText".into(), json!(command_text));
    plan.insert("commandPreview".into(), json!(preview));
    plan.insert("agentId".into(), json!(agent_id));
    plan.insert("sessionKey".into(), json!(opt_str(&params, "sessionKey")));
    if let Some(m) = mutable {
        plan.insert("mutableFileOperand".into(), m);
    }
    plan.insert("policySnapshot".into(), policy.snapshot());
    let coverage = match (bind, trust_path) {
        (true, Some(p)) => json!({
            "complete": true,
            "patterns": [{
                "pattern": p.display().to_string(),
                "argPattern": approvals::cwd_bound_arg_pattern(&plan_argv, &cwd.to_string_lossy()),
            }],
        }),
        _ => json!({"complete": false, "patterns": []}),
    };
    Reply::json(&json!({
        "plan": plan,
        "execPolicy": {"security": policy.security.as_str(), "ask": policy.ask.as_str()},
        "allowAlwaysCoverage": coverage,
    }))
}

// ---------------------------------------------------------------------------------------
// system.run

struct Execution {
    session_key: String,
    run_id: String,
    command_text: String,
    suppress_notify: bool,
}

impl Execution {
    fn denied(&self, reason: &str, message: &str) -> Outcome {
        Outcome {
            events: vec![(
                "exec.denied".into(),
                json!({
                    "sessionKey": self.session_key,
                    "runId": self.run_id,
                    "host": "node",
                    "command": self.command_text,
                    "reason": reason,
                    "suppressNotifyOnExit": self.suppress_notify,
                }),
            )],
            reply: Reply::err("SYSTEM_RUN_DENIED", message),
        }
    }
}

fn plan_matches(
    plan: &Value,
    argv: &[String],
    command_text: &str,
    cwd: Option<&str>,
    agent_id: Option<&str>,
    session_key: Option<&str>,
) -> bool {
    let text = |k: &str| {
        plan.get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let plan_argv: Option<Vec<&str>> = plan
        .get("argv")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect());
    plan_argv.is_some_and(|p| p.len() == argv.len() && p.iter().zip(argv).all(|(a, b)| *a == b))
        && text("commandText").or_else(|| text("rawCommand")) == Some(command_text)
        && text("cwd") == cwd
        && text("agentId") == agent_id
        && text("sessionKey") == session_key
}

/// Whether an approval's policy snapshot still describes the current policy (the approved
/// rules may only have been kept, not removed).
fn snapshot_current(expected: &Value, current: &Value) -> bool {
    let same = |k: &str| expected.get(k) == current.get(k);
    let current_rules: Vec<&Value> = current
        .get("allowlistRules")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    same("security")
        && same("ask")
        && same("askFallback")
        && same("autoAllowSkills")
        && expected
            .get("allowlistRules")
            .and_then(Value::as_array)
            .is_some_and(|rules| rules.iter().all(|r| current_rules.contains(&r)))
}

/// `exec.finished` output: stdout, stderr and error joined, trimmed, tail-capped.
fn event_output(stdout: &str, stderr: &str, error: Option<&str>) -> String {
    let combined = [stdout, stderr, error.unwrap_or("")]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    let trimmed = combined.trim();
    if trimmed.is_empty() {
        return combined;
    }
    let count = trimmed.chars().count();
    if count <= EVENT_OUTPUT_TAIL {
        return trimmed.to_owned();
    }
    let tail: String = trimmed.chars().skip(count - EVENT_OUTPUT_TAIL).collect();
    format!("... (truncated) {tail}")
}

async fn run(req: &InvokeRequest, ctx: &Context, cancel: CancellationToken) -> Option<Outcome> {
    let params = match decode_params(req.params_json.as_deref()) {
        Ok(p) => p,
        Err(r) => return Some(r.into()),
    };
    if params
        .get("command")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        return Some(Reply::err("INVALID_REQUEST", "command required").into());
    }
    let command = match command_request(&params) {
        Ok(c) => c,
        Err(m) => return Some(Reply::err("INVALID_REQUEST", m).into()),
    };
    let plan = params.get("systemRunPlan").filter(|p| !p.is_null());
    if let Some(plan) = plan
        && !plan
            .get("argv")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty() && a.iter().all(Value::is_string))
    {
        return Some(Reply::err("INVALID_REQUEST", "systemRunPlan invalid").into());
    }
    let agent_id = opt_str(&params, "agentId");
    let requested_session = opt_str(&params, "sessionKey");
    let execution = Execution {
        session_key: requested_session.clone().unwrap_or_else(|| "node".into()),
        run_id: opt_str(&params, "runId").unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        command_text: command.command_text.clone(),
        suppress_notify: params.get("suppressNotifyOnExit") == Some(&Value::Bool(true)),
    };
    let cwd = opt_str(&params, "cwd");
    let decision = params
        .get("approvalDecision")
        .and_then(Value::as_str)
        .filter(|d| *d == "allow-once" || *d == "allow-always");
    let approved = params.get("approved") == Some(&Value::Bool(true)) || decision.is_some();
    if approved {
        let matches = plan.is_some_and(|p| {
            plan_matches(
                p,
                &command.argv,
                &command.command_text,
                cwd.as_deref(),
                agent_id.as_deref(),
                requested_session.as_deref(),
            )
        });
        if !matches {
            return Some(
                Reply::err(
                    "INVALID_REQUEST",
                    "explicit approval requires matching systemRunPlan",
                )
                .into(),
            );
        }
        if plan.and_then(|p| p.get("policySnapshot")).is_none() {
            return Some(
                Reply::err(
                    "INVALID_REQUEST",
                    "delayed approval requires a prepared policy snapshot",
                )
                .into(),
            );
        }
    }
    let blocked = env_policy::blocked_assignments(&command.argv);
    if !blocked.is_empty() {
        return Some(
            Reply::err(
                "INVALID_REQUEST",
                format!(
                    "SYSTEM_RUN_DENIED: command env assignment rejected (blocked env assignment keys: {})",
                    blocked.join(", ")
                ),
            )
            .into(),
        );
    }
    let overrides = params.get("env").and_then(Value::as_object);
    let rejection = env_policy::inspect_overrides(overrides);
    if !rejection.is_empty() {
        return Some(Reply::err("INVALID_REQUEST", rejection.message()).into());
    }

    // Policy.
    let snapshot = match ctx.approvals.read() {
        Ok(s) => s,
        Err(e) => return Some(Reply::err("UNAVAILABLE", format!("Error: {e}")).into()),
    };
    let policy = approvals::resolve_policy(&snapshot.file, agent_id.as_deref());
    if approved {
        let expected = plan
            .and_then(|p| p.get("policySnapshot"))
            .cloned()
            .unwrap_or_default();
        if !snapshot_current(&expected, &policy.snapshot()) {
            return Some(execution.denied(
                "approval-required",
                "SYSTEM_RUN_DENIED: exec approval policy changed; request approval again",
            ));
        }
    }
    let path_env = ctx.path_env();
    let mut exec_cwd = cwd.as_ref().map(PathBuf::from);
    let segments = analysed_segments(&command, exec_cwd.as_deref(), &path_env);
    let analysis_ok = segments.is_some();
    let allowlist_satisfied = policy.security == Security::Allowlist
        && segments.as_ref().is_some_and(|segs| {
            segs.iter()
                .all(|s| approvals::match_allowlist(&policy.allowlist, s, cwd.as_deref()).is_some())
        });
    if let Verdict::Denied { reason, message } = approvals::evaluate(
        policy.security,
        policy.ask,
        analysis_ok,
        allowlist_satisfied,
        approved,
    ) {
        return Some(execution.denied(reason, message));
    }

    // An approved or allowlisted run is pinned to what was checked: the canonical cwd, the
    // resolved executable and (approved) the file contents the approval saw.
    let mut exec_argv = command.argv.clone();
    if approved || policy.security == Security::Allowlist {
        match canonical_cwd(cwd.as_deref()) {
            Ok(c) => exec_cwd = Some(c),
            Err(m) => return Some(execution.denied("approval-required", &m)),
        }
    }
    if approved && command.shell_payload.is_none() {
        let resolved = ResolvedCommand::resolve(exec_argv.clone(), exec_cwd.as_deref(), &path_env);
        match resolved.trust_path() {
            Some(p) => exec_argv[0] = p.display().to_string(),
            None => {
                return Some(execution.denied(
                    "approval-required",
                    "SYSTEM_RUN_DENIED: approval requires a stable executable path",
                ));
            }
        }
        if let Some(operand) = plan.and_then(|p| p.get("mutableFileOperand")) {
            let index = operand
                .get("argvIndex")
                .and_then(Value::as_u64)
                .unwrap_or(0) as usize;
            let expected = operand.get("sha256").and_then(Value::as_str);
            let current = exec_argv.get(index).and_then(|word| {
                let base = exec_cwd.clone().unwrap_or_else(|| PathBuf::from("/"));
                file_sha256(&base.join(word))
            });
            if expected.is_none() || current.as_deref() != expected {
                return Some(execution.denied(
                    "approval-required",
                    "SYSTEM_RUN_DENIED: approval script operand changed before execution",
                ));
            }
        }
    }
    if params.get("needsScreenRecording") == Some(&Value::Bool(true)) {
        return Some(execution.denied(
            "permission:screenRecording",
            "PERMISSION_MISSING: screenRecording",
        ));
    }

    let env = env_policy::child_env(
        ctx.env.iter().cloned(),
        overrides,
        command.shell_payload.is_some(),
    );
    // The command's own timeoutMs, and the invoke's budget: past it the gateway has given up
    // on the answer, so the command must not run on. Whichever ends first stops it as a
    // timeout (124).
    let own_timeout = params
        .get("timeoutMs")
        .and_then(Value::as_f64)
        .filter(|t| *t > 0.0)
        .map(|t| Duration::from_millis(t as u64));
    let invoke_budget = req
        .timeout_ms
        .filter(|t| *t > 0)
        .map(|t| Duration::from_millis(t).saturating_add(INVOKE_BUDGET_GRACE));
    let timeout = own_timeout.into_iter().chain(invoke_budget).min();
    let spec = RunSpec {
        argv: exec_argv,
        cwd: exec_cwd,
        env,
        timeout,
        output_cap: ctx.output_cap,
    };
    let mut result = exec::run(spec, cancel.clone()).await?;
    if cancel.is_cancelled() {
        return None;
    }
    if result.truncated {
        let suffix = "... (truncated)";
        if !result.stderr.trim().is_empty() {
            result.stderr = format!("{}\n{suffix}", result.stderr);
        } else {
            result.stdout = format!("{}\n{suffix}", result.stdout);
        }
    }
    let mut finished = Map::new();
    finished.insert("sessionKey".into(), json!(execution.session_key));
    finished.insert("runId".into(), json!(execution.run_id));
    finished.insert("host".into(), json!("node"));
    finished.insert("command".into(), json!(execution.command_text));
    if let Some(code) = result.exit_code {
        finished.insert("exitCode".into(), json!(code));
    }
    finished.insert("timedOut".into(), json!(result.timed_out));
    finished.insert("success".into(), json!(result.success));
    finished.insert(
        "output".into(),
        json!(event_output(
            &result.stdout,
            &result.stderr,
            result.error.as_deref()
        )),
    );
    finished.insert(
        "suppressNotifyOnExit".into(),
        json!(execution.suppress_notify),
    );
    let mut payload = Map::new();
    if let Some(code) = result.exit_code {
        payload.insert("exitCode".into(), json!(code));
    }
    payload.insert("timedOut".into(), json!(result.timed_out));
    payload.insert("success".into(), json!(result.success));
    payload.insert("stdout".into(), json!(result.stdout));
    payload.insert("stderr".into(), json!(result.stderr));
    payload.insert("error".into(), json!(result.error));
    Some(Outcome {
        events: vec![("exec.finished".into(), Value::Object(finished))],
        reply: Reply::json(&Value::Object(payload)),
    })
}
