//! Devices: paired devices, their tokens and pending pairing requests.

use crate::{Store, StoreError, json_vec, string_list};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

/// A paired device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceRecord {
    pub device_id: String,
    pub public_key: String,
    pub display_name: Option<String>,
    pub platform: Option<String>,
    pub device_family: Option<String>,
    pub client_id: String,
    pub client_mode: String,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
    /// `silent` (local auto-approval) or `owner` (an operator approved it).
    pub approved_via: String,
    pub created_at_ms: i64,
    pub approved_at_ms: i64,
    pub last_seen_at_ms: Option<i64>,
    pub last_seen_reason: Option<String>,
    /// Set by `device.pair.rename`.
    pub operator_label: Option<String>,
}

/// A device token. Only its hash is stored; see the gateway for how tokens are derived.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub device_id: String,
    pub role: String,
    pub scopes: Vec<String>,
    /// Bumped by every rotation; part of the token derivation.
    pub generation: i64,
    pub token_hash: String,
    pub created_at_ms: i64,
    pub rotated_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
}

/// A pending device pairing request (one per device and role).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairingRequestRecord {
    pub request_id: String,
    pub device_id: String,
    pub role: String,
    pub public_key: String,
    pub display_name: Option<String>,
    pub platform: Option<String>,
    pub device_family: Option<String>,
    pub client_id: String,
    pub client_mode: String,
    pub scopes: Vec<String>,
    /// `not-paired`, `role-upgrade`, `scope-upgrade` or `metadata-upgrade`.
    pub reason: String,
    pub is_repair: bool,
    pub created_at_ms: i64,
    pub last_attempt_ms: i64,
}

/// A change to the devices' tables.
#[derive(Debug, Clone)]
pub enum DeviceWrite {
    PutDevice(DeviceRecord),
    /// Removes the device with its tokens and pending requests.
    DeleteDevice(String),
    PutToken(TokenRecord),
    /// Replaces the request with its id, and whatever else its device had pending for its
    /// role (one request per device and role).
    PutRequest(PairingRequestRecord),
    DeleteRequest(String),
    /// Removes the requests whose device last asked before this time (ms).
    DeleteRequestsAskedBefore(i64),
    LastSeen {
        device_id: String,
        at_ms: i64,
        reason: String,
    },
}

impl Store {
    pub fn devices(&self) -> Result<Vec<DeviceRecord>, StoreError> {
        self.query_all(
            "devices",
            &["device_id"],
            "SELECT device_id, public_key, display_name, platform, device_family, client_id, client_mode,
                        roles_json, scopes_json, approved_via, created_at_ms, approved_at_ms, last_seen_at_ms,
                        last_seen_reason, operator_label FROM devices ORDER BY approved_at_ms",
            |r| {
            Ok(DeviceRecord {
                device_id: r.get(0)?,
                public_key: r.get(1)?,
                display_name: r.get(2)?,
                platform: r.get(3)?,
                device_family: r.get(4)?,
                client_id: r.get(5)?,
                client_mode: r.get(6)?,
                roles: string_list(r, 7)?,
                scopes: string_list(r, 8)?,
                approved_via: r.get(9)?,
                created_at_ms: r.get(10)?,
                approved_at_ms: r.get(11)?,
                last_seen_at_ms: r.get(12)?,
                last_seen_reason: r.get(13)?,
                operator_label: r.get(14)?,
            })
            },
        )
    }

    pub fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.query_all(
            "device_tokens",
            &["device_id", "role"],
            "SELECT device_id, role, scopes_json, generation, token_hash, created_at_ms, rotated_at_ms,
                        revoked_at_ms FROM device_tokens",
            |r| {
            Ok(TokenRecord {
                device_id: r.get(0)?,
                role: r.get(1)?,
                scopes: string_list(r, 2)?,
                generation: r.get(3)?,
                token_hash: r.get(4)?,
                created_at_ms: r.get(5)?,
                rotated_at_ms: r.get(6)?,
                revoked_at_ms: r.get(7)?,
            })
            },
        )
    }

    pub fn requests(&self) -> Result<Vec<PairingRequestRecord>, StoreError> {
        self.query_all(
            "pairing_requests",
            &["request_id"],
            "SELECT request_id, device_id, role, public_key, display_name, platform, device_family,
                        client_id, client_mode, scopes_json, reason, is_repair, created_at_ms, last_attempt_ms
                 FROM pairing_requests ORDER BY created_at_ms",
            |r| {
            Ok(PairingRequestRecord {
                request_id: r.get(0)?,
                device_id: r.get(1)?,
                role: r.get(2)?,
                public_key: r.get(3)?,
                display_name: r.get(4)?,
                platform: r.get(5)?,
                device_family: r.get(6)?,
                client_id: r.get(7)?,
                client_mode: r.get(8)?,
                scopes: string_list(r, 9)?,
                reason: r.get(10)?,
                is_repair: r.get(11)?,
                created_at_ms: r.get(12)?,
                last_attempt_ms: r.get(13)?,
            })
            },
        )
    }

    /// Whether a device id is known (used by tests and diagnostics).
    pub fn has_device(&self, device_id: &str) -> Result<bool, StoreError> {
        let conn = self.loader.lock().expect("store loader lock");
        conn.query_row(
            "SELECT 1 FROM devices WHERE device_id = ?1",
            [device_id],
            |_| Ok(()),
        )
        .optional()
        .map(|o| o.is_some())
        .map_err(|e| self.err(e))
    }
}

