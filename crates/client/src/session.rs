//! Connecting as this machine's operator client, with the device policy of OpenClaw's CLI:
//!
//! - sign with this machine's device identity per [`DeviceAuthMode`] (by default unless the
//!   URL is loopback and a shared secret is sent);
//! - without a shared secret, send the device token this gateway issued before; a refused
//!   shared secret is retried once with that token; a stored token the gateway refuses is
//!   dropped;
//! - keep the device token a hello carries;
//! - a gateway that is still starting (`UNAVAILABLE` + `retryAfterMs`) is asked again while
//!   the budget lasts;
//! - a gateway that wants this device approved first is, when waiting, asked again every
//!   1.5 s until the request is approved, replaced, or the wait ends.
//!
//! What a person sees of it (warnings, the wait) is told through [`SessionEvent`]s.

use crate::device_auth::{identity_path, remember_device_token, tokens_path};
use crate::{
    Client, ClientError, ClientInfo, ConnectOptions, DeviceAuthMode, DeviceIdentity,
    DeviceTokenStore, HelloOk, PairingRequired, StoredDeviceToken, TlsOptions, WireError,
};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::time::Instant;

/// How often a waiting connection asks the gateway again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(1500);

/// What to connect to, as whom, and how patiently.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    pub url: String,
    /// Dial this instead of the URL's host (the local end of an SSH tunnel for `wss://`).
    pub connect_to: Option<SocketAddr>,
    pub token: Option<String>,
    pub password: Option<String>,
    pub tls: TlsOptions,
    pub client: ClientInfo,
    pub role: String,
    pub scopes: Vec<String>,
    /// Capabilities declared in `connect` (`caps`), e.g. [`crate::turn::TOOL_EVENTS_CAP`].
    pub caps: Vec<String>,
    /// The oldest protocol accepted; `None`: this build's.
    pub min_protocol: Option<u32>,
    /// The connect budget; it starts again after each wait for an approval.
    pub timeout: Duration,
    pub device_auth: DeviceAuthMode,
    /// Where this machine's device identity and device tokens are kept.
    pub state_dir: PathBuf,
    /// Send and keep stored device tokens: not for a URL another gateway may answer next
    /// time (a passing tunnel port).
    pub stored_tokens: bool,
    /// Wait this long for a pairing approval; `None`: fail at once.
    pub pairing_wait: Option<Duration>,
}

/// An open connection.
pub struct Session {
    pub client: Client,
    pub hello: HelloOk,
    /// Time to hello, in milliseconds (from the end of the last approval wait).
    pub connect_ms: u64,
    /// The end of the connect budget.
    pub deadline: Instant,
    /// This machine's device id, when the connection was signed.
    pub device_id: Option<String>,
}

/// Something a person may want to know while connecting.
#[derive(Debug)]
pub enum SessionEvent<'a> {
    /// The device-token store could not be read or written; the connection goes on.
    StoreWarning(String),
    /// The gateway refused the shared secret (`"token"` or `"password"`); the stored device
    /// token is tried instead.
    RetryingWithDeviceToken { refused: &'static str },
    /// The gateway wants this device approved; waiting for it.
    WaitStarted {
        pairing: &'a PairingRequired,
        device_id: &'a str,
        timeout: Duration,
    },
    /// Still waiting, for at most `left` more.
    Waiting { left: Duration },
    /// The wait is over: approved and connected, or not.
    WaitEnded { approved: bool },
}

/// Why a wait for an approval ended without one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairingEnd {
    /// No wait was asked for.
    NotWaiting,
    /// The request waited for is gone; the gateway opened another.
    Replaced { waited_for: Option<String> },
    /// The wait ran out.
    TimedOut,
}

#[derive(Debug)]
pub enum SessionError {
    /// This machine's device identity cannot be read or created.
    Identity {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The connect failed.
    Connect(ClientError),
    /// The gateway refused the stored device token, which was dropped from `store`.
    DeviceTokenRefused {
        error: ClientError,
        store: PathBuf,
        device_id: String,
        /// The shared secret had been refused first.
        secret_refused_too: bool,
    },
    /// The gateway wants this device approved first.
    PairingRequired {
        error: WireError,
        pairing: PairingRequired,
        device_id: String,
        end: PairingEnd,
    },
}

/// This machine's identity and token store.
struct Signer {
    identity: DeviceIdentity,
    store: DeviceTokenStore,
}

type Events<'e> = dyn FnMut(SessionEvent<'_>) + 'e;

