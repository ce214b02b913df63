//! Device pairing against the recorded real gateway: silent local pairing, the manual path with
//! requestIds that survive retries, device tokens, upgrades, and durability across restarts.

mod common;

use common::*;
use ed25519_dalek::SigningKey;
use serde_json::{Value, json};

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// A CLI connect signed by `key` over this connection's challenge.
async fn device_connect(c: &mut Client, key: &SigningKey, mut params: Value) -> Value {
    params["client"]["displayName"] = json!("manual-op");
    let nonce = c.nonce();
    c.connect(sign(params, key, &nonce, now_ms())).await
}

async fn pairing_admin(gw: &TestGateway) -> Client {
    let mut c = Client::open(gw.addr).await;
    assert_eq!(
        c.connect(cli_params(&["operator.pairing", "operator.admin"]))
            .await["ok"],
        true
    );
    c
}

async fn next_event(c: &mut Client, name: &str) -> Value {
    loop {
        let f = c.recv().await;
        if f["type"] == "event" && f["event"] == name {
            return f;
        }
    }
}

#[tokio::test]
async fn remote_device_waits_for_approval_then_gets_a_token() {
    let gw = start(|o| o.auto_approve_local = false).await;
    let mut admin = pairing_admin(&gw).await;
    let k = key(21);

    // Not paired: NOT_PAIRED / PAIRING_REQUIRED exactly as the real gateway says it.
    let mut c = Client::open(gw.addr).await;
    let res = device_connect(&mut c, &k, cli_params(&["operator.read", "operator.write"])).await;
    let e = &res["error"];
    assert_eq!(e["code"], "NOT_PAIRED");
    assert_eq!(e["message"], "pairing required: device is not approved yet");
    let d = &e["details"];
    assert_eq!(d["code"], "PAIRING_REQUIRED");
    assert_eq!(d["reason"], "not-paired");
    let request_id = d["requestId"].as_str().unwrap().to_owned();
    assert_eq!(
        d["remediationHint"],
        format!(
            "Approve this device from the pending pairing requests. On the gateway host run: clawgate devices approve {request_id} (or: openclaw devices approve {request_id})"
        )
    );
    assert_eq!(d["requestedRole"], "operator");
    assert_eq!(
        d["requestedScopes"],
        json!(["operator.read", "operator.write"])
    );
    let (code, reason) = c.expect_close().await;
    assert_eq!(code, 1008);
    assert_eq!(
        reason,
        format!("pairing required: device is not approved yet (requestId: {request_id})")
    );

    let ev = next_event(&mut admin, "device.pair.requested").await;
    assert_eq!(ev["payload"]["requestId"], request_id);
    assert_eq!(ev["payload"]["displayName"], "manual-op");
    assert_eq!(ev["payload"]["silent"], false);

    // Retrying reuses the same request.
    let mut c = Client::open(gw.addr).await;
    let res = device_connect(&mut c, &k, cli_params(&["operator.read", "operator.write"])).await;
    assert_eq!(res["error"]["details"]["requestId"], request_id);

    let list = admin.call("l", "device.pair.list", json!({})).await;
    let pending = list["payload"]["pending"].as_array().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["requestId"], request_id);
    assert_eq!(
        pending[0]["scopes"],
        json!(["operator.read", "operator.write"])
    );

    let res = admin
        .call("a", "device.pair.approve", json!({"requestId": request_id}))
        .await;
    let device = &res["payload"]["device"];
    assert_eq!(res["payload"]["requestId"], request_id, "{res}");
    assert_eq!(device["approvedVia"], "owner");
    assert_eq!(device["scopes"], json!(["operator.read", "operator.write"]));
    assert_eq!(device["tokens"][0]["role"], "operator");
    let ev = next_event(&mut admin, "device.pair.resolved").await;
    assert_eq!(ev["payload"]["decision"], "approved");

    // Now it connects and receives its device token…
    let mut c = Client::open(gw.addr).await;
    let res = device_connect(&mut c, &k, cli_params(&["operator.read", "operator.write"])).await;
    let auth = &res["payload"]["auth"];
    assert_eq!(auth["method"], "token");
    let token = auth["deviceToken"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 43);
    assert!(auth["issuedAtMs"].is_i64());

    // …which authenticates on its own, for scopes within the token's.
    let mut c = Client::open(gw.addr).await;
    let mut p = cli_params(&["operator.read"]);
    p["auth"] = json!({"deviceToken": token});
    let res = device_connect(&mut c, &k, p).await;
    assert_eq!(res["payload"]["auth"]["method"], "device-token");
    assert_eq!(
        res["payload"]["auth"]["deviceToken"], token,
        "the same token on later connects"
    );

    // More than the token holds: AUTH_SCOPE_MISMATCH, as captured.
    let cap = Capture::load("operator-device-pairing-manual.jsonl");
    let mut c = Client::open(gw.addr).await;
    let mut p = cli_params(&["operator.admin"]);
    p["auth"] = json!({"deviceToken": token});
    let res = device_connect(&mut c, &k, p).await;
    assert_eq!(res["error"], cap.responses(24)[0]["error"]);
    assert_eq!(c.expect_close().await, cap.server_close(24));

    // A wrong device token: AUTH_DEVICE_TOKEN_MISMATCH, as captured.
    let mut c = Client::open(gw.addr).await;
    let mut p = cli_params(&["operator.read"]);
    p["auth"] = json!({"deviceToken": "bogus"});
    let res = device_connect(&mut c, &k, p).await;
    assert_eq!(res["error"], cap.responses(25)[0]["error"]);

    // The token is bound to its device: another key's proof with it is refused.
    let mut c = Client::open(gw.addr).await;
    let mut p = cli_params(&["operator.read"]);
    p["auth"] = json!({"deviceToken": token});
    let res = device_connect(&mut c, &key(22), p).await;
    assert_eq!(
        res["error"]["details"]["code"],
        "AUTH_DEVICE_TOKEN_MISMATCH"
    );
}

