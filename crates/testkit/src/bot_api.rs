//! [`FakeBotApi`]: a Telegram Bot API on `127.0.0.1:0`, reached through `apiRoot`
//! (`{apiRoot}/bot<token>/<method>`).
//!
//! It holds a queue of updates ([`FakeBotApi::inject_dm`], [`FakeBotApi::inject_update`])
//! and serves them to `getUpdates` as Telegram does: `offset` confirms (forgets) every update
//! below it, and a long poll (`timeout` seconds) returns as soon as an update exists. Every
//! call is recorded with its parameters (JSON body, form or query; `chat_id` as a number or a
//! string). A test can make the next calls of a method fail ([`Failure`]): 400 with an HTML
//! parse error, 401, 409 Conflict, 429 with `retry_after`, a dropped connection, or no answer at
//! all. A wrong
//! token is answered 401 like the real API.
//!
//! ```no_run
//! # async fn demo() {
//! use clawgate_testkit::{FakeBotApi, Failure};
//! let api = FakeBotApi::start("123:secret").await;
//! api.inject_dm(777, "hello");
//! api.fail_next("sendMessage", Failure::ParseError);
//! // … point channels.telegram.apiRoot at api.api_root() …
//! let sent = api.wait_for_calls("sendMessage", 2, std::time::Duration::from_secs(5)).await;
//! assert!(sent[1].params.get("parse_mode").is_none());
//! # }
//! ```

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// A scripted failure of one call.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// 400 `Bad Request: can't parse entities: …` (Telegram's answer to bad HTML).
    ParseError,
    /// 400 with this description.
    BadRequest(String),
    /// 401 Unauthorized.
    Unauthorized,
    /// 409 Conflict: another `getUpdates` (or a webhook) is using the token.
    Conflict,
    /// 429 Too Many Requests with `parameters.retry_after`.
    TooManyRequests { retry_after: u64 },
    /// The connection is closed without an answer.
    Drop,
    /// The call is recorded and never answered (a send cut off by a crash of the caller).
    Stall,
}

/// One call the fake received.
#[derive(Debug, Clone)]
pub struct BotCall {
    /// The method name (`getUpdates`, `sendMessage`…).
    pub method: String,
    /// The parameters as a JSON object, however they were sent.
    pub params: Value,
    /// Whether the path carried the right token.
    pub authorized: bool,
    /// How it was answered: 200, or the failure's status (0: dropped or never answered).
    pub status: u16,
    pub at: Instant,
}

impl BotCall {
    /// `chat_id` as text, whether it was sent as a number or a string.
    pub fn chat_id(&self) -> Option<String> {
        match self.params.get("chat_id")? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    /// `text` of a `sendMessage` / `editMessageText`.
    pub fn text(&self) -> Option<&str> {
        self.params.get("text").and_then(Value::as_str)
    }
}

#[derive(Default)]
struct State {
    /// Updates not yet confirmed by an offset, in `update_id` order.
    updates: VecDeque<Value>,
    next_update_id: i64,
    next_message_id: i64,
    calls: Vec<BotCall>,
    failures: HashMap<String, VecDeque<Failure>>,
    webhook_deleted: bool,
}

struct Shared {
    token: String,
    bot_id: i64,
    state: Mutex<State>,
    /// Woken on every injected update.
    injected: Notify,
    /// Woken on every call.
    called: Notify,
}

/// A fake Telegram Bot API. Dropping it stops the server and closes every connection.
pub struct FakeBotApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl Drop for FakeBotApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl FakeBotApi {
    /// Starts a fake for the bot `token` (`<bot id>:<secret>`) on `127.0.0.1:0`.
    pub async fn start(token: &str) -> FakeBotApi {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("binding the fake Bot API to 127.0.0.1:0");
        let addr = listener.local_addr().expect("the fake Bot API's address");
        let bot_id = token
            .split(':')
            .next()
            .and_then(|id| id.parse().ok())
            .unwrap_or(1);
        let shared = Arc::new(Shared {
            token: token.to_owned(),
            bot_id,
            state: Mutex::new(State {
                next_update_id: 100,
                next_message_id: 1,
                ..State::default()
            }),
            injected: Notify::new(),
            called: Notify::new(),
        });
        let server = tokio::spawn(serve(listener, shared.clone()));
        FakeBotApi {
            addr,
            shared,
            server,
        }
    }

    /// The value for `channels.telegram.apiRoot`: `http://127.0.0.1:<port>`.
    pub fn api_root(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bot's numeric id (the token's first part).
    pub fn bot_id(&self) -> i64 {
        self.shared.bot_id
    }

    /// Queues a private-chat text message from user `user_id` (its chat id is the user id);
    /// returns its `update_id`.
    pub fn inject_dm(&self, user_id: i64, text: &str) -> i64 {
        self.inject_message(json!({
            "chat": {"id": user_id, "type": "private", "first_name": format!("User{user_id}")},
            "from": {"id": user_id, "is_bot": false, "first_name": format!("User{user_id}"), "username": format!("user{user_id}")},
            "text": text,
        }))
    }

