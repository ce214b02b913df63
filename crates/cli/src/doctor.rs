//! `clawgate doctor`: one exposure report from the local config (bind × auth × TLS × trusted
//! proxies × Tailscale: who can reach the gateway, with what credential, over what transport,
//! and every risky combination with the key that fixes it), then, when a gateway answers, a
//! live check that tells reachability, TLS, auth, pairing and scope problems apart. The live
//! check keeps to its time budget (`--timeout`) whichever step goes unanswered, and says which.

use crate::security_audit;
use clap::Args;
use clawgate_client::{Client, ClientError, ConnectOptions, TlsOptions, client_info};
use clawgate_config::{
    self as config, AuthMode, BindMode, GatewayRunInputs, GatewaySettings, SecretSource,
    TailscaleMode,
};
use clawgate_gateway::{bind, ingress, tls};
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

/// One risky combination (or a start-up refusal) and its fix.
#[derive(Debug, Clone)]
struct Finding {
    id: &'static str,
    /// `critical` (refused at start or open to abuse), `warning`, `info`.
    severity: &'static str,
    message: String,
    fix: String,
}

impl Finding {
    fn new(id: &'static str, severity: &'static str, message: String, fix: String) -> Self {
        Finding {
            id,
            severity,
            message,
            fix,
        }
    }

    fn json(&self) -> Value {
        json!({"id": self.id, "severity": self.severity, "message": self.message, "fix": self.fix})
    }
}

/// What the config exposes.
struct Exposure {
    bind: String,
    host: String,
    reach: String,
    credential: String,
    transport: String,
    tls_fingerprint: Option<String>,
    trusted_proxies: Vec<String>,
    tailscale: String,
    allow_tailscale: bool,
    /// How a first-time node host gets paired.
    node_pairing: String,
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
                "critical",
                format!("the config cannot be loaded: {e}"),
                format!(
                    "fix {} (the gateway refuses to start with it)",
                    location.path.display()
                ),
            );
            return finish(&args, &location.path, None, vec![f], Vec::new(), None, None);
        }
    };
    let raw = loaded
        .as_ref()
        .map(|l| l.raw.clone())
        .unwrap_or_else(|| json!({}));
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
                "critical",
                format!("the gateway refuses to start with this config: {e}"),
                "change the keys the message names".into(),
            );
            return finish(&args, &location.path, None, vec![f], Vec::new(), None, None);
        }
    };
    // The repairs come first, so the report shows the state they leave.
    let repairs = args
        .fix
        .then(|| security_audit::fix_permissions(&settings.state_dir, &settings.config_path));
    let (exposure, mut findings) = assess(&settings, &raw);
    findings.extend(permission_findings(&settings));
    let live = if args.offline {
        None
    } else {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        match rt {
            Ok(rt) => Some(rt.block_on(live_check(&args, &settings, &raw))),
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
    security_audit::current_filesystem_findings(&s.state_dir, &s.config_path)
        .into_iter()
        .map(|f| {
            let severity = match f.severity {
                security_audit::Severity::Critical => "critical",
                security_audit::Severity::Warn => "warning",
                security_audit::Severity::Info => "info",
            };
            let fix = match &f.remediation {
                Some(r) => format!("{r} (or run clawgate doctor --fix)"),
                None => "make sure the link's target is yours and private (doctor --fix leaves links alone)".to_owned(),
            };
            Finding::new(f.check_id, severity, format!("{}: {}", f.title, f.detail), fix)
        })
        .collect()
}

/// The exposure report of this machine's gateway config, for `clawgate status --deep`:
/// (the exposure JSON with its `findings`, the text).
pub fn local_exposure(config_path: Option<&std::path::Path>) -> Option<(Value, String)> {
    let env = config::process_env;
    let location = config::locate_config(config_path, None, &env);
    let loaded = config::load_config(&location, &env).ok()?;
    let raw = loaded
        .as_ref()
        .map(|l| l.raw.clone())
        .unwrap_or_else(|| json!({}));
    let inputs = GatewayRunInputs {
        config_path: config_path.map(std::path::Path::to_path_buf),
        ..GatewayRunInputs::default()
    };
    let settings = config::resolve_gateway_settings(&inputs, loaded.as_ref(), &env).ok()?;
    let (e, findings) = assess(&settings, &raw);
    let mut v = exposure_json(&e);
    v["findings"] = findings.iter().map(Finding::json).collect();
    let mut text = String::new();
    exposure_text(&mut text, &e);
    findings_text(&mut text, &findings);
    Some((v, text))
}

fn exposure_json(e: &Exposure) -> Value {
    json!({"bind": e.bind, "host": e.host, "reach": e.reach, "credential": e.credential,
        "transport": e.transport, "tlsFingerprint": e.tls_fingerprint,
        "trustedProxies": e.trusted_proxies, "tailscale": {"mode": e.tailscale, "allowTailscale": e.allow_tailscale},
        "nodePairing": e.node_pairing})
}

fn exposure_text(out: &mut String, e: &Exposure) {
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
    out.push_str(&format!("  tailscale:       {}\n", e.tailscale));
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
                f.severity, f.id, f.message, f.fix
            ));
        }
    }
}

