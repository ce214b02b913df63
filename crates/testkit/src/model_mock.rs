//! [`ModelMock`]: a scripted model server on `127.0.0.1:0` speaking the OpenAI chat
//! completions, Anthropic Messages or Ollama `/api/chat` wire format.
//!
//! Each test queues the answers it wants ([`ModelMock::push`] with [`Reply`]s): streamed
//! text, tool calls whose arguments arrive in several fragments, HTTP errors with
//! `retry-after`, a stream that stalls or breaks off, a malformed body. Every request is
//! recorded (method, path, headers, JSON body, arrival time) so a test can check what the
//! client sent, e.g. that the follow-up request carries the tool result. Replies are
//! written at once (benchmarks use the mock too).
//!
//! ```no_run
//! # async fn demo() {
//! use clawgate_testkit::{ModelMock, Reply, WireFormat, json};
//! let mock = ModelMock::start(WireFormat::OpenAi).await;
//! mock.push(Reply::tool_call("exec", json!({"command": "uname -s"})));
//! mock.push(Reply::text("It runs Linux."));
//! // … point models.providers.mock.baseUrl at mock.base_url() and run a turn …
//! let requests = mock.requests();
//! assert_eq!(requests[1].body["messages"][2]["role"], "tool");
//! # }
//! ```

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use http_body_util::{BodyExt, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// The wire protocol a [`ModelMock`] speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireFormat {
    /// `POST /v1/chat/completions`, server-sent events, `data: [DONE]`.
    OpenAi,
    /// `POST /v1/messages`, server-sent events with event names.
    Anthropic,
    /// `POST /api/chat`, newline-delimited JSON.
    Ollama,
}

impl WireFormat {
    /// The `api` value of a provider speaking this format.
    pub fn api(self) -> &'static str {
        match self {
            WireFormat::OpenAi => "openai-completions",
            WireFormat::Anthropic => "anthropic-messages",
            WireFormat::Ollama => "ollama",
        }
    }

    /// The request path the mock answers.
    pub fn path(self) -> &'static str {
        match self {
            WireFormat::OpenAi => "/v1/chat/completions",
            WireFormat::Anthropic => "/v1/messages",
            WireFormat::Ollama => "/api/chat",
        }
    }
}

/// One request the mock received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// Header names in lowercase, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The body as JSON (`Value::Null` when it is not JSON; see `raw_body`).
    pub body: Value,
    pub raw_body: String,
    /// When the request arrived.
    pub at: Instant,
}

impl RecordedRequest {
    /// The value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: ReplyBody,
}

#[derive(Debug, Clone)]
enum ReplyBody {
    /// A streamed answer in the mock's format.
    Stream {
        parts: Vec<Part>,
        usage: Option<(u64, u64)>,
        end: End,
    },
    /// An error document in the mock's format.
    Error { message: Option<String> },
    /// Exactly these bytes.
    Raw { content_type: String, body: String },
    /// Something that cannot be decoded, in the mock's framing.
    Malformed,
}

#[derive(Debug, Clone)]
enum Part {
    Text(Vec<String>),
    Thinking(String),
    ToolCall {
        name: String,
        /// The JSON arguments, in the fragments they are sent in.
        fragments: Vec<String>,
    },
}

#[derive(Debug, Clone)]
enum End {
    /// The format's normal completion.
    Finish,
    /// Stop sending, keep the connection open.
    Stall,
    /// Break the connection off.
    Disconnect,
    /// The format's in-stream error event.
    Error(String),
}

