//! `clawgate nodes …` run as a user would against a fake gateway that answers with the real
//! OpenClaw 2026.9.6 payloads (tests/fixtures/pairing-2026.9.6.json): output shapes, the
//! params and scopes sent, node resolution, and errors.

mod cli_run;

use clawgate_testkit::fake_gateway::{Call, FakeConfig, FakeGateway, Reply, missing_scope};
use cli_run::Run;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::{Arc, Mutex};

const TOKEN: &str = "sekret-token";
const NODE_ID: &str = "b4db4dfd45df8909193fead25376558709ef55bb3f1d32d3bb19e0abd57a2eb4";
const REQUEST_ID: &str = "531d427a-ea8b-45f2-bc63-88c153a8d8c1";

fn fixtures() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pairing-2026.9.6.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `clawgate args…` with no extra environment.
fn clawgate(home: &Path, args: &[&str]) -> Run {
    cli_run::clawgate(home, args, &[])
}

/// The fake gateway: node methods answered from the fixtures (with the real scope table),
/// every call recorded with its granted scopes.
struct Gw {
    gw: FakeGateway,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl Gw {
    fn start() -> Gw {
        let fx = fixtures();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let seen = calls.clone();
        let approved = Arc::new(Mutex::new(false));
        let gw = FakeGateway::start_in_thread(FakeConfig {
            token: Some(TOKEN.into()),
            handler: Arc::new(move |call: &Call| {
                seen.lock().unwrap().push(call.clone());
                let need = match call.method.as_str() {
                    "node.list" | "node.describe" => "operator.read",
                    "node.invoke" => "operator.write",
                    _ => "operator.pairing",
                };
                if !clawgate_protocol::scopes::satisfies(&call.scopes, need) {
                    return Reply::Err(missing_scope(need));
                }
                let p = call.params.clone().unwrap_or(json!({}));
                let node_id = p["nodeId"].as_str().unwrap_or("");
                let request_id = p["requestId"].as_str().unwrap_or("");
                let unknown = |what: &str| {
                    Reply::Err(
                        json!({"code": "INVALID_REQUEST", "message": format!("unknown {what}")}),
                    )
                };
                match call.method.as_str() {
                    "node.list" => Reply::Ok(fx["node.list"]["payload"].clone()),
                    "node.pair.list" => {
                        let mut v = fx["node.pair.list"]["payload"].clone();
                        if *approved.lock().unwrap() {
                            v["pending"] = json!([]);
                            v["paired"] = json!([fx["node.pair.approve"]["payload"]["node"]]);
                        }
                        Reply::Ok(v)
                    }
                    "node.describe" if node_id == NODE_ID => {
                        Reply::Ok(fx["node.describe"]["payload"].clone())
                    }
                    "node.describe" => unknown("nodeId"),
                    "node.pair.approve" if request_id == REQUEST_ID => {
                        // The real gateway checks the request's requiredApproveScopes.
                        if !clawgate_protocol::scopes::satisfies(&call.scopes, "operator.admin") {
                            return Reply::Err(missing_scope("operator.admin"));
                        }
                        *approved.lock().unwrap() = true;
                        Reply::Ok(fx["node.pair.approve"]["payload"].clone())
                    }
                    "node.pair.approve" | "node.pair.reject" => unknown("requestId"),
                    "node.pair.remove" if node_id == NODE_ID => {
                        Reply::Ok(json!({"nodeId": NODE_ID}))
                    }
                    "node.rename" if node_id == NODE_ID => {
                        Reply::Ok(json!({"nodeId": NODE_ID, "displayName": p["displayName"]}))
                    }
                    "node.pair.remove" | "node.rename" => unknown("nodeId"),
                    "node.invoke"
                        if p["command"] == "system.run" && p["params"]["command"][0] == "false" =>
                    {
                        Reply::Err(fx["node.invoke denied"]["error"].clone())
                    }
                    "node.invoke" if p["command"] == "system.run" => {
                        Reply::Ok(fx["node.invoke system.run"]["payload"].clone())
                    }
                    "node.invoke" if p["command"] == "slow.thing" => Reply::Err(json!({
                        "code": "UNAVAILABLE", "message": "TIMEOUT: node invoke timed out",
                        "details": {"nodeError": {"code": "TIMEOUT", "message": "node invoke timed out"}, "nodeCommandDispatched": true}})),
                    "node.invoke" => Reply::Ok(fx["node.invoke system.which"]["payload"].clone()),
                    other => Reply::Err(
                        json!({"code": "INVALID_REQUEST", "message": format!("unknown method: {other}")}),
                    ),
                }
            }),
            ..FakeConfig::default()
        });
        Gw { gw, calls }
    }

    fn url(&self) -> String {
        self.gw.url()
    }

    fn last_call(&self, method: &str) -> Call {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|c| c.method == method)
            .cloned()
            .unwrap_or_else(|| panic!("no {method} call"))
    }
}

