//! `clawgate gateway install|uninstall|start|stop|restart` and the service part of
//! `gateway status`, as OpenClaw 2026.9.6 manages its gateway on Linux: the unit file byte
//! for byte, the systemctl calls in order, what status reads from `systemctl show`, the
//! answer when systemd user services are unavailable, and `--require-rpc`.
//!
//! There is no user systemd in the test sandbox: each test puts a fake `systemctl` (and
//! `loginctl`) first on `PATH`, a shell script that records its arguments and answers the
//! way systemd 252 does.

use clawgate_testkit::fake_gateway::{FakeConfig, FakeGateway};
use clawgate_testkit::{ClawgateBin, IsolatedHome, Output, free_port};
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

const UNIT: &str = "openclaw-gateway.service";
const TOKEN: &str = "service-test-token";

fn bin() -> ClawgateBin {
    ClawgateBin::new(env!("CARGO_BIN_EXE_clawgate"))
}

/// The binary's path as the unit names it: the running executable, symlinks resolved.
fn exe() -> String {
    std::fs::canonicalize(env!("CARGO_BIN_EXE_clawgate"))
        .unwrap()
        .display()
        .to_string()
}

/// The fake systemctl. Behaviour switches are files next to it: `enabled` (is-enabled),
/// `show` (the `show` output; default an inactive loaded unit), `fail-<verb>` (that verb
/// fails, printing the file's text on stderr).
const FAKE_SYSTEMCTL: &str = r#"#!/bin/sh
d='@DIR@'
printf '%s\n' "$*" >> "$d/systemctl.argv"
[ "$1" = --user ] || { echo "fake systemctl: expected --user first: $*" >&2; exit 64; }
if [ -e "$d/fail-$2" ]; then cat "$d/fail-$2" >&2; exit 1; fi
case "$2" in
status) echo "● host"; echo "    State: running" ;;
is-enabled)
    if [ -e "$d/enabled" ]; then echo enabled; else echo disabled; exit 1; fi ;;
enable)
    : > "$d/enabled"
    echo "Created symlink $HOME/.config/systemd/user/default.target.wants/$3 → $HOME/.config/systemd/user/$3." >&2 ;;
disable)
    if [ ! -e "$HOME/.config/systemd/user/$4" ]; then
        echo "Failed to disable unit: Unit file $4 does not exist." >&2; exit 1
    fi
    rm -f "$d/enabled" ;;
show)
    if [ -e "$d/show" ]; then cat "$d/show"; else
        printf 'Id=%s\nLoadState=loaded\nActiveState=inactive\nSubState=dead\nResult=success\nNRestarts=0\nMainPID=0\nExecMainStatus=0\nExecMainCode=0\n' "$3"
    fi ;;
esac
"#;

const FAKE_LOGINCTL: &str = r#"#!/bin/sh
printf '%s\n' "$*" >> '@DIR@/loginctl.argv'
echo "Linger=no"
"#;

/// A home with a config file, and a directory of fake tools.
struct Setup {
    home: IsolatedHome,
    fakes: PathBuf,
}

