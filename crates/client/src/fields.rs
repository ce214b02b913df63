//! Reading the gateway's JSON answers leniently, as listings and reports do: a missing or
//! mistyped field reads as empty.

use serde_json::Value;

/// The string at `key` of a gateway object, `""` when absent.
pub fn field<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The strings of a gateway array (others skipped), empty when absent.
pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}
