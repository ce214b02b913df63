//! One run: the turn loop.
//!
//! The user message and the run's `running` record are written together before the first
//! event; every assistant message and tool result is written before the event that
//! announces it; the run's outcome is written with its last message. A run waits for the
//! runs of its session key before it (its lane), then for a slot under the global cap.

use crate::events::{Audience, RunEvents, now_ms};
use crate::runtime::{Inner, RunOutcome, RunSummary, SendRequest, SessionState, row};
use crate::tools::{self, ToolContext};
use crate::transcript::{self, NO_REPLY};
use clawgate_llm::{AssistantPart, ChatRequest, Message, StopReason, StreamEvent, ToolCall};
use clawgate_store::{
    RunRecord, RunStatus, SessionRecord, SessionWrite, StoreError, TranscriptEntry, Write,
};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Why a run stopped before the model's last answer.
enum Cut {
    Aborted,
    Timeout,
    Failed(String),
}

/// The run in progress: ids, times and where its messages go.
struct Run<'a> {
    inner: &'a Arc<Inner>,
    run_id: String,
    session_key: String,
    session_id: String,
    started_at_ms: i64,
}

impl Run<'_> {
    /// Writes transcript messages (and, with `end`, the run's outcome) in one batch.
    async fn write(&self, messages: Vec<Value>, end: Option<RunRecord>) -> Result<(), StoreError> {
        let _order = self.inner.writes.lock().await;
        let (first, count) = {
            let sessions = lock(&self.inner.sessions);
            let last = sessions
                .get(&self.session_key)
                .filter(|s| s.record.session_id == self.session_id)
                .map_or(0, |s| s.last_seq);
            (last + 1, messages.len() as i64)
        };
        let now = now_ms();
        let mut writes: Vec<Write> = messages
            .into_iter()
            .enumerate()
            .map(|(i, message)| {
                SessionWrite::Append(TranscriptEntry {
                    session_id: self.session_id.clone(),
                    seq: first + i as i64,
                    run_id: Some(self.run_id.clone()),
                    message,
                    created_at_ms: now,
                })
                .into()
            })
            .collect();
        writes.push(
            SessionWrite::Touch {
                session_key: self.session_key.clone(),
                at_ms: now,
            }
            .into(),
        );
        if let Some(end) = end {
            writes.push(SessionWrite::PutRun(end).into());
        }
        self.inner.store.apply(writes).await?;
        let mut sessions = lock(&self.inner.sessions);
        if let Some(s) = sessions.get_mut(&self.session_key)
            && s.record.session_id == self.session_id
        {
            s.last_seq = first + count - 1;
            s.record.updated_at_ms = now;
        }
        Ok(())
    }

    fn record(
        &self,
        outcome: RunOutcome,
        stop: &str,
        reply: Option<&str>,
        error: Option<&str>,
    ) -> RunRecord {
        RunRecord {
            run_id: self.run_id.clone(),
            session_key: self.session_key.clone(),
            session_id: self.session_id.clone(),
            status: outcome.status(),
            started_at_ms: self.started_at_ms,
            ended_at_ms: Some(now_ms()),
            stop_reason: Some(stop.to_owned()),
            reply_text: reply.map(str::to_owned),
            error: error.map(str::to_owned),
        }
    }

    fn summary(&self, r: &RunRecord, outcome: RunOutcome) -> RunSummary {
        RunSummary {
            run_id: self.run_id.clone(),
            session_key: self.session_key.clone(),
            session_id: self.session_id.clone(),
            outcome,
            started_at_ms: self.started_at_ms,
            ended_at_ms: r.ended_at_ms.unwrap_or(self.started_at_ms),
            stop_reason: r.stop_reason.clone(),
            reply: r.reply_text.clone(),
            error: r.error.clone(),
        }
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs one message to its end and says how it ended. Never fails: whatever goes wrong ends
/// the run as an error that its events and transcript show.
/// The reply to a bare `/new` or `/reset`.
const NEW_SESSION_REPLY: &str = "New session started.";

/// `/new` and `/reset` (OpenClaw's session commands): the text after the command, and
/// whether the message starts with one.
fn session_command(message: &str) -> (&str, bool) {
    let trimmed = message.trim_start();
    for command in ["/new", "/reset"] {
        if let Some(rest) = trimmed.strip_prefix(command)
            && (rest.is_empty() || rest.starts_with(char::is_whitespace))
        {
            return (rest.trim(), true);
        }
    }
    (message, false)
}

/// How a sent message ended: its own run, or taken into another run's model call (steer).
pub(crate) enum RunEnd {
    Ran(RunSummary),
    Absorbed { run_id: String, into: String },
}

/// Takes a steer-mode message's waiting entry out when its turn has come: `Some(run)` when a
/// run took the message in meanwhile.
fn leave_steer_queue(inner: &Inner, request: &SendRequest) -> Option<String> {
    let mut steered = lock(&inner.steered);
    let queue = steered.get_mut(&request.session_key)?;
    let at = queue.iter().position(|s| s.run_id == request.run_id)?;
    let entry = queue.remove(at);
    if queue.is_empty() {
        steered.remove(&request.session_key);
    }
    entry.absorbed_into
}

/// The steer-mode messages waiting for this run's session, taken into this run: marked as
/// absorbed, their text returned in the order they were sent.
fn absorb_steered(inner: &Inner, session_key: &str, run_id: &str) -> Vec<String> {
    let mut steered = lock(&inner.steered);
    let Some(queue) = steered.get_mut(session_key) else {
        return Vec::new();
    };
    queue
        .iter_mut()
        .filter(|s| s.absorbed_into.is_none() && s.run_id != run_id)
        .map(|s| {
            s.absorbed_into = Some(run_id.to_owned());
            s.message.clone()
        })
        .collect()
}

pub(crate) async fn run(
    inner: &Arc<Inner>,
    request: SendRequest,
    cancel: CancellationToken,
) -> RunEnd {
    let lane = {
        let mut lanes = lock(&inner.lanes);
        lanes
            .entry(request.session_key.clone())
            .or_default()
            .clone()
    };
    let waited = async {
        let turn = lane.clone().lock_owned().await;
        let slot = inner.concurrency.clone().acquire_owned().await.ok();
        (turn, slot)
    };
    let held = tokio::select! {
        held = waited => Some(held),
        _ = cancel.cancelled() => None,
    };
    let absorbed = leave_steer_queue(inner, &request);
    let end = match (held, absorbed) {
        (_, Some(into)) => RunEnd::Absorbed {
            run_id: request.run_id.clone(),
            into,
        },
        (Some(_held), None) => RunEnd::Ran(run_in_lane(inner, &request, &cancel).await),
        (None, None) => RunEnd::Ran(aborted_while_queued(inner, &request).await),
    };
    let mut lanes = lock(&inner.lanes);
    if Arc::strong_count(&lane) <= 2 {
        lanes.remove(&request.session_key);
    }
    end
}

/// A run aborted before its turn came: nothing was written for it but its outcome.
async fn aborted_while_queued(inner: &Arc<Inner>, request: &SendRequest) -> RunSummary {
    let session_id = lock(&inner.sessions)
        .get(&request.session_key)
        .map(|s| s.record.session_id.clone())
        .unwrap_or_default();
    let run = Run {
        inner,
        run_id: request.run_id.clone(),
        session_key: request.session_key.clone(),
        session_id,
        started_at_ms: now_ms(),
    };
    let record = run.record(RunOutcome::Aborted, "aborted", None, None);
    if let Err(e) = inner
        .store
        .apply(vec![SessionWrite::PutRun(record.clone()).into()])
        .await
    {
        tracing::warn!(run_id = %run.run_id, "could not record an aborted run: {e}");
    }
    let mut ev = RunEvents::new(
        &*inner.events,
        &run.run_id,
        &run.session_key,
        &run.session_id,
        &inner.options.agent_id,
        request.owner.as_deref(),
    );
    ev.aborted("rpc", None);
    run.summary(&record, RunOutcome::Aborted)
}

async fn run_in_lane(
    inner: &Arc<Inner>,
    request: &SendRequest,
    cancel: &CancellationToken,
) -> RunSummary {
    let started_at_ms = now_ms();
    // `/new` or `/reset` (alone, or before a message) starts the session afresh first.
    let (message, reset) = session_command(&request.message);
    let mut reset_failed = None;
    if reset {
        match new_session(inner, &request.session_key, request.channel.as_deref()).await {
            Ok(record) => inner.events.publish(
                "sessions.changed",
                json!({"sessionKey": record.session_key, "agentId": record.agent_id, "reason": "reset", "session": row(&record, true).to_json()}),
                Audience::Everyone,
            ),
            Err(e) => reset_failed = Some(e),
        }
    }
    let said = if reset && !message.is_empty() {
        message
    } else {
        &request.message
    };
    let user = transcript::user(said, started_at_ms);
    let begun = match reset_failed {
        Some(e) => Err(e),
        None => begin(inner, request, user, started_at_ms).await,
    };
    let session_id = match &begun {
        Ok(id) => id.clone(),
        Err(_) => lock(&inner.sessions)
            .get(&request.session_key)
            .map(|s| s.record.session_id.clone())
            .unwrap_or_default(),
    };
    let run = Run {
        inner,
        run_id: request.run_id.clone(),
        session_key: request.session_key.clone(),
        session_id,
        started_at_ms,
    };
    let mut ev = RunEvents::new(
        &*inner.events,
        &run.run_id,
        &run.session_key,
        &run.session_id,
        &inner.options.agent_id,
        request.owner.as_deref(),
    );
    if let Err(e) = begun {
        let message = format!("The message could not be stored, so it was not run: {e}");
        ev.lifecycle(json!({"phase": "error", "startedAt": started_at_ms, "endedAt": now_ms(), "error": message}));
        ev.chat_error(&message);
        let record = run.record(RunOutcome::Error, "error", None, Some(&message));
        return run.summary(&record, RunOutcome::Error);
    }
    if request.status_events {
        ev.status("preparing_workspace");
        ev.status("preparing_context");
    }
    ev.lifecycle(json!({"phase": "start", "startedAt": started_at_ms}));
    if request.status_events {
        ev.status("starting_model");
    }
    if reset && message.is_empty() {
        let message = transcript::assistant(NEW_SESSION_REPLY, &[], "stop", None, None, now_ms());
        ev.text_delta(NEW_SESSION_REPLY);
        return match finish_ok(&run, &mut ev, message, NEW_SESSION_REPLY, "stop").await {
            Ok(summary) => summary,
            Err((cut, partial)) => end_cut(&run, &mut ev, cut, &partial).await,
        };
    }
    let timeout = request.timeout.unwrap_or(inner.options.run_timeout);
    let deadline = Instant::now() + timeout;
    let summary = match turn_loop(&run, &mut ev, cancel, deadline, request).await {
        Ok(summary) => summary,
        Err((cut, partial)) => end_cut(&run, &mut ev, cut, &partial).await,
    };
    let row = lock(&inner.sessions)
        .get(&run.session_key)
        .map(|s| row(&s.record, false));
    if let Some(row) = row {
        inner.events.publish(
            "sessions.changed",
            json!({"sessionKey": run.session_key, "agentId": row.agent_id, "reason": "run", "session": row.to_json()}),
            Audience::Everyone,
        );
    }
    summary
}

/// Creates the session when the key has none, and writes the run and the user's message.
async fn begin(
    inner: &Arc<Inner>,
    request: &SendRequest,
    user: Value,
    at_ms: i64,
) -> Result<String, StoreError> {
    let _order = inner.writes.lock().await;
    let existing = lock(&inner.sessions)
        .get(&request.session_key)
        .map(|s| (s.record.clone(), s.last_seq));
    let (record, last_seq, created) = match existing {
        Some((record, last)) => (record, last, false),
        None => {
            let mut record = session_record(
                inner,
                &request.session_key,
                request.channel.as_deref(),
                at_ms,
            );
            if let Some(id) = &request.new_session_id {
                record.session_id = id.clone();
            }
            (record, 0, true)
        }
    };
    let mut writes: Vec<Write> = Vec::new();
    if created {
        writes.push(SessionWrite::PutSession(record.clone()).into());
    } else {
        writes.push(
            SessionWrite::Touch {
                session_key: record.session_key.clone(),
                at_ms,
            }
            .into(),
        );
    }
    writes.push(
        SessionWrite::PutRun(RunRecord {
            run_id: request.run_id.clone(),
            session_key: request.session_key.clone(),
            session_id: record.session_id.clone(),
            status: RunStatus::Running,
            started_at_ms: at_ms,
            ended_at_ms: None,
            stop_reason: None,
            reply_text: None,
            error: None,
        })
        .into(),
    );
    writes.push(
        SessionWrite::Append(TranscriptEntry {
            session_id: record.session_id.clone(),
            seq: last_seq + 1,
            run_id: Some(request.run_id.clone()),
            message: user,
            created_at_ms: at_ms,
        })
        .into(),
    );
    inner.store.apply(writes).await?;
    let session_id = record.session_id.clone();
    let mut sessions = lock(&inner.sessions);
    let state = sessions
        .entry(request.session_key.clone())
        .or_insert_with(|| SessionState {
            record: record.clone(),
            last_seq: 0,
        });
    state.last_seq = last_seq + 1;
    state.record.updated_at_ms = at_ms;
    Ok(session_id)
}

fn session_record(inner: &Inner, key: &str, channel: Option<&str>, at_ms: i64) -> SessionRecord {
    SessionRecord {
        session_key: key.to_owned(),
        session_id: uuid::Uuid::new_v4().to_string(),
        agent_id: crate::SessionKey::agent_of(key)
            .unwrap_or(&inner.options.agent_id)
            .to_owned(),
        created_at_ms: at_ms,
        updated_at_ms: at_ms,
        meta: json!({"channel": channel}),
    }
}

/// Points a key at a new session id (a reset, or a first note), durably.
pub(crate) async fn new_session(
    inner: &Arc<Inner>,
    key: &str,
    channel: Option<&str>,
) -> Result<SessionRecord, StoreError> {
    let _order = inner.writes.lock().await;
    let record = session_record(inner, key, channel, now_ms());
    inner
        .store
        .apply(vec![SessionWrite::PutSession(record.clone()).into()])
        .await?;
    lock(&inner.sessions).insert(
        key.to_owned(),
        SessionState {
            record: record.clone(),
            last_seq: 0,
        },
    );
    Ok(record)
}

/// Appends a message that belongs to no run (an injected note), creating the session first
/// when the key has none.
pub(crate) async fn append_outside_run(
    inner: &Arc<Inner>,
    key: &str,
    message: Value,
    run_id: Option<&str>,
) -> Result<(), StoreError> {
    let exists = lock(&inner.sessions).contains_key(key);
    if !exists {
        new_session(inner, key, None).await?;
    }
    let _order = inner.writes.lock().await;
    let (session_id, seq) = {
        let sessions = lock(&inner.sessions);
        let s = sessions
            .get(key)
            .map(|s| (s.record.session_id.clone(), s.last_seq + 1));
        s.unwrap_or_default()
    };
    let now = now_ms();
    inner
        .store
        .apply(vec![
            SessionWrite::Append(TranscriptEntry {
                session_id: session_id.clone(),
                seq,
                run_id: run_id.map(str::to_owned),
                message,
                created_at_ms: now,
            })
            .into(),
            SessionWrite::Touch {
                session_key: key.to_owned(),
                at_ms: now,
            }
            .into(),
        ])
        .await?;
    if let Some(s) = lock(&inner.sessions).get_mut(key)
        && s.record.session_id == session_id
    {
        s.last_seq = seq;
        s.record.updated_at_ms = now;
    }
    Ok(())
}

/// The system prompt of a run: the configured opening and a runtime line.
fn system_prompt(inner: &Inner, request: &SendRequest) -> String {
    let nodes = inner.nodes.nodes();
    let connected: Vec<String> = nodes
        .iter()
        .filter(|n| n.connected)
        .map(|n| match &n.display_name {
            Some(name) => format!("{name} ({})", n.node_id),
            None => n.node_id.clone(),
        })
        .collect();
    format!(
        "{}\n\nRuntime: agent={} | session={} | channel={} | nodes={}",
        inner.options.system_prompt,
        inner.options.agent_id,
        request.session_key,
        request.channel.as_deref().unwrap_or("webchat"),
        if connected.is_empty() {
            "none".to_owned()
        } else {
            connected.join(", ")
        }
    )
}

type Cutoff = (Cut, String);

async fn turn_loop(
    run: &Run<'_>,
    ev: &mut RunEvents<'_>,
    cancel: &CancellationToken,
    deadline: Instant,
    request: &SendRequest,
) -> Result<RunSummary, Cutoff> {
    let inner = run.inner;
    let context = inner
        .store
        .transcript(&run.session_id, crate::runtime::CONTEXT_MESSAGES)
        .await
        .map_err(|e| {
            (
                Cut::Failed(format!("The transcript could not be read: {e}")),
                String::new(),
            )
        })?;
    let messages: Vec<Value> = context.into_iter().map(|e| e.message).collect();
    let mut model_messages = transcript::to_model(&messages);
    let llm = inner.llm.read().unwrap_or_else(|e| e.into_inner()).clone();
    let specs = tools::specs();
    let system = system_prompt(inner, request);
    let cx = ToolContext {
        nodes: &*inner.nodes,
        approvals: &inner.approvals,
        policy: &inner.exec_policy,
        events: &*inner.events,
        session_key: &run.session_key,
        run_id: &run.run_id,
        agent_id: &inner.options.agent_id,
        default_node: inner.options.exec_node.as_deref(),
    };
    let max_calls = inner.options.max_tool_calls;
    let mut calls_made = 0usize;
    // The last message written, while its write is still under way.
    let mut pending: Option<Pending<'_>> = None;
    loop {
        // Messages sent meanwhile in steer mode join this run here, after what it wrote.
        let steered = absorb_steered(inner, &run.session_key, &run.run_id);
        if !steered.is_empty() {
            settle(pending.take(), ev).await?;
            let now = now_ms();
            let entries: Vec<Value> = steered.iter().map(|m| transcript::user(m, now)).collect();
            run.write(entries, None).await.map_err(write_failed)?;
            model_messages.extend(
                steered
                    .iter()
                    .map(|m| Message::user(transcript::stamped(m, now))),
            );
        }
        let mut stream = llm
            .stream(ChatRequest {
                system: Some(system.clone()),
                messages: model_messages.clone(),
                tools: specs.clone(),
                max_tokens: None,
            })
            .peekable();
        // The model's answer starts while the last tool result is written; its first event
        // waits for that result's event.
        let answer_starts = async {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => Err(Cut::Aborted),
                _ = tokio::time::sleep_until(deadline) => Err(Cut::Timeout),
                _ = std::pin::Pin::new(&mut stream).peek() => Ok(()),
            }
        };
        alongside(pending.take(), ev, |_| {}, answer_starts)
            .await?
            .map_err(|cut| (cut, String::new()))?;
        let mut text = String::new();
        let mut calls: Vec<ToolCall> = Vec::new();
        let mut usage = None;
        let mut stop = None;
        let mut model = None;
        loop {
            let delta_due = ev.delta_due_at();
            let next = tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err((Cut::Aborted, text)),
                _ = tokio::time::sleep_until(deadline) => return Err((Cut::Timeout, text)),
                next = stream.next() => next,
                // Text held back for coalescing goes out when its time comes, even if the
                // model pauses.
                _ = sleep_until_some(delta_due) => {
                    ev.flush_delta();
                    continue;
                }
            };
            match next {
                None => break,
                Some(Err(e)) => return Err((Cut::Failed(e.to_string()), text)),
                Some(Ok(StreamEvent::Started { model: m, failed })) => {
                    for f in &failed {
                        ev.lifecycle(json!({
                            "phase": "fallback_step",
                            "from": f.model().map(ToString::to_string),
                            "error": f.to_string(),
                        }));
                    }
                    ev.lifecycle(
                        json!({"phase": "model", "provider": m.provider, "model": m.model}),
                    );
                    model = Some(m);
                }
                Some(Ok(StreamEvent::TextDelta(t))) => {
                    text.push_str(&t);
                    ev.text_delta(&t);
                }
                Some(Ok(StreamEvent::ThinkingDelta(_))) => {}
                Some(Ok(StreamEvent::ToolCall(c))) => calls.push(c),
                Some(Ok(StreamEvent::Usage(u))) => {
                    ev.usage(u.output_tokens);
                    usage = Some(u);
                }
                Some(Ok(StreamEvent::Done { stop_reason })) => stop = Some(stop_reason),
            }
        }
        let model_names = model
            .as_ref()
            .map(|m| (m.provider.as_str(), m.model.as_str()));
        if stop == Some(StopReason::Length) {
            calls.clear();
        }
        if calls.is_empty() {
            let stop_reason = if stop == Some(StopReason::Length) {
                "length"
            } else {
                "stop"
            };
            let message =
                transcript::assistant(&text, &[], stop_reason, usage, model_names, now_ms());
            return finish_ok(run, ev, message, &text, stop_reason).await;
        }
        let message = transcript::assistant(&text, &calls, "toolUse", usage, model_names, now_ms());
        pending = Some(Pending::write(run, message, None));
        let mut parts: Vec<AssistantPart> = Vec::new();
        if !text.is_empty() {
            parts.push(AssistantPart::Text { text: text.clone() });
        }
        parts.extend(calls.iter().cloned().map(AssistantPart::ToolCall));
        model_messages.push(Message::Assistant { content: parts });
        ev.next_answer();
        for call in &calls {
            let output = if calls_made >= max_calls {
                settle(pending.take(), ev).await?;
                tools::ToolOutput::error(format!(
                    "Not run: this turn reached its limit of {max_calls} tool calls."
                ))
            } else {
                calls_made += 1;
                // The tool starts while the message that asks for it is written; its `tool`
                // event waits for that write.
                let runs = async {
                    tokio::select! {
                        biased;
                        _ = cancel.cancelled() => Err(Cut::Aborted),
                        _ = tokio::time::sleep_until(deadline) => Err(Cut::Timeout),
                        out = tools::run(call, &cx) => Ok(out),
                    }
                };
                let announce = |ev: &mut RunEvents<'_>| {
                    ev.tool_start(&call.name, &call.id, &call.arguments);
                };
                alongside(pending.take(), ev, announce, runs)
                    .await?
                    .map_err(|cut| (cut, String::new()))?
            };
            let result = transcript::tool_result(call, &output.text, output.is_error, now_ms());
            let announced = ToolResult {
                name: call.name.clone(),
                call_id: call.id.clone(),
                text: output.text.clone(),
                is_error: output.is_error,
            };
            pending = Some(Pending::write(run, result, Some(announced)));
            model_messages.push(Message::tool_result(call, output.text, output.is_error));
        }
        if calls_made >= max_calls {
            settle(pending.take(), ev).await?;
            let text = format!(
                "I stopped: this turn made {max_calls} tool calls without reaching an answer, which is the limit for one message. Send a new message to continue."
            );
            let message = transcript::assistant(&text, &[], "stop", None, None, now_ms());
            ev.text_delta(&text);
            return finish_ok(run, ev, message, &text, "stop").await;
        }
    }
}

