//! `clawgate node run` against the real OpenClaw gateway: pairing (both layers) approved
//! with the real CLI, commands invoked through the real CLI, timeouts, exec approvals,
//! reconnects across a gateway restart and the stored device token. Run through
//! ./scripts/test (it installs OpenClaw and runs the tests in a loopback-only network
//! namespace).

use clawgate_testkit::{
    ChildProcess, ClawgateBin, GatewayOptions, IsolatedHome, OpenClaw, Output, RealGateway, Value,
    json,
};
use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, Instant};

const TOKEN: &str = "node-host-interop-token-0123456789";

fn clawgate() -> ClawgateBin {
    ClawgateBin::new(env!("CARGO_BIN_EXE_clawgate"))
}

fn deadline(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

/// Starts `clawgate node run` for `url` with its state in `state_dir`.
fn spawn_node(
    home: &IsolatedHome,
    url: &str,
    state_dir: &Path,
    token: Option<&str>,
) -> ChildProcess {
    let mut args: Vec<OsString> = vec![
        "node".into(),
        "run".into(),
        "--url".into(),
        url.into(),
        "--display-name".into(),
        "interop-node".into(),
        "--state-dir".into(),
        state_dir.into(),
    ];
    if let Some(t) = token {
        args.push("--token".into());
        args.push(t.into());
    }
    clawgate()
        .spawn(home, args, [("CLAWGATE_LOG", "info")])
        .expect("spawning clawgate node run")
}

/// The node id from "node host starting: node id <id>, …".
async fn node_id(node: &mut ChildProcess) -> String {
    let line = node
        .wait_for_line(|l| l.contains("node host starting: node id "), deadline(20))
        .await
        .unwrap();
    line.text
        .split("node id ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .unwrap()
        .to_owned()
}

#[track_caller]
fn ok_json(out: &Output) -> Value {
    out.assert_success();
    out.json()
}

/// `openclaw gateway call node.invoke` for `command` on `node_id`; the parsed output and
/// whether the call succeeded.
async fn invoke(
    gw: &RealGateway,
    node_id: &str,
    command: &str,
    params: Value,
    timeout_ms: u64,
) -> (bool, Value) {
    let call = json!({
        "nodeId": node_id,
        "command": command,
        "params": params,
        "idempotencyKey": uuid::Uuid::new_v4().to_string(),
        "timeoutMs": timeout_ms,
    });
    let out = gw
        .cli()
        .args([
            "gateway",
            "call",
            "node.invoke",
            "--json",
            "--timeout",
            "30000",
        ])
        .arg("--params")
        .arg(call.to_string())
        .run()
        .await;
    (out.success(), out.json())
}

/// Approves the node's pending capability request with the real CLI, then waits until
/// `node.list` no longer shows it pending (approval races the request appearing).
async fn approve_capabilities(gw: &RealGateway, node_id: &str) {
    let until = deadline(60);
    let request_id = loop {
        let out = gw.cli().args(["nodes", "pending", "--json"]).run().await;
        let pending = ok_json(&out);
        if let Some(r) = pending
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["nodeId"] == node_id)
        {
            break r["requestId"].as_str().unwrap().to_owned();
        }
        assert!(
            Instant::now() < until,
            "no pending request for {node_id}: {out}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let out = gw.cli().args(["nodes", "approve", &request_id]).run().await;
    out.assert_success();
    wait_approved(gw, node_id).await;
}

async fn node_row(gw: &RealGateway, node_id: &str) -> Option<Value> {
    let out = gw
        .cli()
        .args(["gateway", "call", "node.list", "--json"])
        .run()
        .await;
    let list = ok_json(&out);
    list["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["nodeId"] == node_id)
        .cloned()
}

async fn wait_approved(gw: &RealGateway, node_id: &str) -> Value {
    let until = deadline(60);
    loop {
        let row = node_row(gw, node_id).await;
        if let Some(row) = &row
            && row["connected"] == true
            && row["approvalState"]
                .as_str()
                .is_some_and(|s| !s.contains("pending"))
        {
            return row.clone();
        }
        assert!(Instant::now() < until, "node never approved: {row:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One real gateway with local auto-approval off, so both approval layers need an
/// operator: device pairing (`devices approve`) and capabilities (`nodes approve`).
#[tokio::test]
async fn node_host_is_paired_and_serves_commands_through_the_real_gateway() {
    let oc = OpenClaw::from_env();
    let gw = RealGateway::start_with(
        &oc,
        TOKEN,
        GatewayOptions {
            config: Some(json!({"gateway": {"nodes": {"pairing": {"autoApproveLocal": false}}}})),
            ..GatewayOptions::default()
        },
    )
    .await;
    let home = IsolatedHome::new();
    let state_dir = home.root().join("node-state");

    // A wrong token stops the node host at once with exit code 4 and names the fix.
    let mut wrong = spawn_node(&home, &gw.url(), &state_dir, Some("wrong-token"));
    let status = wrong.wait_timeout(Duration::from_secs(30)).await;
    // Read its output to the end before looking at it.
    let _ = wrong.wait_for_line(|_| false, deadline(3)).await;
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(4),
        "{}",
        wrong.transcript()
    );
    assert!(
        wrong.transcript().contains("--token"),
        "{}",
        wrong.transcript()
    );

    // Device pairing: the exact approve command, printed once while the node keeps retrying.
    let mut node = spawn_node(&home, &gw.url(), &state_dir, Some(TOKEN));
    let id = node_id(&mut node).await;
    let line = node
        .wait_for_line(|l| l.contains("clawgate devices approve "), deadline(60))
        .await
        .unwrap();
    let request_id = line
        .text
        .trim()
        .trim_start_matches("clawgate devices approve ")
        .to_owned();
    node.wait_for_line(|l| l.contains("openclaw devices approve"), deadline(5))
        .await
        .unwrap();
    // Let it retry a few times (1 s, 2 s backoff): still only one announcement.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let out = gw
        .cli()
        .args(["devices", "approve", &request_id])
        .run()
        .await;
    out.assert_success();
    node.wait_for_line(|l| l.contains("node host gateway connected"), deadline(60))
        .await
        .unwrap();
    assert_eq!(
        node.transcript()
            .matches("clawgate devices approve")
            .count(),
        1,
        "{}",
        node.transcript()
    );

    // Capability approval: announced once, approved with the real CLI.
    node.wait_for_line(|l| l.contains("clawgate nodes approve "), deadline(60))
        .await
        .unwrap();
    approve_capabilities(&gw, &id).await;
    node.wait_for_line(|l| l.contains("commands approved"), deadline(30))
        .await
        .unwrap();
    let row = wait_approved(&gw, &id).await;
    assert_eq!(row["clientId"], "node-host", "{row}");
    assert_eq!(row["displayName"], "interop-node", "{row}");
    assert_eq!(row["platform"], "linux", "{row}");
    for c in ["system.run", "system.which", "system.run.prepare"] {
        assert!(
            row["commands"].as_array().unwrap().iter().any(|x| x == c),
            "{c} not in {row}"
        );
    }
    // The device token issued at hello is kept (0600).
    let token_file = state_dir.join("device-token.json");
    let stored: Value =
        serde_json::from_str(&std::fs::read_to_string(&token_file).unwrap()).unwrap();
    assert_eq!(stored["deviceId"], id.as_str());
    assert!(stored["token"].as_str().is_some_and(|t| t.len() >= 32));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    // system.which: misses are omitted.
    let (ok, out) = invoke(
        &gw,
        &id,
        "system.which",
        json!({"bins": ["sh", "no-such-bin-xyz"]}),
        15_000,
    )
    .await;
    assert!(ok, "{out}");
    assert!(
        out["payload"]["bins"]["sh"]
            .as_str()
            .unwrap()
            .ends_with("/sh"),
        "{out}"
    );
    assert!(
        out["payload"]["bins"].get("no-such-bin-xyz").is_none(),
        "{out}"
    );

    // system.run echo hi.
    let (ok, out) = invoke(
        &gw,
        &id,
        "system.run",
        json!({"command": ["echo", "hi"]}),
        15_000,
    )
    .await;
    assert!(ok, "{out}");
    assert_eq!(
        out["payload"],
        json!({"exitCode": 0, "timedOut": false, "success": true, "stdout": "hi\n", "stderr": "", "error": null}),
        "{out}"
    );
    // A failing command is still a successful invoke.
    let (ok, out) = invoke(
        &gw,
        &id,
        "system.run",
        json!({"command": ["sh", "-c", "echo out; echo err 1>&2; exit 3"]}),
        15_000,
    )
    .await;
    assert!(ok, "{out}");
    assert_eq!(out["payload"]["exitCode"], 3, "{out}");
    assert_eq!(out["payload"]["stderr"], "err\n", "{out}");

    // sleep 5 with a 1 s budget: killed, exit 124, timedOut (`sleep` itself would exit 0).
    let (ok, out) = invoke(
        &gw,
        &id,
        "system.run",
        json!({"command": ["sleep", "5"], "timeoutMs": 1000}),
        15_000,
    )
    .await;
    assert!(ok, "{out}");
    assert_eq!(out["payload"]["exitCode"], 124, "{out}");
    assert_eq!(out["payload"]["timedOut"], true, "{out}");
    assert_eq!(out["payload"]["success"], false, "{out}");

    // The gateway's own deadline: TIMEOUT for the caller, node.invoke.cancel for the node.
    let (ok, out) = invoke(
        &gw,
        &id,
        "system.run",
        json!({"command": ["sleep", "5"]}),
        1500,
    )
    .await;
    assert!(!ok, "{out}");
    assert!(out.to_string().contains("TIMEOUT"), "{out}");
    node.wait_for_line(|l| l.contains("cancelled by the gateway"), deadline(10))
        .await
        .unwrap();

    // Env overrides of PATH are refused on the node.
    let (ok, out) = invoke(
        &gw,
        &id,
        "system.run",
        json!({"command": ["true"], "env": {"PATH": "/tmp"}}),
        15_000,
    )
    .await;
    assert!(!ok, "{out}");
    assert!(
        out.to_string().contains(
            "SYSTEM_RUN_DENIED: environment override rejected (blocked override keys: PATH)"
        ),
        "{out}"
    );

    // Exec approvals live on the node: the operator methods reach it.
    let out = gw
        .cli()
        .args([
            "gateway",
            "call",
            "exec.approvals.node.get",
            "--json",
            "--params",
        ])
        .arg(json!({"nodeId": id}).to_string())
        .run()
        .await;
    let got = ok_json(&out);
    assert_eq!(got["file"]["version"], 1, "{out}");
    let out = gw
        .cli()
        .args(["gateway", "call", "exec.approvals.node.set", "--json", "--params"])
        .arg(
            json!({
                "nodeId": id,
                "baseHash": got["hash"],
                "file": {"version": 1, "defaults": {"security": "allowlist", "ask": "off"}, "agents": {}},
            })
            .to_string(),
        )
        .run()
        .await;
    let set = ok_json(&out);
    assert_eq!(set["file"]["defaults"]["security"], "allowlist", "{out}");
    let (ok, out) = invoke(
        &gw,
        &id,
        "system.run",
        json!({"command": ["echo", "hi"]}),
        15_000,
    )
    .await;
    assert!(!ok, "{out}");
    assert!(
        out.to_string()
            .contains("SYSTEM_RUN_DENIED: allowlist miss"),
        "{out}"
    );

    // SIGTERM: clean close, exit 0.
    node.signal("TERM");
    let status = node.wait_timeout(Duration::from_secs(15)).await;
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "{}",
        node.transcript()
    );
    gw.stop(Duration::from_secs(10)).await;
}

/// A loopback TCP forwarder with a stable port whose upstream can be switched, so the node
/// host keeps one URL across two real gateways.
struct Forwarder {
    port: u16,
    upstream: std::sync::Arc<std::sync::atomic::AtomicU16>,
    task: tokio::task::JoinHandle<()>,
}

impl Forwarder {
    async fn start(upstream: u16) -> Self {
        use std::sync::atomic::{AtomicU16, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let target = std::sync::Arc::new(AtomicU16::new(upstream));
        let shared = target.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let up = shared.load(Ordering::SeqCst);
                tokio::spawn(async move {
                    if let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", up)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Forwarder {
            port,
            upstream: target,
            task,
        }
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    fn switch(&self, upstream: u16) {
        self.upstream
            .store(upstream, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reconnects after the gateway restarts (shutdown + close 1012, refused connections while
/// the new one starts), is approved again, and later comes back with only the device token
/// it stored. Two gateway starts, one URL (through a forwarder).
#[tokio::test]
async fn node_host_reconnects_after_a_gateway_restart() {
    let oc = OpenClaw::from_env();
    let gw = RealGateway::start(&oc, TOKEN).await;
    let forwarder = Forwarder::start(gw.port()).await;
    let home = IsolatedHome::new();
    let state_dir = home.root().join("node-state");

    let mut node = spawn_node(&home, &forwarder.url(), &state_dir, Some(TOKEN));
    let id = node_id(&mut node).await;
    node.wait_for_line(|l| l.contains("node host gateway connected"), deadline(60))
        .await
        .unwrap();
    approve_capabilities(&gw, &id).await;
    let (ok, out) = invoke(
        &gw,
        &id,
        "system.run",
        json!({"command": ["echo", "one"]}),
        15_000,
    )
    .await;
    assert!(ok, "{out}");

    // The gateway stops: the node sees the shutdown and close 1012, then keeps retrying.
    gw.stop(Duration::from_secs(10)).await;
    node.wait_for_line(
        |l| l.contains("node host gateway closed (1012)"),
        deadline(30),
    )
    .await
    .unwrap();
    node.wait_for_line(
        |l| l.contains("node host gateway connect failed"),
        deadline(30),
    )
    .await
    .unwrap();
    let gw = RealGateway::start(&oc, TOKEN).await;
    forwarder.switch(gw.port());
    node.wait_for_line(|l| l.contains("node host gateway connected"), deadline(90))
        .await
        .unwrap();
    // A new gateway knows nothing of this node: capability approval again.
    approve_capabilities(&gw, &id).await;
    let (ok, out) = invoke(
        &gw,
        &id,
        "system.run",
        json!({"command": ["echo", "two"]}),
        15_000,
    )
    .await;
    assert!(ok, "{out}");
    assert_eq!(out["payload"]["stdout"], "two\n", "{out}");

    // Without a shared secret the node host comes back with its stored device token.
    node.signal("TERM");
    assert_eq!(
        node.wait_timeout(Duration::from_secs(15))
            .await
            .and_then(|s| s.code()),
        Some(0)
    );
    let mut node = spawn_node(&home, &forwarder.url(), &state_dir, None);
    node.wait_for_line(|l| l.contains("node host gateway connected"), deadline(60))
        .await
        .unwrap();
    wait_approved(&gw, &id).await;
    let (ok, out) = invoke(
        &gw,
        &id,
        "system.run",
        json!({"command": ["echo", "three"]}),
        15_000,
    )
    .await;
    assert!(ok, "{out}");
    assert_eq!(out["payload"]["stdout"], "three\n", "{out}");
    node.signal("INT");
    assert_eq!(
        node.wait_timeout(Duration::from_secs(15))
            .await
            .and_then(|s| s.code()),
        Some(0)
    );
    gw.stop(Duration::from_secs(10)).await;
}
