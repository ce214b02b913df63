//! `clawgate node run` keeps the gateway's secrets to itself: the commands it runs for
//! `system.run` see none of the variables it reads credentials from, nor any other variable
//! holding its token, while ordinary variables pass through.

use clawgate_testkit::{ClawgateBin, IsolatedHome, Output, Value, json};
use std::time::{Duration, Instant};

const TOKEN: &str = "secrets-gateway-token-5d1e";

fn clawgate() -> ClawgateBin {
    ClawgateBin::new(env!("CARGO_BIN_EXE_clawgate"))
}

/// `clawgate <args> --url <gateway> --token <TOKEN> --json`, its output as JSON.
async fn operator(url: &str, args: &[&str]) -> (Output, Value) {
    let out = clawgate()
        .cli()
        .config(json!({}))
        .args(args.iter().copied())
        .args(["--url", url, "--token", TOKEN, "--json"])
        .run()
        .await;
    let v = if out.success() {
        out.json()
    } else {
        Value::Null
    };
    (out, v)
}

#[tokio::test]
async fn node_host_children_never_see_gateway_secrets() {
    let gw = clawgate().start_token_gateway(&json!({}), TOKEN).await;
    let node_home = IsolatedHome::new();
    node_home.write_config(&json!({}));
    let secrets = [
        ("CLAWGATE_GATEWAY_TOKEN", TOKEN),
        ("OPENCLAW_GATEWAY_TOKEN", "openclaw-token-value-77"),
        ("CLAWGATE_GATEWAY_PASSWORD", "clawgate-password-value-88"),
        ("OPENCLAW_GATEWAY_PASSWORD", "openclaw-password-value-99"),
        // The node host's own token under a name it does not know.
        ("DEPLOY_GATEWAY_TOKEN_COPY", TOKEN),
    ];
    let mut env: Vec<(&str, &str)> = secrets.to_vec();
    env.push(("ORDINARY_VARIABLE", "plain-value-42"));
    env.push(("CLAWGATE_LOG", "info"));
    let mut node = clawgate()
        .spawn(
            &node_home,
            [
                "node",
                "run",
                "--url",
                gw.url(),
                "--display-name",
                "secrets-node",
            ],
            env,
        )
        .expect("spawning clawgate node run");

    let deadline = Instant::now() + Duration::from_secs(60);
    let request = loop {
        let (_, pending) = operator(gw.url(), &["nodes", "pending"]).await;
        let rows = pending
            .as_array()
            .cloned()
            .or_else(|| pending["pending"].as_array().cloned())
            .unwrap_or_default();
        if let Some(r) = rows
            .into_iter()
            .find(|r| r["displayName"] == "secrets-node")
        {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "no capability request: {}",
            node.transcript()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let request_id = request["requestId"].as_str().unwrap();
    let (out, _) = operator(gw.url(), &["nodes", "approve", request_id]).await;
    out.assert_success();

    let node_id = request["nodeId"].as_str().unwrap();
    let (out, res) = operator(
        gw.url(),
        &[
            "nodes",
            "invoke",
            node_id,
            "--command",
            "system.run",
            "--params",
            r#"{"command":["env"]}"#,
        ],
    )
    .await;
    out.assert_success();
    let seen = res["payload"]["stdout"].as_str().unwrap_or_default();
    assert!(
        seen.lines()
            .any(|l| l == "ORDINARY_VARIABLE=plain-value-42"),
        "{res}"
    );
    for (name, value) in secrets {
        assert!(!seen.contains(name), "{name} reached the command:\n{seen}");
        assert!(
            !seen.contains(value),
            "the value of {name} reached the command:\n{seen}"
        );
    }
    node.stop(Duration::from_secs(5)).await;
}
