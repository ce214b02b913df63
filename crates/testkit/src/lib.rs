//! Test support for clawgate.
//!
//! * [`OpenClaw`] / [`RealGateway`]: the real OpenClaw CLI and gateway
//!   (installed by `scripts/setup-openclaw`, found through
//!   `CLAWGATE_OPENCLAW_BIN`), each process in a private home and, because the
//!   real processes contact outside hosts, only inside a loopback-only network
//!   namespace. `./scripts/test` provides both.
//! * [`ClawgateBin`]: the project's own binary, run as a user would.
//! * [`RawWs`]: a minimal Gateway protocol client speaking raw JSON frames.
//! * [`ChildProcess`], [`wait_for_line`], [`kill_tree`]: process-group
//!   handling so no test leaves processes behind.
//! * [`Sshd`]: a private OpenSSH server on a loopback port (SSH tunnel tests).
//! * [`ModelMock`]: a scripted OpenAI / Anthropic / Ollama model server on loopback
//!   ([`Reply`] scripts each answer; every request is recorded).
//! * [`FakeBotApi`]: a fake Telegram Bot API on loopback (long polling, injected DMs,
//!   scripted failures; every call recorded).
//! * [`fake_gateway`]: a small in-process gateway for tests of clients and of the CLI.
//!
//! ```no_run
//! # async fn demo() {
//! use clawgate_testkit::{OpenClaw, RealGateway};
//! let oc = OpenClaw::from_env();
//! let gw = RealGateway::start(&oc, "test-token").await;
//! let out = gw.cli().args(["gateway", "call", "health", "--json"]).run().await;
//! assert_eq!(out.assert_success().json()["ok"], true);
//! # }
//! ```

mod bot_api;
mod clawgate;
mod cli;
pub mod fake_gateway;
mod gateway;
mod home;
mod model_mock;
mod net;
mod openclaw;
mod process;
mod sshd;
mod ws;

pub use bot_api::{BotCall, Failure, FakeBotApi};
pub use clawgate::{
    ClawgateBin, ClawgateGateway, GATEWAY_READY_TIMEOUT, READY_MARKER, parse_listening_url,
};
pub use cli::{CliCommand, DEFAULT_CLI_TIMEOUT, Output, TimedOut};
pub use gateway::{GatewayOptions, RealGateway, START_DEADLINE};
pub use home::{IsolatedHome, KEEP_ENV, merge_json};
pub use model_mock::{ModelMock, RecordedRequest, Reply, WireFormat};
pub use net::{free_port, in_loopback_only_netns, network_interfaces, require_loopback_only_netns};
pub use openclaw::{OPENCLAW_BIN_ENV, OPENCLAW_VERSION, OpenClaw};
pub use process::{
    ChildProcess, Line, OutputLines, Stream, is_alive, kill_group, kill_tree, signal_group,
    wait_for_line,
};
pub use sshd::{SSHD_BIN, Sshd, SshdSpec, kill_tunnels};
pub use ws::{FRAME_TIMEOUT, Frame, PROTOCOL_VERSION, RawWs, WsError, connect_params};

/// Re-exported so tests can build configs without their own dependency.
pub use serde_json::{Value, json};
