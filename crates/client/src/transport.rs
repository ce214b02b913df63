//! Opening the WebSocket: `ws://`, or `wss://` with the web PKI roots or a pinned certificate
//! fingerprint (SHA-256 of the leaf certificate, like `gateway.remote.tlsFingerprint`).
//! [`crate::Client`] opens its socket here; [`dial`] gives the same socket to a caller that
//! speaks something else over it (a probe of the HTTPS listener).

use crate::error::ClientError;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

/// An open WebSocket to the gateway, plaintext or TLS.
pub type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// TLS settings for `wss://` URLs.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// Pin the gateway's certificate: SHA-256 of the leaf certificate's DER, as 64 hex digits
    /// or 32 colon-separated bytes, optionally prefixed `sha256:`. A pin replaces CA and
    /// host name validation. Several pins separated by commas form a pin set (old and new
    /// certificate while a gateway rotates): any one of them matching accepts.
    pub fingerprint: Option<String>,
}

/// The pins of a pin set (`TlsOptions::fingerprint`), each normalised to 64 lowercase hex
/// digits, duplicates dropped; `Err` quotes the entry that is not a SHA-256 fingerprint.
pub fn parse_pins(text: &str) -> Result<Vec<String>, String> {
    let mut pins: Vec<String> = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let pin = normalize_fingerprint(entry).ok_or_else(|| entry.to_owned())?;
        if !pins.contains(&pin) {
            pins.push(pin);
        }
    }
    if pins.is_empty() {
        return Err(text.to_owned());
    }
    Ok(pins)
}

/// Normalises a fingerprint to 64 lowercase hex digits.
pub fn normalize_fingerprint(text: &str) -> Option<String> {
    let t = text.trim();
    let t = t
        .strip_prefix("sha256:")
        .or_else(|| t.strip_prefix("SHA256:"))
        .unwrap_or(t);
    let hex: String = t.chars().filter(|c| *c != ':').collect();
    (hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| hex.to_ascii_lowercase())
}

/// Dials `url` (or `connect_to`, an SSH tunnel's local end, keeping the URL's host for TLS
/// and the Host header) and upgrades to a WebSocket within `budget`. With `plaintext_rule`,
/// a plaintext `ws://` URL to a host that is not loopback or private is refused first (see
/// [`crate::plaintext`]).
pub(crate) async fn open(
    url: &str,
    tls: &TlsOptions,
    connect_to: Option<SocketAddr>,
    budget: Duration,
    plaintext_rule: bool,
) -> Result<WsStream, ClientError> {
    upgrade(url, tls, connect_to, budget, plaintext_rule).await
}

/// Dials `url` and upgrades to a WebSocket within `budget`, with `tls` for a `wss://` URL
/// (a pinned fingerprint is checked as for [`crate::Client`]). Unlike the client, it does
/// not apply the plaintext `ws://` rule: the caller checks the URL once, before it starts
/// dialing ([`crate::plaintext::check`]).
///
/// The errors are those of [`crate::Client::connect`] before the handshake:
/// [`ClientError::InvalidUrl`], [`ClientError::TlsPinMismatch`],
/// [`ClientError::Unreachable`], and [`ClientError::Handshake`] with code `HTTP_<status>`
/// for a refused upgrade.
pub async fn dial(url: &str, tls: &TlsOptions, budget: Duration) -> Result<WsStream, ClientError> {
    upgrade(url, tls, None, budget, false).await
}

