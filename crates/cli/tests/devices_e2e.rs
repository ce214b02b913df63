//! A "remote" device end to end with clawgate on both sides: the gateway asks for approval
//! (autoApproveLocal off), retries keep the same request id, `clawgate devices approve` grants
//! it, and the device token it then holds still works after a gateway restart.

use clawgate_testkit::{ChildProcess, ClawgateBin, IsolatedHome, Output, json};
use std::time::{Duration, Instant};

const TOKEN: &str = "devices-e2e-token";

fn bin() -> ClawgateBin {
    ClawgateBin::new(env!("CARGO_BIN_EXE_clawgate"))
}

async fn start(home: &IsolatedHome, port: &str) -> (ChildProcess, String) {
    let mut cmd = bin().command(home);
    cmd.args(["gateway", "run", "--port", port, "--token", TOKEN]);
    let mut p = ChildProcess::spawn(cmd, "clawgate gateway").unwrap();
    let line = p
        .wait_for_line(
            |l| l.contains("listening on ws://"),
            Instant::now() + Duration::from_secs(20),
        )
        .await
        .unwrap();
    (
        p,
        clawgate_testkit::parse_listening_url(&line.text).unwrap(),
    )
}

async fn cli(home: &IsolatedHome, args: &[&str]) -> Output {
    bin()
        .cli()
        .in_home(home)
        .args(args.iter().copied())
        .run()
        .await
}

fn request_id_in(text: &str) -> String {
    let at = text
        .find("clawgate devices approve ")
        .unwrap_or_else(|| panic!("no approve command in:\n{text}"));
    text[at + "clawgate devices approve ".len()..]
        .split(|c: char| c.is_whitespace() || c == '`' || c == ')')
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_device_is_approved_with_the_cli_and_its_token_survives_a_restart() {
    let gw_home = IsolatedHome::new();
    gw_home.write_config(&json!({"gateway": {"nodes": {"pairing": {"autoApproveLocal": false}}}}));
    let (mut gw, url) = start(&gw_home, "0").await;
    let port = url.rsplit(':').next().unwrap().to_owned();

    // The device (its own home, so its own identity), signing even on loopback.
    let device = IsolatedHome::new();
    device.write_config(&json!({}));
    let ask = [
        "health",
        "--url",
        url.as_str(),
        "--token",
        TOKEN,
        "--device-auth",
        "always",
        "--no-wait",
    ];
    let first = cli(&device, &ask).await;
    first.assert_code(4);
    let id = request_id_in(&first.stderr);
    let again = cli(&device, &ask).await;
    again.assert_code(4);
    assert_eq!(
        request_id_in(&again.stderr),
        id,
        "retries reuse the pending request"
    );

    // The operator on the gateway host lists and approves it.
    let admin = IsolatedHome::new();
    admin.write_config(&json!({}));
    let list = cli(
        &admin,
        &["devices", "list", "--json", "--url", &url, "--token", TOKEN],
    )
    .await;
    list.assert_success();
    let pending = list.json()["pending"].clone();
    assert!(
        pending
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["requestId"] == id.as_str()),
        "{list}"
    );
    let approve = cli(
        &admin,
        &["devices", "approve", &id, "--url", &url, "--token", TOKEN],
    )
    .await;
    approve.assert_success();
    assert!(
        approve.stdout.contains("operator.read") || approve.stderr.contains("operator.read"),
        "shows what is granted:\n{approve}"
    );
    let twice = cli(
        &admin,
        &["devices", "approve", &id, "--url", &url, "--token", TOKEN],
    )
    .await;
    assert_ne!(
        twice.code(),
        Some(0),
        "a resolved request cannot be approved again:\n{twice}"
    );

    cli(
        &device,
        &[
            "health",
            "--url",
            &url,
            "--token",
            TOKEN,
            "--device-auth",
            "always",
        ],
    )
    .await
    .assert_success();

    // Restart: the pairing and the device token are still there; the token alone is enough.
    gw.stop(Duration::from_secs(5)).await;
    let (_gw, url) = start(&gw_home, &port).await;
    device.write_config(&json!({"gateway": {"mode": "remote", "remote": {"url": url}}}));
    let out = cli(&device, &["gateway", "call", "health", "--no-wait"]).await;
    out.assert_success();
}
