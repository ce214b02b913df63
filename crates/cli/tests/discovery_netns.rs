//! Bonjour between two hosts (a network namespace pair made by each test): `gateway run` in
//! one advertises `_openclaw-gw._tcp` with OpenClaw's TXT record, `gateway discover` in the
//! other finds it with the gateway's port and certificate fingerprint; `discovery.mdns.mode`
//! "off" and `OPENCLAW_DISABLE_BONJOUR=1` keep a gateway quiet; `gateway probe --ssh-auto`
//! tunnels to the gateway it discovers.
//! Interop: clawgate's `gateway discover` reads a real OpenClaw gateway's beacon, and both
//! publish the same TXT keys. OpenClaw's own `gateway discover` is not run against clawgate's
//! beacon: on Linux it shells out to `avahi-browse` (and needs the avahi daemon), which this
//! machine does not have.

mod remote_support;

use clawgate_testkit::{ChildProcess, IsolatedHome, OpenClaw, json};
use remote_support::{HostPair, WAIT, port_of, run, start};
use serde_json::Value;
use std::time::{Duration, Instant};

const TOKEN: &str = "discovery-test-token";
/// The gateway host's mDNS name (both namespaces share this machine's host name).
const MDNS_HOST: &str = "gw-host";
/// The TXT keys of a full-mode beacon of a TLS-less, LAN-bound gateway without a tailnet
/// name, clawgate's and OpenClaw's alike.
const FULL_TXT_KEYS: [&str; 8] = [
    "cliPath",
    "displayName",
    "gatewayDirectReachable",
    "gatewayPort",
    "lanHost",
    "role",
    "sshPort",
    "transport",
];

fn txt_keys(beacon: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = beacon["txt"]
        .as_object()
        .map(|t| t.keys().map(String::as_str).collect())
        .unwrap_or_default();
    keys.sort_unstable();
    keys
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_clawgate")
}

/// A gateway bound to lan in the pair's gateway namespace, allowed to advertise (Bonjour is
/// opt-in on Linux, as OpenClaw's plugin: `plugins.entries.bonjour.enabled` unless `config`
/// says otherwise; the test homes turn it off, and this machine counts as a container, where
/// OpenClaw needs `OPENCLAW_DISABLE_BONJOUR=0` to advertise); `env` adds to that.
async fn gateway(
    pair: &HostPair,
    config: Value,
    env: &[(&str, &str)],
) -> (ChildProcess, String, u16, IsolatedHome) {
    let home = IsolatedHome::new();
    let mut config = config;
    if config.pointer("/plugins/entries/bonjour").is_none() {
        config["plugins"] = json!({"entries": {"bonjour": {"enabled": true}}});
    }
    home.write_config(&config);
    let args = [
        "gateway", "run", "--port", "0", "--bind", "lan", "--token", TOKEN,
    ];
    let mut cmd = pair.command(&pair.gw, bin(), args, &home);
    cmd.env_remove("CLAWGATE_DISABLE_BONJOUR")
        .env("OPENCLAW_DISABLE_BONJOUR", "0")
        .env("OPENCLAW_MDNS_HOSTNAME", MDNS_HOST);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let (p, line) = start(cmd, "listening on ").await;
    let port = port_of(&line);
    (p, line, port, home)
}

/// `gateway discover --json` from the peer, repeated until `done` accepts the answer (an
/// mDNS answer can miss one 2 s browse, never all of them).
async fn discover_until(pair: &HostPair, done: impl Fn(&Value) -> bool) -> Value {
    let home = IsolatedHome::new();
    home.write_config(&json!({}));
    let deadline = Instant::now() + WAIT;
    loop {
        let args = ["gateway", "discover", "--json", "--timeout", "2000"];
        let ran = run(pair.command(&pair.peer, bin(), args, &home)).await;
        assert_eq!(ran.code, Some(0), "{ran}");
        let v: Value = serde_json::from_str(&ran.stdout).unwrap_or_else(|e| panic!("{e}\n{ran}"));
        if done(&v) || Instant::now() > deadline {
            return v;
        }
    }
}

fn fingerprint_in(transcript: &str) -> String {
    let marker = "sha256 fingerprint ";
    let at = transcript
        .find(marker)
        .unwrap_or_else(|| panic!("no fingerprint printed:\n{transcript}"));
    transcript[at + marker.len()..][..64].to_owned()
}

