//! A second host for remote-access tests: two network namespaces made by the test (the
//! gateway's and a peer's), joined by a veth pair with private addresses assigned inside those
//! namespaces only. Both ends are created directly inside the new namespaces, so the test
//! runner's own (loopback-only) namespace never sees them, and no route leads anywhere else.
//! Needs root (`./scripts/test` runs the tests as root in a loopback-only namespace).
// Each test binary that includes this module uses only part of it.
#![allow(dead_code)]

use clawgate_testkit::{ChildProcess, IsolatedHome};
use std::ffi::OsStr;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command as StdCommand;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tokio::process::Command;

pub const GW_IP: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
pub const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 2);
pub const WAIT: Duration = Duration::from_secs(30);

pub fn ip_bin() -> PathBuf {
    for p in ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"] {
        if std::path::Path::new(p).exists() {
            return p.into();
        }
    }
    "ip".into()
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = StdCommand::new(ip_bin())
        .args(args)
        .output()
        .map_err(|e| format!("ip {args:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The gateway host and a peer host, `10.200.0.1/30` and `10.200.0.2/30`. Removed on drop
/// (drop the processes running inside first).
pub struct HostPair {
    pub gw: String,
    pub peer: String,
}

impl HostPair {
    pub fn create(tag: &str) -> HostPair {
        static N: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "cg-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let pair = HostPair {
            gw: format!("{id}-gw"),
            peer: format!("{id}-peer"),
        };
        let setup = || -> Result<(), String> {
            ip(&["netns", "add", &pair.gw])?;
            ip(&["netns", "add", &pair.peer])?;
            ip(&[
                "link",
                "add",
                "veth-gw",
                "netns",
                &pair.gw,
                "type",
                "veth",
                "peer",
                "name",
                "veth-peer",
                "netns",
                &pair.peer,
            ])?;
            for (ns, dev, addr) in [
                (&pair.gw, "veth-gw", "10.200.0.1/30"),
                (&pair.peer, "veth-peer", "10.200.0.2/30"),
            ] {
                ip(&["-n", ns, "addr", "add", addr, "dev", dev])?;
                ip(&["-n", ns, "link", "set", dev, "up"])?;
                ip(&["-n", ns, "link", "set", "lo", "up"])?;
            }
            Ok(())
        };
        if let Err(e) = setup() {
            panic!(
                "cannot create the test's network namespaces ({e}). These tests need root and \
                 `ip netns`; run them through ./scripts/test as root."
            );
        }
        pair
    }

    /// Moves the gateway host's address from its veth end to a bridge holding that end.
    /// OpenClaw's mDNS library (ciao) finds interfaces by parsing `ip -o link show`, where a
    /// veth whose peer is in another namespace is listed as `veth-gw@if2` and so never
    /// matches its real name: without a bridge, a real OpenClaw gateway advertises on
    /// loopback only.
    pub fn bridge_gateway_side(&self) {
        let ns = self.gw.as_str();
        let steps: [&[&str]; 5] = [
            &["-n", ns, "link", "add", "br-gw", "type", "bridge"],
            &["-n", ns, "addr", "del", "10.200.0.1/30", "dev", "veth-gw"],
            &["-n", ns, "link", "set", "veth-gw", "master", "br-gw"],
            &["-n", ns, "addr", "add", "10.200.0.1/30", "dev", "br-gw"],
            &["-n", ns, "link", "set", "br-gw", "up"],
        ];
        for step in steps {
            if let Err(e) = ip(step) {
                panic!("cannot bridge the gateway namespace's veth: {e}");
            }
        }
    }

    /// `ip netns exec <ns> <program> <args…>` in `home`.
    pub fn command<I, S>(
        &self,
        ns: &str,
        program: impl AsRef<OsStr>,
        args: I,
        home: &IsolatedHome,
    ) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(ip_bin());
        cmd.arg("netns").arg("exec").arg(ns).arg(program).args(args);
        home.apply(&mut cmd);
        cmd
    }
}

impl Drop for HostPair {
    fn drop(&mut self) {
        // Deleting the namespaces also deletes the veth pair.
        let _ = ip(&["netns", "del", &self.gw]);
        let _ = ip(&["netns", "del", &self.peer]);
    }
}

