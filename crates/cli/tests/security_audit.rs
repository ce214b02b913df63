//! `clawgate security audit` run as a user would: OpenClaw's check ids, severities and texts,
//! its JSON shape and text layout, `--fix`, `--deep`, the exit codes, the errors for bad
//! input, and the real OpenClaw 2026.9.6 `security audit --json` reporting the same findings
//! on the same config (run through ./scripts/test, in a loopback-only network namespace).

use clawgate_testkit::{ClawgateBin, IsolatedHome, OpenClaw, Output, Value, free_port, json};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

const TOKEN: &str = "audit-token-0123456789abcdef0123";

fn clawgate() -> ClawgateBin {
    ClawgateBin::new(env!("CARGO_BIN_EXE_clawgate"))
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A home with `config` and a private state dir and config file, so only the config's own
/// findings show.
fn private_home(config: Value) -> IsolatedHome {
    let home = IsolatedHome::new();
    home.write_config(&config);
    chmod(&home.state_dir(), 0o700);
    chmod(&home.config_path(), 0o600);
    home
}

async fn audit(home: &IsolatedHome, args: &[&str]) -> Output {
    clawgate()
        .cli()
        .in_home(home)
        .args(["security", "audit"])
        .args(args)
        .run()
        .await
}

/// `(checkId, severity)` of each finding in `list`.
fn ids(list: &Value) -> Vec<(String, String)> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|f| {
            (
                f["checkId"].as_str().unwrap().to_owned(),
                f["severity"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(id, s)| ((*id).to_owned(), (*s).to_owned()))
        .collect()
}

#[tokio::test]
async fn json_report_of_an_exposed_gateway() {
    let home = private_home(json!({
        "gateway": {"bind": "lan", "auth": {"token": "short"},
            "controlUi": {"allowedOrigins": ["*"]}, "allowRealIpFallback": true},
        "discovery": {"mdns": {"mode": "full"}}
    }));
    let out = audit(&home, &["--json"]).await;
    // Findings are the report, not a failure.
    out.assert_success();
    let v = out.json();
    assert_eq!(
        ids(&v["findings"]),
        pairs(&[
            ("gateway.control_ui.allowed_origins_wildcard", "critical"),
            ("gateway.real_ip_fallback_enabled", "critical"),
            ("discovery.mdns_full_mode", "critical"),
            ("gateway.token_too_short", "warn"),
            ("gateway.auth_no_rate_limit", "warn"),
        ]),
        "{out}"
    );
    assert_eq!(v["summary"], json!({"critical": 3, "warn": 2, "info": 0}));
    assert_eq!(v["secretDiagnostics"], json!([]));
    assert!(v["ts"].as_u64().unwrap() > 1_700_000_000_000, "{v}");
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["ts", "summary", "findings", "secretDiagnostics"]);
    assert_eq!(
        v["findings"][3],
        json!({"checkId": "gateway.token_too_short", "severity": "warn",
            "title": "Gateway token looks short",
            "detail": "gateway auth token is 5 chars; prefer a long random token."})
    );
    assert_eq!(
        v["findings"][4]["remediation"],
        "Set gateway.auth.rateLimit (e.g. { maxAttempts: 10, windowMs: 60000, lockoutMs: 300000 })."
    );
}

#[tokio::test]
async fn text_report_layout() {
    let home = private_home(json!({"gateway": {"tailscale": {"mode": "serve"}}}));
    let out = audit(&home, &[]).await;
    out.assert_success();
    assert_eq!(
        out.stdout,
        "clawgate security audit\n\
         Summary: 0 critical · 1 warn · 1 info\n\
         Run deeper: clawgate security audit --deep\n\
         \n\
         WARN\n\
         gateway.trusted_proxies_missing Reverse proxy headers are not trusted\n  \
         gateway.bind is loopback and gateway.trustedProxies is empty. If you expose the Control UI through a reverse proxy, configure trusted proxies so local-client checks cannot be spoofed.\n  \
         Fix: Set gateway.trustedProxies to your proxy IPs or keep the Control UI local-only.\n\
         \n\
         INFO\n\
         gateway.tailscale_serve Tailscale Serve exposure enabled\n  \
         gateway.tailscale.mode=\"serve\" exposes the Gateway to your tailnet (loopback behind Tailscale).\n",
        "{out}"
    );
}

#[tokio::test]
async fn suppressions_move_findings_to_suppressed_findings() {
    let home = private_home(json!({
        "gateway": {"auth": {"token": TOKEN}},
        "security": {"audit": {"suppressions": [
            {"checkId": "gateway.trusted_proxies_missing", "detailIncludes": "REVERSE PROXY",
                "reason": "no proxy in front"},
            {"checkId": "gateway.loopback_no_auth"}
        ]}}
    }));
    let out = audit(&home, &["--json"]).await;
    out.assert_success();
    let v = out.json();
    assert_eq!(
        ids(&v["findings"]),
        pairs(&[
            ("config.insecure_or_dangerous_flags", "warn"),
            ("security.audit.suppressions.active", "info"),
        ]),
        "{out}"
    );
    assert_eq!(
        v["findings"][0]["detail"],
        "Detected enabled flag: security.audit.suppressions configured (2)."
    );
    assert_eq!(
        v["findings"][1]["detail"],
        "security.audit.suppressions has 2 configured suppression(s); 1 finding(s) moved to suppressedFindings."
    );
    assert_eq!(
        ids(&v["suppressedFindings"]),
        pairs(&[("gateway.trusted_proxies_missing", "warn")])
    );
    assert_eq!(
        v["suppressedFindings"][0]["suppression"],
        json!({"reason": "no proxy in front"})
    );
    let text = audit(&home, &[]).await;
    assert!(
        text.stdout.contains("\nSuppressed: 1 configured\n"),
        "{text}"
    );
}

#[tokio::test]
async fn loose_permissions_are_found_and_fixed() {
    let home = IsolatedHome::new();
    home.write_config(
        &json!({"gateway": {"auth": {"token": TOKEN}, "trustedProxies": ["10.0.0.1"]}}),
    );
    let (state, config) = (home.state_dir(), home.config_path());
    chmod(&state, 0o755);
    chmod(&config, 0o644);
    let out = audit(&home, &["--json"]).await;
    out.assert_success();
    let v = out.json();
    assert_eq!(
        ids(&v["findings"]),
        pairs(&[
            ("fs.state_dir.perms_readable", "warn"),
            ("fs.config.perms_world_readable", "critical"),
        ]),
        "{out}"
    );
    assert_eq!(
        v["findings"][0]["detail"],
        format!("{} mode=755; consider restricting to 700.", state.display())
    );
    assert_eq!(
        v["findings"][1]["remediation"],
        format!("chmod 600 {}", config.display())
    );

    let out = audit(&home, &["--fix", "--json"]).await;
    out.assert_success();
    let v = out.json();
    assert_eq!(
        v["fix"],
        json!({"ok": true, "stateDir": state, "configPath": config, "configWritten": false,
            "changes": [], "errors": [], "actions": [
                {"kind": "chmod", "path": state, "mode": 448, "ok": true},
                {"kind": "chmod", "path": config, "mode": 384, "ok": true}]}),
        "{out}"
    );
    // The report shows the state the fixes left.
    assert_eq!(v["report"]["findings"], json!([]), "{out}");
    assert_eq!(v["secretDiagnostics"], json!([]));
    assert_eq!((mode_of(&state), mode_of(&config)), (0o700, 0o600));

    let out = audit(&home, &["--fix"]).await;
    out.assert_success();
    assert!(
        out.stdout
            .contains("\nFix: clawgate security audit --fix\nFixes: no changes applied\n"),
        "{out}"
    );
}

#[tokio::test]
async fn a_symlinked_config_is_reported_and_not_fixed_through_the_link() {
    let home = IsolatedHome::new();
    let target = home.root().join("real.json5");
    std::fs::write(&target, "{gateway: {auth: {token: 'audit-token-0123456789abcdef0123'}, trustedProxies: ['10.0.0.1']}}").unwrap();
    chmod(&target, 0o644);
    std::os::unix::fs::symlink(&target, home.config_path()).unwrap();
    chmod(&home.state_dir(), 0o700);
    let out = audit(&home, &["--fix", "--json"]).await;
    out.assert_success();
    let v = out.json();
    assert_eq!(
        ids(&v["report"]["findings"]),
        pairs(&[("fs.config.symlink", "warn")]),
        "{out}"
    );
    assert_eq!(v["fix"]["actions"][1]["skipped"], "symlink");
    assert_eq!(mode_of(&target), 0o644);
}

#[tokio::test]
async fn bad_input_is_a_clear_error_with_exit_1() {
    // Invalid JSON5: the position and the file.
    let home = IsolatedHome::new();
    std::fs::write(home.config_path(), "{ gateway: { bind: ").unwrap();
    let out = audit(&home, &["--json"]).await;
    out.assert_code(1);
    let v = out.json();
    assert_eq!(v["ok"], false, "{out}");
    assert_eq!(v["error"]["type"], "cli_error");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "invalid JSON5 in {} at line",
            home.config_path().display()
        )),
        "{out}"
    );
    assert!(out.stderr.starts_with("error: invalid JSON5 in "), "{out}");

    // Unreadable: a directory where the file should be.
    let home = IsolatedHome::new();
    std::fs::create_dir(home.config_path()).unwrap();
    let out = audit(&home, &[]).await;
    out.assert_code(1);
    assert!(
        out.stderr.starts_with(&format!(
            "error: cannot read config file {}",
            home.config_path().display()
        )),
        "{out}"
    );
    assert_eq!(out.stdout, "");

    // A wrong value in a key clawgate reads names the key and the allowed values.
    let out = audit(&private_home(json!({"gateway": {"bind": "0.0.0.0"}})), &[]).await;
    out.assert_code(1);
    assert!(out.stderr.contains("gateway.bind must be one of"), "{out}");

    // Suppressions are checked like OpenClaw's schema.
    let home = private_home(json!({"security": {"audit": {"suppressions": [{"reason": "x"}]}}}));
    let out = audit(&home, &[]).await;
    out.assert_code(1);
    assert!(
        out.stderr
            .contains("security.audit.suppressions[0].checkId is required"),
        "{out}"
    );

    // --auth as OpenClaw checks it.
    let home = private_home(json!({}));
    let out = audit(&home, &["--auth", "bogus"]).await;
    out.assert_code(1);
    assert_eq!(
        out.stderr,
        "error: Invalid --auth value. Expected \"none\", \"token\", \"password\", or \"trusted-proxy\".\n"
    );
    let out = audit(&home, &["--auth", "token"]).await;
    out.assert_code(1);
    assert!(out.stderr.contains("pass --token <token>"), "{out}");
    let out = audit(&home, &["--auth", "token", "--token", "short", "--json"]).await;
    out.assert_success();
    assert!(
        ids(&out.json()["findings"]).contains(&pairs(&[("gateway.token_too_short", "warn")])[0]),
        "{out}"
    );
}

