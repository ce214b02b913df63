//! `clawgate gateway run` seen from a second host (a network namespace pair made by each
//! test): lan and custom binds are reachable from it, loopback is not; forwarded headers from
//! it are refused unless it is a trusted proxy; wss:// with the right pin works from it (clawgate
//! CLI and the real OpenClaw CLI, after the pairing approval a remote device needs), a wrong pin
//! fails naming both fingerprints; the real OpenClaw CLI there gets `health` without any scope.
//! Also: the refusals that need no second host (exit 78).

mod remote_support;

use clawgate_testkit::{IsolatedHome, OpenClaw, json};
use remote_support::{
    GW_IP, HostPair, curl, gateway_devices, paired_nodes, peer_node_host, port_of, run, start,
};

const TOKEN: &str = "remote-test-token";

/// A private home with `config` as its config file.
fn home_with(config: serde_json::Value) -> IsolatedHome {
    let home = IsolatedHome::new();
    home.write_config(&config);
    home
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_clawgate")
}

/// A gateway in the pair's gateway namespace; returns it, its readiness line and its port.
async fn gateway(
    pair: &HostPair,
    home: &IsolatedHome,
    args: &[&str],
) -> (clawgate_testkit::ChildProcess, String, u16) {
    let mut all = vec!["gateway", "run", "--port", "0"];
    all.extend_from_slice(args);
    let (p, line) = start(pair.command(&pair.gw, bin(), &all, home), "listening on ").await;
    let port = port_of(&line);
    (p, line, port)
}

