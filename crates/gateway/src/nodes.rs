//! Nodes: live node sessions, capability approval of their command surface, and the invoke
//! table that relays `node.invoke` to a node and its `node.invoke.result` back.
//!
//! Pending invokes are bounded per node and overall, and each one has a deadline; a node that
//! drops fails every invoke it owed with `DISCONNECTED`.
//!
//! Streaming, as OpenClaw 2026.9.6 has it (`node-registry.invoke-stream`): a node may send
//! ordered `node.invoke.progress` chunks while it works, and the gateway may feed a pending invoke
//! ordered `node.invoke.input` frames. Only in-process callers consume progress (the real
//! gateway's terminal relay, node CLI runs and plugin duplex commands); an operator's
//! `node.invoke` has no consumer, so its progress is acknowledged as `ignored` and dropped —
//! operators never see a progress event. See [`Gateway::invoke_node_streaming`] and
//! [`Gateway::send_node_invoke_input`].

use crate::Gateway;
use crate::registry::{ConnHandle, Registry, Session};
use clawgate_protocol::errors::{self, ErrorShape};
use clawgate_protocol::limits::MAX_NODE_INVOKE_CHUNK_BYTES;
use clawgate_protocol::node_invoke as wire;
use clawgate_protocol::nodes as policy;
use clawgate_protocol::schema::{self, Schema};
use clawgate_store::{NodeRecord, NodeRequestRecord, NodeWrite, Store, StoreError, Write};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Invokes waiting for one node's answer, at most.
const MAX_PENDING_PER_NODE: usize = 256;
/// Invokes waiting across all nodes, at most.
const MAX_PENDING_TOTAL: usize = 4096;
/// Invokes one caller (a device, or a device-less client's address) may have waiting at once,
/// however many sockets it opens, so that no single operator can fill [`MAX_PENDING_TOTAL`].
const MAX_PENDING_PER_CALLER: usize = 256;
/// Results and progress chunks for invokes a node does not own (unknown, finished, someone
/// else's) it may send in a row before it is cut off. The real gateway acknowledges them all;
/// clawgate bounds the work a confused or hostile node can make it do.
const MAX_STRAYS: u32 = 256;
/// `node.invoke` default budget.
pub(crate) const DEFAULT_INVOKE_TIMEOUT_MS: u64 = 30_000;
/// The longest invoke budget: what the real gateway clamps `timeoutMs` to
/// (`MAX_TIMER_TIMEOUT_MS`, about 24.8 days, the most a Node.js timer holds). Legitimate callers
/// ask for long budgets (OpenClaw's exec tool waits 30 min and more for a node's command), so
/// the clamp keeps a huge value from overflowing the deadline; the per-caller and per-node caps
/// are what keep invokes that never end from filling the table.
const MAX_INVOKE_TIMEOUT_MS: u64 = 2_147_000_000;
/// `node.event`s a node may send in a burst, and per second after it.
const EVENT_BURST: f64 = 200.0;
const EVENTS_PER_SECOND: f64 = 50.0;
/// Out-of-order progress chunks held per streaming invoke until the gap fills (the real
/// gateway's `MAX_PENDING_PROGRESS_CHUNKS`); beyond it they are ignored.
const MAX_EARLY_PROGRESS: usize = 128;
/// In-order progress chunks queued for a streaming invoke's caller (≤ 4 MiB). A caller that
/// falls this far behind gets its invoke cancelled rather than the gateway buffering without
/// end. Twice the out-of-order bound, so a filled gap releasing every held chunk at once never
/// overflows a caller that was keeping up.
const MAX_QUEUED_PROGRESS: usize = 2 * MAX_EARLY_PROGRESS;

struct LiveNode {
    conn: Arc<ConnHandle>,
    session: Session,
    host_stats: Option<Value>,
    skills: Value,
    plugin_tools: Value,
    /// Results and progress for invokes this node does not own, in a row.
    strays: u32,
    /// Token bucket for `node.event`: a node that floods events is cut off instead of making
    /// the gateway broadcast without end.
    event_budget: f64,
    event_refilled: tokio::time::Instant,
}

/// What came back for one invoke: its `payload` and `payloadJSON`, or the caller's error.
type Outcome = Result<(Option<Value>, Option<String>), ErrorShape>;

struct PendingInvoke {
    node_id: String,
    /// Who asked ([`caller_key`]); `None` for the gateway's own in-process invokes.
    caller: Option<String>,
    /// The node connection the request went out on: answers count only from it.
    conn: Arc<ConnHandle>,
    tx: oneshot::Sender<Outcome>,
    /// Once the node sent progress, the command has started: a `NODE_NOT_READY` answer can no
    /// longer mean "retry me".
    received_progress: bool,
    /// Where progress goes; `None` when nobody consumes it (an operator's `node.invoke`).
    relay: Option<ProgressRelay>,
    /// `seq` of the next `node.invoke.input`.
    next_input_seq: u64,
}

/// Puts a streaming invoke's progress in `seq` order for its caller.
struct ProgressRelay {
    tx: mpsc::Sender<String>,
    next_seq: u64,
    early: BTreeMap<u64, String>,
}

/// What became of one progress chunk.
#[derive(Debug, PartialEq)]
enum Relayed {
    /// Queued for the caller, or held until the chunks before it arrive.
    Accepted,
    /// A duplicate, a chunk already passed, or one past the out-of-order bound.
    Ignored,
    /// The caller stopped taking chunks (queue full, or gone).
    Stalled,
}

impl ProgressRelay {
    fn new(tx: mpsc::Sender<String>) -> Self {
        ProgressRelay {
            tx,
            next_seq: 0,
            early: BTreeMap::new(),
        }
    }

    fn relay(&mut self, seq: u64, chunk: String) -> Relayed {
        if seq < self.next_seq || self.early.contains_key(&seq) {
            return Relayed::Ignored;
        }
        if seq > self.next_seq {
            if self.early.len() >= MAX_EARLY_PROGRESS {
                return Relayed::Ignored;
            }
            self.early.insert(seq, chunk);
            return Relayed::Accepted;
        }
        let mut chunk = chunk;
        loop {
            if self.tx.try_send(chunk).is_err() {
                return Relayed::Stalled;
            }
            self.next_seq += 1;
            match self.early.remove(&self.next_seq) {
                Some(next) => chunk = next,
                None => return Relayed::Accepted,
            }
        }
    }
}

/// Why `node.invoke.input` could not be sent; the texts are the real gateway's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvokeInputError {
    #[error("node invoke is not pending")]
    NotPending,
    #[error("node invoke input exceeds 16 KiB")]
    TooLarge,
    #[error("failed to send node invoke input")]
    SendFailed,
}

