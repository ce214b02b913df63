//! One WebSocket connection: the challenge, the handshake, then requests and outbound frames.
//!
//! The task owns its socket. Outbound frames from the rest of the gateway arrive on the
//! connection's queue whose bytes the registry counts, so a client that stops reading is cut
//! off ("slow consumer") instead of growing memory.
//!
//! An idle connection should cost little: the handshake (the largest state of the task) runs
//! boxed and is freed once it is done, and the session is shared, not copied per request.

use crate::auth::{self, SharedAuth};
use crate::guarded_io::{GuardedIo, PreHelloGuard};
use crate::handshake::{self, Admission};
use crate::ingress::{self, IngressKind};
use crate::registry::{ConnHandle, Outbound, Session};
use crate::{Gateway, PeerInfo, hello, methods, pairing, ssh_verify};
use clawgate_protocol::connect::{self, AcceptedConnect, Challenge, Role};
use clawgate_protocol::errors::{self, HandshakeError, close};
use clawgate_protocol::frames::{self, FrameError, Request};
use clawgate_protocol::limits;
use clawgate_store::PairingRequestRecord;
use futures_util::stream::FuturesUnordered;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role as WsRole, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

type Ws<S> = WebSocketStream<GuardedIo<S>>;
type InFlight = std::pin::Pin<
    Box<dyn std::future::Future<Output = (String, Result<Value, methods::Refusal>)> + Send>,
>;

/// What a connect was granted: the session's role and scopes and how it authenticated.
struct Grant<'a> {
    role: Role,
    scopes: Vec<String>,
    device_id: Option<&'a str>,
    /// `hello-ok.auth.method`.
    auth_method: &'a str,
    /// A device token issued on this connect, and when (`hello-ok.auth.deviceToken`).
    device_token: Option<(String, i64)>,
}

/// Requests of one connection handled concurrently at most; beyond this the socket is not read
/// until one finishes.
const MAX_IN_FLIGHT: usize = 64;

/// Runs the gateway protocol over an already-upgraded socket until it closes.
pub async fn serve_websocket<S>(gw: Arc<Gateway>, io: S, peer: PeerInfo)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let guard = PreHelloGuard::new();
    let io = GuardedIo::new(io, guard.clone(), limits::MAX_PREAUTH_PAYLOAD);
    let config = WebSocketConfig::default()
        // Requests are small; a bigger frame grows the buffer for itself.
        .read_buffer_size(1024)
        .write_buffer_size(0)
        .max_message_size(Some(gw.options.max_payload))
        .max_frame_size(Some(gw.options.max_payload));
    let ws = WebSocketStream::from_raw_socket(io, WsRole::Server, Some(config)).await;
    let (key, handle) = gw.registry.register();
    let mut conn = Connection {
        gw: gw.clone(),
        peer,
        handle,
        guard,
        last_inbound: Instant::now(),
        unauthorized_calls: 0,
    };
    conn.run(ws).await;
    gw.registry.unregister(key);
}

struct Connection {
    gw: Arc<Gateway>,
    peer: PeerInfo,
    handle: Arc<ConnHandle>,
    guard: Arc<PreHelloGuard>,
    last_inbound: Instant,
    unauthorized_calls: u32,
}

/// How the handshake phase ended.
enum Handshake {
    Done {
        session: Arc<Session>,
        queued: VecDeque<Message>,
    },
    Closed,
}

impl Connection {
    async fn run<S: AsyncRead + AsyncWrite + Unpin + Send>(&mut self, mut ws: Ws<S>) {
        let nonce = uuid::Uuid::new_v4().to_string();
        let challenge = Challenge {
            nonce: nonce.clone(),
            ts: crate::now_ms(),
            capabilities: Vec::new(),
        };
        let challenge = frames::event("connect.challenge", &challenge, None);
        if self.write(&mut ws, &challenge).await.is_err() {
            return;
        }
        let Handshake::Done { session, queued } = Box::pin(self.handshake(&mut ws, &nonce)).await
        else {
            return;
        };
        self.serve(ws, session.clone(), queued).await;
        if session.role == Role::Node {
            self.gw.nodes.detach(&session, &self.handle);
        }
    }

