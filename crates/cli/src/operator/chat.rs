//! `chat`: a conversation with the agent over the gateway. Each line read is sent with
//! `chat.send` and its reply streamed; Ctrl-C during a reply aborts it (`chat.abort`),
//! Ctrl-C or Ctrl-D at the prompt ends the chat. Lines from a pipe work the same way, each
//! sent once the reply to the one before has ended.

use super::conn::{ConnArgs, EXIT_CODES_HELP};
use super::session::{ConnSpec, open_session};
use super::table::clean;
use super::turn_view::TurnView;
use crate::output::{EXIT_RPC, Failure, Report, block_on};
use clap::Args;
use clawgate_client::RpcError;
use clawgate_client::turn::{TOOL_EVENTS_CAP, TurnEnd, chat_turn};
use clawgate_protocol::scopes;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use tokio::sync::mpsc;

/// The main session of OpenClaw's default agent.
const DEFAULT_SESSION: &str = "agent:main:main";

#[derive(Args, Debug)]
#[command(after_long_help = EXIT_CODES_HELP)]
pub struct ChatArgs {
    /// The session to talk in
    #[arg(long, value_name = "KEY", default_value = DEFAULT_SESSION)]
    pub session_key: String,
    #[command(flatten)]
    pub conn: ConnArgs,
}

pub fn run(args: ChatArgs) -> ExitCode {
    block_on(chat_async(args))
}

/// Lines of stdin, read on a thread of their own (a blocking read must not hold up the
/// runtime or its shutdown), at most one ahead of the chat.
fn stdin_lines() -> mpsc::Receiver<std::io::Result<String>> {
    let (tx, rx) = mpsc::channel(1);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            if tx.blocking_send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// The next Ctrl-C; never, if it cannot be listened for.
async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn prompt() {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(b"> ");
    let _ = out.flush();
}

async fn chat_async(args: ChatArgs) -> ExitCode {
    if args.conn.json {
        return Failure::usage(
            "chat has no JSON output".into(),
            vec!["`clawgate agent --message <text> --json` prints one turn as JSON".into()],
        )
        .report(false);
    }
    let interactive = std::io::stdin().is_terminal();
    let spec = ConnSpec {
        caps: vec![TOOL_EVENTS_CAP.to_owned()],
        ..ConnSpec::cli(vec![scopes::WRITE.to_owned()])
    };
    let mut session = match open_session(&args.conn, spec).await {
        Ok(s) => s,
        Err(b) => return b.0.report(false),
    };
    if interactive {
        eprintln!(
            "Chatting in {} on {}. Ctrl-C stops a reply; Ctrl-D or Ctrl-C at the prompt quits.",
            clean(&args.session_key),
            session.target.url
        );
    }
    let mut lines = stdin_lines();
    let mut failed = false;
    let exit = loop {
        if interactive {
            prompt();
        }
        let line = tokio::select! {
            line = lines.recv() => line,
            () = ctrl_c() => {
                println!();
                break None;
            }
        };
        let line = match line {
            None => {
                if interactive {
                    println!();
                }
                break None;
            }
            Some(Err(e)) => {
                break Some(Failure::usage(
                    format!("cannot read stdin: {e}"),
                    Vec::new(),
                ));
            }
            Some(Ok(line)) => line,
        };
        let message = line.trim();
        if message.is_empty() {
            continue;
        }
        let mut view = TurnView::new();
        let turn = chat_turn(
            &mut session.client,
            &args.session_key,
            message,
            ctrl_c(),
            &mut |u| view.show(u),
        )
        .await;
        view.finish();
        match turn {
            Ok(TurnEnd::Final { .. }) => {}
            Ok(TurnEnd::Aborted { .. }) => view.note("(reply aborted)"),
            Ok(TurnEnd::Error { message }) => {
                eprintln!("error: {}", clean(&message));
                failed = true;
            }
            Err(e @ RpcError::Closed { .. }) => break Some(session.rpc_failure("chat.send", &e)),
            Err(e) => {
                session.rpc_failure("chat.send", &e).print_human();
                failed = true;
            }
        }
    };
    session.client.close().await;
    match exit {
        Some(f) => f.report(false),
        // At a terminal the person saw each error; a script learns of them by the exit code.
        None if failed && !interactive => ExitCode::from(EXIT_RPC),
        None => ExitCode::SUCCESS,
    }
}
