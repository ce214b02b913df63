//! [`Llm`]: the shared HTTP client, the model catalog, and the streaming driver with its
//! retries and fallbacks.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use eventsource_stream::{EventStream, EventStreamError, Eventsource};
use futures_util::{Stream, StreamExt};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use tokio::time::Instant;

use clawgate_config::{ModelRef, ModelsConfig};

use crate::catalog::{Api, Catalog, ModelsListParams, ResolvedModel};
use crate::error::{LlmError, TimeoutKind};
use crate::http::{Body, BodyError, Limits, MAX_RESPONSE_BYTES, shown_url, transport_detail};
use crate::providers::{DecodeError, DecodeErrorKind, Decoder, Frame, anthropic, ollama, openai};
use crate::types::{AssistantPart, ChatRequest, Message, StopReason, StreamEvent, ToolCall, Usage};

/// Retry and timeout policy. The defaults are OpenClaw's: up to 3 retries per model, 2 s
/// doubling each time, a provider's `retry-after` honoured up to 60 s.
#[derive(Debug, Clone)]
pub struct LlmOptions {
    /// Retries of one model before moving on to the next in the fallback chain.
    pub max_retries: u32,
    /// Delay before the first retry when the provider gave no `retry-after`; doubled for
    /// each further retry.
    pub retry_base_delay: Duration,
    /// The longest wait for one retry; a provider asking for longer (`retry-after`) is
    /// not retried, the next model is tried instead.
    pub max_retry_delay: Duration,
    /// Replaces every model's idle limit (no bytes for this long fails the request).
    /// `None`: `timeoutSeconds` if set, else 120 s for cloud providers and 300 s for
    /// local or self-hosted ones.
    pub idle_timeout: Option<Duration>,
}

impl Default for LlmOptions {
    fn default() -> Self {
        LlmOptions {
            max_retries: 3,
            retry_base_delay: Duration::from_secs(2),
            max_retry_delay: Duration::from_secs(60),
            idle_timeout: None,
        }
    }
}

impl LlmOptions {
    /// How long to wait before retrying after `error` (the `retries`-th retry so far), or
    /// `None` to give up on this model.
    fn retry_delay(&self, error: &LlmError, retries: u32) -> Option<Duration> {
        if retries >= self.max_retries || !error.is_retryable() {
            return None;
        }
        let delay = error.retry_after().unwrap_or_else(|| {
            self.retry_base_delay
                .saturating_mul(2u32.saturating_pow(retries))
        });
        (delay <= self.max_retry_delay).then_some(delay)
    }
}

/// The model layer the gateway holds: one HTTP client (rustls with the ring provider,
/// connection pooling) and the resolved model settings. Cloning is cheap and shares both.
#[derive(Clone)]
pub struct Llm {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    catalog: Catalog,
    options: LlmOptions,
}

