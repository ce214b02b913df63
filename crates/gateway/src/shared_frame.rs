//! A broadcast event frame serialized once for all its recipients.
//!
//! Each connection numbers its broadcasts with its own `seq`, so the frames differ only in
//! that number, which comes last: `{"type":"event","event":…,"payload":…,"seq":N}`. The part
//! before it (a `node.hostStats` payload may be 25 MB) is serialized once and shared; each
//! recipient adds only `,"seq":N}`, and the socket writer sends both parts as one WebSocket
//! frame. This is what the real gateway does with its per-client frames (it serializes the
//! payload fragment once per broadcast).

use clawgate_protocol::frames;
use serde_json::Value;
use std::sync::Arc;

/// One recipient's copy of a broadcast event: the shared head and its own `seq`.
#[derive(Debug)]
pub(crate) struct SharedEvent {
    /// `{"type":"event","event":…,"payload":…}`, the same allocation for every recipient.
    frame: Arc<str>,
    /// `,"seq":N}`.
    tail: String,
}

impl SharedEvent {
    /// Serializes `event` with `payload` once, for [`SharedEvent::with_seq`].
    pub(crate) fn serialize(event: &str, payload: &Value) -> Arc<str> {
        frames::event(event, payload, None).into()
    }

    /// The frame of `serialized` (from [`SharedEvent::serialize`]) numbered `seq`.
    pub(crate) fn with_seq(serialized: &Arc<str>, seq: u64) -> SharedEvent {
        SharedEvent {
            frame: serialized.clone(),
            tail: format!(",\"seq\":{seq}}}"),
        }
    }

    /// The frame's bytes, in order: the shared head (without its closing brace), then the tail.
    pub(crate) fn parts(&self) -> [&[u8]; 2] {
        let head = self.frame.strip_suffix('}').unwrap_or(&self.frame);
        [head.as_bytes(), self.tail.as_bytes()]
    }

    /// The frame's length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.parts().iter().map(|p| p.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{Outbound, Registry, Session};
    use clawgate_protocol::connect::{ClientInfo, Role};
    use serde_json::json;

    fn operator() -> Session {
        Session {
            role: Role::Operator,
            scopes: vec!["operator.read".into()],
            client: ClientInfo {
                mode: "cli".into(),
                ..ClientInfo::default()
            },
            ip: "127.0.0.1".into(),
            device_id: None,
            connected_at_ms: 0,
            caps: Vec::new(),
            commands: Vec::new(),
            path_env: None,
            legacy_node: false,
        }
    }

    fn text(parts: [&[u8]; 2]) -> Value {
        serde_json::from_slice(&[parts[0], parts[1]].concat()).unwrap()
    }

    /// A big broadcast reaches every subscriber as its own frame with its own `seq`, all of
    /// them sharing the one serialized payload.
    #[tokio::test]
    async fn a_broadcast_is_serialized_once_for_all_recipients() {
        let registry = Registry::new(usize::MAX, json!({}));
        let conns: Vec<_> = (0..4)
            .map(|i| {
                let (_, conn) = registry.register();
                registry.attach_session(&conn, Arc::new(operator()));
                // Each connection is at a different point of its own numbering.
                for _ in 0..i {
                    registry.broadcast("tick", &json!({}));
                }
                conn
            })
            .collect();
        let stats = "x".repeat(1 << 20);
        registry.broadcast(
            "node.hostStats",
            &json!({"nodeId": "n", "hostStats": {"blob": stats}}),
        );
        let mut shared: Vec<Arc<str>> = Vec::new();
        for conn in &conns {
            let mut earlier = 0;
            let event = loop {
                match conn.next_outbound().await {
                    Outbound::Event(e) if e.frame.contains("node.hostStats") => break e,
                    _ => earlier += 1,
                }
            };
            let frame = text(event.parts());
            assert_eq!(frame["event"], "node.hostStats");
            assert_eq!(frame["seq"], earlier + 1);
            assert_eq!(
                frame["payload"]["hostStats"]["blob"]
                    .as_str()
                    .unwrap()
                    .len(),
                1 << 20
            );
            assert_eq!(
                event.len(),
                [event.parts()[0], event.parts()[1]].concat().len()
            );
            shared.push(event.frame.clone());
        }
        assert!(shared.windows(2).all(|w| Arc::ptr_eq(&w[0], &w[1])));
        // Held here and by nothing else: no recipient kept a copy of its own.
        assert_eq!(Arc::strong_count(&shared[0]), shared.len());
    }

    #[test]
    fn each_recipient_gets_its_own_seq() {
        let serialized = SharedEvent::serialize("node.presence", &json!({"nodeId": "n"}));
        for seq in [1, 42] {
            let frame = text(SharedEvent::with_seq(&serialized, seq).parts());
            assert_eq!(
                frame,
                json!({"type": "event", "event": "node.presence", "payload": {"nodeId": "n"}, "seq": seq})
            );
        }
    }
}
