//! `clawgate doctor`: one exposure report from the local config (bind × auth × TLS × trusted
//! proxies × Tailscale: who can reach the gateway, with what credential, over what transport,
//! and every risky combination with the key that fixes it), then, when a gateway answers, a
//! live check that tells reachability, TLS, auth, pairing and scope problems apart. The live
//! check keeps to its time budget (`--timeout`) whichever step goes unanswered, and says which.

use clap::Args;
use clawgate_client::{Client, ClientError, ConnectOptions, TlsOptions, client_info};
use clawgate_config::{
    self as config, GatewayConfig, GatewayMode, GatewayRunInputs, GatewaySettings,
};
use clawgate_gateway::exposure::permissions::{self, ChmodAction};
use clawgate_gateway::exposure::{Description, Exposure, Finding, RULES, Rule, Severity, Startup};
use clawgate_gateway::{bind, tls};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// Config file (JSON5, OpenClaw keys) [env: CLAWGATE_CONFIG_PATH, OPENCLAW_CONFIG_PATH]
    #[arg(long)]
    config: Option<PathBuf>,
    /// State directory [env: CLAWGATE_STATE_DIR, OPENCLAW_STATE_DIR] [default: ~/.openclaw]
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Gateway port to check [default: gateway.port or 18789]
    #[arg(long)]
    port: Option<u16>,
    /// Skip the live check (config only)
    #[arg(long)]
    offline: bool,
    /// Time budget of the live check (connect, handshake and the health request), in
    /// milliseconds
    #[arg(long, value_name = "MS", default_value_t = 5_000)]
    timeout: u64,
    /// Print JSON
    #[arg(long)]
    json: bool,
    /// Apply the repairs first: the state dir to 700 and the config file to 600 (as
    /// `security audit --fix`); symlinks and missing paths are left alone
    #[arg(long, visible_alias = "repair")]
    fix: bool,
    /// Accepted for OpenClaw's scripts: doctor never prompts
    #[arg(long)]
    yes: bool,
    /// Accepted for OpenClaw's scripts: doctor never prompts
    #[arg(long)]
    non_interactive: bool,
}

/// `doctor`'s JSON of a finding: its id, severity, message and fix.
fn finding_json(f: &Finding) -> Value {
    json!({"id": f.check_id, "severity": severity_name(f.severity), "message": message(f), "fix": fix(f)})
}

fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "critical",
        Severity::Warn => "warning",
        Severity::Info => "info",
    }
}

fn message(f: &Finding) -> String {
    if f.detail.is_empty() {
        f.title.clone()
    } else {
        format!("{}: {}", f.title, f.detail)
    }
}

fn fix(f: &Finding) -> &str {
    f.remediation.as_deref().unwrap_or("see the message")
}

/// The live check's verdict on one aspect.
struct Check {
    check: &'static str,
    ok: Option<bool>,
    detail: String,
    fix: Option<String>,
}

impl Check {
    fn json(&self) -> Value {
        json!({"check": self.check, "ok": self.ok, "detail": self.detail, "fix": self.fix})
    }
}

