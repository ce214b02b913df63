//! Validation of client frames against the real gateway's JSON schemas, with the same error
//! text.
//!
//! The schemas in `schemas/validation-2026.9.6.json` are copied from OpenClaw 2026.9.6. The real
//! gateway validates with TypeBox and formats the errors with its own formatter; this module
//! walks the same keywords in the same order (type; for objects required, additionalProperties,
//! patternProperties, properties; for strings maxLength, minLength; for numbers maximum, minimum;
//! then const, enum, anyOf), collects up to eight errors, and joins their unique texts with "; ".
//! One deviation: an array over its `maxItems` reports only that bound ([`check_array`]).

use serde_json::{Map, Value};
use std::collections::HashSet;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::OnceLock;

/// The schemas clawgate validates client input against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    ConnectParams,
    RequestFrame,
    NodeInvokeParams,
    /// `node.invoke.progress` (from the 2026.9.6 gateway's TypeBox definition; the captures hold
    /// no schema for it).
    NodeInvokeProgressParams,
    WakeParams,
    SendParams,
    AgentParams,
}

impl Schema {
    fn key(self) -> &'static str {
        match self {
            Schema::ConnectParams => "ConnectParamsSchema",
            Schema::RequestFrame => "RequestFrameSchema",
            Schema::NodeInvokeParams => "NodeInvokeParamsSchema",
            Schema::NodeInvokeProgressParams => "NodeInvokeProgressParamsSchema",
            Schema::WakeParams => "WakeParamsSchema",
            Schema::SendParams => "SendParamsSchema",
            Schema::AgentParams => "AgentParamsSchema",
        }
    }
}

/// The real gateway stops collecting after this many errors.
const MAX_ERRORS: usize = 8;

fn schemas() -> &'static Map<String, Value> {
    static SCHEMAS: OnceLock<Map<String, Value>> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        serde_json::from_str(include_str!("../schemas/validation-2026.9.6.json"))
            .expect("embedded schemas are valid JSON")
    })
}

/// Validates `value`; on failure returns the formatted error text (without the
/// `invalid connect params: ` style prefix, which the caller adds).
pub fn validate(schema: Schema, value: &Value) -> Result<(), String> {
    let root = &schemas()[schema.key()];
    let mut errors = Vec::new();
    check(root, value, "", &mut errors);
    if errors.is_empty() {
        return Ok(());
    }
    let mut unique: Vec<String> = Vec::new();
    for e in errors {
        if !unique.contains(&e) {
            unique.push(e);
        }
    }
    Err(unique.join("; "))
}

fn at(path: &str, message: &str) -> String {
    if path.is_empty() {
        message.to_owned()
    } else {
        format!("at {path}: {message}")
    }
}

fn push(errors: &mut Vec<String>, error: String) {
    if errors.len() < MAX_ERRORS {
        errors.push(error);
    }
}

fn type_matches(ty: &str, value: &Value) -> bool {
    match ty {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "number" => value.is_number(),
        "integer" => match value {
            Value::Number(n) => {
                n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
            _ => false,
        },
        _ => true,
    }
}

/// Length in UTF-16 code units would differ for astral characters; the limits we enforce are
/// small ASCII-oriented bounds, so characters are counted as Unicode scalar values.
fn char_len(s: &str) -> u64 {
    s.chars().count() as u64
}

fn check(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    if errors.len() >= MAX_ERRORS {
        return;
    }
    let Some(schema) = schema.as_object() else {
        // `true` / `{}` accept anything; `false` is handled by additionalProperties.
        return;
    };
    if let Some(ty) = schema.get("type").and_then(Value::as_str)
        && !type_matches(ty, value)
    {
        push(errors, at(path, &format!("must be {ty}")));
    }
    if let Value::Object(map) = value {
        check_object(schema, map, path, errors);
    }
    if let Value::Array(items) = value {
        check_array(schema, items, path, errors);
    }
    if let Value::String(s) = value {
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
            && char_len(s) > max
        {
            push(
                errors,
                at(path, &format!("must not have more than {max} characters")),
            );
        }
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
            && char_len(s) < min
        {
            push(
                errors,
                at(path, &format!("must not have fewer than {min} characters")),
            );
        }
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
            && !pattern_matches(pattern, s)
        {
            push(
                errors,
                at(path, &format!("must match pattern \"{pattern}\"")),
            );
        }
    }
    if let Value::Number(n) = value {
        let n = n.as_f64().unwrap_or(f64::NAN);
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
            && n > max
        {
            push(
                errors,
                at(path, &format!("must be <= {}", schema["maximum"])),
            );
        }
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
            && n < min
        {
            push(
                errors,
                at(path, &format!("must be >= {}", schema["minimum"])),
            );
        }
    }
    if let Some(c) = schema.get("const")
        && c != value
    {
        push(errors, at(path, "must be equal to constant"));
    }
    if let Some(Value::Array(allowed)) = schema.get("enum")
        && !allowed.contains(value)
    {
        push(
            errors,
            at(path, "must be equal to one of the allowed values"),
        );
    }
    if let Some(Value::Array(branches)) = schema.get("anyOf") {
        let any = branches.iter().any(|b| {
            let mut scratch = Vec::new();
            check(b, value, path, &mut scratch);
            scratch.is_empty()
        });
        if !any {
            push(errors, at(path, "must match a schema in anyOf"));
        }
    }
}

/// An array over its `maxItems` is refused for that bound alone (the real gateway also lists
/// its bad items and duplicates): a pre-auth frame holds thousands of items, and walking them
/// buys nothing once the frame is refused anyway.
fn check_array(schema: &Map<String, Value>, items: &[Value], path: &str, errors: &mut Vec<String>) {
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
        && items.len() as u64 > max
    {
        push(
            errors,
            at(path, &format!("must not have more than {max} items")),
        );
        return;
    }
    if let Some(item_schema) = schema.get("items") {
        for (i, item) in items.iter().enumerate() {
            if errors.len() >= MAX_ERRORS {
                break;
            }
            check(item_schema, item, &format!("{path}/{i}"), errors);
        }
    }
    if schema.get("uniqueItems") == Some(&Value::Bool(true)) && has_duplicates(items) {
        push(errors, at(path, "must not have duplicate items"));
    }
}

/// Whether two items are equal JSON, in linear time (hashed, as the real gateway does).
fn has_duplicates(items: &[Value]) -> bool {
    let members = RandomState::new();
    let mut seen = HashSet::with_capacity(items.len());
    !items.iter().all(|value| {
        seen.insert(JsonKey {
            value,
            members: &members,
        })
    })
}

/// A JSON value hashed consistently with its equality: object members in any order hash alike
/// (the sum of their hashes, keyed per check so no one can line up collisions in advance).
struct JsonKey<'a> {
    value: &'a Value,
    members: &'a RandomState,
}

