//! `clawgate gateway run` raises its soft open-file limit to the hard limit: every connection
//! is a file descriptor, and the usual soft default (1024) would lock clients out long before
//! memory runs short.

use clawgate_testkit::{ChildProcess, GATEWAY_READY_TIMEOUT, IsolatedHome, READY_MARKER, json};
use std::time::Instant;

#[tokio::test]
async fn gateway_run_raises_the_soft_open_file_limit_to_the_hard_limit() {
    let home = IsolatedHome::new();
    home.write_config(&json!({}));
    let mut cmd = tokio::process::Command::new("sh");
    cmd.args([
        "-c",
        r#"ulimit -Sn 256 && exec "$0" gateway run --port 0 --token fd-limit-token"#,
        env!("CARGO_BIN_EXE_clawgate"),
    ]);
    home.apply(&mut cmd);
    let mut gw = ChildProcess::spawn(cmd, "gateway run under ulimit -Sn 256").unwrap();
    gw.wait_for_line(
        |l| l.contains(READY_MARKER),
        Instant::now() + GATEWAY_READY_TIMEOUT,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", gw.transcript()));
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", gw.pid())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    // "Max open files  <soft>  <hard>  files"
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[3], fields[4], "{line}");
}
