//! `health` and `gateway health`: the gateway's own health report.

use super::conn::{ConnArgs, EXIT_CODES_HELP};
use super::render;
use super::session::{ConnSpec, open_session};
use crate::output::{EXIT_RPC, Report, block_on, print_json, print_out};
use clap::Args;
use clawgate_protocol::scopes;
use serde_json::Value;
use std::process::ExitCode;

#[derive(Args, Debug)]
#[command(after_long_help = EXIT_CODES_HELP)]
pub struct HealthArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
}

pub fn run(args: HealthArgs) -> ExitCode {
    block_on(health_async(args))
}

async fn health_async(args: HealthArgs) -> ExitCode {
    let json_out = args.conn.json;
    let session = match open_session(&args.conn, ConnSpec::cli(vec![scopes::READ.to_owned()])).await
    {
        Ok(s) => s,
        Err(b) => return b.0.report(json_out),
    };
    let result = session.call_required("health", None, false).await;
    session.client.close().await;
    let (payload, _) = match result {
        Ok(r) => r,
        Err(f) => return f.report(json_out),
    };
    if json_out {
        print_json(&payload);
    } else {
        print_out(&render::health(
            &payload,
            &session.hello,
            &session.target,
            session.connect_ms,
        ));
    }
    if payload.get("ok") == Some(&Value::Bool(false)) {
        if !json_out {
            eprintln!("error: the gateway reports itself unhealthy (health ok=false)");
        }
        return ExitCode::from(EXIT_RPC);
    }
    ExitCode::SUCCESS
}
