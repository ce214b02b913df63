//! `clawgate gateway tls show|rotate`: the gateway certificate's fingerprint, and rotation
//! with a window in which clients can pin both the old and the new certificate (see
//! `clawgate_gateway::tls` for the design: `rotate --stage` announces the next fingerprint
//! before it is served, `rotate` switches; running gateways pick up the files by themselves).

use clap::{Args, Subcommand};
use clawgate_config::{self as config, BindMode, GatewaySettings};
use clawgate_gateway::{bind, tls};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum TlsCommand {
    /// Print the SHA-256 fingerprint of the gateway certificate (and of a staged or previous one).
    Show(TlsArgs),
    /// Replace the generated certificate. With --stage, generate the next one without serving
    /// it, so clients can pin it in advance.
    Rotate(RotateArgs),
}

#[derive(Args, Debug)]
pub struct TlsArgs {
    /// Config file (JSON5, OpenClaw keys) [env: CLAWGATE_CONFIG_PATH, OPENCLAW_CONFIG_PATH]
    #[arg(long)]
    config: Option<PathBuf>,
    /// State directory [env: CLAWGATE_STATE_DIR, OPENCLAW_STATE_DIR] [default: ~/.openclaw]
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct RotateArgs {
    #[command(flatten)]
    common: TlsArgs,
    /// Only generate the next certificate and print its fingerprint; it is served after the
    /// next `clawgate gateway tls rotate`.
    #[arg(long)]
    stage: bool,
}

pub fn run(command: TlsCommand) -> ExitCode {
    match command {
        TlsCommand::Show(args) => show(&args),
        TlsCommand::Rotate(args) => rotate(&args),
    }
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("clawgate: {msg}");
    ExitCode::FAILURE
}

/// The gateway settings, and the TLS paths (the defaults when TLS is not enabled).
fn resolve(args: &TlsArgs) -> Result<(GatewaySettings, tls::TlsPaths), String> {
    let env = config::process_env;
    let (settings, _) =
        clawgate_gateway::local_settings(args.config.as_deref(), args.state_dir.as_deref(), &env)
            .map_err(|e| e.to_string())?;
    let paths = tls::TlsPaths::of_gateway(&settings);
    Ok((settings, paths))
}

fn show(args: &TlsArgs) -> ExitCode {
    let (settings, paths) = match resolve(args) {
        Ok(x) => x,
        Err(e) => return fail(e),
    };
    let enabled = settings.tls.is_some();
    let inv = tls::inventory(&paths);
    if args.json {
        println!(
            "{}",
            json!({
                "enabled": enabled,
                "certPath": paths.cert,
                "keyPath": paths.key,
                "fingerprint": inv.current,
                "next": inv.next,
                "previous": inv.previous,
            })
        );
        return if inv.current.is_some() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    if !enabled {
        println!(
            "gateway tls: not enabled in {} (the gateway serves plain ws://; set gateway.tls.enabled to true)",
            settings.config_path.display()
        );
    }
    let Some(current) = inv.current else {
        return fail(format!(
            "no gateway certificate at {}{}",
            paths.cert.display(),
            if enabled {
                "; it is generated when the gateway starts"
            } else {
                ""
            }
        ));
    };
    println!("certificate: {}", paths.cert.display());
    println!("sha256 fingerprint: {current}");
    println!("  (colon form: {})", tls::colon_fingerprint(&current));
    if let Some(next) = inv.next {
        println!(
            "staged next certificate (not served yet): {next}\n  served after `clawgate gateway tls rotate`"
        );
    }
    if let Some(prev) = inv.previous {
        println!("previous certificate (replaced by the last rotation): {prev}");
    }
    println!("clients pin it with gateway.remote.tlsFingerprint or --tls-fingerprint");
    ExitCode::SUCCESS
}

fn rotate(args: &RotateArgs) -> ExitCode {
    let (settings, paths) = match resolve(&args.common) {
        Ok(x) => x,
        Err(e) => return fail(e),
    };
    let tailnet = (settings.bind == BindMode::Tailnet)
        .then(|| bind::TailnetDetector::from_env(&config::process_env).detect())
        .flatten();
    let sans = tls::extra_sans(tailnet.as_ref(), settings.custom_bind_host);
    let outcome = match tls::rotate(&paths, &sans, args.stage) {
        Ok(o) => o,
        Err(e) => return fail(e),
    };
    match outcome {
        tls::Rotation::Staged { current, next } => {
            if args.common.json {
                println!(
                    "{}",
                    json!({"staged": true, "current": current, "next": next})
                );
            } else {
                println!("staged the next certificate (not served yet): sha256 {next}");
                println!("current certificate (still served): sha256 {current}");
                println!(
                    "Add the next fingerprint to your clients' pins now, then run `clawgate gateway tls rotate` to switch."
                );
            }
        }
        tls::Rotation::Rotated { previous, current } => {
            if args.common.json {
                println!(
                    "{}",
                    json!({"rotated": true, "current": current, "previous": previous})
                );
            } else {
                println!("rotated: the gateway now serves sha256 {current}");
                println!(
                    "previous certificate: sha256 {previous} (kept as {})",
                    paths.previous().0.display()
                );
                println!(
                    "A running gateway switches at its next connection; open connections stay up. Clients pinned to the previous fingerprint re-pin with gateway.remote.tlsFingerprint = \"{current}\"."
                );
            }
        }
    }
    ExitCode::SUCCESS
}
