//! Profiles (`--profile`, `--dev`, `OPENCLAW_PROFILE`) and several gateways on one machine,
//! as a user runs them: the profile's state dir, config file and port, what wins over them,
//! bad names, and `gateway probe`'s `multiple_gateways` warning.

use clawgate_testkit::{
    ChildProcess, ClawgateBin, GATEWAY_READY_TIMEOUT, IsolatedHome, Output, READY_MARKER,
    free_port, parse_listening_url,
};
use std::time::{Duration, Instant};

/// The path variables every test home sets, emptied (an empty value counts as unset), so the
/// profile decides where state and config live, as on a user's machine.
const PROFILE_PATHS: [(&str, &str); 2] = [("OPENCLAW_STATE_DIR", ""), ("OPENCLAW_CONFIG_PATH", "")];

fn bin() -> ClawgateBin {
    ClawgateBin::new(env!("CARGO_BIN_EXE_clawgate"))
}

/// `clawgate <args>` run to completion in `home` with [`PROFILE_PATHS`] and `env`.
async fn clawgate(home: &IsolatedHome, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = bin().cli().in_home(home).args(args);
    for (k, v) in PROFILE_PATHS.iter().chain(env) {
        cmd = cmd.env(k, v);
    }
    cmd.run().await
}

/// A gateway started in `home` with [`PROFILE_PATHS`], and the port it listens on.
async fn gateway(home: &IsolatedHome, args: &[&str]) -> (ChildProcess, u16) {
    let mut p = bin().spawn(home, args, PROFILE_PATHS).unwrap();
    let deadline = Instant::now() + GATEWAY_READY_TIMEOUT;
    let line = p
        .wait_for_line(|l| l.contains(READY_MARKER), deadline)
        .await
        .unwrap();
    let url = parse_listening_url(&line.text).unwrap();
    let port = url.rsplit(':').next().unwrap().parse().unwrap();
    (p, port)
}

/// The port of the URL `gateway status --json` resolved (it answers whether or not a
/// gateway listens there).
async fn status_port(home: &IsolatedHome, args: &[&str], env: &[(&str, &str)]) -> u16 {
    let mut all = vec!["gateway", "status", "--json"];
    all.extend(args);
    let out = clawgate(home, &all, env).await;
    let url = out.json()["url"].as_str().unwrap_or_default().to_owned();
    url.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {url:?}: {out}"))
}

