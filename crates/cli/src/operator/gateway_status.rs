//! `gateway status`: whether the gateway is reachable, its version and this connection's
//! scopes; for this machine's gateway also its TLS fingerprint and its systemd service.

use super::conn::{ConnArgs, EXIT_CODES_HELP};
use super::render;
use super::session::{ConnSpec, failed_connection_json, open_session};
use super::target::{self, Target};
use crate::output::{FailureKind, Report, block_on, exit_code, print_json, print_out};
use clap::Args;
use clawgate_protocol::scopes;
use serde_json::{Value, json};
use std::process::ExitCode;

#[derive(Args, Debug)]
#[command(after_long_help = EXIT_CODES_HELP)]
pub struct GatewayStatusArgs {
    /// Also call `status` and fail unless it answers: connecting alone does not show that
    /// the gateway serves requests (OpenClaw's read probe)
    #[arg(long)]
    pub require_rpc: bool,
    #[command(flatten)]
    pub conn: ConnArgs,
}

pub fn run(args: GatewayStatusArgs) -> ExitCode {
    block_on(gateway_status_async(args))
}

async fn gateway_status_async(args: GatewayStatusArgs) -> ExitCode {
    let json_out = args.conn.json;
    // `--require-rpc` reads as any CLI command does (OpenClaw's `callGateway`): a probe
    // connection may be granted no scope at all.
    let spec = if args.require_rpc {
        ConnSpec::cli(vec![scopes::READ.to_owned()])
    } else {
        ConnSpec::probe()
    };
    let session = match open_session(&args.conn, spec).await {
        Ok(s) => s,
        Err(b) => {
            let (f, t) = *b;
            // A usage failure has no real target, so no service to report either.
            let service = (f.kind != FailureKind::Usage)
                .then(|| local_service(&t))
                .flatten();
            if json_out && f.kind != FailureKind::Usage {
                let mut report = failed_connection_json(&f, &t);
                if let Some(s) = &service {
                    report["service"] = s.json();
                }
                print_json(&report);
                f.print_human();
                return ExitCode::from(exit_code(f.kind));
            }
            if let Some(s) = &service {
                print_out(s.text());
            }
            return f.report(json_out);
        }
    };
    let rpc = if args.require_rpc {
        Some(session.call_required("status", None, false).await)
    } else {
        None
    };
    let mut report = json!({"ok": true});
    if let (Value::Object(r), Value::Object(g)) = (&mut report, session.gateway_json()) {
        r.extend(g);
    }
    let fingerprint = local_tls_fingerprint(&session.target);
    if let Some(fp) = &fingerprint {
        report["tlsFingerprint"] = json!(fp);
    }
    match &rpc {
        Some(Ok(_)) => report["rpc"] = json!({"ok": true, "method": "status"}),
        Some(Err(f)) => {
            report["ok"] = json!(false);
            report["rpc"] = json!({"ok": false, "method": "status", "error": f.json});
        }
        None => {}
    }
    let service = local_service(&session.target);
    if let Some(s) = &service {
        report["service"] = s.json();
    }
    if json_out {
        print_json(&report);
    } else {
        let mut text = render::gateway_status(&session.hello, &session.target, session.connect_ms);
        if let Some(fp) = &fingerprint {
            text.push_str(&format!("TLS fingerprint: sha256:{fp} (pin it with gateway.remote.tlsFingerprint or --tls-fingerprint)\n"));
        }
        if let Some(Ok(_)) = &rpc {
            text.push_str("Read probe: ok (status)\n");
        }
        if let Some(s) = &service {
            text.push_str(s.text());
        }
        print_out(&text);
    }
    session.client.close().await;
    match rpc {
        Some(Err(f)) => {
            f.print_human();
            ExitCode::from(exit_code(f.kind))
        }
        _ => ExitCode::SUCCESS,
    }
}

/// The systemd service of this machine's gateway, when that gateway is the target.
fn local_service(target: &Target) -> Option<clawgate_service::status::ServiceStatus> {
    (target.source == clawgate_config::TargetSource::Local)
        .then(|| clawgate_service::status::inspect(&clawgate_config::process_env))
        .flatten()
}

/// The certificate fingerprint of this machine's gateway when the target is it and it speaks
/// TLS (from the local config's `gateway.tls`).
fn local_tls_fingerprint(target: &Target) -> Option<String> {
    if target.source != clawgate_config::TargetSource::Local || !target.url.starts_with("wss://") {
        return None;
    }
    target::local_tls_fingerprint(target.config_path.as_deref())
}