impl Signer {
    /// Loads (or creates, once) the identity under `<state dir>/clawgate/`.
    fn load(state_dir: &Path) -> Result<Signer, Box<SessionError>> {
        let path = identity_path(state_dir);
        let identity = DeviceIdentity::load_or_generate(&path)
            .map_err(|error| Box::new(SessionError::Identity { path, error }))?;
        Ok(Signer {
            identity,
            store: DeviceTokenStore::new(tokens_path(state_dir)),
        })
    }

    fn id(&self) -> &str {
        self.identity.id()
    }

    /// The stored token for this gateway and role; a store that cannot be read is reported
    /// and treated as empty.
    fn stored(&self, url: &str, role: &str, on: &mut Events) -> Option<StoredDeviceToken> {
        self.store.get(url, self.id(), role).unwrap_or_else(|e| {
            on(SessionEvent::StoreWarning(format!(
                "ignoring stored device tokens: {e}"
            )));
            None
        })
    }

    /// Keeps the device token a hello carried.
    fn remember(&self, url: &str, role: &str, hello: &HelloOk, on: &mut Events) {
        if let Err(e) = remember_device_token(&self.store, url, self.id(), role, hello) {
            on(SessionEvent::StoreWarning(format!(
                "could not save the device token in {}: {e}",
                self.store.path().display()
            )));
        }
    }

    /// Drops the stored token for this gateway and role.
    fn forget(&self, url: &str, role: &str, on: &mut Events) {
        if let Err(e) = self.store.remove(url, self.id(), role) {
            on(SessionEvent::StoreWarning(format!(
                "could not update {}: {e}",
                self.store.path().display()
            )));
        }
    }
}

/// A wait for an approval under way.
struct Wait {
    request_id: Option<String>,
    until: Instant,
}

/// The least scopes a connection asks to call `method`: the one the gateway checks, or, for
/// a method only nodes may call, operator.admin (so the gateway's answer is about the role,
/// not a scope).
pub fn least_scopes(method: &str) -> Vec<String> {
    use clawgate_protocol::scopes::{self, MethodAccess};
    match scopes::method_access(method) {
        MethodAccess::Scope(s) => vec![s.to_owned()],
        MethodAccess::NodeOnly => vec![scopes::ADMIN.to_owned()],
    }
}

