//! `clawgate gateway run` with Tailscale and trusted-proxy auth, against a fake `tailscale`
//! executable written by each test (it logs its argv; `serve`/`funnel` stay in the
//! foreground until killed; `whois --json` prints an identity): the serve child is started and
//! stopped with the gateway and restarted when it dies; Funnel without a password and a
//! missing binary refuse to start (exit 78); from a second host (network namespaces made by the
//! test) forged Tailscale headers are refused, a trusted proxy's user is accepted
//! (`auth.method: "trusted-proxy"`) and a proxy on the host's own address is refused.

mod remote_support;

use clawgate_testkit::{IsolatedHome, json};
use remote_support::{GW_IP, HostPair, PEER_IP, curl, port_of, run, start};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::process::Command;

const TOKEN: &str = "tailscale-test-token";

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_clawgate")
}

fn home_with(config: serde_json::Value) -> IsolatedHome {
    let home = IsolatedHome::new();
    home.write_config(&config);
    home
}

/// Writes the fake `tailscale` into `dir`; returns its path and its argv log.
fn fake_tailscale(dir: &Path) -> (PathBuf, PathBuf) {
    fake_tailscale_with(dir, 0)
}

/// The fake; with `legacy_port` non-zero, `serve status --json` shows an old root route to
/// that port, and the first `status --json` says the daemon is still starting.
fn fake_tailscale_with(dir: &Path, legacy_port: u16) -> (PathBuf, PathBuf) {
    let script = dir.join("tailscale");
    let log = dir.join("tailscale.log");
    std::fs::write(
        &script,
        format!(
            r#"#!/bin/sh
LOG='{log}'
echo "argv: $*" >> "$LOG"
LEGACY={legacy_port}
if [ "$1 $2" = "serve status" ]; then
  if [ "$LEGACY" != 0 ]; then echo '{{"Web":{{"gw.tail1234.ts.net:443":{{"Handlers":{{"/":{{"Proxy":"http://127.0.0.1:'$LEGACY'"}}}}}}}}}}'; else echo '{{}}'; fi
  exit 0
fi
if [ "$1" = serve ] && [ "$3" = "--https=443" ]; then exit 0; fi
if [ "$1" = status ] && [ "$LEGACY" != 0 ] && [ ! -e "$LOG.started" ]; then
  touch "$LOG.started"; echo '{{"BackendState":"NoState"}}'; exit 0
fi
case "$1" in
  serve|funnel)
    echo "started $1 pid $$" >> "$LOG"
    trap 'echo "stopped pid $$" >> "$LOG"; exit 0' TERM
    while :; do sleep 1; done ;;
  whois)
    echo '{{"Node":{{"Name":"peer.tail1234.ts.net."}},"UserProfile":{{"LoginName":"alice@example.com","DisplayName":"Alice"}}}}' ;;
  status)
    echo '{{"BackendState":"Running","Self":{{"DNSName":"gw.tail1234.ts.net.","TailscaleIPs":["100.100.1.1"]}}}}' ;;
  version)
    echo "1.80.0" ;;
esac
"#,
            log = log.display(),
            legacy_port = legacy_port,
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, log)
}

fn gateway_cmd(home: &IsolatedHome, tailscale: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.args(["gateway", "run"]);
    if !args.contains(&"--port") {
        cmd.args(["--port", "0"]);
    }
    cmd.args(args);
    home.apply(&mut cmd);
    cmd.env("CLAWGATE_TAILSCALE_BIN", tailscale);
    cmd.env(
        "CLAWGATE_TAILSCALE_SOCKET",
        home.root().join("no-tailscaled.sock"),
    );
    cmd
}

