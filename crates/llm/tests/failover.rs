//! Retries, fallbacks and time limits: what is tried again, what is not, and what the
//! final error says.

mod common;

use std::time::Duration;

use clawgate_llm::{ChatRequest, LlmError, LlmOptions, Message, StreamEvent, TimeoutKind};
use clawgate_testkit::{ModelMock, Reply, WireFormat, json};
use common::{FORMATS, KEY, collect, fast_options, llm, mock_config, mock_llm, text_of};

fn hello() -> ChatRequest {
    ChatRequest {
        messages: vec![Message::user("hello")],
        ..ChatRequest::default()
    }
}

// Paused time: the mock runs on the test's own runtime, so the clock only jumps while
// nothing is in flight, and the wait is measured exactly.
#[tokio::test(start_paused = true)]
async fn a_429_is_retried_after_its_retry_after() {
    for format in FORMATS {
        // A base delay of a minute: only `retry-after: 1` can explain a retry one second
        // later.
        let options = LlmOptions {
            retry_base_delay: Duration::from_secs(60),
            ..fast_options()
        };
        let (mock, llm) = mock_llm(format, options).await;
        mock.push(Reply::status(429).retry_after(1));
        mock.push(Reply::text("after the wait"));

        let reply = llm.stream(hello()).reply().await.unwrap();
        assert_eq!(reply.text, "after the wait", "{format:?}");
        assert!(reply.failed.is_empty(), "a retry is not a fallback");
        let requests = mock.requests();
        assert_eq!(requests.len(), 2, "{format:?}");
        let waited = requests[1].at - requests[0].at;
        assert!(
            (Duration::from_secs(1)..Duration::from_millis(1100)).contains(&waited),
            "{format:?}: retried after {waited:?}"
        );
    }
}

#[tokio::test]
async fn server_errors_and_in_stream_overloads_are_retried_with_backoff() {
    for format in FORMATS {
        let (mock, llm) = mock_llm(format, fast_options()).await;
        mock.push(Reply::status(503));
        mock.push(Reply::text("").then_error("Overloaded"));
        mock.push(Reply::text("third time lucky"));
        let reply = llm.stream(hello()).reply().await;
        let reply = reply.unwrap_or_else(|e| panic!("{format:?}: {e}"));
        assert_eq!(reply.text, "third time lucky", "{format:?}");
        let requests = mock.requests();
        assert_eq!(requests.len(), 3, "{format:?}");
        // 10 ms, then 20 ms.
        assert!(requests[2].at - requests[1].at >= Duration::from_millis(20));
        // The same request each time.
        assert_eq!(requests[0].body, requests[2].body, "{format:?}");
    }
}

#[tokio::test]
async fn a_failing_primary_falls_back_to_the_next_model() {
    // Each format as the failing primary, with the next one as the fallback.
    for (i, format) in FORMATS.into_iter().enumerate() {
        let primary = ModelMock::start(format).await;
        primary.set_default(Reply::status(500).message("upstream exploded"));
        let fallback = ModelMock::start(FORMATS[(i + 1) % FORMATS.len()]).await;
        fallback.push(Reply::text("the fallback answers"));
        let llm = llm(
            json!({
                "models": {"providers": {
                    "primary": primary.provider_config(KEY, "big"),
                    "backup": fallback.provider_config(KEY, "small"),
                }},
                "agents": {"defaults": {"model": {"primary": "primary/big", "fallbacks": ["backup/small"]}}},
            }),
            &[],
            LlmOptions {
                max_retries: 1,
                ..fast_options()
            },
        );

        let (events, error) = collect(llm.stream(hello())).await;
        assert_eq!(error, None, "{format:?}");
        let StreamEvent::Started { model, failed } = &events[0] else {
            panic!("{format:?}: {events:?}")
        };
        assert_eq!(model.to_string(), "backup/small");
        let [
            LlmError::Http {
                status: 500,
                message,
                ..
            },
        ] = failed.as_slice()
        else {
            panic!("{format:?}: {failed:?}")
        };
        assert_eq!(message, "upstream exploded", "{format:?}");
        assert_eq!(text_of(&events), "the fallback answers", "{format:?}");
        assert_eq!(
            primary.requests().len(),
            2,
            "{format:?}: the primary is tried once, then retried once"
        );
        assert_eq!(fallback.requests().len(), 1, "{format:?}");
    }
}

#[tokio::test]
async fn when_every_model_fails_the_error_lists_each() {
    let primary = ModelMock::start(WireFormat::Ollama).await;
    primary.set_default(
        Reply::status(404).message("model \"llama9\" not found, try pulling it first"),
    );
    let llm = llm(
        json!({
            "models": {"providers": {"ollama": {"baseUrl": primary.base_url()}}},
            "agents": {"defaults": {"model": {"primary": "ollama/llama9", "fallbacks": ["nowhere/x"]}}},
        }),
        &[],
        fast_options(),
    );
    let (events, error) = collect(llm.stream(hello())).await;
    assert!(events.is_empty());
    let error = error.unwrap();
    let LlmError::AllFailed { errors } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(errors.len(), 2);
    assert_eq!(
        error.to_string(),
        format!(
            "every configured model failed: 1) ollama/llama9: HTTP 404 Not Found from {}/api/chat: model \"llama9\" not found, try pulling it first (check that the model \"llama9\" is pulled (`ollama pull llama9`) and models.providers.ollama.baseUrl); 2) nowhere/x: unknown provider \"nowhere\": add models.providers.nowhere with its baseUrl, api and apiKey, or use a built-in provider (openai/…, anthropic/…, ollama/…)",
            primary.base_url()
        )
    );
    assert_eq!(primary.requests().len(), 1, "a 404 is not retried");
}

