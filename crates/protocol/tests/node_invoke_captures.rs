//! The `node.invoke` payloads against frames captured from OpenClaw 2026.9.6 (its gateway's
//! `node.invoke.request`/`node.invoke.cancel` events, its node host's `node.invoke.result`s):
//! each one reads into its type and serializes back to the same bytes.

use clawgate_protocol::node_invoke::{
    CANCEL_EVENT, InvokeCancel, InvokeRequest, InvokeResult, REQUEST_EVENT, RESULT_METHOD,
};
use serde_json::Value;

fn frames() -> Vec<Value> {
    include_str!("fixtures/node-invoke-frames.jsonl")
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["frame"].clone())
        .collect()
}

/// `value` read as `T` and written again gives the bytes it was captured with.
fn round_trips<T: serde::Serialize>(typed: &T, value: &Value) {
    assert_eq!(
        serde_json::to_string(typed).unwrap(),
        serde_json::to_string(value).unwrap()
    );
}

#[test]
fn captured_invoke_frames_round_trip_byte_for_byte() {
    let (mut requests, mut results, mut cancels) = (0, 0, 0);
    for frame in frames() {
        match (frame["event"].as_str(), frame["method"].as_str()) {
            (Some(REQUEST_EVENT), _) => {
                let payload = &frame["payload"];
                let typed = InvokeRequest::from_payload(payload).unwrap();
                assert!(typed.params_json.is_some() && typed.timeout_ms.is_some());
                round_trips(&typed, payload);
                let strict: InvokeRequest = serde_json::from_value(payload.clone()).unwrap();
                assert_eq!(strict, typed);
                requests += 1;
            }
            (Some(CANCEL_EVENT), _) => {
                let payload = &frame["payload"];
                let typed: InvokeCancel = serde_json::from_value(payload.clone()).unwrap();
                round_trips(&typed, payload);
                cancels += 1;
            }
            (_, Some(RESULT_METHOD)) => {
                let params = &frame["params"];
                let typed = InvokeResult::from_params(params).unwrap();
                round_trips(&typed, params);
                // What the node host builds for the same outcome is the same bytes.
                let built = match (&typed.payload_json, &typed.error) {
                    (Some(json), None) => {
                        InvokeResult::success(&typed.id, &typed.node_id, json.clone())
                    }
                    (None, Some(e)) => InvokeResult::failure(
                        &typed.id,
                        &typed.node_id,
                        e.code.as_deref().unwrap(),
                        e.message.as_deref().unwrap(),
                    ),
                    other => panic!("{other:?}"),
                };
                round_trips(&built, params);
                results += 1;
            }
            _ => {}
        }
    }
    assert_eq!((requests, results, cancels), (15, 14, 1));
}
