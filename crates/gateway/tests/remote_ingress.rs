//! Ingress attribution over real sockets: forwarded headers from untrusted peers get the real
//! gateway's 403, a trusted proxy's client is the one held responsible (presence), a loopback
//! socket with a foreign `Host` is remote, and browser origins are checked.

mod common;

use clawgate_gateway::ingress::{Cidr, IngressPolicy};
use common::{TOKEN, TestGateway, WAIT, cli_params, start};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const PROXY_403: &str = r#"{"error":{"message":"Proxy client attribution is required. Configure gateway.trustedProxies narrowly and make the proxy overwrite or safely rebuild forwarded client headers.","type":"proxy_attribution_required"}}"#;

/// One HTTP/1.1 request on a fresh socket; returns the status line, headers and body.
async fn http(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n", addr.port());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_owned())
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a WebSocket with extra request headers and reads the challenge.
async fn ws_with(addr: SocketAddr, headers: &[(&'static str, &str)]) -> Result<Ws, String> {
    let mut req = format!("ws://{addr}/").into_client_request().unwrap();
    for (k, v) in headers {
        req.headers_mut()
            .insert(*k, HeaderValue::from_str(v).unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((mut ws, _)) => {
            let ch = next(&mut ws).await;
            assert_eq!(ch["event"], "connect.challenge");
            Ok(ws)
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(format!(
            "{} {}",
            resp.status().as_u16(),
            String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default())
        )),
        Err(e) => panic!("{e}"),
    }
}

async fn next(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("frame in time")
            .expect("open")
            .expect("no error");
        match m {
            Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            Message::Close(c) => {
                return json!({"closed": c.map(|c| (u16::from(c.code), c.reason.to_string()))});
            }
            _ => {}
        }
    }
}

async fn connect(ws: &mut Ws, params: Value) -> Value {
    ws.send(Message::text(
        json!({"type":"req","id":"c1","method":"connect","params":params}).to_string(),
    ))
    .await
    .unwrap();
    loop {
        let v = next(ws).await;
        if v["type"] == "res" {
            return v;
        }
    }
}

async fn gateway(policy: IngressPolicy) -> TestGateway {
    start(move |o| o.ingress = policy).await
}

#[tokio::test]
async fn forwarded_headers_from_an_untrusted_peer_get_403_and_healthz_stays_200() {
    let gw = gateway(IngressPolicy::default()).await;
    for header in [
        ("X-Forwarded-For", "203.0.113.9"),
        ("Forwarded", "for=203.0.113.9"),
        ("X-Real-IP", "203.0.113.9"),
        ("X-Forwarded-Proto", "https"),
        ("Tailscale-User-Login", "alice@example.com"),
    ] {
        let (status, head, body) = http(gw.addr, "/readyz", &[header]).await;
        assert_eq!(status, 403, "{header:?}");
        assert_eq!(body, PROXY_403);
        assert!(head.contains("content-type: application/json; charset=utf-8"));
        assert!(head.contains("connection: close"));
        let (status, _, body) = http(gw.addr, "/healthz", &[header]).await;
        assert_eq!(status, 200, "{header:?}: {body}");
    }
    // Without headers the same loopback peer is fine.
    assert_eq!(http(gw.addr, "/readyz", &[]).await.0, 200);
    // The WebSocket upgrade is refused the same way, before any frame.
    let err = ws_with(gw.addr, &[("x-forwarded-for", "203.0.113.9")])
        .await
        .unwrap_err();
    assert_eq!(err, format!("403 {PROXY_403}"));
}

#[tokio::test]
async fn a_trusted_proxy_attributes_the_real_client() {
    let policy = IngressPolicy {
        trusted_proxies: vec!["127.0.0.1".parse::<Cidr>().unwrap()],
        ..IngressPolicy::default()
    };
    let gw = gateway(policy).await;
    // A UI client behind the proxy, which appended itself and a spoofed hop before it.
    let mut proxied = ws_with(
        gw.addr,
        &[("x-forwarded-for", "198.51.100.7, 203.0.113.9, 127.0.0.1")],
    )
    .await
    .expect("trusted proxy accepted");
    let mut params = cli_params(&["operator.read"]);
    params["client"]["id"] = json!("openclaw-macos");
    params["client"]["mode"] = json!("ui");
    let hello = connect(&mut proxied, params).await;
    assert_eq!(hello["ok"], true, "{hello}");
    // Through a proxy the client is remote: a device-less operator keeps no scopes.
    assert_eq!(hello["payload"]["auth"]["scopes"], json!([]), "{hello}");

    // A local operator sees the proxied client under its real address.
    let mut local = ws_with(gw.addr, &[]).await.unwrap();
    let hello = connect(&mut local, cli_params(&["operator.read"])).await;
    assert_eq!(hello["ok"], true, "{hello}");
    local
        .send(Message::text(
            json!({"type":"req","id":"p1","method":"system-presence","params":{}}).to_string(),
        ))
        .await
        .unwrap();
    let res = loop {
        let v = next(&mut local).await;
        if v["type"] == "res" {
            break v;
        }
    };
    let entries = res["payload"].as_array().cloned().unwrap_or_default();
    let entry = entries
        .iter()
        .find(|e| e["clientId"] == "openclaw-macos")
        .unwrap_or_else(|| panic!("{res}"));
    assert_eq!(entry["ip"], "203.0.113.9", "{entry}");

    // A trusted proxy that names no usable client is refused.
    let err = ws_with(gw.addr, &[("x-forwarded-for", "127.0.0.1")])
        .await
        .unwrap_err();
    assert!(err.starts_with("403 "), "{err}");
}

#[tokio::test]
async fn a_loopback_socket_with_a_foreign_host_is_remote() {
    let gw = gateway(IngressPolicy::default()).await;
    let mut local = ws_with(gw.addr, &[]).await.unwrap();
    let hello = connect(&mut local, cli_params(&["operator.read"])).await;
    assert_eq!(hello["payload"]["auth"]["scopes"], json!(["operator.read"]));

    let mut foreign = ws_with(gw.addr, &[("host", "gateway.example.com")])
        .await
        .unwrap();
    let hello = connect(&mut foreign, cli_params(&["operator.read"])).await;
    assert_eq!(hello["ok"], true, "{hello}");
    assert_eq!(hello["payload"]["auth"]["scopes"], json!([]), "{hello}");
}

#[tokio::test]
async fn browser_origins_follow_the_allowlist() {
    let policy = IngressPolicy {
        allowed_origins: vec!["https://ui.example.com".into()],
        ..IngressPolicy::default()
    };
    let gw = gateway(policy).await;
    let mut evil = ws_with(gw.addr, &[("origin", "https://evil.example")])
        .await
        .unwrap();
    let res = connect(&mut evil, cli_params(&["operator.read"])).await;
    assert_eq!(res["ok"], false);
    assert_eq!(res["error"]["code"], "INVALID_REQUEST");
    assert_eq!(
        res["error"]["message"],
        "origin not allowed (open the Control UI from the gateway host or allow it in gateway.controlUi.allowedOrigins)"
    );
    assert_eq!(
        res["error"]["details"],
        json!({"code": "CONTROL_UI_ORIGIN_NOT_ALLOWED", "reason": "origin not allowed"})
    );
    let closed = next(&mut evil).await;
    assert_eq!(closed["closed"][0], 1008, "{closed}");

    // The Control UI without an Origin is refused too.
    let mut ui = ws_with(gw.addr, &[]).await.unwrap();
    let mut params = cli_params(&["operator.read"]);
    params["client"]["id"] = json!("openclaw-control-ui");
    params["client"]["mode"] = json!("ui");
    let res = connect(&mut ui, params).await;
    assert_eq!(
        res["error"]["details"]["reason"],
        "origin missing or invalid"
    );

    for origin in ["https://ui.example.com", "http://localhost:5173"] {
        let mut ok = ws_with(gw.addr, &[("origin", origin)]).await.unwrap();
        let res = connect(&mut ok, cli_params(&["operator.read"])).await;
        assert_eq!(res["ok"], true, "{origin}: {res}");
    }
    let _ = TOKEN;
}