pub(crate) fn apply(tx: &rusqlite::Transaction<'_>, w: &DeviceWrite) -> rusqlite::Result<()> {
    match w {
    DeviceWrite::PutDevice(d) => tx
        .execute(
            "INSERT INTO devices (device_id, public_key, display_name, platform, device_family, client_id,
                 client_mode, roles_json, scopes_json, approved_via, created_at_ms, approved_at_ms,
                 last_seen_at_ms, last_seen_reason, operator_label)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
             ON CONFLICT(device_id) DO UPDATE SET public_key=excluded.public_key,
                 display_name=excluded.display_name, platform=excluded.platform,
                 device_family=excluded.device_family, client_id=excluded.client_id,
                 client_mode=excluded.client_mode, roles_json=excluded.roles_json,
                 scopes_json=excluded.scopes_json, approved_via=excluded.approved_via,
                 approved_at_ms=excluded.approved_at_ms, last_seen_at_ms=excluded.last_seen_at_ms,
                 last_seen_reason=excluded.last_seen_reason, operator_label=excluded.operator_label",
            params![
                d.device_id,
                d.public_key,
                d.display_name,
                d.platform,
                d.device_family,
                d.client_id,
                d.client_mode,
                json_vec(&d.roles),
                json_vec(&d.scopes),
                d.approved_via,
                d.created_at_ms,
                d.approved_at_ms,
                d.last_seen_at_ms,
                d.last_seen_reason,
                d.operator_label
            ],
        )
        .map(drop),
    DeviceWrite::DeleteDevice(id) => {
        tx.execute("DELETE FROM pairing_requests WHERE device_id = ?1", [id])?;
        tx.execute("DELETE FROM devices WHERE device_id = ?1", [id]).map(drop)
    }
    DeviceWrite::PutToken(t) => tx
        .execute(
            "INSERT INTO device_tokens (device_id, role, scopes_json, generation, token_hash, created_at_ms,
                 rotated_at_ms, revoked_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT(device_id, role) DO UPDATE SET scopes_json=excluded.scopes_json,
                 generation=excluded.generation, token_hash=excluded.token_hash,
                 rotated_at_ms=excluded.rotated_at_ms, revoked_at_ms=excluded.revoked_at_ms",
            params![
                t.device_id,
                t.role,
                json_vec(&t.scopes),
                t.generation,
                t.token_hash,
                t.created_at_ms,
                t.rotated_at_ms,
                t.revoked_at_ms
            ],
        )
        .map(drop),
    DeviceWrite::PutRequest(r) => {
        tx.execute(
            "DELETE FROM pairing_requests WHERE request_id = ?1 OR (device_id = ?2 AND role = ?3)",
            [&r.request_id, &r.device_id, &r.role],
        )?;
        tx.execute(
            "INSERT INTO pairing_requests (request_id, device_id, role, public_key, display_name, platform,
                 device_family, client_id, client_mode, scopes_json, reason, is_repair, created_at_ms,
                 last_attempt_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            params![
                r.request_id,
                r.device_id,
                r.role,
                r.public_key,
                r.display_name,
                r.platform,
                r.device_family,
                r.client_id,
                r.client_mode,
                json_vec(&r.scopes),
                r.reason,
                r.is_repair,
                r.created_at_ms,
                r.last_attempt_ms
            ],
        )
        .map(drop)
    }
    DeviceWrite::DeleteRequest(id) => tx.execute("DELETE FROM pairing_requests WHERE request_id = ?1", [id]).map(drop),
    DeviceWrite::DeleteRequestsAskedBefore(ms) => tx
        .execute("DELETE FROM pairing_requests WHERE last_attempt_ms < ?1", [ms])
        .map(drop),
    DeviceWrite::LastSeen { device_id, at_ms, reason } => tx
        .execute(
            "UPDATE devices SET last_seen_at_ms = ?2, last_seen_reason = ?3 WHERE device_id = ?1",
            params![device_id, at_ms, reason],
        )
        .map(drop),
    }
}