impl std::fmt::Debug for Llm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Llm")
            .field("route", &self.route())
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl Llm {
    /// Builds the client for `models` (from [`LoadedConfig::models`](clawgate_config::LoadedConfig),
    /// or `ModelsConfig::default()` without a config file), reading `OPENAI_API_KEY` and
    /// `ANTHROPIC_API_KEY` from `env` now.
    pub fn new(
        models: &ModelsConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Llm, LlmError> {
        Llm::with_options(models, env, LlmOptions::default())
    }

    /// [`Llm::new`] with a retry and timeout policy.
    pub fn with_options(
        models: &ModelsConfig,
        env: &dyn Fn(&str) -> Option<String>,
        options: LlmOptions,
    ) -> Result<Llm, LlmError> {
        // reqwest is built without a crypto provider of its own; ring is the only one in
        // the tree. An error means a provider is already installed, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .user_agent(concat!("clawgate/", env!("CARGO_PKG_VERSION")))
            // A redirected POST would turn into a GET without its body; report the
            // redirect instead (its status names the baseUrl to fix).
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| LlmError::Client(transport_detail(e)))?;
        Ok(Llm {
            inner: Arc::new(Inner {
                catalog: Catalog::new(models, env, options.idle_timeout),
                http,
                options,
            }),
        })
    }

    /// The same HTTP client with new model settings (after a config reload).
    pub fn reconfigured(&self, models: &ModelsConfig, env: &dyn Fn(&str) -> Option<String>) -> Llm {
        Llm {
            inner: Arc::new(Inner {
                http: self.inner.http.clone(),
                catalog: Catalog::new(models, env, self.inner.options.idle_timeout),
                options: self.inner.options.clone(),
            }),
        }
    }

    /// The models a request is sent to, in order: the primary (or the default model of a
    /// built-in provider with a key), then the fallbacks. [`LlmError::NoModelConfigured`]
    /// when there is none: log it at startup, answer turns with it.
    pub fn route(&self) -> Result<Vec<ModelRef>, LlmError> {
        self.inner.catalog.route()
    }

    /// The settings a request to `model` would use, or why it cannot be sent.
    pub fn resolve(&self, model: &ModelRef) -> Result<ResolvedModel, LlmError> {
        self.inner.catalog.resolve(model)
    }

    /// The `models.list` response payload.
    pub fn models_list(&self, params: &ModelsListParams) -> Value {
        self.inner.catalog.models_list(params)
    }

    /// Streams the answer to `request` from the configured route (primary, then fallbacks).
    pub fn stream(&self, request: ChatRequest) -> ModelStream {
        match self.route() {
            Ok(route) => self.stream_from(route, request),
            Err(e) => ModelStream::failed(e),
        }
    }

    /// Streams the answer to `request` from `models`, tried in order (a session's own
    /// model choice).
    pub fn stream_from(&self, models: Vec<ModelRef>, request: ChatRequest) -> ModelStream {
        let llm = self.clone();
        let phases = futures_util::stream::unfold(
            Phase::Connect {
                llm,
                models,
                request,
            },
            |phase| async move {
                match phase {
                    Phase::Connect {
                        llm,
                        models,
                        request,
                    } => match llm.open(&models, &request).await {
                        Ok(opened) => Some((
                            Ok(StreamEvent::Started {
                                model: opened.answer.model.model.clone(),
                                failed: opened.failed,
                            }),
                            Phase::First {
                                answer: opened.answer,
                                first: opened.first,
                            },
                        )),
                        Err(e) => Some((Err(e), Phase::Finished)),
                    },
                    Phase::First { answer, first } => {
                        Some((Ok(first), Phase::Streaming { answer }))
                    }
                    Phase::Streaming { mut answer } => match answer.next().await {
                        Some(Ok(event)) => Some((Ok(event), Phase::Streaming { answer })),
                        Some(Err(e)) => Some((Err(e), Phase::Finished)),
                        None => None,
                    },
                    Phase::Finished => None,
                }
            },
        );
        ModelStream {
            inner: Box::pin(phases),
        }
    }

    /// Tries `models` in order, each with retries, until one produces its first event.
    async fn open(&self, models: &[ModelRef], request: &ChatRequest) -> Result<Opened, LlmError> {
        let mut failed: Vec<LlmError> = Vec::new();
        for model_ref in models {
            let model = match self.resolve(model_ref) {
                Ok(model) => model,
                Err(e) => {
                    tracing::warn!(model = %model_ref, "model skipped: {e}");
                    failed.push(e);
                    continue;
                }
            };
            let mut retries = 0;
            loop {
                let error = match self.send(&model, request).await {
                    Ok(mut answer) => match answer.next().await {
                        Some(Ok(first)) => {
                            return Ok(Opened {
                                answer,
                                first,
                                failed,
                            });
                        }
                        Some(Err(e)) => e,
                        None => LlmError::Stream {
                            model: model_ref.clone(),
                            detail: "the provider sent an empty answer".into(),
                            retryable: true,
                        },
                    },
                    Err(e) => e,
                };
                match self.inner.options.retry_delay(&error, retries) {
                    Some(delay) => {
                        retries += 1;
                        tracing::warn!(
                            model = %model_ref,
                            retry = retries,
                            delay_ms = delay.as_millis() as u64,
                            "model request failed, retrying: {error}"
                        );
                        tokio::time::sleep(delay).await;
                    }
                    None => {
                        tracing::warn!(model = %model_ref, "model request failed: {error}");
                        failed.push(error);
                        break;
                    }
                }
            }
        }
        Err(match failed.len() {
            0 => LlmError::NoModelConfigured,
            1 => failed.remove(0),
            _ => LlmError::AllFailed { errors: failed },
        })
    }

    /// Sends one request and returns its answer once the response headers say success.
    async fn send(&self, model: &ResolvedModel, request: &ChatRequest) -> Result<Answer, LlmError> {
        let (url, body, decoder): (String, Value, Box<dyn Decoder>) = match model.api {
            Api::OpenAiCompletions => (
                openai::url(model),
                openai::body(model, request),
                Box::<openai::OpenAiDecoder>::default(),
            ),
            Api::AnthropicMessages => (
                anthropic::url(model),
                anthropic::body(model, request),
                Box::<anthropic::AnthropicDecoder>::default(),
            ),
            Api::Ollama => (
                ollama::url(model),
                ollama::body(model, request),
                Box::<ollama::OllamaDecoder>::default(),
            ),
        };
        let headers = request_headers(model)?;
        let limits = Limits {
            idle: model.idle_timeout,
            deadline: model.request_timeout.map(|t| Instant::now() + t),
        };
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let send = self
            .inner
            .http
            .post(&url)
            .headers(headers)
            .body(body)
            .send();
        // Messages show the URL without credentials it may carry.
        let url = shown_url(&url);
        let (expiry, limit) = limits.next_expiry();
        let response = match tokio::time::timeout_at(expiry, send).await {
            Err(_) => return Err(body_error(model, &url, limit)),
            Ok(Err(e)) => {
                return Err(LlmError::Connect {
                    model: model.model.clone(),
                    url,
                    detail: transport_detail(e),
                    key: model.key("baseUrl"),
                });
            }
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        if !status.is_success() {
            let retry_after = crate::http::retry_after(response.headers());
            let secret = model.key.as_ref().map(|(k, _)| k.expose());
            let message = crate::http::error_message(response, limits, secret).await;
            return Err(LlmError::Http {
                model: model.model.clone(),
                status: status.as_u16(),
                url,
                message,
                hint: http_hint(model, status.as_u16()),
                retry_after,
            });
        }
        let body = Body::new(response, limits);
        let frames = match model.api {
            Api::Ollama => Frames::Lines(NdjsonLines {
                body,
                buffer: Vec::new(),
            }),
            Api::OpenAiCompletions | Api::AnthropicMessages => Frames::Sse(body.eventsource()),
        };
        Ok(Answer {
            model: model.clone(),
            url,
            frames,
            decoder,
            pending: VecDeque::new(),
            error: None,
            finished: false,
        })
    }
}

/// The protocol's auth and version headers, then the configured extra headers (which win).
fn request_headers(model: &ResolvedModel) -> Result<HeaderMap, LlmError> {
    let invalid = |key: String, what: &str| LlmError::Config {
        model: Some(model.model.clone()),
        message: format!("{key} {what}"),
        key,
    };
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let secret = |value: String, key: String| {
        HeaderValue::from_str(&value)
            .map(|mut v| {
                v.set_sensitive(true);
                v
            })
            .map_err(|_| invalid(key, "contains characters not allowed in an HTTP header"))
    };
    if let Some((key, source)) = &model.key {
        let bearer = || secret(format!("Bearer {}", key.expose()), source.to_string());
        match model.api {
            Api::AnthropicMessages if !model.auth_header => {
                headers.insert(
                    "x-api-key",
                    secret(key.expose().to_owned(), source.to_string())?,
                );
            }
            _ => {
                headers.insert(AUTHORIZATION, bearer()?);
            }
        }
    }
    if model.api == Api::AnthropicMessages {
        headers.insert(
            "anthropic-version",
            HeaderValue::from_static(anthropic::VERSION),
        );
    }
    for (name, value) in &model.headers {
        let key = model.key(&format!("headers.{name}"));
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| invalid(key.clone(), "is not a valid HTTP header name"))?;
        headers.insert(name, secret(value.expose().to_owned(), key)?);
    }
    Ok(headers)
}

