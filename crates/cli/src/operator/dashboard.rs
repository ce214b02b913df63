//! `clawgate dashboard [--open]`: the address of the gateway's browser UI, with the token in
//! its fragment (`clawgate_client::dashboard`), for this machine's gateway or the configured
//! remote one (through its SSH tunnel when `gateway.remote.transport` is `ssh`).

use super::conn::ConnArgs;
use super::target;
use crate::output::{Failure, FailureKind, Report as _, exit_code, print_json, print_out};
use clap::Args;
use serde_json::json;
use std::os::unix::process::CommandExt as _;
use std::process::{Command, ExitCode, Stdio};

#[derive(Args, Debug)]
pub struct DashboardArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Open the address in the desktop's browser (xdg-open, or open on macOS)
    #[arg(long)]
    pub open: bool,
}

/// The program that hands a URL to the desktop's browser.
const OPENER: &str = if cfg!(target_os = "macos") {
    "open"
} else {
    "xdg-open"
};

pub fn run(args: DashboardArgs) -> ExitCode {
    let json_out = args.conn.json;
    let target = match target::resolve(&args.conn) {
        Ok(t) => t,
        Err(f) => return f.report(json_out),
    };
    let url =
        match clawgate_client::dashboard::dashboard_url(&target, &clawgate_config::process_env) {
            Ok(u) => u,
            Err(e) => return Failure::config(e.to_string()).report(json_out),
        };
    if json_out {
        print_json(&json!({"ok": true, "url": url, "gateway": target.url}));
    } else {
        print_out(&url);
        if target.token.is_none() && target.password.is_some() {
            eprintln!(
                "note: this gateway uses a password; enter it under Settings on the page (it is never put in a URL)"
            );
        }
    }
    if args.open {
        // The browser outlives this command: not waited for, its output not ours, in a
        // process group of its own so that a Ctrl-C meant for the terminal leaves it be.
        let spawned = Command::new(OPENER)
            .arg(&url)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        if let Err(e) = spawned {
            let f = Failure {
                kind: FailureKind::Unreachable,
                message: format!("cannot run {OPENER} to open the browser: {e}"),
                fixes: vec!["open the address printed above in a browser yourself".into()],
                json: json!({"type": "open_failed", "message": e.to_string()}),
            };
            f.print_human();
            return ExitCode::from(exit_code(f.kind));
        }
    }
    ExitCode::SUCCESS
}
