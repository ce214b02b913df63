//! Live connections: the outbound queues, per-connection `seq`, scope-filtered broadcasts,
//! presence, and the gateway-wide timers (tick, ping).
//!
//! Timers are global rather than per connection: one `tick` loop walks the registry every
//! interval, so an idle connection costs no timer of its own. Likewise the outbound queue is a
//! plain deque that allocates only while frames wait, not a channel with a preallocated block.

use crate::Gateway;
use crate::shared_frame::SharedEvent;
use clawgate_protocol::connect::{ClientInfo, Role};
use clawgate_protocol::frames::{self, StateVersion};
use clawgate_protocol::scopes;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// What the connection task writes to its socket.
#[derive(Debug)]
pub(crate) enum Outbound {
    Text(String),
    /// A broadcast event, its payload serialized once for every recipient.
    Event(SharedEvent),
    Ping,
    Close(u16, String),
}

/// An authenticated connection's identity, set once `hello-ok` is sent.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub role: Role,
    pub scopes: Vec<String>,
    pub client: ClientInfo,
    pub ip: String,
    pub device_id: Option<String>,
    pub connected_at_ms: i64,
    /// What a node declared at connect (empty for operators).
    pub caps: Vec<String>,
    pub commands: Vec<String>,
    pub path_env: Option<String>,
    /// A node on protocol 3: its live surface has the plugin part withheld, though its
    /// approval request lists everything it declared.
    pub legacy_node: bool,
}

impl Session {
    /// A node's id: its device id, or its client id when it has no device.
    pub fn node_id(&self) -> String {
        self.device_id
            .clone()
            .unwrap_or_else(|| self.client.id.clone())
    }
}

impl Session {
    /// CLI, backend and probe connections are short-lived control-plane calls and do not show
    /// up in presence.
    fn is_ephemeral(&self) -> bool {
        matches!(self.client.mode.as_str(), "cli" | "backend" | "probe")
    }

    fn presence_entry(&self) -> Value {
        let c = &self.client;
        let host = c.display_name.clone().unwrap_or_else(|| c.id.clone());
        let mut e = json!({
            "host": host,
            "clientId": c.id,
            "ip": self.ip,
            "version": c.version,
            "platform": c.platform,
            "mode": c.mode,
            "reason": "connect",
            "roles": [self.role.as_str()],
            "scopes": self.scopes,
            "text": format!("{} ({}) · app {} · mode {}", host, self.ip, c.version, c.mode),
            "ts": self.connected_at_ms,
        });
        if let Some(f) = &c.device_family {
            e["deviceFamily"] = json!(f);
        }
        if let Some(i) = &c.instance_id {
            e["instanceId"] = json!(i);
        }
        if let Some(d) = &self.device_id {
            e["deviceId"] = json!(d);
        }
        e
    }
}

/// One connection as the rest of the gateway sees it.
pub(crate) struct ConnHandle {
    pub conn_id: String,
    outbound: Mutex<VecDeque<Outbound>>,
    /// Woken when a frame is queued (a stored permit covers a push before the wait).
    outbound_ready: Notify,
    /// Bytes queued for this socket and not yet written.
    queued: AtomicUsize,
    seq: AtomicU64,
    /// Cancelled when the connection must go away at once (slow consumer).
    pub kill: CancellationToken,
    /// Set (and `closing` woken) once a close is queued (device removed, shutdown), so a write
    /// stuck ahead of it in the queue can be given up.
    close_queued: AtomicBool,
    closing: Notify,
    session: RwLock<Option<Arc<Session>>>,
}

/// Queues above this many slots give their memory back once drained, so a burst does not
/// stay allocated on an idle connection.
const OUTBOUND_KEEP_CAPACITY: usize = 8;

impl ConnHandle {
    pub fn session(&self) -> Option<Arc<Session>> {
        self.session.read().expect("session lock").clone()
    }

    /// The next frame to write, waiting until one is queued.
    pub(crate) async fn next_outbound(&self) -> Outbound {
        loop {
            {
                let mut q = self.outbound.lock().expect("outbound lock");
                if let Some(out) = q.pop_front() {
                    if q.is_empty() && q.capacity() > OUTBOUND_KEEP_CAPACITY {
                        *q = VecDeque::new();
                    }
                    return out;
                }
            }
            self.outbound_ready.notified().await;
        }
    }

