//! `clawgate doctor`: the exposure report names each risky combination (bind × auth × TLS ×
//! trusted proxies × Tailscale) with its fix, and the live check tells reachability, auth and
//! scope problems apart, within its time budget whatever step goes unanswered. Also:
//! `clawgate gateway status` prints a local TLS gateway's fingerprint.

use clawgate_testkit::fake_gateway::{Call, FakeConfig, FakeGateway, Reply, default_handler};
use clawgate_testkit::{IsolatedHome, free_port, json};
use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::process::Command;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_clawgate")
}

fn home_with(config: serde_json::Value) -> IsolatedHome {
    let home = IsolatedHome::new();
    home.write_config(&config);
    home
}

async fn clawgate(home: &IsolatedHome, args: &[&str]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args);
    home.apply(&mut cmd);
    // No tailscale here: tailnet detection must not find one.
    cmd.env("CLAWGATE_TAILSCALE_BIN", home.root().join("no-tailscale"));
    cmd.env("CLAWGATE_TAILSCALE_SOCKET", home.root().join("no.sock"));
    tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .unwrap()
        .unwrap()
}

async fn doctor_json(home: &IsolatedHome, extra: &[&str]) -> (Option<i32>, serde_json::Value) {
    let mut args = vec!["doctor", "--json"];
    args.extend_from_slice(extra);
    let out = clawgate(home, &args).await;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), v)
}

