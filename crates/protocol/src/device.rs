//! Device identity: Ed25519 keys, the device id, and the v3/v2 signature payloads a client signs
//! over the server's challenge.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

/// DER prefix of an Ed25519 SubjectPublicKeyInfo; the raw 32-byte key follows it.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The fields a device signs, in payload order.
#[derive(Debug, Clone, Copy)]
pub struct SignedFields<'a> {
    pub device_id: &'a str,
    pub client_id: &'a str,
    pub client_mode: &'a str,
    pub role: &'a str,
    pub scopes: &'a [String],
    pub signed_at_ms: i64,
    /// `auth.token ?? auth.deviceToken ?? auth.bootstrapToken ?? ""`.
    pub token: &'a str,
    pub nonce: &'a str,
    pub platform: Option<&'a str>,
    pub device_family: Option<&'a str>,
}

fn normalize_meta(v: Option<&str>) -> String {
    v.map(|s| s.trim().to_ascii_lowercase()).unwrap_or_default()
}

/// `v3|id|client|mode|role|scopes|signedAt|token|nonce|platform|deviceFamily` — what every
/// 2026.9.6 client signs.
pub fn payload_v3(f: &SignedFields<'_>) -> String {
    format!(
        "v3|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}",
        f.device_id,
        f.client_id,
        f.client_mode,
        f.role,
        f.scopes.join(","),
        f.signed_at_ms,
        f.token,
        f.nonce,
        normalize_meta(f.platform),
        normalize_meta(f.device_family)
    )
}

/// The older v2 payload: v3 without platform and device family.
pub fn payload_v2(f: &SignedFields<'_>) -> String {
    format!(
        "v2|{}|{}|{}|{}|{}|{}|{}|{}",
        f.device_id,
        f.client_id,
        f.client_mode,
        f.role,
        f.scopes.join(","),
        f.signed_at_ms,
        f.token,
        f.nonce
    )
}

/// Lowercase hex SHA-256 of the raw public key.
pub fn device_id(public_key: &VerifyingKey) -> String {
    hex(&Sha256::digest(public_key.as_bytes()))
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

/// Base64url without padding, the wire form of keys and signatures.
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn decode_any_base64(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    [&URL_SAFE_NO_PAD, &URL_SAFE, &STANDARD_NO_PAD, &STANDARD]
        .iter()
        .find_map(|engine| engine.decode(s).ok())
}

/// Decodes a public key sent as raw base64url (the usual form), padded or standard base64, or
/// an SPKI PEM block.
pub fn decode_public_key(text: &str) -> Option<VerifyingKey> {
    let text = text.trim();
    let der_or_raw = if let Some(body) = text.strip_prefix("-----BEGIN PUBLIC KEY-----") {
        let body = body.split("-----END PUBLIC KEY-----").next()?;
        let joined: String = body.split_whitespace().collect();
        decode_any_base64(&joined)?
    } else {
        decode_any_base64(text)?
    };
    let raw: [u8; 32] = match der_or_raw.len() {
        32 => der_or_raw.try_into().ok()?,
        44 if der_or_raw[..12] == ED25519_SPKI_PREFIX => der_or_raw[12..].try_into().ok()?,
        _ => return None,
    };
    VerifyingKey::from_bytes(&raw).ok()
}

/// Which payload version a valid signature was made over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadVersion {
    V3,
    V2,
}

/// Verifies `signature` (base64url) over the v3 payload, then the v2 one.
pub fn verify(
    key: &VerifyingKey,
    signature: &str,
    fields: &SignedFields<'_>,
) -> Option<PayloadVersion> {
    let bytes = decode_any_base64(signature)?;
    let sig = Signature::from_slice(&bytes).ok()?;
    if key.verify(payload_v3(fields).as_bytes(), &sig).is_ok() {
        return Some(PayloadVersion::V3);
    }
    if key.verify(payload_v2(fields).as_bytes(), &sig).is_ok() {
        return Some(PayloadVersion::V2);
    }
    None
}

/// Signs the v3 payload; returns the base64url signature.
pub fn sign_v3(key: &SigningKey, fields: &SignedFields<'_>) -> String {
    b64url(&key.sign(payload_v3(fields).as_bytes()).to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The node-host payload recorded from the real gateway's traffic.
    #[test]
    fn payload_matches_the_recorded_node_host() {
        let scopes: Vec<String> = vec![];
        let f = SignedFields {
            device_id: "b4db4dfd45df8909193fead25376558709ef55bb3f1d32d3bb19e0abd57a2eb4",
            client_id: "node-host",
            client_mode: "node",
            role: "node",
            scopes: &scopes,
            signed_at_ms: 1795513712676,
            token: "t1",
            nonce: "eb0f0b66-0f57-4d08-9c4e-0dbeb84c3758",
            platform: Some("linux"),
            device_family: Some("Linux"),
        };
        assert_eq!(
            payload_v3(&f),
            "v3|b4db4dfd45df8909193fead25376558709ef55bb3f1d32d3bb19e0abd57a2eb4|node-host|node|node||1795513712676|t1|eb0f0b66-0f57-4d08-9c4e-0dbeb84c3758|linux|linux"
        );
        let key = decode_public_key("ysAsG_jLelf4Hum82Spm92QpzEbAZdS52sORDGiPi60").unwrap();
        assert_eq!(device_id(&key), f.device_id);
    }

    #[test]
    fn sign_then_verify_and_pem_keys() {
        let sk = SigningKey::from_bytes(&[7u8; 32]);
        let vk = sk.verifying_key();
        let id = device_id(&vk);
        let scopes = vec!["operator.read".to_string()];
        let f = SignedFields {
            device_id: &id,
            client_id: "cli",
            client_mode: "cli",
            role: "operator",
            scopes: &scopes,
            signed_at_ms: 5,
            token: "",
            nonce: "n",
            platform: Some(" Linux "),
            device_family: None,
        };
        let sig = sign_v3(&sk, &f);
        assert_eq!(sig.len(), 86);
        assert_eq!(verify(&vk, &sig, &f), Some(PayloadVersion::V3));
        let v2 = b64url(&sk.sign(payload_v2(&f).as_bytes()).to_bytes());
        assert_eq!(verify(&vk, &v2, &f), Some(PayloadVersion::V2));
        let other = SignedFields { nonce: "m", ..f };
        assert_eq!(verify(&vk, &sig, &other), None);

        let mut der = ED25519_SPKI_PREFIX.to_vec();
        der.extend_from_slice(vk.as_bytes());
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            STANDARD.encode(&der)
        );
        assert_eq!(decode_public_key(&pem), Some(vk));
        assert_eq!(decode_public_key(&b64url(vk.as_bytes())), Some(vk));
        assert_eq!(decode_public_key("not a key"), None);
    }
}
