//! `clawgate dashboard [--open]` as a user runs it: the local gateway's UI address with its
//! token and base path, the token file of a gateway that generated its own, a remote URL,
//! and `--open` handing the address to the desktop's opener.

use clawgate_testkit::{ClawgateBin, IsolatedHome, json};
use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};

fn clawgate() -> ClawgateBin {
    ClawgateBin::new(env!("CARGO_BIN_EXE_clawgate"))
}

#[tokio::test]
async fn the_local_gateway_address_carries_its_token_and_base_path() {
    let home = IsolatedHome::new();
    home.write_config(
        &json!({"gateway": {"port": 18999, "auth": {"token": "tok+en/1"},
        "controlUi": {"basePath": "/ui/"}}}),
    );
    let out = clawgate().cli().in_home(&home).arg("dashboard").run().await;
    out.assert_success();
    assert_eq!(
        out.stdout.trim(),
        "http://127.0.0.1:18999/ui/#token=tok%2Ben%2F1"
    );

    let json_out = clawgate()
        .cli()
        .in_home(&home)
        .args(["dashboard", "--json"])
        .run()
        .await;
    json_out.assert_success();
    assert_eq!(
        json_out.json()["url"],
        "http://127.0.0.1:18999/ui/#token=tok%2Ben%2F1"
    );
}

#[tokio::test]
async fn a_generated_token_is_read_from_the_state_dir() {
    let home = IsolatedHome::new();
    home.write_config(&json!({"gateway": {"port": 18998}}));
    std::fs::write(home.state_dir().join("gateway.token"), "generated-123\n").unwrap();
    let out = clawgate().cli().in_home(&home).arg("dashboard").run().await;
    out.assert_success();
    assert_eq!(
        out.stdout.trim(),
        "http://127.0.0.1:18998/#token=generated-123"
    );
}

#[tokio::test]
async fn a_remote_gateway_gets_its_own_origin() {
    let out = clawgate()
        .cli()
        .config(json!({}))
        .args([
            "dashboard",
            "--url",
            "wss://gw.tail1234.ts.net/openclaw",
            "--token",
            "remote-1",
        ])
        .run()
        .await;
    out.assert_success();
    assert_eq!(
        out.stdout.trim(),
        "https://gw.tail1234.ts.net/openclaw/#token=remote-1"
    );
    let bad = clawgate()
        .cli()
        .config(json!({}))
        .args(["dashboard", "--url", "ftp://x"])
        .run()
        .await;
    assert_ne!(bad.code(), Some(0), "{bad}");
}

#[tokio::test]
async fn open_hands_the_address_to_the_desktop_opener() {
    let home = IsolatedHome::new();
    home.write_config(&json!({"gateway": {"port": 18997, "auth": {"token": "t0"}}}));
    let bin = home.root().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let opened = home.root().join("opened.txt");
    let opener = bin.join("xdg-open");
    std::fs::write(
        &opener,
        format!(
            "#!/bin/sh\nprintf '%s' \"$1\" > '{}.tmp' && mv '{0}.tmp' '{0}'\n",
            opened.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&opener, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = clawgate()
        .cli()
        .in_home(&home)
        .env("PATH", path)
        .args(["dashboard", "--open"])
        .run()
        .await;
    out.assert_success();
    // The opener runs detached: wait for what it wrote.
    let deadline = Instant::now() + Duration::from_secs(10);
    let got = loop {
        if let Ok(text) = std::fs::read_to_string(&opened) {
            break text;
        }
        assert!(Instant::now() < deadline, "xdg-open was not run:\n{out}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(got, "http://127.0.0.1:18997/#token=t0");
}
