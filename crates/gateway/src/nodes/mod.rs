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
//!
//! Here: the live nodes, their approved surfaces and attach/detach. `approval.rs`: capability
//! requests and `node.pair.*`; `invoke.rs`: `node.invoke` and its results; `stream.rs`: progress
//! and input of streaming invokes; `events.rs`: what nodes report (`node.event`, inventories).

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

mod approval;
mod events;
mod invoke;
mod stream;

pub(crate) use invoke::{InvokeRequest, NodeInvoker, caller_key};
use stream::ProgressRelay;
pub use stream::{InvokeInputError, NodeInvokeStream};

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

    fn not_found(id: &str) -> ErrorShape {
        errors::approval_not_found("requestId", id, "clawgate nodes pending")
    }

    fn store_failed(e: StoreError) -> ErrorShape {
        tracing::error!("node store: {e}");
        errors::unavailable(
            "the gateway could not write its node state; nothing was changed (see its log)",
        )
    }
}
