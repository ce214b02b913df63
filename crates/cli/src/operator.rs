//! The operator commands: `gateway call|health|status|probe|discover`, `health`, `status`,
//! `devices …`, `nodes …`, and the agent's `agent`, `chat` and `sessions …`.
//!
//! Each one resolves the target (flags > env > config > the local gateway), opens one
//! WebSocket connection with the least scopes it needs, and maps every failure to an exit
//! code and a message that names the fix (see [`conn::EXIT_CODES_HELP`]). The commands sit
//! on the shared modules below them and never on each other: the connection flags
//! ([`conn`]), the target ([`target`]), opening the connection ([`session`], with
//! [`pairing`]), calls on it ([`rpc`]), human output ([`render`],
//! [`table`], a streamed agent turn: [`turn_view`]), the Bonjour browse ([`bonjour`]) and what `gateway probe` and `security audit`
//! share ([`probe_target`], [`probe_ssh`]).

pub mod agent;
mod bonjour;
pub mod call;
pub mod chat;
pub mod conn;
pub mod dashboard;
pub mod devices;
pub mod discover;
pub mod dm_pairing;
pub mod gateway_status;
pub mod health;
pub mod nodes;
mod pairing;
pub mod probe;
mod probe_ssh;
mod probe_target;
mod render;
mod rpc;
mod session;
pub mod sessions;
pub mod status;
mod table;
mod target;
mod turn_view;

// What `doctor` and `security audit` use, under the names they use.
pub(crate) use crate::output::{print_json, print_out};
pub(crate) use conn::ConnArgs;
pub(crate) use probe_target::probe_configured;
