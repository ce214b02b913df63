//! The node leg of `node.invoke`, as OpenClaw 2026.9.6 puts it on the wire: the gateway's
//! `node.invoke.request`, `node.invoke.cancel` and `node.invoke.input` events, and the node's
//! `node.invoke.result` and `node.invoke.progress` requests. The gateway builds and reads them
//! here, and so does the node host; serialization keeps the real gateway's field order and its
//! `paramsJSON: null` for an invoke without params (the real `openclaw node run` reads it).

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// Event: the gateway asks a node to run a command.
pub const REQUEST_EVENT: &str = "node.invoke.request";
/// Event: the gateway gave up on an invoke (its caller's deadline passed or it went away).
pub const CANCEL_EVENT: &str = "node.invoke.cancel";
/// Event: streaming input for a pending invoke.
pub const INPUT_EVENT: &str = "node.invoke.input";
/// Method: a node's answer to an invoke.
pub const RESULT_METHOD: &str = "node.invoke.result";
/// Method: a chunk of an invoke's output while it runs.
pub const PROGRESS_METHOD: &str = "node.invoke.progress";

/// `node.invoke.request`'s payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvokeRequest {
    /// The invoke's id; the result names it.
    pub id: String,
    pub node_id: String,
    pub command: String,
    /// The command's params, serialized; `null` when the caller gave none.
    #[serde(rename = "paramsJSON", default)]
    pub params_json: Option<String>,
    /// What remains of the caller's budget, in milliseconds (`0`: no limit).
    #[serde(
        default,
        deserialize_with = "lenient_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout_ms: Option<u64>,
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub idempotency_key: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub session_key: Option<String>,
}

impl InvokeRequest {
    /// Reads an event payload. `id`, `nodeId` and `command` must be non-blank strings (they
    /// are trimmed); `paramsJSON` that is not a string falls back to a `params` value sent
    /// instead, serialized. The error says what is wrong.
    pub fn from_payload(payload: &Value) -> Result<InvokeRequest, String> {
        let mut normalized = payload.clone();
        let Some(map) = normalized.as_object_mut() else {
            return Err(format!("{REQUEST_EVENT} payload is not an object"));
        };
        for key in ["id", "nodeId", "command"] {
            let value = map
                .get(key)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| format!("{REQUEST_EVENT} without a string {key}"))?;
            let value = value.to_owned();
            map.insert(key.into(), Value::String(value));
        }
        if !matches!(map.get("paramsJSON"), Some(Value::String(_))) {
            let params = map
                .get("params")
                .filter(|p| !p.is_null())
                .map(|p| Value::String(p.to_string()));
            map.insert("paramsJSON".into(), params.unwrap_or(Value::Null));
        }
        serde_json::from_value(normalized).map_err(|e| format!("{REQUEST_EVENT}: {e}"))
    }
}

/// `node.invoke.cancel`'s payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvokeCancel {
    pub invoke_id: String,
    pub node_id: String,
}

/// `node.invoke.input`'s payload: the `seq`-th input frame of a pending invoke.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvokeInput {
    pub id: String,
    pub node_id: String,
    pub seq: u64,
    #[serde(rename = "payloadJSON")]
    pub payload_json: String,
}

/// An invoke's failure, as the node reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvokeError {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `node.invoke.result`'s params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InvokeResult {
    pub id: String,
    pub node_id: String,
    pub ok: bool,
    /// The result as a JSON value (present even when it is `null`).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub payload: Option<Value>,
    /// The result serialized, which is what the real node host sends.
    #[serde(
        rename = "payloadJSON",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub payload_json: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<InvokeError>,
}

impl InvokeResult {
    /// A success carrying `payload_json`.
    pub fn success(id: &str, node_id: &str, payload_json: String) -> InvokeResult {
        InvokeResult {
            id: id.into(),
            node_id: node_id.into(),
            ok: true,
            payload: None,
            payload_json: Some(payload_json),
            error: None,
        }
    }

    /// A failure with `code` and `message`.
    pub fn failure(id: &str, node_id: &str, code: &str, message: &str) -> InvokeResult {
        InvokeResult {
            id: id.into(),
            node_id: node_id.into(),
            ok: false,
            payload: None,
            payload_json: None,
            error: Some(InvokeError {
                code: Some(code.into()),
                message: Some(message.into()),
            }),
        }
    }