impl JsonKey<'_> {
    fn of<'a>(&'a self, value: &'a Value) -> JsonKey<'a> {
        JsonKey {
            value,
            members: self.members,
        }
    }
}

impl PartialEq for JsonKey<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl Eq for JsonKey<'_> {}

impl Hash for JsonKey<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self.value).hash(state);
        match self.value {
            Value::Null => {}
            Value::Bool(b) => b.hash(state),
            Value::Number(n) => n.hash(state),
            Value::String(s) => s.hash(state),
            Value::Array(a) => {
                a.len().hash(state);
                for v in a {
                    self.of(v).hash(state);
                }
            }
            Value::Object(m) => {
                let sum = m.iter().fold(0u64, |sum, (k, v)| {
                    sum.wrapping_add(self.members.hash_one((k, self.of(v))))
                });
                m.len().hash(state);
                sum.hash(state);
            }
        }
    }
}

fn check_object(
    schema: &Map<String, Value>,
    map: &Map<String, Value>,
    path: &str,
    errors: &mut Vec<String>,
) {
    if let Some(Value::Array(required)) = schema.get("required")
        && let Some(missing) = required
            .iter()
            .filter_map(Value::as_str)
            .find(|k| !map.contains_key(*k))
    {
        push(
            errors,
            at(path, &format!("must have required property '{missing}'")),
        );
    }
    let properties = schema.get("properties").and_then(Value::as_object);
    let pattern_properties = schema.get("patternProperties").and_then(Value::as_object);
    if schema.get("additionalProperties") == Some(&Value::Bool(false)) {
        let extra = map.keys().find(|k| {
            !properties.is_some_and(|p| p.contains_key(*k))
                && !pattern_properties
                    .is_some_and(|pp| pp.keys().any(|pat| pattern_matches(pat, k)))
        });
        if let Some(extra) = extra {
            let where_ = if path.is_empty() {
                "at root".to_owned()
            } else {
                format!("at {path}")
            };
            push(errors, format!("{where_}: unexpected property '{extra}'"));
        }
    }
    if let Some(pp) = pattern_properties {
        for (pat, sub) in pp {
            for (k, v) in map {
                if pattern_matches(pat, k) {
                    check(sub, v, &format!("{path}/{k}"), errors);
                }
            }
        }
    }
    if let Some(props) = properties {
        for (k, sub) in props {
            if let Some(v) = map.get(k) {
                check(sub, v, &format!("{path}/{k}"), errors);
            }
        }
    }
}

