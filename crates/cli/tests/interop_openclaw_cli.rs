//! The real OpenClaw 2026.9.6 CLI against a clawgate gateway started as a user would start it.
//! Runs through ./scripts/test (the real CLI is installed there and every process runs in a
//! loopback-only network namespace).

use clawgate_testkit::{ClawgateBin, ClawgateGateway, OpenClaw, json};

const TOKEN: &str = "interop-token-5f0c2d7e9a41";

async fn clawgate_gateway() -> ClawgateGateway {
    // An empty config is zero config.
    ClawgateBin::new(env!("CARGO_BIN_EXE_clawgate"))
        .start_token_gateway(&json!({}), TOKEN)
        .await
}

fn remote_config(gw: &ClawgateGateway) -> clawgate_testkit::Value {
    json!({"gateway": {"mode": "remote", "remote": {"url": gw.url(), "token": TOKEN}}})
}

/// One gateway, every CLI flow of the real client the gateway core must serve.
#[tokio::test]
async fn real_openclaw_cli_flows_work_against_clawgate() {
    let oc = OpenClaw::from_env();
    let gw = clawgate_gateway().await;

    // gateway call health --url … --token … --json
    let out = oc
        .cli()
        .args([
            "gateway",
            "call",
            "health",
            "--url",
            gw.url(),
            "--token",
            TOKEN,
            "--json",
        ])
        .run()
        .await;
    out.assert_success();
    assert_eq!(out.json()["ok"], true, "{out}");

    // health (remote-mode config): the CLI prints the probe duration only when it got a
    // numeric durationMs from our health payload.
    let out = oc
        .cli()
        .config(remote_config(&gw))
        .arg("health")
        .run()
        .await;
    out.assert_success();
    assert!(out.stdout.contains("Gateway probe duration:"), "{out}");

    // status --deep (remote-mode config): reachable with token auth.
    let out = oc
        .cli()
        .config(remote_config(&gw))
        .args(["status", "--deep"])
        .run()
        .await;
    out.assert_success();
    let gateway_row = out
        .stdout
        .lines()
        .find(|l| l.contains("│ Gateway ") && l.contains("remote"))
        .unwrap_or("");
    assert!(gateway_row.contains("reachable"), "{out}");
    assert!(gateway_row.contains("auth token"), "{out}");

    // gateway probe (remote-mode config): reachable; a device-less probe holds no scopes, as
    // with the real gateway.
    let out = oc
        .cli()
        .config(remote_config(&gw))
        .args(["gateway", "probe", "--json"])
        .run()
        .await;
    let probe = out.json();
    let target = probe["targets"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["url"] == gw.url()))
        .cloned()
        .unwrap_or_default();
    assert_eq!(target["connect"]["ok"], true, "{out}");
    let out = oc
        .cli()
        .config(remote_config(&gw))
        .args(["gateway", "probe"])
        .run()
        .await;
    assert!(out.stdout.contains("Reachable: yes"), "{out}");

    // gateway status (remote-mode config; it probes --url when given).
    let out = oc
        .cli()
        .config(remote_config(&gw))
        .args([
            "gateway",
            "status",
            "--url",
            gw.url(),
            "--token",
            TOKEN,
            "--require-rpc",
        ])
        .run()
        .await;
    out.assert_success();
    assert!(out.stdout.contains("Read probe: ok"), "{out}");
    assert!(out.stdout.contains("Gateway version: 2026.9.6"), "{out}");

    // A wrong token: the real CLI's token-mismatch message, exit 1.
    let out = oc
        .cli()
        .args([
            "gateway",
            "call",
            "health",
            "--url",
            gw.url(),
            "--token",
            "wrong-token",
            "--json",
        ])
        .run()
        .await;
    out.assert_code(1);
    let err = out.json();
    assert_eq!(
        err["error"]["message"],
        "unauthorized: gateway token mismatch (use this gateway's gateway.auth.token or pair the device)",
        "{out}"
    );
    assert_eq!(err["error"]["details"]["code"], "AUTH_TOKEN_MISMATCH");
}
