//! Child processes for tests: process-group spawning, whole-tree shutdown and
//! line-by-line output matching.
//!
//! Every child is started in its own process group (`process_group(0)`), so the
//! child and everything it launches can be signalled together. Signals are sent
//! with the system `kill` program (the crates forbid `unsafe`, so no `libc`).

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

/// How long a tree gets between SIGTERM and SIGKILL when a handle is dropped.
pub const DROP_GRACE: Duration = Duration::from_secs(5);

fn kill_program() -> &'static str {
    ["/bin/kill", "/usr/bin/kill"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("kill")
}

/// `(ppid, pgid, state)` of a process, from `/proc/<pid>/stat`.
fn proc_stat(pid: u32) -> Option<(u32, u32, char)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain anything.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgid = fields.next()?.parse().ok()?;
    Some((ppid, pgid, state))
}

/// Every live process as `(pid, ppid, pgid)`.
fn all_processes() -> Vec<(u32, u32, u32)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let (ppid, pgid, state) = proc_stat(pid)?;
            (state != 'Z' && state != 'X').then_some((pid, ppid, pgid))
        })
        .collect()
}

/// True if `pid` exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    matches!(proc_stat(pid), Some((_, _, s)) if s != 'Z' && s != 'X')
}

/// The pids and process groups that make up the tree of `pid` (when given):
/// `pid` itself, its descendants, and every member of their process groups and
/// of `pgid`. Never includes this test process, its group, or pid 1.
///
/// Pass `pid` only while that child has not been reaped (so the pid cannot
/// have been reused); otherwise only the group is looked at.
fn tree(pid: Option<u32>, pgid: u32) -> (BTreeSet<u32>, BTreeSet<u32>) {
    if pgid <= 1 || pid.is_some_and(|p| p <= 1) {
        return (BTreeSet::new(), BTreeSet::new());
    }
    let me = std::process::id();
    let my_pgid = proc_stat(me).map(|(_, g, _)| g).unwrap_or(0);
    let procs = all_processes();
    let mut pids = BTreeSet::new();
    let mut groups = BTreeSet::from([pgid]);
    if let Some(pid) = pid {
        if is_alive(pid) {
            pids.insert(pid);
        }
        // Descendants by parent links (they may have moved to groups of their own).
        let mut frontier = vec![pid];
        while let Some(parent) = frontier.pop() {
            for &(p, pp, g) in &procs {
                if pp == parent && pids.insert(p) {
                    groups.insert(g);
                    frontier.push(p);
                }
            }
        }
    }
    groups.retain(|&g| g != my_pgid && g > 1);
    // Members of the groups (they may have been re-parented already).
    for &(p, _, g) in &procs {
        if groups.contains(&g) {
            pids.insert(p);
        }
    }
    pids.retain(|&p| p != me && p != 1);
    (pids, groups)
}