fn has_shared_secret(s: &GatewaySettings) -> bool {
    match s.auth.mode {
        AuthMode::Token => !matches!(s.source_of_token, None | Some(SecretSource::Generated)),
        AuthMode::Password => s.auth.password.is_some(),
        AuthMode::None | AuthMode::TrustedProxy => false,
    }
}

fn raw_bool(raw: &Value, pointer: &str) -> Option<bool> {
    raw.pointer(pointer).and_then(Value::as_bool)
}

/// The exposure and its risky combinations.
fn assess(s: &GatewaySettings, raw: &Value) -> (Exposure, Vec<Finding>) {
    let mut f = Vec::new();
    let env = config::process_env;
    let in_container = bind::is_container(&env);
    let mut detector = bind::TailnetDetector::from_env(&env);
    detector.timeout = Duration::from_secs(2);
    let plan = bind::resolve_bind(s.bind, s.custom_bind_host, &detector, in_container);
    let (host, loopback) = match &plan {
        Ok(p) => (p.host.to_string(), p.is_loopback()),
        Err(e) => {
            f.push(Finding::new(
                "bind_invalid",
                "critical",
                format!("gateway.bind={} cannot be resolved: {e}", s.bind),
                "set gateway.bind to loopback (or fix gateway.customBindHost)".into(),
            ));
            (String::from("?"), true)
        }
    };
    let reach = match s.bind {
        BindMode::Loopback => "this machine only (and SSH tunnels to it)".to_owned(),
        BindMode::Lan => {
            "every host that can route to this machine on any interface (0.0.0.0)".to_owned()
        }
        BindMode::Tailnet if loopback => {
            "this machine only (no tailnet address found; bind=tailnet fell back to loopback)"
                .to_owned()
        }
        BindMode::Tailnet => format!("devices on your tailnet ({host}) and this machine"),
        BindMode::Custom => format!("hosts that can route to {host}, and this machine"),
        BindMode::Auto if loopback => {
            "this machine only (bind=auto resolved to loopback)".to_owned()
        }
        BindMode::Auto => {
            "every host that can route to this machine (bind=auto resolved to 0.0.0.0)".to_owned()
        }
    };
    let reach = match s.tailscale_mode {
        TailscaleMode::Off => reach,
        TailscaleMode::Serve => format!("{reach}; your tailnet through Tailscale Serve (https)"),
        TailscaleMode::Funnel => {
            format!("{reach}; THE PUBLIC INTERNET through Tailscale Funnel (https)")
        }
    };
    let secret_len = match s.auth.mode {
        AuthMode::Token => s.auth.token.as_ref().map(|t| t.expose().len()),
        AuthMode::Password => s.auth.password.as_ref().map(|p| p.expose().len()),
        _ => None,
    };
    let credential = match s.auth.mode {
        AuthMode::Token => match &s.source_of_token {
            Some(SecretSource::Generated) | None => {
                "token (generated and stored in the state dir: <state dir>/gateway.token)"
                    .to_owned()
            }
            Some(src) => format!("token (from {src})"),
        },
        AuthMode::Password => format!(
            "password (from {})",
            s.source_of_password
                .as_ref()
                .map(|p| p.to_string())
                .unwrap_or_else(|| "?".into())
        ),
        AuthMode::None => {
            "none: any client with a device identity; local ones are paired silently".to_owned()
        }
        AuthMode::TrustedProxy => {
            "trusted-proxy: the user header set by a proxy in gateway.trustedProxies".to_owned()
        }
    };
    let allow_tailscale = raw_bool(raw, "/gateway/auth/allowTailscale").unwrap_or(
        s.tailscale_mode == TailscaleMode::Serve
            && !matches!(s.auth.mode, AuthMode::Password | AuthMode::TrustedProxy),
    ) && s.tailscale_mode != TailscaleMode::Off;
    let credential = if allow_tailscale {
        format!(
            "{credential}; or a Tailscale identity confirmed by whois (gateway.auth.allowTailscale)"
        )
    } else {
        credential
    };
    let fingerprint = tls::configured_fingerprint(s);
    let transport = match (&s.tls, &fingerprint) {
        (Some(_), Some(fp)) => format!("TLS 1.3 (wss://), certificate sha256:{fp}"),
        (Some(_), None) => "TLS 1.3 (wss://), certificate generated at first start".to_owned(),
        (None, _) if s.tailscale_mode != TailscaleMode::Off && loopback => {
            "plaintext ws:// on loopback; Tailscale Serve/Funnel adds https".to_owned()
        }
        (None, _) => "plaintext ws://".to_owned(),
    };

    // Risky combinations.
    let secretless = !has_shared_secret(s) && s.auth.mode != AuthMode::TrustedProxy;
    if !loopback && secretless {
        f.push(Finding::new(
            "bind_without_auth",
            "critical",
            format!("gateway.bind={} exposes the gateway without a token or password; the gateway refuses to start (exit 78)", s.bind),
            "set gateway.auth.token (or gateway.auth.password), or set gateway.bind to loopback".into(),
        ));
    }
    if !loopback && s.tls.is_none() {
        f.push(Finding::new(
            "plaintext_network",
            "warning",
            format!("gateway.bind={} without TLS: tokens, passwords and every message cross the network in plaintext", s.bind),
            "set gateway.tls.enabled=true (clients pin the fingerprint), or keep gateway.bind=loopback and use `clawgate tunnel up` or Tailscale Serve".into(),
        ));
    }
    if matches!(s.bind, BindMode::Lan) || (matches!(s.bind, BindMode::Auto) && !loopback) {
        f.push(Finding::new(
            "bind_all_interfaces",
            "warning",
            "the gateway listens on all interfaces (0.0.0.0), including any public one".into(),
            "prefer gateway.bind=tailnet, custom (one address) or loopback with an SSH tunnel; otherwise firewall the port".into(),
        ));
    }
    if s.auth.mode == AuthMode::None {
        f.push(Finding::new(
            "auth_none",
            "warning",
            "gateway.auth.mode=none: no shared secret; any local process can pair a device silently".into(),
            "set gateway.auth.mode=token (the default)".into(),
        ));
    }
    if let Some(n) = secret_len.filter(|n| *n < 24) {
        f.push(Finding::new(
            "weak_secret",
            "warning",
            format!("the gateway {} is only {n} characters long", s.auth.mode),
            "use at least 24 random characters (e.g. `openssl rand -hex 24`)".into(),
        ));
    }
    match s.tailscale_mode {
        TailscaleMode::Funnel if s.auth.mode != AuthMode::Password => f.push(Finding::new(
            "funnel_without_password",
            "critical",
            "tailscale funnel requires gateway auth mode=password; the gateway refuses to start (exit 78)".into(),
            "set gateway.auth.mode=password and gateway.auth.password, or set gateway.tailscale.mode=serve".into(),
        )),
        TailscaleMode::Funnel => f.push(Finding::new(
            "funnel_public",
            "warning",
            "Tailscale Funnel publishes the gateway on the public internet, guarded by the password alone".into(),
            "use a long random gateway.auth.password, or gateway.tailscale.mode=serve to stay inside the tailnet".into(),
        )),
        _ => {}
    }
    if s.tailscale_mode != TailscaleMode::Off && !loopback {
        f.push(Finding::new(
            "tailscale_needs_loopback",
            "critical",
            "tailscale serve/funnel requires gateway bind=loopback (127.0.0.1); the gateway refuses to start (exit 78)".into(),
            "set gateway.bind=loopback (Serve already publishes it) or gateway.tailscale.mode=off".into(),
        ));
    }
    if s.tailscale_mode == TailscaleMode::Serve && s.auth.mode == AuthMode::None {
        f.push(Finding::new(
            "tailscale_without_auth",
            "critical",
            "gateway.auth.mode=none cannot be used with gateway.tailscale.mode=serve; the gateway refuses to start (exit 78)".into(),
            "set gateway.auth.mode to token, password or trusted-proxy".into(),
        ));
    }
    if allow_tailscale {
        f.push(Finding::new(
            "tailscale_identity",
            "info",
            "anyone on your tailnet whose identity whois confirms can connect through Serve without the token (devices still pair)".into(),
            "set gateway.auth.allowTailscale=false to require the token through Serve too".into(),
        ));
    }
    for p in &s.trusted_proxies {
        if is_wide_range(p) {
            f.push(Finding::new(
                "trusted_proxies_wide",
                "critical",
                format!("gateway.trustedProxies entry {p:?} covers a wide range: any host in it can forge client addresses (and users, in trusted-proxy mode)"),
                "list only your proxies' addresses in gateway.trustedProxies".into(),
            ));
        }
    }
    if s.auth.mode == AuthMode::TrustedProxy {
        let tp = raw.pointer("/gateway/auth/trustedProxy");
        let list_empty = |k: &str| {
            tp.and_then(|t| t.get(k))
                .and_then(Value::as_array)
                .is_none_or(|a| a.is_empty())
        };
        if tp
            .and_then(|t| t.get("allowLoopback"))
            .and_then(Value::as_bool)
            == Some(true)
        {
            f.push(Finding::new(
                "trusted_proxy_loopback",
                "warning",
                "gateway.auth.trustedProxy.allowLoopback=true: any process on this machine can claim to be any user".into(),
                "set allowLoopback=false unless a proxy on this host fronts the gateway, and set requiredHeaders to a header only the proxy sends".into(),
            ));
        }
        if list_empty("requiredHeaders") {
            f.push(Finding::new(
                "trusted_proxy_no_required_headers",
                "warning",
                "gateway.auth.trustedProxy.requiredHeaders is empty: nothing shows a request really passed the proxy's authentication".into(),
                "list a header the proxy always sets after authenticating (e.g. x-forwarded-email)".into(),
            ));
        }
        if list_empty("allowUsers") {
            f.push(Finding::new(
                "trusted_proxy_any_user",
                "info",
                "every user the proxy names is admitted".into(),
                "set gateway.auth.trustedProxy.allowUsers to restrict them".into(),
            ));
        }
    }
    if raw
        .pointer("/gateway/controlUi/allowedOrigins")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|o| o.as_str() == Some("*")))
    {
        f.push(Finding::new(
            "origins_wildcard",
            "warning",
            "gateway.controlUi.allowedOrigins contains \"*\": any web page can open a browser connection".into(),
            "list the Control UI origins explicitly".into(),
        ));
    }
    if raw_bool(
        raw,
        "/gateway/controlUi/dangerouslyAllowHostHeaderOriginFallback",
    ) == Some(true)
    {
        f.push(Finding::new(
            "origins_host_fallback",
            "warning",
            "gateway.controlUi.dangerouslyAllowHostHeaderOriginFallback=true trusts the Host header for browser origins".into(),
            "set gateway.controlUi.allowedOrigins and turn the fallback off".into(),
        ));
    }
    for c in &s.node_auto_approve_cidrs {
        if is_wide_range(c) {
            f.push(Finding::new(
                "node_auto_approve_wide",
                "warning",
                format!("gateway.nodes.pairing.autoApproveCidrs entry {c:?} covers a wide range: any host in it that has the gateway's token pairs a node without an approval"),
                "list only the networks your node hosts are on (for example your tailnet, 100.64.0.0/10), or remove the key to approve every node by hand".into(),
            ));
        }
    }
    for hint in &s.hints {
        f.push(Finding::new(
            "hint",
            "info",
            hint.clone(),
            "see the message".into(),
        ));
    }
    let exposure = Exposure {
        bind: s.bind.to_string(),
        host,
        reach,
        credential,
        transport,
        tls_fingerprint: fingerprint,
        trusted_proxies: s.trusted_proxies.clone(),
        tailscale: s.tailscale_mode.to_string(),
        allow_tailscale,
        node_pairing: node_pairing(s),
    };
    (exposure, f)
}

