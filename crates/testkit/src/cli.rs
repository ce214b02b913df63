//! Running a CLI (the real OpenClaw one or clawgate) to completion in a
//! private home, with a timeout that takes down the whole process tree.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::Command;

use crate::home::IsolatedHome;
use crate::process::{kill_group, kill_group_async, kill_tree_async, register, unregister};

/// Default limit for one CLI invocation.
pub const DEFAULT_CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// Grace between SIGTERM and SIGKILL when a run times out.
const KILL_GRACE: Duration = Duration::from_secs(3);

/// What a finished CLI run printed and how it exited.
#[derive(Clone, Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The exit code (`None` if killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Panics (showing both streams) unless the run exited 0.
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        assert!(self.success(), "command failed:\n{self}");
        self
    }

    /// Panics (showing both streams) unless the run exited with `code`.
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code(), Some(code), "unexpected exit code:\n{self}");
        self
    }

    /// stdout parsed as JSON; panics (showing both streams) if it is not.
    #[track_caller]
    pub fn json(&self) -> Value {
        match serde_json::from_str(&self.stdout) {
            Ok(v) => v,
            Err(e) => panic!("stdout is not JSON ({e}):\n{self}"),
        }
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "status: {}", self.status)?;
        writeln!(f, "--- stdout\n{}", self.stdout)?;
        write!(f, "--- stderr\n{}", self.stderr)
    }
}

/// A run that did not finish in time; holds what it printed before it was
/// killed.
#[derive(Debug, thiserror::Error)]
#[error(
    "{program} {args:?} timed out after {timeout:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
)]
pub struct TimedOut {
    pub program: String,
    pub args: Vec<String>,
    pub timeout: Duration,
    pub stdout: String,
    pub stderr: String,
}

/// How the home of a run is set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// The real OpenClaw: the base OpenClaw config merged with the test's.
    OpenClaw,
    /// clawgate: the test's config as is, none if not given.
    Clawgate,
}

/// Builder for one CLI invocation. Created by [`crate::OpenClaw::cli`] or
/// [`crate::ClawgateBin::cli`].
///
/// Unless [`CliCommand::in_home`] is used, every run gets a fresh
/// [`IsolatedHome`] that is removed afterwards.
#[must_use]
pub struct CliCommand<'h> {
    program: PathBuf,
    flavor: Flavor,
    args: Vec<OsString>,
    env: Vec<(OsString, Option<OsString>)>,
    config: Option<Value>,
    home: Option<&'h IsolatedHome>,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
}

impl<'h> CliCommand<'h> {
    pub(crate) fn new(program: PathBuf, flavor: Flavor) -> Self {
        Self {
            program,
            flavor,
            args: Vec::new(),
            env: Vec::new(),
            config: None,
            home: None,
            stdin: None,
            timeout: DEFAULT_CLI_TIMEOUT,
        }
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable (after the home's own variables).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), Some(value.into())));
        self
    }

    /// Removes an environment variable.
    pub fn env_remove(mut self, key: impl Into<OsString>) -> Self {
        self.env.push((key.into(), None));
        self
    }

    /// The config file for this run. For OpenClaw it is merged over the base
    /// config (see [`IsolatedHome::openclaw_base_config`]); for clawgate it is
    /// written as is. With [`CliCommand::in_home`] it replaces that home's
    /// config file.
    pub fn config(mut self, config: Value) -> Self {
        self.config = Some(config);
        self
    }

    /// Runs in `home` (shared with other runs) instead of a fresh one.
    pub fn in_home(mut self, home: &'h IsolatedHome) -> Self {
        self.home = Some(home);
        self
    }

    /// Bytes for stdin (closed otherwise).
    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(input.into());
        self
    }

    /// Time limit for the run (default 60 s); the whole process tree is
    /// killed when it passes.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn describe(&self) -> (String, Vec<String>) {
        (
            self.program.display().to_string(),
            self.args
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
        )
    }

    /// Runs to completion; panics on a spawn failure or timeout (with the
    /// output printed so far).
    pub async fn run(self) -> Output {
        match self.try_run().await {
            Ok(out) => out,
            Err(e) => panic!("{e:#}"),
        }
    }

    /// Runs to completion. A timeout is an error ([`TimedOut`]).
    pub async fn try_run(self) -> anyhow::Result<Output> {
        let fresh;
        let home = match self.home {
            Some(h) => h,
            None => {
                fresh = IsolatedHome::new();
                &fresh
            }
        };
        match (self.flavor, &self.config) {
            (Flavor::OpenClaw, Some(c)) => home.write_openclaw_config(c),
            (Flavor::OpenClaw, None) if home.read_config().is_none() => {
                home.write_openclaw_config(&Value::Object(Default::default()))
            }
            (Flavor::Clawgate, Some(c)) => home.write_config(c),
            _ => {}
        }

        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args);
        home.apply(&mut cmd);
        for (k, v) in &self.env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        cmd.process_group(0)
            .kill_on_drop(true)
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());

        let (program, args) = self.describe();
        let mut child = cmd.spawn().with_context(|| format!("spawning {program}"))?;
        let pid = child.id().context("child has no pid")?;
        let _guard = RunGuard::new(pid);

        if let (Some(input), Some(mut pipe)) = (self.stdin, child.stdin.take()) {
            tokio::spawn(async move {
                let _ = pipe.write_all(&input).await;
            });
        }
        let mut out = child.stdout.take().context("no stdout pipe")?;
        let mut err = child.stderr.take().context("no stderr pipe")?;
        let out_task = tokio::spawn(async move {
            let mut buf = Vec::new();
            let _ = out.read_to_end(&mut buf).await;
            buf
        });
        let err_task = tokio::spawn(async move {
            let mut buf = Vec::new();
            let _ = err.read_to_end(&mut buf).await;
            buf
        });

        let waited = tokio::time::timeout(self.timeout, child.wait()).await;
        // Whatever is left goes now, so the pipes reach end of file: on a
        // timeout the whole tree, else helpers that outlived the CLI.
        match waited {
            Ok(_) => kill_group_async(pid, KILL_GRACE).await,
            Err(_) => kill_tree_async(pid, KILL_GRACE).await,
        }
        let status = match waited {
            Ok(status) => Some(status.context("waiting for the child")?),
            Err(_) => None,
        };
        let collect = |task: tokio::task::JoinHandle<Vec<u8>>| async move {
            match tokio::time::timeout(Duration::from_secs(10), task).await {
                Ok(Ok(buf)) => String::from_utf8_lossy(&buf).into_owned(),
                _ => String::from("<output not collected>"),
            }
        };
        let stdout = collect(out_task).await;
        let stderr = collect(err_task).await;
        match status {
            Some(status) => Ok(Output {
                status,
                stdout,
                stderr,
            }),
            None => {
                let _ = child.wait().await;
                bail!(TimedOut {
                    program,
                    args,
                    timeout: self.timeout,
                    stdout,
                    stderr,
                })
            }
        }
    }
}

/// Keeps a run's process group registered for signal-time cleanup, and stops
/// what is left of it when the run ends in any way (including the future
/// being dropped).
struct RunGuard(u32);

impl RunGuard {
    fn new(pid: u32) -> Self {
        register(pid);
        Self(pid)
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        kill_group(self.0, KILL_GRACE);
        unregister(self.0);
    }
}
