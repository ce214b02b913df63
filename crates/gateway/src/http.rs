//! The HTTP side of the port: the WebSocket upgrade on any path, then a small route table:
//! the probes (`/healthz`, `/readyz`, `/startupz`), the browser UI under its base path
//! ([`crate::ui_site`]), and a JSON 404 for the rest.

use crate::guarded_io::SocketIo;
use crate::ingress::{self, Ingress, IngressKind};
use crate::{Gateway, PeerInfo, SERVER_VERSION, auth};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_util::sync::CancellationToken;

/// The connection cap: one slot per open socket, from accept until the socket closes (after
/// its WebSocket session, when it upgraded).
pub(crate) struct ConnectionSlots {
    free: Arc<Semaphore>,
    limit: usize,
    /// When the last "at its connection limit" warning was logged, and refusals since.
    warned: Mutex<Option<Instant>>,
    refused: AtomicU64,
}

impl ConnectionSlots {
    pub(crate) fn new(limit: usize) -> Self {
        ConnectionSlots {
            free: Arc::new(Semaphore::new(limit.min(Semaphore::MAX_PERMITS))),
            limit,
            warned: Mutex::new(None),
            refused: AtomicU64::new(0),
        }
    }

    /// Refuses a connection beyond the cap and closes it: on a plaintext listener with an HTTP
    /// 503 saying so, written without waiting (a fresh socket's send buffer is empty); on a TLS
    /// listener without a word (a handshake costs more than the refusal is worth). Logged at
    /// most once a minute.
    fn refuse(&self, stream: TcpStream, plaintext: bool) {
        if plaintext {
            let body = json!({"error": {
                "message": format!("the gateway is at its connection limit ({} connections); retry later", self.limit),
                "type": "connection_limit",
            }})
            .to_string();
            let response = format!(
                "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.try_write(response.as_bytes());
            // A request that has already arrived is read away: closing over unread bytes
            // would reset the connection and could discard the answer at the client.
            let mut sink = [0u8; 2048];
            for _ in 0..4 {
                if !matches!(stream.try_read(&mut sink), Ok(n) if n > 0) {
                    break;
                }
            }
        }
        let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let mut warned = self.warned.lock().expect("slots lock");
        if warned.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
            *warned = Some(Instant::now());
            self.refused.store(0, Ordering::Relaxed);
            tracing::warn!(
                "gateway: at its connection limit ({} connections); refused {refused} since the last warning. Raise the open-file limit (ulimit -n) or find who holds the connections",
                self.limit
            );
        }
    }
}

pub(crate) async fn accept_loop(
    listener: TcpListener,
    kind: ingress::ListenerKind,
    gw: Arc<Gateway>,
    shutdown: CancellationToken,
) {
    let tls = gw.options.tls.as_ref().map(|t| t.acceptor());
    loop {
        let (stream, addr) = tokio::select! {
            _ = shutdown.cancelled() => return,
            res = listener.accept() => match res {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and similar: back off briefly instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = gw.connection_slots.free.clone().try_acquire_owned() else {
            gw.connection_slots.refuse(stream, tls.is_none());
            continue;
        };
        let _ = stream.set_nodelay(true);
        let stream = SocketIo::new(stream, slot, gw.options.write_timeout);
        let gw = gw.clone();
        match &tls {
            None => {
                tokio::spawn(serve_connection(stream, gw, addr, kind));
            }
            Some(acceptor) => {
                // The handshake runs in the connection's own task with a deadline, so a slow
                // or silent client never holds up the accept loop.
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let budget = gw.options.handshake_timeout;
                    match tokio::time::timeout(budget, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => serve_connection(tls_stream, gw, addr, kind).await,
                        Ok(Err(e)) => tracing::debug!("tls handshake with {addr} failed: {e}"),
                        Err(_) => tracing::debug!(
                            "tls handshake with {addr} timed out after {} ms",
                            budget.as_millis()
                        ),
                    }
                });
            }
        }
    }
}

async fn serve_connection<S>(
    stream: S,
    gw: Arc<Gateway>,
    addr: SocketAddr,
    kind: ingress::ListenerKind,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let header_timeout = gw.options.request_header_timeout;
    let service = hyper::service::service_fn(move |req| handle(req, gw.clone(), addr, kind));
    // hyper starts the header clock when it starts reading a request, which for the first one
    // is as soon as the connection is served: it closes a silent connection and one trickling
    // its head alike.
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    let _ = conn.await;
}

type Body = Full<Bytes>;

fn json_response(status: StatusCode, body: serde_json::Value) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

/// Live probes answer whatever the attribution (load balancers send forwarding headers).
fn is_live_probe(path: &str) -> bool {
    matches!(path, "/healthz" | "/health")
}

/// 403 `proxy_attribution_required`, closing the connection (the real gateway's answer).
fn proxy_attribution_required() -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(ingress::proxy_attribution_body())));
    *r.status_mut() = StatusCode::FORBIDDEN;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