/// Splits `text` into chunks at spaces, each chunk ending with its space, so a sentence
/// streams in several deltas.
fn word_chunks(text: &str) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        current.push(c);
        if c == ' ' {
            chunks.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() || chunks.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// Splits `json` into four fragments at character boundaries (fewer when it is short).
fn fragments(json: &str) -> Vec<String> {
    let chars: Vec<char> = json.chars().collect();
    let size = chars.len().div_ceil(4).max(1);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

impl Reply {
    fn stream(parts: Vec<Part>) -> Reply {
        Reply {
            status: 200,
            headers: Vec::new(),
            body: ReplyBody::Stream {
                parts,
                usage: None,
                end: End::Finish,
            },
        }
    }

    /// `text`, streamed in word-sized deltas.
    pub fn text(text: &str) -> Reply {
        Reply::stream(vec![Part::Text(word_chunks(text))])
    }

    /// Text streamed in exactly these deltas.
    pub fn text_chunks<S: Into<String>>(chunks: impl IntoIterator<Item = S>) -> Reply {
        Reply::stream(vec![Part::Text(
            chunks.into_iter().map(Into::into).collect(),
        )])
    }

    /// A call of tool `name` whose JSON `arguments` are sent in several fragments.
    pub fn tool_call(name: &str, arguments: Value) -> Reply {
        Reply::stream(Vec::new()).and_tool_call(name, arguments)
    }

    /// A tool call whose arguments are sent as these raw fragments (which need not form
    /// valid JSON).
    pub fn tool_call_fragments<S: Into<String>>(
        name: &str,
        fragments: impl IntoIterator<Item = S>,
    ) -> Reply {
        let mut reply = Reply::stream(Vec::new());
        reply.parts().push(Part::ToolCall {
            name: name.to_owned(),
            fragments: fragments.into_iter().map(Into::into).collect(),
        });
        reply
    }

    /// An error response with this status, the format's error document and a default
    /// message.
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: ReplyBody::Error { message: None },
        }
    }

    /// A 200 response whose body is exactly `body`.
    pub fn raw(content_type: &str, body: &str) -> Reply {
        Reply {
            status: 200,
            headers: Vec::new(),
            body: ReplyBody::Raw {
                content_type: content_type.to_owned(),
                body: body.to_owned(),
            },
        }
    }

    /// A 200 response in the format's framing whose first event is not valid JSON.
    pub fn malformed() -> Reply {
        Reply {
            status: 200,
            headers: Vec::new(),
            body: ReplyBody::Malformed,
        }
    }

    /// A 200 response that sends nothing after its headers and never ends.
    pub fn stall() -> Reply {
        Reply::stream(Vec::new()).then_stall()
    }

    fn parts(&mut self) -> &mut Vec<Part> {
        match &mut self.body {
            ReplyBody::Stream { parts, .. } => parts,
            _ => panic!("only a streamed reply has parts"),
        }
    }

    fn set_end(mut self, new_end: End) -> Reply {
        match &mut self.body {
            ReplyBody::Stream { end, .. } => *end = new_end,
            _ => panic!("only a streamed reply has an end"),
        }
        self
    }

    /// Then more text.
    pub fn and_text(mut self, text: &str) -> Reply {
        self.parts().push(Part::Text(word_chunks(text)));
        self
    }

    /// Reasoning text before the rest (OpenAI `reasoning_content`, Anthropic thinking,
    /// Ollama `thinking`).
    pub fn with_thinking(mut self, text: &str) -> Reply {
        self.parts().insert(0, Part::Thinking(text.to_owned()));
        self
    }

    /// Then another tool call.
    pub fn and_tool_call(mut self, name: &str, arguments: Value) -> Reply {
        self.parts().push(Part::ToolCall {
            name: name.to_owned(),
            fragments: fragments(&arguments.to_string()),
        });
        self
    }

    /// Token counts to report (default: 11 input, 7 output).
    pub fn with_usage(mut self, input: u64, output: u64) -> Reply {
        if let ReplyBody::Stream { usage, .. } = &mut self.body {
            *usage = Some((input, output));
        }
        self
    }

    /// After the parts, stop sending but keep the connection open.
    pub fn then_stall(self) -> Reply {
        self.set_end(End::Stall)
    }

    /// After the parts, break the connection off.
    pub fn then_disconnect(self) -> Reply {
        self.set_end(End::Disconnect)
    }

    /// After the parts, send the format's in-stream error event.
    pub fn then_error(self, message: &str) -> Reply {
        self.set_end(End::Error(message.to_owned()))
    }

    /// The error message (for [`Reply::status`]).
    pub fn message(mut self, text: &str) -> Reply {
        if let ReplyBody::Error { message } = &mut self.body {
            *message = Some(text.to_owned());
        }
        self
    }

    /// A `retry-after` header, in seconds.
    pub fn retry_after(self, seconds: u64) -> Reply {
        self.header("retry-after", &seconds.to_string())
    }

    /// An extra response header.
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

#[derive(Default)]
struct Shared {
    queue: Mutex<VecDeque<Reply>>,
    fallback: Mutex<Option<Reply>>,
    requests: Mutex<Vec<RecordedRequest>>,
    arrived: Notify,
    served: AtomicUsize,
}

/// A scripted model server: queue [`Reply`]s with [`ModelMock::push`], point a provider's
/// `baseUrl` at [`ModelMock::base_url`], read what arrived with [`ModelMock::requests`].
/// Dropping it stops the server and closes every connection.
pub struct ModelMock {
    addr: SocketAddr,
    format: WireFormat,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl Drop for ModelMock {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl ModelMock {
    /// Starts a mock speaking `format` on `127.0.0.1:0`.
    pub async fn start(format: WireFormat) -> ModelMock {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("binding the model mock to 127.0.0.1:0");
        let addr = listener.local_addr().expect("the model mock's address");
        let shared = Arc::new(Shared::default());
        let server = tokio::spawn(serve(listener, format, shared.clone()));
        ModelMock {
            addr,
            format,
            shared,
            server,
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its wire format.
    pub fn format(&self) -> WireFormat {
        self.format
    }

    /// The `baseUrl` for a provider pointing at it: `http://127.0.0.1:<port>/v1` for
    /// OpenAI, `http://127.0.0.1:<port>` otherwise.
    pub fn base_url(&self) -> String {
        match self.format {
            WireFormat::OpenAi => format!("http://{}/v1", self.addr),
            WireFormat::Anthropic | WireFormat::Ollama => format!("http://{}", self.addr),
        }
    }

    /// A config document whose default model is this mock, as provider `mock` and model
    /// `mock-1` (key `k`): `models.providers.mock` and `agents.defaults.model.primary`.
    pub fn primary_config(&self) -> Value {
        json!({
            "models": {"providers": {"mock": self.provider_config("k", "mock-1")}},
            "agents": {"defaults": {"model": {"primary": "mock/mock-1"}}},
        })
    }

    /// A `models.providers.<id>` entry for it: `{baseUrl, api, apiKey, models: [{id}]}`.
    pub fn provider_config(&self, api_key: &str, model: &str) -> Value {
        json!({
            "baseUrl": self.base_url(),
            "api": self.format.api(),
            "apiKey": api_key,
            "models": [{"id": model}],
        })
    }

    /// Queues the answer to the next request.
    pub fn push(&self, reply: Reply) -> &ModelMock {
        lock(&self.shared.queue).push_back(reply);
        self
    }

    /// The answer to every request once the queue is empty (default: an HTTP 400 saying
    /// that the script ran out).
    pub fn set_default(&self, reply: Reply) {
        *lock(&self.shared.fallback) = Some(reply);
    }

    /// The replies still queued.
    pub fn pending(&self) -> usize {
        lock(&self.shared.queue).len()
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// Waits until `count` requests have arrived; panics after `timeout`.
    pub async fn wait_for_requests(&self, count: usize, timeout: Duration) -> Vec<RecordedRequest> {
        let deadline = Instant::now() + timeout;
        loop {
            let arrived = self.shared.arrived.notified();
            let requests = self.requests();
            if requests.len() >= count {
                return requests;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!(
                    "the model mock received {} of {count} requests within {timeout:?}",
                    requests.len()
                );
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn serve(listener: TcpListener, format: WireFormat, shared: Arc<Shared>) {
    // Dropped with this task: aborts every connection.
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(answer(req, format, &shared).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}

type MockBody = BoxBody<Bytes, std::io::Error>;

async fn answer(req: Request<Incoming>, format: WireFormat, shared: &Shared) -> Response<MockBody> {
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let raw = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let raw_body = String::from_utf8_lossy(&raw).into_owned();
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let number = {
        let mut requests = lock(&shared.requests);
        requests.push(RecordedRequest {
            method: method.clone(),
            path: path.clone(),
            headers,
            body: body.clone(),
            raw_body,
            at: Instant::now(),
        });
        requests.len()
    };
    shared.arrived.notify_waiters();

    if method != "POST" || path != format.path() {
        return Wire::new(format, &body).error(
            404,
            &format!(
                "model mock: no route for {method} {path} (it answers POST {})",
                format.path()
            ),
            &[],
        );
    }
    let reply = lock(&shared.queue)
        .pop_front()
        .or_else(|| lock(&shared.fallback).clone());
    let Some(reply) = reply else {
        return Wire::new(format, &body).error(
            400,
            &format!(
                "model mock: no scripted reply left for request #{number} (queue one with ModelMock::push)"
            ),
            &[],
        );
    };
    let serial = shared.served.fetch_add(1, Ordering::Relaxed) + 1;
    Wire::new(format, &body).with_serial(serial).reply(reply)
}

/// Renders replies in one wire format.
struct Wire {
    format: WireFormat,
    model: String,
    include_usage: bool,
    serial: usize,
}

fn sse(event: Option<&str>, data: &Value) -> Bytes {
    match event {
        Some(name) => Bytes::from(format!("event: {name}\ndata: {data}\n\n")),
        None => Bytes::from(format!("data: {data}\n\n")),
    }
}

fn line(data: &Value) -> Bytes {
    Bytes::from(format!("{data}\n"))
}

impl Wire {
    fn new(format: WireFormat, request: &Value) -> Wire {
        Wire {
            format,
            model: request["model"].as_str().unwrap_or("mock-model").to_owned(),
            include_usage: request["stream_options"]["include_usage"] == json!(true),
            serial: 0,
        }
    }

    fn with_serial(mut self, serial: usize) -> Wire {
        self.serial = serial;
        self
    }

    fn response(
        status: u16,
        content_type: &str,
        headers: &[(String, String)],
        body: MockBody,
    ) -> Response<MockBody> {
        let mut builder = Response::builder()
            .status(status)
            .header("content-type", content_type);
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        builder
            .body(body)
            .expect("the model mock's response headers are valid")
    }

    fn full(bytes: impl Into<Bytes>) -> MockBody {
        http_body_util::Full::new(bytes.into())
            .map_err(|never| match never {})
            .boxed()
    }

    fn error(
        &self,
        status: u16,
        message: &str,
        headers: &[(String, String)],
    ) -> Response<MockBody> {
        let body = match self.format {
            WireFormat::OpenAi => json!({"error": {
                "message": message,
                "type": match status { 401 => "invalid_request_error", 429 => "rate_limit_exceeded", 500..=599 => "server_error", _ => "invalid_request_error" },
                "param": null,
                "code": match status { 401 => json!("invalid_api_key"), 429 => json!("rate_limit_exceeded"), _ => Value::Null },
            }}),
            WireFormat::Anthropic => json!({"type": "error", "error": {
                "type": match status { 401 => "authentication_error", 403 => "permission_error", 404 => "not_found_error", 429 => "rate_limit_error", 529 => "overloaded_error", 500..=599 => "api_error", _ => "invalid_request_error" },
                "message": message,
            }}),
            WireFormat::Ollama => json!({"error": message}),
        };
        Wire::response(
            status,
            "application/json",
            headers,
            Wire::full(body.to_string()),
        )
    }

    fn reply(&self, reply: Reply) -> Response<MockBody> {
        match reply.body {
            ReplyBody::Error { message } => {
                let default = match reply.status {
                    401 => "Incorrect API key provided",
                    403 => "Forbidden",
                    404 => "The model does not exist",
                    429 => "Rate limit reached, please try again later",
                    500..=599 => "The server had an error while processing your request",
                    _ => "Bad request",
                };
                self.error(
                    reply.status,
                    message.as_deref().unwrap_or(default),
                    &reply.headers,
                )
            }
            ReplyBody::Raw { content_type, body } => Wire::response(
                reply.status,
                &content_type,
                &reply.headers,
                Wire::full(body),
            ),
            ReplyBody::Malformed => {
                let body = match self.format {
                    WireFormat::OpenAi => {
                        "data: {\"choices\": [{\"delta\": {\"content\": \"Hi\"\n\n".to_owned()
                    }
                    WireFormat::Anthropic => {
                        "event: message_start\ndata: {\"type\": \"message_start\", \"message\":\n\n"
                            .to_owned()
                    }
                    WireFormat::Ollama => "{\"message\": {\"role\": \"assistant\"\n".to_owned(),
                };
                Wire::response(
                    reply.status,
                    self.content_type(),
                    &reply.headers,
                    Wire::full(body),
                )
            }
            ReplyBody::Stream { parts, usage, end } => {
                let frames = self.frames(&parts, usage.unwrap_or((11, 7)), &end);
                let chunks = stream::iter(frames.into_iter().map(|b| Ok(Frame::data(b))));
                let body: MockBody = match end {
                    End::Stall => BodyExt::boxed(StreamBody::new(chunks.chain(stream::pending()))),
                    End::Disconnect => {
                        BodyExt::boxed(StreamBody::new(chunks.chain(stream::once(async {
                            // Pending once first, so the connection writes out the parts
                            // before the error aborts it.
                            tokio::task::yield_now().await;
                            Err(std::io::Error::new(
                                std::io::ErrorKind::ConnectionAborted,
                                "model mock: connection broken off as scripted",
                            ))
                        }))))
                    }
                    End::Finish | End::Error(_) => BodyExt::boxed(StreamBody::new(chunks)),
                };
                Wire::response(reply.status, self.content_type(), &reply.headers, body)
            }
        }
    }

    fn content_type(&self) -> &'static str {
        match self.format {
            WireFormat::OpenAi | WireFormat::Anthropic => "text/event-stream",
            WireFormat::Ollama => "application/x-ndjson",
        }
    }

    fn frames(&self, parts: &[Part], usage: (u64, u64), end: &End) -> Vec<Bytes> {
        match self.format {
            WireFormat::OpenAi => self.openai(parts, usage, end),
            WireFormat::Anthropic => self.anthropic(parts, usage, end),
            WireFormat::Ollama => self.ollama(parts, usage, end),
        }
    }

    fn openai(&self, parts: &[Part], (input, output): (u64, u64), end: &End) -> Vec<Bytes> {
        let chunk = |delta: Value, finish: Value| {
            sse(
                None,
                &json!({
                    "id": format!("chatcmpl-mock-{}", self.serial),
                    "object": "chat.completion.chunk",
                    "created": 1_795_500_000,
                    "model": self.model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                }),
            )
        };
        let mut out = vec![chunk(
            json!({"role": "assistant", "content": ""}),
            Value::Null,
        )];
        let mut calls = 0;
        for part in parts {
            match part {
                Part::Text(chunks) => {
                    out.extend(
                        chunks
                            .iter()
                            .map(|c| chunk(json!({"content": c}), Value::Null)),
                    );
                }
                Part::Thinking(text) => {
                    out.push(chunk(json!({"reasoning_content": text}), Value::Null))
                }
                Part::ToolCall { name, fragments } => {
                    let index = calls;
                    calls += 1;
                    out.push(chunk(
                        json!({"tool_calls": [{"index": index, "id": format!("call_{}_{index}", self.serial), "type": "function", "function": {"name": name, "arguments": ""}}]}),
                        Value::Null,
                    ));
                    out.extend(fragments.iter().map(|f| {
                        chunk(
                            json!({"tool_calls": [{"index": index, "function": {"arguments": f}}]}),
                            Value::Null,
                        )
                    }));
                }
            }
        }
        match end {
            End::Finish => {
                let reason = if calls > 0 { "tool_calls" } else { "stop" };
                out.push(chunk(json!({}), json!(reason)));
                if self.include_usage {
                    out.push(sse(None, &json!({
                        "id": format!("chatcmpl-mock-{}", self.serial),
                        "object": "chat.completion.chunk",
                        "model": self.model,
                        "choices": [],
                        "usage": {"prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output},
                    })));
                }
                out.push(Bytes::from_static(b"data: [DONE]\n\n"));
            }
            End::Error(message) => out.push(sse(
                None,
                &json!({"error": {"message": message, "type": "server_error"}}),
            )),
            End::Stall | End::Disconnect => {}
        }
        out
    }

    fn anthropic(&self, parts: &[Part], (input, output): (u64, u64), end: &End) -> Vec<Bytes> {
        let mut out = vec![sse(
            Some("message_start"),
            &json!({
                "type": "message_start",
                "message": {"id": format!("msg_mock_{}", self.serial), "type": "message", "role": "assistant",
                            "model": self.model, "content": [], "stop_reason": null, "stop_sequence": null,
                            "usage": {"input_tokens": input, "output_tokens": 1}},
            }),
        )];
        out.push(sse(Some("ping"), &json!({"type": "ping"})));
        let mut calls = 0;
        for (index, part) in parts.iter().enumerate() {
            let start = |block: Value| {
                sse(
                    Some("content_block_start"),
                    &json!({"type": "content_block_start", "index": index, "content_block": block}),
                )
            };
            let delta = |delta: Value| {
                sse(
                    Some("content_block_delta"),
                    &json!({"type": "content_block_delta", "index": index, "delta": delta}),
                )
            };
            match part {
                Part::Text(chunks) => {
                    out.push(start(json!({"type": "text", "text": ""})));
                    out.extend(
                        chunks
                            .iter()
                            .map(|c| delta(json!({"type": "text_delta", "text": c}))),
                    );
                }
                Part::Thinking(text) => {
                    out.push(start(json!({"type": "thinking", "thinking": ""})));
                    out.push(delta(json!({"type": "thinking_delta", "thinking": text})));
                    out.push(delta(
                        json!({"type": "signature_delta", "signature": "mock-signature"}),
                    ));
                }
                Part::ToolCall { name, fragments } => {
                    calls += 1;
                    out.push(start(json!({"type": "tool_use", "id": format!("toolu_mock_{}_{index}", self.serial), "name": name, "input": {}})));
                    out.extend(
                        fragments
                            .iter()
                            .map(|f| delta(json!({"type": "input_json_delta", "partial_json": f}))),
                    );
                }
            }
            out.push(sse(
                Some("content_block_stop"),
                &json!({"type": "content_block_stop", "index": index}),
            ));
        }
        match end {
            End::Finish => {
                let reason = if calls > 0 { "tool_use" } else { "end_turn" };
                out.push(sse(
                    Some("message_delta"),
                    &json!({
                        "type": "message_delta",
                        "delta": {"stop_reason": reason, "stop_sequence": null},
                        "usage": {"output_tokens": output},
                    }),
                ));
                out.push(sse(Some("message_stop"), &json!({"type": "message_stop"})));
            }
            End::Error(message) => out.push(sse(
                Some("error"),
                &json!({
                    "type": "error",
                    "error": {"type": "overloaded_error", "message": message},
                }),
            )),
            End::Stall | End::Disconnect => {}
        }
        out
    }

    fn ollama(&self, parts: &[Part], (input, output): (u64, u64), end: &End) -> Vec<Bytes> {
        let message = |message: Value, done: bool| json!({"model": self.model, "created_at": "2026-11-25T00:00:00Z", "message": message, "done": done});
        let mut out = Vec::new();
        let mut calls = Vec::new();
        for part in parts {
            match part {
                Part::Text(chunks) => out.extend(
                    chunks
                        .iter()
                        .map(|c| line(&message(json!({"role": "assistant", "content": c}), false))),
                ),
                Part::Thinking(text) => out.push(line(&message(
                    json!({"role": "assistant", "content": "", "thinking": text}),
                    false,
                ))),
                Part::ToolCall { name, fragments } => {
                    // Ollama sends whole calls with object arguments; fragments that do
                    // not form JSON are sent as the string they make.
                    let text = fragments.concat();
                    let arguments =
                        serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text));
                    calls.push(json!({"function": {"name": name, "arguments": arguments}}));
                }
            }
        }
        if !calls.is_empty() {
            out.push(line(&message(
                json!({"role": "assistant", "content": "", "tool_calls": calls}),
                false,
            )));
        }
        match end {
            End::Finish => {
                let mut done = message(json!({"role": "assistant", "content": ""}), true);
                done["done_reason"] = json!("stop");
                done["prompt_eval_count"] = json!(input);
                done["eval_count"] = json!(output);
                done["total_duration"] = json!(1_000_000);
                out.push(line(&done));
            }
            End::Error(message) => out.push(line(&json!({"error": message}))),
            End::Stall | End::Disconnect => {}
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunking() {
        assert_eq!(
            word_chunks("Hello big world"),
            vec!["Hello ", "big ", "world"]
        );
        assert_eq!(word_chunks(""), vec![""]);
        assert_eq!(
            fragments(r#"{"command":"ls"}"#).concat(),
            r#"{"command":"ls"}"#
        );
        assert_eq!(fragments(r#"{"command":"ls"}"#).len(), 4);
    }
}
