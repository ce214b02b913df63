//! `clawgate tunnel up|status|down` and `gateway.remote.transport: "ssh"` against a real
//! OpenSSH server started by the test on a loopback port (its own host key, authorized_keys,
//! config and a private known_hosts) and a clawgate gateway behind it; the real OpenClaw CLI
//! through a clawgate-managed tunnel; a killed ssh comes back; unknown host key, refused key,
//! changed host key and a busy local port each give their own error.

use clawgate_testkit::{
    ClawgateBin, ClawgateGateway, IsolatedHome, OpenClaw, Output, Sshd, Value, free_port, json,
    kill_tunnels,
};
use std::time::{Duration, Instant};

const TOKEN: &str = "tunnel-test-token-0123456789";

fn bin() -> ClawgateBin {
    ClawgateBin::new(env!("CARGO_BIN_EXE_clawgate"))
}

/// A home whose tunnels are killed when the test ends, whatever happens.
struct Home(IsolatedHome);

impl Drop for Home {
    fn drop(&mut self) {
        kill_tunnels(&self.0.state_dir());
    }
}

impl std::ops::Deref for Home {
    type Target = IsolatedHome;
    fn deref(&self) -> &IsolatedHome {
        &self.0
    }
}

/// A private home with an empty config file.
fn home() -> Home {
    let home = IsolatedHome::new();
    home.write_config(&json!({}));
    Home(home)
}

async fn gateway() -> ClawgateGateway {
    bin().start_token_gateway(&json!({}), TOKEN).await
}

/// `clawgate <args>` in `home`, without an ssh agent.
async fn clawgate(home: &IsolatedHome, args: &[&str]) -> Output {
    bin()
        .cli()
        .in_home(home)
        .args(args)
        .env_remove("SSH_AUTH_SOCK")
        .timeout(Duration::from_secs(60))
        .run()
        .await
}

