//! `clawgate security audit`: OpenClaw's `openclaw security audit` for what clawgate has:
//! the gateway's config (bind, auth, Control UI origins, proxies, Tailscale, discovery),
//! the permissions of the state directory and the config file, suppressions, and with
//! `--deep` a live probe of the configured gateway.
//!
//! The checks themselves, with OpenClaw's check ids, severities and texts, are the gateway
//! crate's (`exposure::audit`, `exposure::permissions`): this command gathers the facts
//! (config, file modes, the probe's outcome), renders the report and sets the exit code.

use clap::{Args, Subcommand};
use clawgate_config::{self as config, LoadedConfig};
use clawgate_gateway::exposure::audit::{
    AuthOverride, DeepProbe, Summary, SuppressedFinding, apply_suppressions, cli_command,
    deep_probe_findings, gateway_config_findings, nonblank, summarize,
};
use clawgate_gateway::exposure::permissions::{
    ChmodAction, current_filesystem_findings, fix_permissions,
};
use clawgate_gateway::exposure::{Finding, RULES, Severity};
use serde::Serialize;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;

use crate::operator::{self, ConnArgs};

/// What `--help` says is and is not audited.
const AUDIT_HELP: &str = "\
Checks (OpenClaw's check ids, severities and texts):
  gateway.*             bind and auth, loopback auth, rate limiting, Control UI origins,
                        X-Real-IP fallback, trusted proxies and trusted-proxy auth,
                        Tailscale Serve/Funnel, token/password strength, the HTTP tool
                        allowlist (gateway.tools.allow)
  discovery.mdns_full_mode, config.insecure_or_dangerous_flags
  fs.state_dir.*, fs.config.*   permissions and symlinks of the state dir and config file
  gateway.probe_failed  with --deep: the configured gateway does not answer a probe
  security.audit.suppressions (checkId, titleIncludes, detailIncludes, reason) move
  matching findings to suppressedFindings.

Not checked: OpenClaw's agent, tool, exec, sandbox, MCP, hook, model, channel, plugin and
HTTP-API checks (clawgate runs no agents, channels or plugins and serves no HTTP APIs yet);
gateway.env_token_overrides_config (clawgate's gateway and CLI both let the environment's
token win, so they cannot disagree); gateway.probe_auth_secretref_unavailable (clawgate
refuses a config whose SecretRefs do not resolve).

--fix sets the state dir to 700 and the config file to 600 (never through a symlink).

Exit codes: 0 when the audit ran, whatever it found; 1 when the config cannot be read or is
invalid, or --auth is unusable.";

#[derive(Subcommand, Debug)]
pub enum SecurityCommand {
    /// Audit the gateway config and local state for common security foot-guns.
    #[command(after_long_help = AUDIT_HELP)]
    Audit(AuditArgs),
}

#[derive(Args, Debug)]
pub struct AuditArgs {
    /// Also probe the configured gateway (connect, then health, status, presence and config)
    #[arg(long)]
    deep: bool,
    /// Audit as if the gateway ran with this auth mode: none, token, password or trusted-proxy
    #[arg(long, value_name = "MODE")]
    auth: Option<String>,
    /// Gateway token: the secret of --auth token, and the deep probe's credential
    #[arg(long, value_name = "TOKEN")]
    token: Option<String>,
    /// Gateway password: the secret of --auth password, and the deep probe's credential
    #[arg(long, value_name = "PASSWORD")]
    password: Option<String>,
    /// Apply the safe fixes first: chmod 700 the state dir, 600 the config file
    #[arg(long)]
    fix: bool,
    /// Print JSON
    #[arg(long)]
    json: bool,
    /// Config file (JSON5, OpenClaw keys) [env: CLAWGATE_CONFIG_PATH, OPENCLAW_CONFIG_PATH]
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
}

/// OpenClaw's deep-probe budget (`deepTimeoutMs`).
const DEEP_PROBE_TIMEOUT_MS: u64 = 5_000;
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    ts: u64,
    summary: Summary,
    findings: Vec<Finding>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    suppressed_findings: Vec<SuppressedFinding>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deep: Option<Value>,
}

fn config_failure(json_out: bool, message: &str) -> ExitCode {
    if json_out {
        operator::print_json(
            &json!({"ok": false, "error": {"type": "cli_error", "message": message}}),
        );
    }
    eprintln!("error: {message}");
    ExitCode::from(1)
}

