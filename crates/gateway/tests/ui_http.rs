//! The browser UI on the gateway's port, over real HTTP/1.1: headers, encodings, 304, the
//! SPA fallback, the base path, turning it off, and WebSocket upgrades beside it.

mod common;

use common::start;
use futures_util::StreamExt;
use std::collections::HashMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Answer {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
) -> Answer {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Answer {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,*/*;q=0.8";

fn assert_hardened(a: &Answer) {
    let csp = a.header("content-security-policy");
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(a.header("x-frame-options"), "DENY");
    assert_eq!(a.header("x-content-type-options"), "nosniff");
    assert_eq!(a.header("referrer-policy"), "no-referrer");
}

/// The `src`/`href` of the page's script and stylesheet.
fn asset_links(html: &str) -> Vec<String> {
    html.split('"')
        .filter(|s| s.contains("/assets/"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn index_is_revalidated_with_an_etag_and_assets_are_immutable() {
    let gw = start(|_| {}).await;
    let index = request(gw.addr, "GET", "/", &[("Accept", BROWSER_ACCEPT)]).await;
    assert_eq!(index.status, 200);
    assert_hardened(&index);
    assert_eq!(index.header("content-type"), "text/html; charset=utf-8");
    assert_eq!(index.header("cache-control"), "no-cache");
    let etag = index.header("etag").to_owned();
    assert!(etag.starts_with('"') && etag.len() > 10, "{etag}");

    let again = request(gw.addr, "GET", "/", &[("If-None-Match", &etag)]).await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_hardened(&again);
    let stale = request(gw.addr, "GET", "/", &[("If-None-Match", "\"old\"")]).await;
    assert_eq!(stale.status, 200);

    let links = asset_links(&index.text());
    assert_eq!(links.len(), 2, "{links:?}");
    for link in links {
        let identity = request(gw.addr, "GET", &link, &[]).await;
        assert_eq!(identity.status, 200, "{link}");
        assert_hardened(&identity);
        assert_eq!(
            identity.header("cache-control"),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(identity.header("vary"), "Accept-Encoding");
        assert_eq!(identity.header("content-encoding"), "");
        let br = request(
            gw.addr,
            "GET",
            &link,
            &[("Accept-Encoding", "gzip, deflate, br")],
        )
        .await;
        assert_eq!(br.header("content-encoding"), "br");
        assert!(br.body.len() < identity.body.len());
        let gz = request(gw.addr, "GET", &link, &[("Accept-Encoding", "gzip")]).await;
        assert_eq!(gz.header("content-encoding"), "gzip");
        assert_eq!(&gz.body[..2], &[0x1f, 0x8b]);
        let head = request(gw.addr, "HEAD", &link, &[]).await;
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty());
        assert_eq!(
            head.header("content-length"),
            identity.body.len().to_string()
        );
    }
}

#[tokio::test]
async fn deep_links_fall_back_to_the_page_and_other_paths_stay_404() {
    let gw = start(|_| {}).await;
    let deep = request(
        gw.addr,
        "GET",
        "/chat/agent:main:main",
        &[("Accept", BROWSER_ACCEPT)],
    )
    .await;
    assert_eq!(deep.status, 200);
    assert!(deep.text().contains("<!doctype html>"));
    let api = request(
        gw.addr,
        "GET",
        "/v1/models",
        &[("Accept", "application/json")],
    )
    .await;
    assert_eq!(api.status, 404);
    assert!(api.text().contains("not_found"));
    let missing = request(gw.addr, "GET", "/assets/app.000000000000.js", &[]).await;
    assert_eq!(missing.status, 404);
    let post = request(gw.addr, "POST", "/", &[("Content-Length", "0")]).await;
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), "GET, HEAD");
    let live = request(gw.addr, "GET", "/healthz", &[("Accept", BROWSER_ACCEPT)]).await;
    assert_eq!(live.status, 200);
    assert!(live.text().contains("live"));
}

#[tokio::test]
async fn a_base_path_moves_the_page_and_its_assets() {
    let gw = start(|o| o.control_ui.base_path = "/openclaw".into()).await;
    let root = request(gw.addr, "GET", "/", &[("Accept", BROWSER_ACCEPT)]).await;
    assert_eq!(root.status, 404);
    let index = request(gw.addr, "GET", "/openclaw/", &[("Accept", BROWSER_ACCEPT)]).await;
    assert_eq!(index.status, 200);
    assert!(index.text().contains("data-base-path=\"/openclaw\""));
    let links = asset_links(&index.text());
    assert!(
        links.iter().all(|l| l.starts_with("/openclaw/assets/")),
        "{links:?}"
    );
    let asset = request(gw.addr, "GET", &links[0], &[]).await;
    assert_eq!(asset.status, 200);
    let bare = request(gw.addr, "GET", "/openclaw", &[("Accept", BROWSER_ACCEPT)]).await;
    assert_eq!(bare.status, 200);
    // WebSocket upgrades keep working on any path, the base path included.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/openclaw", gw.addr))
        .await
        .unwrap();
    let first = ws.next().await.unwrap().unwrap();
    assert!(first.to_text().unwrap().contains("connect.challenge"));
}

#[tokio::test]
async fn turned_off_it_says_which_key_turns_it_on() {
    let gw = start(|o| o.control_ui.enabled = false).await;
    let r = request(gw.addr, "GET", "/", &[("Accept", BROWSER_ACCEPT)]).await;
    assert_eq!(r.status, 404);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("gateway.controlUi.enabled"), "{message}");
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/", gw.addr))
        .await
        .unwrap();
    let first = ws.next().await.unwrap().unwrap();
    assert!(first.to_text().unwrap().contains("connect.challenge"));
}
