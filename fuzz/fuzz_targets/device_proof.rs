//! A device proof as a client sends it in `connect`: the public key (base64 in any of its
//! spellings, or a PEM block), the device id derived from it, and the signature over the v3
//! then the v2 payload. Whatever the bytes, decoding and verifying answer yes or no.
//!
//! Input: connect params with a `device` proof (seeds in fuzz/corpus/device_proof are real
//! connects with valid signatures), or any other text, read as a public key and a signature on
//! two lines.
#![no_main]

use clawgate_protocol::connect::ConnectAuth;
use clawgate_protocol::device::{self, SignedFields};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match serde_json::from_str::<Value>(text) {
        Ok(input) => check_connect(&input),
        Err(_) => {
            let (key, signature) = text.split_once('\n').unwrap_or((text, ""));
            if let Some(key) = device::decode_public_key(key) {
                let id = device::device_id(&key);
                assert_eq!(id.len(), 64);
                let fields = SignedFields {
                    device_id: &id,
                    client_id: "cli",
                    client_mode: "cli",
                    role: "operator",
                    scopes: &[],
                    signed_at_ms: 0,
                    token: "",
                    nonce: "n",
                    platform: Some("linux"),
                    device_family: None,
                };
                device::verify(&key, signature, &fields);
            }
        }
    }
});

/// The key, then the signature over the fields the client declared. The gateway stops at a
/// device id that is not the key's; this goes on to verify anyway, for the coverage.
fn check_connect(params: &Value) {
    let device = &params["device"];
    let str_at = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    let Some(public_key) = str_at(device, "publicKey") else {
        return;
    };
    let Some(key) = device::decode_public_key(&public_key) else {
        return;
    };
    let claimed_id = str_at(device, "id").unwrap_or_default();
    let scopes: Vec<String> = params["scopes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let auth: ConnectAuth = serde_json::from_value(params["auth"].clone()).unwrap_or_default();
    let client = &params["client"];
    let client_id = str_at(client, "id").unwrap_or_default();
    let client_mode = str_at(client, "mode").unwrap_or_default();
    let platform = str_at(client, "platform");
    let device_family = str_at(client, "deviceFamily");
    let role = str_at(params, "role").unwrap_or_else(|| "operator".to_owned());
    let nonce = str_at(device, "nonce").unwrap_or_default();
    let fields = SignedFields {
        device_id: &claimed_id,
        client_id: &client_id,
        client_mode: &client_mode,
        role: &role,
        scopes: &scopes,
        signed_at_ms: device["signedAt"].as_i64().unwrap_or_default(),
        token: auth.signed_token(),
        nonce: nonce.trim(),
        platform: platform.as_deref(),
        device_family: device_family.as_deref(),
    };
    let signature = str_at(device, "signature").unwrap_or_default();
    // The nonce is part of what is signed: a proof that verifies for one challenge must not
    // verify for another.
    if device::verify(&key, &signature, &fields).is_some() {
        let other_nonce = format!("{}x", fields.nonce);
        let replayed = SignedFields {
            nonce: &other_nonce,
            ..fields
        };
        assert_eq!(device::verify(&key, &signature, &replayed), None);
    }
    // Whatever spelling the key came in, its canonical form decodes to the same key.
    assert_eq!(
        device::decode_public_key(&device::b64url(key.as_bytes())),
        Some(key)
    );
}
