//! Who is on the other end of a request, decided once per request from the socket address and
//! the headers (OpenClaw's ingress attribution):
//!
//! * `direct-local`: a loopback socket without forwarding (`Forwarded`, `X-Real-IP`,
//!   `X-Forwarded-*`) or `Tailscale-*` headers. Only these can be "local" (silent pairing,
//!   deviceless CLI scopes), and only when their `Host` is local too.
//! * `trusted-proxy`: the socket address is in `gateway.trustedProxies`; the client is the
//!   right-most `X-Forwarded-For` hop that is neither loopback nor a trusted proxy
//!   (`X-Real-IP` only with `gateway.allowRealIpFallback`).
//! * `unattributable-proxy`: forwarding headers from anyone else. Refused with HTTP 403
//!   `proxy_attribution_required` (the live probes `/healthz` and `/health` still answer).
//! * `direct-remote`: everything else.
//!
//! The seam for Tailscale Serve and trusted-proxy auth: both start from [`Ingress`] (the
//! managed Tailscale listener will classify its own requests before this runs).

use hyper::header::HeaderMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};

/// `error.type` of the 403 and the WS auth reason, as the real gateway names it.
pub const PROXY_ATTRIBUTION_REQUIRED: &str = "proxy_attribution_required";
/// The advice appended to the 403 message.
pub const PROXY_ATTRIBUTION_GUIDANCE: &str = "Configure gateway.trustedProxies narrowly and make the proxy overwrite or safely rebuild forwarded client headers.";

/// The exact 403 body the real gateway sends for unattributable proxy traffic.
pub fn proxy_attribution_body() -> String {
    serde_json::json!({
        "error": {
            "message": format!("Proxy client attribution is required. {PROXY_ATTRIBUTION_GUIDANCE}"),
            "type": PROXY_ATTRIBUTION_REQUIRED,
        }
    })
    .to_string()
}

/// An IP address or CIDR from `gateway.trustedProxies`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR"))?;
        let net = canonical(net);
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?} has an invalid prefix length"))?,
        };
        Ok(Cidr { net, prefix })
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, canonical(ip)) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) as the IPv4 address they carry.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// `gateway.trustedProxies`, `gateway.allowRealIpFallback` and the browser origin policy
/// (`gateway.controlUi.allowedOrigins`, `dangerouslyAllowHostHeaderOriginFallback`).
#[derive(Debug, Clone, Default)]
pub struct IngressPolicy {
    pub trusted_proxies: Vec<Cidr>,
    pub allow_real_ip_fallback: bool,
    /// Full origins (`https://ui.example.com`), lowercased; `"*"` allows every origin.
    pub allowed_origins: Vec<String>,
    pub allow_host_header_origin_fallback: bool,
}

impl IngressPolicy {
    pub fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|c| c.contains(ip))
    }
}

/// How a request reached the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngressKind {
    DirectLocal,
    DirectRemote,
    TrustedProxy,
    UnattributableProxy,
    /// Through the managed Tailscale Serve listener.
    TailscaleServe,
    /// Through the managed Tailscale Funnel listener.
    TailscaleFunnel,
}

impl IngressKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IngressKind::DirectLocal => "direct-local",
            IngressKind::DirectRemote => "direct-remote",
            IngressKind::TrustedProxy => "trusted-proxy",
            IngressKind::UnattributableProxy => "unattributable-proxy",
            IngressKind::TailscaleServe => "tailscale-serve",
            IngressKind::TailscaleFunnel => "tailscale-funnel",
        }
    }
}

/// The attribution of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ingress {
    pub kind: IngressKind,
    /// The socket's peer address.
    pub remote_ip: IpAddr,
    /// Who the gateway holds responsible: the socket peer, or the client a trusted proxy
    /// named. Used for rate limiting and presence. For unattributable traffic: the socket peer.
    pub client_ip: IpAddr,
}

/// `Forwarded`, `X-Real-IP` or any `X-Forwarded-*` header.
pub fn has_forwarding_headers(h: &HeaderMap) -> bool {
    h.keys().any(|k| {
        let k = k.as_str();
        k == "forwarded" || k == "x-real-ip" || k.starts_with("x-forwarded-")
    })
}

/// Any `Tailscale-*` header (identity headers a Serve proxy sets).
pub fn has_tailscale_headers(h: &HeaderMap) -> bool {
    h.keys().any(|k| k.as_str().starts_with("tailscale-"))
}

