//! One gateway per state dir: a second `clawgate gateway run` on the same state dir waits 5 s
//! for the lock and names the holder; a SIGKILLed gateway's lock is taken over;
//! `OPENCLAW_ALLOW_MULTI_GATEWAY` skips only the per-config lock; under systemd a healthy
//! incumbent ends the second start with 78; `--force` frees a port from a plain listener and
//! refuses, off a terminal, to kill a gateway.

use clawgate_testkit::{ChildProcess, ClawgateBin, IsolatedHome, is_alive};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::process::Command;

const WAIT: Duration = Duration::from_secs(20);
/// OpenClaw's lock wait.
const LOCK_TIMEOUT: Duration = Duration::from_secs(5);
/// Variables by which a gateway knows it runs under systemd.
const SYSTEMD_MARKERS: [&str; 4] = [
    "OPENCLAW_SYSTEMD_UNIT",
    "INVOCATION_ID",
    "SYSTEMD_EXEC_PID",
    "JOURNAL_STREAM",
];

/// `clawgate gateway run --token t <args>` in `home` (its state dir, no config file), not
/// under systemd unless `env` says so.
fn gateway_command(home: &IsolatedHome, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = ClawgateBin::new(env!("CARGO_BIN_EXE_clawgate")).command(home);
    for marker in SYSTEMD_MARKERS {
        cmd.env_remove(marker);
    }
    cmd.env_remove("OPENCLAW_CONFIG_PATH")
        .env_remove("CLAWGATE_ALLOW_MULTI_GATEWAY")
        .args(["gateway", "run", "--token", "t"])
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Starts a gateway and waits for its readiness line; returns it and its port.
async fn start(cmd: Command) -> (ChildProcess, u16) {
    let mut p = ChildProcess::spawn(cmd, "clawgate gateway").unwrap();
    let line = p
        .wait_for_line(
            |l| l.contains("gateway listening on "),
            Instant::now() + WAIT,
        )
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", p.transcript()));
    // `… listening on ws://127.0.0.1:PORT and …` (wss:// with TLS).
    let (_, rest) = line.text.split_once("listening on ").unwrap();
    let url = rest.split_whitespace().next().unwrap();
    let port = url.rsplit(':').next().unwrap().parse().unwrap();
    (p, port)
}

/// Runs a command to its end: exit code, everything it printed, how long it took.
async fn run_to_end(cmd: Command) -> (i32, String, Duration) {
    let started = Instant::now();
    let mut p = ChildProcess::spawn(cmd, "clawgate").unwrap();
    let status = p.wait_timeout(WAIT).await.expect("exits");
    let took = started.elapsed();
    // Read to the end of its output before looking at it.
    let _ = p.wait_for_line(|_| false, Instant::now() + WAIT).await;
    (status.code().unwrap_or(-1), p.transcript(), took)
}

fn lock_dir(home: &IsolatedHome) -> PathBuf {
    let uid = std::fs::metadata("/proc/self").unwrap().uid();
    home.state_dir().join(format!("tmp/openclaw-{uid}"))
}

fn state_lock(home: &IsolatedHome) -> serde_json::Value {
    let text = std::fs::read_to_string(lock_dir(home).join("clawgate.state.lock")).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text:?}"))
}

/// The per-config lock files (`clawgate.<hash>.lock`) in the home's lock dir.
fn config_locks(home: &IsolatedHome) -> Vec<PathBuf> {
    std::fs::read_dir(lock_dir(home))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name.starts_with("clawgate.") && name != "clawgate.state.lock"
        })
        .collect()
}

