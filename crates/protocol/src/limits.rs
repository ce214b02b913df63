//! Limits both ends agree on (`hello-ok.policy` and the pre-handshake guards).

use std::time::Duration;

/// Largest frame accepted before `hello-ok`; a bigger one closes with 1009.
pub const MAX_PREAUTH_PAYLOAD: usize = 64 * 1024;
/// Largest frame accepted after `hello-ok` (`policy.maxPayload`).
pub const MAX_PAYLOAD: usize = 25 * 1024 * 1024;
/// Outbound bytes a connection may have queued before it is closed 1008 "slow consumer"
/// (`policy.maxBufferedBytes`).
pub const MAX_BUFFERED_BYTES: usize = 50 * 1024 * 1024;
/// Frames a client may send before its `connect` has been answered.
pub const MAX_PENDING_HANDSHAKE_FRAMES: usize = 15;
/// How long a client has to send `connect` after the socket opens.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the gateway may take to check a `connect` once it has it (auth, a failure's delay,
/// whois, pairing); past it the client is told to retry.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection has to send a complete HTTP request head.
pub const REQUEST_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a socket write may make no progress before the connection is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// `policy.tickIntervalMs`.
pub const TICK_INTERVAL: Duration = Duration::from_secs(30);
/// WebSocket ping cadence after auth.
pub const PING_INTERVAL: Duration = Duration::from_secs(25);
/// A device signature's `signedAt` may differ from the server clock by at most this much.
pub const DEVICE_SIGNATURE_SKEW_MS: i64 = 120_000;
/// Close reasons are cut to this many bytes (the WebSocket limit is 123).
pub const MAX_CLOSE_REASON_BYTES: usize = 123;
/// Largest `node.invoke.progress` chunk and `node.invoke.input` `payloadJSON`, in UTF-8 bytes.
pub const MAX_NODE_INVOKE_CHUNK_BYTES: usize = 16 * 1024;
/// Operators calling node-only methods are closed after this many refusals.
pub const MAX_UNAUTHORIZED_ROLE_CALLS: u32 = 10;

/// Cuts `reason` to at most [`MAX_CLOSE_REASON_BYTES`] on a UTF-8 boundary.
pub fn close_reason(reason: &str) -> String {
    if reason.len() <= MAX_CLOSE_REASON_BYTES {
        return reason.to_owned();
    }
    let mut end = MAX_CLOSE_REASON_BYTES;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reason_is_cut_on_a_char_boundary() {
        let long = "é".repeat(100);
        let cut = close_reason(&long);
        assert!(cut.len() <= MAX_CLOSE_REASON_BYTES);
        assert_eq!(cut.len() % 2, 0);
        assert_eq!(close_reason("short"), "short");
    }
}