#[tokio::test]
async fn deep_probe_of_a_silent_port_is_a_finding() {
    let port = free_port();
    let home = private_home(json!({"gateway": {"port": port, "auth": {"token": TOKEN},
        "trustedProxies": ["10.0.0.1"]}}));
    let out = audit(&home, &["--deep", "--json"]).await;
    out.assert_success();
    let v = out.json();
    assert_eq!(
        ids(&v["findings"]),
        pairs(&[("gateway.probe_failed", "warn")]),
        "{out}"
    );
    let f = &v["findings"][0];
    assert_eq!(f["title"], "Gateway probe failed (deep)");
    assert_eq!(
        f["remediation"],
        "Run \"clawgate status --deep\" to debug connectivity/auth, then re-run \"clawgate security audit --deep\"."
    );
    let url = format!("ws://127.0.0.1:{port}");
    assert_eq!(v["deep"]["gateway"]["url"], url.as_str());
    assert_eq!(v["deep"]["gateway"]["attempted"], true);
    assert_eq!(v["deep"]["gateway"]["ok"], false);
    assert_eq!(v["deep"]["gateway"]["error"], f["detail"]);
}

/// Against a running gateway clawgate's deep audit connects as `status --deep` does (a `cli`
/// client with the configured token, asking `operator.read`) and finds the gateway healthy.
/// OpenClaw's connects as a `probe` client, which gateways (its own and clawgate's alike)
/// grant no scopes, so it reports the refused read call as `gateway.probe_failed`.
#[tokio::test]
async fn deep_probe_of_a_running_gateway_finds_it_healthy() {
    let oc = OpenClaw::from_env();
    let port = free_port();
    let config = json!({"gateway": {"port": port, "auth": {"token": TOKEN},
        "trustedProxies": ["10.0.0.1"]}});
    let home = oc.isolated_home(&config);
    chmod(&home.state_dir(), 0o700);
    chmod(&home.config_path(), 0o600);
    let gw = clawgate()
        .spawn_gateway_in(home, ["gateway", "run"], std::iter::empty::<(&str, &str)>())
        .await
        .expect("clawgate gateway starts");
    let ours = audit(gw.home(), &["--deep", "--json"]).await;
    ours.assert_success();
    let ours = ours.json();
    let url = format!("ws://127.0.0.1:{port}");
    assert_eq!(
        ours["deep"],
        json!({"gateway": {"attempted": true, "url": url, "ok": true, "error": null, "close": null}}),
        "{ours:#}"
    );
    let has_probe_failed = |v: &Value| {
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["checkId"] == "gateway.probe_failed")
    };
    assert!(!has_probe_failed(&ours), "{ours:#}");

    let theirs = oc
        .cli()
        .in_home(gw.home())
        .args(["security", "audit", "--deep", "--json"])
        .run()
        .await;
    theirs.assert_success();
    let theirs = theirs.json();
    assert_eq!(theirs["deep"]["gateway"]["url"], url.as_str());
    assert_eq!(theirs["deep"]["gateway"]["ok"], false, "{theirs:#}");
    assert_eq!(
        theirs["deep"]["gateway"]["error"], "missing scope: operator.read",
        "{theirs:#}"
    );
    assert!(has_probe_failed(&theirs), "{theirs:#}");
}