/// Sends `signal` (e.g. "TERM", "KILL") to the given pids and process groups.
fn send(signal: &str, pids: &BTreeSet<u32>, groups: &BTreeSet<u32>) {
    if pids.is_empty() && groups.is_empty() {
        return;
    }
    let mut cmd = std::process::Command::new(kill_program());
    cmd.arg("-s").arg(signal).arg("--");
    cmd.args(groups.iter().map(|g| format!("-{g}")));
    cmd.args(pids.iter().map(|p| p.to_string()));
    // Some targets may be gone already; kill reports that and signals the rest.
    let _ = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Sends `signal` to the process group `pgid` only.
pub fn signal_group(pgid: u32, signal: &str) {
    let my_pgid = proc_stat(std::process::id()).map(|(_, g, _)| g);
    if pgid > 1 && Some(pgid) != my_pgid {
        send(signal, &BTreeSet::new(), &BTreeSet::from([pgid]));
    }
}

/// Stops the whole tree of a child started with `process_group(0)` (so its
/// pgid is its pid) and not yet reaped: SIGTERM to the group, to every
/// descendant and to their groups; waits up to `grace` for all of them to go;
/// then SIGKILL to whatever is left. Blocking.
pub fn kill_tree(pid: u32, grace: Duration) {
    stop(Some(pid), pid, grace);
}

/// Like [`kill_tree`] for a group whose leader may already have been reaped:
/// only the members of process group `pgid` are signalled.
pub fn kill_group(pgid: u32, grace: Duration) {
    stop(None, pgid, grace);
}

fn stop(pid: Option<u32>, pgid: u32, grace: Duration) {
    let (pids, groups) = tree(pid, pgid);
    if pids.is_empty() {
        return;
    }
    send("TERM", &pids, &groups);
    let deadline = Instant::now() + grace;
    loop {
        let (left, left_groups) = tree(pid, pgid);
        let alive: BTreeSet<u32> = left
            .union(&pids)
            .copied()
            .filter(|&p| is_alive(p))
            .collect();
        if alive.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            send(
                "KILL",
                &alive,
                &left_groups.union(&groups).copied().collect(),
            );
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Async version of [`kill_tree`] (runs it on the blocking pool).
pub async fn kill_tree_async(pid: u32, grace: Duration) {
    let _ = tokio::task::spawn_blocking(move || kill_tree(pid, grace)).await;
}

/// Async version of [`kill_group`] (runs it on the blocking pool).
pub async fn kill_group_async(pgid: u32, grace: Duration) {
    let _ = tokio::task::spawn_blocking(move || kill_group(pgid, grace)).await;
}

/// Children started by this test process that are still running.
static LIVE: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());
static SIGNAL_GUARD: OnceLock<()> = OnceLock::new();

/// Records a child (started in its own process group) so that it is stopped
/// even when this test process is terminated by a signal: the test runner
/// stops a timed-out test with SIGTERM (and Ctrl-C sends SIGINT), which runs no
/// destructors, and children in their own process groups do not get the
/// signal. The first registration installs a handler for both signals that
/// stops every registered tree and then exits (143 or 130).
pub(crate) fn register(pid: u32) {
    SIGNAL_GUARD.get_or_init(start_signal_guard);
    if let Ok(mut live) = LIVE.lock() {
        live.insert(pid);
    }
}

/// Forgets a child recorded with [`register`] (once it has been stopped).
pub(crate) fn unregister(pid: u32) {
    if let Ok(mut live) = LIVE.lock() {
        live.remove(&pid);
    }
}

fn start_signal_guard() {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("testkit-signal-guard".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                use tokio::signal::unix::{SignalKind, signal};
                let (Ok(mut term), Ok(mut int)) = (
                    signal(SignalKind::terminate()),
                    signal(SignalKind::interrupt()),
                ) else {
                    return;
                };
                let _ = ready_tx.send(());
                let code = tokio::select! {
                    _ = term.recv() => 143,
                    _ = int.recv() => 130,
                };
                let pids: Vec<u32> = LIVE
                    .lock()
                    .map(|l| l.iter().copied().collect())
                    .unwrap_or_default();
                for pid in pids {
                    kill_tree(pid, Duration::from_secs(2));
                }
                std::process::exit(code);
            });
        });
    if spawned.is_ok() {
        // Wait until the handlers are in place, so a signal right after the
        // first spawn is not missed.
        let _ = ready_rx.recv_timeout(Duration::from_secs(5));
    }
}

/// Which stream a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One line of a child's output (without the line terminator).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub stream: Stream,
    pub text: String,
}

/// Collects a child's stdout and stderr line by line. The pipes are drained
/// continuously in background tasks (so the child never blocks on a full
/// pipe) into a transcript and a channel that [`OutputLines::wait_for_line`]
/// reads from.
pub struct OutputLines {
    rx: mpsc::UnboundedReceiver<Line>,
    transcript: Arc<Mutex<String>>,
}

impl OutputLines {
    /// Takes the child's piped stdout and stderr (whichever are piped).
    pub fn from_child(child: &mut Child) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let transcript = Arc::new(Mutex::new(String::new()));
        if let Some(out) = child.stdout.take() {
            spawn_reader(out, Stream::Stdout, tx.clone(), transcript.clone());
        }
        if let Some(err) = child.stderr.take() {
            spawn_reader(err, Stream::Stderr, tx, transcript.clone());
        }
        Self { rx, transcript }
    }

    /// Reads lines until one satisfies `predicate` and returns it. Fails when
    /// `deadline` passes or both streams end first; the error carries all
    /// output seen so far.
    pub async fn wait_for_line<F>(
        &mut self,
        mut predicate: F,
        deadline: Instant,
    ) -> anyhow::Result<Line>
    where
        F: FnMut(&str) -> bool,
    {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.rx.recv()).await {
                Ok(Some(line)) if predicate(&line.text) => return Ok(line),
                Ok(Some(_)) => {}
                Ok(None) => bail!(
                    "output ended before a matching line was printed; output so far:\n{}",
                    self.transcript()
                ),
                Err(_) => bail!(
                    "no matching output line within the deadline; output so far:\n{}",
                    self.transcript()
                ),
            }
        }
    }

    /// Everything read so far, each line prefixed with `out| ` or `err| `.
    pub fn transcript(&self) -> String {
        self.transcript
            .lock()
            .map(|t| t.clone())
            .unwrap_or_default()
    }
}

