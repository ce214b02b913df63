//! [`TelegramChannel`]: the bot's long-polling loop, the inbound spool, DM access and the
//! handoff to the gateway ([`InboundHandler`]), and the sending of replies.
//!
//! **Inbound exactly once.** Each batch `getUpdates` returns is written to the store's spool
//! together with the next offset, in one durable batch, before anything else happens: an
//! update Telegram will not send again is always on disk. Each update is marked handled once
//! it has been handled (its reply sent). At start-up the unhandled ones are handed over again
//! and polling resumes at the stored offset, so nothing handled is handed over twice and
//! nothing received is lost. [`InboundMessage::idempotency_key`] is the same on a second
//! handover of an update cut off by a crash, so the gateway can use it as the run id.
//!
//! **Replies at most once, never silently lost.** A reply's parts go through the store's
//! outbox: each is on disk as `sending` before the Bot API is called and `sent` after, and the
//! update is marked handled in the same batch as its last part. An update handed over again
//! whose reply is already in the outbox is not run again: the parts not sent yet are sent, and
//! a part whose send a crash cut off is not sent again — the chat is told instead that the
//! reply may be incomplete ([`RESTART_NOTICE`]).
//!
//! Updates are handled in order per chat, chats in parallel (bounded); the poll loop never
//! waits for a turn.

use clawgate_base::now_ms;
use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clawgate_config::{ErrorPolicy, ReplyToMode, Secret, TelegramConfig};
use clawgate_store::{OutboxPart, OutboxState, SpooledUpdate, Store, TelegramWrite, Write};
use serde_json::Value;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::access::{self, DmDecision, DmSender};
use crate::api::{BotApi, BotInfo, SendOptions};
use crate::approvals::{self, ApprovalCard, ApproveCommand};
use crate::backoff::Backoff;
use crate::error::TelegramError;
use crate::format::{chunk_markdown, markdown_to_html};
use crate::lock;
use crate::outbound::{Throttle, Typing};

/// The account id of the one bot `channels.telegram` configures.
pub const DEFAULT_ACCOUNT: &str = "default";
/// The `timeout` of a long poll.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(30);
/// Without a completed `getUpdates` for this long, [`ChannelHealth::stalled`] says so.
pub const STALL_AFTER: Duration = Duration::from_secs(120);
/// Turns handed over at once, across chats.
pub const MAX_CONCURRENT: usize = 16;
/// Updates queued per chat before the poll loop waits.
const PER_CHAT_QUEUE: usize = 32;
/// A chat's worker ends after this long without an update.
const WORKER_IDLE: Duration = Duration::from_secs(60);
/// On shutdown, how long handovers under way may take to finish (the rest are handed over
/// again at the next start).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Sent after a reply whose sending a restart cut off: the cut-off part may or may not have
/// arrived, and the Bot API offers no way to send it again without risking a duplicate.
pub const RESTART_NOTICE: &str = "⚠️ The gateway restarted while sending this reply, so part of it may be missing. Ask again if something is cut off.";
/// Handled updates are kept this long in the spool.
const SPOOL_KEEP: Duration = Duration::from_secs(24 * 3600);

/// An accepted inbound message, as the gateway gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMessage {
    /// The bot's account id ([`DEFAULT_ACCOUNT`]).
    pub account: String,
    pub bot_id: i64,
    pub update_id: i64,
    pub chat_id: String,
    pub sender_id: String,
    /// The sender's first and last name.
    pub sender_name: Option<String>,
    /// The sender's `@username`, without the `@`.
    pub sender_username: Option<String>,
    pub message_id: i64,
    /// The text (or caption; a media placeholder such as `<media:image>` when there is none).
    pub text: String,
    /// When Telegram received it (Unix seconds).
    pub date: i64,
    /// Sent in a group or supergroup (`chat_id` is the group's), not a DM.
    pub group: bool,
    /// What the message replies to: the part quoted, else the whole text (or caption) of
    /// the message it answers, at most [`MAX_QUOTE_CHARS`] characters.
    pub reply_quote: Option<String>,
}

/// The longest reply context handed over with a message.
pub const MAX_QUOTE_CHARS: usize = 500;

impl InboundMessage {
    /// The text as the agent reads it: the reply context first, as OpenClaw writes it
    /// (`[Replying to: "…"]`), then the message.
    pub fn text_with_context(&self) -> String {
        match &self.reply_quote {
            Some(quote) => format!(
                "[Replying to: {}]\n{}",
                serde_json::Value::String(quote.clone()),
                self.text
            ),
            None => self.text.clone(),
        }
    }
}

impl InboundMessage {
    /// Stable across handovers of the same update: use it as the run id / idempotency key.
    pub fn idempotency_key(&self) -> String {
        format!("telegram:{}:{}", self.bot_id, self.update_id)
    }
}

/// What the gateway answers an inbound message with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandlerReply {
    /// The reply, in Markdown.
    Text(String),
    /// The turn failed; this text reaches the chat as `channels.telegram.errorPolicy` says.
    Error(String),
    /// Nothing to send.
    Nothing,
}

/// The future [`InboundHandler::handle`] returns.
pub type HandlerFuture<'a> = Pin<Box<dyn Future<Output = HandlerReply> + Send + 'a>>;

/// Implemented by the gateway: runs the turn for an accepted message and returns the reply.
/// The channel shows `typing` while it runs and sends what it returns.
pub trait InboundHandler: Send + Sync + 'static {
    fn handle(&self, message: InboundMessage) -> HandlerFuture<'_>;

    /// Answers the exec approval `id` with `decision` (`allow-once`, `allow-always`, `deny`)
    /// for an approver who pressed its button or sent `/approve`. The error is shown to them.
    fn resolve_approval(&self, id: &str, decision: &str) -> Result<(), String> {
        let _ = (id, decision);
        Err("exec approvals are not answered from Telegram here".into())
    }
}