/// Connects as `opts` says, following the device policy of this module's documentation.
pub async fn open(
    opts: &SessionOptions,
    on: &mut Events<'_>,
) -> Result<Session, Box<SessionError>> {
    let has_secret = opts.token.is_some() || opts.password.is_some();
    let signer = if opts.device_auth.signs(&opts.url, has_secret) {
        Some(Signer::load(&opts.state_dir)?)
    } else {
        None
    };
    let (url, role) = (opts.url.as_str(), opts.role.as_str());
    let mut send_secret = has_secret;
    let mut device_token: Option<String> = match (&signer, has_secret) {
        (Some(s), false) if opts.stored_tokens => s.stored(url, role, on).map(|t| t.token),
        _ => None,
    };
    let mut tried_device_token_fallback = false;
    let mut wait: Option<Wait> = None;
    let mut started = Instant::now();
    let mut deadline = started + opts.timeout;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let mut connect = ConnectOptions::new(url, opts.client.clone());
        if send_secret {
            connect.token = opts.token.clone();
            connect.password = opts.password.clone();
        }
        connect.device_token = device_token.clone();
        connect.device = signer.as_ref().map(|s| &s.identity);
        connect.role = opts.role.clone();
        connect.scopes = opts.scopes.clone();
        connect.caps = opts.caps.clone();
        connect.timeout = remaining.max(Duration::from_millis(1));
        connect.tls = opts.tls.clone();
        connect.connect_to = opts.connect_to;
        if let Some(min) = opts.min_protocol {
            connect.min_protocol = min;
        }
        let error = match Client::connect(connect).await {
            Ok((client, hello)) => {
                if wait.is_some() {
                    on(SessionEvent::WaitEnded { approved: true });
                }
                if let Some(s) = &signer
                    && opts.stored_tokens
                {
                    s.remember(url, role, &hello, on);
                }
                return Ok(Session {
                    client,
                    hello,
                    connect_ms: started.elapsed().as_millis() as u64,
                    deadline,
                    device_id: signer.as_ref().map(|s| s.id().to_owned()),
                });
            }
            Err(e) => e,
        };
        let (wire, detail) = match &error {
            ClientError::Handshake {
                error, detail_code, ..
            } => (Some(error.clone()), detail_code.clone()),
            _ => (None, None),
        };
        let detail = detail.unwrap_or_default();
        if let Some(w) = &wire
            && w.code == "UNAVAILABLE"
            && wait.is_none()
        {
            let wait_ms = w.retry_after_ms.unwrap_or(500).max(50);
            if Instant::now() + Duration::from_millis(wait_ms) < deadline {
                tokio::time::sleep(Duration::from_millis(wait_ms)).await;
                continue;
            }
        }
        if let Some(s) = &signer {
            // A stored device token the gateway no longer knows: drop it.
            if detail == "AUTH_DEVICE_TOKEN_MISMATCH" && device_token.is_some() {
                s.forget(url, role, on);
                return Err(Box::new(SessionError::DeviceTokenRefused {
                    error,
                    store: s.store.path().to_path_buf(),
                    device_id: s.id().to_owned(),
                    secret_refused_too: has_secret && !send_secret,
                }));
            }
            // A refused shared secret: this device may still hold a token of its own.
            if matches!(
                detail.as_str(),
                "AUTH_TOKEN_MISMATCH" | "AUTH_PASSWORD_MISMATCH"
            ) && send_secret
                && opts.stored_tokens
                && !tried_device_token_fallback
                && let Some(stored) = s.stored(url, role, on)
            {
                tried_device_token_fallback = true;
                on(SessionEvent::RetryingWithDeviceToken {
                    refused: if opts.token.is_some() {
                        "token"
                    } else {
                        "password"
                    },
                });
                send_secret = false;
                device_token = Some(stored.token);
                continue;
            }
            if let Some(w) = &wire
                && let Some(p) = w.pairing_required()
            {
                let refused = |end| {
                    Box::new(SessionError::PairingRequired {
                        error: w.clone(),
                        pairing: p.clone(),
                        device_id: s.id().to_owned(),
                        end,
                    })
                };
                match (&wait, opts.pairing_wait) {
                    (None, None) => return Err(refused(PairingEnd::NotWaiting)),
                    (None, Some(timeout)) => {
                        on(SessionEvent::WaitStarted {
                            pairing: &p,
                            device_id: s.id(),
                            timeout,
                        });
                        wait = Some(Wait {
                            request_id: p.request_id.clone(),
                            until: Instant::now() + timeout,
                        });
                    }
                    (Some(current), _) if current.request_id != p.request_id => {
                        on(SessionEvent::WaitEnded { approved: false });
                        return Err(refused(PairingEnd::Replaced {
                            waited_for: current.request_id.clone(),
                        }));
                    }
                    (Some(current), _) if Instant::now() >= current.until => {
                        on(SessionEvent::WaitEnded { approved: false });
                        return Err(refused(PairingEnd::TimedOut));
                    }
                    (Some(_), _) => {}
                }
                if let Some(current) = &wait {
                    let left = current.until.saturating_duration_since(Instant::now());
                    on(SessionEvent::Waiting { left });
                    tokio::time::sleep(left.min(POLL_INTERVAL)).await;
                }
                // The connect budget starts again after the wait.
                started = Instant::now();
                deadline = started + opts.timeout;
                continue;
            }
        }
        if wait.is_some() {
            on(SessionEvent::WaitEnded { approved: false });
        }
        return Err(Box::new(SessionError::Connect(error)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_asks_the_scope_its_method_needs_and_admin_for_node_methods() {
        assert_eq!(least_scopes("health"), ["operator.read"]);
        assert_eq!(least_scopes("node.invoke"), ["operator.write"]);
        assert_eq!(least_scopes("node.invoke.result"), ["operator.admin"]);
    }
}
