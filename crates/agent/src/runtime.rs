//! The runtime: sessions in memory over the store, runs by id, lanes per session key and the
//! global cap.

use crate::events::{Audience, EventSink, now_ms};
use crate::exec_policy::ExecPolicyError;
use crate::session_key::SessionKey;
use crate::tools::NodeAccess;
use crate::transcript;
use crate::turn;
use clawgate_llm::Llm;
use clawgate_store::{
    RunRecord, RunStatus, SessionRecord, SessionWrite, Store, StoreError, TranscriptEntry, Write,
};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;

/// Finished runs kept in memory for `agent.wait` and repeated sends (older ones are read
/// back from the store).
const FINISHED_RUNS_KEPT: usize = 512;
/// Runs waiting or running at once, across sessions; beyond it a send is refused.
const MAX_QUEUED_RUNS: usize = 1024;
/// Transcript messages sent to the model, at most (the most recent ones).
pub(crate) const CONTEXT_MESSAGES: usize = 400;

/// What happens to a message that arrives while its session is running (`messages.queue`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueMode {
    /// It is handed to the running run, whose next model call sees it (OpenClaw's default);
    /// if that run makes no further call, the message runs after it.
    #[default]
    Steer,
    /// It runs after the current run.
    Followup,
    /// The current run is aborted and the new message runs.
    Interrupt,
}

impl QueueMode {
    /// The config value. OpenClaw's `collect` runs as a follow-up here.
    pub fn parse(value: &str) -> Option<QueueMode> {
        Some(match value {
            "steer" => QueueMode::Steer,
            "followup" | "collect" | "queue" => QueueMode::Followup,
            "interrupt" => QueueMode::Interrupt,
            _ => return None,
        })
    }
}

/// A message sent in steer mode, waiting for its session's lane: a running run may take it
/// into its next model call (`absorbed_into` names that run), or it runs on its own.
pub(crate) struct Steered {
    pub run_id: String,
    pub message: String,
    pub absorbed_into: Option<String>,
}

#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub agent_id: String,
    pub main_key: String,
    /// `agents.defaults.maxConcurrent`.
    pub max_concurrent: usize,
    /// Tool calls one run may make before it is stopped with a final message (OpenClaw has no
    /// such limit and lets a model loop on one call without end).
    pub max_tool_calls: usize,
    /// `agents.defaults.timeoutSeconds`: the longest a run may take.
    pub run_timeout: Duration,
    pub queue_mode: QueueMode,
    /// `tools.exec.node`.
    pub exec_node: Option<String>,
    /// The system prompt's opening; the runtime line is added per run.
    pub system_prompt: String,
}

impl Default for AgentOptions {
    fn default() -> Self {
        AgentOptions {
            agent_id: "main".into(),
            main_key: "main".into(),
            max_concurrent: 4,
            max_tool_calls: 32,
            run_timeout: Duration::from_secs(48 * 3600),
            queue_mode: QueueMode::Steer,
            exec_node: None,
            system_prompt: DEFAULT_SYSTEM_PROMPT.into(),
        }
    }
}

const DEFAULT_SYSTEM_PROMPT: &str = "You are a personal assistant running inside clawgate, a gateway that connects chat channels to the user's machines. Use the exec tool (host \"node\") to run shell commands on the user's paired nodes and the nodes tool to see which nodes exist. Be concise. Reply NO_REPLY (alone) when nothing needs saying.";

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error(
        "the agent has {MAX_QUEUED_RUNS} runs waiting or running; try again when some have finished"
    )]
    Busy,
    #[error("no session {0}")]
    UnknownSession(String),
    #[error("no exec approval {0} is waiting (it was answered, expired, or its run ended)")]
    UnknownApproval(String),
}

