//! The enum-valued settings, spelled exactly as OpenClaw's config schema and CLI spell
//! them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::InvalidValue;

macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)? }
        hint = $hint:expr
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant, )+
        }

        impl $name {
            /// Every accepted spelling, in the order shown to users.
            pub const ALLOWED: &'static [&'static str] = &[$($text),+];

            /// The spelling used in config files and on the command line.
            pub fn as_str(self) -> &'static str {
                match self { $( $name::$variant => $text, )+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = InvalidValue;

            fn from_str(s: &str) -> Result<Self, InvalidValue> {
                match s {
                    $( $text => Ok($name::$variant), )+
                    _ => {
                        let hint: fn(&str) -> Option<&'static str> = $hint;
                        Err(InvalidValue {
                            got: s.to_owned(),
                            allowed: Self::ALLOWED,
                            hint: hint(s).or_else(|| case_hint(s, Self::ALLOWED)),
                        })
                    }
                }
            }
        }
    };
}

/// `"LAN"` → tell the user the values are lowercase.
fn case_hint(s: &str, allowed: &[&str]) -> Option<&'static str> {
    let lower = s.trim().to_ascii_lowercase();
    allowed
        .iter()
        .any(|a| *a == lower)
        .then_some("values are lowercase, without surrounding spaces")
}

string_enum! {
    /// `gateway.bind` / `--bind`: which interfaces the gateway listens on.
    BindMode {
        /// `127.0.0.1` (plus `::1` when available). The default.
        Loopback = "loopback",
        /// `0.0.0.0`, every IPv4 interface.
        Lan = "lan",
        /// The first Tailscale (100.64.0.0/10) IPv4 address, plus `127.0.0.1`.
        Tailnet = "tailnet",
        /// `gateway.customBindHost`, plus `127.0.0.1`.
        Custom = "custom",
        /// `0.0.0.0` in a container, loopback otherwise.
        Auto = "auto",
    }
    hint = bind_hint
}

/// Host literals are the most common mistake (OpenClaw issue #12057): say which mode means
/// what the user wrote.
fn bind_hint(s: &str) -> Option<&'static str> {
    let s = s.trim();
    let host = s
        .strip_prefix('[')
        .and_then(|rest| rest.split_once(']').map(|(h, _)| h))
        .unwrap_or_else(|| match s.rsplit_once(':') {
            Some((h, port)) if !h.contains(':') && port.parse::<u16>().is_ok() => h,
            _ => s,
        });
    match host.to_ascii_lowercase().as_str() {
        "0.0.0.0" | "::" | "*" | "all" | "any" | "public" => {
            Some("to listen on all interfaces use \"lan\"")
        }
        "127.0.0.1" | "localhost" | "::1" | "local" => {
            Some("to listen on this machine only use \"loopback\"")
        }
        "tailscale" | "tailscale0" | "ts" => Some("for the Tailscale address use \"tailnet\""),
        other if other.parse::<std::net::IpAddr>().is_ok() => {
            Some("to listen on one specific address use \"custom\" and set gateway.customBindHost")
        }
        _ => None,
    }
}

string_enum! {
    /// `gateway.auth.mode` / `--auth`: how clients prove who they are.
    AuthMode {
        /// No shared secret (only sensible on loopback).
        None = "none",
        /// Shared token (`gateway.auth.token`). The default.
        Token = "token",
        /// Shared password (`gateway.auth.password`).
        Password = "password",
        /// Identity asserted by a reverse proxy listed in `gateway.trustedProxies`.
        TrustedProxy = "trusted-proxy",
    }
    hint = auth_hint
}

fn auth_hint(s: &str) -> Option<&'static str> {
    match s.trim().to_ascii_lowercase().as_str() {
        "trusted_proxy" | "trustedproxy" | "proxy" => Some("use \"trusted-proxy\""),
        "off" | "disabled" | "false" => Some("to disable auth use \"none\""),
        _ => None,
    }
}

string_enum! {
    /// `gateway.mode`: whether this machine runs the gateway or talks to a remote one.
    GatewayMode {
        Local = "local",
        Remote = "remote",
    }
    hint = |_| None
}

string_enum! {
    /// `gateway.remote.transport`: how a remote gateway is reached.
    RemoteTransport {
        Ssh = "ssh",
        Direct = "direct",
    }
    hint = |_| None
}

string_enum! {
    /// `gateway.remote.sshHostKeyPolicy`: how an SSH tunnel checks the host's key.
    SshHostKeyPolicy {
        /// `StrictHostKeyChecking=yes`: only hosts already in known_hosts (the default).
        Strict = "strict",
        /// Whatever the user's OpenSSH configuration says (e.g. `accept-new`).
        Openssh = "openssh",
    }
    hint = |_| None
}

string_enum! {
    /// `gateway.tailscale.mode`: whether the gateway publishes itself through Tailscale.
    TailscaleMode {
        Off = "off",
        Serve = "serve",
        Funnel = "funnel",
    }
    hint = |_| None
}

string_enum! {
    /// `discovery.mdns.mode`: what the gateway's Bonjour beacon tells.
    #[derive(Default)]
    MdnsMode {
        /// No beacon.
        Off = "off",
        /// Port, TLS and reachability only (OpenClaw's default).
        #[default]
        Minimal = "minimal",
        /// Also `cliPath`, `sshPort` and `tailnetDns`: what a client needs to reach the
        /// gateway host over SSH.
        Full = "full",
    }
    hint = |_| None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print() {
        for m in [
            BindMode::Loopback,
            BindMode::Lan,
            BindMode::Tailnet,
            BindMode::Custom,
            BindMode::Auto,
        ] {
            assert_eq!(m.as_str().parse::<BindMode>().unwrap(), m);
        }
        assert_eq!(
            "trusted-proxy".parse::<AuthMode>().unwrap(),
            AuthMode::TrustedProxy
        );
        assert_eq!(
            serde_json::to_string(&AuthMode::TrustedProxy).unwrap(),
            "\"trusted-proxy\""
        );
    }

    #[test]
    fn bind_errors_explain_the_fix() {
        let e = "0.0.0.0".parse::<BindMode>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "must be one of loopback, lan, tailnet, custom, auto (got \"0.0.0.0\"); to listen on all interfaces use \"lan\""
        );
        let e = "127.0.0.1:18789".parse::<BindMode>().unwrap_err();
        assert_eq!(
            e.hint,
            Some("to listen on this machine only use \"loopback\"")
        );
        let e = "[::]:18789".parse::<BindMode>().unwrap_err();
        assert_eq!(e.hint, Some("to listen on all interfaces use \"lan\""));
        let e = "192.168.1.10".parse::<BindMode>().unwrap_err();
        assert_eq!(
            e.hint,
            Some("to listen on one specific address use \"custom\" and set gateway.customBindHost")
        );
        let e = "LAN".parse::<BindMode>().unwrap_err();
        assert_eq!(
            e.hint,
            Some("values are lowercase, without surrounding spaces")
        );
        assert_eq!("wat".parse::<BindMode>().unwrap_err().hint, None);
    }

    #[test]
    fn auth_errors() {
        assert_eq!(
            "trusted_proxy".parse::<AuthMode>().unwrap_err().to_string(),
            "must be one of none, token, password, trusted-proxy (got \"trusted_proxy\"); use \"trusted-proxy\""
        );
    }
}
