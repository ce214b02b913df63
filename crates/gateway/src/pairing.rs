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
use clawgate_store::{
    DeviceRecord, DeviceWrite, PairingRequestRecord, Store, StoreError, TokenRecord, Write,
};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
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
    /// The request `id` was replaced by the wider one `by` (see [`Pairing::plan`]).
    Superseded {
        id: String,
        by: Box<PairingRequestRecord>,
    },
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
    /// Ids of requests replaced by a wider one, with the id of the pending one that replaced
    /// them: approving a replaced id says so. Kept while the replacement is pending, for at
    /// most as many as there are pending requests.
    superseded: HashMap<String, String>,
    /// When a displaced request was last logged: a flood of new devices logs once a minute.
    displaced_logged_ms: i64,
}

impl State {
    fn drop_requests_asked_before(&mut self, ms: i64) {
        self.requests.retain(|_, r| r.last_attempt_ms >= ms);
        self.forget_resolved_supersessions();
    }

    fn forget_resolved_supersessions(&mut self) {
        let requests = &self.requests;
        self.superseded.retain(|_, by| requests.contains_key(by));
    }

    /// Records that `old` was replaced by `by` (and what `old` replaced before, too).
    fn supersede(&mut self, old: &str, by: &str) {
        for target in self.superseded.values_mut() {
            if target == old {
                *target = by.to_owned();
            }
        }
        if self.superseded.len() < self.requests.len() {
            self.superseded.insert(old.to_owned(), by.to_owned());
        }
    }

    /// Drops requests whose device stopped asking more than [`REQUEST_TTL_MS`] ago, here; the
    /// next change drops them on disk too (see [`Pairing::commit`]).
    fn expire(&mut self, now_ms: i64) {
        self.drop_requests_asked_before(now_ms - REQUEST_TTL_MS);
    }

    /// Applies a write that is on disk to the in-memory copy.
    fn mirror(&mut self, w: &Write) {
        match w {
            Write::Device(DeviceWrite::PutDevice(d)) => {
                let mut d = d.clone();
                // Last-seen times are kept in memory (not written per connect): one may have
                // been recorded since this record was made.
                if let Some(held) = self.devices.get(&d.device_id)
                    && held.last_seen_at_ms > d.last_seen_at_ms
                {
                    d.last_seen_at_ms = held.last_seen_at_ms;
                    d.last_seen_reason = held.last_seen_reason.clone();
                }
                self.devices.insert(d.device_id.clone(), d);
            }
            Write::Device(DeviceWrite::DeleteDevice(id)) => {
                self.devices.remove(id);
                self.tokens.retain(|(d, _), _| d != id);
                self.requests.retain(|_, r| &r.device_id != id);
                self.forget_resolved_supersessions();
            }
            Write::Device(DeviceWrite::PutToken(t)) => {
                self.tokens
                    .insert((t.device_id.clone(), t.role.clone()), t.clone());
            }
            Write::Device(DeviceWrite::PutRequest(r)) => {
                let replaced: Vec<String> = self
                    .requests
                    .values()
                    .filter(|held| {
                        held.request_id != r.request_id
                            && held.device_id == r.device_id
                            && held.role == r.role
                    })
                    .map(|held| held.request_id.clone())
                    .collect();
                self.requests.insert(r.request_id.clone(), r.clone());
                for old in &replaced {
                    self.requests.remove(old);
                    self.supersede(old, &r.request_id);
                }
            }
            Write::Device(DeviceWrite::DeleteRequest(id)) => {
                self.requests.remove(id);
                self.forget_resolved_supersessions();
            }
            Write::Device(DeviceWrite::DeleteRequestsAskedBefore(ms)) => {
                self.drop_requests_asked_before(*ms)
            }
            Write::Device(DeviceWrite::LastSeen {
                device_id,
                at_ms,
                reason,
            }) => {
                if let Some(d) = self.devices.get_mut(device_id) {
                    d.last_seen_at_ms = Some(*at_ms);
                    d.last_seen_reason = Some(reason.clone());
                }
            }
            // The other families' tables.
            Write::Node(_) | Write::Session(_) | Write::Telegram(_) => {}
        }
    }
}