    /// Resolves once a close has been queued for this connection.
    pub(crate) async fn close_queued(&self) {
        loop {
            let woken = self.closing.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if self.close_queued.load(Ordering::Acquire) {
                return;
            }
            woken.await;
        }
    }

    /// Looks at the session without copying it: walks over every connection (presence,
    /// broadcasts) must not clone thousands of sessions.
    fn with_session<R>(&self, f: impl FnOnce(&Session) -> R) -> Option<R> {
        self.session.read().expect("session lock").as_deref().map(f)
    }

    fn is_authenticated(&self) -> bool {
        self.session.read().expect("session lock").is_some()
    }

    /// Sends a targeted event (no `seq`) to this connection.
    pub fn send_event(&self, registry: &Registry, event: &str, payload: &Value) {
        registry.send(self, Outbound::Text(frames::event(event, payload, None)));
    }

    /// Marks bytes as written.
    pub fn sent(&self, bytes: usize) {
        self.queued.fetch_sub(bytes, Ordering::AcqRel);
    }
}

pub struct Registry {
    conns: Mutex<HashMap<u64, Arc<ConnHandle>>>,
    next_key: AtomicU64,
    presence_version: AtomicU64,
    health_version: AtomicU64,
    changed: Notify,
    max_buffered_bytes: usize,
    /// The gateway's own presence entry (`reason: "self"`), listed first; `ts` is set per use.
    self_entry: Value,
}

impl Registry {
    pub fn new(max_buffered_bytes: usize, self_entry: Value) -> Self {
        Registry {
            self_entry,
            conns: Mutex::new(HashMap::new()),
            next_key: AtomicU64::new(1),
            presence_version: AtomicU64::new(1),
            health_version: AtomicU64::new(1),
            changed: Notify::new(),
            max_buffered_bytes,
        }
    }

    pub(crate) fn register(&self) -> (u64, Arc<ConnHandle>) {
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        let handle = Arc::new(ConnHandle {
            conn_id: uuid::Uuid::new_v4().to_string(),
            outbound: Mutex::new(VecDeque::new()),
            outbound_ready: Notify::new(),
            queued: AtomicUsize::new(0),
            seq: AtomicU64::new(0),
            kill: CancellationToken::new(),
            close_queued: AtomicBool::new(false),
            closing: Notify::new(),
            session: RwLock::new(None),
        });
        self.conns
            .lock()
            .expect("registry lock")
            .insert(key, handle.clone());
        (key, handle)
    }

    pub(crate) fn unregister(&self, key: u64) {
        let removed = self.conns.lock().expect("registry lock").remove(&key);
        if let Some(h) = removed {
            let visible = h.session().is_some_and(|s| !s.is_ephemeral());
            if visible {
                self.bump_presence();
            }
        }
        self.changed.notify_waiters();
    }

    pub fn connection_count(&self) -> usize {
        self.conns.lock().expect("registry lock").len()
    }

    pub(crate) async fn wait_for_change(&self, deadline: tokio::time::Instant) {
        let _ = tokio::time::timeout_at(deadline, self.changed.notified()).await;
    }

    fn snapshot(&self) -> Vec<Arc<ConnHandle>> {
        self.conns
            .lock()
            .expect("registry lock")
            .values()
            .cloned()
            .collect()
    }

    /// Queues a frame; a connection over its byte budget is cut off as a slow consumer.
    pub(crate) fn send(&self, conn: &ConnHandle, msg: Outbound) {
        let len = match &msg {
            Outbound::Text(t) => t.len(),
            Outbound::Event(e) => e.len(),
            _ => 0,
        };
        let queued = conn.queued.fetch_add(len, Ordering::AcqRel) + len;
        if queued > self.max_buffered_bytes {
            conn.kill.cancel();
            return;
        }
        let closes = matches!(msg, Outbound::Close(..));
        conn.outbound.lock().expect("outbound lock").push_back(msg);
        conn.outbound_ready.notify_one();
        if closes {
            conn.close_queued.store(true, Ordering::Release);
            conn.closing.notify_waiters();
        }
    }

    pub(crate) fn attach_session(&self, conn: &ConnHandle, session: Arc<Session>) {
        let visible = !session.is_ephemeral();
        *conn.session.write().expect("session lock") = Some(session);
        if visible {
            self.bump_presence();
        }
    }

    fn bump_presence(&self) {
        self.presence_version.fetch_add(1, Ordering::AcqRel);
        let presence = self.presence_list();
        self.broadcast_with_state("presence", &json!({"presence": presence}));
    }

