//! `clawgate nodes …`: node hosts known to the gateway, their capability approval, and
//! invoking their commands (`node.list`, `node.describe`, `node.pair.*`, `node.rename`,
//! `node.invoke`).

use super::conn::{ConnArgs, EXIT_CODES_HELP};
use super::rpc;
use super::session::Session;
use super::table::{Table, clean, list_text, s, short, strs};
use crate::output::{Failure, FailureKind, Report, ago, block_on, print_json, print_out};
use clap::{Args, Subcommand};
use clawgate_client::RpcError;
use clawgate_client::failure::is_unknown;
use clawgate_client::pairing::{node_approve_scopes, node_name, nodes_of, resolve_node};
use clawgate_protocol::scopes;
use serde_json::{Value, json};
use std::process::ExitCode;
use std::time::Duration;

/// Default `node.invoke` timeout, as the OpenClaw CLI uses.
pub const DEFAULT_INVOKE_TIMEOUT_MS: u64 = 15_000;

pub const INVOKE_HELP: &str = "\
Prints the gateway's answer as JSON: {ok, nodeId, command, payload, payloadJSON}.

Unlike `openclaw nodes invoke`, this also runs `system.run` (and `system.run.prepare`): clawgate's
CLI is the operator's own tool, and the gateway already requires operator.write for node.invoke.
What actually runs is still decided on the node by its exec approvals (`security`, `ask`,
allowlist); a refusal comes back as an error such as `SYSTEM_RUN_DENIED: allowlist miss`.

Example: clawgate nodes invoke my-node --command system.run --params '{\"command\":[\"uname\",\"-a\"]}'";

#[derive(Subcommand, Debug)]
pub enum NodesCommand {
    /// Nodes the gateway knows, with connection and approval state (node.list)
    Status(PlainArgs),
    /// Pending and approved node capability requests (node.pair.list)
    List(PlainArgs),
    /// Everything about one node: commands, capabilities, host stats (node.describe)
    Describe(NodeArgs),
    /// Pending node capability requests
    Pending(PlainArgs),
    /// Approve a node's pending capability request (shows what it grants)
    Approve(RequestArgs),
    /// Reject a node's pending capability request
    Reject(RequestArgs),
    /// Remove a paired node
    Remove(NodeArgs),
    /// Set a node's display name
    Rename(RenameArgs),
    /// Invoke a command on a node
    #[command(after_long_help = INVOKE_HELP)]
    Invoke(InvokeArgs),
}

#[derive(Args, Debug)]
#[command(after_long_help = EXIT_CODES_HELP)]
pub struct PlainArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
}

#[derive(Args, Debug)]
#[command(after_long_help = EXIT_CODES_HELP)]
pub struct NodeArgs {
    /// Node id, a unique prefix of it, or the node's display name
    pub node: String,
    #[command(flatten)]
    pub conn: ConnArgs,
}

#[derive(Args, Debug)]
#[command(after_long_help = EXIT_CODES_HELP)]
pub struct RequestArgs {
    /// The request id (from `clawgate nodes pending`)
    pub request_id: String,
    #[command(flatten)]
    pub conn: ConnArgs,
}

#[derive(Args, Debug)]
#[command(after_long_help = EXIT_CODES_HELP)]
pub struct RenameArgs {
    /// Node id, a unique prefix of it, or the node's display name
    pub node: String,
    /// The new display name
    pub name: String,
    #[command(flatten)]
    pub conn: ConnArgs,
}

#[derive(Args, Debug)]
pub struct InvokeArgs {
    /// Node id, a unique prefix of it, or the node's display name
    pub node: String,
    /// The command, e.g. system.which or system.run
    #[arg(long)]
    pub command: String,
    /// The command's params as a JSON object
    #[arg(long, value_name = "JSON", default_value = "{}")]
    pub params: String,
    /// How long the node may take, in milliseconds
    #[arg(long, value_name = "MS", default_value_t = DEFAULT_INVOKE_TIMEOUT_MS)]
    pub invoke_timeout: u64,
    /// Idempotency key (default: a fresh UUID)
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
    #[command(flatten)]
    pub conn: ConnArgs,
}