pub(crate) struct Pairing {
    store: Arc<Store>,
    key: [u8; 32],
    /// At most this many pending requests (`GatewayOptions::max_pending_pairing_requests`).
    max_pending: usize,
    /// What is on disk, in memory: reads take it briefly and never wait for the disk.
    state: Arc<Mutex<State>>,
    /// Held by a change from the moment it reads the state it starts from until it is on disk
    /// and mirrored, so changes apply one at a time, each to what the one before left. Reads
    /// never take it: a change waiting for the disk holds up other changes only.
    changing: Arc<tokio::sync::Mutex<()>>,
}

/// A change under way (see `Pairing::changing`).
type Change = tokio::sync::OwnedMutexGuard<()>;

/// What a connect comes to, before anything is written.
enum Plan {
    /// Answered from memory.
    Answer(Decision),
    /// Answered once `writes` are on disk.
    Change {
        writes: Vec<Write>,
        decision: Decision,
        /// A request dropped to make room for this one, to log.
        displaced: Option<Box<PairingRequestRecord>>,
    },
}

/// What approving a request writes, and what it answers.
struct Approval {
    writes: Vec<Write>,
    device: DeviceRecord,
    token: String,
    issued_at_ms: i64,
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
    /// from before the key was derived), so tokens already issued stay valid. Loads from the
    /// store on this thread: call it at startup. Requests that expired by `now_ms` are left
    /// behind (and dropped on disk with the first change).
    pub fn open(
        store: Arc<Store>,
        state_dir: &Path,
        derived_key: [u8; 32],
        max_pending: usize,
        now_ms: i64,
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
        let mut state = State {
            devices,
            tokens,
            requests,
            superseded: HashMap::new(),
            displaced_logged_ms: i64::MIN,
        };
        state.expire(now_ms);
        Ok(Pairing {
            store,
            key,
            max_pending: max_pending.max(1),
            state: Arc::new(Mutex::new(state)),
            changing: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("pairing lock")
    }

    async fn begin_change(&self) -> Change {
        self.changing.clone().lock_owned().await
    }

    /// Writes `writes` (on disk when this returns), mirrors them in memory and ends `change`,
    /// all of it even if the caller stops waiting. Requests that expired go with every change,
    /// so none outlives its lifetime on disk for long.
    async fn commit(
        &self,
        change: Change,
        mut writes: Vec<Write>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        writes.insert(
            0,
            Write::Device(DeviceWrite::DeleteRequestsAskedBefore(
                now_ms - REQUEST_TTL_MS,
            )),
        );
        let state = self.state.clone();
        let mirrored = writes.clone();
        self.store
            .apply_then(writes, move || {
                let mut state = state.lock().expect("pairing lock");
                for w in &mirrored {
                    state.mirror(w);
                }
                drop(change);
            })
            .await
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
        let state = self.state();
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
    /// spot. Whatever it writes is on disk before it answers.
    pub async fn decide(
        &self,
        a: &Applicant<'_>,
        auto: Option<AutoApproval>,
        now_ms: i64,
    ) -> Result<Decision, StoreError> {
        // Most connects are of paired devices that hold their token: answered from memory,
        // without waiting for changes under way.
        if let Plan::Answer(decision) = self.plan(a, auto, now_ms) {
            return Ok(decision);
        }
        let change = self.begin_change().await;
        // Planned again: the state may have changed while waiting.
        match self.plan(a, auto, now_ms) {
            Plan::Answer(decision) => Ok(decision),
            Plan::Change {
                writes,
                decision,
                displaced,
            } => {
                self.commit(change, writes, now_ms).await?;
                if let Some(old) = displaced {
                    self.log_displaced(&old, now_ms);
                }
                Ok(decision)
            }
        }
    }

    fn plan(&self, a: &Applicant<'_>, auto: Option<AutoApproval>, now_ms: i64) -> Plan {
        let mut state = self.state();
        state.expire(now_ms);
        let existing = state.devices.get(a.device_id).cloned();
        let reason = match &existing {
            None => "not-paired",
            Some(d) if !d.roles.iter().any(|r| r == a.role) => "role-upgrade",
            Some(d) if a.role == "operator" && !granted_all(&d.scopes, a.scopes) => "scope-upgrade",
            Some(_) => {
                let (token, issued_at_ms, new_token) =
                    self.token_of(&state, a.device_id, a.role, now_ms);
                if let Some(d) = state.devices.get_mut(a.device_id) {
                    d.last_seen_at_ms = Some(now_ms);
                    d.last_seen_reason = Some("connect".into());
                }
                let decision = Decision::Approved {
                    token,
                    issued_at_ms,
                    events: Vec::new(),
                };
                return match new_token {
                    None => Plan::Answer(decision),
                    Some(t) => Plan::Change {
                        writes: vec![Write::Device(DeviceWrite::PutToken(t))],
                        decision,
                        displaced: None,
                    },
                };
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
            let approval = self.approval(&state, &request, via, now_ms);
            return Plan::Change {
                writes: approval.writes,
                decision: Decision::Approved {
                    token: approval.token,
                    issued_at_ms: approval.issued_at_ms,
                    events: vec![
                        ("device.pair.requested", requested),
                        ("device.pair.resolved", resolved_json(&request, now_ms)),
                    ],
                },
                displaced: None,
            };
        }
        // An approval grants what the approver was shown: OpenClaw users approve an id they
        // read in `devices list`, so a request never grows under its id. Asking within what it
        // lists keeps it; asking for more makes a new request listing both, which replaces it.
        // Approving the replaced id then fails, naming the new one and what it asks: granting
        // the old list instead would pair the device short of what it now asks, with its wider
        // request left pending under a reason that no longer holds. Lists only grow, so a
        // device alternating between asks settles on one request.
        let held = existing_request(&state, a).cloned();
        let replacing = held.is_some();
        let (request, created) = match held {
            Some(mut r) if granted_all(&r.scopes, a.scopes) => {
                r.last_attempt_ms = now_ms;
                r.reason = reason.into();
                (r, false)
            }
            Some(narrower) => {
                let mut r = request_record(a, &new_id(), reason, existing.is_some(), now_ms);
                r.scopes = union(&narrower.scopes, a.scopes);
                (r, true)
            }
            None => (
                request_record(a, &new_id(), reason, existing.is_some(), now_ms),
                true,
            ),
        };
        // A replacement takes the place of the request it replaces.
        let displaced = if created && !replacing {
            self.displaced_by_new_request(&state).map(Box::new)
        } else {
            None
        };
        let mut writes = vec![Write::Device(DeviceWrite::PutRequest(request.clone()))];
        if let Some(old) = &displaced {
            writes.push(Write::Device(DeviceWrite::DeleteRequest(
                old.request_id.clone(),
            )));
        }
        let (approved_roles, approved_scopes) =
            existing.map(|d| (d.roles, d.scopes)).unwrap_or_default();
        Plan::Change {
            writes,
            decision: Decision::Pending {
                request: Box::new(request),
                created,
                approved_roles,
                approved_scopes,
            },
            displaced,
        }
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

    fn log_displaced(&self, old: &PairingRequestRecord, now_ms: i64) {
        let mut state = self.state();
        if now_ms.saturating_sub(state.displaced_logged_ms) < DISPLACED_LOG_INTERVAL_MS {
            return;
        }
        state.displaced_logged_ms = now_ms;
        tracing::warn!(
            "{} pending device pairing requests (the most held); dropped {} from device {} (last asked {} s ago), which asks again on its next attempt",
            self.max_pending,
            old.request_id,
            old.device_id,
            (now_ms - old.last_attempt_ms) / 1000
        );
    }

    /// What approving `request` writes: the device, its token for the requested role, and the
    /// request's removal.
    fn approval(
        &self,
        state: &State,
        request: &PairingRequestRecord,
        via: &str,
        now_ms: i64,
    ) -> Approval {
        let mut device = state
            .devices
            .get(&request.device_id)
            .cloned()
            .unwrap_or_else(|| DeviceRecord {
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
        Approval {
            writes: vec![
                Write::Device(DeviceWrite::PutDevice(device.clone())),
                Write::Device(DeviceWrite::PutToken(record)),
                Write::Device(DeviceWrite::DeleteRequest(request.request_id.clone())),
            ],
            device,
            token,
            issued_at_ms: created,
        }
    }

    /// The token of an approved device and role and when it was issued, with the record to
    /// write when it has none yet.
    fn token_of(
        &self,
        state: &State,
        device_id: &str,
        role: &str,
        now_ms: i64,
    ) -> (String, i64, Option<TokenRecord>) {
        let key = (device_id.to_owned(), role.to_owned());
        if let Some(t) = state.tokens.get(&key).filter(|t| t.revoked_at_ms.is_none()) {
            return (
                self.derive(device_id, role, t.generation),
                t.rotated_at_ms.unwrap_or(t.created_at_ms),
                None,
            );
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
        (token, now_ms, Some(record))
    }

    /// `device.pair.list`: `{pending, paired}`; `connected` tells which devices have a live socket.
    pub fn list(&self, connected: &dyn Fn(&str) -> bool, now_ms: i64) -> Value {
        let mut state = self.state();
        state.expire(now_ms);
        let mut pending: Vec<&PairingRequestRecord> = state.requests.values().collect();
        pending.sort_by_key(|r| r.created_at_ms);
        let mut paired: Vec<&DeviceRecord> = state.devices.values().collect();
        paired.sort_by_key(|d| std::cmp::Reverse(d.approved_at_ms));
        json!({
            "pending": pending.into_iter().map(pending_json).collect::<Vec<_>>(),
            "paired": paired.into_iter().map(|d| device_json(d, &state, Some(connected(&d.device_id)))).collect::<Vec<_>>(),
        })
    }

    /// A pending request, to approve or reject.
    fn pending(&self, request_id: &str, now_ms: i64) -> Result<PairingRequestRecord, PairingError> {
        let mut state = self.state();
        state.expire(now_ms);
        if let Some(r) = state.requests.get(request_id) {
            return Ok(r.clone());
        }
        match state
            .superseded
            .get(request_id)
            .and_then(|by| state.requests.get(by))
        {
            Some(by) => Err(PairingError::Superseded {
                id: request_id.into(),
                by: Box::new(by.clone()),
            }),
            None => Err(PairingError::NotFound(request_id.into())),
        }
    }

    /// `device.pair.approve`: on disk before it returns.
    pub async fn approve(
        &self,
        request_id: &str,
        now_ms: i64,
    ) -> Result<(Value, Value), PairingError> {
        let change = self.begin_change().await;
        let request = self.pending(request_id, now_ms)?;
        let approval = self.approval(&self.state(), &request, "owner", now_ms);
        self.commit(change, approval.writes, now_ms).await?;
        let payload = json!({"requestId": request_id, "device": device_json(&approval.device, &self.state(), None)});
        Ok((payload, resolved_json(&request, now_ms)))
    }

    /// Approves `request_id` as `approvedVia: "ssh-verified"`, only while it is still the
    /// first pairing request of a node asking no scopes from the device and key the probe
    /// found on its host. Returns its `device.pair.resolved` payload, or `None` when the
    /// request was resolved, replaced or changed meanwhile.
    pub async fn approve_ssh_verified(
        &self,
        request_id: &str,
        device_id: &str,
        public_key: &str,
        now_ms: i64,
    ) -> Result<Option<Value>, StoreError> {
        let change = self.begin_change().await;
        let Some(request) = self.request(request_id, now_ms) else {
            return Ok(None);
        };
        let approval = {
            let state = self.state();
            let still_verified = request.device_id == device_id
                && request.public_key == public_key
                && request.role == "node"
                && request.scopes.is_empty()
                && !request.is_repair
                && !state.devices.contains_key(device_id);
            if !still_verified {
                return Ok(None);
            }
            self.approval(&state, &request, "ssh-verified", now_ms)
        };
        self.commit(change, approval.writes, now_ms).await?;
        Ok(Some(resolved_json(&request, now_ms)))
    }

    /// `device.pair.reject`.
    pub async fn reject(
        &self,
        request_id: &str,
        now_ms: i64,
    ) -> Result<(Value, Value), PairingError> {
        let change = self.begin_change().await;
        let request = self.pending(request_id, now_ms)?;
        self.commit(
            change,
            vec![Write::Device(DeviceWrite::DeleteRequest(request_id.into()))],
            now_ms,
        )
        .await?;
        let payload = json!({"requestId": request_id, "deviceId": request.device_id});
        let event = json!({"requestId": request_id, "deviceId": request.device_id, "decision": "rejected", "ts": now_ms});
        Ok((payload, event))
    }

    /// `device.pair.remove`: the device, its tokens and its pending requests.
    pub async fn remove(&self, device_id: &str, now_ms: i64) -> Result<Value, PairingError> {
        let change = self.begin_change().await;
        if !self.state().devices.contains_key(device_id) {
            return Err(PairingError::NotFound(device_id.into()));
        }
        self.commit(
            change,
            vec![Write::Device(DeviceWrite::DeleteDevice(device_id.into()))],
            now_ms,
        )
        .await?;
        Ok(json!({"deviceId": device_id, "removed": true}))
    }

    /// `device.pair.rename {deviceId, label}`: an operator's label, shown as `operatorLabel`.
    pub async fn rename(
        &self,
        device_id: &str,
        label: &str,
        now_ms: i64,
    ) -> Result<Value, PairingError> {
        let change = self.begin_change().await;
        let mut device = self
            .state()
            .devices
            .get(device_id)
            .cloned()
            .ok_or_else(|| PairingError::NotFound(device_id.into()))?;
        device.operator_label = Some(label.to_owned());
        self.commit(
            change,
            vec![Write::Device(DeviceWrite::PutDevice(device))],
            now_ms,
        )
        .await?;
        Ok(json!({"deviceId": device_id, "label": label}))
    }

    /// A pending request, for checks before approving it.
    pub fn request(&self, request_id: &str, now_ms: i64) -> Option<PairingRequestRecord> {
        let mut state = self.state();
        state.expire(now_ms);
        state.requests.get(request_id).cloned()
    }

    /// The token record of a device and role, to change.
    fn token_record(&self, device_id: &str, role: &str) -> Result<TokenRecord, PairingError> {
        self.state()
            .tokens
            .get(&(device_id.to_owned(), role.to_owned()))
            .cloned()
            .ok_or_else(|| PairingError::NotFound(format!("{device_id} ({role})")))
    }

    /// `device.token.rotate`: a new token for the role; the old one stops working.
    /// The new token is returned only to the device itself (`in-band`); anyone else learns it
    /// was rotated, and the device gets its new token in its next hello-ok.
    pub async fn rotate(
        &self,
        device_id: &str,
        role: &str,
        in_band: bool,
        now_ms: i64,
    ) -> Result<Value, PairingError> {
        let change = self.begin_change().await;
        let mut t = self.token_record(device_id, role)?;
        t.generation += 1;
        let token = self.derive(device_id, role, t.generation);
        t.token_hash = hash(&token);
        t.rotated_at_ms = Some(now_ms);
        t.revoked_at_ms = None;
        let scopes = t.scopes.clone();
        self.commit(
            change,
            vec![Write::Device(DeviceWrite::PutToken(t))],
            now_ms,
        )
        .await?;
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
    pub async fn revoke(
        &self,
        device_id: &str,
        role: &str,
        now_ms: i64,
    ) -> Result<Value, PairingError> {
        let change = self.begin_change().await;
        let mut t = self.token_record(device_id, role)?;
        t.revoked_at_ms = Some(now_ms);
        self.commit(
            change,
            vec![Write::Device(DeviceWrite::PutToken(t))],
            now_ms,
        )
        .await?;
        Ok(json!({"deviceId": device_id, "role": role, "revokedAtMs": now_ms}))
    }

    /// Writes last-seen times kept in memory since the last flush (not worth an fsync per
    /// connect).
    pub async fn flush_last_seen(&self) {
        let writes: Vec<Write> = self
            .state()
            .devices
            .values()
            .filter_map(|d| {
                Some(Write::Device(DeviceWrite::LastSeen {
                    device_id: d.device_id.clone(),
                    at_ms: d.last_seen_at_ms?,
                    reason: d
                        .last_seen_reason
                        .clone()
                        .unwrap_or_else(|| "connect".into()),
                }))
            })
            .collect();
        if let Err(e) = self.store.apply(writes).await {
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

#[cfg(test)]
mod tests {
    use super::*;

    const ASKED_AT: i64 = 1_700_000_000_000;

    fn applicant<'a>(device_id: &'a str, scopes: &'a [String]) -> Applicant<'a> {
        Applicant {
            device_id,
            public_key: "pk-1",
            role: "operator",
            scopes,
            display_name: Some("laptop"),
            platform: "linux",
            device_family: None,
            client_id: "cli",
            client_mode: "cli",
        }
    }

    fn open(state_dir: &Path, now_ms: i64) -> Pairing {
        let store = Arc::new(Store::open(state_dir).unwrap());
        Pairing::open(store, state_dir, [7; 32], 16, now_ms).unwrap()
    }

    fn pending_id(decision: Decision) -> String {
        match decision {
            Decision::Pending { request, .. } => request.request_id,
            other => panic!("expected a pending request, got {other:?}"),
        }
    }

    /// A device that comes back after its request expired asks again with a new request,
    /// in the same run and after a restart, instead of colliding with its stale row; expired
    /// requests leave the disk too.
    #[tokio::test]
    async fn a_device_whose_request_expired_asks_again() {
        let dir = tempfile::tempdir().unwrap();
        let scopes = vec!["operator.read".to_owned()];
        let pairing = open(dir.path(), ASKED_AT);
        let first = pending_id(
            pairing
                .decide(&applicant("dev-1", &scopes), None, ASKED_AT)
                .await
                .unwrap(),
        );
        let abandoned = pending_id(
            pairing
                .decide(&applicant("dev-2", &scopes), None, ASKED_AT)
                .await
                .unwrap(),
        );

        let later = ASKED_AT + REQUEST_TTL_MS + 10_000;
        let second = pending_id(
            pairing
                .decide(&applicant("dev-1", &scopes), None, later)
                .await
                .expect("a new request replaces the expired one"),
        );
        assert_ne!(second, first);
        assert!(pairing.request(&abandoned, later).is_none());
        drop(pairing);

        // After a restart past the second request's lifetime too: nothing stale is loaded or
        // kept on disk, and the device asks again.
        let much_later = later + REQUEST_TTL_MS + 10_000;
        let pairing = open(dir.path(), much_later);
        assert!(
            pairing.state().requests.is_empty(),
            "nothing expired is loaded"
        );
        let third = pending_id(
            pairing
                .decide(&applicant("dev-1", &scopes), None, much_later)
                .await
                .expect("a new request after a restart"),
        );
        assert_ne!(third, second);
        let on_disk: Vec<String> = Store::open(dir.path())
            .unwrap()
            .requests()
            .unwrap()
            .into_iter()
            .map(|r| r.request_id)
            .collect();
        assert_eq!(on_disk, vec![third], "{abandoned} expired on disk too");
    }

    /// An approval whose caller stops waiting (its socket closed) while its write waits for
    /// the disk still lands in memory as it does on disk.
    #[tokio::test]
    async fn an_approval_abandoned_during_its_write_is_still_mirrored() {
        let dir = tempfile::tempdir().unwrap();
        let scopes = vec!["operator.read".to_owned()];
        let pairing = open(dir.path(), ASKED_AT);
        let id = pending_id(
            pairing
                .decide(&applicant("dev-1", &scopes), None, ASKED_AT)
                .await
                .unwrap(),
        );
        let holder = rusqlite::Connection::open(dir.path().join(clawgate_store::DB_FILE)).unwrap();
        holder.execute_batch("BEGIN IMMEDIATE").unwrap();
        let abandoned = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            pairing.approve(&id, ASKED_AT),
        )
        .await;
        assert!(abandoned.is_err(), "the write waits for the lock");

        holder.execute_batch("ROLLBACK").unwrap();
        // The abandoned change ends once it is on disk and mirrored.
        drop(pairing.begin_change().await);
        assert!(pairing.request(&id, ASKED_AT).is_none());
        assert!(pairing.state().devices.contains_key("dev-1"));
        drop(pairing);
        let reopened = open(dir.path(), ASKED_AT);
        assert!(reopened.state().devices.contains_key("dev-1"));
    }
}
