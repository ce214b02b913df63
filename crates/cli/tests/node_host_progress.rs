//! `clawgate node run` while no gateway listens: on a terminal a spinner says what it waits
//! for and since when, and counts down to the next attempt; off a terminal every attempt
//! keeps its log lines, as before.

use clawgate_testkit::{ClawgateBin, IsolatedHome, free_port, json};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt as _;

fn home() -> IsolatedHome {
    let home = IsolatedHome::new();
    home.write_config(&json!({}));
    home
}

/// `clawgate node run` against a port nothing listens on, on a pseudo-terminal of type
/// `term` (`script` copies what it draws to stdout); its pid is the node host's.
fn node_host_on_a_terminal(home: &IsolatedHome, term: &str) -> tokio::process::Child {
    let port = free_port();
    // `exec`: the node host succeeds the shell whatever `$SHELL` is (dash would fork), so
    // it is the child that a signal reaches.
    let command = format!(
        "exec '{}' node run --port {port} --token t",
        env!("CARGO_BIN_EXE_clawgate")
    );
    let mut cmd = tokio::process::Command::new("script");
    cmd.args(["-qfec", &command, "/dev/null"]);
    home.apply(&mut cmd);
    cmd.env("CLAWGATE_LOG", "info")
        .env("TERM", term)
        .process_group(0)
        .kill_on_drop(true)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    cmd.spawn().expect("script runs")
}

/// Reads what the terminal shows until `done` holds of it (30 s at most).
async fn read_until(out: &mut tokio::process::ChildStdout, done: impl Fn(&str) -> bool) -> String {
    let mut drawn = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 4096];
    while !done(&drawn) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, out.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => drawn.push_str(&String::from_utf8_lossy(&buf[..n])),
            _ => panic!("not shown in time; drawn so far:\n{drawn}"),
        }
    }
    drawn
}

/// Stops the node host under `script` with SIGTERM: it exits 0 (which `script` passes on)
/// saying so.
async fn stop(mut child: tokio::process::Child, mut out: tokio::process::ChildStdout, drawn: &str) {
    let script = child.id().expect("a pid");
    let children =
        std::fs::read_to_string(format!("/proc/{script}/task/{script}/children")).unwrap();
    let node_pid = children
        .split_whitespace()
        .next()
        .expect("script runs the node host");
    let killed = std::process::Command::new("kill")
        .args(["-TERM", node_pid])
        .status();
    assert!(killed.is_ok_and(|s| s.success()));
    let mut rest = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(15), out.read_to_string(&mut rest)).await;
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait()).await;
    assert!(
        status.is_ok_and(|s| s.is_ok_and(|s| s.success())),
        "{drawn}{rest}"
    );
    assert!(rest.contains("node host stopped"), "{rest}");
}

#[tokio::test]
async fn on_a_terminal_the_reconnect_wait_is_a_live_spinner() {
    let home = home();
    let mut child = node_host_on_a_terminal(&home, "xterm-256color");
    let mut stdout = child.stdout.take().unwrap();

    // The countdown of the third attempt's wait (about 2 s), drawn live, 1 s into the outage.
    let drawn = read_until(&mut stdout, |d| {
        d.contains("retrying in 1s (attempt 3)") && d.contains("(1s)")
    })
    .await;
    assert!(
        drawn.contains("gateway unreachable (connection refused); retrying in 1s (attempt 2)"),
        "{drawn}"
    );
    // The same failure is logged once above the spinner, not at every attempt; the
    // retry delays stay out of the way.
    assert_eq!(
        drawn.matches("node host gateway connect failed").count(),
        1,
        "{drawn}"
    );
    assert!(!drawn.contains("retrying in 1.0 s"), "{drawn}");

    stop(child, stdout, &drawn).await;
}

/// A terminal without cursor control (`TERM=dumb`) cannot show a spinner: every attempt
/// keeps its log lines there, as off a terminal.
#[tokio::test]
async fn on_a_dumb_terminal_every_attempt_keeps_its_log_lines() {
    let home = home();
    let mut child = node_host_on_a_terminal(&home, "dumb");
    let mut stdout = child.stdout.take().unwrap();
    let drawn = read_until(&mut stdout, |d| {
        d.matches("node host gateway connect failed").count() >= 2
    })
    .await;
    assert!(drawn.contains("retrying in 1."), "{drawn}");
    assert!(!drawn.contains("(attempt"), "{drawn}");
    assert!(!drawn.contains('\u{1b}'), "no escape codes: {drawn}");
    stop(child, stdout, &drawn).await;
}

#[tokio::test]
async fn off_a_terminal_every_attempt_keeps_its_log_lines() {
    let home = home();
    let port = free_port().to_string();
    let mut node = ClawgateBin::new(env!("CARGO_BIN_EXE_clawgate"))
        .spawn(
            &home,
            ["node", "run", "--port", &port, "--token", "t"],
            [("CLAWGATE_LOG", "info")],
        )
        .expect("spawning clawgate node run");
    for _ in 0..2 {
        node.wait_for_line(
            |l| l.contains("node host gateway connect failed"),
            Instant::now() + Duration::from_secs(20),
        )
        .await
        .unwrap();
    }
    let transcript = node.transcript();
    assert!(transcript.contains("retrying in 1."), "{transcript}");
    assert!(!transcript.contains("(attempt"), "{transcript}");
    assert!(!transcript.contains('\r'), "{transcript}");
    node.signal("TERM");
    let status = node.wait_timeout(Duration::from_secs(15)).await;
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "{}",
        node.transcript()
    );
}
