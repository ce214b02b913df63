//! `clawgate node run` as a user runs it, against clawgate's own gateway: credentials from
//! the zero-config token file, exit codes, retrying while no gateway listens, signals.

use clawgate_testkit::{ChildProcess, ClawgateBin, IsolatedHome, free_port};
use std::time::{Duration, Instant};

fn clawgate() -> ClawgateBin {
    ClawgateBin::new(env!("CARGO_BIN_EXE_clawgate"))
}

fn deadline(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

fn node(home: &IsolatedHome, args: &[&str]) -> ChildProcess {
    let mut argv = vec!["node", "run"];
    argv.extend_from_slice(args);
    clawgate()
        .spawn(home, argv, [("CLAWGATE_LOG", "info")])
        .expect("spawning clawgate node run")
}

async fn exit_code(p: &mut ChildProcess, within: Duration) -> Option<i32> {
    let status = p.wait_timeout(within).await;
    let _ = p
        .wait_for_line(|_| false, Instant::now() + Duration::from_secs(2))
        .await;
    status.and_then(|s| s.code())
}

#[tokio::test]
async fn zero_config_local_gateway_token_wrong_token_and_signals() {
    let home = IsolatedHome::new();
    home.write_config(&clawgate_testkit::json!({}));
    let gw = clawgate()
        .spawn_gateway_in(
            home,
            ["gateway", "run", "--port", "0"],
            [("CLAWGATE_LOG", "warn")],
        )
        .await
        .expect("clawgate gateway");
    let port = gw.port().to_string();

    // No credential given: the token the local gateway generated is used.
    let mut n = node(gw.home(), &["--port", &port, "--display-name", "cli-node"]);
    let line = n
        .wait_for_line(|l| l.contains("node host starting: node id "), deadline(20))
        .await
        .unwrap();
    assert!(line.text.contains("/node,"), "{}", line.text);
    n.wait_for_line(|l| l.contains("node host gateway connected"), deadline(30))
        .await
        .unwrap();
    // Its identity and the token it was issued live in <state dir>/node, private.
    let node_dir = gw.home().state_dir().join("node");
    use std::os::unix::fs::PermissionsExt;
    for f in ["identity.json", "node.json"] {
        let mode = std::fs::metadata(node_dir.join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    n.signal("TERM");
    assert_eq!(
        exit_code(&mut n, Duration::from_secs(15)).await,
        Some(0),
        "{}",
        n.transcript()
    );
    assert!(
        n.transcript().contains("node host stopped"),
        "{}",
        n.transcript()
    );

    // A wrong token is final: exit 4 and the fix.
    let mut n = node(gw.home(), &["--port", &port, "--token", "wrong-token"]);
    assert_eq!(
        exit_code(&mut n, Duration::from_secs(20)).await,
        Some(4),
        "{}",
        n.transcript()
    );
    assert!(
        n.transcript().contains("CLAWGATE_GATEWAY_TOKEN"),
        "{}",
        n.transcript()
    );
    assert!(
        !n.transcript().contains("wrong-token"),
        "secrets are never printed"
    );
}

#[tokio::test]
async fn keeps_retrying_while_nothing_listens_and_stops_on_sigint() {
    let home = IsolatedHome::new();
    home.write_config(&clawgate_testkit::json!({}));
    let port = free_port().to_string();
    let mut n = node(&home, &["--port", &port, "--token", "t"]);
    n.wait_for_line(
        |l| l.contains("node host gateway connect failed"),
        deadline(20),
    )
    .await
    .unwrap();
    n.wait_for_line(
        |l| l.contains("node host gateway connect failed"),
        deadline(20),
    )
    .await
    .unwrap();
    assert!(n.try_wait().is_none(), "still running: {}", n.transcript());
    n.signal("INT");
    assert_eq!(
        exit_code(&mut n, Duration::from_secs(15)).await,
        Some(0),
        "{}",
        n.transcript()
    );
}

#[tokio::test]
async fn usage_errors_exit_2() {
    let home = IsolatedHome::new();
    home.write_config(&clawgate_testkit::json!({}));
    let mut n = node(&home, &["--url", "http://127.0.0.1:1"]);
    assert_eq!(
        exit_code(&mut n, Duration::from_secs(10)).await,
        Some(2),
        "{}",
        n.transcript()
    );
    assert!(n.transcript().contains("ws://"), "{}", n.transcript());
    let mut n = node(&home, &["--url", "ws://127.0.0.1:1", "--port", "2"]);
    assert_eq!(
        exit_code(&mut n, Duration::from_secs(10)).await,
        Some(2),
        "{}",
        n.transcript()
    );
}

/// `wss://` with a pinned certificate (clawgate's self-signed gateway certificate): the
/// right pin connects, a wrong one is refused and retried, never accepted.
#[tokio::test]
async fn tls_with_a_pinned_certificate() {
    let home = IsolatedHome::new();
    home.write_config(&clawgate_testkit::json!({"gateway": {"tls": {"enabled": true}}}));
    let mut gw = clawgate()
        .spawn(
            &home,
            [
                "gateway",
                "run",
                "--port",
                "0",
                "--auth",
                "token",
                "--token",
                "tls-token",
            ],
            [("CLAWGATE_LOG", "warn")],
        )
        .unwrap();
    let line = gw
        .wait_for_line(
            |l| l.contains("certificate sha256 fingerprint "),
            deadline(30),
        )
        .await
        .unwrap();
    let fingerprint = line
        .text
        .split("fingerprint ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_owned();
    let line = gw
        .wait_for_line(|l| l.contains("listening on wss://"), deadline(30))
        .await
        .unwrap();
    let url = line
        .text
        .split("listening on ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_owned();

    let node_home = IsolatedHome::new();
    node_home.write_config(&clawgate_testkit::json!({}));
    let mut n = node(
        &node_home,
        &[
            "--url",
            &url,
            "--tls-fingerprint",
            &fingerprint,
            "--token",
            "tls-token",
        ],
    );
    n.wait_for_line(|l| l.contains("node host gateway connected"), deadline(30))
        .await
        .unwrap();
    n.signal("TERM");
    assert_eq!(
        exit_code(&mut n, Duration::from_secs(15)).await,
        Some(0),
        "{}",
        n.transcript()
    );

    let wrong = "00".repeat(32);
    let mut n = node(
        &node_home,
        &[
            "--url",
            &url,
            "--tls-fingerprint",
            &wrong,
            "--token",
            "tls-token",
        ],
    );
    n.wait_for_line(|l| l.contains("fingerprint mismatch"), deadline(30))
        .await
        .unwrap();
    n.wait_for_line(|l| l.contains("fingerprint mismatch"), deadline(30))
        .await
        .unwrap();
    assert!(
        !n.transcript().contains("gateway connected"),
        "{}",
        n.transcript()
    );
    n.signal("TERM");
    assert_eq!(exit_code(&mut n, Duration::from_secs(15)).await, Some(0));
    gw.signal("TERM");
    let _ = gw.wait_timeout(Duration::from_secs(10)).await;
}

/// `clawgate node identity [--json]` prints the node host's identity as OpenClaw's
/// `openclaw node identity` does (one compact JSON line; two aligned text lines), from the
/// state dir `node run` uses, and never makes one up when there is none.
#[tokio::test]
async fn node_identity_prints_the_node_hosts_identity() {
    let home = IsolatedHome::new();
    home.write_config(&clawgate_testkit::json!({}));
    let run = |args: &[&str]| {
        let mut cmd = clawgate().command(&home);
        cmd.args(["node", "identity"]).args(args);
        async move { cmd.output().await.expect("running clawgate node identity") }
    };
    let node_dir = home.state_dir().join("node");
    let missing = run(&["--json"]).await;
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&missing.stderr).trim(),
        "no node device identity found (start the node host once with `clawgate node run`)"
    );
    assert!(!node_dir.join("identity.json").exists());

    let identity = clawgate_client::DeviceIdentity::generate();
    identity.save(&node_dir.join("identity.json")).unwrap();
    let json = run(&["--json"]).await;
    assert_eq!(json.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&json.stdout),
        format!(
            "{{\"deviceId\":\"{}\",\"publicKey\":\"{}\"}}\n",
            identity.id(),
            identity.public_key()
        )
    );
    let text = run(&[]).await;
    assert_eq!(
        String::from_utf8_lossy(&text.stdout),
        format!(
            "deviceId:  {}\npublicKey: {}\n",
            identity.id(),
            identity.public_key()
        )
    );
    // `--state-dir` as for `node run`.
    let other = tempfile::tempdir().unwrap();
    let elsewhere = clawgate_client::DeviceIdentity::generate();
    elsewhere.save(&other.path().join("identity.json")).unwrap();
    let dir = other.path().to_str().unwrap();
    let json = run(&["--json", "--state-dir", dir]).await;
    assert!(
        String::from_utf8_lossy(&json.stdout).contains(elsewhere.id()),
        "{json:?}"
    );
}
