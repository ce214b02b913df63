//! An async client for the OpenClaw Gateway protocol v4: the challenge → `connect` → hello
//! handshake (with an optional signed device proof), correlated requests that may run
//! concurrently, two-phase (`accepted` → final) requests, and the event stream.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use clawgate_client::{Client, ConnectOptions, client_info};
//! let mut opts = ConnectOptions::new("ws://127.0.0.1:18789", client_info("cli", "cli"));
//! opts.token = Some("secret".into());
//! opts.scopes = vec!["operator.read".into()];
//! let (client, hello) = Client::connect(opts).await?;
//! println!("gateway {}", hello.server_version().unwrap_or("?"));
//! let health = client.request("health", None).await?;
//! println!("{health}");
//! client.close().await;
//! # Ok(()) }
//! ```

mod backoff;
mod client;
pub mod dashboard;
mod device;
pub mod device_auth;
mod error;
pub mod failure;
pub mod fields;
mod hello;
pub mod live_check;
pub mod pairing;
pub mod plaintext;
pub mod probe_tunnel;
pub mod session;
pub mod target;
mod transport;
pub mod tunnel;
pub mod turn;

pub use backoff::Backoff;
pub use clawgate_protocol::connect::ClientInfo;
pub use client::{Client, ConnectOptions, Event, Requester};
pub use device::DeviceIdentity;
pub use device_auth::{
    DeviceAuthMode, DeviceTokenStore, StoredDeviceToken, gateway_key, is_loopback_url,
    remember_device_token,
};
pub use error::{ClientError, PairingRequired, RpcError, WireError, pin_list};
pub use hello::HelloOk;
pub use transport::{TlsOptions, WsStream, dial, normalize_fingerprint, parse_pins};

pub(crate) use clawgate_base::now_ms;

/// `{id, mode}` with this build's version, the OS as platform and device family, and a fresh
/// instance id — the client description sent in `connect`.
pub fn client_info(id: &str, mode: &str) -> ClientInfo {
    ClientInfo {
        id: id.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        platform: platform().into(),
        mode: mode.into(),
        device_family: Some(device_family().into()),
        instance_id: Some(uuid::Uuid::new_v4().to_string()),
        ..ClientInfo::default()
    }
}

/// Node's `process.platform` spelling of this OS.
pub fn platform() -> &'static str {
    match std::env::consts::OS {
        "macos" => "darwin",
        "windows" => "win32",
        other => other,
    }
}

/// The device family the real clients report for this OS.
pub fn device_family() -> &'static str {
    match std::env::consts::OS {
        "linux" => "Linux",
        "macos" => "Mac",
        "windows" => "Windows",
        "freebsd" => "FreeBSD",
        _ => "Unknown",
    }
}
