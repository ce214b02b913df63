//! The command implementations against the real node host's recorded answers
//! (`tests/fixtures/node-frames.jsonl`, cut from the OpenClaw 2026.9.6 captures) and the
//! exec-approvals policy.

use clawgate_node_host::approvals::ApprovalsStore;
use clawgate_node_host::commands::{self, Context, InvokeRequest, Outcome, Reply};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn fixtures() -> Vec<Value> {
    include_str!("fixtures/node-frames.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The captured `node.invoke.request` with this idempotency key or command, and the
/// `node.event`s and `node.invoke.result` the real node host sent for it.
fn captured(pred: impl Fn(&Value) -> bool) -> (Value, Vec<Value>, Value) {
    let frames = fixtures();
    let start = frames
        .iter()
        .position(|f| f["frame"]["event"] == "node.invoke.request" && pred(&f["frame"]["payload"]))
        .expect("captured request");
    let request = frames[start]["frame"]["payload"].clone();
    let mut events = Vec::new();
    for f in &frames[start + 1..] {
        let frame = &f["frame"];
        if frame["method"] == "node.event" {
            events.push(frame["params"].clone());
        }
        if frame["method"] == "node.invoke.result" && frame["params"]["id"] == request["id"] {
            return (request, events, frame["params"].clone());
        }
    }
    panic!("no captured result for {request}");
}

struct Node {
    ctx: Context,
    _dir: tempfile::TempDir,
}

fn new_node() -> Node {
    let dir = tempfile::tempdir().unwrap();
    let mut ctx = Context::new(ApprovalsStore::new(dir.path()));
    ctx.env = vec![
        ("PATH".into(), "/usr/bin:/bin".into()),
        ("HOME".into(), dir.path().display().to_string()),
        ("LD_PRELOAD".into(), "/nonexistent.so".into()),
    ];
    Node { ctx, _dir: dir }
}

fn request(command: &str, params: Value) -> InvokeRequest {
    InvokeRequest {
        id: "inv-1".into(),
        node_id: "node-1".into(),
        command: command.into(),
        params_json: Some(params.to_string()),
        timeout_ms: Some(30_000),
        idempotency_key: None,
        session_key: None,
    }
}

async fn call(node: &Node, command: &str, params: Value) -> Outcome {
    commands::handle(
        &request(command, params),
        &node.ctx,
        CancellationToken::new(),
    )
    .await
    .expect("not cancelled")
}

fn ok_payload(outcome: &Outcome) -> Value {
    match &outcome.reply {
        Reply::Ok { payload_json } => serde_json::from_str(payload_json).unwrap(),
        other => panic!("expected ok, got {other:?}"),
    }
}

fn error(outcome: &Outcome) -> (String, String) {
    match &outcome.reply {
        Reply::Err { code, message } => (code.clone(), message.clone()),
        other => panic!("expected an error, got {other:?}"),
    }
}

async fn set_policy(node: &Node, file: Value) {
    let current = ok_payload(&call(node, "system.execApprovals.get", json!({})).await);
    let out = call(
        node,
        "system.execApprovals.set",
        json!({"file": file, "baseHash": current["hash"]}),
    )
    .await;
    ok_payload(&out);
}

#[tokio::test]
async fn which_answers_like_the_real_node_host() {
    let node = new_node();
    let (req, _, result) = captured(|p| {
        p["command"] == "system.which"
            && p["paramsJSON"]
                .as_str()
                .unwrap()
                .contains("nonexistent-bin")
    });
    let invoke = InvokeRequest::from_payload(&req).unwrap();
    let out = commands::handle(&invoke, &node.ctx, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(out.reply.to_params(&invoke.id, &invoke.node_id), result);

    let (req, _, result) = captured(|p| p["paramsJSON"] == "{\"bins\":\"notarray\"}");
    let invoke = InvokeRequest::from_payload(&req).unwrap();
    let out = commands::handle(&invoke, &node.ctx, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(out.reply.to_params(&invoke.id, &invoke.node_id), result);
}

#[tokio::test]
async fn run_answers_like_the_real_node_host() {
    for key in ["proto-run-1", "exit-3"] {
        let node = new_node();
        let (req, events, result) = captured(|p| p["idempotencyKey"] == key);
        let invoke = InvokeRequest::from_payload(&req).unwrap();
        let out = commands::handle(&invoke, &node.ctx, CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(
            out.reply.to_params(&invoke.id, &invoke.node_id),
            result,
            "{key}"
        );
        assert_eq!(events.len(), 1);
        let (name, payload) = &out.events[0];
        assert_eq!(name, "exec.finished");
        assert_eq!(events[0]["event"], "exec.finished");
        let expected: Value =
            serde_json::from_str(events[0]["payloadJSON"].as_str().unwrap()).unwrap();
        assert_eq!(payload, &expected, "{key}");
        // Same key order as the real node host.
        assert_eq!(
            payload.to_string(),
            events[0]["payloadJSON"].as_str().unwrap()
        );
    }
}

#[tokio::test]
async fn env_overrides_of_path_ld_and_node_options_are_refused() {
    let node = new_node();
    for key in ["PATH", "LD_PRELOAD", "LD_LIBRARY_PATH", "NODE_OPTIONS"] {
        let out = call(
            &node,
            "system.run",
            json!({"command": ["true"], "env": {key: "x"}}),
        )
        .await;
        assert_eq!(
            error(&out),
            (
                "INVALID_REQUEST".into(),
                format!(
                    "SYSTEM_RUN_DENIED: environment override rejected (blocked override keys: {key})"
                )
            )
        );
        assert!(out.events.is_empty());
    }
    let out = call(
        &node,
        "system.run",
        json!({"command": ["env", "LD_PRELOAD=/x.so", "true"]}),
    )
    .await;
    assert_eq!(
        error(&out).1,
        "SYSTEM_RUN_DENIED: command env assignment rejected (blocked env assignment keys: LD_PRELOAD)"
    );
    // Harmless overrides reach the child; the inherited LD_PRELOAD does not.
    let out = call(
        &node,
        "system.run",
        json!({"command": ["sh", "-c", "echo \"$GREETING/${LD_PRELOAD:-none}/$OPENCLAW_CLI\""], "env": {"GREETING": "x", "LANG": "C"}}),
    )
    .await;
    assert_eq!(
        ok_payload(&out)["stdout"],
        "/none/1\n",
        "shell wrappers get only locale overrides"
    );
    let out = call(&node, "env", json!({})).await;
    assert_eq!(
        error(&out),
        ("UNAVAILABLE".into(), "command not supported".into())
    );
    let out = call(
        &node,
        "system.run",
        json!({"command": ["printenv", "GREETING"], "env": {"GREETING": "hello"}}),
    )
    .await;
    assert_eq!(ok_payload(&out)["stdout"], "hello\n");
}

#[tokio::test]
async fn timeout_exits_124_and_output_is_capped() {
    let node = new_node();
    let started = Instant::now();
    let out = call(
        &node,
        "system.run",
        json!({"command": ["sleep", "5"], "timeoutMs": 1000}),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let payload = ok_payload(&out);
    assert_eq!(payload["exitCode"], 124);
    assert_eq!(payload["timedOut"], true);
    assert_eq!(payload["success"], false);
    assert_eq!(out.events[0].1["timedOut"], true);

    let mut small = new_node();
    small.ctx.output_cap = 1000;
    let out = call(
        &small,
        "system.run",
        json!({"command": ["sh", "-c", "yes abcdefghi"], "timeoutMs": 20000}),
    )
    .await;
    let payload = ok_payload(&out);
    let stdout = payload["stdout"].as_str().unwrap();
    assert!(stdout.ends_with("\n... (truncated)"), "{stdout:.60}");
    assert_eq!(stdout.len(), 1000 + "\n... (truncated)".len());
    assert_eq!(payload["success"], false);
    assert!(payload.get("exitCode").is_none());

    let out = call(
        &node,
        "system.run",
        json!({"command": ["sh", "-c", "head -c 300000 /dev/zero | tr '\\0' x; exit 0"]}),
    )
    .await;
    assert_eq!(
        ok_payload(&out)["stdout"].as_str().unwrap().len(),
        200_000 + "\n... (truncated)".len()
    );
}

/// `system.run` children never see the gateway's credentials: not the variables they are read
/// from, nor the node host's own token under another name.
#[tokio::test]
async fn no_command_sees_the_gateway_credentials() {
    let mut node = new_node();
    node.ctx.env.extend([
        ("DEPLOY_TOKEN_COPY".into(), "s3cret-token".into()),
        ("CLAWGATE_GATEWAY_PASSWORD".into(), "pw".into()),
        ("OPENCLAW_GATEWAY_TOKEN".into(), "other".into()),
        ("ORDINARY".into(), "plain".into()),
        ("EMPTY".into(), String::new()),
    ]);
    node.ctx = node.ctx.without_secret_values(&["s3cret-token", ""]);
    let out = call(&node, "system.run", json!({"command": ["env"]})).await;
    let payload = ok_payload(&out);
    let lines: Vec<&str> = payload["stdout"].as_str().unwrap().lines().collect();
    assert!(lines.contains(&"ORDINARY=plain"), "{lines:?}");
    assert!(
        lines.contains(&"EMPTY="),
        "an empty secret matches nothing: {lines:?}"
    );
    for hidden in ["s3cret-token", "GATEWAY_PASSWORD", "GATEWAY_TOKEN"] {
        assert!(
            !lines.iter().any(|l| l.contains(hidden)),
            "{hidden}: {lines:?}"
        );
    }
}

/// The invoke's own budget (`timeoutMs` of `node.invoke.request`, and a second's grace for the
/// gateway's cancel to arrive first) bounds `system.run` too, whichever of it and the
/// command's `timeoutMs` ends first: without it a command the gateway stopped waiting for would
/// run on unbounded unless the gateway cancels it.
#[tokio::test]
async fn the_invoke_budget_bounds_system_run() {
    let node = new_node();
    for params in [
        json!({"command": ["sleep", "5"]}),
        json!({"command": ["sleep", "5"], "timeoutMs": 20_000}),
    ] {
        let mut req = request("system.run", params.clone());
        req.timeout_ms = Some(500);
        let started = Instant::now();
        let out = commands::handle(&req, &node.ctx, CancellationToken::new())
            .await
            .expect("not cancelled");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{params}: {:?}",
            started.elapsed()
        );
        let payload = ok_payload(&out);
        assert_eq!(payload["exitCode"], 124, "{params}: {payload}");
        assert_eq!(payload["timedOut"], true);
        assert_eq!(out.events[0].1["timedOut"], true);
    }
    // The command's own, smaller timeoutMs still wins; a budget of 0 is none.
    let mut req = request(
        "system.run",
        json!({"command": ["sleep", "5"], "timeoutMs": 300}),
    );
    req.timeout_ms = Some(0);
    let started = Instant::now();
    let out = commands::handle(&req, &node.ctx, CancellationToken::new())
        .await
        .expect("not cancelled");
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_eq!(ok_payload(&out)["timedOut"], true);
}

#[tokio::test]
async fn cancel_sends_nothing() {
    let node = new_node();
    let cancel = CancellationToken::new();
    let req = request("system.run", json!({"command": ["sleep", "30"]}));
    let task = {
        let ctx = node.ctx.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move { commands::handle(&req, &ctx, cancel).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    cancel.cancel();
    let result = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(result, None);
}

#[tokio::test]
async fn allowlist_policy_is_enforced() {
    let node = new_node();
    // Default: security full, ask off — anything runs.
    let out = call(&node, "system.run", json!({"command": ["echo", "hi"]})).await;
    assert_eq!(ok_payload(&out)["stdout"], "hi\n");

    // allowlist + ask off: a miss is denied, with an exec.denied event first.
    set_policy(
        &node,
        json!({"version": 1, "defaults": {"security": "allowlist", "ask": "off"}, "agents": {}}),
    )
    .await;
    let (_, events, result) = captured(|p| p["idempotencyKey"] == "proto-run-2");
    let out = call(
        &node,
        "system.run",
        json!({"command": ["echo", "hi"], "runId": "r-2"}),
    )
    .await;
    assert_eq!(
        error(&out),
        (
            "SYSTEM_RUN_DENIED".into(),
            "SYSTEM_RUN_DENIED: allowlist miss".into()
        )
    );
    assert_eq!(
        result["error"]["message"],
        "SYSTEM_RUN_DENIED: allowlist miss"
    );
    let mut expected: Value =
        serde_json::from_str(events[0]["payloadJSON"].as_str().unwrap()).unwrap();
    expected["runId"] = json!("r-2");
    assert_eq!(out.events, vec![("exec.denied".to_owned(), expected)]);

    // allowlist + on-miss on a raw invoke: approval required.
    set_policy(&node, json!({"version": 1, "defaults": {"security": "allowlist", "ask": "on-miss"}, "agents": {}})).await;
    let out = call(&node, "system.run", json!({"command": ["echo", "hi"]})).await;
    assert_eq!(error(&out).1, "SYSTEM_RUN_DENIED: approval required");
    assert_eq!(out.events[0].1["reason"], "approval-required");

    // A matching pattern lets it through (by name, by path glob), others still miss.
    set_policy(&node, json!({"version": 1, "defaults": {"security": "allowlist", "ask": "off"}, "agents": {"main": {"allowlist": [{"pattern": "echo"}, {"pattern": "/usr/bin/print*"}]}}})).await;
    let out = call(&node, "system.run", json!({"command": ["echo", "ok"]})).await;
    assert_eq!(ok_payload(&out)["stdout"], "ok\n");
    let out = call(&node, "system.run", json!({"command": ["printf", "x"]})).await;
    assert_eq!(ok_payload(&out)["stdout"], "x");
    let out = call(
        &node,
        "system.run",
        json!({"command": ["cat", "/etc/hostname"]}),
    )
    .await;
    assert_eq!(error(&out).1, "SYSTEM_RUN_DENIED: allowlist miss");
    // Shell payloads: every simple command must be allowlisted (not the shell itself), and
    // substitutions never are.
    let out = call(
        &node,
        "system.run",
        json!({"command": ["sh", "-c", "echo a && cat /etc/hostname"]}),
    )
    .await;
    assert_eq!(error(&out).1, "SYSTEM_RUN_DENIED: allowlist miss");
    set_policy(&node, json!({"version": 1, "defaults": {"security": "allowlist"}, "agents": {"*": {"allowlist": ["echo"]}}})).await;
    let out = call(
        &node,
        "system.run",
        json!({"command": ["sh", "-c", "echo a && echo b"]}),
    )
    .await;
    assert_eq!(ok_payload(&out)["stdout"], "a\nb\n");
    let out = call(
        &node,
        "system.run",
        json!({"command": ["sh", "-c", "echo $(id)"]}),
    )
    .await;
    assert_eq!(error(&out).1, "SYSTEM_RUN_DENIED: allowlist miss");
    let out = call(
        &node,
        "system.run",
        json!({"command": ["sh", "-c", "echo a; cat /etc/hostname"]}),
    )
    .await;
    assert_eq!(error(&out).1, "SYSTEM_RUN_DENIED: allowlist miss");
    // Per-agent policy.
    let out = call(
        &node,
        "system.run",
        json!({"command": ["echo", "a"], "agentId": "ops"}),
    )
    .await;
    assert_eq!(ok_payload(&out)["stdout"], "a\n");

    // deny: nothing runs.
    set_policy(
        &node,
        json!({"version": 1, "defaults": {"security": "deny"}, "agents": {}}),
    )
    .await;
    let out = call(&node, "system.run", json!({"command": ["echo", "hi"]})).await;
    assert_eq!(error(&out).1, "SYSTEM_RUN_DISABLED: security=deny");
    assert_eq!(out.events[0].1["reason"], "security=deny");
}

#[tokio::test]
async fn approvals_get_and_set_keep_the_wire_shape() {
    let node = new_node();
    let first = ok_payload(&call(&node, "system.execApprovals.get", json!({})).await);
    let keys: Vec<&str> = first
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["path", "exists", "file", "hash"]);
    assert_eq!(first["exists"], true);
    let file_keys: Vec<&str> = first["file"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(file_keys, ["version", "socket", "defaults", "agents"]);
    assert_eq!(first["file"]["defaults"], json!({}));
    assert!(
        first["file"]["socket"]["path"]
            .as_str()
            .unwrap()
            .ends_with("exec-approvals.sock")
    );
    assert!(
        first["file"]["socket"].get("token").is_none(),
        "the socket token never leaves the node"
    );
    // The same document twice has the same hash.
    let again = ok_payload(&call(&node, "system.execApprovals.get", json!({})).await);
    assert_eq!(again["hash"], first["hash"]);

    let stale = call(
        &node,
        "system.execApprovals.set",
        json!({"file": {"version": 1, "defaults": {}, "agents": {}}, "baseHash": "0000"}),
    )
    .await;
    assert_eq!(
        error(&stale),
        (
            "INVALID_REQUEST".into(),
            "Error: INVALID_REQUEST: exec approvals changed; reload and retry".into()
        )
    );
    let set = ok_payload(
        &call(
            &node,
            "system.execApprovals.set",
            json!({"file": {"version": 1, "defaults": {"security": "allowlist", "ask": "off"}, "agents": {}}, "baseHash": first["hash"]}),
        )
        .await,
    );
    assert_eq!(
        set["file"]["defaults"],
        json!({"security": "allowlist", "ask": "off"})
    );
    assert_ne!(set["hash"], first["hash"]);
    assert_eq!(set["file"]["socket"], first["file"]["socket"]);
    let with_defaults = ok_payload(
        &call(
            &node,
            "system.execApprovals.get",
            json!({"includeResolvedDefaults": true}),
        )
        .await,
    );
    assert_eq!(
        with_defaults["resolvedDefaults"],
        json!({"security": "allowlist", "ask": "off", "askFallback": "deny", "autoAllowSkills": false})
    );
    let bad = call(
        &node,
        "system.execApprovals.get",
        json!({"includeResolvedDefaults": 1}),
    )
    .await;
    assert_eq!(
        error(&bad).1,
        "Error: INVALID_REQUEST: includeResolvedDefaults must be boolean"
    );
}

#[tokio::test]
async fn prepare_matches_the_real_plan_and_approved_runs_need_it() {
    let node = new_node();
    let (req, _, result) = captured(|p| p["command"] == "system.run.prepare");
    let invoke = InvokeRequest::from_payload(&req).unwrap();
    let out = commands::handle(&invoke, &node.ctx, CancellationToken::new())
        .await
        .unwrap();
    let got = ok_payload(&out);
    let expected: Value = serde_json::from_str(result["payloadJSON"].as_str().unwrap()).unwrap();
    let echo = std::fs::canonicalize("/usr/bin/echo")
        .unwrap()
        .display()
        .to_string();
    let mut expected = expected;
    if echo != "/usr/bin/echo"
        || got["plan"]["mutableFileOperand"]["sha256"]
            != expected["plan"]["mutableFileOperand"]["sha256"]
    {
        // Another machine: the same shape with this machine's echo.
        expected["plan"]["argv"][0] = json!(echo);
        expected["plan"]["commandText"] = json!(format!("{echo} hi"));
        expected["plan"]["mutableFileOperand"] = got["plan"]["mutableFileOperand"].clone();
        expected["allowAlwaysCoverage"]["patterns"][0]["pattern"] = json!(echo);
    }
    assert_eq!(got, expected);
    assert_eq!(
        out.reply.to_params("x", "y")["payloadJSON"]
            .as_str()
            .unwrap()
            .find("\"plan\""),
        Some(1),
        "plan first"
    );

    // An approval only counts together with the plan it was given for.
    set_policy(&node, json!({"version": 1, "defaults": {"security": "allowlist", "ask": "on-miss"}, "agents": {}})).await;
    let out = call(
        &node,
        "system.run",
        json!({"command": ["echo", "hi"], "approved": true}),
    )
    .await;
    assert_eq!(
        error(&out),
        (
            "INVALID_REQUEST".into(),
            "explicit approval requires matching systemRunPlan".into()
        )
    );
    let prepared = ok_payload(
        &call(
            &node,
            "system.run.prepare",
            json!({"command": ["echo", "hi"], "cwd": "/tmp"}),
        )
        .await,
    );
    let plan = prepared["plan"].clone();
    assert_eq!(
        prepared["execPolicy"],
        json!({"security": "allowlist", "ask": "on-miss"})
    );
    let out = call(
        &node,
        "system.run",
        json!({"command": plan["argv"], "cwd": "/tmp", "approved": true, "systemRunPlan": plan}),
    )
    .await;
    assert_eq!(ok_payload(&out)["stdout"], "hi\n");
    // A policy change after the approval invalidates it.
    set_policy(
        &node,
        json!({"version": 1, "defaults": {"security": "allowlist", "ask": "always"}, "agents": {}}),
    )
    .await;
    let out = call(
        &node,
        "system.run",
        json!({"command": plan["argv"], "cwd": "/tmp", "approved": true, "systemRunPlan": plan}),
    )
    .await;
    assert_eq!(
        error(&out).1,
        "SYSTEM_RUN_DENIED: exec approval policy changed; request approval again"
    );
}

#[tokio::test]
async fn malformed_requests() {
    let node = new_node();
    let mut req = request("system.run", json!({}));
    req.params_json = None;
    let out = commands::handle(&req, &node.ctx, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        error(&out),
        (
            "INVALID_REQUEST".into(),
            "Error: INVALID_REQUEST: paramsJSON required".into()
        )
    );
    req.params_json = Some("{".into());
    let out = commands::handle(&req, &node.ctx, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        error(&out).1,
        "Error: INVALID_REQUEST: paramsJSON malformed JSON"
    );
    let out = call(&node, "system.run", json!({"command": []})).await;
    assert_eq!(
        error(&out),
        ("INVALID_REQUEST".into(), "command required".into())
    );
    let out = call(
        &node,
        "system.run",
        json!({"command": ["echo", "hi"], "rawCommand": "echo bye"}),
    )
    .await;
    assert_eq!(
        error(&out).1,
        "INVALID_REQUEST: rawCommand does not match command"
    );
    let out = call(
        &node,
        "system.run",
        json!({"command": ["sh", "-c", "echo hi"], "rawCommand": "echo hi"}),
    )
    .await;
    assert_eq!(ok_payload(&out)["stdout"], "hi\n");
    let out = call(
        &node,
        "system.run",
        json!({"command": ["no-such-binary-xyz"]}),
    )
    .await;
    let payload = ok_payload(&out);
    assert_eq!(payload["error"], "spawn no-such-binary-xyz ENOENT");
    assert_eq!(payload["success"], false);
    assert!(payload.get("exitCode").is_none());
    assert_eq!(out.events[0].1["output"], "spawn no-such-binary-xyz ENOENT");
}
