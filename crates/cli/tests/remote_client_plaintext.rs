//! The client's remote-mode rules, as a user meets them: plaintext `ws://` to a host that is
//! not loopback or private is refused before any socket, with the fix (whatever named the URL:
//! --url, the environment or the config); the break-glass variable admits only private
//! addresses; the check runs against the SSH tunnel's local end when there is one; `--url`
//! never reuses saved credentials; `gateway.remote.token` never becomes the local gateway's.

use clawgate_testkit::{ClawgateBin, IsolatedHome, Output, json, kill_tunnels};
use std::time::Duration;

const TOKEN: &str = "remote-client-token-0123456789";

fn bin() -> ClawgateBin {
    ClawgateBin::new(env!("CARGO_BIN_EXE_clawgate"))
}

fn home(config: serde_json::Value) -> IsolatedHome {
    let home = IsolatedHome::new();
    home.write_config(&config);
    home
}

async fn run(home: &IsolatedHome, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = bin().cli().in_home(home).args(args);
    for (k, v) in env {
        cmd = cmd.env(k, v);
    }
    cmd.timeout(Duration::from_secs(30)).run().await
}

fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn plaintext_ws_to_a_public_address_is_refused_with_the_fix() {
    let h = home(json!({}));
    let out = run(
        &h,
        &[
            "health",
            "--url",
            "ws://203.0.113.5:18789",
            "--token",
            TOKEN,
        ],
        &[],
    )
    .await;
    out.assert_code(2);
    let err = &out.stderr;
    assert!(
        err.contains(
            "SECURITY ERROR: Gateway URL \"ws://203.0.113.5:18789\" uses plaintext ws:// to a non-loopback address"
        ),
        "{out}"
    );
    assert!(
        err.contains("Both credentials and chat data would be exposed"),
        "{out}"
    );
    assert!(err.contains("Source: --url"), "{out}");
    assert!(err.contains("use wss://"), "{out}");
    assert!(
        err.contains("clawgate tunnel up <user>@203.0.113.5"),
        "{out}"
    );
    assert!(err.contains("gateway.remote.transport"), "{out}");
    assert!(
        err.contains("CLAWGATE_ALLOW_INSECURE_PRIVATE_WS=1"),
        "{out}"
    );

    // Machine-readable too; it never got as far as a connection attempt.
    let out = run(
        &h,
        &[
            "gateway",
            "call",
            "health",
            "--url",
            "ws://203.0.113.5:18789",
            "--token",
            TOKEN,
        ],
        &[],
    )
    .await;
    out.assert_code(2);
    let e = &out.json()["error"];
    assert_eq!(e["type"], "security_error", "{out}");
    assert_eq!(e["kind"], "plaintext_ws", "{out}");
    assert_eq!(e["host"], "203.0.113.5", "{out}");
}

#[tokio::test]
async fn the_source_of_the_url_is_named() {
    // Config (remote mode).
    let h = home(json!({"gateway": {"mode": "remote", "remote": {
        "url": "ws://gateway.example.com:18789", "token": TOKEN}}}));
    let out = run(&h, &["health"], &[]).await;
    out.assert_code(2);
    assert!(
        out.stderr.contains("Source: config gateway.remote.url"),
        "{out}"
    );
    assert!(
        out.stderr
            .contains(&format!("Config: {}", h.config_path().display())),
        "{out}"
    );

    // Environment.
    let h = home(json!({}));
    let out = run(
        &h,
        &["status"],
        &[
            ("CLAWGATE_GATEWAY_URL", "ws://198.51.100.7:18789"),
            ("CLAWGATE_GATEWAY_TOKEN", TOKEN),
        ],
    )
    .await;
    out.assert_code(2);
    assert!(
        out.stderr.contains("Source: env CLAWGATE_GATEWAY_URL"),
        "{out}"
    );
}

