//! Device pairing and device tokens, backed by the SQLite store and mirrored in memory so a
//! connect never waits on the disk unless something is written.
//!
//! Device tokens are derived, not stored: `token = base64url(HMAC-SHA256(key, device|role|gen))`
//! with a key derived from the gateway's identity seed, which lives in its own 0600 file beside
//! the database (never in it). The database holds only a SHA-256
//! of each token, so reading it does not let anyone connect, while the gateway can still hand a
//! device the same token on every connect (what the real clients expect) and rotate it by
//! bumping `gen`.

use clawgate_protocol::device::b64url;
use clawgate_protocol::scopes;
use clawgate_store::{DeviceRecord, PairingRequestRecord, Store, StoreError, TokenRecord, Write};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use subtle::ConstantTimeEq;

const TOKEN_KEY_FILE: &str = "device-token.key";
/// A pending request expires this long after the device last asked.
pub(crate) const REQUEST_TTL_MS: i64 = 5 * 60 * 1000;
/// At most one log line this often about requests displaced by new ones.
const DISPLACED_LOG_INTERVAL_MS: i64 = 60 * 1000;

/// A connect the gateway may approve on the spot, without an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AutoApproval {
    /// Any pairing: a direct local socket with auto-approval on, or a verified operator
    /// login (`approvedVia: "silent"`).
    Silent,
    /// First-time pairing only, never an upgrade of a paired device: a scopeless node from
    /// `gateway.nodes.pairing.autoApproveCidrs` (`approvedVia: "trusted-cidr"`).
    FreshFromTrustedCidr,
}

/// Who is asking, as far as pairing cares.
#[derive(Debug, Clone)]
pub(crate) struct Applicant<'a> {
    pub device_id: &'a str,
    pub public_key: &'a str,
    pub role: &'a str,
    pub scopes: &'a [String],
    pub display_name: Option<&'a str>,
    pub platform: &'a str,
    pub device_family: Option<&'a str>,
    pub client_id: &'a str,
    pub client_mode: &'a str,
}

/// What the gateway does with a device-bearing connect that authenticated.
#[derive(Debug)]
pub(crate) enum Decision {
    /// Paired for this role and these scopes; here is its token.
    Approved {
        token: String,
        issued_at_ms: i64,
        events: Vec<(&'static str, Value)>,
    },
    /// Needs an operator: the request (new or reused) and the reason.
    Pending {
        request: Box<PairingRequestRecord>,
        created: bool,
        approved_roles: Vec<String>,
        approved_scopes: Vec<String>,
    },
}

/// Why a presented device token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenRefusal {
    Mismatch,
    ScopeMismatch,
}

#[derive(Debug)]
pub(crate) enum PairingError {
    NotFound(String),
    Store(StoreError),
}

impl From<StoreError> for PairingError {
    fn from(e: StoreError) -> Self {
        PairingError::Store(e)
    }
}

struct State {
    devices: HashMap<String, DeviceRecord>,
    tokens: HashMap<(String, String), TokenRecord>,
    requests: HashMap<String, PairingRequestRecord>,
    /// When a displaced request was last logged: a flood of new devices logs once a minute.
    displaced_logged_ms: i64,
}

pub(crate) struct Pairing {
    store: Arc<Store>,
    key: [u8; 32],
    /// At most this many pending requests (`GatewayOptions::max_pending_pairing_requests`).
    max_pending: usize,
    state: Mutex<State>,
}

fn hash(token: &str) -> String {
    clawgate_protocol::device::hex(&Sha256::digest(token.as_bytes()))
}

fn granted_all(granted: &[String], wanted: &[String]) -> bool {
    wanted.iter().all(|w| scopes::satisfies(granted, w))
}

fn union(a: &[String], b: &[String]) -> Vec<String> {
    let mut out = a.to_vec();
    for s in b {
        if !out.contains(s) {
            out.push(s.clone());
        }
    }
    out
}