/// What `channels.status` shows of the channel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelHealth {
    /// The poll loop is running.
    pub running: bool,
    pub bot: Option<BotInfo>,
    /// When the last `getUpdates` completed (Unix ms).
    pub last_poll_at_ms: Option<i64>,
    /// When polling started (Unix ms).
    pub started_at_ms: Option<i64>,
    /// The last error, until a poll succeeds again.
    pub last_error: Option<String>,
    /// When the last update arrived (Unix ms).
    pub last_inbound_at_ms: Option<i64>,
    /// Updates handled since start.
    pub handled: u64,
    /// Updates received (spooled) and not handled yet.
    pub spool_pending: u64,
    /// Reply parts whose send got no answer, waiting for the next start to tell their chat.
    pub outbox_unconfirmed: u64,
    /// Reply parts a restart cut off (the chat was told), kept for a day.
    pub outbox_uncertain: u64,
    /// Updates come by webhook (no polls to watch).
    pub webhook: bool,
}

impl ChannelHealth {
    /// Polling, but no `getUpdates` completed for [`STALL_AFTER`].
    pub fn stalled(&self, now_ms: i64) -> bool {
        let since = self.last_poll_at_ms.or(self.started_at_ms);
        self.running
            && !self.webhook
            && since.is_some_and(|t| now_ms - t > STALL_AFTER.as_millis() as i64)
    }
}

/// How a channel is set up besides `channels.telegram`.
#[derive(Debug, Clone)]
pub struct ChannelOptions {
    pub account: String,
    /// Where the poller lock lives (the gateway's state dir).
    pub state_dir: PathBuf,
    pub poll_timeout: Duration,
    /// `setMyCommands`: `(command, description)`.
    pub commands: Vec<(String, String)>,
}

impl ChannelOptions {
    pub fn new(state_dir: PathBuf) -> Self {
        ChannelOptions {
            account: DEFAULT_ACCOUNT.to_owned(),
            state_dir,
            poll_timeout: POLL_TIMEOUT,
            commands: vec![("start".to_owned(), "Start talking to the bot".to_owned())],
        }
    }
}

/// The Telegram channel of one bot. Cheap to clone.
#[derive(Clone)]
pub struct TelegramChannel {
    inner: Arc<Inner>,
}

struct Inner {
    api: BotApi,
    token: Secret,
    cfg: TelegramConfig,
    opts: ChannelOptions,
    store: Arc<Store>,
    handler: Arc<dyn InboundHandler>,
    throttle: Throttle,
    turns: Semaphore,
    health: Mutex<ChannelHealth>,
    /// Chats whose last outcome was an error (`errorPolicy: once`), bounded.
    failing: Mutex<HashSet<String>>,
    /// `channels.telegram.allowFrom` as last read: the gateway replaces it when the config
    /// file changes, so an approval written there by hand needs no restart.
    allow_from: Mutex<Vec<String>>,
    /// `commands.ownerAllowFrom`'s Telegram ids as last read (replaced like `allow_from`).
    owners: Mutex<Vec<String>>,
    /// The approval cards shown, by approval id: where each went and its text, to edit it
    /// with the outcome. Bounded: the oldest is forgotten first.
    cards: Mutex<VecDeque<(String, Vec<ShownCard>)>>,
    /// In webhook mode, while the channel runs: where [`TelegramChannel::accept_webhook`]
    /// hands spooled updates to the dispatcher.
    webhook: Mutex<Option<(i64, mpsc::Sender<SpooledUpdate>)>>,
}

/// Why a webhook post was refused; each maps to the HTTP status Telegram gets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookRefusal {
    /// The secret-token header is missing or wrong (401).
    #[error(
        "the X-Telegram-Bot-Api-Secret-Token header does not match channels.telegram.webhookSecret"
    )]
    Unauthorized,
    /// Not an update (400).
    #[error("the body is not a Telegram update: {0}")]
    BadRequest(String),
    /// Not taking updates now, or the spool cannot be written (503: Telegram posts it again).
    #[error("the Telegram channel cannot take updates now: {0}")]
    Unavailable(String),
}

/// One approval card in one approver's chat.
#[derive(Debug, Clone)]
struct ShownCard {
    chat_id: String,
    message_id: i64,
    markdown: String,
}

/// Approval cards remembered for editing, at most.
const MAX_CARDS: usize = 256;

