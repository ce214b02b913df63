//! From the config to a model: no model at all, built-in providers and their env keys,
//! custom providers, errors that name the key to fix, headers, `models.list`.

mod common;

use clawgate_config::{ModelRef, ModelsConfig};
use clawgate_llm::{ChatRequest, Llm, LlmError, Message, ModelsListParams, StreamEvent};
use clawgate_testkit::{ModelMock, Reply, WireFormat, json};
use common::{KEY, collect, fast_options, llm, models_config};

fn hello() -> ChatRequest {
    ChatRequest {
        messages: vec![Message::user("hello")],
        ..ChatRequest::default()
    }
}

fn model(s: &str) -> ModelRef {
    ModelRef::parse(s).unwrap()
}

const NO_MODEL: &str = "no model is configured: set agents.defaults.model.primary to \"<provider>/<model>\" and give that provider a key (models.providers.<id>.apiKey, or OPENAI_API_KEY / ANTHROPIC_API_KEY), or run a local model with Ollama (\"ollama/<model>\")";

#[tokio::test]
async fn no_model_configured_is_its_own_error_naming_the_keys_to_set() {
    let llm = Llm::new(&ModelsConfig::default(), &|_| None).unwrap();
    assert_eq!(llm.route(), Err(LlmError::NoModelConfigured));
    let (events, error) = collect(llm.stream(hello())).await;
    assert!(events.is_empty());
    assert_eq!(error, Some(LlmError::NoModelConfigured));
    assert_eq!(LlmError::NoModelConfigured.to_string(), NO_MODEL);

    // A provider without a primary model is still no model.
    let llm = common::llm(
        json!({"models": {"providers": {"mock": {"baseUrl": "http://127.0.0.1:1/v1", "apiKey": "k"}}}}),
        &[],
        fast_options(),
    );
    assert_eq!(llm.route(), Err(LlmError::NoModelConfigured));
}

#[test]
fn a_provider_key_without_a_primary_selects_openclaws_default_model() {
    let route = |env: &[(&str, &str)], doc| llm(doc, env, fast_options()).route().unwrap();
    assert_eq!(
        route(&[("OPENAI_API_KEY", "sk-o")], json!({})),
        vec![model("openai/gpt-6-astra")]
    );
    assert_eq!(
        route(&[("ANTHROPIC_API_KEY", "sk-a")], json!({})),
        vec![model("anthropic/claude-opus-5")]
    );
    assert_eq!(
        route(
            &[("OPENAI_API_KEY", "sk-o"), ("ANTHROPIC_API_KEY", "sk-a")],
            json!({"agents": {"defaults": {"model": {"fallbacks": ["anthropic/claude-sonnet-5"]}}}})
        ),
        vec![
            model("openai/gpt-6-astra"),
            model("anthropic/claude-sonnet-5")
        ]
    );
    assert_eq!(
        route(
            &[],
            json!({"models": {"providers": {"anthropic": {"apiKey": "sk-a"}}}})
        ),
        vec![model("anthropic/claude-opus-5")]
    );
}

#[test]
fn built_in_providers_resolve_without_an_entry() {
    let llm = llm(
        json!({}),
        &[
            ("OPENAI_API_KEY", "sk-openai"),
            ("ANTHROPIC_API_KEY", "sk-ant"),
        ],
        clawgate_llm::LlmOptions::default(),
    );
    let openai = llm.resolve(&model("openai/gpt-4o")).unwrap();
    assert_eq!(openai.base_url, "https://api.openai.com/v1");
    assert_eq!(openai.api, clawgate_llm::Api::OpenAiCompletions);
    assert_eq!(openai.key.as_ref().unwrap().0.expose(), "sk-openai");
    assert_eq!(openai.idle_timeout, clawgate_llm::CLOUD_IDLE_TIMEOUT);
    let anthropic = llm.resolve(&model("anthropic/claude-opus-5")).unwrap();
    assert_eq!(anthropic.base_url, "https://api.anthropic.com");
    assert_eq!(anthropic.api, clawgate_llm::Api::AnthropicMessages);
    let ollama = llm.resolve(&model("ollama/llama3.2")).unwrap();
    assert_eq!(ollama.base_url, "http://127.0.0.1:11434");
    assert_eq!(ollama.api, clawgate_llm::Api::Ollama);
    assert!(ollama.key.is_none());
    assert_eq!(ollama.idle_timeout, clawgate_llm::LOCAL_IDLE_TIMEOUT);
    // The keys are in no Debug output.
    let debug = format!("{llm:?} {openai:?} {anthropic:?}");
    assert!(
        !debug.contains("sk-openai") && !debug.contains("sk-ant"),
        "{debug}"
    );
}

