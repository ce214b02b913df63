//! How `clawgate node run` finds its gateway and credentials: the gateway URL from the
//! flags, then credentials from the flags, `CLAWGATE_GATEWAY_*` / `OPENCLAW_GATEWAY_*`, the
//! config file (for that very gateway only) and a local gateway's generated token; the
//! plaintext `ws://` rule; the node's state directory.

use crate::NodeHostConfig;
use clawgate_config as config;
use std::path::{Path, PathBuf};

/// What `node run` was given on its command line.
#[derive(Debug, Clone)]
pub struct NodeRunInputs {
    /// Gateway host and port (when there is no `url`).
    pub host: String,
    pub port: u16,
    /// Gateway URL (ws:// or wss://), instead of `host`/`port`/`tls`.
    pub url: Option<String>,
    /// The URL is the local end of an SSH tunnel: a loopback URL is another host's gateway.
    pub through_ssh: bool,
    /// Connect with TLS (wss://).
    pub tls: bool,
    /// Pins (SHA-256 fingerprints, each possibly a comma-separated set); any implies TLS.
    pub tls_fingerprint: Vec<String>,
    pub display_name: Option<String>,
    pub token: Option<String>,
    pub password: Option<String>,
    /// Node state directory (default `<state dir>/node`).
    pub state_dir: Option<PathBuf>,
    pub max_concurrent: usize,
}

/// The node host's config, and what the caller should warn about.
#[derive(Debug)]
pub struct Resolved {
    pub config: NodeHostConfig,
    pub warnings: Vec<String>,
}

fn env_secret(suffix: &str) -> Option<String> {
    ["CLAWGATE_", "OPENCLAW_"].iter().find_map(|prefix| {
        config::process_env(&format!("{prefix}{suffix}")).filter(|v| !v.trim().is_empty())
    })
}

/// The gateway URL of `--url`, or of `--host`/`--port`/`--tls`.
pub fn gateway_url(args: &NodeRunInputs) -> Result<String, String> {
    if let Some(url) = &args.url {
        let url = url.trim();
        if !(url.starts_with("ws://") || url.starts_with("wss://")) {
            return Err(format!("--url must start with ws:// or wss:// (got {url})"));
        }
        if !args.tls_fingerprint.is_empty() && !url.starts_with("wss://") {
            return Err("--tls-fingerprint needs a wss:// URL".into());
        }
        return Ok(url.trim_end_matches('/').to_owned());
    }
    let host = args.host.trim();
    if host.is_empty() {
        return Err("--host must not be empty".into());
    }
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    let scheme = if args.tls || !args.tls_fingerprint.is_empty() {
        "wss"
    } else {
        "ws"
    };
    Ok(format!("{scheme}://{host}:{}", args.port))
}

fn is_loopback_url(url: &str) -> bool {
    let rest = url.split("://").nth(1).unwrap_or("");
    let host = rest.split('/').next().unwrap_or("");
    let host = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
    };
    host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `scheme://host:port` with default ports filled in and case folded, for comparing URLs.
fn endpoint_key(url: &str) -> String {
    let url = url.trim().trim_end_matches('/').to_ascii_lowercase();
    let (scheme, rest) = url.split_once("://").unwrap_or(("ws", url.as_str()));
    let authority = rest.split('/').next().unwrap_or("");
    let has_port = match authority.rsplit_once(':') {
        Some((host, port)) => !host.ends_with(':') && port.chars().all(|c| c.is_ascii_digit()),
        None => false,
    } && !authority.ends_with(']');
    let default_port = if scheme == "wss" { 443 } else { 80 };
    let authority = if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:{default_port}")
    };
    format!("{scheme}://{}", authority.replace("localhost", "127.0.0.1"))
}

/// Credentials (and pin) the config file holds for `url`: `gateway.auth.*` for the local
/// gateway, `gateway.remote.*` for the remote one. Credentials never go to another gateway
/// than the one the config names.
fn config_credentials(
    url: &str,
    warnings: &mut Vec<String>,
) -> (Option<String>, Option<String>, Option<String>) {
    let env = config::process_env;
    let location = config::locate_config(None, None, &env);
    let loaded = match config::load_config(&location, &env) {
        Ok(loaded) => loaded,
        Err(e) => {
            warnings.push(format!("not reading credentials from the config file: {e}"));
            return (None, None, None);
        }
    };
    match config::resolve_client_target(&config::ClientFlags::default(), loaded.as_ref(), &env) {
        Ok(t) if endpoint_key(&t.url) == endpoint_key(url) => (
            t.token.map(|s| s.expose().to_owned()),
            t.password.map(|s| s.expose().to_owned()),
            t.tls_fingerprint,
        ),
        _ => (None, None, None),
    }
}