/// A message to run.
#[derive(Debug, Clone)]
pub struct SendRequest {
    pub session_key: String,
    pub message: String,
    /// The run id: the caller's idempotency key.
    pub run_id: String,
    /// Where it came from (`webchat`, `telegram`, `cli`…), for the session's record.
    pub channel: Option<String>,
    /// The client's queue mode for this message, over the configured one.
    pub queue_mode: Option<QueueMode>,
    /// Overrides the run timeout.
    pub timeout: Option<Duration>,
    /// The connection that asked (its id), which alone gets the run's tool payloads.
    pub owner: Option<String>,
    /// Announce the run's preparation (`chat` status and `agent` run_status events), as
    /// OpenClaw does for `chat.send` runs and not for `agent` runs.
    pub status_events: bool,
    /// The session id a new session of this key gets (OpenClaw's `agent --session-id`, and
    /// the idempotency key for an `agent` call without a session); a fresh uuid otherwise.
    pub new_session_id: Option<String>,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    Ok,
    Error,
    Aborted,
    Timeout,
    Interrupted,
}

impl RunOutcome {
    pub fn as_str(self) -> &'static str {
        self.status().as_str()
    }

    pub(crate) fn status(self) -> RunStatus {
        match self {
            RunOutcome::Ok => RunStatus::Ok,
            RunOutcome::Error => RunStatus::Error,
            RunOutcome::Aborted => RunStatus::Aborted,
            RunOutcome::Timeout => RunStatus::Timeout,
            RunOutcome::Interrupted => RunStatus::Interrupted,
        }
    }
}

/// A finished run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    pub run_id: String,
    pub session_key: String,
    pub session_id: String,
    pub outcome: RunOutcome,
    pub started_at_ms: i64,
    pub ended_at_ms: i64,
    pub stop_reason: Option<String>,
    /// The final reply (`None` when it ended without one, or replied `NO_REPLY`).
    pub reply: Option<String>,
    pub error: Option<String>,
}

impl RunSummary {
    fn from_record(r: RunRecord) -> Option<RunSummary> {
        let outcome = match r.status {
            RunStatus::Running => return None,
            RunStatus::Ok => RunOutcome::Ok,
            RunStatus::Error => RunOutcome::Error,
            RunStatus::Aborted => RunOutcome::Aborted,
            RunStatus::Timeout => RunOutcome::Timeout,
            RunStatus::Interrupted => RunOutcome::Interrupted,
        };
        Some(RunSummary {
            run_id: r.run_id,
            session_key: r.session_key,
            session_id: r.session_id,
            outcome,
            started_at_ms: r.started_at_ms,
            ended_at_ms: r.ended_at_ms.unwrap_or(r.started_at_ms),
            stop_reason: r.stop_reason,
            reply: r.reply_text,
            error: r.error,
        })
    }
}

/// What became of a send.
#[derive(Debug, Clone, PartialEq)]
pub enum SendAccepted {
    /// A new run.
    Started { run_id: String, accepted_at_ms: i64 },
    /// A run with this id is waiting or running.
    InFlight { run_id: String },
    /// A run with this id has finished.
    Done(RunSummary),
}

/// One session for `sessions.list`.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    pub key: String,
    pub session_id: String,
    pub agent_id: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub channel: Option<String>,
    pub running: bool,
}

impl SessionRow {
    pub fn to_json(&self) -> Value {
        json!({
            "key": self.key,
            "sessionKey": self.key,
            "sessionId": self.session_id,
            "agentId": self.agent_id,
            "kind": "direct",
            "createdAt": self.created_at_ms,
            "updatedAt": self.updated_at_ms,
            "channel": self.channel,
            "running": self.running,
        })
    }
}

/// A page of a session's transcript.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    pub session_key: String,
    pub session_id: Option<String>,
    pub messages: Vec<Value>,
    /// How many messages the session's transcript holds in all.
    pub total: usize,
}

/// The sessions as the store has them, read at start-up.
pub struct LoadedSessions(HashMap<String, SessionState>);

impl LoadedSessions {
    pub fn load(store: &Store) -> Result<LoadedSessions, AgentError> {
        let ends: HashMap<String, i64> = store.transcript_ends()?.into_iter().collect();
        let mut sessions = HashMap::new();
        for record in store.sessions()? {
            let last_seq = ends.get(&record.session_id).copied().unwrap_or(0);
            sessions.insert(
                record.session_key.clone(),
                SessionState { record, last_seq },
            );
        }
        Ok(LoadedSessions(sessions))
    }
}