pub fn run(args: DoctorArgs) -> ExitCode {
    let env = config::process_env;
    let location = config::locate_config(args.config.as_deref(), args.state_dir.as_deref(), &env);
    let loaded = match config::load_config(&location, &env) {
        Ok(l) => l,
        Err(e) => {
            let f = Finding::new(
                "config_invalid",
                Severity::Critical,
                format!("the config cannot be loaded: {e}"),
                "",
                format!(
                    "fix {} (the gateway refuses to start with it)",
                    location.path.display()
                ),
            );
            return finish(&args, &location.path, None, vec![f], Vec::new(), None, None);
        }
    };
    let cfg = loaded
        .as_ref()
        .map(|l| l.gateway.clone())
        .unwrap_or_default();
    let inputs = GatewayRunInputs {
        port: args.port,
        config_path: args.config.clone(),
        state_dir: args.state_dir.clone(),
        ..GatewayRunInputs::default()
    };
    let settings = match config::resolve_gateway_settings(&inputs, loaded.as_ref(), &env) {
        Ok(s) => s,
        Err(e) => {
            let f = Finding::new(
                "startup_refused",
                Severity::Critical,
                format!("the gateway refuses to start with this config: {e}"),
                "",
                "change the keys the message names",
            );
            return finish(&args, &location.path, None, vec![f], Vec::new(), None, None);
        }
    };
    // The repairs come first, so the report shows the state they leave.
    let repairs = args
        .fix
        .then(|| permissions::fix_permissions(&settings.state_dir, &settings.config_path));
    let (exposure, mut findings) = assess(RULES, &settings, &cfg);
    findings.extend(permission_findings(&settings));
    let live = if args.offline {
        None
    } else {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        match rt {
            Ok(rt) => Some(rt.block_on(live_check(&args, &settings, &cfg))),
            Err(_) => None,
        }
    };
    let (url, checks) = live.unwrap_or_default();
    finish(
        &args,
        &settings.config_path,
        Some(&exposure),
        findings,
        checks,
        (!url.is_empty()).then_some(url),
        repairs.as_deref(),
    )
}

/// `security audit`'s `fs.*` findings of the state dir and config file, each with the
/// repair that `doctor --fix` applies.
fn permission_findings(s: &GatewaySettings) -> Vec<Finding> {
    permissions::current_filesystem_findings(&s.state_dir, &s.config_path)
        .into_iter()
        .map(|f| {
            let fix = match &f.remediation {
                Some(r) => format!("{r} (or run clawgate doctor --fix)"),
                None => "make sure the link's target is yours and private (doctor --fix leaves links alone)".to_owned(),
            };
            Finding {
                remediation: Some(fix),
                ..f
            }
        })
        .collect()
}

/// The exposure report of this machine's gateway config, for `clawgate status --deep`:
/// (the exposure JSON with its `findings`, the text).
pub fn local_exposure(config_path: Option<&std::path::Path>) -> Option<(Value, String)> {
    let env = config::process_env;
    let location = config::locate_config(config_path, None, &env);
    let loaded = config::load_config(&location, &env).ok()?;
    let inputs = GatewayRunInputs {
        config_path: config_path.map(std::path::Path::to_path_buf),
        ..GatewayRunInputs::default()
    };
    let settings = config::resolve_gateway_settings(&inputs, loaded.as_ref(), &env).ok()?;
    let cfg = loaded.map(|l| l.gateway).unwrap_or_default();
    let (e, findings) = assess(RULES, &settings, &cfg);
    let mut v = json!(e);
    v["findings"] = findings.iter().map(finding_json).collect();
    let mut text = String::new();
    exposure_text(&mut text, &e);
    findings_text(&mut text, &findings);
    Some((v, text))
}

fn exposure_text(out: &mut String, e: &Description) {
    out.push_str("Exposure\n");
    out.push_str(&format!("  bind:            {} ({})\n", e.bind, e.host));
    out.push_str(&format!("  who can reach:   {}\n", e.reach));
    out.push_str(&format!("  credential:      {}\n", e.credential));
    out.push_str(&format!("  transport:       {}\n", e.transport));
    out.push_str(&format!(
        "  trusted proxies: {}\n",
        if e.trusted_proxies.is_empty() {
            "none".to_owned()
        } else {
            e.trusted_proxies.join(", ")
        }
    ));
    out.push_str(&format!("  tailscale:       {}\n", e.tailscale.mode));
    out.push_str(&format!("  node pairing:    {}\n\n", e.node_pairing));
}