#[tokio::test]
async fn the_break_glass_variable_admits_only_private_addresses() {
    let h = home(json!({}));
    for var in [
        "CLAWGATE_ALLOW_INSECURE_PRIVATE_WS",
        "OPENCLAW_ALLOW_INSECURE_PRIVATE_WS",
    ] {
        // A public address stays refused (unlike OpenClaw #37177).
        let out = run(
            &h,
            &["health", "--url", "ws://203.0.113.5:1", "--token", TOKEN],
            &[(var, "1")],
        )
        .await;
        out.assert_code(2);
        assert!(
            out.stderr.contains("never admits a public address"),
            "{out}"
        );
        // A name is admitted only if every address it resolves to is private; here it does
        // not resolve at all.
        let out = run(
            &h,
            &[
                "health",
                "--url",
                "ws://gateway.invalid:1",
                "--token",
                TOKEN,
            ],
            &[(var, "1")],
        )
        .await;
        out.assert_code(2);
        assert!(out.stderr.contains("SECURITY ERROR"), "{out}");
    }
}

#[tokio::test]
async fn loopback_and_private_spellings_are_not_refused() {
    let h = home(json!({}));
    let port = closed_port();
    for url in [
        format!("ws://127.0.0.1:{port}"),
        format!("ws://localhost:{port}"),
        format!("ws://[::1]:{port}"),
    ] {
        let out = run(&h, &["health", "--url", &url, "--token", TOKEN], &[]).await;
        // Nothing listens there: unreachable, not a security error.
        out.assert_code(3);
        assert!(!out.stderr.contains("SECURITY ERROR"), "{url}: {out}");
    }
}

#[tokio::test]
async fn with_an_ssh_tunnel_the_check_runs_against_the_tunnel_endpoint() {
    // gateway.remote.url names the remote host over ws://, but the connection goes through
    // the tunnel's loopback end: no SECURITY ERROR; here the tunnel itself cannot be opened
    // (nothing listens on the SSH port), and that is what the user is told.
    let h = home(json!({"gateway": {"mode": "remote", "remote": {
        "url": "ws://203.0.113.5:18789",
        "transport": "ssh",
        "sshTarget": format!("root@127.0.0.1:{}", closed_port()),
        "token": TOKEN,
    }}}));
    let out = run(&h, &["health", "--json"], &[]).await;
    kill_tunnels(&h.state_dir());
    out.assert_code(3);
    assert!(!out.stderr.contains("SECURITY ERROR"), "{out}");
    assert_eq!(out.json()["error"]["kind"], "ssh_unreachable", "{out}");
    assert!(out.stderr.contains("cannot open the SSH tunnel"), "{out}");
}

#[tokio::test]
async fn url_flag_never_reuses_saved_credentials() {
    let h = home(
        json!({"gateway": {"mode": "remote", "auth": {"token": "local-token-0123456789"},
        "remote": {"url": "ws://127.0.0.1:1", "token": TOKEN}}}),
    );
    let url = format!("ws://127.0.0.1:{}", closed_port());
    let out = run(
        &h,
        &["health", "--url", &url],
        &[("CLAWGATE_GATEWAY_TOKEN", TOKEN)],
    )
    .await;
    out.assert_code(2);
    assert!(
        out.stderr
            .contains("gateway url override requires explicit credentials"),
        "{out}"
    );
}

#[tokio::test]
async fn remote_token_never_becomes_the_local_gateways_token() {
    // A machine set up as a client of a remote gateway also runs a local one: the local
    // gateway must not accept the remote token.
    let gw_home = home(json!({"gateway": {"remote": {"token": TOKEN}}}));
    let gw = bin()
        .spawn_gateway_in(
            gw_home,
            ["gateway", "run", "--port", "0"],
            [("CLAWGATE_LOG", "warn")],
        )
        .await
        .expect("gateway starts");
    let h = home(json!({}));
    let out = run(
        &h,
        &["health", "--url", gw.url(), "--token", TOKEN, "--no-wait"],
        &[],
    )
    .await;
    out.assert_code(4);
}