#[tokio::test]
async fn a_lan_gateway_is_discovered_from_a_second_host_with_its_fingerprint() {
    let pair = HostPair::create("mdns");
    let (mut gw, _, port, _home) =
        gateway(&pair, json!({"gateway": {"tls": {"enabled": true}}}), &[]).await;
    let fp = fingerprint_in(&gw.transcript());
    let found = discover_until(&pair, |v| v["count"] == 1).await;
    let host = format!("{MDNS_HOST}.local");
    let beacon = &found["beacons"][0];
    assert_eq!(found["count"], 1, "{found:#}\n{}", gw.transcript());
    assert_eq!(found["domains"], json!(["local."]));
    assert_eq!(found["timeoutMs"], 2000);
    assert_eq!(beacon["host"], host);
    assert_eq!(beacon["port"], port);
    assert_eq!(beacon["domain"], "local.");
    assert_eq!(beacon["wsUrl"], format!("wss://{host}:{port}"));
    assert_eq!(beacon["gatewayTls"], true);
    assert_eq!(beacon["gatewayTlsFingerprintSha256"], fp);
    assert_eq!(beacon["gatewayPort"], port);
    assert_eq!(beacon["role"], "gateway");
    assert_eq!(beacon["transport"], "gateway");
    assert_eq!(beacon["lanHost"], host);
    let instance = beacon["instanceName"].as_str().unwrap();
    assert!(
        instance.ends_with(" (OpenClaw)") || instance.to_lowercase().contains("openclaw"),
        "{instance}"
    );
    // Minimal mode (the default): no SSH details.
    assert_eq!(
        beacon["txt"],
        json!({
            "displayName": beacon["displayName"],
            "gatewayDirectReachable": "1",
            "gatewayPort": port.to_string(),
            "gatewayTls": "1",
            "gatewayTlsSha256": fp,
            "lanHost": host,
            "role": "gateway",
            "transport": "gateway",
        })
    );

    // Withdrawn on shutdown.
    gw.stop(Duration::from_secs(10)).await;
    assert!(
        gw.transcript().contains("clawgate gateway stopped"),
        "{}",
        gw.transcript()
    );
    let after = discover_until(&pair, |v| v["count"] == 0).await;
    assert_eq!(after["count"], 0, "{after:#}");
}