fn findings_text(out: &mut String, findings: &[Finding]) {
    if findings.is_empty() {
        out.push_str("Findings: none\n");
    } else {
        out.push_str("Findings\n");
        for f in findings {
            out.push_str(&format!(
                "  [{}] {}: {}\n      fix: {}\n",
                severity_name(f.severity),
                f.check_id,
                message(f),
                fix(f)
            ));
        }
    }
}

/// The exposure and its risky combinations: the findings of `rules` (a start-up refusal
/// says so) after the bind's own.
fn assess(rules: &[Rule], s: &GatewaySettings, cfg: &GatewayConfig) -> (Description, Vec<Finding>) {
    let mut findings = Vec::new();
    let env = config::process_env;
    let in_container = bind::is_container(&env);
    let mut detector = bind::TailnetDetector::from_env(&env);
    detector.timeout = Duration::from_secs(2);
    let plan = bind::resolve_bind(s.bind, s.custom_bind_host, &detector, in_container);
    let (host, loopback) = match &plan {
        Ok(p) => (p.host.to_string(), p.is_loopback()),
        Err(e) => {
            findings.push(Finding::new(
                "bind_invalid",
                Severity::Critical,
                format!("gateway.bind={} cannot be resolved: {e}", s.bind),
                "",
                "set gateway.bind to loopback (or fix gateway.customBindHost)",
            ));
            (String::from("?"), true)
        }
    };
    let facts = Exposure::of_gateway(s, cfg, loopback, in_container);
    for rule in rules {
        for mut f in (rule.findings)(&facts) {
            if rule.startup != Startup::Starts {
                f.title = format!("{} (the gateway refuses to start: exit 78)", f.title);
            }
            findings.push(f);
        }
    }
    let description = Description::of(s, &facts, host, tls::configured_fingerprint(s));
    (description, findings)
}

/// Connects to the local gateway (or `gateway.remote.url` in remote mode) and reports.
async fn live_check(
    args: &DoctorArgs,
    s: &GatewaySettings,
    cfg: &GatewayConfig,
) -> (String, Vec<Check>) {
    let remote = cfg.mode == Some(GatewayMode::Remote);
    let (url, pin, token, password) = match (remote, &cfg.remote.url) {
        (true, Some(u)) => (
            u.clone(),
            cfg.remote.tls_fingerprint.clone(),
            cfg.remote.token.as_ref().map(|t| t.expose().to_owned()),
            cfg.remote.password.as_ref().map(|p| p.expose().to_owned()),
        ),
        _ => {
            let scheme = if s.tls.is_some() { "wss" } else { "ws" };
            let token = s
                .auth
                .token
                .as_ref()
                .map(|t| t.expose().to_owned())
                .or_else(|| {
                    std::fs::read_to_string(s.state_dir.join("gateway.token"))
                        .ok()
                        .map(|t| t.trim().to_owned())
                        .filter(|t| !t.is_empty())
                });
            (
                format!("{scheme}://127.0.0.1:{}", s.port),
                tls::configured_fingerprint(s),
                token,
                s.auth.password.as_ref().map(|p| p.expose().to_owned()),
            )
        }
    };
    let mut checks = Vec::new();
    let budget = Duration::from_millis(args.timeout);
    let deadline = tokio::time::Instant::now() + budget;
    let mut opts = ConnectOptions::new(url.clone(), client_info("cli", "cli"));
    opts.token = token.clone();
    opts.password = password.clone();
    opts.scopes = vec!["operator.read".into()];
    opts.timeout = budget;
    opts.tls = TlsOptions {
        fingerprint: pin.clone(),
    };
    let started = Instant::now();
    let result = Client::connect(opts).await;
    let ms = started.elapsed().as_millis();
    let is_tls = url.starts_with("wss://");
    match result {
        Ok((client, hello)) => {
            checks.push(Check {
                check: "reachability",
                ok: Some(true),
                detail: format!("connected in {ms} ms"),
                fix: None,
            });
            if is_tls {
                checks.push(Check {
                    check: "tls",
                    ok: Some(true),
                    detail: match &pin {
                        Some(p) => format!("certificate matches the pin sha256:{p}"),
                        None => "certificate verified".into(),
                    },
                    fix: None,
                });
            }
            checks.push(Check {
                check: "auth",
                ok: Some(true),
                detail: format!(
                    "accepted (method {}, role {})",
                    hello.auth_method().unwrap_or("?"),
                    hello.role().unwrap_or("?")
                ),
                fix: None,
            });
            let scopes = hello.scopes();
            let health = tokio::time::timeout_at(deadline, client.request("health", None)).await;
            let scope_check = match health {
                Err(_) => Check {
                    check: "health",
                    ok: Some(false),
                    detail: format!(
                        "connected, but the gateway did not answer `health` within {} ms",
                        args.timeout
                    ),
                    fix: Some("the gateway takes connections but does not answer requests: see its log, then restart it (`clawgate gateway restart`, or stop and start `clawgate gateway run`); on a slow link allow more time with --timeout".into()),
                },
                Ok(Ok(_)) => Check {
                    check: "scopes",
                    ok: Some(true),
                    detail: format!("granted {scopes:?}; health answered"),
                    fix: None,
                },
                Ok(Err(e)) => match e.wire().and_then(|w| w.missing_scope()) {
                    Some(missing) => Check {
                        check: "scopes",
                        ok: Some(false),
                        detail: format!("connected without {missing} (granted {scopes:?})"),
                        fix: Some("device-less connections from other hosts get no scopes: run `clawgate gateway status` once so this device is paired (approve it on the gateway host with `clawgate devices approve <id>`)".into()),
                    },
                    None => Check {
                        check: "scopes",
                        ok: Some(false),
                        detail: format!("health failed: {e}"),
                        fix: Some("see the gateway's log".into()),
                    },
                },
            };
            checks.push(scope_check);
            client.close().await;
        }
        Err(e) => checks.extend(classify_failure(
            &e,
            &url,
            is_tls,
            token.is_some() || password.is_some(),
        )),
    }
    (url, checks)
}

