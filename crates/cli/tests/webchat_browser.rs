//! The browser UI driven in headless Chromium (Debian's, through a pinned playwright-core;
//! see scripts/setup-browser): the page opened with `#token=` connects to the gateway it was
//! served by, a message sent from it makes the scripted model run a command on a real
//! `clawgate node run` that asks for an approval, given with the page's inline Approve, and
//! the page shows the command's tool card with output only that node could print and the
//! streamed reply; a reply that stalls is stopped with Stop; a second tab gets in with the
//! browser's device token alone; a wrong token gets a notice naming where the right one is.
//! Screenshots land in `target/webchat-screenshots/`. Runs in the loopback-only namespace of
//! ./scripts/test.

mod agent_support;

use agent_support::{approved_node, ask_for_every_command, clawgate};
use clawgate_testkit::{
    ChildProcess, ClawgateGateway, IsolatedHome, ModelMock, RawWs, Reply, WireFormat,
    connect_params, json, require_loopback_only_netns,
};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const TOKEN: &str = "webchat-token-0123456789";
/// The whole browser session: start-up, two turns, screenshots.
const BROWSER_BUDGET: Duration = Duration::from_secs(120);

/// A tool installed by scripts/setup-browser (a missing tool is a failure, not a skip).
#[track_caller]
fn tool_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: the browser UI test drives Debian's Chromium through \
             playwright-core; run it through ./scripts/test, which installs both \
             (scripts/setup-browser) and sets {name}"
        )
    })
}

/// `target/` of this build: where screenshots go (not committed).
fn screenshot_dir() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_clawgate"));
    bin.ancestors()
        .nth(2)
        .expect("target/<profile>/clawgate")
        .join("webchat-screenshots")
}

/// `node tests/webchat/<script>` against the UI of the gateway on `port`, with the token and
/// `vars`, in the loopback-only namespace.
fn browser_script(
    script: &str,
    port: u16,
    home: &IsolatedHome,
    vars: &[(&str, &str)],
) -> ChildProcess {
    require_loopback_only_netns();
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/webchat")
        .join(script);
    let mut cmd = tokio::process::Command::new(tool_env("CLAWGATE_NODE_BIN"));
    cmd.arg(&script)
        .env("NODE_PATH", tool_env("CLAWGATE_PLAYWRIGHT_MODULES"))
        .env("CLAWGATE_CHROMIUM_BIN", tool_env("CLAWGATE_CHROMIUM_BIN"))
        .env("WEBCHAT_URL", format!("http://127.0.0.1:{port}/"))
        .env("WEBCHAT_TOKEN", TOKEN)
        .env("WEBCHAT_SHOTS", screenshot_dir())
        .env("HOME", home.home())
        .env("TMPDIR", home.tmp_dir());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    ChildProcess::spawn(cmd, format!("browser script {}", script.display())).unwrap()
}

/// Waits for the script to succeed; returns what it printed.
async fn finished(browser: &mut ChildProcess, gw: &ClawgateGateway) -> String {
    let Some(status) = browser.wait_timeout(BROWSER_BUDGET).await else {
        panic!(
            "the browser script did not finish in {BROWSER_BUDGET:?}:\n{}",
            browser.transcript()
        );
    };
    let transcript = browser.transcript();
    assert!(
        status.success(),
        "the browser script failed:\n{transcript}\n--- gateway\n{}",
        gw.transcript()
    );
    transcript
}

/// The JSON line a script printed last.
fn result_line(transcript: &str) -> serde_json::Value {
    transcript
        .lines()
        .rev()
        .find_map(|l| l.find('{').and_then(|i| serde_json::from_str(&l[i..]).ok()))
        .unwrap_or_else(|| panic!("no result line:\n{transcript}"))
}