async fn wait_for_file(path: &Path, what: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if what(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "timed out; {path:?}:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn pids_started(log: &str) -> Vec<u32> {
    log.lines()
        .filter_map(|l| l.split(" pid ").nth(1).filter(|_| l.starts_with("started")))
        .filter_map(|p| p.trim().parse().ok())
        .collect()
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[tokio::test]
async fn the_tailscale_serve_child_follows_the_gateway() {
    let home =
        home_with(json!({"gateway": {"tailscale": {"mode": "serve"}, "auth": {"token": TOKEN}}}));
    let gw_port = clawgate_testkit::free_port();
    let (ts, log) = fake_tailscale_with(home.root(), gw_port);
    let (mut gw, _) = start(
        gateway_cmd(&home, &ts, &["--port", &gw_port.to_string()]),
        "tailscale serve listener on",
    )
    .await;
    let line = gw
        .wait_for_line(
            |l| l.contains("tailscale serve listener on"),
            Instant::now() + Duration::from_secs(5),
        )
        .await
        .map(|l| l.text)
        .unwrap_or_else(|_| gw.transcript());
    let ts_port = port_of(
        &line[line.find("tailscale serve listener on").unwrap()..]
            .replace("listener on", "listening on"),
    );
    let text = wait_for_file(&log, |t| t.contains("started serve")).await;
    assert!(
        text.contains(&format!("argv: serve --yes --bg=false {ts_port}\n")),
        "{text}"
    );
    assert!(
        gw.transcript().contains("accepted after whois"),
        "{}",
        gw.transcript()
    );
    // The binary was checked, the daemon waited for, the old root route adopted.
    assert!(text.starts_with("argv: version\n"), "{text}");
    assert!(
        gw.transcript()
            .contains("waiting for the local Tailscale daemon (NoState)"),
        "{}",
        gw.transcript()
    );
    assert!(
        text.contains("argv: serve --yes --https=443 --set-path=/ off\n"),
        "{text}"
    );
    assert!(
        gw.transcript().contains(
            "serve enabled: https://gw.tail1234.ts.net/ (WS via wss://gw.tail1234.ts.net)"
        ),
        "{}",
        gw.transcript()
    );
    let first = pids_started(&text)[0];

    // The listener only takes requests the Serve proxy forwards.
    let readyz = format!("http://127.0.0.1:{ts_port}/readyz");
    let home2 = home_with(json!({}));
    let mut curl_cmd = Command::new("curl");
    curl_cmd.args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", &readyz]);
    curl_cmd.args(["-H", "Tailscale-User-Login: alice@example.com"]);
    home2.apply(&mut curl_cmd);
    let ran = run(curl_cmd).await;
    assert_eq!(ran.stdout.trim(), "403", "{ran}");

    // A dead claim is restarted.
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &first.to_string()])
        .status();
    let text = wait_for_file(&log, |t| pids_started(t).len() >= 2).await;
    let second = *pids_started(&text).last().unwrap();
    assert_ne!(first, second);
    assert!(
        gw.transcript().contains("route claim exited"),
        "{}",
        gw.transcript()
    );

    // Stopping the gateway stops the claim (SIGTERM to its process group).
    gw.signal("TERM");
    let status = gw.wait_timeout(Duration::from_secs(15)).await;
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "{}",
        gw.transcript()
    );
    let text = wait_for_file(&log, |t| t.contains(&format!("stopped pid {second}"))).await;
    assert!(!alive(second), "{text}");
}

#[tokio::test]
async fn funnel_without_a_password_and_a_missing_binary_refuse_to_start() {
    let home =
        home_with(json!({"gateway": {"tailscale": {"mode": "funnel"}, "auth": {"token": TOKEN}}}));
    let (ts, log) = fake_tailscale(home.root());
    let ran = run(gateway_cmd(&home, &ts, &[])).await;
    assert_eq!(ran.code, Some(78), "{ran}");
    assert!(
        ran.stderr.contains("tailscale funnel requires gateway auth mode=password (set gateway.auth.password or OPENCLAW_GATEWAY_PASSWORD)"),
        "{ran}"
    );
    assert!(!log.exists(), "no claim without a password");

    // Funnel with a password (here from `--tailscale funnel`) starts `tailscale funnel`.
    let home = home_with(
        json!({"gateway": {"auth": {"mode": "password", "password": "a-long-enough-funnel-password"}}}),
    );
    let (ts, log) = fake_tailscale(home.root());
    let (gw, line) = start(
        gateway_cmd(&home, &ts, &["--tailscale", "funnel"]),
        "tailscale funnel listener on",
    )
    .await;
    assert!(
        line.contains("not used (gateway.auth.allowTailscale is off)"),
        "{line}"
    );
    let text = wait_for_file(&log, |t| t.contains("started funnel")).await;
    assert!(text.contains("argv: funnel --yes --bg=false "), "{text}");
    drop(gw);

    // No tailscale binary: a clear start-up error naming the fix.
    let home =
        home_with(json!({"gateway": {"tailscale": {"mode": "serve"}, "auth": {"token": TOKEN}}}));
    let missing = home.root().join("nowhere/tailscale");
    let ran = run(gateway_cmd(&home, &missing, &[])).await;
    assert_eq!(ran.code, Some(78), "{ran}");
    assert!(ran.stderr.contains("needs the tailscale CLI"), "{ran}");
    assert!(ran.stderr.contains("CLAWGATE_TAILSCALE_BIN"), "{ran}");
    assert!(
        ran.stderr.contains("gateway.tailscale.mode to off"),
        "{ran}"
    );
}

#[tokio::test]
async fn trusted_proxy_start_up_refusals() {
    // Mutually exclusive with a token.
    let home = home_with(
        json!({"gateway": {"trustedProxies": ["10.0.0.1"], "auth": {"mode": "trusted-proxy", "token": TOKEN, "trustedProxy": {"userHeader": "x-forwarded-user"}}}}),
    );
    let ran = run(gateway_cmd(&home, Path::new("tailscale"), &[])).await;
    assert_eq!(ran.code, Some(78), "{ran}");
    assert!(
        ran.stderr
            .contains("trusted-proxy and token auth are mutually exclusive"),
        "{ran}"
    );
    // Requires trustedProxies.
    let home = home_with(
        json!({"gateway": {"auth": {"mode": "trusted-proxy", "trustedProxy": {"userHeader": "x-forwarded-user"}}}}),
    );
    let ran = run(gateway_cmd(&home, Path::new("tailscale"), &[])).await;
    assert_eq!(ran.code, Some(78), "{ran}");
    assert!(
        ran.stderr.contains("requires gateway.trustedProxies"),
        "{ran}"
    );
    // Requires gateway.auth.trustedProxy.
    let home = home_with(
        json!({"gateway": {"trustedProxies": ["10.0.0.1"], "auth": {"mode": "trusted-proxy"}}}),
    );
    let ran = run(gateway_cmd(&home, Path::new("tailscale"), &[])).await;
    assert_eq!(ran.code, Some(78), "{ran}");
    assert!(
        ran.stderr.contains("no trustedProxy config was provided"),
        "{ran}"
    );
}

