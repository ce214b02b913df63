//! `security audit`: OpenClaw's `openclaw security audit` checks for what clawgate has, the
//! gateway config (bind, auth, Control UI origins, proxies, Tailscale, discovery), the deep
//! probe and suppressions. Every finding carries OpenClaw's check id, severity, title,
//! detail and remediation and is raised under OpenClaw's conditions, so a config audited by
//! either tool reports the same. The checks that are exposure rules too (bind without auth,
//! origins, trusted-proxy loopback and allowlist) are the [`Rule`]s `doctor` and `gateway
//! run` evaluate, in OpenClaw's words.

use clawgate_config::{
    self as config, AuthMode, BindMode, GatewayConfig, LoadedConfig, MdnsMode, Secret, Suppression,
    TailscaleMode,
};
use serde::Serialize;

use super::{Exposure, Finding, Rule, Severity, openclaw_finding};

/// `--auth` with its secret: the audit's view of a gateway started with other auth flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthOverride {
    pub mode: AuthMode,
    pub token: Option<String>,
    pub password: Option<String>,
}

impl AuthOverride {
    /// `--auth` with its `--token`/`--password`, as OpenClaw's
    /// `buildAuditGatewayAuthOverride`: `None` without `--auth`; an unknown mode, or token or
    /// password mode without its secret, is refused with OpenClaw's message.
    pub fn from_flags(
        auth: Option<&str>,
        token: Option<&str>,
        password: Option<&str>,
    ) -> Result<Option<Self>, String> {
        let Some(mode) = nonblank(auth) else {
            return Ok(None);
        };
        let mode: AuthMode = mode.to_ascii_lowercase().parse().map_err(|_| {
            "Invalid --auth value. Expected \"none\", \"token\", \"password\", or \"trusted-proxy\"."
                .to_owned()
        })?;
        let token = nonblank(token).map(str::to_owned);
        let password = nonblank(password).map(str::to_owned);
        match mode {
            AuthMode::Token if token.is_none() => Err(
                "Invalid --auth token: pass --token <token> for audit auth override.".to_owned(),
            ),
            AuthMode::Password if password.is_none() => Err(
                "Invalid --auth password: pass --password <password> for audit auth override."
                    .to_owned(),
            ),
            _ => Ok(Some(AuthOverride {
                mode,
                token,
                password,
            })),
        }
    }
}

