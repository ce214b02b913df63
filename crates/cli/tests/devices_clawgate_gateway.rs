//! clawgate's CLI pairing with clawgate's own gateway (local approval switched off, so a
//! signing CLI on loopback needs approval like a remote one): PAIRING_REQUIRED with the
//! approve command, `devices list/approve/reject/rotate/revoke/remove`, waiting for an
//! approval, and the stored device token.

use clawgate_testkit::{ClawgateBin, CliCommand, IsolatedHome, Output, Value, json};
use std::time::{Duration, Instant};

const TOKEN: &str = "clawgate-pairing-token-0123456789";

fn clawgate() -> ClawgateBin {
    ClawgateBin::new(env!("CARGO_BIN_EXE_clawgate"))
}

fn cg<'h>(home: &'h IsolatedHome) -> CliCommand<'h> {
    clawgate().cli().in_home(home).config(json!({}))
}

#[track_caller]
fn ok_json(out: &Output) -> Value {
    out.assert_success();
    out.json()
}

fn device_id_of(home: &IsolatedHome) -> String {
    let path = home.state_dir().join("clawgate/identity.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["deviceId"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_cli_pairs_with_clawgates_gateway() {
    let gw_home = IsolatedHome::new();
    gw_home.write_config(&json!({"gateway": {"nodes": {"pairing": {"autoApproveLocal": false}}}}));
    let gw = clawgate()
        .spawn_gateway_in(
            gw_home,
            [
                "gateway", "run", "--port", "0", "--auth", "token", "--token", TOKEN,
            ],
            [("CLAWGATE_LOG", "warn")],
        )
        .await
        .expect("clawgate gateway");
    let url = gw.url().to_owned();
    let t = ["--url", url.as_str(), "--token", TOKEN];
    let admin = IsolatedHome::new();
    let laptop = IsolatedHome::new();

    let out = cg(&laptop)
        .args(["health", "--device-auth", "always", "--json"])
        .args(t)
        .run()
        .await;
    out.assert_code(4);
    let v = out.json();
    let id = v["error"]["pairing"]["requestId"]
        .as_str()
        .unwrap_or_else(|| panic!("{out}"))
        .to_owned();
    assert!(
        out.stderr
            .contains(&format!("clawgate devices approve {id}")),
        "{out}"
    );
    let me = device_id_of(&laptop);
    assert_eq!(v["error"]["pairing"]["deviceId"], me.as_str(), "{out}");

    let list = ok_json(
        &cg(&admin)
            .args(["devices", "list", "--json"])
            .args(t)
            .run()
            .await,
    );
    assert_eq!(list["pending"][0]["requestId"], id.as_str(), "{list}");
    assert_eq!(list["pending"][0]["deviceId"], me.as_str(), "{list}");
    let out = cg(&admin)
        .args(["devices", "approve", "nope"])
        .args(t)
        .run()
        .await;
    out.assert_code(1);
    let out = cg(&admin)
        .args(["devices", "approve", &id])
        .args(t)
        .run()
        .await;
    out.assert_success();
    assert!(out.stdout.contains("Approved device"), "{out}");

    // Paired: a device token is kept and works without the shared token.
    cg(&laptop)
        .args(["health", "--device-auth", "always"])
        .args(t)
        .run()
        .await
        .assert_success();
    let out = cg(&laptop)
        .args(["gateway", "status", "--json"])
        .env("CLAWGATE_GATEWAY_URL", &url)
        .run()
        .await;
    assert_eq!(ok_json(&out)["auth"]["method"], "device-token", "{out}");

    // Waiting for an approval given meanwhile.
    let desk = IsolatedHome::new();
    let waiting = cg(&desk)
        .args([
            "status",
            "--device-auth",
            "always",
            "--wait",
            "--wait-timeout",
            "30",
        ])
        .args(t)
        .run();
    let approver = async {
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            let list = ok_json(
                &cg(&admin)
                    .args(["devices", "list", "--json"])
                    .args(t)
                    .run()
                    .await,
            );
            if let Some(r) = list["pending"].as_array().and_then(|a| a.first()) {
                let rid = r["requestId"].as_str().unwrap().to_owned();
                cg(&admin)
                    .args(["devices", "approve", &rid])
                    .args(t)
                    .run()
                    .await
                    .assert_success();
                return rid;
            }
            assert!(Instant::now() < until, "no request from the waiting CLI");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let (out, rid) = tokio::join!(waiting, approver);
    out.assert_success();
    assert!(
        out.stderr
            .contains(&format!("Waiting for approval of request {rid}")),
        "{out}"
    );

    // Reject, rotate (the old token stops working and is dropped), revoke, remove.
    let other = IsolatedHome::new();
    let out = cg(&other)
        .args(["health", "--device-auth", "always", "--json"])
        .args(t)
        .run()
        .await;
    out.assert_code(4);
    let rid = out.json()["error"]["pairing"]["requestId"]
        .as_str()
        .unwrap()
        .to_owned();
    cg(&admin)
        .args(["devices", "reject", &rid])
        .args(t)
        .run()
        .await
        .assert_success();
    cg(&admin)
        .args(["devices", "reject", &rid])
        .args(t)
        .run()
        .await
        .assert_code(1);

    let out = cg(&admin)
        .args(["devices", "rotate", &me[..10], "--json"])
        .args(t)
        .run()
        .await;
    assert_eq!(ok_json(&out)["deviceId"], me.as_str(), "{out}");
    let out = cg(&laptop)
        .args(["health"])
        .env("CLAWGATE_GATEWAY_URL", &url)
        .run()
        .await;
    out.assert_code(4);
    assert!(out.stderr.contains("has been dropped"), "{out}");

    let out = cg(&admin)
        .args(["devices", "revoke", &me, "--json"])
        .args(t)
        .run()
        .await;
    assert_eq!(ok_json(&out)["role"], "operator", "{out}");
    cg(&admin)
        .args(["devices", "remove", &me])
        .args(t)
        .run()
        .await
        .assert_success();
    let list = ok_json(
        &cg(&admin)
            .args(["devices", "list", "--json"])
            .args(t)
            .run()
            .await,
    );
    assert!(
        !list["paired"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["deviceId"] == me.as_str()),
        "{list}"
    );
}