/// All values of a header joined with commas (several `X-Forwarded-For` lines form one list).
fn joined(h: &HeaderMap, name: &str) -> Option<String> {
    let parts: Vec<&str> = h
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!parts.is_empty()).then(|| parts.join(","))
}

/// An address from a forwarding header: `1.2.3.4`, `1.2.3.4:80`, `[::1]:80`, `::1`.
fn parse_ip_literal(raw: &str) -> Option<IpAddr> {
    let t = raw.trim();
    if t.is_empty() {
        return None;
    }
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Some(rest) = t.strip_prefix('[') {
        let end = rest.find(']')?;
        return rest[..end]
            .parse::<Ipv6Addr>()
            .ok()
            .map(|ip| canonical(ip.into()));
    }
    let (host, _port) = t.rsplit_once(':')?;
    host.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

/// The right-most `X-Forwarded-For` hop that is neither loopback nor a trusted proxy.
fn forwarded_client(xff: &str, policy: &IngressPolicy) -> Option<IpAddr> {
    xff.split(',')
        .filter_map(parse_ip_literal)
        .rev()
        .find(|hop| !hop.is_loopback() && !policy.is_trusted_proxy(*hop))
}

/// Classifies one request.
pub fn classify(remote: IpAddr, headers: &HeaderMap, policy: &IngressPolicy) -> Ingress {
    let remote = canonical(remote);
    let proxied = has_forwarding_headers(headers);
    let tailscale = has_tailscale_headers(headers);
    let ingress = |kind, client_ip| Ingress {
        kind,
        remote_ip: remote,
        client_ip,
    };
    if remote.is_loopback() && !proxied && !tailscale {
        return ingress(IngressKind::DirectLocal, remote);
    }
    if policy.is_trusted_proxy(remote) {
        let client = joined(headers, "x-forwarded-for")
            .and_then(|xff| forwarded_client(&xff, policy))
            .or_else(|| {
                policy
                    .allow_real_ip_fallback
                    .then(|| joined(headers, "x-real-ip"))
                    .flatten()
                    .and_then(|v| parse_ip_literal(v.split(',').next().unwrap_or("")))
            });
        return match client {
            Some(ip) if !ip.is_loopback() => ingress(IngressKind::TrustedProxy, ip),
            _ => ingress(IngressKind::UnattributableProxy, remote),
        };
    }
    if proxied || tailscale {
        return ingress(IngressKind::UnattributableProxy, remote);
    }
    ingress(IngressKind::DirectRemote, remote)
}

/// Which listener a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// The ordinary listener(s) on `gateway.port`.
    Ordinary,
    /// The dedicated loopback listener `tailscale serve` proxies to.
    TailscaleServe,
    /// The dedicated loopback listener `tailscale funnel` proxies to.
    TailscaleFunnel,
}

/// Classifies one request by the listener it arrived on: the managed Tailscale listener
/// classifies its own requests, everything else goes through [`classify`].
pub fn classify_on(
    listener: ListenerKind,
    remote: IpAddr,
    headers: &HeaderMap,
    policy: &IngressPolicy,
) -> Ingress {
    match listener {
        ListenerKind::Ordinary => classify(remote, headers, policy),
        ListenerKind::TailscaleServe | ListenerKind::TailscaleFunnel => {
            classify_tailscale(listener == ListenerKind::TailscaleFunnel, remote, headers)
        }
    }
}

/// A request on the managed Tailscale listener: only the local Serve/Funnel proxy can reach
/// it, so it must come from a loopback socket with `X-Forwarded-For`, `-Proto` and `-Host`
/// set; the client is the right-most non-loopback `X-Forwarded-For` hop. Serve refuses
/// requests carrying the Funnel marker; Funnel accepts it absent or `?1`.
pub fn classify_tailscale(funnel: bool, remote: IpAddr, headers: &HeaderMap) -> Ingress {
    let remote = canonical(remote);
    let unattributable = Ingress {
        kind: IngressKind::UnattributableProxy,
        remote_ip: remote,
        client_ip: remote,
    };
    let all_forwarded = ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"]
        .iter()
        .all(|h| headers.contains_key(*h));
    if !remote.is_loopback() || !all_forwarded {
        return unattributable;
    }
    let marker = headers
        .get("tailscale-funnel-request")
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let marker_ok = if funnel {
        matches!(marker, None | Some("?1"))
    } else {
        marker.is_none()
    };
    if !marker_ok {
        return unattributable;
    }
    let client = joined(headers, "x-forwarded-for").and_then(|xff| {
        xff.split(',')
            .filter_map(parse_ip_literal)
            .rev()
            .find(|hop| !hop.is_loopback())
    });
    match client {
        Some(ip) => Ingress {
            kind: if funnel {
                IngressKind::TailscaleFunnel
            } else {
                IngressKind::TailscaleServe
            },
            remote_ip: remote,
            client_ip: ip,
        },
        None => unattributable,
    }
}