/// `tunnel up` arguments for `sshd` forwarding to `remote_port`.
fn up_args(sshd: &Sshd, remote_port: u16) -> Vec<String> {
    vec![
        "tunnel".into(),
        "up".into(),
        sshd.target(),
        "--ssh-port".into(),
        sshd.port().to_string(),
        "--remote-port".into(),
        remote_port.to_string(),
        "--identity".into(),
        sshd.client_key().display().to_string(),
        "--known-hosts".into(),
        sshd.known_hosts().display().to_string(),
    ]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

async fn status_json(home: &IsolatedHome) -> Value {
    clawgate(home, &["tunnel", "status", "--json"]).await.json()
}

fn alive(pid: u64) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[tokio::test]
async fn tunnel_up_then_health_through_it_and_a_killed_ssh_comes_back() {
    let sshd = Sshd::start().await.unwrap();
    let gw = gateway().await;
    let home = home();

    let mut args = up_args(&sshd, gw.port());
    args.push("--json".into());
    let up = clawgate(&home, &strs(&args)).await;
    up.assert_success();
    let v = up.json();
    assert_eq!(v["ok"], true, "{up}");
    assert_eq!(v["reused"], false, "{up}");
    let tunnel = &v["tunnel"];
    assert_eq!(tunnel["status"], "up", "{up}");
    let local = tunnel["localPort"].as_u64().unwrap();
    let supervisor = tunnel["supervisorPid"].as_u64().unwrap();
    // The gateway's own port is taken on this host, so another one was picked.
    assert_ne!(local, u64::from(gw.port()));
    assert_eq!(tunnel["url"], format!("ws://127.0.0.1:{local}"));
    let argv = tunnel["sshArgv"].to_string();
    for opt in [
        "ExitOnForwardFailure=yes",
        "BatchMode=yes",
        "StrictHostKeyChecking=yes",
        "ServerAliveInterval=15",
        "ControlMaster=no",
    ] {
        assert!(argv.contains(opt), "{opt} missing from {argv}");
    }

    let url = format!("ws://127.0.0.1:{local}");
    let health = clawgate(
        &home,
        &["health", "--url", &url, "--token", TOKEN, "--json"],
    )
    .await;
    health.assert_success();
    assert_eq!(health.json()["ok"], true, "{health}");

    // Human status, then a second `up`: the same supervisor is reused.
    let status = clawgate(&home, &["tunnel", "status"]).await;
    status.assert_success();
    assert!(status.stdout.starts_with("up  "), "{status}");
    assert!(status.stdout.contains(&url), "{status}");
    let again = clawgate(&home, &strs(&up_args(&sshd, gw.port()))).await;
    again.assert_success();
    assert!(again.stdout.contains("already up"), "{again}");
    assert_eq!(
        status_json(&home).await["tunnels"][0]["supervisorPid"],
        supervisor
    );

    // Kill ssh: the supervisor starts it again on the same port.
    let first_ssh = status_json(&home).await["tunnels"][0]["sshPid"]
        .as_u64()
        .unwrap();
    std::process::Command::new("kill")
        .args(["-KILL", &first_ssh.to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let state = loop {
        let s = status_json(&home).await;
        let t = &s["tunnels"][0];
        if t["status"] == "up" && t["sshPid"].as_u64().is_some_and(|p| p != first_ssh) {
            break t.clone();
        }
        assert!(Instant::now() < deadline, "not re-established: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(state["restarts"], 1, "{state}");
    assert_eq!(state["localPort"], local, "{state}");
    assert_eq!(state["lastError"]["kind"], "ssh_exited", "{state}");
    let health = clawgate(
        &home,
        &["health", "--url", &url, "--token", TOKEN, "--json"],
    )
    .await;
    health.assert_success();

    // Down stops the supervisor and its ssh.
    let down = clawgate(&home, &["tunnel", "down", "--json"]).await;
    down.assert_success();
    assert_eq!(
        down.json()["stopped"].as_array().unwrap().len(),
        1,
        "{down}"
    );
    let second_ssh = state["sshPid"].as_u64().unwrap();
    assert!(!alive(supervisor), "supervisor {supervisor} still running");
    assert!(!alive(second_ssh), "ssh {second_ssh} still running");
    let status = clawgate(&home, &["tunnel", "status"]).await;
    status.assert_code(3);
    assert!(
        status.stdout.contains("No SSH tunnel is running"),
        "{status}"
    );
    let gone = clawgate(&home, &["health", "--url", &url, "--token", TOKEN]).await;
    gone.assert_code(3);
}

#[tokio::test]
async fn remote_transport_ssh_opens_the_tunnel_by_itself_and_reuses_it() {
    let sshd = Sshd::start().await.unwrap();
    let gw = gateway().await;
    let home = home();
    home.write_config(&json!({"gateway": {"mode": "remote", "remote": {
        "transport": "ssh",
        "sshTarget": format!("{}:{}", sshd.target(), sshd.port()),
        "sshIdentity": sshd.client_key(),
        "remotePort": gw.port(),
        "token": TOKEN,
    }}}));
    let known = sshd.known_hosts().display().to_string();
    let run = |args: &'static [&'static str]| {
        bin()
            .cli()
            .in_home(&home)
            .args(args)
            .env_remove("SSH_AUTH_SOCK")
            .env("CLAWGATE_SSH_KNOWN_HOSTS", &known)
            .run()
    };

    let health = run(&["health", "--json"]).await;
    health.assert_success();
    assert_eq!(health.json()["ok"], true, "{health}");
    // Off a terminal: no spinner, nothing on stderr.
    assert!(!health.stderr.contains('\r'), "{health}");
    let tunnels = status_json(&home).await["tunnels"].clone();
    assert_eq!(tunnels.as_array().unwrap().len(), 1, "{tunnels}");
    let supervisor = tunnels[0]["supervisorPid"].clone();

    // Every command goes through it; the second one reuses the same tunnel.
    let status = run(&["status", "--json"]).await;
    status.assert_success();
    let call = run(&["gateway", "call", "health"]).await;
    call.assert_success();
    let tunnels = status_json(&home).await["tunnels"].clone();
    assert_eq!(tunnels.as_array().unwrap().len(), 1, "{tunnels}");
    assert_eq!(tunnels[0]["supervisorPid"], supervisor);

    // The human report says which way it went.
    let health = run(&["health"]).await;
    health.assert_success();
    assert!(health.stdout.contains("Gateway: OK"), "{health}");

    // --url bypasses the tunnel (and needs its own credentials).
    let direct = format!("ws://127.0.0.1:{}", gw.port());
    let out = bin()
        .cli()
        .in_home(&home)
        .args(["health", "--json", "--url", &direct, "--token", TOKEN])
        .run()
        .await;
    out.assert_success();
}

#[tokio::test]
async fn real_openclaw_cli_through_a_clawgate_managed_tunnel() {
    let oc = OpenClaw::from_env();
    let sshd = Sshd::start().await.unwrap();
    let gw = gateway().await;
    let home = home();
    let mut args = up_args(&sshd, gw.port());
    args.push("--json".into());
    let up = clawgate(&home, &strs(&args)).await;
    up.assert_success();
    let local = up.json()["tunnel"]["localPort"].as_u64().unwrap();

    let out = oc
        .cli()
        .args([
            "gateway",
            "call",
            "health",
            "--url",
            &format!("ws://127.0.0.1:{local}"),
            "--token",
            TOKEN,
            "--json",
        ])
        .run()
        .await;
    out.assert_success();
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["ok"], true, "{out}");
    clawgate(&home, &["tunnel", "down"]).await.assert_success();
}

#[tokio::test]
async fn unknown_host_key_refused_key_changed_key_and_busy_port_are_told_apart() {
    let sshd = Sshd::start().await.unwrap();
    let home = home();
    let remote = 18_789.to_string();

    let replace = |args: &mut Vec<String>, flag: &str, value: String| {
        let i = args.iter().position(|a| a == flag).unwrap();
        args[i + 1] = value;
    };
    let attempt = |args: Vec<String>| {
        let home = &home;
        async move {
            let mut args = args;
            args.push("--json".into());
            let out = clawgate(home, &strs(&args)).await;
            let kind = out.json()["error"]["kind"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            (out, kind)
        }
    };

    // Unknown host key (empty known_hosts): exit 4, how to record the key.
    let mut args = up_args(&sshd, 18_789);
    replace(
        &mut args,
        "--known-hosts",
        sshd.empty_known_hosts().display().to_string(),
    );
    let (out, kind) = attempt(args).await;
    out.assert_code(4);
    assert_eq!(kind, "host_key_unknown", "{out}");
    assert!(out.stderr.contains("ssh-keyscan -p"), "{out}");
    assert!(out.stderr.contains("sshHostKeyPolicy"), "{out}");

    // A key the server does not accept: exit 4, which key and where to authorize it.
    let mut args = up_args(&sshd, 18_789);
    replace(
        &mut args,
        "--identity",
        sshd.other_key().display().to_string(),
    );
    let (out, kind) = attempt(args).await;
    out.assert_code(4);
    assert_eq!(kind, "auth_failed", "{out}");
    assert!(out.stderr.contains("Permission denied"), "{out}");
    assert!(out.stderr.contains("authorized_keys"), "{out}");

    // The recorded host key differs: exit 4, a warning, not a prompt to accept it.
    let mut args = up_args(&sshd, 18_789);
    replace(
        &mut args,
        "--known-hosts",
        sshd.wrong_known_hosts().display().to_string(),
    );
    let (out, kind) = attempt(args).await;
    out.assert_code(4);
    assert_eq!(kind, "host_key_changed", "{out}");
    assert!(out.stderr.contains("CHANGED"), "{out}");

    // A local port that is taken: exit 2, how to pick another.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_port = busy.local_addr().unwrap().port().to_string();
    let mut args = up_args(&sshd, 18_789);
    args.extend(["--local-port".into(), busy_port.clone()]);
    let (out, kind) = attempt(args).await;
    out.assert_code(2);
    assert_eq!(kind, "local_port_busy", "{out}");
    assert!(out.stderr.contains(&busy_port), "{out}");
    assert!(out.stderr.contains("--local-port"), "{out}");
    drop(busy);

    // Nothing listens on the SSH port: exit 3.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut args = up_args(&sshd, 18_789);
    replace(&mut args, "--ssh-port", closed.to_string());
    let (out, kind) = attempt(args).await;
    out.assert_code(3);
    assert_eq!(kind, "ssh_unreachable", "{out}");

    // None of them left a tunnel behind.
    let status = clawgate(&home, &["tunnel", "status", "--json"]).await;
    status.assert_code(3);
    assert_eq!(status.json()["tunnels"], json!([]), "{status}");

    // The same errors reach every command when the config asks for the tunnel.
    home.write_config(&json!({"gateway": {"mode": "remote", "remote": {
        "transport": "ssh",
        "sshTarget": format!("{}:{}", sshd.target(), sshd.port()),
        "sshIdentity": sshd.client_key(),
        "remotePort": remote.parse::<u16>().unwrap(),
        "token": TOKEN,
    }}}));
    let out = bin()
        .cli()
        .in_home(&home)
        .args(["health"])
        .env_remove("SSH_AUTH_SOCK")
        .env(
            "CLAWGATE_SSH_KNOWN_HOSTS",
            sshd.empty_known_hosts().display().to_string(),
        )
        .run()
        .await;
    out.assert_code(4);
    assert!(out.stderr.contains("cannot open the SSH tunnel"), "{out}");
    assert!(out.stderr.contains("not in"), "{out}");
}

#[tokio::test]
async fn a_tunnel_whose_gateway_is_down_says_so() {
    let sshd = Sshd::start().await.unwrap();
    let home = home();
    // Nothing listens on the remote port.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    home.write_config(&json!({"gateway": {"mode": "remote", "remote": {
        "transport": "ssh",
        "sshTarget": format!("{}:{}", sshd.target(), sshd.port()),
        "sshIdentity": sshd.client_key(),
        "remotePort": dead,
        "token": TOKEN,
    }}}));
    let out = bin()
        .cli()
        .in_home(&home)
        .args(["health", "--timeout", "3000"])
        .env_remove("SSH_AUTH_SOCK")
        .env(
            "CLAWGATE_SSH_KNOWN_HOSTS",
            sshd.known_hosts().display().to_string(),
        )
        .run()
        .await;
    assert_ne!(out.code(), Some(0), "{out}");
    assert!(
        out.stderr
            .contains("is up, but nothing answered through it"),
        "{out}"
    );
}