pub(crate) struct SessionState {
    pub record: SessionRecord,
    /// The position of the last transcript message of the current session id.
    pub last_seq: i64,
}

pub(crate) struct ActiveRun {
    pub session_key: String,
    pub cancel: CancellationToken,
    pub done: watch::Sender<Option<RunSummary>>,
}

#[derive(Default)]
struct Runs {
    active: HashMap<String, Arc<ActiveRun>>,
    finished: HashMap<String, RunSummary>,
    finished_order: VecDeque<String>,
}

impl Runs {
    fn finish(&mut self, summary: RunSummary) {
        self.active.remove(&summary.run_id);
        if self.finished_order.len() >= FINISHED_RUNS_KEPT
            && let Some(old) = self.finished_order.pop_front()
        {
            self.finished.remove(&old);
        }
        self.finished_order.push_back(summary.run_id.clone());
        self.finished.insert(summary.run_id.clone(), summary);
    }
}

pub(crate) struct Inner {
    pub store: Arc<Store>,
    pub llm: RwLock<Llm>,
    pub nodes: Arc<dyn NodeAccess>,
    pub events: Arc<dyn EventSink>,
    pub options: AgentOptions,
    pub keys: SessionKey,
    pub sessions: Mutex<HashMap<String, SessionState>>,
    /// Per session key, taken by the run that runs; later runs of the key wait for it in the
    /// order they were sent. An entry goes when no run holds or waits for it.
    pub lanes: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Per session key, the steer-mode messages waiting for the lane.
    pub steered: Mutex<HashMap<String, Vec<Steered>>>,
    runs: Mutex<Runs>,
    pub concurrency: Arc<Semaphore>,
    /// Serializes transcript positions and session creation between runs and injections.
    pub writes: tokio::sync::Mutex<()>,
    pub approvals: crate::approvals::Approvals,
    pub exec_policy: crate::exec_policy::ExecPolicy,
}

/// The agent runtime. Cloning shares it.
#[derive(Clone)]
pub struct Agent {
    inner: Arc<Inner>,
}

impl Agent {
    /// [`Agent::new`], then [`Agent::end_interrupted_runs`].
    pub async fn open(
        store: Arc<Store>,
        llm: Llm,
        nodes: Arc<dyn NodeAccess>,
        events: Arc<dyn EventSink>,
        options: AgentOptions,
    ) -> Result<Agent, AgentError> {
        let agent = Agent::new(store, llm, nodes, events, options)?;
        agent.end_interrupted_runs().await?;
        Ok(agent)
    }

    /// Loads the sessions from the store (start-up, before the gateway serves).
    pub fn new(
        store: Arc<Store>,
        llm: Llm,
        nodes: Arc<dyn NodeAccess>,
        events: Arc<dyn EventSink>,
        options: AgentOptions,
    ) -> Result<Agent, AgentError> {
        let sessions = LoadedSessions::load(&store)?;
        Ok(Agent::with_sessions(
            sessions, store, llm, nodes, events, options,
        ))
    }

    /// [`Agent::new`] with the sessions already loaded (a caller that must build the runtime
    /// where it cannot fail, such as inside the gateway's constructor).
    pub fn with_sessions(
        sessions: LoadedSessions,
        store: Arc<Store>,
        llm: Llm,
        nodes: Arc<dyn NodeAccess>,
        events: Arc<dyn EventSink>,
        options: AgentOptions,
    ) -> Agent {
        let keys = SessionKey::new(&options.agent_id, &options.main_key);
        let concurrency = Arc::new(Semaphore::new(options.max_concurrent.max(1)));
        // The policy file lives beside the database, in the state dir.
        let exec_policy = crate::exec_policy::ExecPolicy::new(
            store.path().parent().unwrap_or(std::path::Path::new(".")),
        );
        Agent {
            inner: Arc::new(Inner {
                store,
                llm: RwLock::new(llm),
                nodes,
                events,
                keys,
                sessions: Mutex::new(sessions.0),
                lanes: Mutex::default(),
                steered: Mutex::default(),
                runs: Mutex::default(),
                concurrency,
                writes: tokio::sync::Mutex::new(()),
                approvals: crate::approvals::Approvals::default(),
                exec_policy,
                options,
            }),
        }
    }