fn write_failed(e: StoreError) -> Cutoff {
    (
        Cut::Failed(format!("The transcript could not be written: {e}")),
        String::new(),
    )
}

/// A tool's result, as its `tool` event announces it.
struct ToolResult {
    name: String,
    call_id: String,
    text: String,
    is_error: bool,
}

/// A transcript message being written, and the event that announces it once it is on disk.
/// The write runs alongside the work that follows it (the tool it asks for, the model request
/// that carries it): a message is durable before its event, but what comes next need not wait
/// for the disk.
struct Pending<'r> {
    write: std::pin::Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'r>>,
    announce: Option<ToolResult>,
}

impl<'r> Pending<'r> {
    fn write(run: &'r Run<'r>, message: Value, announce: Option<ToolResult>) -> Pending<'r> {
        Pending {
            write: Box::pin(run.write(vec![message], None)),
            announce,
        }
    }
}

/// Runs `work` while `pending` is written; once it is, sends its event, then `then`'s
/// (while `work` may still run). The write always completes, whatever `work` does.
async fn alongside<'e, T>(
    pending: Option<Pending<'_>>,
    ev: &mut RunEvents<'e>,
    then: impl FnOnce(&mut RunEvents<'e>),
    work: impl Future<Output = T>,
) -> Result<T, Cutoff> {
    let written = async {
        if let Some(p) = pending {
            p.write.await.map_err(write_failed)?;
            if let Some(r) = p.announce {
                ev.tool_result(&r.name, &r.call_id, &r.text, r.is_error);
            }
        }
        then(ev);
        Ok(())
    };
    let (written, out) = futures_util::join!(written, work);
    written.map(|()| out)
}