fn spawn_reader<R>(
    reader: R,
    stream: Stream,
    tx: mpsc::UnboundedSender<Line>,
    transcript: Arc<Mutex<String>>,
) where
    R: AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut lines = BufReader::new(reader).lines();
        while let Ok(Some(text)) = lines.next_line().await {
            if let Ok(mut t) = transcript.lock() {
                t.push_str(match stream {
                    Stream::Stdout => "out| ",
                    Stream::Stderr => "err| ",
                });
                t.push_str(&text);
                t.push('\n');
            }
            // The receiver may be gone; keep draining the pipe regardless.
            let _ = tx.send(Line { stream, text });
        }
    });
}

/// A running child in its own process group whose stdout and stderr are
/// collected line by line. Dropping it stops the whole process tree.
pub struct ChildProcess {
    name: String,
    pid: u32,
    child: Child,
    lines: OutputLines,
}

impl ChildProcess {
    /// Spawns `cmd` in a new process group with stdin closed and stdout/stderr
    /// piped. `name` is used in error messages.
    pub fn spawn(cmd: Command, name: impl Into<String>) -> anyhow::Result<Self> {
        Self::spawn_with(cmd, name.into(), Stdio::null())
    }

    /// [`ChildProcess::spawn`] with stdin piped: what is written to the handle returned is
    /// the child's input; dropping the handle closes it.
    pub fn spawn_with_stdin(
        cmd: Command,
        name: impl Into<String>,
    ) -> anyhow::Result<(Self, ChildStdin)> {
        let mut child = Self::spawn_with(cmd, name.into(), Stdio::piped())?;
        let stdin = child.child.stdin.take().context("no stdin pipe")?;
        Ok((child, stdin))
    }

    fn spawn_with(mut cmd: Command, name: String, stdin: Stdio) -> anyhow::Result<Self> {
        cmd.process_group(0)
            .kill_on_drop(true)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().with_context(|| format!("spawning {name}"))?;
        let pid = child.id().context("child has no pid")?;
        register(pid);
        let lines = OutputLines::from_child(&mut child);
        Ok(Self {
            name,
            pid,
            child,
            lines,
        })
    }

    /// The child's pid, which is also its process group id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The underlying tokio child.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// See [`OutputLines::wait_for_line`].
    pub async fn wait_for_line<F>(
        &mut self,
        predicate: F,
        deadline: Instant,
    ) -> anyhow::Result<Line>
    where
        F: FnMut(&str) -> bool,
    {
        self.lines
            .wait_for_line(predicate, deadline)
            .await
            .with_context(|| format!("{} (pid {})", self.name, self.pid))
    }

    /// All output read so far.
    pub fn transcript(&self) -> String {
        self.lines.transcript()
    }

    /// The exit status if the child has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits up to `timeout` for the child to exit.
    pub async fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .ok()?
            .ok()
    }

    /// Sends `signal` (e.g. "TERM", "INT") to the child's process group.
    pub fn signal(&self, signal: &str) {
        signal_group(self.pid, signal);
    }

    /// Stops the whole tree (SIGTERM, then SIGKILL after `grace`) and returns
    /// the child's exit status.
    pub async fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        match self.child.try_wait() {
            Ok(None) => kill_tree_async(self.pid, grace).await,
            _ => kill_group_async(self.pid, grace).await,
        }
        self.wait_timeout(Duration::from_secs(5)).await
    }
}

impl fmt::Debug for ChildProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildProcess")
            .field("name", &self.name)
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        match self.child.try_wait() {
            Ok(None) => kill_tree(self.pid, DROP_GRACE),
            _ => kill_group(self.pid, DROP_GRACE),
        }
        unregister(self.pid);
    }
}

/// Reads lines from `child` until one satisfies `predicate`; see
/// [`OutputLines::wait_for_line`].
pub async fn wait_for_line<F>(
    child: &mut ChildProcess,
    predicate: F,
    deadline: Instant,
) -> anyhow::Result<Line>
where
    F: FnMut(&str) -> bool,
{
    child.wait_for_line(predicate, deadline).await
}
