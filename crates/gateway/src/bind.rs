//! `gateway.bind`: which addresses the gateway listens on (OpenClaw's resolution rules), and
//! binding them.
//!
//! | mode | bind host | listeners |
//! |---|---|---|
//! | `loopback` | 127.0.0.1 | 127.0.0.1 + `::1` (optional) |
//! | `lan` | 0.0.0.0 | 0.0.0.0 |
//! | `tailnet` | the tailnet IPv4 (else 127.0.0.1) | 127.0.0.1 (required) + the tailnet IPv4 |
//! | `custom` | `gateway.customBindHost` | 127.0.0.1 (required) + that address |
//! | `auto` | 0.0.0.0 in a container, else 127.0.0.1 | as for that host |
//!
//! The extra 127.0.0.1 listener for tailnet/custom binds lets local tools always dial
//! `127.0.0.1:<port>`. Tailnet detection asks Tailscale itself first (LocalAPI socket, then
//! `tailscale status --json`), so Headscale and custom prefixes work, and only then scans the
//! interfaces for 100.64.0.0/10 (OpenClaw's only method).

use clawgate_config::BindMode;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// Default LocalAPI socket of tailscaled on Linux.
pub const DEFAULT_TAILSCALE_SOCKET: &str = "/var/run/tailscale/tailscaled.sock";

/// How to ask Tailscale for this machine's tailnet address. Tests point both at fakes.
#[derive(Debug, Clone)]
pub struct TailnetDetector {
    /// The `tailscale` CLI (`CLAWGATE_TAILSCALE_BIN`, default `tailscale` on `PATH`).
    pub tailscale_bin: OsString,
    /// tailscaled's LocalAPI socket (`CLAWGATE_TAILSCALE_SOCKET`).
    pub localapi_socket: PathBuf,
    /// Per-method time budget.
    pub timeout: Duration,
    /// Where the interface scan reads local IPv4 addresses (`/proc/net/fib_trie`).
    pub fib_trie: PathBuf,
}

impl TailnetDetector {
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Self {
        TailnetDetector {
            tailscale_bin: env("CLAWGATE_TAILSCALE_BIN")
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "tailscale".into())
                .into(),
            localapi_socket: env("CLAWGATE_TAILSCALE_SOCKET")
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| DEFAULT_TAILSCALE_SOCKET.into())
                .into(),
            timeout: Duration::from_secs(3),
            fib_trie: "/proc/net/fib_trie".into(),
        }
    }

    /// This machine's tailnet IPv4 and DNS name, from the first method that knows it.
    pub fn detect(&self) -> Option<TailnetInfo> {
        if let Some(info) = self
            .localapi_status()
            .and_then(|s| parse_status(&s, "tailscale LocalAPI"))
        {
            return Some(info);
        }
        if let Some(info) = self
            .cli_status()
            .and_then(|s| parse_status(&s, "tailscale status --json"))
        {
            return Some(info);
        }
        local_ipv4_addresses(&self.fib_trie)
            .into_iter()
            .find(is_tailnet_ipv4)
            .map(|ip| TailnetInfo {
                ipv4: ip,
                dns_name: None,
                source: "interface scan (100.64.0.0/10)",
            })
    }

    /// `GET /localapi/v0/status` over the unix socket.
    fn localapi_status(&self) -> Option<serde_json::Value> {
        let mut s = std::os::unix::net::UnixStream::connect(&self.localapi_socket).ok()?;
        s.set_read_timeout(Some(self.timeout)).ok()?;
        s.set_write_timeout(Some(self.timeout)).ok()?;
        s.write_all(
            b"GET /localapi/v0/status HTTP/1.0\r\nHost: local-tailscaled.sock\r\nAccept: application/json\r\n\r\n",
        )
        .ok()?;
        let mut buf = Vec::new();
        s.take(4 << 20).read_to_end(&mut buf).ok()?;
        let text = String::from_utf8_lossy(&buf);
        let (head, body) = text.split_once("\r\n\r\n")?;
        let status_ok = head
            .lines()
            .next()
            .is_some_and(|l| l.split_whitespace().nth(1) == Some("200"));
        if !status_ok {
            return None;
        }
        serde_json::from_str(body).ok()
    }

    /// `tailscale status --json`, killed after the timeout.
    fn cli_status(&self) -> Option<serde_json::Value> {
        let mut child = std::process::Command::new(&self.tailscale_bin)
            .args(["status", "--json"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let mut stdout = child.stdout.take()?;
        let reader = std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = (&mut stdout).take(4 << 20).read_to_end(&mut out);
            out
        });
        let deadline = Instant::now() + self.timeout;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return None;
                }
            }
        }
        let out = reader.join().ok()?;
        serde_json::from_slice(&out).ok()
    }
}