pub fn run(cmd: NodesCommand) -> ExitCode {
    block_on(async move {
        let (json_out, result) = match cmd {
            NodesCommand::Status(a) => (a.conn.json, status(a).await),
            NodesCommand::List(a) => (a.conn.json, list(a).await),
            NodesCommand::Describe(a) => (a.conn.json, describe(a).await),
            NodesCommand::Pending(a) => (a.conn.json, pending(a).await),
            NodesCommand::Approve(a) => (a.conn.json, approve(a).await),
            NodesCommand::Reject(a) => (a.conn.json, reject(a).await),
            NodesCommand::Remove(a) => (a.conn.json, remove(a).await),
            NodesCommand::Rename(a) => (a.conn.json, rename(a).await),
            // invoke always prints JSON; errors go to stdout as JSON too.
            NodesCommand::Invoke(a) => (true, invoke(a).await),
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(f) => f.report(json_out),
        }
    })
}

/// `no node … is known` when the gateway does not know the node `q` named.
fn unknown_node(q: &str) -> impl FnOnce(&RpcError) -> Option<Failure> {
    move |e| {
        is_unknown(e, "nodeId").then(|| {
            Failure::not_found(
                format!("no node {q:?} is known to the gateway"),
                vec!["run `clawgate nodes status` to see the nodes and their ids".into()],
            )
        })
    }
}

/// One call on a new connection asking `scopes`, closed after it.
async fn call_once(conn: &ConnArgs, scopes: &[&str], method: &str) -> Result<Value, Failure> {
    rpc::connect(conn, scopes)
        .await?
        .run(async |session| session.request(method, json!({})).await)
        .await
}

// ---- status / list / describe ---------------------------------------------------------------

async fn status(a: PlainArgs) -> Result<(), Failure> {
    let v = call_once(&a.conn, &[scopes::READ], "node.list").await?;
    if a.conn.json {
        print_json(&v);
        return Ok(());
    }
    let nodes = nodes_of(&v, "nodes");
    if nodes.is_empty() {
        print_out(
            "No nodes. Start one with `openclaw node run --host <gateway host> --port <port>`; it then shows up here and in `clawgate nodes pending`.",
        );
        return Ok(());
    }
    let mut t = Table::new(&[
        "Node",
        "ID",
        "Platform",
        "Version",
        "State",
        "Approval",
        "Commands",
        "Last seen",
    ]);
    let mut awaiting = 0;
    let mut connected = 0;
    for n in &nodes {
        let state = if n["connected"] == true {
            connected += 1;
            "connected"
        } else {
            "offline"
        };
        let approval = s(n, "approvalState");
        if approval.contains("pending") {
            awaiting += 1;
        }
        t.row(vec![
            node_name(n),
            short(s(n, "nodeId")),
            s(n, "platform").to_owned(),
            s(n, "version").to_owned(),
            state.to_owned(),
            if approval.is_empty() {
                "—".to_owned()
            } else {
                approval.to_owned()
            },
            strs(&n["commands"]).len().to_string(),
            ago(n["lastSeenAtMs"]
                .as_i64()
                .or_else(|| n["connectedAtMs"].as_i64())),
        ]);
    }
    let mut out = format!(
        "{} node{} · {connected} connected\n",
        nodes.len(),
        if nodes.len() == 1 { "" } else { "s" }
    );
    out.push_str(&t.render());
    if awaiting > 0 {
        out.push_str(
            "Nodes awaiting approval: see `clawgate nodes pending`, then `clawgate nodes approve <request>`.\n",
        );
    }
    print_out(&out);
    Ok(())
}

