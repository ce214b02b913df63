//! `sessions list` and `sessions reset`: the agent's sessions on the gateway
//! (`sessions.list`, `sessions.reset`).

use super::conn::{ConnArgs, EXIT_CODES_HELP};
use super::rpc::call_once as call;
use super::table::{Table, s};
use crate::output::{ago, block_on, print_json, print_out};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum SessionsCommand {
    /// List the sessions: key, session id, last update, whether a run is going.
    #[command(after_long_help = EXIT_CODES_HELP)]
    List(ListArgs),
    /// Start the session under KEY afresh (the model forgets the conversation).
    #[command(after_long_help = EXIT_CODES_HELP)]
    Reset(ResetArgs),
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
}

#[derive(Args, Debug)]
pub struct ResetArgs {
    /// The session key, e.g. agent:main:main
    pub key: String,
    #[command(flatten)]
    pub conn: ConnArgs,
}

pub fn run(command: SessionsCommand) -> ExitCode {
    block_on(async {
        match command {
            SessionsCommand::List(args) => list(args).await,
            SessionsCommand::Reset(args) => reset(args).await,
        }
    })
}

/// Whether a row's session has a run going (clawgate's `running`, OpenClaw's `hasActiveRun`).
fn running(row: &Value) -> bool {
    ["running", "hasActiveRun"]
        .iter()
        .any(|k| row.get(*k).and_then(Value::as_bool) == Some(true))
}

pub fn render_list(payload: &Value) -> String {
    let rows = payload
        .get("sessions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if rows.is_empty() {
        return "No sessions.".into();
    }
    let mut t = Table::new(&["Key", "Session id", "Updated", "Running"]);
    for row in &rows {
        t.row(vec![
            s(row, "key").to_owned(),
            s(row, "sessionId").to_owned(),
            ago(row.get("updatedAt").and_then(Value::as_i64)),
            if running(row) { "yes" } else { "no" }.to_owned(),
        ]);
    }
    t.render()
}

async fn list(args: ListArgs) -> ExitCode {
    let payload = match call(&args.conn, "sessions.list", json!({})).await {
        Ok(p) => p,
        Err(code) => return code,
    };
    if args.conn.json {
        print_json(&payload);
    } else {
        print_out(&render_list(&payload));
    }
    ExitCode::SUCCESS
}

async fn reset(args: ResetArgs) -> ExitCode {
    let payload = match call(&args.conn, "sessions.reset", json!({"key": args.key})).await {
        Ok(p) => p,
        Err(code) => return code,
    };
    if args.conn.json {
        print_json(&payload);
    } else {
        let id = payload
            .pointer("/entry/sessionId")
            .and_then(Value::as_str)
            .unwrap_or("");
        print_out(&format!(
            "Reset {} (session id {id}).",
            super::table::clean(&args.key)
        ));
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_shows_key_id_update_and_run() {
        let text = render_list(&json!({"sessions": [
            {"key": "agent:main:main", "sessionId": "s-1", "updatedAt": null, "running": true},
            {"key": "agent:main:explicit:x", "sessionId": "x", "hasActiveRun": false},
        ]}));
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("Key"), "{text}");
        assert!(
            lines[2].starts_with("agent:main:main") && lines[2].ends_with("yes"),
            "{text}"
        );
        assert!(
            lines[3].contains(" x ") && lines[3].ends_with("no"),
            "{text}"
        );
        assert_eq!(render_list(&json!({"sessions": []})), "No sessions.");
    }
}
