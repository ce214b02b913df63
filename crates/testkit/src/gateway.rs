//! A real OpenClaw gateway process for interop tests.

use std::ffi::OsString;
use std::fs::File;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::cli::CliCommand;
use crate::home::IsolatedHome;
use crate::net::free_port;
use crate::openclaw::OpenClaw;
use crate::process::{DROP_GRACE, kill_group, kill_tree, kill_tree_async, register, unregister};
use crate::ws::{FRAME_TIMEOUT, RawWs, WsError};

/// How long a real gateway may take to accept a connect and answer `health`.
pub const START_DEADLINE: Duration = Duration::from_secs(90);

/// How many fresh ports to try when the picked one was taken meanwhile.
const PORT_ATTEMPTS: usize = 3;

/// Options for [`RealGateway::start_with`].
#[derive(Clone, Debug, Default)]
pub struct GatewayOptions {
    /// Merged over the base OpenClaw config of the gateway's private home.
    pub config: Option<Value>,
    /// Extra arguments after `gateway run …`.
    pub args: Vec<OsString>,
    /// Extra environment variables.
    pub env: Vec<(OsString, OsString)>,
}

/// A running `openclaw gateway run` on 127.0.0.1 with shared-token auth, in
/// its own private home. Its stdout and stderr go to files in that home.
/// Dropping it stops the whole process tree.
#[derive(Debug)]
pub struct RealGateway {
    child: Child,
    pid: u32,
    port: u16,
    token: String,
    home: IsolatedHome,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    oc: OpenClaw,
}

impl RealGateway {
    /// Starts a gateway with token `token` and waits until a WebSocket
    /// `connect` with that token succeeds and `health` answers ok. Panics
    /// (with the gateway's output) if it does not within 90 s.
    pub async fn start(oc: &OpenClaw, token: &str) -> Self {
        Self::start_with(oc, token, GatewayOptions::default()).await
    }

    /// [`RealGateway::start`] with extra config, arguments or environment.
    pub async fn start_with(oc: &OpenClaw, token: &str, options: GatewayOptions) -> Self {
        let mut last_failure = String::new();
        for _ in 0..PORT_ATTEMPTS {
            match Self::try_start(oc, token, &options).await {
                Ok(gw) => return gw,
                Err((failure, port_taken)) => {
                    if !port_taken {
                        panic!("{failure}");
                    }
                    last_failure = failure;
                }
            }
        }
        panic!("{last_failure}");
    }

    /// One attempt on a fresh port. The error says whether the port was taken
    /// (worth another attempt).
    async fn try_start(
        oc: &OpenClaw,
        token: &str,
        options: &GatewayOptions,
    ) -> Result<Self, (String, bool)> {
        let home = IsolatedHome::for_openclaw(options.config.as_ref().unwrap_or(&json!({})));
        let port = free_port();
        let stdout_path = home.root().join("gateway.stdout.log");
        let stderr_path = home.root().join("gateway.stderr.log");
        let open = |p: &PathBuf| {
            File::create(p).unwrap_or_else(|e| panic!("creating {}: {e}", p.display()))
        };

        let mut cmd = Command::new(oc.bin());
        cmd.args([
            "gateway",
            "run",
            "--port",
            &port.to_string(),
            "--bind",
            "loopback",
        ])
        .args(["--auth", "token", "--token", token, "--allow-unconfigured"])
        .args(&options.args);
        home.apply(&mut cmd);
        for (k, v) in &options.env {
            cmd.env(k, v);
        }
        cmd.process_group(0)
            .kill_on_drop(true)
            .stdin(Stdio::null())
            .stdout(Stdio::from(open(&stdout_path)))
            .stderr(Stdio::from(open(&stderr_path)));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", oc.bin().display()));
        let pid = child.id().expect("gateway child has a pid");
        register(pid);
        let mut gw = Self {
            child,
            pid,
            port,
            token: token.to_owned(),
            home,
            stdout_path,
            stderr_path,
            oc: oc.clone(),
        };

        let started = Instant::now();
        let deadline = started + START_DEADLINE;
        let mut last_error;
        loop {
            if let Ok(Some(status)) = gw.child.try_wait() {
                let logs = gw.logs();
                let port_taken =
                    logs.contains("EADDRINUSE") || logs.contains("address already in use");
                return Err((
                    format!("real gateway exited with {status} before it was ready\n{logs}"),
                    port_taken,
                ));
            }
            match gw.probe().await {
                Ok(()) => return Ok(gw),
                Err(e) => last_error = e.to_string(),
            }
            if Instant::now() >= deadline {
                let failure = format!(
                    "real gateway not ready after {:?} (last attempt: {last_error})\n{}",
                    started.elapsed(),
                    gw.logs()
                );
                return Err((failure, false));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Connects with the token (`operator.read`) and asks for `health`.
    async fn probe(&self) -> Result<(), WsError> {
        let (mut ws, _) =
            RawWs::connect_operator(&self.url(), &self.token, &["operator.read"]).await?;
        let res = ws.request("health", json!({}), FRAME_TIMEOUT).await?;
        ws.close().await;
        if res["payload"]["ok"] == false {
            return Err(WsError::Protocol(format!("health not ok: {res}")));
        }
        Ok(())
    }

    /// `ws://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// The gateway process's pid (also its process group id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The gateway's private home.
    pub fn home(&self) -> &IsolatedHome {
        &self.home
    }

    /// File receiving the gateway's stdout.
    pub fn stdout_path(&self) -> &PathBuf {
        &self.stdout_path
    }

    /// File receiving the gateway's stderr.
    pub fn stderr_path(&self) -> &PathBuf {
        &self.stderr_path
    }

    /// The gateway's own log file (`logging.file`).
    pub fn log_file(&self) -> PathBuf {
        self.home.log_file()
    }

    /// The gateway's stdout and stderr so far, for failure messages.
    pub fn logs(&self) -> String {
        let read = |p: &PathBuf| std::fs::read_to_string(p).unwrap_or_default();
        format!(
            "--- gateway stdout ({})\n{}\n--- gateway stderr ({})\n{}",
            self.stdout_path.display(),
            read(&self.stdout_path),
            self.stderr_path.display(),
            read(&self.stderr_path)
        )
    }

    /// Config for a CLI that talks to this gateway:
    /// `{gateway: {mode: "remote", remote: {url, token}}}`.
    pub fn remote_config(&self) -> Value {
        json!({ "gateway": { "mode": "remote", "remote": { "url": self.url(), "token": self.token } } })
    }

    /// An `openclaw …` run (fresh private home) configured with
    /// [`RealGateway::remote_config`].
    pub fn cli<'h>(&self) -> CliCommand<'h> {
        self.oc.cli().config(self.remote_config())
    }

    /// A raw operator connection with the gateway's token.
    pub async fn connect(&self, scopes: &[&str]) -> Result<(RawWs, Value), WsError> {
        RawWs::connect_operator(&self.url(), &self.token, scopes).await
    }

    /// Stops the gateway (SIGTERM to its tree, SIGKILL after `grace`).
    pub async fn stop(mut self, grace: Duration) {
        if let Ok(None) = self.child.try_wait() {
            kill_tree_async(self.pid, grace).await;
        }
        // Drop sweeps up anything left.
    }
}

impl Drop for RealGateway {
    fn drop(&mut self) {
        match self.child.try_wait() {
            Ok(None) => kill_tree(self.pid, DROP_GRACE),
            _ => kill_group(self.pid, DROP_GRACE),
        }
        unregister(self.pid);
    }
}
