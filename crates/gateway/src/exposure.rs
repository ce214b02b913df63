//! Who can reach the gateway, with what credential, and the rules that judge it, written
//! once: `gateway run` refuses to start over a rule whose [`Startup`] says so, `doctor`
//! reports every rule that applies, and `security audit` reports OpenClaw's wording of the
//! rules OpenClaw's audit also has, next to its own checks ([`audit`]). All three evaluate
//! the same [`Rule`] values over the same kind of facts ([`Exposure`]), so a rule changed
//! here changes all three.

pub mod audit;
mod describe;
pub mod permissions;
mod rules;

use clawgate_config::{
    AuthMode, BindMode, GatewayConfig, GatewaySettings, SecretSource, TailscaleMode,
};
use serde::Serialize;

pub use describe::Description;
pub use rules::RULES;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Refused at start, or open to abuse.
    Critical,
    Warn,
    Info,
}

/// One finding, in OpenClaw's JSON shape (`checkId`, `severity`, `title`, `detail`,
/// `remediation`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub check_id: &'static str,
    pub severity: Severity,
    pub title: String,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remediation: Option<String>,
}

impl Finding {
    pub fn new(
        check_id: &'static str,
        severity: Severity,
        title: impl Into<String>,
        detail: impl Into<String>,
        remediation: impl Into<String>,
    ) -> Self {
        Finding {
            remediation: Some(remediation.into()),
            ..Finding::bare(check_id, severity, title, detail)
        }
    }

    /// A finding without a remediation (as OpenClaw reports some).
    pub fn bare(
        check_id: &'static str,
        severity: Severity,
        title: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Finding {
            check_id,
            severity,
            title: title.into(),
            detail: detail.into(),
            remediation: None,
        }
    }
}

/// What a rule that applies does to `gateway run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Startup {
    /// The gateway starts; `doctor` reports the finding.
    Starts,
    /// The gateway refuses to start (exit 78) with the finding's title as its one-line
    /// message (OpenClaw's runtime checks, whose message carries the fix).
    Refused,
    /// The gateway refuses to start (exit 78) with the title, the detail and the
    /// remediation as a paragraph (OpenClaw's CLI-layer check).
    RefusedWithFix,
}

/// One exposure rule.
#[derive(Clone, Copy)]
pub struct Rule {
    /// The id `doctor` reports.
    pub id: &'static str,
    pub startup: Startup,
    /// The findings when the rule applies (one per offending entry for list rules), in
    /// clawgate's words; empty when it does not apply. The rule's condition lives here only.
    pub findings: fn(&Exposure) -> Vec<Finding>,
    /// OpenClaw's wording of the same rule, reported by `security audit` when `findings`
    /// is not empty; `None` when OpenClaw's audit has no such check.
    pub openclaw: Option<fn(&Exposure) -> Finding>,
}

/// The facts the rules judge. `gateway run` and `doctor` take them from the resolved
/// settings ([`Exposure::of_gateway`]); `security audit` from OpenClaw's resolution of the
/// same config.
#[derive(Debug, Clone)]
pub struct Exposure<'a> {
    pub config: &'a GatewayConfig,
    pub bind: BindMode,
    /// The listeners are on loopback only.
    pub loopback: bool,
    pub auth_mode: AuthMode,
    /// A shared secret someone configured, or a trusted proxy, guards the gateway (a token
    /// the gateway generates at start does not count: nobody else knows it).
    pub guarded: bool,
    /// The secret of the auth mode in effect, when it is a token or password.
    pub secret: Option<&'a str>,
    pub tailscale: TailscaleMode,
    /// Tailscale identities confirmed by whois are accepted on the Serve listener.
    pub allow_tailscale: bool,
    pub tls: bool,
    pub in_container: bool,
    /// Advice to print next to an auth refusal (e.g. that `gateway.remote.token` does not
    /// enable local auth).
    pub hints: &'a [String],
}

impl<'a> Exposure<'a> {
    /// The facts of the gateway `settings` start: `loopback` is whether its bind resolved
    /// to loopback only.
    pub fn of_gateway(
        settings: &'a GatewaySettings,
        config: &'a GatewayConfig,
        loopback: bool,
        in_container: bool,
    ) -> Self {
        let mode = settings.auth.mode;
        let secret = match mode {
            AuthMode::Token => settings.auth.token.as_ref(),
            AuthMode::Password => settings.auth.password.as_ref(),
            AuthMode::None | AuthMode::TrustedProxy => None,
        };
        Exposure {
            config,
            bind: settings.bind,
            loopback,
            auth_mode: mode,
            guarded: has_shared_secret(settings) || mode == AuthMode::TrustedProxy,
            secret: secret.map(|s| s.expose()),
            tailscale: settings.tailscale_mode,
            allow_tailscale: allow_tailscale(
                config.auth.allow_tailscale,
                settings.tailscale_mode,
                mode,
            ) && settings.tailscale_mode != TailscaleMode::Off,
            tls: settings.tls.is_some(),
            in_container,
            hints: &settings.hints,
        }
    }
}