async fn list(a: PlainArgs) -> Result<(), Failure> {
    let (v, live) = rpc::connect(&a.conn, &[scopes::PAIRING, scopes::READ])
        .await?
        .run(async |session| {
            let pairs = session.request("node.pair.list", json!({})).await;
            let live = session.try_request("node.list", json!({})).await.ok();
            pairs.map(|v| (v, live))
        })
        .await?;
    if a.conn.json {
        print_json(&json!({"pending": nodes_of(&v, "pending"), "paired": nodes_of(&v, "paired")}));
        return Ok(());
    }
    let live_nodes = live.map(|l| nodes_of(&l, "nodes")).unwrap_or_default();
    let mut out = render_pending(&nodes_of(&v, "pending"));
    let paired = nodes_of(&v, "paired");
    if !paired.is_empty() {
        if !out.is_empty() {
            out.push('\n');
        }
        let mut t = Table::new(&[
            "Node", "ID", "Platform", "Version", "State", "Commands", "Approved",
        ]);
        for n in &paired {
            let state = live_nodes
                .iter()
                .find(|l| s(l, "nodeId") == s(n, "nodeId"))
                .map(|l| {
                    if l["connected"] == true {
                        "connected"
                    } else {
                        "offline"
                    }
                })
                .unwrap_or("offline");
            t.row(vec![
                node_name(n),
                short(s(n, "nodeId")),
                s(n, "platform").to_owned(),
                s(n, "version").to_owned(),
                state.to_owned(),
                strs(&n["commands"]).len().to_string(),
                ago(n["approvedAtMs"].as_i64()),
            ]);
        }
        out.push_str(&format!("Paired nodes ({})\n", paired.len()));
        out.push_str(&t.render());
    }
    if out.is_empty() {
        out.push_str("No pending or paired nodes.\n");
    }
    print_out(&out);
    Ok(())
}

fn render_pending(pending: &[Value]) -> String {
    if pending.is_empty() {
        return String::new();
    }
    let mut t = Table::new(&[
        "Request",
        "Node",
        "Platform",
        "Version",
        "Commands",
        "Approval needs",
        "Age",
    ]);
    for r in pending {
        t.row(vec![
            s(r, "requestId").to_owned(),
            format!("{} ({})", node_name(r), short(s(r, "nodeId"))),
            s(r, "platform").to_owned(),
            s(r, "version").to_owned(),
            strs(&r["commands"]).len().to_string(),
            list_text(&node_approve_scopes(r)),
            ago(r["ts"].as_i64()),
        ]);
    }
    let mut out = format!("Pending node requests ({})\n", pending.len());
    out.push_str(&t.render());
    out.push_str("Approve with `clawgate nodes approve <request>` (it shows what it grants).\n");
    out
}

async fn describe(a: NodeArgs) -> Result<(), Failure> {
    let v = rpc::connect(&a.conn, &[scopes::READ])
        .await?
        .run(async |session| {
            let id = resolve_live(session, &a.node).await?;
            let params = json!({"nodeId": id});
            session
                .request_or("node.describe", params, unknown_node(&a.node))
                .await
        })
        .await?;
    if a.conn.json {
        print_json(&v);
        return Ok(());
    }
    print_out(&render_describe(&v));
    Ok(())
}

fn gib(bytes: Option<f64>) -> String {
    bytes
        .map(|b| format!("{:.1} GiB", b / 1_073_741_824.0))
        .unwrap_or_else(|| "?".into())
}

