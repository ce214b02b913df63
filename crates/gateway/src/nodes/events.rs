//! What nodes report: `node.event` (rate-limited, broadcast to operators) and their skill,
//! plugin-tool and runner inventories.

use super::*;

impl Nodes {
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
    pub(super) fn take_event_budget(&self, gw: &Gateway, node_id: &str) -> bool {
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
