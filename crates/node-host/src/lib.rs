//! The headless node host: `clawgate node run`.
//!
//! It connects to an OpenClaw-compatible gateway as `role:"node"` (client `node-host`, mode
//! `node`) with a persistent Ed25519 device identity, keeps the device token the gateway
//! issues, and serves `node.invoke.request`s for `system.run`, `system.run.prepare`,
//! `system.which` and `system.execApprovals.get/set`, enforcing the node-local exec
//! approvals policy. It reconnects forever with backoff and says once, clearly, which
//! approval command an operator has to run while pairing is pending.
//!
//! The node's state directory (`clawgate node run --state-dir`, default
//! `<state dir>/node`, mode 0700) holds, each file 0600:
//!
//! * `identity.json`: the Ed25519 device identity; its id is the node id.
//! * `device-token.json`: the token from `hello-ok.auth.deviceToken`, for the gateway URL
//!   that issued it. It is sent (inside the signed proof) only when no shared token or
//!   password is configured; with one, the shared token is sent on every connect, like the
//!   OpenClaw node host does.
//! * `node.json`: the stable `client.instanceId`.
//! * `exec-approvals.json`: the exec approvals document `system.run` enforces
//!   (default `security: full`, `ask: off`), edited through `system.execApprovals.set`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), clawgate_node_host::FatalError> {
//! use clawgate_node_host::{NodeHostConfig, run};
//! let config = NodeHostConfig {
//!     url: "ws://127.0.0.1:18789".into(),
//!     tls_fingerprint: None,
//!     token: Some("secret".into()),
//!     password: None,
//!     display_name: Some("build-box".into()),
//!     state_dir: "/var/lib/clawgate/node".into(),
//!     max_concurrent: clawgate_node_host::DEFAULT_MAX_CONCURRENT,
//! };
//! run(config, tokio_util::sync::CancellationToken::new()).await
//! # }
//! ```

pub mod approvals;
pub mod argv;
pub mod commands;
mod env_lists;
pub mod env_policy;
pub mod exec;
pub mod host;
pub mod settings;
pub mod state;
pub mod stats;

pub use host::{DEFAULT_MAX_CONCURRENT, FatalError, NodeHostConfig, run};
