//! What the agent runtime needs from the gateway: its nodes ([`NodeAccess`], over the node
//! registry and `node.invoke` with the command policy) and its clients ([`EventSink`], over
//! the registry's broadcast). Both hold the gateway weakly: the gateway owns the runtime.

use crate::Gateway;
use crate::nodes::{InvokeRequest, NodeInvoker};
use clawgate_agent::tools::NodeFuture;
use clawgate_agent::{Audience, EventSink, NodeAccess, NodeCall, NodeCallError, NodeInfo};
use serde_json::Value;
use std::sync::Weak;

/// The capability a client declares to receive tool payloads in `agent` events.
pub(crate) const TOOL_EVENTS_CAP: &str = "tool-events";

pub(crate) struct GatewayNodes(pub Weak<Gateway>);

fn node_info(row: &Value) -> Option<NodeInfo> {
    let strings = |key: &str| -> Vec<String> {
        row[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    };
    let text = |key: &str| row[key].as_str().map(str::to_owned);
    Some(NodeInfo {
        node_id: text("nodeId")?,
        display_name: text("displayName"),
        remote_ip: text("remoteIp"),
        platform: text("platform"),
        commands: strings("commands"),
        connected: row["connected"].as_bool() == Some(true),
        row: row.clone(),
    })
}

impl NodeAccess for GatewayNodes {
    fn nodes(&self) -> Vec<NodeInfo> {
        let Some(gw) = self.0.upgrade() else {
            return Vec::new();
        };
        let list = gw.nodes.list();
        let mut nodes: Vec<NodeInfo> = list["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(node_info)
            .collect();
        nodes.sort_by_key(|n| !n.connected);
        nodes
    }

    fn invoke(&self, call: NodeCall) -> NodeFuture<'_> {
        Box::pin(async move {
            let Some(gw) = self.0.upgrade() else {
                return Err(NodeCallError {
                    code: "UNAVAILABLE".into(),
                    message: "the gateway is stopping".into(),
                });
            };
            let request = InvokeRequest {
                node_id: &call.node_id,
                command: &call.command,
                params: Some(call.params.clone()),
                timeout_ms: call.timeout_ms,
                idempotency_key: Some(&call.idempotency_key),
                session_key: Some(&call.session_key),
                policy_checked: true,
                caller: None,
            };
            match gw.invoke_node(request).await {
                Ok((payload, payload_json)) => Ok(match (payload, payload_json) {
                    (Value::Null, Value::String(text)) => {
                        serde_json::from_str(&text).unwrap_or(Value::String(text))
                    }
                    (payload, _) => payload,
                }),
                Err(e) => Err(NodeCallError {
                    code: e.code.as_str().to_owned(),
                    message: e.message,
                }),
            }
        })
    }
}

pub(crate) struct GatewayEvents(pub Weak<Gateway>);

impl EventSink for GatewayEvents {
    fn publish(&self, event: &str, payload: Value, audience: Audience) {
        let Some(gw) = self.0.upgrade() else {
            return;
        };
        match audience {
            Audience::Everyone => gw.registry.broadcast(event, &payload),
            Audience::ToolEvents { owner: Some(owner) } => {
                gw.registry
                    .broadcast_to_conn_with_cap(event, &payload, &owner, TOOL_EVENTS_CAP)
            }
            // A run nobody on a socket started (a channel's): only in-process listeners.
            Audience::ToolEvents { owner: None } => {}
        }
    }
}

/// The runtime's options from the typed config; the runtime's defaults where it is silent.
pub(crate) fn agent_options(config: &clawgate_config::AgentConfig) -> clawgate_agent::AgentOptions {
    let mut options = clawgate_agent::AgentOptions::default();
    if let Some(n) = config.max_concurrent {
        options.max_concurrent = usize::try_from(n).unwrap_or(usize::MAX);
    }
    if let Some(secs) = config.timeout_seconds {
        options.run_timeout = std::time::Duration::from_secs(secs);
    }
    if let Some(mode) = config
        .queue_mode
        .as_deref()
        .and_then(clawgate_agent::QueueMode::parse)
    {
        options.queue_mode = mode;
    }
    options.exec_node = config.exec_node.clone();
    options
}

/// How long a Telegram message's turn may take before the chat is told it did not finish
/// (the run's own limit, `agents.defaults.timeoutSeconds`, usually ends it first).
const TELEGRAM_TURN_WAIT: std::time::Duration = std::time::Duration::from_secs(48 * 3600);

/// The Telegram channel's messages, each a turn of the agent in the sender's session
/// (`session.dmScope`) or the group's (`agent:main:telegram:group:<chatId>`); the run id is the update's key, so an update handed over again after
/// a restart is answered from its finished run instead of running twice.
pub(crate) struct GatewayTelegram {
    gw: Weak<Gateway>,
    dm_scope: clawgate_agent::DmScope,
}

impl GatewayTelegram {
    pub(crate) fn new(gw: Weak<Gateway>, dm_scope: Option<&str>) -> Self {
        GatewayTelegram {
            gw,
            dm_scope: dm_scope
                .and_then(clawgate_agent::DmScope::parse)
                .unwrap_or_default(),
        }
    }
}

impl clawgate_telegram::InboundHandler for GatewayTelegram {
    fn handle(
        &self,
        message: clawgate_telegram::InboundMessage,
    ) -> clawgate_telegram::HandlerFuture<'_> {
        use clawgate_agent::{RunOutcome, SendAccepted, SendRequest};
        use clawgate_telegram::HandlerReply;
        Box::pin(async move {
            let Some(gw) = self.gw.upgrade() else {
                return HandlerReply::Nothing;
            };
            let agent = &gw.agent;
            let session_key = if message.group {
                agent
                    .session_keys()
                    .group("telegram", &message.chat_id, None)
            } else {
                agent.session_keys().direct(
                    self.dm_scope,
                    "telegram",
                    &message.account,
                    &message.sender_id,
                )
            };
            let run_id = message.idempotency_key();
            let request = SendRequest {
                session_key,
                message: message.text_with_context(),
                run_id: run_id.clone(),
                channel: Some("telegram".into()),
                queue_mode: None,
                timeout: None,
                owner: None,
                status_events: false,
                new_session_id: None,
            };
            let summary = match agent.send(request).await {
                Ok(SendAccepted::Done(summary)) => Some(summary),
                Ok(_) => agent.wait(&run_id, TELEGRAM_TURN_WAIT).await,
                Err(e) => return HandlerReply::Error(format!("The message could not be run: {e}")),
            };
            let Some(summary) = summary else {
                return HandlerReply::Error(
                    "The reply is taking too long; it will not arrive. Send the message again to retry.".into(),
                );
            };
            match (summary.outcome, summary.reply, summary.error) {
                (RunOutcome::Ok, Some(reply), _) => HandlerReply::Text(reply),
                (RunOutcome::Ok, None, _) | (RunOutcome::Aborted, _, _) => HandlerReply::Nothing,
                (_, _, Some(error)) => HandlerReply::Error(error),
                (outcome, _, None) => HandlerReply::Error(format!(
                    "The turn ended without a reply ({}).",
                    outcome.as_str()
                )),
            }
        })
    }

    fn resolve_approval(&self, id: &str, decision: &str) -> Result<(), String> {
        let gw = self.gw.upgrade().ok_or("the gateway is stopping")?;
        let decision = clawgate_agent::Decision::parse(decision)
            .ok_or_else(|| format!("unknown decision {decision:?}"))?;
        gw.agent.resolve_approval(id, decision).map_err(|_| {
            "This approval is no longer pending: it was answered elsewhere, it expired, or the gateway restarted since it was asked.".to_owned()
        })
    }
}