fn write_profile_config(home: &IsolatedHome, profile: &str, config: &str) {
    let dir = home.home().join(format!(".openclaw-{profile}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("openclaw.json"), config).unwrap();
}

#[tokio::test]
async fn profile_flag_selects_its_state_dir_and_derived_port() {
    let home = IsolatedHome::new();
    // Profile "rescue" derives port 23532 (OpenClaw's 20000 + FNV-1a % 40000). Binding a
    // fixed port is safe here only because it lies below the ephemeral range every other
    // test's port 0 draws from, and no other test uses this profile.
    let (mut gw, port) = gateway(&home, &["--profile", "rescue", "gateway", "run"]).await;
    assert_eq!(port, 23532, "{}", gw.transcript());
    assert!(home.home().join(".openclaw-rescue/gateway.token").exists());
    assert!(!home.home().join(".openclaw").exists());

    // The CLI of the same profile (the flag after the subcommand works too) finds the port
    // and the token the gateway generated in the profile's state dir.
    let r = clawgate(
        &home,
        &["gateway", "call", "health", "--profile", "rescue"],
        &[],
    )
    .await;
    r.assert_success();
    assert_eq!(r.json()["ok"], true, "{r}");

    // Without the profile: the default gateway's port.
    assert_eq!(status_port(&home, &[], &[]).await, 18789);
    gw.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn profile_config_file_port_wins_over_the_derived_one_and_port_flag_over_both() {
    let home = IsolatedHome::new();
    let config_port = free_port();
    write_profile_config(
        &home,
        "lab",
        &format!("{{gateway: {{port: {config_port}, auth: {{token: 'lab-token'}}}}}}"),
    );
    let (mut gw, port) = gateway(&home, &["gateway", "run", "--profile", "lab"]).await;
    assert_eq!(port, config_port, "{}", gw.transcript());
    // The CLI reads the token from the profile's config file.
    let r = clawgate(
        &home,
        &["--profile", "lab", "gateway", "call", "health"],
        &[],
    )
    .await;
    r.assert_success();
    gw.stop(Duration::from_secs(5)).await;

    let (mut gw, port) = gateway(
        &home,
        &["gateway", "run", "--profile", "lab", "--port", "0"],
    )
    .await;
    assert!(port != config_port && port != 36244, "{port}");
    gw.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn dev_is_the_dev_profile_on_port_19001() {
    let home = IsolatedHome::new();
    // Resolution only: nothing binds 19001 here.
    assert_eq!(status_port(&home, &["--dev"], &[]).await, 19001);
    assert_eq!(status_port(&home, &["--profile", "dev"], &[]).await, 19001);
    // Like OPENCLAW_GATEWAY_PORT=19001: it beats the config file's port, not an explicit env.
    write_profile_config(&home, "dev", "{gateway: {port: 1234}}");
    assert_eq!(status_port(&home, &["--dev"], &[]).await, 19001);
    assert_eq!(
        status_port(&home, &["--dev"], &[("OPENCLAW_GATEWAY_PORT", "4321")]).await,
        4321
    );
    // Hints repeat the profile.
    let out = clawgate(&home, &["--dev", "health"], &[]).await;
    assert!(
        out.stderr
            .contains("start it with `clawgate --profile dev gateway run`"),
        "{out}"
    );
    // The profile named in the environment instead gets its hash port (as in OpenClaw).
    std::fs::remove_dir_all(home.home().join(".openclaw-dev")).unwrap();
    assert_eq!(
        status_port(&home, &[], &[("OPENCLAW_PROFILE", "dev")]).await,
        38556
    );

    // Its state dir is ~/.openclaw-dev; an explicit --port wins over 19001.
    let (mut gw, port) = gateway(&home, &["--dev", "gateway", "run", "--port", "0"]).await;
    assert_ne!(port, 19001);
    assert!(home.home().join(".openclaw-dev/gateway.token").exists());
    gw.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn profile_from_the_environment_and_what_wins_over_it() {
    let home = IsolatedHome::new();
    assert_eq!(
        status_port(&home, &[], &[("OPENCLAW_PROFILE", "work")]).await,
        41984
    );
    // CLAWGATE_PROFILE beats OPENCLAW_PROFILE, and --profile beats both.
    let both = [("OPENCLAW_PROFILE", "work"), ("CLAWGATE_PROFILE", "lab")];
    assert_eq!(status_port(&home, &[], &both).await, 36244);
    assert_eq!(
        status_port(&home, &["--profile", "work"], &both).await,
        41984
    );
    // The profile's config file is read.
    write_profile_config(&home, "work", "{gateway: {port: 2345}}");
    assert_eq!(
        status_port(&home, &[], &[("OPENCLAW_PROFILE", "work")]).await,
        2345
    );
    // An explicit config path (or state dir) wins over the profile's.
    let other = home.root().join("other.json5");
    std::fs::write(&other, "{gateway: {port: 3456}}").unwrap();
    let other = other.display().to_string();
    let env = [
        ("OPENCLAW_PROFILE", "work"),
        ("OPENCLAW_CONFIG_PATH", other.as_str()),
    ];
    assert_eq!(status_port(&home, &[], &env).await, 3456);
    let r = clawgate(
        &home,
        &[
            "gateway",
            "status",
            "--json",
            "--profile",
            "work",
            "--config",
            &other,
        ],
        &[],
    )
    .await;
    assert!(r.stdout.contains(":3456\""), "{r}");
    let state = home.root().join("state").display().to_string();
    let env = [
        ("OPENCLAW_PROFILE", "work"),
        ("OPENCLAW_STATE_DIR", state.as_str()),
    ];
    assert_eq!(status_port(&home, &[], &env).await, 41984);
}

#[tokio::test]
async fn bad_profile_names_are_usage_errors_that_name_the_rule() {
    let home = IsolatedHome::new();
    let r = clawgate(&home, &["--profile", "a b", "health"], &[]).await;
    r.assert_code(2);
    assert!(r.stderr.contains("Invalid --profile \"a b\""), "{r}");
    assert!(
        r.stderr.contains("use letters, numbers, \"_\", \"-\" only"),
        "{r}"
    );
    let r = clawgate(&home, &["health"], &[("OPENCLAW_PROFILE", "../x")]).await;
    r.assert_code(2);
    assert!(
        r.stderr
            .contains("OPENCLAW_PROFILE is not a valid profile name"),
        "{r}"
    );
    assert!(r.stderr.contains("fix or unset OPENCLAW_PROFILE"), "{r}");
    let r = clawgate(
        &home,
        &["--dev", "gateway", "run", "--profile", "work"],
        &[],
    )
    .await;
    r.assert_code(2);
    assert!(
        r.stderr.contains("Cannot combine --dev with --profile"),
        "{r}"
    );
    assert!(!home.home().join(".openclaw-work").exists());
}

#[tokio::test]
async fn probe_warns_multiple_gateways_when_two_answer() {
    let token = "shared-token";
    let run_args = ["gateway", "run", "--port", "0", "--token", token];
    let (a_home, b_home, home) = (
        IsolatedHome::new(),
        IsolatedHome::new(),
        IsolatedHome::new(),
    );
    let (_a, a_port) = gateway(&a_home, &run_args).await;
    let (mut b, b_port) = gateway(&b_home, &run_args).await;
    let a_url = format!("ws://127.0.0.1:{a_port}");
    let b_port = b_port.to_string();
    let probe = async |extra: &[&str]| {
        let mut args = vec!["gateway", "probe", "--url", &a_url, "--token", token];
        args.extend(extra);
        clawgate(&home, &args, &[]).await
    };

    // --url names one gateway, this machine's (--port) is another: both answer.
    let r = probe(&["--json", "--port", &b_port]).await;
    r.assert_success();
    let v = r.json();
    let warning = v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["code"] == "multiple_gateways")
        .unwrap_or_else(|| panic!("{r}"));
    assert!(
        warning["message"]
            .as_str()
            .unwrap()
            .starts_with("Unconventional setup: multiple reachable gateway identities detected."),
        "{r}"
    );
    assert_eq!(
        warning["targetIds"],
        serde_json::json!(["explicit", "localLoopback"])
    );
    assert_eq!(v["primaryTargetId"], "explicit");
    assert_eq!(v["targets"].as_array().unwrap().len(), 2, "{r}");
    let r = probe(&["--port", &b_port]).await;
    r.assert_success();
    assert!(
        r.stdout
            .contains("Warning: Unconventional setup: multiple reachable gateway identities"),
        "{r}"
    );

    // The same gateway twice is one target; one gateway answering is no warning.
    let r = probe(&["--json", "--port", &a_port.to_string()]).await;
    assert_eq!(r.json()["targets"].as_array().unwrap().len(), 1, "{r}");
    assert!(!r.stdout.contains("multiple_gateways"), "{r}");
    b.stop(Duration::from_secs(5)).await;
    let r = probe(&["--json", "--port", &b_port]).await;
    r.assert_success();
    assert_eq!(r.json()["targets"].as_array().unwrap().len(), 2, "{r}");
    assert!(!r.stdout.contains("multiple_gateways"), "{r}");
}