#[tokio::test]
async fn scope_upgrades_are_requested_and_reject_works() {
    let cap = Capture::load("operator-device-pairing-manual.jsonl");
    let gw = start(|o| o.auto_approve_local = false).await;
    let mut admin = pairing_admin(&gw).await;
    let k = key(23);
    let mut c = Client::open(gw.addr).await;
    let res = device_connect(&mut c, &k, cli_params(&["operator.read", "operator.write"])).await;
    let id = res["error"]["details"]["requestId"]
        .as_str()
        .unwrap()
        .to_owned();
    admin
        .call("a", "device.pair.approve", json!({"requestId": id}))
        .await;

    let mut c = Client::open(gw.addr).await;
    let res = device_connect(
        &mut c,
        &k,
        cli_params(&["operator.read", "operator.write", "operator.admin"]),
    )
    .await;
    let mut expected = cap.responses(27)[0]["error"].clone();
    let upgrade_id = res["error"]["details"]["requestId"].clone();
    expected["details"]["requestId"] = upgrade_id.clone();
    expected["details"]["deviceId"] = res["error"]["details"]["deviceId"].clone();
    expected["details"]["remediationHint"] = json!(format!(
        "Review the requested scopes, then approve the pending upgrade. On the gateway host run: clawgate devices approve {0} (or: openclaw devices approve {0})",
        upgrade_id.as_str().unwrap()
    ));
    assert_eq!(res["error"], expected);
    let ev = next_event(&mut admin, "device.pair.requested").await;
    assert_eq!(ev["payload"]["isRepair"], true);

    let r = admin
        .call("r", "device.pair.reject", json!({"requestId": upgrade_id}))
        .await;
    assert_eq!(r["payload"]["requestId"], upgrade_id);
    let ev = next_event(&mut admin, "device.pair.resolved").await;
    assert_eq!(ev["payload"]["decision"], "rejected");
    // The earlier grant still works.
    let mut c = Client::open(gw.addr).await;
    assert_eq!(
        device_connect(&mut c, &k, cli_params(&["operator.read"])).await["ok"],
        true
    );

    // Unknown and already-resolved ids.
    let r = admin
        .call(
            "x",
            "device.pair.approve",
            json!({"requestId": "no-such-request"}),
        )
        .await;
    assert_eq!(r["error"]["code"], "APPROVAL_NOT_FOUND");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("clawgate devices list")
    );
    let r = admin
        .call("y", "device.pair.approve", json!({"requestId": upgrade_id}))
        .await;
    assert_eq!(r["error"]["code"], "APPROVAL_NOT_FOUND");
    // Approving cannot grant more than the approver holds.
    let mut c = Client::open(gw.addr).await;
    let res = device_connect(
        &mut c,
        &key(28),
        cli_params(&["operator.read", "operator.write"]),
    )
    .await;
    let id = res["error"]["details"]["requestId"].clone();
    let mut pairing_only = Client::open(gw.addr).await;
    pairing_only
        .connect(cli_params(&["operator.pairing"]))
        .await;
    let r = pairing_only
        .call("w", "device.pair.approve", json!({"requestId": id}))
        .await;
    assert_eq!(r["error"]["code"], "INVALID_REQUEST");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("missing scope: operator.read"),
        "{r}"
    );
    let r = admin.call("z", "device.pair.approve", json!({})).await;
    assert_eq!(
        r["error"]["message"],
        "invalid device.pair.approve params: must have required property 'requestId'"
    );
}