#[test]
fn unusable_models_name_the_key_to_fix() {
    let llm = llm(
        json!({"models": {"providers": {
            "gemini": {"baseUrl": "https://generativelanguage.googleapis.com", "api": "google-generative-ai", "apiKey": "k"},
            "remote": {"baseUrl": "https://llm.example.com/v1"},
            "nourl": {"apiKey": "k"},
            "envkey": {"baseUrl": "https://llm.example.com/v1", "apiKey": "${REMOTE_KEY}"},
        }}}),
        &[],
        fast_options(),
    );
    let cases = [
        (
            "gemini/gemini-3",
            "models.providers.gemini.api",
            "gemini/gemini-3: models.providers.gemini.api is \"google-generative-ai\", which clawgate does not support yet (supported: openai-completions, anthropic-messages, ollama)",
        ),
        (
            "remote/m",
            "models.providers.remote.apiKey",
            "remote/m: no API key for provider \"remote\": set models.providers.remote.apiKey",
        ),
        (
            "openai/gpt-4o",
            "models.providers.openai.apiKey",
            "openai/gpt-4o: no API key for provider \"openai\": set models.providers.openai.apiKey or the OPENAI_API_KEY environment variable",
        ),
        (
            "nourl/m",
            "models.providers.nourl.baseUrl",
            "nourl/m: models.providers.nourl.baseUrl is not set: a custom provider needs the URL of its API, e.g. \"http://127.0.0.1:8080/v1\"",
        ),
        (
            "envkey/m",
            "models.providers.envkey.apiKey",
            "envkey/m: models.providers.envkey.apiKey uses ${REMOTE_KEY}, which is not set in the gateway's environment; set REMOTE_KEY or change models.providers.envkey.apiKey",
        ),
        (
            "mystery/m",
            "models.providers.mystery",
            "mystery/m: unknown provider \"mystery\": add models.providers.mystery with its baseUrl, api and apiKey, or use a built-in provider (openai/…, anthropic/…, ollama/…)",
        ),
    ];
    for (reference, want_key, want) in cases {
        let error = llm.resolve(&model(reference)).unwrap_err();
        let LlmError::Config { key, .. } = &error else {
            panic!("{reference}: {error:?}")
        };
        assert_eq!(key, want_key, "{reference}");
        assert_eq!(error.to_string(), want, "{reference}");
    }
    // A local server needs no key.
    let local = common::llm(
        json!({"models": {"providers": {"lan": {"baseUrl": "http://192.168.1.20:8080/v1"}}}}),
        &[],
        fast_options(),
    );
    assert!(local.resolve(&model("lan/qwen3")).unwrap().key.is_none());
}

#[tokio::test]
async fn an_unusable_primary_falls_back_without_a_request() {
    let mock = ModelMock::start(WireFormat::OpenAi).await;
    mock.push(Reply::text("fallback here"));
    let llm = llm(
        json!({
            "models": {"providers": {"mock": mock.provider_config(KEY, "m")}},
            "agents": {"defaults": {"model": {"primary": "openai/gpt-4o", "fallbacks": ["mock/m"]}}},
        }),
        &[],
        fast_options(),
    );
    let (events, error) = collect(llm.stream(hello())).await;
    assert_eq!(error, None);
    let StreamEvent::Started { model, failed } = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(model.to_string(), "mock/m");
    assert!(
        matches!(&failed[..], [LlmError::Config { key, .. }] if key == "models.providers.openai.apiKey")
    );
}

