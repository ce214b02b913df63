//! `wss://` with a pinned certificate, against a TLS front made by the test (an rcgen
//! self-signed certificate whose only name is `gw.test`, in front of a clawgate gateway):
//! the right pin works in every spelling (hex, colon-hex, `sha256:`, any case, flag or
//! config) and replaces CA and host name checks; a wrong pin names both fingerprints and
//! how to re-pin; no pin gets the fix; `wss://` through an SSH tunnel keeps the server's
//! name; the real OpenClaw CLI pins the same way.

use clawgate_testkit::{
    ClawgateBin, ClawgateGateway, IsolatedHome, OpenClaw, Output, Sshd, Value, json, kill_tunnels,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest as _, Sha256};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

const TOKEN: &str = "tls-pin-test-token-0123456789";

fn bin() -> ClawgateBin {
    ClawgateBin::new(env!("CARGO_BIN_EXE_clawgate"))
}

fn home() -> IsolatedHome {
    let home = IsolatedHome::new();
    home.write_config(&json!({}));
    home
}

async fn gateway() -> ClawgateGateway {
    bin().start_token_gateway(&json!({}), TOKEN).await
}

/// A TLS 1.3 terminator with a self-signed certificate for `gw.test` only, forwarding to a
/// plain gateway port. Records the server name each client asked for.
struct TlsFront {
    port: u16,
    /// SHA-256 of the certificate's DER, 64 lowercase hex digits.
    fingerprint: String,
    server_names: Arc<Mutex<Vec<Option<String>>>>,
}

async fn tls_front(backend: u16) -> TlsFront {
    let certified = rcgen::generate_simple_self_signed(vec!["gw.test".to_owned()]).unwrap();
    let der: CertificateDer<'static> = certified.cert.der().clone();
    let fingerprint: String = Sha256::digest(der.as_ref())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![der], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server_names = Arc::new(Mutex::new(Vec::new()));
    let names = server_names.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let names = names.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                names
                    .lock()
                    .unwrap()
                    .push(tls.get_ref().1.server_name().map(str::to_owned));
                if let Ok(mut plain) = TcpStream::connect(("127.0.0.1", backend)).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                }
            });
        }
    });
    TlsFront {
        port,
        fingerprint,
        server_names,
    }
}

fn colon_upper(hex: &str) -> String {
    hex.as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap().to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join(":")
}

async fn health(home: &IsolatedHome, extra: &[&str]) -> Output {
    bin()
        .cli()
        .in_home(home)
        .arg("health")
        .args(extra)
        .timeout(Duration::from_secs(60))
        .run()
        .await
}

#[tokio::test]
async fn the_right_pin_works_in_every_spelling_and_replaces_name_checks() {
    let gw = gateway().await;
    let front = tls_front(gw.port()).await;
    let home = home();
    // The certificate names gw.test only: the pin alone makes 127.0.0.1 acceptable.
    let url = format!("wss://127.0.0.1:{}", front.port);
    let fp = &front.fingerprint;
    for pin in [
        fp.clone(),
        fp.to_ascii_uppercase(),
        colon_upper(fp),
        format!("sha256:{fp}"),
        format!("SHA256:{}", colon_upper(fp)),
    ] {
        let out = health(
            &home,
            &[
                "--url",
                &url,
                "--token",
                TOKEN,
                "--tls-fingerprint",
                &pin,
                "--json",
            ],
        )
        .await;
        out.assert_success();
        assert_eq!(out.json()["ok"], true, "{pin}: {out}");
    }

    // The same pin from the config (remote mode).
    home.write_config(&json!({"gateway": {"mode": "remote", "remote": {
        "url": url, "token": TOKEN, "tlsFingerprint": format!("sha256:{}", colon_upper(fp)),
    }}}));
    let out = health(&home, &["--json"]).await;
    out.assert_success();
    assert_eq!(out.json()["ok"], true, "{out}");
}

#[tokio::test]
async fn a_wrong_pin_names_both_fingerprints_and_how_to_re_pin() {
    let gw = gateway().await;
    let front = tls_front(gw.port()).await;
    let home = home();
    let url = format!("wss://127.0.0.1:{}", front.port);
    let wrong = "0f".repeat(32);
    let out = health(
        &home,
        &[
            "--url",
            &url,
            "--token",
            TOKEN,
            "--tls-fingerprint",
            &colon_upper(&wrong),
            "--json",
        ],
    )
    .await;
    out.assert_code(4);
    let error = &out.json()["error"];
    assert_eq!(error["type"], "tls_error", "{out}");
    assert_eq!(error["kind"], "fingerprint_mismatch", "{out}");
    assert_eq!(error["expected"], format!("sha256:{wrong}"), "{out}");
    assert_eq!(
        error["actual"],
        format!("sha256:{}", front.fingerprint),
        "{out}"
    );
    assert!(out.stderr.contains(&wrong), "{out}");
    assert!(
        out.stderr
            .contains(&format!("--tls-fingerprint sha256:{}", front.fingerprint)),
        "{out}"
    );
    assert!(
        out.stderr.contains("gateway.remote.tlsFingerprint"),
        "{out}"
    );
    assert!(out.stderr.contains("do not re-pin"), "{out}");
    // Nothing was sent: the gateway saw no connect.
    assert!(!gw.transcript().contains("rejected"), "{}", gw.transcript());
}

