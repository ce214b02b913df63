//! The process helpers, on plain shell commands (no OpenClaw needed).

use std::time::{Duration, Instant};

use clawgate_testkit::{ClawgateBin, IsolatedHome, Stream, TimedOut, is_alive, wait_for_line};

fn sh() -> ClawgateBin {
    ClawgateBin::new("/bin/sh")
}

/// Pids the shell script wrote to `file`, one per line.
fn read_pids(file: &std::path::Path) -> Vec<u32> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

async fn wait_until_dead(pids: &[u32]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|&p| is_alive(p)) {
        assert!(Instant::now() < deadline, "processes {pids:?} survived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn cli_run_captures_streams_and_status() {
    let out = sh()
        .cli()
        .args([
            "-c",
            "echo out; echo err >&2; echo \"$HOME\"; test -z \"$OPENCLAW_GATEWAY_TOKEN\"; exit 3",
        ])
        .env("X", "1")
        .run()
        .await;
    out.assert_code(3);
    let mut lines = out.stdout.lines();
    assert_eq!(lines.next(), Some("out"));
    assert!(
        lines.next().unwrap().ends_with("/home"),
        "private HOME: {out}"
    );
    assert_eq!(out.stderr, "err\n");
}

#[tokio::test]
async fn cli_stdin_is_passed() {
    let out = sh().cli().args(["-c", "cat"]).stdin("hello").run().await;
    assert_eq!(out.assert_success().stdout, "hello");
}

#[tokio::test]
async fn cli_timeout_kills_the_whole_tree() {
    let home = IsolatedHome::new();
    let pids = home.root().join("pids");
    let script = format!(
        "sleep 300 & echo $! >> {p}; setsid sleep 300 & echo $! >> {p}; echo started; sleep 300",
        p = pids.display()
    );
    let started = Instant::now();
    let err = sh()
        .cli()
        .in_home(&home)
        .args(["-c", &script])
        .timeout(Duration::from_secs(2))
        .try_run()
        .await
        .expect_err("must time out");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    let timed_out = err.downcast_ref::<TimedOut>().expect("a TimedOut error");
    assert_eq!(timed_out.stdout, "started\n");
    let pids = read_pids(&pids);
    assert_eq!(pids.len(), 2);
    wait_until_dead(&pids).await;
}

#[tokio::test]
async fn child_process_waits_for_line_and_drop_kills_tree() {
    let home = IsolatedHome::new();
    let pids_file = home.root().join("pids");
    let script = format!(
        "echo booting; sleep 300 & echo $! >> {p}; echo 'app listening on ws://127.0.0.1:4242' >&2; wait",
        p = pids_file.display()
    );
    let mut child = sh()
        .spawn(&home, ["-c", script.as_str()], [("A", "b")])
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = wait_for_line(&mut child, |l| l.contains("listening on"), deadline)
        .await
        .unwrap();
    assert_eq!(line.stream, Stream::Stderr);
    assert!(child.transcript().contains("out| booting"));
    let mut pids = read_pids(&pids_file);
    pids.push(child.pid());
    drop(child);
    wait_until_dead(&pids).await;
}

#[tokio::test]
async fn wait_for_line_reports_exit_and_deadline() {
    let home = IsolatedHome::new();
    let mut child = sh()
        .spawn(&home, ["-c", "echo only-line"], [("A", "b")])
        .unwrap();
    let err = child
        .wait_for_line(
            |l| l.contains("never"),
            Instant::now() + Duration::from_secs(10),
        )
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("only-line"), "{err:#}");

    let mut child = sh()
        .spawn(&home, ["-c", "sleep 300"], [("A", "b")])
        .unwrap();
    let started = Instant::now();
    child
        .wait_for_line(|_| true, Instant::now() + Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(child.stop(Duration::from_secs(2)).await.is_some());
}

#[tokio::test]
async fn clawgate_gateway_readiness_line_is_parsed() {
    let gw = sh()
        .spawn_gateway(
            [
                "-c",
                "echo 'clawgate gateway listening on ws://127.0.0.1:45678' >&2; sleep 300",
            ],
            std::iter::empty::<(String, String)>(),
        )
        .await
        .unwrap();
    assert_eq!(gw.url(), "ws://127.0.0.1:45678");
    assert_eq!(gw.port(), 45678);
}

const HELPER_FILE_ENV: &str = "TESTKIT_SIGNAL_HELPER_FILE";

/// Not a test on its own: run by `sigterm_stops_children_of_the_test_process`
/// in a separate process, which it then terminates.
#[tokio::test]
#[ignore = "helper process for sigterm_stops_children_of_the_test_process"]
async fn signal_helper_spawns_and_hangs() {
    let Some(file) = std::env::var_os(HELPER_FILE_ENV) else {
        return;
    };
    let home = IsolatedHome::new();
    let script = format!(
        "echo \"$$ {root}\" > {file}.tmp && mv {file}.tmp {file}; exec sleep 300",
        root = home.root().display(),
        file = std::path::Path::new(&file).display()
    );
    let _child = sh()
        .spawn(&home, ["-c", script.as_str()], [("A", "b")])
        .unwrap();
    tokio::time::sleep(Duration::from_secs(300)).await;
}

#[tokio::test]
async fn sigterm_stops_children_of_the_test_process() {
    let home = IsolatedHome::new();
    let file = home.root().join("helper");
    let mut helper = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "signal_helper_spawns_and_hangs",
            "--ignored",
            "--nocapture",
        ])
        .env(HELPER_FILE_ENV, &file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let content = loop {
        if let Ok(c) = std::fs::read_to_string(&file) {
            break c;
        }
        assert!(Instant::now() < deadline, "helper did not start its child");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (pid, helper_home) = content.trim().split_once(' ').unwrap();
    let pid: u32 = pid.parse().unwrap();
    assert!(is_alive(pid));

    let status = std::process::Command::new("kill")
        .args(["-TERM", &helper.id().unwrap().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(20), helper.wait())
        .await
        .expect("helper exits after SIGTERM")
        .unwrap();
    assert_eq!(exit.code(), Some(143));
    wait_until_dead(&[pid]).await;
    // The helper exited without destructors; remove its home here.
    let _ = std::fs::remove_dir_all(helper_home);
}