    /// Waits for `connect`, answers it, and returns the session or closes the socket.
    async fn handshake<S: AsyncRead + AsyncWrite + Unpin + Send>(
        &mut self,
        ws: &mut Ws<S>,
        nonce: &str,
    ) -> Handshake {
        let deadline = Instant::now() + self.gw.options.handshake_timeout;
        loop {
            let msg = tokio::select! {
                biased;
                _ = self.handle.kill.cancelled() => return close_ws(ws, close::POLICY, "slow consumer").await,
                out = self.handle.next_outbound() => {
                    match self.write_outbound(ws, out).await {
                        Ok(()) => continue,
                        Err(()) => return Handshake::Closed,
                    }
                }
                _ = tokio::time::sleep_until(deadline) => return close_ws(ws, close::NORMAL, "").await,
                msg = ws.next() => msg,
            };
            let text = match self.inbound_text(msg) {
                Inbound::Text(t) => t,
                Inbound::Skip => continue,
                Inbound::Oversize => return close_ws(ws, close::TOO_BIG, "").await,
                Inbound::Gone => return Handshake::Closed,
            };
            let value: Value = match serde_json::from_str(&text) {
                Ok(v) => v,
                Err(_) => return close_ws(ws, close::NORMAL, "").await,
            };
            let req = match frames::request_from_value(value) {
                Ok(r) => r,
                Err(_) => return close_ws(ws, close::POLICY, "invalid request frame").await,
            };
            if req.method != "connect" {
                return self
                    .reject(ws, &req.id, errors::first_request_not_connect())
                    .await;
            }
            let result = {
                // Keep reading while the connect is checked (rate-limit delays can take seconds):
                // frames that arrive meanwhile are queued, up to a bound.
                let limit = self.gw.options.connect_timeout;
                let fut = tokio::time::timeout(
                    limit,
                    self.process_connect(req.params.unwrap_or(Value::Null), nonce),
                );
                tokio::pin!(fut);
                let mut queued = VecDeque::new();
                loop {
                    tokio::select! {
                        res = &mut fut => break res
                            .unwrap_or_else(|_| Err(errors::connect_timed_out(limit.as_millis())))
                            .map(|(s, hello)| (s, hello, queued)),
                        msg = ws.next() => match msg {
                            Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                                if queued.len() >= limits::MAX_PENDING_HANDSHAKE_FRAMES {
                                    return close_ws(ws, close::POLICY, "too many pending handshake frames").await;
                                }
                                queued.push_back(m);
                            }
                            Some(Ok(_)) => {}
                            Some(Err(_)) if self.guard.tripped() => return close_ws(ws, close::TOO_BIG, "").await,
                            _ => return Handshake::Closed,
                        },
                    }
                }
            };
            return match result {
                Ok((session, hello, queued)) => {
                    // A node's surface request is recorded before its hello, so whoever it
                    // tells it is connected finds the request already listed.
                    if session.role == Role::Node {
                        self.gw
                            .nodes
                            .attach(&self.gw, self.handle.clone(), session.clone())
                            .await;
                    }
                    let hello = frames::response_ok(&req.id, &hello);
                    if self.write(ws, &hello).await.is_err() {
                        if session.role == Role::Node {
                            self.gw.nodes.detach(&session, &self.handle);
                        }
                        return Handshake::Closed;
                    }
                    self.guard.finish();
                    let session = Arc::new(session);
                    self.gw
                        .registry
                        .attach_session(&self.handle, session.clone());
                    Handshake::Done { session, queued }
                }
                Err(e) => self.reject(ws, &req.id, e).await,
            };
        }
    }

    /// Schema, protocol, auth, device proof, pairing and scope decisions for one `connect`.
    async fn process_connect(
        &self,
        params: Value,
        nonce: &str,
    ) -> Result<(Session, Value), HandshakeError> {
        let AcceptedConnect {
            params: p,
            role,
            protocol,
        } = connect::accept(params)?;
        let gw = &self.gw;
        self.check_browser_origin(&p.client)?;
        let (shared, verified_login) = match self.identity_auth(p.auth.as_ref()).await? {
            Some((method, login)) => (SharedAuth::Ok { method }, Some(login)),
            None => (
                auth::check_shared_secret(&gw.options, p.auth.as_ref()),
                None,
            ),
        };
        let verified_login = verified_login.as_deref();
        let attempt = if handshake::offers_credential(shared, &p) {
            match gw.rate_limiter.begin(self.peer.client_ip).await {
                Ok(a) => Some(a),
                Err(retry_after_ms) => return Err(errors::auth_rate_limited(retry_after_ms)),
            }
        } else {
            None
        };
        let policy = handshake::PairingPolicy {
            auto_approve_local: gw.options.auto_approve_local,
            node_auto_approve_cidrs: &gw.options.node_auto_approve_cidrs,
        };
        let connect = handshake::Connect {
            params: &p,
            role,
            nonce,
        };
        let now = crate::now_ms();
        let admission = handshake::decide(&connect, &self.peer, shared, &gw.pairing, &policy, now);
        let (method, applicant, auto) = match admission {
            Admission::Refuse {
                error,
                wrong_credential,
            } => {
                if let (true, Some(a)) = (wrong_credential, attempt) {
                    gw.rate_limiter.fail(a).await;
                }
                return Err(error);
            }
            Admission::Admit { method, scopes } => {
                if let Some(a) = attempt {
                    gw.rate_limiter.succeed(a);
                }
                let scopes = self.connection_scopes(role, scopes, verified_login);
                return Ok(self.session(
                    &p,
                    protocol,
                    Grant {
                        role,
                        scopes,
                        device_id: None,
                        auth_method: method,
                        device_token: None,
                    },
                ));
            }
            Admission::Pair {
                method,
                applicant,
                auto,
            } => (method, applicant, auto),
        };
        if let Some(a) = attempt {
            gw.rate_limiter.succeed(a);
        }
        let decision = gw
            .pairing
            .decide(&applicant, auto, now)
            .await
            .map_err(|e| {
                tracing::error!("pairing store: {e}");
                errors::internal_error(
                    "the gateway could not read or write its pairing state; see its log",
                )
            })?;
        let requested_scopes = applicant.scopes;
        match decision {
            pairing::Decision::Approved {
                token,
                issued_at_ms,
                events,
            } => {
                for (event, payload) in events {
                    gw.registry.broadcast(event, &payload);
                }
                let scopes = if role == Role::Operator {
                    requested_scopes.to_vec()
                } else {
                    Vec::new()
                };
                let scopes = self.connection_scopes(role, scopes, verified_login);
                Ok(self.session(
                    &p,
                    protocol,
                    Grant {
                        role,
                        scopes,
                        device_id: Some(applicant.device_id),
                        auth_method: method,
                        device_token: Some((token, issued_at_ms)),
                    },
                ))
            }
            pairing::Decision::Pending {
                request,
                created,
                approved_roles,
                approved_scopes,
            } => {
                if created {
                    gw.registry
                        .broadcast("device.pair.requested", &pairing::pending_json(&request));
                }
                self.start_ssh_verify(&request, role, requested_scopes, &p.client);
                let reason = errors::PairingReason::parse(&request.reason)
                    .unwrap_or(errors::PairingReason::NotPaired);
                Err(errors::pairing_required(
                    reason,
                    &request.request_id,
                    applicant.device_id,
                    role.as_str(),
                    requested_scopes,
                    Some((&approved_roles, &approved_scopes)),
                ))
            }
        }
    }

    /// `gateway.nodes.pairing.sshVerify`: a first pairing request on the floor, from an
    /// address that may be probed, gets its host probed in the background.
    fn start_ssh_verify(
        &self,
        request: &PairingRequestRecord,
        role: Role,
        scopes: &[String],
        client: &connect::ClientInfo,
    ) {
        let Some(policy) = &self.gw.options.node_ssh_verify else {
            return;
        };
        if request.is_repair || !handshake::unattended_node_floor(&self.peer, role, scopes, client)
        {
            return;
        }
        let Some(host) = policy.probe_host(self.peer.client_ip) else {
            return;
        };
        let candidate = ssh_verify::Candidate {
            request_id: request.request_id.clone(),
            key: ssh_verify::ProbeKey {
                host,
                device_id: request.device_id.clone(),
                public_key: request.public_key.clone(),
            },
            client_ip: self.peer.client_ip,
            client_id: client.id.clone(),
            conn_id: self.handle.conn_id.clone(),
        };
        ssh_verify::start(&self.gw, policy, candidate);
    }

    /// A connection's final scopes: what its device (or shared secret) allows, plus the
    /// `gateway.auth.identityScopes` grant of a verified operator login, then narrowed by the
    /// `x-openclaw-scopes` header. A grant that raises a connection above its device is logged.
    fn connection_scopes(
        &self,
        role: Role,
        mut scopes: Vec<String>,
        verified_login: Option<&str>,
    ) -> Vec<String> {
        let cap = self.peer.header(auth::SCOPE_CAP_HEADER);
        // Most connections carry no verified login: nothing to grant, nothing to audit.
        let (Role::Operator, Some(login)) = (role, verified_login) else {
            return auth::cap_scopes(scopes, cap);
        };
        let base = scopes.clone();
        for s in auth::identity_grant(&self.gw.options.identity_scopes, login) {
            if !scopes.contains(s) {
                scopes.push(s.clone());
            }
        }
        let scopes = auth::cap_scopes(scopes, cap);
        let added: Vec<&str> = scopes
            .iter()
            .filter(|s| !clawgate_protocol::scopes::satisfies(&base, s))
            .map(String::as_str)
            .collect();
        if !added.is_empty() {
            tracing::warn!(
                "security audit: identity scope grant elevated connection identity={login:?} addedScopes={} conn={}",
                added.join(","),
                self.handle.conn_id
            );
        }
        scopes
    }

    /// Identity from headers: trusted-proxy mode (the proxy's user header) and Tailscale
    /// Serve (identity headers confirmed by whois). `Some((method, login))` when it
    /// authenticated the connection, `None` to go on with the shared secret / device token.
    async fn identity_auth(
        &self,
        auth: Option<&connect::ConnectAuth>,
    ) -> Result<Option<(&'static str, String)>, HandshakeError> {
        let gw = &self.gw;
        let explicit = auth.is_some_and(|a| a.token.is_some() || a.password.is_some());
        if gw.options.auth_mode == crate::AuthMode::TrustedProxy {
            return match auth::check_trusted_proxy(&gw.options, &self.peer) {
                Ok(user) => {
                    tracing::info!(
                        "gateway: trusted-proxy user {user:?} via {} (client {})",
                        self.peer.addr.ip(),
                        self.peer.client_ip
                    );
                    Ok(Some(("trusted-proxy", user)))
                }
                // Same-host callers may still use gateway.auth.password.
                Err(_)
                    if self.peer.ingress == IngressKind::DirectLocal
                        && explicit
                        && gw.options.password.is_some() =>
                {
                    Ok(None)
                }
                Err((reason, fix)) => Err(errors::trusted_proxy_refused(reason, &fix)),
            };
        }
        let on_tailscale = matches!(
            self.peer.ingress,
            IngressKind::TailscaleServe | IngressKind::TailscaleFunnel
        );
        let Some(whois) = gw.whois.as_ref().filter(|_| on_tailscale && !explicit) else {
            return Ok(None);
        };
        // Attempts from one client address are answered one after another; a forged login
        // counts as a wrong credential.
        let attempt = match gw.rate_limiter.begin(self.peer.client_ip).await {
            Ok(a) => a,
            Err(retry_after_ms) => return Err(errors::auth_rate_limited(retry_after_ms)),
        };
        let failure = match self.peer.header("tailscale-user-login") {
            None | Some("") => errors::AuthFailure::TailscaleIdentityMissing,
            Some(login) => match whois.lookup(self.peer.client_ip).await {
                Ok(id) if id.login.eq_ignore_ascii_case(login) => {
                    tracing::info!(
                        "gateway: tailscale identity {} ({}) for {} confirmed by whois via {}",
                        id.login,
                        id.display_name
                            .as_deref()
                            .or(self.peer.header("tailscale-user-name"))
                            .unwrap_or(&id.login),
                        self.peer.client_ip,
                        id.source
                    );
                    gw.rate_limiter.succeed(attempt);
                    return Ok(Some(("tailscale", id.login)));
                }
                Ok(id) => {
                    tracing::warn!(
                        "gateway: tailscale identity header {login:?} from {} but whois says {:?}",
                        self.peer.client_ip,
                        id.login
                    );
                    errors::AuthFailure::TailscaleIdentityMismatch
                }
                Err(e) => {
                    tracing::warn!(
                        "gateway: tailscale whois of {} failed: {e}",
                        self.peer.client_ip
                    );
                    errors::AuthFailure::TailscaleWhoisFailed
                }
            },
        };
        if failure == errors::AuthFailure::TailscaleIdentityMismatch {
            gw.rate_limiter.fail(attempt).await;
        } else {
            drop(attempt);
        }
        let has_device_token = auth.is_some_and(|a| a.device_token.is_some());
        if has_device_token {
            return Ok(None);
        }
        Err(errors::auth_failed(failure, false, false))
    }

    /// The session and its hello-ok.
    fn session(
        &self,
        p: &connect::ConnectParams,
        protocol: u32,
        grant: Grant<'_>,
    ) -> (Session, Value) {
        let Grant {
            role,
            scopes,
            device_id,
            auth_method,
            device_token,
        } = grant;
        let session = Session {
            role,
            scopes,
            client: p.client.clone(),
            ip: self.peer.client_ip.to_string(),
            device_id: device_id.map(str::to_owned),
            connected_at_ms: crate::now_ms(),
            caps: p.caps.clone(),
            commands: if role == Role::Node {
                p.commands.clone().unwrap_or_default()
            } else {
                Vec::new()
            },
            path_env: p.path_env.clone().filter(|_| role == Role::Node),
            legacy_node: role == Role::Node && protocol < clawgate_protocol::PROTOCOL_VERSION,
        };
        let mut hello = hello::hello_ok(&self.gw, &self.handle.conn_id, &session, auth_method);
        if let Some((token, issued_at_ms)) = device_token {
            hello["auth"]["deviceToken"] = json!(token);
            hello["auth"]["issuedAtMs"] = json!(issued_at_ms);
        }
        (session, hello)
    }

    /// The browser origin policy: applies to every connection that sends an `Origin`, and to
    /// the Control UI and webchat clients even without one.
    fn check_browser_origin(&self, client: &connect::ClientInfo) -> Result<(), HandshakeError> {
        let origin = self.peer.origin.as_deref().filter(|o| !o.trim().is_empty());
        if origin.is_none() && !handshake::is_browser_client(client) {
            return Ok(());
        }
        let local_client = self.peer.ingress == IngressKind::DirectLocal
            && ingress::is_local_host_header(self.peer.host.as_deref());
        match ingress::check_browser_origin(
            origin,
            self.peer.host.as_deref(),
            local_client,
            &self.gw.options.ingress,
        ) {
            Ok("host-header-fallback") => {
                tracing::warn!(
                    "security warning: websocket origin accepted via Host-header fallback host={} origin={}",
                    self.peer.host.as_deref().unwrap_or("n/a"),
                    origin.unwrap_or("n/a")
                );
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(reason) => Err(errors::origin_not_allowed(reason)),
        }
    }

    /// After hello: requests in, responses and events out.
    async fn serve<S: AsyncRead + AsyncWrite + Unpin + Send>(
        &mut self,
        mut ws: Ws<S>,
        session: Arc<Session>,
        mut queued: VecDeque<Message>,
    ) {
        let gw = self.gw.clone();
        let mut in_flight: FuturesUnordered<InFlight> = FuturesUnordered::new();
        let ping_interval = gw.options.ping_interval;
        loop {
            let msg = if let Some(m) = queued.pop_front() {
                Some(Ok(m))
            } else {
                tokio::select! {
                    biased;
                    _ = self.handle.kill.cancelled() => {
                        close_ws(&mut ws, close::POLICY, "slow consumer").await;
                        return;
                    }
                    out = self.handle.next_outbound() => {
                        if matches!(out, Outbound::Ping) && self.last_inbound.elapsed() > ping_interval * 2 + Duration::from_secs(5) {
                            // Two pings without any sign of life: the peer is gone.
                            return;
                        }
                        if self.write_outbound(&mut ws, out).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    Some((id, result)) = in_flight.next(), if !in_flight.is_empty() => {
                        if self.answer(&mut ws, &id, result).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    msg = ws.next(), if in_flight.len() < MAX_IN_FLIGHT => msg,
                }
            };
            let text = match self.inbound_text(msg) {
                Inbound::Text(t) => t,
                Inbound::Skip => continue,
                Inbound::Oversize => {
                    close_ws(&mut ws, close::TOO_BIG, "").await;
                    return;
                }
                Inbound::Gone => return,
            };
            let req = match frames::parse_request(&text) {
                Ok(r) => r,
                Err(FrameError::NotJson) => continue,
                Err(FrameError::Invalid { id, reason }) => {
                    let err = errors::invalid_request_frame(&reason);
                    let id = id.unwrap_or_else(|| "invalid".into());
                    let answer = frames::response_err(&id, &err);
                    if self.write(&mut ws, &answer).await.is_err() {
                        return;
                    }
                    continue;
                }
            };
            let Request { id, method, params } = req;
            if method == "connect" {
                let answer = frames::response_err(&id, &errors::already_connected());
                if self.write(&mut ws, &answer).await.is_err() {
                    return;
                }
                continue;
            }
            let gw = gw.clone();
            let session = session.clone();
            let conn = self.handle.clone();
            in_flight.push(Box::pin(async move {
                let result = methods::dispatch(&gw, &session, &conn, &id, &method, params).await;
                (id, result)
            }));
        }
    }

    async fn answer<S: AsyncRead + AsyncWrite + Unpin + Send>(
        &mut self,
        ws: &mut Ws<S>,
        id: &str,
        result: Result<Value, methods::Refusal>,
    ) -> Result<(), ()> {
        let text = match &result {
            Ok(payload) => frames::response_ok(id, payload),
            Err(methods::Refusal::Role(e) | methods::Refusal::Other(e)) => {
                frames::response_err(id, e)
            }
            // The handler queued its own response frames.
            Err(methods::Refusal::Answered) => return Ok(()),
        };
        self.write(ws, &text).await?;
        if let Err(methods::Refusal::Role(_)) = result {
            self.unauthorized_calls += 1;
            if self.unauthorized_calls > limits::MAX_UNAUTHORIZED_ROLE_CALLS {
                close_ws(ws, close::POLICY, "repeated unauthorized calls").await;
                return Err(());
            }
        } else {
            self.unauthorized_calls = 0;
        }
        Ok(())
    }

    fn inbound_text(
        &mut self,
        msg: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) -> Inbound {
        match msg {
            Some(Ok(m)) => {
                self.last_inbound = Instant::now();
                match m {
                    Message::Text(t) => Inbound::Text(t),
                    Message::Binary(b) => {
                        Inbound::Text(String::from_utf8_lossy(&b).into_owned().into())
                    }
                    Message::Close(_) => Inbound::Gone,
                    _ => Inbound::Skip,
                }
            }
            Some(Err(_)) if self.guard.tripped() => Inbound::Oversize,
            Some(Err(tokio_tungstenite::tungstenite::Error::Capacity(_))) => Inbound::Oversize,
            _ => Inbound::Gone,
        }
    }

    async fn write_outbound<S: AsyncRead + AsyncWrite + Unpin + Send>(
        &self,
        ws: &mut Ws<S>,
        out: Outbound,
    ) -> Result<(), ()> {
        match out {
            Outbound::Text(t) => {
                let res = self.write(ws, &t).await;
                self.handle.sent(t.len());
                res
            }
            Outbound::Event(e) => {
                let res = unless_killed(&self.handle, write_parts(ws, &e.parts())).await;
                self.handle.sent(e.len());
                res
            }
            Outbound::Ping => {
                let ping = ws.send(Message::Ping(Default::default()));
                unless_killed(&self.handle, async { ping.await.map_err(|_| ()) }).await
            }
            Outbound::Close(code, reason) => {
                close_ws(ws, code, &reason).await;
                Err(())
            }
        }
    }

    /// Writes one text frame, unless the connection is killed first ([`unless_killed`]).
    async fn write<S: AsyncRead + AsyncWrite + Unpin + Send>(
        &self,
        ws: &mut Ws<S>,
        text: &str,
    ) -> Result<(), ()> {
        unless_killed(&self.handle, write_text(ws, text)).await
    }

    async fn reject<S: AsyncRead + AsyncWrite + Unpin + Send>(
        &mut self,
        ws: &mut Ws<S>,
        id: &str,
        e: HandshakeError,
    ) -> Handshake {
        let _ = self.write(ws, &frames::response_err(id, &e.error)).await;
        close_ws(ws, e.close_code, &e.close_reason).await
    }
}

/// How long a write may stay pending once a close has been queued behind it (device removed,
/// shutdown): long enough for a reading peer to take the frames before its close.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Runs one socket write unless the connection is killed first, or a close queued behind it
/// finds it still pending after [`CLOSE_GRACE`]. A peer that stopped reading leaves a write
/// pending until the socket adapter gives it up (`write_timeout`); a slow-consumer cut, a
/// removed device or a shutdown must not wait that long, or the socket, its registry entry
/// and its queued bytes stay pinned.
async fn unless_killed<T>(
    handle: &ConnHandle,
    write: impl std::future::Future<Output = Result<T, ()>>,
) -> Result<T, ()> {
    let close_grace = async {
        handle.close_queued().await;
        tokio::time::sleep(CLOSE_GRACE).await;
    };
    tokio::select! {
        biased;
        _ = handle.kill.cancelled() => Err(()),
        res = write => res,
        _ = close_grace => Err(()),
    }
}

/// Writes one text frame straight to the socket. tungstenite's write buffer keeps the capacity
/// of the largest frame it ever wrote (hello-ok is kilobytes) for the life of the connection;
/// writing data frames here leaves it only the small control frames (pong, close).
async fn write_text<S: AsyncRead + AsyncWrite + Unpin + Send>(
    ws: &mut Ws<S>,
    text: &str,
) -> Result<(), ()> {
    write_parts(ws, &[text.as_bytes()]).await
}

/// Writes one text frame whose payload is `parts` in order (a shared broadcast and its tail),
/// without joining them first.
async fn write_parts<S: AsyncRead + AsyncWrite + Unpin + Send>(
    ws: &mut Ws<S>,
    parts: &[&[u8]],
) -> Result<(), ()> {
    use tokio::io::AsyncWriteExt as _;
    // Control frames tungstenite has queued (a pong) go out first, whole.
    ws.flush().await.map_err(|_| ())?;
    let header = text_frame_header(parts.iter().map(|p| p.len()).sum());
    let io = ws.get_mut();
    write_all_vectored(io, &header.bytes[..header.len], parts)
        .await
        .map_err(|_| ())?;
    io.flush().await.map_err(|_| ())
}

/// An unmasked, final text frame header (RFC 6455 §5.2), as a server sends it.
struct FrameHeader {
    bytes: [u8; 10],
    len: usize,
}

fn text_frame_header(payload_len: usize) -> FrameHeader {
    const FIN_TEXT: u8 = 0x81;
    let mut bytes = [0u8; 10];
    bytes[0] = FIN_TEXT;
    let len = match payload_len {
        // Both casts are exact: the arms bound the value.
        n if n < 126 => {
            bytes[1] = n as u8;
            2
        }
        n if n <= usize::from(u16::MAX) => {
            bytes[1] = 126;
            bytes[2..4].copy_from_slice(&(n as u16).to_be_bytes());
            4
        }
        n => {
            bytes[1] = 127;
            bytes[2..10].copy_from_slice(&(n as u64).to_be_bytes());
            10
        }
    };
    FrameHeader { bytes, len }
}

/// Header and payload parts in as few writes as the socket takes (usually one).
async fn write_all_vectored<W: AsyncWrite + Unpin>(
    w: &mut W,
    head: &[u8],
    body: &[&[u8]],
) -> std::io::Result<()> {
    use std::io::IoSlice;
    use tokio::io::AsyncWriteExt as _;
    let mut slices: Vec<IoSlice<'_>> = std::iter::once(head)
        .chain(body.iter().copied())
        .filter(|part| !part.is_empty())
        .map(IoSlice::new)
        .collect();
    let mut pending = &mut slices[..];
    while !pending.is_empty() {
        let n = w.write_vectored(pending).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut pending, n);
    }
    Ok(())
}

/// Sends a close frame and waits briefly for the peer's close so it sees a clean close.
async fn close_ws<S: AsyncRead + AsyncWrite + Unpin + Send>(
    ws: &mut Ws<S>,
    code: u16,
    reason: &str,
) -> Handshake {
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: Utf8Bytes::from(limits::close_reason(reason)),
    };
    let sent = tokio::time::timeout(Duration::from_secs(1), ws.close(Some(frame))).await;
    if matches!(sent, Ok(Ok(()))) {
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while let Some(Ok(_)) = ws.next().await {}
        })
        .await;
    }
    Handshake::Closed
}

