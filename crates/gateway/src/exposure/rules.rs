//! The exposure rules, in the order `doctor` lists them; the start-up refusals come first,
//! in the order `gateway run` checks them.

use clawgate_config::{AuthMode, BindMode, TailscaleMode};

use super::Severity::{Critical, Info, Warn};
use super::{Exposure, Finding, Rule, Startup};

/// Every exposure rule.
pub const RULES: &[Rule] = &[
    Rule {
        id: "bind_without_auth",
        startup: Startup::RefusedWithFix,
        findings: bind_without_auth,
        openclaw: Some(bind_no_auth_openclaw),
    },
    Rule {
        id: "funnel_without_password",
        startup: Startup::Refused,
        findings: funnel_without_password,
        openclaw: None,
    },
    Rule {
        id: "tailscale_without_auth",
        startup: Startup::Refused,
        findings: tailscale_without_auth,
        openclaw: None,
    },
    Rule {
        id: "tailscale_needs_loopback",
        startup: Startup::Refused,
        findings: tailscale_needs_loopback,
        openclaw: None,
    },
    Rule {
        id: "plaintext_network",
        startup: Startup::Starts,
        findings: plaintext_network,
        openclaw: None,
    },
    Rule {
        id: "bind_all_interfaces",
        startup: Startup::Starts,
        findings: bind_all_interfaces,
        openclaw: None,
    },
    Rule {
        id: "auth_none",
        startup: Startup::Starts,
        findings: auth_none,
        openclaw: None,
    },
    Rule {
        id: "weak_secret",
        startup: Startup::Starts,
        findings: weak_secret,
        openclaw: None,
    },
    Rule {
        id: "funnel_public",
        startup: Startup::Starts,
        findings: funnel_public,
        openclaw: None,
    },
    Rule {
        id: "tailscale_identity",
        startup: Startup::Starts,
        findings: tailscale_identity,
        openclaw: None,
    },
    Rule {
        id: "trusted_proxies_wide",
        startup: Startup::Starts,
        findings: trusted_proxies_wide,
        openclaw: None,
    },
    Rule {
        id: "trusted_proxy_loopback",
        startup: Startup::Starts,
        findings: trusted_proxy_loopback,
        openclaw: Some(trusted_proxy_loopback_openclaw),
    },
    Rule {
        id: "trusted_proxy_no_required_headers",
        startup: Startup::Starts,
        findings: trusted_proxy_no_required_headers,
        openclaw: None,
    },
    Rule {
        id: "trusted_proxy_any_user",
        startup: Startup::Starts,
        findings: trusted_proxy_any_user,
        openclaw: Some(trusted_proxy_any_user_openclaw),
    },
    Rule {
        id: "origins_wildcard",
        startup: Startup::Starts,
        findings: origins_wildcard,
        openclaw: Some(origins_wildcard_openclaw),
    },
    Rule {
        id: "origins_host_fallback",
        startup: Startup::Starts,
        findings: origins_host_fallback,
        openclaw: Some(origins_host_fallback_openclaw),
    },
    Rule {
        id: "node_auto_approve_wide",
        startup: Startup::Starts,
        findings: node_auto_approve_wide,
        openclaw: None,
    },
    Rule {
        id: "hint",
        startup: Startup::Starts,
        findings: hints,
        openclaw: None,
    },
];

/// Critical beyond loopback, a warning on it (OpenClaw's audit).
fn critical_if_exposed(f: &Exposure) -> super::Severity {
    if f.loopback { Warn } else { Critical }
}

fn bind_without_auth(f: &Exposure) -> Vec<Finding> {
    if f.loopback || f.guarded {
        return Vec::new();
    }
    let (detail, fix) = if f.in_container {
        (
            "Container environment detected — the gateway defaults to bind=auto (0.0.0.0) for port-forwarding compatibility.",
            "Set OPENCLAW_GATEWAY_TOKEN or OPENCLAW_GATEWAY_PASSWORD, or pass --token/--password to start with auth.",
        )
    } else {
        (
            "",
            "Set gateway.auth.token/password (or OPENCLAW_GATEWAY_TOKEN/OPENCLAW_GATEWAY_PASSWORD) or pass --token/--password.",
        )
    };
    vec![Finding::new(
        "bind_without_auth",
        Critical,
        format!("Refusing to bind gateway to {} without auth.", f.bind),
        detail,
        fix,
    )]
}

