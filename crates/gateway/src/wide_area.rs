//! Wide-area DNS-SD as OpenClaw 2026.9.6 does it (`discovery.wideArea.domain`): at start
//! the gateway writes a unicast DNS zone, `<state dir>/dns/<domain>.db`, that announces its
//! `_openclaw-gw._tcp` instance on the tailnet address. A DNS server on the tailnet (CoreDNS,
//! as `openclaw dns setup` configures it) serves that file, so clients beyond the LAN's
//! multicast find the gateway by browsing `<domain>`.
//!
//! The file starts with a hash of everything but the SOA serial: a restart with the same
//! inputs leaves the file (and its serial) alone, and any change bumps the serial so
//! secondaries pick it up.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::discovery::{Advertisement, MdnsMode};

/// The config key naming the zone's domain.
pub const DOMAIN_KEY: &str = "discovery.wideArea.domain";

/// The longest DNS name in presentation form (without the final dot).
const MAX_DNS_NAME_LENGTH: usize = 253;

/// The zone file's first line: `; openclaw-content-hash: <hash>`.
const HASH_PREFIX: &str = "openclaw-content-hash:";

/// A domain that is not a DNS name (empty label, a label over 63 bytes or with characters
/// other than letters, digits and inner dashes, or over 253 bytes in all).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("wide-area discovery domain must be a valid DNS name")]
pub struct InvalidDomain;

/// The absolute form OpenClaw writes: labels as given, one final dot
/// (`Example.com` → `Example.com.`); `None` for a blank value.
pub fn normalize_domain(raw: &str) -> Result<Option<String>, InvalidDomain> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    Ok(Some(format!("{}.", domain_labels(trimmed)?.join("."))))
}

fn domain_labels(raw: &str) -> Result<Vec<&str>, InvalidDomain> {
    let trimmed = raw.trim();
    let name = trimmed.strip_suffix('.').unwrap_or(trimmed);
    if name.is_empty() || name.len() > MAX_DNS_NAME_LENGTH {
        return Err(InvalidDomain);
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.iter().all(|l| is_dns_label(l)) {
        Ok(labels)
    } else {
        Err(InvalidDomain)
    }
}

/// 1–63 ASCII letters, digits and dashes, neither first nor last a dash.
fn is_dns_label(label: &str) -> bool {
    (1..=63).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

/// `<state dir>/dns/<domain without the final dot>.db`.
pub fn zone_path(state_dir: &Path, domain: &str) -> Result<PathBuf, InvalidDomain> {
    Ok(state_dir
        .join("dns")
        .join(format!("{}.db", domain_labels(domain)?.join("."))))
}

/// OpenClaw's `dnsLabel`: lowercased, runs of anything but `a-z0-9-` turned into one dash,
/// outer dashes dropped, at most 63 bytes; `fallback` when nothing is left.
pub fn dns_label(raw: &str, fallback: &str) -> String {
    let mut out = String::new();
    let mut in_run = false;
    for c in raw.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' {
            out.push(c);
            in_run = false;
        } else if !in_run {
            out.push('-');
            in_run = true;
        }
    }
    let trimmed = out.trim_matches('-');
    let label = if trimmed.is_empty() {
        fallback
    } else {
        trimmed
    };
    label[..label.len().min(63)].to_owned()
}

/// One TXT string in zone-file form: quoted, with `\`, `"` and newlines escaped.
fn txt_quote(value: &str) -> String {
    let escaped = value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    format!("\"{escaped}\"")
}

/// The serial for a new zone: `yyyymmdd01` of `today` (UTC), unless the existing serial is
/// already that or later (RFC 1982 arithmetic), then one more, so it always grows.
pub fn next_serial(existing: Option<u32>, today: (i32, u8, u8)) -> u32 {
    let (y, m, d) = today;
    let base: u32 = format!("{y}{m:02}{d:02}01").parse().unwrap_or(1);
    match existing {
        None => base,
        Some(old) => {
            let distance = base.wrapping_sub(old);
            if distance > 0 && distance < 1 << 31 {
                base
            } else {
                old.wrapping_add(1)
            }
        }
    }
}

/// The serial of the zone's `@ IN SOA` line.
fn extract_serial(zone: &str) -> Option<u32> {
    zone.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields[..] {
            ["@", "IN", "SOA", _, _, serial, _, ..]
                if serial.bytes().all(|b| b.is_ascii_digit()) =>
            {
                // JavaScript keeps the low 32 bits of a larger number.
                serial.parse::<u128>().ok().map(|s| s as u32)
            }
            _ => None,
        }
    })
}

