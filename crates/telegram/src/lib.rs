//! The Telegram channel: a bot that long-polls the Bot API, keeps every inbound update in a
//! durable spool until it is handled, decides who may DM it (`dmPolicy`, `allowFrom`, DM
//! pairing codes), hands accepted messages to the gateway through [`InboundHandler`] and sends
//! the replies back as Telegram HTML in chunks.
//!
//! The crate knows nothing of the agent: the gateway implements [`InboundHandler`] (a turn per
//! message, [`InboundMessage::idempotency_key`] as its run id), builds a [`TelegramChannel`]
//! from `channels.telegram` ([`clawgate_config::TelegramConfig`]) and runs it until shutdown.
//! Pairing approvals ([`approve`]) and listings ([`pending`]) work on the store alone, so the
//! gateway's `channels.pairing.*` methods and the CLI can call them with or without a running
//! channel.
//!
//! ```no_run
//! # async fn demo(cfg: clawgate_config::TelegramConfig, store: std::sync::Arc<clawgate_store::Store>) {
//! use clawgate_telegram::{ChannelOptions, HandlerFuture, HandlerReply, InboundHandler, InboundMessage, TelegramChannel};
//! struct Echo;
//! impl InboundHandler for Echo {
//!     fn handle(&self, m: InboundMessage) -> HandlerFuture<'_> {
//!         Box::pin(async move { HandlerReply::Text(format!("you said: {}", m.text)) })
//!     }
//! }
//! let opts = ChannelOptions::new("/var/lib/clawgate".into());
//! let channel = TelegramChannel::new(&cfg, opts, store, std::sync::Arc::new(Echo)).unwrap();
//! channel.run(tokio_util::sync::CancellationToken::new()).await.unwrap();
//! # }
//! ```

#![forbid(unsafe_code)]

mod access;
mod api;
mod approvals;
mod backoff;
mod channel;
mod error;
mod format;
mod lock;
mod outbound;

pub use access::{
    CODE_ALPHABET, CODE_LEN, CODE_TTL, DmDecision, DmSender, MAX_PENDING, PairingError, approve,
    approve_command, check_dm, dismiss, new_code, pairing_reply_html, pending,
};
pub use api::{
    ATTEMPTS, BotApi, BotInfo, CALL_TIMEOUT, MAX_RETRY_WAIT, POLL_HTTP_TIMEOUT, SendOptions,
};
pub use approvals::{
    APPROVE_USAGE, ApprovalCard, ApproveCommand, NOT_AN_APPROVER, outcome_line,
    parse_approve_command, parse_callback,
};
pub use channel::{
    ChannelHealth, ChannelOptions, DEFAULT_ACCOUNT, HandlerFuture, HandlerReply, InboundHandler,
    InboundMessage, MAX_CONCURRENT, MAX_QUOTE_CHARS, POLL_TIMEOUT, RESTART_NOTICE, STALL_AFTER,
    TelegramChannel, WebhookRefusal,
};
pub use error::TelegramError;
pub use format::{
    TELEGRAM_TEXT_LIMIT, chunk_markdown, escape_html, markdown_to_html, telegram_len,
};
pub use lock::{PollerLock, acquire as acquire_poller_lock, lock_path};
pub use outbound::{
    GLOBAL_INTERVAL, PER_CHAT_BURST, PER_CHAT_INTERVAL, TYPING_INTERVAL, Throttle, Typing,
};
