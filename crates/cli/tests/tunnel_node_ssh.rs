//! `clawgate node run --ssh user@host`: the node host reaches a clawgate gateway through a
//! managed SSH tunnel (a real OpenSSH server started by the test), is approved and serves
//! invokes, rides out a killed ssh, and takes the tunnel it opened down when it stops.

use clawgate_testkit::{ClawgateBin, IsolatedHome, Output, Sshd, Value, json, kill_tunnels};
use std::time::{Duration, Instant};

const TOKEN: &str = "node-ssh-test-token-0123456789";

fn bin() -> ClawgateBin {
    ClawgateBin::new(env!("CARGO_BIN_EXE_clawgate"))
}

fn home() -> IsolatedHome {
    let home = IsolatedHome::new();
    home.write_config(&json!({}));
    home
}

async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

struct KillTunnels(std::path::PathBuf);

impl Drop for KillTunnels {
    fn drop(&mut self) {
        kill_tunnels(&self.0);
    }
}

#[tokio::test]
async fn a_node_host_with_ssh_is_invocable_through_the_tunnel() {
    let sshd = Sshd::start().await.unwrap();
    let gw = bin().start_token_gateway(&json!({}), TOKEN).await;
    let node_home = home();
    let _cleanup = KillTunnels(node_home.state_dir());
    let target = format!("{}:{}", sshd.target(), sshd.port());
    let key = sshd.client_key().display().to_string();
    let port = gw.port().to_string();
    let mut node = bin()
        .spawn(
            &node_home,
            [
                "node",
                "run",
                "--ssh",
                &target,
                "--ssh-identity",
                &key,
                "--port",
                &port,
                "--token",
                TOKEN,
                "--display-name",
                "ssh-node",
            ],
            [
                ("CLAWGATE_LOG", "info"),
                (
                    "CLAWGATE_SSH_KNOWN_HOSTS",
                    sshd.known_hosts().display().to_string().as_str(),
                ),
            ],
        )
        .expect("spawn node run");
    let deadline = || Instant::now() + Duration::from_secs(30);
    let line = node
        .wait_for_line(|l| l.contains("through the SSH tunnel"), deadline())
        .await
        .expect("tunnel opened");
    assert!(line.text.contains(&target), "{}", line.text);
    node.wait_for_line(|l| l.contains("node host gateway connected"), deadline())
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", node.transcript()));

    let cg = |args: Vec<String>| {
        let mut argv = args;
        argv.extend([
            "--url".into(),
            gw.url().to_owned(),
            "--token".into(),
            TOKEN.into(),
        ]);
        bin().cli().config(json!({})).args(argv).run()
    };
    let ok_json = |out: &Output| -> Option<Value> {
        out.success()
            .then(|| serde_json::from_str(out.stdout.trim()).ok())
            .flatten()
    };

    // The gateway sees the node over loopback (the tunnel); its capabilities need approval.
    let request = eventually(60, "the node's capability request", || async {
        let out = cg(vec!["nodes".into(), "pending".into(), "--json".into()]).await;
        let list = ok_json(&out)?;
        let rows = list
            .as_array()
            .cloned()
            .or_else(|| list["pending"].as_array().cloned())
            .unwrap_or_default();
        rows.into_iter().find(|r| r["displayName"] == "ssh-node")
    })
    .await;
    let out = cg(vec![
        "nodes".into(),
        "approve".into(),
        request["requestId"].as_str().unwrap().to_owned(),
    ])
    .await;
    out.assert_success();
    let node_id = request["nodeId"].as_str().unwrap().to_owned();

    let invoke = || {
        let params = json!({"nodeId": node_id, "command": "system.which",
            "params": {"bins": ["sh"]}, "idempotencyKey": uuid_like()});
        cg(vec![
            "gateway".into(),
            "call".into(),
            "node.invoke".into(),
            "--params".into(),
            params.to_string(),
        ])
    };
    let payload = eventually(30, "an invoke through the tunnel", || async {
        ok_json(&invoke().await)
    })
    .await;
    assert!(payload["payload"]["bins"]["sh"].is_string(), "{payload}");

    // Kill the tunnel's ssh: the supervisor brings it back and the node reconnects.
    let status: Value = serde_json::from_str(
        &bin()
            .cli()
            .in_home(&node_home)
            .args(["tunnel", "status", "--json"])
            .run()
            .await
            .stdout,
    )
    .unwrap();
    let ssh_pid = status["tunnels"][0]["sshPid"].as_u64().unwrap();
    std::process::Command::new("kill")
        .args(["-KILL", &ssh_pid.to_string()])
        .status()
        .unwrap();
    let payload = eventually(60, "an invoke after the tunnel came back", || async {
        ok_json(&invoke().await)
    })
    .await;
    assert!(payload["payload"]["bins"]["sh"].is_string(), "{payload}");

    // Stopping the node host takes down the tunnel it opened.
    node.signal("TERM");
    let status = node.wait_timeout(Duration::from_secs(20)).await;
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "{}",
        node.transcript()
    );
    let out = bin()
        .cli()
        .in_home(&node_home)
        .args(["tunnel", "status", "--json"])
        .run()
        .await;
    out.assert_code(3);
    assert_eq!(out.json()["tunnels"], json!([]), "{out}");
}

#[tokio::test]
async fn node_run_refuses_plaintext_ws_to_a_public_address() {
    let h = home();
    let out = bin()
        .cli()
        .in_home(&h)
        .args([
            "node",
            "run",
            "--url",
            "ws://203.0.113.5:18789",
            "--token",
            TOKEN,
        ])
        .timeout(Duration::from_secs(20))
        .run()
        .await;
    out.assert_code(2);
    assert!(out.stderr.contains("refusing plaintext ws://"), "{out}");
    assert!(out.stderr.contains("--ssh"), "{out}");
}

/// A fresh idempotency key.
fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "ssh-node-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