/// The hash recorded in the zone's `; openclaw-content-hash:` comment.
fn extract_content_hash(zone: &str) -> Option<&str> {
    zone.lines().find_map(|line| {
        let rest = line.trim().strip_prefix(';')?.trim_start();
        let hash = rest.strip_prefix(HASH_PREFIX)?.trim();
        (!hash.is_empty() && !hash.contains(char::is_whitespace)).then_some(hash)
    })
}

/// 32-bit FNV-1a over the UTF-16 code units (JavaScript's `charCodeAt`), as 8 hex digits.
fn content_hash(body: &str) -> String {
    let hash = body.encode_utf16().fold(0x811c_9dc5_u32, |h, unit| {
        (h ^ u32::from(unit)).wrapping_mul(0x0100_0193)
    });
    format!("{hash:08x}")
}

/// This gateway's zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zone {
    /// Normalized, with the final dot.
    pub domain: String,
    /// The name of the tailnet address records and the SRV target.
    pub host_label: String,
    /// The `_openclaw-gw._tcp` instance.
    pub instance_label: String,
    pub tailnet_ipv4: Ipv4Addr,
    pub tailnet_ipv6: Option<Ipv6Addr>,
    /// What the TXT record tells: the Bonjour beacon's name, port, TLS, reachability,
    /// `tailnetDns`, and in full mode `sshPort` and `cliPath`.
    pub gateway: Advertisement,
}

/// Whether [`Zone::write`] changed the file, and where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneWrite {
    pub path: PathBuf,
    pub changed: bool,
}

impl Zone {
    /// The zone for `gateway` on this machine: host `<hostname>` and instance
    /// `<hostname>-gateway`, from the system host name's first label (OpenClaw does not use
    /// `OPENCLAW_MDNS_HOSTNAME` here).
    pub fn for_this_host(
        gateway: Advertisement,
        domain: String,
        tailnet_ipv4: Ipv4Addr,
        tailnet_ipv6: Option<Ipv6Addr>,
    ) -> Zone {
        let nodename = rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned();
        let host = nodename.split('.').next().unwrap_or_default();
        Zone {
            domain,
            host_label: dns_label(host, "openclaw"),
            instance_label: dns_label(&format!("{host}-gateway"), "openclaw-gw"),
            tailnet_ipv4,
            tailnet_ipv6,
            gateway,
        }
    }

    /// The zone file with `serial` (OpenClaw's `renderWideAreaGatewayZoneText`).
    pub fn render(&self, serial: u32) -> String {
        let g = &self.gateway;
        let display_name = match g.instance_name.trim() {
            "" => &self.host_label,
            name => name,
        };
        let mut txt = vec![
            format!("displayName={display_name}"),
            "role=gateway".to_owned(),
            "transport=gateway".to_owned(),
            format!("gatewayPort={}", g.gateway_port),
        ];
        if let Some(fp) = &g.tls_fingerprint {
            txt.push("gatewayTls=1".to_owned());
            txt.push(format!("gatewayTlsSha256={fp}"));
        }
        if g.direct_reachable {
            txt.push("gatewayDirectReachable=1".to_owned());
        }
        if let Some(dns) = g
            .tailnet_dns
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty())
        {
            txt.push(format!("tailnetDns={dns}"));
        }
        if g.mode == MdnsMode::Full {
            txt.extend(g.ssh_port.map(|p| format!("sshPort={p}")));
            txt.extend(
                g.cli_path
                    .as_deref()
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(|p| format!("cliPath={p}")),
            );
        }
        let (host, instance) = (&self.host_label, &self.instance_label);
        let soa = |serial: &str| format!("@ IN SOA ns1 hostmaster {serial} 7200 3600 1209600 60");
        let mut records = vec![
            format!("$ORIGIN {}", self.domain),
            "$TTL 60".to_owned(),
            soa("SERIAL"),
            "@ IN NS ns1".to_owned(),
            format!("ns1 IN A {}", self.tailnet_ipv4),
            format!("{host} IN A {}", self.tailnet_ipv4),
        ];
        records.extend(self.tailnet_ipv6.map(|ip| format!("{host} IN AAAA {ip}")));
        records.push(format!(
            "_openclaw-gw._tcp IN PTR {instance}._openclaw-gw._tcp"
        ));
        records.push(format!(
            "{instance}._openclaw-gw._tcp IN SRV 0 0 {} {host}",
            g.gateway_port
        ));
        records.push(format!(
            "{instance}._openclaw-gw._tcp IN TXT {}",
            txt.iter()
                .map(|t| txt_quote(t))
                .collect::<Vec<_>>()
                .join(" ")
        ));
        // The hash covers the records with a placeholder serial, so it only changes with them.
        let hash = content_hash(&format!("{}\n", records.join("\n")));
        records[2] = soa(&serial.to_string());
        format!("; {HASH_PREFIX} {hash}\n{}\n", records.join("\n"))
    }

    /// Writes the zone under `state_dir` unless the file there already has the same content
    /// hash. A new file gets mode 0644 (the DNS server may run as another user) in a 0700
    /// `dns` directory; a replaced one keeps its mode.
    pub fn write(&self, state_dir: &Path, now: SystemTime) -> io::Result<ZoneWrite> {
        let path = zone_path(state_dir, &self.domain)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let existing = std::fs::read_to_string(&path).ok();
        let next = self.render(0);
        if let Some(old) = &existing
            && extract_content_hash(old).is_some()
            && extract_content_hash(old) == extract_content_hash(&next)
        {
            return Ok(ZoneWrite {
                path,
                changed: false,
            });
        }
        let days = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() / 86_400);
        let (y, m, d) = clawgate_base::civil_from_days(days as i64);
        let today = (y as i32, m as u8, d as u8);
        let serial = next_serial(existing.as_deref().and_then(extract_serial), today);
        let dir = path.parent().unwrap_or(state_dir);
        crate::state_dir::ensure_dir(dir)?;
        let mode = std::fs::metadata(&path).map_or(0o644, |m| {
            use std::os::unix::fs::PermissionsExt;
            m.permissions().mode() & 0o7777
        });
        crate::state_dir::replace_file(&path, self.render(serial).as_bytes(), mode)?;
        Ok(ZoneWrite {
            path,
            changed: true,
        })
    }
}