/// What relaying an invoke needs from the gateway: where node frames go and the operator's
/// command policy (`gateway.nodes.commands.allow`/`deny`), so that [`Nodes::invoke`] is not
/// tied to the whole gateway. [`Gateway::invoke_context`] lends one.
#[derive(Clone, Copy)]
pub(crate) struct InvokeContext<'a> {
    pub registry: &'a Registry,
    pub commands_allow: &'a [String],
    pub commands_deny: &'a [String],
}

/// A node's `(payload, payloadJSON)`, or the error an operator gets.
pub(crate) type InvokeFuture<'a> =
    Pin<Box<dyn Future<Output = Result<(Value, Value), ErrorShape>> + Send + 'a>>;

/// How in-process callers (node methods today, the agent runtime next) reach nodes without
/// holding the gateway; [`Gateway`] implements it.
pub(crate) trait NodeInvoker: Send + Sync {
    /// [`Nodes::invoke`].
    fn invoke_node<'a>(&'a self, request: InvokeRequest<'a>) -> InvokeFuture<'a>;
}

impl NodeInvoker for Gateway {
    fn invoke_node<'a>(&'a self, request: InvokeRequest<'a>) -> InvokeFuture<'a> {
        Box::pin(self.nodes.invoke(self.invoke_context(), request))
    }
}

/// One invoke of a node command: what [`Nodes::invoke`] sends as `node.invoke.request`.
#[derive(Clone)]
pub(crate) struct InvokeRequest<'a> {
    pub node_id: &'a str,
    pub command: &'a str,
    pub params: Option<Value>,
    /// The budget (the node is told what remains of it; `0` for a streaming invoke: none).
    pub timeout_ms: u64,
    pub idempotency_key: Option<&'a str>,
    pub session_key: Option<&'a str>,
    /// Whether the gateway's command policy applies (operator calls and streaming invokes);
    /// `exec.approvals.node.*` forward to the node's own approval commands without it.
    pub policy_checked: bool,
    /// Who asks ([`caller_key`]), counted against [`MAX_PENDING_PER_CALLER`].
    pub caller: Option<String>,
}

/// Whose invokes count together against [`MAX_PENDING_PER_CALLER`]: a device's, whatever
/// socket it uses; else those of a device-less client's address, so that opening more sockets
/// does not buy more invokes.
pub(crate) fn caller_key(session: &Session) -> String {
    match &session.device_id {
        Some(device) => format!("device {device}"),
        None => format!("address {}", session.ip),
    }
}

/// Drops a pending invoke whose caller stopped waiting for it, whether at its deadline or
/// because the caller itself went away (its socket closed and the request was dropped), and
/// tells the node with `node.invoke.cancel`. An invoke already answered is left alone.
struct CancelOnDrop<'a> {
    nodes: &'a Nodes,
    registry: &'a Registry,
    invoke_id: String,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        self.nodes.cancel(self.registry, &self.invoke_id);
    }
}

/// A node invoke whose progress streams to its caller, from
/// [`Gateway::invoke_node_streaming`]. Dropping it before the end cancels the invoke at the
/// node (`node.invoke.cancel`).
pub struct NodeInvokeStream {
    gw: Arc<Gateway>,
    id: String,
    progress: mpsc::Receiver<String>,
    /// `None` once the outcome was handed out.
    outcome: Option<oneshot::Receiver<Outcome>>,
    deadline: Option<Instant>,
    idle_timeout: Option<Duration>,
    idle_deadline: Option<Instant>,
}

impl NodeInvokeStream {
    /// The id the node knows the invoke by (`node.invoke.request` `id`), for
    /// [`Gateway::send_node_invoke_input`].
    pub fn invoke_id(&self) -> &str {
        &self.id
    }

    /// The next progress chunk (`Continue`), in `seq` order, or the invoke's outcome (`Break`):
    /// `(payload, payloadJSON)` like `node.invoke` answers, or the error an operator would get.
    /// Every chunk sent before the node's result comes before the outcome; `None` after it.
    /// Empty chunks are the node's heartbeats: they only keep an idle budget from expiring.
    pub async fn next(
        &mut self,
    ) -> Option<ControlFlow<Result<(Value, Value), ErrorShape>, String>> {
        let outcome = self.outcome.as_mut()?;
        let end = loop {
            tokio::select! {
                biased;
                _ = until(self.deadline) => break Err(errors::node_invoke_timeout()),
                Some(chunk) = self.progress.recv() => {
                    if let Some(idle) = self.idle_timeout {
                        self.idle_deadline = Some(Instant::now() + idle);
                    }
                    if !chunk.is_empty() {
                        return Some(ControlFlow::Continue(chunk));
                    }
                }
                r = &mut *outcome => {
                    self.outcome = None;
                    let result = r.unwrap_or_else(|_| Err(errors::node_disconnected()));
                    return Some(ControlFlow::Break(
                        result.map(|(payload, json)| parse_payload(payload, json)),
                    ));
                }
                _ = until(self.idle_deadline) => break Err(errors::node_idle_timeout()),
            }
        };
        self.outcome = None;
        self.gw.nodes.cancel(&self.gw.registry, &self.id);
        Some(ControlFlow::Break(end))
    }
}

impl Drop for NodeInvokeStream {
    fn drop(&mut self) {
        if self.outcome.is_some() {
            self.gw.nodes.cancel(&self.gw.registry, &self.id);
        }
    }
}