    /// Ends the runs a previous process left running: each gets a note in its transcript and
    /// the outcome `interrupted`; none is run again. Call once at start, before serving.
    pub async fn end_interrupted_runs(&self) -> Result<usize, AgentError> {
        let inner = &self.inner;
        let interrupted = inner.store.running_runs()?;
        if interrupted.is_empty() {
            return Ok(0);
        }
        let _order = inner.writes.lock().await;
        let now = now_ms();
        let mut seqs: HashMap<String, i64> = inner.store.transcript_ends()?.into_iter().collect();
        let mut writes: Vec<Write> = Vec::new();
        let note = "This turn was interrupted: the gateway stopped before it finished. Nothing it had started was run again; send the message again to retry.";
        for run in &interrupted {
            let seq = seqs.entry(run.session_id.clone()).or_insert(0);
            *seq += 1;
            writes.push(
                SessionWrite::Append(TranscriptEntry {
                    session_id: run.session_id.clone(),
                    seq: *seq,
                    run_id: Some(run.run_id.clone()),
                    message: transcript::assistant_note("", "error", note, now),
                    created_at_ms: now,
                })
                .into(),
            );
            writes.push(
                SessionWrite::PutRun(RunRecord {
                    status: RunStatus::Interrupted,
                    ended_at_ms: Some(now),
                    stop_reason: Some("error".into()),
                    error: Some(note.into()),
                    ..run.clone()
                })
                .into(),
            );
        }
        inner.store.apply(writes).await?;
        for s in self.lock_sessions().values_mut() {
            if let Some(seq) = seqs.get(&s.record.session_id) {
                s.last_seq = *seq;
            }
        }
        tracing::warn!(
            runs = interrupted.len(),
            "ended the agent runs the previous gateway left unfinished"
        );
        Ok(interrupted.len())
    }

    pub fn options(&self) -> &AgentOptions {
        &self.inner.options
    }

    /// The main session's key (`agent:main:main`).
    pub fn main_session_key(&self) -> String {
        self.inner.keys.main()
    }

    pub fn session_keys(&self) -> &SessionKey {
        &self.inner.keys
    }

    /// The model layer runs use from now on (a config reload).
    pub fn set_llm(&self, llm: Llm) {
        *self.inner.llm.write().unwrap_or_else(|e| e.into_inner()) = llm;
    }

