//! `gateway.nodes.pairing.sshVerify`: OpenClaw's SSH-verified approval of a node's first
//! pairing.
//!
//! When a fresh, scopeless node asks to pair from a private address, the gateway logs in to
//! that address over SSH (port 22, public keys only, strict host keys) as its own user and
//! asks the host for its node device identity. If the host answers with the very device id
//! and public key of the pending request, whoever asked is that host's node host, and the
//! request is approved (`approvedVia: "ssh-verified"`); otherwise it waits for an operator.
//!
//! A probe runs in the background and never holds up the connect that asked; the device
//! retries and finds itself paired. Probes are bounded (at most four at once, one per host and
//! device key) and a failed or mismatched one cools down before that key is probed again, so
//! a device reconnecting in a loop cannot make the gateway run ssh in a loop.

use crate::Gateway;
use crate::ingress::{self, Cidr};
use clawgate_config::SshVerifyConfig;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio_util::sync::CancellationToken;

/// The probe's time limit when `timeoutMs` is not set.
pub const DEFAULT_TIMEOUT_MS: u64 = 7000;
/// A probe never gets less than this, whatever `timeoutMs` says.
const MIN_TIMEOUT_MS: u64 = 250;
/// After a probe that could not read an identity, the same key waits this long.
const FAILURE_COOLDOWN_MS: i64 = 60_000;
/// After a host answered with another identity, the same key waits this long.
const MISMATCH_COOLDOWN_MS: i64 = 300_000;
/// Probes running at once; beyond this a request simply waits for an operator.
const MAX_CONCURRENT_PROBES: usize = 4;
/// Cooldowns remembered at once.
const MAX_COOLDOWN_ENTRIES: usize = 512;
/// How much of the remote output is read.
const MAX_PROBE_OUTPUT_BYTES: u64 = 64 * 1024;
/// OpenClaw probes the standard SSH port only.
const SSH_PORT: u16 = 22;

/// What the gateway asks the remote host to run (one `sh -lc`, so the login shell's `PATH`
/// applies). OpenClaw asks for `openclaw node identity --json` only; a host running clawgate's
/// node host has `clawgate` instead, so this runs whichever of the two exists, and succeeds
/// when one of them printed an identity. Every identity line printed is compared.
pub const REMOTE_IDENTITY_COMMAND: &str = "sh -lc 'status=1; for cli in clawgate openclaw; do if command -v \"$cli\" >/dev/null 2>&1; then \"$cli\" node identity --json && status=0; fi; done; exit $status'";

/// The resolved `gateway.nodes.pairing.sshVerify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshVerifyPolicy {
    /// The remote user.
    pub user: String,
    /// `ssh -i` (with `IdentitiesOnly=yes`).
    pub identity: Option<String>,
    pub timeout_ms: u64,
    /// Addresses that may be probed; `None` means private and CGNAT ones (not loopback).
    pub cidrs: Option<Vec<Cidr>>,
    /// The OpenSSH client.
    pub ssh_bin: PathBuf,
}

