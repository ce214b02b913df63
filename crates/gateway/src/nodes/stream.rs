//! Streaming invokes: a node's ordered `node.invoke.progress` chunks relayed to an in-process
//! caller, and `node.invoke.input` frames fed to a pending invoke.

use super::invoke::{parse_payload, to_value};
use super::*;

/// Puts a streaming invoke's progress in `seq` order for its caller.
pub(super) struct ProgressRelay {
    tx: mpsc::Sender<String>,
    next_seq: u64,
    early: BTreeMap<u64, String>,
}

/// What became of one progress chunk.
#[derive(Debug, PartialEq)]
pub(super) enum Relayed {
    /// Queued for the caller, or held until the chunks before it arrive.
    Accepted,
    /// A duplicate, a chunk already passed, or one past the out-of-order bound.
    Ignored,
    /// The caller stopped taking chunks (queue full, or gone).
    Stalled,
}

impl ProgressRelay {
    pub(super) fn new(tx: mpsc::Sender<String>) -> Self {
        ProgressRelay {
            tx,
            next_seq: 0,
            early: BTreeMap::new(),
        }
    }

    pub(super) fn relay(&mut self, seq: u64, chunk: String) -> Relayed {
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
pub(super) async fn until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Gateway {
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

impl Nodes {
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
}