/// Runs `clawgate <args>` on a pseudo-terminal (`script`), returning everything it drew.
async fn on_a_terminal(home: &IsolatedHome, args: &[String]) -> String {
    let quoted: Vec<String> = std::iter::once(env!("CARGO_BIN_EXE_clawgate").to_owned())
        .chain(args.iter().cloned())
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect();
    // `exec`: clawgate succeeds the shell whatever `$SHELL` is.
    let mut cmd = tokio::process::Command::new("script");
    cmd.args(["-qec", &format!("exec {}", quoted.join(" ")), "/dev/null"]);
    home.apply(&mut cmd);
    cmd.env_remove("SSH_AUTH_SOCK")
        .env("TERM", "xterm-256color")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("in time")
        .expect("script runs");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn progress_is_shown_on_a_terminal_and_not_with_json() {
    let sshd = Sshd::start().await.unwrap();
    let home = home();
    let drawn = on_a_terminal(&home, &up_args(&sshd, 18_789)).await;
    assert!(
        drawn.contains(&format!(
            "Opening SSH tunnel to {}:{}",
            sshd.target(),
            sshd.port()
        )),
        "{drawn}"
    );
    assert!(drawn.contains("(0s)"), "elapsed time missing: {drawn}");
    assert!(drawn.contains("SSH tunnel up:"), "{drawn}");
    clawgate(&home, &["tunnel", "down"]).await.assert_success();

    let mut args = up_args(&sshd, 18_790);
    args.push("--json".into());
    let drawn = on_a_terminal(&home, &args).await;
    assert!(!drawn.contains("Opening SSH tunnel"), "{drawn}");
    assert!(drawn.contains("\"ok\": true"), "{drawn}");
    clawgate(&home, &["tunnel", "down"]).await.assert_success();
}

#[tokio::test]
async fn a_foreground_tunnel_streams_events_and_reconnects() {
    let sshd = Sshd::start().await.unwrap();
    let gw = gateway().await;
    let home = home();
    let mut args = up_args(&sshd, gw.port());
    args.extend(["--foreground".into(), "--json".into()]);
    let mut fg = bin()
        .spawn(&home, &args, [("SSH_AUTH_SOCK", "")])
        .expect("spawn");
    let deadline = || std::time::Instant::now() + Duration::from_secs(30);
    let line = fg
        .wait_for_line(|l| l.starts_with("{\"event\":\"up\""), deadline())
        .await
        .expect("up event");
    let up: Value = serde_json::from_str(&line.text).unwrap();
    let ssh = up["tunnel"]["sshPid"].as_u64().unwrap();
    let local = up["tunnel"]["localPort"].as_u64().unwrap();
    let url = format!("ws://127.0.0.1:{local}");
    clawgate(&home, &["health", "--url", &url, "--token", TOKEN])
        .await
        .assert_success();

    std::process::Command::new("kill")
        .args(["-KILL", &ssh.to_string()])
        .status()
        .unwrap();
    let down = fg
        .wait_for_line(|l| l.starts_with("{\"event\":\"down\""), deadline())
        .await
        .expect("down event");
    assert!(down.text.contains("retryInMs"), "{}", down.text);
    fg.wait_for_line(|l| l.starts_with("{\"event\":\"up\""), deadline())
        .await
        .expect("up again");
    clawgate(&home, &["health", "--url", &url, "--token", TOKEN])
        .await
        .assert_success();

    fg.signal("TERM");
    fg.wait_for_line(|l| l.starts_with("{\"event\":\"stopped\""), deadline())
        .await
        .expect("stopped event");
    let status = fg.wait_timeout(Duration::from_secs(10)).await;
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "{}",
        fg.transcript()
    );
    assert_eq!(status_json(&home).await["tunnels"], json!([]));
}