async fn handle(
    req: Request<Incoming>,
    gw: Arc<Gateway>,
    addr: SocketAddr,
    kind: ingress::ListenerKind,
) -> Result<Response<Body>, std::convert::Infallible> {
    // Telegram's posts authenticate with their secret header, whatever proxy brought them.
    if req.method() == hyper::Method::POST
        && let Some(channel) = gw
            .telegram
            .iter()
            .find(|c| c.webhook_path() == Some(req.uri().path()))
    {
        return Ok(telegram_webhook(req, channel.clone()).await);
    }
    let attribution = ingress::classify_on(kind, addr.ip(), req.headers(), &gw.options.ingress);
    if attribution.kind == IngressKind::UnattributableProxy && !is_live_probe(req.uri().path()) {
        ingress::warn_unattributable_once(attribution.remote_ip);
        return Ok(proxy_attribution_required());
    }
    if is_websocket_upgrade(req.headers()) {
        return Ok(upgrade(req, gw, addr, attribution));
    }
    let path = req.uri().path();
    let resp = match path {
        "/healthz" => json_response(StatusCode::OK, json!({"ok": true, "status": "live"})),
        "/readyz" => json_response(StatusCode::OK, json!({"ready": true, "status": "ready"})),
        "/startupz" => json_response(
            StatusCode::OK,
            json!({"ok": true, "status": "started", "version": SERVER_VERSION, "uptimeMs": gw.uptime_ms()}),
        ),
        _ => gw
            .ui
            .respond(req.method(), path, req.headers())
            .unwrap_or_else(|| {
                json_response(
                    StatusCode::NOT_FOUND,
                    json!({"error": {"message": "Not Found", "type": "not_found"}}),
                )
            }),
    };
    Ok(resp)
}

/// The largest webhook post taken (Telegram's updates are a few KB).
const MAX_WEBHOOK_BODY: usize = 1 << 20;

/// A Telegram webhook post: 200 once the update is on disk; 401 for a wrong secret, 400 for
/// something that is not an update, 503 (Telegram posts it again) when it cannot be taken.
async fn telegram_webhook(
    req: Request<Incoming>,
    channel: clawgate_telegram::TelegramChannel,
) -> Response<Body> {
    use clawgate_telegram::WebhookRefusal;
    use http_body_util::BodyExt as _;
    let secret = req
        .headers()
        .get("x-telegram-bot-api-secret-token")
        .map(|v| v.as_bytes().to_vec());
    let body = match http_body_util::Limited::new(req.into_body(), MAX_WEBHOOK_BODY)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                json!({"error": {"message": format!("cannot read the update: {e}"), "type": "bad_request"}}),
            );
        }
    };
    match channel.accept_webhook(secret.as_deref(), &body).await {
        Ok(()) => json_response(StatusCode::OK, json!({})),
        Err(e) => {
            let (status, kind) = match &e {
                WebhookRefusal::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
                WebhookRefusal::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
                WebhookRefusal::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            };
            if status == StatusCode::UNAUTHORIZED {
                tracing::warn!(
                    account = channel.account(),
                    "a Telegram webhook post with a wrong secret was refused"
                );
            }
            json_response(
                status,
                json!({"error": {"message": e.to_string(), "type": kind}}),
            )
        }
    }
}

fn is_websocket_upgrade(h: &HeaderMap) -> bool {
    let has_token = |name: header::HeaderName, token: &str| {
        h.get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    has_token(header::CONNECTION, "upgrade") && has_token(header::UPGRADE, "websocket")
}

fn upgrade(
    mut req: Request<Incoming>,
    gw: Arc<Gateway>,
    addr: SocketAddr,
    attribution: Ingress,
) -> Response<Body> {
    let headers = req.headers();
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"error": {"message": "missing Sec-WebSocket-Key", "type": "bad_request"}}),
        );
    };
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(|v| v.as_bytes())
        != Some(b"13")
    {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"error": {"message": "unsupported WebSocket version (need 13)", "type": "bad_request"}}),
        );
    }
    let accept = derive_accept_key(key.as_bytes());
    let text = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let host = text(header::HOST);
    let direct_local = attribution.kind == IngressKind::DirectLocal;
    let local_host = ingress::is_local_host_header(host.as_deref());
    if direct_local && !local_host {
        tracing::warn!(
            "Loopback connection with non-local Host header. Treating it as remote. If you're behind a reverse proxy, set gateway.trustedProxies and forward X-Forwarded-For/X-Real-IP."
        );
    }
    let mut wanted: Vec<&str> = vec![
        "tailscale-user-login",
        "tailscale-user-name",
        "tailscale-user-profile-pic",
        auth::SCOPE_CAP_HEADER,
    ];
    if let Some(tp) = &gw.options.trusted_proxy {
        wanted.push(&tp.user_header);
        wanted.extend(tp.required_headers.iter().map(String::as_str));
    }
    let identity_headers = wanted
        .into_iter()
        .filter_map(|name| {
            let v = headers.get(name)?.to_str().ok()?;
            Some((name.to_owned(), v.to_owned()))
        })
        .collect();
    let peer = PeerInfo {
        identity_headers,
        addr,
        is_local: direct_local && local_host && !headers.contains_key(header::ORIGIN),
        host,
        origin: text(header::ORIGIN),
        ingress: attribution.kind,
        client_ip: attribution.client_ip,
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            crate::serve_websocket(gw, TokioIo::new(upgraded), peer).await;
        }
    });
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).expect("base64 is a valid header"),
    );
    r
}
