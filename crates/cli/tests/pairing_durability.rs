//! Pairing state is durable: an approval that was answered survives `kill -9`, and the device
//! token it issued works after the restart.

use clawgate_client::{Client, ClientError, ConnectOptions, DeviceIdentity, client_info};
use clawgate_testkit::{ChildProcess, ClawgateBin, IsolatedHome, json};
use std::time::{Duration, Instant};

const TOKEN: &str = "durability-token";

async fn start(home: &IsolatedHome, port: &str) -> (ChildProcess, String) {
    let bin = ClawgateBin::new(env!("CARGO_BIN_EXE_clawgate"));
    let mut cmd = bin.command(home);
    cmd.args(["gateway", "run", "--port", port, "--token", TOKEN]);
    let mut p = ChildProcess::spawn(cmd, "clawgate gateway").unwrap();
    let line = p
        .wait_for_line(
            |l| l.contains("listening on ws://"),
            Instant::now() + Duration::from_secs(20),
        )
        .await
        .unwrap();
    (
        p,
        clawgate_testkit::parse_listening_url(&line.text).unwrap(),
    )
}

fn options<'a>(
    url: &str,
    scopes: &[&str],
    device: Option<&'a DeviceIdentity>,
) -> ConnectOptions<'a> {
    let mut o = ConnectOptions::new(url, client_info("cli", "cli"));
    o.token = Some(TOKEN.into());
    o.scopes = scopes.iter().map(|s| s.to_string()).collect();
    o.device = device;
    o
}

#[tokio::test]
async fn an_answered_approval_survives_kill_9() {
    let home = IsolatedHome::new();
    // No silent local pairing: this gateway treats the test's device like a remote one.
    home.write_config(&json!({"gateway": {"nodes": {"pairing": {"autoApproveLocal": false}}}}));
    let (mut gw, url) = start(&home, "0").await;
    let port = url.rsplit(':').next().unwrap().to_owned();
    let device = DeviceIdentity::generate();

    let request_id = match Client::connect(options(&url, &["operator.read"], Some(&device))).await {
        Err(ClientError::Handshake {
            detail_code, error, ..
        }) => {
            assert_eq!(detail_code.as_deref(), Some("PAIRING_REQUIRED"));
            error.details.as_ref().unwrap()["requestId"]
                .as_str()
                .unwrap()
                .to_owned()
        }
        other => panic!("expected PAIRING_REQUIRED, got {:?}", other.map(|(_, h)| h)),
    };
    let (admin, _) = Client::connect(options(&url, &["operator.pairing", "operator.read"], None))
        .await
        .unwrap();
    let approved = admin
        .request(
            "device.pair.approve",
            Some(json!({"requestId": request_id})),
        )
        .await
        .unwrap();
    assert_eq!(approved["requestId"], request_id);
    // The answer is in: kill -9 at once, no chance to flush anything.
    gw.signal("KILL");
    gw.wait_timeout(Duration::from_secs(5))
        .await
        .expect("killed");
    drop(admin);

    let (_gw, url) = start(&home, &port).await;
    let (client, hello) = Client::connect(options(&url, &["operator.read"], Some(&device)))
        .await
        .unwrap();
    let token = hello
        .device_token()
        .expect("a paired device gets its token")
        .to_owned();
    drop(client);

    // And the token alone (no shared secret) authenticates it after the restart.
    let mut o = options(&url, &["operator.read"], Some(&device));
    o.token = None;
    o.device_token = Some(token);
    let (_, hello) = Client::connect(o).await.unwrap();
    assert_eq!(hello.auth_method(), Some("device-token"));
}