fn lock_of<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl TelegramChannel {
    /// A channel for `cfg` (its token is required) over `store`, handing accepted messages to
    /// `handler`. Nothing is sent before [`TelegramChannel::run`].
    pub fn new(
        cfg: &TelegramConfig,
        opts: ChannelOptions,
        store: Arc<Store>,
        handler: Arc<dyn InboundHandler>,
    ) -> Result<TelegramChannel, TelegramError> {
        let token = cfg.token.clone().ok_or(TelegramError::NoToken)?;
        let api = BotApi::new(token.clone(), &cfg.api_root, cfg.proxy.as_deref())?;
        Ok(TelegramChannel {
            inner: Arc::new(Inner {
                api,
                token,
                cfg: cfg.clone(),
                opts,
                store,
                handler,
                throttle: Throttle::default(),
                turns: Semaphore::new(MAX_CONCURRENT),
                health: Mutex::new(ChannelHealth::default()),
                failing: Mutex::new(HashSet::new()),
                allow_from: Mutex::new(cfg.allow_from.clone()),
                owners: Mutex::new(cfg.owner_allow_from.clone()),
                cards: Mutex::new(VecDeque::new()),
                webhook: Mutex::new(None),
            }),
        })
    }

    /// The Bot API client.
    pub fn api(&self) -> &BotApi {
        &self.inner.api
    }

    /// The account id.
    pub fn account(&self) -> &str {
        &self.inner.opts.account
    }

    /// Replaces `channels.telegram.allowFrom` (the config file changed); the next DM is
    /// checked against the new list. Returns whether it changed.
    pub fn set_allow_from(&self, allow_from: Vec<String>) -> bool {
        let mut current = lock_of(&self.inner.allow_from);
        let changed = *current != allow_from;
        *current = allow_from;
        changed
    }

    /// Replaces the Telegram ids of `commands.ownerAllowFrom` (the config file changed).
    pub fn set_owners(&self, owners: Vec<String>) -> bool {
        let mut current = lock_of(&self.inner.owners);
        let changed = *current != owners;
        *current = owners;
        changed
    }

    /// Who may answer exec approvals from Telegram: `execApprovals.approvers`, else the
    /// Telegram ids of `commands.ownerAllowFrom`, else the first sender approved through
    /// pairing (the owner, as OpenClaw's first approval makes them). Empty when
    /// `execApprovals.enabled` is false.
    pub async fn approvers(&self) -> Vec<String> {
        self.inner.approvers().await
    }

    /// Shows an exec approval to every approver, with Allow Once / Allow Always / Deny
    /// buttons. Nothing is sent when there is no approver.
    pub async fn show_approval(&self, card: &ApprovalCard) {
        self.inner.show_approval(card).await
    }

    /// Edits the cards of a resolved approval with its outcome (and removes their buttons).
    pub async fn approval_resolved(&self, id: &str, decision: &str) {
        self.inner.approval_resolved(id, decision).await
    }

    /// Where the gateway takes this bot's webhook posts, in webhook mode (`webhookUrl`).
    pub fn webhook_path(&self) -> Option<&str> {
        let cfg = &self.inner.cfg;
        cfg.webhook_url.as_ref().map(|_| cfg.webhook_path.as_str())
    }

    /// A webhook post: the secret header is checked (in constant time), the update is written
    /// to the spool, and only then handed over — so an answered post is never lost, and one
    /// Telegram posts again is handled once.
    pub async fn accept_webhook(
        &self,
        secret_header: Option<&[u8]>,
        body: &[u8],
    ) -> Result<(), WebhookRefusal> {
        self.inner.accept_webhook(secret_header, body).await
    }

    /// The channel's state for `channels.status`.
    pub fn health(&self) -> ChannelHealth {
        lock_of(&self.inner.health).clone()
    }

    /// Shows `typing` in `chat_id` until the returned guard is dropped.
    pub fn typing(&self, chat_id: &str) -> Typing {
        Typing::start(self.inner.api.clone(), chat_id.to_owned())
    }

    /// Sends `markdown` to `chat_id` as HTML in chunks of at most `textChunkLimit`, throttled,
    /// each resent as plain text if Telegram cannot parse its HTML. Returns the message ids.
    pub async fn send_text(
        &self,
        chat_id: &str,
        markdown: &str,
        reply_to: Option<i64>,
    ) -> Result<Vec<i64>, TelegramError> {
        self.inner.send_text(chat_id, markdown, reply_to).await
    }

    /// Polls until `shutdown`, handing accepted messages over. Returns an error when the
    /// channel cannot go on: the token is refused (401), another process polls the same
    /// token (its lock), or the state cannot be read.
    pub async fn run(&self, shutdown: CancellationToken) -> Result<(), TelegramError> {
        let result = self.inner.clone().run(shutdown).await;
        *lock_of(&self.inner.webhook) = None;
        let mut h = lock_of(&self.inner.health);
        h.running = false;
        if let Err(e) = &result {
            h.last_error = Some(e.to_string());
        }
        result
    }
}

impl Inner {
    fn record_error(&self, e: &TelegramError) {
        lock_of(&self.health).last_error = Some(e.to_string());
    }

    async fn accept_webhook(
        &self,
        secret_header: Option<&[u8]>,
        body: &[u8],
    ) -> Result<(), WebhookRefusal> {
        let authorized = match (&self.cfg.webhook_secret, secret_header) {
            (Some(secret), Some(given)) => secret.ct_eq(given),
            _ => false,
        };
        if !authorized {
            return Err(WebhookRefusal::Unauthorized);
        }
        let update: Value =
            serde_json::from_slice(body).map_err(|e| WebhookRefusal::BadRequest(e.to_string()))?;
        let update_id = update
            .get("update_id")
            .and_then(Value::as_i64)
            .ok_or_else(|| WebhookRefusal::BadRequest("no update_id".into()))?;
        let Some((bot_id, tx)) = lock_of(&self.webhook).clone() else {
            return Err(WebhookRefusal::Unavailable(
                "the channel is not running yet".into(),
            ));
        };
        let spooled = SpooledUpdate {
            bot_id: bot_id.to_string(),
            update_id,
            update,
            received_at_ms: now_ms(),
            handled_at_ms: None,
        };
        self.store
            .apply(vec![TelegramWrite::Spool(spooled.clone()).into()])
            .await
            .map_err(|e| WebhookRefusal::Unavailable(e.to_string()))?;
        let known = self
            .store
            .telegram_update(&spooled.bot_id, update_id)
            .await
            .map_err(|e| WebhookRefusal::Unavailable(e.to_string()))?;
        if known.is_some_and(|u| u.handled_at_ms.is_some()) {
            return Ok(());
        }
        {
            let mut h = lock_of(&self.health);
            h.last_inbound_at_ms = Some(now_ms());
            h.last_poll_at_ms = Some(now_ms());
            h.spool_pending += 1;
        }
        // On disk already: if the channel stops before taking it, the next start does.
        let _ = tx.send(spooled).await;
        Ok(())
    }

