//! What every command shares for its output: the exit codes, a failure reported (message and
//! fixes, JSON error object, exit code by kind), writing to stdout without failing on a closed pipe, and
//! times in words.

use serde_json::{Value, json};
use std::future::Future;
use std::io::Write;
use std::process::ExitCode;

pub const EXIT_OK: u8 = 0;
pub const EXIT_RPC: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_UNREACHABLE: u8 = 3;
pub const EXIT_REJECTED: u8 = 4;
pub const EXIT_SCOPE: u8 = 5;

pub use clawgate_client::failure::{Failure, FailureKind};

/// The exit code of a failure of this kind.
pub fn exit_code(kind: FailureKind) -> u8 {
    match kind {
        FailureKind::Rpc => EXIT_RPC,
        FailureKind::Usage => EXIT_USAGE,
        FailureKind::Unreachable => EXIT_UNREACHABLE,
        FailureKind::Rejected => EXIT_REJECTED,
        FailureKind::Scope => EXIT_SCOPE,
    }
}

/// How a command reports its failure: the message and fixes on stderr, the JSON error object
/// on stdout with `--json`, and the exit code.
pub trait Report {
    fn print_human(&self);
    fn report(&self, json_stdout: bool) -> ExitCode;
}

impl Report for Failure {
    fn print_human(&self) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "error: {}", self.message);
        for fix in &self.fixes {
            // Indented lines are commands to copy: printed as they are.
            if fix.starts_with("    ") {
                let _ = writeln!(err, "{fix}");
            } else {
                let _ = writeln!(err, "hint: {fix}");
            }
        }
    }

    /// `{"ok":false,"error":…}` on stdout (when `json_stdout`) and the message on stderr.
    fn report(&self, json_stdout: bool) -> ExitCode {
        if json_stdout {
            print_json(&json!({"ok": false, "error": self.json}));
        }
        self.print_human();
        ExitCode::from(exit_code(self.kind))
    }
}

/// Writes to stdout, ignoring a closed pipe (`clawgate … | head`).
pub fn print_out(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    if !text.ends_with('\n') {
        let _ = out.write_all(b"\n");
    }
    let _ = out.flush();
}

pub fn print_json(v: &Value) {
    print_out(&serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string()));
}

/// Runs `fut` on a single-threaded runtime (fast start-up).
pub fn block_on<F: Future<Output = ExitCode>>(fut: F) -> ExitCode {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(fut),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

pub use clawgate_base::now_ms;

/// `1h 2m`, `3m 4s`, `5s`, `120ms`.
pub fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0 => format!("{ms}ms"),
        1..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// `3m ago` from a millisecond timestamp.
pub fn ago(ts: Option<i64>) -> String {
    let Some(ts) = ts else {
        return String::new();
    };
    format!(
        "{} ago",
        duration(now_ms().saturating_sub(ts).max(0) as u64)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration(120), "120ms");
        assert_eq!(duration(5_000), "5s");
        assert_eq!(duration(125_000), "2m 5s");
        assert_eq!(duration(3_720_000), "1h 2m");
    }
}