/// The node host's state directory: `--state-dir`, else `<state dir>/node`.
pub fn node_state_dir(explicit: Option<&Path>) -> PathBuf {
    match explicit {
        Some(dir) => config::resolve_state_dir(Some(dir), &config::process_env),
        None => config::resolve_state_dir(None, &config::process_env).join("node"),
    }
}

/// Builds the node host config. Credentials: flags, then `CLAWGATE_GATEWAY_*` /
/// `OPENCLAW_GATEWAY_*`, then the config file's credentials for this very gateway, then (a
/// loopback gateway only) the token a local clawgate gateway generated
/// (`<state dir>/gateway.token`).
///
/// Errors are usage errors: the message names the flag to fix.
pub fn resolve(args: &NodeRunInputs) -> Result<Resolved, String> {
    let mut warnings = Vec::new();
    let url = gateway_url(args)?;
    let mut token = args.token.clone().or_else(|| env_secret("GATEWAY_TOKEN"));
    let mut password = args
        .password
        .clone()
        .or_else(|| env_secret("GATEWAY_PASSWORD"));
    let mut tls_fingerprint = if args.tls_fingerprint.is_empty() {
        None
    } else {
        let pins = clawgate_client::parse_pins(&args.tls_fingerprint.join(",")).map_err(|bad| {
            format!(
                "--tls-fingerprint must be a SHA-256 fingerprint: 64 hex digits, optionally colon-separated and prefixed with \"sha256:\" (got {})",
                serde_json::Value::String(bad)
            )
        })?;
        Some(pins.join(","))
    };
    let env = config::process_env;
    let base_state = config::resolve_state_dir(None, &env);
    if token.is_none() && password.is_none() {
        let (t, p, pin) = config_credentials(&url, &mut warnings);
        token = t;
        password = p;
        if tls_fingerprint.is_none() && url.starts_with("wss://") {
            tls_fingerprint = pin;
        }
    }
    let break_glass = clawgate_client::plaintext::break_glass(&env).is_some();
    if let Err(r) = clawgate_client::plaintext::check(&url, break_glass) {
        return Err(format!(
            "refusing plaintext ws:// to {}: {}; credentials would cross the network in the clear. Use wss:// (--tls, with --tls-fingerprint for a self-signed gateway certificate) or go through SSH with --ssh [user@]{}",
            url, r.reason, r.host
        ));
    }
    // Through a tunnel the loopback URL is another host's gateway: not the local token.
    if token.is_none() && password.is_none() && is_loopback_url(&url) && !args.through_ssh {
        token = std::fs::read_to_string(base_state.join("gateway.token"))
            .ok()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
    }
    let state_dir = node_state_dir(args.state_dir.as_deref());
    let config = NodeHostConfig {
        url,
        tls_fingerprint,
        token,
        password,
        display_name: args.display_name.clone(),
        state_dir,
        max_concurrent: args.max_concurrent.max(1),
    };
    Ok(Resolved { config, warnings })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_compare_with_default_ports() {
        assert_eq!(
            endpoint_key("ws://127.0.0.1:18789/"),
            endpoint_key("WS://localhost:18789")
        );
        assert_eq!(
            endpoint_key("wss://gw.example"),
            endpoint_key("wss://gw.example:443/x")
        );
        assert_ne!(
            endpoint_key("ws://127.0.0.1:1"),
            endpoint_key("ws://127.0.0.1:2")
        );
        assert_ne!(endpoint_key("ws://h:80"), endpoint_key("wss://h:80"));
        assert_eq!(endpoint_key("ws://[::1]"), "ws://[::1]:80");
    }

    #[test]
    fn loopback_detection() {
        assert!(is_loopback_url("ws://127.0.0.1:1"));
        assert!(is_loopback_url("ws://localhost:1/x"));
        assert!(is_loopback_url("ws://[::1]:1"));
        assert!(!is_loopback_url("wss://gw.example:443"));
    }
}