/// Tells reachability, TLS, auth and pairing failures apart.
fn classify_failure(e: &ClientError, url: &str, is_tls: bool, had_secret: bool) -> Vec<Check> {
    let reach_ok = |detail: &str| Check {
        check: "reachability",
        ok: Some(true),
        detail: detail.to_owned(),
        fix: None,
    };
    match e {
        ClientError::Unreachable {
            reason,
            timed_out: true,
            ..
        } => vec![Check {
            check: "reachability",
            ok: Some(false),
            detail: format!("no gateway answered at {url}: {reason}"),
            fix: Some("something takes connections on that port (or drops them) but does not answer as a gateway: check that gateway.port / --port is the gateway's and not another program's, see the gateway's log and restart it (`clawgate gateway restart`); on a slow link allow more time with --timeout".into()),
        }],
        ClientError::Unreachable { reason, .. } => {
            let tls_failure = is_tls
                && ["certificate", "tls", "handshake", "alert"]
                    .iter()
                    .any(|w| reason.to_ascii_lowercase().contains(w));
            if tls_failure {
                vec![
                    reach_ok("the port answers"),
                    Check {
                        check: "tls",
                        ok: Some(false),
                        detail: reason.clone(),
                        fix: Some("pin the gateway's certificate: `clawgate gateway tls show` on the gateway host prints the fingerprint for gateway.remote.tlsFingerprint / --tls-fingerprint".into()),
                    },
                ]
            } else {
                vec![Check {
                    check: "reachability",
                    ok: Some(false),
                    detail: format!("no gateway at {url}: {reason}"),
                    fix: Some("start it with `clawgate gateway run` (or check gateway.port / the tunnel)".into()),
                }]
            }
        }
        ClientError::TlsPinMismatch { pins, actual, .. } => vec![
            reach_ok("the port answers"),
            Check {
                check: "tls",
                ok: Some(false),
                detail: format!(
                    "certificate sha256:{actual} does not match the pin {}",
                    clawgate_client::pin_list(pins)
                ),
                fix: Some(format!("if the gateway's certificate was rotated, re-pin: set gateway.remote.tlsFingerprint to sha256:{actual} (check it on the gateway host with `clawgate gateway tls show`)")),
            },
        ],
        ClientError::Insecure { reason, .. } => vec![Check {
            check: "tls",
            ok: Some(false),
            detail: format!("plaintext ws:// refused: {reason}"),
            fix: Some("use wss:// (gateway.tls.enabled on the gateway) or an SSH tunnel (`clawgate tunnel up`)".into()),
        }],
        ClientError::Handshake {
            detail_code,
            message,
            error,
            ..
        } => {
            let code = detail_code.clone().unwrap_or_default();
            let mut v = vec![reach_ok("the gateway answered")];
            if is_tls {
                v.push(Check {
                    check: "tls",
                    ok: Some(true),
                    detail: "handshake completed".into(),
                    fix: None,
                });
            }
            if let Some(p) = error.pairing_required() {
                v.push(Check {
                    check: "auth",
                    ok: Some(true),
                    detail: "credentials accepted".into(),
                    fix: None,
                });
                v.push(Check {
                    check: "pairing",
                    ok: Some(false),
                    detail: format!("this device is not approved yet ({message})"),
                    fix: Some(format!(
                        "approve it on the gateway host: `clawgate devices approve {}`",
                        p.request_id.as_deref().unwrap_or("<request id>")
                    )),
                });
            } else if code == "DEVICE_IDENTITY_REQUIRED" && !had_secret {
                v.push(Check {
                    check: "auth",
                    ok: Some(false),
                    detail: "no token or password to send".into(),
                    fix: Some("set gateway.remote.token (remote) or gateway.auth.token, or CLAWGATE_GATEWAY_TOKEN".into()),
                });
            } else {
                v.push(Check {
                    check: "auth",
                    ok: Some(false),
                    detail: format!("{message} ({code})"),
                    fix: Some(match code.as_str() {
                        "AUTH_TOKEN_MISMATCH" | "AUTH_TOKEN_MISSING" => "use the gateway's token: gateway.remote.token must equal gateway.auth.token on the gateway host".into(),
                        "AUTH_PASSWORD_MISMATCH" | "AUTH_PASSWORD_MISSING" => "use the gateway's password (gateway.remote.password / CLAWGATE_GATEWAY_PASSWORD)".into(),
                        "AUTH_RATE_LIMITED" => "too many failed attempts: wait, then retry with the right secret".into(),
                        "PROTOCOL_MISMATCH" => "update clawgate or the gateway so both speak protocol 4".into(),
                        c if c.starts_with("AUTH_TAILSCALE") => "connect through Tailscale Serve from a device whose identity whois confirms, or use the token".into(),
                        "AUTH_IDENTITY_HEADER_REQUIRED" => "connect through the trusted proxy (gateway.auth.trustedProxy), or check its headers".into(),
                        _ => "see the message".into(),
                    }),
                });
            }
            v
        }
        ClientError::Closed(code, reason) => vec![
            reach_ok("the port answers"),
            Check {
                check: "auth",
                ok: Some(false),
                detail: format!("closed without an answer ({code} {reason})"),
                fix: Some("see the gateway's log".into()),
            },
        ],
        ClientError::InvalidUrl { reason, .. } | ClientError::Protocol(reason) => vec![Check {
            check: "reachability",
            ok: Some(false),
            detail: reason.clone(),
            fix: Some("check gateway.remote.url / gateway.port".into()),
        }],
    }
}