    async fn approvers(&self) -> Vec<String> {
        if self.cfg.exec_approvals_enabled == Some(false) {
            return Vec::new();
        }
        if !self.cfg.exec_approvers.is_empty() {
            return self.cfg.exec_approvers.clone();
        }
        let owners = lock_of(&self.owners).clone();
        if !owners.is_empty() {
            return owners;
        }
        match self.store.telegram_allowed(&self.opts.account).await {
            Ok(allowed) => allowed.into_iter().take(1).map(|a| a.sender_id).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the Telegram owner");
                Vec::new()
            }
        }
    }

    async fn show_approval(&self, card: &ApprovalCard) {
        let approvers = self.approvers().await;
        if approvers.is_empty() {
            return;
        }
        let markdown = card.markdown(now_ms());
        let html = markdown_to_html(&markdown);
        let mut shown = Vec::new();
        for chat_id in approvers {
            self.throttle.wait(&chat_id).await;
            let options = SendOptions {
                reply_markup: Some(card.keyboard()),
                ..SendOptions::default()
            };
            match self
                .api
                .send_message(&chat_id, &html, &markdown, options)
                .await
            {
                Ok(message_id) => shown.push(ShownCard {
                    chat_id,
                    message_id,
                    markdown: markdown.clone(),
                }),
                Err(e) => {
                    tracing::warn!(chat_id, error = %e, "cannot show an exec approval in Telegram");
                    self.record_error(&e);
                }
            }
        }
        let mut cards = lock_of(&self.cards);
        if cards.len() >= MAX_CARDS {
            cards.pop_front();
        }
        cards.push_back((card.id.clone(), shown));
    }

    async fn approval_resolved(&self, id: &str, decision: &str) {
        let shown = {
            let mut cards = lock_of(&self.cards);
            match cards.iter().position(|(card, _)| card == id) {
                Some(at) => cards.remove(at).map(|(_, shown)| shown).unwrap_or_default(),
                None => return,
            }
        };
        let outcome = approvals::outcome_line(decision);
        for card in shown {
            self.finish_card(&card.chat_id, card.message_id, &card.markdown, outcome)
                .await;
        }
    }

    /// Edits a card with its outcome; its buttons go with the edit.
    async fn finish_card(&self, chat_id: &str, message_id: i64, markdown: &str, outcome: &str) {
        let html = markdown_to_html(&format!("{markdown}\n\n{outcome}"));
        if let Err(e) = self.api.edit_message_text(chat_id, message_id, &html).await {
            tracing::warn!(chat_id, error = %e, "cannot edit an exec approval card");
        }
    }

    /// A button press: an approval button answered by an approver resolves it; anyone else
    /// is told they may not.
    async fn handle_callback(&self, query: &Value) -> Result<(), TelegramError> {
        let Some(query_id) = query.get("id").and_then(Value::as_str) else {
            return Ok(());
        };
        let data = query.get("data").and_then(Value::as_str).unwrap_or("");
        let Some((id, decision)) = approvals::parse_callback(data) else {
            return self
                .api
                .answer_callback_query(query_id, "This button is not for this gateway.", false)
                .await;
        };
        let presser = query.pointer("/from/id").map(Value::to_string);
        let approvers = self.approvers().await;
        if !presser.is_some_and(|p| approvers.contains(&p)) {
            tracing::warn!(
                approval = id,
                "an exec approval button was pressed by someone who may not approve"
            );
            return self
                .api
                .answer_callback_query(query_id, approvals::NOT_AN_APPROVER, true)
                .await;
        }
        match self.handler.resolve_approval(&id, decision) {
            Ok(()) => {
                self.api
                    .answer_callback_query(query_id, approvals::outcome_line(decision), false)
                    .await
            }
            Err(e) => {
                // Gone (answered elsewhere, expired, or from before a restart): say so on
                // the card too, so its buttons stop inviting presses.
                let card = query.get("message");
                if let (Some(chat), Some(message_id), Some(text)) = (
                    card.and_then(|m| m.pointer("/chat/id"))
                        .map(Value::to_string),
                    card.and_then(|m| m.get("message_id"))
                        .and_then(Value::as_i64),
                    card.and_then(|m| m.get("text")).and_then(Value::as_str),
                ) {
                    self.finish_card(&chat, message_id, text, "No longer pending.")
                        .await;
                }
                self.api.answer_callback_query(query_id, &e, true).await
            }
        }
    }

    /// `/approve <id> <decision>` from an approver, answered whatever the DM policy says;
    /// `None` when the text is not a `/approve` or the sender is no approver.
    async fn approve_command(&self, inbound: &InboundMessage) -> Option<String> {
        let command = approvals::parse_approve_command(&inbound.text)?;
        if !self.approvers().await.contains(&inbound.sender_id) {
            return None;
        }
        Some(match command {
            ApproveCommand::Usage => approvals::APPROVE_USAGE.to_owned(),
            ApproveCommand::Resolve { id, decision } => {
                match self.handler.resolve_approval(&id, decision) {
                    Ok(()) => approvals::outcome_line(decision).to_owned(),
                    Err(e) => e,
                }
            }
        })
    }

    async fn run(self: Arc<Self>, shutdown: CancellationToken) -> Result<(), TelegramError> {
        let _lock = lock::acquire(&self.opts.state_dir, &self.token)?;
        {
            let mut h = lock_of(&self.health);
            h.running = true;
            h.started_at_ms = Some(now_ms());
        }
        let mut backoff = Backoff::telegram();
        let bot = loop {
            match self.api.get_me().await {
                Ok(bot) => break bot,
                Err(e @ TelegramError::Unauthorized { .. }) => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, "Telegram getMe failed; trying again");
                    self.record_error(&e);
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(backoff.next_delay()) => {}
                    }
                }
            }
        };
        backoff.reset();
        lock_of(&self.health).bot = Some(bot.clone());
        let webhook = match (&self.cfg.webhook_url, &self.cfg.webhook_secret) {
            (Some(url), Some(secret)) => Some((url.clone(), secret.expose().to_owned())),
            _ => None,
        };
        // Posts are taken (spooled, queued) from now on; they are dispatched once the updates
        // left from before the start are.
        let mut webhook_rx = webhook.as_ref().map(|_| {
            let (tx, rx) = mpsc::channel(PER_CHAT_QUEUE);
            *lock_of(&self.webhook) = Some((bot.id, tx));
            lock_of(&self.health).webhook = true;
            rx
        });
        let transport = match &webhook {
            Some((url, secret)) => self.api.set_webhook(url, secret).await,
            None => self.api.delete_webhook().await,
        };
        for step in [
            transport,
            self.api.set_my_commands(&self.opts.commands).await,
        ] {
            match step {
                Err(e @ TelegramError::Unauthorized { .. }) => return Err(e),
                Err(e) => tracing::warn!(error = %e, "Telegram start-up call failed"),
                Ok(()) => {}
            }
        }
        let bot_id = bot.id.to_string();
        self.store
            .apply(vec![
                TelegramWrite::PruneHandled {
                    bot_id: bot_id.clone(),
                    before_ms: now_ms() - SPOOL_KEEP.as_millis() as i64,
                }
                .into(),
            ])
            .await?;
        let mut offset = self.store.telegram_offset(&bot_id).await?;
        {
            let pending = self.store.telegram_unhandled_count().await?;
            let outbox = self.store.telegram_outbox_counts().await?;
            let mut h = lock_of(&self.health);
            h.spool_pending = pending;
            h.outbox_unconfirmed = outbox.get(&OutboxState::Sending).copied().unwrap_or(0);
            h.outbox_uncertain = outbox.get(&OutboxState::Uncertain).copied().unwrap_or(0);
        }
        let mut dispatcher = Dispatcher::new(self.clone(), bot.id);
        let unhandled = self.store.telegram_unhandled(&bot_id).await?;
        if !unhandled.is_empty() {
            tracing::info!(
                count = unhandled.len(),
                "handing over Telegram updates received before the last stop"
            );
        }
        for u in unhandled {
            dispatcher.dispatch(u).await;
        }
        if let Some(rx) = &mut webhook_rx {
            tracing::info!(bot = ?bot.username, path = self.cfg.webhook_path, "Telegram webhook set; taking updates on the gateway's port");
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    u = rx.recv() => match u {
                        Some(u) => dispatcher.dispatch(u).await,
                        None => break,
                    },
                }
            }
            dispatcher.finish().await;
            return Ok(());
        }
        tracing::info!(bot = ?bot.username, ?offset, "Telegram polling started");

        loop {
            let polled = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = self.api.get_updates(offset, self.opts.poll_timeout) => r,
            };
            let delay = match polled {
                Ok(updates) => {
                    backoff.reset();
                    {
                        let mut h = lock_of(&self.health);
                        h.last_poll_at_ms = Some(now_ms());
                        h.last_error = None;
                    }
                    match self.spool(&bot_id, updates).await {
                        Ok(Some((next, spooled))) => {
                            offset = Some(next);
                            {
                                let mut h = lock_of(&self.health);
                                h.last_inbound_at_ms = Some(now_ms());
                                h.spool_pending += spooled.len() as u64;
                            }
                            for u in spooled {
                                dispatcher.dispatch(u).await;
                            }
                            continue;
                        }
                        Ok(None) => continue,
                        Err(e) => {
                            // The offset stays: Telegram sends the batch again.
                            tracing::error!(error = %e, "cannot spool Telegram updates");
                            self.record_error(&e);
                            backoff.next_delay()
                        }
                    }
                }
                Err(e @ TelegramError::Unauthorized { .. }) => {
                    dispatcher.finish().await;
                    return Err(e);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Telegram getUpdates failed");
                    self.record_error(&e);
                    match e {
                        TelegramError::Api {
                            status: 429,
                            retry_after: Some(after),
                            ..
                        } => after,
                        _ => backoff.next_delay(),
                    }
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(delay) => {}
            }
        }
        dispatcher.finish().await;
        Ok(())
    }

    /// Writes a batch to the spool with the offset after it; `None` for an empty batch.
    async fn spool(
        &self,
        bot_id: &str,
        updates: Vec<Value>,
    ) -> Result<Option<(i64, Vec<SpooledUpdate>)>, TelegramError> {
        let received_at_ms = now_ms();
        let mut spooled: Vec<SpooledUpdate> = updates
            .into_iter()
            .filter_map(|u| {
                Some(SpooledUpdate {
                    bot_id: bot_id.to_owned(),
                    update_id: u.get("update_id")?.as_i64()?,
                    update: u,
                    received_at_ms,
                    handled_at_ms: None,
                })
            })
            .collect();
        spooled.sort_by_key(|u| u.update_id);
        let Some(last) = spooled.last().map(|u| u.update_id) else {
            return Ok(None);
        };
        let mut writes: Vec<clawgate_store::Write> = spooled
            .iter()
            .map(|u| TelegramWrite::Spool(u.clone()).into())
            .collect();
        writes.push(
            TelegramWrite::Offset {
                bot_id: bot_id.to_owned(),
                next_offset: last + 1,
            }
            .into(),
        );
        self.store.apply(writes).await?;
        // An update already handled (spooled by an earlier poll whose offset was lost) is
        // not handed over again.
        let mut fresh = Vec::with_capacity(spooled.len());
        for u in spooled {
            match self.store.telegram_update(bot_id, u.update_id).await? {
                Some(stored) if stored.handled_at_ms.is_some() => {}
                _ => fresh.push(u),
            }
        }
        Ok(Some((last + 1, fresh)))
    }

    /// Handles one spooled update and marks it handled, in one batch with the outcome of its
    /// reply's last part. An update whose reply could not be confirmed sent (the Bot API did
    /// not answer) is left unhandled: the next start resumes it.
    async fn process(&self, bot_id: i64, u: SpooledUpdate) {
        let mut writes = match self.process_inner(bot_id, &u).await {
            Ok(Delivered::Done(writes)) => writes,
            Ok(Delivered::Unconfirmed(writes)) => {
                if let Err(e) = self.store.apply(writes).await {
                    tracing::error!(update_id = u.update_id, error = %e, "cannot record a Telegram reply's state");
                }
                lock_of(&self.health).outbox_unconfirmed += 1;
                return;
            }
            Err(e) => {
                tracing::warn!(update_id = u.update_id, error = %e, "a Telegram update failed");
                self.record_error(&e);
                Vec::new()
            }
        };
        writes.push(
            TelegramWrite::Handled {
                bot_id: u.bot_id.clone(),
                update_id: u.update_id,
                at_ms: now_ms(),
            }
            .into(),
        );
        if let Err(e) = self.store.apply(writes).await {
            tracing::error!(update_id = u.update_id, error = %e, "cannot mark a Telegram update handled");
        }
        let mut h = lock_of(&self.health);
        h.handled += 1;
        h.spool_pending = h.spool_pending.saturating_sub(1);
    }

    async fn process_inner(
        &self,
        bot_id: i64,
        u: &SpooledUpdate,
    ) -> Result<Delivered, TelegramError> {
        // Handed over again after a restart with its reply already decided: finish sending
        // it rather than running the message again.
        let parts = self.store.telegram_outbox(&u.bot_id, u.update_id).await?;
        if !parts.is_empty() {
            return self.resume(parts).await;
        }
        let nothing = || Ok(Delivered::Done(Vec::new()));
        if let Some(query) = u.update.get("callback_query") {
            self.handle_callback(query).await?;
            return nothing();
        }
        let Some(msg) = u.update.get("message") else {
            return nothing();
        };
        let Some(inbound) = parse_message(&self.opts.account, bot_id, u.update_id, msg) else {
            return nothing();
        };
        if let Some(answer) = self.approve_command(&inbound).await {
            let parts = self.reply_parts(
                &u.bot_id,
                u.update_id,
                &inbound.chat_id,
                &answer,
                Some(inbound.message_id),
            );
            return self.deliver(parts, Vec::new()).await;
        }
        let allow_from = lock_of(&self.allow_from).clone();
        if inbound.group {
            let group = match access::check_group(
                &self.cfg,
                &allow_from,
                &inbound.chat_id,
                &inbound.sender_id,
            ) {
                Ok(group) => group,
                Err(reason) => {
                    tracing::debug!(
                        chat_id = inbound.chat_id,
                        sender_id = inbound.sender_id,
                        reason,
                        "Telegram group message dropped"
                    );
                    return nothing();
                }
            };
            let bot = lock_of(&self.health).bot.clone();
            if group.require_mention && !mentions_bot(msg, bot.as_ref()) {
                tracing::debug!(
                    chat_id = inbound.chat_id,
                    "Telegram group message without a mention of the bot; ignored (requireMention)"
                );
                return nothing();
            }
            return self.run_turn(u, inbound).await;
        }
        if msg.pointer("/chat/type").and_then(Value::as_str) != Some("private") {
            tracing::debug!(
                chat_id = inbound.chat_id,
                "a Telegram channel post; dropped"
            );
            return nothing();
        }
        let decision = access::check_dm(
            &self.store,
            &self.opts.account,
            self.cfg.dm_policy,
            &allow_from,
            DmSender {
                sender_id: &inbound.sender_id,
                chat_id: &inbound.chat_id,
                label: inbound
                    .sender_username
                    .as_deref()
                    .or(inbound.sender_name.as_deref()),
            },
            now_ms(),
        )
        .await?;
        match decision {
            // An approver's `/approve` was answered above: this sender may not approve.
            DmDecision::Accept if approvals::parse_approve_command(&inbound.text).is_some() => {
                let parts = self.reply_parts(
                    &u.bot_id,
                    u.update_id,
                    &inbound.chat_id,
                    approvals::NOT_AN_APPROVER,
                    Some(inbound.message_id),
                );
                return self.deliver(parts, Vec::new()).await;
            }
            DmDecision::Accept => {}
            DmDecision::PairingReply { code, html } => {
                tracing::info!(
                    sender_id = inbound.sender_id,
                    "Telegram pairing requested; approve with {}",
                    access::approve_command(&code)
                );
                self.throttle.wait(&inbound.chat_id).await;
                let plain = access::pairing_reply_plain(&inbound.sender_id, &code);
                self.api
                    .send_message(&inbound.chat_id, &html, &plain, SendOptions::default())
                    .await?;
                return nothing();
            }
            DmDecision::Drop(reason) => {
                tracing::debug!(sender_id = inbound.sender_id, reason, "Telegram DM dropped");
                return nothing();
            }
        }
        self.run_turn(u, inbound).await
    }

    /// Hands an accepted message to the gateway (typing meanwhile) and sends its reply.
    async fn run_turn(
        &self,
        u: &SpooledUpdate,
        inbound: InboundMessage,
    ) -> Result<Delivered, TelegramError> {
        let nothing = || Ok(Delivered::Done(Vec::new()));
        let chat_id = inbound.chat_id.clone();
        let message_id = inbound.message_id;
        let reply = {
            let _permit = self.turns.acquire().await;
            let _typing = Typing::start(self.api.clone(), chat_id.clone());
            self.handler.handle(inbound).await
        };
        let text = match reply {
            HandlerReply::Nothing => return nothing(),
            HandlerReply::Text(text) => {
                lock_of(&self.failing).remove(&chat_id);
                text
            }
            HandlerReply::Error(text) => {
                let send = match self.cfg.error_policy {
                    ErrorPolicy::Always => true,
                    ErrorPolicy::Silent => false,
                    ErrorPolicy::Once => {
                        let mut failing = lock_of(&self.failing);
                        if failing.len() >= 4096 {
                            failing.clear();
                        }
                        failing.insert(chat_id.clone())
                    }
                };
                tracing::warn!(chat_id, error = text, "a Telegram turn failed");
                if !send {
                    return nothing();
                }
                text
            }
        };
        let parts = self.reply_parts(&u.bot_id, u.update_id, &chat_id, &text, Some(message_id));
        self.deliver(parts, Vec::new()).await
    }

    /// The parts of a reply to `update_id`: `markdown` in chunks of at most
    /// `textChunkLimit`, each replying to `reply_to` as `replyToMode` says.
    fn reply_parts(
        &self,
        bot_id: &str,
        update_id: i64,
        chat_id: &str,
        markdown: &str,
        reply_to: Option<i64>,
    ) -> Vec<OutboxPart> {
        let at_ms = now_ms();
        chunk_markdown(markdown, self.cfg.text_chunk_limit)
            .into_iter()
            .filter(|chunk| !chunk.trim().is_empty())
            .enumerate()
            .map(|(i, text)| OutboxPart {
                bot_id: bot_id.to_owned(),
                update_id,
                part: i as i64,
                chat_id: chat_id.to_owned(),
                text,
                reply_to: self.reply_to(i, reply_to),
                state: OutboxState::Queued,
                message_id: None,
                updated_at_ms: at_ms,
            })
            .collect()
    }

    fn reply_to(&self, part: usize, reply_to: Option<i64>) -> Option<i64> {
        match self.cfg.reply_to_mode {
            ReplyToMode::Off => None,
            ReplyToMode::First if part > 0 => None,
            ReplyToMode::First | ReplyToMode::All => reply_to,
        }
    }

    /// Finishes a reply found in the outbox at a handover: a part a restart cut off while
    /// sending becomes `uncertain` and is followed by [`RESTART_NOTICE`]; the parts never
    /// sent are sent.
    async fn resume(&self, parts: Vec<OutboxPart>) -> Result<Delivered, TelegramError> {
        let at_ms = now_ms();
        let mut writes: Vec<Write> = Vec::new();
        let mut parts = parts;
        let cut_off = parts.iter().any(|p| p.state == OutboxState::Sending);
        for p in parts.iter_mut().filter(|p| p.state == OutboxState::Sending) {
            p.state = OutboxState::Uncertain;
            writes.push(set_part(p, None, at_ms));
            let mut h = lock_of(&self.health);
            h.outbox_uncertain += 1;
            h.outbox_unconfirmed = h.outbox_unconfirmed.saturating_sub(1);
        }
        if cut_off && let Some(last) = parts.last() {
            let first = &parts[0];
            let notice = OutboxPart {
                part: last.part + 1,
                text: RESTART_NOTICE.to_owned(),
                reply_to: first.reply_to,
                state: OutboxState::Queued,
                message_id: None,
                updated_at_ms: at_ms,
                ..first.clone()
            };
            tracing::warn!(
                update_id = first.update_id,
                chat_id = first.chat_id,
                "a Telegram reply was cut off by a restart while being sent; the chat is told instead of sending it twice"
            );
            writes.push(TelegramWrite::QueueReply(vec![notice.clone()]).into());
            parts.push(notice);
        }
        self.deliver(parts, writes).await
    }

    /// Sends the `queued` parts in order, each recorded `sending` before its call (together
    /// with `writes`, the first time). Returns the writes that record the last outcome, to be
    /// applied with the update's `Handled`.
    async fn deliver(
        &self,
        parts: Vec<OutboxPart>,
        mut writes: Vec<Write>,
    ) -> Result<Delivered, TelegramError> {
        let queued: Vec<OutboxPart> = parts
            .into_iter()
            .filter(|p| p.state == OutboxState::Queued)
            .collect();
        // Recorded before the first send; a part recorded already is left as it is.
        writes.insert(0, TelegramWrite::QueueReply(queued.clone()).into());
        for p in queued {
            writes.push(set_part(&p, Some(OutboxState::Sending), now_ms()));
            self.store.apply(std::mem::take(&mut writes)).await?;
            self.throttle.wait(&p.chat_id).await;
            let options = SendOptions {
                disable_link_preview: !self.cfg.link_preview,
                reply_to: p.reply_to,
                ..SendOptions::default()
            };
            let html = markdown_to_html(&p.text);
            match self
                .api
                .send_message(&p.chat_id, &html, &p.text, options)
                .await
            {
                Ok(id) => writes.push(set_part_sent(&p, id)),
                Err(e @ (TelegramError::Transport { .. } | TelegramError::Decode { .. })) => {
                    // It may have arrived: left `sending`, the next start tells the chat.
                    tracing::error!(update_id = p.update_id, part = p.part, error = %e, "a Telegram reply may not have been delivered; the chat is told at the next start");
                    self.record_error(&e);
                    return Ok(Delivered::Unconfirmed(writes));
                }
                Err(e) => {
                    // Telegram refused it for good (blocked bot, chat gone): the rest would
                    // fare no better.
                    writes.push(set_part(&p, Some(OutboxState::Failed), now_ms()));
                    self.store.apply(std::mem::take(&mut writes)).await?;
                    return Err(e);
                }
            }
        }
        Ok(Delivered::Done(writes))
    }

    async fn send_text(
        &self,
        chat_id: &str,
        markdown: &str,
        reply_to: Option<i64>,
    ) -> Result<Vec<i64>, TelegramError> {
        let mut ids = Vec::new();
        let chunks = chunk_markdown(markdown, self.cfg.text_chunk_limit);
        for (i, chunk) in chunks.iter().enumerate() {
            if chunk.trim().is_empty() {
                continue;
            }
            self.throttle.wait(chat_id).await;
            let options = SendOptions {
                disable_link_preview: !self.cfg.link_preview,
                reply_to: self.reply_to(i, reply_to),
                ..SendOptions::default()
            };
            let html = markdown_to_html(chunk);
            ids.push(
                self.api
                    .send_message(chat_id, &html, chunk, options)
                    .await?,
            );
        }
        Ok(ids)
    }
}