/// Waits for `pending` to be written and sends its event.
async fn settle(pending: Option<Pending<'_>>, ev: &mut RunEvents<'_>) -> Result<(), Cutoff> {
    alongside(pending, ev, |_| {}, std::future::ready(())).await
}

async fn finish_ok(
    run: &Run<'_>,
    ev: &mut RunEvents<'_>,
    message: Value,
    text: &str,
    stop_reason: &str,
) -> Result<RunSummary, Cutoff> {
    let silent = text.trim() == NO_REPLY;
    let reply = (!silent && !text.is_empty()).then_some(text);
    let record = run.record(RunOutcome::Ok, stop_reason, reply, None);
    run.write(vec![message.clone()], Some(record.clone()))
        .await
        .map_err(|e| {
            (
                Cut::Failed(format!("The reply could not be written: {e}")),
                text.to_owned(),
            )
        })?;
    let ended = record.ended_at_ms.unwrap_or_else(now_ms);
    ev.lifecycle(json!({
        "stopReason": stop_reason,
        "aborted": false,
        "phase": "end",
        "endedAt": ended,
        "startedAt": run.started_at_ms,
        "terminalReply": {
            "disposition": if reply.is_some() { "visible" } else { "silent" },
            "text": reply,
        },
    }));
    ev.chat_final(text, stop_reason);
    Ok(run.summary(&record, RunOutcome::Ok))
}

