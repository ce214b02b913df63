//! `agent` and `agent.wait`: a run answered when it ends (the CLI's `agent --message`).

use super::chat::{agent_error, queue_mode, required};
use super::table::{Call, Reply};
use crate::registry::Outbound;
use clawgate_agent::{
    Decision, ExecPolicyError, RunOutcome, RunSummary, SendAccepted, SendRequest,
    check_exec_approvals_set_params,
};
use clawgate_protocol::errors::{self, ErrorShape};
use clawgate_protocol::frames;
use serde_json::{Value, json};
use std::time::Duration;

/// `agent.wait` without `timeoutMs`.
const DEFAULT_WAIT: Duration = Duration::from_secs(30);

/// The session an `agent` call runs in: its `sessionKey`; else the agent's main session when
/// it names the agent; else a session of its own (`agent:<id>:explicit:<sessionId or key>`),
/// as OpenClaw does.
/// Also the session id a new explicit session gets (its `sessionId`, else the run id).
fn session_key(c: &Call<'_>, run_id: &str) -> Result<(String, Option<String>), ErrorShape> {
    if let Some(key) = c.params.get("sessionKey").and_then(Value::as_str) {
        return Ok((key.to_owned(), None));
    }
    let agent = c.gw.agent.options().agent_id.clone();
    if let Some(id) = c.params.get("agentId").and_then(Value::as_str) {
        if id != agent {
            return Err(errors::invalid_params(
                c.method,
                &format!("unknown agent \"{id}\" (this gateway runs the agent \"{agent}\")"),
            ));
        }
        return Ok((c.gw.agent.main_session_key(), None));
    }
    let explicit = c
        .params
        .get("sessionId")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or(run_id);
    Ok((
        format!("agent:{agent}:explicit:{explicit}"),
        Some(explicit.to_owned()),
    ))
}

fn final_payload(s: &RunSummary) -> Value {
    let mut payloads = Vec::new();
    if let Some(text) = &s.reply {
        payloads.push(json!({"text": text, "mediaUrl": null}));
    }
    json!({
        "runId": s.run_id,
        "status": s.outcome.as_str(),
        "summary": if s.outcome == RunOutcome::Ok { "completed".to_owned() } else { s.error.clone().unwrap_or_default() },
        "result": {
            "payloads": payloads,
            "meta": {
                "durationMs": s.ended_at_ms - s.started_at_ms,
                "agentMeta": {"sessionId": s.session_id, "sessionKey": s.session_key},
                "aborted": s.outcome == RunOutcome::Aborted,
                "stopReason": s.stop_reason,
            },
        },
    })
}

fn final_frame(id: &str, s: &RunSummary) -> String {
    let payload = final_payload(s);
    if s.outcome == RunOutcome::Ok {
        frames::response_ok(id, &payload)
    } else {
        let message = s.error.as_deref().unwrap_or("the run did not finish");
        frames::response_err_with_payload(id, &payload, &errors::agent_run_failed(message))
    }
}

/// `agent {message, idempotencyKey, sessionKey?, agentId?, sessionId?, timeout?}`: an
/// `accepted` response at once, the final one when the run ends (both with the request's id).
pub(crate) async fn agent(c: &Call<'_>) {
    let reply = |text: String| c.gw.registry.send(c.conn, Outbound::Text(text));
    let request = (|| {
        let message = required(c, "message")?;
        let run_id = required(c, "idempotencyKey")?;
        let timeout = c
            .params
            .get("timeout")
            .and_then(Value::as_u64)
            .filter(|t| *t > 0)
            .map(Duration::from_secs);
        let (session_key, new_session_id) = session_key(c, run_id)?;
        Ok::<_, ErrorShape>(SendRequest {
            session_key,
            message: message.to_owned(),
            run_id: run_id.to_owned(),
            channel: c
                .params
                .get("channel")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or(Some("cli".into())),
            queue_mode: queue_mode(c)?,
            timeout,
            owner: Some(c.conn.conn_id.clone()),
            status_events: false,
            new_session_id,
        })
    })();
    let request = match request {
        Ok(r) => r,
        Err(e) => return reply(frames::response_err(c.request_id, &e)),
    };
    let session_key = request.session_key.clone();
    let run_id = match c.gw.agent.send(request).await {
        Err(e) => {
            return reply(frames::response_err(
                c.request_id,
                &agent_error(c.method, e),
            ));
        }
        Ok(SendAccepted::Done(summary)) => return reply(final_frame(c.request_id, &summary)),
        Ok(SendAccepted::Started {
            run_id,
            accepted_at_ms,
        }) => {
            reply(frames::response_ok(
                c.request_id,
                &json!({"runId": run_id, "sessionKey": session_key, "agentId": c.gw.agent.options().agent_id, "status": "accepted", "acceptedAt": accepted_at_ms}),
            ));
            run_id
        }
        Ok(SendAccepted::InFlight { run_id }) => run_id,
    };
    // The run's own time limit ends it; this only guards against waiting on a lost run.
    let summary =
        c.gw.agent
            .wait(&run_id, Duration::from_secs(u64::from(u32::MAX)))
            .await;
    match summary {
        Some(s) => reply(final_frame(c.request_id, &s)),
        None => reply(frames::response_err(
            c.request_id,
            &errors::unavailable(format!("run {run_id} ended without an outcome")),
        )),
    }
}

