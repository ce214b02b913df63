//! Identity from headers: Tailscale Serve (the managed loopback listener, identity headers
//! confirmed by whois through a fake LocalAPI socket or a fake `tailscale` CLI made by the
//! test) and trusted-proxy auth mode (OpenClaw's checks and refusals).

mod common;

use clawgate_config::Secret;
use clawgate_gateway::ingress::{Cidr, ListenerKind};
use clawgate_gateway::{AuthMode, Gateway, GatewayOptions, TailscaleAuth, TrustedProxyAuth};
use common::{Client, TOKEN, WAIT, cli_params, now_ms, sign};
use ed25519_dalek::SigningKey;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_util::sync::CancellationToken;

struct Running {
    ordinary: SocketAddr,
    tailscale: SocketAddr,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn start(dir: tempfile::TempDir, configure: impl FnOnce(&mut GatewayOptions)) -> Running {
    let mut options = GatewayOptions::new(AuthMode::Token, dir.path().join("state"));
    options.token = Some(Secret::new(TOKEN));
    configure(&mut options);
    let ordinary = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tailscale = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (oa, ta) = (
        ordinary.local_addr().unwrap(),
        tailscale.local_addr().unwrap(),
    );
    let gateway = Gateway::new(options).unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(clawgate_gateway::serve_listeners(
        vec![
            (ordinary, ListenerKind::Ordinary),
            (tailscale, ListenerKind::TailscaleServe),
        ],
        gateway,
        shutdown.clone(),
    ));
    Running {
        ordinary: oa,
        tailscale: ta,
        shutdown,
        _dir: dir,
    }
}

/// A fake tailscaled LocalAPI on a unix socket: `/localapi/v0/whois?addr=<ip>` answers the
/// login mapped to that address (404 otherwise). Records the requested paths.
fn fake_localapi(socket: &Path, logins: &[(&str, &str)]) -> Arc<Mutex<Vec<String>>> {
    let listener = tokio::net::UnixListener::bind(socket).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let logins: Vec<(String, String)> = logins
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let seen2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let mut buf = vec![0u8; 4096];
            let n = s.read(&mut buf).await.unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]).to_string();
            let path = req.split_whitespace().nth(1).unwrap_or("").to_owned();
            seen2.lock().unwrap().push(path.clone());
            let addr = path.split("addr=").nth(1).unwrap_or("").to_owned();
            let body = logins.iter().find(|(ip, _)| *ip == addr).map(|(_, login)| {
                json!({"Node": {"Name": "peer.tail1234.ts.net."}, "UserProfile": {"LoginName": login, "DisplayName": "Alice Example"}}).to_string()
            });
            let resp = match body {
                Some(b) => format!("HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{b}"),
                None => "HTTP/1.0 404 Not Found\r\n\r\nno match for IP:port".to_owned(),
            };
            let _ = s.write_all(resp.as_bytes()).await;
        }
    });
    seen
}

