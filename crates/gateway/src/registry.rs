//! Live connections: the outbound queues, per-connection `seq`, scope-filtered broadcasts,
//! presence, and the gateway-wide timers (tick, ping).
//!
//! Broadcasts also reach in-process subscribers ([`Registry::subscribe`]: agent runs, channel
//! replies, waiters), filtered by role and scope exactly as sockets are and bounded the same
//! way: a subscriber that falls behind is cut off like a slow consumer.
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
use tokio::sync::{Notify, mpsc};
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
    /// What the client declared at connect: a node's capabilities, an operator's
    /// `tool-events`.
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
    /// Set by `sessions.subscribe`: the connection gets `sessions.changed`, as OpenClaw sends
    /// it only to subscribers.
    pub sessions_subscribed: AtomicBool,
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

/// Events an in-process subscriber may have waiting, at most; with the sockets' byte budget
/// (`maxBufferedBytes`, counted the same way), what bounds its queue.
const MAX_QUEUED_EVENTS: usize = 1024;

/// A broadcast event as an in-process subscriber receives it: no frame, no `seq`, the payload
/// shared by every subscriber.
#[derive(Debug, Clone)]
pub struct BusEvent {
    pub event: Arc<str>,
    pub payload: Arc<Value>,
    /// The frame's length, counted against the subscriber's byte budget while it waits.
    frame_len: usize,
}

/// Why [`EventSubscription::recv`] has no more events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionEnded {
    /// It fell more than its queue holds behind and was cut off, as a slow socket is: every
    /// event before the cut was delivered, none after. Subscribe again and re-read the state.
    Overflowed,
    /// The registry is gone.
    Closed,
}

/// An in-process listener on the broadcast bus, from [`Registry::subscribe`]. Dropping it
/// unsubscribes.
pub struct EventSubscription {
    rx: mpsc::Receiver<BusEvent>,
    queue: Arc<SubscriberQueue>,
}

impl EventSubscription {
    /// The next event, in broadcast order.
    pub async fn recv(&mut self) -> Result<BusEvent, SubscriptionEnded> {
        match self.rx.recv().await {
            Some(event) => {
                self.queue
                    .bytes
                    .fetch_sub(event.frame_len, Ordering::AcqRel);
                Ok(event)
            }
            None if self.queue.overflowed.load(Ordering::Acquire) => {
                Err(SubscriptionEnded::Overflowed)
            }
            None => Err(SubscriptionEnded::Closed),
        }
    }
}

#[derive(Default)]
struct SubscriberQueue {
    /// Bytes of the events waiting, as [`ConnHandle`] counts its frames.
    bytes: AtomicUsize,
    /// Set before the sender is dropped for falling behind.
    overflowed: AtomicBool,
}

struct Subscriber {
    role: Role,
    scopes: Vec<String>,
    tx: mpsc::Sender<BusEvent>,
    queue: Arc<SubscriberQueue>,
}

