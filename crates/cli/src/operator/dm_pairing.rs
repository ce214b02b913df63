//! `pairing list|approve|dismiss`: who may DM the gateway's bots. An unknown sender gets a code;
//! an operator approves it here, through the gateway (`channels.pairing.*`), locally or
//! remotely like every operator command.

use super::conn::{ConnArgs, EXIT_CODES_HELP};
use super::rpc::call_once;
use super::table::{Table, clean, s};
use crate::output::{block_on, print_json, print_out};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum PairingCommand {
    /// List the pending DM pairing requests: channel, code, sender, when they asked.
    #[command(after_long_help = EXIT_CODES_HELP)]
    List(ListArgs),
    /// Approve a code: its sender may DM the bot from now on.
    #[command(after_long_help = EXIT_CODES_HELP)]
    Approve(ApproveArgs),
    /// Dismiss a pending request without approving it.
    #[command(after_long_help = EXIT_CODES_HELP)]
    Dismiss(DismissArgs),
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Only this channel's requests (telegram).
    pub channel: Option<String>,
    #[command(flatten)]
    pub conn: ConnArgs,
}

#[derive(Args, Debug)]
pub struct ApproveArgs {
    /// The channel (telegram).
    pub channel: String,
    /// The code the sender was given.
    pub code: String,
    /// Tell the sender they were approved.
    #[arg(long)]
    pub notify: bool,
    #[command(flatten)]
    pub conn: ConnArgs,
}

#[derive(Args, Debug)]
pub struct DismissArgs {
    /// The channel (telegram).
    pub channel: String,
    /// The code the sender was given.
    pub code: String,
    #[command(flatten)]
    pub conn: ConnArgs,
}

pub fn run(command: PairingCommand) -> ExitCode {
    block_on(async {
        match command {
            PairingCommand::List(args) => list(args).await,
            PairingCommand::Approve(args) => approve(args).await,
            PairingCommand::Dismiss(args) => dismiss(args).await,
        }
    })
}

pub fn render_list(payload: &Value) -> String {
    let rows = payload
        .get("requests")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if rows.is_empty() {
        return "No pending DM pairing requests.".into();
    }
    let mut t = Table::new(&["Channel", "Code", "Sender", "Name", "Asked"]);
    for row in &rows {
        let asked = row
            .get("createdAt")
            .and_then(Value::as_str)
            .unwrap_or_default();
        t.row(vec![
            s(row, "channel").to_owned(),
            s(row, "requestId").to_owned(),
            s(row, "senderId").to_owned(),
            row.pointer("/metadata/name")
                .and_then(Value::as_str)
                .map(clean)
                .unwrap_or_default(),
            clean(asked),
        ]);
    }
    let first = rows.first().map(|r| s(r, "requestId")).unwrap_or_default();
    format!(
        "{}\nApprove one with: clawgate pairing approve <channel> <code>   (e.g. clawgate pairing approve telegram {})",
        t.render(),
        clean(first)
    )
}

async fn list(args: ListArgs) -> ExitCode {
    let params = match &args.channel {
        Some(c) => json!({"channel": c}),
        None => json!({}),
    };
    let payload = match call_once(&args.conn, "channels.pairing.list", params).await {
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

async fn approve(args: ApproveArgs) -> ExitCode {
    let params = json!({"channel": args.channel, "requestId": args.code, "notify": args.notify});
    let payload = match call_once(&args.conn, "channels.pairing.approve", params).await {
        Ok(p) => p,
        Err(code) => return code,
    };
    if args.conn.json {
        print_json(&payload);
    } else {
        let notified = match payload.get("notification").and_then(Value::as_str) {
            Some("sent") => " They were told.",
            Some("failed") => " Telling them failed (see the gateway's log).",
            _ => "",
        };
        print_out(&format!(
            "Approved {} sender {}: they may message the bot now.{notified}",
            clean(&args.channel),
            clean(s(&payload, "senderId")),
        ));
    }
    ExitCode::SUCCESS
}

async fn dismiss(args: DismissArgs) -> ExitCode {
    let params = json!({"channel": args.channel, "requestId": args.code});
    let payload = match call_once(&args.conn, "channels.pairing.dismiss", params).await {
        Ok(p) => p,
        Err(code) => return code,
    };
    if args.conn.json {
        print_json(&payload);
    } else {
        print_out(&format!(
            "Dismissed the request of {} sender {}.",
            clean(&args.channel),
            clean(s(&payload, "senderId"))
        ));
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_shows_each_request_and_how_to_approve() {
        let out = render_list(&json!({"requests": [{
            "requestId": "ABCD2345", "channel": "telegram", "senderId": "4242",
            "metadata": {"name": "Ada"}, "createdAt": "2026-12-07T22:05:37.130Z",
        }]}));
        for part in [
            "telegram",
            "ABCD2345",
            "4242",
            "Ada",
            "clawgate pairing approve telegram ABCD2345",
        ] {
            assert!(out.contains(part), "{part} missing: {out}");
        }
        assert_eq!(
            render_list(&json!({"requests": []})),
            "No pending DM pairing requests."
        );
    }
}