/// The first tailnet IPv6 address (`fd7a:115c:a1e0::/48`) on this machine's interfaces.
pub fn tailnet_ipv6() -> Option<Ipv6Addr> {
    if_addrs::get_if_addrs()
        .ok()?
        .into_iter()
        .find_map(|i| match i.ip() {
            std::net::IpAddr::V6(ip) if is_tailnet_ipv6(&ip) => Some(ip),
            _ => None,
        })
}

/// `fd7a:115c:a1e0::/48`, Tailscale's IPv6 range.
pub fn is_tailnet_ipv6(ip: &Ipv6Addr) -> bool {
    ip.segments()[..3] == [0xfd7a, 0x115c, 0xa1e0]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The inputs of `tests/fixtures/wide-area-zone.db`, which OpenClaw's own
    /// `renderWideAreaGatewayZoneText` rendered (the cli crate's wide_area test renders both
    /// fixtures with OpenClaw again, from the same inputs as its options).
    fn golden_zone() -> Zone {
        Zone {
            domain: "openclaw.internal.".into(),
            host_label: "studio".into(),
            instance_label: "studio-gateway".into(),
            tailnet_ipv4: "100.101.102.103".parse().unwrap(),
            tailnet_ipv6: Some("fd7a:115c:a1e0::1234".parse().unwrap()),
            gateway: Advertisement {
                mode: MdnsMode::Full,
                instance_name: "Zoë's \"Studio\" (OpenClaw)".into(),
                hostname: "ignored-by-the-zone".into(),
                gateway_port: 18789,
                tls_fingerprint: Some("ab".repeat(32)),
                direct_reachable: true,
                tailnet_dns: Some("studio.tail1234.ts.net".into()),
                cli_path: Some("C:\\tools\\open claw\nx".into()),
                ssh_port: Some(2222),
            },
        }
    }

    #[test]
    fn renders_what_openclaw_renders() {
        assert_eq!(
            golden_zone().render(2026112501),
            include_str!("../tests/fixtures/wide-area-zone.db")
        );
        // Minimal mode, no TLS, no IPv6, no tailnet name, loopback only, a mixed-case domain.
        let mut minimal = golden_zone();
        minimal.gateway = Advertisement {
            mode: MdnsMode::Minimal,
            tls_fingerprint: None,
            direct_reachable: false,
            tailnet_dns: None,
            ..minimal.gateway
        };
        minimal.tailnet_ipv6 = None;
        minimal.domain = "Corp.Example.".into();
        assert_eq!(
            minimal.render(1),
            include_str!("../tests/fixtures/wide-area-zone-minimal.db")
        );
    }

    #[test]
    fn minimal_mode_leaves_out_ssh_and_cli_but_keeps_tailnet_dns() {
        let mut zone = golden_zone();
        zone.gateway.mode = MdnsMode::Minimal;
        zone.gateway.tls_fingerprint = None;
        zone.tailnet_ipv6 = None;
        let text = zone.render(7);
        assert!(text.contains("@ IN SOA ns1 hostmaster 7 7200"), "{text}");
        assert!(!text.contains("AAAA"), "{text}");
        assert!(
            text.ends_with(
                "studio-gateway._openclaw-gw._tcp IN TXT \"displayName=Zoë's \\\"Studio\\\" (OpenClaw)\" \"role=gateway\" \"transport=gateway\" \"gatewayPort=18789\" \"gatewayDirectReachable=1\" \"tailnetDns=studio.tail1234.ts.net\"\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn domains() {
        let n = |s: &str| normalize_domain(s);
        assert_eq!(n("  "), Ok(None));
        assert_eq!(
            n(" openclaw.internal "),
            Ok(Some("openclaw.internal.".into()))
        );
        assert_eq!(n("Corp.Example.com."), Ok(Some("Corp.Example.com.".into())));
        for bad in [
            ".",
            "a..b",
            "-a.b",
            "a-.b",
            "a_b.c",
            "a/../b",
            "a b",
            "..",
            &"a".repeat(64),
        ] {
            assert_eq!(n(bad), Err(InvalidDomain), "{bad:?}");
        }
        let long = vec!["a".repeat(63); 4].join(".");
        assert_eq!(long.len(), 255);
        assert_eq!(n(&long), Err(InvalidDomain));
        assert!(n(&long[..253]).is_ok());
        assert_eq!(
            zone_path(Path::new("/s"), "openclaw.internal."),
            Ok(PathBuf::from("/s/dns/openclaw.internal.db"))
        );
    }

    #[test]
    fn labels() {
        assert_eq!(dns_label("My_Mac  Book!", "x"), "my-mac-book");
        assert_eq!(dns_label("--Zoë--", "x"), "zo");
        assert_eq!(dns_label("!!!", "openclaw"), "openclaw");
        assert_eq!(dns_label(&"a".repeat(70), "x"), "a".repeat(63));
    }

    #[test]
    fn serials_grow() {
        let today = (2026, 11, 25);
        assert_eq!(next_serial(None, today), 2026112501);
        assert_eq!(next_serial(Some(2026112401), today), 2026112501);
        assert_eq!(next_serial(Some(2026112501), today), 2026112502);
        assert_eq!(next_serial(Some(2026112599), today), 2026112600);
        // A serial from a clock that ran ahead keeps counting up.
        assert_eq!(next_serial(Some(2027010101), today), 2027010102);
        assert_eq!(next_serial(Some(u32::MAX), today), 2026112501);
        assert_eq!(extract_serial(&golden_zone().render(42)), Some(42));
        assert_eq!(
            extract_serial("@ IN SOA ns1 hostmaster 4294967297 7200 3600 1209600 60\n"),
            Some(1)
        );
    }

    #[test]
    fn hash_is_fnv1a_over_utf16_and_ignores_the_serial() {
        assert_eq!(content_hash(""), "811c9dc5");
        assert_eq!(content_hash("a"), "e40c292c");
        // é is one UTF-16 unit (JavaScript's view), not its two UTF-8 bytes.
        assert_ne!(content_hash("é"), content_hash("\u{c3}\u{a9}"));
        let zone = golden_zone();
        assert_eq!(
            extract_content_hash(&zone.render(1)),
            extract_content_hash(&zone.render(2))
        );
        assert_eq!(
            extract_content_hash("  ;  openclaw-content-hash:  00ff  \n"),
            Some("00ff")
        );
        assert_eq!(extract_content_hash("; openclaw-content-hash: a b\n"), None);
    }

    #[test]
    fn rewrites_only_on_change() {
        use std::os::unix::fs::PermissionsExt;
        let state = tempfile::tempdir().unwrap();
        let day = |d: u64| SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(d * 86_400);
        let mut zone = golden_zone();
        let first = zone.write(state.path(), day(20_417)).unwrap();
        assert!(first.changed);
        assert_eq!(first.path, state.path().join("dns/openclaw.internal.db"));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&first.path), 0o644);
        assert_eq!(mode(&state.path().join("dns")), 0o700);
        let text = std::fs::read_to_string(&first.path).unwrap();
        assert!(text.contains(" 2025112501 "), "{text}");
        let again = zone.write(state.path(), day(20_418)).unwrap();
        assert!(!again.changed);
        assert_eq!(std::fs::read_to_string(&first.path).unwrap(), text);
        std::fs::set_permissions(&first.path, std::fs::Permissions::from_mode(0o640)).unwrap();
        zone.gateway.gateway_port = 19000;
        assert!(zone.write(state.path(), day(20_417)).unwrap().changed);
        let text = std::fs::read_to_string(&first.path).unwrap();
        assert!(text.contains(" 2025112502 "), "{text}");
        assert!(text.contains("SRV 0 0 19000 studio"), "{text}");
        assert_eq!(mode(&first.path), 0o640);
    }
}
