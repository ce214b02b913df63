//! [`BotApi`]: the Bot API client (`POST {apiRoot}/bot<token>/<method>` with a JSON body).
//!
//! Calls other than `getUpdates` are tried up to 3 times: a 429 waits its `retry_after`, a
//! timeout, a reset connection or a 5xx waits 400 ms–30 s. The token never leaves this
//! module in any text: reqwest's errors are taken without their URL, and anything the server
//! sends back is scrubbed of it.

use std::time::Duration;

use clawgate_config::Secret;
use serde_json::{Value, json};

use crate::backoff::Backoff;
use crate::error::TelegramError;

/// The HTTP time limit of calls other than `getUpdates`.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The HTTP time limit of a `getUpdates` long poll (its `timeout` is 30 s).
pub const POLL_HTTP_TIMEOUT: Duration = Duration::from_secs(45);

/// How many times a call is tried.
pub const ATTEMPTS: u32 = 3;

/// A 429 asking to wait longer than this is returned at once instead of waited out.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(60);

/// An answer body larger than this is refused.
const MAX_BODY: usize = 16 << 20;

/// The bot, as `getMe` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotInfo {
    pub id: i64,
    pub username: Option<String>,
    pub first_name: String,
}

/// The updates the channel asks for, polled or posted.
const ALLOWED_UPDATES: [&str; 2] = ["message", "callback_query"];

/// Options of one `sendMessage`.
#[derive(Debug, Clone, Default)]
pub struct SendOptions {
    /// Telegram shows no link preview.
    pub disable_link_preview: bool,
    /// The message quotes this one.
    pub reply_to: Option<i64>,
    /// An inline keyboard (`{"inline_keyboard": [[…]]}`).
    pub reply_markup: Option<Value>,
}

/// A Bot API client for one bot token.
#[derive(Clone)]
pub struct BotApi {
    http: reqwest::Client,
    /// `{apiRoot}/bot<token>/`: holds the token, so it is a `Secret` too.
    base: Secret,
    token: Secret,
}

impl std::fmt::Debug for BotApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotApi").finish_non_exhaustive()
    }
}