/// This machine on the tailnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailnetInfo {
    pub ipv4: Ipv4Addr,
    /// `host.tailnet.ts.net` (no trailing dot), when Tailscale told us.
    pub dns_name: Option<String>,
    /// Which method found it, for the startup log.
    pub source: &'static str,
}

fn parse_status(status: &serde_json::Value, source: &'static str) -> Option<TailnetInfo> {
    let me = status.get("Self")?;
    let ipv4 = me
        .get("TailscaleIPs")?
        .as_array()?
        .iter()
        .filter_map(|v| v.as_str()?.parse::<Ipv4Addr>().ok())
        .next()?;
    let dns_name = me
        .get("DNSName")
        .and_then(|v| v.as_str())
        .map(|s| s.trim_end_matches('.').to_owned())
        .filter(|s| !s.is_empty());
    Some(TailnetInfo {
        ipv4,
        dns_name,
        source,
    })
}

/// 100.64.0.0/10 (Tailscale's CGNAT range).
pub fn is_tailnet_ipv4(ip: &Ipv4Addr) -> bool {
    let o = ip.octets();
    o[0] == 100 && (o[1] & 0xc0) == 64
}

/// The IPv4 addresses assigned to this machine (in this network namespace), from
/// `/proc/net/fib_trie` (`/32 host LOCAL` entries), loopback excluded.
pub fn local_ipv4_addresses(fib_trie: &Path) -> Vec<Ipv4Addr> {
    let text = std::fs::read_to_string(fib_trie).unwrap_or_default();
    let mut out = Vec::new();
    let mut last: Option<Ipv4Addr> = None;
    for line in text.lines() {
        let t = line.trim_start_matches([' ', '|', '+', '-', '`']).trim();
        if let Ok(ip) = t.parse::<Ipv4Addr>() {
            last = Some(ip);
        } else if t.starts_with("/32 host LOCAL")
            && let Some(ip) = last
            && !ip.is_loopback()
            && !out.contains(&ip)
        {
            out.push(ip);
        }
    }
    out
}

/// Container heuristics (OpenClaw's `isContainerEnvironment`).
pub fn is_container(env: &dyn Fn(&str) -> Option<String>) -> bool {
    if env("FLY_MACHINE_ID").is_some() && env("FLY_APP_NAME").is_some() {
        return true;
    }
    if [
        "/.dockerenv",
        "/run/.containerenv",
        "/var/run/.containerenv",
    ]
    .iter()
    .any(|p| Path::new(p).exists())
    {
        return true;
    }
    let cgroup = std::fs::read_to_string("/proc/1/cgroup").unwrap_or_default();
    cgroup_says_container(&cgroup)
}

fn cgroup_says_container(cgroup: &str) -> bool {
    let hex_after = |marker: &str, len: usize| {
        cgroup.match_indices(marker).any(|(i, _)| {
            let rest = &cgroup[i + marker.len()..];
            rest.len() >= len && rest[..len].chars().all(|c| c.is_ascii_hexdigit())
        })
    };
    cgroup.contains("/docker/")
        || hex_after("cri-containerd-", 1)
        || hex_after("containerd/", 64)
        || cgroup.contains("/kubepods/")
        || cgroup.contains("/kubepods.")
        || cgroup
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .any(|w| w == "lxc")
}