/// The `--deep` probe: `gateway probe`'s read calls against the configured gateway on a
/// `status --deep` connection, with `--token`/`--password` when given.
fn deep_probe(args: &AuditArgs) -> DeepProbe {
    let conn = ConnArgs {
        url: None,
        token: args.token.clone(),
        password: args.password.clone(),
        tls_fingerprint: Vec::new(),
        config: args.config.clone(),
        // Quiet: no spinner, no waiting for a device approval.
        json: true,
        timeout: DEEP_PROBE_TIMEOUT_MS,
        device_auth: clawgate_client::DeviceAuthMode::Auto,
        wait: false,
        no_wait: true,
        wait_timeout: 0,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    match runtime {
        Ok(rt) => {
            let (url, error) = rt.block_on(operator::probe_configured(&conn));
            DeepProbe { url, error }
        }
        Err(e) => DeepProbe {
            url: String::new(),
            error: Some(format!("cannot start the async runtime: {e}")),
        },
    }
}

pub fn run(command: SecurityCommand) -> ExitCode {
    let SecurityCommand::Audit(args) = command;
    let env = config::process_env;
    let auth_override = match AuthOverride::from_flags(
        args.auth.as_deref(),
        args.token.as_deref(),
        args.password.as_deref(),
    ) {
        Ok(o) => o,
        Err(message) => return config_failure(args.json, &message),
    };
    let location = config::locate_config(args.config.as_deref(), None, &env);
    let state_dir = config::resolve_state_dir(None, &env);
    // Like OpenClaw, the fixes come first, so the report shows the state they leave.
    let fix = args
        .fix
        .then(|| fix_permissions(&state_dir, &location.path));
    // No config file at the default location audits the defaults.
    let loaded = config::load_config(&location, &env).and_then(|loaded| match loaded {
        Some(l) => Ok(l),
        None => LoadedConfig::from_value(&location.path, json!({}), &env),
    });
    let loaded = match loaded {
        Ok(l) => l,
        Err(e) => return config_failure(args.json, &e.to_string()),
    };
    let suppressions = match loaded.audit_suppressions() {
        Ok(s) => s,
        Err(e) => return config_failure(args.json, &e.to_string()),
    };

    let mut findings = gateway_config_findings(RULES, &loaded, &env, auth_override.as_ref());
    findings.extend(current_filesystem_findings(&state_dir, &location.path));
    let probe = args.deep.then(|| deep_probe(&args));
    findings.extend(deep_probe_findings(probe.as_ref(), &env));
    let (findings, suppressed_findings) = apply_suppressions(findings, &suppressions);
    let report = Report {
        ts: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        summary: summarize(&findings),
        findings,
        suppressed_findings,
        deep: probe.map(|p| {
            json!({"gateway": {"attempted": true, "url": p.url, "ok": p.error.is_none(),
                "error": p.error, "close": null}})
        }),
    };

    if args.json {
        let fix_json = fix.as_ref().map(|actions| {
            json!({"ok": true, "stateDir": state_dir, "configPath": location.path,
                "configWritten": false, "changes": [], "actions": actions, "errors": []})
        });
        let mut out = serde_json::to_value(&report).unwrap_or(Value::Null);
        out = match fix_json {
            Some(fix) => json!({"fix": fix, "report": out, "secretDiagnostics": []}),
            None => {
                out["secretDiagnostics"] = json!([]);
                out
            }
        };
        operator::print_json(&out);
    } else {
        operator::print_out(&render_text(&report, fix.as_deref(), &env));
    }
    ExitCode::SUCCESS
}

/// OpenClaw's text layout: heading, summary, then the findings by severity.
fn render_text(
    report: &Report,
    fix: Option<&[ChmodAction]>,
    env: &dyn Fn(&str) -> Option<String>,
) -> String {
    let s = report.summary;
    let mut lines = vec![
        "clawgate security audit".to_owned(),
        format!(
            "Summary: {} critical · {} warn · {} info",
            s.critical, s.warn, s.info
        ),
    ];
    if !report.suppressed_findings.is_empty() {
        lines.push(format!(
            "Suppressed: {} configured",
            report.suppressed_findings.len()
        ));
    }
    lines.push(format!(
        "Run deeper: {}",
        cli_command("security audit --deep", env)
    ));
    if let Some(actions) = fix {
        lines.push(format!("Fix: {}", cli_command("security audit --fix", env)));
        if actions.iter().all(|a| !a.ok) {
            lines.push("Fixes: no changes applied".to_owned());
        } else {
            lines.push(String::new());
            lines.push("FIX".to_owned());
            lines.extend(
                actions
                    .iter()
                    .filter_map(|a| a.line(env))
                    .map(|l| format!("  {l}")),
            );
        }
    }
    for (severity, label) in [
        (Severity::Critical, "CRITICAL"),
        (Severity::Warn, "WARN"),
        (Severity::Info, "INFO"),
    ] {
        let list: Vec<&Finding> = report
            .findings
            .iter()
            .filter(|f| f.severity == severity)
            .collect();
        if list.is_empty() {
            continue;
        }
        lines.push(String::new());
        lines.push(label.to_owned());
        for f in list {
            lines.push(format!("{} {}", f.check_id, f.title));
            lines.push(format!("  {}", f.detail));
            if let Some(fix) = nonblank(f.remediation.as_deref()) {
                lines.push(format!("  Fix: {fix}"));
            }
        }
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use Severity::{Critical, Info};

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn the_text_report_groups_findings_by_severity() {
        let findings = vec![
            Finding::bare("x.info", Info, "I", "info detail"),
            Finding::new("x.crit", Critical, "C", "crit detail", "do this"),
        ];
        let report = Report {
            ts: 0,
            summary: summarize(&findings),
            findings,
            suppressed_findings: Vec::new(),
            deep: None,
        };
        let fix = [ChmodAction {
            kind: "chmod",
            path: PathBuf::from("/home/u/.openclaw"),
            mode: 0o700,
            ok: true,
            skipped: None,
            error: None,
        }];
        let env = env_of(&[("HOME", "/home/u")]);
        assert_eq!(
            render_text(&report, Some(&fix), &env),
            "clawgate security audit\n\
             Summary: 1 critical · 0 warn · 1 info\n\
             Run deeper: clawgate security audit --deep\n\
             Fix: clawgate security audit --fix\n\
             \n\
             FIX\n  chmod 700 ~/.openclaw\n\
             \n\
             CRITICAL\nx.crit C\n  crit detail\n  Fix: do this\n\
             \n\
             INFO\nx.info I\n  info detail"
        );
        let unchanged = [ChmodAction {
            ok: false,
            skipped: Some("already"),
            ..fix[0].clone()
        }];
        assert!(
            render_text(&report, Some(&unchanged), &env).contains("\nFixes: no changes applied\n")
        );
    }
}