/// `agent.wait {runId, timeoutMs?}`.
pub(crate) async fn wait(c: &Call<'_>) -> Reply {
    let run_id = required(c, "runId")?;
    let timeout = c
        .params
        .get("timeoutMs")
        .and_then(Value::as_u64)
        .map_or(DEFAULT_WAIT, Duration::from_millis);
    Ok(match c.gw.agent.wait(run_id, timeout).await {
        Some(s) => json!({
            "runId": s.run_id,
            "status": s.outcome.as_str(),
            "startedAt": s.started_at_ms,
            "endedAt": s.ended_at_ms,
            "stopReason": s.stop_reason,
            "terminalReply": {"text": s.reply},
            "error": s.error,
        }),
        None => json!({"runId": run_id, "status": "timeout"}),
    })
}

/// `exec.approval.resolve {id, decision}`: answers a command waiting for approval
/// (`allow-once`, `allow-always` or `deny`).
pub(crate) fn approval_resolve(c: &Call<'_>) -> Reply {
    let id = required(c, "id")?;
    let decision = required(c, "decision")?;
    let Some(decision) = Decision::parse(decision) else {
        return Err(errors::invalid_params(
            c.method,
            &format!("decision must be allow-once, allow-always or deny (got \"{decision}\")"),
        ));
    };
    c.gw.agent.resolve_approval(id, decision).map_err(|_| {
        errors::approval_not_found(
            "exec approval",
            id,
            "clawgate gateway call exec.approval.list",
        )
    })?;
    Ok(json!({"ok": true, "id": id, "decision": decision.as_str()}))
}

/// `exec.approval.list`: the commands waiting for approval.
pub(crate) fn approval_list(c: &Call<'_>) -> Reply {
    Ok(json!({"approvals": c.gw.agent.pending_approvals()}))
}

fn exec_policy_error(e: ExecPolicyError) -> ErrorShape {
    match e {
        ExecPolicyError::Invalid(m) => errors::exec_approvals_stale(&m),
        ExecPolicyError::Storage(m) => errors::unavailable(m),
    }
}

/// `exec.approvals.get {}`: the gateway's exec approvals policy, `{path, exists, hash, file,
/// resolvedDefaults}` (the socket token left out).
pub(crate) async fn approvals_get(c: &Call<'_>) -> Reply {
    if let Some(extra) = c.params.as_object().and_then(|p| p.keys().next()) {
        return Err(errors::invalid_params(
            c.method,
            &format!("at root: unexpected property '{extra}'"),
        ));
    }
    c.gw.agent.exec_approvals().await.map_err(exec_policy_error)
}

/// `exec.approvals.set {file, baseHash?}`: replaces the policy; `baseHash` is the `hash` of
/// the policy the caller read (required once there is one).
pub(crate) async fn approvals_set(c: &Call<'_>) -> Reply {
    check_exec_approvals_set_params(c.params).map_err(|e| errors::invalid_params(c.method, &e))?;
    c.gw.agent
        .set_exec_approvals(c.params)
        .await
        .map_err(exec_policy_error)
}