fn render_describe(v: &Value) -> String {
    let mut lines: Vec<(String, String)> = vec![
        ("Node".into(), node_name(v)),
        ("ID".into(), s(v, "nodeId").to_owned()),
    ];
    let family = s(v, "deviceFamily");
    lines.push((
        "Platform".into(),
        format!(
            "{}{} · version {} · client {}/{}",
            s(v, "platform"),
            if family.is_empty() {
                String::new()
            } else {
                format!(" ({family})")
            },
            s(v, "version"),
            s(v, "clientId"),
            s(v, "clientMode")
        ),
    ));
    let state = if v["connected"] == true {
        format!(
            "connected (since {})",
            ago(v["connectedAtMs"].as_i64()).trim_end_matches(" ago")
        )
    } else {
        format!("offline (last seen {})", ago(v["lastSeenAtMs"].as_i64()))
    };
    lines.push(("State".into(), state));
    let approval = s(v, "approvalState");
    lines.push((
        "Approval".into(),
        match v["approvedAtMs"].as_i64() {
            Some(at) if !approval.is_empty() => format!("{approval} (approved {})", ago(Some(at))),
            _ if !approval.is_empty() => approval.to_owned(),
            _ => "—".into(),
        },
    ));
    lines.push(("Caps".into(), list_text(&strs(&v["caps"]))));
    if let Some(h) = v.get("hostStats").filter(|h| h.is_object()) {
        let load = h["loadAverage"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_f64)
                    .map(|x| format!("{x:.2}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        lines.push((
            "Host".into(),
            format!(
                "{} CPUs · load {load} · memory {} free of {} · disk {} free of {}",
                h["cpuCount"]
                    .as_u64()
                    .map(|c| c.to_string())
                    .unwrap_or("?".into()),
                gib(h["memoryFreeBytes"].as_f64()),
                gib(h["memoryTotalBytes"].as_f64()),
                gib(h["diskAvailableBytes"].as_f64()),
                gib(h["diskTotalBytes"].as_f64()),
            ),
        ));
    }
    let path = s(v, "pathEnv");
    if !path.is_empty() {
        lines.push(("PATH".into(), path.to_owned()));
    }
    let commands = strs(&v["commands"]);
    lines.push(("Commands".into(), commands.len().to_string()));
    let mut out = String::new();
    for (k, val) in lines {
        out.push_str(&format!("{k:<9} {}\n", clean(&val)));
    }
    for c in commands {
        out.push_str(&format!("  {}\n", clean(&c)));
    }
    out
}

// ---- pending / approve / reject -------------------------------------------------------------

async fn pending(a: PlainArgs) -> Result<(), Failure> {
    let v = call_once(&a.conn, &[scopes::PAIRING], "node.pair.list").await?;
    let pending = nodes_of(&v, "pending");
    if a.conn.json {
        print_json(&Value::Array(pending));
        return Ok(());
    }
    if pending.is_empty() {
        print_out("No pending node requests.");
    } else {
        print_out(&render_pending(&pending));
    }
    Ok(())
}

fn describe_node_request(r: &Value, needs: &[String]) -> String {
    let commands = strs(&r["commands"]);
    let mut out = format!("Approving node request {}:\n", clean(s(r, "requestId")));
    for (label, value) in [
        ("Node", format!("{} ({})", node_name(r), s(r, "nodeId"))),
        (
            "Platform",
            format!(
                "{} · version {} · client {}/{}",
                s(r, "platform"),
                s(r, "version"),
                s(r, "clientId"),
                s(r, "clientMode")
            ),
        ),
        ("Caps", list_text(&strs(&r["caps"]))),
        (
            "Commands",
            format!("{}: {}", commands.len(), list_text(&commands)),
        ),
        ("Needs", list_text(needs)),
    ] {
        out.push_str(&format!("  {label:<9} {}\n", clean(&value)));
    }
    out
}

fn unknown_request(id: &str, pending: &[Value]) -> Failure {
    let ids: Vec<&str> = pending.iter().map(|r| s(r, "requestId")).collect();
    Failure::not_found(
        format!("no pending node request {id}"),
        vec![
            if ids.is_empty() {
                "there are no pending node requests; a node host creates one when it connects"
                    .into()
            } else {
                format!("pending node requests: {}", ids.join(", "))
            },
            "run `clawgate nodes pending`".into(),
        ],
    )
}

/// `no pending node request` when the gateway does not know the request.
fn unknown_request_error(id: &str) -> impl FnOnce(&RpcError) -> Option<Failure> {
    move |e| is_unknown(e, "requestId").then(|| unknown_request(id, &[]))
}

