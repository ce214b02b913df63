//! One probed target: the connection and the four read calls of `gateway probe`, or why it
//! failed; also what `security audit --deep` asks of the configured gateway.

use super::conn::ConnArgs;
use super::rpc::CallOutcome;
use super::session::{ConnSpec, connect_session, placeholder_target};
use super::target::{self, Target};
use crate::output::{Failure, FailureKind};
use clawgate_client::HelloOk;
use clawgate_client::probe_tunnel;
use clawgate_protocol::scopes;
use serde_json::{Value, json};

/// The read calls every probed target is asked, in the report's order.
pub const PROBE_METHODS: [&str; 4] = ["health", "status", "system-presence", "config.get"];

/// One probed target: the connection and the read calls, or why it failed.
pub struct Probed {
    pub target: Target,
    pub result: Result<Reached, Failure>,
}

pub struct Reached {
    pub hello: HelloOk,
    pub connect_ms: u64,
    pub outcomes: Vec<CallOutcome>,
    /// [`Session::gateway_json`].
    pub gateway: Value,
}

impl Probed {
    /// A gateway answered: connected, or refused the credentials.
    pub fn reachable(&self) -> bool {
        self.result
            .as_ref()
            .map_or_else(|f| f.kind == FailureKind::Rejected, |_| true)
    }

    /// The gateway's identity, from its `system-presence` answer ([`self_identity`]).
    pub fn identity(&self) -> Option<String> {
        let reached = self.result.as_ref().ok()?;
        let at = PROBE_METHODS.iter().position(|m| *m == "system-presence")?;
        match reached.outcomes.get(at)? {
            CallOutcome::Ok(presence, _) => self_identity(presence),
            _ => None,
        }
    }

    /// `(id, kind)` in OpenClaw's words.
    pub fn kind(&self) -> &'static str {
        if self.target.probe_tunnel.is_some() {
            return "sshTunnel";
        }
        match self.target.source {
            clawgate_config::TargetSource::Flag => "explicit",
            clawgate_config::TargetSource::Env(_) => "env",
            clawgate_config::TargetSource::RemoteConfig => "configRemote",
            clawgate_config::TargetSource::Local => "localLoopback",
        }
    }

    pub fn json(&self, primary: bool) -> Value {
        let mut v = json!({"id": self.kind(), "kind": self.kind(), "url": self.target.url,
            "urlSource": self.target.source_label(), "primary": primary,
            "tunnel": self.target.probe_tunnel.as_ref().map(probe_tunnel::tunnel_json)});
        match &self.result {
            Ok(r) => {
                v["connect"] = json!({"ok": true, "latencyMs": r.connect_ms});
                for key in ["capability", "server", "auth", "protocol"] {
                    v[key] = r.gateway[key].clone();
                }
            }
            Err(f) => v["connect"] = json!({"ok": false, "error": f.json}),
        }
        v
    }
}

/// Connects and asks the four read calls at once.
pub async fn probe_target(
    conn: &ConnArgs,
    spec: ConnSpec,
    target: Result<Target, Failure>,
) -> Probed {
    let session = match target {
        Ok(t) => connect_session(conn, spec, t).await,
        Err(f) => Err(Box::new((f, placeholder_target(conn)))),
    };
    let session = match session {
        Ok(s) => s,
        Err(b) => {
            let (f, target) = *b;
            return Probed {
                target,
                result: Err(f),
            };
        }
    };
    let (health, status, presence, config) = tokio::join!(
        session.call("health", None, false),
        session.call("status", None, false),
        session.call("system-presence", None, false),
        session.call("config.get", Some(json!({})), false),
    );
    let gateway = session.gateway_json();
    session.client.close().await;
    Probed {
        target: session.target,
        result: Ok(Reached {
            hello: session.hello,
            connect_ms: session.connect_ms,
            outcomes: vec![health, status, presence, config],
            gateway,
        }),
    }
}

/// The configured target alone (no SSH tunnel, no discovery, no second local target)
/// through [`probe_target`], for `security audit --deep`: its URL, and why the probe failed,
/// if it did: the connection's failure, or the first read call's error in OpenClaw's words
/// (the gateway's message, or `timeout`). It connects as `status --deep` does, a `cli`
/// client asking `operator.read`: gateways grant `probe` clients no scopes, so a probe
/// connection would report a healthy gateway's read calls as a failure.
pub async fn probe_configured(conn: &ConnArgs) -> (String, Option<String>) {
    let spec = ConnSpec::cli(vec![scopes::READ.to_owned()]);
    let probed = probe_target(conn, spec, target::resolve(conn)).await;
    let unanswered = |outcome: &CallOutcome| match outcome {
        CallOutcome::Ok(..) => None,
        CallOutcome::Failed(e, _) => Some(
            e.wire()
                .map_or_else(|| e.to_string(), |w| w.message.clone()),
        ),
        CallOutcome::TimedOut => Some("timeout".to_owned()),
    };
    let failure = match &probed.result {
        Err(f) => Some(f.message.clone()),
        Ok(r) => r.outcomes.iter().find_map(unanswered),
    };
    (probed.target.url, failure)
}

/// `host \0 ip \0 instance:<id>|device:<id>` of the gateway's own presence entry (OpenClaw's
/// `gatewaySelfIdentityKey`), or `None` without a host or ip and an id.
fn self_identity(presence: &Value) -> Option<String> {
    let entries = presence.as_array()?;
    let me = entries
        .iter()
        .find(|e| e["mode"] == "gateway" && e["reason"] == "self")
        .or_else(|| {
            entries.iter().find(|e| {
                e["text"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("Gateway:"))
            })
        })?;
    let field = |key: &str| {
        me[key]
            .as_str()
            .map(|v| v.trim().to_lowercase())
            .filter(|v| !v.is_empty())
    };
    let (host, ip) = (field("host"), field("ip"));
    let id = field("instanceId")
        .map(|id| format!("instance:{id}"))
        .or_else(|| field("deviceId").map(|id| format!("device:{id}")))?;
    (host.is_some() || ip.is_some()).then(|| {
        format!(
            "{}\0{}\0{id}",
            host.unwrap_or_default(),
            ip.unwrap_or_default()
        )
    })
}