pub struct Registry {
    conns: Mutex<HashMap<u64, Arc<ConnHandle>>>,
    subscribers: Mutex<Vec<Subscriber>>,
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
            subscribers: Mutex::new(Vec::new()),
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
            sessions_subscribed: AtomicBool::new(false),
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
        self.broadcast_inner(event, payload, None, None);
    }

    /// [`Registry::broadcast`] to one connection, if it declared `cap` at connect (an agent
    /// run's tool payloads go to the client that started it, when it asked for
    /// `tool-events`, as OpenClaw sends them); in-process subscribers get it too.
    pub(crate) fn broadcast_to_conn_with_cap(
        &self,
        event: &str,
        payload: &Value,
        conn_id: &str,
        cap: &str,
    ) {
        self.broadcast_inner(event, payload, None, Some((conn_id, cap)));
    }

    fn broadcast_with_state(&self, event: &str, payload: &Value) {
        let sv = self.state_version();
        self.broadcast_inner(event, payload, Some(sv), None);
    }

    /// Subscribes in process to what a WebSocket session with `role` and `scopes` would be
    /// broadcast, from now on. The queue is bounded like a socket's (its byte budget, and
    /// [`MAX_QUEUED_EVENTS`]); a subscriber over it is cut off rather than losing events
    /// silently, so that a waiter never misses the event it waits for without knowing.
    pub fn subscribe(&self, role: Role, scopes: Vec<String>) -> EventSubscription {
        let (tx, rx) = mpsc::channel(MAX_QUEUED_EVENTS);
        let queue = Arc::new(SubscriberQueue::default());
        let mut subscribers = self.subscribers.lock().expect("subscribers lock");
        // Dropped subscriptions go here as well as at the next broadcast, so subscribing in a
        // loop without broadcasts does not grow the list.
        subscribers.retain(|s| !s.tx.is_closed());
        subscribers.push(Subscriber {
            role,
            scopes,
            tx,
            queue: queue.clone(),
        });
        EventSubscription { rx, queue }
    }

    fn broadcast_inner(
        &self,
        event: &str,
        payload: &Value,
        state: Option<StateVersion>,
        only: Option<(&str, &str)>,
    ) {
        let required = event_scope(event);
        let mut serialized = None;
        for conn in self.snapshot() {
            if only.is_some_and(|(id, _)| id != conn.conn_id) {
                continue;
            }
            if event == SESSIONS_CHANGED && !conn.sessions_subscribed.load(Ordering::Acquire) {
                continue;
            }
            let allowed = conn.with_session(|session| {
                receives(session.role, &session.scopes, required)
                    && only.is_none_or(|(_, cap)| session.caps.iter().any(|c| c == cap))
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
        self.publish_in_process(event, payload, required, serialized);
    }

    fn publish_in_process(
        &self,
        event: &str,
        payload: &Value,
        required: Option<&str>,
        serialized: Option<Arc<str>>,
    ) {
        let mut shared = None;
        let mut subscribers = self.subscribers.lock().expect("subscribers lock");
        subscribers.retain(|s| {
            if !receives(s.role, &s.scopes, required) {
                return !s.tx.is_closed();
            }
            let bus_event = shared
                .get_or_insert_with(|| BusEvent {
                    event: event.into(),
                    payload: Arc::new(payload.clone()),
                    frame_len: serialized.as_ref().map_or_else(
                        || SharedEvent::serialize(event, payload).len(),
                        |frame| frame.len(),
                    ),
                })
                .clone();
            let queued = s
                .queue
                .bytes
                .fetch_add(bus_event.frame_len, Ordering::AcqRel)
                + bus_event.frame_len;
            let sent = queued <= self.max_buffered_bytes
                && match s.tx.try_send(bus_event) {
                    Ok(()) => true,
                    Err(mpsc::error::TrySendError::Full(_)) => false,
                    Err(mpsc::error::TrySendError::Closed(_)) => return false,
                };
            if !sent {
                s.queue.overflowed.store(true, Ordering::Release);
            }
            sent
        });
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

/// Whether a session (socket or in-process) with `role` and `scopes` receives a broadcast
/// needing `required` ([`event_scope`]).
fn receives(role: Role, granted: &[String], required: Option<&str>) -> bool {
    match required {
        Some(scope) => role == Role::Operator && scopes::satisfies(granted, scope),
        None => true,
    }
}

/// Which scope an operator needs to receive a broadcast; `None` = every session, nodes too.
/// The event only connections that called `sessions.subscribe` get.
pub(crate) const SESSIONS_CHANGED: &str = "sessions.changed";

fn event_scope(event: &str) -> Option<&'static str> {
    match event {
        "tick" | "health" | "heartbeat" | "shutdown" => None,
        e if e.starts_with("device.pair.") || e.starts_with("node.pair.") => Some(scopes::PAIRING),
        e if e.starts_with("exec.approval.") => Some(scopes::APPROVALS),
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

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    fn session(role: Role, scopes: &[&str]) -> Session {
        Session {
            role,
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            // Ephemeral, so attaching it broadcasts no presence of its own.
            client: ClientInfo {
                mode: "cli".into(),
                ..ClientInfo::default()
            },
            ip: "127.0.0.1".into(),
            device_id: None,
            connected_at_ms: 0,
            caps: Vec::new(),
            commands: Vec::new(),
            path_env: None,
            legacy_node: false,
        }
    }

    /// The events queued for a socket so far, by name.
    fn socket_events(conn: &ConnHandle) -> Vec<String> {
        let mut names = Vec::new();
        while let Some(out) = conn.next_outbound().now_or_never() {
            let frame: Value = match out {
                Outbound::Event(e) => serde_json::from_slice(&e.parts().concat()).unwrap(),
                Outbound::Text(t) => serde_json::from_str(&t).unwrap(),
                other => panic!("unexpected {other:?}"),
            };
            names.push(frame["event"].as_str().unwrap().to_owned());
        }
        names
    }

    fn subscriber_events(sub: &mut EventSubscription) -> Vec<String> {
        let mut names = Vec::new();
        while let Some(Ok(e)) = sub.recv().now_or_never() {
            names.push(e.event.to_string());
        }
        names
    }

    #[tokio::test]
    async fn a_subscriber_receives_what_a_socket_with_the_same_scopes_receives() {
        let registry = Registry::new(usize::MAX, json!({}));
        let audiences: [(Role, &[&str]); 5] = [
            (Role::Operator, &[scopes::READ]),
            (Role::Operator, &[scopes::PAIRING]),
            (Role::Operator, &[scopes::WRITE]),
            (Role::Operator, &[]),
            (Role::Node, &[]),
        ];
        let listeners: Vec<_> = audiences
            .iter()
            .map(|(role, granted)| {
                let (_, conn) = registry.register();
                registry.attach_session(&conn, Arc::new(session(*role, granted)));
                let sub =
                    registry.subscribe(*role, granted.iter().map(|s| s.to_string()).collect());
                (conn, sub)
            })
            .collect();
        for event in [
            "tick",
            "node.pair.requested",
            "health",
            "device.pair.resolved",
            "node.presence",
            "chat",
            "shutdown",
        ] {
            registry.broadcast(event, &json!({"event": event}));
        }
        let mut seen = Vec::new();
        for ((role, granted), (conn, mut sub)) in audiences.iter().zip(listeners) {
            let on_socket = socket_events(&conn);
            assert_eq!(
                subscriber_events(&mut sub),
                on_socket,
                "{role:?} {granted:?}"
            );
            seen.push(on_socket);
        }
        // The filter did filter: read sees node.presence and chat but not pairing events,
        // pairing the reverse, a scope-less operator and a node only the open ones.
        assert_eq!(
            seen[0],
            ["tick", "health", "node.presence", "chat", "shutdown"]
        );
        assert_eq!(
            seen[1],
            [
                "tick",
                "node.pair.requested",
                "health",
                "device.pair.resolved",
                "shutdown"
            ]
        );
        assert_eq!(seen[2], seen[0]);
        assert_eq!(seen[3], ["tick", "health", "shutdown"]);
        assert_eq!(seen[4], seen[3]);
    }

    #[tokio::test]
    async fn the_payload_is_shared_by_every_subscriber() {
        let registry = Registry::new(usize::MAX, json!({}));
        let mut a = registry.subscribe(Role::Operator, vec![scopes::READ.into()]);
        let mut b = registry.subscribe(Role::Operator, vec![scopes::ADMIN.into()]);
        registry.broadcast("node.hostStats", &json!({"nodeId": "n"}));
        let (a, b) = (a.recv().await.unwrap(), b.recv().await.unwrap());
        assert!(Arc::ptr_eq(&a.payload, &b.payload));
        assert_eq!(*a.payload, json!({"nodeId": "n"}));
    }

    #[tokio::test]
    async fn a_subscriber_over_its_event_bound_is_cut_off_after_what_it_was_sent() {
        let registry = Registry::new(usize::MAX, json!({}));
        let mut slow = registry.subscribe(Role::Node, Vec::new());
        let mut keeping_up = registry.subscribe(Role::Node, Vec::new());
        for i in 0..=MAX_QUEUED_EVENTS {
            registry.broadcast("tick", &json!({"i": i}));
            assert_eq!(keeping_up.recv().await.unwrap().payload["i"], i);
        }
        for i in 0..MAX_QUEUED_EVENTS {
            assert_eq!(slow.recv().await.unwrap().payload["i"], i);
        }
        assert_eq!(
            slow.recv().await.unwrap_err(),
            SubscriptionEnded::Overflowed
        );
        // The cut subscriber is gone from the bus; the other one still listens.
        assert_eq!(registry.subscribers.lock().unwrap().len(), 1);
        registry.broadcast("tick", &json!({}));
        assert!(keeping_up.recv().await.is_ok());
    }

    #[tokio::test]
    async fn a_subscriber_over_the_byte_budget_is_cut_off() {
        let registry = Registry::new(4096, json!({}));
        let mut sub = registry.subscribe(Role::Operator, vec![scopes::READ.into()]);
        registry.broadcast("chat", &json!({"text": "x".repeat(1000)}));
        registry.broadcast("chat", &json!({"text": "x".repeat(1000)}));
        // The third one would queue more than 4096 bytes: like a socket, the subscriber is cut.
        registry.broadcast("chat", &json!({"text": "x".repeat(3000)}));
        assert!(sub.recv().await.is_ok());
        assert!(sub.recv().await.is_ok());
        assert_eq!(sub.recv().await.unwrap_err(), SubscriptionEnded::Overflowed);
    }

    #[tokio::test]
    async fn a_dropped_subscription_leaves_the_bus() {
        let registry = Registry::new(usize::MAX, json!({}));
        for _ in 0..3 {
            drop(registry.subscribe(Role::Node, Vec::new()));
        }
        let _kept = registry.subscribe(Role::Node, Vec::new());
        assert_eq!(registry.subscribers.lock().unwrap().len(), 1);
    }
}