/// `gateway.auth.allowTailscale` in effect: as configured, else on exactly for Tailscale
/// Serve with token or no auth (OpenClaw's default).
pub fn allow_tailscale(configured: Option<bool>, tailscale: TailscaleMode, mode: AuthMode) -> bool {
    configured.unwrap_or(
        tailscale == TailscaleMode::Serve
            && !matches!(mode, AuthMode::Password | AuthMode::TrustedProxy),
    )
}

/// True when the effective auth mode has a configured secret (a generated runtime token does
/// not count: nobody else knows it).
fn has_shared_secret(settings: &GatewaySettings) -> bool {
    match settings.auth.mode {
        AuthMode::Token => !matches!(
            settings.source_of_token,
            None | Some(SecretSource::Generated)
        ),
        AuthMode::Password => settings.auth.password.is_some(),
        AuthMode::None | AuthMode::TrustedProxy => false,
    }
}

/// Every finding of `rules` over `facts`, in the rules' order (`doctor`).
pub fn evaluate(rules: &[Rule], facts: &Exposure) -> Vec<Finding> {
    rules.iter().flat_map(|r| (r.findings)(facts)).collect()
}

/// The first rule that keeps the gateway from starting, with its finding (`gateway run`).
pub fn startup_refusal(rules: &[Rule], facts: &Exposure) -> Option<(Startup, Finding)> {
    rules
        .iter()
        .filter(|r| r.startup != Startup::Starts)
        .find_map(|r| {
            (r.findings)(facts)
                .into_iter()
                .next()
                .map(|f| (r.startup, f))
        })
}

/// The start-up refusal of `rules` for these settings, as `gateway run` prints it before
/// exiting 78: OpenClaw's CLI-layer refusal as a paragraph (the refusal, what to do, then
/// the hints), its runtime checks as one line.
pub fn refusal_message(
    rules: &[Rule],
    settings: &GatewaySettings,
    cfg: &GatewayConfig,
    loopback: bool,
    in_container: bool,
) -> Option<String> {
    let facts = Exposure::of_gateway(settings, cfg, loopback, in_container);
    let (startup, f) = startup_refusal(rules, &facts)?;
    Some(match startup {
        Startup::RefusedWithFix => {
            let mut lines = vec![f.title];
            lines.extend((!f.detail.is_empty()).then_some(f.detail));
            lines.extend(f.remediation);
            lines.extend(settings.hints.iter().cloned());
            lines.join("\n")
        }
        Startup::Refused | Startup::Starts => format!("clawgate: {}", f.title),
    })
}

/// The exposure of the gateway `s` starts and its risky combinations, for `doctor` and
/// `status --deep`: the bind's own finding, then the findings of `rules` (one that keeps the
/// gateway from starting says so).
pub fn assess(
    rules: &[Rule],
    s: &GatewaySettings,
    cfg: &GatewayConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> (Description, Vec<Finding>) {
    let mut findings = Vec::new();
    let in_container = crate::bind::is_container(env);
    let mut detector = crate::bind::TailnetDetector::from_env(env);
    detector.timeout = std::time::Duration::from_secs(2);
    let plan = crate::bind::resolve_bind(s.bind, s.custom_bind_host, &detector, in_container);
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
    let description = Description::of(s, &facts, host, crate::tls::configured_fingerprint(s));
    (description, findings)
}

/// [`assess`] of this machine's gateway config (`config_path`, else where the environment
/// says), with [`RULES`]; `None` when the config cannot be loaded or resolved (`status
/// --deep`: `doctor` reports why).
pub fn assess_local(
    config_path: Option<&std::path::Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<(Description, Vec<Finding>)> {
    let (settings, loaded) = crate::local_settings(config_path, None, env).ok()?;
    let cfg = loaded.map(|l| l.gateway).unwrap_or_default();
    Some(assess(RULES, &settings, &cfg, env))
}

/// OpenClaw's finding for the rule `id` of `rules`, when that rule applies (`security
/// audit`).
pub fn openclaw_finding(rules: &[Rule], id: &str, facts: &Exposure) -> Option<Finding> {
    let rule = rules.iter().find(|r| r.id == id)?;
    let openclaw = rule.openclaw?;
    (!(rule.findings)(facts).is_empty()).then(|| openclaw(facts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use audit::gateway_config_findings;
    use clawgate_config::{self as config, GatewayRunInputs, LoadedConfig};
    use serde_json::{Value, json};

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
        let refusal = refusal_message(rules, &s, &config.gateway, loopback, false);
        let doctor = assess(rules, &s, &config.gateway, &|_| None).1;
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
            let refusal = refusal_message(RULES, &s, &config.gateway, loopback, false)
                .unwrap_or_else(|| panic!("{id}: gateway run starts"));
            let doctor = assess(RULES, &s, &config.gateway, &|_| None).1;
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