#[tokio::test]
async fn local_devices_pair_silently_with_events() {
    let gw = start(|_| {}).await;
    let mut admin = pairing_admin(&gw).await;
    let mut c = Client::open(gw.addr).await;
    let res = device_connect(&mut c, &key(24), cli_params(&["operator.read"])).await;
    assert!(res["payload"]["auth"]["deviceToken"].is_string(), "{res}");
    let ev = next_event(&mut admin, "device.pair.requested").await;
    assert_eq!(ev["payload"]["silent"], true);
    let ev = next_event(&mut admin, "device.pair.resolved").await;
    assert_eq!(ev["payload"]["decision"], "approved");
    let list = admin.call("l", "device.pair.list", json!({})).await;
    let paired = &list["payload"]["paired"][0];
    assert_eq!(paired["approvedVia"], "silent");
    assert_eq!(paired["connected"], true);
    let id = paired["deviceId"].clone();
    let r = admin
        .call(
            "n",
            "device.pair.rename",
            json!({"deviceId": id, "label": "build box"}),
        )
        .await;
    assert_eq!(r["payload"], json!({"deviceId": id, "label": "build box"}));
    let list = admin.call("l2", "device.pair.list", json!({})).await;
    assert_eq!(list["payload"]["paired"][0]["operatorLabel"], "build box");
}

