//! What the config exposes, in words: who can reach the gateway, with what credential, over
//! what transport (`doctor`'s exposure report, `status --deep`).

use clawgate_config::{AuthMode, BindMode, GatewaySettings, SecretSource, TailscaleMode};
use serde::Serialize;

use super::Exposure;

/// The exposure report of one gateway config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Description {
    pub bind: String,
    /// The address the bind resolved to (`?` when it cannot be resolved).
    pub host: String,
    pub reach: String,
    pub credential: String,
    pub transport: String,
    pub tls_fingerprint: Option<String>,
    pub trusted_proxies: Vec<String>,
    pub tailscale: TailscaleDescription,
    /// How a first-time node host gets paired.
    pub node_pairing: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TailscaleDescription {
    pub mode: String,
    pub allow_tailscale: bool,
}

impl Description {
    /// `facts` of `settings`, whose bind resolved to `host`; `tls_fingerprint` is the
    /// certificate's, when it exists.
    pub fn of(
        settings: &GatewaySettings,
        facts: &Exposure,
        host: String,
        tls_fingerprint: Option<String>,
    ) -> Self {
        let s = settings;
        let loopback = facts.loopback;
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
                "every host that can route to this machine (bind=auto resolved to 0.0.0.0)"
                    .to_owned()
            }
        };
        let reach = match s.tailscale_mode {
            TailscaleMode::Off => reach,
            TailscaleMode::Serve => {
                format!("{reach}; your tailnet through Tailscale Serve (https)")
            }
            TailscaleMode::Funnel => {
                format!("{reach}; THE PUBLIC INTERNET through Tailscale Funnel (https)")
            }
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
        let credential = if facts.allow_tailscale {
            format!(
                "{credential}; or a Tailscale identity confirmed by whois (gateway.auth.allowTailscale)"
            )
        } else {
            credential
        };
        let transport = match (&s.tls, &tls_fingerprint) {
            (Some(_), Some(fp)) => format!("TLS 1.3 (wss://), certificate sha256:{fp}"),
            (Some(_), None) => "TLS 1.3 (wss://), certificate generated at first start".to_owned(),
            (None, _) if s.tailscale_mode != TailscaleMode::Off && loopback => {
                "plaintext ws:// on loopback; Tailscale Serve/Funnel adds https".to_owned()
            }
            (None, _) => "plaintext ws://".to_owned(),
        };
        Description {
            bind: s.bind.to_string(),
            host,
            reach,
            credential,
            transport,
            tls_fingerprint,
            trusted_proxies: s.trusted_proxies.clone(),
            tailscale: TailscaleDescription {
                mode: s.tailscale_mode.to_string(),
                allow_tailscale: facts.allow_tailscale,
            },
            node_pairing: node_pairing(s),
        }
    }
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
