//! The measurements, run against one gateway at a time with the same client code.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use futures_util::StreamExt as _;
use tokio::runtime::Runtime;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::gateway::{Home, Kind, Launcher, NodeHost, Running};
use crate::proc;
use crate::report::{Better, Cell, Row, Target, Unit};
use crate::stats::Latencies;
use crate::ws::{Auth, Client, Conn, Device, Incoming, NODE_COMMANDS};

/// How much of each measurement to do for one gateway.
#[derive(Debug, Clone)]
pub struct Plan {
    pub cold_fresh: usize,
    /// The last of these keeps running for the other measurements (at least one start).
    pub cold_reused: usize,
    pub idle: Duration,
    pub cli_runs: usize,
    pub health_rounds: usize,
    pub health_calls_one: usize,
    pub health_sockets: usize,
    pub health_calls_each: usize,
    pub hs_rounds: usize,
    pub hs_seq: usize,
    pub hs_parallel: usize,
    pub hs_par_total: usize,
    pub conn_levels: Vec<usize>,
    pub node_rounds: usize,
    /// Sequential `node.invoke` calls per round (and as many `health` calls on the same socket).
    pub node_calls_one: usize,
    pub node_operators: usize,
    pub node_calls_each: usize,
    /// Connections opened, authenticated and closed in the churn measurement.
    pub churn_connections: usize,
    /// Untimed chat turns before the timed ones (the first turn sets up the session).
    pub agent_warmup: usize,
    /// Timed chat turns, each with one `exec` on the node.
    pub agent_turns: usize,
    /// Timed Telegram turns of each kind (node tool, plain reply).
    pub tg_turns: usize,
    /// Chats that each send one DM at once.
    pub tg_chats: usize,
}

impl Plan {
    /// OpenClaw is three orders of magnitude slower in places: it gets fewer iterations so that
    /// the default run stays within minutes. Every number is a rate or a percentile, so
    /// different counts stay comparable.
    pub fn new(kind: Kind, quick: bool) -> Plan {
        let fast = kind == Kind::Clawgate;
        let pick = |cg_default: usize, oc_default: usize, cg_quick: usize, oc_quick: usize| match (
            fast, quick,
        ) {
            (true, false) => cg_default,
            (false, false) => oc_default,
            (true, true) => cg_quick,
            (false, true) => oc_quick,
        };
        Plan {
            cold_fresh: pick(15, 3, 5, 1),
            cold_reused: pick(15, 3, 5, 1),
            idle: Duration::from_secs(if quick { 5 } else { 30 }),
            cli_runs: pick(20, 5, 5, 2),
            health_rounds: pick(3, 3, 1, 1),
            health_calls_one: pick(20_000, 2_000, 2_000, 2_000),
            health_sockets: 8,
            health_calls_each: pick(5_000, 500, 1_000, 250),
            hs_rounds: pick(3, 3, 1, 1),
            hs_seq: pick(2_000, 200, 500, 100),
            hs_parallel: 8,
            hs_par_total: pick(4_000, 400, 1_000, 200),
            conn_levels: if quick {
                vec![1_000]
            } else {
                vec![1_000, 10_000]
            },
            node_rounds: pick(3, 3, 1, 1),
            node_calls_one: pick(5_000, 500, 1_000, 200),
            node_operators: 8,
            node_calls_each: pick(1_000, 100, 250, 50),
            churn_connections: pick(10_000, 10_000, 2_000, 1_000),
            agent_warmup: pick(2, 2, 1, 1),
            agent_turns: pick(20, 20, 5, 5),
            tg_turns: pick(20, 10, 5, 3),
            tg_chats: pick(20, 10, 10, 5),
        }
    }
}

/// What one gateway's run produced: metric id → cell, plus versions and notes.
#[derive(Debug, Default)]
pub struct GatewayRun {
    pub cells: BTreeMap<String, Cell>,
    pub version: Option<String>,
    pub notes: Vec<String>,
}

impl GatewayRun {
    fn set(&mut self, id: &str, samples: Vec<f64>) {
        self.cells.insert(id.to_owned(), Cell::of(samples));
    }

    fn fail(&mut self, ids: &[&str], err: &anyhow::Error) {
        let first = format!("{err:#}");
        let first = first.lines().next().unwrap_or("").to_owned();
        for id in ids {
            self.cells
                .entry((*id).to_owned())
                .or_insert_with(|| Cell::note(format!("failed: {first}")));
        }
    }
}

macro_rules! say {
    ($kind:expr, $($arg:tt)*) => {
        eprintln!("[{}] {}", $kind.label(), format!($($arg)*))
    };
}

fn ms(s: f64) -> String {
    format!("{:.2} ms", s * 1e3)
}

mod telegram;
use telegram::S11;
pub use telegram::telegram_section;