/// Answers a wrong secret only after the limiter's delay.
enum Inbound {
    Text(Utf8Bytes),
    Skip,
    Oversize,
    Gone,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_frame_headers_use_the_shortest_length_encoding() {
        let h = |n: usize| {
            let h = text_frame_header(n);
            h.bytes[..h.len].to_vec()
        };
        assert_eq!(h(0), [0x81, 0]);
        assert_eq!(h(125), [0x81, 125]);
        assert_eq!(h(126), [0x81, 126, 0, 126]);
        assert_eq!(h(65_535), [0x81, 126, 0xff, 0xff]);
        assert_eq!(h(65_536), [0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
    }

    /// Frames written beside tungstenite arrive whole and in order at a WebSocket client,
    /// interleaved with the control frames tungstenite itself writes (pongs).
    #[tokio::test]
    async fn directly_written_text_frames_reach_a_websocket_client() {
        let (server_io, client_io) = tokio::io::duplex(1 << 20);
        let io = GuardedIo::new(server_io, PreHelloGuard::new(), usize::MAX);
        let mut server = WebSocketStream::from_raw_socket(io, WsRole::Server, None).await;
        let mut client = WebSocketStream::from_raw_socket(client_io, WsRole::Client, None).await;
        client.send(Message::Ping("p".into())).await.unwrap();
        // The server reads the ping, so tungstenite queues its pong.
        let server_task = tokio::spawn(async move {
            let _ = server.next().await;
            for n in [3, 126, 70_000] {
                write_text(&mut server, &"x".repeat(n)).await.unwrap();
            }
            server
        });
        let mut got = Vec::new();
        while got.len() < 4 {
            match client.next().await.unwrap().unwrap() {
                Message::Text(t) => got.push(format!("text {}", t.len())),
                Message::Pong(p) => got.push(format!("pong {}", p.len())),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(got, ["pong 1", "text 3", "text 126", "text 70000"]);
        drop(server_task.await.unwrap());
    }
}