async fn approve(a: RequestArgs) -> Result<(), Failure> {
    let id = a.request_id.trim().to_owned();
    let (session, request) = rpc::connect(&a.conn, &[scopes::PAIRING])
        .await?
        .try_run(async |session| {
            let v = session.request("node.pair.list", json!({})).await?;
            let pending = nodes_of(&v, "pending");
            match pending.iter().find(|r| s(r, "requestId") == id) {
                Some(request) => Ok(request.clone()),
                None => Err(unknown_request(&id, &pending)),
            }
        })
        .await?;
    let needed = node_approve_scopes(&request);
    if !a.conn.json {
        print_out(&describe_node_request(&request, &needed));
    }
    let v = session
        .widen(&a.conn, &needed)
        .await?
        .run(async |session| {
            let params = json!({"requestId": id});
            session
                .request_or("node.pair.approve", params, unknown_request_error(&id))
                .await
        })
        .await?;
    if a.conn.json {
        print_json(&v);
    } else {
        let n = &v["node"];
        print_out(&format!(
            "Approved node {} ({}): {} commands.",
            clean(&node_name(n)),
            clean(s(n, "nodeId")),
            strs(&n["commands"]).len()
        ));
    }
    Ok(())
}

async fn reject(a: RequestArgs) -> Result<(), Failure> {
    let id = a.request_id.trim().to_owned();
    let v = rpc::connect(&a.conn, &[scopes::PAIRING])
        .await?
        .run(async |session| {
            let params = json!({"requestId": id});
            session
                .request_or("node.pair.reject", params, unknown_request_error(&id))
                .await
        })
        .await?;
    if a.conn.json {
        print_json(&v);
    } else {
        print_out(&format!(
            "Rejected node request {id} (node {}).",
            clean(s(&v, "nodeId"))
        ));
    }
    Ok(())
}

// ---- remove / rename ------------------------------------------------------------------------

/// Resolves a node from `node.pair.list` (what a pairing-scoped connection can see).
async fn resolve_paired(session: &Session, query: &str) -> Result<String, Failure> {
    let known = session.try_request("node.pair.list", json!({})).await.ok();
    let mut candidates = known
        .as_ref()
        .map(|v| nodes_of(v, "paired"))
        .unwrap_or_default();
    candidates.extend(
        known
            .as_ref()
            .map(|v| nodes_of(v, "pending"))
            .unwrap_or_default(),
    );
    resolve_node(&candidates, query)
}

/// Resolves a node from `node.list` (the nodes the gateway knows now).
async fn resolve_live(session: &Session, query: &str) -> Result<String, Failure> {
    let known = session.try_request("node.list", json!({})).await.ok();
    resolve_node(
        &known.map(|l| nodes_of(&l, "nodes")).unwrap_or_default(),
        query,
    )
}

async fn remove(a: NodeArgs) -> Result<(), Failure> {
    let v = rpc::connect(&a.conn, &[scopes::PAIRING])
        .await?
        .run(async |session| {
            let id = resolve_paired(session, &a.node).await?;
            let params = json!({"nodeId": id});
            session
                .request_or("node.pair.remove", params, unknown_node(&a.node))
                .await
        })
        .await?;
    if a.conn.json {
        print_json(&v);
    } else {
        print_out(&format!("Removed node {}.", clean(s(&v, "nodeId"))));
    }
    Ok(())
}

async fn rename(a: RenameArgs) -> Result<(), Failure> {
    let name = a.name.trim().to_owned();
    if name.is_empty() {
        return Err(Failure::usage(
            "the new name must not be empty".into(),
            vec![],
        ));
    }
    // node.rename needs operator.pairing on the gateway.
    let v = rpc::connect(&a.conn, &[scopes::PAIRING])
        .await?
        .run(async |session| {
            let id = resolve_paired(session, &a.node).await?;
            let params = json!({"nodeId": id, "displayName": name});
            session
                .request_or("node.rename", params, unknown_node(&a.node))
                .await
        })
        .await?;
    if a.conn.json {
        print_json(&v);
    } else {
        print_out(&format!(
            "Renamed node {} → {}.",
            clean(s(&v, "nodeId")),
            clean(s(&v, "displayName"))
        ));
    }
    Ok(())
}

