//! The project's own `clawgate` binary, run the way a user would.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::process::Command;

use crate::cli::{CliCommand, Flavor};
use crate::home::IsolatedHome;
use crate::process::ChildProcess;

/// Default time a clawgate gateway gets to print its readiness line.
pub const GATEWAY_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The text a clawgate gateway prints (on stderr) once it accepts
/// connections, followed by its URL: `clawgate gateway listening on
/// ws://127.0.0.1:PORT`.
pub const READY_MARKER: &str = "listening on ws://";

/// The built `clawgate` binary. Tests in the cli crate use
/// `ClawgateBin::new(env!("CARGO_BIN_EXE_clawgate"))`.
#[derive(Clone, Debug)]
pub struct ClawgateBin {
    path: PathBuf,
}

impl ClawgateBin {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A builder for one `clawgate …` run to completion in a fresh private
    /// home (no config file unless `.config(…)` is given, written as is).
    pub fn cli<'h>(&self) -> CliCommand<'h> {
        CliCommand::new(self.path.clone(), Flavor::Clawgate)
    }

    /// A `tokio` command for the binary with `home`'s environment applied.
    pub fn command(&self, home: &IsolatedHome) -> Command {
        let mut cmd = Command::new(&self.path);
        home.apply(&mut cmd);
        cmd
    }

    /// Starts `clawgate <args>` in `home` (in its own process group, output
    /// collected line by line, tree stopped on drop).
    pub fn spawn<I, S, E, K, V>(
        &self,
        home: &IsolatedHome,
        args: I,
        env: E,
    ) -> anyhow::Result<ChildProcess>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
        E: IntoIterator<Item = (K, V)>,
        K: Into<OsString>,
        V: Into<OsString>,
    {
        let mut cmd = self.command(home);
        cmd.args(args.into_iter().map(Into::into));
        for (k, v) in env {
            cmd.env(k.into(), v.into());
        }
        ChildProcess::spawn(cmd, format!("clawgate ({})", self.path.display()))
    }

    /// Starts a clawgate gateway (`args` is the whole command line, e.g.
    /// `["gateway", "run", "--port", "0", "--auth", "token", "--token", T]`)
    /// in a fresh private home and waits for its readiness line.
    pub async fn spawn_gateway<I, S, E, K, V>(
        &self,
        args: I,
        env: E,
    ) -> anyhow::Result<ClawgateGateway>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
        E: IntoIterator<Item = (K, V)>,
        K: Into<OsString>,
        V: Into<OsString>,
    {
        self.spawn_gateway_in(IsolatedHome::new(), args, env).await
    }

    /// `gateway run` on a free port with `token` as its shared token, in a fresh home whose
    /// config file is `config`, logging warnings only; panics with its output if it does not
    /// come up.
    pub async fn start_token_gateway(
        &self,
        config: &serde_json::Value,
        token: &str,
    ) -> ClawgateGateway {
        let home = IsolatedHome::new();
        home.write_config(config);
        self.spawn_gateway_in(
            home,
            ["gateway", "run", "--port", "0", "--token", token],
            [("CLAWGATE_LOG", "warn")],
        )
        .await
        .unwrap_or_else(|e| panic!("clawgate gateway run did not come up: {e:#}"))
    }

    /// [`ClawgateBin::spawn_gateway`] in a given home (e.g. one with a config
    /// file written by the test).
    pub async fn spawn_gateway_in<I, S, E, K, V>(
        &self,
        home: IsolatedHome,
        args: I,
        env: E,
    ) -> anyhow::Result<ClawgateGateway>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
        E: IntoIterator<Item = (K, V)>,
        K: Into<OsString>,
        V: Into<OsString>,
    {
        let mut process = self.spawn(&home, args, env)?;
        let deadline = Instant::now() + GATEWAY_READY_TIMEOUT;
        let line = process
            .wait_for_line(|l| l.contains(READY_MARKER), deadline)
            .await?;
        let url = parse_listening_url(&line.text)
            .with_context(|| format!("no URL in readiness line {:?}", line.text))?;
        let port = url
            .rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches('/').parse().ok())
            .with_context(|| format!("no port in {url:?}"))?;
        Ok(ClawgateGateway {
            process,
            url,
            port,
            home,
        })
    }
}

/// The `ws://…` URL after "listening on " in a readiness line.
pub fn parse_listening_url(line: &str) -> Option<String> {
    let start = line.find(READY_MARKER)? + "listening on ".len();
    let url: String = line[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    Some(url.trim_end_matches(['.', ',', ')']).to_owned())
}

/// A running clawgate gateway. Dropping it stops the process tree.
#[derive(Debug)]
pub struct ClawgateGateway {
    pub process: ChildProcess,
    url: String,
    port: u16,
    home: IsolatedHome,
}

impl ClawgateGateway {
    /// Its process and its home, apart: to kill the process and start a gateway again on the
    /// same state.
    pub fn into_parts(self) -> (ChildProcess, IsolatedHome) {
        (self.process, self.home)
    }

    /// The URL from the readiness line, e.g. `ws://127.0.0.1:40123`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn home(&self) -> &IsolatedHome {
        &self.home
    }

    /// Everything the gateway printed so far.
    pub fn transcript(&self) -> String {
        self.process.transcript()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_readiness_line() {
        assert_eq!(
            parse_listening_url("clawgate gateway listening on ws://127.0.0.1:4567").as_deref(),
            Some("ws://127.0.0.1:4567")
        );
        assert_eq!(
            parse_listening_url("INFO x: listening on ws://127.0.0.1:80/ (pid 3)").as_deref(),
            Some("ws://127.0.0.1:80/")
        );
        assert_eq!(parse_listening_url("starting"), None);
    }
}