async fn upgrade(
    url: &str,
    tls: &TlsOptions,
    connect_to: Option<SocketAddr>,
    budget: Duration,
    plaintext_rule: bool,
) -> Result<WsStream, ClientError> {
    let invalid = |reason: String| ClientError::InvalidUrl {
        url: url.to_owned(),
        reason,
    };
    let request = url
        .into_client_request()
        .map_err(|e| invalid(e.to_string()))?;
    let scheme = request.uri().scheme_str().unwrap_or("");
    if scheme != "ws" && scheme != "wss" {
        return Err(invalid("the scheme must be ws:// or wss://".into()));
    }
    match connect_to {
        Some(addr) if scheme == "ws" && !crate::plaintext::is_private_ip(addr.ip()) => {
            return Err(ClientError::Insecure {
                url: url.to_owned(),
                host: addr.ip().to_string(),
                reason: format!("{} is not a loopback or private address", addr.ip()),
            });
        }
        Some(_) => {}
        None if plaintext_rule => plaintext_guard(url).await?,
        None => {}
    }
    let mut seen = None;
    let connector = match &tls.fingerprint {
        None => None,
        Some(_) if scheme != "wss" => {
            return Err(invalid(
                "a TLS fingerprint requires a wss:// gateway URL".into(),
            ));
        }
        Some(fp) => {
            let pins = parse_pins(fp).map_err(|bad| {
                invalid(format!(
                    "the TLS fingerprint must be a SHA-256 fingerprint (64 hex digits), got {}",
                    serde_json::Value::String(bad)
                ))
            })?;
            let (config, slot) = pinned::client_config(pins.clone());
            seen = Some((pins, slot));
            Some(Connector::Rustls(Arc::new(config)))
        }
    };
    let unreachable = |reason: String, timed_out: bool| ClientError::Unreachable {
        url: url.to_owned(),
        reason,
        timed_out,
    };
    let attempt = async {
        match connect_to {
            None => {
                tokio_tungstenite::connect_async_tls_with_config(request, None, true, connector)
                    .await
            }
            Some(addr) => {
                let stream = TcpStream::connect(addr).await?;
                let _ = stream.set_nodelay(true);
                tokio_tungstenite::client_async_tls_with_config(request, stream, None, connector)
                    .await
            }
        }
    };
    let result = tokio::time::timeout(budget, attempt).await;
    // A pinned certificate that did not match: say which one was seen, whatever error the
    // TLS layer turned it into.
    if let Some((pins, slot)) = &seen
        && !matches!(result, Ok(Ok(_)))
        && let Some(actual) = slot.lock().ok().and_then(|s| s.clone())
        && !pins.contains(&actual)
    {
        return Err(ClientError::TlsPinMismatch {
            url: url.to_owned(),
            expected: pins.join(","),
            pins: pins.clone(),
            actual,
        });
    }
    match result {
        Err(_) => Err(unreachable(
            format!("timed out after {} ms", budget.as_millis()),
            true,
        )),
        Ok(Ok((stream, _response))) => Ok(stream),
        Ok(Err(e)) => Err(match e {
            tungstenite::Error::Io(io) => unreachable(describe_io(&io), false),
            tungstenite::Error::Tls(t) => unreachable(format!("TLS: {t}"), false),
            tungstenite::Error::Url(u) => invalid(u.to_string()),
            tungstenite::Error::Http(response) => http_refusal(&response),
            other => unreachable(other.to_string(), false),
        }),
    }
}

/// Refuses a plaintext `ws://` URL whose host is not loopback or private (the break-glass
/// variable admits host names whose every address is private).
async fn plaintext_guard(url: &str) -> Result<(), ClientError> {
    let break_glass = crate::plaintext::break_glass(&|k| std::env::var(k).ok()).is_some();
    let mut resolved: Option<Result<Vec<std::net::IpAddr>, String>> = None;
    if break_glass
        && url.trim().to_ascii_lowercase().starts_with("ws://")
        && let Some(host) = crate::device_auth::url_host(url)
        && !crate::plaintext::host_allowed(&host)
        && host.parse::<std::net::IpAddr>().is_err()
    {
        resolved = Some(
            tokio::net::lookup_host((host.as_str(), 80))
                .await
                .map(|addrs| addrs.map(|a| a.ip()).collect())
                .map_err(|e| e.to_string()),
        );
    }
    crate::plaintext::check_with(url, break_glass, &|_, _| match &resolved {
        Some(Ok(addrs)) => Ok(addrs.clone()),
        Some(Err(e)) => Err(std::io::Error::other(e.clone())),
        None => Err(std::io::Error::other("not resolved")),
    })
    .map_err(|r| ClientError::Insecure {
        url: url.to_owned(),
        host: r.host,
        reason: r.reason,
    })
}

fn describe_io(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => "connection refused".into(),
        ConnectionReset => "connection reset".into(),
        TimedOut => "connection timed out".into(),
        HostUnreachable => "host unreachable".into(),
        NetworkUnreachable => "network unreachable".into(),
        _ => {
            let text = e.to_string();
            if text.contains("failed to lookup address") || text.contains("Name or service") {
                format!("DNS lookup failed ({text})")
            } else {
                text
            }
        }
    }
}

