//! The harness against the real OpenClaw CLI and gateway. Run through
//! ./scripts/test (installs OpenClaw, runs tests in a loopback-only network
//! namespace).

use std::time::Duration;

use clawgate_testkit::{
    OPENCLAW_VERSION, OpenClaw, RawWs, RealGateway, WsError, connect_params, is_alive, json,
};

#[tokio::test]
async fn openclaw_version_matches() {
    let oc = OpenClaw::from_env();
    let out = oc.cli().arg("--version").run().await;
    out.assert_success();
    assert!(
        out.stdout.contains(OPENCLAW_VERSION),
        "expected OpenClaw {OPENCLAW_VERSION}:\n{out}"
    );
}

/// One real gateway (starting one takes 10–30 s) for everything the harness
/// must prove: it becomes ready, answers health to the raw client and to the
/// real CLI, rejects a wrong token with AUTH_TOKEN_MISMATCH, and leaves no
/// process behind when dropped.
#[tokio::test]
async fn real_gateway_health_auth_and_cleanup() {
    let oc = OpenClaw::from_env();
    let gw = RealGateway::start(&oc, "testkit-token-0123456789abcdef").await;
    assert!(gw.url().starts_with("ws://127.0.0.1:"));

    // Raw client: hello-ok, then health.
    let (mut ws, hello) = gw
        .connect(&["operator.read"])
        .await
        .expect("connect with the right token");
    assert_eq!(hello["payload"]["type"], "hello-ok", "{hello}");
    assert_eq!(hello["payload"]["protocol"], 4, "{hello}");
    let health = ws
        .request("health", json!({}), Duration::from_secs(10))
        .await
        .expect("health");
    assert_eq!(health["payload"]["ok"], true, "{health}");
    ws.close().await;

    // Raw client, wrong token: an error response with details.code.
    let err = RawWs::handshake(
        &gw.url(),
        connect_params(Some("wrong-token"), &["operator.read"]),
    )
    .await
    .expect_err("a wrong token must be rejected");
    assert!(matches!(err, WsError::Rejected(_)), "{err:?}");
    assert_eq!(err.detail_code(), Some("AUTH_TOKEN_MISMATCH"), "{err:?}");

    // The real CLI in remote mode.
    let out = gw
        .cli()
        .args(["gateway", "call", "health", "--json"])
        .run()
        .await;
    assert_eq!(out.assert_success().json()["ok"], true, "{out}");

    let out = oc
        .cli()
        .config(json!({"gateway": {"mode": "remote", "remote": {"url": gw.url(), "token": "wrong-token"}}}))
        .args(["gateway", "call", "health", "--json"])
        .run()
        .await;
    out.assert_code(1);
    assert_eq!(
        out.json()["error"]["details"]["code"],
        "AUTH_TOKEN_MISMATCH",
        "{out}"
    );

    // Drop stops the whole tree.
    let pid = gw.pid();
    let state_dir = format!("OPENCLAW_STATE_DIR={}", gw.home().state_dir().display());
    drop(gw);
    assert!(!is_alive(pid), "gateway pid {pid} survived its handle");
    let leftovers: Vec<_> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/environ")).is_ok_and(|env| {
                env.split(|&b| b == 0)
                    .any(|var| var == state_dir.as_bytes())
            })
        })
        .collect();
    assert!(
        leftovers.is_empty(),
        "processes of the dropped gateway remain: {leftovers:?}"
    );
}