fn ids(v: &serde_json::Value) -> Vec<String> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_exposure_report_names_the_risky_combinations() {
    // LAN without TLS, a short token, a catch-all trusted proxy, any browser origin.
    let home = home_with(json!({"gateway": {
        "bind": "lan", "auth": {"token": "short"},
        "trustedProxies": ["0.0.0.0/0"],
        "controlUi": {"allowedOrigins": ["*"]}}}));
    let (code, v) = doctor_json(&home, &["--offline"]).await;
    assert_eq!(code, Some(1), "{v:#}");
    let found = ids(&v);
    for id in [
        "plaintext_network",
        "bind_all_interfaces",
        "weak_secret",
        "trusted_proxies_wide",
        "origins_wildcard",
    ] {
        assert!(found.iter().any(|f| f == id), "{id} missing: {v:#}");
    }
    assert_eq!(v["exposure"]["bind"], "lan");
    assert!(
        v["exposure"]["reach"].as_str().unwrap().contains("0.0.0.0"),
        "{v:#}"
    );
    assert!(
        v["exposure"]["transport"]
            .as_str()
            .unwrap()
            .contains("plaintext")
    );
    for f in v["findings"].as_array().unwrap() {
        assert!(!f["fix"].as_str().unwrap().is_empty(), "{f}");
    }
    // The human report carries the same.
    let out = clawgate(&home, &["doctor", "--offline"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("who can reach:"), "{text}");
    assert!(text.contains("[critical] trusted_proxies_wide"), "{text}");
    assert!(text.contains("fix: set gateway.tls.enabled=true"), "{text}");

    // Funnel without a password; serve with auth none (both refused at start).
    let home = home_with(
        json!({"gateway": {"tailscale": {"mode": "funnel"}, "auth": {"token": "a-long-enough-token-for-the-doctor-1234"}}}),
    );
    let (code, v) = doctor_json(&home, &["--offline"]).await;
    assert_eq!(code, Some(1));
    assert!(
        ids(&v).contains(&"funnel_without_password".to_owned()),
        "{v:#}"
    );
    assert!(
        v["exposure"]["reach"]
            .as_str()
            .unwrap()
            .contains("PUBLIC INTERNET"),
        "{v:#}"
    );
    let home =
        home_with(json!({"gateway": {"tailscale": {"mode": "serve"}, "auth": {"mode": "none"}}}));
    let (_, v) = doctor_json(&home, &["--offline"]).await;
    assert!(
        ids(&v).contains(&"tailscale_without_auth".to_owned()),
        "{v:#}"
    );
    assert!(ids(&v).contains(&"auth_none".to_owned()), "{v:#}");

    // Trusted-proxy mode with loopback allowed and nothing required of the proxy.
    let home = home_with(
        json!({"gateway": {"trustedProxies": ["127.0.0.1"], "auth": {"mode": "trusted-proxy",
        "trustedProxy": {"userHeader": "x-forwarded-user", "allowLoopback": true}}}}),
    );
    let (_, v) = doctor_json(&home, &["--offline"]).await;
    for id in [
        "trusted_proxy_loopback",
        "trusted_proxy_no_required_headers",
        "trusted_proxy_any_user",
    ] {
        assert!(ids(&v).contains(&id.to_owned()), "{id}: {v:#}");
    }

    // A config the gateway refuses (trusted-proxy with a token).
    let home = home_with(
        json!({"gateway": {"trustedProxies": ["127.0.0.1"], "auth": {"mode": "trusted-proxy", "token": "x".repeat(30),
        "trustedProxy": {"userHeader": "x-forwarded-user"}}}}),
    );
    let (code, v) = doctor_json(&home, &["--offline"]).await;
    assert_eq!(code, Some(1));
    assert_eq!(ids(&v), ["startup_refused"], "{v:#}");
    assert!(
        v["findings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("mutually exclusive")
    );

    // The default: loopback, generated token: nothing risky.
    let home = home_with(json!({}));
    let (code, v) = doctor_json(&home, &["--offline"]).await;
    assert_eq!(code, Some(0), "{v:#}");
    assert!(v["findings"].as_array().unwrap().is_empty(), "{v:#}");
    assert!(
        v["exposure"]["reach"]
            .as_str()
            .unwrap()
            .contains("this machine only")
    );
}

/// A gateway started with `args` in `home`, on a fixed port written into its config.
async fn gateway(home: &IsolatedHome, args: &[&str]) -> (clawgate_testkit::ChildProcess, u16) {
    let port = free_port();
    let mut cmd = Command::new(bin());
    cmd.args(["gateway", "run", "--port", &port.to_string()])
        .args(args);
    home.apply(&mut cmd);
    let mut p = clawgate_testkit::ChildProcess::spawn(cmd, "gateway").unwrap();
    p.wait_for_line(
        |l| l.contains("listening on"),
        Instant::now() + Duration::from_secs(30),
    )
    .await
    .unwrap();
    (p, port)
}

fn check<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v["live"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no {name} check: {v:#}"))
}

#[tokio::test]
async fn the_live_check_tells_reachability_auth_and_tls_apart() {
    let token = "doctor-live-token-0123456789abcdef";
    let home = home_with(json!({"gateway": {"auth": {"token": token}}}));
    // Nothing running: unreachable, with the fix.
    let port = free_port().to_string();
    let (_, v) = doctor_json(&home, &["--port", &port]).await;
    assert_eq!(check(&v, "reachability")["ok"], false, "{v:#}");
    assert!(
        check(&v, "reachability")["fix"]
            .as_str()
            .unwrap()
            .contains("clawgate gateway run")
    );

    // Running, same token: reachable, accepted, scopes fine.
    let port = free_port();
    let home = home_with(json!({"gateway": {"port": port, "auth": {"token": token}}}));
    let mut cmd = Command::new(bin());
    cmd.args(["gateway", "run"]);
    home.apply(&mut cmd);
    let mut gw = clawgate_testkit::ChildProcess::spawn(cmd, "gateway").unwrap();
    gw.wait_for_line(
        |l| l.contains("listening on"),
        Instant::now() + Duration::from_secs(30),
    )
    .await
    .unwrap();
    let (code, v) = doctor_json(&home, &["--port", &port.to_string()]).await;
    assert_eq!(code, Some(0), "{v:#}\n{}", gw.transcript());
    assert_eq!(check(&v, "reachability")["ok"], true);
    assert_eq!(check(&v, "auth")["ok"], true);
    assert!(
        check(&v, "auth")["detail"]
            .as_str()
            .unwrap()
            .contains("method token")
    );
    assert_eq!(check(&v, "scopes")["ok"], true, "{v:#}");
    // `status --deep` on this machine's gateway carries the exposure report too.
    let out = clawgate(&home, &["status", "--deep", "--json"]).await;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(v["exposure"]["bind"], "loopback", "{v:#}");
    assert!(v["exposure"]["findings"].is_array(), "{v:#}");
    let out = clawgate(&home, &["status", "--deep"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("who can reach:   this machine only"),
        "{text}"
    );
    drop(gw);

    // Running with another token: reachable, auth refused with the fix.
    let (gw, port) = gateway(&home, &["--token", "some-other-token-0123456789abcdef"]).await;
    let (code, v) = doctor_json(&home, &["--port", &port.to_string()]).await;
    assert_eq!(code, Some(1), "{v:#}");
    assert_eq!(check(&v, "reachability")["ok"], true);
    assert_eq!(check(&v, "auth")["ok"], false);
    assert!(
        check(&v, "auth")["detail"]
            .as_str()
            .unwrap()
            .contains("AUTH_TOKEN_MISMATCH"),
        "{v:#}"
    );
    drop(gw);

    // A TLS gateway: doctor checks the certificate against the local fingerprint, and
    // `gateway status` prints that fingerprint.
    let port = free_port();
    let home = home_with(
        json!({"gateway": {"port": port, "auth": {"token": token}, "tls": {"enabled": true}}}),
    );
    let mut cmd = Command::new(bin());
    cmd.args(["gateway", "run"]);
    home.apply(&mut cmd);
    let mut gw = clawgate_testkit::ChildProcess::spawn(cmd, "tls gateway").unwrap();
    gw.wait_for_line(
        |l| l.contains("listening on"),
        Instant::now() + Duration::from_secs(30),
    )
    .await
    .unwrap();
    let fp_line = gw.transcript();
    let fp = fp_line
        .split("sha256 fingerprint ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("{fp_line}"))
        .to_owned();
    let (code, v) = doctor_json(&home, &[]).await;
    assert_eq!(code, Some(0), "{v:#}");
    assert_eq!(check(&v, "tls")["ok"], true, "{v:#}");
    assert_eq!(v["exposure"]["tlsFingerprint"], fp, "{v:#}");
    let out = clawgate(&home, &["gateway", "status"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("TLS fingerprint: sha256:{fp}")),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = clawgate(&home, &["gateway", "status", "--json"]).await;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["tlsFingerprint"], fp, "{v:#}");

    // From a remote-mode config with a pin set (an array): any pin matching passes; when none
    // does, the check names every pin and the certificate's fingerprint.
    let remote = |pins: serde_json::Value| {
        home_with(json!({"gateway": {"mode": "remote", "remote": {
            "url": format!("wss://127.0.0.1:{port}"), "token": token, "tlsFingerprint": pins
        }}}))
    };
    let (old, other) = ("ab".repeat(32), "cd".repeat(32));
    let (_, v) = doctor_json(&remote(json!([old, fp])), &[]).await;
    assert_eq!(check(&v, "tls")["ok"], true, "{v:#}");
    let (_, v) = doctor_json(&remote(json!([old, other])), &[]).await;
    let detail = check(&v, "tls")["detail"].as_str().unwrap().to_owned();
    assert_eq!(check(&v, "tls")["ok"], false, "{v:#}");
    for want in [&old, &other, &fp] {
        assert!(detail.contains(want.as_str()), "{detail}");
    }
}

/// A state dir and config others can read are findings with their fix; `doctor --fix` (or
/// `--repair`, with OpenClaw's `--yes`) makes them private first and reports what it did,
/// and leaves a symlinked config alone.
#[tokio::test]
async fn loose_permissions_are_found_and_fix_repairs_them() {
    use std::os::unix::fs::PermissionsExt as _;
    let home = home_with(json!({}));
    let chmod = |path: &std::path::Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    chmod(&home.state_dir(), 0o755);
    chmod(&home.config_path(), 0o644);

    let (code, v) = doctor_json(&home, &["--offline"]).await;
    assert_eq!(code, Some(1), "a world-readable config is critical: {v:#}");
    assert_eq!(
        ids(&v),
        [
            "fs.state_dir.perms_readable",
            "fs.config.perms_world_readable"
        ]
    );
    let fix = v["findings"][1]["fix"].as_str().unwrap();
    assert!(fix.contains("chmod 600"), "{fix}");
    assert!(fix.ends_with("(or run clawgate doctor --fix)"), "{fix}");
    assert!(v.get("repairs").is_none(), "nothing changes without --fix");
    assert_eq!(mode(&home.state_dir()), 0o755);

    let (code, v) = doctor_json(&home, &["--offline", "--repair", "--yes"]).await;
    assert_eq!(code, Some(0), "{v:#}");
    assert!(ids(&v).is_empty(), "{v:#}");
    assert_eq!(v["repairs"][0]["ok"], true, "{v:#}");
    assert_eq!(v["repairs"][0]["mode"], 0o700);
    assert_eq!(v["repairs"][1]["ok"], true, "{v:#}");
    assert_eq!(mode(&home.state_dir()), 0o700);
    assert_eq!(mode(&home.config_path()), 0o600);

    // Already private: nothing to do, said so in text.
    let out = clawgate(&home, &["doctor", "--offline", "--fix"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Repairs\n  skip chmod 700 "), "{text}");
    assert!(text.contains("(already)"), "{text}");

    // A symlinked config is reported, and not changed through the link.
    let real = home.root().join("real-config.json5");
    std::fs::rename(home.config_path(), &real).unwrap();
    chmod(&real, 0o644);
    std::os::unix::fs::symlink(&real, home.config_path()).unwrap();
    let (_, v) = doctor_json(&home, &["--offline", "--fix"]).await;
    assert_eq!(v["repairs"][1]["skipped"], "symlink", "{v:#}");
    assert!(ids(&v).contains(&"fs.config.symlink".to_owned()), "{v:#}");
    assert_eq!(mode(&real), 0o644);
}

/// The exposure report says who pairs a first-time node host (an operator, the trusted CIDRs,
/// SSH verification) and warns about a trusted CIDR that covers a wide range.
#[tokio::test]
async fn node_pairing_policy_is_part_of_the_exposure() {
    let home = home_with(json!({"gateway": {"nodes": {"pairing": {
        "autoApproveCidrs": ["0.0.0.0/0"], "sshVerify": {"user": "ops", "cidrs": ["10.0.0.0/8"]}}}}}));
    let (_, v) = doctor_json(&home, &["--offline"]).await;
    assert_eq!(
        v["exposure"]["nodePairing"],
        "by an operator; on the spot from 0.0.0.0/0 (autoApproveCidrs); from 10.0.0.0/8 once ssh as ops (port 22) reads back the node's identity (sshVerify)"
    );
    assert_eq!(ids(&v), ["node_auto_approve_wide"], "{v:#}");

    let home = home_with(json!({"gateway": {"nodes": {"pairing": {"sshVerify": false}}}}));
    let (code, v) = doctor_json(&home, &["--offline"]).await;
    assert_eq!(code, Some(0), "{v:#}");
    assert_eq!(v["exposure"]["nodePairing"], "by an operator");
    let out = clawgate(&home, &["doctor", "--offline"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("  node pairing:    by an operator\n"),
        "{text}"
    );
}

/// A gateway that takes the connection but never answers, at any step: the live check still
/// ends within its `--timeout`, saying which step got no answer and what to do about it.
#[tokio::test]
async fn a_gateway_that_never_answers_is_reported_within_the_timeout() {
    let home =
        home_with(json!({"gateway": {"auth": {"token": "doctor-silent-token-0123456789abcd"}}}));
    let within = |started: Instant| {
        let took = started.elapsed();
        assert!(took < Duration::from_secs(10), "doctor took {took:?}");
    };

    // A port that accepts connections and never says a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let started = Instant::now();
    let (_, v) = tokio::time::timeout(
        Duration::from_secs(20),
        doctor_json(&home, &["--port", &port, "--timeout", "1500"]),
    )
    .await
    .expect("doctor ends");
    within(started);
    let reach = check(&v, "reachability");
    assert_eq!(reach["ok"], false, "{v:#}");
    assert!(
        reach["detail"].as_str().unwrap().contains("1500 ms"),
        "{v:#}"
    );
    assert!(
        reach["fix"].as_str().unwrap().contains("--timeout"),
        "the fix says what to check: {v:#}"
    );
    silent.abort();

    // A gateway that completes the handshake, then leaves `health` unanswered.
    let gw = FakeGateway::start(FakeConfig {
        handler: Arc::new(|call: &Call| match call.method.as_str() {
            "health" => Reply::Silence,
            _ => default_handler(call),
        }),
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let port = gw.addr().port().to_string();
    let started = Instant::now();
    let (code, v) = tokio::time::timeout(
        Duration::from_secs(20),
        doctor_json(&home, &["--port", &port, "--timeout", "1500"]),
    )
    .await
    .expect("doctor ends");
    within(started);
    assert_eq!(code, Some(1), "{v:#}");
    assert_eq!(check(&v, "reachability")["ok"], true, "{v:#}");
    let health = check(&v, "health");
    assert_eq!(health["ok"], false, "{v:#}");
    assert!(
        health["detail"].as_str().unwrap().contains("1500 ms"),
        "{v:#}"
    );
    assert!(health["fix"].as_str().unwrap().contains("log"), "{v:#}");
}

/// With Telegram configured, the live check shows the channel: polling, its last poll, and the
/// spool and outbox; a refused token is a failed check with the key to fix.
#[tokio::test]
async fn the_live_check_shows_the_telegram_channel() {
    let token = "doctor-telegram-token-0123456789abcdef";
    let bot = clawgate_testkit::FakeBotApi::start("720001:doctor-bot").await;
    let home = home_with(json!({
        "gateway": {"auth": {"token": token}},
        "channels": {"telegram": {
            "botToken": "720001:doctor-bot", "apiRoot": bot.api_root(),
            "accounts": {"work": {"botToken": "720002:wrong-token", "apiRoot": bot.api_root()}},
        }},
    }));
    let (_gw, port) = gateway(&home, &[]).await;
    // An update ends the first long poll at once, so a poll has completed.
    bot.inject_dm(1, "hello");
    bot.wait_for_calls("getUpdates", 2, Duration::from_secs(30))
        .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let v = loop {
        let (code, v) = doctor_json(&home, &["--port", &port.to_string()]).await;
        let telegram: Vec<&serde_json::Value> = v["live"]["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["check"] == "telegram")
            .collect();
        // The work account's getMe is refused at once; wait until both are settled.
        if telegram.len() == 2
            && telegram[0]["detail"]
                .as_str()
                .unwrap()
                .contains("last poll")
            && telegram[1]["ok"] == false
        {
            assert_eq!(code, Some(1), "a channel that stopped fails the check");
            break v;
        }
        assert!(Instant::now() < deadline, "{v:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let checks: Vec<&serde_json::Value> = v["live"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["check"] == "telegram")
        .collect();
    assert_eq!(checks[0]["ok"], true, "{v:#}");
    let detail = checks[0]["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("@fake_bot (default) polling, last poll"),
        "{detail}"
    );
    assert!(detail.contains("0 update(s) not handled yet"), "{detail}");
    let work = checks[1]["detail"].as_str().unwrap();
    assert!(
        work.contains("(work) not polling") || work.contains("account work not polling"),
        "{work}"
    );
    let fix = checks[1]["fix"].as_str().unwrap();
    assert!(fix.contains("channels.telegram.botToken"), "{fix}");
    assert!(!fix.contains("wrong-token"), "the token never shows: {fix}");
    // The text report too.
    let out = clawgate(&home, &["doctor", "--port", &port.to_string()]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("telegram      ok   @fake_bot (default) polling"),
        "{text}"
    );
}