    /// Queues a group message from `user_id` in chat `chat_id`; returns its `update_id`.
    pub fn inject_group_message(&self, chat_id: i64, user_id: i64, text: &str) -> i64 {
        self.inject_message(json!({
            "chat": {"id": chat_id, "type": "supergroup", "title": "Group"},
            "from": {"id": user_id, "is_bot": false, "first_name": format!("User{user_id}")},
            "text": text,
        }))
    }

    /// Queues `{"message": message}` with a fresh `message_id` and `date` filled in.
    pub fn inject_message(&self, mut message: Value) -> i64 {
        let mut state = lock(&self.shared.state);
        let message_id = state.next_message_id;
        state.next_message_id += 1;
        if let Some(m) = message.as_object_mut() {
            m.entry("message_id").or_insert(json!(message_id));
            m.entry("date").or_insert(json!(1_767_000_000));
        }
        drop(state);
        self.inject_update(json!({"message": message}))
    }

    /// Queues an update (its `update_id` is set to the next one); returns the id.
    pub fn inject_update(&self, mut update: Value) -> i64 {
        let mut state = lock(&self.shared.state);
        let id = state.next_update_id;
        state.next_update_id += 1;
        if let Some(u) = update.as_object_mut() {
            u.insert("update_id".into(), json!(id));
        }
        state.updates.push_back(update);
        drop(state);
        self.shared.injected.notify_waiters();
        id
    }

    /// Updates injected and not yet confirmed by an `offset`.
    pub fn pending_updates(&self) -> usize {
        lock(&self.shared.state).updates.len()
    }

    /// Makes the next call of `method` fail with `failure` (queued: several calls fail in
    /// order).
    pub fn fail_next(&self, method: &str, failure: Failure) -> &FakeBotApi {
        lock(&self.shared.state)
            .failures
            .entry(method.to_owned())
            .or_default()
            .push_back(failure);
        self
    }

    /// Whether `deleteWebhook` has been called.
    pub fn webhook_deleted(&self) -> bool {
        lock(&self.shared.state).webhook_deleted
    }

    /// Every call so far, in arrival order.
    pub fn calls(&self) -> Vec<BotCall> {
        lock(&self.shared.state).calls.clone()
    }