/// Sleeps until `at`, or forever without one.
async fn until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Gateway {
    pub(crate) fn invoke_context(&self) -> InvokeContext<'_> {
        InvokeContext {
            registry: &self.registry,
            commands_allow: &self.options.node_commands_allow,
            commands_deny: &self.options.node_commands_deny,
        }
    }

    /// Invokes `command` on a node and streams its `node.invoke.progress` chunks back, like the
    /// real gateway's in-process callers (terminal relay, node CLI runs) do. The gateway's command
    /// policy applies as for `node.invoke`. `timeout` bounds the whole invoke (`None`: the node is
    /// told `timeoutMs: 0` and only the idle budget applies); `idle_timeout` fails the invoke with
    /// `IDLE_TIMEOUT` when the node sends nothing for that long — counted from the first chunk, or
    /// from dispatch when there is no `timeout`. Either expiry cancels the invoke at the node.
    pub fn invoke_node_streaming(
        self: &Arc<Self>,
        node_id: &str,
        command: &str,
        params: Option<Value>,
        timeout: Option<Duration>,
        idle_timeout: Option<Duration>,
    ) -> Result<NodeInvokeStream, ErrorShape> {
        let (tx, progress) = mpsc::channel(MAX_QUEUED_PROGRESS);
        let idempotency_key = uuid::Uuid::new_v4().to_string();
        let timeout = timeout.map(|t| t.min(Duration::from_millis(MAX_INVOKE_TIMEOUT_MS)));
        let request = InvokeRequest {
            node_id,
            command,
            params,
            timeout_ms: timeout.map_or(0, |t| t.as_millis() as u64),
            idempotency_key: Some(&idempotency_key),
            session_key: None,
            policy_checked: true,
            caller: None,
        };
        let (id, outcome) =
            self.nodes
                .dispatch(self.invoke_context(), request, Some(ProgressRelay::new(tx)))?;
        let now = Instant::now();
        Ok(NodeInvokeStream {
            gw: self.clone(),
            id,
            progress,
            outcome: Some(outcome),
            deadline: timeout.map(|t| now + t),
            idle_timeout,
            idle_deadline: idle_timeout.filter(|_| timeout.is_none()).map(|t| now + t),
        })
    }

    /// Sends one `node.invoke.input` frame to the node working on the pending invoke
    /// `invoke_id`: `payload` travels as `payloadJSON` (at most 16 KiB), with the invoke's next
    /// `seq` starting at 0. Fails when the invoke is not pending on its node's live connection.
    pub fn send_node_invoke_input(
        &self,
        invoke_id: &str,
        payload: &Value,
    ) -> Result<(), InvokeInputError> {
        self.nodes.send_input(self, invoke_id, payload)
    }
}

struct State {
    approved: HashMap<String, NodeRecord>,
    requests: HashMap<String, NodeRequestRecord>,
    live: HashMap<String, LiveNode>,
    invokes: HashMap<String, PendingInvoke>,
}

pub(crate) struct Nodes {
    store: Arc<Store>,
    state: Arc<Mutex<State>>,
    /// Held by a change of the approvals from reading the state it starts from until it is on
    /// disk and in `state`, so changes apply one at a time without holding `state` (or an async
    /// worker) while the disk works.
    changing: Arc<tokio::sync::Mutex<()>>,
}

/// A change of the approvals under way (see `Nodes::changing`).
type Change = tokio::sync::OwnedMutexGuard<()>;

fn opt(v: &Option<String>) -> Value {
    v.as_ref().map_or(Value::Null, |s| json!(s))
}

fn node_request_json(r: &NodeRequestRecord) -> Value {
    let surface = policy::approval_surface(&r.commands);
    json!({
        "requestId": r.request_id,
        "nodeId": r.node_id,
        "clientId": r.client_id,
        "clientMode": r.client_mode,
        "displayName": opt(&r.display_name),
        "platform": opt(&r.platform),
        "version": opt(&r.version),
        "deviceFamily": opt(&r.device_family),
        "caps": r.caps,
        "commands": surface,
        "requiredApproveScopes": policy::required_approve_scopes(&surface),
        "silent": true,
        "ts": r.created_at_ms,
    })
}

fn approved_json(n: &NodeRecord) -> Value {
    json!({
        "nodeId": n.node_id,
        "clientId": n.client_id,
        "clientMode": "node",
        "displayName": opt(&n.display_name),
        "platform": opt(&n.platform),
        "version": opt(&n.version),
        "deviceFamily": opt(&n.device_family),
        "caps": n.caps,
        "commands": n.commands,
        "createdAtMs": n.created_at_ms,
        "approvedAtMs": n.approved_at_ms,
    })
}

/// Whether two lists hold the same strings, in any order and with any repeats.
fn same_set(a: &[String], b: &[String]) -> bool {
    a.iter().all(|x| b.contains(x)) && b.iter().all(|x| a.contains(x))
}

fn strip_nulls(mut v: Value) -> Value {
    if let Value::Object(m) = &mut v {
        m.retain(|_, x| !x.is_null());
    }
    v
}

impl State {
    fn pending_request_for(&self, node_id: &str) -> Option<&NodeRequestRecord> {
        self.requests.values().find(|r| r.node_id == node_id)
    }

    /// Declared commands the node may be invoked with: those in its approved surface.
    fn effective_commands(&self, node_id: &str, declared: &[String]) -> Vec<String> {
        let Some(approved) = self.approved.get(node_id) else {
            return Vec::new();
        };
        declared
            .iter()
            .filter(|c| approved.commands.contains(c))
            .cloned()
            .collect()
    }

    fn approval_state(&self, node_id: &str, declared: &[String]) -> &'static str {
        let surface = policy::approval_surface(declared);
        match self.approved.get(node_id) {
            Some(a) if surface.iter().all(|c| a.commands.contains(c)) => "approved",
            _ if self.pending_request_for(node_id).is_some() => "pending-approval",
            Some(_) => "approved",
            None => "unapproved",
        }
    }

    fn node_json(&self, node_id: &str) -> Option<Value> {
        let approved = self.approved.get(node_id);
        let live = self.live.get(node_id);
        let mut v = match (live, approved) {
            (Some(l), _) => {
                let c = &l.session.client;
                let surface = policy::approval_surface(&l.session.commands);
                json!({
                    "nodeId": node_id,
                    "displayName": c.display_name,
                    "platform": c.platform,
                    "version": c.version,
                    "clientId": c.id,
                    "clientMode": c.mode,
                    "deviceFamily": c.device_family,
                    "remoteIp": l.session.ip,
                    "caps": l.session.caps,
                    "commands": self.effective_commands(node_id, &surface),
                    "hostStats": l.host_stats,
                    "nodePluginTools": l.plugin_tools,
                    "pathEnv": l.session.path_env,
                    "approvalState": self.approval_state(node_id, &l.session.commands),
                    "connectedAtMs": l.session.connected_at_ms,
                    "lastSeenAtMs": l.session.connected_at_ms,
                    "lastSeenReason": "connect",
                })
            }
            (None, Some(a)) => json!({
                "nodeId": node_id,
                "displayName": a.display_name,
                "platform": a.platform,
                "version": a.version,
                "clientId": a.client_id,
                "clientMode": "node",
                "deviceFamily": a.device_family,
                "caps": a.caps,
                "commands": a.commands,
                "approvalState": "approved",
            }),
            (None, None) => return None,
        };
        v["approvedAtMs"] = approved.map_or(Value::Null, |a| json!(a.approved_at_ms));
        v["paired"] = json!(approved.is_some());
        v["connected"] = json!(live.is_some());
        Some(strip_nulls(v))
    }
}