/// Opens a WebSocket with extra headers; `Err("403 …")` when refused at upgrade.
async fn open_with(addr: SocketAddr, headers: &[(&'static str, &str)]) -> Result<Client, String> {
    let mut req = format!("ws://{addr}/").into_client_request().unwrap();
    for (k, v) in headers {
        req.headers_mut()
            .append(*k, HeaderValue::from_str(v).unwrap());
    }
    match tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
        .await
        .unwrap()
    {
        Ok((ws, _)) => {
            let mut c = Client {
                ws,
                challenge: Value::Null,
            };
            let ev = c.recv().await;
            assert_eq!(ev["event"], "connect.challenge");
            c.challenge = ev;
            Ok(c)
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(format!(
            "{} {}",
            resp.status().as_u16(),
            String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default())
        )),
        Err(e) => panic!("{e}"),
    }
}

/// Control-UI-like operator connect without a shared secret, signed with a device key.
async fn device_connect(c: &mut Client, seed: u8) -> Value {
    let mut p = cli_params(&["operator.read"]);
    p["auth"] = json!({});
    let key = SigningKey::from_bytes(&[seed; 32]);
    let p = sign(p, &key, &c.nonce(), now_ms());
    c.connect(p).await
}

const SERVE_HEADERS: [(&str, &str); 3] = [
    ("x-forwarded-for", "100.101.102.103"),
    ("x-forwarded-proto", "https"),
    ("x-forwarded-host", "gw.tail1234.ts.net"),
];

fn tailscale_auth(dir: &Path, bin: PathBuf) -> TailscaleAuth {
    TailscaleAuth {
        tailscale_bin: bin.into(),
        localapi_socket: dir.join("tailscaled.sock"),
    }
}

#[tokio::test]
async fn serve_identity_confirmed_by_localapi_whois_is_accepted_as_that_user() {
    let dir = tempfile::tempdir().unwrap();
    let seen = fake_localapi(
        &dir.path().join("tailscaled.sock"),
        &[("100.101.102.103", "alice@example.com")],
    );
    let ts = tailscale_auth(dir.path(), dir.path().join("no-tailscale"));
    let gw = start(dir, |o| {
        o.tailscale_auth = Some(ts);
        o.identity_scopes = vec![("Alice@Example.com".into(), vec!["operator.write".into()])];
    })
    .await;

    // Valid headers, login in another case: accepted as that user, method "tailscale", with
    // the identityScopes grant of that login (emails match ignoring case).
    let mut h = SERVE_HEADERS.to_vec();
    h.push(("tailscale-user-login", "Alice@Example.COM"));
    h.push(("tailscale-user-name", "Alice"));
    let mut c = open_with(gw.tailscale, &h).await.unwrap();
    let res = device_connect(&mut c, 7).await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(res["payload"]["auth"]["method"], "tailscale", "{res}");
    assert_eq!(res["payload"]["auth"]["role"], "operator");
    assert_eq!(
        res["payload"]["auth"]["scopes"],
        json!(["operator.read", "operator.write"])
    );
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        ["/localapi/v0/whois?addr=100.101.102.103"]
    );
    // A second connection within 60 s uses the cached whois.
    let mut c = open_with(gw.tailscale, &h).await.unwrap();
    assert_eq!(device_connect(&mut c, 8).await["ok"], true);
    assert_eq!(seen.lock().unwrap().len(), 1);

    // Tailscale identity never replaces the device identity.
    let mut c = open_with(gw.tailscale, &h).await.unwrap();
    let mut p = cli_params(&["operator.read"]);
    p["auth"] = json!({});
    let res = c.connect(p).await;
    assert_eq!(
        res["error"]["details"]["code"], "DEVICE_IDENTITY_REQUIRED",
        "{res}"
    );

    // Forged login: whois names someone else.
    let mut h = SERVE_HEADERS.to_vec();
    h.push(("tailscale-user-login", "mallory@example.com"));
    let mut c = open_with(gw.tailscale, &h).await.unwrap();
    let res = device_connect(&mut c, 9).await;
    assert_eq!(
        res["error"]["details"]["code"], "AUTH_TAILSCALE_IDENTITY_MISMATCH",
        "{res}"
    );
    assert_eq!(
        res["error"]["message"],
        "unauthorized: tailscale identity mismatch (use Tailscale Serve auth or gateway token/password)"
    );
    assert_eq!(
        res["error"]["details"]["authReason"],
        "tailscale_user_mismatch"
    );

    // No identity header.
    let mut c = open_with(gw.tailscale, &SERVE_HEADERS).await.unwrap();
    let res = device_connect(&mut c, 10).await;
    assert_eq!(
        res["error"]["details"]["code"], "AUTH_TAILSCALE_IDENTITY_MISSING",
        "{res}"
    );

    // An address whois does not know (and no CLI to fall back on): not confirmed.
    let mut h = vec![
        ("x-forwarded-for", "100.90.0.9"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "gw.tail1234.ts.net"),
    ];
    h.push(("tailscale-user-login", "alice@example.com"));
    let mut c = open_with(gw.tailscale, &h).await.unwrap();
    let res = device_connect(&mut c, 11).await;
    assert_eq!(
        res["error"]["details"]["code"], "AUTH_TAILSCALE_WHOIS_FAILED",
        "{res}"
    );
    assert_eq!(
        res["error"]["message"],
        "unauthorized: tailscale identity check failed (use Tailscale Serve auth or gateway token/password)"
    );

    // The shared token still works on the Tailscale listener.
    let mut c = open_with(gw.tailscale, &SERVE_HEADERS).await.unwrap();
    let res = c.connect(cli_params(&["operator.read"])).await;
    assert_eq!(res["payload"]["auth"]["method"], "token", "{res}");

    // Identity headers on the ordinary listener: 403, never Tailscale semantics.
    let mut h = SERVE_HEADERS.to_vec();
    h.push(("tailscale-user-login", "alice@example.com"));
    let err = open_with(gw.ordinary, &h).await.err().unwrap();
    assert!(err.starts_with("403 "), "{err}");
    assert!(err.contains("proxy_attribution_required"), "{err}");
    let err = open_with(
        gw.ordinary,
        &[("tailscale-user-login", "alice@example.com")],
    )
    .await
    .err()
    .unwrap();
    assert!(err.starts_with("403 "), "{err}");
    // On the Tailscale listener without the Serve proxy's forwarding headers: 403 too.
    let err = open_with(
        gw.tailscale,
        &[("tailscale-user-login", "alice@example.com")],
    )
    .await
    .err()
    .unwrap();
    assert!(err.starts_with("403 "), "{err}");
}

#[tokio::test]
async fn whois_falls_back_to_the_tailscale_cli() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("tailscale");
    let log = dir.path().join("argv.log");
    std::fs::write(
        &bin,
        format!(
            "#!/bin/sh\necho \"$@\" >> {}\nif [ \"$1\" = whois ]; then\n  if [ \"$3\" = 100.101.102.103 ]; then echo '{{\"UserProfile\":{{\"LoginName\":\"bob@example.com\",\"DisplayName\":\"Bob\"}}}}'; exit 0; fi\n  echo 'no match' >&2; exit 1\nfi\nexit 0\n",
            log.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    // No LocalAPI socket: the CLI answers.
    let ts = tailscale_auth(dir.path(), bin);
    let log2 = log.clone();
    let gw = start(dir, |o| o.tailscale_auth = Some(ts)).await;
    let mut h = SERVE_HEADERS.to_vec();
    h.push(("tailscale-user-login", "BOB@example.com"));
    let mut c = open_with(gw.tailscale, &h).await.unwrap();
    let res = device_connect(&mut c, 21).await;
    assert_eq!(res["payload"]["auth"]["method"], "tailscale", "{res}");
    let argv = std::fs::read_to_string(&log2).unwrap();
    assert_eq!(argv.trim(), "whois --json 100.101.102.103");
}

#[tokio::test]
async fn without_allow_tailscale_identity_headers_grant_nothing() {
    let dir = tempfile::tempdir().unwrap();
    fake_localapi(
        &dir.path().join("tailscaled.sock"),
        &[("100.101.102.103", "alice@example.com")],
    );
    let gw = start(dir, |_| {}).await;
    let mut h = SERVE_HEADERS.to_vec();
    h.push(("tailscale-user-login", "alice@example.com"));
    let mut c = open_with(gw.tailscale, &h).await.unwrap();
    let res = device_connect(&mut c, 31).await;
    assert_eq!(res["ok"], false, "{res}");
    assert_eq!(
        res["error"]["details"]["code"], "AUTH_TOKEN_MISSING",
        "{res}"
    );
}

fn trusted_proxy(o: &mut GatewayOptions, allow_loopback: bool) {
    o.auth_mode = AuthMode::TrustedProxy;
    o.token = None;
    o.ingress.trusted_proxies = vec!["127.0.0.1".parse::<Cidr>().unwrap()];
    o.trusted_proxy = Some(TrustedProxyAuth {
        user_header: "x-forwarded-user".into(),
        required_headers: vec!["x-proxy-secret".into()],
        allow_users: vec!["alice".into(), "carol".into()],
        allow_loopback,
    });
}

#[tokio::test]
async fn trusted_proxy_mode_accepts_a_user_from_the_proxy_and_refuses_the_bad_cases() {
    let gw = start(tempfile::tempdir().unwrap(), |o| trusted_proxy(o, true)).await;
    let good = [
        ("x-forwarded-for", "203.0.113.9"),
        ("x-forwarded-user", "alice"),
        ("x-proxy-secret", "s3"),
    ];
    let mut c = open_with(gw.ordinary, &good).await.unwrap();
    let mut p = cli_params(&["operator.read"]);
    p["auth"] = json!({});
    let res = c.connect(p.clone()).await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(res["payload"]["auth"]["method"], "trusted-proxy", "{res}");
    // With a device: paired without an approval round trip.
    let mut c = open_with(gw.ordinary, &good).await.unwrap();
    let res = device_connect(&mut c, 41).await;
    assert_eq!(res["payload"]["auth"]["method"], "trusted-proxy", "{res}");

    let refused = |headers: Vec<(&'static str, &'static str)>, reason: &'static str| {
        let p = p.clone();
        let addr = gw.ordinary;
        async move {
            let mut c = open_with(addr, &headers).await.unwrap();
            let res = c.connect(p).await;
            assert_eq!(res["ok"], false, "{res}");
            assert_eq!(
                res["error"]["details"]["code"], "AUTH_IDENTITY_HEADER_REQUIRED",
                "{res}"
            );
            assert_eq!(res["error"]["details"]["authReason"], reason, "{res}");
            assert!(
                res["error"]["message"]
                    .as_str()
                    .unwrap()
                    .starts_with("unauthorized: trusted proxy identity required ("),
                "{res}"
            );
        }
    };
    // Missing required header, missing user, user not allowed.
    refused(
        vec![
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-user", "alice"),
        ],
        "trusted_proxy_missing_required_header",
    )
    .await;
    refused(
        vec![("x-forwarded-for", "203.0.113.9"), ("x-proxy-secret", "s3")],
        "trusted_proxy_user_missing",
    )
    .await;
    refused(
        vec![
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-user", "mallory"),
            ("x-proxy-secret", "s3"),
        ],
        "trusted_proxy_user_not_allowed",
    )
    .await;
    drop(gw);

    // The same proxy on loopback without allowLoopback.
    let gw = start(tempfile::tempdir().unwrap(), |o| trusted_proxy(o, false)).await;
    let mut c = open_with(gw.ordinary, &good).await.unwrap();
    let res = c.connect(p.clone()).await;
    assert_eq!(
        res["error"]["details"]["authReason"], "trusted_proxy_loopback_source",
        "{res}"
    );
    drop(gw);

    // A source outside gateway.trustedProxies (a direct client).
    let gw = start(tempfile::tempdir().unwrap(), |o| {
        trusted_proxy(o, true);
        o.ingress.trusted_proxies = vec!["192.0.2.1".parse::<Cidr>().unwrap()];
    })
    .await;
    let mut c = open_with(gw.ordinary, &[]).await.unwrap();
    let res = c.connect(p.clone()).await;
    assert_eq!(
        res["error"]["details"]["authReason"], "trusted_proxy_untrusted_source",
        "{res}"
    );
}

/// `gateway.auth.identityScopes` adds scopes to a verified login's connection, never to
/// anyone else's; `x-openclaw-scopes` narrows any connection. (Tailscale logins: above.)
#[tokio::test]
async fn identity_scope_grants_raise_verified_logins_and_the_scope_cap_narrows() {
    let gw = start(tempfile::tempdir().unwrap(), |o| {
        trusted_proxy(o, true);
        o.identity_scopes = vec![
            ("carol".into(), vec!["operator.admin".into()]),
            ("Alice".into(), vec!["operator.write".into()]),
        ];
    })
    .await;
    let scopes = |res: &Value| -> Vec<String> {
        assert_eq!(res["ok"], true, "{res}");
        serde_json::from_value(res["payload"]["auth"]["scopes"].clone()).unwrap()
    };
    let proxied = |user: &'static str| {
        vec![
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-user", user),
            ("x-proxy-secret", "s3"),
        ]
    };

    // A device-less proxy user holds no scopes of its own; carol's grant gives her admin,
    // alice (not an email, so "Alice" is another login) stays at none.
    let mut p = cli_params(&["operator.read"]);
    p["auth"] = json!({});
    let mut c = open_with(gw.ordinary, &proxied("carol")).await.unwrap();
    let res = c.connect(p.clone()).await;
    assert_eq!(scopes(&res), ["operator.admin"]);
    // The grant works for real: an admin-only method answers.
    let r = c.call("r1", "device.pair.list", json!({})).await;
    assert_eq!(r["ok"], true, "{r}");
    let mut c = open_with(gw.ordinary, &proxied("alice")).await.unwrap();
    assert!(scopes(&c.connect(p.clone()).await).is_empty());

    // With a device (paired silently for a proxy user): device scopes plus the grant.
    let mut c = open_with(gw.ordinary, &proxied("carol")).await.unwrap();
    let res = device_connect(&mut c, 51).await;
    assert_eq!(scopes(&res), ["operator.read", "operator.admin"]);

    // The cap header keeps only what it lists, grant or not.
    let mut h = proxied("carol");
    h.push(("x-openclaw-scopes", "operator.read"));
    let mut c = open_with(gw.ordinary, &h).await.unwrap();
    assert_eq!(scopes(&device_connect(&mut c, 51).await), ["operator.read"]);
}