/// `clawgate gateway probe <args>` in `home`, checking host keys against `known_hosts`.
async fn probe(home: &IsolatedHome, known_hosts: &std::path::Path, args: &[&str]) -> Output {
    bin()
        .cli()
        .in_home(home)
        .args(["gateway", "probe"])
        .args(args)
        .env_remove("SSH_AUTH_SOCK")
        .env(
            "CLAWGATE_SSH_KNOWN_HOSTS",
            known_hosts.display().to_string(),
        )
        .timeout(Duration::from_secs(60))
        .run()
        .await
}

/// Running ssh clients whose command line names this SSH port (the probe's tunnels).
fn ssh_clients_to(ssh_port: u16) -> Vec<String> {
    let port = ssh_port.to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| {
            c.split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
        })
        .filter(|argv| {
            argv.first().is_some_and(|a| a.ends_with("/ssh"))
                && argv.iter().any(|a| a == "-L")
                && argv.windows(2).any(|w| w[0] == "-p" && w[1] == port)
        })
        .map(|argv| argv.join(" "))
        .collect()
}

#[tokio::test]
async fn gateway_probe_through_a_one_shot_ssh_tunnel() {
    let sshd = Sshd::start().await.unwrap();
    let gw = gateway().await;
    let home = home();
    // Nothing listens on this machine's gateway port: only the tunnel reaches a gateway.
    // The SSH target, identity and remote port come from the config.
    home.write_config(&json!({"gateway": {"port": free_port(), "remote": {
        "sshTarget": format!("{}:{}", sshd.target(), sshd.port()),
        "sshIdentity": sshd.client_key(),
        "remotePort": gw.port(),
        "token": TOKEN,
    }}}));
    let out = probe(
        &home,
        &sshd.known_hosts(),
        &["--json", "--device-auth", "always"],
    )
    .await;
    out.assert_success();
    let v = out.json();
    assert_eq!(v["ok"], true, "{out}");
    assert_eq!(v["primaryTargetId"], "sshTunnel", "{out}");
    assert!(v["server"]["version"].is_string(), "{out}");
    assert_eq!(v["calls"]["health"]["ok"], true, "{out}");
    let tunnel = &v["targets"][0];
    assert_eq!(tunnel["kind"], "sshTunnel", "{out}");
    assert_eq!(tunnel["connect"]["ok"], true, "{out}");
    assert_eq!(
        tunnel["tunnel"]["target"],
        format!("{}:{}", sshd.target(), sshd.port()),
        "{out}"
    );
    assert_eq!(tunnel["tunnel"]["remotePort"], gw.port(), "{out}");
    // The gateway's port is taken here (the gateway itself): another local port.
    let local = tunnel["tunnel"]["localPort"].as_u64().unwrap();
    assert_ne!(local, u64::from(gw.port()), "{out}");
    assert_eq!(v["url"], format!("ws://127.0.0.1:{local}"), "{out}");
    // The direct probe ran too, and failed.
    assert_eq!(v["targets"][1]["kind"], "localLoopback", "{out}");
    assert_eq!(v["targets"][1]["connect"]["ok"], false, "{out}");
    // The tunnel is gone, and the device token the gateway issued through it was not
    // kept for its passing local port.
    let pid = tunnel["tunnel"]["pid"].as_u64().unwrap();
    assert!(!alive(pid), "ssh {pid} still running");
    assert_eq!(ssh_clients_to(sshd.port()), Vec::<String>::new());
    let tokens = std::fs::read_to_string(home.state_dir().join("clawgate/device-tokens.json"))
        .unwrap_or_default();
    assert!(!tokens.contains(&format!("127.0.0.1:{local}")), "{tokens}");

    // --ssh on the command line, human output: the report is the tunnel's, every target listed.
    home.write_config(&json!({"gateway": {"port": free_port()}}));
    let target = format!("{}:{}", sshd.target(), sshd.port());
    let port = gw.port().to_string();
    let key = sshd.client_key().display().to_string();
    let ssh = ["--ssh", &target, "--ssh-identity", &key, "--token", TOKEN];
    let direct = format!("ws://127.0.0.1:{}", free_port());
    let out = probe(
        &home,
        &sshd.known_hosts(),
        &[&ssh[..], &["--url", &direct]].concat(),
    )
    .await;
    // --url keeps the config's port for the far end: nothing listens there.
    out.assert_code(3);
    assert!(out.stderr.contains("through the SSH tunnel"), "{out}");
    let out = probe(
        &home,
        &sshd.known_hosts(),
        &[&ssh[..], &["--port", &port]].concat(),
    )
    .await;
    out.assert_success();
    for needle in [
        "through the probe's SSH tunnel to",
        "Reachable: yes",
        "Targets:",
        "ssh tunnel",
    ] {
        assert!(out.stdout.contains(needle), "{needle}\n{out}");
    }
    assert_eq!(ssh_clients_to(sshd.port()), Vec::<String>::new());
}