impl Pairing {
    /// `derived_key` is used unless the state dir already has a `device-token.key` (state dirs
    /// from before the key was derived), so tokens already issued stay valid.
    pub fn open(
        store: Arc<Store>,
        state_dir: &Path,
        derived_key: [u8; 32],
        max_pending: usize,
    ) -> Result<Pairing, StoreError> {
        let key = existing_key(state_dir, derived_key).map_err(|source| StoreError::Dir {
            path: state_dir.join(TOKEN_KEY_FILE),
            source,
        })?;
        let devices = store
            .devices()?
            .into_iter()
            .map(|d| (d.device_id.clone(), d))
            .collect();
        let tokens = store
            .tokens()?
            .into_iter()
            .map(|t| ((t.device_id.clone(), t.role.clone()), t))
            .collect();
        let requests = store
            .requests()?
            .into_iter()
            .map(|r| (r.request_id.clone(), r))
            .collect();
        Ok(Pairing {
            store,
            key,
            max_pending: max_pending.max(1),
            state: Mutex::new(State {
                devices,
                tokens,
                requests,
                displaced_logged_ms: i64::MIN,
            }),
        })
    }

    fn derive(&self, device_id: &str, role: &str, generation: i64) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length works");
        mac.update(format!("clawgate-device-token-v1|{device_id}|{role}|{generation}").as_bytes());
        b64url(&mac.finalize().into_bytes())
    }

    /// Checks a presented device token; scopes asked for must be within the token's.
    pub fn check_token(
        &self,
        device_id: &str,
        role: &str,
        presented: &str,
        wanted: &[String],
    ) -> Result<(String, i64), TokenRefusal> {
        let state = self.state.lock().expect("pairing lock");
        let Some(t) = state.tokens.get(&(device_id.to_owned(), role.to_owned())) else {
            return Err(TokenRefusal::Mismatch);
        };
        let matches: bool = hash(presented)
            .as_bytes()
            .ct_eq(t.token_hash.as_bytes())
            .into();
        if !matches || t.revoked_at_ms.is_some() || !state.devices.contains_key(device_id) {
            return Err(TokenRefusal::Mismatch);
        }
        if !granted_all(&t.scopes, wanted) {
            return Err(TokenRefusal::ScopeMismatch);
        }
        Ok((
            presented.to_owned(),
            t.rotated_at_ms.unwrap_or(t.created_at_ms),
        ))
    }

    /// Decides a device-bearing connect that passed auth; `auto` allows approving it on the
    /// spot.
    pub fn decide(
        &self,
        a: &Applicant<'_>,
        auto: Option<AutoApproval>,
        now_ms: i64,
    ) -> Result<Decision, StoreError> {
        let mut state = self.state.lock().expect("pairing lock");
        expire(&mut state, now_ms);
        let existing = state.devices.get(a.device_id).cloned();
        let reason = match &existing {
            None => "not-paired",
            Some(d) if !d.roles.iter().any(|r| r == a.role) => "role-upgrade",
            Some(d) if a.role == "operator" && !granted_all(&d.scopes, a.scopes) => "scope-upgrade",
            Some(_) => {
                let (token, issued) = self.ensure_token(&mut state, a.device_id, a.role, now_ms)?;
                if let Some(d) = state.devices.get_mut(a.device_id) {
                    d.last_seen_at_ms = Some(now_ms);
                    d.last_seen_reason = Some("connect".into());
                }
                return Ok(Decision::Approved {
                    token,
                    issued_at_ms: issued,
                    events: Vec::new(),
                });
            }
        };
        let approved_via = match auto {
            Some(AutoApproval::Silent) => Some("silent"),
            Some(AutoApproval::FreshFromTrustedCidr) if existing.is_none() => Some("trusted-cidr"),
            _ => None,
        };
        if let Some(via) = approved_via {
            let request_id = existing_request(&state, a)
                .map(|r| r.request_id.clone())
                .unwrap_or_else(new_id);
            let request = request_record(a, &request_id, reason, existing.is_some(), now_ms);
            let mut requested = pending_json(&request);
            requested["silent"] = json!(true);
            let (_, token, issued) = self.commit_approval(&mut state, &request, via, now_ms)?;
            let resolved = resolved_json(&request, now_ms);
            return Ok(Decision::Approved {
                token,
                issued_at_ms: issued,
                events: vec![
                    ("device.pair.requested", requested),
                    ("device.pair.resolved", resolved),
                ],
            });
        }
        let (request, created) = match existing_request(&state, a).cloned() {
            Some(mut r) => {
                r.last_attempt_ms = now_ms;
                r.scopes = a.scopes.to_vec();
                r.reason = reason.into();
                (r, false)
            }
            None => (
                request_record(a, &new_id(), reason, existing.is_some(), now_ms),
                true,
            ),
        };
        let displaced = if created {
            self.displaced_by_new_request(&state)
        } else {
            None
        };
        let mut writes = vec![Write::PutRequest(request.clone())];
        if let Some(old) = &displaced {
            writes.push(Write::DeleteRequest(old.request_id.clone()));
        }
        self.store.apply(&writes)?;
        if let Some(old) = displaced {
            state.requests.remove(&old.request_id);
            if now_ms.saturating_sub(state.displaced_logged_ms) >= DISPLACED_LOG_INTERVAL_MS {
                state.displaced_logged_ms = now_ms;
                tracing::warn!(
                    "{} pending device pairing requests (the most held); dropped {} from device {} (last asked {} s ago), which asks again on its next attempt",
                    self.max_pending,
                    old.request_id,
                    old.device_id,
                    (now_ms - old.last_attempt_ms) / 1000
                );
            }
        }
        state
            .requests
            .insert(request.request_id.clone(), request.clone());
        let (approved_roles, approved_scopes) =
            existing.map(|d| (d.roles, d.scopes)).unwrap_or_default();
        Ok(Decision::Pending {
            request: Box::new(request),
            created,
            approved_roles,
            approved_scopes,
        })
    }

    /// With the most requests held, the one whose device asked least recently makes room for
    /// a new one (its device, if it is still trying, asks again on its next attempt).
    fn displaced_by_new_request(&self, state: &State) -> Option<PairingRequestRecord> {
        if state.requests.len() < self.max_pending {
            return None;
        }
        state
            .requests
            .values()
            .min_by_key(|r| (r.last_attempt_ms, r.created_at_ms))
            .cloned()
    }

    /// The device record, token record and token an approval of `request` produces.
    fn approved(
        &self,
        state: &State,
        request: &PairingRequestRecord,
        existing: Option<&DeviceRecord>,
        via: &str,
        now_ms: i64,
    ) -> (DeviceRecord, TokenRecord, String) {
        let mut device = existing.cloned().unwrap_or_else(|| DeviceRecord {
            device_id: request.device_id.clone(),
            public_key: request.public_key.clone(),
            display_name: request.display_name.clone(),
            platform: request.platform.clone(),
            device_family: request.device_family.clone(),
            client_id: request.client_id.clone(),
            client_mode: request.client_mode.clone(),
            roles: Vec::new(),
            scopes: Vec::new(),
            approved_via: via.into(),
            created_at_ms: now_ms,
            approved_at_ms: now_ms,
            last_seen_at_ms: Some(now_ms),
            last_seen_reason: Some("connect".into()),
            operator_label: None,
        });
        device.roles = union(&device.roles, std::slice::from_ref(&request.role));
        if request.role == "operator" {
            // An approval grants what was asked, on top of what was already held — nothing more.
            device.scopes = union(&device.scopes, &request.scopes);
        }
        device.approved_via = via.into();
        device.approved_at_ms = now_ms;
        let token_scopes = if request.role == "operator" {
            device.scopes.clone()
        } else {
            Vec::new()
        };
        let key = (device.device_id.clone(), request.role.clone());
        let (generation, created) = match state.tokens.get(&key) {
            Some(t) if t.revoked_at_ms.is_none() => (t.generation, t.created_at_ms),
            Some(t) => (t.generation + 1, now_ms),
            None => (1, now_ms),
        };
        let token = self.derive(&device.device_id, &request.role, generation);
        let record = TokenRecord {
            device_id: device.device_id.clone(),
            role: request.role.clone(),
            scopes: token_scopes,
            generation,
            token_hash: hash(&token),
            created_at_ms: created,
            rotated_at_ms: None,
            revoked_at_ms: None,
        };
        (device, record, token)
    }

    /// The token of an approved device and role, issuing one (durably) if it has none.
    fn ensure_token(
        &self,
        state: &mut State,
        device_id: &str,
        role: &str,
        now_ms: i64,
    ) -> Result<(String, i64), StoreError> {
        let key = (device_id.to_owned(), role.to_owned());
        if let Some(t) = state.tokens.get(&key).filter(|t| t.revoked_at_ms.is_none()) {
            return Ok((
                self.derive(device_id, role, t.generation),
                t.rotated_at_ms.unwrap_or(t.created_at_ms),
            ));
        }
        let generation = state
            .tokens
            .get(&key)
            .map(|t| t.generation + 1)
            .unwrap_or(1);
        let scopes = if role == "operator" {
            state
                .devices
                .get(device_id)
                .map(|d| d.scopes.clone())
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let token = self.derive(device_id, role, generation);
        let record = TokenRecord {
            device_id: device_id.into(),
            role: role.into(),
            scopes,
            generation,
            token_hash: hash(&token),
            created_at_ms: now_ms,
            rotated_at_ms: None,
            revoked_at_ms: None,
        };
        self.store.apply(&[Write::PutToken(record.clone())])?;
        state.tokens.insert(key, record);
        Ok((token, now_ms))
    }

    /// `device.pair.list`: `{pending, paired}`; `connected` tells which devices have a live socket.
    pub fn list(&self, connected: &dyn Fn(&str) -> bool, now_ms: i64) -> Value {
        let mut state = self.state.lock().expect("pairing lock");
        expire(&mut state, now_ms);
        let mut pending: Vec<&PairingRequestRecord> = state.requests.values().collect();
        pending.sort_by_key(|r| r.created_at_ms);
        let mut paired: Vec<&DeviceRecord> = state.devices.values().collect();
        paired.sort_by_key(|d| std::cmp::Reverse(d.approved_at_ms));
        json!({
            "pending": pending.into_iter().map(pending_json).collect::<Vec<_>>(),
            "paired": paired.into_iter().map(|d| device_json(d, &state, Some(connected(&d.device_id)))).collect::<Vec<_>>(),
        })
    }

    /// `device.pair.approve`: durable before it returns.
    pub fn approve(&self, request_id: &str, now_ms: i64) -> Result<(Value, Value), PairingError> {
        let mut state = self.state.lock().expect("pairing lock");
        expire(&mut state, now_ms);
        let request = state
            .requests
            .get(request_id)
            .cloned()
            .ok_or_else(|| PairingError::NotFound(request_id.into()))?;
        let (device, _, _) = self.commit_approval(&mut state, &request, "owner", now_ms)?;
        let payload =
            json!({"requestId": request_id, "device": device_json(&device, &state, None)});
        Ok((payload, resolved_json(&request, now_ms)))
    }

    /// Approves `request_id` as `approvedVia: "ssh-verified"`, only while it is still the
    /// first pairing request of a node asking no scopes from the device and key the probe
    /// found on its host. Returns its `device.pair.resolved` payload, or `None` when the
    /// request was resolved, replaced or changed meanwhile.
    pub fn approve_ssh_verified(
        &self,
        request_id: &str,
        device_id: &str,
        public_key: &str,
        now_ms: i64,
    ) -> Result<Option<Value>, StoreError> {
        let mut state = self.state.lock().expect("pairing lock");
        expire(&mut state, now_ms);
        let Some(request) = state.requests.get(request_id).cloned() else {
            return Ok(None);
        };
        let still_verified = request.device_id == device_id
            && request.public_key == public_key
            && request.role == "node"
            && request.scopes.is_empty()
            && !request.is_repair
            && !state.devices.contains_key(device_id);
        if !still_verified {
            return Ok(None);
        }
        self.commit_approval(&mut state, &request, "ssh-verified", now_ms)?;
        Ok(Some(resolved_json(&request, now_ms)))
    }

    /// Approves a request (durably, then in memory): the device, its token for the requested
    /// role, and when that token was issued.
    fn commit_approval(
        &self,
        state: &mut State,
        request: &PairingRequestRecord,
        via: &str,
        now_ms: i64,
    ) -> Result<(DeviceRecord, String, i64), StoreError> {
        let existing = state.devices.get(&request.device_id).cloned();
        let (device, token_rec, token) =
            self.approved(state, request, existing.as_ref(), via, now_ms);
        self.store.apply(&[
            Write::PutDevice(device.clone()),
            Write::PutToken(token_rec.clone()),
            Write::DeleteRequest(request.request_id.clone()),
        ])?;
        let issued = token_rec.created_at_ms;
        state.requests.remove(&request.request_id);
        state.tokens.insert(
            (device.device_id.clone(), token_rec.role.clone()),
            token_rec,
        );
        state
            .devices
            .insert(device.device_id.clone(), device.clone());
        Ok((device, token, issued))
    }

    /// `device.pair.reject`.
    pub fn reject(&self, request_id: &str, now_ms: i64) -> Result<(Value, Value), PairingError> {
        let mut state = self.state.lock().expect("pairing lock");
        expire(&mut state, now_ms);
        let request = state
            .requests
            .get(request_id)
            .cloned()
            .ok_or_else(|| PairingError::NotFound(request_id.into()))?;
        self.store
            .apply(&[Write::DeleteRequest(request_id.into())])?;
        state.requests.remove(request_id);
        let payload = json!({"requestId": request_id, "deviceId": request.device_id});
        let event = json!({"requestId": request_id, "deviceId": request.device_id, "decision": "rejected", "ts": now_ms});
        Ok((payload, event))
    }

    /// `device.pair.remove`: the device, its tokens and its pending requests.
    pub fn remove(&self, device_id: &str) -> Result<Value, PairingError> {
        let mut state = self.state.lock().expect("pairing lock");
        if !state.devices.contains_key(device_id) {
            return Err(PairingError::NotFound(device_id.into()));
        }
        self.store.apply(&[Write::DeleteDevice(device_id.into())])?;
        state.devices.remove(device_id);
        state.tokens.retain(|(d, _), _| d != device_id);
        state.requests.retain(|_, r| r.device_id != device_id);
        Ok(json!({"deviceId": device_id, "removed": true}))
    }

    /// `device.pair.rename {deviceId, label}`: an operator's label, shown as `operatorLabel`.
    pub fn rename(&self, device_id: &str, label: &str) -> Result<Value, PairingError> {
        let mut state = self.state.lock().expect("pairing lock");
        let mut device = state
            .devices
            .get(device_id)
            .cloned()
            .ok_or_else(|| PairingError::NotFound(device_id.into()))?;
        device.operator_label = Some(label.to_owned());
        self.store.apply(&[Write::PutDevice(device.clone())])?;
        state.devices.insert(device_id.into(), device);
        Ok(json!({"deviceId": device_id, "label": label}))
    }

    /// A pending request, for checks before approving it.
    pub fn request(&self, request_id: &str, now_ms: i64) -> Option<PairingRequestRecord> {
        let mut state = self.state.lock().expect("pairing lock");
        expire(&mut state, now_ms);
        state.requests.get(request_id).cloned()
    }

    /// `device.token.rotate`: a new token for the role; the old one stops working.
    /// The new token is returned only to the device itself (`in-band`); anyone else learns it
    /// was rotated, and the device gets its new token in its next hello-ok.
    pub fn rotate(
        &self,
        device_id: &str,
        role: &str,
        in_band: bool,
        now_ms: i64,
    ) -> Result<Value, PairingError> {
        let mut state = self.state.lock().expect("pairing lock");
        let key = (device_id.to_owned(), role.to_owned());
        let mut t = state
            .tokens
            .get(&key)
            .cloned()
            .ok_or_else(|| PairingError::NotFound(format!("{device_id} ({role})")))?;
        t.generation += 1;
        let token = self.derive(device_id, role, t.generation);
        t.token_hash = hash(&token);
        t.rotated_at_ms = Some(now_ms);
        t.revoked_at_ms = None;
        self.store.apply(&[Write::PutToken(t.clone())])?;
        let scopes = t.scopes.clone();
        state.tokens.insert(key, t);
        let mut v =
            json!({"deviceId": device_id, "role": role, "scopes": scopes, "rotatedAtMs": now_ms});
        if in_band {
            v["token"] = json!(token);
            v["tokenDelivery"] = json!("in-band");
        } else {
            v["tokenDelivery"] = json!("withheld-cross-device");
        }
        Ok(v)
    }

    /// `device.token.revoke`.
    pub fn revoke(&self, device_id: &str, role: &str, now_ms: i64) -> Result<Value, PairingError> {
        let mut state = self.state.lock().expect("pairing lock");
        let key = (device_id.to_owned(), role.to_owned());
        let mut t = state
            .tokens
            .get(&key)
            .cloned()
            .ok_or_else(|| PairingError::NotFound(format!("{device_id} ({role})")))?;
        t.revoked_at_ms = Some(now_ms);
        self.store.apply(&[Write::PutToken(t.clone())])?;
        state.tokens.insert(key, t);
        Ok(json!({"deviceId": device_id, "role": role, "revokedAtMs": now_ms}))
    }

    /// Writes last-seen times kept in memory since the last flush (not worth an fsync per
    /// connect).
    pub fn flush_last_seen(&self) {
        let state = self.state.lock().expect("pairing lock");
        let writes: Vec<Write> = state
            .devices
            .values()
            .filter_map(|d| {
                Some(Write::LastSeen {
                    device_id: d.device_id.clone(),
                    at_ms: d.last_seen_at_ms?,
                    reason: d
                        .last_seen_reason
                        .clone()
                        .unwrap_or_else(|| "connect".into()),
                })
            })
            .collect();
        if let Err(e) = self.store.apply(&writes) {
            tracing::warn!("could not record last-seen times: {e}");
        }
    }
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn existing_request<'s>(state: &'s State, a: &Applicant<'_>) -> Option<&'s PairingRequestRecord> {
    state
        .requests
        .values()
        .find(|r| r.device_id == a.device_id && r.role == a.role)
}

fn request_record(
    a: &Applicant<'_>,
    request_id: &str,
    reason: &str,
    is_repair: bool,
    now_ms: i64,
) -> PairingRequestRecord {
    PairingRequestRecord {
        request_id: request_id.into(),
        device_id: a.device_id.into(),
        role: a.role.into(),
        public_key: a.public_key.into(),
        display_name: a.display_name.map(str::to_owned),
        platform: Some(a.platform.to_owned()),
        device_family: a.device_family.map(str::to_owned),
        client_id: a.client_id.into(),
        client_mode: a.client_mode.into(),
        scopes: a.scopes.to_vec(),
        reason: reason.into(),
        is_repair,
        created_at_ms: now_ms,
        last_attempt_ms: now_ms,
    }
}

/// Drops requests whose device stopped asking more than [`REQUEST_TTL_MS`] ago. The rows are
/// removed from disk lazily by the next write that touches them; in memory they are gone now.
fn expire(state: &mut State, now_ms: i64) {
    state
        .requests
        .retain(|_, r| now_ms - r.last_attempt_ms < REQUEST_TTL_MS);
}

/// The `device.pair.resolved` payload of an approved request.
fn resolved_json(r: &PairingRequestRecord, now_ms: i64) -> Value {
    json!({"requestId": r.request_id, "deviceId": r.device_id, "decision": "approved", "ts": now_ms})
}

/// A pending request as the real gateway lists and broadcasts it.
pub(crate) fn pending_json(r: &PairingRequestRecord) -> Value {
    let mut v = json!({
        "requestId": r.request_id,
        "deviceId": r.device_id,
        "publicKey": r.public_key,
    });
    if let Some(n) = &r.display_name {
        v["displayName"] = json!(n);
    }
    if let Some(p) = &r.platform {
        v["platform"] = json!(p);
    }
    if let Some(f) = &r.device_family {
        v["deviceFamily"] = json!(f);
    }
    for (k, val) in [
        ("clientId", json!(r.client_id)),
        ("clientMode", json!(r.client_mode)),
        ("role", json!(r.role)),
        ("roles", json!([r.role])),
        ("scopes", json!(r.scopes)),
        ("silent", json!(false)),
        ("isRepair", json!(r.is_repair)),
        ("ts", json!(r.created_at_ms)),
    ] {
        v[k] = val;
    }
    v
}

fn device_json(d: &DeviceRecord, state: &State, connected: Option<bool>) -> Value {
    let mut v = json!({"deviceId": d.device_id, "publicKey": d.public_key});
    if let Some(n) = &d.display_name {
        v["displayName"] = json!(n);
    }
    if let Some(p) = &d.platform {
        v["platform"] = json!(p);
    }
    if let Some(f) = &d.device_family {
        v["deviceFamily"] = json!(f);
    }
    let role = d
        .roles
        .first()
        .cloned()
        .unwrap_or_else(|| "operator".into());
    for (k, val) in [
        ("clientId", json!(d.client_id)),
        ("clientMode", json!(d.client_mode)),
        ("role", json!(role)),
        ("roles", json!(d.roles)),
        ("scopes", json!(d.scopes)),
        ("approvedVia", json!(d.approved_via)),
        ("createdAtMs", json!(d.created_at_ms)),
        ("approvedAtMs", json!(d.approved_at_ms)),
    ] {
        v[k] = val;
    }
    if let Some(t) = d.last_seen_at_ms {
        v["lastSeenAtMs"] = json!(t);
        v["lastSeenReason"] = json!(d.last_seen_reason.as_deref().unwrap_or("connect"));
    }
    if let Some(l) = &d.operator_label {
        v["operatorLabel"] = json!(l);
    }
    if let Some(c) = connected {
        v["connected"] = json!(c);
    }
    let tokens: Vec<Value> = state
        .tokens
        .values()
        .filter(|t| t.device_id == d.device_id && t.revoked_at_ms.is_none())
        .map(|t| json!({"role": t.role, "scopes": t.scopes, "createdAtMs": t.created_at_ms}))
        .collect();
    v["tokens"] = json!(tokens);
    v
}

fn existing_key(state_dir: &Path, derived: [u8; 32]) -> std::io::Result<[u8; 32]> {
    let path = state_dir.join(TOKEN_KEY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) if bytes.len() == 32 => Ok(bytes.try_into().expect("length checked")),
        Ok(_) => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{} is not a 32-byte key; restore it from a backup (or remove it, which invalidates every device token)",
                path.display()
            ),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(derived),
        Err(e) => Err(e),
    }
}
