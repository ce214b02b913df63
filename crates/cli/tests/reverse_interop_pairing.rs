//! clawgate's device pairing and `devices` / `nodes` commands against the real OpenClaw
//! gateway (with `gateway.nodes.pairing.autoApproveLocal: false`, so loopback devices need
//! approval like remote ones) and the real `openclaw node run`. Run through ./scripts/test
//! (it installs OpenClaw and runs the tests in a loopback-only network namespace).

use clawgate_testkit::{
    ChildProcess, ClawgateBin, CliCommand, GatewayOptions, IsolatedHome, OpenClaw, Output,
    RealGateway, Value, json,
};
use std::time::{Duration, Instant};

const TOKEN: &str = "reverse-pairing-token-0123456789";

fn clawgate() -> ClawgateBin {
    ClawgateBin::new(env!("CARGO_BIN_EXE_clawgate"))
}

fn deadline(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

#[track_caller]
fn ok_json(out: &Output) -> Value {
    out.assert_success();
    out.json()
}

/// A clawgate run in `home` (its state, and so its device identity, kept between runs).
fn cg<'h>(home: &'h IsolatedHome) -> CliCommand<'h> {
    clawgate().cli().in_home(home).config(json!({}))
}

/// `--url <gw> --token <t>`.
fn target(gw: &RealGateway) -> Vec<String> {
    vec![
        "--url".into(),
        gw.url(),
        "--token".into(),
        gw.token().to_owned(),
    ]
}