#[tokio::test]
async fn a_second_gateway_on_the_state_dir_waits_5s_and_names_the_holder() {
    let home = IsolatedHome::new();
    let (mut first, port) = start(gateway_command(&home, &["--port", "0"], &[])).await;
    let lock = state_lock(&home);
    assert_eq!(lock["pid"], first.pid(), "{lock}");
    assert_eq!(lock["port"], port, "{lock}");
    assert!(lock["startTime"].is_u64(), "{lock}");
    let lock_path = lock_dir(&home).join("clawgate.state.lock");
    assert_eq!(std::fs::metadata(&lock_path).unwrap().mode() & 0o777, 0o600);
    let config_locks = config_locks(&home);
    assert_eq!(config_locks.len(), 1, "{config_locks:?}");
    let config_lock: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config_locks[0]).unwrap()).unwrap();
    assert_eq!(config_lock["port"], port, "{config_lock}");

    // Another port does not help: the state dir is what is taken.
    let (code, out, took) = run_to_end(gateway_command(&home, &["--port", "0"], &[])).await;
    assert_eq!(code, 1, "{out}");
    assert!(took >= LOCK_TIMEOUT, "gave up after {took:?}:\n{out}");
    assert!(took < LOCK_TIMEOUT + Duration::from_secs(5), "{took:?}");
    assert!(
        out.contains(&format!(
            "Gateway failed to start: gateway already running (pid {}); lock timeout after 5000ms",
            first.pid()
        )),
        "{out}"
    );
    assert!(out.contains(&format!("`kill {}`", first.pid())), "{out}");
    assert!(out.contains(&format!("listens on port {port}")), "{out}");
    assert!(out.contains("--state-dir"), "{out}");
    assert!(!out.contains("listening on"), "{out}");
    assert!(
        first.try_wait().is_none(),
        "the first gateway keeps running"
    );
    assert_eq!(state_lock(&home)["pid"], first.pid());
}

#[tokio::test]
async fn a_sigkilled_gateways_lock_is_taken_over_at_once() {
    let home = IsolatedHome::new();
    let (mut first, _) = start(gateway_command(&home, &["--port", "0"], &[])).await;
    first.signal("KILL");
    first.wait_timeout(WAIT).await.expect("killed");
    let dead = first.pid();

    let started = Instant::now();
    let (second, port) = start(gateway_command(&home, &["--port", "0"], &[])).await;
    assert!(
        started.elapsed() < LOCK_TIMEOUT,
        "waited {:?} for a dead holder:\n{}",
        started.elapsed(),
        second.transcript()
    );
    let lock = state_lock(&home);
    assert_ne!(lock["pid"], dead);
    assert_eq!(lock["pid"], second.pid(), "{lock}");
    assert_eq!(lock["port"], port, "{lock}");
}

#[tokio::test]
async fn allow_multi_gateway_skips_the_config_lock_but_never_shares_a_state_dir() {
    let home = IsolatedHome::new();
    let multi = [("OPENCLAW_ALLOW_MULTI_GATEWAY", "1")];
    let (first, _) = start(gateway_command(&home, &["--port", "0"], &multi)).await;
    assert_eq!(config_locks(&home), Vec::<PathBuf>::new());
    assert_eq!(state_lock(&home)["pid"], first.pid());

    // As in OpenClaw, the state-ownership lock is taken either way.
    let (code, out, _) = run_to_end(gateway_command(
        &home,
        &["--port", "0"],
        &[("CLAWGATE_ALLOW_MULTI_GATEWAY", "1")],
    ))
    .await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("gateway already running (pid {})", first.pid())),
        "{out}"
    );
}

#[tokio::test]
async fn under_systemd_a_healthy_incumbent_ends_the_second_start_with_78() {
    let home = IsolatedHome::new();
    let (first, port) = start(gateway_command(&home, &["--port", "0"], &[])).await;
    let systemd = [("INVOCATION_ID", "0123456789abcdef")];
    let verdict = "Gateway failed to start: gateway already running under systemd; existing gateway is healthy, exiting with code 78 to prevent a systemd Restart=always loop";

    // Same state dir, another port: the lock's recorded port leads to the incumbent.
    let (code, out, took) = run_to_end(gateway_command(&home, &["--port", "0"], &systemd)).await;
    assert_eq!(code, 78, "{out}");
    assert!(out.contains(verdict), "{out}");
    assert!(took >= LOCK_TIMEOUT, "{took:?}");

    // Another state dir, the same port: the bind fails and the port's gateway answers.
    let other = IsolatedHome::new();
    let port_arg = port.to_string();
    let (code, out, _) = run_to_end(gateway_command(
        &other,
        &["--port", &port_arg],
        &[("JOURNAL_STREAM", "8:12345")],
    ))
    .await;
    assert_eq!(code, 78, "{out}");
    assert!(out.contains(verdict), "{out}");
    assert!(is_alive(first.pid()));
}