/// How the handling of an update ended.
enum Delivered {
    /// Nothing more to send: these writes go with the update's `Handled`.
    Done(Vec<Write>),
    /// A part's send got no answer: these writes are applied, the update stays unhandled.
    Unconfirmed(Vec<Write>),
}

fn set_part(p: &OutboxPart, state: Option<OutboxState>, at_ms: i64) -> Write {
    TelegramWrite::SetPart {
        bot_id: p.bot_id.clone(),
        update_id: p.update_id,
        part: p.part,
        state: state.unwrap_or(p.state),
        message_id: None,
        at_ms,
    }
    .into()
}

fn set_part_sent(p: &OutboxPart, message_id: i64) -> Write {
    TelegramWrite::SetPart {
        bot_id: p.bot_id.clone(),
        update_id: p.update_id,
        part: p.part,
        state: OutboxState::Sent,
        message_id: Some(message_id),
        at_ms: now_ms(),
    }
    .into()
}

/// The inbound message of a `message` update; `None` without a sender or chat.
fn parse_message(
    account: &str,
    bot_id: i64,
    update_id: i64,
    msg: &Value,
) -> Option<InboundMessage> {
    let id_text = |v: &Value| match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    };
    let chat_id = id_text(msg.pointer("/chat/id")?)?;
    let from = msg.get("from")?;
    let sender_id = id_text(from.get("id")?)?;
    let name = [from.get("first_name"), from.get("last_name")]
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join(" ");
    let text = msg
        .get("text")
        .or_else(|| msg.get("caption"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| {
            let kind = [
                ("photo", "image"),
                ("video", "video"),
                ("voice", "audio"),
                ("audio", "audio"),
                ("document", "document"),
                ("sticker", "sticker"),
            ]
            .into_iter()
            .find(|(k, _)| msg.get(*k).is_some())
            .map_or("unknown", |(_, v)| v);
            format!("<media:{kind}>")
        });
    Some(InboundMessage {
        account: account.to_owned(),
        bot_id,
        update_id,
        chat_id,
        sender_id,
        sender_name: (!name.is_empty()).then_some(name),
        sender_username: from
            .get("username")
            .and_then(Value::as_str)
            .map(str::to_owned),
        message_id: msg.get("message_id").and_then(Value::as_i64).unwrap_or(0),
        text,
        date: msg.get("date").and_then(Value::as_i64).unwrap_or(0),
        group: matches!(
            msg.pointer("/chat/type").and_then(Value::as_str),
            Some("group" | "supergroup")
        ),
        reply_quote: msg
            .pointer("/quote/text")
            .or_else(|| msg.pointer("/reply_to_message/text"))
            .or_else(|| msg.pointer("/reply_to_message/caption"))
            .and_then(Value::as_str)
            .filter(|q| !q.trim().is_empty())
            .map(|q| q.chars().take(MAX_QUOTE_CHARS).collect()),
    })
}