/// What to check after an HTTP error status, naming the config key.
fn http_hint(model: &ResolvedModel, status: u16) -> String {
    let key_source = || match &model.key {
        Some((_, source)) => format!("check the API key in {source}"),
        None => format!(
            "this provider needs an API key: set {}",
            model.key("apiKey")
        ),
    };
    match status {
        401 | 403 => key_source(),
        404 if model.api == Api::Ollama => format!(
            "check that the model {:?} is pulled (`ollama pull {}`) and {}",
            model.model.model,
            model.model.model,
            model.key("baseUrl")
        ),
        404 => format!(
            "check the model id {:?} and {}",
            model.model.model,
            model.key("baseUrl")
        ),
        400 | 422 => format!(
            "the provider rejected the request: check the model id {:?} and that {} matches the provider's protocol",
            model.model.model,
            model.key("api")
        ),
        429 => format!("the provider is rate limiting; {}", key_source()),
        300..=399 => format!(
            "the provider redirected the request: correct {}",
            model.key("baseUrl")
        ),
        500..=599 => format!(
            "the provider failed; if it persists check {}",
            model.key("baseUrl")
        ),
        _ => format!("check {}", model.key("baseUrl")),
    }
}

fn body_error(model: &ResolvedModel, url: &str, error: BodyError) -> LlmError {
    let timeout = |kind, after| LlmError::Timeout {
        model: model.model.clone(),
        kind,
        after,
        url: url.to_owned(),
        key: model.key("timeoutSeconds"),
    };
    match error {
        BodyError::Idle => timeout(TimeoutKind::Idle, model.idle_timeout),
        BodyError::Deadline => timeout(
            TimeoutKind::Request,
            model.request_timeout.unwrap_or_default(),
        ),
        BodyError::TooLarge => LlmError::Stream {
            model: model.model.clone(),
            detail: format!(
                "the answer from {url} exceeded {} MiB and was cut off",
                MAX_RESPONSE_BYTES >> 20
            ),
            retryable: false,
        },
        BodyError::Transport(detail) => LlmError::Stream {
            model: model.model.clone(),
            detail: format!("the connection to {url} broke off: {detail}"),
            retryable: true,
        },
    }
}