/// Waits before sending an invoke again after the node answered `NODE_NOT_READY`.
const NOT_READY_RETRY_DELAYS_MS: [u64; 4] = [100, 250, 500, 1000];

/// The node said it is not ready yet (and sent no progress): nothing ran, a retry is safe.
fn is_not_ready(e: &ErrorShape) -> bool {
    e.details
        .as_ref()
        .and_then(|d| d.pointer("/nodeError/code"))
        .and_then(Value::as_str)
        == Some("NODE_NOT_READY")
}

/// A payload the gateway built, as the JSON value an event carries.
fn to_value<T: serde::Serialize>(payload: &T) -> Value {
    // Plain structs of strings and numbers: serialization cannot fail.
    serde_json::to_value(payload).unwrap_or(Value::Null)
}

/// A node's result as the caller sees it.
fn parse_payload(payload: Option<Value>, payload_json: Option<String>) -> (Value, Value) {
    match (payload, payload_json) {
        (_, Some(text)) => (
            serde_json::from_str(&text).unwrap_or(Value::String(text.clone())),
            Value::String(text),
        ),
        (Some(p), None) => {
            let text = p.to_string();
            (p, Value::String(text))
        }
        (None, None) => (Value::Null, Value::Null),
    }
}

impl Nodes {
    pub fn open(store: Arc<Store>) -> Result<Nodes, StoreError> {
        let approved = store
            .nodes()?
            .into_iter()
            .map(|n| (n.node_id.clone(), n))
            .collect();
        let requests = store
            .node_requests()?
            .into_iter()
            .map(|r| (r.request_id.clone(), r))
            .collect();
        Ok(Nodes {
            store,
            state: Arc::new(Mutex::new(State {
                approved,
                requests,
                live: HashMap::new(),
                invokes: HashMap::new(),
            })),
            changing: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    async fn begin_change(&self) -> Change {
        self.changing.clone().lock_owned().await
    }

    /// Writes `writes`, then applies them to `state` with `mirror` and ends `change`, all of it
    /// even if the caller stops waiting (its socket closed): the disk and memory cannot part.
    async fn commit<T: Send + 'static>(
        &self,
        change: Change,
        writes: Vec<Write>,
        mirror: impl FnOnce(&mut State) -> T + Send + 'static,
    ) -> Result<T, ErrorShape> {
        let state = self.state.clone();
        self.store
            .apply_then(writes, move || {
                let out = mirror(&mut state.lock().expect("nodes lock"));
                drop(change);
                out
            })
            .await
            .map_err(Self::store_failed)
    }

    /// A node finished its handshake. A new or wider command surface becomes a pending
    /// capability request, announced to pairing operators. A legacy node's request lists all it
    /// declared, its live surface only the built-in part (as the real gateway does).
    ///
    /// A request's id stands for the surface it showed: a node that comes back declaring the
    /// same surface keeps its request, one that declares another gets a new request id and the
    /// old one is resolved as rejected (as in OpenClaw), so that approving an id grants exactly
    /// what the approver was shown.
    pub async fn attach(&self, gw: &Gateway, conn: Arc<ConnHandle>, mut session: Session) {
        let node_id = session.node_id();
        let now = crate::now_ms();
        let surface = policy::approval_surface(&session.commands);
        let covered = |state: &State| {
            state
                .approved
                .get(&node_id)
                .is_some_and(|a| surface.iter().all(|c| a.commands.contains(c)))
        };
        let mut requested = None;
        let mut superseded = None;
        if !covered(&self.state.lock().expect("nodes lock")) {
            let _change = self.begin_change().await;
            // The request is in memory at once, so it is listed as soon as the node has its
            // hello; on disk next. Not being an approval, it need not wait for the disk: one
            // that does not get there is dropped again, and the node asks on its next connect.
            let recorded = {
                let mut state = self.state.lock().expect("nodes lock");
                // Checked again: an approval may have landed while waiting.
                (!covered(&state)).then(|| {
                    let existing = state.pending_request_for(&node_id).cloned();
                    let (kept, replaced) = match existing {
                        Some(e)
                            if same_set(&e.commands, &surface)
                                && same_set(&e.caps, &session.caps) =>
                        {
                            (Some(e), None)
                        }
                        other => (None, other),
                    };
                    let c = &session.client;
                    let record = NodeRequestRecord {
                        request_id: kept.as_ref().map_or_else(
                            || uuid::Uuid::new_v4().to_string(),
                            |r| r.request_id.clone(),
                        ),
                        node_id: node_id.clone(),
                        display_name: c.display_name.clone(),
                        platform: Some(c.platform.clone()),
                        version: Some(c.version.clone()),
                        device_family: c.device_family.clone(),
                        client_id: c.id.clone(),
                        client_mode: c.mode.clone(),
                        caps: session.caps.clone(),
                        commands: surface.clone(),
                        created_at_ms: kept.as_ref().map_or(now, |r| r.created_at_ms),
                        last_attempt_ms: now,
                    };
                    // One request per node: this one replaces the node's previous one.
                    if let Some(old) = kept.as_ref().or(replaced.as_ref()) {
                        state.requests.remove(&old.request_id);
                    }
                    state
                        .requests
                        .insert(record.request_id.clone(), record.clone());
                    (kept, replaced, record)
                })
            };
            if let Some((kept, replaced, record)) = recorded {
                match self
                    .store
                    .apply(vec![Write::Node(NodeWrite::PutNodeRequest(record.clone()))])
                    .await
                {
                    Ok(()) => {
                        if kept.is_none() {
                            requested = Some(node_request_json(&record));
                        }
                        superseded = replaced.map(|r| r.request_id);
                    }
                    Err(e) => {
                        tracing::error!("could not record the node's approval request: {e}");
                        let mut state = self.state.lock().expect("nodes lock");
                        state.requests.remove(&record.request_id);
                        if let Some(old) = kept.or(replaced) {
                            state.requests.insert(old.request_id.clone(), old);
                        }
                    }
                }
            }
        }
        let mut state = self.state.lock().expect("nodes lock");
        if session.legacy_node {
            clawgate_protocol::nodes::withhold_plugin_surface(
                &mut session.caps,
                &mut session.commands,
            );
        }
        let previous = state.live.insert(
            node_id.clone(),
            LiveNode {
                conn,
                session,
                host_stats: None,
                skills: json!([]),
                plugin_tools: json!([]),
                strays: 0,
                event_budget: EVENT_BURST,
                event_refilled: tokio::time::Instant::now(),
            },
        );
        drop(state);
        if let Some(p) = previous {
            // A reconnect replaced the old socket: what it owed will not come back.
            self.fail_invokes_on(&p.conn);
        }
        if let Some(request_id) = superseded {
            self.resolved(gw, &request_id, &node_id, "rejected", None);
        }
        if let Some(payload) = requested {
            gw.registry.broadcast("node.pair.requested", &payload);
        }
    }

    /// A node's socket closed: it is offline and every invoke it owed fails.
    pub fn detach(&self, session: &Session, conn: &Arc<ConnHandle>) {
        let node_id = session.node_id();
        let mut state = self.state.lock().expect("nodes lock");
        if state
            .live
            .get(&node_id)
            .is_some_and(|l| Arc::ptr_eq(&l.conn, conn))
        {
            state.live.remove(&node_id);
        }
        drop(state);
        self.fail_invokes_on(conn);
    }

    /// Fails the invokes sent on `conn`, which is gone.
    fn fail_invokes_on(&self, conn: &Arc<ConnHandle>) {
        let mut state = self.state.lock().expect("nodes lock");
        let ids: Vec<String> = state
            .invokes
            .iter()
            .filter(|(_, p)| Arc::ptr_eq(&p.conn, conn))
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            if let Some(p) = state.invokes.remove(&id) {
                let _ = p.tx.send(Err(errors::node_disconnected()));
            }
        }
    }

    pub fn list(&self) -> Value {
        let state = self.state.lock().expect("nodes lock");
        let mut ids: Vec<&String> = state.approved.keys().chain(state.live.keys()).collect();
        ids.sort();
        ids.dedup();
        let nodes: Vec<Value> = ids
            .into_iter()
            .filter_map(|id| state.node_json(id))
            .collect();
        json!({"ts": crate::now_ms(), "nodes": nodes})
    }

    pub fn describe(&self, node_id: &str) -> Result<Value, ErrorShape> {
        let state = self.state.lock().expect("nodes lock");
        let mut v = state
            .node_json(node_id)
            .ok_or_else(|| ErrorShape::new(errors::ErrorCode::InvalidRequest, "unknown nodeId"))?;
        v["ts"] = json!(crate::now_ms());
        Ok(v)
    }

    pub fn pair_list(&self) -> Value {
        let state = self.state.lock().expect("nodes lock");
        let mut pending: Vec<&NodeRequestRecord> = state.requests.values().collect();
        pending.sort_by_key(|r| r.created_at_ms);
        let mut paired: Vec<&NodeRecord> = state.approved.values().collect();
        paired.sort_by_key(|n| n.approved_at_ms);
        json!({
            "pending": pending.into_iter().map(node_request_json).collect::<Vec<_>>(),
            "paired": paired.into_iter().map(|n| strip_nulls(approved_json(n))).collect::<Vec<_>>(),
        })
    }

    fn not_found(id: &str) -> ErrorShape {
        errors::approval_not_found("requestId", id, "clawgate nodes pending")
    }

    fn store_failed(e: StoreError) -> ErrorShape {
        tracing::error!("node store: {e}");
        errors::unavailable(
            "the gateway could not write its node state; nothing was changed (see its log)",
        )
    }

    /// `node.pair.approve`: the caller must hold the request's `requiredApproveScopes`.
    pub async fn approve(
        &self,
        gw: &Gateway,
        request_id: &str,
        caller_scopes: &[String],
    ) -> Result<Value, ErrorShape> {
        let now = crate::now_ms();
        let change = self.begin_change().await;
        let (r, record) = {
            let state = self.state.lock().expect("nodes lock");
            let r = state
                .requests
                .get(request_id)
                .cloned()
                .ok_or_else(|| Self::not_found(request_id))?;
            for scope in policy::required_approve_scopes(&r.commands) {
                if !clawgate_protocol::scopes::satisfies(caller_scopes, scope) {
                    return Err(errors::missing_scope(scope));
                }
            }
            let created = state
                .approved
                .get(&r.node_id)
                .map_or(now, |a| a.created_at_ms);
            let record = NodeRecord {
                node_id: r.node_id.clone(),
                display_name: r.display_name.clone(),
                platform: r.platform.clone(),
                version: r.version.clone(),
                device_family: r.device_family.clone(),
                client_id: r.client_id.clone(),
                caps: r.caps.clone(),
                commands: r.commands.clone(),
                created_at_ms: created,
                approved_at_ms: now,
            };
            (r, record)
        };
        let writes = vec![
            Write::Node(NodeWrite::PutNode(record.clone())),
            Write::Node(NodeWrite::DeleteNodeRequest(request_id.into())),
        ];
        let (request, approved) = (request_id.to_owned(), record.clone());
        let node_conn = self
            .commit(change, writes, move |state| {
                state.requests.remove(&request);
                let node_id = approved.node_id.clone();
                state.approved.insert(node_id.clone(), approved);
                state.live.get(&node_id).map(|l| l.conn.clone())
            })
            .await?;
        self.resolved(gw, request_id, &r.node_id, "approved", node_conn.as_deref());
        gw.registry.broadcast(
            "node.runnerInventory.changed",
            &json!({"nodeId": r.node_id}),
        );
        let mut node = strip_nulls(approved_json(&record));
        node["lastSeenAtMs"] = json!(now);
        node["lastSeenReason"] = json!("connect");
        Ok(json!({"requestId": request_id, "node": node}))
    }

    pub async fn reject(&self, gw: &Gateway, request_id: &str) -> Result<Value, ErrorShape> {
        let change = self.begin_change().await;
        let r = self
            .state
            .lock()
            .expect("nodes lock")
            .requests
            .get(request_id)
            .cloned()
            .ok_or_else(|| Self::not_found(request_id))?;
        let (request, node_id) = (request_id.to_owned(), r.node_id.clone());
        let node_conn = self
            .commit(
                change,
                vec![Write::Node(NodeWrite::DeleteNodeRequest(request_id.into()))],
                move |state| {
                    state.requests.remove(&request);
                    state.live.get(&node_id).map(|l| l.conn.clone())
                },
            )
            .await?;
        self.resolved(gw, request_id, &r.node_id, "rejected", node_conn.as_deref());
        Ok(json!({"requestId": request_id, "nodeId": r.node_id}))
    }

    /// `node.pair.resolved` to operators (broadcast) and to the node itself (targeted).
    fn resolved(
        &self,
        gw: &Gateway,
        request_id: &str,
        node_id: &str,
        decision: &str,
        node: Option<&ConnHandle>,
    ) {
        let payload = json!({"requestId": request_id, "nodeId": node_id, "decision": decision, "ts": crate::now_ms()});
        gw.registry.broadcast("node.pair.resolved", &payload);
        if let Some(conn) = node {
            conn.send_event(&gw.registry, "node.pair.resolved", &payload);
        }
    }

    pub async fn remove(&self, gw: &Gateway, node_id: &str) -> Result<Value, ErrorShape> {
        let change = self.begin_change().await;
        let known = {
            let state = self.state.lock().expect("nodes lock");
            state.approved.contains_key(node_id) || state.pending_request_for(node_id).is_some()
        };
        if !known {
            return Err(ErrorShape::new(
                errors::ErrorCode::InvalidRequest,
                "unknown nodeId",
            ));
        }
        let removed = node_id.to_owned();
        let conn = self
            .commit(
                change,
                vec![Write::Node(NodeWrite::DeleteNode(node_id.into()))],
                move |state| {
                    state.approved.remove(&removed);
                    state.requests.retain(|_, r| r.node_id != removed);
                    state.live.get(&removed).map(|l| l.conn.clone())
                },
            )
            .await?;
        if let Some(c) = conn {
            gw.registry.close(&c, 1008, "node removed");
        }
        Ok(json!({"nodeId": node_id, "removed": true}))
    }

    pub async fn rename(&self, node_id: &str, name: &str) -> Result<Value, ErrorShape> {
        let change = self.begin_change().await;
        let mut record = self
            .state
            .lock()
            .expect("nodes lock")
            .approved
            .get(node_id)
            .cloned()
            .ok_or_else(|| ErrorShape::new(errors::ErrorCode::InvalidRequest, "unknown nodeId"))?;
        record.display_name = Some(name.into());
        let (renamed, display_name) = (node_id.to_owned(), name.to_owned());
        self.commit(
            change,
            vec![Write::Node(NodeWrite::PutNode(record.clone()))],
            move |state| {
                state.approved.insert(renamed.clone(), record);
                if let Some(l) = state.live.get_mut(&renamed) {
                    l.session.client.display_name = Some(display_name);
                }
            },
        )
        .await?;
        Ok(json!({"nodeId": node_id, "displayName": name}))
    }

    /// Sends the request's command to the node and waits for its answer, at most its
    /// `timeout_ms` (clamped to [`MAX_INVOKE_TIMEOUT_MS`]). Dropping the future (the caller
    /// went away) cancels the invoke at the node.
    pub async fn invoke(
        &self,
        cx: InvokeContext<'_>,
        request: InvokeRequest<'_>,
    ) -> Result<(Value, Value), ErrorShape> {
        let budget = Duration::from_millis(request.timeout_ms.min(MAX_INVOKE_TIMEOUT_MS));
        let deadline = Instant::now() + budget;
        // A node that answers NODE_NOT_READY (before any progress) has not run the command:
        // the real gateway sends it again, as a new invoke, after 100, 250, 500 and 1000 ms,
        // within the caller's budget.
        let mut retry_delays = NOT_READY_RETRY_DELAYS_MS.iter();
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(errors::node_invoke_timeout());
            }
            let attempt = InvokeRequest {
                timeout_ms: remaining.as_millis() as u64,
                ..request.clone()
            };
            let (invoke_id, rx) = self.dispatch(cx, attempt, None)?;
            let _cancel = CancelOnDrop {
                nodes: self,
                registry: cx.registry,
                invoke_id,
            };
            let outcome = match tokio::time::timeout_at(deadline, rx).await {
                Ok(Ok(outcome)) => outcome,
                Ok(Err(_)) => return Err(errors::node_disconnected()),
                Err(_) => return Err(errors::node_invoke_timeout()),
            };
            match (outcome, retry_delays.next()) {
                (Err(e), Some(&delay_ms)) if is_not_ready(&e) => {
                    let next = Instant::now() + Duration::from_millis(delay_ms);
                    tokio::time::sleep_until(next.min(deadline)).await;
                }
                (outcome, _) => {
                    return outcome.map(|(payload, json)| parse_payload(payload, json));
                }
            }
        }
    }

    /// Checks the node and the command, records the pending invoke and sends
    /// `node.invoke.request`. Returns the invoke id and where its outcome will arrive.
    fn dispatch(
        &self,
        cx: InvokeContext<'_>,
        request: InvokeRequest<'_>,
        relay: Option<ProgressRelay>,
    ) -> Result<(String, oneshot::Receiver<Outcome>), ErrorShape> {
        let started = Instant::now();
        let InvokeRequest {
            node_id, command, ..
        } = request;
        let invoke_id = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = oneshot::channel();
        let conn = {
            let mut state = self.state.lock().expect("nodes lock");
            let Some(live) = state.live.get(node_id) else {
                return Err(if state.approved.contains_key(node_id) {
                    errors::node_not_connected()
                } else {
                    errors::node_pairing_changed()
                });
            };
            if request.policy_checked {
                let s = &live.session;
                let platform =
                    policy::platform_id(&s.client.platform, s.client.device_family.as_deref());
                let approved = state
                    .approved
                    .get(node_id)
                    .map(|a| a.commands.clone())
                    .unwrap_or_default();
                let allow =
                    policy::allowlist(platform, &approved, cx.commands_allow, cx.commands_deny);
                let effective = state.effective_commands(node_id, &s.commands);
                if let Err(refusal) = policy::check_command(command, &allow, &effective) {
                    return Err(refusal_error(
                        cx.commands_deny,
                        refusal,
                        command,
                        platform,
                        &s.commands,
                        state.pending_request_for(node_id),
                    ));
                }
            }
            let (mut pending_here, mut pending_by_caller) = (0, 0);
            for p in state.invokes.values() {
                pending_here += usize::from(p.node_id == node_id);
                pending_by_caller +=
                    usize::from(request.caller.is_some() && p.caller == request.caller);
            }
            if pending_by_caller >= MAX_PENDING_PER_CALLER {
                return Err(errors::node_caller_busy(MAX_PENDING_PER_CALLER));
            }
            if pending_here >= MAX_PENDING_PER_NODE || state.invokes.len() >= MAX_PENDING_TOTAL {
                return Err(errors::node_busy());
            }
            let conn = live.conn.clone();
            state.invokes.insert(
                invoke_id.clone(),
                PendingInvoke {
                    node_id: node_id.into(),
                    caller: request.caller.clone(),
                    conn: conn.clone(),
                    tx,
                    received_progress: false,
                    relay,
                    next_input_seq: 0,
                },
            );
            conn
        };
        let remaining = request
            .timeout_ms
            .saturating_sub(started.elapsed().as_millis() as u64);
        let payload = wire::InvokeRequest {
            id: invoke_id.clone(),
            node_id: node_id.into(),
            command: command.into(),
            params_json: request.params.map(|p| p.to_string()),
            timeout_ms: Some(remaining),
            idempotency_key: request.idempotency_key.map(str::to_owned),
            session_key: request.session_key.map(str::to_owned),
        };
        conn.send_event(cx.registry, wire::REQUEST_EVENT, &to_value(&payload));
        Ok((invoke_id, rx))
    }

    /// Drops a pending invoke whose caller gave up (deadline, idle budget, stopped reading) and
    /// tells the node with `node.invoke.cancel`. An invoke already answered is left alone.
    fn cancel(&self, registry: &Registry, invoke_id: &str) -> Option<PendingInvoke> {
        let pending = self
            .state
            .lock()
            .expect("nodes lock")
            .invokes
            .remove(invoke_id)?;
        let cancel = wire::InvokeCancel {
            invoke_id: invoke_id.into(),
            node_id: pending.node_id.clone(),
        };
        pending
            .conn
            .send_event(registry, wire::CANCEL_EVENT, &to_value(&cancel));
        Some(pending)
    }

    /// `node.invoke.input` for a pending invoke: `payload` serialized into `payloadJSON`
    /// (≤ 16 KiB), with the invoke's next `seq`, sent to the node the invoke went to.
    pub fn send_input(
        &self,
        gw: &Gateway,
        invoke_id: &str,
        payload: &Value,
    ) -> Result<(), InvokeInputError> {
        let payload_json = payload.to_string();
        if payload_json.len() > MAX_NODE_INVOKE_CHUNK_BYTES {
            return Err(InvokeInputError::TooLarge);
        }
        let mut state = self.state.lock().expect("nodes lock");
        let State { live, invokes, .. } = &mut *state;
        let pending = invokes
            .get_mut(invoke_id)
            .filter(|p| {
                live.get(&p.node_id)
                    .is_some_and(|l| Arc::ptr_eq(&l.conn, &p.conn))
            })
            .ok_or(InvokeInputError::NotPending)?;
        let event = wire::InvokeInput {
            id: invoke_id.into(),
            node_id: pending.node_id.clone(),
            seq: pending.next_input_seq,
            payload_json,
        };
        pending
            .conn
            .send_event(&gw.registry, wire::INPUT_EVENT, &to_value(&event));
        // A node over its outbound budget is being cut off: the frame will not arrive.
        if pending.conn.kill.is_cancelled() {
            return Err(InvokeInputError::SendFailed);
        }
        pending.next_input_seq += 1;
        Ok(())
    }

    /// The pending invoke `id` if this node connection owns it.
    fn owned<'s>(
        state: &'s mut State,
        id: &str,
        node_id: &str,
        conn: &Arc<ConnHandle>,
    ) -> Option<&'s mut PendingInvoke> {
        state
            .invokes
            .get_mut(id)
            .filter(|p| p.node_id == node_id && Arc::ptr_eq(&p.conn, conn))
    }

    /// Counts an answer for an invoke the node does not own; past [`MAX_STRAYS`] in a row the
    /// node is cut off. Returns the acknowledgement the real gateway sends.
    fn stray(
        &self,
        gw: &Gateway,
        mut state: std::sync::MutexGuard<'_, State>,
        node_id: &str,
        close_reason: &str,
    ) -> Value {
        let cut_off = state.live.get_mut(node_id).and_then(|l| {
            l.strays += 1;
            (l.strays > MAX_STRAYS).then(|| l.conn.clone())
        });
        drop(state);
        if let Some(c) = cut_off {
            gw.registry.close(&c, 1008, close_reason);
        }
        json!({"ok": true, "ignored": true})
    }

    /// `node.invoke.result` from a node. Results for unknown, late or someone else's invokes
    /// are acknowledged and ignored; a node that keeps sending them is cut off.
    pub fn result(
        &self,
        gw: &Gateway,
        session: &Session,
        conn: &Arc<ConnHandle>,
        params: &Value,
    ) -> Result<Value, ErrorShape> {
        let result = wire::InvokeResult::from_params(params)
            .map_err(|e| errors::invalid_params(wire::RESULT_METHOD, &e))?;
        let node_id = session.node_id();
        if result.node_id != node_id {
            return Err(errors::node_id_mismatch());
        }
        let id = result.id.as_str();
        let mut state = self.state.lock().expect("nodes lock");
        let owned = Self::owned(&mut state, id, &node_id, conn).is_some();
        let Some(pending) = owned.then(|| state.invokes.remove(id)).flatten() else {
            return Ok(self.stray(gw, state, &node_id, "too many results for unknown invokes"));
        };
        if let Some(l) = state.live.get_mut(&node_id) {
            l.strays = 0;
        }
        drop(state);
        let outcome = if result.ok {
            Ok((result.payload, result.payload_json))
        } else {
            let err = result.error.unwrap_or(wire::InvokeError {
                code: None,
                message: None,
            });
            let code = err.code.as_deref().unwrap_or("UNAVAILABLE");
            Err(if code == "NODE_NOT_READY" && pending.received_progress {
                errors::node_not_ready_after_progress()
            } else {
                errors::node_error(code, err.message.as_deref().unwrap_or("node error"))
            })
        };
        let _ = pending.tx.send(outcome);
        Ok(json!({"ok": true}))
    }

    /// `node.invoke.progress` from a node: relayed in `seq` order to the invoke's streaming
    /// caller, or acknowledged as `ignored` when there is none (an operator's `node.invoke`, an
    /// unknown or finished invoke, a duplicate). The checks come in the real gateway's order:
    /// schema, node id, then the chunk's UTF-8 size.
    pub fn progress(
        &self,
        gw: &Gateway,
        session: &Session,
        conn: &Arc<ConnHandle>,
        params: &Value,
    ) -> Result<Value, ErrorShape> {
        schema::validate(Schema::NodeInvokeProgressParams, params)
            .map_err(|e| errors::invalid_params(wire::PROGRESS_METHOD, &e))?;
        let progress: wire::InvokeProgress = serde_json::from_value(params.clone())
            .map_err(|e| errors::invalid_params(wire::PROGRESS_METHOD, &e.to_string()))?;
        let node_id = session.node_id();
        if progress.node_id != node_id {
            return Err(errors::node_id_mismatch());
        }
        if progress.chunk.len() > MAX_NODE_INVOKE_CHUNK_BYTES {
            return Err(errors::progress_chunk_too_large());
        }
        let (invoke_id, seq) = (progress.invoke_id.as_str(), progress.seq);
        let mut state = self.state.lock().expect("nodes lock");
        let Some(pending) = Self::owned(&mut state, invoke_id, &node_id, conn) else {
            return Ok(self.stray(
                gw,
                state,
                &node_id,
                "too many progress chunks for unknown invokes",
            ));
        };
        pending.received_progress = true;
        let relayed = match &mut pending.relay {
            Some(relay) => relay.relay(seq, progress.chunk),
            None => Relayed::Ignored,
        };
        if let Some(l) = state.live.get_mut(&node_id) {
            l.strays = 0;
        }
        drop(state);
        if relayed == Relayed::Stalled
            && let Some(pending) = self.cancel(&gw.registry, invoke_id)
        {
            let _ = pending.tx.send(Err(errors::node_progress_overflow()));
        }
        Ok(json!({"ok": true, "ignored": relayed == Relayed::Ignored}))
    }

    /// `node.event` from a node; host stats are kept and broadcast as `node.hostStats`.
    pub fn event(
        &self,
        gw: &Gateway,
        session: &Session,
        params: &Value,
    ) -> Result<Value, ErrorShape> {
        let event = params.get("event").and_then(Value::as_str).ok_or_else(|| {
            errors::invalid_params("node.event", "must have required property 'event'")
        })?;
        if !self.take_event_budget(gw, &session.node_id()) {
            return Err(ErrorShape::new(
                errors::ErrorCode::Unavailable,
                "too many node events",
            ));
        }
        if event == "node.presence.alive" || event == "node.presence.activity" {
            // A node saying it is (in)active: operators see `node.presence`.
            let now = crate::now_ms();
            let payload = json!({"nodeId": session.node_id(), "lastActiveAtMs": now, "presenceUpdatedAtMs": now});
            gw.registry.broadcast("node.presence", &payload);
            return Ok(json!({"ok": true, "event": event, "handled": true, "reason": "updated"}));
        }
        if event != "node.host.stats" {
            return Ok(json!({"ok": true}));
        }
        let node_id = session.node_id();
        let mut stats: Value = params
            .get("payloadJSON")
            .and_then(Value::as_str)
            .and_then(|t| serde_json::from_str(t).ok())
            .or_else(|| params.get("payload").cloned())
            .unwrap_or_else(|| json!({}));
        stats["updatedAtMs"] = json!(crate::now_ms());
        if let Some(l) = self
            .state
            .lock()
            .expect("nodes lock")
            .live
            .get_mut(&node_id)
        {
            l.host_stats = Some(stats.clone());
        }
        gw.registry.broadcast(
            "node.hostStats",
            &json!({"nodeId": node_id, "hostStats": stats}),
        );
        Ok(json!({"ok": true, "event": event, "handled": true, "reason": "updated"}))
    }

    /// Spends one event from the node's budget; an exhausted budget closes the node's socket.
    fn take_event_budget(&self, gw: &Gateway, node_id: &str) -> bool {
        let mut state = self.state.lock().expect("nodes lock");
        let Some(l) = state.live.get_mut(node_id) else {
            return true;
        };
        let now = tokio::time::Instant::now();
        let refill = now.duration_since(l.event_refilled).as_secs_f64() * EVENTS_PER_SECOND;
        l.event_budget = (l.event_budget + refill).min(EVENT_BURST);
        l.event_refilled = now;
        if l.event_budget >= 1.0 {
            l.event_budget -= 1.0;
            return true;
        }
        let conn = l.conn.clone();
        drop(state);
        gw.registry.close(&conn, 1008, "too many node events");
        false
    }

    /// `node.skills.update`, `node.pluginTools.update`, `node.runnerInventory.update`.
    pub fn update(
        &self,
        gw: &Gateway,
        session: &Session,
        method: &str,
        params: &Value,
    ) -> Result<Value, ErrorShape> {
        let node_id = session.node_id();
        let mut state = self.state.lock().expect("nodes lock");
        match method {
            "node.skills.update" => {
                let skills = params.get("skills").cloned().unwrap_or_else(|| json!([]));
                if let Some(l) = state.live.get_mut(&node_id) {
                    l.skills = skills.clone();
                }
                Ok(json!({"nodeId": node_id, "skills": skills}))
            }
            "node.pluginTools.update" => {
                let tools = params.get("tools").cloned().unwrap_or_else(|| json!([]));
                if let Some(l) = state.live.get_mut(&node_id) {
                    l.plugin_tools = tools.clone();
                }
                Ok(json!({"nodeId": node_id, "tools": tools}))
            }
            _ => {
                if let Some(r) = state.pending_request_for(&node_id) {
                    return Err(errors::node_awaiting_approval(&r.request_id));
                }
                drop(state);
                gw.registry
                    .broadcast("node.runnerInventory.changed", &json!({"nodeId": node_id}));
                Ok(json!({"nodeId": node_id}))
            }
        }
    }
}

