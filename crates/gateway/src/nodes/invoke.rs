//! `node.invoke`: relaying an operator's (or the agent's) command to a node and its result back,
//! with the command policy, deadlines, retries on `NODE_NOT_READY` and bounded pending tables.

use super::*;

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
pub(super) struct CancelOnDrop<'a> {
    nodes: &'a Nodes,
    registry: &'a Registry,
    invoke_id: String,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        self.nodes.cancel(self.registry, &self.invoke_id);
    }
}

/// Waits before sending an invoke again after the node answered `NODE_NOT_READY`.
pub(super) const NOT_READY_RETRY_DELAYS_MS: [u64; 4] = [100, 250, 500, 1000];

/// The node said it is not ready yet (and sent no progress): nothing ran, a retry is safe.
pub(super) fn is_not_ready(e: &ErrorShape) -> bool {
    e.details
        .as_ref()
        .and_then(|d| d.pointer("/nodeError/code"))
        .and_then(Value::as_str)
        == Some("NODE_NOT_READY")
}

/// A payload the gateway built, as the JSON value an event carries.
pub(super) fn to_value<T: serde::Serialize>(payload: &T) -> Value {
    // Plain structs of strings and numbers: serialization cannot fail.
    serde_json::to_value(payload).unwrap_or(Value::Null)
}

/// A node's result as the caller sees it.
pub(super) fn parse_payload(
    payload: Option<Value>,
    payload_json: Option<String>,
) -> (Value, Value) {
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

impl Gateway {
    pub(crate) fn invoke_context(&self) -> InvokeContext<'_> {
        InvokeContext {
            registry: &self.registry,
            commands_allow: &self.options.node_commands_allow,
            commands_deny: &self.options.node_commands_deny,
        }
    }
}

impl Nodes {
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
    pub(super) fn dispatch(
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
    pub(super) fn cancel(&self, registry: &Registry, invoke_id: &str) -> Option<PendingInvoke> {
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

    /// The pending invoke `id` if this node connection owns it.
    pub(super) fn owned<'s>(
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
    pub(super) fn stray(
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
}

pub(super) fn refusal_error(
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