fn bind_no_auth_openclaw(f: &Exposure) -> Finding {
    Finding::new(
        "gateway.bind_no_auth",
        Critical,
        "Gateway binds beyond loopback without auth",
        format!(
            "gateway.bind=\"{}\" but no gateway.auth token/password is configured.",
            f.bind
        ),
        "Set gateway.auth (token recommended) or bind to loopback.",
    )
}

fn funnel_without_password(f: &Exposure) -> Vec<Finding> {
    if f.tailscale != TailscaleMode::Funnel || f.auth_mode == AuthMode::Password {
        return Vec::new();
    }
    vec![Finding::new(
        "funnel_without_password",
        Critical,
        "tailscale funnel requires gateway auth mode=password (set gateway.auth.password or OPENCLAW_GATEWAY_PASSWORD)",
        "",
        "set gateway.auth.mode=password and gateway.auth.password, or set gateway.tailscale.mode=serve",
    )]
}

fn tailscale_without_auth(f: &Exposure) -> Vec<Finding> {
    if f.tailscale != TailscaleMode::Serve || f.auth_mode != AuthMode::None {
        return Vec::new();
    }
    vec![Finding::new(
        "tailscale_without_auth",
        Critical,
        "gateway.auth.mode=none cannot be used with gateway.tailscale.mode=serve; configure token, password, or trusted-proxy auth before exposing the gateway through Tailscale",
        "",
        "set gateway.auth.mode to token, password or trusted-proxy",
    )]
}

fn tailscale_needs_loopback(f: &Exposure) -> Vec<Finding> {
    if f.tailscale == TailscaleMode::Off || f.loopback {
        return Vec::new();
    }
    vec![Finding::new(
        "tailscale_needs_loopback",
        Critical,
        format!(
            "tailscale serve/funnel requires gateway bind=loopback (127.0.0.1); gateway.bind is {} (Tailscale {} already publishes the loopback gateway: set gateway.bind to loopback, or set gateway.tailscale.mode to off)",
            f.bind, f.tailscale
        ),
        "",
        "set gateway.bind=loopback (Serve already publishes it) or gateway.tailscale.mode=off",
    )]
}

fn plaintext_network(f: &Exposure) -> Vec<Finding> {
    if f.loopback || f.tls {
        return Vec::new();
    }
    vec![Finding::new(
        "plaintext_network",
        Warn,
        format!(
            "gateway.bind={} without TLS: tokens, passwords and every message cross the network in plaintext",
            f.bind
        ),
        "",
        "set gateway.tls.enabled=true (clients pin the fingerprint), or keep gateway.bind=loopback and use `clawgate tunnel up` or Tailscale Serve",
    )]
}

fn bind_all_interfaces(f: &Exposure) -> Vec<Finding> {
    let all = f.bind == BindMode::Lan || (f.bind == BindMode::Auto && !f.loopback);
    if !all {
        return Vec::new();
    }
    vec![Finding::new(
        "bind_all_interfaces",
        Warn,
        "the gateway listens on all interfaces (0.0.0.0), including any public one",
        "",
        "prefer gateway.bind=tailnet, custom (one address) or loopback with an SSH tunnel; otherwise firewall the port",
    )]
}

fn auth_none(f: &Exposure) -> Vec<Finding> {
    if f.auth_mode != AuthMode::None {
        return Vec::new();
    }
    vec![Finding::new(
        "auth_none",
        Warn,
        "gateway.auth.mode=none: no shared secret; any local process can pair a device silently",
        "",
        "set gateway.auth.mode=token (the default)",
    )]
}