#[tokio::test]
async fn without_a_pin_a_self_signed_certificate_is_refused_with_the_fix() {
    let gw = gateway().await;
    let front = tls_front(gw.port()).await;
    let home = home();
    let url = format!("wss://127.0.0.1:{}", front.port);
    let out = health(&home, &["--url", &url, "--token", TOKEN]).await;
    out.assert_code(3);
    assert!(out.stderr.contains("--tls-fingerprint"), "{out}");
    // A pin needs wss://.
    let plain = format!("ws://127.0.0.1:{}", gw.port());
    let out = health(
        &home,
        &[
            "--url",
            &plain,
            "--token",
            TOKEN,
            "--tls-fingerprint",
            &front.fingerprint,
        ],
    )
    .await;
    out.assert_code(2);
    assert!(out.stderr.contains("requires a wss://"), "{out}");
    // A pin that is not a SHA-256 fingerprint.
    let out = health(
        &home,
        &["--url", &url, "--token", TOKEN, "--tls-fingerprint", "abc"],
    )
    .await;
    out.assert_code(2);
    assert!(out.stderr.contains("SHA-256 fingerprint"), "{out}");
}

#[tokio::test]
async fn wss_through_an_ssh_tunnel_keeps_the_server_name() {
    let sshd = Sshd::start().await.unwrap();
    let gw = gateway().await;
    let front = tls_front(gw.port()).await;
    let home = home();
    let local = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    home.write_config(&json!({"gateway": {"mode": "remote", "remote": {
        "url": format!("wss://gw.test:{local}"),
        "transport": "ssh",
        "sshTarget": format!("{}:{}", sshd.target(), sshd.port()),
        "sshIdentity": sshd.client_key(),
        "remotePort": front.port,
        "token": TOKEN,
        "tlsFingerprint": front.fingerprint,
    }}}));
    let run = || {
        bin()
            .cli()
            .in_home(&home)
            .args(["health", "--json", "--no-wait"])
            .env_remove("SSH_AUTH_SOCK")
            .env(
                "CLAWGATE_SSH_KNOWN_HOSTS",
                sshd.known_hosts().display().to_string(),
            )
            .run()
    };
    let _cleanup = KillTunnels(home.state_dir());
    let first = run().await;
    // The server name went through the tunnel.
    let names = front.server_names.lock().unwrap().clone();
    assert_eq!(names.first(), Some(&Some("gw.test".to_owned())), "{first}");
    // The gateway sees a client that names another host: not local, so this device must
    // be approved first (from the gateway host), then it connects.
    if first.code() != Some(0) {
        first.assert_code(4);
        assert!(first.stdout.contains("PAIRING_REQUIRED"), "{first}");
        let admin = IsolatedHome::new();
        admin.write_config(&json!({}));
        let approve = bin()
            .cli()
            .in_home(&admin)
            .args(["devices", "approve", "--latest", "--url"])
            .arg(format!("ws://127.0.0.1:{}", gw.port()))
            .args(["--token", TOKEN])
            .run()
            .await;
        approve.assert_success();
        let again = run().await;
        again.assert_success();
        assert_eq!(again.json()["ok"], true, "{again}");
    }
}

/// Kills the tunnels recorded in a state dir when dropped.
struct KillTunnels(std::path::PathBuf);

impl Drop for KillTunnels {
    fn drop(&mut self) {
        kill_tunnels(&self.0);
    }
}

#[tokio::test]
async fn the_real_openclaw_cli_pins_the_same_certificate() {
    let oc = OpenClaw::from_env();
    let gw = gateway().await;
    let front = tls_front(gw.port()).await;
    let url = format!("wss://127.0.0.1:{}", front.port);
    // Pinned through its config, in the colon-separated upper-case spelling.
    let out = oc
        .cli()
        .config(json!({"gateway": {"mode": "remote", "remote": {
            "url": url, "token": TOKEN,
            "tlsFingerprint": format!("sha256:{}", colon_upper(&front.fingerprint)),
        }}}))
        .args(["gateway", "call", "health", "--json"])
        .run()
        .await;
    out.assert_success();
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["ok"], true, "{out}");
}

