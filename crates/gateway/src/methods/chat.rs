//! `chat.*`: what the WebChat and the CLI call to talk with the agent in a session.

use super::table::{Call, Reply};
use clawgate_agent::{AgentError, QueueMode, SendAccepted, SendRequest};
use clawgate_protocol::errors::{self, ErrorShape};
use serde_json::{Value, json};
use std::time::Duration;

/// `chat.history` without a `limit`.
const DEFAULT_HISTORY_LIMIT: usize = 200;
/// The most messages one `chat.history` returns.
const MAX_HISTORY_LIMIT: usize = 1000;

pub(super) fn required<'a>(c: &Call<'a>, key: &str) -> Result<&'a str, ErrorShape> {
    c.params
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            errors::invalid_params(c.method, &format!("must have required property '{key}'"))
        })
}

pub(super) fn agent_error(method: &str, e: AgentError) -> ErrorShape {
    match e {
        AgentError::Invalid { field, reason } => {
            errors::invalid_params(method, &format!("{field} {reason}"))
        }
        AgentError::UnknownSession(_) => errors::session_not_found(),
        other => errors::unavailable(other.to_string()),
    }
}

pub(super) fn queue_mode(c: &Call<'_>) -> Result<Option<QueueMode>, ErrorShape> {
    match c.params.get("queueMode").and_then(Value::as_str) {
        None => Ok(None),
        Some(m) => QueueMode::parse(m).map(Some).ok_or_else(|| {
            errors::invalid_params(
                c.method,
                &format!(
                    "queueMode must be one of steer, followup, collect, interrupt (got \"{m}\")"
                ),
            )
        }),
    }
}

/// `chat.send {sessionKey, message, idempotencyKey}`: starts a run whose id is the key.
pub(crate) async fn send(c: &Call<'_>) -> Reply {
    let session_key = required(c, "sessionKey")?;
    let message = required(c, "message")?;
    let run_id = required(c, "idempotencyKey")?;
    let timeout = c
        .params
        .get("timeoutMs")
        .and_then(Value::as_u64)
        .filter(|t| *t > 0)
        .map(Duration::from_millis);
    let request = SendRequest {
        session_key: session_key.to_owned(),
        message: message.to_owned(),
        run_id: run_id.to_owned(),
        channel: Some("webchat".into()),
        queue_mode: queue_mode(c)?,
        timeout,
        owner: Some(c.conn.conn_id.clone()),
        status_events: true,
        new_session_id: None,
    };
    let accepted =
        c.gw.agent
            .send(request)
            .await
            .map_err(|e| agent_error(c.method, e))?;
    Ok(match accepted {
        SendAccepted::Started { run_id, .. } => json!({"runId": run_id, "status": "started"}),
        SendAccepted::InFlight { run_id } => json!({"runId": run_id, "status": "in_flight"}),
        SendAccepted::Done(summary) => {
            json!({"runId": summary.run_id, "status": summary.outcome.as_str()})
        }
    })
}

/// `chat.history {sessionKey, limit?}`: the last messages of the session's transcript.
pub(crate) async fn history(c: &Call<'_>) -> Reply {
    let session_key = required(c, "sessionKey")?;
    let limit = c
        .params
        .get("limit")
        .and_then(Value::as_u64)
        .map_or(DEFAULT_HISTORY_LIMIT, |l| {
            usize::try_from(l)
                .unwrap_or(MAX_HISTORY_LIMIT)
                .clamp(1, MAX_HISTORY_LIMIT)
        });
    let history =
        c.gw.agent
            .history(session_key, limit)
            .await
            .map_err(|e| agent_error(c.method, e))?;
    let has_more = history.total > history.messages.len();
    let mut out = json!({
        "sessionKey": history.session_key,
        "messages": history.messages,
        "hasMore": has_more,
        "totalMessages": history.total,
    });
    if let Some(id) = history.session_id {
        out["sessionId"] = json!(id);
    }
    Ok(out)
}

/// How long `chat.abort` waits for the runs it aborted to end, so that their `aborted` events
/// come before its answer, as OpenClaw's do.
const ABORT_SETTLE: Duration = Duration::from_secs(5);

/// `chat.abort {sessionKey, runId?}`.
pub(crate) async fn abort(c: &Call<'_>) -> Reply {
    let session_key = required(c, "sessionKey")?;
    let run_id = c.params.get("runId").and_then(Value::as_str);
    let ids = c.gw.agent.abort(session_key, run_id);
    for id in &ids {
        c.gw.agent.wait(id, ABORT_SETTLE).await;
    }
    Ok(json!({"ok": true, "aborted": !ids.is_empty(), "runIds": ids}))
}

/// `chat.inject {sessionKey, message, label?}`: an assistant note, no run.
pub(crate) async fn inject(c: &Call<'_>) -> Reply {
    let session_key = required(c, "sessionKey")?;
    let message = required(c, "message")?;
    let text = match c.params.get("label").and_then(Value::as_str) {
        Some(label) if !label.is_empty() => format!("[{label}]\n\n{message}"),
        _ => message.to_owned(),
    };
    let message_id =
        c.gw.agent
            .inject(session_key, &text)
            .await
            .map_err(|e| agent_error(c.method, e))?;
    Ok(json!({"ok": true, "messageId": message_id}))
}