    /// The calls of one method.
    pub fn calls_to(&self, method: &str) -> Vec<BotCall> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == method)
            .collect()
    }

    /// The `sendMessage` calls answered 200, as (chat id, text).
    pub fn sent_messages(&self) -> Vec<(String, String)> {
        self.calls_to("sendMessage")
            .into_iter()
            .filter(|c| c.status == 200)
            .map(|c| {
                (
                    c.chat_id().unwrap_or_default(),
                    c.text().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// Waits until `count` calls of `method` have arrived; panics after `timeout`.
    pub async fn wait_for_calls(
        &self,
        method: &str,
        count: usize,
        timeout: Duration,
    ) -> Vec<BotCall> {
        let deadline = Instant::now() + timeout;
        loop {
            let called = self.shared.called.notified();
            let calls = self.calls_to(method);
            if calls.len() >= count {
                return calls;
            }
            if tokio::time::timeout_at(deadline, called).await.is_err() {
                panic!(
                    "the fake Bot API received {} of {count} {method} calls within {timeout:?}; calls: {:?}",
                    calls.len(),
                    self.calls()
                        .iter()
                        .map(|c| c.method.as_str())
                        .collect::<Vec<_>>()
                );
            }
        }
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { answer(req, &shared).await }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}

type FakeBody = Full<Bytes>;

fn reply(status: u16, body: Value) -> Result<Response<FakeBody>, Infallible> {
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a valid response"))
}

fn error(status: u16, description: &str, parameters: Option<Value>) -> Value {
    let mut doc = json!({"ok": false, "error_code": status, "description": description});
    if let Some(p) = parameters {
        doc["parameters"] = p;
    }
    doc
}

/// The parameters of a request: its query, then its JSON or form body.
fn params(query: Option<&str>, content_type: &str, body: &[u8]) -> Value {
    let mut out = Map::new();
    let mut form = |text: &str| {
        for pair in text.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode(v);
            let value = serde_json::from_str::<Value>(&v)
                .ok()
                .filter(|j| j.is_number() || j.is_object() || j.is_array() || j.is_boolean())
                .unwrap_or(Value::String(v));
            out.insert(percent_decode(k), value);
        }
    };
    if let Some(q) = query {
        form(q);
    }
    if content_type.starts_with("application/x-www-form-urlencoded") {
        form(&String::from_utf8_lossy(body));
    } else if let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(body) {
        out.extend(obj);
    }
    Value::Object(out)
}

fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn int_param(params: &Value, name: &str) -> Option<i64> {
    match params.get(name)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

async fn answer(
    req: Request<Incoming>,
    shared: &Shared,
) -> Result<Response<FakeBody>, std::io::Error> {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let params = params(query.as_deref(), &content_type, &body);

    let Some((token, method)) = path
        .strip_prefix("/bot")
        .and_then(|rest| rest.split_once('/'))
    else {
        return Ok(reply(404, error(404, "Not Found", None)).expect("infallible"));
    };
    let authorized = token == shared.token;
    let failure = if authorized {
        lock(&shared.state)
            .failures
            .get_mut(method)
            .and_then(VecDeque::pop_front)
    } else {
        Some(Failure::Unauthorized)
    };
    let status = match &failure {
        None | Some(Failure::Drop | Failure::Stall) => 200,
        Some(Failure::ParseError | Failure::BadRequest(_)) => 400,
        Some(Failure::Unauthorized) => 401,
        Some(Failure::Conflict) => 409,
        Some(Failure::TooManyRequests { .. }) => 429,
    };
    {
        let mut state = lock(&shared.state);
        state.calls.push(BotCall {
            method: method.to_owned(),
            params: params.clone(),
            authorized,
            status: if matches!(failure, Some(Failure::Drop | Failure::Stall)) {
                0
            } else {
                status
            },
            at: Instant::now(),
        });
    }
    shared.called.notify_waiters();

    let answered = match failure {
        Some(Failure::Drop) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "the fake Bot API drops this call",
            ));
        }
        Some(Failure::Stall) => std::future::pending().await,
        Some(Failure::ParseError) => reply(
            400,
            error(
                400,
                "Bad Request: can't parse entities: Can't find end of the entity starting at byte offset 0",
                None,
            ),
        ),
        Some(Failure::BadRequest(d)) => reply(400, error(400, &format!("Bad Request: {d}"), None)),
        Some(Failure::Unauthorized) => reply(401, error(401, "Unauthorized", None)),
        Some(Failure::Conflict) => reply(
            409,
            error(
                409,
                "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
                None,
            ),
        ),
        Some(Failure::TooManyRequests { retry_after }) => reply(
            429,
            error(
                429,
                &format!("Too Many Requests: retry after {retry_after}"),
                Some(json!({"retry_after": retry_after})),
            ),
        ),
        None => reply(
            200,
            json!({"ok": true, "result": result(method, &params, shared).await}),
        ),
    };
    Ok(answered.expect("infallible"))
}

async fn result(method: &str, params: &Value, shared: &Shared) -> Value {
    match method {
        "getMe" => json!({
            "id": shared.bot_id,
            "is_bot": true,
            "first_name": "Fake Bot",
            "username": "fake_bot",
            "can_join_groups": true,
            "can_read_all_group_messages": false,
            "supports_inline_queries": false,
        }),
        "deleteWebhook" => {
            lock(&shared.state).webhook_deleted = true;
            json!(true)
        }
        "getUpdates" => get_updates(params, shared).await,
        "sendMessage" => {
            let mut state = lock(&shared.state);
            let id = state.next_message_id;
            state.next_message_id += 1;
            json!({
                "message_id": id,
                "date": 1_767_000_000,
                "chat": {"id": params.get("chat_id").cloned().unwrap_or(Value::Null)},
                "text": params.get("text").cloned().unwrap_or(Value::Null),
            })
        }
        "editMessageText" => json!({
            "message_id": params.get("message_id").cloned().unwrap_or(Value::Null),
            "chat": {"id": params.get("chat_id").cloned().unwrap_or(Value::Null)},
            "text": params.get("text").cloned().unwrap_or(Value::Null),
        }),
        // setMyCommands, deleteMyCommands, sendChatAction, deleteMessage…
        _ => json!(true),
    }
}

async fn get_updates(params: &Value, shared: &Shared) -> Value {
    let offset = int_param(params, "offset");
    let timeout = int_param(params, "timeout").unwrap_or(0).clamp(0, 50) as u64;
    let limit = int_param(params, "limit").unwrap_or(100).clamp(1, 100) as usize;
    let deadline = Instant::now() + Duration::from_secs(timeout);
    loop {
        let injected = shared.injected.notified();
        {
            let mut state = lock(&shared.state);
            if let Some(offset) = offset {
                // An offset confirms every update below it.
                while state
                    .updates
                    .front()
                    .and_then(|u| u["update_id"].as_i64())
                    .is_some_and(|id| id < offset)
                {
                    state.updates.pop_front();
                }
            }
            if !state.updates.is_empty() {
                return Value::Array(state.updates.iter().take(limit).cloned().collect());
            }
        }
        if tokio::time::timeout_at(deadline, injected).await.is_err() {
            return json!([]);
        }
    }
}
