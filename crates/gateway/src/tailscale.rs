//! Tailscale Serve/Funnel: the supervised `tailscale serve|funnel --yes --bg=false <port>`
//! child that publishes the gateway's dedicated loopback listener, and whois of Serve peers
//! (tailscaled's LocalAPI over its unix socket first, then `tailscale whois --json`; results
//! cached 60 s, failures 5 s).

use rustix::process::{Pid, Signal, kill_process_group};
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long a successful whois is believed.
pub const WHOIS_CACHE_OK: Duration = Duration::from_secs(60);
/// How long a failed whois is remembered.
pub const WHOIS_CACHE_ERR: Duration = Duration::from_secs(5);
/// Budget of one whois method.
pub const WHOIS_TIMEOUT: Duration = Duration::from_secs(5);

/// Who tailscaled says is behind a tailnet address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhoisIdentity {
    pub login: String,
    pub display_name: Option<String>,
    pub profile_pic: Option<String>,
    /// `LocalAPI` or `CLI`.
    pub source: &'static str,
}

/// A cached whois answer and when it was fetched.
type CacheEntry = (Instant, Result<WhoisIdentity, String>);

/// Whois lookups with a small cache.
pub struct Whois {
    tailscale_bin: OsString,
    socket: PathBuf,
    cache: Mutex<HashMap<IpAddr, CacheEntry>>,
}

impl Whois {
    pub fn new(tailscale_bin: OsString, socket: PathBuf) -> Self {
        Whois {
            tailscale_bin,
            socket,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The identity behind `ip`: LocalAPI first, then the CLI.
    pub async fn lookup(&self, ip: IpAddr) -> Result<WhoisIdentity, String> {
        let now = Instant::now();
        if let Some((at, r)) = self.cache.lock().expect("whois cache").get(&ip) {
            let ttl = if r.is_ok() {
                WHOIS_CACHE_OK
            } else {
                WHOIS_CACHE_ERR
            };
            if now.duration_since(*at) < ttl {
                return r.clone();
            }
        }
        let result = match self.localapi(ip).await {
            Ok(id) => Ok(id),
            Err(api_err) => self
                .cli(ip)
                .await
                .map_err(|cli_err| format!("LocalAPI: {api_err}; CLI: {cli_err}")),
        };
        let mut cache = self.cache.lock().expect("whois cache");
        if cache.len() > 4096 {
            cache.retain(|_, (at, _)| now.duration_since(*at) < WHOIS_CACHE_OK);
        }
        cache.insert(ip, (Instant::now(), result.clone()));
        result
    }

    async fn localapi(&self, ip: IpAddr) -> Result<WhoisIdentity, String> {
        let socket = self.socket.clone();
        let fut = async move {
            let mut s = tokio::net::UnixStream::connect(&socket)
                .await
                .map_err(|e| format!("{}: {e}", socket.display()))?;
            let addr = ip.to_string().replace(':', "%3A");
            let req = format!(
                "GET /localapi/v0/whois?addr={addr} HTTP/1.0\r\nHost: local-tailscaled.sock\r\nAccept: application/json\r\n\r\n"
            );
            s.write_all(req.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            let mut buf = Vec::new();
            (&mut s)
                .take(1 << 20)
                .read_to_end(&mut buf)
                .await
                .map_err(|e| e.to_string())?;
            let text = String::from_utf8_lossy(&buf);
            let (head, body) = text
                .split_once("\r\n\r\n")
                .ok_or("malformed LocalAPI answer")?;
            let status = head
                .lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .unwrap_or("");
            if status != "200" {
                return Err(format!("LocalAPI answered {status}: {}", body.trim()));
            }
            let v: serde_json::Value =
                serde_json::from_str(body).map_err(|e| format!("bad JSON: {e}"))?;
            parse_whois(&v, "LocalAPI")
        };
        tokio::time::timeout(WHOIS_TIMEOUT, fut)
            .await
            .map_err(|_| "timed out".to_owned())?
    }

    async fn cli(&self, ip: IpAddr) -> Result<WhoisIdentity, String> {
        let mut cmd = Command::new(&self.tailscale_bin);
        cmd.args(["whois", "--json"])
            .arg(ip.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let out = tokio::time::timeout(WHOIS_TIMEOUT, cmd.output())
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|e| format!("{}: {e}", self.tailscale_bin.to_string_lossy()))?;
        if !out.status.success() {
            return Err(format!(
                "tailscale whois exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).map_err(|e| format!("bad JSON: {e}"))?;
        parse_whois(&v, "CLI")
    }
}

/// `UserProfile.LoginName` (fallbacks `Login`, `login`), `DisplayName`, `ProfilePicURL`.
pub fn parse_whois(v: &serde_json::Value, source: &'static str) -> Result<WhoisIdentity, String> {
    let profile = v
        .get("UserProfile")
        .or_else(|| v.get("userProfile"))
        .unwrap_or(v);
    let text = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| profile.get(*k).and_then(|x| x.as_str()))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let login = text(&["LoginName", "Login", "login"]).ok_or("whois names no login")?;
    Ok(WhoisIdentity {
        login,
        display_name: text(&["DisplayName", "displayName"]),
        profile_pic: text(&["ProfilePicURL", "profilePicUrl"]),
        source,
    })
}

/// Serve or Funnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteMode {
    Serve,
    Funnel,
}

impl RouteMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteMode::Serve => "serve",
            RouteMode::Funnel => "funnel",
        }
    }
}

/// The argv after the binary: `serve|funnel --yes --bg=false <port>`.
pub fn route_args(mode: RouteMode, port: u16) -> Vec<String> {
    vec![
        mode.as_str().to_owned(),
        "--yes".to_owned(),
        "--bg=false".to_owned(),
        port.to_string(),
    ]
}

/// Budget of `tailscale version`.
const VERSION_TIMEOUT: Duration = Duration::from_secs(3);
/// How long to wait for tailscaled to leave `NoState`/`Starting` (or to accept connections).
pub const BACKEND_WAIT: Duration = Duration::from_secs(90);
const BACKEND_POLL: Duration = Duration::from_secs(2);

/// Runs the CLI: `(success, stdout, stderr)`, or why it could not be run.
async fn run_cli(
    bin: &OsStr,
    args: &[&str],
    timeout: Duration,
) -> Result<(bool, String, String), String> {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(timeout, cmd.output())
        .await
        .map_err(|_| format!("`tailscale {}` timed out", args.join(" ")))?
        .map_err(|e| e.to_string())?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    ))
}

