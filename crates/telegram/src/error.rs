//! [`TelegramError`]: every failure of the channel, as text that never holds the bot token.

use std::path::PathBuf;
use std::time::Duration;

/// What went wrong. Every message says what to do about it; none contains the bot token
/// (the token is part of every Bot API URL, so transport errors are stripped of their URL and
/// every text the server sends back is scrubbed of it).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TelegramError {
    /// The channel has no token.
    #[error(
        "the Telegram channel has no bot token; set channels.telegram.botToken (or channels.telegram.tokenFile, or TELEGRAM_BOT_TOKEN) to the token @BotFather gave"
    )]
    NoToken,

    /// 401: the token is wrong or revoked.
    #[error(
        "Telegram rejected the bot token (401 Unauthorized at {method}); check channels.telegram.botToken (or tokenFile / TELEGRAM_BOT_TOKEN): it must be the current token from @BotFather, <bot id>:<secret>"
    )]
    Unauthorized { method: String },

    /// 409: another `getUpdates` poller (or a webhook) is using the token.
    #[error(
        "another poller is using this bot token (Telegram answered 409 Conflict: {description}); stop the other clawgate or OpenClaw gateway polling this bot (or remove its webhook), or give this gateway its own bot token"
    )]
    Conflict { description: String },

    /// Another process of this machine holds the token's poller lock.
    #[error(
        "another clawgate process ({holder}) is already polling this bot token (lock file {}); stop it, or give this gateway its own bot token",
        path.display()
    )]
    Locked { path: PathBuf, holder: String },

    /// Any other error answer of the Bot API.
    #[error("Telegram {method} failed: {status} {description}")]
    Api {
        method: String,
        status: u16,
        description: String,
        /// `parameters.retry_after` of a 429.
        retry_after: Option<Duration>,
    },

    /// The request did not get an answer (connection refused or reset, timeout).
    #[error("Telegram {method} failed: {detail}")]
    Transport {
        method: String,
        detail: String,
        timed_out: bool,
    },

    /// The answer was not the Bot API's JSON.
    #[error("Telegram {method} answered something that is not the Bot API's JSON: {detail}")]
    Decode { method: String, detail: String },

    /// The HTTP client could not be built (a bad `channels.telegram.proxy`).
    #[error("the Telegram channel's HTTP client: {0}")]
    Client(String),

    /// The state database or the state dir failed.
    #[error("the Telegram channel's state: {0}")]
    State(String),
}

impl TelegramError {
    /// Whether the Bot API answered 400 because the HTML could not be parsed.
    pub fn is_parse_error(&self) -> bool {
        matches!(self, TelegramError::Api { status: 400, description, .. }
            if description.to_ascii_lowercase().contains("can't parse entities"))
    }
}

impl From<clawgate_store::StoreError> for TelegramError {
    fn from(e: clawgate_store::StoreError) -> Self {
        TelegramError::State(e.to_string())
    }
}