fn pending_ids(list: &Value) -> Vec<String> {
    list["pending"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["requestId"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The pending request of `device_id`, as the real OpenClaw CLI lists it.
async fn real_pending_for(gw: &RealGateway, device_id: &str) -> Option<Value> {
    let list = ok_json(&gw.cli().args(["devices", "list", "--json"]).run().await);
    list["pending"]
        .as_array()?
        .iter()
        .find(|r| r["deviceId"] == device_id)
        .cloned()
}

fn device_id_of(home: &IsolatedHome) -> String {
    let path = home.state_dir().join("clawgate/identity.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    v["deviceId"].as_str().unwrap().to_owned()
}

/// Starts the real `openclaw node run` against `gw` in `home`.
fn spawn_real_node(oc: &OpenClaw, gw: &RealGateway, home: &IsolatedHome) -> ChildProcess {
    let mut cmd = tokio::process::Command::new(oc.bin());
    cmd.args(["node", "run", "--host", "127.0.0.1", "--port"])
        .arg(gw.port().to_string())
        .args(["--display-name", "reverse-node"]);
    home.apply(&mut cmd);
    cmd.env("OPENCLAW_GATEWAY_TOKEN", gw.token());
    ChildProcess::spawn(cmd, "openclaw node run").expect("spawning openclaw node run")
}

#[tokio::test]
async fn clawgate_pairs_and_manages_devices_and_nodes_on_the_real_gateway() {
    let oc = OpenClaw::from_env();
    let gw = RealGateway::start_with(
        &oc,
        TOKEN,
        GatewayOptions {
            config: Some(json!({"gateway": {"nodes": {"pairing": {"autoApproveLocal": false}}}})),
            ..GatewayOptions::default()
        },
    )
    .await;
    let t = target(&gw);
    let admin_home = IsolatedHome::new(); // a loopback operator with the shared token
    let laptop = IsolatedHome::new(); // a CLI that signs (as a remote one would)

    // --- a signing CLI gets PAIRING_REQUIRED and prints what to run -------------------------
    let out = cg(&laptop)
        .args(["health", "--device-auth", "always", "--no-wait"])
        .args(&t)
        .run()
        .await;
    out.assert_code(4);
    let me = device_id_of(&laptop);
    let request = real_pending_for(&gw, &me)
        .await
        .expect("the real gateway holds a request for the CLI's device");
    let id = request["requestId"].as_str().unwrap().to_owned();
    assert!(
        out.stderr
            .contains(&format!("clawgate devices approve {id}")),
        "{out}"
    );
    assert!(
        out.stderr
            .contains(&format!("openclaw devices approve {id}")),
        "{out}"
    );
    assert_eq!(request["clientId"], "cli");
    assert_eq!(request["scopes"], json!(["operator.read"]));
    // --json: the same request id, machine-readable.
    let out = cg(&laptop)
        .args(["health", "--device-auth", "always", "--json"])
        .args(&t)
        .run()
        .await;
    out.assert_code(4);
    let v = out.json();
    assert_eq!(v["error"]["details"]["code"], "PAIRING_REQUIRED", "{out}");
    assert_eq!(v["error"]["pairing"]["requestId"], id.as_str(), "{out}");

    // --- devices list / approve (with what it grants) ---------------------------------------
    let list = ok_json(
        &cg(&admin_home)
            .args(["devices", "list", "--json"])
            .args(&t)
            .run()
            .await,
    );
    assert!(pending_ids(&list).contains(&id), "{list}");
    let out = cg(&admin_home)
        .args(["devices", "list"])
        .args(&t)
        .run()
        .await;
    out.assert_success();
    assert!(out.stdout.contains(&id), "{out}");
    assert!(out.stdout.contains("new pairing"), "{out}");

    let out = cg(&admin_home)
        .args(["devices", "approve", "no-such-request"])
        .args(&t)
        .run()
        .await;
    out.assert_code(1);
    assert!(
        out.stderr.contains("no pending request no-such-request"),
        "{out}"
    );

    let out = cg(&admin_home)
        .args(["devices", "approve", &id])
        .args(&t)
        .run()
        .await;
    out.assert_success();
    assert!(out.stdout.contains("Scopes    operator.read"), "{out}");
    assert!(out.stdout.contains("Approved device"), "{out}");
    assert!(out.stdout.contains(&me), "{out}");

    // The paired CLI connects, keeps the issued device token, and then needs no secret.
    let out = cg(&laptop)
        .args(["health", "--device-auth", "always"])
        .args(&t)
        .run()
        .await;
    out.assert_success();
    let tokens: Value = serde_json::from_str(
        &std::fs::read_to_string(laptop.state_dir().join("clawgate/device-tokens.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(tokens["tokens"][0]["deviceId"], me.as_str());
    assert_eq!(tokens["tokens"][0]["role"], "operator");
    let out = cg(&laptop)
        .args(["gateway", "status", "--json"])
        .env("CLAWGATE_GATEWAY_URL", gw.url())
        .run()
        .await;
    assert_eq!(ok_json(&out)["auth"]["method"], "device-token", "{out}");
    let out = cg(&laptop)
        .args(["health", "--json"])
        .env("CLAWGATE_GATEWAY_URL", gw.url())
        .run()
        .await;
    assert_eq!(ok_json(&out)["ok"], true, "{out}");

    // --- waiting: approved meanwhile with the real OpenClaw CLI -----------------------------
    let desk = IsolatedHome::new();
    let waiting = cg(&desk)
        .args([
            "health",
            "--device-auth",
            "always",
            "--wait",
            "--wait-timeout",
            "60",
        ])
        .args(&t)
        .run();
    let approver = async {
        let until = deadline(40);
        loop {
            if desk.state_dir().join("clawgate/identity.json").exists()
                && let Some(r) = real_pending_for(&gw, &device_id_of(&desk)).await
            {
                let id = r["requestId"].as_str().unwrap().to_owned();
                let out = gw
                    .cli()
                    .args(["devices", "approve", &id, "--json"])
                    .run()
                    .await;
                return (id, out);
            }
            assert!(Instant::now() < until, "no request from the waiting CLI");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    };
    let (out, (desk_request, approved)) = tokio::join!(waiting, approver);
    approved.assert_success();
    out.assert_success();
    assert!(
        out.stderr
            .contains(&format!("Waiting for approval of request {desk_request}")),
        "{out}"
    );
    assert!(out.stdout.starts_with("Gateway: OK"), "{out}");

    // --- reject -------------------------------------------------------------------------------
    let intruder = IsolatedHome::new();
    cg(&intruder)
        .args(["status", "--device-auth", "always", "--no-wait"])
        .args(&t)
        .run()
        .await
        .assert_code(4);
    let r = real_pending_for(&gw, &device_id_of(&intruder))
        .await
        .unwrap();
    let rid = r["requestId"].as_str().unwrap().to_owned();
    let out = cg(&admin_home)
        .args(["devices", "reject", &rid])
        .args(&t)
        .run()
        .await;
    out.assert_success();
    assert!(
        out.stdout.contains(&format!("Rejected request {rid}")),
        "{out}"
    );
    assert!(
        real_pending_for(&gw, &device_id_of(&intruder))
            .await
            .is_none()
    );
    let out = cg(&admin_home)
        .args(["devices", "reject", &rid])
        .args(&t)
        .run()
        .await;
    out.assert_code(1);

    // --- rename / rotate / revoke / remove ----------------------------------------------------
    let out = cg(&admin_home)
        .args(["devices", "rename", &me[..10], "reverse laptop", "--json"])
        .args(&t)
        .run()
        .await;
    assert_eq!(
        ok_json(&out),
        json!({"deviceId": me, "label": "reverse laptop"})
    );
    let list = ok_json(&gw.cli().args(["devices", "list", "--json"]).run().await);
    let paired = list["paired"].as_array().unwrap();
    let mine = paired
        .iter()
        .find(|d| d["deviceId"] == me.as_str())
        .unwrap();
    assert_eq!(mine["operatorLabel"], "reverse laptop", "{list}");

    let out = cg(&admin_home)
        .args(["devices", "rotate", "reverse laptop", "--json"])
        .args(&t)
        .run()
        .await;
    let v = ok_json(&out);
    assert_eq!(v["deviceId"], me.as_str(), "{out}");
    assert_eq!(v["role"], "operator", "{out}");
    assert_eq!(v["scopes"], json!(["operator.read"]), "{out}");
    // The laptop's stored token is stale now: dropped, with the way back.
    let out = cg(&laptop)
        .args(["health"])
        .env("CLAWGATE_GATEWAY_URL", gw.url())
        .run()
        .await;
    out.assert_code(4);
    assert!(out.stderr.contains("has been dropped"), "{out}");
    let out = cg(&laptop)
        .args(["health", "--device-auth", "always"])
        .args(&t)
        .run()
        .await;
    out.assert_success();

    let out = cg(&admin_home)
        .args(["devices", "revoke", &me, "--json"])
        .args(&t)
        .run()
        .await;
    let v = ok_json(&out);
    assert_eq!(v["role"], "operator", "{out}");
    assert!(v["revokedAtMs"].is_i64(), "{out}");
    let out = cg(&admin_home)
        .args(["devices", "remove", &me])
        .args(&t)
        .run()
        .await;
    out.assert_success();
    let list = ok_json(&gw.cli().args(["devices", "list", "--json"]).run().await);
    assert!(
        !list["paired"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["deviceId"] == me.as_str()),
        "{list}"
    );

    // --- nodes: the real node host, both approval layers through clawgate -------------------
    let node_home = oc.isolated_home(&json!({}));
    let mut node = spawn_real_node(&oc, &gw, &node_home);
    node.wait_for_line(|l| l.contains("pairing required"), deadline(60))
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", node.transcript()));
    // Its device request (role node) needs operator.admin: clawgate asks for it.
    let list = ok_json(
        &cg(&admin_home)
            .args(["devices", "list", "--json"])
            .args(&t)
            .run()
            .await,
    );
    let node_req = list["pending"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["role"] == "node")
        .unwrap_or_else(|| panic!("no node request: {list}"))
        .clone();
    let node_id = node_req["deviceId"].as_str().unwrap().to_owned();
    let out = cg(&admin_home)
        .args([
            "devices",
            "approve",
            node_req["requestId"].as_str().unwrap(),
        ])
        .args(&t)
        .run()
        .await;
    out.assert_success();
    assert!(out.stdout.contains("Role      node"), "{out}");
    // The node host paused its reconnects at PAIRING_REQUIRED: start it again.
    drop(node);
    let mut node = spawn_real_node(&oc, &gw, &node_home);
    node.wait_for_line(|l| l.contains("node host gateway connected"), deadline(60))
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", node.transcript()));

    // Its capability request shows up in `nodes pending` (maybe after a moment).
    let until = deadline(30);
    let pending = loop {
        let out = cg(&admin_home)
            .args(["nodes", "pending", "--json"])
            .args(&t)
            .run()
            .await;
        let v = ok_json(&out);
        if let Some(r) = v
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["nodeId"] == node_id.as_str())
        {
            break r.clone();
        }
        assert!(Instant::now() < until, "no node request: {out}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(
        pending["requiredApproveScopes"],
        json!(["operator.pairing", "operator.admin"])
    );
    let node_request = pending["requestId"].as_str().unwrap().to_owned();
    let out = cg(&admin_home)
        .args(["nodes", "status", "--json"])
        .args(&t)
        .run()
        .await;
    let v = ok_json(&out);
    assert!(
        v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["nodeId"] == node_id.as_str()),
        "{out}"
    );
    let out = cg(&admin_home)
        .args(["nodes", "list", "--json"])
        .args(&t)
        .run()
        .await;
    assert!(pending_ids(&ok_json(&out)).contains(&node_request), "{out}");

    let out = cg(&admin_home)
        .args(["nodes", "approve", "no-such-request"])
        .args(&t)
        .run()
        .await;
    out.assert_code(1);
    assert!(out.stderr.contains(&node_request), "{out}");
    let out = cg(&admin_home)
        .args(["nodes", "approve", &node_request])
        .args(&t)
        .run()
        .await;
    out.assert_success();
    assert!(out.stdout.contains("system.run"), "{out}");
    assert!(out.stdout.contains("Approved node reverse-node"), "{out}");

    // Approved: described, and its commands can be invoked (once the gateway says approved).
    let until = deadline(30);
    loop {
        let out = cg(&admin_home)
            .args(["nodes", "describe", "reverse-node", "--json"])
            .args(&t)
            .run()
            .await;
        let v = ok_json(&out);
        assert_eq!(v["nodeId"], node_id.as_str(), "{out}");
        if v["approvalState"] == "approved" && v["connected"] == true {
            assert!(
                v["commands"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|c| c == "system.which"),
                "{out}"
            );
            break;
        }
        assert!(Instant::now() < until, "node not approved: {out}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let out = cg(&admin_home)
        .args(["nodes", "describe", &node_id[..8]])
        .args(&t)
        .run()
        .await;
    out.assert_success();
    assert!(out.stdout.contains("Node      reverse-node"), "{out}");
    let out = cg(&admin_home)
        .args([
            "nodes",
            "invoke",
            "reverse-node",
            "--command",
            "system.which",
            "--params",
            r#"{"bins":["sh","no-such-binary-here"]}"#,
        ])
        .args(&t)
        .run()
        .await;
    let v = ok_json(&out);
    assert_eq!(v["ok"], true, "{out}");
    assert!(v["payload"]["bins"]["sh"].is_string(), "{out}");
    let out = cg(&admin_home)
        .args([
            "nodes",
            "invoke",
            &node_id,
            "--command",
            "system.run",
            "--params",
            r#"{"command":["echo","from clawgate"]}"#,
        ])
        .args(&t)
        .run()
        .await;
    let v = ok_json(&out);
    assert_eq!(v["payload"]["stdout"], "from clawgate\n", "{out}");

    let out = cg(&admin_home)
        .args(["nodes", "rename", "reverse-node", "renamed-node", "--json"])
        .args(&t)
        .run()
        .await;
    assert_eq!(
        ok_json(&out),
        json!({"nodeId": node_id, "displayName": "renamed-node"})
    );
    let out = cg(&admin_home)
        .args(["nodes", "describe", "nothing-like-this"])
        .args(&t)
        .run()
        .await;
    out.assert_code(1);
    drop(node);
}