/// What a finished command printed.
#[derive(Debug)]
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `cmd` to completion (killed after `WAIT`).
pub async fn run(cmd: Command) -> Ran {
    let mut p = ChildProcess::spawn(cmd, "command in a test namespace").unwrap();
    let status = p.wait_timeout(WAIT).await;
    let _ = p
        .wait_for_line(|_| false, Instant::now() + Duration::from_secs(5))
        .await;
    let mut stdout = String::new();
    let mut stderr = String::new();
    for line in p.transcript().lines() {
        if let Some(l) = line.strip_prefix("out| ") {
            stdout.push_str(l);
            stdout.push('\n');
        } else if let Some(l) = line.strip_prefix("err| ") {
            stderr.push_str(l);
            stderr.push('\n');
        }
    }
    Ran {
        code: status.and_then(|s| s.code()),
        stdout,
        stderr,
    }
}

/// Starts a long-running process and waits for the line containing `marker`.
pub async fn start(cmd: Command, marker: &str) -> (ChildProcess, String) {
    let mut p = ChildProcess::spawn(cmd, "gateway in a test namespace").unwrap();
    let line = p
        .wait_for_line(|l| l.contains(marker), Instant::now() + WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (p, line.text)
}

/// `curl` from a namespace: (HTTP status, body). Status 0 when nothing answered.
pub async fn curl(pair: &HostPair, ns: &str, url: &str, headers: &[&str]) -> (u16, String) {
    let home = IsolatedHome::new();
    home.write_config(&serde_json::json!({}));
    let mut args: Vec<String> = vec![
        "-sS".into(),
        "--max-time".into(),
        "5".into(),
        "-o".into(),
        "-".into(),
        "-w".into(),
        "\n%{http_code}".into(),
    ];
    for h in headers {
        args.push("-H".into());
        args.push((*h).into());
    }
    args.push(url.into());
    let ran = run(pair.command(ns, "curl", &args, &home)).await;
    let (body, code) = ran
        .stdout
        .trim_end()
        .rsplit_once('\n')
        .unwrap_or(("", ran.stdout.trim()));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

/// The port of the first `ws[s]://host:PORT` in a readiness line.
pub fn port_of(line: &str) -> u16 {
    let url = clawgate_testkit::parse_listening_url(line)
        .or_else(|| {
            let i = line.find("wss://")?;
            Some(line[i..].split_whitespace().next()?.to_owned())
        })
        .unwrap_or_else(|| panic!("no URL in {line:?}"));
    url.rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("no port in {url:?}"))
}

/// clawgate's node host in the pair's peer host, connecting to the gateway's lan listener on
/// `port` with `token`; returns once it is connected (`paired`) or has been told the approve
/// command to wait for.
pub async fn peer_node_host(
    pair: &HostPair,
    home: &IsolatedHome,
    port: u16,
    token: &str,
    paired: bool,
) -> ChildProcess {
    let (port, gw_ip) = (port.to_string(), GW_IP.to_string());
    let args = [
        "node", "run", "--host", &gw_ip, "--port", &port, "--token", token,
    ];
    let marker = if paired {
        "node host gateway connected"
    } else {
        "clawgate devices approve"
    };
    let bin = env!("CARGO_BIN_EXE_clawgate");
    start(pair.command(&pair.peer, bin, args, home), marker)
        .await
        .0
}

/// `clawgate devices list --json` on the gateway host, against its loopback listener.
pub async fn gateway_devices(
    pair: &HostPair,
    home: &IsolatedHome,
    port: u16,
    token: &str,
) -> serde_json::Value {
    let url = format!("ws://127.0.0.1:{port}");
    let args = ["devices", "list", "--json", "--url", &url, "--token", token];
    let bin = env!("CARGO_BIN_EXE_clawgate");
    let listed = run(pair.command(&pair.gw, bin, args, home)).await;
    assert_eq!(listed.code, Some(0), "{listed}");
    serde_json::from_str(&listed.stdout).unwrap()
}

/// The paired devices of a `devices list --json` answer that hold the node role.
pub fn paired_nodes(list: &serde_json::Value) -> Vec<&serde_json::Value> {
    list["paired"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| {
            d["roles"]
                .as_array()
                .is_some_and(|r| r.iter().any(|role| role == "node"))
        })
        .collect()
}
