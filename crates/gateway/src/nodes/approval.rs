//! Capability approval: the pending requests of nodes' command surfaces and what operators do
//! with them (`node.pair.*`, `node.rename`).

use super::*;

impl Nodes {
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
    pub(super) fn resolved(
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
}