fn decode_error(model: &ResolvedModel, error: DecodeError) -> LlmError {
    match error.kind {
        DecodeErrorKind::Refused => LlmError::Refused {
            model: model.model.clone(),
            detail: error.detail,
        },
        kind => LlmError::Stream {
            model: model.model.clone(),
            detail: error.detail,
            retryable: kind == DecodeErrorKind::Transient,
        },
    }
}

/// A model that produced its first event.
struct Opened {
    answer: Answer,
    first: StreamEvent,
    failed: Vec<LlmError>,
}

enum Phase {
    Connect {
        llm: Llm,
        models: Vec<ModelRef>,
        request: ChatRequest,
    },
    First {
        answer: Answer,
        first: StreamEvent,
    },
    Streaming {
        answer: Answer,
    },
    Finished,
}

/// The frames of a response body.
enum Frames {
    Sse(EventStream<Body>),
    Lines(NdjsonLines),
}

/// Splits a body into lines.
struct NdjsonLines {
    body: Body,
    buffer: Vec<u8>,
}

impl NdjsonLines {
    async fn next(&mut self) -> Option<Result<String, BodyError>> {
        loop {
            if let Some(pos) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=pos).collect();
                return Some(Ok(String::from_utf8_lossy(&line).into_owned()));
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.buffer.extend_from_slice(&chunk),
                Some(Err(e)) => return Some(Err(e)),
                None if self.buffer.is_empty() => return None,
                None => {
                    let rest = std::mem::take(&mut self.buffer);
                    return Some(Ok(String::from_utf8_lossy(&rest).into_owned()));
                }
            }
        }
    }
}

/// One response being decoded.
struct Answer {
    model: ResolvedModel,
    url: String,
    frames: Frames,
    decoder: Box<dyn Decoder>,
    pending: VecDeque<StreamEvent>,
    /// Delivered once `pending` is empty; nothing follows it.
    error: Option<LlmError>,
    finished: bool,
}

