//! The plaintext `ws://` rule: credentials and chat data must not cross a network in the
//! clear. A `ws://` URL is used only when its host is this machine, a private address, or a
//! name that stays on a private network; everything else is refused before any socket is
//! opened.
//!
//! Allowed without asking (OpenClaw's list): `localhost`, loopback, private IP literals
//! (RFC 1918, CGNAT `100.64.0.0/10`, link-local, IPv6 ULA and link-local), `*.local`
//! and `*.ts.net` names.
//!
//! The break-glass variable `CLAWGATE_ALLOW_INSECURE_PRIVATE_WS=1` (or
//! `OPENCLAW_ALLOW_INSECURE_PRIVATE_WS=1`) additionally admits a host *name* whose every
//! address is private (say `gateway.lan` → `192.168.1.5`). Unlike OpenClaw (issue
//! #37177) it never admits a public address or a name that resolves to one.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The break-glass variables, the clawgate name first.
pub const BREAK_GLASS_ENV: [&str; 2] = [
    "CLAWGATE_ALLOW_INSECURE_PRIVATE_WS",
    "OPENCLAW_ALLOW_INSECURE_PRIVATE_WS",
];

/// The first break-glass variable set to a true value (`1`, `true`, `yes`), if any.
pub fn break_glass(env: &dyn Fn(&str) -> Option<String>) -> Option<&'static str> {
    BREAK_GLASS_ENV.into_iter().find(|name| {
        env(name).is_some_and(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        })
    })
}

/// Why a `ws://` URL was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaintextRefusal {
    /// The URL's host (brackets removed).
    pub host: String,
    /// What is wrong with it, e.g. `203.0.113.5 is a public address`.
    pub reason: String,
    /// Whether the break-glass variable was set (and still did not allow it).
    pub break_glass: bool,
}

/// Loopback, RFC 1918, CGNAT (100.64.0.0/10), link-local, IPv6 ULA (fc00::/7) and
/// link-local (fe80::/10), and IPv4-mapped forms of these.
pub fn is_private_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_private_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private_v4(v4);
            }
            is_private_v6(v6)
        }
    }
}

fn is_private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || (a == 100 && (64..128).contains(&b))
}

fn is_private_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
}

/// Hosts a `ws://` URL may name without the break-glass variable.
pub fn host_allowed(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host == "localhost" || host.ends_with(".localhost") {
        return true;
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return is_private_ip(ip);
    }
    host.ends_with(".local") || host.ends_with(".ts.net")
}

/// `(scheme, host, port)` of a `ws://` / `wss://` URL.
fn split_url(url: &str) -> Option<(String, String, u16)> {
    let (scheme, rest) = url.trim().split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        (h, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let default = if scheme == "wss" { 443 } else { 80 };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default,
    };
    Some((scheme, host.to_owned(), port))
}

/// Checks `url` against the rule. `break_glass` says whether the variable is set;
/// `resolve` turns a host name into its addresses (only called with `break_glass`).
/// `wss://` and anything that is not a `ws://` URL pass (the URL parser reports those).
pub fn check_with(
    url: &str,
    break_glass: bool,
    resolve: &dyn Fn(&str, u16) -> std::io::Result<Vec<IpAddr>>,
) -> Result<(), PlaintextRefusal> {
    let Some((scheme, host, port)) = split_url(url) else {
        return Ok(());
    };
    if scheme != "ws" || host_allowed(&host) {
        return Ok(());
    }
    let refuse = |reason: String| PlaintextRefusal {
        host: host.clone(),
        reason,
        break_glass,
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Err(refuse(format!("{ip} is not a loopback or private address")));
    }
    if !break_glass {
        return Err(refuse(format!(
            "{host} is not a loopback or private address"
        )));
    }
    match resolve(&host, port) {
        Err(e) => Err(refuse(format!(
            "{host} could not be resolved to check that it is private ({e})"
        ))),
        Ok(addrs) if addrs.is_empty() => Err(refuse(format!("{host} has no addresses"))),
        Ok(addrs) => match addrs.iter().find(|ip| !is_private_ip(**ip)) {
            Some(public) => Err(refuse(format!(
                "{host} resolves to {public}, which is not a private address"
            ))),
            None => Ok(()),
        },
    }
}

/// [`check_with`] with the system resolver (blocking).
pub fn check(url: &str, break_glass: bool) -> Result<(), PlaintextRefusal> {
    check_with(url, break_glass, &|host, port| {
        use std::net::ToSocketAddrs as _;
        Ok((host, port)
            .to_socket_addrs()?
            .map(|a| a.ip())
            .collect::<Vec<_>>())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_dns(_: &str, _: u16) -> std::io::Result<Vec<IpAddr>> {
        panic!("no lookup expected")
    }

    #[test]
    fn private_ranges() {
        for ip in [
            "127.0.0.1",
            "127.9.9.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.255",
            "169.254.1.1",
            "::1",
            "fd7a:115c:a1e0::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_private_ip(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "203.0.113.5",
            "172.32.0.1",
            "100.128.0.1",
            "100.63.255.255",
            "0.0.0.0",
            "2001:db8::1",
            "::ffff:8.8.8.8",
        ] {
            assert!(!is_private_ip(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn allowed_without_break_glass() {
        for url in [
            "ws://127.0.0.1:18789",
            "ws://localhost:1/x",
            "ws://[::1]:1",
            "ws://10.0.0.2:18789",
            "ws://gateway.local:18789",
            "ws://box.tail1234.ts.net",
            "wss://203.0.113.5:443",
            "wss://gateway.example.com",
        ] {
            assert_eq!(check_with(url, false, &no_dns), Ok(()), "{url}");
        }
        let e = check_with("ws://203.0.113.5:18789", false, &no_dns).unwrap_err();
        assert_eq!(e.host, "203.0.113.5");
        let e = check_with("WS://Gateway.Example.com:18789/", false, &no_dns).unwrap_err();
        assert_eq!(e.host, "Gateway.Example.com");
    }

    #[test]
    fn break_glass_admits_only_private_names() {
        let lan = |_: &str, _: u16| Ok(vec!["192.168.1.5".parse().unwrap()]);
        let mixed = |_: &str, _: u16| {
            Ok(vec![
                "10.0.0.1".parse().unwrap(),
                "203.0.113.9".parse().unwrap(),
            ])
        };
        assert_eq!(check_with("ws://gateway.lan:1", true, &lan), Ok(()));
        assert!(check_with("ws://gateway.lan:1", false, &lan).is_err());
        let e = check_with("ws://gateway.lan:1", true, &mixed).unwrap_err();
        assert!(e.reason.contains("203.0.113.9"), "{e:?}");
        // A public literal stays refused whatever the variable says.
        assert!(check_with("ws://203.0.113.5:1", true, &no_dns).is_err());
        let fails = |_: &str, _: u16| Err(std::io::Error::other("no such host"));
        assert!(check_with("ws://gateway.lan:1", true, &fails).is_err());
    }

    #[test]
    fn env_switch() {
        let env = |v: &'static str| move |k: &str| (k == BREAK_GLASS_ENV[1]).then(|| v.to_owned());
        assert_eq!(break_glass(&env("1")), Some(BREAK_GLASS_ENV[1]));
        assert_eq!(break_glass(&env("true")), Some(BREAK_GLASS_ENV[1]));
        assert_eq!(break_glass(&env("0")), None);
    }
}
