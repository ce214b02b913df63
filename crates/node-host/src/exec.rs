//! Running one command for `system.run`: its own process group, no stdin, stdout and stderr
//! captured up to a cap each, a timeout that kills the whole group (exit code 124), and
//! cancellation that kills the group at once.

use rustix::process::{Pid, Signal, kill_process_group};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Bytes kept of stdout and of stderr (each).
pub const OUTPUT_CAP: usize = 200_000;
/// Exit code reported when the timeout killed the command.
pub const TIMEOUT_EXIT_CODE: i32 = 124;
/// Between SIGTERM and SIGKILL when a timeout or the output cap stops a command.
const KILL_GRACE: Duration = Duration::from_secs(1);
/// How long output is still read after the command exited (a background child may hold
/// the pipes open forever).
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(300);

/// What to run.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub argv: Vec<String>,
    pub cwd: Option<PathBuf>,
    /// The complete environment of the child.
    pub env: BTreeMap<String, String>,
    pub timeout: Option<Duration>,
    pub output_cap: usize,
}

/// How it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    /// `None` when a signal ended it (or it never started).
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
    /// Why it could not start.
    pub error: Option<String>,
    /// Output went past the cap (and the command was stopped).
    pub truncated: bool,
}

#[derive(Default)]
struct Capture {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    truncated: bool,
}

/// Signals every process in group `pgid`; a group that is already gone is fine.
pub fn signal_group(pgid: u32, signal: Signal) {
    if let Some(pid) = i32::try_from(pgid).ok().and_then(Pid::from_raw) {
        let _ = kill_process_group(pid, signal);
    }
}

fn spawn_error(spec: &RunSpec, e: &std::io::Error) -> String {
    let argv0 = spec.argv.first().map(String::as_str).unwrap_or("");
    let code = match e.kind() {
        std::io::ErrorKind::NotFound => "ENOENT".to_owned(),
        std::io::ErrorKind::PermissionDenied => "EACCES".to_owned(),
        _ => e
            .raw_os_error()
            .map(|n| format!("errno {n}"))
            .unwrap_or_else(|| e.to_string()),
    };
    let message = format!("spawn {argv0} {code}");
    if let Some(cwd) = &spec.cwd {
        let reason = match std::fs::metadata(cwd) {
            Ok(m) if m.is_dir() => None,
            Ok(_) => Some("is not a directory"),
            Err(_) => Some("does not exist"),
        };
        if let Some(reason) = reason {
            return format!(
                "node exec working directory {reason} on the node host: {} (os reported: {message})",
                cwd.display()
            );
        }
    }
    message
}

async fn pump(
    mut reader: impl tokio::io::AsyncRead + Unpin,
    capture: Arc<Mutex<Capture>>,
    stderr: bool,
    cap: usize,
    limit_hit: Arc<Notify>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mut c = capture.lock().unwrap_or_else(|e| e.into_inner());
        let target = if stderr { &mut c.stderr } else { &mut c.stdout };
        let room = cap.saturating_sub(target.len());
        target.extend_from_slice(&buf[..n.min(room)]);
        if n > room && !c.truncated {
            c.truncated = true;
            limit_hit.notify_one();
        }
    }
}

enum Ending {
    Exited(std::process::ExitStatus),
    TimedOut,
    OutputLimit,
    Cancelled,
}

