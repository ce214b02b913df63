//! The exposure report as `doctor` and `status --deep` show it: the exposure of the gateway
//! config and the findings of [`clawgate_gateway::exposure`]'s rules, as text and as JSON.

use clawgate_gateway::exposure::{self, Description, Finding, Severity};
use serde_json::{Value, json};

/// `doctor`'s JSON of a finding: its id, severity, message and fix.
pub fn finding_json(f: &Finding) -> Value {
    json!({"id": f.check_id, "severity": severity_name(f.severity), "message": message(f), "fix": fix(f)})
}

pub fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "critical",
        Severity::Warn => "warning",
        Severity::Info => "info",
    }
}

pub fn message(f: &Finding) -> String {
    if f.detail.is_empty() {
        f.title.clone()
    } else {
        format!("{}: {}", f.title, f.detail)
    }
}

pub fn fix(f: &Finding) -> &str {
    f.remediation.as_deref().unwrap_or("see the message")
}

/// The exposure report of this machine's gateway config, for `clawgate status --deep`:
/// (the exposure JSON with its `findings`, the text).
pub fn local_exposure(config_path: Option<&std::path::Path>) -> Option<(Value, String)> {
    let (e, findings) = exposure::assess_local(config_path, &clawgate_config::process_env)?;
    let mut v = json!(e);
    v["findings"] = findings.iter().map(finding_json).collect();
    let mut text = String::new();
    exposure_text(&mut text, &e);
    findings_text(&mut text, &findings);
    Some((v, text))
}

pub fn exposure_text(out: &mut String, e: &Description) {
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

pub fn findings_text(out: &mut String, findings: &[Finding]) {
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