/// A refused upgrade (`403 proxy_attribution_required`, a reverse proxy's 502…).
fn http_refusal(response: &tungstenite::http::Response<Option<Vec<u8>>>) -> ClientError {
    let status = response.status();
    let body: Option<serde_json::Value> = response
        .body()
        .as_deref()
        .and_then(|b| serde_json::from_slice(b).ok());
    let message = body
        .as_ref()
        .and_then(|b| b.pointer("/error/message"))
        .and_then(|m| m.as_str())
        .map(str::to_owned)
        .or_else(|| {
            response
                .body()
                .as_deref()
                .map(|b| String::from_utf8_lossy(b).trim().to_owned())
                .filter(|s| !s.is_empty() && s.len() < 300)
        })
        .unwrap_or_else(|| format!("HTTP {status} instead of a WebSocket upgrade"));
    let detail_code = body
        .as_ref()
        .and_then(|b| b.pointer("/error/type"))
        .and_then(|m| m.as_str())
        .map(str::to_owned);
    let code = format!("HTTP_{}", status.as_u16());
    ClientError::Handshake {
        error: crate::WireError {
            code: code.clone(),
            message: message.clone(),
            details: detail_code
                .as_ref()
                .map(|c| serde_json::json!({ "code": c })),
            retryable: None,
            retry_after_ms: None,
        },
        code,
        detail_code,
        message,
        close_code: None,
    }
}

mod pinned {
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::WebPkiSupportedAlgorithms;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
    use sha2::{Digest, Sha256};
    use std::sync::{Arc, Mutex};

    /// The fingerprint the server presented, for the mismatch message.
    pub(super) type Seen = Arc<Mutex<Option<String>>>;

    /// Accepts exactly the certificates whose SHA-256 is one of `pins`, whatever CA signed
    /// them and whatever names they carry; handshake signatures are still checked.
    #[derive(Debug)]
    struct PinnedVerifier {
        pins: Vec<String>,
        seen: Seen,
        algorithms: WebPkiSupportedAlgorithms,
    }

    impl ServerCertVerifier for PinnedVerifier {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            let got = clawgate_protocol::device::hex(&Sha256::digest(end_entity.as_ref()));
            if let Ok(mut seen) = self.seen.lock() {
                *seen = Some(got.clone());
            }
            if self.pins.contains(&got) {
                Ok(ServerCertVerified::assertion())
            } else {
                Err(rustls::Error::General(format!(
                    "gateway tls fingerprint mismatch (got sha256:{got})"
                )))
            }
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.algorithms.supported_schemes()
        }
    }

    pub(super) fn client_config(pins: Vec<String>) -> (ClientConfig, Seen) {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let seen = Seen::default();
        let verifier = PinnedVerifier {
            pins,
            seen: seen.clone(),
            algorithms: provider.signature_verification_algorithms,
        };
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default protocol versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        (config, seen)
    }
}

#[cfg(test)]
mod tests {
    use super::{normalize_fingerprint, parse_pins};

    #[test]
    fn fingerprints() {
        let hex = "AB".repeat(32);
        let colons = vec!["ab"; 32].join(":");
        assert_eq!(normalize_fingerprint(&hex), Some("ab".repeat(32)));
        assert_eq!(
            normalize_fingerprint(&format!("sha256:{colons}")),
            Some("ab".repeat(32))
        );
        assert_eq!(normalize_fingerprint("abc"), None);
    }

    #[test]
    fn pin_sets() {
        let (a, b) = ("ab".repeat(32), "cd".repeat(32));
        assert_eq!(parse_pins(&a), Ok(vec![a.clone()]));
        let colons = vec!["CD"; 32].join(":");
        assert_eq!(
            parse_pins(&format!(" sha256:{a} , SHA256:{colons},{a}")),
            Ok(vec![a.clone(), b.clone()])
        );
        assert_eq!(parse_pins(&format!("{a},nope")), Err("nope".into()));
        assert_eq!(parse_pins(" , "), Err(" , ".into()));
    }
}
