//! Helpers shared by the model-layer tests: configs built through clawgate-config's real
//! parser, an `Llm` pointed at a scripted `ModelMock`, event collection.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use clawgate_config::{LoadedConfig, ModelsConfig};
use clawgate_llm::{Llm, LlmError, LlmOptions, ModelStream, StreamEvent};
use clawgate_testkit::{ModelMock, Value, WireFormat, json};
use futures_util::StreamExt;

/// The API key the mock providers are configured with. Error messages must never show it.
pub const KEY: &str = "sk-test-SECRET-0123456789";

/// All three wire formats, for tests that hold for each.
pub const FORMATS: [WireFormat; 3] = [
    WireFormat::OpenAi,
    WireFormat::Anthropic,
    WireFormat::Ollama,
];

/// The model settings of a config document, parsed as the gateway parses its file.
pub fn models_config(doc: Value, env: &[(&str, &str)]) -> ModelsConfig {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    LoadedConfig::from_value(Path::new("/test/openclaw.json"), doc, &|k| {
        env.get(k).cloned()
    })
    .expect("test config loads")
    .models
}

/// Short retry delays and idle limit, so failure tests finish quickly.
pub fn fast_options() -> LlmOptions {
    LlmOptions {
        max_retries: 2,
        retry_base_delay: Duration::from_millis(10),
        max_retry_delay: Duration::from_secs(60),
        idle_timeout: Some(Duration::from_secs(5)),
    }
}

pub fn llm(doc: Value, env: &[(&str, &str)], options: LlmOptions) -> Llm {
    let env_map: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Llm::with_options(
        &models_config(doc, env),
        &|k| env_map.get(k).cloned(),
        options,
    )
    .expect("the HTTP client builds")
}

/// A config whose primary model is `mock/mock-1` served by `mock`, with [`KEY`].
pub fn mock_config(mock: &ModelMock) -> Value {
    json!({
        "models": {"providers": {"mock": mock.provider_config(KEY, "mock-1")}},
        "agents": {"defaults": {"model": {"primary": "mock/mock-1"}}},
    })
}

/// A mock speaking `format` and an `Llm` whose primary model it serves.
pub async fn mock_llm(format: WireFormat, options: LlmOptions) -> (ModelMock, Llm) {
    let mock = ModelMock::start(format).await;
    let llm = llm(mock_config(&mock), &[], options);
    (mock, llm)
}

/// Longer than any time limit a test waits out (the 300 s local idle limit, in paused
/// time), so a stream that never ends fails with its events instead of hanging.
const STREAM_GUARD: Duration = Duration::from_secs(1000);

/// Every event of `stream`, and the error that ended it, if any.
pub async fn collect(mut stream: ModelStream) -> (Vec<StreamEvent>, Option<LlmError>) {
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + STREAM_GUARD;
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => panic!(
                "the model stream did not end within {STREAM_GUARD:?}; events so far: {events:?}"
            ),
            Ok(None) => return (events, None),
            Ok(Some(Ok(event))) => events.push(event),
            Ok(Some(Err(e))) => {
                assert!(stream.next().await.is_none(), "nothing may follow an error");
                return (events, Some(e));
            }
        }
    }
}

/// The concatenated text deltas.
pub fn text_of(events: &[StreamEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::TextDelta(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}