async fn end_cut(run: &Run<'_>, ev: &mut RunEvents<'_>, cut: Cut, partial: &str) -> RunSummary {
    let (outcome, stop, error) = match cut {
        Cut::Aborted => (RunOutcome::Aborted, "aborted", "The run was aborted.".to_owned()),
        Cut::Timeout => (
            RunOutcome::Timeout,
            "timeout",
            "The run took longer than its time limit (agents.defaults.timeoutSeconds) and was stopped.".to_owned(),
        ),
        Cut::Failed(e) => (RunOutcome::Error, "error", e),
    };
    let message = transcript::assistant_note(partial, stop, &error, now_ms());
    let record = run.record(outcome, stop, None, Some(&error));
    if let Err(e) = run.write(vec![message], Some(record.clone())).await {
        tracing::warn!(run_id = %run.run_id, "could not record how a run ended: {e}");
    }
    let ended = record.ended_at_ms.unwrap_or_else(now_ms);
    match outcome {
        RunOutcome::Aborted => ev.aborted(
            "rpc",
            Some(json!({"phase": "end", "status": "cancelled", "aborted": true, "stopReason": "rpc", "startedAt": run.started_at_ms, "endedAt": ended})),
        ),
        _ => {
            ev.lifecycle(json!({"phase": "error", "startedAt": run.started_at_ms, "endedAt": ended, "error": error}));
            ev.chat_error(&error);
        }
    }
    run.summary(&record, outcome)
}

/// Sleeps until `at`; never wakes without one.
async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
