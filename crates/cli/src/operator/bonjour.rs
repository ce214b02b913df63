//! OpenClaw's Bonjour browse for `_openclaw-gw._tcp` (local. only; wide-area DNS-SD is not
//! implemented), as `gateway discover` and every `gateway probe` run it, and its lines for
//! one gateway found.

use crate::output::{Failure, FailureKind};
use clawgate_gateway::discovery::{self, Beacon};
use serde_json::{Value, json};
use std::time::Duration;

/// Browses for `timeout` off the async runtime (the browse blocks on mDNS's own thread).
pub async fn browse(timeout: Duration) -> Result<Vec<Beacon>, Failure> {
    let failed = |message: String| Failure {
        kind: FailureKind::Rpc,
        json: json!({"type": "discovery_error", "message": message}),
        message,
        fixes: Vec::new(),
    };
    match tokio::task::spawn_blocking(move || discovery::browse(timeout)).await {
        Ok(Ok(found)) => Ok(found),
        Ok(Err(e)) => Err(failed(format!("gateway discover failed: {e}"))),
        Err(e) => Err(failed(format!("gateway discover failed: {e}"))),
    }
}

/// How long `gateway probe` browses at most (OpenClaw's probe discovery budget).
const PROBE_DISCOVERY_BUDGET_MS: u64 = 1200;

/// The Bonjour browse that runs beside `gateway probe`'s connections, as OpenClaw's probe
/// does: for min(1200 ms, the probe's timeout); `--ssh-auto` picks its target from it.
pub struct ProbeBrowse {
    timeout_ms: u64,
    task: tokio::task::JoinHandle<Result<Vec<Beacon>, Failure>>,
    done: Option<ProbeDiscovery>,
}

impl ProbeBrowse {
    pub fn start(probe_timeout_ms: u64) -> ProbeBrowse {
        let timeout_ms = probe_timeout_ms.clamp(1, PROBE_DISCOVERY_BUDGET_MS);
        ProbeBrowse {
            timeout_ms,
            task: tokio::spawn(browse(Duration::from_millis(timeout_ms))),
            done: None,
        }
    }

    /// What the browse found, waiting for its end the first time.
    pub async fn wait(&mut self) -> &ProbeDiscovery {
        match &mut self.done {
            Some(done) => done,
            none => {
                let found = match (&mut self.task).await {
                    Ok(found) => found.map_err(|f| f.message),
                    Err(e) => Err(format!("gateway discover failed: {e}")),
                };
                none.insert(ProbeDiscovery {
                    timeout_ms: self.timeout_ms,
                    found,
                })
            }
        }
    }
}

/// What [`ProbeBrowse`] found.
pub struct ProbeDiscovery {
    pub timeout_ms: u64,
    /// The gateways found, or why the browse could not run.
    pub found: Result<Vec<Beacon>, String>,
}

impl ProbeDiscovery {
    fn beacons(&self) -> &[Beacon] {
        self.found.as_deref().unwrap_or_default()
    }

    /// The probe report's `discovery` (OpenClaw's `serializeGatewayDiscoveryBeacon` for each).
    pub fn json(&self) -> Value {
        let beacons: Vec<Value> = self
            .beacons()
            .iter()
            .map(|b| {
                json!({"instanceName": b.instance_name, "displayName": b.display_name,
                    "domain": b.domain, "host": b.host, "lanHost": b.lan_host,
                    "tailnetDns": b.tailnet_dns, "gatewayPort": b.gateway_port,
                    "sshPort": b.ssh_port, "wsUrl": b.ws_url()})
            })
            .collect();
        json!({"timeoutMs": self.timeout_ms, "count": beacons.len(), "beacons": beacons})
    }

    /// OpenClaw's "Discovery (this machine)" block.
    pub fn text(&self) -> String {
        let count = self.beacons().len();
        let mut out = String::from("Discovery (this machine):\n");
        if count == 0 {
            out.push_str("  Found 0 gateways via Bonjour (local.)\n");
            out.push_str("  Tip: if the gateway is remote, mDNS won't cross networks; use SSH tunnels (gateway probe --ssh user@host).\n");
        } else {
            out.push_str(&format!(
                "  Found {count} gateway(s) via Bonjour (local.)\n"
            ));
            for b in self.beacons() {
                for line in beacon_lines(b) {
                    out.push_str(&format!("  {line}\n"));
                }
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.beacons().is_empty()
    }
}

/// OpenClaw's lines for one beacon (`renderBeaconLines`, without colours).
pub fn beacon_lines(b: &Beacon) -> Vec<String> {
    let title = if b.display_name.trim().is_empty() {
        "Gateway"
    } else {
        b.display_name.trim()
    };
    let mut lines = vec![format!("- {title} {}", b.domain)];
    let mut field = |label: &str, value: Option<&str>| {
        if let Some(v) = value {
            lines.push(format!("  {label}: {v}"));
        }
    };
    field("tailnet", b.tailnet_dns.as_deref());
    field("lan", b.lan_host.as_deref());
    field("host", b.host.as_deref());
    field("ws", b.ws_url().as_deref());
    field("role", b.role.as_deref());
    field("transport", b.transport.as_deref());
    if b.gateway_tls == Some(true) {
        let tls = b
            .gateway_tls_fingerprint_sha256
            .as_ref()
            .map_or_else(|| "enabled".to_owned(), |fp| format!("sha256 {fp}"));
        field("tls", Some(&tls));
    }
    if let (Some(host), Some(port), Some(ssh_port)) = (&b.host, b.port, b.ssh_port) {
        let ssh = format!("ssh -N -L 18789:127.0.0.1:{port} <user>@{host} -p {ssh_port}");
        field("ssh", Some(&ssh));
    }
    lines
}