#[tokio::test(start_paused = true)]
async fn a_silent_provider_hits_the_idle_limit_before_and_during_the_answer() {
    for format in FORMATS {
        // The default limit: the mock is on loopback, a local server, so 300 s.
        let options = LlmOptions {
            max_retries: 0,
            idle_timeout: None,
            ..fast_options()
        };
        let (mock, llm) = mock_llm(format, options.clone()).await;
        mock.push(Reply::stall());
        let started = tokio::time::Instant::now();
        let (events, error) = collect(llm.stream(hello())).await;
        assert!(events.is_empty(), "{format:?}: {events:?}");
        let Some(
            error @ LlmError::Timeout {
                kind: TimeoutKind::Idle,
                ..
            },
        ) = &error
        else {
            panic!("{format:?}: {error:?}")
        };
        assert!(started.elapsed() >= Duration::from_secs(300));
        let text = error.to_string();
        assert!(
            text.contains("no data from")
                && text.ends_with("for 300 s (the model idle limit); for a slow or local model raise models.providers.mock.timeoutSeconds"),
            "{format:?}: {text}"
        );

        // Mid-answer: the text so far is delivered, then the timeout; never a replay,
        // even with retries allowed.
        let (mock, llm) = mock_llm(
            format,
            LlmOptions {
                max_retries: 3,
                ..options
            },
        )
        .await;
        mock.push(Reply::text("half an answer").then_stall());
        mock.set_default(Reply::text("must not be asked for"));
        let (events, error) = collect(llm.stream(hello())).await;
        assert_eq!(text_of(&events), "half an answer", "{format:?}");
        assert!(
            matches!(
                error,
                Some(LlmError::Timeout {
                    kind: TimeoutKind::Idle,
                    ..
                })
            ),
            "{format:?}: {error:?}"
        );
        assert_eq!(mock.requests().len(), 1, "{format:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_stalled_first_answer_is_retried() {
    let options = LlmOptions {
        max_retries: 1,
        idle_timeout: Some(Duration::from_secs(20)),
        ..fast_options()
    };
    let (mock, llm) = mock_llm(WireFormat::Anthropic, options).await;
    mock.push(Reply::stall());
    mock.push(Reply::text("awake now"));
    let reply = llm.stream(hello()).reply().await.unwrap();
    assert_eq!(reply.text, "awake now");
    let requests = mock.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests[1].at - requests[0].at >= Duration::from_secs(20));
}

#[tokio::test(start_paused = true)]
async fn timeout_seconds_limits_the_whole_request() {
    let mock = ModelMock::start(WireFormat::OpenAi).await;
    // Text keeps the idle limit from firing; the whole request still may not exceed 1 s.
    mock.push(Reply::text("still going").then_stall());
    let mut config = mock_config(&mock);
    config["models"]["providers"]["mock"]["timeoutSeconds"] = json!(1);
    let llm = llm(
        config,
        &[],
        LlmOptions {
            idle_timeout: None,
            ..fast_options()
        },
    );
    let started = tokio::time::Instant::now();
    let (events, error) = collect(llm.stream(hello())).await;
    assert_eq!(text_of(&events), "still going");
    let Some(
        error @ LlmError::Timeout {
            kind: TimeoutKind::Request,
            after,
            ..
        },
    ) = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!(*after, Duration::from_secs(1));
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(
        error
            .to_string()
            .ends_with("took longer than models.providers.mock.timeoutSeconds (1 s)"),
        "{error}"
    );
}

#[tokio::test]
async fn an_unreachable_provider_is_a_connect_error_naming_the_base_url_key() {
    // A port that was free a moment ago: nothing listens there.
    let port = clawgate_testkit::free_port();
    let llm = llm(
        json!({
            "models": {"providers": {"local": {"baseUrl": format!("http://127.0.0.1:{port}/v1")}}},
            "agents": {"defaults": {"model": "local/qwen3"}},
        }),
        &[],
        LlmOptions {
            max_retries: 1,
            ..fast_options()
        },
    );
    let (_, error) = collect(llm.stream(hello())).await;
    let error = error.unwrap();
    assert!(matches!(error, LlmError::Connect { .. }), "{error:?}");
    let text = error.to_string();
    assert!(
        text.starts_with(&format!(
            "local/qwen3: cannot reach http://127.0.0.1:{port}/v1/chat/completions: "
        )),
        "{text}"
    );
    assert!(
        text.ends_with("(is it running and reachable? check models.providers.local.baseUrl)"),
        "{text}"
    );
}

#[tokio::test]
async fn a_retry_after_beyond_the_limit_moves_on_at_once() {
    let (mock, llm) = mock_llm(
        WireFormat::OpenAi,
        LlmOptions {
            max_retry_delay: Duration::from_secs(5),
            ..fast_options()
        },
    )
    .await;
    mock.push(Reply::status(429).retry_after(3600));
    let started = tokio::time::Instant::now();
    let (_, error) = collect(llm.stream(hello())).await;
    assert!(
        matches!(error, Some(LlmError::Http { status: 429, .. })),
        "{error:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(mock.requests().len(), 1);
}