impl SshVerifyPolicy {
    /// The policy of `config` (with its `cidrs` already parsed), or `None` when it is off:
    /// set to `false`, or no user is configured and the process has none either.
    pub fn resolve(
        config: &SshVerifyConfig,
        cidrs: Vec<Cidr>,
        process_user: Option<String>,
        ssh_bin: PathBuf,
    ) -> Option<Self> {
        if !config.enabled {
            return None;
        }
        let user = config.user.clone().or(process_user)?;
        Some(SshVerifyPolicy {
            user,
            identity: config.identity.clone(),
            timeout_ms: config.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS),
            cidrs: (!cidrs.is_empty()).then_some(cidrs),
            ssh_bin,
        })
    }

    /// The host to probe for a connect from `client_ip`, if that address may be probed. By
    /// default only private and CGNAT addresses: a token holder must not be able to make the
    /// gateway ssh to arbitrary public hosts.
    pub(crate) fn probe_host(&self, client_ip: IpAddr) -> Option<String> {
        let ip = ingress::canonical(client_ip);
        let allowed = match &self.cidrs {
            Some(cidrs) => cidrs.iter().any(|c| c.contains(ip)),
            None => ingress::is_private_or_loopback(ip) && !ip.is_loopback(),
        };
        allowed.then(|| ip.to_string())
    }

    /// The ssh arguments of a probe of `host`, exactly as OpenClaw passes them (apart from the
    /// remote command, see [`REMOTE_IDENTITY_COMMAND`]).
    pub(crate) fn ssh_args(&self, host: &str) -> Vec<String> {
        let mut args: Vec<String> = [
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
            "-o",
            "NumberOfPasswordPrompts=0",
            "-o",
            "PreferredAuthentications=publickey",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "UpdateHostKeys=no",
            "-a",
            "-x",
            "-o",
            "ForwardAgent=no",
            "-o",
            "ForwardX11=no",
            "-o",
            "ForwardX11Trusted=no",
            "-o",
            "ClearAllForwardings=yes",
            "-o",
            "ExitOnForwardFailure=yes",
            "-p",
        ]
        .map(String::from)
        .into();
        args.push(SSH_PORT.to_string());
        if let Some(identity) = &self.identity {
            args.extend([
                "-i".into(),
                identity.clone(),
                "-o".into(),
                "IdentitiesOnly=yes".into(),
            ]);
        }
        args.extend([
            "--".into(),
            format!("{}@{host}", self.user),
            REMOTE_IDENTITY_COMMAND.into(),
        ]);
        args
    }
}

/// The gateway process's user name: its passwd entry, else `$USER` / `$USERNAME`.
pub fn process_user() -> Option<String> {
    let uid = rustix::process::getuid().as_raw().to_string();
    let from_passwd = std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| {
            passwd.lines().find_map(|line| {
                let fields: Vec<&str> = line.split(':').collect();
                (fields.len() > 2 && fields[2] == uid).then(|| fields[0].trim().to_owned())
            })
        });
    from_passwd
        .into_iter()
        .chain(
            ["USER", "USERNAME"]
                .iter()
                .filter_map(|v| std::env::var(v).ok()),
        )
        .map(|u| u.trim().to_owned())
        .find(|u| !u.is_empty())
}

/// A device identity as `node identity --json` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RemoteIdentity {
    pub device_id: String,
    pub public_key: String,
}

/// Every `{deviceId, publicKey}` JSON line of the remote output.
pub(crate) fn parse_remote_identities(stdout: &str) -> Vec<RemoteIdentity> {
    stdout
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            Some(RemoteIdentity {
                device_id: v.get("deviceId")?.as_str()?.trim().to_owned(),
                public_key: v.get("publicKey")?.as_str()?.trim().to_owned(),
            })
        })
        .collect()
}

/// Whether `remote` is the device that asked: the same id and the same Ed25519 key (in any
/// encoding the gateway accepts).
fn is_same_device(remote: &RemoteIdentity, device_id: &str, public_key: &str) -> bool {
    let raw = |k: &str| clawgate_protocol::device::decode_public_key(k).map(|k| k.to_bytes());
    remote.device_id == device_id
        && raw(public_key).is_some_and(|k| raw(&remote.public_key) == Some(k))
}

/// Why a probe did not approve, as OpenClaw logs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// ssh failed, timed out or could not be started.
    ProbeFailed,
    /// ssh succeeded but printed no identity.
    IdentityUnreadable,
    /// The host's identity is another device's.
    IdentityMismatch,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::ProbeFailed => "probe-failed",
            Refusal::IdentityUnreadable => "identity-unreadable",
            Refusal::IdentityMismatch => "identity-mismatch",
        }
    }

    fn cooldown_ms(self) -> i64 {
        match self {
            Refusal::IdentityMismatch => MISMATCH_COOLDOWN_MS,
            Refusal::ProbeFailed | Refusal::IdentityUnreadable => FAILURE_COOLDOWN_MS,
        }
    }
}