static UNATTRIBUTABLE_WARNED: AtomicBool = AtomicBool::new(false);

/// Logs the first unattributable request of this process (later ones stay quiet, so a
/// client cannot grow the log).
pub fn warn_unattributable_once(remote: IpAddr) {
    if !UNATTRIBUTABLE_WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "gateway: observed unattributable proxy-shaped traffic from {remote}; requests with forwarding headers from peers outside gateway.trustedProxies are refused (403 {PROXY_ATTRIBUTION_REQUIRED}). {PROXY_ATTRIBUTION_GUIDANCE}"
        );
    }
}

/// The host name of a `Host` header value (`[::1]:80` → `::1`, `a.b:80` → `a.b`), lowercased.
pub fn host_name(host_header: &str) -> String {
    let h = host_header.trim().to_ascii_lowercase();
    if let Some(rest) = h.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("").to_owned();
    }
    if h.parse::<Ipv6Addr>().is_ok() {
        return h;
    }
    h.split(':').next().unwrap_or("").to_owned()
}

/// `localhost` or a loopback IP.
pub fn is_loopback_host(name: &str) -> bool {
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name == "localhost"
        || name
            .parse::<IpAddr>()
            .map(|ip| canonical(ip).is_loopback())
            .unwrap_or(false)
}

/// Whether a `Host` header names this machine: localhost, a loopback IP or `*.ts.net`
/// (OpenClaw's list). A missing header counts as local (HTTP/1.0 probes send none).
pub fn is_local_host_header(host: Option<&str>) -> bool {
    match host {
        None => true,
        Some(h) => {
            let name = host_name(h);
            is_loopback_host(&name) || name.ends_with(".ts.net")
        }
    }
}

/// RFC 1918, link-local, CGNAT (100.64/10), ULA, loopback.
pub fn is_private_or_loopback(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            let s = v6.segments()[0];
            v6.is_loopback() || (s & 0xfe00) == 0xfc00 || (s & 0xffc0) == 0xfe80
        }
    }
}

/// A parsed browser `Origin`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    /// `scheme://host[:port]`, lowercased, default port dropped.
    origin: String,
    /// `host[:port]` as the `Host` header would carry it.
    host: String,
    hostname: String,
}

fn parse_origin(raw: &str) -> Option<Origin> {
    let t = raw.trim();
    if t.is_empty() || t == "null" {
        return None;
    }
    let (scheme, rest) = t.split_once("://")?;
    let mut chars = scheme.chars();
    if !chars.next()?.is_ascii_alphabetic()
        || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-'))
    {
        return None;
    }
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() || authority.contains(['/', '?', '#', '\\', '@']) {
        return None;
    }
    let scheme = scheme.to_ascii_lowercase();
    let authority = authority.to_ascii_lowercase();
    let (hostname, port) = if let Some(r) = authority.strip_prefix('[') {
        let end = r.find(']')?;
        let after = &r[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return None,
        };
        (format!("[{}]", &r[..end]), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (authority.clone(), None),
        }
    };
    if hostname.is_empty() {
        return None;
    }
    let port = match port {
        Some(p) => {
            let n: u16 = p.parse().ok()?;
            let default = matches!((scheme.as_str(), n), ("http", 80) | ("https", 443));
            (!default).then_some(n)
        }
        None => None,
    };
    let host = match port {
        Some(p) => format!("{hostname}:{p}"),
        None => hostname.clone(),
    };
    Some(Origin {
        origin: format!("{scheme}://{host}"),
        host,
        hostname: hostname
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
    })
}