    pub fn llm(&self) -> Llm {
        self.inner
            .llm
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Starts a run for a message, or says what became of the run with this id.
    pub async fn send(&self, request: SendRequest) -> Result<SendAccepted, AgentError> {
        validate_key(&request.session_key)?;
        if request.run_id.trim().is_empty() {
            return Err(AgentError::Invalid {
                field: "idempotencyKey",
                reason: "must not be empty".into(),
            });
        }
        if let Some(known) = self.known_run(&request.run_id) {
            return Ok(known);
        }
        // A run of an earlier process is answered from the store.
        if let Some(record) = self.inner.store.run(&request.run_id).await?
            && let Some(summary) = RunSummary::from_record(record)
        {
            return Ok(SendAccepted::Done(summary));
        }
        let accepted_at_ms = now_ms();
        let cancel = CancellationToken::new();
        let (done, _) = watch::channel(None);
        let active = Arc::new(ActiveRun {
            session_key: request.session_key.clone(),
            cancel: cancel.clone(),
            done,
        });
        let mode = request.queue_mode.unwrap_or(self.inner.options.queue_mode);
        {
            let mut runs = self.lock_runs();
            if let Some(known) = known_in(&runs, &request.run_id) {
                return Ok(known);
            }
            if runs.active.len() >= MAX_QUEUED_RUNS {
                return Err(AgentError::Busy);
            }
            if mode == QueueMode::Interrupt {
                for run in runs.active.values() {
                    if run.session_key == request.session_key {
                        run.cancel.cancel();
                    }
                }
            }
            runs.active.insert(request.run_id.clone(), active.clone());
        }
        if mode == QueueMode::Steer {
            self.inner
                .steered
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(request.session_key.clone())
                .or_default()
                .push(Steered {
                    run_id: request.run_id.clone(),
                    message: request.message.clone(),
                    absorbed_into: None,
                });
        }
        let agent = self.clone();
        let run_id = request.run_id.clone();
        tokio::spawn(async move {
            let summary = match turn::run(&agent.inner, request, active.cancel.clone()).await {
                turn::RunEnd::Ran(summary) => summary,
                // Its message went into another run's model call: it ends as that run does.
                turn::RunEnd::Absorbed { run_id, into } => {
                    let ended = agent
                        .wait(&into, Duration::from_secs(u64::from(u32::MAX)))
                        .await;
                    ended.map_or_else(
                        || RunSummary {
                            run_id: run_id.clone(),
                            session_key: active.session_key.clone(),
                            session_id: String::new(),
                            outcome: RunOutcome::Error,
                            started_at_ms: accepted_at_ms,
                            ended_at_ms: now_ms(),
                            stop_reason: None,
                            reply: None,
                            error: Some(format!("the run {into} it joined has no outcome")),
                        },
                        |s| RunSummary {
                            run_id: run_id.clone(),
                            ..s
                        },
                    )
                }
            };
            agent.lock_runs().finish(summary.clone());
            active.done.send_replace(Some(summary));
        });
        Ok(SendAccepted::Started {
            run_id,
            accepted_at_ms,
        })
    }

    fn lock_runs(&self) -> std::sync::MutexGuard<'_, Runs> {
        self.inner.runs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn known_run(&self, run_id: &str) -> Option<SendAccepted> {
        known_in(&self.lock_runs(), run_id)
    }

    /// Waits up to `timeout` for a run to end. `None`: no such run, or still running then.
    pub async fn wait(&self, run_id: &str, timeout: Duration) -> Option<RunSummary> {
        let subscribed = {
            let runs = self.lock_runs();
            if let Some(s) = runs.finished.get(run_id) {
                return Some(s.clone());
            }
            runs.active.get(run_id).map(|run| run.done.subscribe())
        };
        let Some(mut rx) = subscribed else {
            return self
                .inner
                .store
                .run(run_id)
                .await
                .ok()
                .flatten()
                .and_then(RunSummary::from_record);
        };
        let ended = tokio::time::timeout(timeout, rx.wait_for(Option::is_some)).await;
        match ended {
            Ok(Ok(summary)) => summary.clone(),
            _ => None,
        }
    }

    /// Whether a run is waiting or running.
    pub fn is_running(&self, run_id: &str) -> bool {
        self.lock_runs().active.contains_key(run_id)
    }

    /// Aborts the runs of a session (all of them, or the one given). Returns the ids aborted.
    pub fn abort(&self, session_key: &str, run_id: Option<&str>) -> Vec<String> {
        let runs = self.lock_runs();
        let mut ids: Vec<String> = runs
            .active
            .iter()
            .filter(|(id, r)| r.session_key == session_key && run_id.is_none_or(|w| w == *id))
            .map(|(id, r)| {
                r.cancel.cancel();
                id.clone()
            })
            .collect();
        ids.sort();
        ids
    }

    /// The last `limit` messages of a session's current transcript.
    pub async fn history(&self, session_key: &str, limit: usize) -> Result<History, AgentError> {
        validate_key(session_key)?;
        let (session_id, total) = self
            .lock_sessions()
            .get(session_key)
            .map_or((None, 0), |s| {
                (
                    Some(s.record.session_id.clone()),
                    usize::try_from(s.last_seq).unwrap_or(0),
                )
            });
        let messages = match &session_id {
            Some(id) => self
                .inner
                .store
                .transcript(id, limit)
                .await?
                .into_iter()
                .map(|e| e.message)
                .collect(),
            None => Vec::new(),
        };
        Ok(History {
            session_key: session_key.to_owned(),
            session_id,
            messages,
            total,
        })
    }

    /// Adds an assistant note to an existing session's transcript without running the model,
    /// and announces it as a `chat` final of run `inject-<messageId>`. Returns the message id.
    pub async fn inject(&self, session_key: &str, text: &str) -> Result<String, AgentError> {
        validate_key(session_key)?;
        if !self.lock_sessions().contains_key(session_key) {
            return Err(AgentError::UnknownSession(session_key.to_owned()));
        }
        let message_id = uuid::Uuid::new_v4().to_string();
        let mut message = transcript::assistant(text, &[], "stop", None, None, now_ms());
        message["model"] = json!("gateway-injected");
        message["messageId"] = json!(message_id);
        turn::append_outside_run(&self.inner, session_key, message.clone(), None).await?;
        self.inner.events.publish(
            "chat",
            json!({
                "runId": format!("inject-{message_id}"),
                "sessionKey": session_key,
                "agentId": self.inner.options.agent_id,
                "seq": 0,
                "state": "final",
                "message": message,
            }),
            Audience::Everyone,
        );
        Ok(message_id)
    }

    pub fn sessions(&self) -> Vec<SessionRow> {
        let running: Vec<String> = self
            .lock_runs()
            .active
            .values()
            .map(|r| r.session_key.clone())
            .collect();
        let mut rows: Vec<SessionRow> = self
            .lock_sessions()
            .values()
            .map(|s| row(&s.record, running.contains(&s.record.session_key)))
            .collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r.updated_at_ms));
        rows
    }

    /// Points a session key at a new, empty session id; the old transcript is kept.
    pub async fn reset(&self, session_key: &str) -> Result<SessionRow, AgentError> {
        validate_key(session_key)?;
        self.abort(session_key, None);
        let record = turn::new_session(&self.inner, session_key, None).await?;
        let row = row(&record, false);
        self.inner.events.publish(
            "sessions.changed",
            json!({"sessionKey": session_key, "agentId": record.agent_id, "reason": "reset", "session": row.to_json()}),
            Audience::Everyone,
        );
        Ok(row)
    }

    /// Answers a waiting exec approval.
    pub fn resolve_approval(
        &self,
        id: &str,
        decision: crate::approvals::Decision,
    ) -> Result<(), AgentError> {
        if self.inner.approvals.resolve(id, decision) {
            Ok(())
        } else {
            Err(AgentError::UnknownApproval(id.to_owned()))
        }
    }

    /// The exec approvals waiting for an answer, as announced.
    pub fn pending_approvals(&self) -> Vec<Value> {
        self.inner.approvals.pending()
    }

    /// `exec.approvals.get`: the gateway's exec approvals policy.
    pub async fn exec_approvals(&self) -> Result<Value, ExecPolicyError> {
        self.inner.exec_policy.get().await
    }

    /// `exec.approvals.set {file, baseHash}`: replaces the gateway's exec approvals policy.
    pub async fn set_exec_approvals(&self, params: &Value) -> Result<Value, ExecPolicyError> {
        self.inner.exec_policy.set(params).await
    }

    fn lock_sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, SessionState>> {
        self.inner
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

fn known_in(runs: &Runs, run_id: &str) -> Option<SendAccepted> {
    if runs.active.contains_key(run_id) {
        return Some(SendAccepted::InFlight {
            run_id: run_id.to_owned(),
        });
    }
    runs.finished
        .get(run_id)
        .map(|s| SendAccepted::Done(s.clone()))
}

pub(crate) fn row(record: &SessionRecord, running: bool) -> SessionRow {
    SessionRow {
        key: record.session_key.clone(),
        session_id: record.session_id.clone(),
        agent_id: record.agent_id.clone(),
        created_at_ms: record.created_at_ms,
        updated_at_ms: record.updated_at_ms,
        channel: record.meta["channel"].as_str().map(str::to_owned),
        running,
    }
}

fn validate_key(key: &str) -> Result<(), AgentError> {
    if key.trim().is_empty() {
        return Err(AgentError::Invalid {
            field: "sessionKey",
            reason: "must not be empty (the main session is \"agent:main:main\")".into(),
        });
    }
    if key.len() > 512 || key.chars().any(char::is_control) {
        return Err(AgentError::Invalid {
            field: "sessionKey",
            reason: "must be at most 512 characters, without control characters".into(),
        });
    }
    Ok(())
}