/// `Self.DNSName` (trailing dot stripped) or the first `Self.TailscaleIPs` entry.
fn self_host(status: &serde_json::Value) -> Option<String> {
    let me = status.get("Self")?;
    me.get("DNSName")
        .and_then(|v| v.as_str())
        .map(|s| s.trim_end_matches('.').to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| {
            me.get("TailscaleIPs")?
                .as_array()?
                .first()?
                .as_str()
                .map(str::to_owned)
        })
}

/// Waits while tailscaled is starting (`BackendState` `NoState`/`Starting`) or refuses
/// connections, polling every 2 s for up to 90 s. Returns the last status.
async fn wait_for_backend(
    bin: &OsStr,
    shutdown: &CancellationToken,
) -> Result<Option<serde_json::Value>, RouteError> {
    let deadline = Instant::now() + BACKEND_WAIT;
    loop {
        let (state, status) = match run_cli(bin, &["status", "--json"], VERSION_TIMEOUT).await {
            Ok((_, out, err)) => match serde_json::from_str::<serde_json::Value>(&out) {
                Ok(v) => (
                    v.get("BackendState")
                        .and_then(|b| b.as_str())
                        .unwrap_or("")
                        .to_owned(),
                    Some(v),
                ),
                Err(_) => (format!("daemon not answering: {}", err.trim()), None),
            },
            Err(e) => (format!("daemon not answering: {e}"), None),
        };
        let starting = matches!(state.as_str(), "NoState" | "Starting")
            || state.starts_with("daemon not answering");
        if !starting {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            return Err(RouteError::BackendNotReady { state });
        }
        tracing::info!("tailscale: waiting for the local Tailscale daemon ({state})");
        tokio::select! {
            _ = shutdown.cancelled() => return Err(RouteError::BackendNotReady { state }),
            _ = tokio::time::sleep(BACKEND_POLL) => {}
        }
    }
}