fn refusal_error(
    commands_deny: &[String],
    refusal: policy::CommandRefusal,
    command: &str,
    platform: &str,
    declared: &[String],
    pending: Option<&NodeRequestRecord>,
) -> ErrorShape {
    use policy::CommandRefusal::*;
    let (reason, message) = match refusal {
        NotAllowlisted if commands_deny.iter().any(|d| d.trim() == command) => (
            "command not allowlisted",
            format!("node command not allowed: \"{command}\" is blocked by gateway.nodes.commands.deny"),
        ),
        NotAllowlisted if policy::DANGEROUS_COMMANDS.contains(&command) => (
            "command not allowlisted",
            format!("node command not allowed: \"{command}\" requires explicit gateway.nodes.commands.allow opt-in"),
        ),
        NotAllowlisted => (
            "command not allowlisted",
            format!("node command not allowed: \"{command}\" is not in the allowlist for platform \"{platform}\" (add it to gateway.nodes.commands.allow)"),
        ),
        NotDeclared => (
            "command not declared by node",
            format!("node command not allowed: the node (platform: {platform}) does not support \"{command}\""),
        ),
        NothingDeclared if declared.iter().any(|c| c == command) => (
            "node did not declare commands",
            match pending {
                Some(r) => format!(
                    "node command not allowed: the node's declared command surface is pending approval; run `clawgate nodes approve {}` (or `openclaw nodes approve {}`)",
                    r.request_id, r.request_id
                ),
                None => "node command not allowed: the node's declared command surface is pending approval; run `clawgate nodes pending`, then `clawgate nodes approve <requestId>`".to_owned(),
            },
        ),
        NothingDeclared => (
            "node did not declare commands",
            "node command not allowed: the node did not declare any supported commands".to_owned(),
        ),
    };
    errors::node_command_not_allowed(&message, reason, command)
}