/// The check ids clawgate implements, as prefixes of OpenClaw's ids.
const IMPLEMENTED: &[&str] = &[
    "gateway.bind_no_auth",
    "gateway.loopback_no_auth",
    "gateway.auth_no_rate_limit",
    "gateway.control_ui.",
    "gateway.real_ip_fallback_enabled",
    "gateway.tailscale_",
    "gateway.trusted_proxies_missing",
    "gateway.trusted_proxy_",
    "gateway.tools_invoke_http.dangerous_allow",
    "gateway.token_",
    "gateway.password_",
    "discovery.mdns_full_mode",
    "config.insecure_or_dangerous_flags",
    "fs.state_dir.",
    "fs.config.",
    "security.audit.suppressions.active",
];

fn implemented(list: &Value) -> Vec<Value> {
    list.as_array()
        .map(|a| {
            a.iter()
                .filter(|f| {
                    let id = f["checkId"].as_str().unwrap_or_default();
                    IMPLEMENTED.iter().any(|p| id.starts_with(p))
                })
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// Zero config differs on purpose: clawgate's gateway generates a token on first start and
/// never serves loopback without auth, so its audit has no `gateway.loopback_no_auth`, which
/// OpenClaw's reports (its gateway would serve unauthenticated there).
#[tokio::test]
async fn zero_config_counts_the_generated_token_as_auth() {
    let oc = OpenClaw::from_env();
    let home = oc.isolated_home(&json!({}));
    chmod(&home.state_dir(), 0o700);
    chmod(&home.config_path(), 0o600);
    let ids = |v: &Value| -> Vec<String> {
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["checkId"].as_str().unwrap().to_owned())
            .collect()
    };
    let ours = audit(&home, &["--json"]).await;
    ours.assert_success();
    assert_eq!(ids(&ours.json()), ["gateway.trusted_proxies_missing"]);
    let theirs = oc
        .cli()
        .in_home(&home)
        .args(["security", "audit", "--json"])
        .run()
        .await;
    theirs.assert_success();
    assert!(
        ids(&theirs.json()).contains(&"gateway.loopback_no_auth".to_owned()),
        "{theirs}"
    );
}

/// The real `openclaw security audit --json` and clawgate's on one config file and state dir
/// report the same findings (check id, severity, title, detail, remediation) for every check
/// clawgate implements, in the same order, and suppress the same ones.
#[tokio::test]
async fn openclaw_reports_the_same_findings() {
    let oc = OpenClaw::from_env();
    let cases = [
        // No secret on loopback (auth switched off); a world-readable config file.
        json!({"gateway": {"auth": {"mode": "none"}}}),
        // Exposed on the LAN with weak settings, two suppressions.
        json!({
            "gateway": {"bind": "lan", "auth": {"mode": "token", "token": "short"},
                "controlUi": {"allowedOrigins": ["*"], "dangerouslyAllowHostHeaderOriginFallback": true},
                "allowRealIpFallback": true, "tools": {"allow": ["exec", "Gateway"]}},
            "discovery": {"mdns": {"mode": "full"}},
            "security": {"audit": {"suppressions": [
                {"checkId": "gateway.auth_no_rate_limit", "reason": "accepted"},
                {"checkId": "gateway.real_ip_fallback_enabled", "titleIncludes": "no such title"}]}}
        }),
        // The LAN without auth or origins.
        json!({"gateway": {"bind": "lan", "auth": {"mode": "none"}}}),
        // Trusted-proxy auth with its risky options.
        json!({"gateway": {"trustedProxies": ["10.0.0.1"], "allowRealIpFallback": true,
            "auth": {"mode": "trusted-proxy", "trustedProxy": {"userHeader": "x-user",
                "allowLoopback": true,
                "deviceAutoApprove": {"enabled": true, "scopes": ["operator.admin"]}}}}}),
        // Tailscale: Serve with its identity login, Funnel with a short password.
        json!({"gateway": {"tailscale": {"mode": "serve"}, "controlUi": {"enabled": false}}}),
        json!({"gateway": {"tailscale": {"mode": "funnel"},
            "auth": {"mode": "password", "password": "hunter2"}, "trustedProxies": ["127.0.0.1"]}}),
    ];
    for (i, case) in cases.iter().enumerate() {
        let home = oc.isolated_home(case);
        chmod(&home.state_dir(), if i % 2 == 0 { 0o755 } else { 0o700 });
        chmod(&home.config_path(), if i % 2 == 0 { 0o644 } else { 0o640 });
        let theirs = oc
            .cli()
            .in_home(&home)
            .args(["security", "audit", "--json"])
            .run()
            .await;
        theirs.assert_success();
        let ours = audit(&home, &["--json"]).await;
        ours.assert_success();
        let (theirs, ours) = (theirs.json(), ours.json());
        let expected = implemented(&theirs["findings"]);
        assert!(
            !expected.is_empty(),
            "case {i}: nothing to compare: {theirs:#}"
        );
        assert_eq!(
            ours["findings"],
            Value::Array(expected),
            "case {i}: clawgate {ours:#}\nOpenClaw {theirs:#}"
        );
        assert_eq!(
            ours.get("suppressedFindings"),
            theirs.get("suppressedFindings"),
            "case {i}"
        );
    }
}
