//! The HTTP side of the port: `/healthz`, `/readyz`, `/startupz`, and the WebSocket upgrade on
//! any path.

use crate::{Gateway, PeerInfo, SERVER_VERSION};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_util::sync::CancellationToken;

pub(crate) async fn accept_loop(
    listener: TcpListener,
    gw: Arc<Gateway>,
    shutdown: CancellationToken,
) {
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
        let _ = stream.set_nodelay(true);
        let gw = gw.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(req, gw.clone(), addr));
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            let _ = conn.await;
        });
    }
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

fn has_forwarding_headers(h: &HeaderMap) -> bool {
    h.contains_key("forwarded")
        || h.contains_key("x-real-ip")
        || h.keys().any(|k| {
            let k = k.as_str();
            k.starts_with("x-forwarded-") || k.starts_with("tailscale-")
        })
}

async fn handle(
    req: Request<Incoming>,
    gw: Arc<Gateway>,
    addr: SocketAddr,
) -> Result<Response<Body>, std::convert::Infallible> {
    if is_websocket_upgrade(req.headers()) {
        return Ok(upgrade(req, gw, addr));
    }
    let resp = match req.uri().path() {
        "/healthz" => json_response(StatusCode::OK, json!({"ok": true, "status": "live"})),
        "/readyz" => json_response(StatusCode::OK, json!({"ready": true, "status": "ready"})),
        "/startupz" => json_response(
            StatusCode::OK,
            json!({"ok": true, "status": "started", "version": SERVER_VERSION, "uptimeMs": gw.uptime_ms()}),
        ),
        _ => json_response(
            StatusCode::NOT_FOUND,
            json!({"error": {"message": "Not Found", "type": "not_found"}}),
        ),
    };
    Ok(resp)
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

fn upgrade(mut req: Request<Incoming>, gw: Arc<Gateway>, addr: SocketAddr) -> Response<Body> {
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
    let peer = PeerInfo {
        addr,
        is_local: addr.ip().is_loopback()
            && !has_forwarding_headers(headers)
            && !headers.contains_key(header::ORIGIN),
        host: text(header::HOST),
        origin: text(header::ORIGIN),
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
