//! Nodes: live node sessions, capability approval of their command surface, and the invoke
//! table that relays `node.invoke` to a node and its `node.invoke.result` back.
//!
//! Pending invokes are bounded per node and overall, and each one has a deadline; a node that
//! drops fails every invoke it owed with `DISCONNECTED`.

use crate::Gateway;
use crate::registry::{ConnHandle, Session};
use clawgate_protocol::errors::{self, ErrorShape};
use clawgate_protocol::nodes as policy;
use clawgate_store::{NodeRecord, NodeRequestRecord, Store, StoreError, Write};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// Invokes waiting for one node's answer, at most.
const MAX_PENDING_PER_NODE: usize = 256;
/// Invokes waiting across all nodes, at most.
const MAX_PENDING_TOTAL: usize = 4096;
/// Results for unknown invokes a node may send in a row before it is cut off.
const MAX_STRAY_RESULTS: u32 = 256;
/// `node.invoke` default budget.
pub(crate) const DEFAULT_INVOKE_TIMEOUT_MS: u64 = 30_000;
/// `node.event`s a node may send in a burst, and per second after it.
const EVENT_BURST: f64 = 200.0;
const EVENTS_PER_SECOND: f64 = 50.0;
/// Largest `node.invoke.progress` chunk.
const MAX_PROGRESS_CHUNK: usize = 16 * 1024;

struct LiveNode {
    conn: Arc<ConnHandle>,
    session: Session,
    host_stats: Option<Value>,
    skills: Value,
    plugin_tools: Value,
    stray_results: u32,
    /// Token bucket for `node.event`: a node that floods events is cut off instead of making
    /// the gateway broadcast without end.
    event_budget: f64,
    event_refilled: tokio::time::Instant,
}

/// What came back for one invoke.
enum Outcome {
    Ok {
        payload: Option<Value>,
        payload_json: Option<String>,
    },
    Err {
        code: String,
        message: String,
    },
    Disconnected,
}

struct PendingInvoke {
    node_id: String,
    /// The operator that asked, for progress chunks.
    caller: Arc<ConnHandle>,
    tx: oneshot::Sender<Outcome>,
}

struct State {
    approved: HashMap<String, NodeRecord>,
    requests: HashMap<String, NodeRequestRecord>,
    live: HashMap<String, LiveNode>,
    invokes: HashMap<String, PendingInvoke>,
}