/// An IP range wider than a /16 (IPv4) or /48 (IPv6).
fn is_wide_range(p: &str) -> bool {
    let v6 = p.contains(':');
    let prefix = match p.split_once('/') {
        Some((_, n)) => n.trim().parse().unwrap_or(0),
        None => 128,
    };
    p.parse::<ingress::Cidr>().is_ok() && prefix < if v6 { 48 } else { 16 }
}

/// Who approves a first-time node host: an operator, or the gateway itself for the
/// addresses `autoApproveCidrs` lists and, with `sshVerify`, once it read the host's node
/// identity over SSH.
fn node_pairing(s: &GatewaySettings) -> String {
    let mut ways = vec!["by an operator".to_owned()];
    if !s.node_auto_approve_cidrs.is_empty() {
        ways.push(format!(
            "on the spot from {} (autoApproveCidrs)",
            s.node_auto_approve_cidrs.join(", ")
        ));
    }
    let ssh = &s.node_ssh_verify;
    if ssh.enabled {
        let from = if ssh.cidrs.is_empty() {
            "private and CGNAT addresses".to_owned()
        } else {
            ssh.cidrs.join(", ")
        };
        let user = ssh.user.as_deref().unwrap_or("the gateway's own user");
        ways.push(format!(
            "from {from} once ssh as {user} (port 22) reads back the node's identity (sshVerify)"
        ));
    }
    ways.join("; ")
}

