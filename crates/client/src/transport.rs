//! Opening the WebSocket: `ws://`, or `wss://` with the web PKI roots or a pinned certificate
//! fingerprint (SHA-256 of the leaf certificate, like `gateway.remote.tlsFingerprint`).

use crate::error::ClientError;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

pub(crate) type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// TLS settings for `wss://` URLs.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// Pin the gateway's certificate: SHA-256 of the leaf certificate's DER, as 64 hex digits
    /// or 32 colon-separated bytes, optionally prefixed `sha256:`. A pin replaces CA and
    /// host name validation.
    pub fingerprint: Option<String>,
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

pub(crate) async fn open(
    url: &str,
    tls: &TlsOptions,
    budget: Duration,
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
    let connector = match &tls.fingerprint {
        None => None,
        Some(_) if scheme != "wss" => {
            return Err(invalid(
                "a TLS fingerprint requires a wss:// gateway URL".into(),
            ));
        }
        Some(fp) => {
            let pin = normalize_fingerprint(fp).ok_or_else(|| {
                invalid("the TLS fingerprint must be a SHA-256 fingerprint (64 hex digits)".into())
            })?;
            Some(Connector::Rustls(Arc::new(pinned::client_config(pin))))
        }
    };
    let unreachable = |reason: String, timed_out: bool| ClientError::Unreachable {
        url: url.to_owned(),
        reason,
        timed_out,
    };
    let attempt = tokio_tungstenite::connect_async_tls_with_config(request, None, true, connector);
    match tokio::time::timeout(budget, attempt).await {
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
    use std::sync::Arc;

    /// Accepts exactly the certificate whose SHA-256 is `pin`; signatures are still checked.
    #[derive(Debug)]
    struct PinnedVerifier {
        pin: String,
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
            if got == self.pin {
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

    pub(super) fn client_config(pin: String) -> ClientConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = PinnedVerifier {
            pin,
            algorithms: provider.signature_verification_algorithms,
        };
        ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default protocol versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth()
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_fingerprint;

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
}
