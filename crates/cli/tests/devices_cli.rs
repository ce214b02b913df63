//! Device identity, pairing and `clawgate devices …` run as a user would (the built binary,
//! a private HOME, no terminal) against the fake gateway with pairing: the approve commands
//! printed on PAIRING_REQUIRED, waiting off a terminal, device tokens, and the devices
//! subcommands' output, params and errors.

mod cli_run;

use clawgate_client::DeviceIdentity;
use clawgate_testkit::fake_gateway::{FakeConfig, FakeGateway, FakePairing};
use cli_run::clawgate;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const TOKEN: &str = "sekret-token";

/// A fake gateway with token auth and device pairing; the pairing state is returned for
/// the test to approve or reject as another operator would.
fn gateway() -> (FakeGateway, FakePairing) {
    let pairing = FakePairing::new();
    let p = pairing.clone();
    let gw = FakeGateway::start_in_thread(FakeConfig {
        token: Some(TOKEN.into()),
        pairing: Some(pairing.clone()),
        handler: std::sync::Arc::new(move |call| {
            p.handle(call)
                .unwrap_or_else(|| clawgate_testkit::fake_gateway::default_handler(call))
        }),
        ..FakeConfig::default()
    });
    (gw, pairing)
}

fn args<'a>(url: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = extra.to_vec();
    v.extend(["--url", url, "--token", TOKEN]);
    v
}

fn identity_path(home: &Path) -> PathBuf {
    home.join(".openclaw/clawgate/identity.json")
}

fn tokens_path(home: &Path) -> PathBuf {
    home.join(".openclaw/clawgate/device-tokens.json")
}

fn stored_tokens(home: &Path) -> Vec<Value> {
    std::fs::read_to_string(tokens_path(home))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v["tokens"].as_array().cloned())
        .unwrap_or_default()
}

