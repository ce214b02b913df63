//! clawgate's operator CLI against the real OpenClaw gateway. Run through ./scripts/test
//! (it installs OpenClaw and runs the tests in a loopback-only network namespace).

use clawgate_testkit::{ClawgateBin, CliCommand, OpenClaw, Output, RealGateway, Value, json};

fn clawgate() -> ClawgateBin {
    ClawgateBin::new(env!("CARGO_BIN_EXE_clawgate"))
}

/// A clawgate run in a fresh home whose config file exists but is empty (the home names it
/// in OPENCLAW_CONFIG_PATH, and a config file named explicitly must exist).
fn bare<'h>(cg: &ClawgateBin) -> CliCommand<'h> {
    cg.cli().config(json!({}))
}

#[track_caller]
fn ok_json(out: &Output) -> Value {
    out.assert_success();
    out.json()
}

/// One real gateway (it takes 10–30 s to start) for every operator command, addressed with
/// --url/--token and through a remote-mode config file.
#[tokio::test]
async fn operator_commands_work_against_the_real_gateway() {
    let oc = OpenClaw::from_env();
    let gw = RealGateway::start(&oc, "reverse-interop-token-0123456789").await;
    let cg = clawgate();
    let url = gw.url();
    let target = ["--url", url.as_str(), "--token", gw.token()];

    // gateway call health --json: the payload itself.
    let out = bare(&cg)
        .args(["gateway", "call", "health", "--json"])
        .args(target)
        .run()
        .await;
    let health = ok_json(&out);
    assert_eq!(health["ok"], true, "{out}");
    assert!(health["ts"].is_i64(), "{out}");

    // health: the human summary.
    let out = bare(&cg).arg("health").args(target).run().await;
    out.assert_success();
    assert!(out.stdout.starts_with("Gateway: OK · "), "{out}");
    assert!(out.stdout.contains("version 2026.9.6"), "{out}");
    assert!(out.stdout.contains("Agents: main (default)"), "{out}");

    // status --deep --json: a loopback cli connection keeps operator.read, so every call works.
    let out = bare(&cg)
        .args(["status", "--deep", "--json"])
        .args(target)
        .run()
        .await;
    let status = ok_json(&out);
    assert_eq!(status["ok"], true, "{out}");
    assert_eq!(status["gateway"]["server"]["version"], "2026.9.6", "{out}");
    assert_eq!(status["gateway"]["capability"], "read_only", "{out}");
    assert_eq!(status["status"]["runtimeVersion"], "2026.9.6", "{out}");
    assert!(status["deep"]["presence"].is_array(), "{out}");
    assert!(status["deep"]["channels"].is_object(), "{out}");
    assert_eq!(status["deep"]["health"]["ok"], true, "{out}");
    assert!(
        status["deep"]
            .as_object()
            .is_some_and(|d| d.contains_key("lastHeartbeat")),
        "{out}"
    );
    assert_eq!(status["errors"], json!({}), "{out}");

    // gateway probe --json: probe connections get no scopes from the real gateway.
    let out = bare(&cg)
        .args(["gateway", "probe", "--json"])
        .args(target)
        .run()
        .await;
    let probe = ok_json(&out);
    assert_eq!(probe["ok"], true, "{out}");
    assert_eq!(probe["reachable"], true, "{out}");
    assert_eq!(probe["version"], "2026.9.6", "{out}");
    assert_eq!(probe["capability"], "connected_no_operator_scope", "{out}");
    assert_eq!(
        probe["calls"]["status"]["error"]["details"]["missingScope"], "operator.read",
        "{out}"
    );
    assert_eq!(probe["warnings"][0]["code"], "probe_scope_limited", "{out}");

    // gateway status --json: the hello.
    let out = bare(&cg)
        .args(["gateway", "status", "--json"])
        .args(target)
        .run()
        .await;
    let gs = ok_json(&out);
    assert_eq!(gs["reachable"], true, "{out}");
    assert_eq!(gs["server"]["version"], "2026.9.6", "{out}");
    assert!(gs["server"]["connId"].is_string(), "{out}");
    assert_eq!(gs["auth"]["method"], "token", "{out}");
    assert_eq!(gs["auth"]["role"], "operator", "{out}");
    assert_eq!(gs["protocol"], 4, "{out}");

    // The same through a remote-mode config file.
    let remote = gw.remote_config();
    let out = cg
        .cli()
        .config(remote.clone())
        .args(["gateway", "call", "health", "--json"])
        .run()
        .await;
    assert_eq!(ok_json(&out)["ok"], true, "{out}");
    let out = cg.cli().config(remote.clone()).arg("health").run().await;
    out.assert_success();
    assert!(out.stdout.starts_with("Gateway: OK · "), "{out}");
    let out = cg
        .cli()
        .config(remote.clone())
        .args(["status", "--deep", "--json"])
        .run()
        .await;
    let status = ok_json(&out);
    assert_eq!(
        status["gateway"]["urlSource"], "config gateway.remote.url",
        "{out}"
    );
    assert_eq!(status["deep"]["health"]["ok"], true, "{out}");
    let out = cg
        .cli()
        .config(remote.clone())
        .args(["gateway", "probe", "--json"])
        .run()
        .await;
    assert_eq!(ok_json(&out)["reachable"], true, "{out}");
    let out = cg
        .cli()
        .config(remote.clone())
        .args(["gateway", "status", "--json"])
        .run()
        .await;
    assert_eq!(ok_json(&out)["server"]["version"], "2026.9.6", "{out}");

    // Failures keep their exit codes against the real gateway too.
    let out = bare(&cg)
        .args([
            "gateway",
            "call",
            "health",
            "--url",
            url.as_str(),
            "--token",
            "wrong-token",
        ])
        .run()
        .await;
    out.assert_code(4);
    assert_eq!(
        out.json()["error"]["details"]["code"],
        "AUTH_TOKEN_MISMATCH",
        "{out}"
    );
    let out = bare(&cg)
        .args(["gateway", "call", "no.such.method"])
        .args(target)
        .run()
        .await;
    out.assert_code(1);
    assert_eq!(
        out.json()["error"]["message"],
        "unknown method: no.such.method",
        "{out}"
    );
}