/// `gateway.remote.tlsFingerprint` as the client takes it: one pin, or a pin set (an array in
/// the config) joined by commas.
fn configured_pins(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(pin) => Some(pin.clone()),
        Value::Array(pins) => Some(
            pins.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(","),
        ),
        _ => None,
    }
}

/// Connects to the local gateway (or `gateway.remote.url` in remote mode) and reports.
async fn live_check(args: &DoctorArgs, s: &GatewaySettings, raw: &Value) -> (String, Vec<Check>) {
    let remote = raw.pointer("/gateway/mode").and_then(Value::as_str) == Some("remote");
    let remote_url = raw.pointer("/gateway/remote/url").and_then(Value::as_str);
    let (url, pin, token, password) = match (remote, remote_url) {
        (true, Some(u)) => (
            u.to_owned(),
            configured_pins(raw.pointer("/gateway/remote/tlsFingerprint")),
            raw.pointer("/gateway/remote/token")
                .and_then(Value::as_str)
                .map(str::to_owned),
            raw.pointer("/gateway/remote/password")
                .and_then(Value::as_str)
                .map(str::to_owned),
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
    exposure: Option<&Exposure>,
    findings: Vec<Finding>,
    checks: Vec<Check>,
    url: Option<String>,
    repairs: Option<&[security_audit::ChmodAction]>,
) -> ExitCode {
    let critical = findings.iter().any(|f| f.severity == "critical");
    let live_failed = checks
        .iter()
        .any(|c| c.ok == Some(false) && c.check != "reachability");
    let ok = !critical && !live_failed;
    if args.json {
        let exposure = exposure.map(exposure_json);
        let live = url.map(|u| {
            json!({"url": u, "reachable": checks.iter().any(|c| c.check == "reachability" && c.ok == Some(true)),
                "checks": checks.iter().map(Check::json).collect::<Vec<_>>()})
        });
        let mut v = json!({"ok": ok, "configPath": config_path.display().to_string(), "exposure": exposure,
            "findings": findings.iter().map(Finding::json).collect::<Vec<_>>(), "live": live});
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
