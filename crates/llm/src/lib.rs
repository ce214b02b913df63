//! The model-provider layer of clawgate's agent runtime.
//!
//! [`Llm`] holds one HTTP client (rustls with the ring provider) and the model settings
//! from the config ([`clawgate_config::ModelsConfig`]: `models.providers.*`,
//! `agents.defaults.model`). [`Llm::stream`] sends a normalized [`ChatRequest`] to the
//! configured model and returns one normalized [`ModelStream`] of [`StreamEvent`]s, whatever
//! the provider's wire protocol:
//!
//! * `openai-completions`: `POST {baseUrl}/chat/completions`, server-sent events, tool
//!   calls assembled from argument fragments;
//! * `anthropic-messages`: `POST {baseUrl}/v1/messages`, server-sent events;
//! * `ollama`: Ollama's native `POST {baseUrl}/api/chat`, newline-delimited JSON.
//!
//! Built-in providers need no config entry: `openai` (`OPENAI_API_KEY`), `anthropic`
//! (`ANTHROPIC_API_KEY`) and `ollama` (`http://127.0.0.1:11434`, no key).
//!
//! Failures before the first event are retried (429 with its `retry-after`, 5xx, connect
//! errors, timeouts; see [`LlmOptions`]), then the fallback models are tried in order;
//! nothing is retried once an event has been delivered. Every error ([`LlmError`]) names
//! the model, what happened and the config key to check, and never contains an API key.
//!
//! ```no_run
//! use clawgate_llm::{ChatRequest, Llm, Message, StreamEvent};
//! use futures_util::StreamExt;
//!
//! # async fn demo(models: clawgate_config::ModelsConfig) -> Result<(), clawgate_llm::LlmError> {
//! let llm = Llm::new(&models, &clawgate_config::process_env)?;
//! let mut stream = llm.stream(ChatRequest {
//!     system: Some("You are terse.".into()),
//!     messages: vec![Message::user("Say hi")],
//!     ..ChatRequest::default()
//! });
//! while let Some(event) = stream.next().await {
//!     if let StreamEvent::TextDelta(text) = event? {
//!         print!("{text}");
//!     }
//! }
//! # Ok(())
//! # }
//! ```

mod catalog;
mod client;
mod error;
mod http;
mod providers;
mod types;

pub use catalog::{
    Api, CLOUD_IDLE_TIMEOUT, KeySource, LOCAL_IDLE_TIMEOUT, ModelsListParams, ResolvedModel,
};
pub use clawgate_config::{ModelRef, ModelsConfig};
pub use client::{AssistantReply, Llm, LlmOptions, ModelStream};
pub use error::{LlmError, TimeoutKind};
pub use types::{
    AssistantPart, ChatRequest, Message, StopReason, StreamEvent, ToolCall, ToolSpec, Usage,
};