/// An old root route (`https://<host>/` → exactly this gateway's port on 127.0.0.1 or
/// localhost) left by an earlier background `tailscale serve` is removed ("adopted"): the
/// foreground claim replaces it.
async fn adopt_legacy_route(bin: &OsStr, gateway_port: u16) {
    let Ok((true, out, _)) = run_cli(bin, &["serve", "status", "--json"], VERSION_TIMEOUT).await
    else {
        return;
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&out) else {
        return;
    };
    if legacy_root_route(&v, gateway_port) {
        let off = ["serve", "--yes", "--https=443", "--set-path=/", "off"];
        match run_cli(bin, &off, VERSION_TIMEOUT).await {
            Ok((true, _, _)) => tracing::info!(
                "tailscale: adopted the old root route to 127.0.0.1:{gateway_port} (removed; the gateway's own claim replaces it)"
            ),
            other => tracing::warn!("tailscale: could not remove the old root route: {other:?}"),
        }
    }
}

/// Whether `tailscale serve status --json` holds a root route on :443 proxying to exactly
/// `http://127.0.0.1:<port>` or `http://localhost:<port>`.
pub fn legacy_root_route(status: &serde_json::Value, gateway_port: u16) -> bool {
    let targets = [
        format!("http://127.0.0.1:{gateway_port}"),
        format!("http://localhost:{gateway_port}"),
    ];
    status
        .get("Web")
        .and_then(|w| w.as_object())
        .is_some_and(|web| {
            web.iter().any(|(host, cfg)| {
                host.ends_with(":443")
                    && cfg
                        .pointer("/Handlers/~1/Proxy")
                        .and_then(|p| p.as_str())
                        .is_some_and(|p| targets.iter().any(|t| p.trim_end_matches('/') == t))
            })
        })
}

/// How long a freshly started claim must stay up to count as started.
const SETTLE: Duration = Duration::from_millis(400);
/// SIGTERM → SIGKILL grace at stop.
const STOP_GRACE: Duration = Duration::from_secs(4);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

fn signal_group(child: &Child, signal: Signal) {
    if let Some(pid) = child
        .id()
        .and_then(|p| i32::try_from(p).ok())
        .and_then(Pid::from_raw)
    {
        let _ = kill_process_group(pid, signal);
    }
}

fn spawn_claim(bin: &OsStr, mode: RouteMode, port: u16) -> std::io::Result<Child> {
    Command::new(bin)
        .args(route_args(mode, port))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
}

async fn stderr_tail(child: &mut Child) -> String {
    let Some(mut err) = child.stderr.take() else {
        return String::new();
    };
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(
        Duration::from_millis(500),
        (&mut err).take(64 << 10).read_to_end(&mut buf),
    )
    .await;
    String::from_utf8_lossy(&buf).trim().to_owned()
}

async fn stop_child(mut child: Child) {
    signal_group(&child, Signal::TERM);
    if tokio::time::timeout(STOP_GRACE, child.wait())
        .await
        .is_err()
    {
        signal_group(&child, Signal::KILL);
        let _ = child.wait().await;
    }
}

/// Why the Tailscale route could not be claimed at start.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error(
        "gateway.tailscale.mode={mode} needs the tailscale CLI, but {bin:?} cannot be run ({err}). Install Tailscale (https://tailscale.com/download) so `tailscale` is on PATH, point CLAWGATE_TAILSCALE_BIN at it, or set gateway.tailscale.mode to off"
    )]
    MissingBinary {
        mode: &'static str,
        bin: String,
        err: String,
    },
    #[error(
        "the local Tailscale daemon is not ready after 90 s ({state}); start it (`sudo systemctl start tailscaled`, then `tailscale up`) or set gateway.tailscale.mode to off"
    )]
    BackendNotReady { state: String },
    #[error("`tailscale {args}` exited at once ({status}){detail}")]
    ClaimFailed {
        args: String,
        status: String,
        detail: String,
    },
}

