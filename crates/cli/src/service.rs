//! `clawgate gateway install|uninstall|start|stop|restart`: the flags, the report and the exit
//! code; the service itself is `clawgate_service`.
//!
//! Exit codes, as OpenClaw's: 0 done (also install when already installed, and stop when
//! nothing is installed), 1 the service manager failed or is unavailable or there is no unit
//! to start; 2 a bad flag or config (clawgate's usage code).

use crate::output::{EXIT_USAGE, print_json, print_out};
use clap::Args;
use clawgate_config as config;
use clawgate_service::{self as service, Context, Done, Failure, FailureKind, InstallOptions};
use serde_json::json;
use std::io::Write as _;
use std::process::ExitCode;

/// Exit code when the service manager fails or cannot be used (OpenClaw's).
const EXIT_SERVICE: u8 = 1;

#[derive(Args, Debug)]
pub struct InstallArgs {
    /// Port the service's gateway listens on [default: the gateway's own: env, gateway.port,
    /// the profile's port, 18789]
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    port: Option<u16>,
    /// Rewrite an existing unit (the old one is kept as <unit>.bak) and restart the service
    #[arg(long)]
    force: bool,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct ServiceArgs {
    /// Print JSON
    #[arg(long)]
    json: bool,
}

pub fn install(args: InstallArgs) -> ExitCode {
    let options = InstallOptions {
        port: args.port,
        force: args.force,
    };
    run_action("install", args.json, |ctx| service::install(ctx, &options))
}

pub fn uninstall(args: ServiceArgs) -> ExitCode {
    run_action("uninstall", args.json, service::uninstall)
}

pub fn start(args: ServiceArgs) -> ExitCode {
    run_action("start", args.json, service::start)
}

pub fn restart(args: ServiceArgs) -> ExitCode {
    run_action("restart", args.json, service::restart)
}

pub fn stop(args: ServiceArgs) -> ExitCode {
    run_action("stop", args.json, service::stop)
}

/// Runs `action` for the current environment's service and reports the outcome.
fn run_action(
    action: &'static str,
    json_out: bool,
    body: impl FnOnce(&Context) -> Result<Done, Failure>,
) -> ExitCode {
    match service::run(action, &config::process_env, body) {
        Ok((ctx, done)) => {
            if json_out {
                let mut report = json!({
                    "action": action,
                    "ok": true,
                    "result": done.result,
                    "message": done.lines.join("\n"),
                    "service": ctx.snapshot(done.loaded.or_else(|| ctx.enabled())),
                });
                if !done.warnings.is_empty() {
                    report["warnings"] = json!(done.warnings);
                }
                print_json(&report);
            } else {
                print_out(
                    &done
                        .lines
                        .iter()
                        .chain(&done.warnings)
                        .fold(String::new(), |text, line| text + line + "\n"),
                );
            }
            ExitCode::SUCCESS
        }
        Err(f) => {
            if json_out {
                print_json(
                    &json!({"action": action, "ok": false, "error": f.message, "hints": f.hints}),
                );
            }
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "error: {}", f.message);
            for hint in &f.hints {
                let _ = writeln!(err, "hint: {hint}");
            }
            ExitCode::from(match f.kind {
                FailureKind::Usage => EXIT_USAGE,
                FailureKind::Service => EXIT_SERVICE,
            })
        }
    }
}
