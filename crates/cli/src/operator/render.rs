//! Human output of the operator commands. Every field the gateway sends is optional, so each
//! line appears only when its data is there.

use super::rpc::CallOutcome;
use super::session::capability;
use super::target::Target;
use crate::output::{Failure, duration, now_ms};
use clawgate_client::HelloOk;
use serde_json::Value;
use std::fmt::Write;

fn num(v: &Value) -> Option<String> {
    if let Some(i) = v.as_i64() {
        return Some(i.to_string());
    }
    v.as_f64().map(|f| {
        let s = format!("{f:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    })
}

fn human_capability(granted: &[String]) -> &'static str {
    match capability(granted) {
        "admin_capable" => "admin-capable",
        "write_capable" => "write-capable",
        "read_only" => "read-only",
        _ => "connected-no-operator-scope",
    }
}

fn scopes_text(granted: &[String]) -> String {
    if granted.is_empty() {
        "(none)".into()
    } else {
        granted.join(", ")
    }
}

fn version(hello: &HelloOk) -> &str {
    hello.server_version().unwrap_or("unknown")
}

/// `Gateway event loop: ok max=24ms p99=24ms util=0.016 cpu=0.017`.
fn event_loop(el: &Value) -> Option<String> {
    let el = el.as_object()?;
    let state = if el.get("degraded").and_then(Value::as_bool) == Some(true) {
        let reasons: Vec<&str> = el
            .get("reasons")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if reasons.is_empty() {
            "degraded".to_owned()
        } else {
            format!("degraded ({})", reasons.join(", "))
        }
    } else {
        "ok".to_owned()
    };
    let mut line = state;
    for (key, label, unit) in [
        ("delayMaxMs", "max", "ms"),
        ("delayP99Ms", "p99", "ms"),
        ("utilization", "util", ""),
        ("cpuCoreRatio", "cpu", ""),
    ] {
        if let Some(v) = el.get(key).and_then(num) {
            let _ = write!(line, " {label}={v}{unit}");
        }
    }
    Some(line)
}

/// The calls of `status --deep`, and the key of each answer in its report.
pub const DEEP_CALLS: [(&str, &str); 4] = [
    ("system-presence", "presence"),
    ("channels.status", "channels"),
    ("health", "health"),
    ("last-heartbeat", "lastHeartbeat"),
];

/// One line per channel: `telegram (Telegram): running`.
fn channel_lines(health: &Value) -> Vec<String> {
    let Some(channels) = health.get("channels").and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut order: Vec<String> = health
        .get("channelOrder")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    for k in channels.keys() {
        if !order.contains(k) {
            order.push(k.clone());
        }
    }
    order
        .iter()
        .filter_map(|id| {
            let ch = channels.get(id)?;
            let label = health
                .pointer(&format!("/channelLabels/{id}"))
                .and_then(Value::as_str)
                .unwrap_or(id);
            let mut state = match (
                ch.get("running").and_then(Value::as_bool),
                ch.get("configured").and_then(Value::as_bool),
            ) {
                (Some(true), _) => "running".to_owned(),
                (_, Some(false)) => "not configured".to_owned(),
                (Some(false), Some(true)) => "configured, not running".to_owned(),
                (_, Some(true)) => "configured".to_owned(),
                _ => "present".to_owned(),
            };
            if let Some(err) = ch.get("lastError").and_then(Value::as_str) {
                let _ = write!(state, " (error: {err})");
            }
            Some(format!("{label}: {state}"))
        })
        .collect()
}

fn agents_lines(health: &Value) -> Vec<String> {
    let mut lines = Vec::new();
    let Some(agents) = health.get("agents").and_then(Value::as_array) else {
        if let Some(s) = health.get("heartbeatSeconds").and_then(Value::as_u64) {
            lines.push(format!("Heartbeat interval: {}", duration(s * 1000)));
        }
        return lines;
    };
    let names: Vec<String> = agents
        .iter()
        .filter_map(|a| {
            let id = a.get("agentId").and_then(Value::as_str)?;
            Some(
                if a.get("isDefault").and_then(Value::as_bool) == Some(true) {
                    format!("{id} (default)")
                } else {
                    id.to_owned()
                },
            )
        })
        .collect();
    if !names.is_empty() {
        lines.push(format!("Agents: {}", names.join(", ")));
    }
    for a in agents {
        let id = a.get("agentId").and_then(Value::as_str).unwrap_or("?");
        let hb = a.get("heartbeat");
        if let Some(every) = hb.and_then(|h| h.get("every")).and_then(Value::as_str) {
            let enabled = hb.and_then(|h| h.get("enabled")).and_then(Value::as_bool);
            if enabled == Some(false) {
                lines.push(format!("Heartbeat: disabled ({id})"));
            } else {
                lines.push(format!("Heartbeat interval: {every} ({id})"));
            }
        }
        if let Some(path) = a.pointer("/sessions/path").and_then(Value::as_str) {
            let count = a
                .pointer("/sessions/count")
                .and_then(Value::as_u64)
                .map(|c| format!(" ({c} entries)"))
                .unwrap_or_default();
            lines.push(format!("Session store ({id}): {path}{count}"));
        }
    }
    lines
}

pub fn health(payload: &Value, hello: &HelloOk, target: &Target, connect_ms: u64) -> String {
    let mut out = String::new();
    let ok = match payload.get("ok").and_then(Value::as_bool) {
        Some(true) => "OK",
        Some(false) => "NOT OK",
        None => "answered",
    };
    let _ = writeln!(
        out,
        "Gateway: {ok} · {} · version {} · {connect_ms}ms to connect",
        target.url,
        version(hello)
    );
    if let Some(line) = payload.get("eventLoop").and_then(event_loop) {
        let _ = writeln!(out, "Gateway event loop: {line}");
    }
    if let Some(d) = payload.get("durationMs").and_then(num) {
        let _ = writeln!(out, "Gateway probe duration: {d}ms");
    }
    if payload.get("channels").is_some() {
        let channels = channel_lines(payload);
        if channels.is_empty() {
            let _ = writeln!(out, "Channels: none configured");
        } else {
            let _ = writeln!(out, "Channels: {}", channels.join(" · "));
        }
    }
    for line in agents_lines(payload) {
        let _ = writeln!(out, "{line}");
    }
    out
}

fn connection_block(out: &mut String, hello: &HelloOk, target: &Target, connect_ms: u64) {
    let granted = hello.scopes();
    let _ = writeln!(out, "Target: {}", target.describe());
    let _ = writeln!(out, "Reachable: yes ({connect_ms}ms to hello)");
    let _ = writeln!(
        out,
        "Gateway version: {}{}",
        version(hello),
        hello
            .protocol()
            .map(|p| format!(" · protocol {p}"))
            .unwrap_or_default()
    );
    if let Some(id) = hello.conn_id() {
        let _ = writeln!(out, "Connection: {id}");
    }
    if let Some(up) = hello.uptime_ms() {
        let _ = writeln!(out, "Uptime: {}", duration(up));
    }
    let _ = writeln!(
        out,
        "Auth: {} · role {} · scopes {}",
        hello.auth_method().unwrap_or("unknown"),
        hello.role().unwrap_or("unknown"),
        scopes_text(&granted)
    );
    let _ = writeln!(out, "Capability: {}", human_capability(&granted));
}

pub fn gateway_status(hello: &HelloOk, target: &Target, connect_ms: u64) -> String {
    let mut out = String::new();
    connection_block(&mut out, hello, target, connect_ms);
    out
}

fn outcome_summary(method: &str, o: &CallOutcome) -> String {
    match o {
        CallOutcome::Ok(v, ms) => {
            let extra = match (method, v) {
                (_, Value::Array(a)) => format!(", {} entries", a.len()),
                ("health", v) => match v.get("ok").and_then(Value::as_bool) {
                    Some(true) => ", healthy".into(),
                    Some(false) => ", NOT healthy".into(),
                    None => String::new(),
                },
                _ => String::new(),
            };
            format!("ok ({ms}ms{extra})")
        }
        CallOutcome::Failed(e, _) => match e.wire() {
            Some(w) => format!("failed: {} {}", w.code, w.message),
            None => format!("failed: {e}"),
        },
        CallOutcome::TimedOut => "failed: no answer in time".into(),
    }
}

pub fn probe(
    hello: &HelloOk,
    target: &Target,
    connect_ms: u64,
    methods: &[&str],
    outcomes: &[CallOutcome],
    warnings: &[Value],
) -> String {
    let mut out = String::from("Gateway probe\n");
    connection_block(&mut out, hello, target, connect_ms);
    let _ = writeln!(out, "Calls:");
    for (m, o) in methods.iter().zip(outcomes) {
        let _ = writeln!(out, "  {m:<16} {}", outcome_summary(m, o));
    }
    for w in warnings {
        if let Some(msg) = w.get("message").and_then(Value::as_str) {
            let _ = writeln!(out, "Warning: {msg}");
        }
    }
    out
}

/// A probed target for [`probe_targets`]: hello and time to hello, or the failure.
pub struct ProbedRow<'a> {
    pub target: &'a Target,
    pub reached: Result<(&'a HelloOk, u64), &'a Failure>,
}

/// `Targets:`, one line each, when the probe tried more than one (an SSH tunnel).
pub fn probe_targets(rows: &[ProbedRow<'_>]) -> String {
    let mut out = String::from("Targets:\n");
    for row in rows {
        let label = if row.target.probe_tunnel.is_some() {
            "ssh tunnel"
        } else {
            "direct"
        };
        let what = match &row.target.probe_tunnel {
            Some(t) => format!(
                "{} → {}, port {} there (ssh pid {})",
                row.target.url, t.target, t.remote_port, t.pid
            ),
            None => format!("{} ({})", row.target.url, row.target.source_label()),
        };
        let state = match &row.reached {
            Ok((hello, ms)) => format!(
                "reachable ({ms}ms to hello) · gateway {} · {}",
                version(hello),
                human_capability(&hello.scopes())
            ),
            Err(f) => format!("not reachable: {}", f.message),
        };
        let _ = writeln!(out, "  {label:<10} {what}: {state}");
    }
    out
}

fn status_lines(out: &mut String, status: &Value) {
    if let Some(v) = status.get("runtimeVersion").and_then(Value::as_str) {
        let _ = writeln!(out, "  Runtime version: {v}");
    }
    if let Some(agents) = status
        .pointer("/heartbeat/agents")
        .and_then(Value::as_array)
    {
        let parts: Vec<String> = agents
            .iter()
            .filter_map(|a| {
                let id = a.get("agentId").and_then(Value::as_str)?;
                let enabled = a.get("enabled").and_then(Value::as_bool) != Some(false);
                Some(match a.get("every").and_then(Value::as_str) {
                    Some(every) if enabled => format!("{every} ({id})"),
                    _ => format!("disabled ({id})"),
                })
            })
            .collect();
        if !parts.is_empty() {
            let _ = writeln!(out, "  Heartbeat: {}", parts.join(", "));
        }
    }
    if let Some(tasks) = status.get("tasks").and_then(Value::as_object) {
        let total = tasks.get("total").and_then(Value::as_u64).unwrap_or(0);
        let active = tasks.get("active").and_then(Value::as_u64).unwrap_or(0);
        let failures = tasks.get("failures").and_then(Value::as_u64).unwrap_or(0);
        let _ = writeln!(
            out,
            "  Tasks: {total} total · {active} active · {failures} failed"
        );
    }
    if let Some(summary) = status.get("channelSummary").and_then(Value::as_array) {
        if summary.is_empty() {
            let _ = writeln!(out, "  Channels: none configured");
        }
        for line in summary {
            match line.as_str() {
                Some(s) => {
                    let _ = writeln!(out, "  Channel: {s}");
                }
                None => {
                    let _ = writeln!(out, "  Channel: {line}");
                }
            }
        }
    }
    for (key, label) in [
        ("degradedPlugins", "Degraded plugins"),
        ("queuedSystemEvents", "Queued system events"),
    ] {
        if let Some(a) = status.get(key).and_then(Value::as_array)
            && !a.is_empty()
        {
            let _ = writeln!(out, "  {label}: {}", a.len());
        }
    }
}

fn presence_line(entry: &Value) -> String {
    let field = |k: &str| entry.get(k).and_then(Value::as_str);
    let who = field("host")
        .or(field("deviceId"))
        .or(field("instanceId"))
        .unwrap_or("?");
    let mut parts = Vec::new();
    for k in ["mode", "platform", "version", "reason"] {
        if let Some(v) = field(k) {
            parts.push(v.to_owned());
        }
    }
    if parts.is_empty() {
        who.to_owned()
    } else {
        format!("{who} ({})", parts.join(", "))
    }
}

pub fn status(
    hello: &HelloOk,
    target: &Target,
    connect_ms: u64,
    status: &Value,
    deep: Option<&[CallOutcome]>,
) -> String {
    let mut out = String::from("clawgate status\n\nGateway\n");
    let mut conn = String::new();
    connection_block(&mut conn, hello, target, connect_ms);
    for line in conn.lines() {
        let _ = writeln!(out, "  {line}");
    }
    let _ = writeln!(out, "\nStatus");
    status_lines(&mut out, status);
    let Some(deep) = deep else {
        let _ = writeln!(out, "\nDeep checks: skipped (use --deep)");
        return out;
    };
    let _ = writeln!(out, "\nDeep checks");
    for ((method, _), o) in DEEP_CALLS.iter().zip(deep) {
        let CallOutcome::Ok(v, ms) = o else {
            let _ = writeln!(out, "  {method}: {}", outcome_summary(method, o));
            continue;
        };
        match *method {
            "system-presence" => {
                let entries = v.as_array().cloned().unwrap_or_default();
                let _ = writeln!(out, "  Presence: {} entries", entries.len());
                for e in &entries {
                    let _ = writeln!(out, "    {}", presence_line(e));
                }
            }
            "channels.status" => {
                let lines = channel_lines(v);
                if lines.is_empty() {
                    let _ = writeln!(out, "  Channels: none configured");
                } else {
                    for l in lines {
                        let _ = writeln!(out, "  Channel {l}");
                    }
                }
            }
            "health" => {
                let ok = match v.get("ok").and_then(Value::as_bool) {
                    Some(true) => "healthy",
                    Some(false) => "NOT healthy",
                    None => "answered",
                };
                let _ = write!(out, "  Health: {ok} · {ms}ms");
                if let Some(line) = v.get("eventLoop").and_then(event_loop) {
                    let _ = write!(out, " · event loop {line}");
                }
                out.push('\n');
            }
            "last-heartbeat" => {
                if v.is_null() {
                    let _ = writeln!(out, "  Last heartbeat: none");
                } else {
                    let ts = v.get("ts").and_then(Value::as_i64);
                    let status = v
                        .get("status")
                        .and_then(Value::as_str)
                        .unwrap_or("recorded");
                    match ts {
                        Some(ts) => {
                            let ago = (now_ms() - ts).max(0) as u64;
                            let _ =
                                writeln!(out, "  Last heartbeat: {status}, {} ago", duration(ago));
                        }
                        None => {
                            let _ = writeln!(out, "  Last heartbeat: {status}");
                        }
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn health_lines_follow_the_real_cli() {
        let h = json!({"ok":true,"durationMs":3,
            "eventLoop":{"degraded":false,"delayMaxMs":24,"delayP99Ms":24,"utilization":0.016,"cpuCoreRatio":0.017},
            "channels":{"telegram":{"configured":true,"running":true}},"channelOrder":["telegram"],"channelLabels":{"telegram":"Telegram"},
            "agents":[{"agentId":"main","isDefault":true,"heartbeat":{"enabled":true,"every":"30m"},"sessions":{"path":"/s.sqlite","count":0}}]});
        let lines = event_loop(&h["eventLoop"]).unwrap();
        assert_eq!(lines, "ok max=24ms p99=24ms util=0.016 cpu=0.017");
        assert_eq!(channel_lines(&h), vec!["Telegram: running"]);
        assert_eq!(
            agents_lines(&h),
            vec![
                "Agents: main (default)",
                "Heartbeat interval: 30m (main)",
                "Session store (main): /s.sqlite (0 entries)"
            ]
        );
    }
}