#[tokio::test]
async fn env_keys_and_headers_reach_the_provider_and_errors_say_where_the_key_came_from() {
    let mock = ModelMock::start(WireFormat::OpenAi).await;
    mock.push(Reply::text("ok"));
    mock.push(Reply::status(401));
    // The built-in openai provider pointed at the mock; its key comes from the env.
    let llm = llm(
        json!({
            "models": {"providers": {"openai": {
                "baseUrl": mock.base_url(),
                "headers": {"X-Tenant": "acme", "Authorization": "Bearer from-header"},
                "models": [{"id": "gpt-4o", "headers": {"X-Tenant": "model-level"}}],
            }}},
            "agents": {"defaults": {"model": "openai/gpt-4o"}},
        }),
        &[("OPENAI_API_KEY", "sk-env-key")],
        fast_options(),
    );
    llm.stream(hello()).reply().await.unwrap();
    let req = &mock.requests()[0];
    assert_eq!(req.header("x-tenant"), Some("model-level"));
    assert_eq!(
        req.header("authorization"),
        Some("Bearer from-header"),
        "configured headers win over the key's"
    );

    let (_, error) = collect(llm.stream(hello())).await;
    let text = error.unwrap().to_string();
    assert!(text.contains("HTTP 401"), "{text}");
    assert!(
        text.ends_with("(check the API key in the OPENAI_API_KEY environment variable)"),
        "{text}"
    );
    assert!(!text.contains("sk-env-key"));
}

#[tokio::test]
async fn anthropic_auth_header_sends_a_bearer_token() {
    let mock = ModelMock::start(WireFormat::Anthropic).await;
    mock.push(Reply::text("ok"));
    let mut provider = mock.provider_config(KEY, "claude-x");
    provider["authHeader"] = json!(true);
    provider["baseUrl"] = json!(format!("{}/v1", mock.base_url()));
    let llm = llm(
        json!({
            "models": {"providers": {"proxy": provider}},
            "agents": {"defaults": {"model": "proxy/claude-x"}},
        }),
        &[],
        fast_options(),
    );
    llm.stream(hello()).reply().await.unwrap();
    let req = &mock.requests()[0];
    assert_eq!(req.path, "/v1/messages", "a /v1 baseUrl is not doubled");
    assert_eq!(req.header("authorization"), Some(&*format!("Bearer {KEY}")));
    assert_eq!(req.header("x-api-key"), None);
    assert_eq!(
        req.body["max_tokens"], 8192,
        "Anthropic's required budget defaults to 8192"
    );
}

#[tokio::test]
async fn a_redirect_is_reported_not_followed() {
    let mock = ModelMock::start(WireFormat::OpenAi).await;
    mock.push(
        Reply::status(301).header("location", "https://elsewhere.example/v1/chat/completions"),
    );
    let llm = llm(common::mock_config(&mock), &[], fast_options());
    let (_, error) = collect(llm.stream(hello())).await;
    let text = error.unwrap().to_string();
    assert!(text.contains("HTTP 301 Moved Permanently"), "{text}");
    assert!(
        text.ends_with(
            "(the provider redirected the request: correct models.providers.mock.baseUrl)"
        ),
        "{text}"
    );
}

