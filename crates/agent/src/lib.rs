//! clawgate's agent runtime: sessions, their transcripts, runs and the turn loop.
//!
//! A message for a session ([`Agent::send`]) starts a run: the user message is written to the
//! session's transcript, the model is streamed ([`clawgate_llm`]) with the tools
//! ([`tools`]: `exec` on a node, `nodes`), each tool call runs and its result is written, and
//! the model is called again until it answers without a tool call. Every transcript message is
//! on disk before the event that announces it; a run still marked running when the gateway
//! starts was cut off, and is ended with a note rather than run again.
//!
//! The runtime knows nothing of sockets: it reaches nodes through [`NodeAccess`] and
//! publishes its `chat` / `agent` / `sessions.changed` events through [`EventSink`], both
//! implemented by the gateway.
//!
//! Runs of one session key run one at a time, in the order they were asked; all sessions
//! together run at most `max_concurrent` at once. A message that arrives while its session
//! is busy follows [`QueueMode`].

mod approvals;
mod events;
mod exec_policy;
mod runtime;
mod session_key;
pub mod tools;
mod transcript;
mod turn;

pub use approvals::Decision;
pub use events::{Audience, EventSink};
pub use exec_policy::{ExecPolicyError, check_set_params as check_exec_approvals_set_params};
pub use runtime::{
    Agent, AgentError, AgentOptions, History, LoadedSessions, QueueMode, RunOutcome, RunSummary,
    SendAccepted, SendRequest, SessionRow,
};
pub use session_key::{DmScope, SessionKey};
pub use tools::{NodeAccess, NodeCall, NodeCallError, NodeInfo};
pub use transcript::NO_REPLY;