#[tokio::test]
async fn under_systemd_a_healthy_tls_incumbent_is_probed_with_its_certificate_pinned() {
    let home = IsolatedHome::new();
    std::fs::write(
        home.state_dir().join("openclaw.json"),
        r#"{"gateway": {"tls": {"enabled": true}}}"#,
    )
    .unwrap();
    let (first, _) = start(gateway_command(&home, &["--port", "0"], &[])).await;
    assert!(first.transcript().contains("listening on wss://"));
    let (code, out, _) = run_to_end(gateway_command(
        &home,
        &["--port", "0"],
        &[("SYSTEMD_EXEC_PID", "1")],
    ))
    .await;
    assert_eq!(code, 78, "{out}");
    assert!(out.contains("existing gateway is healthy"), "{out}");
}

#[tokio::test]
async fn under_systemd_a_port_held_by_something_else_is_no_reason_for_78() {
    let (_holder, port) = plain_listener().await;
    let home = IsolatedHome::new();
    let port_arg = port.to_string();
    let (code, out, _) = run_to_end(gateway_command(
        &home,
        &["--port", &port_arg],
        &[("INVOCATION_ID", "0123456789abcdef")],
    ))
    .await;
    assert_eq!(code, 69, "{out}");
    assert!(out.contains("already in use"), "{out}");
}

/// A process that is no gateway listening on `127.0.0.1:<port chosen by the OS>`.
async fn plain_listener() -> (ChildProcess, u16) {
    let mut cmd = Command::new("python3");
    cmd.args([
        "-c",
        "import socket, time\n\
         s = socket.socket()\n\
         s.bind(('127.0.0.1', 0))\n\
         s.listen()\n\
         print(s.getsockname()[1], flush=True)\n\
         time.sleep(600)\n",
    ]);
    let mut p = ChildProcess::spawn(cmd, "python3 listener").unwrap();
    let line = p
        .wait_for_line(|l| l.parse::<u16>().is_ok(), Instant::now() + WAIT)
        .await
        .unwrap();
    let port = line.text.trim().parse().unwrap();
    (p, port)
}

#[tokio::test]
async fn force_stops_a_plain_listener_and_takes_its_port() {
    let (mut holder, port) = plain_listener().await;
    let home = IsolatedHome::new();
    let port_arg = port.to_string();
    let (gw, got) = start(gateway_command(
        &home,
        &["--port", &port_arg, "--force"],
        &[],
    ))
    .await;
    assert_eq!(got, port);
    let out = gw.transcript();
    let killed = out
        .lines()
        .find(|l| l.contains("force: killed pid"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(killed.ends_with(&format!(") on port {port}")), "{killed}");
    assert!(
        killed.contains(&format!("force: killed pid {} (python", holder.pid())),
        "{killed}"
    );
    let status = holder.wait_timeout(WAIT).await.expect("the holder exits");
    assert!(!status.success(), "{status:?}");
}

#[tokio::test]
async fn force_off_a_terminal_refuses_to_kill_a_gateway() {
    let home = IsolatedHome::new();
    let (first, port) = start(gateway_command(&home, &["--port", "0"], &[])).await;
    let other = IsolatedHome::new();
    let port_arg = port.to_string();
    let (code, out, _) = run_to_end(gateway_command(
        &other,
        &["--port", &port_arg, "--force"],
        &[],
    ))
    .await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "Refusing to kill the operator's running gateway service from a non-interactive shell. Use an isolated gateway (clawgate gateway run --state-dir <dir> --port <free port>) for testing. Existing gateway listener pid: {}.",
            first.pid()
        )),
        "{out}"
    );
    assert!(!out.contains("force: killed"), "{out}");
    assert!(is_alive(first.pid()));
    assert!(!first.transcript().contains("shutting down"));
}