fn finish(
    args: &DoctorArgs,
    config_path: &std::path::Path,
    exposure: Option<&Description>,
    findings: Vec<Finding>,
    checks: Vec<Check>,
    url: Option<String>,
    repairs: Option<&[ChmodAction]>,
) -> ExitCode {
    let critical = findings.iter().any(|f| f.severity == Severity::Critical);
    let live_failed = checks
        .iter()
        .any(|c| c.ok == Some(false) && c.check != "reachability");
    let ok = !critical && !live_failed;
    if args.json {
        let exposure = exposure.map(|e| json!(e));
        let live = url.map(|u| {
            json!({"url": u, "reachable": checks.iter().any(|c| c.check == "reachability" && c.ok == Some(true)),
                "checks": checks.iter().map(Check::json).collect::<Vec<_>>()})
        });
        let mut v = json!({"ok": ok, "configPath": config_path.display().to_string(), "exposure": exposure,
            "findings": findings.iter().map(finding_json).collect::<Vec<_>>(), "live": live});
        if let Some(repairs) = repairs {
            v["repairs"] = json!(repairs);
        }
        crate::operator::print_json(&v);
    } else {
        let mut out = format!("clawgate doctor (config: {})\n\n", config_path.display());
        if let Some(repairs) = repairs {
            out.push_str("Repairs\n");
            for line in repairs.iter().filter_map(|a| a.line(&config::process_env)) {
                out.push_str(&format!("  {line}\n"));
            }
            out.push('\n');
        }
        if let Some(e) = exposure {
            exposure_text(&mut out, e);
        }
        findings_text(&mut out, &findings);
        if let Some(u) = url {
            out.push_str(&format!("\nLive check ({u})\n"));
            for c in &checks {
                let mark = match c.ok {
                    Some(true) => "ok",
                    Some(false) => "FAIL",
                    None => "-",
                };
                out.push_str(&format!("  {:<13} {mark:<4} {}\n", c.check, c.detail));
                if let Some(fix) = &c.fix {
                    out.push_str(&format!("                     fix: {fix}\n"));
                }
            }
        }
        crate::operator::print_out(&out);
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clawgate_config::LoadedConfig;
    use clawgate_gateway::exposure::audit::gateway_config_findings;

    fn loaded(config: Value) -> LoadedConfig {
        LoadedConfig::from_value(std::path::Path::new("/c/openclaw.json"), config, &|_| None)
            .unwrap()
    }

    fn settings(config: &LoadedConfig) -> GatewaySettings {
        let inputs = GatewayRunInputs {
            state_dir: Some("/s".into()),
            ..GatewayRunInputs::default()
        };
        config::resolve_gateway_settings(&inputs, Some(config), &|_| None).unwrap()
    }

    /// What each command makes of `config` under `rules`: `gateway run`'s refusal, the ids
    /// `doctor` reports and the check ids `security audit` reports.
    fn judged(
        rules: &[Rule],
        config: &LoadedConfig,
    ) -> (Option<String>, Vec<&'static str>, Vec<&'static str>) {
        let s = settings(config);
        let loopback = s.bind == config::BindMode::Loopback;
        let refusal =
            crate::gateway_run::startup_refusal(rules, &s, &config.gateway, loopback, false);
        let doctor = assess(rules, &s, &config.gateway).1;
        let audit = gateway_config_findings(rules, config, &|_| None, None);
        (
            refusal,
            doctor.iter().map(|f| f.check_id).collect(),
            audit.iter().map(|f| f.check_id).collect(),
        )
    }

    /// The three commands evaluate one rule set: a rule changed once, or taken out, changes
    /// what `gateway run` refuses, what `doctor` reports and what `security audit` reports.
    #[test]
    fn gateway_run_doctor_and_security_audit_share_the_exposure_rules() {
        let lan = loaded(json!({"gateway": {"bind": "lan", "auth": {"mode": "none"}}}));
        let (refusal, doctor, audit) = judged(RULES, &lan);
        let refusal = refusal.unwrap();
        assert!(
            refusal.starts_with("Refusing to bind gateway to lan without auth.\n"),
            "{refusal}"
        );
        assert!(doctor.contains(&"bind_without_auth"), "{doctor:?}");
        assert!(audit.contains(&"gateway.bind_no_auth"), "{audit:?}");

        // The rule changed once (it now applies on loopback with a token too): all three
        // report it on a config none of them objected to.
        let mut changed = RULES.to_vec();
        let bind_rule = changed
            .iter_mut()
            .find(|r| r.id == "bind_without_auth")
            .unwrap();
        bind_rule.findings = |_| {
            vec![Finding::new(
                "bind_without_auth",
                Severity::Critical,
                "changed rule",
                "",
                "changed fix",
            )]
        };
        let token = loaded(json!({"gateway": {"auth": {"token": "t".repeat(32)}}}));
        let (refusal, doctor, audit) = judged(RULES, &token);
        assert_eq!(refusal, None);
        assert!(!doctor.contains(&"bind_without_auth"), "{doctor:?}");
        assert!(!audit.contains(&"gateway.bind_no_auth"), "{audit:?}");
        let (refusal, doctor, audit) = judged(&changed, &token);
        assert_eq!(refusal.as_deref(), Some("changed rule\nchanged fix"));
        assert!(doctor.contains(&"bind_without_auth"), "{doctor:?}");
        assert!(audit.contains(&"gateway.bind_no_auth"), "{audit:?}");

        // The rule taken out: none of the three reports it.
        let without: Vec<Rule> = RULES
            .iter()
            .copied()
            .filter(|r| r.id != "bind_without_auth")
            .collect();
        let (refusal, doctor, audit) = judged(&without, &lan);
        assert_eq!(refusal, None);
        assert!(!doctor.contains(&"bind_without_auth"), "{doctor:?}");
        assert!(!audit.contains(&"gateway.bind_no_auth"), "{audit:?}");
    }

    /// Every rule that keeps the gateway from starting is reported by `doctor` with the very
    /// message `gateway run` refuses with.
    #[test]
    fn doctor_reports_each_start_up_refusal_in_gateway_runs_words() {
        let cases = [
            (
                "bind_without_auth",
                json!({"gateway": {"bind": "lan", "auth": {"mode": "none"}}}),
            ),
            (
                "funnel_without_password",
                json!({"gateway": {"tailscale": {"mode": "funnel"}, "auth": {"token": "t".repeat(32)}}}),
            ),
            (
                "tailscale_without_auth",
                json!({"gateway": {"tailscale": {"mode": "serve"}, "auth": {"mode": "none"}}}),
            ),
            (
                "tailscale_needs_loopback",
                json!({"gateway": {"bind": "lan", "tailscale": {"mode": "serve"}, "auth": {"token": "t".repeat(32)}}}),
            ),
        ];
        let refusing: Vec<&str> = RULES
            .iter()
            .filter(|r| r.startup != Startup::Starts)
            .map(|r| r.id)
            .collect();
        assert_eq!(
            refusing,
            cases.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            "a start-up refusal without a case here"
        );
        for (id, config) in cases {
            let config = loaded(config);
            let s = settings(&config);
            let loopback = s.bind == config::BindMode::Loopback;
            let refusal =
                crate::gateway_run::startup_refusal(RULES, &s, &config.gateway, loopback, false)
                    .unwrap_or_else(|| panic!("{id}: gateway run starts"));
            let doctor = assess(RULES, &s, &config.gateway).1;
            let reported = doctor
                .iter()
                .find(|f| f.check_id == id)
                .unwrap_or_else(|| panic!("{id}: doctor does not report it: {doctor:?}"));
            let said = reported
                .title
                .strip_suffix(" (the gateway refuses to start: exit 78)")
                .unwrap();
            assert!(refusal.contains(said), "{id}: {refusal:?} vs {said:?}");
        }
    }
}
