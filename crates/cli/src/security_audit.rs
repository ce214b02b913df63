//! `clawgate security audit`: OpenClaw's `openclaw security audit` for what clawgate has:
//! the gateway's config (bind, auth, Control UI origins, proxies, Tailscale, discovery),
//! the permissions of the state directory and the config file, suppressions, and with
//! `--deep` a live probe of the configured gateway.
//!
//! Every finding carries OpenClaw's check id, severity, title, detail and remediation and
//! is raised under OpenClaw's conditions, so a config audited by either tool reports the
//! same. The checks are pure functions of the config and of facts gathered beforehand
//! (environment, file modes, the probe's outcome), so each condition is unit-tested.

use clap::{Args, Subcommand};
use clawgate_config::{self as config, AuthMode, GatewayConfig, LoadedConfig, Secret};
use serde::Serialize;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    Warn,
    Info,
}

/// One finding, in OpenClaw's JSON shape.
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
    fn new(
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

    /// A finding OpenClaw reports without a remediation.
    fn bare(
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

/// `--auth` with its secret: the audit's view of a gateway started with other auth flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthOverride {
    pub mode: AuthMode,
    pub token: Option<String>,
    pub password: Option<String>,
}

/// One entry of `security.audit.suppressions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    pub check_id: String,
    pub title_includes: Option<String>,
    pub detail_includes: Option<String>,
    pub reason: Option<String>,
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

/// The mode bits of a path and whether it is a symlink (the bits are its target's when
/// the target can be read, as OpenClaw's `inspectPathPermissions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathPermissions {
    pub is_symlink: bool,
    /// `mode & 0o777`.
    pub bits: u32,
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
fn cli_command(args: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    match config::active_profile(env) {
        Some(profile) => format!("clawgate --profile {profile} {args}"),
        None => format!("clawgate {args}"),
    }
}

/// JavaScript truthiness, for the keys OpenClaw tests with `!value`.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

fn is_true(raw: &Value, pointer: &str) -> bool {
    raw.pointer(pointer) == Some(&Value::Bool(true))
}

/// The trimmed strings of a string array, blanks dropped (OpenClaw's
/// `normalizeStringEntries`).
fn string_entries(raw: &Value, pointer: &str) -> Vec<String> {
    raw.pointer(pointer)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn nonblank(s: Option<&str>) -> Option<&str> {
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
    raw: &Value,
    env: &dyn Fn(&str) -> Option<String>,
    auth_override: Option<&AuthOverride>,
    tailscale_serve: bool,
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
    let allow_tailscale = raw
        .pointer("/gateway/auth/allowTailscale")
        .and_then(Value::as_bool)
        .unwrap_or(tailscale_serve && !matches!(mode, AuthMode::Password | AuthMode::TrustedProxy));
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

/// The gateway config checks, in OpenClaw's order (`collectGatewayConfigFindings`).
/// `raw` is the whole config after `${VAR}` substitution, `gw` its typed `gateway.*`.
pub fn gateway_config_findings(
    gw: &GatewayConfig,
    raw: &Value,
    env: &dyn Fn(&str) -> Option<String>,
    auth_override: Option<&AuthOverride>,
) -> Vec<Finding> {
    use Severity::{Critical, Info, Warn};
    let mut findings = Vec::new();
    let bind = gw.bind.map_or("loopback", |b| b.as_str());
    let exposed = bind != "loopback";
    let tailscale = gw.tailscale_mode.map_or("off", |m| m.as_str());
    let auth = resolve_auth(gw, raw, env, auth_override, tailscale == "serve");
    let guarded = auth.guards_gateway();
    let control_ui_enabled = raw.pointer("/gateway/controlUi/enabled") != Some(&Value::Bool(false));
    let allowed_origins = string_entries(raw, "/gateway/controlUi/allowedOrigins");
    let host_header_fallback = is_true(
        raw,
        "/gateway/controlUi/dangerouslyAllowHostHeaderOriginFallback",
    );
    let trusted_proxies = &gw.trusted_proxies;
    let exposed_or = |more: bool| if exposed || more { Critical } else { Warn };

    let tools_allow: Vec<String> = string_entries(raw, "/gateway/tools/allow")
        .iter()
        .map(|t| t.to_lowercase())
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
    if exposed && !guarded {
        findings.push(Finding::new(
            "gateway.bind_no_auth",
            Critical,
            "Gateway binds beyond loopback without auth",
            format!("gateway.bind=\"{bind}\" but no gateway.auth token/password is configured."),
            "Set gateway.auth (token recommended) or bind to loopback.",
        ));
    }
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
    if exposed && control_ui_enabled && allowed_origins.is_empty() && !host_header_fallback {
        findings.push(Finding::new(
            "gateway.control_ui.allowed_origins_required",
            Critical,
            "Non-loopback Control UI missing explicit allowed origins",
            "Control UI is enabled on a non-loopback bind but gateway.controlUi.allowedOrigins is empty. Strict origin policy requires explicit allowed origins for non-loopback deployments.",
            "Set gateway.controlUi.allowedOrigins to full trusted origins (for example https://control.example.com). If your deployment intentionally relies on Host-header origin fallback, set gateway.controlUi.dangerouslyAllowHostHeaderOriginFallback=true.",
        ));
    }
    if allowed_origins.iter().any(|o| o == "*") {
        findings.push(Finding::new(
            "gateway.control_ui.allowed_origins_wildcard",
            exposed_or(false),
            "Control UI allowed origins contains wildcard",
            "gateway.controlUi.allowedOrigins includes \"*\" which means allow any browser origin for Control UI/WebChat requests. This disables origin allowlisting and should be treated as an intentional allow-all policy.",
            "Replace wildcard origins with explicit trusted origins (for example https://control.example.com). Do not use \"*\" outside tightly controlled local testing.",
        ));
    }
    if host_header_fallback {
        findings.push(Finding::new(
            "gateway.control_ui.host_header_origin_fallback",
            exposed_or(false),
            "DANGEROUS: Host-header origin fallback enabled",
            "gateway.controlUi.dangerouslyAllowHostHeaderOriginFallback=true enables Host-header origin fallback for Control UI/WebChat websocket checks and weakens DNS rebinding protections.",
            "Disable gateway.controlUi.dangerouslyAllowHostHeaderOriginFallback and configure explicit gateway.controlUi.allowedOrigins.",
        ));
    }
    if is_true(raw, "/gateway/allowRealIpFallback") {
        let remote_proxy = trusted_proxies.iter().any(|p| !is_strict_loopback_proxy(p));
        findings.push(Finding::new(
            "gateway.real_ip_fallback_enabled",
            exposed_or(auth.mode == AuthMode::TrustedProxy && remote_proxy),
            "X-Real-IP fallback is enabled",
            "gateway.allowRealIpFallback=true trusts X-Real-IP when trusted proxies omit X-Forwarded-For. Misconfigured proxies that forward client-supplied X-Real-IP can spoof source IP and local-client checks.",
            "Keep gateway.allowRealIpFallback=false (default). Only enable this when your trusted proxy always overwrites X-Real-IP and cannot provide X-Forwarded-For.",
        ));
    }
    if raw.pointer("/discovery/mdns/mode").and_then(Value::as_str) == Some("full") {
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
    for flag in dangerous_flags(raw) {
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
        findings.extend(trusted_proxy_findings(raw, trusted_proxies));
    }
    let rate_limited = raw.pointer("/gateway/auth/rateLimit").is_some_and(truthy);
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
fn dangerous_flags(raw: &Value) -> Vec<String> {
    let mut flags = Vec::new();
    if is_true(
        raw,
        "/gateway/controlUi/dangerouslyAllowHostHeaderOriginFallback",
    ) {
        flags.push("gateway.controlUi.dangerouslyAllowHostHeaderOriginFallback=true".to_owned());
    }
    let suppressions = raw
        .pointer("/security/audit/suppressions")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
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
fn trusted_proxy_findings(raw: &Value, trusted_proxies: &[String]) -> Vec<Finding> {
    use Severity::{Critical, Warn};
    let at = |key: &str| raw.pointer(&format!("/gateway/auth/trustedProxy/{key}"));
    let mut findings = vec![Finding::new(
        "gateway.trusted_proxy_auth",
        Critical,
        "Trusted-proxy auth mode enabled",
        "gateway.auth.mode=\"trusted-proxy\" delegates authentication to a reverse proxy. Ensure your proxy (Pomerium, Caddy, nginx) handles auth correctly and that gateway.trustedProxies only contains IPs of your actual proxy servers.",
        "Verify: (1) Your proxy terminates TLS and authenticates users. (2) gateway.trustedProxies is restricted to proxy IPs only. (3) Direct access to the Gateway port is blocked by firewall. Same-host proxy requests are rejected unless gateway.auth.trustedProxy.allowLoopback=true and gateway.trustedProxies includes their loopback source; enable only for a deliberate same-host trust boundary. See /gateway/trusted-proxy-auth for setup guidance.",
    )];
    if trusted_proxies.is_empty() {
        findings.push(Finding::new(
            "gateway.trusted_proxy_no_proxies",
            Critical,
            "Trusted-proxy auth enabled but no trusted proxies configured",
            "gateway.auth.mode=\"trusted-proxy\" but gateway.trustedProxies is empty. All requests will be rejected.",
            "Set gateway.trustedProxies to the IP(s) of your reverse proxy.",
        ));
    }
    if !at("userHeader").is_some_and(truthy) {
        findings.push(Finding::new(
            "gateway.trusted_proxy_no_user_header",
            Critical,
            "Trusted-proxy auth missing userHeader config",
            "gateway.auth.mode=\"trusted-proxy\" but gateway.auth.trustedProxy.userHeader is not configured.",
            "Set gateway.auth.trustedProxy.userHeader to the header name your proxy uses (e.g., \"x-forwarded-user\", \"x-pomerium-claim-email\").",
        ));
    }
    if at("allowLoopback") == Some(&Value::Bool(true)) {
        findings.push(Finding::new(
            "gateway.trusted_proxy_allow_loopback",
            Warn,
            "Trusted-proxy auth allows loopback proxy sources",
            "gateway.auth.trustedProxy.allowLoopback=true allows loopback-source requests from configured gateway.trustedProxies entries to satisfy trusted-proxy auth.",
            "Enable this only when a same-host reverse proxy is the intended trust boundary. Keep direct Gateway access private to the host and require the proxy to strip or overwrite identity headers.",
        ));
    }
    if at("deviceAutoApprove/enabled") == Some(&Value::Bool(true)) {
        findings.push(Finding::new(
            "gateway.trusted_proxy_device_auto_approve",
            Warn,
            "Trusted-proxy operator device auto-approval enabled",
            "gateway.auth.trustedProxy.deviceAutoApprove.enabled=true delegates new browser and native UI operator device pairing entirely to the reverse-proxy identity.",
            "Enable this only when the proxy is the exclusive Gateway ingress, strongly authenticates users, overwrites identity headers, and restricts access with allowUsers.",
        ));
        let admin = at("deviceAutoApprove/scopes")
            .and_then(Value::as_array)
            .is_some_and(|s| {
                s.iter()
                    .any(|v| v.as_str().map(str::trim) == Some("operator.admin"))
            });
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
    let allow_users = at("allowUsers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if allow_users == 0 {
        findings.push(Finding::new(
            "gateway.trusted_proxy_no_allowlist",
            Warn,
            "Trusted-proxy auth allows all authenticated users",
            "gateway.auth.trustedProxy.allowUsers is empty, so any user authenticated by your proxy can access the Gateway.",
            "Consider setting gateway.auth.trustedProxy.allowUsers to restrict access to specific users (e.g., [\"nick@example.com\"]).",
        ));
    }
    findings
}

/// `chmod 700 <path>`, quoted for a POSIX shell when needed (OpenClaw's
/// `formatPermissionRemediation`).
fn chmod_command(path: &Path, mode: u32) -> String {
    let p = path.display().to_string();
    let separator = if p.starts_with('-') { "-- " } else { "" };
    let plain = !p.is_empty()
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c));
    let quoted = if plain {
        p
    } else {
        format!("'{}'", p.replace('\'', "'\\''"))
    };
    format!("chmod {mode:03o} {separator}{quoted}")
}

/// The state dir and config file checks (`collectFilesystemFindings`). A path that could
/// not be inspected (missing) has no findings.
pub fn filesystem_findings(
    state_dir: &Path,
    state_dir_perms: Option<PathPermissions>,
    config_path: &Path,
    config_perms: Option<PathPermissions>,
) -> Vec<Finding> {
    use Severity::{Critical, Warn};
    let mut findings = Vec::new();
    if let Some(p) = state_dir_perms {
        let at = format!("{} mode={:03o}", state_dir.display(), p.bits);
        let fix = chmod_command(state_dir, 0o700);
        if p.is_symlink {
            findings.push(Finding::bare(
                "fs.state_dir.symlink",
                Warn,
                "State dir is a symlink",
                format!(
                    "{} is a symlink; treat this as an extra trust boundary.",
                    state_dir.display()
                ),
            ));
        }
        if p.bits & 0o002 != 0 {
            findings.push(Finding::new(
                "fs.state_dir.perms_world_writable",
                Critical,
                "State dir is world-writable",
                format!("{at}; other users can write into your OpenClaw state."),
                fix,
            ));
        } else if p.bits & 0o020 != 0 {
            findings.push(Finding::new(
                "fs.state_dir.perms_group_writable",
                Warn,
                "State dir is group-writable",
                format!("{at}; group users can write into your OpenClaw state."),
                fix,
            ));
        } else if p.bits & 0o044 != 0 {
            findings.push(Finding::new(
                "fs.state_dir.perms_readable",
                Warn,
                "State dir is readable by others",
                format!("{at}; consider restricting to 700."),
                fix,
            ));
        }
    }
    if let Some(p) = config_perms {
        let at = format!("{} mode={:03o}", config_path.display(), p.bits);
        let fix = chmod_command(config_path, 0o600);
        if p.is_symlink {
            findings.push(Finding::bare(
                "fs.config.symlink",
                Warn,
                "Config file is a symlink",
                format!(
                    "{} is a symlink; make sure you trust its target.",
                    config_path.display()
                ),
            ));
        }
        // Who may read a symlink's target is the target's business: only writability is
        // reported through a link.
        if p.bits & 0o022 != 0 {
            findings.push(Finding::new(
                "fs.config.perms_writable",
                Critical,
                "Config file is writable by others",
                format!("{at}; another user could change gateway/auth/tool policies."),
                fix,
            ));
        } else if !p.is_symlink && p.bits & 0o004 != 0 {
            findings.push(Finding::new(
                "fs.config.perms_world_readable",
                Critical,
                "Config file is world-readable",
                format!("{at}; config can contain tokens and private settings."),
                fix,
            ));
        } else if !p.is_symlink && p.bits & 0o040 != 0 {
            findings.push(Finding::new(
                "fs.config.perms_group_readable",
                Warn,
                "Config file is group-readable",
                format!("{at}; config can contain tokens and private settings."),
                fix,
            ));
        }
    }
    findings
}

/// `lstat`, then the target's mode through a symlink when it can be read.
fn inspect_permissions(path: &Path) -> Option<PathPermissions> {
    use std::os::unix::fs::PermissionsExt as _;
    let link = std::fs::symlink_metadata(path).ok()?;
    let is_symlink = link.file_type().is_symlink();
    let mode = if is_symlink {
        std::fs::metadata(path).map_or(link.permissions().mode(), |m| m.permissions().mode())
    } else {
        link.permissions().mode()
    };
    Some(PathPermissions {
        is_symlink,
        bits: mode & 0o777,
    })
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

/// `security.audit.suppressions`, checked like OpenClaw's schema (an array of objects with a
/// non-empty `checkId` and optional non-empty `titleIncludes`, `detailIncludes`, `reason`).
pub fn parse_suppressions(raw: &Value) -> Result<Vec<Suppression>, String> {
    const KEY: &str = "security.audit.suppressions";
    let list = match raw.pointer("/security/audit/suppressions") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => {
            return Err(format!(
                "{KEY} must be an array of {{checkId, titleIncludes?, detailIncludes?, reason?}} objects"
            ));
        }
    };
    list.iter()
        .enumerate()
        .map(|(i, entry)| {
            let at = format!("{KEY}[{i}]");
            let Value::Object(obj) = entry else {
                return Err(format!(
                    "{at} must be an object like {{\"checkId\": \"gateway.tailscale_serve\", \"reason\": \"…\"}}"
                ));
            };
            if let Some(unknown) = obj.keys().find(|k| {
                !matches!(
                    k.as_str(),
                    "checkId" | "titleIncludes" | "detailIncludes" | "reason"
                )
            }) {
                return Err(format!(
                    "{at}.{unknown} is not a suppression key (use checkId, titleIncludes, detailIncludes, reason)"
                ));
            }
            let text = |key: &str| match obj.get(key) {
                None => Ok(None),
                Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
                Some(_) => Err(format!("{at}.{key} must be a non-empty string")),
            };
            Ok(Suppression {
                check_id: text("checkId")?.ok_or_else(|| {
                    format!("{at}.checkId is required: the check id to suppress, e.g. \"gateway.tailscale_serve\"")
                })?,
                title_includes: text("titleIncludes")?,
                detail_includes: text("detailIncludes")?,
                reason: text("reason")?,
            })
        })
        .collect()
}

impl Suppression {
    /// Same check id, and the title/detail contain the given texts (case-insensitive).
    fn matches(&self, f: &Finding) -> bool {
        let contains = |haystack: &str, needle: &Option<String>| {
            let needle = needle.as_deref().unwrap_or("").trim().to_lowercase();
            needle.is_empty() || haystack.to_lowercase().contains(&needle)
        };
        let check_id = self.check_id.trim();
        !check_id.is_empty()
            && f.check_id == check_id
            && contains(&f.title, &self.title_includes)
            && contains(&f.detail, &self.detail_includes)
    }
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
        match suppressions.iter().find(|s| s.matches(&finding)) {
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

/// One `--fix` permission change, in OpenClaw's JSON shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChmodAction {
    kind: &'static str,
    path: PathBuf,
    /// Decimal in JSON, as OpenClaw writes it (448 = 0o700).
    mode: u32,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl ChmodAction {
    /// OpenClaw's line for it: `chmod 700 ~/.openclaw`, `skip chmod … (already)`, or the
    /// failure.
    pub fn line(&self, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
        let target = format!("{:03o} {}", self.mode, shorten_home(&self.path, env));
        match (self.ok, self.skipped, &self.error) {
            (true, _, _) => Some(format!("chmod {target}")),
            (false, Some(why), _) => Some(format!("skip chmod {target} ({why})")),
            (false, None, Some(e)) => Some(format!("chmod {target} failed: {e}")),
            (false, None, None) => None,
        }
    }
}

/// What a chmod target must be.
#[derive(Clone, Copy)]
enum Expect {
    Dir,
    File,
}

/// chmod unless the path is a symlink, of the wrong type, missing or already right
/// (OpenClaw's `safeChmod`).
fn safe_chmod(path: &Path, mode: u32, expect: Expect) -> ChmodAction {
    use std::os::unix::fs::PermissionsExt as _;
    let action = |ok, skipped, error| ChmodAction {
        kind: "chmod",
        path: path.to_owned(),
        mode,
        ok,
        skipped,
        error,
    };
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return action(false, Some("missing"), None);
        }
        Err(e) => return action(false, None, Some(e.to_string())),
    };
    let skipped = if meta.file_type().is_symlink() {
        Some("symlink")
    } else if matches!(expect, Expect::Dir) && !meta.is_dir() {
        Some("not-a-directory")
    } else if matches!(expect, Expect::File) && !meta.is_file() {
        Some("not-a-file")
    } else if meta.permissions().mode() & 0o777 == mode {
        Some("already")
    } else {
        None
    };
    if skipped.is_some() {
        return action(false, skipped, None);
    }
    match std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
        Ok(()) => action(true, None, None),
        Err(e) => action(false, None, Some(e.to_string())),
    }
}

/// OpenClaw's `--fix` for what clawgate has: the state dir to 700 and the config file to
/// 600 (`security audit --fix`, `doctor --fix`).
pub fn fix_permissions(state_dir: &Path, config_path: &Path) -> Vec<ChmodAction> {
    vec![
        safe_chmod(state_dir, 0o700, Expect::Dir),
        safe_chmod(config_path, 0o600, Expect::File),
    ]
}

/// The `fs.*` findings of the state dir and config file as they are now.
pub fn current_filesystem_findings(state_dir: &Path, config_path: &Path) -> Vec<Finding> {
    filesystem_findings(
        state_dir,
        inspect_permissions(state_dir),
        config_path,
        inspect_permissions(config_path),
    )
}

/// `path` with the home directory shown as `~`.
fn shorten_home(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> String {
    let shown = path.display().to_string();
    match env("HOME").filter(|h| !h.is_empty() && h != "/") {
        Some(home) if shown == home => "~".to_owned(),
        Some(home) => match shown.strip_prefix(&format!("{}/", home.trim_end_matches('/'))) {
            Some(rest) => format!("~/{rest}"),
            None => shown,
        },
        None => shown,
    }
}

/// The report, in OpenClaw's JSON shape.
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

/// `--auth` with its secret, as OpenClaw's `buildAuditGatewayAuthOverride`.
fn auth_override(args: &AuditArgs) -> Result<Option<AuthOverride>, String> {
    let Some(mode) = nonblank(args.auth.as_deref()) else {
        return Ok(None);
    };
    let mode: AuthMode = mode.to_ascii_lowercase().parse().map_err(|_| {
        "Invalid --auth value. Expected \"none\", \"token\", \"password\", or \"trusted-proxy\"."
            .to_owned()
    })?;
    let token = nonblank(args.token.as_deref()).map(str::to_owned);
    let password = nonblank(args.password.as_deref()).map(str::to_owned);
    match mode {
        AuthMode::Token if token.is_none() => {
            Err("Invalid --auth token: pass --token <token> for audit auth override.".to_owned())
        }
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
    let auth_override = match auth_override(&args) {
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
    let suppressions = match parse_suppressions(&loaded.raw) {
        Ok(s) => s,
        Err(e) => {
            return config_failure(args.json, &format!("{}: {e}", location.path.display()));
        }
    };

    let mut findings =
        gateway_config_findings(&loaded.gateway, &loaded.raw, &env, auth_override.as_ref());
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
    use Severity::{Critical, Info, Warn};

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
        gateway_config_findings(&loaded.gateway, &loaded.raw, &env, auth_override)
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
        let findings = gateway_config_findings(
            &GatewayConfig {
                bind: Some(config::BindMode::Tailnet),
                ..GatewayConfig::default()
            },
            &json!({}),
            &env_of(&[]),
            None,
        );
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
        let f = &gateway_config_findings(&loaded.gateway, &loaded.raw, &env, None)[0];
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
        let f = &gateway_config_findings(&loaded.gateway, &loaded.raw, &env, None)[0];
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
    fn auth_flags_are_checked_like_openclaw() {
        let args = |auth: Option<&str>, token: Option<&str>| AuditArgs {
            deep: false,
            auth: auth.map(str::to_owned),
            token: token.map(str::to_owned),
            password: None,
            fix: false,
            json: false,
            config: None,
        };
        assert_eq!(auth_override(&args(None, Some("t"))), Ok(None));
        assert_eq!(
            auth_override(&args(Some("Token"), Some(" t "))),
            Ok(Some(AuthOverride {
                mode: AuthMode::Token,
                token: Some("t".into()),
                password: None
            }))
        );
        assert_eq!(
            auth_override(&args(Some("bogus"), None)).unwrap_err(),
            "Invalid --auth value. Expected \"none\", \"token\", \"password\", or \"trusted-proxy\"."
        );
        assert_eq!(
            auth_override(&args(Some("token"), Some(" "))).unwrap_err(),
            "Invalid --auth token: pass --token <token> for audit auth override."
        );
        assert!(
            auth_override(&args(Some("password"), None))
                .unwrap_err()
                .starts_with("Invalid --auth password")
        );
    }

    fn perms(bits: u32) -> Option<PathPermissions> {
        Some(PathPermissions {
            is_symlink: false,
            bits,
        })
    }

    fn fs_ids(state: Option<PathPermissions>, cfg: Option<PathPermissions>) -> Vec<&'static str> {
        filesystem_findings(Path::new("/s"), state, Path::new("/s/c.json"), cfg)
            .into_iter()
            .map(|f| f.check_id)
            .collect()
    }

    #[test]
    fn state_dir_permissions() {
        assert_eq!(
            fs_ids(perms(0o777), None),
            ["fs.state_dir.perms_world_writable"]
        );
        assert_eq!(
            fs_ids(perms(0o770), None),
            ["fs.state_dir.perms_group_writable"]
        );
        assert_eq!(fs_ids(perms(0o755), None), ["fs.state_dir.perms_readable"]);
        assert_eq!(fs_ids(perms(0o750), None), ["fs.state_dir.perms_readable"]);
        assert_eq!(fs_ids(perms(0o700), None), Vec::<&str>::new());
        assert_eq!(fs_ids(None, None), Vec::<&str>::new());
        let link = Some(PathPermissions {
            is_symlink: true,
            bits: 0o700,
        });
        assert_eq!(fs_ids(link, None), ["fs.state_dir.symlink"]);
        let f = &filesystem_findings(Path::new("/s"), perms(0o755), Path::new("/c"), None)[0];
        assert_eq!(f.detail, "/s mode=755; consider restricting to 700.");
        assert_eq!(f.remediation.as_deref(), Some("chmod 700 /s"));
    }

    #[test]
    fn config_file_permissions() {
        assert_eq!(fs_ids(None, perms(0o666)), ["fs.config.perms_writable"]);
        assert_eq!(fs_ids(None, perms(0o620)), ["fs.config.perms_writable"]);
        assert_eq!(
            fs_ids(None, perms(0o644)),
            ["fs.config.perms_world_readable"]
        );
        assert_eq!(
            fs_ids(None, perms(0o640)),
            ["fs.config.perms_group_readable"]
        );
        assert_eq!(fs_ids(None, perms(0o600)), Vec::<&str>::new());
        let link = |bits| {
            Some(PathPermissions {
                is_symlink: true,
                bits,
            })
        };
        assert_eq!(fs_ids(None, link(0o644)), ["fs.config.symlink"]);
        assert_eq!(
            fs_ids(None, link(0o666)),
            ["fs.config.symlink", "fs.config.perms_writable"]
        );
        let f =
            &filesystem_findings(Path::new("/s"), None, Path::new("/s/c.json"), perms(0o644))[0];
        assert_eq!(
            f.detail,
            "/s/c.json mode=644; config can contain tokens and private settings."
        );
        assert_eq!(f.remediation.as_deref(), Some("chmod 600 /s/c.json"));
    }

    #[test]
    fn chmod_commands_are_quoted_for_the_shell() {
        assert_eq!(
            chmod_command(Path::new("/a/b.json"), 0o600),
            "chmod 600 /a/b.json"
        );
        assert_eq!(
            chmod_command(Path::new("/my dir/it's"), 0o700),
            "chmod 700 '/my dir/it'\\''s'"
        );
        assert_eq!(chmod_command(Path::new("-x"), 0o700), "chmod 700 -- -x");
    }

    #[test]
    fn permissions_are_read_through_symlinks() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.json");
        std::fs::write(&file, "{}").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(inspect_permissions(&file), perms(0o640));
        assert_eq!(
            inspect_permissions(&link),
            Some(PathPermissions {
                is_symlink: true,
                bits: 0o640
            })
        );
        assert_eq!(inspect_permissions(&dir.path().join("missing")), None);
    }

    #[test]
    fn fixes_chmod_only_real_files_and_dirs() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
        let file = state.join("c.json");
        std::fs::write(&file, "{}").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&state, &link).unwrap();
        let outcome = |a: ChmodAction| (a.ok, a.skipped);
        assert_eq!(
            outcome(safe_chmod(&state, 0o700, Expect::Dir)),
            (true, None)
        );
        let mode = std::fs::metadata(&state).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert_eq!(
            outcome(safe_chmod(&file, 0o600, Expect::File)),
            (false, Some("already"))
        );
        assert_eq!(
            outcome(safe_chmod(&link, 0o700, Expect::Dir)),
            (false, Some("symlink"))
        );
        assert_eq!(
            outcome(safe_chmod(&file, 0o700, Expect::Dir)),
            (false, Some("not-a-directory"))
        );
        assert_eq!(
            outcome(safe_chmod(&state, 0o600, Expect::File)),
            (false, Some("not-a-file"))
        );
        assert_eq!(
            outcome(safe_chmod(&dir.path().join("gone"), 0o600, Expect::File)),
            (false, Some("missing"))
        );
        let json = serde_json::to_value(safe_chmod(&state, 0o700, Expect::Dir)).unwrap();
        assert_eq!(
            json,
            json!({"kind": "chmod", "path": state, "mode": 448, "ok": false, "skipped": "already"})
        );
    }

    #[test]
    fn suppressions_are_validated_with_the_key_that_is_wrong() {
        let parse =
            |v: Value| parse_suppressions(&json!({"security": {"audit": {"suppressions": v}}}));
        assert_eq!(parse(json!([])), Ok(vec![]));
        assert_eq!(
            parse(json!([{"checkId": "a", "reason": "ok"}])),
            Ok(vec![Suppression {
                check_id: "a".into(),
                title_includes: None,
                detail_includes: None,
                reason: Some("ok".into())
            }])
        );
        assert!(parse(json!({})).unwrap_err().contains("must be an array"));
        assert!(
            parse(json!(["a"]))
                .unwrap_err()
                .starts_with("security.audit.suppressions[0] must be an object")
        );
        assert!(
            parse(json!([{"reason": "x"}]))
                .unwrap_err()
                .starts_with("security.audit.suppressions[0].checkId is required")
        );
        assert_eq!(
            parse(json!([{"checkId": "a"}, {"checkId": ""}])).unwrap_err(),
            "security.audit.suppressions[1].checkId must be a non-empty string"
        );
        assert!(
            parse(json!([{"checkId": "a", "titleInclude": "x"}]))
                .unwrap_err()
                .starts_with(
                    "security.audit.suppressions[0].titleInclude is not a suppression key"
                )
        );
        assert_eq!(parse_suppressions(&json!({})), Ok(vec![]));
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