#[tokio::test]
async fn the_chat_screen_approves_and_shows_the_node_command_and_streams_the_reply() {
    let mock = ModelMock::start(WireFormat::OpenAi).await;
    let gw = clawgate()
        .start_token_gateway(&mock.primary_config(), TOKEN)
        .await;
    let params = connect_params(
        Some(TOKEN),
        &["operator.read", "operator.write", "operator.admin"],
    );
    let (mut operator, _) = RawWs::handshake(gw.url(), params).await.unwrap();
    let (node, node_id) = approved_node(gw.home(), gw.port(), TOKEN, &mut operator).await;
    // The command waits for an approval, which the page gives inline.
    ask_for_every_command(&mut operator, &node_id).await;

    // Only the node host's own shell knows its parent's pid.
    let tool_output = format!("node-parent-{}", node.pid());
    mock.push(Reply::tool_call(
        "exec",
        json!({"command": "echo node-parent-$PPID", "host": "node"}),
    ));
    mock.push(Reply::text_chunks(["It printed ", "its parent."]));
    // One chunk: the first delta of a run is sent at once (later ones at most every 150 ms).
    mock.push(Reply::text_chunks(["Still thinking"]).then_stall());

    let mut browser = browser_script(
        "chat.cjs",
        gw.port(),
        gw.home(),
        &[
            ("WEBCHAT_REPLY", "It printed its parent."),
            ("WEBCHAT_COMMAND", "echo node-parent-$PPID"),
            ("WEBCHAT_TOOL_OUTPUT", &tool_output),
            ("WEBCHAT_STALLED", "Still thinking"),
        ],
    );
    let transcript = finished(&mut browser, &gw).await;
    let seen = result_line(&transcript);
    let card = seen["cardText"].as_str().unwrap();
    // The card names the tool and the command, and shows what the node printed.
    assert!(card.contains("exec"), "{card}");
    assert!(card.contains("echo node-parent-$PPID"), "{card}");
    assert!(card.contains(&format!("Node: {node_id}")), "{card}");
    // A second tab got in with the browser's device token alone.
    assert_eq!(seen["secondTab"]["settingsHidden"], true, "{seen}");
    assert_eq!(seen["secondTab"]["sessionToken"], serde_json::Value::Null);
    // A wrong token: the fix is on the page.
    let notice = seen["noticeText"].as_str().unwrap();
    assert!(notice.contains("gateway.auth.token"), "{notice}");
    assert!(notice.contains("clawgate dashboard"), "{notice}");
    assert_eq!(seen["settingsOpen"], true);

    // The page's messages went through the gateway: the model saw both, and the stopped run
    // is in the session's history.
    let requests = mock.requests();
    assert_eq!(requests.len(), 3, "model requests: {requests:#?}");
    let history = operator
        .request(
            "chat.history",
            json!({"sessionKey": "agent:main:main"}),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    let texts = history["payload"]["messages"].to_string();
    assert!(
        texts.contains("where do you run?") && texts.contains("take your time"),
        "{texts}"
    );
}

/// With `gateway.nodes.pairing.autoApproveLocal: false` even this machine's browser asks: the
/// page shows the request id and the exact approve command, keeps retrying, and connects by
/// itself once `clawgate devices approve` has run; it keeps the device token it was issued.
#[tokio::test]
async fn a_browser_that_must_pair_shows_the_command_and_connects_once_approved() {
    let config = json!({"gateway": {"nodes": {"pairing": {"autoApproveLocal": false}}}});
    let gw = clawgate().start_token_gateway(&config, TOKEN).await;
    let mut browser = browser_script("pairing.cjs", gw.port(), gw.home(), &[]);
    let line = browser
        .wait_for_line(
            |l| l.starts_with("PAIRING "),
            Instant::now() + BROWSER_BUDGET,
        )
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let request_id = line.text.trim_start_matches("PAIRING ").trim().to_owned();
    let approve = clawgate()
        .cli()
        .config(json!({}))
        .args([
            "devices",
            "approve",
            &request_id,
            "--url",
            gw.url(),
            "--token",
            TOKEN,
        ])
        .run()
        .await;
    approve.assert_success();
    let transcript = finished(&mut browser, &gw).await;
    let seen = result_line(&transcript);
    assert_eq!(
        seen["commandText"],
        format!("clawgate devices approve {request_id}").as_str()
    );
    assert!(
        seen["notice"].as_str().unwrap().contains(&request_id),
        "{seen}"
    );
    assert_eq!(seen["noticeHidden"], true, "{seen}");
    assert_eq!(seen["hasDeviceToken"], true, "{seen}");
}
