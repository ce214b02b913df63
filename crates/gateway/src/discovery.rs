//! Bonjour / DNS-SD as OpenClaw 2026.9.6 does it: the gateway's `_openclaw-gw._tcp` beacon
//! (its bonjour plugin's `startGatewayBonjourAdvertiser`) and the browse behind
//! `gateway discover` and `gateway probe --ssh-auto` (its `discoverGatewayBeacons`).
//!
//! Both sides run on `mdns-sd`'s own thread, so nothing here needs the async runtime; the
//! calls that wait ([`Advertiser::stop`], [`browse`]) block and belong in `spawn_blocking`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mdns_sd::{ServiceDaemon, ServiceEvent, ServiceInfo};
use serde::Serialize;

/// OpenClaw's service type, in the form `mdns-sd` wants (with the `local.` domain).
pub const SERVICE_TYPE: &str = "_openclaw-gw._tcp.local.";

/// The only browse domain: the gateway writes a wide-area DNS-SD zone
/// (`discovery.wideArea.domain`, see [`crate::wide_area`]) but `gateway discover` does not
/// browse it.
pub const DOMAIN: &str = "local.";

/// How long the goodbye on shutdown may take before the gateway exits anyway.
const GOODBYE_WAIT: Duration = Duration::from_secs(1);

/// `discovery.mdns.mode`: what the beacon tells (OpenClaw's default is `minimal`).
pub use clawgate_config::MdnsMode;

/// OpenClaw's `OPENCLAW_DISABLE_BONJOUR` rule (`CLAWGATE_DISABLE_BONJOUR` wins when set):
/// a true value (1/true/yes/on) disables the beacon, a false one (0/false/no/off) enables it
/// even in a container; otherwise containers get none, since their mDNS would only announce
/// the container's private addresses.
pub fn disabled_by_env(env: &dyn Fn(&str) -> Option<String>, in_container: bool) -> bool {
    let value = ["CLAWGATE_DISABLE_BONJOUR", "OPENCLAW_DISABLE_BONJOUR"]
        .iter()
        .find_map(|name| env(name).filter(|v| !v.trim().is_empty()));
    match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        Some("1" | "true" | "yes" | "on") => true,
        Some("0" | "false" | "no" | "off") => false,
        _ => in_container,
    }
}

/// The gateway's beacon: an instance of [`SERVICE_TYPE`] on `<hostname>.local.` with
/// OpenClaw's TXT record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advertisement {
    /// Minimal or full ([`MdnsMode::Off`] advertises nothing, so it never gets here).
    pub mode: MdnsMode,
    /// `<hostname> (OpenClaw)`, or the machine name alone when it says OpenClaw already.
    pub instance_name: String,
    /// The mDNS host label (`<hostname>.local.` in the SRV record, `lanHost` in TXT).
    pub hostname: String,
    pub gateway_port: u16,
    /// The certificate's SHA-256 (lowercase hex) when the gateway serves TLS.
    pub tls_fingerprint: Option<String>,
    /// Not loopback-only: clients on the LAN can connect to the advertised port directly.
    pub direct_reachable: bool,
    /// Known in every mode, since the wide-area zone carries it even when the beacon (minimal)
    /// does not.
    pub tailnet_dns: Option<String>,
    pub cli_path: Option<String>,
    /// `OPENCLAW_SSH_PORT`; the full beacon says 22 when unset, the wide-area zone nothing.
    pub ssh_port: Option<u16>,
}

impl Advertisement {
    /// OpenClaw's beacon for this machine: the host label from `OPENCLAW_MDNS_HOSTNAME`,
    /// else the system host name's first label, else `openclaw`; the instance named after
    /// the host name; `tailnetDns` (`OPENCLAW_TAILNET_DNS`, else `tailnet_name`); in full mode
    /// `cliPath` (`OPENCLAW_CLI_PATH`, else this executable) and `sshPort`
    /// (`OPENCLAW_SSH_PORT`).
    pub fn for_this_host(
        env: &dyn Fn(&str) -> Option<String>,
        mode: MdnsMode,
        gateway_port: u16,
        tls_fingerprint: Option<String>,
        direct_reachable: bool,
        tailnet_name: Option<&str>,
    ) -> Advertisement {
        let var = |suffix: &str| {
            [format!("CLAWGATE_{suffix}"), format!("OPENCLAW_{suffix}")]
                .iter()
                .find_map(|name| {
                    env(name)
                        .map(|v| v.trim().to_owned())
                        .filter(|v| !v.is_empty())
                })
        };
        let system = rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .trim()
            .to_owned();
        let machine = strip_local(&system);
        let label = var("MDNS_HOSTNAME")
            .map(|h| strip_local(&h).to_owned())
            .or_else(|| system_label(machine))
            .unwrap_or_default();
        let first = label.split('.').next().unwrap_or_default().trim();
        let hostname = truncate_label(
            if first.is_empty() { "openclaw" } else { first },
            "openclaw",
        );
        let machine = if machine.is_empty() {
            "openclaw"
        } else {
            machine
        };
        let instance_name = if machine.to_ascii_lowercase().contains("openclaw") {
            machine.to_owned()
        } else {
            format!("{machine} (OpenClaw)")
        };
        let full = mode == MdnsMode::Full;
        Advertisement {
            mode,
            instance_name,
            hostname,
            gateway_port,
            tls_fingerprint,
            direct_reachable,
            tailnet_dns: var("TAILNET_DNS")
                .map(|d| d.trim_end_matches('.').to_owned())
                .or_else(|| tailnet_name.map(str::to_owned)),
            cli_path: full
                .then(|| {
                    var("CLI_PATH").or_else(|| {
                        std::env::current_exe()
                            .ok()
                            .map(|p| p.to_string_lossy().into_owned())
                    })
                })
                .flatten(),
            ssh_port: full
                .then(|| var("SSH_PORT"))
                .flatten()
                .and_then(|p| parse_port(&p)),
        }
    }