/// One socket to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddr {
    pub ip: IpAddr,
    /// A required listener that cannot bind fails the start; an optional one (`::1`) is
    /// skipped with a log line.
    pub required: bool,
}

/// The resolved bind: the host OpenClaw would report, and the sockets to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindPlan {
    pub mode: BindMode,
    pub host: IpAddr,
    pub listen: Vec<ListenAddr>,
    /// The tailnet address/name, when known (`tailnet` mode), e.g. for certificate SANs.
    pub tailnet: Option<TailnetInfo>,
    /// Lines worth printing at start (fallbacks taken).
    pub notes: Vec<String>,
}

impl BindPlan {
    /// Whether the bind host is a loopback address (no auth refusal needed).
    pub fn is_loopback(&self) -> bool {
        self.host.is_loopback()
    }

    /// The URL local tools dial: always 127.0.0.1 when a loopback listener exists.
    pub fn local_host(&self) -> IpAddr {
        if self
            .listen
            .iter()
            .any(|l| l.ip == IpAddr::V4(Ipv4Addr::LOCALHOST))
        {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            self.host
        }
    }
}

/// Whether `ip` can be bound right now (on any port).
fn can_bind(ip: IpAddr) -> Result<(), std::io::Error> {
    std::net::TcpListener::bind(SocketAddr::new(ip, 0)).map(drop)
}

fn listeners_for(host: IpAddr) -> Vec<ListenAddr> {
    let lo4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
    match host {
        h if h == lo4 => vec![
            ListenAddr {
                ip: lo4,
                required: true,
            },
            ListenAddr {
                ip: IpAddr::V6(Ipv6Addr::LOCALHOST),
                required: false,
            },
        ],
        h if h.is_unspecified() => vec![ListenAddr {
            ip: h,
            required: true,
        }],
        h => vec![
            ListenAddr {
                ip: lo4,
                required: true,
            },
            ListenAddr {
                ip: h,
                required: true,
            },
        ],
    }
}

/// Resolves `gateway.bind` to listeners. Errors are the refusal text (exit 78).
pub fn resolve_bind(
    mode: BindMode,
    custom_host: Option<Ipv4Addr>,
    detector: &TailnetDetector,
    in_container: bool,
) -> Result<BindPlan, String> {
    let lo4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let any4 = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    let mut notes = Vec::new();
    let mut tailnet = None;
    let host = match mode {
        BindMode::Loopback => lo4,
        BindMode::Lan => any4,
        BindMode::Auto => {
            if in_container || can_bind(lo4).is_err() {
                any4
            } else {
                lo4
            }
        }
        BindMode::Custom => {
            let Some(ip) = custom_host else {
                return Err("gateway.bind=custom requires gateway.customBindHost".into());
            };
            let ip = IpAddr::V4(ip);
            if let Err(e) = can_bind(ip) {
                return Err(format!(
                    "gateway bind=custom requested {ip} but resolved 0.0.0.0; refusing fallback ({ip} is not usable on this machine: {e}; set gateway.customBindHost to one of this machine's addresses)"
                ));
            }
            ip
        }
        BindMode::Tailnet => match detector.detect() {
            Some(info) => match can_bind(IpAddr::V4(info.ipv4)) {
                Ok(()) => {
                    notes.push(format!(
                        "gateway: tailnet address {} ({}){}",
                        info.ipv4,
                        info.source,
                        info.dns_name
                            .as_deref()
                            .map(|n| format!(", name {n}"))
                            .unwrap_or_default()
                    ));
                    let ip = IpAddr::V4(info.ipv4);
                    tailnet = Some(info);
                    ip
                }
                Err(e) => {
                    notes.push(format!(
                        "gateway: bind=tailnet: {} reported {} but it cannot be bound here ({e}); listening on 127.0.0.1 only",
                        info.source, info.ipv4
                    ));
                    lo4
                }
            },
            None => {
                notes.push("gateway: bind=tailnet: no tailnet address found (tailscale LocalAPI, `tailscale status --json`, 100.64.0.0/10 interfaces); listening on 127.0.0.1 only. Start Tailscale and restart the gateway to listen on the tailnet.".into());
                lo4
            }
        },
    };
    Ok(BindPlan {
        mode,
        host,
        listen: listeners_for(host),
        tailnet,
        notes,
    })
}