/// OpenClaw's browser origin policy (refusals use
/// [`clawgate_protocol::errors::origin_not_allowed`]). `Ok(how it matched)` or `Err(reason)` where the reason
/// is `origin missing or invalid` or `origin not allowed`.
pub fn check_browser_origin(
    origin: Option<&str>,
    host: Option<&str>,
    is_local_client: bool,
    policy: &IngressPolicy,
) -> Result<&'static str, &'static str> {
    let Some(parsed) = origin.and_then(parse_origin) else {
        return Err("origin missing or invalid");
    };
    if policy
        .allowed_origins
        .iter()
        .any(|o| o == "*" || o.trim().eq_ignore_ascii_case(&parsed.origin))
    {
        return Ok("allowlist");
    }
    let request_host = host.map(|h| h.trim().to_ascii_lowercase());
    if let Some(rh) = &request_host
        && *rh == parsed.host
    {
        if policy.allow_host_header_origin_fallback {
            return Ok("host-header-fallback");
        }
        if trusted_same_origin_host(rh, is_local_client) {
            return Ok("private-same-origin");
        }
    }
    if is_local_client && is_loopback_host(&parsed.hostname) {
        return Ok("local-loopback");
    }
    Err("origin not allowed")
}

fn trusted_same_origin_host(host_header: &str, is_local_client: bool) -> bool {
    let name = host_name(host_header);
    if name.is_empty() {
        return false;
    }
    if is_loopback_host(&name) {
        return is_local_client;
    }
    if let Ok(ip) = name.parse::<IpAddr>() {
        return is_private_or_loopback(ip);
    }
    name.ends_with(".local") || name.ends_with(".ts.net")
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn policy(proxies: &[&str]) -> IngressPolicy {
        IngressPolicy {
            trusted_proxies: proxies.iter().map(|p| p.parse().unwrap()).collect(),
            ..IngressPolicy::default()
        }
    }

    #[test]
    fn cidr_matching() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains("10.200.1.2".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.0.0.1".parse().unwrap()));
        let one: Cidr = "192.168.1.5".parse().unwrap();
        assert!(one.contains("192.168.1.5".parse().unwrap()));
        assert!(!one.contains("192.168.1.6".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("1.2.3.4".parse().unwrap()));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nope".parse::<Cidr>().is_err());
    }

    #[test]
    fn classification() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let peer: IpAddr = "10.200.0.2".parse().unwrap();
        let none = IngressPolicy::default();
        assert_eq!(
            classify(lo, &headers(&[]), &none).kind,
            IngressKind::DirectLocal
        );
        assert_eq!(
            classify(lo, &headers(&[("x-forwarded-for", "203.0.113.9")]), &none).kind,
            IngressKind::UnattributableProxy
        );
        assert_eq!(
            classify(peer, &headers(&[("forwarded", "for=1.2.3.4")]), &none).kind,
            IngressKind::UnattributableProxy
        );
        assert_eq!(
            classify(peer, &headers(&[("tailscale-user-login", "a@b")]), &none).kind,
            IngressKind::UnattributableProxy
        );
        assert_eq!(
            classify(peer, &headers(&[]), &none).kind,
            IngressKind::DirectRemote
        );
        // Trusted proxy: right-most hop that is neither loopback nor trusted.
        let p = policy(&["10.200.0.0/30", "192.0.2.7"]);
        let i = classify(
            peer,
            &headers(&[(
                "x-forwarded-for",
                "198.51.100.1, 203.0.113.9, 192.0.2.7, 127.0.0.1",
            )]),
            &p,
        );
        assert_eq!(i.kind, IngressKind::TrustedProxy);
        assert_eq!(i.client_ip, "203.0.113.9".parse::<IpAddr>().unwrap());
        // Only loopback/trusted hops, or none: unattributable.
        assert_eq!(
            classify(peer, &headers(&[("x-forwarded-for", "127.0.0.1")]), &p).kind,
            IngressKind::UnattributableProxy
        );
        assert_eq!(
            classify(peer, &headers(&[]), &p).kind,
            IngressKind::UnattributableProxy
        );
        // X-Real-IP only with the fallback enabled.
        let real = headers(&[("x-real-ip", "203.0.113.5")]);
        assert_eq!(
            classify(peer, &real, &p).kind,
            IngressKind::UnattributableProxy
        );
        let mut pf = p.clone();
        pf.allow_real_ip_fallback = true;
        assert_eq!(
            classify(peer, &real, &pf).client_ip,
            "203.0.113.5".parse::<IpAddr>().unwrap()
        );
        // Several header lines form one list; ports are stripped.
        let i = classify(
            peer,
            &headers(&[
                ("x-forwarded-for", "203.0.113.1"),
                ("x-forwarded-for", "203.0.113.2:4444"),
            ]),
            &p,
        );
        assert_eq!(i.client_ip, "203.0.113.2".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn tailscale_listener_classification() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let fwd = [
            ("x-forwarded-for", "100.101.102.103"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "box.tail1234.ts.net"),
            ("tailscale-user-login", "alice@example.com"),
        ];
        let i = classify_tailscale(false, lo, &headers(&fwd));
        assert_eq!(i.kind, IngressKind::TailscaleServe);
        assert_eq!(i.client_ip, "100.101.102.103".parse::<IpAddr>().unwrap());
        assert_eq!(
            classify_tailscale(true, lo, &headers(&fwd)).kind,
            IngressKind::TailscaleFunnel
        );
        // Not from loopback, missing forwarding headers, loopback client, funnel marker on serve.
        let peer: IpAddr = "10.200.0.2".parse().unwrap();
        assert_eq!(
            classify_tailscale(false, peer, &headers(&fwd)).kind,
            IngressKind::UnattributableProxy
        );
        assert_eq!(
            classify_tailscale(false, lo, &headers(&fwd[..2])).kind,
            IngressKind::UnattributableProxy
        );
        let mut h = headers(&fwd[1..]);
        h.append("x-forwarded-for", HeaderValue::from_static("127.0.0.1"));
        assert_eq!(
            classify_tailscale(false, lo, &h).kind,
            IngressKind::UnattributableProxy
        );
        let mut h = headers(&fwd);
        h.append("tailscale-funnel-request", HeaderValue::from_static("?1"));
        assert_eq!(
            classify_tailscale(false, lo, &h).kind,
            IngressKind::UnattributableProxy
        );
        assert_eq!(
            classify_tailscale(true, lo, &h).kind,
            IngressKind::TailscaleFunnel
        );
    }

    #[test]
    fn the_403_body_matches_the_real_gateway() {
        assert_eq!(proxy_attribution_body().len(), 212);
    }

    #[test]
    fn host_headers() {
        assert!(is_local_host_header(Some("127.0.0.1:18789")));
        assert!(is_local_host_header(Some("localhost")));
        assert!(is_local_host_header(Some("[::1]:18789")));
        assert!(is_local_host_header(Some("box.tail1234.ts.net")));
        assert!(is_local_host_header(None));
        assert!(!is_local_host_header(Some("evil.example:18789")));
        assert!(!is_local_host_header(Some("10.0.0.5:18789")));
    }

    #[test]
    fn browser_origins() {
        let mut p = IngressPolicy::default();
        let check = |o: Option<&str>, h: Option<&str>, local: bool, p: &IngressPolicy| {
            check_browser_origin(o, h, local, p)
        };
        assert_eq!(
            check(None, Some("x"), true, &p),
            Err("origin missing or invalid")
        );
        assert_eq!(
            check(Some("null"), Some("x"), true, &p),
            Err("origin missing or invalid")
        );
        assert_eq!(
            check(Some("http://localhost:5173"), Some("127.0.0.1:1"), true, &p),
            Ok("local-loopback")
        );
        assert_eq!(
            check(
                Some("http://localhost:5173"),
                Some("127.0.0.1:1"),
                false,
                &p
            ),
            Err("origin not allowed")
        );
        assert_eq!(
            check(
                Some("http://10.0.0.5:18789"),
                Some("10.0.0.5:18789"),
                false,
                &p
            ),
            Ok("private-same-origin")
        );
        assert_eq!(
            check(
                Some("https://evil.example"),
                Some("10.0.0.5:18789"),
                false,
                &p
            ),
            Err("origin not allowed")
        );
        assert_eq!(
            check(Some("https://gw.example"), Some("gw.example"), false, &p),
            Err("origin not allowed")
        );
        p.allowed_origins = vec!["https://ui.example.com".into()];
        assert_eq!(
            check(Some("HTTPS://UI.example.com:443"), Some("x"), false, &p),
            Ok("allowlist")
        );
        p.allow_host_header_origin_fallback = true;
        assert_eq!(
            check(Some("https://gw.example"), Some("gw.example"), false, &p),
            Ok("host-header-fallback")
        );
        p.allowed_origins = vec!["*".into()];
        assert_eq!(
            check(Some("https://any.example"), None, false, &p),
            Ok("allowlist")
        );
        assert_eq!(
            check(Some("https://u:p@any.example"), None, false, &p),
            Err("origin missing or invalid")
        );
    }
}