/// The identity OpenClaw's probe checks: the host and the device key asking to pair.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ProbeKey {
    pub host: String,
    pub device_id: String,
    pub public_key: String,
}

/// Which probes run and which keys cool down.
#[derive(Debug, Default)]
pub(crate) struct ProbeBook {
    in_flight: HashSet<ProbeKey>,
    /// Key → when its cooldown ends (ms).
    cooldowns: HashMap<ProbeKey, i64>,
}

impl ProbeBook {
    /// Claims `key` for a new probe, or `false` when it is already probed, cooling down, or
    /// the most probes run.
    pub fn begin(&mut self, key: &ProbeKey, now_ms: i64) -> bool {
        self.cooldowns.retain(|_, until| *until > now_ms);
        if self.in_flight.contains(key)
            || self.cooldowns.contains_key(key)
            || self.in_flight.len() >= MAX_CONCURRENT_PROBES
        {
            return false;
        }
        self.in_flight.insert(key.clone());
        true
    }

    /// Releases `key`; a refusal starts its cooldown. With the most cooldowns held, the one
    /// ending first gives way.
    pub fn finish(&mut self, key: &ProbeKey, refusal: Option<Refusal>, now_ms: i64) {
        self.in_flight.remove(key);
        let Some(refusal) = refusal else { return };
        self.cooldowns
            .insert(key.clone(), now_ms + refusal.cooldown_ms());
        while self.cooldowns.len() > MAX_COOLDOWN_ENTRIES {
            let Some(first) = self
                .cooldowns
                .iter()
                .min_by_key(|(_, until)| **until)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            self.cooldowns.remove(&first);
        }
    }
}

/// The probes of one gateway: their bookkeeping and the token that stops them at shutdown.
#[derive(Debug, Default)]
pub(crate) struct Probes {
    book: Mutex<ProbeBook>,
    shutdown: CancellationToken,
}

impl Probes {
    pub fn begin(&self, key: &ProbeKey) -> bool {
        self.book
            .lock()
            .expect("probe book")
            .begin(key, crate::now_ms())
    }

    pub fn finish(&self, key: &ProbeKey, refusal: Option<Refusal>) {
        self.book
            .lock()
            .expect("probe book")
            .finish(key, refusal, crate::now_ms());
    }