/// Starts `tailscale serve|funnel --yes --bg=false <port>` in its own process group and
/// supervises it until `shutdown`: a claim that dies is restarted with backoff (1 s doubling
/// to 30 s); at shutdown the group gets SIGTERM, then SIGKILL after 4 s. The returned task ends
/// once the child is gone. Fails when the binary is missing or the first claim exits at once.
pub async fn start_route_owner(
    bin: OsString,
    mode: RouteMode,
    port: u16,
    gateway_port: u16,
    shutdown: CancellationToken,
) -> Result<JoinHandle<()>, RouteError> {
    let args = route_args(mode, port).join(" ");
    let missing = |err: String| RouteError::MissingBinary {
        mode: mode.as_str(),
        bin: bin.to_string_lossy().into_owned(),
        err,
    };
    match run_cli(&bin, &["version"], VERSION_TIMEOUT).await {
        Err(e) => return Err(missing(e)),
        Ok((false, _, err)) => return Err(missing(format!("`tailscale version` failed: {err}"))),
        Ok(_) => {}
    }
    let status = wait_for_backend(&bin, &shutdown).await?;
    adopt_legacy_route(&bin, gateway_port).await;
    let mut child = spawn_claim(&bin, mode, port).map_err(|e| RouteError::MissingBinary {
        mode: mode.as_str(),
        bin: bin.to_string_lossy().into_owned(),
        err: e.to_string(),
    })?;
    if let Ok(status) = tokio::time::timeout(SETTLE, child.wait()).await {
        let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
        let tail = stderr_tail(&mut child).await;
        return Err(RouteError::ClaimFailed {
            args,
            status,
            detail: if tail.is_empty() {
                String::new()
            } else {
                format!(": {tail}")
            },
        });
    }
    tracing::info!(
        "tailscale: {} route claimed (`tailscale {args}`, pid {})",
        mode.as_str(),
        child.id().unwrap_or(0)
    );
    if let Some(host) = status.as_ref().and_then(self_host) {
        tracing::info!(
            "tailscale: {} enabled: https://{host}/ (WS via wss://{host})",
            mode.as_str()
        );
    }
    Ok(tokio::spawn(async move {
        let mut backoff = Duration::from_secs(1);
        loop {
            let started = Instant::now();
            tokio::select! {
                _ = shutdown.cancelled() => {
                    stop_child(child).await;
                    tracing::info!("tailscale: {} route released", mode.as_str());
                    return;
                }
                status = child.wait() => {
                    let tail = stderr_tail(&mut child).await;
                    if started.elapsed() > MAX_BACKOFF * 2 {
                        backoff = Duration::from_secs(1);
                    }
                    tracing::warn!(
                        "tailscale: {} route claim exited ({}){}; managed Tailscale ingress is unavailable, restarting in {} s",
                        mode.as_str(),
                        status.map_or_else(|e| e.to_string(), |s| s.to_string()),
                        if tail.is_empty() { String::new() } else { format!(": {tail}") },
                        backoff.as_secs()
                    );
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
            child = loop {
                match spawn_claim(&bin, mode, port) {
                    Ok(c) => break c,
                    Err(e) => {
                        tracing::warn!("tailscale: cannot restart `tailscale {args}`: {e}");
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            };
            tracing::info!("tailscale: {} route claimed again", mode.as_str());
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whois_json_shapes() {
        let v = serde_json::json!({"Node": {"Name": "box"}, "UserProfile": {"LoginName": "Alice@Example.com", "DisplayName": "Alice"}});
        let id = parse_whois(&v, "CLI").unwrap();
        assert_eq!(id.login, "Alice@Example.com");
        assert_eq!(id.display_name.as_deref(), Some("Alice"));
        assert!(parse_whois(&serde_json::json!({"UserProfile": {}}), "CLI").is_err());
        let serve = serde_json::json!({"Web": {"gw.tail1234.ts.net:443": {"Handlers": {"/": {"Proxy": "http://127.0.0.1:18789"}}}}});
        assert!(legacy_root_route(&serve, 18789));
        assert!(!legacy_root_route(&serve, 18790));
        assert_eq!(
            self_host(
                &serde_json::json!({"Self": {"DNSName": "gw.tail1234.ts.net.", "TailscaleIPs": ["100.1.2.3"]}})
            ),
            Some("gw.tail1234.ts.net".to_owned())
        );
        assert_eq!(
            route_args(RouteMode::Funnel, 4242),
            ["funnel", "--yes", "--bg=false", "4242"]
        );
    }
}