/// A reqwest error as one line with its causes, without the URL.
fn transport_detail(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// `chat_id` as the Bot API takes it: a number when it is one, else the text (`@channel`).
pub(crate) fn chat_id_value(chat_id: &str) -> Value {
    chat_id
        .parse::<i64>()
        .map(Value::from)
        .unwrap_or_else(|_| Value::String(chat_id.to_owned()))
}

impl BotApi {
    /// A client for `token` at `api_root` (`https://api.telegram.org` or a fake), through
    /// `proxy` if given.
    pub fn new(
        token: Secret,
        api_root: &str,
        proxy: Option<&str>,
    ) -> Result<BotApi, TelegramError> {
        // reqwest is built without a crypto provider of its own; ring is the only one in the
        // tree. An error means one is installed already, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("clawgate/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10));
        if let Some(proxy) = proxy {
            let proxy = reqwest::Proxy::all(proxy).map_err(|e| {
                TelegramError::Client(format!(
                    "channels.telegram.proxy is not usable: {}",
                    transport_detail(e)
                ))
            })?;
            builder = builder.proxy(proxy);
        }
        let http = builder
            .build()
            .map_err(|e| TelegramError::Client(transport_detail(e)))?;
        let base = Secret::new(format!(
            "{}/bot{}/",
            api_root.trim_end_matches('/'),
            token.expose()
        ));
        Ok(BotApi { http, base, token })
    }

    /// `text` without the token.
    fn scrub(&self, text: &str) -> String {
        let token = self.token.expose();
        if token.is_empty() {
            text.to_owned()
        } else {
            text.replace(token, "***")
        }
    }

    /// One try of `method`; the `result` of a successful answer.
    pub async fn call_once(
        &self,
        method: &str,
        params: &Value,
        timeout: Duration,
    ) -> Result<Value, TelegramError> {
        let url = format!("{}{method}", self.base.expose());
        let transport = |e: reqwest::Error| {
            let timed_out = e.is_timeout();
            TelegramError::Transport {
                method: method.to_owned(),
                detail: self.scrub(&transport_detail(e)),
                timed_out,
            }
        };
        let response = self
            .http
            .post(url)
            .timeout(timeout)
            .header("content-type", "application/json")
            .body(params.to_string())
            .send()
            .await
            .map_err(transport)?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        let mut response = response;
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_BODY {
                return Err(TelegramError::Decode {
                    method: method.to_owned(),
                    detail: format!("the answer exceeded {} MiB", MAX_BODY >> 20),
                });
            }
        }
        let doc: Value = serde_json::from_slice(&body).map_err(|e| TelegramError::Decode {
            method: method.to_owned(),
            detail: format!(
                "HTTP {status}: {e} ({})",
                self.scrub(&String::from_utf8_lossy(&body[..body.len().min(200)]))
            ),
        })?;
        if doc.get("ok") == Some(&Value::Bool(true)) {
            return Ok(doc.get("result").cloned().unwrap_or(Value::Null));
        }
        let code = doc
            .get("error_code")
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok())
            .unwrap_or(status);
        let description = self.scrub(
            doc.get("description")
                .and_then(Value::as_str)
                .unwrap_or("(no description)"),
        );
        Err(match code {
            401 => TelegramError::Unauthorized {
                method: method.to_owned(),
            },
            409 => TelegramError::Conflict { description },
            _ => TelegramError::Api {
                method: method.to_owned(),
                status: code,
                description,
                retry_after: doc
                    .pointer("/parameters/retry_after")
                    .and_then(Value::as_u64)
                    .map(Duration::from_secs),
            },
        })
    }

    /// `method` with up to [`ATTEMPTS`] tries: a 429 waits its `retry_after` (up to
    /// [`MAX_RETRY_WAIT`]); a timeout, a
    /// failed connection or a 5xx waits with back-off. Other errors are returned at once.
    pub async fn call(&self, method: &str, params: &Value) -> Result<Value, TelegramError> {
        let mut backoff = Backoff::telegram();
        let mut attempt = 1;
        loop {
            let err = match self.call_once(method, params, CALL_TIMEOUT).await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if attempt >= ATTEMPTS {
                return Err(err);
            }
            let delay = match &err {
                TelegramError::Api {
                    status: 429,
                    retry_after,
                    ..
                } => match retry_after {
                    Some(after) if *after > MAX_RETRY_WAIT => return Err(err),
                    Some(after) => *after,
                    None => backoff.next_delay(),
                },
                TelegramError::Api { status, .. } if *status >= 500 => backoff.next_delay(),
                TelegramError::Transport { .. } => backoff.next_delay(),
                _ => return Err(err),
            };
            tracing::debug!(method, attempt, ?delay, error = %err, "retrying a Telegram call");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// `getMe`. A 401 here is [`TelegramError::Unauthorized`], naming the token's key.
    pub async fn get_me(&self) -> Result<BotInfo, TelegramError> {
        let me = self.call("getMe", &json!({})).await?;
        let id = me
            .get("id")
            .and_then(Value::as_i64)
            .ok_or_else(|| TelegramError::Decode {
                method: "getMe".into(),
                detail: "no bot id in the answer".into(),
            })?;
        Ok(BotInfo {
            id,
            username: me
                .get("username")
                .and_then(Value::as_str)
                .map(str::to_owned),
            first_name: me
                .get("first_name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        })
    }

    /// `deleteWebhook {drop_pending_updates:false}`: long polling needs no webhook.
    pub async fn delete_webhook(&self) -> Result<(), TelegramError> {
        self.call("deleteWebhook", &json!({"drop_pending_updates": false}))
            .await
            .map(drop)
    }

    /// `setWebhook`: Telegram posts updates to `url` with `secret` in the
    /// `X-Telegram-Bot-Api-Secret-Token` header (updates it holds are kept).
    pub async fn set_webhook(&self, url: &str, secret: &str) -> Result<(), TelegramError> {
        self.call(
            "setWebhook",
            &json!({
                "url": url,
                "secret_token": secret,
                "allowed_updates": ALLOWED_UPDATES,
                "drop_pending_updates": false,
            }),
        )
        .await
        .map(drop)
    }

    /// `setMyCommands` with `(command, description)` pairs.
    pub async fn set_my_commands(
        &self,
        commands: &[(String, String)],
    ) -> Result<(), TelegramError> {
        let list: Vec<Value> = commands
            .iter()
            .map(|(c, d)| json!({"command": c, "description": d}))
            .collect();
        self.call("setMyCommands", &json!({"commands": list}))
            .await
            .map(drop)
    }

    /// One `getUpdates` long poll (one try, [`POLL_HTTP_TIMEOUT`]): the updates from
    /// `offset` on, waiting up to `timeout` for one.
    pub async fn get_updates(
        &self,
        offset: Option<i64>,
        timeout: Duration,
    ) -> Result<Vec<Value>, TelegramError> {
        let mut params = json!({
            "timeout": timeout.as_secs(),
            "allowed_updates": ALLOWED_UPDATES,
        });
        if let Some(offset) = offset {
            params["offset"] = json!(offset);
        }
        let http_timeout = POLL_HTTP_TIMEOUT.max(timeout + Duration::from_secs(15));
        match self.call_once("getUpdates", &params, http_timeout).await? {
            Value::Array(updates) => Ok(updates),
            other => Err(TelegramError::Decode {
                method: "getUpdates".into(),
                detail: format!("expected a list of updates, got {}", short(&other)),
            }),
        }
    }

    /// `sendMessage` of `html` (`parse_mode: HTML`); when Telegram cannot parse the HTML, the
    /// message is sent again once as `plain` text. Returns the sent message's id.
    pub async fn send_message(
        &self,
        chat_id: &str,
        html: &str,
        plain: &str,
        options: SendOptions,
    ) -> Result<i64, TelegramError> {
        let mut params = json!({
            "chat_id": chat_id_value(chat_id),
            "text": html,
            "parse_mode": "HTML",
        });
        if options.disable_link_preview {
            params["link_preview_options"] = json!({"is_disabled": true});
        }
        if let Some(id) = options.reply_to {
            params["reply_parameters"] =
                json!({"message_id": id, "allow_sending_without_reply": true});
        }
        if let Some(markup) = options.reply_markup {
            params["reply_markup"] = markup;
        }
        let sent = match self.call("sendMessage", &params).await {
            Err(e) if e.is_parse_error() => {
                tracing::warn!(chat_id, error = %e, "Telegram could not parse the reply's HTML; sending it as plain text");
                let obj = params.as_object_mut().expect("an object");
                obj.remove("parse_mode");
                obj.insert("text".into(), Value::String(plain.to_owned()));
                self.call("sendMessage", &params).await?
            }
            other => other?,
        };
        Ok(sent.get("message_id").and_then(Value::as_i64).unwrap_or(0))
    }

    /// `sendChatAction` (`typing`).
    pub async fn send_chat_action(&self, chat_id: &str, action: &str) -> Result<(), TelegramError> {
        self.call_once(
            "sendChatAction",
            &json!({"chat_id": chat_id_value(chat_id), "action": action}),
            CALL_TIMEOUT,
        )
        .await
        .map(drop)
    }

    /// `answerCallbackQuery`: the pressed button stops spinning; `text` shows as a notice
    /// (as an alert when `alert`).
    pub async fn answer_callback_query(
        &self,
        callback_query_id: &str,
        text: &str,
        alert: bool,
    ) -> Result<(), TelegramError> {
        self.call(
            "answerCallbackQuery",
            &json!({"callback_query_id": callback_query_id, "text": text, "show_alert": alert}),
        )
        .await
        .map(drop)
    }

    /// `editMessageText` of a message the bot sent, in HTML.
    pub async fn edit_message_text(
        &self,
        chat_id: &str,
        message_id: i64,
        html: &str,
    ) -> Result<(), TelegramError> {
        self.call(
            "editMessageText",
            &json!({
                "chat_id": chat_id_value(chat_id),
                "message_id": message_id,
                "text": html,
                "parse_mode": "HTML",
            }),
        )
        .await
        .map(drop)
    }
}

fn short(v: &Value) -> String {
    let mut s = v.to_string();
    if s.len() > 120 {
        let mut end = 120;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}
