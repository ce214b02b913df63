//! `config.get` support: hiding secrets and hashing the document.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::gateway_config::parse_secret_ref;
use crate::secret::REDACTED;

/// Whether a key names a secret, case-insensitively: OpenClaw's patterns (`…token`,
/// `…password…`, `…secret…`, `…api key…`) plus private keys and passphrases. Matching by
/// name rather than by a list of known paths covers plugin and channel sections clawgate
/// does not model (`channels.telegram.botToken`, `models.providers.x.apiKey`).
fn is_secret_key(key: &str) -> bool {
    let k: String = key
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    k.ends_with("token")
        || k.contains("password")
        || k.contains("secret")
        || k.contains("apikey")
        || k.contains("privatekey")
        || k.contains("passphrase")
}

/// A copy of `raw` with every secret-bearing value replaced by
/// `"__OPENCLAW_REDACTED__"` ([`REDACTED`]), as OpenClaw's `config.get` shows it:
///
/// * string and number values (also inside arrays) under a secret-looking key
///   (`token`, `botToken`, `password`, `clientSecret`, `apiKey`, `privateKey`, …);
/// * SecretRef objects (`{source, provider, id}`) anywhere.
///
/// Objects under a secret-looking key are walked rather than replaced whole, so a section
/// like `secrets: { providers: … }` keeps its shape.
pub fn redacted(raw: &Value) -> Value {
    redact_value(raw, false)
}

fn redact_value(value: &Value, secret_context: bool) -> Value {
    match value {
        Value::Object(obj) if parse_secret_ref(obj).is_some() => Value::String(REDACTED.to_owned()),
        Value::Object(obj) => Value::Object(
            obj.iter()
                .map(|(k, v)| (k.clone(), redact_value(v, is_secret_key(k))))
                .collect::<Map<_, _>>(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| redact_value(v, secret_context))
                .collect(),
        ),
        Value::String(_) | Value::Number(_) if secret_context => Value::String(REDACTED.to_owned()),
        other => other.clone(),
    }
}

/// SHA-256 (lowercase hex) of `raw` in canonical JSON: object keys sorted, no whitespace.
/// Key order and formatting of the file therefore do not change the hash; any value change
/// (secrets included) does, which is what an optimistic-concurrency `baseHash` needs.
pub fn config_hash(raw: &Value) -> String {
    let mut canonical = String::new();
    write_canonical(raw, &mut canonical);
    let digest = Sha256::digest(canonical.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(obj) => {
            let mut keys: Vec<&String> = obj.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                write_canonical(&obj[k.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_keys() {
        for k in [
            "token",
            "botToken",
            "accessToken",
            "password",
            "clientSecret",
            "secret",
            "apiKey",
            "api_key",
            "API-KEY",
            "privateKey",
            "keyPassphrase",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in ["maxTokens", "tokenFile", "port", "keyPath", "mode", "id"] {
            assert!(!is_secret_key(k), "{k}");
        }
    }

    #[test]
    fn hash_ignores_key_order_but_not_values() {
        let a = json!({"b": 1, "a": {"y": [1, 2], "x": "s"}});
        let b = json!({"a": {"x": "s", "y": [1, 2]}, "b": 1});
        let c = json!({"a": {"x": "t", "y": [1, 2]}, "b": 1});
        assert_eq!(config_hash(&a), config_hash(&b));
        assert_ne!(config_hash(&a), config_hash(&c));
        assert_eq!(config_hash(&a).len(), 64);
        // sha256("{}")
        assert_eq!(
            config_hash(&json!({})),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }
}
