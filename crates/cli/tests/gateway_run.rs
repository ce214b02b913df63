//! `clawgate gateway run` as a user runs it: zero config, generated token, port conflicts,
//! config errors, precedence, and shutdown on SIGTERM.

use clawgate_testkit::{
    ChildProcess, ClawgateBin, Frame, IsolatedHome, RawWs, connect_params, free_port, json,
};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};
use tokio::process::Command;

const WAIT: Duration = Duration::from_secs(20);

fn bin() -> ClawgateBin {
    ClawgateBin::new(env!("CARGO_BIN_EXE_clawgate"))
}

/// `clawgate <args>` in `home`, with the OpenClaw path variables the home sets removed, so the
/// defaults (`~/.openclaw`) apply as on a fresh machine.
fn fresh_command(home: &IsolatedHome, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = bin().command(home);
    cmd.env_remove("OPENCLAW_STATE_DIR")
        .env_remove("OPENCLAW_CONFIG_PATH");
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

async fn start(cmd: Command) -> (ChildProcess, String) {
    let mut p = ChildProcess::spawn(cmd, "clawgate gateway").unwrap();
    let line = p
        .wait_for_line(|l| l.contains("listening on ws://"), Instant::now() + WAIT)
        .await
        .unwrap();
    let url = clawgate_testkit::parse_listening_url(&line.text).unwrap();
    (p, url)
}

async fn run_to_end(cmd: Command) -> (i32, String) {
    let mut p = ChildProcess::spawn(cmd, "clawgate").unwrap();
    let status = p.wait_timeout(WAIT).await.expect("exits");
    // Read to the end of its output before looking at it.
    let _ = p.wait_for_line(|_| false, Instant::now() + WAIT).await;
    (status.code().unwrap_or(-1), p.transcript())
}

#[tokio::test]
async fn zero_config_generates_a_private_token_and_never_prints_it() {
    let home = IsolatedHome::new();
    let (mut gw, url) = start(fresh_command(
        &home,
        &["gateway", "run", "--port", "0"],
        &[],
    ))
    .await;
    let token_path = home.home().join(".openclaw/gateway.token");
    let token = std::fs::read_to_string(&token_path)
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(token.len(), 43, "256 bits, base64url");
    assert_eq!(
        std::fs::metadata(&token_path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let out = gw.transcript();
    assert!(out.contains(&token_path.display().to_string()), "{out}");
    assert!(out.contains("CLAWGATE_GATEWAY_TOKEN"), "{out}");
    assert!(
        !out.contains(&token),
        "the token must not be printed:\n{out}"
    );

    let (mut ws, hello) = RawWs::handshake(&url, connect_params(Some(&token), &["operator.read"]))
        .await
        .unwrap();
    assert_eq!(hello["payload"]["auth"]["method"], "token");
    let health = ws.request("health", json!({}), WAIT).await.unwrap();
    assert_eq!(health["payload"]["ok"], true);

    // A restart reuses the stored token.
    gw.stop(Duration::from_secs(5)).await;
    let (gw2, _) = start(fresh_command(
        &home,
        &["gateway", "run", "--port", "0"],
        &[],
    ))
    .await;
    assert!(
        gw2.transcript().contains("using the token stored in"),
        "{}",
        gw2.transcript()
    );
    assert_eq!(std::fs::read_to_string(&token_path).unwrap().trim(), token);
}

#[tokio::test]
async fn a_taken_port_is_one_clear_line_and_exit_69() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port().to_string();
    let home = IsolatedHome::new();
    let (code, out) = run_to_end(fresh_command(
        &home,
        &["gateway", "run", "--port", &port, "--token", "t"],
        &[],
    ))
    .await;
    assert_eq!(code, 69, "{out}");
    let line = out
        .lines()
        .find(|l| l.contains("already in use"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains(&format!("port {port}")), "{line}");
    assert!(line.contains("--port"), "{line}");
}

#[tokio::test]
async fn sigterm_sends_shutdown_closes_1012_and_exits_0() {
    let home = IsolatedHome::new();
    let (mut gw, url) = start(fresh_command(
        &home,
        &["gateway", "run", "--port", "0", "--token", "tok"],
        &[],
    ))
    .await;
    let (mut ws, _) = RawWs::handshake(&url, connect_params(Some("tok"), &["operator.read"]))
        .await
        .unwrap();
    let started = Instant::now();
    gw.signal("TERM");
    let ev = ws.recv_json(WAIT).await.unwrap();
    assert_eq!(ev["event"], "shutdown", "{ev}");
    assert_eq!(ev["payload"], json!({"reason":"gateway stopping"}));
    assert_eq!(
        ws.recv(WAIT).await.unwrap(),
        Frame::Close {
            code: 1012,
            reason: "service restart".into()
        }
    );
    drop(ws);
    let status = gw
        .wait_timeout(Duration::from_secs(5))
        .await
        .expect("exits within 5 s");
    assert_eq!(status.code(), Some(0));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn malformed_config_names_file_line_and_column() {
    let home = IsolatedHome::new();
    let path = home.root().join("bad.json5");
    std::fs::write(&path, "{\n  gateway: {\n    port: 18789,,\n  },\n}\n").unwrap();
    let p = path.display().to_string();
    let (code, out) = run_to_end(fresh_command(
        &home,
        &["gateway", "run", "--config", &p],
        &[],
    ))
    .await;
    assert_eq!(code, 78, "{out}");
    assert!(out.contains(&p), "{out}");
    assert!(out.contains("line 3"), "{out}");
    assert!(out.contains("column"), "{out}");
}

#[tokio::test]
async fn an_existing_openclaw_config_loads_and_unimplemented_keys_are_reported_once() {
    let home = IsolatedHome::new();
    let path = home.root().join("openclaw.json");
    std::fs::write(
        &path,
        r#"{
  // written by OpenClaw
  agents: { defaults: { model: "gpt-5", workspace: "~/work" } },
  channels: { telegram: { enabled: false }, discord: { enabled: false } },
  gateway: { mode: "local", port: 18789, auth: { mode: "token", token: "${GW_TOKEN}" }, controlUi: { enabled: true } },
}"#,
    )
    .unwrap();
    let p = path.display().to_string();
    let (gw, url) = start(fresh_command(
        &home,
        &["gateway", "run", "--config", &p, "--port", "0"],
        &[("GW_TOKEN", "from-env-substitution")],
    ))
    .await;
    let out = gw.transcript();
    let ignored: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("ignoring keys"))
        .collect();
    assert_eq!(ignored.len(), 1, "{out}");
    for key in ["agents.defaults.workspace", "channels.discord"] {
        assert!(ignored[0].contains(key), "{out}");
    }
    // The model is read (and checked) with the model settings, Telegram is a channel
    // clawgate runs and the browser UI is served, so none of them is reported.
    assert!(!ignored[0].contains("agents.defaults.model"), "{out}");
    assert!(!ignored[0].contains("gateway.controlUi"), "{out}");
    assert!(!ignored[0].contains("channels.telegram"), "{out}");
    let res = RawWs::handshake(
        &url,
        connect_params(Some("from-env-substitution"), &["operator.read"]),
    )
    .await;
    assert!(
        res.is_ok(),
        "${{VAR}} substitution feeds gateway.auth.token"
    );
}

#[tokio::test]
async fn port_precedence_is_flag_then_env_then_config() {
    let home = IsolatedHome::new();
    let (config_port, env_port, flag_port) = (free_port(), free_port(), free_port());
    let path = home.root().join("c.json5");
    std::fs::write(
        &path,
        format!("{{gateway: {{port: {config_port}, auth: {{token: 't'}}}}}}"),
    )
    .unwrap();
    let p = path.display().to_string();
    let env = [("CLAWGATE_GATEWAY_PORT", env_port.to_string())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let (mut gw, url) = start(fresh_command(
        &home,
        &[
            "gateway",
            "run",
            "--config",
            &p,
            "--port",
            &flag_port.to_string(),
        ],
        &env,
    ))
    .await;
    assert!(url.ends_with(&format!(":{flag_port}")), "{url}");
    gw.stop(Duration::from_secs(5)).await;
    let (mut gw, url) = start(fresh_command(
        &home,
        &["gateway", "run", "--config", &p],
        &env,
    ))
    .await;
    assert!(url.ends_with(&format!(":{env_port}")), "{url}");
    gw.stop(Duration::from_secs(5)).await;
    let (mut gw, url) = start(fresh_command(
        &home,
        &["gateway", "run", "--config", &p],
        &[],
    ))
    .await;
    assert!(url.ends_with(&format!(":{config_port}")), "{url}");
    gw.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn bad_flag_values_explain_the_fix() {
    let home = IsolatedHome::new();
    let (code, out) = run_to_end(fresh_command(
        &home,
        &["gateway", "run", "--auth", "bogus"],
        &[],
    ))
    .await;
    assert_eq!(code, 78, "{out}");
    assert!(out.contains("--auth"), "{out}");
    assert!(out.contains("token"), "{out}");
    let (code, out) = run_to_end(fresh_command(
        &home,
        &["gateway", "run", "--auth", "password"],
        &[],
    ))
    .await;
    assert_eq!(code, 78, "{out}");
    assert!(out.contains("--password"), "{out}");
}

#[tokio::test]
async fn loopback_means_ipv4_and_ipv6() {
    let home = IsolatedHome::new();
    let (gw, url) = start(fresh_command(
        &home,
        &["gateway", "run", "--port", "0", "--token", "t"],
        &[],
    ))
    .await;
    let port = url.rsplit(':').next().unwrap().to_owned();
    if std::net::TcpListener::bind("[::1]:0").is_ok() {
        assert!(
            gw.transcript().contains(&format!("ws://[::1]:{port}")),
            "{}",
            gw.transcript()
        );
        let (_, hello) = RawWs::handshake(
            &format!("ws://[::1]:{port}"),
            connect_params(Some("t"), &[]),
        )
        .await
        .unwrap();
        assert_eq!(hello["payload"]["type"], "hello-ok");
    }
}

#[tokio::test]
async fn bad_config_entries_are_refused_naming_the_key() {
    let home = IsolatedHome::new();
    for (config, says) in [
        // An unknown scope: the known ones are listed.
        (
            r#"{ gateway: { auth: { identityScopes: { "alice@example.com": ["operator.root"] } } } }"#,
            "gateway.auth.identityScopes.alice@example.com[0] must be one of operator.admin",
        ),
        (
            r#"{ gateway: { nodes: { pairing: { sshVerify: { port: 2222 } } } } }"#,
            "gateway.nodes.pairing.sshVerify has an unknown key \"port\"; the keys are user, identity, timeoutMs, cidrs",
        ),
        (
            r#"{ gateway: { nodes: { pairing: { autoApproveCidrs: ["lan"] } } } }"#,
            "gateway.nodes.pairing.autoApproveCidrs[0] must be an IP address or CIDR",
        ),
    ] {
        let path = home.root().join("config.json5");
        std::fs::write(&path, config).unwrap();
        let p = path.display().to_string();
        let (code, out) = run_to_end(fresh_command(
            &home,
            &[
                "gateway", "run", "--config", &p, "--port", "0", "--token", "t",
            ],
            &[],
        ))
        .await;
        assert_eq!(code, 78, "{out}");
        assert!(out.contains(says), "{out}");
    }
}