/// Why binding failed.
#[derive(Debug)]
pub enum BindFailure {
    /// The port is taken: OpenClaw's lock error.
    InUse { host: IpAddr, port: u16 },
    Other {
        host: IpAddr,
        port: u16,
        error: std::io::Error,
    },
}

fn url_host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => format!("[{v6}]"),
        v4 => v4.to_string(),
    }
}

impl std::fmt::Display for BindFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BindFailure::InUse { host, port } => write!(
                f,
                "another gateway instance is already listening on ws://{}:{port}",
                url_host(*host)
            ),
            BindFailure::Other { host, port, error } => write!(
                f,
                "failed to bind gateway socket on ws://{}:{port}: {error}",
                url_host(*host)
            ),
        }
    }
}

/// Binds every listener of `plan` on `port` (0 = any free port: the first listener picks
/// it, the others follow). Returns the listeners and the port.
pub async fn bind_listeners(
    plan: &BindPlan,
    port: u16,
) -> Result<(Vec<TcpListener>, u16), BindFailure> {
    let mut port = port;
    let mut out = Vec::new();
    for l in &plan.listen {
        match TcpListener::bind(SocketAddr::new(l.ip, port)).await {
            Ok(listener) => {
                if port == 0 {
                    port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
                }
                out.push(listener);
            }
            Err(e) if !l.required => {
                tracing::info!(
                    "gateway: failed to bind loopback alias {}:{port} ({e})",
                    l.ip
                );
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                return Err(BindFailure::InUse { host: l.ip, port });
            }
            Err(error) => {
                return Err(BindFailure::Other {
                    host: l.ip,
                    port,
                    error,
                });
            }
        }
    }
    Ok((out, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detector(dir: &Path) -> TailnetDetector {
        TailnetDetector {
            tailscale_bin: dir.join("no-tailscale").into(),
            localapi_socket: dir.join("no.sock"),
            timeout: Duration::from_secs(2),
            fib_trie: dir.join("fib_trie"),
        }
    }

    #[test]
    fn fib_trie_parsing() {
        let dir = tempfile::tempdir().unwrap();
        let text = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 10.200.0.0\n        /30 link UNICAST\n     |-- 10.200.0.1\n        /32 host LOCAL\n     |-- 100.71.2.3\n        /32 host LOCAL\n     |-- 127.0.0.1\n        /32 host LOCAL\nLocal:\n     |-- 10.200.0.1\n        /32 host LOCAL\n";
        std::fs::write(dir.path().join("fib_trie"), text).unwrap();
        let ips = local_ipv4_addresses(&dir.path().join("fib_trie"));
        assert_eq!(
            ips,
            vec![Ipv4Addr::new(10, 200, 0, 1), Ipv4Addr::new(100, 71, 2, 3)]
        );
        let d = detector(dir.path());
        let info = d.detect().unwrap();
        assert_eq!(info.ipv4, Ipv4Addr::new(100, 71, 2, 3));
    }

    #[test]
    fn tailscale_status_wins_over_the_scan() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("tailscale");
        std::fs::write(
            &fake,
            "#!/bin/sh\necho '{\"Self\":{\"TailscaleIPs\":[\"fd7a:115c:a1e0::1\",\"10.77.0.5\"],\"DNSName\":\"box.example.ts.net.\"}}'\n",
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut d = detector(dir.path());
        d.tailscale_bin = fake.into();
        let info = d.detect().unwrap();
        // Headscale-style prefix outside 100.64/10: still found.
        assert_eq!(info.ipv4, Ipv4Addr::new(10, 77, 0, 5));
        assert_eq!(info.dns_name.as_deref(), Some("box.example.ts.net"));
        assert_eq!(info.source, "tailscale status --json");
    }

    #[test]
    fn localapi_socket_is_asked_first() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("ts.sock");
        let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut req = [0u8; 1024];
            let n = s.read(&mut req).unwrap();
            let req = String::from_utf8_lossy(&req[..n]).into_owned();
            let body = r#"{"Self":{"TailscaleIPs":["100.100.1.2"],"DNSName":"gw.tail.ts.net."}}"#;
            write!(
                s,
                "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{body}"
            )
            .unwrap();
            req
        });
        let mut d = detector(dir.path());
        d.localapi_socket = sock;
        let info = d.detect().unwrap();
        assert_eq!(info.ipv4, Ipv4Addr::new(100, 100, 1, 2));
        assert_eq!(info.source, "tailscale LocalAPI");
        assert!(
            server
                .join()
                .unwrap()
                .starts_with("GET /localapi/v0/status ")
        );
    }

    #[test]
    fn plans() {
        let dir = tempfile::tempdir().unwrap();
        let d = detector(dir.path());
        let lo = resolve_bind(BindMode::Loopback, None, &d, false).unwrap();
        assert!(lo.is_loopback());
        assert_eq!(lo.listen.len(), 2);
        assert!(!lo.listen[1].required);
        let lan = resolve_bind(BindMode::Lan, None, &d, false).unwrap();
        assert_eq!(lan.host, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(lan.listen.len(), 1);
        assert_eq!(
            resolve_bind(BindMode::Auto, None, &d, true).unwrap().host,
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        );
        assert!(
            resolve_bind(BindMode::Auto, None, &d, false)
                .unwrap()
                .is_loopback()
        );
        // No tailnet anywhere: loopback, with a note saying so.
        let tn = resolve_bind(BindMode::Tailnet, None, &d, false).unwrap();
        assert!(tn.is_loopback());
        assert!(tn.notes[0].contains("no tailnet address"), "{:?}", tn.notes);
        // Custom on an address this machine does not have: refused, no fallback.
        let err = resolve_bind(
            BindMode::Custom,
            Some(Ipv4Addr::new(192, 0, 2, 77)),
            &d,
            false,
        )
        .unwrap_err();
        assert!(
            err.starts_with(
                "gateway bind=custom requested 192.0.2.77 but resolved 0.0.0.0; refusing fallback"
            ),
            "{err}"
        );
        assert_eq!(
            resolve_bind(BindMode::Custom, None, &d, false).unwrap_err(),
            "gateway.bind=custom requires gateway.customBindHost"
        );
        // Custom 127.0.0.1 is plain loopback.
        let c = resolve_bind(BindMode::Custom, Some(Ipv4Addr::LOCALHOST), &d, false).unwrap();
        assert!(c.is_loopback());
    }

    #[test]
    fn container_cgroups() {
        assert!(cgroup_says_container("0::/docker/abc"));
        assert!(cgroup_says_container("0::/kubepods/besteffort/pod1"));
        assert!(cgroup_says_container("0::/lxc/ct1"));
        assert!(!cgroup_says_container("0::/init.scope"));
        assert!(!cgroup_says_container("0::/user.slice/lxcfs.service"));
    }

    #[tokio::test]
    async fn port_in_use_is_the_lock_error() {
        let dir = tempfile::tempdir().unwrap();
        let plan = resolve_bind(BindMode::Loopback, None, &detector(dir.path()), false).unwrap();
        let (held, port) = bind_listeners(&plan, 0).await.unwrap();
        let err = bind_listeners(&plan, port).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("another gateway instance is already listening on ws://127.0.0.1:{port}")
        );
        drop(held);
    }
}