    /// Reads request params the way the real gateway does: `payloadJSON: null` and
    /// `error: null` count as absent, and a `payloadJSON` that is not a string is taken as
    /// `payload` (when none is given). The error text names what is wrong.
    pub fn from_params(params: &Value) -> Result<InvokeResult, String> {
        let mut normalized = params.clone();
        if let Some(map) = normalized.as_object_mut() {
            match map.get("payloadJSON") {
                Some(Value::Null) => {
                    map.remove("payloadJSON");
                }
                Some(Value::String(_)) | None => {}
                Some(_) => {
                    let moved = map.remove("payloadJSON");
                    if !map.contains_key("payload") {
                        map.insert("payload".into(), moved.unwrap_or(Value::Null));
                    }
                }
            }
            if map.get("error") == Some(&Value::Null) {
                map.remove("error");
            }
        }
        serde_json::from_value(normalized).map_err(|e| e.to_string())
    }
}

/// `node.invoke.progress`'s params (checked against the schema first, see
/// [`crate::schema::Schema::NodeInvokeProgressParams`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvokeProgress {
    pub invoke_id: String,
    pub node_id: String,
    pub seq: u64,
    pub chunk: String,
}

/// A field that is there, even as `null`, is `Some`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// A non-negative integer, else nothing (a float, a negative number, another type).
fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(Value::deserialize(d)?.as_u64())
}

/// A string, else nothing.
fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_request_without_params_says_null_and_omits_what_is_absent() {
        let r = InvokeRequest {
            id: "i".into(),
            node_id: "n".into(),
            command: "system.which".into(),
            params_json: None,
            timeout_ms: Some(30_000),
            idempotency_key: None,
            session_key: None,
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"id":"i","nodeId":"n","command":"system.which","paramsJSON":null,"timeoutMs":30000}"#
        );
    }

    #[test]
    fn requests_are_read_leniently_and_refused_without_their_names() {
        let r = InvokeRequest::from_payload(&json!({"id": " i ", "nodeId": "n", "command": "c", "params": {"a": 1}, "timeoutMs": 1.5, "idempotencyKey": 7})).unwrap();
        assert_eq!(r.id, "i");
        assert_eq!(r.params_json.as_deref(), Some(r#"{"a":1}"#));
        assert_eq!((r.timeout_ms, r.idempotency_key), (None, None));
        let r = InvokeRequest::from_payload(
            &json!({"id": "i", "nodeId": "n", "command": "c", "paramsJSON": null}),
        )
        .unwrap();
        assert_eq!(r.params_json, None);
        for bad in [
            json!({"nodeId": "n", "command": "c"}),
            json!({"id": " ", "nodeId": "n", "command": "c"}),
            json!({"id": "i", "nodeId": 3, "command": "c"}),
            json!("nope"),
        ] {
            assert!(InvokeRequest::from_payload(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn results_are_normalized_like_the_real_gateway() {
        let r = InvokeResult::from_params(
            &json!({"id": "i", "nodeId": "n", "ok": true, "payloadJSON": null, "error": null}),
        )
        .unwrap();
        assert_eq!((r.payload, r.payload_json, r.error), (None, None, None));
        let r = InvokeResult::from_params(
            &json!({"id": "i", "nodeId": "n", "ok": true, "payloadJSON": {"a": 1}}),
        )
        .unwrap();
        assert_eq!(r.payload, Some(json!({"a": 1})));
        let r = InvokeResult::from_params(
            &json!({"id": "i", "nodeId": "n", "ok": true, "payload": null}),
        )
        .unwrap();
        assert_eq!(r.payload, Some(Value::Null));
        let e = InvokeResult::from_params(&json!({"id": "i", "nodeId": "n", "ok": true, "x": 1}))
            .unwrap_err();
        assert!(e.contains("unknown field `x`"), "{e}");
        assert!(InvokeResult::from_params(&json!({"id": "i", "nodeId": "n"})).is_err());
    }

    #[test]
    fn progress_and_input_have_the_reference_shapes() {
        let p = json!({"invokeId": "i", "nodeId": "n", "seq": 2, "chunk": "out"});
        let typed: InvokeProgress = serde_json::from_value(p.clone()).unwrap();
        assert_eq!((typed.seq, typed.chunk.as_str()), (2, "out"));
        assert_eq!(serde_json::to_value(&typed).unwrap(), p);
        let input = InvokeInput {
            id: "i".into(),
            node_id: "n".into(),
            seq: 0,
            payload_json: "{}".into(),
        };
        assert_eq!(
            serde_json::to_string(&input).unwrap(),
            r#"{"id":"i","nodeId":"n","seq":0,"payloadJSON":"{}"}"#
        );
    }

    #[test]
    fn built_results_serialize_like_the_real_node_host() {
        assert_eq!(
            serde_json::to_string(&InvokeResult::success("i", "n", "{}".into())).unwrap(),
            r#"{"id":"i","nodeId":"n","ok":true,"payloadJSON":"{}"}"#
        );
        assert_eq!(
            serde_json::to_string(&InvokeResult::failure("i", "n", "E", "m")).unwrap(),
            r#"{"id":"i","nodeId":"n","ok":false,"error":{"code":"E","message":"m"}}"#
        );
    }
}
