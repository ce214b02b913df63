//! Starting, timing and stopping the two gateways, each in a private home.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use serde_json::json;
use tokio_tungstenite::tungstenite;

use crate::proc;
use crate::ws::{Auth, Client, connect_params};

/// How long a gateway may take to accept its first connect.
pub const START_DEADLINE: Duration = Duration::from_secs(120);
/// How long a gateway gets to exit after SIGTERM.
pub const STOP_GRACE: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Clawgate,
    OpenClaw,
}

impl Kind {
    pub fn key(self) -> &'static str {
        match self {
            Kind::Clawgate => "clawgate",
            Kind::OpenClaw => "openclaw",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Kind::Clawgate => "clawgate",
            Kind::OpenClaw => "OpenClaw",
        }
    }
}

/// A private directory for one gateway or CLI: `home/`, `state/`, `tmp/`, and for OpenClaw a
/// config file that keeps it offline and logging into this directory.
pub struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    pub fn new(kind: Kind) -> anyhow::Result<Home> {
        Home::with_config(kind, &json!({}))
    }

    /// A home whose config also holds `extra` (merged over OpenClaw's offline settings; for
    /// clawgate a config file holding just `extra`, none when it is empty).
    pub fn with_config(kind: Kind, extra: &serde_json::Value) -> anyhow::Result<Home> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("clawgate-bench-{}-", kind.key()))
            .tempdir()
            .context("creating a private home")?;
        for sub in ["home", "state", "tmp"] {
            std::fs::create_dir_all(dir.path().join(sub))?;
        }
        let home = Home { dir };
        let config = match kind {
            Kind::OpenClaw => {
                let mut config = json!({
                    "logging": {"file": home.root().join("openclaw.log")},
                    "update": {"checkOnStart": false},
                    "models": {"catalogRefresh": {"enabled": false}},
                });
                clawgate_testkit::merge_json(&mut config, extra);
                Some(config)
            }
            Kind::Clawgate => extra
                .as_object()
                .is_some_and(|o| !o.is_empty())
                .then(|| extra.clone()),
        };
        if let Some(config) = config {
            std::fs::write(home.config_path(), serde_json::to_string_pretty(&config)?)?;
            std::fs::set_permissions(home.config_path(), std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(home)
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn state_dir(&self) -> PathBuf {
        self.root().join("state")
    }

    fn config_path(&self) -> PathBuf {
        self.root().join("config.json5")
    }

    /// Environment for a process of `kind` living in this home; inherited `OPENCLAW_*` and
    /// `CLAWGATE_*` settings are removed first.
    pub fn apply(&self, kind: Kind, cmd: &mut Command) {
        for (k, _) in std::env::vars_os() {
            let scrub = k.to_str().is_some_and(|k| {
                k.starts_with("OPENCLAW_")
                    || k.starts_with("CLAWGATE_")
                    || k.eq_ignore_ascii_case("npm_config_registry")
            });
            if scrub {
                cmd.env_remove(k);
            }
        }
        let home = self.root().join("home");
        cmd.env("HOME", &home)
            .env("TMPDIR", self.root().join("tmp"))
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_CACHE_HOME", home.join(".cache"))
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("XDG_STATE_HOME", home.join(".local/state"))
            .current_dir(self.root());
        if kind == Kind::Clawgate && self.config_path().exists() {
            cmd.env("CLAWGATE_CONFIG_PATH", self.config_path());
        }
        if kind == Kind::OpenClaw {
            cmd.env("OPENCLAW_STATE_DIR", self.state_dir())
                .env("OPENCLAW_CONFIG_PATH", self.config_path())
                .env("OPENCLAW_NO_AUTO_UPDATE", "1")
                .env("OPENCLAW_DISABLE_BONJOUR", "1")
                // A dead loopback port: registry lookups fail at once.
                .env("NPM_CONFIG_REGISTRY", "http://127.0.0.1:9");
        }
    }

    fn log(&self, name: &str) -> PathBuf {
        self.root().join(name)
    }

    /// The last lines of the gateway's stdout and stderr, for error messages.
    pub fn log_tail(&self) -> String {
        self.tail(&["gateway.stdout.log", "gateway.stderr.log"], 15)
    }

    /// The last `n` lines of each of these logs.
    fn tail(&self, names: &[&str], n: usize) -> String {
        let mut out = String::new();
        for name in names {
            let text = std::fs::read_to_string(self.log(name)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(n)..];
            out.push_str(&format!("--- {name}\n{}\n", tail.join("\n")));
        }
        out
    }
}

/// A free loopback port (bound, then released).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// How to run one gateway.
#[derive(Debug, Clone)]
pub struct Launcher {
    pub kind: Kind,
    pub bin: PathBuf,
    pub token: String,
}

/// Times from exec to the first success of each readiness check, in seconds.
#[derive(Debug, Clone, Copy)]
pub struct StartTimes {
    pub healthz: f64,
    pub hello: f64,
}

/// A gateway process (and its tree) that this run started.
pub struct Running {
    child: Child,
    pub pid: u32,
    pub addr: SocketAddr,
}

impl Launcher {
    fn command(&self, home: &Home, port: u16) -> anyhow::Result<Command> {
        let mut cmd = Command::new(&self.bin);
        let port = port.to_string();
        match self.kind {
            Kind::Clawgate => {
                cmd.args(["gateway", "run", "--port", &port, "--token", &self.token])
                    .arg("--state-dir")
                    .arg(home.state_dir());
            }
            Kind::OpenClaw => {
                cmd.args(["gateway", "run", "--port", &port, "--bind", "loopback"])
                    .args(["--auth", "token", "--token", &self.token])
                    .arg("--allow-unconfigured");
            }
        }
        home.apply(self.kind, &mut cmd);
        cmd.process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::from(File::create(home.log("gateway.stdout.log"))?))
            .stderr(Stdio::from(File::create(home.log("gateway.stderr.log"))?));
        Ok(cmd)
    }

    /// Starts the gateway in `home` and measures exec → `/healthz` 200 and exec → hello-ok,
    /// polling both at once (every 250 µs at first, backing off to 50 ms after 5 s).
    pub fn start_timed(&self, home: &Home) -> anyhow::Result<(Running, StartTimes)> {
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut cmd = self.command(home, port)?;
        let t0 = Instant::now();
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        let pid = child.id();
        let mut running = Running { child, pid, addr };
        let abort = AtomicBool::new(false);
        let (healthz, hello, exited) = std::thread::scope(|s| {
            let h = s.spawn(|| poll_until(t0, &abort, || healthz_ok(addr)));
            let w = s.spawn(|| poll_until(t0, &abort, || hello_ok_sync(addr, &self.token)));
            let mut exited = None;
            while !(h.is_finished() && w.is_finished()) {
                if let Ok(Some(status)) = running.child.try_wait() {
                    exited = Some(status);
                    abort.store(true, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            let join = |r: std::thread::Result<anyhow::Result<f64>>| {
                r.unwrap_or_else(|_| Err(anyhow!("poller panicked")))
            };
            (join(h.join()), join(w.join()), exited)
        });
        let result = match (healthz, hello) {
            (Ok(healthz), Ok(hello)) => Ok(StartTimes { healthz, hello }),
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        match result {
            Ok(times) => Ok((running, times)),
            Err(e) => {
                running.stop();
                let why = match exited {
                    Some(status) => format!("exited with {status}"),
                    None => format!("{e:#}"),
                };
                bail!(
                    "{} did not become ready: {why}\n{}",
                    self.kind.label(),
                    home.log_tail()
                )
            }
        }
    }
}

impl Running {
    /// SIGTERM to the whole tree, SIGKILL after [`STOP_GRACE`]. True if it exited in time.
    pub fn stop(&mut self) -> bool {
        let clean = proc::stop_tree(self.pid, STOP_GRACE);
        let _ = self.child.wait();
        clean
    }

    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.is_alive() {
            self.stop();
        }
    }
}

/// The real OpenClaw node host (`openclaw node run`) connected to a gateway, in its own home
/// and process group; stopped with its tree when dropped.
pub struct NodeHost {
    child: Child,
    pub pid: u32,
    home: Home,
}

impl NodeHost {
    /// Starts `openclaw node run` against the gateway at `addr` with the shared token, under
    /// the display name `name`.
    pub fn spawn(
        openclaw: &Path,
        addr: SocketAddr,
        token: &str,
        name: &str,
    ) -> anyhow::Result<NodeHost> {
        let home = Home::new(Kind::OpenClaw)?;
        let mut cmd = Command::new(openclaw);
        cmd.args(["node", "run", "--host", &addr.ip().to_string(), "--port"])
            .arg(addr.port().to_string())
            .args(["--display-name", name]);
        home.apply(Kind::OpenClaw, &mut cmd);
        cmd.env("OPENCLAW_GATEWAY_TOKEN", token)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::from(File::create(home.log("node.stdout.log"))?))
            .stderr(Stdio::from(File::create(home.log("node.stderr.log"))?));
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {} node run", openclaw.display()))?;
        Ok(NodeHost {
            pid: child.id(),
            child,
            home,
        })
    }

    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last lines of its stdout and stderr, for error messages.
    pub fn log_tail(&self) -> String {
        self.home.tail(&["node.stdout.log", "node.stderr.log"], 10)
    }
}

impl Drop for NodeHost {
    fn drop(&mut self) {
        proc::stop_tree(self.pid, STOP_GRACE);
        let _ = self.child.wait();
    }
}

/// Polls `check` until it succeeds; returns the seconds since `t0`.
fn poll_until(
    t0: Instant,
    abort: &AtomicBool,
    mut check: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<f64> {
    let mut last = anyhow!("never tried");
    loop {
        match check() {
            Ok(()) => return Ok(t0.elapsed().as_secs_f64()),
            Err(e) => last = e,
        }
        let elapsed = t0.elapsed();
        if abort.load(Ordering::Relaxed) || elapsed > START_DEADLINE {
            return Err(last.context(format!("not ready after {elapsed:.1?}")));
        }
        std::thread::sleep(poll_interval(elapsed));
    }
}

/// Fine-grained polling while a fast start is possible, coarser later so that a slow start is
/// not slowed further by the polling itself.
pub fn poll_interval(elapsed: Duration) -> Duration {
    match elapsed.as_millis() {
        0..100 => Duration::from_micros(250),
        100..1000 => Duration::from_millis(2),
        1000..5000 => Duration::from_millis(10),
        _ => Duration::from_millis(50),
    }
}

/// `GET /healthz` answered with 200.
pub fn healthz_ok(addr: SocketAddr) -> anyhow::Result<()> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut buf = [0u8; 64];
    let mut got = 0;
    while got < 12 {
        let n = s.read(&mut buf[got..])?;
        if n == 0 {
            break;
        }
        got += n;
    }
    let head = String::from_utf8_lossy(&buf[..got]);
    if head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200") {
        Ok(())
    } else {
        bail!("/healthz answered {:?}", head.lines().next().unwrap_or(""))
    }
}

/// A blocking connect → hello-ok → close with the shared token (used while a gateway starts).
pub fn hello_ok_sync(addr: SocketAddr, token: &str) -> anyhow::Result<()> {
    use tungstenite::Message;
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let (mut ws, _) = tungstenite::client(format!("ws://{addr}/"), tcp)
        .map_err(|e| anyhow!("WebSocket upgrade: {e}"))?;
    let next_json =
        |ws: &mut tungstenite::WebSocket<TcpStream>| -> anyhow::Result<serde_json::Value> {
            loop {
                match ws.read()? {
                    Message::Text(t) => return Ok(serde_json::from_str(t.as_str())?),
                    Message::Close(f) => {
                        let f = f.map(|f| format!("{} {}", u16::from(f.code), f.reason.as_str()));
                        bail!("closed: {}", f.unwrap_or_default())
                    }
                    _ => {}
                }
            }
        };
    let challenge = next_json(&mut ws)?;
    let nonce = challenge["payload"]["nonce"].as_str().unwrap_or_default();
    let ts = challenge["payload"]["ts"]
        .as_i64()
        .unwrap_or_else(crate::ws::now_ms);
    let params = connect_params(Auth::Token(token), Client::CLI, nonce, ts);
    let req = json!({"type": "req", "id": "c", "method": "connect", "params": params});
    ws.send(Message::text(req.to_string()))?;
    loop {
        let frame = next_json(&mut ws)?;
        if frame["type"] == "res" && frame["id"] == "c" {
            if frame["payload"]["type"] != "hello-ok" {
                bail!("connect answered {}", frame["error"]);
            }
            break;
        }
    }
    let _ = ws.close(None);
    while ws.read().is_ok() {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_is_written_where_the_gateway_reads_it() {
        let extra = json!({"tools": {"exec": {"notifyOnExit": false}}});
        let env_of = |home: &Home, kind: Kind| {
            let mut cmd = Command::new("true");
            home.apply(kind, &mut cmd);
            cmd.get_envs()
                .filter_map(|(k, v)| Some((k.to_str()?.to_owned(), PathBuf::from(v?))))
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        // clawgate: no config file unless there is something in it.
        let plain = Home::new(Kind::Clawgate).unwrap();
        assert!(!plain.config_path().exists());
        assert!(!env_of(&plain, Kind::Clawgate).contains_key("CLAWGATE_CONFIG_PATH"));
        let cg = Home::with_config(Kind::Clawgate, &extra).unwrap();
        let env = env_of(&cg, Kind::Clawgate);
        let path = &env["CLAWGATE_CONFIG_PATH"];
        let written: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(written, extra);
        let mode = std::fs::metadata(path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // OpenClaw: merged over its offline settings.
        let oc = Home::with_config(Kind::OpenClaw, &extra).unwrap();
        let path = &env_of(&oc, Kind::OpenClaw)["OPENCLAW_CONFIG_PATH"];
        let written: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(written["tools"]["exec"]["notifyOnExit"], false);
        assert_eq!(written["update"]["checkOnStart"], false);
    }

    #[test]
    fn polling_backs_off() {
        let at = |ms| poll_interval(Duration::from_millis(ms));
        assert!(at(0) < at(500));
        assert!(at(500) < at(2000));
        assert!(at(2000) < at(60_000));
        assert_eq!(at(60_000), Duration::from_millis(50));
    }
}