pub(crate) struct Nodes {
    store: Arc<Store>,
    state: Mutex<State>,
}

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
        if approved.is_none() && live.is_none() {
            return None;
        }
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
            (None, None) => unreachable!("checked above"),
        };
        v["approvedAtMs"] = approved.map_or(Value::Null, |a| json!(a.approved_at_ms));
        v["paired"] = json!(approved.is_some());
        v["connected"] = json!(live.is_some());
        Some(strip_nulls(v))
    }
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
            state: Mutex::new(State {
                approved,
                requests,
                live: HashMap::new(),
                invokes: HashMap::new(),
            }),
        })
    }

    /// A node finished its handshake. A new or wider command surface becomes a pending
    /// capability request, announced to pairing operators.
    pub fn attach(&self, gw: &Gateway, conn: Arc<ConnHandle>, session: Session) {
        let node_id = session.node_id();
        let now = crate::now_ms();
        let surface = policy::approval_surface(&session.commands);
        let mut state = self.state.lock().expect("nodes lock");
        let covered = state
            .approved
            .get(&node_id)
            .is_some_and(|a| surface.iter().all(|c| a.commands.contains(c)));
        let mut requested = None;
        if !covered {
            let existing = state.pending_request_for(&node_id).cloned();
            let c = &session.client;
            let record = NodeRequestRecord {
                request_id: existing.as_ref().map_or_else(
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
                created_at_ms: existing.as_ref().map_or(now, |r| r.created_at_ms),
                last_attempt_ms: now,
            };
            match self.store.apply(&[Write::PutNodeRequest(record.clone())]) {
                Ok(()) => {
                    if let Some(old) = &existing {
                        state.requests.remove(&old.request_id);
                    }
                    if existing
                        .as_ref()
                        .is_none_or(|e| e.commands != record.commands)
                    {
                        requested = Some(node_request_json(&record));
                    }
                    state.requests.insert(record.request_id.clone(), record);
                }
                Err(e) => tracing::error!("could not record the node's approval request: {e}"),
            }
        }
        let previous = state.live.insert(
            node_id.clone(),
            LiveNode {
                conn,
                session,
                host_stats: None,
                skills: json!([]),
                plugin_tools: json!([]),
                stray_results: 0,
                event_budget: EVENT_BURST,
                event_refilled: tokio::time::Instant::now(),
            },
        );
        drop(state);
        if let Some(p) = previous {
            // A reconnect replaced the old socket: what it owed will not come back.
            self.fail_invokes_of(&node_id, Some(&p.conn));
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
            drop(state);
            self.fail_invokes_of(&node_id, None);
        }
    }

    fn fail_invokes_of(&self, node_id: &str, _conn: Option<&Arc<ConnHandle>>) {
        let mut state = self.state.lock().expect("nodes lock");
        let ids: Vec<String> = state
            .invokes
            .iter()
            .filter(|(_, p)| p.node_id == node_id)
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            if let Some(p) = state.invokes.remove(&id) {
                let _ = p.tx.send(Outcome::Disconnected);
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
    pub fn approve(
        &self,
        gw: &Gateway,
        request_id: &str,
        caller_scopes: &[String],
    ) -> Result<Value, ErrorShape> {
        let now = crate::now_ms();
        let mut state = self.state.lock().expect("nodes lock");
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
        self.store
            .apply(&[
                Write::PutNode(record.clone()),
                Write::DeleteNodeRequest(request_id.into()),
            ])
            .map_err(Self::store_failed)?;
        state.requests.remove(request_id);
        state.approved.insert(r.node_id.clone(), record.clone());
        let node_conn = state.live.get(&r.node_id).map(|l| l.conn.clone());
        drop(state);
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

    pub fn reject(&self, gw: &Gateway, request_id: &str) -> Result<Value, ErrorShape> {
        let mut state = self.state.lock().expect("nodes lock");
        let r = state
            .requests
            .get(request_id)
            .cloned()
            .ok_or_else(|| Self::not_found(request_id))?;
        self.store
            .apply(&[Write::DeleteNodeRequest(request_id.into())])
            .map_err(Self::store_failed)?;
        state.requests.remove(request_id);
        let node_conn = state.live.get(&r.node_id).map(|l| l.conn.clone());
        drop(state);
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

    pub fn remove(&self, gw: &Gateway, node_id: &str) -> Result<Value, ErrorShape> {
        let mut state = self.state.lock().expect("nodes lock");
        if !state.approved.contains_key(node_id) && state.pending_request_for(node_id).is_none() {
            return Err(ErrorShape::new(
                errors::ErrorCode::InvalidRequest,
                "unknown nodeId",
            ));
        }
        self.store
            .apply(&[Write::DeleteNode(node_id.into())])
            .map_err(Self::store_failed)?;
        state.approved.remove(node_id);
        state.requests.retain(|_, r| r.node_id != node_id);
        let conn = state.live.get(node_id).map(|l| l.conn.clone());
        drop(state);
        if let Some(c) = conn {
            gw.registry.close(&c, 1008, "node removed");
        }
        Ok(json!({"nodeId": node_id, "removed": true}))
    }

    pub fn rename(&self, node_id: &str, name: &str) -> Result<Value, ErrorShape> {
        let mut state = self.state.lock().expect("nodes lock");
        let mut record =
            state.approved.get(node_id).cloned().ok_or_else(|| {
                ErrorShape::new(errors::ErrorCode::InvalidRequest, "unknown nodeId")
            })?;
        record.display_name = Some(name.into());
        self.store
            .apply(&[Write::PutNode(record.clone())])
            .map_err(Self::store_failed)?;
        state.approved.insert(node_id.into(), record);
        if let Some(l) = state.live.get_mut(node_id) {
            l.session.client.display_name = Some(name.into());
        }
        Ok(json!({"nodeId": node_id, "displayName": name}))
    }

    /// Sends `command` to the node and waits for its answer, at most `timeout_ms`.
    #[allow(clippy::too_many_arguments)]
    pub async fn invoke(
        &self,
        gw: &Gateway,
        caller: Arc<ConnHandle>,
        node_id: &str,
        command: &str,
        params: Option<Value>,
        timeout_ms: u64,
        idempotency_key: Option<&str>,
        session_key: Option<&str>,
        policy_checked: bool,
    ) -> Result<(Value, Value), ErrorShape> {
        let started = tokio::time::Instant::now();
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
            if policy_checked {
                let s = &live.session;
                let platform =
                    policy::platform_id(&s.client.platform, s.client.device_family.as_deref());
                let approved = state
                    .approved
                    .get(node_id)
                    .map(|a| a.commands.clone())
                    .unwrap_or_default();
                let allow = policy::allowlist(
                    platform,
                    &approved,
                    &gw.options.node_commands_allow,
                    &gw.options.node_commands_deny,
                );
                let effective = state.effective_commands(node_id, &s.commands);
                if let Err(refusal) = policy::check_command(command, &allow, &effective) {
                    return Err(refusal_error(
                        gw,
                        refusal,
                        command,
                        platform,
                        &s.commands,
                        state.pending_request_for(node_id),
                    ));
                }
            }
            let pending_here = state
                .invokes
                .values()
                .filter(|p| p.node_id == node_id)
                .count();
            if pending_here >= MAX_PENDING_PER_NODE || state.invokes.len() >= MAX_PENDING_TOTAL {
                return Err(errors::node_busy());
            }
            let conn = live.conn.clone();
            state.invokes.insert(
                invoke_id.clone(),
                PendingInvoke {
                    node_id: node_id.into(),
                    caller,
                    tx,
                },
            );
            conn
        };
        let params_json = params.map(|p| p.to_string());
        let remaining = timeout_ms.saturating_sub(started.elapsed().as_millis() as u64);
        let mut request = json!({
            "id": invoke_id,
            "nodeId": node_id,
            "command": command,
            "paramsJSON": params_json,
            "timeoutMs": remaining,
        });
        if let Some(k) = idempotency_key {
            request["idempotencyKey"] = json!(k);
        }
        if let Some(k) = session_key {
            request["sessionKey"] = json!(k);
        }
        conn.send_event(&gw.registry, "node.invoke.request", &request);
        let outcome = tokio::time::timeout(Duration::from_millis(remaining), rx).await;
        match outcome {
            Ok(Ok(Outcome::Ok {
                payload,
                payload_json,
            })) => Ok(parse_payload(payload, payload_json)),
            Ok(Ok(Outcome::Err { code, message })) => Err(errors::node_error(&code, &message)),
            Ok(Ok(Outcome::Disconnected)) | Ok(Err(_)) => Err(errors::node_disconnected()),
            Err(_) => {
                self.state
                    .lock()
                    .expect("nodes lock")
                    .invokes
                    .remove(&invoke_id);
                conn.send_event(
                    &gw.registry,
                    "node.invoke.cancel",
                    &json!({"invokeId": invoke_id, "nodeId": node_id}),
                );
                Err(errors::node_invoke_timeout())
            }
        }
    }

    /// `node.invoke.result` from a node. Results for unknown, late or someone else's invokes
    /// are acknowledged and ignored; a node that keeps sending them is cut off.
    pub fn result(
        &self,
        gw: &Gateway,
        session: &Session,
        params: &Value,
    ) -> Result<Value, ErrorShape> {
        let node_id = session.node_id();
        let id = params.get("id").and_then(Value::as_str).unwrap_or_default();
        if params.get("nodeId").and_then(Value::as_str) != Some(node_id.as_str()) {
            return Err(ErrorShape::new(
                errors::ErrorCode::InvalidRequest,
                "nodeId mismatch",
            ));
        }
        let mut state = self.state.lock().expect("nodes lock");
        let owned = state.invokes.get(id).is_some_and(|p| p.node_id == node_id);
        if !owned {
            let conn = state.live.get_mut(&node_id).map(|l| {
                l.stray_results += 1;
                (l.stray_results > MAX_STRAY_RESULTS).then(|| l.conn.clone())
            });
            drop(state);
            if let Some(Some(c)) = conn {
                gw.registry
                    .close(&c, 1008, "too many results for unknown invokes");
            }
            return Ok(json!({"ok": true, "ignored": true}));
        }
        if let Some(l) = state.live.get_mut(&node_id) {
            l.stray_results = 0;
        }
        let pending = state.invokes.remove(id).expect("checked above");
        drop(state);
        let outcome = if params.get("ok").and_then(Value::as_bool) == Some(true) {
            Outcome::Ok {
                payload: params.get("payload").cloned(),
                payload_json: params
                    .get("payloadJSON")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            }
        } else {
            let err = params.get("error");
            Outcome::Err {
                code: err
                    .and_then(|e| e.get("code"))
                    .and_then(Value::as_str)
                    .unwrap_or("UNAVAILABLE")
                    .to_owned(),
                message: err
                    .and_then(|e| e.get("message"))
                    .and_then(Value::as_str)
                    .unwrap_or("node error")
                    .to_owned(),
            }
        };
        let _ = pending.tx.send(outcome);
        Ok(json!({"ok": true}))
    }

    /// `node.invoke.progress`: relayed to the operator that invoked.
    pub fn progress(
        &self,
        gw: &Gateway,
        session: &Session,
        params: &Value,
    ) -> Result<Value, ErrorShape> {
        let node_id = session.node_id();
        if params.get("nodeId").and_then(Value::as_str) != Some(node_id.as_str()) {
            return Err(ErrorShape::new(
                errors::ErrorCode::InvalidRequest,
                "nodeId mismatch",
            ));
        }
        let chunk_len = params
            .get("chunk")
            .and_then(Value::as_str)
            .map_or(0, str::len);
        if chunk_len > MAX_PROGRESS_CHUNK {
            return Err(errors::invalid_params(
                "node.invoke.progress",
                &format!("at /chunk: must not have more than {MAX_PROGRESS_CHUNK} characters"),
            ));
        }
        let invoke_id = params
            .get("invokeId")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let state = self.state.lock().expect("nodes lock");
        match state
            .invokes
            .get(invoke_id)
            .filter(|p| p.node_id == node_id)
        {
            Some(p) => {
                p.caller
                    .send_event(&gw.registry, "node.invoke.progress", params);
                Ok(json!({"ok": true}))
            }
            None => Ok(json!({"ok": true, "ignored": true})),
        }
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
    gw: &Gateway,
    refusal: policy::CommandRefusal,
    command: &str,
    platform: &str,
    declared: &[String],
    pending: Option<&NodeRequestRecord>,
) -> ErrorShape {
    use policy::CommandRefusal::*;
    let (reason, message) = match refusal {
        NotAllowlisted if gw.options.node_commands_deny.iter().any(|d| d.trim() == command) => (
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