fn args<'a>(url: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["nodes"];
    v.extend_from_slice(extra);
    v.extend(["--url", url, "--token", TOKEN]);
    v
}

#[test]
fn status_list_pending_describe() {
    let gw = Gw::start();
    let h = tempfile::tempdir().unwrap();
    let url = gw.url();
    let fx = fixtures();

    let r = clawgate(h.path(), &args(&url, &["status", "--json"]));
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json(), fx["node.list"]["payload"]);
    assert_eq!(gw.last_call("node.list").scopes, ["operator.read"]);
    let r = clawgate(h.path(), &args(&url, &["status"]));
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.starts_with("1 node · 1 connected\n"), "{r:?}");
    assert!(r.stdout.contains("proto-node"), "{r:?}");
    assert!(r.stdout.contains("b4db4dfd45df…"), "{r:?}");
    assert!(r.stdout.contains("approved"), "{r:?}");

    // pending: a JSON array (like the OpenClaw CLI); the table names what approval needs.
    let r = clawgate(h.path(), &args(&url, &["pending", "--json"]));
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json(), fx["node.pair.list"]["payload"]["pending"]);
    assert_eq!(gw.last_call("node.pair.list").scopes, ["operator.pairing"]);
    let r = clawgate(h.path(), &args(&url, &["pending"]));
    assert!(r.stdout.contains(REQUEST_ID), "{r:?}");
    assert!(
        r.stdout.contains("operator.pairing, operator.admin"),
        "{r:?}"
    );
    assert!(r.stdout.contains("clawgate nodes approve"), "{r:?}");

    // list: {pending, paired}.
    let r = clawgate(h.path(), &args(&url, &["list", "--json"]));
    assert_eq!(r.code, 0, "{r:?}");
    let v = r.json();
    assert_eq!(v["pending"][0]["requestId"], REQUEST_ID);
    assert_eq!(v["paired"], json!([]));

    // describe: by id, by name, by prefix; unknown → exit 1.
    for q in [NODE_ID, "proto-node", "b4db4dfd"] {
        let r = clawgate(h.path(), &args(&url, &["describe", q, "--json"]));
        assert_eq!(r.code, 0, "{q}: {r:?}");
        assert_eq!(r.json()["nodeId"], NODE_ID);
        assert_eq!(
            gw.last_call("node.describe").params,
            Some(json!({"nodeId": NODE_ID}))
        );
    }
    let r = clawgate(h.path(), &args(&url, &["describe", "proto-node"]));
    assert!(r.stdout.contains("Node      proto-node"), "{r:?}");
    assert!(r.stdout.contains("Commands  13"), "{r:?}");
    assert!(r.stdout.contains("  system.run\n"), "{r:?}");
    assert!(r.stdout.contains("2 CPUs"), "{r:?}");
    let r = clawgate(h.path(), &args(&url, &["describe", "nope"]));
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("no node \"nope\""), "{r:?}");
    assert!(r.stderr.contains("clawgate nodes status"), "{r:?}");
}