#[tokio::test]
async fn removing_a_device_or_revoking_its_token_cuts_its_sockets() {
    let gw = start(|_| {}).await;
    let mut admin = pairing_admin(&gw).await;
    let k = key(25);
    let mut live = Client::open(gw.addr).await;
    let res = device_connect(&mut live, &k, cli_params(&["operator.read"])).await;
    let device_id = clawgate_protocol::device::device_id(&k.verifying_key());
    let token = res["payload"]["auth"]["deviceToken"]
        .as_str()
        .unwrap()
        .to_owned();

    let r = admin
        .call(
            "v",
            "device.token.revoke",
            json!({"deviceId": device_id, "role": "operator"}),
        )
        .await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(
        live.expect_close().await,
        (1008, "device token revoked".into())
    );
    let mut c = Client::open(gw.addr).await;
    let mut p = cli_params(&["operator.read"]);
    p["auth"] = json!({"deviceToken": token});
    let res = device_connect(&mut c, &k, p).await;
    assert_eq!(
        res["error"]["details"]["code"], "AUTH_DEVICE_TOKEN_MISMATCH",
        "a revoked token is refused"
    );

    let mut live = Client::open(gw.addr).await;
    assert_eq!(
        device_connect(&mut live, &k, cli_params(&["operator.read"])).await["ok"],
        true
    );
    let r = admin
        .call("rm", "device.pair.remove", json!({"deviceId": device_id}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(live.expect_close().await, (1008, "device removed".into()));
    let list = admin.call("l", "device.pair.list", json!({})).await;
    assert_eq!(list["payload"]["paired"], json!([]));
}

#[tokio::test]
async fn rotation_issues_a_new_token_and_retires_the_old_one() {
    let gw = start(|_| {}).await;
    let mut admin = pairing_admin(&gw).await;
    let k = key(26);
    let device_id = clawgate_protocol::device::device_id(&k.verifying_key());
    let mut c = Client::open(gw.addr).await;
    let old = device_connect(&mut c, &k, cli_params(&["operator.read"])).await["payload"]["auth"]["deviceToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = admin
        .call(
            "rot",
            "device.token.rotate",
            json!({"deviceId": device_id, "role": "operator"}),
        )
        .await;
    assert_eq!(r["payload"]["tokenDelivery"], "withheld-cross-device");
    assert!(
        r["payload"].get("token").is_none(),
        "another operator does not get the device's token"
    );
    // The device gets its new token in its next hello-ok.
    let mut c = Client::open(gw.addr).await;
    let new = device_connect(&mut c, &k, cli_params(&["operator.read"])).await["payload"]["auth"]["deviceToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new, old);
    for (token, ok) in [(old, false), (new, true)] {
        let mut c = Client::open(gw.addr).await;
        let mut p = cli_params(&["operator.read"]);
        p["auth"] = json!({"deviceToken": token});
        assert_eq!(device_connect(&mut c, &k, p).await["ok"], ok);
    }
}

#[tokio::test]
async fn pairings_survive_a_restart_and_the_database_holds_no_usable_token() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let k = key(27);
    let token = {
        let s = state.clone();
        let gw = start(move |o| {
            o.state_dir = s;
            o.auto_approve_local = false;
        })
        .await;
        let mut admin = pairing_admin(&gw).await;
        let mut c = Client::open(gw.addr).await;
        let res = device_connect(&mut c, &k, cli_params(&["operator.read"])).await;
        let id = res["error"]["details"]["requestId"]
            .as_str()
            .unwrap()
            .to_owned();
        admin
            .call("a", "device.pair.approve", json!({"requestId": id}))
            .await;
        let mut c = Client::open(gw.addr).await;
        let token = device_connect(&mut c, &k, cli_params(&["operator.read"])).await["payload"]["auth"]["deviceToken"]
            .as_str()
            .unwrap()
            .to_owned();
        gw.shutdown.cancel();
        gw.task.await.unwrap();
        token
    };
    let db = std::fs::read(state.join("clawgate.sqlite")).unwrap();
    assert!(
        !db.windows(token.len()).any(|w| w == token.as_bytes()),
        "the token itself is not stored"
    );

    let s = state.clone();
    let gw = start(move |o| {
        o.state_dir = s;
        o.auto_approve_local = false;
    })
    .await;
    let mut c = Client::open(gw.addr).await;
    let mut p = cli_params(&["operator.read"]);
    p["auth"] = json!({"deviceToken": token});
    let res = device_connect(&mut c, &k, p).await;
    assert_eq!(res["payload"]["auth"]["method"], "device-token", "{res}");
}

/// The `requestId` a signed connect of `key` is asked to get approved.
async fn request_of(gw: &TestGateway, key: &SigningKey) -> String {
    let mut c = Client::open(gw.addr).await;
    let res = device_connect(&mut c, key, cli_params(&["operator.read"])).await;
    let id = res["error"]["details"]["requestId"].as_str();
    let id = id
        .unwrap_or_else(|| panic!("no pairing request: {res}"))
        .to_owned();
    // The next attempt gets a later timestamp (millisecond clock): which request is the
    // least recent one must not be a tie.
    let asked = now_ms();
    while now_ms() == asked {
        tokio::task::yield_now().await;
    }
    id
}

fn pending_ids(list: &Value) -> Vec<String> {
    let mut ids: Vec<String> = list["payload"]["pending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["requestId"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// Pending requests are bounded: a new device beyond the cap displaces the request whose
/// device asked least recently, in memory and on disk; that device asks again with a new
/// request on its next attempt.
#[tokio::test]
async fn pending_requests_are_capped_and_the_least_recent_gives_way() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let options = |s: std::path::PathBuf| {
        move |o: &mut clawgate_gateway::GatewayOptions| {
            o.state_dir = s;
            o.auto_approve_local = false;
            o.max_pending_pairing_requests = 3;
        }
    };
    let gw = start(options(state.clone())).await;
    let mut admin = pairing_admin(&gw).await;
    let a = request_of(&gw, &key(40)).await;
    let b = request_of(&gw, &key(41)).await;
    let c = request_of(&gw, &key(42)).await;
    // Device 40 keeps asking (same request, now the most recent): 41's is the stalest.
    assert_eq!(request_of(&gw, &key(40)).await, a);
    let d = request_of(&gw, &key(43)).await;
    let list = admin.call("l", "device.pair.list", json!({})).await;
    let mut want = vec![a.clone(), c.clone(), d.clone()];
    want.sort();
    assert_eq!(pending_ids(&list), want, "{list}");
    // Approving the displaced request: unknown, as an expired one.
    let res = admin
        .call("x", "device.pair.approve", json!({"requestId": b}))
        .await;
    assert_eq!(res["ok"], false, "{res}");

    // Device 41 asks again: a new request, displacing 42's (now the stalest).
    let b2 = request_of(&gw, &key(41)).await;
    assert_ne!(b2, b);
    let mut want = vec![a, d, b2];
    want.sort();
    let list = admin.call("l2", "device.pair.list", json!({})).await;
    assert_eq!(pending_ids(&list), want, "{list}");
    gw.shutdown.cancel();
    gw.task.await.unwrap();

    // The database holds the same three.
    let gw = start(options(state)).await;
    let mut admin = pairing_admin(&gw).await;
    let list = admin.call("l3", "device.pair.list", json!({})).await;
    assert_eq!(pending_ids(&list), want, "{list}");
}

/// Connect params of a headless node host: role node, no scopes.
fn node_params() -> Value {
    let mut p = cli_params(&[]);
    p["role"] = json!("node");
    p["client"] = json!({"id": "node-host", "version": "2026.9.6", "platform": "linux",
        "mode": "node", "instanceId": "n-1"});
    p
}

/// `gateway.nodes.pairing.autoApproveCidrs`: a first-time node device asking no scopes from
/// a listed address pairs on the spot (`approvedVia: "trusted-cidr"`, the events of a silent
/// pairing); an operator, a node asking scopes, a node outside the list and a browser client
/// still ask.
#[tokio::test]
async fn nodes_from_trusted_cidrs_pair_without_asking() {
    let gw = start(|o| {
        o.auto_approve_local = false;
        o.node_auto_approve_cidrs = vec![
            "10.0.0.0/8".parse().unwrap(),
            "127.0.0.0/8".parse().unwrap(),
        ];
    })
    .await;
    let mut admin = pairing_admin(&gw).await;

    let mut c = Client::open(gw.addr).await;
    let res = device_connect(&mut c, &key(50), node_params()).await;
    assert_eq!(res["ok"], true, "{res}");
    assert!(res["payload"]["auth"]["deviceToken"].is_string(), "{res}");
    let requested = next_event(&mut admin, "device.pair.requested").await;
    assert_eq!(requested["payload"]["silent"], true);
    let resolved = next_event(&mut admin, "device.pair.resolved").await;
    assert_eq!(resolved["payload"]["decision"], "approved");
    let list = admin.call("l", "device.pair.list", json!({})).await;
    let paired = list["payload"]["paired"].as_array().unwrap();
    let device = paired
        .iter()
        .find(|d| d["deviceId"] == resolved["payload"]["deviceId"])
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(device["approvedVia"], "trusted-cidr", "{device}");

    // Everything else asks.
    let mut asks = Vec::new();
    let mut operator = Client::open(gw.addr).await;
    asks.push(device_connect(&mut operator, &key(51), cli_params(&["operator.read"])).await);
    let mut scoped = node_params();
    scoped["scopes"] = json!(["operator.read"]);
    let mut c = Client::open(gw.addr).await;
    asks.push(device_connect(&mut c, &key(52), scoped).await);
    for res in &asks {
        assert_eq!(res["error"]["details"]["code"], "PAIRING_REQUIRED", "{res}");
    }
    // A browser client (webchat) never gets that far without an allowed origin.
    let mut browser = node_params();
    browser["client"]["mode"] = json!("webchat");
    let mut c = Client::open(gw.addr).await;
    let res = device_connect(&mut c, &key(53), browser).await;
    assert_eq!(res["ok"], false, "{res}");
    // The paired node asking for more (a role upgrade to operator) asks too.
    let mut upgrade = cli_params(&["operator.read"]);
    upgrade["client"] = node_params()["client"].clone();
    let mut c = Client::open(gw.addr).await;
    let res = device_connect(&mut c, &key(50), upgrade).await;
    assert_eq!(res["error"]["details"]["reason"], "role-upgrade", "{res}");
}

#[tokio::test]
async fn nodes_outside_the_trusted_cidrs_ask() {
    let gw = start(|o| {
        o.auto_approve_local = false;
        o.node_auto_approve_cidrs = vec!["10.0.0.0/8".parse().unwrap()];
    })
    .await;
    let mut c = Client::open(gw.addr).await;
    let res = device_connect(&mut c, &key(54), node_params()).await;
    assert_eq!(res["error"]["details"]["code"], "PAIRING_REQUIRED", "{res}");
}

/// A request left on disk past its lifetime (as gateways before this fix left them) does not
/// lock its device out after a restart: the device gets a new request, not UNAVAILABLE.
#[tokio::test]
async fn a_request_expired_on_disk_gives_way_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let k = key(60);
    let stale_id = "stale-request".to_owned();
    let asked = now_ms() - 10 * 60 * 1000;
    clawgate_store::Store::open(&state)
        .unwrap()
        .apply(vec![clawgate_store::Write::Device(
            clawgate_store::DeviceWrite::PutRequest(clawgate_store::PairingRequestRecord {
                request_id: stale_id.clone(),
                device_id: clawgate_protocol::device::device_id(&k.verifying_key()),
                role: "operator".into(),
                public_key: clawgate_protocol::device::b64url(k.verifying_key().as_bytes()),
                display_name: None,
                platform: Some("linux".into()),
                device_family: None,
                client_id: "cli".into(),
                client_mode: "cli".into(),
                scopes: vec!["operator.read".into()],
                reason: "not-paired".into(),
                is_repair: false,
                created_at_ms: asked,
                last_attempt_ms: asked,
            }),
        )])
        .await
        .unwrap();

    let gw = start(move |o| {
        o.state_dir = state;
        o.auto_approve_local = false;
    })
    .await;
    let mut c = Client::open(gw.addr).await;
    let res = device_connect(&mut c, &k, cli_params(&["operator.read"])).await;
    assert_eq!(res["error"]["code"], "NOT_PAIRED", "{res}");
    let id = res["error"]["details"]["requestId"].as_str().unwrap();
    assert_ne!(id, stale_id);
    let mut admin = pairing_admin(&gw).await;
    let list = admin.call("l", "device.pair.list", json!({})).await;
    assert_eq!(pending_ids(&list), vec![id.to_owned()], "{list}");
}

/// The approver grants exactly what it was shown: a device asking for more while its request
/// is pending gets a new request id, and approving the one the approver saw fails naming it.
#[tokio::test]
async fn a_wider_ask_is_a_new_request_and_the_one_listed_before_cannot_grant_it() {
    let gw = start(|o| o.auto_approve_local = false).await;
    let mut admin = pairing_admin(&gw).await;
    let k = key(61);
    let mut c = Client::open(gw.addr).await;
    let res = device_connect(&mut c, &k, cli_params(&["operator.read"])).await;
    let listed = res["error"]["details"]["requestId"]
        .as_str()
        .unwrap()
        .to_owned();
    let list = admin.call("l", "device.pair.list", json!({})).await;
    assert_eq!(
        list["payload"]["pending"][0]["scopes"],
        json!(["operator.read"])
    );

    // The same ask keeps its id; a wider one is a new request listing all it asks.
    let mut c = Client::open(gw.addr).await;
    let res = device_connect(&mut c, &k, cli_params(&["operator.read"])).await;
    assert_eq!(res["error"]["details"]["requestId"], listed);
    let mut c = Client::open(gw.addr).await;
    let res = device_connect(&mut c, &k, cli_params(&["operator.read", "operator.admin"])).await;
    let wider = res["error"]["details"]["requestId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(wider, listed, "a wider ask is a new request");
    let list = admin.call("l2", "device.pair.list", json!({})).await;
    assert_eq!(pending_ids(&list), vec![wider.clone()], "{list}");
    assert_eq!(
        list["payload"]["pending"][0]["scopes"],
        json!(["operator.read", "operator.admin"])
    );

    // The approver of the listed request grants nothing it was not shown.
    let r = admin
        .call("a", "device.pair.approve", json!({"requestId": listed}))
        .await;
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["error"]["code"], "APPROVAL_NOT_FOUND", "{r}");
    let message = r["error"]["message"].as_str().unwrap();
    assert!(message.contains(&wider), "{message}");
    assert!(message.contains("operator.admin"), "{message}");
    let mut c = Client::open(gw.addr).await;
    let res = device_connect(&mut c, &k, cli_params(&["operator.read"])).await;
    assert_eq!(
        res["error"]["details"]["requestId"], wider,
        "still not paired"
    );

    // Another role is a request of its own.
    let mut node = cli_params(&[]);
    node["role"] = json!("node");
    let mut c = Client::open(gw.addr).await;
    let res = device_connect(&mut c, &k, node).await;
    let node_request = res["error"]["details"]["requestId"].as_str().unwrap();
    assert_ne!(node_request, wider);
    assert_ne!(node_request, listed);

    let r = admin
        .call("a2", "device.pair.approve", json!({"requestId": wider}))
        .await;
    assert_eq!(
        r["payload"]["device"]["scopes"],
        json!(["operator.read", "operator.admin"]),
        "{r}"
    );
}

/// A write that waits for the database (here: another process holds its write lock, as a
/// backup or a slow disk would) holds up nobody but its own caller: on this single-threaded
/// runtime, another connection still completes its handshake and `health` while the approval
/// waits, and the approval answers only once it is on disk.
#[tokio::test]
async fn a_write_waiting_for_the_database_holds_up_no_other_connection() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let s = state.clone();
    let gw = start(move |o| {
        o.state_dir = s;
        o.auto_approve_local = false;
    })
    .await;
    let mut admin = pairing_admin(&gw).await;
    let k = key(62);
    let request_id = request_of(&gw, &k).await;

    let holder = rusqlite::Connection::open(state.join("clawgate.sqlite")).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    admin
        .send(
            json!({"type": "req", "id": "a", "method": "device.pair.approve",
            "params": {"requestId": request_id}}),
        )
        .await;

    let asked = std::time::Instant::now();
    let mut other = Client::open(gw.addr).await;
    assert_eq!(
        other.connect(cli_params(&["operator.read"])).await["ok"],
        true
    );
    let health = other.call("h", "health", json!({})).await;
    assert_eq!(health["ok"], true, "{health}");
    let elapsed = asked.elapsed();
    // Far below the store's wait for a locked database (seconds).
    assert!(
        elapsed < std::time::Duration::from_secs(1),
        "health took {elapsed:?} while a write waited"
    );
    // Reads answer from memory, which holds what is on disk: still pending, not paired.
    let mut lister = pairing_admin(&gw).await;
    let list = lister.call("l", "device.pair.list", json!({})).await;
    assert_eq!(pending_ids(&list), vec![request_id.clone()], "{list}");
    assert_eq!(list["payload"]["paired"], json!([]), "{list}");
    // The approval has not answered: it is not on disk yet.
    let early = tokio::time::timeout(std::time::Duration::from_millis(200), admin.recv_res()).await;
    assert!(
        early.is_err(),
        "approval answered before its write landed: {early:?}"
    );

    holder.execute_batch("ROLLBACK").unwrap();
    let res = admin.recv_res().await;
    assert_eq!(res["id"], "a");
    assert_eq!(res["payload"]["requestId"], request_id, "{res}");
}