/// `clawgate <args>` in `home`, as JSON.
async fn clawgate_json(home: &IsolatedHome, args: &[&str]) -> Value {
    let out = bin()
        .cli()
        .in_home(home)
        .args(args)
        .timeout(Duration::from_secs(60))
        .run()
        .await;
    out.assert_success();
    out.json()
}

/// A pin set rides through `gateway tls rotate`: a clawgate gateway with its own generated
/// certificate stages the next one; clients pinned to both (flags, a config array, the node
/// host) work before and after the switch, while a client pinned to the old certificate
/// only is refused with every pin it holds and the one to re-pin to.
#[tokio::test]
async fn a_pin_set_rides_through_a_certificate_rotation() {
    let gw_home = IsolatedHome::new();
    gw_home.write_config(&json!({"gateway": {"tls": {"enabled": true}}}));
    let mut gw = bin()
        .spawn(
            &gw_home,
            ["gateway", "run", "--port", "0", "--token", TOKEN],
            [("CLAWGATE_LOG", "warn")],
        )
        .unwrap();
    let deadline = || std::time::Instant::now() + Duration::from_secs(30);
    let listening = gw
        .wait_for_line(|l| l.contains("listening on wss://"), deadline())
        .await
        .unwrap()
        .text;
    let (_, after) = listening.split_once("listening on ").unwrap();
    let url: String = after.chars().take_while(|c| !c.is_whitespace()).collect();

    let old = clawgate_json(&gw_home, &["gateway", "tls", "show", "--json"]).await["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    let staged = clawgate_json(&gw_home, &["gateway", "tls", "rotate", "--stage", "--json"]).await;
    let new = staged["next"].as_str().unwrap().to_owned();
    assert_ne!(old, new);

    let client = home();
    client.write_config(&json!({"gateway": {"mode": "remote", "remote": {
        "url": url, "token": TOKEN,
        "tlsFingerprint": [format!("sha256:{old}"), colon_upper(&new)],
    }}}));
    let target = ["--url", url.as_str(), "--token", TOKEN];
    let pins = ["--tls-fingerprint", &old, "--tls-fingerprint", &new];
    let both_comma = format!("{old},sha256:{new}");
    let with = |extra: &[&str]| -> Vec<String> {
        target
            .iter()
            .chain(extra)
            .chain(&["--json"])
            .map(|a| a.to_string())
            .collect()
    };
    let check_both = || async {
        for args in [
            with(&pins),
            with(&["--tls-fingerprint", &both_comma]),
            vec!["--json".to_owned()],
        ] {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let args = &args[..];
            let out = health(&client, args).await;
            out.assert_success();
            assert_eq!(out.json()["ok"], true, "{args:?}: {out}");
        }
    };
    check_both().await;

    // The switch. A running gateway looks at its files at most once a second: wait until
    // the new certificate is the one served.
    let rotated = clawgate_json(&gw_home, &["gateway", "tls", "rotate", "--json"]).await;
    assert_eq!(rotated["current"], new.as_str());
    let started = std::time::Instant::now();
    loop {
        let out = health(
            &client,
            &["--url", &url, "--token", TOKEN, "--tls-fingerprint", &new],
        )
        .await;
        if out.success() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the new certificate is not served: {out}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    check_both().await;

    // Pinned to the old certificate (and another): refused, every pin named.
    let other = "0f".repeat(32);
    let out = health(
        &client,
        &[
            "--url",
            &url,
            "--token",
            TOKEN,
            "--tls-fingerprint",
            &format!("{old},{other}"),
            "--json",
        ],
    )
    .await;
    out.assert_code(4);
    let error = &out.json()["error"];
    assert_eq!(error["kind"], "fingerprint_mismatch", "{out}");
    assert_eq!(
        error["pins"],
        json!([format!("sha256:{old}"), format!("sha256:{other}")]),
        "{out}"
    );
    assert_eq!(error["actual"], format!("sha256:{new}"), "{out}");
    assert!(
        out.stderr
            .contains(&format!("expected sha256:{old} or sha256:{other}")),
        "{out}"
    );
    assert!(
        out.stderr
            .contains(&format!("--tls-fingerprint sha256:{new}")),
        "{out}"
    );

    // The node host takes the same pin set.
    let node_home = home();
    let node_args: Vec<&str> = ["node", "run"]
        .iter()
        .chain(&target)
        .chain(&pins)
        .copied()
        .collect();
    let mut node = bin()
        .spawn(&node_home, node_args, [("CLAWGATE_LOG", "info")])
        .unwrap();
    node.wait_for_line(|l| l.contains("node host gateway connected"), deadline())
        .await
        .unwrap_or_else(|e| panic!("{e}: {}", node.transcript()));
    node.signal("TERM");
    let _ = node.wait_timeout(Duration::from_secs(15)).await;
    gw.signal("TERM");
    let _ = gw.wait_timeout(Duration::from_secs(10)).await;
}
