//! The three frame kinds: `req` (client → server), `res` and `event` (server → client).
//!
//! Frames are closed JSON objects sent as WebSocket text messages. Outgoing frames are written
//! with their keys in the order the real gateway uses, so captures and our output diff cleanly.

use crate::errors::ErrorShape;
use serde::Serialize;
use serde_json::Value;

/// A parsed `req` frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub id: String,
    pub method: String,
    pub params: Option<Value>,
}

/// Why an incoming text message is not a usable request.
#[derive(Debug, Clone, PartialEq)]
pub enum FrameError {
    /// Not JSON at all. The real gateway closes 1000 without answering.
    NotJson,
    /// JSON, but not a valid `req` frame; `id` is kept when there was a usable one so the
    /// error can be answered.
    Invalid { id: Option<String>, reason: String },
}

/// Parses and validates a client frame against the closed `RequestFrame` schema.
pub fn parse_request(text: &str) -> Result<Request, FrameError> {
    let value: Value = serde_json::from_str(text).map_err(|_| FrameError::NotJson)?;
    request_from_value(value)
}

/// Validates an already-parsed JSON value as a `req` frame.
pub fn request_from_value(value: Value) -> Result<Request, FrameError> {
    let id = value
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    if let Err(reason) = crate::schema::validate(crate::schema::Schema::RequestFrame, &value) {
        return Err(FrameError::Invalid { id, reason });
    }
    // The schema has checked all of this; a frame it let through by mistake is still answered
    // as invalid, never a panic.
    let invalid = |id: Option<String>, reason: &str| FrameError::Invalid {
        id,
        reason: reason.to_owned(),
    };
    let Value::Object(mut map) = value else {
        return Err(invalid(id, "must be object"));
    };
    let Some(Value::String(method)) = map.remove("method") else {
        return Err(invalid(id, "at /method: must be string"));
    };
    let Some(id) = id else {
        return Err(invalid(
            None,
            "at /id: must not have fewer than 1 characters",
        ));
    };
    Ok(Request {
        id,
        method,
        params: map.remove("params"),
    })
}

#[derive(Serialize)]
struct ResFrame<'a, P: Serialize> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<&'a P>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a ErrorShape>,
}

#[derive(Serialize)]
struct EventFrame<'a, P: Serialize> {
    #[serde(rename = "type")]
    kind: &'static str,
    event: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<&'a P>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    #[serde(rename = "stateVersion", skip_serializing_if = "Option::is_none")]
    state_version: Option<&'a StateVersion>,
}

/// `stateVersion` riding on `presence` and `health` events and in the hello snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StateVersion {
    pub presence: u64,
    pub health: u64,
}

/// `{"type":"res","id":…,"ok":true,"payload":…}`.
pub fn response_ok<P: Serialize>(id: &str, payload: &P) -> String {
    to_json(&ResFrame {
        kind: "res",
        id,
        ok: true,
        payload: Some(payload),
        error: None,
    })
}

/// `{"type":"res","id":…,"ok":false,"error":…}`.
pub fn response_err(id: &str, error: &ErrorShape) -> String {
    to_json(&ResFrame::<Value> {
        kind: "res",
        id,
        ok: false,
        payload: None,
        error: Some(error),
    })
}

/// A failed final that still carries a payload (the real gateway does this for `agent`).
pub fn response_err_with_payload<P: Serialize>(
    id: &str,
    payload: &P,
    error: &ErrorShape,
) -> String {
    to_json(&ResFrame {
        kind: "res",
        id,
        ok: false,
        payload: Some(payload),
        error: Some(error),
    })
}

/// An event frame. `seq` is set only on broadcasts; targeted events carry none.
pub fn event<P: Serialize>(event: &str, payload: &P, seq: Option<u64>) -> String {
    to_json(&EventFrame {
        kind: "event",
        event,
        payload: Some(payload),
        seq,
        state_version: None,
    })
}

/// An event frame carrying `stateVersion` (used by `presence` and `health`).
pub fn event_with_state<P: Serialize>(
    event: &str,
    payload: &P,
    seq: Option<u64>,
    state_version: &StateVersion,
) -> String {
    to_json(&EventFrame {
        kind: "event",
        event,
        payload: Some(payload),
        seq,
        state_version: Some(state_version),
    })
}

fn to_json<T: Serialize>(value: &T) -> String {
    // Serializing plain structs of strings, numbers and `Value`s cannot fail.
    serde_json::to_string(value).expect("frame serialization")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::ErrorCode;
    use serde_json::json;

    #[test]
    fn response_frames_have_the_wire_key_order() {
        assert_eq!(
            response_ok("1", &json!({"ok": true})),
            r#"{"type":"res","id":"1","ok":true,"payload":{"ok":true}}"#
        );
        let err = ErrorShape::new(ErrorCode::InvalidRequest, "unknown method: x");
        assert_eq!(
            response_err("m2", &err),
            r#"{"type":"res","id":"m2","ok":false,"error":{"code":"INVALID_REQUEST","message":"unknown method: x"}}"#
        );
        assert_eq!(
            event("tick", &json!({"ts": 5}), Some(1)),
            r#"{"type":"event","event":"tick","payload":{"ts":5},"seq":1}"#
        );
    }

    #[test]
    fn request_frames_are_closed_objects() {
        let ok = parse_request(r#"{"type":"req","id":"a","method":"health","params":{}}"#).unwrap();
        assert_eq!(ok.method, "health");
        assert_eq!(ok.params, Some(json!({})));
        assert_eq!(parse_request("hello"), Err(FrameError::NotJson));
        let extra = parse_request(r#"{"type":"req","id":"a","method":"health","x":1}"#);
        assert!(matches!(extra, Err(FrameError::Invalid { id: Some(ref id), .. }) if id == "a"));
        let no_id = parse_request(r#"{"type":"req","method":"health"}"#);
        assert!(matches!(no_id, Err(FrameError::Invalid { id: None, .. })));
    }
}
