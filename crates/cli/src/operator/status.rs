//! `status`: the gateway's status report; `--deep` also asks presence, channels, a fresh
//! health check and the last heartbeat (and, for this machine's gateway, the exposure
//! report of its config).

use super::conn::{ConnArgs, EXIT_CODES_HELP};
use super::render::{self, DEEP_CALLS};
use super::rpc::CallOutcome;
use super::session::{ConnSpec, open_session};
use crate::output::{EXIT_OK, Failure, Report, block_on, exit_code, print_json, print_out};
use clap::Args;
use clawgate_client::failure;
use clawgate_protocol::scopes;
use serde_json::{Value, json};
use std::process::ExitCode;

#[derive(Args, Debug)]
#[command(after_long_help = EXIT_CODES_HELP)]
pub struct StatusArgs {
    /// Also ask presence, channels (without probing them), a fresh health check and the last
    /// heartbeat
    #[arg(long)]
    pub deep: bool,
    #[command(flatten)]
    pub conn: ConnArgs,
}

pub fn run(args: StatusArgs) -> ExitCode {
    block_on(status_async(args))
}

async fn status_async(args: StatusArgs) -> ExitCode {
    let json_out = args.conn.json;
    let session = match open_session(&args.conn, ConnSpec::cli(vec![scopes::READ.to_owned()])).await
    {
        Ok(s) => s,
        Err(b) => return b.0.report(json_out),
    };
    let status_call = session.call("status", None, false);
    let deep = async {
        if !args.deep {
            return None;
        }
        Some(tokio::join!(
            session.call("system-presence", None, false),
            session.call(
                "channels.status",
                Some(json!({"probe": false, "timeoutMs": 8000})),
                false
            ),
            session.call("health", Some(json!({"probe": true})), false),
            session.call("last-heartbeat", Some(json!({})), false),
        ))
    };
    let (status, deep) = tokio::join!(status_call, deep);
    let gateway = session.gateway_json();
    session.client.close().await;

    let status_payload = match status {
        CallOutcome::Ok(v, _) => v,
        CallOutcome::Failed(e, _) => {
            return failure::rpc_failure("status", &e, &session.hello.scopes(), &session.target)
                .report(json_out);
        }
        CallOutcome::TimedOut => {
            return failure::call_timeout("status", session.timeout_ms, &session.target)
                .report(json_out);
        }
    };
    let deep: Option<Vec<CallOutcome>> = deep.map(|(a, b, c, d)| vec![a, b, c, d]);

    // The first failed deep call decides the exit code; the report still shows everything.
    let mut exit = EXIT_OK;
    let mut first_failure: Option<Failure> = None;
    let mut errors = serde_json::Map::new();
    let mut deep_json = serde_json::Map::new();
    if let Some(outcomes) = &deep {
        for ((method, key), o) in DEEP_CALLS.iter().zip(outcomes) {
            match o {
                CallOutcome::Ok(v, _) => {
                    deep_json.insert((*key).to_owned(), v.clone());
                }
                CallOutcome::Failed(e, _) => {
                    let f =
                        failure::rpc_failure(method, e, &session.hello.scopes(), &session.target);
                    errors.insert((*method).to_owned(), f.json.clone());
                    if first_failure.is_none() {
                        exit = exit_code(f.kind);
                        first_failure = Some(f);
                    }
                }
                CallOutcome::TimedOut => {
                    let f = failure::call_timeout(method, session.timeout_ms, &session.target);
                    errors.insert((*method).to_owned(), f.json.clone());
                    if first_failure.is_none() {
                        exit = exit_code(f.kind);
                        first_failure = Some(f);
                    }
                }
            }
        }
    }

    // --deep on this machine's gateway: the exposure report of its config too.
    let exposure = (args.deep && session.target.source == clawgate_config::TargetSource::Local)
        .then(|| crate::exposure_view::local_exposure(session.target.config_path.as_deref()))
        .flatten();
    if json_out {
        let mut report =
            json!({"ok": exit == EXIT_OK, "gateway": gateway, "status": status_payload});
        if deep.is_some() {
            report["deep"] = Value::Object(deep_json);
            report["errors"] = Value::Object(errors);
        }
        if let Some((v, _)) = &exposure {
            report["exposure"] = v.clone();
        }
        print_json(&report);
    } else {
        let mut text = render::status(
            &session.hello,
            &session.target,
            session.connect_ms,
            &status_payload,
            deep.as_deref(),
        );
        if let Some((_, t)) = &exposure {
            text.push('\n');
            text.push_str(t);
        }
        print_out(&text);
    }
    if let Some(f) = first_failure {
        f.print_human();
    }
    ExitCode::from(exit)
}