/// A suppressed finding with the reason its suppression gives.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SuppressedFinding {
    #[serde(flatten)]
    pub finding: Finding,
    pub suppression: SuppressionReason,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SuppressionReason {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The outcome of the `--deep` probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeepProbe {
    pub url: String,
    /// Why the probe failed; `None` when the gateway answered every read call.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub critical: usize,
    pub warn: usize,
    pub info: usize,
}

/// A command line to show, with `--profile` when one is in effect (OpenClaw's
/// `formatCliCommand`), so a pasted command audits the same profile.
pub fn cli_command(args: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    match config::active_profile(env) {
        Some(profile) => format!("clawgate --profile {profile} {args}"),
        None => format!("clawgate {args}"),
    }
}

pub fn nonblank(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

fn secret_text(s: &Option<Secret>) -> Option<&str> {
    s.as_ref().map(Secret::expose)
}

/// `CLAWGATE_<suffix>`, else `OPENCLAW_<suffix>`, trimmed and non-blank.
fn env_secret(env: &dyn Fn(&str) -> Option<String>, suffix: &str) -> Option<String> {
    ["CLAWGATE_", "OPENCLAW_"].iter().find_map(|prefix| {
        nonblank(env(&format!("{prefix}{suffix}")).as_deref()).map(str::to_owned)
    })
}

/// Tools the gateway's HTTP `/tools/invoke` refuses unless `gateway.tools.allow` names them
/// (OpenClaw's `DEFAULT_GATEWAY_HTTP_TOOL_DENY`, in its order).
const HTTP_TOOL_DENY: &[&str] = &[
    "exec",
    "spawn",
    "shell",
    "fs_write",
    "fs_delete",
    "fs_move",
    "apply_patch",
    "terminal",
    "portal",
    "sessions_spawn",
    "sessions_send",
    "conversations_list",
    "conversations_send",
    "conversations_turn",
    "automations",
    "gateway",
    "plugins",
    "nodes",
    "computer",
    "mobile_ui",
    "openclaw",
];

/// Gateway auth as OpenClaw's audit resolves it (`resolveGatewayAuthForConfig` and the
/// credential plan). Unlike the gateway's own start-up, a `gateway.remote.*` secret counts
/// here, as it does in OpenClaw, so both tools judge one config alike.
struct ResolvedAuth {
    mode: AuthMode,
    /// The mode written in the config or given with `--auth`.
    explicit_mode: Option<AuthMode>,
    token: Option<String>,
    password: Option<String>,
    allow_tailscale: bool,
}

fn resolve_auth(
    gw: &GatewayConfig,
    env: &dyn Fn(&str) -> Option<String>,
    auth_override: Option<&AuthOverride>,
    tailscale: TailscaleMode,
) -> ResolvedAuth {
    let explicit_mode = auth_override.map(|o| o.mode).or(gw.auth.mode);
    let local_token = auth_override
        .and_then(|o| o.token.as_deref())
        .or(secret_text(&gw.auth.token));
    let local_password = auth_override
        .and_then(|o| o.password.as_deref())
        .or(secret_text(&gw.auth.password));
    let token = nonblank(local_token)
        .map(str::to_owned)
        .or_else(|| env_secret(env, "GATEWAY_TOKEN"))
        .or_else(|| nonblank(secret_text(&gw.remote.token)).map(str::to_owned));
    let remote_password = match explicit_mode {
        Some(AuthMode::TrustedProxy) => None,
        _ => nonblank(secret_text(&gw.remote.password)),
    };
    let password = nonblank(local_password)
        .map(str::to_owned)
        .or_else(|| env_secret(env, "GATEWAY_PASSWORD"))
        .or_else(|| remote_password.map(str::to_owned));
    let mode = explicit_mode.unwrap_or(if password.is_some() {
        AuthMode::Password
    } else {
        AuthMode::Token
    });
    let allow_tailscale = super::allow_tailscale(gw.auth.allow_tailscale, tailscale, mode);
    ResolvedAuth {
        mode,
        explicit_mode,
        token,
        password,
        allow_tailscale,
    }
}

impl ResolvedAuth {
    /// A shared secret (or a proxy) guards the gateway.
    fn guards_gateway(&self) -> bool {
        let configured = match self.explicit_mode {
            Some(AuthMode::Token) => self.token.is_some(),
            Some(AuthMode::Password) => self.password.is_some(),
            Some(AuthMode::None | AuthMode::TrustedProxy) => false,
            None => self.token.is_some() || self.password.is_some(),
        };
        configured || self.mode == AuthMode::TrustedProxy
    }

    /// Token auth with no token configured: clawgate's gateway then generates one on first
    /// start and keeps it in `<state dir>/gateway.token`, so it never serves without auth
    /// (where OpenClaw's gateway would, on loopback).
    fn uses_stored_token(&self) -> bool {
        self.mode == AuthMode::Token && self.token.is_none()
    }
}

/// `127.0.0.1`, `::1`, `127.0.0.1/32` or `::1/128` and nothing wider (OpenClaw's
/// `isStrictLoopbackTrustedProxyEntry`).
fn is_strict_loopback_proxy(entry: &str) -> bool {
    let entry = entry.trim();
    match entry.split_once('/') {
        None => entry == "127.0.0.1" || entry.eq_ignore_ascii_case("::1"),
        Some((ip, prefix)) => {
            let ip = ip.trim();
            let prefix = prefix.trim();
            let Ok(prefix) = prefix.parse::<u32>() else {
                return false;
            };
            match ip.parse::<std::net::IpAddr>() {
                Ok(std::net::IpAddr::V4(_)) => ip == "127.0.0.1" && prefix == 32,
                Ok(std::net::IpAddr::V6(_)) => ip.eq_ignore_ascii_case("::1") && prefix == 128,
                Err(_) => false,
            }
        }
    }
}

/// A value OpenClaw refuses as a gateway secret: blank, `undefined` or `null`.
fn is_placeholder_secret(value: &str) -> bool {
    matches!(value.trim(), "" | "undefined" | "null")
}

/// The gateway config checks, in OpenClaw's order (`collectGatewayConfigFindings`); those
/// that are exposure rules too come from `rules` (see [`super::RULES`]).
pub fn gateway_config_findings(
    rules: &[Rule],
    config: &LoadedConfig,
    env: &dyn Fn(&str) -> Option<String>,
    auth_override: Option<&AuthOverride>,
) -> Vec<Finding> {
    use Severity::{Critical, Info, Warn};
    let gw = &config.gateway;
    let mut findings = Vec::new();
    let bind = gw.bind.unwrap_or(BindMode::Loopback);
    let exposed = bind != BindMode::Loopback;
    let tailscale_mode = gw.tailscale_mode.unwrap_or(TailscaleMode::Off);
    let tailscale = tailscale_mode.as_str();
    let auth = resolve_auth(gw, env, auth_override, tailscale_mode);
    let guarded = auth.guards_gateway();
    let facts = Exposure {
        config: gw,
        bind,
        loopback: !exposed,
        auth_mode: auth.mode,
        guarded,
        secret: None,
        tailscale: tailscale_mode,
        allow_tailscale: auth.allow_tailscale,
        tls: gw.tls.enabled == Some(true),
        in_container: false,
        hints: &[],
    };
    let shared = |id: &str| openclaw_finding(rules, id, &facts);
    let control_ui_enabled = gw.control_ui.enabled != Some(false);
    let no_allowed_origins = gw.control_ui.origins().next().is_none();
    let host_header_fallback = gw.control_ui.host_header_origin_fallback == Some(true);
    let trusted_proxies = &gw.trusted_proxies;
    let exposed_or = |more: bool| if exposed || more { Critical } else { Warn };

    let tools_allow: Vec<String> = gw
        .tools_allow
        .iter()
        .map(|t| t.trim().to_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    let reenabled: Vec<&str> = HTTP_TOOL_DENY
        .iter()
        .copied()
        .filter(|t| tools_allow.iter().any(|a| a == t))
        .collect();
    if !reenabled.is_empty() {
        findings.push(Finding::new(
            "gateway.tools_invoke_http.dangerous_allow",
            exposed_or(tailscale == "funnel"),
            "Gateway HTTP /tools/invoke re-enables dangerous tools",
            format!("gateway.tools.allow includes {} which removes them from the default HTTP deny list. This can allow remote session spawning / control-plane actions via HTTP and increases RCE blast radius if the gateway is reachable.", reenabled.join(", ")),
            "Remove these entries from gateway.tools.allow (recommended). If you keep them enabled, keep gateway.bind loopback-only (or tailnet-only), restrict network exposure, and treat the gateway token/password as full-admin.",
        ));
    }
    findings.extend(shared("bind_without_auth"));
    if !exposed && control_ui_enabled && trusted_proxies.is_empty() {
        findings.push(Finding::new(
            "gateway.trusted_proxies_missing",
            Warn,
            "Reverse proxy headers are not trusted",
            "gateway.bind is loopback and gateway.trustedProxies is empty. If you expose the Control UI through a reverse proxy, configure trusted proxies so local-client checks cannot be spoofed.",
            "Set gateway.trustedProxies to your proxy IPs or keep the Control UI local-only.",
        ));
    }
    let tailscale_identity = auth.allow_tailscale && tailscale == "serve";
    if !exposed
        && control_ui_enabled
        && !guarded
        && !tailscale_identity
        && !auth.uses_stored_token()
    {
        findings.push(Finding::new(
            "gateway.loopback_no_auth",
            Critical,
            "Gateway auth missing on loopback",
            "gateway.bind is loopback but no gateway auth secret is configured. If the Control UI is exposed through a reverse proxy, unauthenticated access is possible.",
            "Set gateway.auth (token recommended) or keep the Control UI local-only.",
        ));
    }
    if exposed && control_ui_enabled && no_allowed_origins && !host_header_fallback {
        findings.push(Finding::new(
            "gateway.control_ui.allowed_origins_required",
            Critical,
            "Non-loopback Control UI missing explicit allowed origins",
            "Control UI is enabled on a non-loopback bind but gateway.controlUi.allowedOrigins is empty. Strict origin policy requires explicit allowed origins for non-loopback deployments.",
            "Set gateway.controlUi.allowedOrigins to full trusted origins (for example https://control.example.com). If your deployment intentionally relies on Host-header origin fallback, set gateway.controlUi.dangerouslyAllowHostHeaderOriginFallback=true.",
        ));
    }
    findings.extend(shared("origins_wildcard"));
    findings.extend(shared("origins_host_fallback"));
    if gw.allow_real_ip_fallback == Some(true) {
        let remote_proxy = trusted_proxies.iter().any(|p| !is_strict_loopback_proxy(p));
        findings.push(Finding::new(
            "gateway.real_ip_fallback_enabled",
            exposed_or(auth.mode == AuthMode::TrustedProxy && remote_proxy),
            "X-Real-IP fallback is enabled",
            "gateway.allowRealIpFallback=true trusts X-Real-IP when trusted proxies omit X-Forwarded-For. Misconfigured proxies that forward client-supplied X-Real-IP can spoof source IP and local-client checks.",
            "Keep gateway.allowRealIpFallback=false (default). Only enable this when your trusted proxy always overwrites X-Real-IP and cannot provide X-Forwarded-For.",
        ));
    }
    if config.discovery.mdns_mode == Some(MdnsMode::Full) {
        findings.push(Finding::new(
            "discovery.mdns_full_mode",
            exposed_or(false),
            "mDNS full mode can leak host metadata",
            "discovery.mdns.mode=\"full\" publishes cliPath/sshPort in local-network TXT records. This can reveal usernames, filesystem layout, and management ports.",
            "Prefer discovery.mdns.mode=\"minimal\" (recommended) or \"off\", especially when gateway.bind is not loopback.",
        ));
    }
    match tailscale {
        "funnel" => findings.push(Finding::new(
            "gateway.tailscale_funnel",
            Critical,
            "Tailscale Funnel exposure enabled",
            "gateway.tailscale.mode=\"funnel\" exposes the Gateway publicly; keep auth strict and treat it as internet-facing.",
            "Prefer tailscale.mode=\"serve\" (tailnet-only) or set tailscale.mode=\"off\".",
        )),
        "serve" => findings.push(Finding::bare(
            "gateway.tailscale_serve",
            Info,
            "Tailscale Serve exposure enabled",
            "gateway.tailscale.mode=\"serve\" exposes the Gateway to your tailnet (loopback behind Tailscale).",
        )),
        _ => {}
    }
    for flag in dangerous_flags(config) {
        findings.push(Finding::new(
            "config.insecure_or_dangerous_flags",
            Warn,
            "Insecure or dangerous config flag enabled",
            format!("Detected enabled flag: {flag}."),
            "Disable this flag when not actively debugging, or keep deployment scoped to trusted/local-only networks.",
        ));
    }
    findings.extend(secret_strength_finding(gw, &auth, auth_override));
    if auth.mode == AuthMode::TrustedProxy {
        findings.extend(trusted_proxy_findings(gw, &shared));
    }
    let rate_limited = gw.auth.rate_limit.is_some();
    if exposed && auth.mode != AuthMode::TrustedProxy && !rate_limited {
        findings.push(Finding::new(
            "gateway.auth_no_rate_limit",
            Warn,
            "No auth rate limiting configured",
            "gateway.bind is not loopback but no gateway.auth.rateLimit is configured. Without rate limiting, brute-force auth attacks are not mitigated.",
            "Set gateway.auth.rateLimit (e.g. { maxAttempts: 10, windowMs: 60000, lockoutMs: 300000 }).",
        ));
    }
    findings
}

/// The enabled flags, among the keys clawgate knows, that OpenClaw lists as weakening
/// security on purpose (`collectCoreInsecureOrDangerousFlags`).
fn dangerous_flags(config: &LoadedConfig) -> Vec<String> {
    let mut flags = Vec::new();
    if config.gateway.control_ui.host_header_origin_fallback == Some(true) {
        flags.push("gateway.controlUi.dangerouslyAllowHostHeaderOriginFallback=true".to_owned());
    }
    let suppressions = config.audit_suppressions().map_or(0, |s| s.len());
    if suppressions > 0 {
        flags.push(format!(
            "security.audit.suppressions configured ({suppressions})"
        ));
    }
    flags
}

/// The check ids and fix of one kind of gateway secret.
struct SecretKind {
    name: &'static str,
    placeholder_id: &'static str,
    short_id: &'static str,
    placeholder_fix: &'static str,
}

const TOKEN_KIND: SecretKind = SecretKind {
    name: "token",
    placeholder_id: "gateway.token_placeholder_value",
    short_id: "gateway.token_too_short",
    placeholder_fix: "Set gateway.auth.token to a long random value (for example, `openssl rand -hex 32`), or remove it so the Gateway generates one; otherwise rotate its external secret source. Restart the Gateway afterward.",
};

const PASSWORD_KIND: SecretKind = SecretKind {
    name: "password",
    placeholder_id: "gateway.password_placeholder_value",
    short_id: "gateway.password_too_short",
    placeholder_fix: "Generate a real secret (for example, `openssl rand -hex 32`) and update OPENCLAW_GATEWAY_PASSWORD or gateway.auth.password (or its external source). Restart the Gateway afterward.",
};

/// A placeholder or short secret for the mode in effect (`gateway.token_*`,
/// `gateway.password_*`).
fn secret_strength_finding(
    gw: &GatewayConfig,
    auth: &ResolvedAuth,
    auth_override: Option<&AuthOverride>,
) -> Option<Finding> {
    let (kind, resolved, overridden, configured) = match auth.mode {
        AuthMode::Token => (
            TOKEN_KIND,
            &auth.token,
            auth_override.and_then(|o| o.token.as_deref()),
            secret_text(&gw.auth.token),
        ),
        AuthMode::Password => (
            PASSWORD_KIND,
            &auth.password,
            auth_override.and_then(|o| o.password.as_deref()),
            secret_text(&gw.auth.password),
        ),
        AuthMode::None | AuthMode::TrustedProxy => return None,
    };
    let name = kind.name;
    let input = resolved.as_deref().or(overridden).or(configured)?;
    if is_placeholder_secret(input) {
        return Some(Finding::new(
            kind.placeholder_id,
            Severity::Critical,
            format!("Gateway {name} is a blank or undefined/null placeholder"),
            format!(
                "The selected Gateway {name} is a known non-secret value. Gateway startup rejects it."
            ),
            kind.placeholder_fix,
        ));
    }
    // OpenClaw counts UTF-16 code units (JavaScript's `length`).
    let length = input.trim().encode_utf16().count();
    (length < 24).then(|| {
        Finding::bare(
            kind.short_id,
            Severity::Warn,
            format!("Gateway {name} looks short"),
            format!("gateway auth {name} is {length} chars; prefer a long random {name}."),
        )
    })
}

/// The trusted-proxy auth checks (`gateway.trusted_proxy_*`).
fn trusted_proxy_findings(
    gw: &GatewayConfig,
    shared: &dyn Fn(&str) -> Option<Finding>,
) -> Vec<Finding> {
    use Severity::{Critical, Warn};
    let tp = gw.auth.trusted_proxy.clone().unwrap_or_default();
    let mut findings = vec![Finding::new(
        "gateway.trusted_proxy_auth",
        Critical,
        "Trusted-proxy auth mode enabled",
        "gateway.auth.mode=\"trusted-proxy\" delegates authentication to a reverse proxy. Ensure your proxy (Pomerium, Caddy, nginx) handles auth correctly and that gateway.trustedProxies only contains IPs of your actual proxy servers.",
        "Verify: (1) Your proxy terminates TLS and authenticates users. (2) gateway.trustedProxies is restricted to proxy IPs only. (3) Direct access to the Gateway port is blocked by firewall. Same-host proxy requests are rejected unless gateway.auth.trustedProxy.allowLoopback=true and gateway.trustedProxies includes their loopback source; enable only for a deliberate same-host trust boundary. See /gateway/trusted-proxy-auth for setup guidance.",
    )];
    if gw.trusted_proxies.is_empty() {
        findings.push(Finding::new(
            "gateway.trusted_proxy_no_proxies",
            Critical,
            "Trusted-proxy auth enabled but no trusted proxies configured",
            "gateway.auth.mode=\"trusted-proxy\" but gateway.trustedProxies is empty. All requests will be rejected.",
            "Set gateway.trustedProxies to the IP(s) of your reverse proxy.",
        ));
    }
    if tp.user_header.as_deref().is_none_or(str::is_empty) {
        findings.push(Finding::new(
            "gateway.trusted_proxy_no_user_header",
            Critical,
            "Trusted-proxy auth missing userHeader config",
            "gateway.auth.mode=\"trusted-proxy\" but gateway.auth.trustedProxy.userHeader is not configured.",
            "Set gateway.auth.trustedProxy.userHeader to the header name your proxy uses (e.g., \"x-forwarded-user\", \"x-pomerium-claim-email\").",
        ));
    }
    findings.extend(shared("trusted_proxy_loopback"));
    if tp.device_auto_approve {
        findings.push(Finding::new(
            "gateway.trusted_proxy_device_auto_approve",
            Warn,
            "Trusted-proxy operator device auto-approval enabled",
            "gateway.auth.trustedProxy.deviceAutoApprove.enabled=true delegates new browser and native UI operator device pairing entirely to the reverse-proxy identity.",
            "Enable this only when the proxy is the exclusive Gateway ingress, strongly authenticates users, overwrites identity headers, and restricts access with allowUsers.",
        ));
        let admin = tp
            .device_auto_approve_scopes
            .iter()
            .any(|s| s.trim() == "operator.admin");
        if admin {
            findings.push(Finding::new(
                "gateway.trusted_proxy_device_auto_approve_admin",
                Critical,
                "Trusted-proxy device auto-approval allows full admin",
                "gateway.auth.trustedProxy.deviceAutoApprove.scopes includes operator.admin, so every proxy-authenticated user can auto-approve a new operator device with full admin; requests without scopes receive full admin automatically.",
                "Remove operator.admin and approve admin access manually, or grant admin per identity via gateway.auth.identityScopes.",
            ));
        }
    }
    findings.extend(shared("trusted_proxy_any_user"));
    findings
}

/// `gateway.probe_failed` when the deep probe did not get through.
pub fn deep_probe_findings(
    probe: Option<&DeepProbe>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Vec<Finding> {
    let Some(error) = probe.and_then(|p| p.error.as_ref()) else {
        return Vec::new();
    };
    vec![Finding::new(
        "gateway.probe_failed",
        Severity::Warn,
        "Gateway probe failed (deep)",
        error.clone(),
        format!(
            "Run \"{}\" to debug connectivity/auth, then re-run \"{}\".",
            cli_command("status --deep", env),
            cli_command("security audit --deep", env)
        ),
    )]
}

/// Same check id, and the title/detail contain the given texts (case-insensitive).
fn suppresses(s: &Suppression, f: &Finding) -> bool {
    let contains = |haystack: &str, needle: &Option<String>| {
        let needle = needle.as_deref().unwrap_or("").trim().to_lowercase();
        needle.is_empty() || haystack.to_lowercase().contains(&needle)
    };
    let check_id = s.check_id.trim();
    !check_id.is_empty()
        && f.check_id == check_id
        && contains(&f.title, &s.title_includes)
        && contains(&f.detail, &s.detail_includes)
}

/// Splits findings into the active ones and those the first matching suppression covers,
/// then adds `security.audit.suppressions.active` when any suppression is configured.
pub fn apply_suppressions(
    findings: Vec<Finding>,
    suppressions: &[Suppression],
) -> (Vec<Finding>, Vec<SuppressedFinding>) {
    if suppressions.is_empty() {
        return (findings, Vec::new());
    }
    let mut active = Vec::new();
    let mut suppressed = Vec::new();
    for finding in findings {
        match suppressions.iter().find(|s| suppresses(s, &finding)) {
            Some(s) => suppressed.push(SuppressedFinding {
                finding,
                suppression: SuppressionReason {
                    reason: nonblank(s.reason.as_deref()).map(str::to_owned),
                },
            }),
            None => active.push(finding),
        }
    }
    active.push(Finding::new(
        "security.audit.suppressions.active",
        Severity::Info,
        "Security audit suppressions configured",
        format!(
            "security.audit.suppressions has {} configured suppression(s); {} finding(s) moved to suppressedFindings.",
            suppressions.len(),
            suppressed.len()
        ),
        "Review suppressedFindings and remove suppressions when the accepted risk no longer applies.",
    ));
    (active, suppressed)
}

pub fn summarize(findings: &[Finding]) -> Summary {
    let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
    Summary {
        critical: count(Severity::Critical),
        warn: count(Severity::Warn),
        info: count(Severity::Info),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposure::RULES;
    use Severity::{Critical, Info, Warn};
    use serde_json::{Value, json};
    use std::path::Path;

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

    /// The gateway findings of `config` as `(checkId, severity)`.
    fn audit_with(
        config: Value,
        env: &[(&str, &str)],
        auth_override: Option<&AuthOverride>,
    ) -> Vec<(&'static str, Severity)> {
        let env = env_of(env);
        let loaded = LoadedConfig::from_value(Path::new("/cfg/openclaw.json"), config, &env)
            .expect("valid config");
        gateway_config_findings(RULES, &loaded, &env, auth_override)
            .into_iter()
            .map(|f| (f.check_id, f.severity))
            .collect()
    }

    fn audit(config: Value) -> Vec<(&'static str, Severity)> {
        audit_with(config, &[], None)
    }

    const TOKEN: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn defaults_warn_about_proxies_and_missing_loopback_auth() {
        // Zero config: the gateway's generated token guards loopback.
        assert_eq!(
            audit(json!({})),
            [("gateway.trusted_proxies_missing", Warn)]
        );
        assert_eq!(
            audit(json!({"gateway": {"auth": {"mode": "none"}}})),
            [
                ("gateway.trusted_proxies_missing", Warn),
                ("gateway.loopback_no_auth", Critical)
            ]
        );
        let proxied_with_token =
            json!({"gateway": {"auth": {"token": TOKEN}, "trustedProxies": ["10.0.0.1"]}});
        assert_eq!(audit(proxied_with_token), []);
        // The Control UI switched off leaves nothing to spoof or reach.
        assert_eq!(
            audit(json!({"gateway": {"controlUi": {"enabled": false}}})),
            []
        );
    }

    #[test]
    fn any_configured_token_counts_as_auth_like_openclaw() {
        let proxied =
            |auth: Value| json!({"gateway": {"trustedProxies": ["10.0.0.1"], "auth": auth}});
        assert_eq!(audit(proxied(json!({"token": TOKEN}))), []);
        assert_eq!(audit(proxied(json!({"password": TOKEN}))), []);
        for var in ["OPENCLAW_GATEWAY_TOKEN", "CLAWGATE_GATEWAY_TOKEN"] {
            assert_eq!(audit_with(proxied(json!({})), &[(var, TOKEN)], None), []);
        }
        let remote =
            json!({"gateway": {"trustedProxies": ["10.0.0.1"], "remote": {"token": TOKEN}}});
        assert_eq!(audit(remote), []);
        // An explicit mode needs its own secret; `none` is never auth.
        assert_eq!(
            audit(proxied(json!({"mode": "password", "token": TOKEN}))),
            [("gateway.loopback_no_auth", Critical)]
        );
        assert_eq!(
            audit(proxied(json!({"mode": "none", "token": TOKEN}))),
            [("gateway.loopback_no_auth", Critical)]
        );
    }

    #[test]
    fn a_non_loopback_bind_needs_auth_origins_and_rate_limiting() {
        assert_eq!(
            audit(json!({"gateway": {"bind": "lan"}})),
            [
                ("gateway.bind_no_auth", Critical),
                ("gateway.control_ui.allowed_origins_required", Critical),
                ("gateway.auth_no_rate_limit", Warn),
            ]
        );
        let hardened = json!({"gateway": {"bind": "custom", "customBindHost": "10.0.0.5",
            "auth": {"token": TOKEN, "rateLimit": {"maxAttempts": 5}},
            "controlUi": {"allowedOrigins": ["https://control.example.com"]}}});
        assert_eq!(audit(hardened), []);
        let env = env_of(&[]);
        let tailnet = json!({"gateway": {"bind": "tailnet"}});
        let loaded = LoadedConfig::from_value(Path::new("/c.json"), tailnet, &env).unwrap();
        let findings = gateway_config_findings(RULES, &loaded, &env, None);
        assert_eq!(
            findings[0].detail,
            "gateway.bind=\"tailnet\" but no gateway.auth token/password is configured."
        );
    }

    #[test]
    fn origin_checks_are_critical_only_beyond_loopback() {
        let ui = |bind: &str| {
            json!({"gateway": {"bind": bind, "auth": {"token": TOKEN, "rateLimit": {}},
                "trustedProxies": ["10.0.0.1"],
                "controlUi": {"allowedOrigins": [" * "], "dangerouslyAllowHostHeaderOriginFallback": true}}})
        };
        let expected = |s| {
            vec![
                ("gateway.control_ui.allowed_origins_wildcard", s),
                ("gateway.control_ui.host_header_origin_fallback", s),
                ("config.insecure_or_dangerous_flags", Warn),
            ]
        };
        assert_eq!(audit(ui("loopback")), expected(Warn));
        assert_eq!(audit(ui("lan")), expected(Critical));
    }

    #[test]
    fn real_ip_fallback_is_critical_when_exposed_or_behind_a_remote_trusted_proxy() {
        let cfg = |bind: &str, mode: &str, proxy: &str| {
            json!({"gateway": {"bind": bind, "allowRealIpFallback": true, "trustedProxies": [proxy],
                "auth": {"mode": mode, "token": TOKEN, "rateLimit": {},
                    "trustedProxy": {"userHeader": "x-user", "allowUsers": ["a"]}},
                "controlUi": {"allowedOrigins": ["https://a.example"]}}})
        };
        let real_ip = |v: Value| {
            audit(v)
                .into_iter()
                .find(|(id, _)| *id == "gateway.real_ip_fallback_enabled")
                .map(|(_, s)| s)
        };
        assert_eq!(real_ip(cfg("loopback", "token", "10.0.0.1")), Some(Warn));
        assert_eq!(real_ip(cfg("lan", "token", "10.0.0.1")), Some(Critical));
        assert_eq!(
            real_ip(cfg("loopback", "trusted-proxy", "10.0.0.1")),
            Some(Critical)
        );
        assert_eq!(
            real_ip(cfg("loopback", "trusted-proxy", "127.0.0.1/32")),
            Some(Warn)
        );
    }

    #[test]
    fn strict_loopback_proxies() {
        for entry in ["127.0.0.1", " ::1 ", "::1/128", "127.0.0.1/32", "::1/ 128"] {
            assert!(is_strict_loopback_proxy(entry), "{entry}");
        }
        for entry in [
            "127.0.0.0/8",
            "127.0.0.2",
            "::1/64",
            "10.0.0.1",
            "",
            "x/32",
            "::1/-1",
        ] {
            assert!(!is_strict_loopback_proxy(entry), "{entry}");
        }
    }

    #[test]
    fn tailscale_serve_identity_counts_as_loopback_auth() {
        let serve = |auth: Value| json!({"gateway": {"tailscale": {"mode": "serve"}, "trustedProxies": ["10.0.0.1"], "auth": auth}});
        assert_eq!(audit(serve(json!({}))), [("gateway.tailscale_serve", Info)]);
        assert_eq!(
            audit(serve(json!({"mode": "none", "allowTailscale": false}))),
            [
                ("gateway.loopback_no_auth", Critical),
                ("gateway.tailscale_serve", Info)
            ]
        );
        let funnel = json!({"gateway": {"tailscale": {"mode": "funnel"}, "trustedProxies": ["10.0.0.1"],
            "auth": {"mode": "password", "password": TOKEN}}});
        assert_eq!(audit(funnel), [("gateway.tailscale_funnel", Critical)]);
    }

    #[test]
    fn mdns_full_mode() {
        let mdns = |bind: &str| {
            json!({"gateway": {"bind": bind, "auth": {"token": TOKEN, "rateLimit": {}}, "trustedProxies": ["10.0.0.1"],
                "controlUi": {"enabled": false}}, "discovery": {"mdns": {"mode": "full"}}})
        };
        assert_eq!(
            audit(mdns("loopback")),
            [("discovery.mdns_full_mode", Warn)]
        );
        assert_eq!(
            audit(mdns("auto")),
            [("discovery.mdns_full_mode", Critical)]
        );
    }

    #[test]
    fn http_tool_allowlist_names_the_reenabled_dangerous_tools_in_deny_list_order() {
        let tools = |allow: Value, tailscale: &str| {
            json!({"gateway": {"auth": {"mode": "password", "password": TOKEN}, "trustedProxies": ["10.0.0.1"],
                "tailscale": {"mode": tailscale}, "tools": {"allow": allow}}})
        };
        let env = env_of(&[]);
        let cfg = tools(json!(["read", " Gateway ", "EXEC", 3]), "off");
        let loaded = LoadedConfig::from_value(Path::new("/c.json"), cfg, &env).unwrap();
        let f = &gateway_config_findings(RULES, &loaded, &env, None)[0];
        assert_eq!(
            (f.check_id, f.severity),
            ("gateway.tools_invoke_http.dangerous_allow", Warn)
        );
        assert!(
            f.detail
                .starts_with("gateway.tools.allow includes exec, gateway which"),
            "{}",
            f.detail
        );
        assert_eq!(
            audit(tools(json!(["exec"]), "funnel"))[0],
            ("gateway.tools_invoke_http.dangerous_allow", Critical)
        );
        assert_eq!(audit(tools(json!(["read"]), "off")), []);
    }

    #[test]
    fn the_selected_secret_must_be_real_and_long() {
        let auth = |auth: Value| json!({"gateway": {"trustedProxies": ["10.0.0.1"], "auth": auth}});
        assert_eq!(
            audit(auth(json!({"token": "short"}))),
            [("gateway.token_too_short", Warn)]
        );
        assert_eq!(audit(auth(json!({"token": "a".repeat(24)}))), []);
        assert_eq!(
            audit(auth(json!({"token": " undefined "}))),
            [("gateway.token_placeholder_value", Critical)]
        );
        // A blank token is a placeholder (clawgate's gateway refuses to start with it, so it
        // never serves loopback without auth).
        assert_eq!(
            audit(auth(json!({"token": "  "}))),
            [("gateway.token_placeholder_value", Critical)]
        );
        assert_eq!(
            audit(auth(json!({"mode": "password", "password": "hunter2"}))),
            [("gateway.password_too_short", Warn)]
        );
        // Only the secret of the mode in effect is judged.
        assert_eq!(
            audit(auth(
                json!({"mode": "password", "password": TOKEN, "token": "x"})
            )),
            []
        );
        let env = env_of(&[]);
        let loaded =
            LoadedConfig::from_value(Path::new("/c.json"), auth(json!({"token": "short"})), &env)
                .unwrap();
        let f = &gateway_config_findings(RULES, &loaded, &env, None)[0];
        assert_eq!(f.title, "Gateway token looks short");
        assert_eq!(
            f.detail,
            "gateway auth token is 5 chars; prefer a long random token."
        );
        assert_eq!(f.remediation, None);
    }

    #[test]
    fn trusted_proxy_mode_reports_its_gaps() {
        let tp = |trusted_proxy: Value, proxies: Value| json!({"gateway": {"trustedProxies": proxies, "auth": {"mode": "trusted-proxy", "trustedProxy": trusted_proxy}}});
        assert_eq!(
            audit(tp(json!({}), json!([]))),
            [
                ("gateway.trusted_proxies_missing", Warn),
                ("gateway.trusted_proxy_auth", Critical),
                ("gateway.trusted_proxy_no_proxies", Critical),
                ("gateway.trusted_proxy_no_user_header", Critical),
                ("gateway.trusted_proxy_no_allowlist", Warn),
            ]
        );
        let risky = json!({"userHeader": "x-user", "allowUsers": ["a@example.com"], "allowLoopback": true,
            "deviceAutoApprove": {"enabled": true, "scopes": [" operator.admin "]}});
        assert_eq!(
            audit(tp(risky, json!(["127.0.0.1"]))),
            [
                ("gateway.trusted_proxy_auth", Critical),
                ("gateway.trusted_proxy_allow_loopback", Warn),
                ("gateway.trusted_proxy_device_auto_approve", Warn),
                ("gateway.trusted_proxy_device_auto_approve_admin", Critical),
            ]
        );
        // Beyond loopback a proxy does the rate limiting.
        let lan = json!({"gateway": {"bind": "lan", "trustedProxies": ["10.0.0.1"],
            "controlUi": {"allowedOrigins": ["https://a.example"]},
            "auth": {"mode": "trusted-proxy", "trustedProxy": {"userHeader": "x-user", "allowUsers": ["a"]}}}});
        assert_eq!(audit(lan), [("gateway.trusted_proxy_auth", Critical)]);
    }

    #[test]
    fn auth_flags_are_checked_like_openclaw() {
        let flags =
            |auth: Option<&str>, token: Option<&str>| AuthOverride::from_flags(auth, token, None);
        assert_eq!(flags(None, Some("t")), Ok(None));
        assert_eq!(
            flags(Some("Token"), Some(" t ")),
            Ok(Some(AuthOverride {
                mode: AuthMode::Token,
                token: Some("t".into()),
                password: None
            }))
        );
        assert_eq!(
            flags(Some("bogus"), None).unwrap_err(),
            "Invalid --auth value. Expected \"none\", \"token\", \"password\", or \"trusted-proxy\"."
        );
        assert_eq!(
            flags(Some("token"), Some(" ")).unwrap_err(),
            "Invalid --auth token: pass --token <token> for audit auth override."
        );
        assert!(
            flags(Some("password"), None)
                .unwrap_err()
                .starts_with("Invalid --auth password")
        );
    }

    #[test]
    fn an_auth_override_audits_another_runtime_mode() {
        let cfg = json!({"gateway": {"trustedProxies": ["10.0.0.1"]}});
        let token = AuthOverride {
            mode: AuthMode::Token,
            token: Some("short".into()),
            password: None,
        };
        assert_eq!(
            audit_with(cfg.clone(), &[], Some(&token)),
            [("gateway.token_too_short", Warn)]
        );
        let none = AuthOverride {
            mode: AuthMode::None,
            token: None,
            password: None,
        };
        let with_token =
            json!({"gateway": {"trustedProxies": ["10.0.0.1"], "auth": {"token": TOKEN}}});
        assert_eq!(
            audit_with(with_token, &[], Some(&none)),
            [("gateway.loopback_no_auth", Critical)]
        );
    }

    #[test]
    fn suppressions_move_matching_findings_aside() {
        let f = |id, title: &str, detail: &str| Finding::bare(id, Warn, title, detail);
        let findings = vec![
            f("a", "Alpha Title", "first detail"),
            f("a", "Alpha Title", "second detail"),
            f("b", "Beta", "x"),
        ];
        let suppression = |id: &str,
                           title: Option<&str>,
                           detail: Option<&str>,
                           reason: Option<&str>| Suppression {
            check_id: id.into(),
            title_includes: title.map(Into::into),
            detail_includes: detail.map(Into::into),
            reason: reason.map(Into::into),
        };
        let (active, suppressed) = apply_suppressions(
            findings.clone(),
            &[
                suppression(" a ", Some("ALPHA"), Some("SECOND"), Some(" accepted ")),
                suppression("c", None, None, None),
            ],
        );
        let ids: Vec<_> = active
            .iter()
            .map(|f| (f.check_id, f.detail.as_str()))
            .collect();
        assert_eq!(
            ids,
            [
                ("a", "first detail"),
                ("b", "x"),
                (
                    "security.audit.suppressions.active",
                    "security.audit.suppressions has 2 configured suppression(s); 1 finding(s) moved to suppressedFindings."
                )
            ]
        );
        assert_eq!(
            serde_json::to_value(&suppressed).unwrap(),
            json!([{"checkId": "a", "severity": "warn", "title": "Alpha Title",
                "detail": "second detail", "suppression": {"reason": "accepted"}}])
        );
        assert_eq!(
            apply_suppressions(findings.clone(), &[]),
            (findings, vec![])
        );
    }

    #[test]
    fn the_deep_probe_finding_names_clawgate_commands_with_the_profile() {
        let failed = DeepProbe {
            url: "ws://127.0.0.1:18789".into(),
            error: Some("connection refused".into()),
        };
        let f = &deep_probe_findings(Some(&failed), &env_of(&[]))[0];
        assert_eq!((f.check_id, f.severity), ("gateway.probe_failed", Warn));
        assert_eq!(f.detail, "connection refused");
        assert_eq!(
            f.remediation.as_deref(),
            Some(
                "Run \"clawgate status --deep\" to debug connectivity/auth, then re-run \"clawgate security audit --deep\"."
            )
        );
        let f = &deep_probe_findings(Some(&failed), &env_of(&[("OPENCLAW_PROFILE", "work")]))[0];
        assert!(
            f.remediation
                .as_deref()
                .unwrap()
                .contains("\"clawgate --profile work security audit --deep\""),
            "{f:?}"
        );
        let answered = DeepProbe {
            error: None,
            ..failed
        };
        assert_eq!(deep_probe_findings(Some(&answered), &env_of(&[])), []);
        assert_eq!(deep_probe_findings(None, &env_of(&[])), []);
    }
}