#[tokio::test]
async fn a_probe_tunnel_that_fails_is_a_warning_with_ssh_s_words() {
    let sshd = Sshd::start().await.unwrap();
    let gw = gateway().await;
    let home = home();
    let target = format!("{}:{}", sshd.target(), sshd.port());
    let key = sshd.client_key().display().to_string();
    let other = sshd.other_key().display().to_string();
    let port = gw.port().to_string();
    let direct = |identity: &str| {
        [
            "--ssh",
            &target,
            "--ssh-identity",
            identity,
            "--port",
            &port,
            "--token",
            TOKEN,
            "--json",
        ]
        .map(str::to_owned)
    };

    // An unknown host key: the direct probe (the gateway on this machine) still answers.
    let out = probe(&home, &sshd.empty_known_hosts(), &strs(&direct(&key))).await;
    out.assert_success();
    let v = out.json();
    let w = &v["warnings"][0];
    assert_eq!(w["code"], "ssh_tunnel_failed", "{out}");
    assert_eq!(w["kind"], "host_key_unknown", "{out}");
    let message = w["message"].as_str().unwrap();
    assert!(message.starts_with("SSH tunnel failed: "), "{out}");
    assert!(message.contains("Host key verification failed"), "{out}");
    assert_eq!(v["primaryTargetId"], "localLoopback", "{out}");
    assert_eq!(v["targets"].as_array().unwrap().len(), 1, "{out}");
    assert_eq!(ssh_clients_to(sshd.port()), Vec::<String>::new());

    // A key the server refuses, nothing reachable directly: exit 3, the warning on stderr.
    let closed = free_port().to_string();
    let args = [
        "--ssh",
        &target,
        "--ssh-identity",
        &other,
        "--port",
        &closed,
        "--token",
        TOKEN,
    ];
    let out = probe(&home, &sshd.known_hosts(), &args).await;
    out.assert_code(3);
    assert!(out.stderr.contains("warning: SSH tunnel failed:"), "{out}");
    assert!(out.stderr.contains("Permission denied"), "{out}");
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let out = probe(&home, &sshd.known_hosts(), &json_args).await;
    out.assert_code(3);
    let v = out.json();
    assert_eq!(v["warnings"][0]["kind"], "auth_failed", "{out}");
    assert_eq!(v["targets"][0]["kind"], "localLoopback", "{out}");
    assert_eq!(ssh_clients_to(sshd.port()), Vec::<String>::new());

    // A --ssh that cannot be a target is a usage error; --ssh-auto alone says why it
    // found nothing.
    let out = probe(&home, &sshd.known_hosts(), &["--ssh=-oProxyCommand=x"]).await;
    out.assert_code(2);
    assert!(out.stderr.contains("--ssh"), "{out}");
    let out = probe(
        &home,
        &sshd.known_hosts(),
        &["--ssh-auto", "--port", &port, "--token", TOKEN, "--json"],
    )
    .await;
    out.assert_success();
    assert_eq!(
        out.json()["warnings"][0]["code"],
        "ssh_auto_unavailable",
        "{out}"
    );
}