/// Runs every measurement against the gateway `l` describes; `node_host` is the real OpenClaw
/// CLI, whose `node run` serves the agent's `exec` for either gateway.
pub fn bench_gateway(
    l: &Launcher,
    node_host: Option<&Path>,
    plan: &Plan,
    rt: &Runtime,
) -> GatewayRun {
    let kind = l.kind;
    let mut out = GatewayRun::default();

    // 1. Cold starts: fresh homes, then one reused home whose last start stays up.
    let mut samples: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut last_home = None;
    let mut running: Option<Running> = None;
    let mut failure = None;
    for i in 0..plan.cold_fresh {
        let home = match Home::new(kind) {
            Ok(h) => h,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        match l.start_timed(&home) {
            Ok((mut r, t)) => {
                r.stop();
                say!(
                    kind,
                    "cold start {}/{} fresh: /healthz {}, hello-ok {}",
                    i + 1,
                    plan.cold_fresh,
                    ms(t.healthz),
                    ms(t.hello)
                );
                samples
                    .entry("start_healthz_fresh")
                    .or_default()
                    .push(t.healthz);
                samples
                    .entry("start_hello_fresh")
                    .or_default()
                    .push(t.hello);
                last_home = Some(home);
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let home = match last_home.map(Ok).unwrap_or_else(|| Home::new(kind)) {
        Ok(h) => h,
        Err(e) => {
            out.fail(ALL_GATEWAY_ROWS, &e);
            return out;
        }
    };
    let reused = plan.cold_reused.max(1);
    if failure.is_none() {
        for i in 0..reused {
            match l.start_timed(&home) {
                Ok((mut r, t)) => {
                    say!(
                        kind,
                        "cold start {}/{} reused: /healthz {}, hello-ok {}",
                        i + 1,
                        reused,
                        ms(t.healthz),
                        ms(t.hello)
                    );
                    samples
                        .entry("start_healthz_reused")
                        .or_default()
                        .push(t.healthz);
                    samples
                        .entry("start_hello_reused")
                        .or_default()
                        .push(t.hello);
                    if i + 1 == reused {
                        running = Some(r);
                    } else {
                        r.stop();
                    }
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
    }
    for (id, s) in samples {
        out.set(id, s);
    }
    let Some(mut gw) = running else {
        let e = failure.unwrap_or_else(|| anyhow!("gateway did not start"));
        say!(kind, "cannot start: {e:#}");
        out.fail(ALL_GATEWAY_ROWS, &e);
        return out;
    };
    let ready_at = Instant::now();
    let (pid, addr) = (gw.pid, gw.addr);

    // 2. Idle RSS of the whole tree.
    let wait = plan.idle.saturating_sub(ready_at.elapsed());
    say!(
        kind,
        "idle for {:.0} s (RSS of the process tree afterwards)",
        plan.idle.as_secs_f64()
    );
    std::thread::sleep(wait);
    let mut idle = Vec::new();
    let mut idle_anon = Vec::new();
    let mut processes = 0;
    for _ in 0..5 {
        let m = proc::tree_memory(pid);
        idle.push(m.rss as f64);
        idle_anon.push(m.anon as f64);
        processes = processes.max(m.processes);
        std::thread::sleep(Duration::from_millis(200));
    }
    say!(
        kind,
        "idle RSS {:.1} MB in {processes} process(es)",
        idle[0] / 1e6
    );
    out.notes.push(format!(
        "{} runs as {processes} process(es) when idle",
        kind.label()
    ));
    out.set("idle_rss", idle);
    out.set("idle_anon", idle_anon);

    // 6. Idle authenticated connections, first: the tree's RSS is then still the idle RSS, not
    //    inflated (or, for a garbage-collected heap, padded with free space) by the load phases.
    let token: Arc<str> = Arc::from(l.token.as_str());
    match rt.block_on(hold(kind, addr, token.clone(), &plan.conn_levels, pid)) {
        Ok(levels) => {
            for lv in levels {
                let key = if lv.n >= 10_000 { "conn10k" } else { "conn1k" };
                out.set(&format!("{key}_mem"), vec![lv.per_conn_bytes]);
                out.set(&format!("{key}_open"), vec![lv.open_secs]);
                let mut held = Cell::of(vec![lv.held_ticked as f64]);
                let mut note = Vec::new();
                if lv.still_open < lv.n {
                    note.push(format!("{} of {} still open", lv.still_open, lv.n));
                }
                if lv.failed > 0 {
                    note.push(format!(
                        "{} failed to open: {}",
                        lv.failed,
                        lv.first_error.as_deref().unwrap_or("?")
                    ));
                }
                if !note.is_empty() {
                    held.note = Some(note.join("; "));
                }
                out.cells.insert(format!("{key}_held"), held);
            }
        }
        Err(e) => {
            say!(kind, "idle connections failed: {e:#}");
            out.fail(
                &[
                    "conn1k_mem",
                    "conn1k_open",
                    "conn1k_held",
                    "conn10k_mem",
                    "conn10k_open",
                    "conn10k_held",
                ],
                &e,
            );
        }
    }

    // 3. CLI round trips.
    match cli_times(l, addr, plan.cli_runs) {
        Ok((calls, versions, version)) => {
            say!(
                kind,
                "CLI gateway call health: median {}; --version: median {}",
                ms(crate::stats::Summary::of(&calls)
                    .map(|s| s.median)
                    .unwrap_or(0.0)),
                ms(crate::stats::Summary::of(&versions)
                    .map(|s| s.median)
                    .unwrap_or(0.0))
            );
            out.set("cli_call", calls);
            out.set("cli_version", versions);
            out.version = Some(version);
        }
        Err(e) => {
            say!(kind, "CLI failed: {e:#}");
            out.fail(&["cli_call", "cli_version"], &e);
        }
    }

    // 4. health RPC.
    match rt.block_on(health(kind, addr, token.clone(), plan, pid)) {
        Ok(h) => {
            for (id, s) in h {
                out.set(id, s);
            }
        }
        Err(e) => {
            say!(kind, "health RPC failed: {e:#}");
            out.fail(HEALTH_ROWS, &e);
        }
    }

    // 5. Handshakes, shared token and device-signed.
    let device = Arc::new(Device::generate());
    for (name, dev) in [("token", None), ("signed", Some(device))] {
        match rt.block_on(handshake_rounds(kind, addr, token.clone(), dev, plan, pid)) {
            Ok(h) => {
                for (suffix, s) in h {
                    out.set(&format!("hs_{name}_{suffix}"), s);
                }
            }
            Err(e) => {
                say!(kind, "{name} handshakes failed: {e:#}");
                let ids: Vec<String> = [
                    "seq_rate", "seq_p50", "seq_p99", "par_rate", "par_p50", "par_p99", "cpu",
                ]
                .iter()
                .map(|s| format!("hs_{name}_{s}"))
                .collect();
                let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                out.fail(&ids, &e);
            }
        }
    }

    // 7. node.invoke, with this client as the node host.
    match rt.block_on(node_invoke(kind, addr, token.clone(), plan, pid)) {
        Ok(n) => {
            for (id, s) in n {
                out.set(id, s);
            }
        }
        Err(e) => {
            say!(kind, "node.invoke failed: {e:#}");
            out.fail(NODE_ROWS, &e);
        }
    }

    // 9. Connection churn, with another client calling `health` throughout.
    match rt.block_on(churn(
        kind,
        addr,
        token.clone(),
        plan.churn_connections,
        pid,
    )) {
        Ok(c) => {
            for (id, s) in c {
                out.set(id, s);
            }
        }
        Err(e) => {
            say!(kind, "connection churn failed: {e:#}");
            out.fail(CHURN_ROWS, &e);
        }
    }

    // Peak: each live process's own high-water mark, summed.
    let peak = proc::tree_memory(pid);
    out.set("peak_rss", vec![peak.hwm as f64]);
    say!(kind, "peak RSS (Σ VmHWM) {:.1} MB", peak.hwm as f64 / 1e6);
    if !gw.is_alive() {
        out.notes
            .push(format!("{} exited during the run", kind.label()));
    }
    if !gw.stop() {
        out.notes.push(format!(
            "{} did not exit within 15 s of SIGTERM and was killed",
            kind.label()
        ));
    }

    // 10. Agent turns, on a gateway of their own whose config names the mock model.
    agent_section(l, node_host, plan, rt, &mut out);
    // 11. The same through Telegram, on another gateway with the channel configured.
    telegram_section(l, node_host, plan, rt, &mut out);
    out
}

/// Item 10 into `out`: the agent turns' rows, or why they failed.
pub fn agent_section(
    l: &Launcher,
    node_host: Option<&Path>,
    plan: &Plan,
    rt: &Runtime,
    out: &mut GatewayRun,
) {
    let kind = l.kind;
    match agent_turns(l, node_host, plan, rt) {
        Ok(a) => {
            let done = a.turns.len();
            if let Some(l) = Latencies::of(&a.turns) {
                let sorted = crate::stats::sorted(&a.turns);
                let p95 = crate::stats::percentile(&sorted, 95.0).unwrap_or(l.max);
                out.set("agent_turn_p95", vec![p95]);
                out.set("agent_turn", a.turns);
            }
            let mut count = Cell::of(vec![done as f64]);
            if let Some(f) = &a.failure {
                count.note = Some(f.clone());
                for id in ["agent_turn", "agent_turn_p95"] {
                    out.cells
                        .entry(id.to_owned())
                        .or_insert_with(|| Cell::note(format!("failed: {f}")));
                }
            }
            out.cells.insert("agent_turns_done".into(), count);
            out.set("agent_rss", a.rss);
            match a.node_runs {
                Ok(runs) => {
                    if let Some(l) = Latencies::of(&runs) {
                        out.set("agent_node_run", vec![l.p50]);
                    }
                }
                Err(e) => {
                    out.cells
                        .insert("agent_node_run".into(), Cell::note(format!("failed: {e}")));
                }
            }
            out.notes.extend(a.notes);
        }
        Err(e) => {
            say!(kind, "agent turns failed: {e:#}");
            out.fail(AGENT_ROWS, &e);
        }
    }
}

const AGENT_ROWS: &[&str] = &[
    "agent_turn",
    "agent_turn_p95",
    "agent_turns_done",
    "agent_rss",
];
/// The session every turn goes to (the main session, as a chat client uses it).
const AGENT_SESSION: &str = "agent:main:main";
const AGENT_NODE_NAME: &str = "bench-node";
/// Pairing and approval of the real node host, from its start (a Node.js process).
const AGENT_SETUP_TIMEOUT: Duration = Duration::from_secs(120);
/// A warm-up turn (the first sets up the session and, for OpenClaw, loads its agent runtime).
const AGENT_WARMUP_TIMEOUT: Duration = Duration::from_secs(120);
const AGENT_TURN_TIMEOUT: Duration = Duration::from_secs(60);
/// Time for the gateway to settle after the last turn before its RSS is read.
const AGENT_SETTLE: Duration = Duration::from_secs(5);
const AGENT_SCOPES: &[&str] = &["operator.read", "operator.write"];
/// What the mock model asks the node to run on every turn.
const AGENT_COMMAND: &str = "true";

/// The config both gateways get for the agent turns: the mock as an OpenAI-compatible
/// provider and the default model, and no extra "exec completion" turn after a node exec (which
/// OpenClaw runs by default), so that both do the same work.
pub fn agent_config(mock_base_url: &str) -> serde_json::Value {
    serde_json::json!({
        "models": {"providers": {"mock": {
            "baseUrl": mock_base_url,
            "apiKey": "bench-key",
            "api": "openai-completions",
            "timeoutSeconds": 300,
            "models": [{"id": "mock-1", "name": "Mock 1", "input": ["text"],
                        "contextWindow": 32000, "maxTokens": 1024}],
        }}},
        "agents": {"defaults": {"model": {"primary": "mock/mock-1"}}},
        "tools": {"exec": {"notifyOnExit": false}},
    })
}

/// The text of the last `tool` message of an OpenAI chat completions request body.
pub fn last_tool_result(body: &serde_json::Value) -> Option<String> {
    let messages = body["messages"].as_array()?;
    let m = messages.iter().rev().find(|m| m["role"] == "tool")?;
    match &m["content"] {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Array(parts) => Some(
            parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<Vec<_>>()
                .concat(),
        ),
        _ => None,
    }
}

/// Whether the model's last request carried the result of an `exec` that ran on the node.
fn exec_ran_on_node(requests: &[clawgate_testkit::RecordedRequest]) -> anyhow::Result<()> {
    match requests.last().and_then(|r| last_tool_result(&r.body)) {
        Some(r) if ran_on_node(&r) => Ok(()),
        Some(r) => bail!("the exec did not run on the node: {r:?}"),
        None => bail!("the model's last request carried no tool result"),
    }
}

/// A runtime of its own for the fakes a gateway calls (the mock model, the Bot API), so that
/// they answer at once, never waiting for the load client.
fn fakes_runtime() -> anyhow::Result<Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?)
}

/// The RSS of `pid`'s tree once it has been idle for [`AGENT_SETTLE`]: five samples.
fn settled_rss(pid: u32) -> Vec<f64> {
    std::thread::sleep(AGENT_SETTLE);
    let mut rss = Vec::new();
    for _ in 0..5 {
        rss.push(proc::tree_memory(pid).rss as f64);
        std::thread::sleep(Duration::from_millis(200));
    }
    rss
}

/// Whether a tool result is the output of an `exec` that ran on a node (`Node: <id>` first,
/// as both gateways write it), not an error.
pub fn ran_on_node(result: &str) -> bool {
    result.starts_with("Node: ") && !result.contains("\"status\": \"error\"")
}

/// What the agent turns produced.
struct AgentRun {
    /// Seconds from sending `chat.send` to the run's `chat` final, timed turns only.
    turns: Vec<f64>,
    /// The turn that failed and why (the turns stop there).
    failure: Option<String>,
    /// RSS samples of the gateway's tree once the turns are over.
    rss: Vec<f64>,
    /// Seconds per direct `node.invoke system.run ["true"]` on the same node host, or why
    /// those failed.
    node_runs: Result<Vec<f64>, String>,
    notes: Vec<String>,
}

/// The node host's share of a turn: what the `exec` tool of both gateways sends the node for
/// `exec {command: "true", host: "node"}`, straight through `node.invoke` on `node_id` —
/// `system.run.prepare` of `["/bin/sh", "-lc", "true"]`, then `system.run` of the plan it
/// returns. Two untimed then `calls` timed, one after another: the seconds each pair took.
async fn node_runs(c: &mut Conn, node_id: &str, calls: usize) -> anyhow::Result<Vec<f64>> {
    let mut lat = Vec::with_capacity(calls);
    let short_id = &node_id[..8.min(node_id.len())];
    let timeout_ms = AGENT_TURN_TIMEOUT.as_millis() as u64;
    for k in 0..calls + 2 {
        let prepare = serde_json::json!({
            "nodeId": node_id,
            "command": "system.run.prepare",
            "params": {
                "command": ["/bin/sh", "-lc", AGENT_COMMAND],
                "rawCommand": AGENT_COMMAND,
                "security": "full",
                "ask": "off",
                "agentId": "main",
                "sessionKey": AGENT_SESSION,
            },
            "idempotencyKey": format!("bench-prepare-{k}-{short_id}"),
            "timeoutMs": timeout_ms,
        });
        let t = Instant::now();
        let prepared = c.request_value("node.invoke", &prepare).await?;
        let payload = match &prepared["payload"] {
            serde_json::Value::Null => prepared["payloadJSON"]
                .as_str()
                .and_then(|j| serde_json::from_str(j).ok())
                .unwrap_or_default(),
            p => p.clone(),
        };
        let plan = &payload["plan"];
        if !plan["argv"].is_array() {
            bail!("system.run.prepare answered without a plan: {prepared}");
        }
        let run = serde_json::json!({
            "nodeId": node_id,
            "command": "system.run",
            "params": {
                "command": plan["argv"],
                "rawCommand": plan["commandText"],
                "cwd": plan["cwd"],
                "systemRunPlan": plan,
                "timeoutMs": timeout_ms,
                "agentId": "main",
                "sessionKey": AGENT_SESSION,
            },
            "idempotencyKey": format!("bench-run-{k}-{short_id}"),
            "timeoutMs": timeout_ms,
        });
        let res = c.request_value("node.invoke", &run).await?;
        let secs = t.elapsed().as_secs_f64();
        if res["payload"]["exitCode"] != 0 && res["exitCode"] != 0 {
            bail!("system.run did not exit 0: {res}");
        }
        if k >= 2 {
            lat.push(secs);
        }
    }
    Ok(lat)
}

/// Item 10: a gateway configured with the mock model (answering at once: a tool call
/// `exec {command: "true", host: "node"}`, then a short text), the real `openclaw node run`
/// connected and approved, and chat turns on one operator connection, one after another.
fn agent_turns(
    l: &Launcher,
    node_host: Option<&Path>,
    plan: &Plan,
    rt: &Runtime,
) -> anyhow::Result<AgentRun> {
    use clawgate_testkit::{ModelMock, Reply, WireFormat};
    let kind = l.kind;
    let node_bin = node_host.context(
        "the agent turns need the real OpenClaw CLI for their node host: pass --openclaw",
    )?;
    let mock_rt = fakes_runtime()?;
    let mock = mock_rt.block_on(ModelMock::start(WireFormat::OpenAi));
    let home = Home::with_config(kind, &agent_config(&mock.base_url()))?;
    let (mut gw, _) = l.start_timed(&home)?;
    let (pid, addr) = (gw.pid, gw.addr);
    let mut node = NodeHost::spawn(node_bin, addr, &l.token, AGENT_NODE_NAME)?;
    say!(
        kind,
        "agent: gateway with the mock model up; node host starting"
    );
    let token = l.token.as_str();
    let total = plan.agent_warmup + plan.agent_turns;
    let mut run = AgentRun {
        turns: Vec::new(),
        failure: None,
        rss: Vec::new(),
        node_runs: Err("not measured".into()),
        notes: Vec::new(),
    };
    let result: anyhow::Result<()> = rt.block_on(async {
        let node_id = approve_node(
            kind,
            addr,
            token,
            NodeRef::Name(AGENT_NODE_NAME),
            Some("system.run"),
            AGENT_SETUP_TIMEOUT,
        )
        .await?;
        let who = Client::Operator(AGENT_SCOPES);
        let mut c = Conn::open_as(addr, Auth::Token(token), who, None).await?;
        let mut extra_requests = false;
        for i in 0..total {
            mock.push(Reply::tool_call(
                "exec",
                serde_json::json!({"command": AGENT_COMMAND, "host": "node"}),
            ));
            mock.push(Reply::text("It ran."));
            let warmup = i < plan.agent_warmup;
            let within = if warmup {
                AGENT_WARMUP_TIMEOUT
            } else {
                AGENT_TURN_TIMEOUT
            };
            let run_id = format!("bench-turn-{i}-{}", &node_id[..8.min(node_id.len())]);
            let t = Instant::now();
            let turn = c
                .chat_turn(
                    AGENT_SESSION,
                    "Run `true` on the node.",
                    &run_id,
                    tokio::time::Instant::now() + within,
                )
                .await;
            let secs = t.elapsed().as_secs_f64();
            let checked = turn.and_then(|()| {
                let requests = mock.requests();
                if requests.len() != 2 * (i + 1) && !extra_requests {
                    extra_requests = true;
                    run.notes.push(format!(
                        "{}: the model got {} requests after {} turns (2 a turn expected)",
                        kind.label(),
                        requests.len(),
                        i + 1
                    ));
                }
                exec_ran_on_node(&requests)
            });
            match checked {
                Ok(()) => {
                    say!(
                        kind,
                        "agent turn {}/{total}{}: {}",
                        i + 1,
                        if warmup { " (warm-up)" } else { "" },
                        ms(secs)
                    );
                    if !warmup {
                        run.turns.push(secs);
                    }
                }
                Err(e) => {
                    let e = format!("turn {} of {total} failed after {}: {e:#}", i + 1, ms(secs));
                    say!(kind, "agent: {e}");
                    run.failure = Some(e);
                    break;
                }
            }
        }
        // For comparison, the node host's share: the same two node calls through `node.invoke`.
        if run.failure.is_none() {
            run.node_runs = node_runs(&mut c, &node_id, plan.agent_turns)
                .await
                .map_err(|e| format!("{e:#}"));
            if let Err(e) = &run.node_runs {
                say!(kind, "agent: node.invoke system.run failed: {e}");
            }
        }
        let _ = c.close().await;
        Ok(())
    });
    if let Err(e) = result {
        let node_gone = !node.is_alive();
        if node_gone {
            say!(kind, "agent: the node host exited:\n{}", node.log_tail());
        }
        drop(node);
        gw.stop();
        let e = if node_gone {
            e.context("the node host exited")
        } else {
            e
        };
        return Err(e);
    }
    if run.failure.is_some() && !node.is_alive() {
        say!(kind, "agent: the node host exited:\n{}", node.log_tail());
    }
    // Idle again, the agent loaded: the gateway's RSS (the node host is not part of its tree).
    let rss = settled_rss(pid);
    let l50 = Latencies::of(&run.turns);
    say!(
        kind,
        "agent: {} timed turns, p50 {}, max {}; RSS afterwards {:.1} MB",
        run.turns.len(),
        l50.map_or_else(|| "–".into(), |l| ms(l.p50)),
        l50.map_or_else(|| "–".into(), |l| ms(l.max)),
        rss[0] / 1e6
    );
    run.rss = rss;
    drop(node);
    if !gw.is_alive() {
        run.notes
            .push(format!("{} exited during the agent turns", kind.label()));
    }
    gw.stop();
    Ok(run)
}

const ALL_GATEWAY_ROWS: &[&str] = &[
    "idle_anon",
    "start_healthz_fresh",
    "start_hello_fresh",
    "start_healthz_reused",
    "start_hello_reused",
    "idle_rss",
    "peak_rss",
    "cli_call",
    "cli_version",
];

const HEALTH_ROWS: &[&str] = &[
    "ping1_p50",
    "health1_over_ping",
    "health1_cpu",
    "health8_cpu",
    "health1_p50",
    "health1_p90",
    "health1_p99",
    "health1_rate",
    "health8_p50",
    "health8_p99",
    "health8_rate",
];

const NODE_ROWS: &[&str] = &[
    "node1_p50",
    "node1_p90",
    "node1_p99",
    "node1_rate",
    "node_relay",
    "node1_cpu",
    "node8_p50",
    "node8_p99",
    "node8_rate",
    "node8_cpu",
];

const CHURN_ROWS: &[&str] = &[
    "churn_rate",
    "churn_health_p50",
    "churn_health_p99",
    "churn_rss_growth",
];

/// Opens, authenticates and closes `n` connections, `OPEN_CONCURRENCY` at a time, while one
/// more connection calls `health` one call after another: the churn's rate, the other
/// client's latencies meanwhile, and how far the gateway's RSS stays above what it was before
/// once the closed sockets are gone.
async fn churn(
    kind: Kind,
    addr: SocketAddr,
    token: Arc<str>,
    n: usize,
    pid: u32,
) -> anyhow::Result<Vec<(&'static str, Vec<f64>)>> {
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = proc::tree_memory(pid).rss as f64;
    let mut observer = Conn::open(addr, Auth::Token(&token), None).await?;
    for _ in 0..HEALTH_WARMUP {
        observer.request("health", "{}").await?;
    }
    let churning = Arc::new(AtomicBool::new(true));
    let watching = churning.clone();
    let observed = tokio::spawn(async move {
        let mut lat = Vec::new();
        while watching.load(Ordering::Relaxed) {
            let t = Instant::now();
            observer.request("health", "{}").await?;
            lat.push(t.elapsed().as_secs_f64());
        }
        let _ = observer.close().await;
        anyhow::Ok(lat)
    });
    let t0 = Instant::now();
    let mut attempts = futures_util::stream::iter(0..n)
        .map(|_| {
            let token = token.clone();
            async move {
                let c = Conn::open(addr, Auth::Token(&token), None).await?;
                c.close().await
            }
        })
        .buffer_unordered(OPEN_CONCURRENCY);
    let (mut done, mut failed, mut first_error) = (0usize, 0usize, None);
    while let Some(res) = attempts.next().await {
        match res {
            Ok(()) => done += 1,
            Err(e) => {
                failed += 1;
                first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    churning.store(false, Ordering::Relaxed);
    let lat = observed.await??;
    if done == 0 {
        bail!(
            "no connection of {n} opened: {}",
            first_error.unwrap_or_default()
        );
    }
    // Let the gateway notice the closed sockets and free what they held.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = proc::tree_memory(pid).rss as f64;
    let l = Latencies::of(&lat).ok_or_else(|| anyhow!("the observer made no call"))?;
    say!(
        kind,
        "churn: {done} connections opened and closed in {secs:.2} s ({:.0}/s, {failed} failed{}); another client's health meanwhile p50 {}, p99 {} over {} calls; RSS {:.1} → {:.1} MB",
        done as f64 / secs,
        first_error
            .map(|e| format!(", first: {e}"))
            .unwrap_or_default(),
        us(l.p50),
        us(l.p99),
        l.n,
        before / 1e6,
        after / 1e6
    );
    Ok(vec![
        ("churn_rate", vec![done as f64 / secs]),
        ("churn_health_p50", vec![l.p50]),
        ("churn_health_p99", vec![l.p99]),
        ("churn_rss_growth", vec![after - before]),
    ])
}

/// `gateway call health --json` and `--version` with the gateway's own CLI, from a private
/// home; one untimed warm-up run of each first.
fn cli_times(
    l: &Launcher,
    addr: SocketAddr,
    runs: usize,
) -> anyhow::Result<(Vec<f64>, Vec<f64>, String)> {
    let home = Home::new(l.kind)?;
    let url = format!("ws://{addr}");
    let call: Vec<&str> = match l.kind {
        Kind::Clawgate => vec![
            "gateway", "call", "health", "--json", "--url", &url, "--token", &l.token,
        ],
        Kind::OpenClaw => vec![
            "gateway", "call", "health", "--url", &url, "--token", &l.token, "--json",
        ],
    };
    let run = |args: &[&str]| -> anyhow::Result<(f64, Output)> {
        let mut cmd = Command::new(&l.bin);
        cmd.args(args).stdin(Stdio::null());
        home.apply(l.kind, &mut cmd);
        let t = Instant::now();
        let out = cmd
            .output()
            .with_context(|| format!("running {}", l.bin.display()))?;
        let secs = t.elapsed().as_secs_f64();
        if !out.status.success() {
            bail!(
                "`{} {}` exited with {}: {}{}",
                l.kind.key(),
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok((secs, out))
    };
    let (_, first) = run(&call)?;
    let text = String::from_utf8_lossy(&first.stdout);
    if !text.contains('{') {
        bail!("`gateway call health --json` printed no JSON: {text:?}");
    }
    let mut calls = Vec::new();
    for _ in 0..runs {
        calls.push(run(&call)?.0);
    }
    let (_, v) = run(&["--version"])?;
    let version = String::from_utf8_lossy(&v.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_owned();
    let mut versions = Vec::new();
    for _ in 0..runs {
        versions.push(run(&["--version"])?.0);
    }
    Ok((calls, versions, version))
}

const HEALTH_WARMUP: usize = 100;

/// CPU time spent by the gateway's tree and by this client over a stretch of work.
struct CpuMeter {
    pid: u32,
    gateway: f64,
    client: f64,
}

impl CpuMeter {
    fn start(pid: u32) -> CpuMeter {
        CpuMeter {
            pid,
            gateway: proc::tree_cpu_seconds(pid),
            client: proc::own_cpu_seconds(),
        }
    }

    /// `(gateway, client)` CPU seconds per operation since `start`.
    fn per_op(&self, ops: usize) -> (f64, f64) {
        let n = ops.max(1) as f64;
        (
            (proc::tree_cpu_seconds(self.pid) - self.gateway).max(0.0) / n,
            (proc::own_cpu_seconds() - self.client).max(0.0) / n,
        )
    }
}

fn us(s: f64) -> String {
    format!("{:.1} µs", s * 1e6)
}

async fn health(
    kind: Kind,
    addr: SocketAddr,
    token: Arc<str>,
    plan: &Plan,
    pid: u32,
) -> anyhow::Result<Vec<(&'static str, Vec<f64>)>> {
    let mut s: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    for round in 0..plan.health_rounds {
        let cpu = CpuMeter::start(pid);
        let (lat, rate) = health_one(addr, &token, plan.health_calls_one).await?;
        let (gw_cpu, client_cpu) = cpu.per_op(lat.len() + HEALTH_WARMUP);
        let l = Latencies::of(&lat).ok_or_else(|| anyhow!("no calls"))?;
        say!(
            kind,
            "health, one socket, round {}: p50 {}, p99 {}, {rate:.0} req/s; CPU per call: gateway {}, client {}",
            round + 1,
            us(l.p50),
            us(l.p99),
            us(gw_cpu),
            us(client_cpu)
        );
        s.entry("health1_p50").or_default().push(l.p50);
        s.entry("health1_p90").or_default().push(l.p90);
        s.entry("health1_p99").or_default().push(l.p99);
        s.entry("health1_rate").or_default().push(rate);
        s.entry("health1_cpu").or_default().push(gw_cpu);
    }
    for round in 0..plan.health_rounds {
        let (ping, health) = ping_and_health(addr, &token, plan.health_calls_one / 4).await?;
        let p = Latencies::of(&ping).ok_or_else(|| anyhow!("no pings"))?;
        let h = Latencies::of(&health).ok_or_else(|| anyhow!("no calls"))?;
        say!(
            kind,
            "ping and health alternating, one socket, round {}: ping p50 {}, health p50 {}",
            round + 1,
            us(p.p50),
            us(h.p50)
        );
        s.entry("ping1_p50").or_default().push(p.p50);
        s.entry("health1_over_ping")
            .or_default()
            .push(h.p50 - p.p50);
    }
    for round in 0..plan.health_rounds {
        let cpu = CpuMeter::start(pid);
        let (lat, rate) = health_parallel(
            addr,
            token.clone(),
            plan.health_sockets,
            plan.health_calls_each,
        )
        .await?;
        let (gw_cpu, client_cpu) =
            cpu.per_op(lat.len() + plan.health_sockets * (HEALTH_WARMUP / 2 + 1));
        let l = Latencies::of(&lat).ok_or_else(|| anyhow!("no calls"))?;
        say!(
            kind,
            "health, {} sockets, round {}: p50 {}, p99 {}, {rate:.0} req/s; CPU per call: gateway {}, client {}",
            plan.health_sockets,
            round + 1,
            us(l.p50),
            us(l.p99),
            us(gw_cpu),
            us(client_cpu)
        );
        s.entry("health8_p50").or_default().push(l.p50);
        s.entry("health8_p99").or_default().push(l.p99);
        s.entry("health8_rate").or_default().push(rate);
        s.entry("health8_cpu").or_default().push(gw_cpu);
    }
    Ok(s.into_iter().collect())
}

/// Sequential `health` calls on one socket: latencies and calls per second.
async fn health_one(
    addr: SocketAddr,
    token: &str,
    calls: usize,
) -> anyhow::Result<(Vec<f64>, f64)> {
    let mut c = Conn::open(addr, Auth::Token(token), None).await?;
    for _ in 0..HEALTH_WARMUP {
        c.request("health", "{}").await?;
    }
    let mut lat = Vec::with_capacity(calls);
    let t0 = Instant::now();
    for _ in 0..calls {
        let t = Instant::now();
        c.request("health", "{}").await?;
        lat.push(t.elapsed().as_secs_f64());
    }
    let rate = calls as f64 / t0.elapsed().as_secs_f64();
    let _ = c.close().await;
    Ok((lat, rate))
}

/// On one socket, a WebSocket ping then a `health` call, `calls` times: both latencies. One
/// request at a time, the round trip is mostly the two processes waking each other (on
/// separate cores of a virtual machine, tens of µs, far more than either spends working);
/// alternating puts both measurements under the same scheduling, so their difference is
/// the gateway's own share.
async fn ping_and_health(
    addr: SocketAddr,
    token: &str,
    calls: usize,
) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let mut c = Conn::open(addr, Auth::Token(token), None).await?;
    for _ in 0..HEALTH_WARMUP {
        c.ping().await?;
        c.request("health", "{}").await?;
    }
    let (mut ping, mut health) = (Vec::with_capacity(calls), Vec::with_capacity(calls));
    for _ in 0..calls {
        let t = Instant::now();
        c.ping().await?;
        ping.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        c.request("health", "{}").await?;
        health.push(t.elapsed().as_secs_f64());
    }
    let _ = c.close().await;
    Ok((ping, health))
}

/// `sockets` connections, each calling `health` sequentially, all at once.
async fn health_parallel(
    addr: SocketAddr,
    token: Arc<str>,
    sockets: usize,
    calls_each: usize,
) -> anyhow::Result<(Vec<f64>, f64)> {
    let mut conns = Vec::with_capacity(sockets);
    for _ in 0..sockets {
        let mut c = Conn::open(addr, Auth::Token(&token), None).await?;
        for _ in 0..HEALTH_WARMUP / 2 {
            c.request("health", "{}").await?;
        }
        conns.push(c);
    }
    let t0 = Instant::now();
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(calls_each);
                for _ in 0..calls_each {
                    let t = Instant::now();
                    c.request("health", "{}").await?;
                    lat.push(t.elapsed().as_secs_f64());
                }
                anyhow::Ok((c, lat))
            })
        })
        .collect();
    let mut all = Vec::with_capacity(sockets * calls_each);
    let mut done = Vec::new();
    for t in tasks {
        let (c, lat) = t.await??;
        all.extend(lat);
        done.push(c);
    }
    let rate = all.len() as f64 / t0.elapsed().as_secs_f64();
    for c in done {
        let _ = c.close().await;
    }
    Ok((all, rate))
}

/// What the node host answers `system.which {bins: ["sh"]}` with (the same for every call).
const WHICH_RESULT: &str = r#"{"bins":{}}"#;
/// How long the node's pairing and capability approval may take.
const NODE_SETUP_TIMEOUT: Duration = Duration::from_secs(60);
const NODE_WARMUP: usize = 50;
/// Stretches the sequential calls are split into, alternating `health` and `node.invoke`.
const NODE_CHUNKS: usize = 10;
const NODE_ADMIN_SCOPES: &[&str] = &["operator.pairing", "operator.admin", "operator.read"];
const NODE_CALLER_SCOPES: &[&str] = &["operator.read", "operator.write"];

/// The `node.invoke` params: `system.which` on the node, with a unique idempotency key.
pub fn invoke_params(node_id: &str, key: &str) -> String {
    format!(
        r#"{{"nodeId":"{node_id}","command":"system.which","params":{{"bins":["sh"]}},"idempotencyKey":"{key}","timeoutMs":10000}}"#
    )
}

/// Whether a `node.list` entry can be invoked: connected, and its capability approval no longer
/// pending (`approved_here`: this client approved its request; without that only an explicit
/// "approved" counts, since a gateway may list the node before its request exists).
pub fn node_ready(entry: &serde_json::Value, approved_here: bool) -> bool {
    let state = entry["approvalState"].as_str().unwrap_or("");
    entry["connected"] != false
        && !state.starts_with("pending")
        && (approved_here || state == "approved")
}

/// Which node [`approve_node`] waits for: by node id (the node this client plays) or by display
/// name (a node host whose device id this client does not know).
#[derive(Debug, Clone, Copy)]
pub enum NodeRef<'a> {
    Id(&'a str),
    Name(&'a str),
}

impl NodeRef<'_> {
    /// Whether a `node.pair.list` request or `node.list` entry is this node.
    pub fn matches(&self, entry: &serde_json::Value) -> bool {
        match self {
            NodeRef::Id(id) => entry["nodeId"] == *id,
            NodeRef::Name(name) => entry["displayName"] == *name,
        }
    }
}

/// Whether a `node.list` entry declares `command` (always, when there is nothing to check).
pub fn node_declares(entry: &serde_json::Value, command: Option<&str>) -> bool {
    command.is_none_or(|c| {
        entry["commands"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|x| x == c))
    })
}

/// Approves the node's pending capability request as an operator with pairing + admin scopes,
/// then waits until `node.list` shows it invocable (and declaring `needs`, if given), for at
/// most `within`. Returns its node id.
async fn approve_node(
    kind: Kind,
    addr: SocketAddr,
    token: &str,
    node: NodeRef<'_>,
    needs: Option<&str>,
    within: Duration,
) -> anyhow::Result<String> {
    use serde_json::json;
    let mut admin = Conn::open_as(
        addr,
        Auth::Token(token),
        Client::Operator(NODE_ADMIN_SCOPES),
        None,
    )
    .await
    .context("admin operator connect")?;
    let t = Instant::now();
    let mut approved: Option<String> = None;
    loop {
        if approved.is_none() {
            let list = admin.request_value("node.pair.list", &json!({})).await?;
            let pending = list["pending"].as_array().into_iter().flatten();
            if let Some(req) = pending.into_iter().find(|r| node.matches(r)) {
                admin
                    .request_value("node.pair.approve", &json!({"requestId": req["requestId"]}))
                    .await?;
                approved = Some(req["nodeId"].as_str().unwrap_or_default().to_owned());
                say!(
                    kind,
                    "node: approved its capability request after {}",
                    ms(t.elapsed().as_secs_f64())
                );
            }
        }
        let nodes = admin.request_value("node.list", &json!({})).await?;
        let entry = nodes["nodes"].as_array().and_then(|n| {
            n.iter().find(|n| match approved.as_deref() {
                Some(id) if !id.is_empty() => n["nodeId"] == id,
                _ => node.matches(n),
            })
        });
        if let Some(e) = entry
            && node_ready(e, approved.is_some())
            && node_declares(e, needs)
        {
            say!(
                kind,
                "node: invocable after {}",
                ms(t.elapsed().as_secs_f64())
            );
            let id = e["nodeId"].as_str().unwrap_or_default().to_owned();
            let _ = admin.close().await;
            return Ok(id);
        }
        if t.elapsed() > within {
            bail!(
                "node not invocable within {within:?} (request {}; node.list entry {})",
                if approved.is_some() {
                    "approved"
                } else {
                    "never listed"
                },
                entry.map_or_else(|| "missing".into(), |e| e.to_string())
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `total` split into `chunks` near-equal non-empty parts (fewer when `total` is smaller).
pub fn chunk_sizes(total: usize, chunks: usize) -> Vec<usize> {
    let k = chunks.clamp(1, total.max(1));
    (0..k)
        .map(|i| total * (i + 1) / k - total * i / k)
        .filter(|&n| n > 0)
        .collect()
}

/// Sequential `node.invoke` calls on one socket: latencies and calls per second.
async fn invokes(
    c: &mut Conn,
    node_id: &str,
    tag: &str,
    calls: usize,
) -> anyhow::Result<(Vec<f64>, f64)> {
    let mut lat = Vec::with_capacity(calls);
    let t0 = Instant::now();
    for k in 0..calls {
        let params = invoke_params(node_id, &format!("{tag}-{k}"));
        let t = Instant::now();
        c.request("node.invoke", &params).await?;
        lat.push(t.elapsed().as_secs_f64());
    }
    Ok((lat, calls as f64 / t0.elapsed().as_secs_f64()))
}

/// Item 7: `node.invoke` through the gateway to a node host this client plays (connected with a
/// device proof, paired silently on loopback, its commands approved by an admin operator),
/// answering every request at once. Sequential calls on one operator socket (with as many
/// `health` calls on the same socket, for the relay overhead), then several operators at once.
async fn node_invoke(
    kind: Kind,
    addr: SocketAddr,
    token: Arc<str>,
    plan: &Plan,
    pid: u32,
) -> anyhow::Result<Vec<(&'static str, Vec<f64>)>> {
    let device = Device::generate();
    let node_id: Arc<str> = Arc::from(device.id());
    let t = Instant::now();
    let node = loop {
        let who = Client::Node(NODE_COMMANDS);
        match Conn::open_as(addr, Auth::Signed(&token, &device), who, None).await {
            Ok(c) => break c,
            Err(e) if t.elapsed() < NODE_SETUP_TIMEOUT => {
                say!(kind, "node connect: {e:#}; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e.context("node connect")),
        }
    };
    let id = node_id.clone();
    let host = tokio::spawn(async move { node.serve_node(&id, WHICH_RESULT).await });
    let result = node_invoke_measure(kind, addr, &token, &node_id, plan, pid).await;
    let ended = host.is_finished();
    host.abort();
    if let (Ok(answered), true) = (host.await, ended) {
        say!(
            kind,
            "the node's connection closed early, after {answered} answered request(s)"
        );
    }
    result
}

async fn node_invoke_measure(
    kind: Kind,
    addr: SocketAddr,
    token: &Arc<str>,
    node_id: &Arc<str>,
    plan: &Plan,
    pid: u32,
) -> anyhow::Result<Vec<(&'static str, Vec<f64>)>> {
    approve_node(
        kind,
        addr,
        token,
        NodeRef::Id(node_id),
        None,
        NODE_SETUP_TIMEOUT,
    )
    .await?;
    // Idempotency keys: unique per node (a new device every run) and call.
    let tag: Arc<str> = Arc::from(format!("bench-{}", &node_id[..12.min(node_id.len())]));
    let caller = Client::Operator(NODE_CALLER_SCOPES);
    let mut c = Conn::open_as(addr, Auth::Token(token), caller, None).await?;
    invokes(&mut c, node_id, &format!("{tag}-w"), NODE_WARMUP).await?;
    for _ in 0..NODE_WARMUP {
        c.request("health", "{}").await?;
    }
    let mut s: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    for round in 0..plan.node_rounds {
        // Alternating stretches of `health` and `node.invoke` calls, so that both see the same
        // conditions on a shared machine; rate and CPU time count the invoke stretches only.
        let calls = plan.node_calls_one;
        let mut health_lat = Vec::with_capacity(calls);
        let mut lat = Vec::with_capacity(calls);
        let (mut secs, mut gw_total, mut client_total) = (0.0, 0.0, 0.0);
        for (chunk, n) in chunk_sizes(calls, NODE_CHUNKS).into_iter().enumerate() {
            for _ in 0..n {
                let t = Instant::now();
                c.request("health", "{}").await?;
                health_lat.push(t.elapsed().as_secs_f64());
            }
            let cpu = CpuMeter::start(pid);
            let key = format!("{tag}-s{round}-{chunk}");
            let (l, rate) = invokes(&mut c, node_id, &key, n).await?;
            let (g, cl) = cpu.per_op(1);
            secs += l.len() as f64 / rate;
            gw_total += g;
            client_total += cl;
            lat.extend(l);
        }
        let rate = lat.len() as f64 / secs;
        let (gw_cpu, client_cpu) = (gw_total / calls as f64, client_total / calls as f64);
        let l = Latencies::of(&lat).ok_or_else(|| anyhow!("no invokes"))?;
        let h = Latencies::of(&health_lat).ok_or_else(|| anyhow!("no health calls"))?;
        say!(
            kind,
            "node.invoke, one operator, round {}: p50 {}, p99 {}, {rate:.0}/s (health p50 {}: relay {}); CPU per invoke: gateway {}, client {}",
            round + 1,
            us(l.p50),
            us(l.p99),
            us(h.p50),
            us(l.p50 - h.p50),
            us(gw_cpu),
            us(client_cpu)
        );
        s.entry("node1_p50").or_default().push(l.p50);
        s.entry("node1_p90").or_default().push(l.p90);
        s.entry("node1_p99").or_default().push(l.p99);
        s.entry("node1_rate").or_default().push(rate);
        s.entry("node1_cpu").or_default().push(gw_cpu);
        s.entry("node_relay").or_default().push(l.p50 - h.p50);
    }
    let _ = c.close().await;
    for round in 0..plan.node_rounds {
        let mut conns = Vec::with_capacity(plan.node_operators);
        for i in 0..plan.node_operators {
            let mut c = Conn::open_as(addr, Auth::Token(token), caller, None).await?;
            invokes(
                &mut c,
                node_id,
                &format!("{tag}-w{round}-{i}"),
                NODE_WARMUP / 5,
            )
            .await?;
            conns.push(c);
        }
        let cpu = CpuMeter::start(pid);
        let t0 = Instant::now();
        let tasks: Vec<_> = conns
            .into_iter()
            .enumerate()
            .map(|(i, mut c)| {
                let (node_id, key) = (node_id.clone(), format!("{tag}-p{round}-{i}"));
                let calls = plan.node_calls_each;
                tokio::spawn(async move {
                    let (lat, _) = invokes(&mut c, &node_id, &key, calls).await?;
                    anyhow::Ok((c, lat))
                })
            })
            .collect();
        let mut all = Vec::new();
        let mut done = Vec::new();
        for t in tasks {
            let (c, lat) = t.await??;
            all.extend(lat);
            done.push(c);
        }
        let rate = all.len() as f64 / t0.elapsed().as_secs_f64();
        let (gw_cpu, client_cpu) = cpu.per_op(all.len());
        for c in done {
            let _ = c.close().await;
        }
        let l = Latencies::of(&all).ok_or_else(|| anyhow!("no invokes"))?;
        say!(
            kind,
            "node.invoke, {} operators, round {}: p50 {}, p99 {}, {rate:.0}/s; CPU per invoke: gateway {}, client {}",
            plan.node_operators,
            round + 1,
            us(l.p50),
            us(l.p99),
            us(gw_cpu),
            us(client_cpu)
        );
        s.entry("node8_p50").or_default().push(l.p50);
        s.entry("node8_p99").or_default().push(l.p99);
        s.entry("node8_rate").or_default().push(rate);
        s.entry("node8_cpu").or_default().push(gw_cpu);
    }
    Ok(s.into_iter().collect())
}

/// Sequential and parallel connect → hello-ok → close, `hs_rounds` times each.
async fn handshake_rounds(
    kind: Kind,
    addr: SocketAddr,
    token: Arc<str>,
    device: Option<Arc<Device>>,
    plan: &Plan,
    pid: u32,
) -> anyhow::Result<Vec<(&'static str, Vec<f64>)>> {
    let name = if device.is_some() {
        "device-signed"
    } else {
        "shared-token"
    };
    // Warm-up; a new device is paired (silently, on loopback) by its first connect.
    handshakes(addr, token.clone(), device.clone(), 20, 1).await?;
    let mut s: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    for (mode, total, parallel) in [
        ("seq", plan.hs_seq, 1),
        ("par", plan.hs_par_total, plan.hs_parallel),
    ] {
        for round in 0..plan.hs_rounds {
            let cpu = CpuMeter::start(pid);
            let (lat, rate) =
                handshakes(addr, token.clone(), device.clone(), total, parallel).await?;
            let (gw_cpu, client_cpu) = cpu.per_op(lat.len());
            let l = Latencies::of(&lat).ok_or_else(|| anyhow!("no handshakes"))?;
            say!(
                kind,
                "{name} handshakes, {parallel} at a time, round {}: {rate:.0}/s, p50 {}, p99 {}; CPU per handshake: gateway {}, client {}",
                round + 1,
                us(l.p50),
                us(l.p99),
                us(gw_cpu),
                us(client_cpu)
            );
            if mode == "par" {
                s.entry("cpu").or_default().push(gw_cpu);
            }
            let (r, p50, p99) = match mode {
                "seq" => ("seq_rate", "seq_p50", "seq_p99"),
                _ => ("par_rate", "par_p50", "par_p99"),
            };
            s.entry(r).or_default().push(rate);
            s.entry(p50).or_default().push(l.p50);
            s.entry(p99).or_default().push(l.p99);
        }
    }
    Ok(s.into_iter().collect())
}

/// `total` handshakes split over `parallel` workers: per-handshake latencies and handshakes/s.
async fn handshakes(
    addr: SocketAddr,
    token: Arc<str>,
    device: Option<Arc<Device>>,
    total: usize,
    parallel: usize,
) -> anyhow::Result<(Vec<f64>, f64)> {
    let each = total.div_ceil(parallel);
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..parallel)
        .map(|_| {
            let (token, device) = (token.clone(), device.clone());
            tokio::spawn(async move {
                let auth = match &device {
                    Some(d) => Auth::Signed(&token, d),
                    None => Auth::Token(&token),
                };
                let mut lat = Vec::with_capacity(each);
                for _ in 0..each {
                    let t = Instant::now();
                    let c = Conn::open(addr, auth, None).await?;
                    c.close().await?;
                    lat.push(t.elapsed().as_secs_f64());
                }
                anyhow::Ok(lat)
            })
        })
        .collect();
    let mut all = Vec::with_capacity(each * parallel);
    for t in tasks {
        all.extend(t.await??);
    }
    let rate = all.len() as f64 / t0.elapsed().as_secs_f64();
    Ok((all, rate))
}

/// One level of the idle-connection measurement.
#[derive(Debug)]
struct HoldLevel {
    n: usize,
    /// Seconds spent opening the first `n` connections (pauses for measuring excluded).
    open_secs: f64,
    /// Growth of the gateway tree's RSS over its RSS with no connections, per open connection.
    per_conn_bytes: f64,
    failed: usize,
    first_error: Option<String>,
    /// Of the first `n`: still open at the end.
    still_open: usize,
    /// Of the first `n`: still open and received at least one `tick`.
    held_ticked: usize,
}

const OPEN_CONCURRENCY: usize = 32;

/// The soft limit on open files of this process.
fn fd_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Opens authenticated connections up to each level, measures the gateway's RSS growth, then
/// keeps them all idle until every one has seen a `tick` (or a tick interval + 10 s passed).
async fn hold(
    kind: Kind,
    addr: SocketAddr,
    token: Arc<str>,
    levels: &[usize],
    pid: u32,
) -> anyhow::Result<Vec<HoldLevel>> {
    let max = levels.iter().copied().max().unwrap_or(0);
    if let Some(limit) = fd_limit()
        && limit < max as u64 + 100
    {
        bail!("open-file limit {limit} is too low for {max} connections (raise it with ulimit -n)");
    }
    let ok: Arc<Vec<AtomicBool>> = Arc::new((0..max).map(|_| AtomicBool::new(false)).collect());
    let ticked: Arc<Vec<AtomicBool>> = Arc::new((0..max).map(|_| AtomicBool::new(false)).collect());
    let closed: Arc<Vec<AtomicBool>> = Arc::new((0..max).map(|_| AtomicBool::new(false)).collect());
    let tick_ms = Arc::new(AtomicU64::new(0));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let baseline = proc::tree_memory(pid).rss as f64;
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let mut readers = Vec::with_capacity(max);
    let mut opened = 0;
    let mut open_secs = 0.0;
    let mut failed = 0;
    let mut first_error = None;
    let mut levels_out = Vec::new();
    for &n in levels {
        let t = Instant::now();
        let token2 = token.clone();
        let mut attempts = futures_util::stream::iter(opened..n)
            .map(|i| {
                let token = token2.clone();
                async move { (i, Conn::open(addr, Auth::Token(&token), Some(config)).await) }
            })
            .buffer_unordered(OPEN_CONCURRENCY);
        let mut level_failed = 0;
        while let Some((i, res)) = attempts.next().await {
            match res {
                Ok(conn) => {
                    if let Some(ms) = conn.tick_interval_ms {
                        tick_ms.store(ms, Ordering::Relaxed);
                    }
                    ok[i].store(true, Ordering::Relaxed);
                    let (ticked, closed) = (ticked.clone(), closed.clone());
                    readers.push(tokio::spawn(async move {
                        let mut conn = conn;
                        loop {
                            match conn.next_incoming().await {
                                Incoming::Tick => ticked[i].store(true, Ordering::Relaxed),
                                Incoming::OtherEvent => {}
                                Incoming::Closed(_) => {
                                    closed[i].store(true, Ordering::Relaxed);
                                    return;
                                }
                            }
                        }
                    }));
                }
                Err(e) => {
                    failed += 1;
                    level_failed += 1;
                    first_error.get_or_insert_with(|| format!("{e:#}"));
                    if level_failed > (n - opened) / 10 + 10 {
                        break;
                    }
                }
            }
        }
        drop(attempts);
        open_secs += t.elapsed().as_secs_f64();
        opened = n;
        let open_now = ok[..n].iter().filter(|b| b.load(Ordering::Relaxed)).count();
        say!(
            kind,
            "{open_now} idle connections open after {open_secs:.2} s ({failed} failed)"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss = proc::tree_memory(pid).rss as f64;
        let per_conn = (rss - baseline) / open_now.max(1) as f64;
        say!(
            kind,
            "RSS {:.1} MB (baseline {:.1} MB): {:.0} B per connection",
            rss / 1e6,
            baseline / 1e6,
            per_conn
        );
        levels_out.push(HoldLevel {
            n,
            open_secs,
            per_conn_bytes: per_conn,
            failed,
            first_error: first_error.clone(),
            still_open: 0,
            held_ticked: 0,
        });
    }
    // Every open connection must see a tick; ticks come every tickIntervalMs (30 s).
    let interval = match tick_ms.load(Ordering::Relaxed) {
        0 => Duration::from_secs(30),
        ms => Duration::from_millis(ms),
    };
    let deadline = Instant::now() + interval + Duration::from_secs(10);
    say!(
        kind,
        "waiting up to {:.0} s for a tick on every connection",
        (interval + Duration::from_secs(10)).as_secs_f64()
    );
    let waiting = |i: usize| {
        ok[i].load(Ordering::Relaxed)
            && !ticked[i].load(Ordering::Relaxed)
            && !closed[i].load(Ordering::Relaxed)
    };
    while Instant::now() < deadline && (0..max).any(waiting) {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for lv in &mut levels_out {
        let alive =
            |i: &usize| ok[*i].load(Ordering::Relaxed) && !closed[*i].load(Ordering::Relaxed);
        lv.still_open = (0..lv.n).filter(alive).count();
        lv.held_ticked = (0..lv.n)
            .filter(|i| alive(i) && ticked[*i].load(Ordering::Relaxed))
            .count();
        say!(
            kind,
            "of {}: {} still open, {} got a tick",
            lv.n,
            lv.still_open,
            lv.held_ticked
        );
    }
    for r in &readers {
        r.abort();
    }
    for r in readers {
        let _ = r.await;
    }
    // Let the gateway notice the closed sockets before anything else is measured.
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(levels_out)
}

/// Apparent size of a directory tree (like `du -sb`), its files, and how many npm packages it
/// holds (directories with a package.json directly under a `node_modules` or `@scope`).
pub fn tree_size(dir: &Path) -> std::io::Result<(u64, u64, u64)> {
    let (mut bytes, mut files, mut packages) = (0, 0, 0);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            let path = entry.path();
            if meta.is_dir() {
                stack.push(path);
            } else {
                bytes += meta.len();
                files += 1;
                if entry.file_name() == "package.json" && is_package_dir(&d) {
                    packages += 1;
                }
            }
        }
    }
    Ok((bytes, files, packages))
}

fn is_package_dir(d: &Path) -> bool {
    let parent = d.parent();
    let name = |p: Option<&Path>| {
        p.and_then(Path::file_name)
            .and_then(|n| n.to_str())
            .map(str::to_owned)
    };
    match name(parent).as_deref() {
        Some("node_modules") => true,
        Some(scope) if scope.starts_with('@') => {
            name(parent.and_then(Path::parent)).as_deref() == Some("node_modules")
        }
        _ => false,
    }
}

/// clawgate's binary size after `strip` (a stripped copy; the profile may have stripped it
/// already).
pub fn stripped_size(bin: &Path) -> anyhow::Result<(u64, bool)> {
    let dir = tempfile::tempdir()?;
    let copy = dir.path().join("clawgate");
    std::fs::copy(bin, &copy)?;
    let stripped = Command::new("strip")
        .arg(&copy)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    Ok((std::fs::metadata(&copy)?.len(), stripped))
}

/// Static facts: binary size vs the installed package tree.
pub fn footprint(
    clawgate: Option<&Path>,
    openclaw_tree: Option<&Path>,
    node_bin: Option<&PathBuf>,
    notes: &mut Vec<String>,
) -> (Cell, Cell) {
    let cg = match clawgate.map(stripped_size) {
        Some(Ok((size, stripped))) => {
            if !stripped {
                notes.push("`strip` was not available: the clawgate size is as built".into());
            }
            Cell::of(vec![size as f64])
        }
        Some(Err(e)) => Cell::note(format!("failed: {e:#}")),
        None => Cell::note("not run"),
    };
    let oc = match openclaw_tree.map(tree_size) {
        Some(Ok((bytes, files, packages))) => {
            notes.push(format!(
                "OpenClaw's install tree: {packages} npm packages, {files} files (apparent size)"
            ));
            if let Some(node) = node_bin
                && let Ok(m) = std::fs::metadata(node)
            {
                notes.push(format!(
                    "OpenClaw also needs a Node 24 runtime ({:.0} MB binary), not counted above",
                    m.len() as f64 / 1e6
                ));
            }
            Cell::of(vec![bytes as f64])
        }
        Some(Err(e)) => Cell::note(format!("failed: {e}")),
        None => Cell::note("not run"),
    };
    (cg, oc)
}

/// One row of the table, before values are filled in.
struct Spec {
    id: &'static str,
    section: &'static str,
    label: &'static str,
    unit: Unit,
    better: Better,
    target: Option<Target>,
    chart: bool,
}

const S1: &str = "1. Cold start";
const S2: &str = "2. Memory";
const S3: &str = "3. CLI round trip";
const S4: &str = "4. health RPC";
const S5: &str = "5. Handshakes (connect → hello-ok → close)";
const S6: &str = "6. Idle authenticated connections";
const S7: &str = "7. node.invoke";
const S8: &str = "8. Install footprint";
const S9: &str = "9. Connection churn (open, authenticate, close; 32 at a time)";
const S10: &str =
    "10. Agent turn (chat.send → model asks for `exec` on the node → node runs it → reply)";

const fn spec(
    id: &'static str,
    section: &'static str,
    label: &'static str,
    unit: Unit,
    better: Better,
    target: Option<Target>,
    chart: bool,
) -> Spec {
    Spec {
        id,
        section,
        label,
        unit,
        better,
        target,
        chart,
    }
}

use Better::{Higher, Lower, Neither};
use Unit::{Bytes, Count, PerSecond, Seconds};

#[rustfmt::skip]
const SPECS: &[Spec] = &[
    spec("start_healthz_fresh", S1, "exec → /healthz 200, fresh state dir", Seconds, Lower, None, true),
    spec("start_hello_fresh", S1, "exec → first hello-ok, fresh state dir", Seconds, Lower, Target::at_most(0.010), true),
    spec("start_healthz_reused", S1, "exec → /healthz 200, reused state dir", Seconds, Lower, None, false),
    spec("start_hello_reused", S1, "exec → first hello-ok, reused state dir", Seconds, Lower, Target::at_most(0.010), true),
    spec("idle_rss", S2, "idle RSS, whole process tree, after {idle} idle", Bytes, Lower, Target::at_most(4e6), true),
    spec("idle_anon", S2, "of which anonymous (heap, stacks; no mapped code)", Bytes, Lower, None, true),
    spec("peak_rss", S2, "peak RSS (Σ VmHWM over the tree, whole run)", Bytes, Lower, None, true),
    spec("cli_call", S3, "`gateway call health --json`, wall time", Seconds, Lower, Target::at_most(0.010), true),
    spec("cli_version", S3, "CLI `--version`, wall time (start-up floor)", Seconds, Lower, None, true),
    spec("health1_p50", S4, "one socket: p50 latency", Seconds, Lower, Target::at_most(50e-6), true),
    spec("health1_p90", S4, "one socket: p90 latency", Seconds, Lower, None, false),
    spec("health1_p99", S4, "one socket: p99 latency", Seconds, Lower, None, false),
    spec("health1_rate", S4, "one socket: requests/s", PerSecond, Higher, Target::at_least(20_000.0), true),
    spec("ping1_p50", S4, "one socket: WebSocket ping → pong p50, the transport's floor", Seconds, Lower, None, false),
    spec("health1_over_ping", S4, "one socket: `health` p50 above that floor (ping and `health` alternating)", Seconds, Lower, None, false),
    spec("health8_p50", S4, "8 sockets: p50 latency", Seconds, Lower, None, false),
    spec("health8_p99", S4, "8 sockets: p99 latency", Seconds, Lower, None, false),
    spec("health8_rate", S4, "8 sockets: requests/s", PerSecond, Higher, Target::at_least(60_000.0), true),
    spec("health1_cpu", S4, "one socket: gateway CPU time per call", Seconds, Lower, None, false),
    spec("health8_cpu", S4, "8 sockets: gateway CPU time per call", Seconds, Lower, None, false),
    spec("hs_token_seq_rate", S5, "shared token, sequential: handshakes/s", PerSecond, Higher, None, false),
    spec("hs_token_seq_p50", S5, "shared token, sequential: p50", Seconds, Lower, None, true),
    spec("hs_token_seq_p99", S5, "shared token, sequential: p99", Seconds, Lower, None, false),
    spec("hs_token_par_rate", S5, "shared token, 8 parallel: handshakes/s", PerSecond, Higher, Target::at_least(10_000.0), true),
    spec("hs_token_par_p50", S5, "shared token, 8 parallel: p50", Seconds, Lower, None, false),
    spec("hs_token_par_p99", S5, "shared token, 8 parallel: p99", Seconds, Lower, None, false),
    spec("hs_token_cpu", S5, "shared token, 8 parallel: gateway CPU time per handshake", Seconds, Lower, None, false),
    spec("hs_signed_seq_rate", S5, "device-signed, sequential: handshakes/s", PerSecond, Higher, None, false),
    spec("hs_signed_seq_p50", S5, "device-signed, sequential: p50", Seconds, Lower, None, true),
    spec("hs_signed_seq_p99", S5, "device-signed, sequential: p99", Seconds, Lower, None, false),
    spec("hs_signed_par_rate", S5, "device-signed, 8 parallel: handshakes/s", PerSecond, Higher, Target::at_least(5_000.0), true),
    spec("hs_signed_par_p50", S5, "device-signed, 8 parallel: p50", Seconds, Lower, None, false),
    spec("hs_signed_par_p99", S5, "device-signed, 8 parallel: p99", Seconds, Lower, None, false),
    spec("hs_signed_cpu", S5, "device-signed, 8 parallel: gateway CPU time per handshake", Seconds, Lower, None, false),
    spec("conn1k_mem", S6, "memory per idle connection, 1,000 open", Bytes, Lower, Target::at_most(8_000.0), true),
    spec("conn1k_open", S6, "time to open 1,000", Seconds, Lower, None, false),
    spec("conn1k_held", S6, "of 1,000: still open and got a `tick`", Count, Neither, Target::at_least(1_000.0), false),
    spec("conn10k_mem", S6, "memory per idle connection, 10,000 open", Bytes, Lower, Target::at_most(8_000.0), true),
    spec("conn10k_open", S6, "time to open 10,000", Seconds, Lower, None, true),
    spec("conn10k_held", S6, "of 10,000: still open and got a `tick`", Count, Neither, Target::at_least(10_000.0), false),
    spec("node1_p50", S7, "one operator: p50 round trip", Seconds, Lower, None, true),
    spec("node1_p90", S7, "one operator: p90 round trip", Seconds, Lower, None, false),
    spec("node1_p99", S7, "one operator: p99 round trip", Seconds, Lower, None, false),
    spec("node1_rate", S7, "one operator: invokes/s", PerSecond, Higher, None, false),
    spec("node_relay", S7, "relay overhead: invoke p50 − `health` p50, same socket", Seconds, Lower, Target::at_most(100e-6), false),
    spec("node8_p50", S7, "8 operators: p50 round trip", Seconds, Lower, None, false),
    spec("node8_p99", S7, "8 operators: p99 round trip", Seconds, Lower, None, false),
    spec("node8_rate", S7, "8 operators: invokes/s", PerSecond, Higher, None, true),
    spec("node1_cpu", S7, "one operator: gateway CPU time per invoke", Seconds, Lower, None, false),
    spec("node8_cpu", S7, "8 operators: gateway CPU time per invoke", Seconds, Lower, None, false),
    spec("footprint", S8, "clawgate binary (stripped) vs OpenClaw npm package tree", Bytes, Lower, Target::at_most(10e6), true),
    spec("churn_rate", S9, "connections opened, authenticated and closed per second", PerSecond, Higher, None, true),
    spec("churn_health_p50", S9, "another client's `health` p50 during the churn", Seconds, Lower, None, false),
    spec("churn_health_p99", S9, "another client's `health` p99 during the churn", Seconds, Lower, None, true),
    spec("churn_rss_growth", S9, "RSS after the churn minus before (sockets closed)", Bytes, Lower, None, false),
    spec("agent_turn", S10, "`chat.send` → the run's `chat` final: median (p50) of the turns, model answering at once", Seconds, Lower, Target::at_most(0.020), true),
    spec("agent_turn_p95", S10, "`chat.send` → the run's `chat` final: p95", Seconds, Lower, None, false),
    spec("agent_turns_done", S10, "timed turns completed", Count, Neither, None, false),
    spec("agent_node_run", S10, "for comparison, the node host's share: the turn's two node calls (`system.run.prepare`, then `system.run` of `/bin/sh -lc true`) through `node.invoke`, p50", Seconds, Lower, None, false),
    spec("agent_rss", S10, "idle RSS after the turns (agent loaded), whole gateway tree", Bytes, Lower, Target::at_most(12e6), true),
    spec("tg_node_turn", S11, "DM → reply `sendMessage`, one `exec` on the node: p50", Seconds, Lower, Target::at_most(0.050), true),
    spec("tg_node_turn_p95", S11, "DM → reply, one `exec` on the node: p95", Seconds, Lower, None, false),
    spec("tg_plain_turn", S11, "DM → reply, no tool: p50", Seconds, Lower, None, true),
    spec("tg_pairing_reply", S11, "unknown sender's DM → pairing-code reply: p50", Seconds, Lower, None, false),
    spec("tg_many_chats_rate", S11, "DMs from many chats at once: replies per second", PerSecond, Higher, None, true),
    spec("tg_turns_done", S11, "timed node turns completed", Count, Neither, None, false),
    spec("tg_rss", S11, "idle RSS with Telegram polling and the agent loaded, whole gateway tree", Bytes, Lower, Target::at_most(12e6), true),
];

/// Every row of the table, filled from both runs. `None` for a gateway that was not run.
pub fn rows(
    clawgate: Option<&mut GatewayRun>,
    openclaw: Option<&mut GatewayRun>,
    footprint: (Cell, Cell),
    quick: bool,
    idle: Duration,
) -> Vec<Row> {
    let mut runs = [clawgate, openclaw];
    let mut fp = [Some(footprint.0), Some(footprint.1)];
    SPECS
        .iter()
        .map(|s| {
            let mut cells = [Cell::default(), Cell::default()];
            for (k, run) in runs.iter_mut().enumerate() {
                cells[k] = if s.id == "footprint" {
                    fp[k].take().unwrap_or_default()
                } else {
                    match run {
                        None => Cell::note("not run"),
                        Some(run) => run.cells.remove(s.id).unwrap_or_else(|| {
                            if quick && s.id.starts_with("conn10k") {
                                Cell::note("skipped (--quick)")
                            } else {
                                Cell::note("not measured")
                            }
                        }),
                    }
                };
            }
            let [clawgate, openclaw] = cells;
            Row {
                id: s.id.into(),
                section: s.section.into(),
                label: s.label.replace("{idle}", &format!("{} s", idle.as_secs())),
                unit: s.unit,
                better: s.better,
                target: s.target,
                chart: s.chart,
                clawgate,
                openclaw,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_dirs_are_recognised() {
        assert!(is_package_dir(Path::new("/x/node_modules/ws")));
        assert!(is_package_dir(Path::new("/x/node_modules/@scope/pkg")));
        assert!(!is_package_dir(Path::new("/x/node_modules/ws/lib")));
        assert!(!is_package_dir(Path::new("/x/openclaw")));
    }

    #[test]
    fn tree_size_counts_files_and_packages() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("node_modules/@s/a");
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(p.join("package.json"), "{}").unwrap();
        std::fs::write(d.path().join("node_modules/x.js"), "12345").unwrap();
        assert_eq!(tree_size(d.path()).unwrap(), (7, 2, 1));
    }

    #[test]
    fn every_row_has_a_cell_for_both_gateways() {
        let mut cg = GatewayRun::default();
        cg.set("idle_rss", vec![3e6]);
        let rows = rows(
            Some(&mut cg),
            None,
            (Cell::of(vec![5e6]), Cell::note("not run")),
            true,
            Duration::from_secs(5),
        );
        assert_eq!(rows.len(), SPECS.len());
        let get = |id: &str| rows.iter().find(|r| r.id == id).unwrap();
        assert_eq!(
            get("idle_rss").label,
            "idle RSS, whole process tree, after 5 s idle"
        );
        assert_eq!(get("idle_rss").target_met(), Some(true));
        assert_eq!(get("footprint").clawgate.median(), Some(5e6));
        assert_eq!(
            get("conn10k_mem").clawgate.note.as_deref(),
            Some("skipped (--quick)")
        );
        assert_eq!(
            get("node_relay").clawgate.note.as_deref(),
            Some("not measured")
        );
        assert_eq!(get("node_relay").target_met(), None);
        assert_eq!(get("cli_call").openclaw.note.as_deref(), Some("not run"));
        let ids: std::collections::BTreeSet<_> = SPECS.iter().map(|s| s.id).collect();
        assert_eq!(ids.len(), SPECS.len(), "row ids are unique");
    }

    #[test]
    fn plans_keep_the_required_minimums() {
        for kind in [Kind::Clawgate, Kind::OpenClaw] {
            for quick in [false, true] {
                let p = Plan::new(kind, quick);
                assert!(p.health_calls_one >= 2_000);
                assert_eq!(p.health_sockets, 8);
                assert_eq!(p.hs_parallel, 8);
                assert!(p.cold_reused >= 1);
                assert_eq!(p.conn_levels.contains(&10_000), !quick);
                assert_eq!(p.node_operators, 8);
                assert!(p.node_rounds >= 1 && p.node_calls_one >= 200);
                assert!(p.agent_warmup >= 1 && p.agent_turns >= 5);
            }
        }
    }

    #[test]
    fn invoke_params_are_the_documented_call() {
        let p: serde_json::Value = serde_json::from_str(&invoke_params("n1", "k-1")).unwrap();
        assert_eq!(
            p,
            serde_json::json!({"nodeId": "n1", "command": "system.which",
                "params": {"bins": ["sh"]}, "idempotencyKey": "k-1", "timeoutMs": 10000})
        );
    }

    #[test]
    fn a_node_is_ready_once_approved_and_connected() {
        use serde_json::json;
        let pending =
            json!({"nodeId": "n", "connected": true, "approvalState": "pending-approval"});
        assert!(!node_ready(&pending, true));
        let approved = json!({"nodeId": "n", "connected": true, "approvalState": "approved"});
        assert!(node_ready(&approved, false));
        // Listed before its request: not yet, unless this client approved it.
        let bare = json!({"nodeId": "n", "connected": true});
        assert!(!node_ready(&bare, false));
        assert!(node_ready(&bare, true));
        let gone = json!({"nodeId": "n", "connected": false, "approvalState": "approved"});
        assert!(!node_ready(&gone, true));
    }

    #[test]
    fn chunks_cover_the_total() {
        assert_eq!(chunk_sizes(10, 10), vec![1; 10]);
        assert_eq!(chunk_sizes(25, 10).iter().sum::<usize>(), 25);
        assert!(chunk_sizes(25, 10).iter().all(|&n| n == 2 || n == 3));
        assert_eq!(chunk_sizes(3, 10), vec![1, 1, 1]);
        assert_eq!(chunk_sizes(0, 10), Vec::<usize>::new());
        assert_eq!(chunk_sizes(5_000, 10), vec![500; 10]);
    }

    #[test]
    fn the_agent_config_names_the_mock_and_turns_completion_turns_off() {
        let c = agent_config("http://127.0.0.1:9/v1");
        assert_eq!(
            c["models"]["providers"]["mock"]["baseUrl"],
            "http://127.0.0.1:9/v1"
        );
        assert_eq!(
            c["models"]["providers"]["mock"]["models"][0]["id"],
            "mock-1"
        );
        assert_eq!(c["agents"]["defaults"]["model"]["primary"], "mock/mock-1");
        assert_eq!(c["tools"]["exec"]["notifyOnExit"], false);
    }

    #[test]
    fn the_node_exec_result_is_found_in_the_follow_up() {
        use serde_json::json;
        let body = json!({"messages": [
            {"role": "user", "content": "go"},
            {"role": "tool", "content": "Node: old\n", "tool_call_id": "a"},
            {"role": "assistant", "content": null, "tool_calls": []},
            {"role": "tool", "content": [{"type": "text", "text": "Node: n1\n"}, {"type": "text", "text": "out"}]},
            {"role": "user", "content": [{"type": "text", "text": "internal context"}]},
        ]});
        assert_eq!(last_tool_result(&body).as_deref(), Some("Node: n1\nout"));
        assert_eq!(
            last_tool_result(&json!({"messages": [{"role": "user"}]})),
            None
        );
        assert!(ran_on_node(
            "Node: n1\nWarning: tools.exec.pathPrepend is ignored\n\n"
        ));
        assert!(!ran_on_node(
            "{\n  \"status\": \"error\",\n  \"tool\": \"exec\",\n  \"error\": \"exec host=node requires a connected node\"\n}"
        ));
        assert!(!ran_on_node("ran on the gateway"));
    }

    #[test]
    fn nodes_are_found_by_id_or_display_name() {
        use serde_json::json;
        let entry = json!({"nodeId": "n1", "displayName": "bench-node", "commands": ["system.run", "system.which"]});
        assert!(NodeRef::Id("n1").matches(&entry));
        assert!(!NodeRef::Id("n2").matches(&entry));
        assert!(NodeRef::Name("bench-node").matches(&entry));
        assert!(!NodeRef::Name("other").matches(&entry));
        assert!(node_declares(&entry, Some("system.run")));
        assert!(!node_declares(&entry, Some("system.run.prepare")));
        assert!(node_declares(&entry, None));
        assert!(!node_declares(&json!({"nodeId": "n1"}), Some("system.run")));
    }

    #[test]
    fn failure_rows_are_table_rows() {
        for id in NODE_ROWS
            .iter()
            .chain(HEALTH_ROWS)
            .chain(ALL_GATEWAY_ROWS)
            .chain(CHURN_ROWS)
            .chain(AGENT_ROWS)
        {
            assert!(SPECS.iter().any(|s| s.id == *id), "{id} is not a row");
        }
    }
}