#[test]
fn approve_reject_remove_rename() {
    let gw = Gw::start();
    let h = tempfile::tempdir().unwrap();
    let url = gw.url();

    let r = clawgate(h.path(), &args(&url, &["approve", "no-such-request"]));
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("no pending node request no-such-request"),
        "{r:?}"
    );
    assert!(r.stderr.contains(REQUEST_ID), "{r:?}");

    // approve: shows the surface, connects with the request's requiredApproveScopes.
    let r = clawgate(h.path(), &args(&url, &["approve", REQUEST_ID]));
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .contains(&format!("Approving node request {REQUEST_ID}:")),
        "{r:?}"
    );
    assert!(r.stdout.contains("Commands  13: browser.proxy"), "{r:?}");
    assert!(
        r.stdout
            .contains("Needs     operator.pairing, operator.admin"),
        "{r:?}"
    );
    assert!(r.stdout.contains("Approved node proto-node"), "{r:?}");
    let c = gw.last_call("node.pair.approve");
    assert_eq!(c.scopes, ["operator.pairing", "operator.admin"]);
    assert_eq!(c.params, Some(json!({"requestId": REQUEST_ID})));

    let r = clawgate(h.path(), &args(&url, &["reject", "gone", "--json"]));
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.json()["ok"], false);

    let r = clawgate(
        h.path(),
        &args(&url, &["rename", "proto-node", "Build Box"]),
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        gw.last_call("node.rename").params,
        Some(json!({"nodeId": NODE_ID, "displayName": "Build Box"}))
    );
    assert_eq!(gw.last_call("node.rename").scopes, ["operator.pairing"]);
    assert!(r.stdout.contains("→ Build Box"), "{r:?}");

    let r = clawgate(h.path(), &args(&url, &["remove", "b4db4d", "--json"]));
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json(), json!({"nodeId": NODE_ID}));
    let r = clawgate(h.path(), &args(&url, &["remove", "unknown-node"]));
    assert_eq!(r.code, 1, "{r:?}");
}

#[test]
fn invoke_sends_the_real_params_and_maps_node_errors() {
    let gw = Gw::start();
    let h = tempfile::tempdir().unwrap();
    let url = gw.url();

    let r = clawgate(
        h.path(),
        &args(
            &url,
            &[
                "invoke",
                "proto-node",
                "--command",
                "system.which",
                "--params",
                r#"{"bins":["sh"]}"#,
            ],
        ),
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["payload"]["bins"]["sh"], "/usr/bin/sh");
    let c = gw.last_call("node.invoke");
    assert_eq!(c.scopes, ["operator.write"]);
    let p = c.params.unwrap();
    assert_eq!(p["nodeId"], NODE_ID);
    assert_eq!(p["command"], "system.which");
    assert_eq!(p["params"], json!({"bins": ["sh"]}));
    assert_eq!(p["timeoutMs"], 15000);
    let key = p["idempotencyKey"].as_str().unwrap();
    assert_eq!(key.len(), 36, "a UUID: {key}");

    // system.run is allowed here; --idempotency-key and --invoke-timeout are sent as given.
    let r = clawgate(
        h.path(),
        &args(
            &url,
            &[
                "invoke",
                NODE_ID,
                "--command",
                "system.run",
                "--params",
                r#"{"command":["echo","hi"]}"#,
                "--invoke-timeout",
                "3000",
                "--idempotency-key",
                "run-1",
            ],
        ),
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["payload"]["stdout"], "hi\n");
    let p = gw.last_call("node.invoke").params.unwrap();
    assert_eq!(p["idempotencyKey"], "run-1");
    assert_eq!(p["timeoutMs"], 3000);

    // The node refusing: exit 1, the gateway's error as JSON, a hint about exec approvals.
    let r = clawgate(
        h.path(),
        &args(
            &url,
            &[
                "invoke",
                NODE_ID,
                "--command",
                "system.run",
                "--params",
                r#"{"command":["false"]}"#,
            ],
        ),
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        r.json()["error"]["details"]["nodeError"]["code"],
        "SYSTEM_RUN_DENIED"
    );
    assert!(r.stderr.contains("exec approvals"), "{r:?}");
    let r = clawgate(
        h.path(),
        &args(&url, &["invoke", NODE_ID, "--command", "slow.thing"]),
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("--invoke-timeout"), "{r:?}");

    // Bad input never reaches the gateway.
    for bad in ["not json", "[1,2]"] {
        let r = clawgate(
            h.path(),
            &args(
                &url,
                &["invoke", NODE_ID, "--command", "x", "--params", bad],
            ),
        );
        assert_eq!(r.code, 2, "{bad}: {r:?}");
        assert!(r.stderr.contains("--params must be a JSON object"), "{r:?}");
    }
}