/// Runs `spec`. Returns `None` if `cancel` fired first (the group has been killed).
pub async fn run(spec: RunSpec, cancel: CancellationToken) -> Option<RunOutcome> {
    let Some(program) = spec.argv.first() else {
        return Some(RunOutcome {
            exit_code: None,
            timed_out: false,
            success: false,
            stdout: String::new(),
            stderr: String::new(),
            error: Some("command required".into()),
            truncated: false,
        });
    };
    let mut cmd = Command::new(program);
    cmd.args(&spec.argv[1..])
        .env_clear()
        .envs(&spec.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(cwd) = &spec.cwd {
        cmd.current_dir(cwd);
    }
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            return Some(RunOutcome {
                exit_code: None,
                timed_out: false,
                success: false,
                stdout: String::new(),
                stderr: String::new(),
                error: Some(spawn_error(&spec, &e)),
                truncated: false,
            });
        }
    };
    let pgid = child.id().unwrap_or(0);
    let capture = Arc::new(Mutex::new(Capture::default()));
    let limit_hit = Arc::new(Notify::new());
    let mut pumps = Vec::new();
    if let Some(out) = child.stdout.take() {
        pumps.push(tokio::spawn(pump(
            out,
            capture.clone(),
            false,
            spec.output_cap,
            limit_hit.clone(),
        )));
    }
    if let Some(err) = child.stderr.take() {
        pumps.push(tokio::spawn(pump(
            err,
            capture.clone(),
            true,
            spec.output_cap,
            limit_hit.clone(),
        )));
    }

    let timeout = async {
        match spec.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let ending = tokio::select! {
        status = child.wait() => match status {
            Ok(status) => Ending::Exited(status),
            Err(_) => Ending::Cancelled,
        },
        _ = timeout => Ending::TimedOut,
        _ = limit_hit.notified() => Ending::OutputLimit,
        _ = cancel.cancelled() => Ending::Cancelled,
    };

    let status = match ending {
        Ending::Exited(status) => {
            // Whatever the command left running in its group goes with it, unless it
            // succeeded (a daemon it started on purpose stays).
            if !status.success() {
                signal_group(pgid, Signal::KILL);
            }
            Some(status)
        }
        Ending::Cancelled => {
            signal_group(pgid, Signal::KILL);
            let _ = child.wait().await;
            for p in &pumps {
                p.abort();
            }
            return None;
        }
        Ending::TimedOut | Ending::OutputLimit => {
            signal_group(pgid, Signal::TERM);
            let exited = tokio::select! {
                r = tokio::time::timeout(KILL_GRACE, child.wait()) => r.ok().and_then(Result::ok),
                _ = cancel.cancelled() => None,
            };
            signal_group(pgid, Signal::KILL);
            match exited {
                Some(s) => Some(s),
                None => child.wait().await.ok(),
            }
        }
    };
    if cancel.is_cancelled() {
        signal_group(pgid, Signal::KILL);
        for p in &pumps {
            p.abort();
        }
        return None;
    }
    let drain = async {
        for p in pumps.iter_mut() {
            let _ = p.await;
        }
    };
    if tokio::time::timeout(DRAIN_AFTER_EXIT, drain).await.is_err() {
        for p in &pumps {
            p.abort();
        }
    }

    let timed_out = matches!(ending, Ending::TimedOut);
    let exit_code = match (&ending, status.and_then(|s| s.code())) {
        (Ending::TimedOut, None | Some(0)) => Some(TIMEOUT_EXIT_CODE),
        (Ending::OutputLimit, _) => None,
        (_, code) => code,
    };
    let c = capture.lock().unwrap_or_else(|e| e.into_inner());
    Some(RunOutcome {
        exit_code,
        timed_out,
        success: exit_code == Some(0) && !timed_out,
        stdout: String::from_utf8_lossy(&c.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&c.stderr).into_owned(),
        error: None,
        truncated: c.truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn signalling_a_missing_group_is_harmless() {
        signal_group(0, Signal::TERM);
        signal_group(u32::MAX, Signal::TERM);
    }

    fn spec(argv: &[&str]) -> RunSpec {
        RunSpec {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            cwd: None,
            env: std::env::vars().collect(),
            timeout: None,
            output_cap: OUTPUT_CAP,
        }
    }

    fn alive(pid: i32) -> bool {
        // A zombie counts as gone.
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                let state = s.rsplit(')').next().unwrap_or("").trim_start();
                !state.starts_with('Z')
            })
            .unwrap_or(false)
    }

    #[tokio::test]
    async fn exit_codes_and_output() {
        let out = run(
            spec(&["sh", "-c", "echo out; echo err 1>&2; exit 3"]),
            CancellationToken::new(),
        )
        .await
        .unwrap();
        assert_eq!(out.exit_code, Some(3));
        assert!(!out.success && !out.timed_out && !out.truncated);
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
        let ok = run(spec(&["echo", "hi"]), CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(
            (ok.exit_code, ok.success, ok.stdout.as_str()),
            (Some(0), true, "hi\n")
        );
    }

    #[tokio::test]
    async fn timeout_kills_the_group_with_124() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("grandchild.pid");
        let script = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
        let mut s = spec(&["sh", "-c", &script]);
        s.timeout = Some(Duration::from_millis(500));
        let started = Instant::now();
        let out = run(s, CancellationToken::new()).await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(out.exit_code, Some(TIMEOUT_EXIT_CODE));
        assert!(out.timed_out && !out.success);
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!alive(pid), "grandchild {pid} survived the timeout");
    }

    #[tokio::test]
    async fn cancel_kills_the_whole_group_and_reports_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("grandchild.pid");
        let script = format!("sleep 30 & echo $! > {}; sleep 30", pidfile.display());
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run(spec(&["sh", "-c", &script]), cancel.clone()));
        let deadline = Instant::now() + Duration::from_secs(5);
        while !pidfile.exists() || std::fs::read_to_string(&pidfile).unwrap().trim().is_empty() {
            assert!(Instant::now() < deadline, "the script never started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(alive(pid));
        cancel.cancel();
        let result = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(result, None);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!alive(pid), "grandchild {pid} survived the cancel");
    }

    #[tokio::test]
    async fn output_is_capped_and_the_command_stopped() {
        let mut s = spec(&["sh", "-c", "yes 0123456789"]);
        s.output_cap = 10_000;
        s.timeout = Some(Duration::from_secs(20));
        let out = run(s, CancellationToken::new()).await.unwrap();
        assert!(out.truncated);
        assert_eq!(out.stdout.len(), 10_000);
        assert!(!out.timed_out);
        assert_eq!(out.exit_code, None);
        assert!(!out.success);
    }

    #[tokio::test]
    async fn spawn_failures_are_reported_not_thrown() {
        let out = run(spec(&["no-such-binary-xyz"]), CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(
            out.error.as_deref(),
            Some("spawn no-such-binary-xyz ENOENT")
        );
        assert_eq!(out.exit_code, None);
        let mut s = spec(&["ls"]);
        s.cwd = Some("/no/such/dir".into());
        let out = run(s, CancellationToken::new()).await.unwrap();
        assert_eq!(
            out.error.as_deref(),
            Some(
                "node exec working directory does not exist on the node host: /no/such/dir (os reported: spawn ls ENOENT)"
            )
        );
    }

    #[tokio::test]
    async fn background_children_do_not_hold_the_result() {
        let started = Instant::now();
        let out = run(
            spec(&["sh", "-c", "sleep 20 & echo $!"]),
            CancellationToken::new(),
        )
        .await
        .unwrap();
        assert_eq!(out.exit_code, Some(0));
        assert!(started.elapsed() < Duration::from_secs(5));
        // A command that succeeds may leave a daemon behind on purpose; this test does not.
        let pid: i32 = out.stdout.trim().parse().unwrap();
        let _ = rustix::process::kill_process(Pid::from_raw(pid).unwrap(), Signal::KILL);
    }
}