/// Whether a group message is meant for the bot: it names `@bot` (in its text or caption, or
/// as a mention entity of the bot's user) or replies to one of the bot's messages.
fn mentions_bot(msg: &Value, bot: Option<&BotInfo>) -> bool {
    let Some(bot) = bot else {
        return false;
    };
    if msg
        .pointer("/reply_to_message/from/id")
        .and_then(Value::as_i64)
        == Some(bot.id)
    {
        return true;
    }
    let text = msg
        .get("text")
        .or_else(|| msg.get("caption"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_lowercase();
    let by_name = bot
        .username
        .as_deref()
        .is_some_and(|name| text.contains(&format!("@{}", name.to_lowercase())));
    let by_entity = ["entities", "caption_entities"]
        .iter()
        .filter_map(|k| msg.get(*k).and_then(Value::as_array))
        .flatten()
        .any(|e| e.pointer("/user/id").and_then(Value::as_i64) == Some(bot.id));
    by_name || by_entity
}

/// Which worker an update goes to: its chat's, but an approval's answer (a button press or a
/// `/approve`) has a lane of its own, since the chat's turn may be the one waiting for it.
fn dispatch_key(update: &Value) -> String {
    if let Some(chat) = update.pointer("/callback_query/message/chat/id") {
        return format!("answer:{chat}");
    }
    let chat = update
        .pointer("/message/chat/id")
        .map(Value::to_string)
        .unwrap_or_default();
    let text = update
        .pointer("/message/text")
        .and_then(Value::as_str)
        .unwrap_or("");
    if approvals::parse_approve_command(text).is_some() {
        format!("answer:{chat}")
    } else {
        chat
    }
}

/// Per-chat workers: updates of one chat in order, chats in parallel.
struct Dispatcher {
    inner: Arc<Inner>,
    bot_id: i64,
    chats: HashMap<String, mpsc::Sender<SpooledUpdate>>,
    tasks: JoinSet<()>,
}

impl Dispatcher {
    fn new(inner: Arc<Inner>, bot_id: i64) -> Self {
        Dispatcher {
            inner,
            bot_id,
            chats: HashMap::new(),
            tasks: JoinSet::new(),
        }
    }

    async fn dispatch(&mut self, u: SpooledUpdate) {
        while self.tasks.try_join_next().is_some() {}
        let chat = dispatch_key(&u.update);
        let mut u = u;
        if let Some(tx) = self.chats.get(&chat) {
            match tx.send(u).await {
                Ok(()) => return,
                // Its worker ended (idle); start another.
                Err(mpsc::error::SendError(back)) => u = back,
            }
        }
        self.chats.retain(|_, tx| !tx.is_closed());
        let (tx, rx) = mpsc::channel(PER_CHAT_QUEUE);
        let _ = tx.send(u).await;
        self.chats.insert(chat, tx);
        self.tasks
            .spawn(worker(self.inner.clone(), self.bot_id, rx));
    }

    /// Lets the workers finish what they hold, for at most [`SHUTDOWN_GRACE`].
    async fn finish(mut self) {
        self.chats.clear();
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        while let Ok(Some(_)) = tokio::time::timeout_at(deadline, self.tasks.join_next()).await {}
        self.tasks.abort_all();
    }
}

async fn worker(inner: Arc<Inner>, bot_id: i64, mut rx: mpsc::Receiver<SpooledUpdate>) {
    loop {
        match tokio::time::timeout(WORKER_IDLE, rx.recv()).await {
            Ok(Some(u)) => inner.process(bot_id, u).await,
            Ok(None) => return,
            Err(_) => {
                rx.close();
                while let Ok(u) = rx.try_recv() {
                    inner.process(bot_id, u).await;
                }
                return;
            }
        }
    }
}