fn weak_secret(f: &Exposure) -> Vec<Finding> {
    let Some(n) = f.secret.map(str::len).filter(|n| *n < 24) else {
        return Vec::new();
    };
    vec![Finding::new(
        "weak_secret",
        Warn,
        format!("the gateway {} is only {n} characters long", f.auth_mode),
        "",
        "use at least 24 random characters (e.g. `openssl rand -hex 24`)",
    )]
}

fn funnel_public(f: &Exposure) -> Vec<Finding> {
    if f.tailscale != TailscaleMode::Funnel || f.auth_mode != AuthMode::Password {
        return Vec::new();
    }
    vec![Finding::new(
        "funnel_public",
        Warn,
        "Tailscale Funnel publishes the gateway on the public internet, guarded by the password alone",
        "",
        "use a long random gateway.auth.password, or gateway.tailscale.mode=serve to stay inside the tailnet",
    )]
}

fn tailscale_identity(f: &Exposure) -> Vec<Finding> {
    if !f.allow_tailscale {
        return Vec::new();
    }
    vec![Finding::new(
        "tailscale_identity",
        Info,
        "anyone on your tailnet whose identity whois confirms can connect through Serve without the token (devices still pair)",
        "",
        "set gateway.auth.allowTailscale=false to require the token through Serve too",
    )]
}

/// An IP range wider than a /16 (IPv4) or /48 (IPv6).
fn is_wide_range(p: &str) -> bool {
    let v6 = p.contains(':');
    let prefix = match p.split_once('/') {
        Some((_, n)) => n.trim().parse().unwrap_or(0),
        None => 128,
    };
    p.parse::<crate::ingress::Cidr>().is_ok() && prefix < if v6 { 48 } else { 16 }
}

fn trusted_proxies_wide(f: &Exposure) -> Vec<Finding> {
    f.config
        .trusted_proxies
        .iter()
        .filter(|p| is_wide_range(p))
        .map(|p| Finding::new(
            "trusted_proxies_wide",
            Critical,
            format!("gateway.trustedProxies entry {p:?} covers a wide range: any host in it can forge client addresses (and users, in trusted-proxy mode)"),
            "",
            "list only your proxies' addresses in gateway.trustedProxies",
        ))
        .collect()
}

/// `gateway.auth.trustedProxy` when trusted-proxy auth is in effect.
fn trusted_proxy<'a>(f: &Exposure<'a>) -> Option<Option<&'a clawgate_config::TrustedProxyConfig>> {
    (f.auth_mode == AuthMode::TrustedProxy).then_some(f.config.auth.trusted_proxy.as_ref())
}

fn trusted_proxy_loopback(f: &Exposure) -> Vec<Finding> {
    let Some(Some(tp)) = trusted_proxy(f) else {
        return Vec::new();
    };
    if tp.allow_loopback != Some(true) {
        return Vec::new();
    }
    vec![Finding::new(
        "trusted_proxy_loopback",
        Warn,
        "gateway.auth.trustedProxy.allowLoopback=true: any process on this machine can claim to be any user",
        "",
        "set allowLoopback=false unless a proxy on this host fronts the gateway, and set requiredHeaders to a header only the proxy sends",
    )]
}

fn trusted_proxy_loopback_openclaw(_: &Exposure) -> Finding {
    Finding::new(
        "gateway.trusted_proxy_allow_loopback",
        Warn,
        "Trusted-proxy auth allows loopback proxy sources",
        "gateway.auth.trustedProxy.allowLoopback=true allows loopback-source requests from configured gateway.trustedProxies entries to satisfy trusted-proxy auth.",
        "Enable this only when a same-host reverse proxy is the intended trust boundary. Keep direct Gateway access private to the host and require the proxy to strip or overwrite identity headers.",
    )
}

fn trusted_proxy_no_required_headers(f: &Exposure) -> Vec<Finding> {
    let Some(tp) = trusted_proxy(f) else {
        return Vec::new();
    };
    if tp.is_some_and(|tp| !tp.required_headers.is_empty()) {
        return Vec::new();
    }
    vec![Finding::new(
        "trusted_proxy_no_required_headers",
        Warn,
        "gateway.auth.trustedProxy.requiredHeaders is empty: nothing shows a request really passed the proxy's authentication",
        "",
        "list a header the proxy always sets after authenticating (e.g. x-forwarded-email)",
    )]
}