// ---- invoke ---------------------------------------------------------------------------------

fn invoke_failure(session: &Session, e: &RpcError, node: &str, timeout_ms: u64) -> Failure {
    let mut f = session.rpc_failure("node.invoke", e);
    let Some(w) = e.wire() else {
        return f;
    };
    let node_code = w
        .details
        .as_ref()
        .and_then(|d| d.pointer("/nodeError/code"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let msg = w.message.as_str();
    let hint = if node_code == "TIMEOUT" {
        Some(format!(
            "the node did not finish within {timeout_ms} ms (the gateway cancelled it); raise --invoke-timeout"
        ))
    } else if node_code == "SYSTEM_RUN_DENIED" {
        Some("the node's exec approvals refused it (they live on the node: security/ask/allowlist); check them with `clawgate nodes invoke <node> --command system.execApprovals.get`".into())
    } else if msg.contains("awaiting operator approval")
        || msg.contains("pending approval")
        || w.detail_code() == Some("PAIRING_CHANGED")
    {
        Some("the node's capabilities are not approved (yet): `clawgate nodes pending`, then `clawgate nodes approve <request>`".into())
    } else if msg.starts_with("node command not allowed") {
        Some("the gateway does not allow this command for nodes; list it in gateway.nodes.commands.allow in the gateway's config".into())
    } else if msg.contains("unknown nodeId") || msg.contains("not connected") {
        Some(format!(
            "is {node:?} connected? see `clawgate nodes status`"
        ))
    } else {
        None
    };
    if let Some(h) = hint {
        f.fixes.insert(0, h);
    }
    f
}

async fn invoke(a: InvokeArgs) -> Result<(), Failure> {
    let params: Value = serde_json::from_str(&a.params).map_err(|e| {
        Failure::usage(
            format!("--params must be a JSON object: {e}"),
            vec![r#"for example --params '{"bins":["sh"]}'"#.into()],
        )
    })?;
    if !params.is_object() {
        return Err(Failure::usage(
            format!("--params must be a JSON object (got {params})"),
            vec![r#"for example --params '{"command":["echo","hi"]}'"#.into()],
        ));
    }
    let command = a.command.trim().to_owned();
    if command.is_empty() {
        return Err(Failure::usage("--command must not be empty".into(), vec![]));
    }
    if a.idempotency_key.as_deref() == Some("") {
        return Err(Failure::usage(
            "--idempotency-key must not be empty".into(),
            vec![],
        ));
    }
    let mut session = rpc::connect(&a.conn, &[scopes::WRITE]).await?;
    // The node gets the invoke timeout; the call may take that long plus a margin.
    let budget = tokio::time::Instant::now() + Duration::from_millis(a.invoke_timeout + 5_000);
    if budget > session.deadline {
        session.deadline = budget;
    }
    let v = session
        .run(async |session| {
            let id = resolve_live(session, &a.node).await?;
            let key = a
                .idempotency_key
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            let p = json!({"nodeId": id, "command": command, "params": params,
                "idempotencyKey": key, "timeoutMs": a.invoke_timeout});
            let failed = |e: &RpcError| Some(invoke_failure(session, e, &a.node, a.invoke_timeout));
            session.request_or("node.invoke", p, failed).await
        })
        .await?;
    print_json(&v);
    if v.get("ok") == Some(&Value::Bool(false)) {
        return Err(Failure {
            kind: FailureKind::Rpc,
            json: json!({"type": "node_error", "message": "the node reported a failure"}),
            message: "the node reported a failure".into(),
            fixes: vec![],
        });
    }
    Ok(())
}