#[test]
fn models_list_has_openclaws_entry_shape() {
    let doc = json!({
        "models": {"providers": {
            "mock": {"baseUrl": "http://127.0.0.1:18900/v1", "apiKey": "k", "api": "openai-completions",
                     "models": [{"id": "mock-1", "input": ["text"], "contextWindow": 32000, "maxTokens": 1024},
                                {"id": "mock-r", "name": "Mock Reasoner", "reasoning": true}]},
            "gemini": {"api": "google-generative-ai", "apiKey": "k", "baseUrl": "https://g.example",
                       "models": [{"id": "g-1"}]},
        }},
        "agents": {"defaults": {"model": {"primary": "mock/mock-1", "fallbacks": ["anthropic/claude-opus-5"]}}},
    });
    let llm = llm(doc, &[], fast_options());
    assert_eq!(
        llm.models_list(&ModelsListParams::default()),
        json!({"models": [
            {"id": "mock-1", "name": "mock-1", "provider": "mock", "contextWindow": 32000, "available": true},
            {"id": "mock-r", "name": "Mock Reasoner", "provider": "mock", "reasoning": true, "available": true},
            {"id": "g-1", "name": "g-1", "provider": "gemini", "available": false},
            {"id": "claude-opus-5", "name": "claude-opus-5", "provider": "anthropic", "available": false},
        ]})
    );
    let params: ModelsListParams =
        serde_json::from_value(json!({"provider": "MOCK", "includeDetails": true})).unwrap();
    assert_eq!(
        llm.models_list(&params),
        json!({"models": [
            {"id": "mock-1", "name": "mock-1", "provider": "mock", "contextWindow": 32000, "local": true, "input": ["text"], "available": true},
            {"id": "mock-r", "name": "Mock Reasoner", "provider": "mock", "local": true, "reasoning": true, "available": true},
        ]})
    );
}

#[test]
fn the_config_is_read_as_the_gateway_reads_it() {
    // A plain-string agents.defaults.model and a model entry without a name.
    let models = models_config(
        json!({"agents": {"defaults": {"model": "ollama/llama3.2"}}}),
        &[],
    );
    let llm = Llm::new(&models, &|_| None).unwrap();
    assert_eq!(llm.route().unwrap(), vec![model("ollama/llama3.2")]);
    // Reconfiguring keeps the client and takes the new settings.
    let other = llm.reconfigured(&ModelsConfig::default(), &|_| None);
    assert_eq!(other.route(), Err(LlmError::NoModelConfigured));
    assert_eq!(llm.route().unwrap(), vec![model("ollama/llama3.2")]);
}

#[tokio::test]
async fn credentials_in_a_base_url_never_show_in_errors() {
    let mock = ModelMock::start(WireFormat::OpenAi).await;
    mock.push(Reply::status(500));
    let closed = clawgate_testkit::free_port();
    let llm = llm(
        json!({
            "models": {"providers": {
                "proxy": {"baseUrl": format!("http://gw:pw-secret-1@{}/v1", mock.addr()), "apiKey": "k"},
                "down": {"baseUrl": format!("http://gw:pw-secret-2@127.0.0.1:{closed}/v1"), "apiKey": "k"},
            }},
            "agents": {"defaults": {"model": {"primary": "proxy/m", "fallbacks": ["down/m"]}}},
        }),
        &[],
        clawgate_llm::LlmOptions {
            max_retries: 0,
            ..fast_options()
        },
    );
    let (_, error) = collect(llm.stream(hello())).await;
    let error = error.unwrap();
    let text = format!("{error} {error:?}");
    assert!(
        text.contains("HTTP 500") && text.contains("cannot reach"),
        "{text}"
    );
    assert!(
        text.contains(&format!("from http://{}/v1/chat/completions", mock.addr())),
        "{text}"
    );
    for secret in ["pw-secret-1", "pw-secret-2"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
}

#[test]
fn an_unset_variable_as_the_primary_model_says_which() {
    let llm = llm(
        json!({"agents": {"defaults": {"model": {"primary": "${AGENT_MODEL}"}}}}),
        &[],
        fast_options(),
    );
    let error = llm.route().unwrap_err();
    assert!(
        matches!(&error, LlmError::Config { key, .. } if key == "agents.defaults.model.primary"),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "no model is configured: agents.defaults.model.primary is \"${AGENT_MODEL}\", but AGENT_MODEL is not set in the gateway's environment"
    );
}

#[test]
fn the_model_layer_can_be_shared_across_tasks() {
    fn shared<T: Send + Sync + Clone + 'static>() {}
    fn sent<T: Send + 'static>() {}
    shared::<Llm>();
    sent::<clawgate_llm::ModelStream>();
    shared::<LlmError>();
}