impl Setup {
    fn new(config: Value) -> Self {
        let home = IsolatedHome::new();
        home.write_config(&config);
        let fakes = home.root().join("fakebin");
        std::fs::create_dir(&fakes).unwrap();
        for (name, script) in [("systemctl", FAKE_SYSTEMCTL), ("loginctl", FAKE_LOGINCTL)] {
            let path = fakes.join(name);
            std::fs::write(&path, script.replace("@DIR@", fakes.to_str().unwrap())).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Setup { home, fakes }
    }

    fn unit_path(&self, unit: &str) -> PathBuf {
        self.home.home().join(".config/systemd/user").join(unit)
    }

    /// `PATH` with the fakes first.
    fn path(&self) -> String {
        format!(
            "{}:{}",
            self.fakes.display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    /// `clawgate <args>` with the fakes on `PATH`.
    async fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = bin()
            .cli()
            .in_home(&self.home)
            .args(args)
            .env("PATH", self.path())
            .env("USER", "tester")
            .env_remove("CLAWGATE_SYSTEMCTL")
            .env_remove("CLAWGATE_PROFILE");
        for (k, v) in env {
            cmd = cmd.env(k, v);
        }
        cmd.run().await
    }

    /// The systemctl command lines since the last call, and forgets them.
    fn systemctl_calls(&self) -> Vec<String> {
        let log = self.fakes.join("systemctl.argv");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let _ = std::fs::remove_file(&log);
        text.lines().map(str::to_owned).collect()
    }

    fn set(&self, switch: &str, contents: &str) {
        std::fs::write(self.fakes.join(switch), contents).unwrap();
    }

    fn unset(&self, switch: &str) {
        let _ = std::fs::remove_file(self.fakes.join(switch));
    }
}

fn user(args: &[&str]) -> String {
    format!("--user {}", args.join(" "))
}

/// OpenClaw's install sequence: usable at all, load the new unit, enable, (re)start, verify.
fn install_calls(unit: &str) -> Vec<String> {
    vec![
        user(&["status"]),
        user(&["daemon-reload"]),
        user(&["enable", unit]),
        user(&["restart", unit]),
        user(&["is-enabled", unit]),
    ]
}

/// What OpenClaw writes for the gateway on `port` (`buildSystemdUnit`), with this binary.
fn expected_unit(s: &Setup, port: u16) -> String {
    format!(
        "[Unit]
Description=OpenClaw Gateway
After=network-online.target
Wants=network-online.target
StartLimitBurst=10
StartLimitIntervalSec=300

[Service]
ExecStart={exe} gateway run --port {port}
Restart=always
RestartSec=5
RestartPreventExitStatus=78
TimeoutStopSec=330
TimeoutStartSec=30
SuccessExitStatus=0 143
OOMPolicy=continue
KillMode=mixed
Environment=HOME={home}
Environment=OPENCLAW_STATE_DIR={state}
Environment=OPENCLAW_CONFIG_PATH={config}
Environment=OPENCLAW_GATEWAY_PORT={port}
Environment=OPENCLAW_SYSTEMD_UNIT=openclaw-gateway.service
Environment=OPENCLAW_SERVICE_MARKER=openclaw
Environment=OPENCLAW_SERVICE_KIND=gateway

[Install]
WantedBy=default.target
",
        exe = exe(),
        home = s.home.home().display(),
        state = s.home.state_dir().display(),
        config = s.home.config_path().display(),
    )
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn install_writes_openclaws_unit_then_reloads_enables_and_restarts() {
    let s = Setup::new(json!({}));
    let out = s.run(&["gateway", "install", "--port", "28789"], &[]).await;
    out.assert_success();
    let path = s.unit_path(UNIT);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        expected_unit(&s, 28789)
    );
    assert_eq!(mode(&path), 0o644);
    assert_eq!(s.systemctl_calls(), install_calls(UNIT));
    for needle in [
        format!("Installed systemd service: {}", path.display()),
        "Gateway service installed.".to_owned(),
        // Lingering is off: the user is told how to keep the service past logout.
        "Systemd lingering is disabled for tester".to_owned(),
        "Run: sudo loginctl enable-linger tester".to_owned(),
    ] {
        assert!(out.stdout.contains(&needle), "{needle}\n{out}");
    }
    assert_eq!(
        std::fs::read_to_string(s.fakes.join("loginctl.argv")).unwrap(),
        "show-user tester -p Linger\n"
    );

    // Without --port, the gateway's own port: gateway.port from the config.
    let s = Setup::new(json!({"gateway": {"port": 23999}}));
    s.run(&["gateway", "install"], &[]).await.assert_success();
    assert_eq!(
        std::fs::read_to_string(s.unit_path(UNIT)).unwrap(),
        expected_unit(&s, 23999)
    );
}

#[tokio::test]
async fn install_keeps_an_existing_unit_unless_forced() {
    let s = Setup::new(json!({}));
    let path = s.unit_path(UNIT);
    let hand_written = "[Unit]\nDescription=hand-written\n";
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, hand_written).unwrap();

    // OpenClaw's answer to a second install: success, nothing touched, how to redo it.
    let out = s.run(&["gateway", "install", "--port", "28789"], &[]).await;
    out.assert_success();
    assert!(out.stdout.contains("already installed"), "{out}");
    assert!(out.stdout.contains("differs"), "{out}");
    assert!(
        out.stdout
            .contains("Reinstall with: clawgate gateway install --force"),
        "{out}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), hand_written);
    assert_eq!(
        s.systemctl_calls(),
        [user(&["status"]), user(&["is-enabled", UNIT])]
    );

    let out = s
        .run(
            &["gateway", "install", "--port", "28789", "--force", "--json"],
            &[],
        )
        .await;
    out.assert_success();
    let v = out.json();
    assert_eq!(
        (v["action"].clone(), v["ok"].clone(), v["result"].clone()),
        (json!("install"), json!(true), json!("installed"))
    );
    assert_eq!(
        v["service"],
        json!({"label": "systemd", "unit": UNIT, "unitPath": path, "loaded": true,
            "loadedText": "enabled", "notLoadedText": "disabled"})
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        expected_unit(&s, 28789)
    );
    let backup = s.unit_path(&format!("{UNIT}.bak"));
    assert_eq!(std::fs::read_to_string(&backup).unwrap(), hand_written);
    assert_eq!(s.systemctl_calls(), install_calls(UNIT));

    let out = s.run(&["gateway", "install", "--port", "28789"], &[]).await;
    out.assert_success();
    assert!(out.stdout.contains("unit up to date, enabled"), "{out}");
}

#[tokio::test]
async fn a_profile_has_its_own_unit() {
    let s = Setup::new(json!({"gateway": {"port": 24100}}));
    let profile = [("OPENCLAW_PROFILE", "work")];
    s.run(&["gateway", "install"], &profile)
        .await
        .assert_success();
    let unit = "openclaw-gateway-work.service";
    let text = std::fs::read_to_string(s.unit_path(unit)).unwrap();
    for line in [
        "Description=OpenClaw Gateway (profile: work)\n",
        "Environment=OPENCLAW_PROFILE=work\n",
        "Environment=OPENCLAW_SYSTEMD_UNIT=openclaw-gateway-work.service\n",
        "Environment=OPENCLAW_GATEWAY_PORT=24100\n",
        &format!("ExecStart={} gateway run --port 24100\n", exe()),
    ] {
        assert!(text.contains(line), "{line}\n{text}");
    }
    assert!(!s.unit_path(UNIT).exists());
    assert_eq!(s.systemctl_calls(), install_calls(unit));

    // The default profile is the unnamed unit.
    let out = s
        .run(&["gateway", "start"], &[("OPENCLAW_PROFILE", "default")])
        .await;
    out.assert_code(1);
    assert!(out.stderr.contains(UNIT), "{out}");
}

#[tokio::test]
async fn start_stop_restart_and_uninstall_call_systemctl_in_openclaws_order() {
    let s = Setup::new(json!({}));
    s.run(&["gateway", "install", "--port", "28789"], &[])
        .await
        .assert_success();
    s.systemctl_calls();

    let out = s.run(&["gateway", "start"], &[]).await;
    out.assert_success();
    assert_eq!(out.stdout, format!("Started systemd service: {UNIT}\n"));
    assert_eq!(
        s.systemctl_calls(),
        [
            user(&["status"]),
            user(&["reset-failed", UNIT]),
            user(&["start", UNIT])
        ]
    );

    let out = s.run(&["gateway", "stop"], &[]).await;
    out.assert_success();
    assert_eq!(out.stdout, format!("Stopped systemd service: {UNIT}\n"));
    assert_eq!(
        s.systemctl_calls(),
        [user(&["status"]), user(&["stop", UNIT])]
    );

    let out = s.run(&["gateway", "restart", "--json"], &[]).await;
    out.assert_success();
    let v = out.json();
    assert_eq!(
        (
            v["action"].clone(),
            v["result"].clone(),
            v["service"]["loaded"].clone()
        ),
        (json!("restart"), json!("restarted"), json!(true))
    );
    assert_eq!(
        s.systemctl_calls(),
        [
            user(&["status"]),
            user(&["reset-failed", UNIT]),
            user(&["restart", UNIT]),
            user(&["is-enabled", UNIT]),
        ]
    );

    // A failing step: systemctl's own words, exit 1.
    s.set(
        "fail-restart",
        "Job for openclaw-gateway.service failed because the control process exited with error code.",
    );
    let out = s.run(&["gateway", "restart"], &[]).await;
    out.assert_code(1);
    assert!(
        out.stderr
            .contains("error: gateway restart failed: systemctl restart failed: Job for openclaw-gateway.service failed"),
        "{out}"
    );
    s.unset("fail-restart");
    s.systemctl_calls();

    let out = s.run(&["gateway", "uninstall"], &[]).await;
    out.assert_success();
    let path = s.unit_path(UNIT);
    assert_eq!(
        out.stdout,
        format!("Removed systemd service: {}\n", path.display())
    );
    assert!(!path.exists());
    assert_eq!(
        s.systemctl_calls(),
        [
            user(&["status"]),
            user(&["disable", "--now", UNIT]),
            user(&["daemon-reload"])
        ]
    );

    // Nothing installed: uninstall and stop succeed saying so (systemd's "does not exist"
    // is not a failure); start and restart fail with the fix.
    let out = s.run(&["gateway", "uninstall"], &[]).await;
    out.assert_success();
    assert_eq!(
        out.stdout,
        format!("Systemd service not found at {}\n", path.display())
    );
    assert_eq!(
        s.systemctl_calls(),
        [user(&["status"]), user(&["disable", "--now", UNIT])]
    );
    let out = s.run(&["gateway", "stop"], &[]).await;
    out.assert_success();
    assert_eq!(out.stdout, "Gateway service not installed.\n");
    for action in ["start", "restart"] {
        let out = s.run(&["gateway", action], &[]).await;
        out.assert_code(1);
        assert!(out.stderr.contains("is not installed"), "{out}");
        assert!(out.stderr.contains("`clawgate gateway install`"), "{out}");
    }
    assert_eq!(s.systemctl_calls(), vec![user(&["status"]); 3]);
}

#[tokio::test]
async fn status_reports_the_service_from_systemctl_show() {
    let s = Setup::new(json!({}));
    let port = free_port();
    let port_env = [("CLAWGATE_GATEWAY_PORT", port.to_string())];
    let port_env: Vec<(&str, &str)> = port_env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    // Nothing installed: said without asking systemd.
    let out = s.run(&["gateway", "status", "--json"], &port_env).await;
    out.assert_code(3);
    let v = out.json();
    assert_eq!(v["reachable"], false);
    assert_eq!(v["service"]["installed"], false);
    assert_eq!(
        v["service"]["runtime"],
        json!({"status": "stopped", "missingUnit": true})
    );
    assert!(s.systemctl_calls().is_empty());

    s.run(&["gateway", "install", "--port", &port.to_string()], &[])
        .await
        .assert_success();
    s.systemctl_calls();
    s.set(
        "show",
        "Id=openclaw-gateway.service\nLoadState=loaded\nActiveState=active\nSubState=running\nResult=success\nNRestarts=2\nMainPID=4242\nExecMainStatus=0\nExecMainCode=0\n",
    );
    let out = s.run(&["gateway", "status", "--json"], &port_env).await;
    out.assert_code(3);
    let v = out.json();
    let path = s.unit_path(UNIT);
    assert_eq!(
        v["service"],
        json!({
            "label": "systemd", "unit": UNIT, "unitPath": path, "installed": true,
            "loaded": true, "loadedText": "enabled", "notLoadedText": "disabled",
            "command": {"execStart": format!("{} gateway run --port {port}", exe()), "sourcePath": path},
            "runtime": {"status": "running", "state": "active", "subState": "running", "pid": 4242,
                "result": "success", "nRestarts": "2"},
        })
    );
    assert_eq!(
        s.systemctl_calls(),
        [
            user(&["is-enabled", UNIT]),
            user(&[
                "show",
                UNIT,
                "--no-page",
                "--property",
                "Id,LoadState,ActiveState,SubState,Result,NRestarts,MainPID,ExecMainStatus,ExecMainCode"
            ]),
        ]
    );

    let out = s.run(&["gateway", "status"], &port_env).await;
    out.assert_code(3);
    for line in [
        "Service: systemd (enabled)\n".to_owned(),
        format!("Service file: {}\n", path.display()),
        format!("Command: {} gateway run --port {port}\n", exe()),
        "Runtime: running (pid 4242, state active, sub running)\n".to_owned(),
    ] {
        assert!(out.stdout.contains(&line), "{line}\n{out}");
    }

    // Crashed on a refused config: systemd gave up (RestartPreventExitStatus=78).
    s.unset("enabled");
    s.set(
        "show",
        "Id=openclaw-gateway.service\nLoadState=loaded\nActiveState=failed\nSubState=failed\nResult=exit-code\nNRestarts=0\nMainPID=0\nExecMainStatus=78\nExecMainCode=1\n",
    );
    let out = s.run(&["gateway", "status"], &port_env).await;
    for line in [
        "Service: systemd (disabled)\n",
        "Runtime: stopped (state failed, sub failed, last exit 78, reason exited)\n",
    ] {
        assert!(out.stdout.contains(line), "{line}\n{out}");
    }

    // The user manager cannot be reached: the runtime is unknown, and why.
    s.set("fail-show", "Failed to connect to bus: No medium found");
    s.set(
        "fail-is-enabled",
        "Failed to connect to bus: No medium found",
    );
    let out = s.run(&["gateway", "status", "--json"], &port_env).await;
    let v = out.json();
    assert_eq!(v["service"]["loaded"], Value::Null);
    assert_eq!(
        v["service"]["runtime"],
        json!({"status": "unknown",
            "detail": "systemctl --user unavailable: Failed to connect to bus: No medium found"})
    );

    // A target that is not this machine's gateway: no service section.
    let url = format!("ws://127.0.0.1:{port}");
    let out = s
        .run(
            &[
                "gateway", "status", "--json", "--url", &url, "--token", TOKEN,
            ],
            &[],
        )
        .await;
    out.assert_code(3);
    assert!(out.json().get("service").is_none(), "{out}");
}

#[tokio::test]
async fn without_systemctl_every_service_command_says_how_to_run_the_gateway() {
    let s = Setup::new(json!({}));
    let empty = s.home.root().join("empty-path");
    std::fs::create_dir(&empty).unwrap();
    for action in ["install", "uninstall", "start", "stop", "restart"] {
        let out = bin()
            .cli()
            .in_home(&s.home)
            .args(["gateway", action])
            .env("PATH", &empty)
            .env_remove("CLAWGATE_SYSTEMCTL")
            .run()
            .await;
        out.assert_code(1);
        for needle in [
            format!("error: gateway {action} failed: systemctl not available; systemd user services are required on Linux"),
            "hint: systemd user services are unavailable; install/enable systemd or run the gateway under your supervisor (`clawgate gateway run` runs it in the foreground).".to_owned(),
            "hint: If you're in a container, run the gateway in the foreground instead: `clawgate gateway run`.".to_owned(),
        ] {
            assert!(out.stderr.contains(&needle), "{needle}\n{out}");
        }
        assert!(out.stdout.is_empty(), "{out}");
    }
    assert!(!s.unit_path(UNIT).exists());

    // CLAWGATE_SYSTEMCTL names the binary; one that is not there is the same answer.
    let out = s
        .run(
            &["gateway", "install", "--json"],
            &[("CLAWGATE_SYSTEMCTL", "/nonexistent/systemctl")],
        )
        .await;
    out.assert_code(1);
    let v = out.json();
    assert_eq!(
        (v["action"].clone(), v["ok"].clone()),
        (json!("install"), json!(false))
    );
    let error = v["error"].as_str().unwrap();
    assert!(
        error.contains("systemctl not available") && error.contains("/nonexistent/systemctl"),
        "{error}"
    );
    assert!(
        v["hints"].to_string().contains("clawgate gateway run"),
        "{v}"
    );
    assert!(s.systemctl_calls().is_empty());
    assert!(!s.unit_path(UNIT).exists());
}

#[tokio::test]
async fn an_unreachable_user_manager_gets_the_linger_advice() {
    let s = Setup::new(json!({}));
    s.set("fail-status", "Failed to connect to bus: No medium found");
    let out = s.run(&["gateway", "install"], &[]).await;
    out.assert_code(1);
    for needle in [
        "error: gateway install failed: systemctl --user unavailable: Failed to connect to bus: No medium found",
        "hint: On a headless server (SSH/no desktop session): run `sudo loginctl enable-linger $(whoami)`",
        "hint: Also ensure XDG_RUNTIME_DIR is set: `export XDG_RUNTIME_DIR=/run/user/$(id -u)`, then retry.",
    ] {
        assert!(out.stderr.contains(needle), "{needle}\n{out}");
    }
    assert_eq!(s.systemctl_calls(), [user(&["status"])]);
    assert!(!s.unit_path(UNIT).exists());
}

#[tokio::test]
async fn require_rpc_fails_unless_the_gateway_answers_status() {
    let s = Setup::new(json!({}));

    // Nobody listening.
    let port = free_port().to_string();
    let out = s
        .run(
            &["gateway", "status", "--require-rpc"],
            &[("CLAWGATE_GATEWAY_PORT", &port)],
        )
        .await;
    assert_ne!(out.code(), Some(0), "{out}");

    // Connected, but the gateway refuses the call (no operator scope granted).
    let fake = FakeGateway::start_in_thread(FakeConfig {
        token: Some(TOKEN.into()),
        grant_scopes: Some(vec![]),
        ..FakeConfig::default()
    });
    let url = fake.url();
    let status = [
        "gateway", "status", "--json", "--url", &url, "--token", TOKEN,
    ];
    s.run(&status, &[]).await.assert_success();
    let mut required = status.to_vec();
    required.push("--require-rpc");
    let out = s.run(&required, &[]).await;
    assert_ne!(out.code(), Some(0), "{out}");
    let v = out.json();
    assert_eq!(
        (
            v["ok"].clone(),
            v["reachable"].clone(),
            v["rpc"]["ok"].clone()
        ),
        (json!(false), json!(true), json!(false))
    );

    // A real clawgate gateway answers.
    let home = IsolatedHome::new();
    home.write_config(&json!({}));
    let gw = bin()
        .spawn_gateway_in(
            home,
            [
                "gateway", "run", "--port", "0", "--auth", "token", "--token", TOKEN,
            ],
            [("CLAWGATE_LOG", "warn")],
        )
        .await
        .unwrap();
    let port = gw.port().to_string();
    let out = bin()
        .cli()
        .in_home(gw.home())
        .args([
            "gateway",
            "status",
            "--require-rpc",
            "--json",
            "--token",
            TOKEN,
        ])
        .env("CLAWGATE_GATEWAY_PORT", &port)
        .run()
        .await;
    out.assert_success();
    let v = out.json();
    assert_eq!(v["ok"], true, "{v:#}");
    assert_eq!(v["rpc"], json!({"ok": true, "method": "status"}));
    assert_eq!(v["service"]["installed"], false, "{v:#}");
    let out = bin()
        .cli()
        .in_home(gw.home())
        .args(["gateway", "status", "--require-rpc", "--token", TOKEN])
        .env("CLAWGATE_GATEWAY_PORT", &port)
        .run()
        .await;
    out.assert_success();
    assert!(out.stdout.contains("Read probe: ok (status)"), "{out}");
    assert!(
        out.stdout.contains("Service: systemd (not installed"),
        "{out}"
    );
}
