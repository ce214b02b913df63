//! The browser UI's address for a resolved [`Target`]: the gateway serves it on the port of
//! its WebSocket, so `ws://host:port` becomes `http://host:port<basePath>/` (`wss` → `https`),
//! with the token in the fragment (`#token=…`), which browsers never send to a server and the
//! page removes from the address bar once it has read it.
//!
//! Through an SSH tunnel the target's URL already names the tunnel's local end; for this
//! machine's gateway the base path is its `gateway.controlUi.basePath`; for a remote one it
//! is the path of its URL (a gateway behind a path-routing proxy serves both there).

use crate::target::Target;
use clawgate_config::{self as config, TargetSource};

/// Why no address could be made.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("the gateway URL {0:?} is not a ws:// or wss:// URL")]
    NotWebSocket(String),
    #[error("{0}")]
    Config(String),
}

/// The browser UI's address for `target`, with `#token=` when it carries a token (a password
/// is never put in a URL).
pub fn dashboard_url(
    target: &Target,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, DashboardError> {
    let base_path = if target.source == TargetSource::Local && target.tunnel.is_none() {
        let location = config::locate_config(target.config_path.as_deref(), None, env);
        config::load_config(&location, env)
            .map_err(|e| DashboardError::Config(e.to_string()))?
            .map(|l| l.gateway.control_ui.base_path)
            .unwrap_or_default()
    } else {
        url_path(&target.url).trim_end_matches('/').to_owned()
    };
    let web = match &target.connect_to {
        // wss:// through a tunnel keeps the server's name for TLS; a browser can only dial
        // the tunnel's local end.
        Some(local) => format!("https://{local}"),
        None => web_origin(&target.url)?,
    };
    let mut url = format!("{web}{base_path}/");
    if let Some(token) = target.token.as_deref().filter(|t| !t.is_empty()) {
        url.push_str("#token=");
        url.push_str(&fragment_encode(token));
    }
    Ok(url)
}

/// `ws://h:p/x` → `http://h:p`, `wss://h` → `https://h`.
fn web_origin(ws_url: &str) -> Result<String, DashboardError> {
    let (scheme, rest) = ws_url
        .split_once("://")
        .ok_or_else(|| DashboardError::NotWebSocket(ws_url.to_owned()))?;
    let web_scheme = match scheme.to_ascii_lowercase().as_str() {
        "ws" => "http",
        "wss" => "https",
        _ => return Err(DashboardError::NotWebSocket(ws_url.to_owned())),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    Ok(format!("{web_scheme}://{authority}"))
}

/// The path of a URL, without query or fragment (`""` when it has none).
fn url_path(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    rest.find('/').map_or("", |i| &rest[i..])
}

/// Percent-encodes everything but RFC 3986's unreserved characters, so the page's
/// `URLSearchParams` reads the token back byte for byte (a `+` would read as a space).
fn fragment_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::CredentialOrigin;
    use std::path::PathBuf;

    fn target(url: &str, source: TargetSource, token: Option<&str>) -> Target {
        Target {
            url: url.into(),
            token: token.map(str::to_owned),
            password: None,
            tls_fingerprint: None,
            source,
            config_path: None,
            state_dir: PathBuf::from("/nonexistent"),
            credential: CredentialOrigin::None,
            connect_to: None,
            tunnel: None,
            probe_tunnel: None,
        }
    }

    #[test]
    fn remote_urls_keep_their_host_path_and_scheme() {
        let no_env = |_: &str| None;
        let t = target(
            "wss://gw.tail1234.ts.net/openclaw/",
            TargetSource::Flag,
            Some("a+b/c=d"),
        );
        assert_eq!(
            dashboard_url(&t, &no_env).unwrap(),
            "https://gw.tail1234.ts.net/openclaw/#token=a%2Bb%2Fc%3Dd"
        );
        let t = target("ws://10.0.0.5:18789", TargetSource::RemoteConfig, None);
        assert_eq!(
            dashboard_url(&t, &no_env).unwrap(),
            "http://10.0.0.5:18789/"
        );
        let mut tunnelled = target("wss://gw.example/", TargetSource::RemoteConfig, Some("t"));
        tunnelled.connect_to = Some("127.0.0.1:41000".parse().unwrap());
        assert_eq!(
            dashboard_url(&tunnelled, &no_env).unwrap(),
            "https://127.0.0.1:41000/#token=t"
        );
        let bad = target("http://x", TargetSource::Flag, None);
        assert!(dashboard_url(&bad, &no_env).is_err());
    }

    #[test]
    fn the_local_gateway_uses_its_configured_base_path() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("openclaw.json");
        std::fs::write(&config, r#"{gateway: {controlUi: {basePath: "ui/"}}}"#).unwrap();
        let mut t = target("ws://127.0.0.1:18789", TargetSource::Local, Some("tok"));
        t.config_path = Some(config);
        let no_env = |_: &str| None;
        assert_eq!(
            dashboard_url(&t, &no_env).unwrap(),
            "http://127.0.0.1:18789/ui/#token=tok"
        );
    }
}