    pub fn state_version(&self) -> StateVersion {
        StateVersion {
            presence: self.presence_version.load(Ordering::Acquire),
            health: self.health_version.load(Ordering::Acquire),
        }
    }

    /// The gateway itself, then every visible (non-ephemeral) client.
    pub(crate) fn presence_list(&self) -> Vec<Value> {
        let mut me = self.self_entry.clone();
        me["ts"] = json!(crate::now_ms());
        let mut list = vec![me];
        for c in self.snapshot() {
            if let Some(Some(entry)) =
                c.with_session(|s| (!s.is_ephemeral()).then(|| s.presence_entry()))
            {
                list.push(entry);
            }
        }
        list
    }

    /// Sends an event to every authenticated connection allowed to see it, each with its own
    /// next `seq`.
    pub fn broadcast(&self, event: &str, payload: &Value) {
        self.broadcast_inner(event, payload, None);
    }

    fn broadcast_with_state(&self, event: &str, payload: &Value) {
        let sv = self.state_version();
        self.broadcast_inner(event, payload, Some(sv));
    }

    fn broadcast_inner(&self, event: &str, payload: &Value, state: Option<StateVersion>) {
        let required = event_scope(event);
        let mut serialized = None;
        for conn in self.snapshot() {
            let allowed = conn.with_session(|session| match required {
                Some(scope) => {
                    session.role == Role::Operator && scopes::satisfies(&session.scopes, scope)
                }
                None => true,
            });
            if allowed != Some(true) {
                continue;
            }
            let seq = conn.seq.fetch_add(1, Ordering::AcqRel) + 1;
            let frame = match &state {
                Some(sv) => Outbound::Text(frames::event_with_state(event, payload, Some(seq), sv)),
                None => {
                    let serialized =
                        serialized.get_or_insert_with(|| SharedEvent::serialize(event, payload));
                    Outbound::Event(SharedEvent::with_seq(serialized, seq))
                }
            };
            self.send(&conn, frame);
        }
    }

    /// Closes the live sockets of a device (all roles, or one), e.g. after it was removed or its
    /// token revoked.
    pub(crate) fn disconnect_device(&self, device_id: &str, role: Option<Role>, reason: &str) {
        for conn in self.snapshot() {
            let matches = conn.with_session(|s| {
                s.device_id.as_deref() == Some(device_id) && role.is_none_or(|r| r == s.role)
            });
            if matches == Some(true) {
                self.send(&conn, Outbound::Close(1008, reason.into()));
            }
        }
    }

    /// Closes one connection with `code` and `reason`.
    pub(crate) fn close(&self, conn: &ConnHandle, code: u16, reason: &str) {
        self.send(conn, Outbound::Close(code, reason.into()));
    }

    /// Whether a device has a live authenticated socket.
    pub(crate) fn device_connected(&self, device_id: &str) -> bool {
        self.snapshot()
            .iter()
            .any(|c| c.with_session(|s| s.device_id.as_deref() == Some(device_id)) == Some(true))
    }

    /// Sends `shutdown` to every session and closes every connection with 1012.
    pub fn shutdown(&self, reason: &str) {
        self.broadcast("shutdown", &json!({"reason": reason}));
        for conn in self.snapshot() {
            self.send(&conn, Outbound::Close(1012, "service restart".into()));
        }
    }

    fn ping_all(&self) {
        for conn in self.snapshot() {
            if conn.is_authenticated() {
                self.send(&conn, Outbound::Ping);
            }
        }
    }
}

/// Which scope an operator needs to receive a broadcast; `None` = every session, nodes too.
fn event_scope(event: &str) -> Option<&'static str> {
    match event {
        "tick" | "health" | "heartbeat" | "shutdown" => None,
        e if e.starts_with("device.pair.") || e.starts_with("node.pair.") => Some(scopes::PAIRING),
        _ => Some(scopes::READ),
    }
}

/// The gateway-wide tick and ping loops.
pub(crate) async fn run_timers(gateway: Arc<Gateway>, shutdown: CancellationToken) {
    use tokio::time::{Instant, MissedTickBehavior, interval_at};
    let o = &gateway.options;
    let mut tick = interval_at(Instant::now() + o.tick_interval, o.tick_interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut ping = interval_at(Instant::now() + o.ping_interval, o.ping_interval);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => gateway.registry.broadcast("tick", &json!({"ts": crate::now_ms()})),
            _ = ping.tick() => gateway.registry.ping_all(),
        }
    }
}