impl Answer {
    /// The next event, an error (after which there is nothing more), or the end.
    async fn next(&mut self) -> Option<Result<StreamEvent, LlmError>> {
        let mut out = Vec::new();
        loop {
            // Events decoded before an error are delivered before it.
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(event));
            }
            if let Some(error) = self.error.take() {
                return Some(Err(error));
            }
            if self.finished {
                return None;
            }
            let step = match &mut self.frames {
                Frames::Sse(events) => match events.next().await {
                    Some(Ok(event)) => Some(self.decoder.frame(
                        Frame::Sse {
                            event: &event.event,
                            data: &event.data,
                        },
                        &mut out,
                    )),
                    Some(Err(EventStreamError::Transport(e))) => {
                        self.finished = true;
                        self.error = Some(body_error(&self.model, &self.url, e));
                        continue;
                    }
                    Some(Err(EventStreamError::Utf8(e))) => Some(Err(DecodeError::invalid(
                        format!("the provider sent invalid UTF-8: {e}"),
                    ))),
                    Some(Err(EventStreamError::Parser(e))) => Some(Err(DecodeError::invalid(
                        format!("the provider sent a malformed server-sent event: {e}"),
                    ))),
                    None => None,
                },
                Frames::Lines(lines) => match lines.next().await {
                    Some(Ok(line)) => Some(self.decoder.frame(Frame::Line(&line), &mut out)),
                    Some(Err(e)) => {
                        self.finished = true;
                        self.error = Some(body_error(&self.model, &self.url, e));
                        continue;
                    }
                    None => None,
                },
            };
            let result = match step {
                Some(Ok(complete)) => {
                    self.finished = complete;
                    Ok(())
                }
                Some(Err(e)) => Err(e),
                None => {
                    self.finished = true;
                    self.decoder.end(&mut out)
                }
            };
            self.pending.extend(out.drain(..));
            if let Err(e) = result {
                self.finished = true;
                self.error = Some(decode_error(&self.model, e));
            }
        }
    }
}

/// A model's answer as a stream of [`StreamEvent`]s, ending after `Done` or an error.
/// Dropping it cancels the request.
pub struct ModelStream {
    inner: Pin<Box<dyn Stream<Item = Result<StreamEvent, LlmError>> + Send>>,
}

impl ModelStream {
    fn failed(error: LlmError) -> ModelStream {
        ModelStream {
            inner: Box::pin(futures_util::stream::once(async move { Err(error) })),
        }
    }

    /// Reads the whole answer.
    pub async fn reply(mut self) -> Result<AssistantReply, LlmError> {
        let mut reply = AssistantReply {
            model: ModelRef {
                provider: String::new(),
                model: String::new(),
            },
            failed: Vec::new(),
            text: String::new(),
            thinking: String::new(),
            tool_calls: Vec::new(),
            usage: None,
            stop_reason: StopReason::Stop,
        };
        while let Some(event) = self.next().await {
            match event? {
                StreamEvent::Started { model, failed } => {
                    reply.model = model;
                    reply.failed = failed;
                }
                StreamEvent::TextDelta(text) => reply.text.push_str(&text),
                StreamEvent::ThinkingDelta(text) => reply.thinking.push_str(&text),
                StreamEvent::ToolCall(call) => reply.tool_calls.push(call),
                StreamEvent::Usage(usage) => reply.usage = Some(usage),
                StreamEvent::Done { stop_reason } => {
                    reply.stop_reason = stop_reason;
                    return Ok(reply);
                }
            }
        }
        Err(LlmError::Stream {
            model: reply.model,
            detail: "the answer ended without its last event".into(),
            retryable: false,
        })
    }
}

impl Stream for ModelStream {
    type Item = Result<StreamEvent, LlmError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// A complete answer ([`ModelStream::reply`]).
#[derive(Debug, Clone, PartialEq)]
pub struct AssistantReply {
    /// The model that answered.
    pub model: ModelRef,
    /// The models that failed before it.
    pub failed: Vec<LlmError>,
    pub text: String,
    pub thinking: String,
    pub tool_calls: Vec<ToolCall>,
    pub usage: Option<Usage>,
    pub stop_reason: StopReason,
}

impl AssistantReply {
    /// The answer as a transcript message (text, then the tool calls).
    pub fn message(&self) -> Message {
        let mut content = Vec::new();
        if !self.text.is_empty() {
            content.push(AssistantPart::Text {
                text: self.text.clone(),
            });
        }
        content.extend(self.tool_calls.iter().cloned().map(AssistantPart::ToolCall));
        Message::Assistant { content }
    }
}