#[tokio::test]
async fn mode_off_and_the_env_switch_keep_a_gateway_quiet_and_full_mode_adds_ssh_details() {
    let pair = HostPair::create("mdnsoff");
    let (off, _, off_port, _h1) =
        gateway(&pair, json!({"discovery": {"mdns": {"mode": "off"}}}), &[]).await;
    let (disabled, _, disabled_port, _h2) =
        gateway(&pair, json!({}), &[("OPENCLAW_DISABLE_BONJOUR", "1")]).await;
    // Without OpenClaw's plugin switch (off by default on Linux) nothing is announced.
    let (not_enabled, _, not_enabled_port, _h4) = gateway(
        &pair,
        json!({"plugins": {"entries": {"bonjour": {"enabled": false}}}}),
        &[],
    )
    .await;
    // The control: a gateway that does advertise, in full mode.
    let (full, _, port, _h3) = gateway(
        &pair,
        json!({"discovery": {"mdns": {"mode": "full"}}}),
        &[
            ("OPENCLAW_SSH_PORT", "2222"),
            ("OPENCLAW_CLI_PATH", "/opt/clawgate"),
        ],
    )
    .await;
    let found = discover_until(&pair, |v| v["count"] != 0).await;
    let ports: Vec<&Value> = found["beacons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| &b["port"])
        .collect();
    assert_eq!(
        ports,
        [&json!(port)],
        "off: {off_port}, disabled: {disabled_port}, not enabled: {not_enabled_port}\n{found:#}\n{}\n{}\n{}\n{}",
        off.transcript(),
        disabled.transcript(),
        not_enabled.transcript(),
        full.transcript()
    );
    let beacon = &found["beacons"][0];
    assert_eq!(txt_keys(beacon), FULL_TXT_KEYS, "{beacon:#}");
    assert_eq!(beacon["sshPort"], 2222);
    assert_eq!(beacon["cliPath"], "/opt/clawgate");
    assert_eq!(beacon["txt"]["sshPort"], "2222");
    assert_eq!(beacon["wsUrl"], format!("ws://{MDNS_HOST}.local:{port}"));
    assert!(beacon.get("gatewayTls").is_none(), "{beacon:#}");
    assert!(!off.transcript().contains("bonjour: advertised"));
    assert!(!disabled.transcript().contains("bonjour: advertised"));
}

#[tokio::test]
async fn a_bad_mdns_mode_is_a_config_error() {
    let home = IsolatedHome::new();
    home.write_config(&json!({"discovery": {"mdns": {"mode": "loud"}}}));
    let ran = run({
        let mut cmd = tokio::process::Command::new(bin());
        cmd.args(["gateway", "run", "--port", "0"]);
        home.apply(&mut cmd);
        cmd
    })
    .await;
    assert_eq!(ran.code, Some(78), "{ran}");
    assert!(
        ran.stderr
            .contains("discovery.mdns.mode must be one of off, minimal, full (got \"loud\")"),
        "{ran}"
    );
}

#[tokio::test]
async fn probe_ssh_auto_tunnels_to_the_discovered_gateway() {
    let pair = HostPair::create("sshauto");
    let (gw, _, port, _home) = gateway(
        &pair,
        json!({"discovery": {"mdns": {"mode": "full"}}}),
        &[("OPENCLAW_SSH_PORT", "2222")],
    )
    .await;
    // Wait until the peer sees it, so the probe's shorter browse is not the first look.
    discover_until(&pair, |v| v["count"] == 1).await;
    let home = IsolatedHome::new();
    home.write_config(&json!({}));
    let deadline = Instant::now() + WAIT;
    let want = format!("tester@{MDNS_HOST}.local:2222");
    loop {
        let args = [
            "gateway",
            "probe",
            "--ssh-auto",
            "--json",
            "--timeout",
            "3000",
        ];
        let mut cmd = pair.command(&pair.peer, bin(), args, &home);
        cmd.env("USER", "tester");
        let ran = run(cmd).await;
        let v: Value = serde_json::from_str(&ran.stdout).unwrap_or_else(|e| panic!("{e}\n{ran}"));
        let warnings = v["warnings"].as_array().cloned().unwrap_or_default();
        // `<name>.local` does not resolve without an mDNS resolver, so ssh fails; the
        // warning names the target the discovery chose.
        if let Some(w) = warnings.iter().find(|w| w["code"] == "ssh_tunnel_failed") {
            assert_eq!(w["target"], want.as_str(), "{v:#}");
            assert_eq!(w["targetSource"], "Bonjour discovery (--ssh-auto)");
            // The browse the target came from is in the report, in OpenClaw's shape; a
            // gateway was found, so no `no_gateway_reachable`.
            let host = format!("{MDNS_HOST}.local");
            let beacon = &v["discovery"]["beacons"][0];
            assert_eq!(v["discovery"]["count"], 1, "{v:#}");
            assert_eq!(v["discovery"]["timeoutMs"], 1200);
            assert_eq!(beacon["host"], host.as_str());
            assert_eq!(beacon["lanHost"], host.as_str());
            assert_eq!(beacon["sshPort"], 2222);
            assert_eq!(beacon["gatewayPort"], port);
            assert_eq!(beacon["wsUrl"], format!("ws://{host}:{port}"));
            assert_eq!(beacon["domain"], "local.");
            assert!(beacon["instanceName"].is_string(), "{v:#}");
            assert!(
                !warnings.iter().any(|w| w["code"] == "no_gateway_reachable"),
                "{v:#}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no tunnel attempted:\n{ran}\n{}",
            gw.transcript()
        );
    }
}

#[tokio::test]
async fn clawgate_discovers_a_real_openclaw_gateway() {
    let oc = OpenClaw::from_env();
    let pair = HostPair::create("ocmdns");
    pair.bridge_gateway_side();
    // On Linux OpenClaw's bonjour plugin is off unless enabled.
    let home = oc.isolated_home(&json!({
        "plugins": {"entries": {"bonjour": {"enabled": true}}},
        "discovery": {"mdns": {"mode": "full"}},
    }));
    let args = [
        "gateway",
        "run",
        "--port",
        "18790",
        "--bind",
        "lan",
        "--auth",
        "token",
        "--token",
        TOKEN,
        "--allow-unconfigured",
    ];
    let mut cmd = pair.command(&pair.gw, oc.bin(), args, &home);
    cmd.env("OPENCLAW_DISABLE_BONJOUR", "0")
        .env("OPENCLAW_MDNS_HOSTNAME", "oc-host")
        .env("OPENCLAW_SSH_PORT", "2200");
    let (gw, _) = start(cmd, "bonjour: advertised").await;
    let found = discover_until(&pair, |v| v["count"] == 1).await;
    let beacon = &found["beacons"][0];
    assert_eq!(found["count"], 1, "{found:#}\n{}", gw.transcript());
    assert_eq!(beacon["host"], "oc-host.local");
    assert_eq!(beacon["port"], 18790);
    assert_eq!(beacon["gatewayPort"], 18790);
    assert_eq!(beacon["sshPort"], 2200);
    assert_eq!(beacon["lanHost"], "oc-host.local");
    assert_eq!(beacon["wsUrl"], "ws://oc-host.local:18790");
    assert_eq!(txt_keys(beacon), FULL_TXT_KEYS, "{beacon:#}");
}