#[tokio::test]
async fn a_lan_bind_is_reachable_from_a_second_host() {
    let pair = HostPair::create("lan");
    let home = home_with(json!({}));
    let (gw, line, port) = gateway(&pair, &home, &["--bind", "lan", "--token", TOKEN]).await;
    assert!(line.contains(&format!("ws://0.0.0.0:{port}")), "{line}");
    let (status, body) = curl(
        &pair,
        &pair.peer,
        &format!("http://{GW_IP}:{port}/healthz"),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{body}\n{}", gw.transcript());
    assert_eq!(body, r#"{"ok":true,"status":"live"}"#);
    // Local tools on the gateway host still dial 127.0.0.1.
    let (status, _) = curl(
        &pair,
        &pair.gw,
        &format!("http://127.0.0.1:{port}/readyz"),
        &[],
    )
    .await;
    assert_eq!(status, 200);
    // The gateway warned about the exposure.
    assert!(
        gw.transcript().contains("non-loopback address"),
        "{}",
        gw.transcript()
    );

    // Forwarded headers from this (untrusted) peer: the real gateway's 403; /healthz stays 200.
    let url = format!("http://{GW_IP}:{port}/readyz");
    let (status, body) = curl(&pair, &pair.peer, &url, &["X-Forwarded-For: 203.0.113.9"]).await;
    assert_eq!(status, 403);
    assert_eq!(
        body,
        r#"{"error":{"message":"Proxy client attribution is required. Configure gateway.trustedProxies narrowly and make the proxy overwrite or safely rebuild forwarded client headers.","type":"proxy_attribution_required"}}"#
    );
    let healthz = format!("http://{GW_IP}:{port}/healthz");
    let (status, _) = curl(
        &pair,
        &pair.peer,
        &healthz,
        &["X-Forwarded-For: 203.0.113.9"],
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_loopback_bind_is_not_reachable_from_a_second_host() {
    let pair = HostPair::create("lo");
    let home = home_with(json!({}));
    let (gw, _, port) = gateway(&pair, &home, &["--token", TOKEN]).await;
    let (status, _) = curl(
        &pair,
        &pair.gw,
        &format!("http://127.0.0.1:{port}/healthz"),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{}", gw.transcript());
    let (status, body) = curl(
        &pair,
        &pair.peer,
        &format!("http://{GW_IP}:{port}/healthz"),
        &[],
    )
    .await;
    assert_eq!(status, 0, "reachable from the peer: {body}");
}

#[tokio::test]
async fn a_custom_bind_listens_on_its_address_and_on_127_0_0_1() {
    let pair = HostPair::create("custom");
    let home =
        home_with(json!({"gateway": {"bind": "custom", "customBindHost": GW_IP.to_string()}}));
    let (gw, line, port) = gateway(&pair, &home, &["--token", TOKEN]).await;
    assert!(line.contains(&format!("ws://127.0.0.1:{port}")), "{line}");
    assert!(line.contains(&format!("ws://{GW_IP}:{port}")), "{line}");
    let (status, _) = curl(
        &pair,
        &pair.peer,
        &format!("http://{GW_IP}:{port}/healthz"),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{}", gw.transcript());
    let (status, _) = curl(
        &pair,
        &pair.gw,
        &format!("http://127.0.0.1:{port}/healthz"),
        &[],
    )
    .await;
    assert_eq!(status, 200);
    // A custom host the machine does not have is refused, not silently replaced.
    let home2 = home_with(json!({"gateway": {"bind": "custom", "customBindHost": "10.200.0.77"}}));
    let ran = run(pair.command(
        &pair.gw,
        bin(),
        ["gateway", "run", "--port", "0", "--token", TOKEN],
        &home2,
    ))
    .await;
    assert_eq!(ran.code, Some(78), "{ran}");
    assert!(
        ran.stderr.contains(
            "gateway bind=custom requested 10.200.0.77 but resolved 0.0.0.0; refusing fallback"
        ),
        "{ran}"
    );
}

#[tokio::test]
async fn a_trusted_proxy_on_the_second_host_is_believed() {
    let pair = HostPair::create("proxy");
    let home = home_with(json!({"gateway": {"bind": "lan", "trustedProxies": ["10.200.0.0/30"]}}));
    let (_gw, _, port) = gateway(&pair, &home, &["--token", TOKEN]).await;
    let url = format!("http://{GW_IP}:{port}/readyz");
    let (status, body) = curl(&pair, &pair.peer, &url, &["X-Forwarded-For: 203.0.113.9"]).await;
    assert_eq!(status, 200, "{body}");
    // A proxy that names no client outside itself/loopback is not believed.
    let (status, _) = curl(&pair, &pair.peer, &url, &["X-Forwarded-For: 127.0.0.1"]).await;
    assert_eq!(status, 403);
}

fn fingerprint_in(transcript: &str) -> String {
    let marker = "sha256 fingerprint ";
    let i = transcript
        .find(marker)
        .unwrap_or_else(|| panic!("no fingerprint printed:\n{transcript}"));
    transcript[i + marker.len()..i + marker.len() + 64].to_owned()
}

#[tokio::test]
async fn wss_from_a_second_host_with_the_pin_works_and_a_wrong_pin_names_both() {
    let pair = HostPair::create("tls");
    let home = home_with(json!({"gateway": {"bind": "lan", "tls": {"enabled": true}}}));
    let (gw, line, port) = gateway(&pair, &home, &["--token", TOKEN]).await;
    assert!(line.contains(&format!("wss://0.0.0.0:{port}")), "{line}");
    let fp = fingerprint_in(&gw.transcript());
    let cert = home.state_dir().join("gateway/tls/gateway-cert.pem");
    assert!(cert.exists(), "{}", cert.display());

    // `clawgate gateway tls show` prints the same fingerprint.
    let show = run(pair.command(&pair.gw, bin(), ["gateway", "tls", "show"], &home)).await;
    assert_eq!(show.code, Some(0), "{show}");
    assert!(show.stdout.contains(&fp), "{show}");

    let url = format!("wss://{GW_IP}:{port}");
    let peer_home = home_with(json!({}));
    let call = |pin: String| {
        pair.command(
            &pair.peer,
            bin(),
            vec![
                "gateway".to_owned(),
                "call".into(),
                "health".into(),
                "--json".into(),
                "--no-wait".into(),
                "--url".into(),
                url.clone(),
                "--token".into(),
                TOKEN.into(),
                "--tls-fingerprint".into(),
                pin,
            ],
            &peer_home,
        )
    };

    // A wrong pin: refused before anything is sent, naming both fingerprints.
    let wrong = "ab".repeat(32);
    let ran = run(call(wrong.clone())).await;
    assert_ne!(ran.code, Some(0), "{ran}");
    let all = format!("{}{}", ran.stdout, ran.stderr);
    assert!(all.contains(&fp), "actual fingerprint missing:\n{ran}");
    assert!(all.contains(&wrong), "expected fingerprint missing:\n{ran}");

    // The right pin reaches the gateway; a new remote device needs an approval first.
    let first = run(call(fp.clone())).await;
    if first.code != Some(0) {
        let text = format!("{}{}", first.stdout, first.stderr);
        assert!(
            text.to_ascii_lowercase().contains("pairing"),
            "expected a pairing request:\n{first}"
        );
        approve_latest(&pair, &home, port, &fp).await;
        let again = run(call(fp.clone())).await;
        assert_eq!(again.code, Some(0), "{again}\n{}", gw.transcript());
        assert!(again.stdout.contains("\"ok\""), "{again}");
    }

    // The real OpenClaw CLI, pinned through its config (gateway.remote.tlsFingerprint).
    let oc = OpenClaw::from_env();
    let oc_home = |url: &str, pin: &str| {
        oc.isolated_home(&json!({
            "gateway": {"mode": "remote", "remote": {"url": url, "token": TOKEN, "tlsFingerprint": pin}}
        }))
    };
    let oc_call_method = |ns: &str, home: &IsolatedHome, method: &str| {
        pair.command(ns, oc.bin(), ["gateway", "call", method, "--json"], home)
    };
    let oc_call = |ns: &str, home: &IsolatedHome| oc_call_method(ns, home, "health");
    // From the second host. `gateway call` never creates a device identity, so a fresh
    // OpenClaw CLI connects device-less, and a remote device-less operator holds no scopes
    // (health, which needs none, is the next test's).
    let peer_oc = oc_home(&url, &fp);
    let deviceless = run(oc_call_method(&pair.peer, &peer_oc, "status")).await;
    assert!(
        format!("{}{}", deviceless.stdout, deviceless.stderr)
            .contains("missing scope: operator.read"),
        "{deviceless}\n{}",
        gw.transcript()
    );
    // What OpenClaw's own error tells the user: the TUI creates the identity (aimed at a
    // closed port here, creating it is all it does), the next call asks for pairing, an
    // operator approves on the gateway host, and the call succeeds over the pinned wss://.
    let tui = run(pair.command(
        &pair.peer,
        oc.bin(),
        ["tui", "--url", "ws://127.0.0.1:9", "--token", TOKEN],
        &peer_oc,
    ))
    .await;
    assert_eq!(tui.code, Some(0), "{tui}");
    let pending = run(oc_call(&pair.peer, &peer_oc)).await;
    assert_ne!(pending.code, Some(0), "{pending}");
    assert!(
        format!("{}{}", pending.stdout, pending.stderr).contains("pairing required"),
        "{pending}\n{}",
        gw.transcript()
    );
    approve_latest(&pair, &home, port, &fp).await;
    let paired = run(oc_call(&pair.peer, &peer_oc)).await;
    assert_eq!(paired.code, Some(0), "{paired}\n{}", gw.transcript());
    let v: serde_json::Value =
        serde_json::from_str(paired.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {paired}"));
    assert_eq!(v["ok"], true, "{paired}");
    // A wrong pin is refused by the real CLI before the upgrade.
    let refused = run(oc_call(&pair.peer, &oc_home(&url, &wrong))).await;
    assert_ne!(refused.code, Some(0), "{refused}");
    assert!(
        format!("{}{}", refused.stdout, refused.stderr).contains("fingerprint"),
        "{refused}"
    );
    // On the gateway host (loopback) the same pinned CLI is local and gets its health.
    let local = run(oc_call(
        &pair.gw,
        &oc_home(&format!("wss://127.0.0.1:{port}"), &fp),
    ))
    .await;
    assert_eq!(local.code, Some(0), "{local}\n{}", gw.transcript());
    let v: serde_json::Value =
        serde_json::from_str(local.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {local}"));
    assert_eq!(v["ok"], true, "{local}");
}

/// OpenClaw answers `health` to every connected client whatever its scopes: the real CLI on
/// the second host, device-less and so holding no scopes, gets clawgate's health over ws:// to
/// a custom bind, while `status` from the same CLI is still refused for the missing scope.
#[tokio::test]
async fn the_real_cli_gets_health_without_scopes_from_a_second_host() {
    let pair = HostPair::create("health");
    let home =
        home_with(json!({"gateway": {"bind": "custom", "customBindHost": GW_IP.to_string()}}));
    let (gw, _, port) = gateway(&pair, &home, &["--token", TOKEN]).await;
    let oc = OpenClaw::from_env();
    let oc_home = oc.isolated_home(&json!({}));
    let url = format!("ws://{GW_IP}:{port}");
    let call = |method: &str| {
        let args = [
            "gateway", "call", method, "--json", "--url", &url, "--token", TOKEN,
        ];
        let mut cmd = pair.command(&pair.peer, oc.bin(), args, &oc_home);
        // OpenClaw refuses plaintext ws:// to a non-loopback host without its break-glass.
        cmd.env("OPENCLAW_ALLOW_INSECURE_PRIVATE_WS", "1");
        cmd
    };
    let health = run(call("health")).await;
    assert_eq!(health.code, Some(0), "{health}\n{}", gw.transcript());
    let v: serde_json::Value =
        serde_json::from_str(health.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {health}"));
    assert_eq!(v["ok"], true, "{health}");
    let status = run(call("status")).await;
    assert_ne!(status.code, Some(0), "{status}");
    assert!(
        format!("{}{}", status.stdout, status.stderr).contains("missing scope: operator.read"),
        "{status}\n{}",
        gw.transcript()
    );
}

/// Approves the newest pending pairing request from the gateway host itself (a local CLI).
async fn approve_latest(pair: &HostPair, home: &IsolatedHome, port: u16, fp: &str) {
    let local = format!("wss://127.0.0.1:{port}");
    let ran = run(pair.command(
        &pair.gw,
        bin(),
        [
            "devices",
            "approve",
            "--latest",
            "--url",
            &local,
            "--token",
            TOKEN,
            "--tls-fingerprint",
            fp,
        ],
        home,
    ))
    .await;
    assert_eq!(ran.code, Some(0), "approving from the gateway host:\n{ran}");
}

#[tokio::test]
async fn a_non_loopback_bind_without_auth_exits_78_with_the_fix() {
    // No second host needed: the refusal comes before any socket.
    let home = home_with(json!({"gateway": {"remote": {"token": "for-remote-calls"}}}));
    let mut cmd = tokio::process::Command::new(bin());
    home.apply(&mut cmd);
    cmd.args([
        "gateway", "run", "--port", "0", "--bind", "lan", "--auth", "none",
    ]);
    let ran = run(cmd).await;
    assert_eq!(ran.code, Some(78), "{ran}");
    let lines: Vec<&str> = ran.stderr.lines().collect();
    assert_eq!(
        lines[0], "Refusing to bind gateway to lan without auth.",
        "{ran}"
    );
    assert!(
        ran.stderr.contains("Set gateway.auth.token/password (or OPENCLAW_GATEWAY_TOKEN/OPENCLAW_GATEWAY_PASSWORD) or pass --token/--password.")
            || ran.stderr.contains("Set OPENCLAW_GATEWAY_TOKEN or OPENCLAW_GATEWAY_PASSWORD, or pass --token/--password to start with auth."),
        "{ran}"
    );
    assert!(
        ran.stderr.contains("\"gateway.remote.token\" is for remote CLI calls; it does not enable local gateway auth."),
        "{ran}"
    );

    // Token mode with only a generated token counts as no auth too.
    let home = home_with(json!({}));
    let mut cmd = tokio::process::Command::new(bin());
    home.apply(&mut cmd);
    cmd.env_remove("OPENCLAW_GATEWAY_TOKEN")
        .env_remove("CLAWGATE_GATEWAY_TOKEN")
        .args(["gateway", "run", "--port", "0", "--bind", "lan"]);
    let ran = run(cmd).await;
    assert_eq!(ran.code, Some(78), "{ran}");
    assert!(
        ran.stderr
            .starts_with("Refusing to bind gateway to lan without auth."),
        "{ran}"
    );
}

#[tokio::test]
async fn conflicts_between_bind_tailscale_and_auth_exit_78_with_one_message() {
    let cases = [
        (
            json!({"gateway": {"bind": "lan", "tailscale": {"mode": "serve"}}}),
            vec!["--token", TOKEN],
            "tailscale serve/funnel requires gateway bind=loopback (127.0.0.1)",
        ),
        (
            json!({"gateway": {"tailscale": {"mode": "funnel"}}}),
            vec!["--token", TOKEN],
            "tailscale funnel requires gateway auth mode=password (set gateway.auth.password or OPENCLAW_GATEWAY_PASSWORD)",
        ),
        (
            json!({"gateway": {"tailscale": {"mode": "serve"}, "auth": {"mode": "none"}}}),
            vec![],
            "gateway.auth.mode=none cannot be used with gateway.tailscale.mode=serve; configure token, password, or trusted-proxy auth before exposing the gateway through Tailscale",
        ),
    ];
    for (config, args, message) in cases {
        let home = home_with(config.clone());
        let mut cmd = tokio::process::Command::new(bin());
        home.apply(&mut cmd);
        cmd.args(["gateway", "run", "--port", "0"]).args(&args);
        let ran = run(cmd).await;
        assert_eq!(ran.code, Some(78), "{config}: {ran}");
        assert!(ran.stderr.contains(message), "{config}: {ran}");
        assert_eq!(ran.stderr.trim().lines().count(), 1, "one message: {ran}");
    }
}

#[tokio::test]
async fn a_port_held_by_another_gateway_is_the_lock_error() {
    let home = home_with(json!({}));
    let mut cmd = tokio::process::Command::new(bin());
    home.apply(&mut cmd);
    cmd.args(["gateway", "run", "--port", "0", "--token", TOKEN]);
    let (_first, line) = start(cmd, "listening on ").await;
    let port = port_of(&line).to_string();
    // Another state dir: on the same one the state lock answers first (its own test).
    let other = home_with(json!({}));
    let mut cmd = tokio::process::Command::new(bin());
    other.apply(&mut cmd);
    cmd.args(["gateway", "run", "--port", &port, "--token", TOKEN]);
    let ran = run(cmd).await;
    assert_eq!(ran.code, Some(69), "{ran}");
    assert!(
        ran.stderr.contains(&format!(
            "another gateway instance is already listening on ws://127.0.0.1:{port}"
        )),
        "{ran}"
    );
    assert!(ran.stderr.contains("--port"), "{ran}");
}

#[tokio::test]
async fn a_tailnet_bind_uses_the_address_tailscale_reports_or_the_interface_scan() {
    use std::os::unix::fs::PermissionsExt;
    let pair = HostPair::create("tailnet");
    let ip = remote_support::ip_bin();
    // A Tailscale-range address on the gateway host, routed from the peer.
    for args in [
        vec![
            "-n",
            &pair.gw,
            "addr",
            "add",
            "100.101.102.103/32",
            "dev",
            "veth-gw",
        ],
        vec![
            "-n",
            &pair.peer,
            "route",
            "add",
            "100.101.102.103/32",
            "dev",
            "veth-peer",
        ],
    ] {
        let st = std::process::Command::new(&ip)
            .args(&args)
            .status()
            .unwrap();
        assert!(st.success(), "ip {args:?}");
    }

    // 1. No tailscale CLI or LocalAPI: the 100.64.0.0/10 interface scan finds it.
    let home = home_with(json!({"gateway": {"bind": "tailnet"}}));
    let mut cmd = pair.command(
        &pair.gw,
        bin(),
        ["gateway", "run", "--port", "0", "--token", TOKEN],
        &home,
    );
    cmd.env("CLAWGATE_TAILSCALE_BIN", home.root().join("no-tailscale"))
        .env("CLAWGATE_TAILSCALE_SOCKET", home.root().join("no.sock"));
    let (gw, line) = start(cmd, "listening on ").await;
    let port = port_of(&line);
    assert!(line.contains(&format!("ws://127.0.0.1:{port}")), "{line}");
    assert!(
        line.contains(&format!("ws://100.101.102.103:{port}")),
        "{line}"
    );
    assert!(
        gw.transcript().contains("interface scan"),
        "{}",
        gw.transcript()
    );
    let url = format!("http://100.101.102.103:{port}/healthz");
    assert_eq!(curl(&pair, &pair.peer, &url, &[]).await.0, 200);
    drop(gw);

    // 2. A Headscale-style prefix outside 100.64/10, as `tailscale status --json` reports it.
    let home = home_with(json!({"gateway": {"bind": "tailnet", "tls": {"enabled": true}}}));
    let fake = home.root().join("tailscale");
    std::fs::write(
        &fake,
        "#!/bin/sh\n[ \"$1 $2\" = \"status --json\" ] || exit 2\necho '{\"Self\":{\"TailscaleIPs\":[\"10.200.0.1\"],\"DNSName\":\"gw.hs.example.\"}}'\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = pair.command(
        &pair.gw,
        bin(),
        ["gateway", "run", "--port", "0", "--token", TOKEN],
        &home,
    );
    cmd.env("CLAWGATE_TAILSCALE_BIN", &fake)
        .env("CLAWGATE_TAILSCALE_SOCKET", home.root().join("no.sock"));
    let (gw, line) = start(cmd, "listening on ").await;
    let port = port_of(&line);
    assert!(line.contains(&format!("wss://{GW_IP}:{port}")), "{line}");
    assert!(
        gw.transcript().contains("tailscale status --json"),
        "{}",
        gw.transcript()
    );
    // The generated certificate names the tailnet address and DNS name.
    let cert = home.state_dir().join("gateway/tls/gateway-cert.pem");
    let text = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    for san in [
        "DNS:localhost",
        "IP Address:127.0.0.1",
        "IP Address:10.200.0.1",
        "DNS:gw.hs.example",
    ] {
        assert!(text.contains(san), "{san} missing:\n{text}");
    }
    assert!(
        text.contains("prime256v1") || text.contains("P-256"),
        "{text}"
    );
}

/// `gateway.nodes.pairing.autoApproveCidrs` naming the second host's network: clawgate's node
/// host there pairs on its first connect without an operator (`approvedVia: "trusted-cidr"`
/// in `devices list`); with another network listed it waits for an approval.
#[tokio::test]
async fn a_node_host_from_a_trusted_cidr_pairs_without_asking() {
    for (cidr, pairs) in [("10.200.0.0/30", true), ("192.168.77.0/24", false)] {
        let pair = HostPair::create("cidr");
        let home =
            home_with(json!({"gateway": {"nodes": {"pairing": {"autoApproveCidrs": [cidr]}}}}));
        let (gw, _, port) = gateway(&pair, &home, &["--bind", "lan", "--token", TOKEN]).await;
        let node_home = home_with(json!({}));
        let node = peer_node_host(&pair, &node_home, port, TOKEN, pairs).await;
        let list = gateway_devices(&pair, &home, port, TOKEN).await;
        let nodes = paired_nodes(&list);
        if pairs {
            assert_eq!(nodes.len(), 1, "{list:#}");
            assert_eq!(nodes[0]["approvedVia"], "trusted-cidr", "{list:#}");
            assert!(list["pending"].as_array().unwrap().is_empty(), "{list:#}");
        } else {
            assert!(nodes.is_empty(), "{list:#}");
            assert_eq!(list["pending"][0]["role"], "node", "{list:#}");
        }
        drop((node, gw));
    }
}