/// Shows the exec approvals the agent asks for in Telegram, to the approvers, and edits the
/// cards once they are resolved (from Telegram or anywhere else): an in-process subscriber
/// to what an operator with `operator.approvals` receives.
pub(crate) async fn telegram_approval_cards(
    gw: Weak<Gateway>,
    channel: clawgate_telegram::TelegramChannel,
    shutdown: tokio_util::sync::CancellationToken,
) {
    use clawgate_protocol::connect::Role;
    loop {
        let Some(mut events) = gw.upgrade().map(|gw| {
            gw.registry.subscribe(
                Role::Operator,
                vec![clawgate_protocol::scopes::APPROVALS.into()],
            )
        }) else {
            return;
        };
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => return,
                e = events.recv() => e,
            };
            let Ok(event) = event else {
                // Fell behind (cut off like a slow socket): subscribe again.
                tracing::warn!(
                    "the Telegram approval cards fell behind the event bus; resubscribing"
                );
                break;
            };
            match &*event.event {
                "exec.approval.requested" => {
                    if let Some(card) = clawgate_telegram::ApprovalCard::from_event(&event.payload)
                    {
                        let channel = channel.clone();
                        // Sending may wait on the throttle: never hold up the bus.
                        tokio::spawn(async move { channel.show_approval(&card).await });
                    }
                }
                "exec.approval.resolved" => {
                    if let (Some(id), Some(decision)) = (
                        event.payload["id"].as_str(),
                        event.payload["decision"].as_str(),
                    ) {
                        let (channel, id, decision) =
                            (channel.clone(), id.to_owned(), decision.to_owned());
                        tokio::spawn(
                            async move { channel.approval_resolved(&id, &decision).await },
                        );
                    }
                }
                _ => {}
            }
        }
    }
}
