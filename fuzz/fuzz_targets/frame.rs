//! An inbound WebSocket text message as the gateway reads it after the handshake: parsed as a
//! `req` frame, answered (a result or the `INVALID_REQUEST` error), and its params checked
//! against every method schema the gateway validates.
//!
//! Seeds: fuzz/corpus/frame (client frames from real OpenClaw traffic).
#![no_main]

use clawgate_protocol::errors;
use clawgate_protocol::frames::{self, FrameError};
use clawgate_protocol::schema::{self, Schema};
use libfuzzer_sys::fuzz_target;

const METHOD_SCHEMAS: [Schema; 5] = [
    Schema::NodeInvokeParams,
    Schema::NodeInvokeProgressParams,
    Schema::WakeParams,
    Schema::SendParams,
    Schema::AgentParams,
];

fuzz_target!(|data: &[u8]| {
    // WebSocket text messages are UTF-8 by the time the gateway sees them.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match frames::parse_request(text) {
        Ok(request) => {
            assert!(!request.id.is_empty(), "a parsed request has an id");
            // The answer echoes the id; it must serialize whatever the id holds.
            let answer = frames::response_ok(&request.id, &request.params);
            assert!(answer.starts_with(r#"{"type":"res","id":"#));
            if let Some(params) = &request.params {
                for schema in METHOD_SCHEMAS {
                    if let Err(reason) = schema::validate(schema, params) {
                        let error = errors::invalid_params(&request.method, &reason);
                        frames::response_err(&request.id, &error);
                    }
                }
            }
        }
        Err(FrameError::Invalid { id, reason }) => {
            assert!(!reason.is_empty(), "a refusal says why");
            let error = errors::invalid_request_frame(&reason);
            frames::response_err(id.as_deref().unwrap_or("invalid"), &error);
        }
        Err(FrameError::NotJson) => {}
    }
});
