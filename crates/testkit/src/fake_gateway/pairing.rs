//! Device pairing for the fake gateway, modelled on OpenClaw 2026.9.6: a connect that carries
//! a device must be paired for its role and scopes (else `NOT_PAIRED PAIRING_REQUIRED` with a
//! request id that stays the same while the device asks for the same thing); paired devices
//! get a device token in hello-ok and may connect with it alone; and the `device.pair.*` /
//! `device.token.*` methods answer like the real ones (same params, payloads and error
//! messages).

use super::{Call, Reply, missing_scope};
use clawgate_protocol::scopes;
use serde_json::{Map, Value, json};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
struct PendingRequest {
    request_id: String,
    device_id: String,
    public_key: String,
    display_name: Option<String>,
    platform: String,
    device_family: Option<String>,
    client_id: String,
    client_mode: String,
    role: String,
    scopes: Vec<String>,
    is_repair: bool,
    ts: i64,
}

#[derive(Debug, Clone)]
struct DeviceToken {
    role: String,
    token: String,
    scopes: Vec<String>,
    created_at_ms: i64,
    revoked_at_ms: Option<i64>,
}

#[derive(Debug, Clone)]
struct PairedDevice {
    device_id: String,
    public_key: String,
    display_name: Option<String>,
    label: Option<String>,
    platform: String,
    client_id: String,
    client_mode: String,
    roles: Vec<String>,
    scopes: Vec<String>,
    approved_at_ms: i64,
    tokens: Vec<DeviceToken>,
}

#[derive(Debug, Default)]
struct State {
    pending: Vec<PendingRequest>,
    paired: Vec<PairedDevice>,
    counter: u64,
}

/// Shared pairing state of a fake gateway. Clone it into [`super::FakeConfig::pairing`] and
/// keep a clone in the test to approve or reject from "another operator".
#[derive(Debug, Clone, Default)]
pub struct FakePairing {
    state: Arc<Mutex<State>>,
}

/// How the fake answers a device-bearing connect.
pub(super) enum ConnectDecision {
    /// Accept: `auth.method`, plus the device token (and its issue time) to put in hello-ok.
    Accept {
        method: &'static str,
        device_token: Option<(String, i64)>,
    },
    /// Refuse with this ErrorShape (close 1008).
    Refuse(Value),
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn covers(granted: &[String], wanted: &[String]) -> bool {
    wanted.iter().all(|w| scopes::satisfies(granted, w))
}

fn invalid(message: &str) -> Reply {
    Reply::Err(json!({"code": "INVALID_REQUEST", "message": message}))
}

fn auth_error(message: &str, code: &str, reason: &str, retry: bool, next: &str) -> Value {
    json!({"code": "INVALID_REQUEST", "message": message, "details": {"code": code,
        "authReason": reason, "canRetryWithDeviceToken": retry, "recommendedNextStep": next}})
}

impl PendingRequest {
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("requestId".into(), json!(self.request_id));
        m.insert("deviceId".into(), json!(self.device_id));
        m.insert("publicKey".into(), json!(self.public_key));
        if let Some(n) = &self.display_name {
            m.insert("displayName".into(), json!(n));
        }
        m.insert("platform".into(), json!(self.platform));
        if let Some(f) = &self.device_family {
            m.insert("deviceFamily".into(), json!(f));
        }
        m.insert("clientId".into(), json!(self.client_id));
        m.insert("clientMode".into(), json!(self.client_mode));
        m.insert("role".into(), json!(self.role));
        m.insert("roles".into(), json!([self.role]));
        m.insert("scopes".into(), json!(self.scopes));
        m.insert("silent".into(), json!(false));
        m.insert("isRepair".into(), json!(self.is_repair));
        m.insert("ts".into(), json!(self.ts));
        Value::Object(m)
    }
}

