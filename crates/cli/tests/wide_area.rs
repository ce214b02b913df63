//! `discovery.wideArea.domain`: the zone clawgate renders is OpenClaw's byte for byte, and
//! `gateway run` writes it under the state dir, leaves it alone when nothing changed, and
//! warns instead when there is no tailnet address or the domain is not a DNS name.

use clawgate_testkit::{ChildProcess, ClawgateBin, IsolatedHome, OpenClaw, free_port, json};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);
const TOKEN: &str = "wide-area-test-token";

/// OpenClaw's `renderWideAreaGatewayZoneText` options for the inputs of the fixture `name`
/// in crates/gateway/tests/fixtures, whose unit test renders the same inputs with clawgate:
/// every TXT field, a non-ASCII name (the hash is over UTF-16) and the characters TXT quoting
/// escapes; and minimal mode without TLS, IPv6 or a tailnet name, on a mixed-case domain.
fn fixture_options(name: &str) -> Value {
    let mut options = json!({
        "domain": "openclaw.internal.", "hostLabel": "studio", "instanceLabel": "studio-gateway",
        "displayName": "Zoë's \"Studio\" (OpenClaw)", "gatewayPort": 18789,
        "gatewayTlsEnabled": true, "gatewayTlsFingerprintSha256": "ab".repeat(32),
        "gatewayDirectReachable": true, "tailnetDns": "studio.tail1234.ts.net",
        "sshPort": 2222, "cliPath": "C:\\tools\\open claw\nx",
        "tailnetIPv4": "100.101.102.103", "tailnetIPv6": "fd7a:115c:a1e0::1234",
        "serial": 2026112501,
    });
    if name == "wide-area-zone-minimal.db" {
        for key in [
            "gatewayTlsFingerprintSha256",
            "tailnetDns",
            "sshPort",
            "cliPath",
            "tailnetIPv6",
        ] {
            options[key] = Value::Null;
        }
        options["gatewayTlsEnabled"] = json!(false);
        options["gatewayDirectReachable"] = json!(false);
        options["domain"] = json!("Corp.Example.");
        options["serial"] = json!(1);
    }
    options
}

/// What OpenClaw's own module renders for `options`.
fn openclaw_render(options: &Value) -> String {
    let (node, dist) = OpenClaw::from_env().node_and_dist();
    let module = dist.join("widearea-dns-BFMogE6t.mjs");
    assert!(module.is_file(), "{} is missing", module.display());
    let script = format!(
        "const m = await import({:?}); process.stdout.write(m.r(JSON.parse(process.argv[1])));",
        format!("file://{}", module.display())
    );
    let out = std::process::Command::new(node)
        .args(["--input-type=module", "-e", &script, &options.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_zone_is_byte_identical_to_openclaws() {
    for (name, expected) in [
        (
            "wide-area-zone.db",
            include_str!("../../gateway/tests/fixtures/wide-area-zone.db"),
        ),
        (
            "wide-area-zone-minimal.db",
            include_str!("../../gateway/tests/fixtures/wide-area-zone-minimal.db"),
        ),
    ] {
        assert_eq!(openclaw_render(&fixture_options(name)), expected, "{name}");
    }
}

/// A `tailscale` that reports this machine at 100.101.102.103 as `gw.tail1234.ts.net`.
fn fake_tailscale(home: &IsolatedHome) -> std::path::PathBuf {
    let fake = home.root().join("tailscale");
    std::fs::write(
        &fake,
        "#!/bin/sh\n[ \"$1 $2\" = \"status --json\" ] || exit 2\necho '{\"Self\":{\"TailscaleIPs\":[\"100.101.102.103\"],\"DNSName\":\"gw.tail1234.ts.net.\"}}'\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    fake
}

/// Runs `gateway run` until it listens, then stops it; returns its output.
async fn run_once(home: &IsolatedHome, port: u16, tailscale: &Path) -> String {
    let mut cmd = ClawgateBin::new(env!("CARGO_BIN_EXE_clawgate")).command(home);
    cmd.args([
        "gateway",
        "run",
        "--port",
        &port.to_string(),
        "--token",
        TOKEN,
    ])
    .env("CLAWGATE_TAILSCALE_BIN", tailscale)
    .env("CLAWGATE_TAILSCALE_SOCKET", home.root().join("no.sock"));
    let mut gw = ChildProcess::spawn(cmd, "clawgate gateway").unwrap();
    gw.wait_for_line(|l| l.contains("listening on ws://"), Instant::now() + WAIT)
        .await
        .unwrap();
    gw.stop(WAIT).await;
    gw.transcript()
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn gateway_run_writes_the_zone_once_and_keeps_it_while_nothing_changes() {
    let home = IsolatedHome::new();
    home.write_config(&json!({"discovery": {"wideArea": {"domain": "openclaw.internal"}}}));
    let tailscale = fake_tailscale(&home);
    let port = free_port();
    let zone_path = home.state_dir().join("dns/openclaw.internal.db");

    let out = run_once(&home, port, &tailscale).await;
    let logged = format!(
        "wide-area DNS-SD updated (openclaw.internal. → {})",
        zone_path.display()
    );
    assert!(out.contains(&logged), "{out}");
    assert_eq!(mode_of(&zone_path), 0o644);
    assert_eq!(mode_of(zone_path.parent().unwrap()), 0o700);
    let text = std::fs::read_to_string(&zone_path).unwrap();
    for record in [
        "$ORIGIN openclaw.internal.\n",
        "ns1 IN A 100.101.102.103\n",
        &format!(" IN SRV 0 0 {port} "),
        &format!("\"gatewayPort={port}\""),
        "\"tailnetDns=gw.tail1234.ts.net\"",
    ] {
        assert!(text.contains(record), "{record:?} in\n{text}");
    }
    // Minimal mode (the default) keeps SSH details out of the zone.
    assert!(
        !text.contains("sshPort=") && !text.contains("cliPath="),
        "{text}"
    );

    let out = run_once(&home, port, &tailscale).await;
    assert!(
        out.contains(&logged.replace("updated", "unchanged")),
        "{out}"
    );
    assert_eq!(std::fs::read_to_string(&zone_path).unwrap(), text);
}

#[tokio::test]
async fn gateway_run_warns_and_writes_nothing_without_a_tailnet_address_or_a_valid_domain() {
    let home = IsolatedHome::new();
    home.write_config(&json!({"discovery": {"wideArea": {"domain": "openclaw.internal"}}}));
    let out = run_once(&home, free_port(), &home.root().join("no-tailscale")).await;
    assert!(
        out.contains("discovery.wideArea.domain is set, but no Tailscale IPv4 address was found; skipping unicast DNS-SD zone update"),
        "{out}"
    );
    assert!(!home.state_dir().join("dns").exists(), "{out}");

    home.write_config(&json!({"discovery": {"wideArea": {"domain": "bad..name"}}}));
    let out = run_once(&home, free_port(), &fake_tailscale(&home)).await;
    assert!(
        out.contains("discovery.wideArea.domain \"bad..name\": wide-area discovery domain must be a valid DNS name"),
        "{out}"
    );
    assert!(!home.state_dir().join("dns").exists(), "{out}");
}