fn wait_for_pending(p: &FakePairing) -> String {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(r) = p.pending().first() {
            return r["requestId"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < until, "no pairing request appeared");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn pairing_required_prints_the_approve_commands_and_exits_4_without_waiting() {
    let (gw, pairing) = gateway();
    let h = tempfile::tempdir().unwrap();
    let url = gw.url();

    // Loopback URL with the shared token: no device is sent (auto).
    let r = clawgate(h.path(), &args(&url, &["health"]), &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(gw.connects()[0].get("device").is_none());
    assert!(
        !identity_path(h.path()).exists(),
        "no identity is created when none is needed"
    );

    // --device-auth always: a signed connect, which this gateway wants approved first.
    let r = clawgate(
        h.path(),
        &args(&url, &["health", "--device-auth", "always"]),
        &[],
    );
    assert_eq!(r.code, 4, "{r:?}");
    let pending = pairing.pending();
    assert_eq!(pending.len(), 1);
    let id = pending[0]["requestId"].as_str().unwrap();
    assert!(
        r.stderr
            .contains(&format!("\n    clawgate devices approve {id}\n")),
        "{r:?}"
    );
    assert!(
        r.stderr.contains(&format!("openclaw devices approve {id}")),
        "{r:?}"
    );
    assert!(r.stderr.contains("role operator, operator.read"), "{r:?}");
    assert!(r.stderr.contains("--wait"), "{r:?}");
    assert!(
        !r.stderr.contains("Waiting"),
        "off a terminal it does not wait: {r:?}"
    );

    // The identity: created once, mode 0600, the one that signed.
    let identity = DeviceIdentity::load(&identity_path(h.path())).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(identity_path(h.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert_eq!(pending[0]["deviceId"], identity.id());
    let c = gw.connects().last().unwrap().clone();
    assert_eq!(c["device"]["id"], identity.id());
    assert_eq!(c["device"]["publicKey"], identity.public_key());
    // The proof is a v3 signature over the connect fields with the shared token inside.
    let fields = clawgate_protocol::device::SignedFields {
        device_id: identity.id(),
        client_id: "cli",
        client_mode: "cli",
        role: "operator",
        scopes: &["operator.read".to_owned()],
        signed_at_ms: c["device"]["signedAt"].as_i64().unwrap(),
        token: TOKEN,
        nonce: c["device"]["nonce"].as_str().unwrap(),
        platform: c["client"]["platform"].as_str(),
        device_family: c["client"]["deviceFamily"].as_str(),
    };
    assert_eq!(
        c["device"]["signature"],
        clawgate_protocol::device::sign_v3(identity.signing_key(), &fields)
    );

    // Asking again for the same thing keeps the same request; --json is machine-readable.
    let r = clawgate(
        h.path(),
        &args(&url, &["health", "--device-auth", "always", "--json"]),
        &[],
    );
    assert_eq!(r.code, 4, "{r:?}");
    let v = r.json();
    assert_eq!(v["ok"], false);
    assert_eq!(v["error"]["code"], "NOT_PAIRED");
    assert_eq!(v["error"]["pairing"]["requestId"], id);
    assert_eq!(
        v["error"]["pairing"]["approveCommand"],
        format!("clawgate devices approve {id}")
    );
    assert_eq!(
        v["error"]["pairing"]["openclawApproveCommand"],
        format!("openclaw devices approve {id}")
    );
    assert_eq!(v["error"]["pairing"]["deviceId"], identity.id());
    assert_eq!(pairing.pending().len(), 1);
    assert_eq!(
        DeviceIdentity::load(&identity_path(h.path())).unwrap().id(),
        identity.id(),
        "the identity is kept"
    );
}

#[test]
fn waiting_off_a_terminal_continues_once_approved_and_keeps_the_device_token() {
    let (gw, pairing) = gateway();
    let h = tempfile::tempdir().unwrap();
    let url = gw.url();
    let home = h.path().to_owned();
    let url2 = url.clone();
    let waiting = std::thread::spawn(move || {
        clawgate(
            &home,
            &args(
                &url2,
                &[
                    "gateway",
                    "call",
                    "health",
                    "--device-auth",
                    "always",
                    "--wait",
                    "--wait-timeout",
                    "30",
                ],
            ),
            &[],
        )
    });
    let id = wait_for_pending(&pairing);
    std::thread::sleep(Duration::from_millis(300));
    assert!(pairing.approve(&id));
    let r = waiting.join().unwrap();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["ok"], true);
    assert!(
        r.stderr
            .contains(&format!("Waiting for approval of request {id}")),
        "{r:?}"
    );
    assert!(r.stderr.contains("Approved"), "{r:?}");
    assert!(
        !r.stderr.contains('\x1b'),
        "no spinner off a terminal: {r:?}"
    );

    // The hello's device token was kept, for this gateway, device and role.
    let tokens = stored_tokens(h.path());
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    let identity = DeviceIdentity::load(&identity_path(h.path())).unwrap();
    assert_eq!(tokens[0]["deviceId"], identity.id());
    assert_eq!(tokens[0]["role"], "operator");
    assert_eq!(tokens[0]["gateway"], clawgate_client::gateway_key(&url));
    assert!(tokens[0]["token"].as_str().unwrap().starts_with("devtok-"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(tokens_path(h.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Without a shared secret the stored device token is used (inside the signature).
    let r = clawgate(
        h.path(),
        &["health", "--json"],
        &[("CLAWGATE_GATEWAY_URL", &url)],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let c = gw.connects().last().unwrap().clone();
    assert_eq!(c["auth"], json!({"deviceToken": tokens[0]["token"]}));
    assert_eq!(c["device"]["id"], identity.id());

    // A refused shared token falls back to the device token once.
    let r = clawgate(
        h.path(),
        &[
            "health",
            "--url",
            &url,
            "--token",
            "wrong-token",
            "--device-auth",
            "always",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr
            .contains("retrying with this device's stored device token"),
        "{r:?}"
    );

    // A token the gateway no longer knows is dropped, and the message says how to recover.
    pairing.rotate_all_tokens();
    let r = clawgate(h.path(), &["health"], &[("CLAWGATE_GATEWAY_URL", &url)]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("device token mismatch"), "{r:?}");
    assert!(r.stderr.contains("has been dropped"), "{r:?}");
    assert!(r.stderr.contains("--token"), "{r:?}");
    assert!(stored_tokens(h.path()).is_empty());
    // Connecting with the shared token gets a new one.
    let r = clawgate(
        h.path(),
        &args(&url, &["health", "--device-auth", "always"]),
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(stored_tokens(h.path()).len(), 1);
}

#[test]
fn waiting_ends_when_the_request_is_rejected_or_the_wait_runs_out() {
    let (gw, pairing) = gateway();
    let h = tempfile::tempdir().unwrap();
    let url = gw.url();
    let home = h.path().to_owned();
    let url2 = url.clone();
    let waiting = std::thread::spawn(move || {
        clawgate(
            &home,
            &args(
                &url2,
                &["health", "--device-auth", "always", "--wait", "--json"],
            ),
            &[],
        )
    });
    let id = wait_for_pending(&pairing);
    assert!(pairing.reject(&id));
    let r = waiting.join().unwrap();
    assert_eq!(r.code, 4, "{r:?}");
    assert!(
        r.stderr
            .contains(&format!("request {id} is no longer pending")),
        "{r:?}"
    );
    let v = r.json();
    let new_id = v["error"]["pairing"]["requestId"].as_str().unwrap();
    assert_ne!(new_id, id);
    assert!(
        r.stderr
            .contains(&format!("clawgate devices approve {new_id}")),
        "{r:?}"
    );
    // --json keeps stderr free of progress lines.
    assert!(!r.stderr.contains("Waiting for approval"), "{r:?}");

    let started = Instant::now();
    let r = clawgate(
        h.path(),
        &args(
            &url,
            &[
                "health",
                "--device-auth",
                "always",
                "--wait",
                "--wait-timeout",
                "1",
            ],
        ),
        &[],
    );
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("still not approved after 1s"), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(15));

    // --no-wait wins over --wait.
    let r = clawgate(
        h.path(),
        &args(
            &url,
            &["health", "--device-auth", "always", "--wait", "--no-wait"],
        ),
        &[],
    );
    assert_eq!(r.code, 4, "{r:?}");
    assert!(!r.stderr.contains("Waiting"), "{r:?}");
}

/// Creates a pending request from a second "machine" (home) and returns its id.
fn request_from_another_device(url: &str, pairing: &FakePairing, extra: &[&str]) -> String {
    let other = tempfile::tempdir().unwrap();
    let mut a = vec!["gateway", "call"];
    a.extend_from_slice(extra);
    a.extend(["--device-auth", "always", "--no-wait"]);
    let r = clawgate(other.path(), &args(url, &a), &[]);
    assert_eq!(r.code, 4, "{r:?}");
    pairing
        .pending()
        .last()
        .unwrap()
        .get("requestId")
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn devices_list_approve_reject() {
    let (gw, pairing) = gateway();
    let h = tempfile::tempdir().unwrap();
    let url = gw.url();

    let r = clawgate(h.path(), &args(&url, &["devices", "list"]), &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .contains("No pending pairing requests and no paired devices."),
        "{r:?}"
    );

    let id = request_from_another_device(&url, &pairing, &["status"]);
    let r = clawgate(h.path(), &args(&url, &["devices", "list", "--json"]), &[]);
    assert_eq!(r.code, 0, "{r:?}");
    let v = r.json();
    assert_eq!(v["pending"][0]["requestId"], id.as_str());
    assert_eq!(v["paired"], json!([]));
    assert_eq!(
        gw.connects().last().unwrap()["scopes"],
        json!(["operator.pairing"])
    );
    let r = clawgate(h.path(), &args(&url, &["devices", "list"]), &[]);
    assert!(r.stdout.contains("Pending requests (1)"), "{r:?}");
    assert!(r.stdout.contains(&id), "{r:?}");
    assert!(r.stdout.contains("new pairing"), "{r:?}");
    assert!(r.stdout.contains("operator.read"), "{r:?}");

    // Unknown ids: exit 1 and where to look.
    let r = clawgate(
        h.path(),
        &args(&url, &["devices", "approve", "no-such-request"]),
        &[],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("no pending request no-such-request"),
        "{r:?}"
    );
    assert!(r.stderr.contains("clawgate devices list"), "{r:?}");
    assert!(r.stderr.contains(&id), "the pending ids are listed: {r:?}");
    let r = clawgate(
        h.path(),
        &args(&url, &["devices", "reject", "no-such-request", "--json"]),
        &[],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.json()["ok"], false);
    assert!(r.stderr.contains("no pending request no-such-request"));

    // approve shows what it grants and connects with pairing + the requested scopes.
    let r = clawgate(h.path(), &args(&url, &["devices", "approve", &id]), &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains(&format!("Approving request {id}:")),
        "{r:?}"
    );
    assert!(r.stdout.contains("Role      operator"), "{r:?}");
    assert!(r.stdout.contains("Scopes    operator.read"), "{r:?}");
    assert!(r.stdout.contains("Kind      new pairing"), "{r:?}");
    assert!(r.stdout.contains("Approved device"), "{r:?}");
    assert_eq!(
        gw.connects().last().unwrap()["scopes"],
        json!(["operator.pairing", "operator.read"])
    );
    assert!(pairing.pending().is_empty());
    assert_eq!(pairing.paired().len(), 1);

    // --latest picks the newest request; --json prints the gateway's answer.
    let id2 = request_from_another_device(&url, &pairing, &["node.invoke"]);
    let r = clawgate(
        h.path(),
        &args(&url, &["devices", "approve", "--latest", "--json"]),
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let v = r.json();
    assert_eq!(v["requestId"], id2.as_str());
    assert_eq!(v["device"]["scopes"], json!(["operator.write"]));
    let r = clawgate(
        h.path(),
        &args(&url, &["devices", "approve", "--latest"]),
        &[],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("no pending device pairing requests"),
        "{r:?}"
    );

    // reject
    let id3 = request_from_another_device(&url, &pairing, &["health"]);
    let r = clawgate(h.path(), &args(&url, &["devices", "reject", &id3]), &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains(&format!("Rejected request {id3}")),
        "{r:?}"
    );
    assert!(pairing.pending().is_empty());

    // The list shows paired devices, their scopes and tokens.
    let r = clawgate(h.path(), &args(&url, &["devices", "list"]), &[]);
    assert!(r.stdout.contains("Paired devices (2)"), "{r:?}");
    assert!(r.stdout.contains("operator.write"), "{r:?}");
}

#[test]
fn devices_remove_rename_rotate_revoke() {
    let (gw, pairing) = gateway();
    let h = tempfile::tempdir().unwrap();
    let url = gw.url();

    // This CLI pairs itself (waiting, approved by "another operator").
    let home = h.path().to_owned();
    let url2 = url.clone();
    let waiting = std::thread::spawn(move || {
        clawgate(
            &home,
            &args(
                &url2,
                &[
                    "devices",
                    "list",
                    "--device-auth",
                    "always",
                    "--wait",
                    "--json",
                ],
            ),
            &[],
        )
    });
    let id = wait_for_pending(&pairing);
    pairing.approve(&id);
    let r = waiting.join().unwrap();
    assert_eq!(r.code, 0, "{r:?}");
    let me = DeviceIdentity::load(&identity_path(h.path())).unwrap();
    let me = me.id().to_owned();
    let other = pairing.pair(&"ab".repeat(32), "operator", &["operator.read"]);
    assert!(other.starts_with("devtok-"));

    // The own device is marked.
    let r = clawgate(h.path(), &args(&url, &["devices", "list"]), &[]);
    assert!(r.stdout.contains("[this CLI]"), "{r:?}");

    // rename: by unique prefix, label param, 64 characters at most.
    let r = clawgate(
        h.path(),
        &args(&url, &["devices", "rename", &me[..8], "my laptop"]),
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .contains(&format!("Renamed device {me} → my laptop")),
        "{r:?}"
    );
    let r = clawgate(
        h.path(),
        &args(&url, &["devices", "rename", "my laptop", &"x".repeat(65)]),
        &[],
    );
    assert_eq!(r.code, 2, "{r:?}");
    let r = clawgate(
        h.path(),
        &args(&url, &["devices", "rename", "nothing-like-it", "x"]),
        &[],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("no paired device matches"), "{r:?}");

    // rotate another device: the token is withheld; pairing + the token's scopes are asked.
    let r = clawgate(
        h.path(),
        &args(&url, &["devices", "rotate", "abab", "--json"]),
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let v = r.json();
    assert_eq!(v["tokenDelivery"], "withheld-cross-device");
    assert!(v.get("token").is_none());
    // Rotating an operator.read token takes pairing plus operator.read.
    assert_eq!(
        gw.connects().last().unwrap()["scopes"],
        json!(["operator.pairing", "operator.read"])
    );

    // rotate this device through its own signed connection: the new token comes back and is
    // saved, and keeps working without the shared secret.
    let before = stored_tokens(h.path());
    let r = clawgate(
        h.path(),
        &args(
            &url,
            &["devices", "rotate", "my laptop", "--device-auth", "always"],
        ),
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("saved for this CLI"), "{r:?}");
    let after = stored_tokens(h.path());
    assert_ne!(before[0]["token"], after[0]["token"]);
    let r = clawgate(
        h.path(),
        &["devices", "list", "--json"],
        &[("CLAWGATE_GATEWAY_URL", &url)],
    );
    assert_eq!(r.code, 0, "{r:?}");

    // revoke
    let r = clawgate(
        h.path(),
        &args(&url, &["devices", "revoke", "abab", "--role", "operator"]),
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("Revoked the operator token"), "{r:?}");
    let r = clawgate(
        h.path(),
        &args(&url, &["devices", "revoke", "abab", "--role", "node"]),
        &[],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("device token revocation denied"), "{r:?}");
    assert!(r.stderr.contains("paired with role node"), "{r:?}");

    // remove this device: its stored tokens for the gateway go too.
    let r = clawgate(h.path(), &args(&url, &["devices", "remove", &me]), &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("this CLI's own device"), "{r:?}");
    assert!(stored_tokens(h.path()).is_empty());
    let r = clawgate(h.path(), &args(&url, &["devices", "remove", &me]), &[]);
    assert_eq!(r.code, 1, "{r:?}");
}

#[test]
fn missing_pairing_scope_exits_5() {
    let gw = FakeGateway::start_in_thread(FakeConfig {
        token: Some(TOKEN.into()),
        grant_scopes: Some(vec!["operator.read".into()]),
        handler: std::sync::Arc::new(|call| {
            if clawgate_protocol::scopes::satisfies(&call.scopes, "operator.pairing") {
                clawgate_testkit::fake_gateway::Reply::Ok(json!({"pending": [], "paired": []}))
            } else {
                clawgate_testkit::fake_gateway::Reply::Err(
                    clawgate_testkit::fake_gateway::missing_scope("operator.pairing"),
                )
            }
        }),
        ..FakeConfig::default()
    });
    let h = tempfile::tempdir().unwrap();
    let url = gw.url();
    let r = clawgate(h.path(), &args(&url, &["devices", "list"]), &[]);
    assert_eq!(r.code, 5, "{r:?}");
    assert!(
        r.stderr.contains("missing scope: operator.pairing"),
        "{r:?}"
    );
    let r = clawgate(
        h.path(),
        &args(&url, &["devices", "approve", "x", "--json"]),
        &[],
    );
    assert_eq!(r.code, 5, "{r:?}");
    assert_eq!(
        r.json()["error"]["details"]["missingScope"],
        "operator.pairing"
    );
}