/// The schemas use only a handful of anchored patterns; each is matched by hand rather than
/// pulling in a regex engine.
fn pattern_matches(pattern: &str, s: &str) -> bool {
    match pattern {
        "^.*$" => true,
        "^[a-f0-9]{64}$" => {
            s.len() == 64
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn connect(v: Value) -> Result<(), String> {
        validate(Schema::ConnectParams, &v)
    }

    #[test]
    fn messages_match_the_captures() {
        assert_eq!(
            connect(json!({"minProtocol":4,"maxProtocol":4})),
            Err("must have required property 'client'".into())
        );
        let mut c = json!({"minProtocol":4,"maxProtocol":4,"client":{"id":"cli","version":"1","platform":"linux","mode":"cli"},
            "device":{"id":"a","publicKey":"b","signature":"c","signedAt":1,"nonce":""}});
        assert_eq!(
            connect(c.clone()),
            Err("at /device/nonce: must not have fewer than 1 characters".into())
        );
        c["device"]["nonce"] = json!("n");
        assert_eq!(connect(c.clone()), Ok(()));
        c["client"]["id"] = json!("nope");
        assert_eq!(
            connect(c.clone()),
            Err("at /client/id: must be equal to one of the allowed values".into())
        );
        c["client"]["id"] = json!("cli");
        c["bogus"] = json!(1);
        assert_eq!(
            connect(c.clone()),
            Err("at root: unexpected property 'bogus'".into())
        );
        c.as_object_mut().unwrap().remove("bogus");
        c["minProtocol"] = json!(0);
        assert_eq!(
            connect(c.clone()),
            Err("at /minProtocol: must be >= 1".into())
        );
        c["minProtocol"] = json!("4");
        assert_eq!(connect(c), Err("at /minProtocol: must be integer".into()));
    }

    #[test]
    fn several_errors_are_joined() {
        let e = connect(json!({"minProtocol":"x","maxProtocol":4,"client":{"id":"cli","version":"1","platform":"linux","mode":"zzz","x":1}}))
            .unwrap_err();
        assert_eq!(
            e,
            "at /minProtocol: must be integer; at /client: unexpected property 'x'; at /client/mode: must be equal to one of the allowed values"
        );
    }

    fn worker_runs(features: Value) -> Result<(), String> {
        let mut c = json!({"minProtocol":4,"maxProtocol":4,
            "client":{"id":"cli","version":"1","platform":"linux","mode":"cli"}});
        c["workerRuns"] = json!({"bundleHash": "0".repeat(64), "openclawVersion": "1",
            "protocolFeatures": features});
        connect(c)
    }

    #[test]
    fn an_array_over_max_items_reports_that_bound_alone() {
        // Duplicates and bad items beyond the bound are not looked at.
        let mut features = vec![json!("x"); 200];
        features.push(json!(""));
        assert_eq!(
            worker_runs(Value::Array(features)),
            Err("at /workerRuns/protocolFeatures: must not have more than 64 items".into())
        );
    }

    #[test]
    fn duplicates_are_found_by_json_equality() {
        let dup = || Err("at /workerRuns/protocolFeatures: must not have duplicate items".into());
        assert_eq!(worker_runs(json!(["a", "b", "a"])), dup());
        assert_eq!(worker_runs(json!(["a", "b", "c"])), Ok(()));
        // Items of any JSON type: numbers, nested arrays, objects whatever their member order.
        let mixed = |v: Value| has_duplicates(v.as_array().unwrap());
        assert!(mixed(json!([1, 2, 1])));
        assert!(!mixed(json!([1, 1.5, "1"])));
        assert!(mixed(json!([[1, {"a": 1}], [1, {"a": 1}]])));
        assert!(mixed(json!([{"a": 1, "b": [2]}, {"b": [2], "a": 1}])));
        assert!(!mixed(json!([{"a": 1, "b": 2}, {"a": 2, "b": 1}])));
        assert!(!mixed(json!([null, false, 0, "", [], {}])));
    }

    #[test]
    fn node_invoke_requires_an_idempotency_key() {
        assert_eq!(
            validate(
                Schema::NodeInvokeParams,
                &json!({"nodeId":"n","command":"system.which","params":{}})
            ),
            Err("must have required property 'idempotencyKey'".into())
        );
    }

    /// The texts the real gateway answered to bad `node.invoke.progress` params (observed).
    #[test]
    fn node_invoke_progress_errors_match_the_real_gateway() {
        let check = |v: Value| validate(Schema::NodeInvokeProgressParams, &v);
        assert_eq!(
            check(json!({"invokeId":"i","nodeId":"n","seq":0,"chunk":""})),
            Ok(())
        );
        assert_eq!(
            check(json!({"invokeId":"i","nodeId":"n","seq":0,"chunk":"x".repeat(16_385)})),
            Err("at /chunk: must not have more than 16384 characters".into())
        );
        assert_eq!(
            check(json!({"invokeId":"i","nodeId":"n","seq":-1,"chunk":"x"})),
            Err("at /seq: must be >= 0".into())
        );
        assert_eq!(
            check(json!({"invokeId":"i","nodeId":"n"})),
            Err("must have required property 'seq'".into())
        );
        assert_eq!(
            check(json!({"invokeId":"i","nodeId":"n","seq":0,"chunk":"x","foo":1})),
            Err("at root: unexpected property 'foo'".into())
        );
        assert_eq!(
            check(json!({"invokeId":"","nodeId":"n","seq":0,"chunk":"x"})),
            Err("at /invokeId: must not have fewer than 1 characters".into())
        );
    }
}