fn trusted_proxy_any_user(f: &Exposure) -> Vec<Finding> {
    let Some(tp) = trusted_proxy(f) else {
        return Vec::new();
    };
    if tp.is_some_and(|tp| !tp.allow_users.is_empty()) {
        return Vec::new();
    }
    vec![Finding::new(
        "trusted_proxy_any_user",
        Info,
        "every user the proxy names is admitted",
        "",
        "set gateway.auth.trustedProxy.allowUsers to restrict them",
    )]
}

fn trusted_proxy_any_user_openclaw(_: &Exposure) -> Finding {
    Finding::new(
        "gateway.trusted_proxy_no_allowlist",
        Warn,
        "Trusted-proxy auth allows all authenticated users",
        "gateway.auth.trustedProxy.allowUsers is empty, so any user authenticated by your proxy can access the Gateway.",
        "Consider setting gateway.auth.trustedProxy.allowUsers to restrict access to specific users (e.g., [\"nick@example.com\"]).",
    )
}

fn origins_wildcard(f: &Exposure) -> Vec<Finding> {
    if !f.config.control_ui.origins().any(|o| o == "*") {
        return Vec::new();
    }
    vec![Finding::new(
        "origins_wildcard",
        Warn,
        "gateway.controlUi.allowedOrigins contains \"*\": any web page can open a browser connection",
        "",
        "list the Control UI origins explicitly",
    )]
}

fn origins_wildcard_openclaw(f: &Exposure) -> Finding {
    Finding::new(
        "gateway.control_ui.allowed_origins_wildcard",
        critical_if_exposed(f),
        "Control UI allowed origins contains wildcard",
        "gateway.controlUi.allowedOrigins includes \"*\" which means allow any browser origin for Control UI/WebChat requests. This disables origin allowlisting and should be treated as an intentional allow-all policy.",
        "Replace wildcard origins with explicit trusted origins (for example https://control.example.com). Do not use \"*\" outside tightly controlled local testing.",
    )
}

fn origins_host_fallback(f: &Exposure) -> Vec<Finding> {
    if f.config.control_ui.host_header_origin_fallback != Some(true) {
        return Vec::new();
    }
    vec![Finding::new(
        "origins_host_fallback",
        Warn,
        "gateway.controlUi.dangerouslyAllowHostHeaderOriginFallback=true trusts the Host header for browser origins",
        "",
        "set gateway.controlUi.allowedOrigins and turn the fallback off",
    )]
}

fn origins_host_fallback_openclaw(f: &Exposure) -> Finding {
    Finding::new(
        "gateway.control_ui.host_header_origin_fallback",
        critical_if_exposed(f),
        "DANGEROUS: Host-header origin fallback enabled",
        "gateway.controlUi.dangerouslyAllowHostHeaderOriginFallback=true enables Host-header origin fallback for Control UI/WebChat websocket checks and weakens DNS rebinding protections.",
        "Disable gateway.controlUi.dangerouslyAllowHostHeaderOriginFallback and configure explicit gateway.controlUi.allowedOrigins.",
    )
}

fn node_auto_approve_wide(f: &Exposure) -> Vec<Finding> {
    f.config
        .node_auto_approve_cidrs
        .iter()
        .filter(|c| is_wide_range(c))
        .map(|c| Finding::new(
            "node_auto_approve_wide",
            Warn,
            format!("gateway.nodes.pairing.autoApproveCidrs entry {c:?} covers a wide range: any host in it that has the gateway's token pairs a node without an approval"),
            "",
            "list only the networks your node hosts are on (for example your tailnet, 100.64.0.0/10), or remove the key to approve every node by hand",
        ))
        .collect()
}

fn hints(f: &Exposure) -> Vec<Finding> {
    f.hints
        .iter()
        .map(|hint| Finding::new("hint", Info, hint.clone(), "", "see the message"))
        .collect()
}