    /// OpenClaw's TXT record, in its order.
    pub fn txt(&self) -> Vec<(&'static str, String)> {
        let display = self
            .instance_name
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        // OpenClaw drops a trailing " (OpenClaw)" (after a blank) from the shown name.
        let display_name = display
            .to_ascii_lowercase()
            .strip_suffix("(openclaw)")
            .map(|rest| &display[..rest.len()])
            .filter(|rest| rest.ends_with(' '))
            .map(str::trim)
            .filter(|rest| !rest.is_empty())
            .map_or_else(|| display.clone(), str::to_owned);
        let mut txt = vec![
            ("role", "gateway".to_owned()),
            ("gatewayPort", self.gateway_port.to_string()),
            ("lanHost", format!("{}.local", self.hostname)),
            ("displayName", display_name),
        ];
        if let Some(fp) = &self.tls_fingerprint {
            txt.push(("gatewayTls", "1".to_owned()));
            txt.push(("gatewayTlsSha256", fp.clone()));
        }
        if self.direct_reachable {
            txt.push(("gatewayDirectReachable", "1".to_owned()));
        }
        let full = self.mode == MdnsMode::Full;
        if full {
            txt.extend(self.tailnet_dns.clone().map(|d| ("tailnetDns", d)));
            txt.extend(self.cli_path.clone().map(|p| ("cliPath", p)));
        }
        txt.push(("transport", "gateway".to_owned()));
        if full {
            txt.push(("sshPort", self.ssh_port.unwrap_or(22).to_string()));
        }
        txt
    }

    /// The instance label as published: at most 63 bytes.
    pub fn service_name(&self) -> String {
        truncate_label(self.instance_name.trim(), "OpenClaw")
    }
}

/// Why mDNS could not start.
#[derive(Debug, thiserror::Error)]
#[error(
    "mDNS: {0} (set discovery.mdns.mode to \"off\" or OPENCLAW_DISABLE_BONJOUR=1 to go without Bonjour)"
)]
pub struct DiscoveryError(#[from] mdns_sd::Error);

/// A published beacon; [`Advertiser::stop`] withdraws it.
pub struct Advertiser {
    daemon: ServiceDaemon,
    fullname: String,
}

impl Advertiser {
    /// Publishes `ad` on every interface (addresses follow the interfaces as they change).
    pub fn start(ad: &Advertisement) -> Result<Advertiser, DiscoveryError> {
        let daemon = ServiceDaemon::new()?;
        let txt = ad.txt();
        let info = ServiceInfo::new(
            SERVICE_TYPE,
            &ad.service_name(),
            &format!("{}.local.", ad.hostname),
            "",
            ad.gateway_port,
            &txt[..],
        )?
        .enable_addr_auto();
        let fullname = info.get_fullname().to_owned();
        if let Err(e) = daemon.register(info) {
            let _ = daemon.shutdown();
            return Err(e.into());
        }
        Ok(Advertiser { daemon, fullname })
    }

    /// The published `<instance>._openclaw-gw._tcp.local.`.
    pub fn fullname(&self) -> &str {
        &self.fullname
    }

    /// Sends the goodbye (TTL 0) so browsers drop the gateway at once, then stops the mDNS
    /// thread. Blocks for up to about a second.
    pub fn stop(self) {
        if let Ok(done) = self.daemon.unregister(&self.fullname) {
            let _ = done.recv_timeout(GOODBYE_WAIT);
        }
        if let Ok(done) = self.daemon.shutdown() {
            let _ = done.recv_timeout(GOODBYE_WAIT);
        }
    }
}

/// A gateway found by [`browse`], shaped like OpenClaw's beacon (its JSON field names).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Beacon {
    pub instance_name: String,
    pub display_name: String,
    /// The SRV target without the final dot (`gw.local`), as avahi reports it to OpenClaw.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub txt: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lan_host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tailnet_dns: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cli_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_tls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_tls_fingerprint_sha256: Option<String>,
    pub domain: String,
}

