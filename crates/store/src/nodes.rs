//! Nodes: the approved command surface of each node and pending capability approvals.

use crate::{Store, StoreError, json_vec, string_list};
use rusqlite::params;
use serde::{Deserialize, Serialize};

/// A node's approved command surface.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub node_id: String,
    pub display_name: Option<String>,
    pub platform: Option<String>,
    pub version: Option<String>,
    pub device_family: Option<String>,
    pub client_id: String,
    pub caps: Vec<String>,
    pub commands: Vec<String>,
    pub created_at_ms: i64,
    pub approved_at_ms: i64,
}

/// A pending capability approval (one per node).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRequestRecord {
    pub request_id: String,
    pub node_id: String,
    pub display_name: Option<String>,
    pub platform: Option<String>,
    pub version: Option<String>,
    pub device_family: Option<String>,
    pub client_id: String,
    pub client_mode: String,
    pub caps: Vec<String>,
    pub commands: Vec<String>,
    pub created_at_ms: i64,
    pub last_attempt_ms: i64,
}

/// A change to the nodes' tables.
#[derive(Debug, Clone)]
pub enum NodeWrite {
    PutNode(NodeRecord),
    /// Removes the node's approval and its pending request.
    DeleteNode(String),
    PutNodeRequest(NodeRequestRecord),
    DeleteNodeRequest(String),
}

impl Store {
    pub fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        self.query_all(
            "nodes",
            &["node_id"],
            "SELECT node_id, display_name, platform, version, device_family, client_id, caps_json, commands_json,
                        created_at_ms, approved_at_ms FROM nodes ORDER BY approved_at_ms",
            |r| {
            Ok(NodeRecord {
                node_id: r.get(0)?,
                display_name: r.get(1)?,
                platform: r.get(2)?,
                version: r.get(3)?,
                device_family: r.get(4)?,
                client_id: r.get(5)?,
                caps: string_list(r, 6)?,
                commands: string_list(r, 7)?,
                created_at_ms: r.get(8)?,
                approved_at_ms: r.get(9)?,
            })
            },
        )
    }

    pub fn node_requests(&self) -> Result<Vec<NodeRequestRecord>, StoreError> {
        self.query_all(
            "node_pairing_requests",
            &["request_id"],
            "SELECT request_id, node_id, display_name, platform, version, device_family, client_id, client_mode,
                        caps_json, commands_json, created_at_ms, last_attempt_ms
                 FROM node_pairing_requests ORDER BY created_at_ms",
            |r| {
            Ok(NodeRequestRecord {
                request_id: r.get(0)?,
                node_id: r.get(1)?,
                display_name: r.get(2)?,
                platform: r.get(3)?,
                version: r.get(4)?,
                device_family: r.get(5)?,
                client_id: r.get(6)?,
                client_mode: r.get(7)?,
                caps: string_list(r, 8)?,
                commands: string_list(r, 9)?,
                created_at_ms: r.get(10)?,
                last_attempt_ms: r.get(11)?,
            })
            },
        )
    }
}

pub(crate) fn apply(tx: &rusqlite::Transaction<'_>, w: &NodeWrite) -> rusqlite::Result<()> {
    match w {
    NodeWrite::PutNode(n) => tx
        .execute(
            "INSERT INTO nodes (node_id, display_name, platform, version, device_family, client_id, caps_json,
                 commands_json, created_at_ms, approved_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT(node_id) DO UPDATE SET display_name=excluded.display_name,
                 platform=excluded.platform, version=excluded.version, device_family=excluded.device_family,
                 client_id=excluded.client_id, caps_json=excluded.caps_json,
                 commands_json=excluded.commands_json, approved_at_ms=excluded.approved_at_ms",
            params![
                n.node_id,
                n.display_name,
                n.platform,
                n.version,
                n.device_family,
                n.client_id,
                json_vec(&n.caps),
                json_vec(&n.commands),
                n.created_at_ms,
                n.approved_at_ms
            ],
        )
        .map(drop),
    NodeWrite::DeleteNode(id) => {
        tx.execute("DELETE FROM node_pairing_requests WHERE node_id = ?1", [id])?;
        tx.execute("DELETE FROM nodes WHERE node_id = ?1", [id]).map(drop)
    }
    NodeWrite::PutNodeRequest(r) => {
        // One request per node: replace whatever the node had pending.
        tx.execute("DELETE FROM node_pairing_requests WHERE node_id = ?1 OR request_id = ?2", [&r.node_id, &r.request_id])?;
        tx.execute(
            "INSERT INTO node_pairing_requests (request_id, node_id, display_name, platform, version,
                 device_family, client_id, client_mode, caps_json, commands_json, created_at_ms, last_attempt_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                r.request_id,
                r.node_id,
                r.display_name,
                r.platform,
                r.version,
                r.device_family,
                r.client_id,
                r.client_mode,
                json_vec(&r.caps),
                json_vec(&r.commands),
                r.created_at_ms,
                r.last_attempt_ms
            ],
        )
        .map(drop)
    }
    NodeWrite::DeleteNodeRequest(id) => tx
        .execute("DELETE FROM node_pairing_requests WHERE request_id = ?1", [id])
        .map(drop),
    }
}
