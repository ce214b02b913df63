//! `gateway discover`: the gateways OpenClaw's Bonjour browse finds on this network.

use super::bonjour::{beacon_lines, browse};
use crate::output::{Failure, Report, block_on, print_json, print_out};
use clap::Args;
use clawgate_gateway::discovery::{self, Beacon};
use serde_json::{Value, json};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct DiscoverArgs {
    /// How long to listen for gateways, in milliseconds
    #[arg(long, value_name = "MS", default_value = "2000")]
    pub timeout: String,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// OpenClaw's `--timeout` rule: a positive whole number of milliseconds.
fn parse_timeout(raw: &str) -> Result<u64, Failure> {
    let value = raw.trim();
    match value.parse::<u64>() {
        Ok(ms) if ms > 0 && !value.starts_with('+') => Ok(ms),
        _ => {
            let received = if value.is_empty() {
                String::new()
            } else {
                format!(" Received: {value:?}.")
            };
            let message = format!(
                "Invalid --timeout. Use a positive millisecond value, e.g. --timeout 30000.{received}"
            );
            Err(Failure::usage(message, Vec::new()))
        }
    }
}

/// A beacon as `gateway discover --json` prints it: OpenClaw's fields plus `wsUrl`.
pub fn beacon_json(b: &Beacon) -> Value {
    let mut v = serde_json::to_value(b).unwrap_or_else(|_| json!({}));
    v["wsUrl"] = json!(b.ws_url());
    v
}

pub fn run(args: DiscoverArgs) -> ExitCode {
    block_on(discover(args))
}

async fn discover(args: DiscoverArgs) -> ExitCode {
    let timeout = match parse_timeout(&args.timeout) {
        Ok(ms) => ms,
        Err(f) => return f.report(args.json),
    };
    let found = match browse(Duration::from_millis(timeout)).await {
        Ok(found) => found,
        Err(f) => return f.report(args.json),
    };
    if args.json {
        print_json(
            &json!({"timeoutMs": timeout, "domains": [discovery::DOMAIN],
            "count": found.len(), "beacons": found.iter().map(beacon_json).collect::<Vec<_>>()}),
        );
        return ExitCode::SUCCESS;
    }
    let mut text = vec![
        "Gateway Discovery".to_owned(),
        format!(
            "Found {} gateway(s) · domains: {}",
            found.len(),
            discovery::DOMAIN
        ),
    ];
    text.extend(found.iter().flat_map(beacon_lines));
    print_out(&text.join("\n"));
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout(" 1500 ").ok(), Some(1500));
        for bad in ["0", "-5", "1.5", "soon", ""] {
            assert!(parse_timeout(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_timeout("soon").err().map(|f| f.message),
            Some(
                "Invalid --timeout. Use a positive millisecond value, e.g. --timeout 30000. Received: \"soon\"."
                    .into()
            )
        );
    }
}