fn ws_client() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ws_connect.py").to_owned()
}

/// The fixture client from namespace `ns`: the connect response, or `HTTP …`.
async fn ws_connect(pair: &HostPair, ns: &str, host: &str, port: u16, headers: &[&str]) -> String {
    let home = home_with(json!({}));
    let mut args = vec![ws_client(), host.to_owned(), port.to_string()];
    args.extend(headers.iter().map(|h| h.to_string()));
    let ran = run(pair.command(ns, "/usr/bin/python3", &args, &home)).await;
    assert_eq!(ran.code, Some(0), "{ran}");
    ran.stdout.trim().to_owned()
}

#[tokio::test]
async fn from_a_second_host_forged_identity_headers_are_refused_and_a_trusted_proxy_user_is_accepted()
 {
    let pair = HostPair::create("tsid");
    // A lan gateway: Tailscale identity headers from the peer are forged (no Serve proxy).
    let home = home_with(json!({"gateway": {"auth": {"token": TOKEN}}}));
    let (gw, line) = start(
        pair.command(
            &pair.gw,
            bin(),
            ["gateway", "run", "--port", "0", "--bind", "lan"],
            &home,
        ),
        "listening on ",
    )
    .await;
    let port = port_of(&line);
    let (status, body) = curl(
        &pair,
        &pair.peer,
        &format!("http://{GW_IP}:{port}/readyz"),
        &[
            "Tailscale-User-Login: alice@example.com",
            "Tailscale-User-Name: Alice",
        ],
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("proxy_attribution_required"), "{body}");
    let out = ws_connect(
        &pair,
        &pair.peer,
        &GW_IP.to_string(),
        port,
        &["Tailscale-User-Login: alice@example.com"],
    )
    .await;
    assert!(out.starts_with("HTTP 403"), "{out}");
    drop(gw);

    // Trusted-proxy mode: the peer is the proxy.
    let home = home_with(json!({"gateway": {
        "trustedProxies": [format!("{PEER_IP}"), format!("{GW_IP}")],
        "auth": {"mode": "trusted-proxy", "trustedProxy": {
            "userHeader": "x-forwarded-user", "requiredHeaders": ["x-proxy-secret"], "allowUsers": ["alice"]}}}}));
    let (gw, line) = start(
        pair.command(
            &pair.gw,
            bin(),
            ["gateway", "run", "--port", "0", "--bind", "lan"],
            &home,
        ),
        "listening on ",
    )
    .await;
    let port = port_of(&line);
    let gw_ip = GW_IP.to_string();
    let good = [
        "X-Forwarded-For: 203.0.113.9",
        "X-Forwarded-User: alice",
        "X-Proxy-Secret: s",
    ];
    let out = ws_connect(&pair, &pair.peer, &gw_ip, port, &good).await;
    let v: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|_| panic!("{out}\n{}", gw.transcript()));
    assert_eq!(v["ok"], true, "{out}");
    assert_eq!(v["payload"]["auth"]["method"], "trusted-proxy", "{out}");

    let reason = |out: &str| -> String {
        let v: serde_json::Value = serde_json::from_str(out).unwrap_or_else(|_| panic!("{out}"));
        assert_eq!(
            v["error"]["details"]["code"], "AUTH_IDENTITY_HEADER_REQUIRED",
            "{out}"
        );
        v["error"]["details"]["authReason"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // Not an allowed user; required header missing.
    let out = ws_connect(
        &pair,
        &pair.peer,
        &gw_ip,
        port,
        &[
            "X-Forwarded-For: 203.0.113.9",
            "X-Forwarded-User: mallory",
            "X-Proxy-Secret: s",
        ],
    )
    .await;
    assert_eq!(reason(&out), "trusted_proxy_user_not_allowed");
    let out = ws_connect(
        &pair,
        &pair.peer,
        &gw_ip,
        port,
        &["X-Forwarded-For: 203.0.113.9", "X-Forwarded-User: alice"],
    )
    .await;
    assert_eq!(reason(&out), "trusted_proxy_missing_required_header");
    // A "proxy" on the gateway host's own address.
    let out = ws_connect(&pair, &pair.gw, &gw_ip, port, &good).await;
    assert_eq!(reason(&out), "trusted_proxy_local_interface_source");
    // The same headers on loopback (allowLoopback is off; loopback is not a trusted proxy
    // here either, so forwarded headers from it are refused at the door).
    let out = ws_connect(&pair, &pair.gw, "127.0.0.1", port, &good).await;
    assert!(out.starts_with("HTTP 403"), "{out}");
    drop(gw);
}
