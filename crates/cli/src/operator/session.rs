//! Opening the operator connection: the target resolved ([`super::target`]), the client and
//! scopes asked for ([`ConnSpec`]), the device policy of [`clawgate_client::session`] with
//! its events shown ([`super::pairing::Watcher`]) and its errors as failures, and the
//! connection facts every report shares.

use super::conn::ConnArgs;
use super::pairing;
use super::target::{self, Target};
use crate::output::{Failure, FailureKind};
use clawgate_client::failure;
use clawgate_client::session::{self, SessionError, SessionOptions};
use clawgate_client::{Client, ClientInfo, HelloOk, TlsOptions, client_info};
use clawgate_protocol::scopes;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;
use tokio::time::Instant;

/// An open connection plus what the commands print about it.
pub struct Session {
    pub client: Client,
    pub hello: HelloOk,
    pub target: Target,
    /// Time to hello, in milliseconds.
    pub connect_ms: u64,
    pub deadline: Instant,
    pub timeout_ms: u64,
    /// This machine's device id, when the connection was signed.
    pub device_id: Option<String>,
}

/// What kind of connection to open.
pub struct ConnSpec {
    pub client: ClientInfo,
    pub scopes: Vec<String>,
    /// Capabilities declared in `connect`.
    pub caps: Vec<String>,
    /// Probe connections accept protocol 3 too.
    pub probe: bool,
    /// Neither send nor keep a stored device token: the URL is a tunnel's passing local
    /// port, which another gateway may listen on next time (`gateway probe --ssh`).
    pub suppress_stored_device_auth: bool,
}

impl ConnSpec {
    pub fn cli(scopes: Vec<String>) -> Self {
        ConnSpec {
            client: client_info("cli", "cli"),
            scopes,
            caps: Vec::new(),
            probe: false,
            suppress_stored_device_auth: false,
        }
    }

    pub fn probe() -> Self {
        ConnSpec {
            client: client_info("cli", "probe"),
            scopes: vec![scopes::READ.to_owned()],
            caps: Vec::new(),
            probe: true,
            suppress_stored_device_auth: false,
        }
    }
}

/// Connects within the `--timeout` budget with the device policy of
/// [`clawgate_client::session`]: signing per `--device-auth`, stored device tokens, and
/// waiting for a pairing approval with `--wait` (or on a terminal without `--json`), the
/// approve command printed.
pub async fn open_session(
    conn: &ConnArgs,
    spec: ConnSpec,
) -> Result<Session, Box<(Failure, Target)>> {
    match target::resolve(conn) {
        Ok(target) => connect_session(conn, spec, target).await,
        Err(f) => Err(Box::new((f, placeholder_target(conn)))),
    }
}

/// What a failure is reported against when no target could be resolved.
pub fn placeholder_target(conn: &ConnArgs) -> Target {
    Target {
        url: conn.url.clone().unwrap_or_default(),
        token: None,
        password: None,
        tls_fingerprint: None,
        source: clawgate_config::TargetSource::Local,
        config_path: None,
        state_dir: PathBuf::new(),
        credential: target::CredentialOrigin::None,
        connect_to: None,
        tunnel: None,
        probe_tunnel: None,
    }
}

/// [`open_session`] to a target resolved already.
pub async fn connect_session(
    conn: &ConnArgs,
    spec: ConnSpec,
    target: Target,
) -> Result<Session, Box<(Failure, Target)>> {
    let opts = SessionOptions {
        url: target.url.clone(),
        connect_to: target.connect_to,
        token: target.token.clone(),
        password: target.password.clone(),
        tls: TlsOptions {
            fingerprint: target.tls_fingerprint.clone(),
        },
        client: spec.client,
        role: "operator".into(),
        scopes: spec.scopes,
        caps: spec.caps,
        min_protocol: spec.probe.then_some(clawgate_protocol::MIN_PROBE_PROTOCOL),
        timeout: Duration::from_millis(conn.timeout),
        device_auth: conn.device_auth,
        state_dir: target.state_dir.clone(),
        stored_tokens: !spec.suppress_stored_device_auth,
        pairing_wait: crate::term::should_wait(conn.wait, conn.no_wait, conn.json)
            .then(|| Duration::from_secs(conn.wait_timeout)),
    };
    let mut watcher = pairing::Watcher::new(&target, conn.json);
    let opened = session::open(&opts, &mut |event| watcher.on(event)).await;
    drop(watcher);
    match opened {
        Ok(s) => Ok(Session {
            client: s.client,
            hello: s.hello,
            connect_ms: s.connect_ms,
            target,
            deadline: s.deadline,
            timeout_ms: conn.timeout,
            device_id: s.device_id,
        }),
        Err(e) => {
            if let SessionError::DeviceTokenRefused {
                secret_refused_too: true,
                ..
            } = *e
            {
                eprintln!(
                    "warning: the gateway refused both the shared secret and this device's stored token (now dropped)"
                );
            }
            let f = failure::session_failure(*e, &target, conn.wait_timeout);
            Err(Box::new((f, target)))
        }
    }
}

impl Session {
    /// `{url, source, reachable, …}`: the connection facts every report shares.
    pub fn gateway_json(&self) -> Value {
        let h = &self.hello;
        json!({
            "url": self.target.url,
            "urlSource": self.target.source_label(),
            "reachable": true,
            "connectLatencyMs": self.connect_ms,
            "protocol": h.protocol(),
            "server": {"version": h.server_version(), "buildId": h.build_id(), "connId": h.conn_id()},
            "uptimeMs": h.uptime_ms(),
            "auth": {"method": h.auth_method(), "role": h.role(), "scopes": h.scopes()},
            "capability": capability(&h.scopes()),
        })
    }
}

/// What a connection may do, from hello-ok `auth.scopes`.
pub fn capability(granted: &[String]) -> &'static str {
    if scopes::satisfies(granted, scopes::ADMIN) {
        "admin_capable"
    } else if scopes::satisfies(granted, scopes::WRITE) {
        "write_capable"
    } else if scopes::satisfies(granted, scopes::READ) {
        "read_only"
    } else {
        "connected_no_operator_scope"
    }
}

/// The report for a connection that failed: `{url, reachable:false|true, ok:false, error}`.
pub fn failed_connection_json(f: &Failure, t: &Target) -> Value {
    // A gateway that answered with a rejection is reachable.
    let reachable = f.kind == FailureKind::Rejected;
    json!({"ok": false, "url": t.url, "urlSource": t.source_label(), "reachable": reachable,
        "error": f.json, "hint": f.fixes.first()})
}
