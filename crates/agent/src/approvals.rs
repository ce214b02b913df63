//! Exec approvals on the gateway path: a command a node will only run once someone approves
//! it waits here, announced as `exec.approval.requested`, until an operator answers
//! (`exec.approval.resolve`), the run is aborted, or the approval expires.

use crate::events::{Audience, EventSink, now_ms};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::oneshot;

/// How long an approval waits for an answer (OpenClaw's 30 minutes); then it is denied.
pub(crate) const APPROVAL_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Approvals waiting at once, at most; beyond it a command is denied at once.
const MAX_PENDING: usize = 256;

/// An operator's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    AllowOnce,
    AllowAlways,
    Deny,
}

impl Decision {
    pub fn parse(value: &str) -> Option<Decision> {
        Some(match value {
            "allow-once" => Decision::AllowOnce,
            "allow-always" => Decision::AllowAlways,
            "deny" => Decision::Deny,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Decision::AllowOnce => "allow-once",
            Decision::AllowAlways => "allow-always",
            Decision::Deny => "deny",
        }
    }
}

/// Why a command was not approved, as the model reads it (`exec denied: <reason>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    Denied,
    TimedOut,
    TooMany,
}

impl Refused {
    pub fn reason(self) -> &'static str {
        match self {
            Refused::Denied => "user-denied",
            Refused::TimedOut => "approval-timeout",
            Refused::TooMany => "too many approvals waiting",
        }
    }
}

struct Pending {
    tx: oneshot::Sender<Decision>,
    request: Value,
}

#[derive(Default)]
pub(crate) struct Approvals {
    pending: Mutex<HashMap<String, Pending>>,
}

/// Takes a waiting approval out when its waiter goes (an aborted run), so that nothing is
/// left pending that no one waits for.
struct Forget<'a> {
    approvals: &'a Approvals,
    id: String,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.approvals.lock().remove(&self.id);
    }
}

impl Approvals {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Announces `request` and waits for its answer.
    pub async fn ask(&self, events: &dyn EventSink, request: Value) -> Result<Decision, Refused> {
        let id = uuid::Uuid::new_v4().to_string();
        let created = now_ms();
        let expires = created + APPROVAL_TIMEOUT.as_millis() as i64;
        let announced = json!({
            "id": id,
            "request": request,
            "createdAtMs": created,
            "expiresAtMs": expires,
        });
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = self.lock();
            if pending.len() >= MAX_PENDING {
                return Err(Refused::TooMany);
            }
            pending.insert(
                id.clone(),
                Pending {
                    tx,
                    request: announced.clone(),
                },
            );
        }
        let _forget = Forget {
            approvals: self,
            id: id.clone(),
        };
        events.publish("exec.approval.requested", announced, Audience::Everyone);
        let decision = match tokio::time::timeout(APPROVAL_TIMEOUT, rx).await {
            Ok(Ok(d)) => d,
            _ => {
                events.publish(
                    "exec.approval.resolved",
                    json!({"id": id, "decision": "deny", "reason": "timeout", "ts": now_ms()}),
                    Audience::Everyone,
                );
                return Err(Refused::TimedOut);
            }
        };
        events.publish(
            "exec.approval.resolved",
            json!({"id": id, "decision": decision.as_str(), "ts": now_ms()}),
            Audience::Everyone,
        );
        match decision {
            Decision::Deny => Err(Refused::Denied),
            d => Ok(d),
        }
    }

    /// Answers a waiting approval; `false` when there is none with this id.
    pub fn resolve(&self, id: &str, decision: Decision) -> bool {
        match self.lock().remove(id) {
            Some(p) => p.tx.send(decision).is_ok(),
            None => false,
        }
    }

    /// The approvals waiting, as announced.
    pub fn pending(&self) -> Vec<Value> {
        let mut list: Vec<Value> = self.lock().values().map(|p| p.request.clone()).collect();
        list.sort_by_key(|r| r["createdAtMs"].as_i64());
        list
    }
}
