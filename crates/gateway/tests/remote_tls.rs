//! The gateway over TLS: wss:// with a pinned fingerprint (clawgate-client), a wrong pin,
//! https probes on the same port (TLS 1.3, ALPN http/1.1), slow handshakes that do not block
//! accepts, and rotated certificate files served without a restart.

mod common;

use clawgate_client::{Client, ClientError, ConnectOptions, TlsOptions, client_info};
use clawgate_gateway::tls::{self, TlsPaths, TlsServer};
use common::{TOKEN, TestGateway, WAIT, start};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn paths(dir: &Path) -> TlsPaths {
    TlsPaths {
        cert: dir.join("gateway/tls/gateway-cert.pem"),
        key: dir.join("gateway/tls/gateway-key.pem"),
        ca: None,
        auto_generate: true,
    }
}

async fn tls_gateway(dir: &Path, handshake_timeout: Duration) -> (TestGateway, String) {
    let p = paths(dir);
    let status = tls::ensure_certificate(&p, &[]).unwrap();
    let server = TlsServer::load(&p).unwrap();
    let gw = start(move |o| {
        o.tls = Some(server);
        o.handshake_timeout = handshake_timeout;
    })
    .await;
    (gw, status.fingerprint)
}

async fn connect(addr: SocketAddr, pin: &str) -> Result<Client, ClientError> {
    let mut opts = ConnectOptions::new(format!("wss://{addr}"), client_info("cli", "cli"));
    opts.token = Some(TOKEN.into());
    opts.scopes = vec!["operator.read".into()];
    opts.timeout = WAIT;
    opts.tls = TlsOptions {
        fingerprint: Some(pin.into()),
    };
    Client::connect(opts).await.map(|(c, _)| c)
}

/// Accepts any certificate and records it (the test compares fingerprints itself).
#[derive(Debug)]
struct Recorder {
    seen: std::sync::Mutex<Option<Vec<u8>>>,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.seen.lock().unwrap() = Some(end_entity.as_ref().to_vec());
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `GET path` over TLS; returns (status line, served fingerprint, protocol version, ALPN).
async fn https_get(addr: SocketAddr, path: &str) -> (String, String, String, Option<Vec<u8>>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let recorder = Arc::new(Recorder {
        seen: Default::default(),
        algorithms: provider.signature_verification_algorithms,
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut s = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let (_, conn) = s.get_ref();
    let version = format!("{:?}", conn.protocol_version().unwrap());
    let alpn = conn.alpn_protocol().map(<[u8]>::to_vec);
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let fp = tls::fingerprint(&recorder.seen.lock().unwrap().clone().unwrap());
    (
        text.lines().next().unwrap_or("").to_owned(),
        fp,
        version,
        alpn,
    )
}

#[tokio::test]
async fn wss_with_the_right_pin_works_and_a_wrong_pin_names_both_fingerprints() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let (gw, fp) = tls_gateway(dir.path(), Duration::from_secs(10)).await;

    // The pin in any accepted spelling.
    let colon = tls::colon_fingerprint(&fp);
    for pin in [
        fp.clone(),
        colon.clone(),
        format!("sha256:{}", fp.to_uppercase()),
    ] {
        let client = connect(gw.addr, &pin)
            .await
            .unwrap_or_else(|e| panic!("{pin}: {e}"));
        let health = client.request("health", None).await.unwrap();
        assert_eq!(health["ok"], true);
        client.close().await;
    }

    let wrong = "ab".repeat(32);
    let Err(err) = connect(gw.addr, &wrong).await else {
        panic!("a wrong pin must be refused")
    };
    let text = err.to_string();
    assert!(text.contains(&fp), "actual fingerprint missing: {text}");
    assert!(
        text.contains(&wrong),
        "expected fingerprint missing: {text}"
    );

    // Plain ws:// to a TLS port does not get a gateway.
    let mut opts = ConnectOptions::new(format!("ws://{}", gw.addr), client_info("cli", "cli"));
    opts.token = Some(TOKEN.into());
    opts.timeout = Duration::from_secs(3);
    assert!(Client::connect(opts).await.is_err());

    // https on the same port: TLS 1.3 only, ALPN http/1.1, the same certificate.
    let (status, served, version, alpn) = https_get(gw.addr, "/healthz").await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(served, fp);
    assert_eq!(version, "TLSv1_3");
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
}

#[tokio::test]
async fn a_silent_client_does_not_block_handshakes_and_is_dropped_after_the_timeout() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let (gw, fp) = tls_gateway(dir.path(), Duration::from_millis(800)).await;
    // Opens TCP connections and never says hello.
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(tokio::net::TcpStream::connect(gw.addr).await.unwrap());
    }
    let started = std::time::Instant::now();
    let client = connect(gw.addr, &fp).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    client.close().await;
    // The server gives up on the silent ones.
    for mut s in silent {
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(WAIT, s.read(&mut buf))
            .await
            .expect("closed by the server in time")
            .unwrap_or(0);
        assert_eq!(n, 0);
    }
}

#[tokio::test]
async fn rotated_certificate_files_are_served_without_a_restart() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let (gw, old) = tls_gateway(dir.path(), Duration::from_secs(10)).await;
    let open = connect(gw.addr, &old).await.unwrap();

    let p = paths(dir.path());
    let tls::Rotation::Staged { next, .. } = tls::rotate(&p, &[], true).unwrap() else {
        panic!()
    };
    // Staged, not served yet.
    assert_eq!(https_get(gw.addr, "/healthz").await.1, old);
    let rotated = tls::rotate(&p, &[], false).unwrap();
    assert_eq!(
        rotated,
        tls::Rotation::Rotated {
            previous: old.clone(),
            current: next.clone()
        }
    );
    // Picked up within the reload interval.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if https_get(gw.addr, "/healthz").await.1 == next {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "new certificate not served"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let fresh = connect(gw.addr, &next).await.unwrap();
    assert_eq!(fresh.request("health", None).await.unwrap()["ok"], true);
    // The connection opened before the rotation is still up.
    assert_eq!(open.request("health", None).await.unwrap()["ok"], true);
    assert!(connect(gw.addr, &old).await.is_err());
}