    /// Stops every running probe (their ssh is killed).
    pub fn shut_down(&self) {
        self.shutdown.cancel();
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

/// Runs one probe of `key.host` and checks what it read. `Ok` means the host is that device.
pub(crate) async fn probe(policy: &SshVerifyPolicy, key: &ProbeKey) -> Result<(), Refusal> {
    let stdout = match run_ssh(policy, &key.host).await {
        Ok(stdout) => stdout,
        Err(why) => {
            tracing::debug!("node pairing ssh-verify probe of {}: {why}", key.host);
            return Err(Refusal::ProbeFailed);
        }
    };
    let identities = parse_remote_identities(&stdout);
    if identities.is_empty() {
        return Err(Refusal::IdentityUnreadable);
    }
    if identities
        .iter()
        .any(|r| is_same_device(r, &key.device_id, &key.public_key))
    {
        Ok(())
    } else {
        Err(Refusal::IdentityMismatch)
    }
}

/// ssh's standard output when it exits 0 within the time limit; ssh is killed at the limit.
async fn run_ssh(policy: &SshVerifyPolicy, host: &str) -> Result<String, String> {
    let mut child = tokio::process::Command::new(&policy.ssh_bin)
        .args(policy.ssh_args(host))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", policy.ssh_bin.display()))?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    // Dropping this future (at the time limit) drops the child, which kills ssh.
    let finished = async move {
        let (out, err, status) = tokio::join!(read_head(stdout), read_head(stderr), child.wait());
        (out, err, status)
    };
    let limit = Duration::from_millis(policy.timeout_ms.max(MIN_TIMEOUT_MS));
    let (out, err, status) = tokio::time::timeout(limit, finished)
        .await
        .map_err(|_| format!("timed out after {} ms", limit.as_millis()))?;
    let status = status.map_err(|e| e.to_string())?;
    if status.success() {
        Ok(out)
    } else {
        Err(format!("ssh {status}: {}", err.trim()))
    }
}

/// The first [`MAX_PROBE_OUTPUT_BYTES`] of a pipe, reading (and dropping) the rest so the
/// writer never blocks.
async fn read_head(pipe: Option<impl AsyncRead + Unpin>) -> String {
    let Some(mut pipe) = pipe else {
        return String::new();
    };
    let mut head = Vec::new();
    let _ = (&mut pipe)
        .take(MAX_PROBE_OUTPUT_BYTES)
        .read_to_end(&mut head)
        .await;
    let _ = tokio::io::copy(&mut pipe, &mut tokio::io::sink()).await;
    String::from_utf8_lossy(&head).into_owned()
}

/// A pending request a probe may approve, and what the audit line names.
#[derive(Debug)]
pub(crate) struct Candidate {
    pub request_id: String,
    pub key: ProbeKey,
    pub client_ip: IpAddr,
    pub client_id: String,
    pub conn_id: String,
}

/// Probes `candidate`'s host in the background and approves its request on a match. Does
/// nothing when that key is probed already, cools down, or the most probes run: the request
/// then waits for an operator, as any other.
pub(crate) fn start(gw: &Arc<Gateway>, policy: &SshVerifyPolicy, candidate: Candidate) {
    if !gw.ssh_probes.begin(&candidate.key) {
        return;
    }
    let gw = gw.clone();
    let policy = policy.clone();
    let shutdown = gw.ssh_probes.shutdown_token();
    tokio::spawn(async move {
        let key = &candidate.key;
        let outcome = tokio::select! {
            outcome = probe(&policy, key) => outcome,
            // Dropping the probe kills its ssh.
            _ = shutdown.cancelled() => return,
        };
        gw.ssh_probes.finish(key, outcome.err());
        if let Err(refusal) = outcome {
            tracing::info!(
                "node pairing ssh-verify did not approve device={} host={} reason={}",
                key.device_id,
                key.host,
                refusal.as_str()
            );
            return;
        }
        let approved = gw
            .pairing
            .approve_ssh_verified(
                &candidate.request_id,
                &key.device_id,
                &key.public_key,
                crate::now_ms(),
            )
            .await;
        match approved {
            Ok(Some(resolved)) => {
                tracing::info!(
                    "security audit: device pairing ssh-verified auto-approve device={} ip={} sshUser={} client={} conn={}",
                    key.device_id,
                    candidate.client_ip,
                    policy.user,
                    candidate.client_id,
                    candidate.conn_id
                );
                gw.registry.broadcast("device.pair.resolved", &resolved);
            }
            Ok(None) => tracing::info!(
                "node pairing ssh-verify approval skipped device={} (request superseded or already resolved)",
                key.device_id
            ),
            Err(e) => tracing::warn!(
                "node pairing ssh-verify failed device={}: {e}",
                key.device_id
            ),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SshVerifyConfig {
        SshVerifyConfig::default()
    }

    fn policy(cidrs: &[&str]) -> SshVerifyPolicy {
        let cidrs = cidrs.iter().map(|c| c.parse().unwrap()).collect();
        SshVerifyPolicy::resolve(&config(), cidrs, Some("gw".into()), "/usr/bin/ssh".into())
            .unwrap()
    }

    #[test]
    fn policy_resolution() {
        let ssh = PathBuf::from("/usr/bin/ssh");
        let on = SshVerifyPolicy::resolve(&config(), Vec::new(), Some("gw".into()), ssh.clone());
        assert_eq!(
            on,
            Some(SshVerifyPolicy {
                user: "gw".into(),
                identity: None,
                timeout_ms: 7000,
                cidrs: None,
                ssh_bin: ssh.clone(),
            })
        );
        let off = SshVerifyConfig {
            enabled: false,
            ..config()
        };
        assert_eq!(
            SshVerifyPolicy::resolve(&off, Vec::new(), Some("gw".into()), ssh.clone()),
            None
        );
        // No user anywhere: off.
        assert_eq!(
            SshVerifyPolicy::resolve(&config(), Vec::new(), None, ssh.clone()),
            None
        );
        let object = SshVerifyConfig {
            enabled: true,
            user: Some("ops".into()),
            identity: Some("/keys/probe".into()),
            timeout_ms: Some(100),
            cidrs: vec!["203.0.113.0/24".into()],
        };
        let cidr: Cidr = "203.0.113.0/24".parse().unwrap();
        let p = SshVerifyPolicy::resolve(&object, vec![cidr], None, ssh.clone()).unwrap();
        assert_eq!(p.user, "ops");
        assert_eq!(p.identity.as_deref(), Some("/keys/probe"));
        assert_eq!(p.timeout_ms, 100);
        assert_eq!(p.cidrs, Some(vec![cidr]));
    }

    #[test]
    fn probed_addresses() {
        let default = policy(&[]);
        for (ip, want) in [
            ("10.1.2.3", Some("10.1.2.3")),
            ("192.168.1.9", Some("192.168.1.9")),
            ("172.16.0.1", Some("172.16.0.1")),
            ("100.64.0.7", Some("100.64.0.7")),
            ("::ffff:10.0.0.5", Some("10.0.0.5")),
            ("fd00::1", Some("fd00::1")),
            ("127.0.0.1", None),
            ("::1", None),
            ("8.8.8.8", None),
            ("2001:db8::1", None),
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(default.probe_host(ip).as_deref(), want, "{ip}");
        }
        // Listed CIDRs replace the default ranges, public ones and loopback included.
        let listed = policy(&["203.0.113.0/24", "127.0.0.1"]);
        for (ip, want) in [
            ("203.0.113.4", true),
            ("127.0.0.1", true),
            ("10.1.2.3", false),
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(listed.probe_host(ip).is_some(), want, "{ip}");
        }
    }

    #[test]
    fn ssh_argv_is_openclaws() {
        let mut p = policy(&[]);
        let base = [
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
            "-o",
            "NumberOfPasswordPrompts=0",
            "-o",
            "PreferredAuthentications=publickey",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "UpdateHostKeys=no",
            "-a",
            "-x",
            "-o",
            "ForwardAgent=no",
            "-o",
            "ForwardX11=no",
            "-o",
            "ForwardX11Trusted=no",
            "-o",
            "ClearAllForwardings=yes",
            "-o",
            "ExitOnForwardFailure=yes",
            "-p",
            "22",
        ];
        let remote = "sh -lc 'status=1; for cli in clawgate openclaw; do if command -v \"$cli\" >/dev/null 2>&1; then \"$cli\" node identity --json && status=0; fi; done; exit $status'";
        let mut want: Vec<&str> = base.to_vec();
        want.extend(["--", "gw@10.0.0.5", remote]);
        assert_eq!(p.ssh_args("10.0.0.5"), want);
        p.identity = Some("/keys/probe".into());
        let mut want: Vec<&str> = base.to_vec();
        want.extend([
            "-i",
            "/keys/probe",
            "-o",
            "IdentitiesOnly=yes",
            "--",
            "gw@10.0.0.5",
            remote,
        ]);
        assert_eq!(p.ssh_args("10.0.0.5"), want);
    }

    #[test]
    fn identity_output_parsing() {
        let out = "Welcome to host\nclawgate: not found\n{\"deviceId\":\" abc \",\"publicKey\":\"KEY\"}\n{broken\n{\"deviceId\":1,\"publicKey\":\"x\"}\n  {\"deviceId\":\"def\",\"publicKey\":\"KEY2\",\"extra\":true}\n";
        assert_eq!(
            parse_remote_identities(out),
            vec![
                RemoteIdentity {
                    device_id: "abc".into(),
                    public_key: "KEY".into()
                },
                RemoteIdentity {
                    device_id: "def".into(),
                    public_key: "KEY2".into()
                },
            ]
        );
        assert!(parse_remote_identities("deviceId:  abc\npublicKey: KEY\n").is_empty());
    }

    #[test]
    fn same_device_compares_keys_in_any_encoding() {
        let public = |seed: u8| {
            ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
                .verifying_key()
                .to_bytes()
        };
        let key = clawgate_protocol::device::b64url(&public(7));
        let padded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, public(7));
        let remote = RemoteIdentity {
            device_id: "dev".into(),
            public_key: padded,
        };
        assert!(is_same_device(&remote, "dev", &key));
        assert!(!is_same_device(&remote, "other", &key));
        let other = clawgate_protocol::device::b64url(&public(8));
        assert!(!is_same_device(&remote, "dev", &other));
        assert!(!is_same_device(&remote, "dev", "not a key"));
    }

    fn key(n: u8) -> ProbeKey {
        ProbeKey {
            host: format!("10.0.0.{n}"),
            device_id: format!("dev-{n}"),
            public_key: format!("key-{n}"),
        }
    }

    #[test]
    fn one_probe_per_key_and_at_most_four() {
        let mut book = ProbeBook::default();
        assert!(book.begin(&key(1), 0));
        assert!(!book.begin(&key(1), 0), "already in flight");
        for n in 2..=4 {
            assert!(book.begin(&key(n), 0));
        }
        assert!(!book.begin(&key(5), 0), "four run already");
        book.finish(&key(2), None, 1);
        assert!(book.begin(&key(5), 1));
        // A success leaves no cooldown.
        book.finish(&key(5), None, 2);
        assert!(book.begin(&key(5), 2));
    }

    #[test]
    fn refusals_cool_down() {
        let mut book = ProbeBook::default();
        assert!(book.begin(&key(1), 0));
        book.finish(&key(1), Some(Refusal::ProbeFailed), 0);
        assert!(!book.begin(&key(1), 59_999));
        assert!(book.begin(&key(1), 60_000));
        book.finish(&key(1), Some(Refusal::IdentityUnreadable), 60_000);
        assert!(!book.begin(&key(1), 119_999));
        assert!(book.begin(&key(1), 120_000));
        book.finish(&key(1), Some(Refusal::IdentityMismatch), 120_000);
        assert!(!book.begin(&key(1), 419_999));
        assert!(book.begin(&key(1), 420_000));
    }

    #[test]
    fn cooldowns_are_capped() {
        let mut book = ProbeBook::default();
        for n in 0..(MAX_COOLDOWN_ENTRIES as i64 + 10) {
            let k = ProbeKey {
                host: "10.0.0.1".into(),
                device_id: format!("dev-{n}"),
                public_key: String::new(),
            };
            book.finish(&k, Some(Refusal::ProbeFailed), n);
        }
        assert_eq!(book.cooldowns.len(), MAX_COOLDOWN_ENTRIES);
        // The ones ending first gave way.
        let first = ProbeKey {
            host: "10.0.0.1".into(),
            device_id: "dev-0".into(),
            public_key: String::new(),
        };
        assert!(!book.cooldowns.contains_key(&first));
    }

    /// The probe's time limit kills ssh: a stand-in that never answers is given up on.
    #[tokio::test]
    async fn a_probe_that_hangs_is_killed_at_its_limit() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("ssh");
        std::fs::write(&fake, "#!/bin/sh\nexec sleep 30\n").unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let mut p = policy(&[]);
        p.ssh_bin = fake;
        p.timeout_ms = 1;
        let started = std::time::Instant::now();
        let result = probe(&p, &key(1)).await;
        assert_eq!(result, Err(Refusal::ProbeFailed));
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_secs(10),
            "{took:?}"
        );
    }
}