impl PairedDevice {
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("deviceId".into(), json!(self.device_id));
        m.insert("publicKey".into(), json!(self.public_key));
        if let Some(n) = &self.display_name {
            m.insert("displayName".into(), json!(n));
        }
        if let Some(l) = &self.label {
            m.insert("operatorLabel".into(), json!(l));
        }
        m.insert("platform".into(), json!(self.platform));
        m.insert("clientId".into(), json!(self.client_id));
        m.insert("clientMode".into(), json!(self.client_mode));
        m.insert("role".into(), json!(self.roles.first()));
        m.insert("roles".into(), json!(self.roles));
        m.insert("scopes".into(), json!(self.scopes));
        m.insert("approvedVia".into(), json!("owner"));
        m.insert("createdAtMs".into(), json!(self.approved_at_ms));
        m.insert("approvedAtMs".into(), json!(self.approved_at_ms));
        m.insert("connected".into(), json!(false));
        let tokens: Vec<Value> = self
            .tokens
            .iter()
            .map(|t| {
                let mut v =
                    json!({"role": t.role, "scopes": t.scopes, "createdAtMs": t.created_at_ms});
                if let Some(r) = t.revoked_at_ms {
                    v["revokedAtMs"] = json!(r);
                }
                v
            })
            .collect();
        m.insert("tokens".into(), Value::Array(tokens));
        Value::Object(m)
    }

    fn live_token(&self, role: &str) -> Option<&DeviceToken> {
        self.tokens
            .iter()
            .find(|t| t.role == role && t.revoked_at_ms.is_none())
    }
}

impl State {
    fn new_id(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!(
            "{prefix}-{}-{}",
            self.counter,
            uuid::Uuid::new_v4().simple()
        )
    }

    fn approve(&mut self, request_id: &str) -> Option<PairedDevice> {
        let idx = self
            .pending
            .iter()
            .position(|r| r.request_id == request_id)?;
        let req = self.pending.remove(idx);
        let now = super::now_ms();
        let token = DeviceToken {
            role: req.role.clone(),
            token: self.new_id("devtok"),
            scopes: req.scopes.clone(),
            created_at_ms: now,
            revoked_at_ms: None,
        };
        let device = match self
            .paired
            .iter_mut()
            .find(|d| d.device_id == req.device_id)
        {
            Some(d) => {
                if !d.roles.contains(&req.role) {
                    d.roles.push(req.role.clone());
                }
                for s in &req.scopes {
                    if !d.scopes.contains(s) {
                        d.scopes.push(s.clone());
                    }
                }
                let all_scopes = d.scopes.clone();
                d.tokens.retain(|t| t.role != req.role);
                d.tokens.push(DeviceToken {
                    scopes: all_scopes,
                    ..token
                });
                d.approved_at_ms = now;
                d.clone()
            }
            None => {
                let d = PairedDevice {
                    device_id: req.device_id.clone(),
                    public_key: req.public_key.clone(),
                    display_name: req.display_name.clone(),
                    label: None,
                    platform: req.platform.clone(),
                    client_id: req.client_id.clone(),
                    client_mode: req.client_mode.clone(),
                    roles: vec![req.role.clone()],
                    scopes: req.scopes.clone(),
                    approved_at_ms: now,
                    tokens: vec![token],
                };
                self.paired.push(d.clone());
                d
            }
        };
        Some(device)
    }
}

impl FakePairing {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pending requests as `device.pair.list` shows them.
    pub fn pending(&self) -> Vec<Value> {
        self.lock()
            .pending
            .iter()
            .map(PendingRequest::to_json)
            .collect()
    }

    /// Paired devices as `device.pair.list` shows them.
    pub fn paired(&self) -> Vec<Value> {
        self.lock()
            .paired
            .iter()
            .map(PairedDevice::to_json)
            .collect()
    }

    /// Approves a pending request, as an operator elsewhere would. Returns whether it existed.
    pub fn approve(&self, request_id: &str) -> bool {
        self.lock().approve(request_id).is_some()
    }

    /// Rejects (drops) a pending request. Returns whether it existed.
    pub fn reject(&self, request_id: &str) -> bool {
        let mut s = self.lock();
        let before = s.pending.len();
        s.pending.retain(|r| r.request_id != request_id);
        s.pending.len() != before
    }

