//! `gateway call`: one RPC method, its result printed as JSON.

use super::conn::{ConnArgs, EXIT_CODES_HELP};
use super::session::{ConnSpec, connect_session};
use super::target;
use crate::output::{Failure, Report, block_on, print_json};
use clap::Args;
use clawgate_client::failure;
use clawgate_client::session::least_scopes;
use serde_json::Value;
use std::process::ExitCode;

#[derive(Args, Debug)]
#[command(after_long_help = EXIT_CODES_HELP)]
pub struct CallArgs {
    /// Method name, e.g. health, status, node.list, config.get
    pub method: String,
    /// Params as a JSON value
    #[arg(long, value_name = "JSON", default_value = "{}")]
    pub params: String,
    /// Wait past an interim {"status":"accepted"} answer for the final one (agent runs)
    #[arg(long)]
    pub expect_final: bool,
    /// Fail before connecting if the resolved gateway URL differs from this one (the call
    /// keeps the configured authentication)
    #[arg(long, value_name = "URL")]
    pub expect_url: Option<String>,
    #[command(flatten)]
    pub conn: ConnArgs,
}

pub fn run(args: CallArgs) -> ExitCode {
    block_on(call_async(args))
}

async fn call_async(args: CallArgs) -> ExitCode {
    let params: Value = match serde_json::from_str(&args.params) {
        Ok(v) => v,
        Err(e) => {
            return Failure::usage(
                format!("--params must be valid JSON: {e}"),
                vec![r#"for example --params '{"probe":true}'"#.into()],
            )
            .report(true);
        }
    };
    let target = match target::resolve(&args.conn) {
        Ok(t) => t,
        Err(f) => return f.report(true),
    };
    // Compared as OpenClaw does, exactly: the caller names the URL it selected before.
    if let Some(expected) = &args.expect_url
        && *expected != target.url
    {
        return failure::destination_changed(expected, &target).report(true);
    }
    let spec = ConnSpec::cli(least_scopes(&args.method));
    let session = match connect_session(&args.conn, spec, target).await {
        Ok(s) => s,
        Err(b) => return b.0.report(true),
    };
    let result = session
        .call_required(&args.method, Some(params), args.expect_final)
        .await;
    session.client.close().await;
    match result {
        Ok((payload, _)) => {
            print_json(&payload);
            ExitCode::SUCCESS
        }
        Err(f) => f.report(true),
    }
}
