//! `clawgate doctor`: one exposure report from the local config (bind × auth × TLS × trusted
//! proxies × Tailscale: who can reach the gateway, with what credential, over what transport,
//! and every risky combination with the key that fixes it), then, when a gateway answers, a
//! live check that tells reachability, TLS, auth, pairing and scope problems apart. The live
//! check keeps to its time budget (`--timeout`) whichever step goes unanswered, and says which.

use crate::exposure_view::{exposure_text, finding_json, findings_text};
use clap::Args;
use clawgate_client::live_check::{self, Check, LiveTarget};
use clawgate_config::{
    self as config, GatewayConfig, GatewayMode, GatewayRunInputs, GatewaySettings,
};
use clawgate_gateway::exposure::permissions::{self, ChmodAction};
use clawgate_gateway::exposure::{self, Description, Finding, RULES, Severity};
use clawgate_gateway::tls;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

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
    let (exposure, mut findings) = exposure::assess(RULES, &settings, &cfg, &env);
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

/// The live check of the local gateway (or `gateway.remote.url` in remote mode): its URL
/// and the verdicts.
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
    let target = LiveTarget {
        url,
        pin,
        token,
        password,
    };
    let checks = live_check::live_check(&target, Duration::from_millis(args.timeout)).await;
    (target.url, checks)
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
                "checks": checks})
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