    /// Marks a device paired for `role` and `scopes` without a request (a device paired
    /// earlier). Returns its device token.
    pub fn pair(&self, device_id: &str, role: &str, scopes: &[&str]) -> String {
        let mut s = self.lock();
        let id = s.new_id("req");
        s.pending.push(PendingRequest {
            request_id: id.clone(),
            device_id: device_id.into(),
            public_key: String::new(),
            display_name: None,
            platform: "linux".into(),
            device_family: None,
            client_id: "cli".into(),
            client_mode: "cli".into(),
            role: role.into(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            is_repair: false,
            ts: super::now_ms(),
        });
        let d = s.approve(&id).expect("just added");
        d.live_token(role).expect("issued").token.clone()
    }

    /// Replaces every device token (like a rotation the clients did not see).
    pub fn rotate_all_tokens(&self) {
        let mut s = self.lock();
        let mut fresh = Vec::new();
        for _ in 0..s.paired.iter().map(|d| d.tokens.len()).sum::<usize>() {
            fresh.push(s.new_id("devtok"));
        }
        for t in s.paired.iter_mut().flat_map(|d| d.tokens.iter_mut()) {
            t.token = fresh.pop().unwrap_or_default();
        }
    }

    /// Decides a connect that carries `device`. `shared` is `Some(valid)` when a shared
    /// token was sent, `None` when none was; `secret_required` says whether the gateway has
    /// one configured.
    pub(super) fn on_connect(
        &self,
        params: &Value,
        shared: Option<bool>,
        secret_required: bool,
    ) -> ConnectDecision {
        let device = &params["device"];
        let device_id = device["id"].as_str().unwrap_or("").to_owned();
        let role = params["role"].as_str().unwrap_or("operator").to_owned();
        let requested = strings(params.get("scopes"));
        let device_token = params.pointer("/auth/deviceToken").and_then(Value::as_str);
        let mut s = self.lock();

        if shared == Some(true) || (shared.is_none() && device_token.is_none() && !secret_required)
        {
            let method = if shared == Some(true) {
                "token"
            } else {
                "none"
            };
            if let Some(d) = s.paired.iter().find(|d| d.device_id == device_id)
                && d.roles.contains(&role)
                && covers(&d.scopes, &requested)
                && let Some(t) = d.live_token(&role)
            {
                return ConnectDecision::Accept {
                    method,
                    device_token: Some((t.token.clone(), t.created_at_ms)),
                };
            }
            let known = s.paired.iter().find(|d| d.device_id == device_id).cloned();
            let reason = match &known {
                None => "not-paired",
                Some(d) if !d.roles.contains(&role) => "role-upgrade",
                Some(_) => "scope-upgrade",
            };
            let existing = s.pending.iter().position(|r| r.device_id == device_id);
            let request_id = match existing {
                Some(i) if s.pending[i].role == role && s.pending[i].scopes == requested => {
                    s.pending[i].request_id.clone()
                }
                other => {
                    if let Some(i) = other {
                        s.pending.remove(i);
                    }
                    let id = s.new_id("req");
                    let client = &params["client"];
                    s.pending.push(PendingRequest {
                        request_id: id.clone(),
                        device_id: device_id.clone(),
                        public_key: device["publicKey"].as_str().unwrap_or("").to_owned(),
                        display_name: client["displayName"].as_str().map(str::to_owned),
                        platform: client["platform"].as_str().unwrap_or("").to_owned(),
                        device_family: client["deviceFamily"].as_str().map(str::to_owned),
                        client_id: client["id"].as_str().unwrap_or("").to_owned(),
                        client_mode: client["mode"].as_str().unwrap_or("").to_owned(),
                        role: role.clone(),
                        scopes: requested.clone(),
                        is_repair: known.is_some(),
                        ts: super::now_ms(),
                    });
                    id
                }
            };
            let (message, hint) = if reason == "not-paired" {
                (
                    "pairing required: device is not approved yet",
                    "Approve this device from the pending pairing requests.",
                )
            } else {
                (
                    "pairing required: device is asking for more scopes than currently approved",
                    "Review the requested scopes, then approve the pending upgrade.",
                )
            };
            let mut details = json!({"code": "PAIRING_REQUIRED", "reason": reason, "requestId": request_id,
                "remediationHint": hint, "deviceId": device_id, "requestedRole": role, "requestedScopes": requested});
            if let Some(d) = known {
                details["approvedRoles"] = json!(d.roles);
                details["approvedScopes"] = json!(d.scopes);
            }
            return ConnectDecision::Refuse(
                json!({"code": "NOT_PAIRED", "message": message, "details": details}),
            );
        }

        if let Some(presented) = device_token {
            let token = s
                .paired
                .iter()
                .find(|d| d.device_id == device_id)
                .and_then(|d| d.live_token(&role))
                .filter(|t| t.token == presented);
            return match token {
                None => ConnectDecision::Refuse(auth_error(
                    "unauthorized: device token mismatch (rotate/reissue device token)",
                    "AUTH_DEVICE_TOKEN_MISMATCH",
                    "device_token_mismatch",
                    false,
                    "update_auth_credentials",
                )),
                Some(t) if !covers(&t.scopes, &requested) => ConnectDecision::Refuse(auth_error(
                    "unauthorized: device token scope mismatch (re-pair or approve scope upgrade)",
                    "AUTH_SCOPE_MISMATCH",
                    "scope_mismatch",
                    false,
                    "review_auth_configuration",
                )),
                Some(t) => ConnectDecision::Accept {
                    method: "device-token",
                    device_token: Some((t.token.clone(), t.created_at_ms)),
                },
            };
        }

        if shared == Some(false) {
            let paired = s.paired.iter().any(|d| d.device_id == device_id);
            return ConnectDecision::Refuse(auth_error(
                "unauthorized: gateway token mismatch (use this gateway's gateway.auth.token or pair the device)",
                "AUTH_TOKEN_MISMATCH",
                "token_mismatch",
                paired,
                if paired {
                    "retry_with_device_token"
                } else {
                    "update_auth_credentials"
                },
            ));
        }
        ConnectDecision::Refuse(auth_error(
            "unauthorized: gateway token missing (use this gateway's gateway.auth.token or pair the device)",
            "AUTH_TOKEN_MISSING",
            "token_missing",
            false,
            "update_auth_configuration",
        ))
    }

    /// Answers `device.pair.*` and `device.token.*` like the real gateway; `None` for any
    /// other method.
    pub fn handle(&self, call: &Call) -> Option<Reply> {
        if !call.method.starts_with("device.pair.") && !call.method.starts_with("device.token.") {
            return None;
        }
        if !scopes::satisfies(&call.scopes, scopes::PAIRING) {
            return Some(Reply::Err(missing_scope(scopes::PAIRING)));
        }
        let p = call.params.clone().unwrap_or(json!({}));
        let str_param = |k: &str| p.get(k).and_then(Value::as_str).map(str::to_owned);
        let admin = scopes::satisfies(&call.scopes, scopes::ADMIN);
        let mut s = self.lock();
        let reply = match call.method.as_str() {
            "device.pair.list" => Reply::Ok(json!({
                "pending": s.pending.iter().map(PendingRequest::to_json).collect::<Vec<_>>(),
                "paired": s.paired.iter().map(PairedDevice::to_json).collect::<Vec<_>>(),
            })),
            "device.pair.approve" => {
                let Some(id) = str_param("requestId") else {
                    return Some(invalid(
                        "invalid device.pair.approve params: must have required property 'requestId'",
                    ));
                };
                let Some(req) = s.pending.iter().find(|r| r.request_id == id).cloned() else {
                    return Some(invalid(if admin {
                        "unknown requestId"
                    } else {
                        "device pairing approval denied"
                    }));
                };
                if req.role != "operator" && !admin {
                    return Some(invalid("device pairing approval denied"));
                }
                if let Some(missing) = req
                    .scopes
                    .iter()
                    .find(|w| !scopes::satisfies(&call.scopes, w))
                {
                    return Some(invalid(&format!("missing scope: {missing}")));
                }
                let d = s.approve(&id).expect("pending");
                Reply::Ok(json!({"requestId": id, "device": d.to_json()}))
            }
            "device.pair.reject" => {
                let id = str_param("requestId").unwrap_or_default();
                match s.pending.iter().position(|r| r.request_id == id) {
                    Some(i) => {
                        let r = s.pending.remove(i);
                        Reply::Ok(json!({"requestId": id, "deviceId": r.device_id}))
                    }
                    None => invalid("unknown requestId"),
                }
            }
            "device.pair.remove" => {
                let id = str_param("deviceId").unwrap_or_default();
                match s.paired.iter().position(|d| d.device_id == id) {
                    Some(i) => {
                        let d = s.paired.remove(i);
                        Reply::Ok(json!({"deviceId": d.device_id, "removedAtMs": super::now_ms()}))
                    }
                    None => invalid("unknown deviceId"),
                }
            }
            "device.pair.rename" => {
                if let Some(extra) = p
                    .as_object()
                    .and_then(|o| o.keys().find(|k| *k != "deviceId" && *k != "label"))
                {
                    return Some(invalid(&format!(
                        "invalid device.pair.rename params: at root: unexpected property '{extra}'"
                    )));
                }
                let id = str_param("deviceId").unwrap_or_default();
                let label = str_param("label").unwrap_or_default();
                match s.paired.iter_mut().find(|d| d.device_id == id) {
                    Some(d) => {
                        d.label = Some(label.trim().to_owned());
                        Reply::Ok(json!({"deviceId": id, "label": label.trim()}))
                    }
                    None => invalid("unknown deviceId"),
                }
            }
            "device.token.rotate" => {
                let id = str_param("deviceId").unwrap_or_default();
                let role = str_param("role").unwrap_or_default();
                let wanted = p.get("scopes").map(|v| strings(Some(v)));
                let fresh = s.new_id("devtok");
                let Some(d) = s.paired.iter_mut().find(|d| d.device_id == id) else {
                    return Some(invalid("device token rotation denied"));
                };
                if role != "operator" && !admin {
                    return Some(invalid("device token rotation denied"));
                }
                let scopes = wanted.unwrap_or_else(|| d.scopes.clone());
                let now = super::now_ms();
                d.tokens.retain(|t| t.role != role);
                d.tokens.push(DeviceToken {
                    role: role.clone(),
                    token: fresh.clone(),
                    scopes: scopes.clone(),
                    created_at_ms: now,
                    revoked_at_ms: None,
                });
                let own = call.device_id.as_deref() == Some(id.as_str());
                let mut v = json!({"deviceId": id, "role": role, "scopes": scopes, "rotatedAtMs": now,
                    "tokenDelivery": if own { "in-band" } else { "withheld-cross-device" }});
                if own {
                    v["token"] = json!(fresh);
                }
                Reply::Ok(v)
            }
            "device.token.revoke" => {
                let id = str_param("deviceId").unwrap_or_default();
                let role = str_param("role").unwrap_or_default();
                let now = super::now_ms();
                let token = s
                    .paired
                    .iter_mut()
                    .find(|d| d.device_id == id)
                    .and_then(|d| {
                        d.tokens
                            .iter_mut()
                            .find(|t| t.role == role && t.revoked_at_ms.is_none())
                    });
                match token {
                    Some(t) if role == "operator" || admin => {
                        t.revoked_at_ms = Some(now);
                        Reply::Ok(json!({"deviceId": id, "role": role, "revokedAtMs": now}))
                    }
                    _ => invalid("device token revocation denied"),
                }
            }
            other => invalid(&format!("unknown method: {other}")),
        };
        Some(reply)
    }
}