impl Beacon {
    /// Reads a resolved instance the way OpenClaw reads avahi's: TXT `displayName` over the
    /// instance name, ports as TCP ports, `gatewayTls` true for 1/true/yes.
    fn from_txt(
        instance_name: String,
        host: String,
        port: u16,
        txt: BTreeMap<String, String>,
    ) -> Beacon {
        let get = |k: &str| txt.get(k).filter(|v| !v.is_empty()).cloned();
        Beacon {
            display_name: get("displayName").unwrap_or_else(|| instance_name.clone()),
            instance_name,
            host: Some(host.trim_end_matches('.').to_owned()).filter(|h| !h.is_empty()),
            port: Some(port).filter(|p| *p > 0),
            lan_host: get("lanHost"),
            tailnet_dns: get("tailnetDns"),
            cli_path: get("cliPath"),
            role: get("role"),
            transport: get("transport"),
            gateway_port: get("gatewayPort").and_then(|p| parse_port(&p)),
            ssh_port: get("sshPort").and_then(|p| parse_port(&p)),
            gateway_tls: get("gatewayTls")
                .map(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes")),
            gateway_tls_fingerprint_sha256: get("gatewayTlsSha256"),
            txt: Some(txt).filter(|t| !t.is_empty()),
            domain: DOMAIN.to_owned(),
        }
    }

    /// `ws[s]://host:port` (OpenClaw's `resolveGatewayDiscoveryEndpoint`), when both are known.
    pub fn ws_url(&self) -> Option<String> {
        let host = self.host.as_deref()?;
        let scheme = if self.gateway_tls == Some(true) {
            "wss"
        } else {
            "ws"
        };
        Some(format!("{scheme}://{host}:{}", self.port?))
    }

    /// OpenClaw's SSH target for this gateway: `[user@]host`, with `:sshPort` unless 22.
    pub fn ssh_target(&self, user: &str) -> Option<String> {
        self.ws_url()?;
        let host = self.host.as_deref()?;
        let base = if user.is_empty() {
            host.to_owned()
        } else {
            format!("{user}@{host}")
        };
        Some(match self.ssh_port {
            Some(p) if p != 22 => format!("{base}:{p}"),
            _ => base,
        })
    }
}

/// Browses [`SERVICE_TYPE`] for `timeout` (mDNS has no end of answers, so the whole time),
/// and returns each resolved gateway once, sorted by display name as `gateway discover`
/// lists them. With no interface but loopback up there is nothing mDNS could reach (it
/// does not browse on loopback): no gateways, at once.
pub fn browse(timeout: Duration) -> Result<Vec<Beacon>, DiscoveryError> {
    if !has_multicast_reach() {
        return Ok(Vec::new());
    }
    let daemon = ServiceDaemon::new()?;
    let events = match daemon.browse(SERVICE_TYPE) {
        Ok(rx) => rx,
        Err(e) => {
            let _ = daemon.shutdown();
            return Err(e.into());
        }
    };
    let deadline = Instant::now() + timeout;
    let mut found = BTreeMap::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match events.recv_timeout(left) {
            Ok(ServiceEvent::ServiceResolved(svc)) => {
                let txt = svc
                    .txt_properties
                    .iter()
                    .filter(|p| !p.key().trim().is_empty())
                    .map(|p| (p.key().trim().to_owned(), p.val_str().trim().to_owned()))
                    .collect();
                let instance = instance_of(&svc.fullname);
                let beacon = Beacon::from_txt(instance, svc.host.clone(), svc.port, txt);
                found.insert(svc.fullname.clone(), beacon);
            }
            Ok(ServiceEvent::ServiceRemoved(_, fullname)) => {
                found.remove(&fullname);
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let _ = daemon.stop_browse(SERVICE_TYPE);
    if let Ok(done) = daemon.shutdown() {
        let _ = done.recv_timeout(GOODBYE_WAIT);
    }
    let mut beacons: Vec<Beacon> = found.into_values().collect();
    beacons.sort_by(|a, b| a.display_name.cmp(&b.display_name));
    Ok(beacons)
}

/// Whether some interface besides loopback has an address, as mdns-sd picks the
/// interfaces it sends and listens on. If the list cannot be read, browse anyway.
fn has_multicast_reach() -> bool {
    if_addrs::get_if_addrs().map_or(true, |all| all.iter().any(|i| !i.is_loopback()))
}

/// `My\.Host (OpenClaw)._openclaw-gw._tcp.local.` → `My.Host (OpenClaw)`.
fn instance_of(fullname: &str) -> String {
    let escaped = fullname
        .strip_suffix(SERVICE_TYPE)
        .map_or(fullname, |s| s.strip_suffix('.').unwrap_or(s));
    let mut out = String::with_capacity(escaped.len());
    let mut chars = escaped.chars();
    while let Some(c) = chars.next() {
        out.push(if c == '\\' {
            chars.next().unwrap_or(c)
        } else {
            c
        });
    }
    out
}

fn strip_local(name: &str) -> &str {
    let n = name.len();
    if n >= 6 && name.is_char_boundary(n - 6) && name[n - 6..].eq_ignore_ascii_case(".local") {
        &name[..n - 6]
    } else {
        name
    }
}

/// The system host name's first label when it is a valid DNS label (OpenClaw's
/// `resolveSystemMdnsHostname`).
fn system_label(machine: &str) -> Option<String> {
    let first = machine.split('.').next()?.trim();
    let valid = (1..=63).contains(&first.len())
        && first
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !first.starts_with('-')
        && !first.ends_with('-');
    valid.then(|| first.to_owned())
}

/// At most 63 bytes, cut at a character boundary, trailing dashes and blanks dropped.
fn truncate_label(name: &str, fallback: &str) -> String {
    if name.len() <= 63 {
        return name.to_owned();
    }
    let mut end = 63;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    let cut = name[..end].trim_end_matches('-').trim();
    if cut.is_empty() { fallback } else { cut }.to_owned()
}

fn parse_port(raw: &str) -> Option<u16> {
    raw.trim().parse::<u16>().ok().filter(|p| *p > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ad(mode: MdnsMode) -> Advertisement {
        Advertisement {
            mode,
            instance_name: "box (OpenClaw)".into(),
            hostname: "box".into(),
            gateway_port: 18789,
            tls_fingerprint: Some("ab".repeat(32)),
            direct_reachable: true,
            tailnet_dns: Some("box.tail.ts.net".into()),
            cli_path: Some("/usr/bin/clawgate".into()),
            ssh_port: Some(2222),
        }
    }

    #[test]
    fn txt_follows_openclaw_per_mode() {
        let keys = |m| ad(m).txt().into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert_eq!(
            keys(MdnsMode::Minimal),
            [
                "role",
                "gatewayPort",
                "lanHost",
                "displayName",
                "gatewayTls",
                "gatewayTlsSha256",
                "gatewayDirectReachable",
                "transport"
            ]
        );
        assert_eq!(
            keys(MdnsMode::Full),
            [
                "role",
                "gatewayPort",
                "lanHost",
                "displayName",
                "gatewayTls",
                "gatewayTlsSha256",
                "gatewayDirectReachable",
                "tailnetDns",
                "cliPath",
                "transport",
                "sshPort"
            ]
        );
        let txt: BTreeMap<_, _> = ad(MdnsMode::Full).txt().into_iter().collect();
        assert_eq!(txt["displayName"], "box");
        assert_eq!(txt["lanHost"], "box.local");
        assert_eq!(txt["sshPort"], "2222");
    }

    #[test]
    fn env_switch() {
        let with = |v: &'static str| {
            move |n: &str| (n == "OPENCLAW_DISABLE_BONJOUR").then(|| v.to_owned())
        };
        assert!(disabled_by_env(&with("1"), false));
        assert!(!disabled_by_env(&with("0"), true));
        assert!(disabled_by_env(&with("maybe"), true));
        assert!(!disabled_by_env(&|_: &str| None, false));
        let twin = |n: &str| match n {
            "CLAWGATE_DISABLE_BONJOUR" => Some("off".to_owned()),
            _ => Some("1".to_owned()),
        };
        assert!(!disabled_by_env(&twin, false));
    }

    #[test]
    fn beacon_targets() {
        let txt: BTreeMap<String, String> = ad(MdnsMode::Full)
            .txt()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let b = Beacon::from_txt("box (OpenClaw)".into(), "box.local.".into(), 18789, txt);
        assert_eq!(b.ws_url().as_deref(), Some("wss://box.local:18789"));
        assert_eq!(b.ssh_target("me").as_deref(), Some("me@box.local:2222"));
        assert_eq!(
            instance_of(r"a\.b (OpenClaw)._openclaw-gw._tcp.local."),
            "a.b (OpenClaw)"
        );
        assert_eq!(truncate_label(&"é".repeat(40), "x").len(), 62);
    }
}
