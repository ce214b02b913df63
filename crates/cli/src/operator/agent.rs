//! `agent --message`: one agent turn through the gateway (`agent`), its reply streamed to
//! stdout and its tool calls to stderr as they run; `--json` prints the final answer's
//! payload instead, as `openclaw agent --json` does.

use super::conn::{ConnArgs, EXIT_CODES_HELP};
use super::session::{ConnSpec, open_session};
use super::turn_view::TurnView;
use crate::output::{Failure, FailureKind, Report, block_on, print_json};
use clap::Args;
use clawgate_client::RpcError;
use clawgate_client::failure;
use clawgate_client::turn::{AgentParams, TOOL_EVENTS_CAP, run_agent};
use clawgate_protocol::scopes;
use serde_json::{Value, json};
use std::process::ExitCode;
use std::time::Duration;

/// The agent a turn goes to when no session is named (OpenClaw's default agent).
const DEFAULT_AGENT: &str = "main";

/// The budget for connecting (`--timeout` is the run's time limit here).
const CONNECT_BUDGET_MS: u64 = 10_000;

/// How long past the run's own time limit to wait for the gateway's final answer.
const ANSWER_GRACE: Duration = Duration::from_secs(30);

#[derive(Args, Debug)]
#[command(
    after_long_help = EXIT_CODES_HELP,
    mut_arg("timeout", |a| a
        .value_name("SECONDS")
        .default_value("600")
        .help("The run's time limit in seconds (connecting gets 10 s)")),
    mut_arg("json", |a| a.help("Print the final answer's payload as JSON instead of streaming the reply")),
)]
pub struct AgentArgs {
    /// The message for the agent
    #[arg(long, short = 'm', value_name = "TEXT")]
    pub message: String,
    /// Run in this session (e.g. agent:main:main)
    #[arg(long, value_name = "KEY")]
    pub session_key: Option<String>,
    /// Run in this agent's main session (the default: main, unless --session-key or
    /// --session-id is given)
    #[arg(long = "agent", value_name = "ID")]
    pub agent: Option<String>,
    /// Run in the session with this id (agent:<agent>:explicit:<id>)
    #[arg(long, value_name = "ID")]
    pub session_id: Option<String>,
    #[command(flatten)]
    pub conn: ConnArgs,
}

pub fn run(args: AgentArgs) -> ExitCode {
    block_on(agent_async(args))
}

fn params(args: &AgentArgs) -> AgentParams {
    let mut p = AgentParams::new(&args.message);
    p.session_key = args.session_key.clone();
    p.session_id = args.session_id.clone();
    p.agent_id = args.agent.clone().or_else(|| {
        (args.session_key.is_none() && args.session_id.is_none()).then(|| DEFAULT_AGENT.into())
    });
    p.timeout_secs = args.conn.timeout;
    p
}

/// A run that ended in an error: its message, exit 1.
fn run_failed(error: &clawgate_client::WireError, payload: &Value) -> Failure {
    Failure {
        kind: FailureKind::Rpc,
        message: format!("the agent run failed: {}", error.message),
        fixes: Vec::new(),
        json: json!({"type": "agent_run_failed", "code": error.code, "message": error.message,
            "runId": payload.get("runId"), "status": payload.get("status"), "payload": payload}),
    }
}

async fn agent_async(args: AgentArgs) -> ExitCode {
    let json_out = args.conn.json;
    if args.message.trim().is_empty() {
        return Failure::usage("--message is empty".into(), Vec::new()).report(json_out);
    }
    let params = params(&args);
    let conn = ConnArgs {
        timeout: CONNECT_BUDGET_MS,
        ..args.conn.clone()
    };
    let spec = ConnSpec {
        caps: vec![TOOL_EVENTS_CAP.to_owned()],
        ..ConnSpec::cli(vec![scopes::WRITE.to_owned()])
    };
    let mut session = match open_session(&conn, spec).await {
        Ok(s) => s,
        Err(b) => return b.0.report(json_out),
    };
    let mut view = TurnView::new();
    let limit = Duration::from_secs(params.timeout_secs) + ANSWER_GRACE;
    let answer = tokio::time::timeout(
        limit,
        run_agent(&mut session.client, &params, &mut |u| {
            if !json_out {
                view.show(u);
            }
        }),
    )
    .await;
    if !json_out {
        view.finish();
    }
    let outcome = match answer {
        Err(_) => Err(failure::call_timeout(
            "agent",
            limit.as_millis() as u64,
            &session.target,
        )),
        Ok(Ok(payload)) => Ok(payload),
        Ok(Err(RpcError::Gateway {
            error,
            payload: Some(payload),
        })) => Err(run_failed(&error, &payload)),
        Ok(Err(e)) => Err(session.rpc_failure("agent", &e)),
    };
    session.client.close().await;
    match outcome {
        Ok(payload) => {
            if json_out {
                print_json(&payload);
            }
            ExitCode::SUCCESS
        }
        Err(f) => f.report(json_out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use clawgate_client::turn::DEFAULT_AGENT_TIMEOUT_SECS;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: AgentArgs,
    }

    fn parse(argv: &[&str]) -> AgentArgs {
        Cli::try_parse_from(std::iter::once("agent").chain(argv.iter().copied()))
            .map(|c| c.args)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_params_the_real_cli_sends() {
        let p = params(&parse(&["-m", "hi"]));
        assert_eq!(p.timeout_secs, DEFAULT_AGENT_TIMEOUT_SECS);
        assert_eq!(p.agent_id.as_deref(), Some("main"));
        let p = params(&parse(&[
            "-m",
            "hi",
            "--session-id",
            "x",
            "--timeout",
            "30",
        ]));
        assert_eq!((p.agent_id, p.session_id.as_deref()), (None, Some("x")));
        assert_eq!(p.timeout_secs, 30);
        let p = params(&parse(&["-m", "hi", "--session-key", "agent:main:k"]));
        assert_eq!(p.agent_id, None);
        assert_eq!(p.session_key.as_deref(), Some("agent:main:k"));
    }
}
