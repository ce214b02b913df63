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

/// OpenClaw's finding for the rule `id` of `rules`, when that rule applies (`security
/// audit`).
pub fn openclaw_finding(rules: &[Rule], id: &str, facts: &Exposure) -> Option<Finding> {
    let rule = rules.iter().find(|r| r.id == id)?;
    let openclaw = rule.openclaw?;
    (!(rule.findings)(facts).is_empty()).then(|| openclaw(facts))
}
