//! OpenClaw Gateway protocol v4, as OpenClaw 2026.9.6 speaks it: frames, the connect handshake's
//! parameters and validation, the wire error table, scopes and the method→scope table, device
//! identity and the signature payloads, and the limits both ends enforce.
//!
//! No I/O lives here. This crate is the one place a wire detail is written down; the gateway and
//! the clients only call it.

pub mod connect;
pub mod device;
pub mod errors;
pub mod frames;
pub mod limits;
pub mod node_invoke;
pub mod nodes;
pub mod schema;
pub mod scopes;

/// The protocol version this implementation speaks.
pub const PROTOCOL_VERSION: u32 = 4;
/// Oldest protocol a `probe` client may ask for.
pub const MIN_PROBE_PROTOCOL: u32 = 3;
/// Oldest protocol a node (`role:"node"`, `client.mode:"node"`) may ask for.
pub const MIN_NODE_PROTOCOL: u32 = 3;
/// The OpenClaw release whose wire behaviour this crate follows.
pub const OPENCLAW_COMPAT_VERSION: &str = "2026.9.6";
