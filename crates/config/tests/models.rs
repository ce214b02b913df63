//! `models.providers.*` and `agents.defaults.model`: OpenClaw's shapes, `${VAR}` and
//! SecretRefs, and errors that name the exact key.

mod common;

use clawgate_config::{ModelApi, ModelRef, UnresolvedRef};
use common::{PATH, parse, parse_err};

fn model_ref(s: &str) -> ModelRef {
    ModelRef::parse(s).unwrap()
}

#[test]
fn the_documented_custom_provider_parses() {
    // The OpenAI-compatible provider from OpenClaw's docs, tested against OpenClaw itself.
    let cfg = parse(
        r#"{
          models: { providers: { mock: { baseUrl: "http://127.0.0.1:18900/v1", apiKey: "${KEY}",
            api: "openai-completions", timeoutSeconds: 300,
            models: [{ id: "mock-1", input: ["text"], contextWindow: 32000, maxTokens: 1024 }] } } },
          agents: { defaults: { model: { primary: "mock/mock-1" } } },
        }"#,
        &[("KEY", "sk-mock-secret")],
    )
    .unwrap();
    let m = &cfg.models;
    assert_eq!(m.primary, Some(model_ref("mock/mock-1")));
    assert!(m.fallbacks.is_empty() && m.unresolved.is_empty());
    let p = m
        .provider("MOCK")
        .expect("provider ids match case-insensitively");
    assert_eq!(p.id, "mock");
    assert_eq!(p.base_url.as_deref(), Some("http://127.0.0.1:18900/v1"));
    assert_eq!(p.api_key.as_ref().unwrap().expose(), "sk-mock-secret");
    assert_eq!(p.api, Some(ModelApi::OpenAiCompletions));
    assert_eq!(p.timeout_seconds, Some(300));
    assert_eq!(p.models.len(), 1);
    let model = &p.models[0];
    assert_eq!(model.id, "mock-1");
    assert_eq!(model.name, None);
    assert_eq!(model.input, vec!["text"]);
    assert_eq!(model.context_window, Some(32000));
    assert_eq!(model.max_tokens, Some(1024));
    assert!(cfg.ignored.is_empty(), "{:?}", cfg.ignored);

    // The key is in neither Debug output.
    let debug = format!("{cfg:?} {m:?}");
    assert!(!debug.contains("sk-mock-secret"), "{debug}");
}

#[test]
fn the_agent_model_may_be_a_plain_string_or_have_fallbacks() {
    let cfg = parse(
        "{agents: {defaults: {model: 'anthropic/claude-opus-5'}}}",
        &[],
    )
    .unwrap();
    assert_eq!(
        cfg.models.primary,
        Some(model_ref("anthropic/claude-opus-5"))
    );

    let cfg = parse(
        "{agents: {defaults: {model: {primary: 'ollama/llama3.2', fallbacks: ['openai/gpt-4o', 'gpt-4o-mini', 'openai/gpt-4o']}}}}",
        &[],
    )
    .unwrap();
    assert_eq!(cfg.models.primary, Some(model_ref("ollama/llama3.2")));
    // A bare model id is OpenClaw's default provider; duplicates are tried once.
    assert_eq!(
        cfg.models.fallbacks,
        vec![model_ref("openai/gpt-4o"), model_ref("openai/gpt-4o-mini")]
    );

    // No model at all is not an error here: the model layer reports it per request.
    let cfg = parse("{agents: {defaults: {model: {fallbacks: []}}}}", &[]).unwrap();
    assert_eq!(cfg.models.primary, None);
}

#[test]
fn an_unknown_api_names_the_key_and_the_choices() {
    let err = parse_err(
        "{models: {providers: {mock: {baseUrl: 'http://127.0.0.1:1/v1', api: 'foo'}}}}",
        &[],
    );
    assert_eq!(
        err,
        format!(
            "{PATH}: models.providers.mock.api: unknown api \"foo\" (expected openai-completions, anthropic-messages, ollama)"
        )
    );
    let err = parse_err(
        "{models: {providers: {mock: {models: [{id: 'm', api: 'openai'}]}}}}",
        &[],
    );
    assert!(
        err.contains("models.providers.mock.models[0].api: unknown api \"openai\""),
        "{err}"
    );
}

#[test]
fn other_openclaw_adapters_are_accepted_but_marked_unsupported() {
    let cfg = parse(
        "{models: {providers: {google: {api: 'google-generative-ai'}}}}",
        &[],
    )
    .unwrap();
    assert_eq!(
        cfg.models.provider("google").unwrap().api,
        Some(ModelApi::Unsupported("google-generative-ai".into()))
    );
}

#[test]
fn type_errors_name_the_exact_key() {
    let cases = [
        (
            "{models: {providers: {mock: {baseUrl: 'localhost:8080'}}}}",
            "models.providers.mock.baseUrl must be an http:// or https:// URL",
        ),
        (
            "{models: {providers: {mock: {timeoutSeconds: 0}}}}",
            "models.providers.mock.timeoutSeconds must be an integer of at least 1 (got 0)",
        ),
        (
            "{models: {providers: {mock: 'http://x'}}}",
            "models.providers.mock must be an object like {baseUrl",
        ),
        (
            "{models: {providers: {mock: {models: [{name: 'no id'}]}}}}",
            "models.providers.mock.models[0].id must be the model id the provider expects",
        ),
        (
            "{models: {providers: {mock: {models: {id: 'm'}}}}}",
            "models.providers.mock.models must be an array of models",
        ),
        (
            "{models: {providers: {mock: {apiKey: 42}}}}",
            "models.providers.mock.apiKey must be a string or a SecretRef object",
        ),
        (
            "{models: {providers: {mock: {headers: {'X Tenant': 'a'}}}}}",
            "models.providers.mock.headers.X Tenant: \"X Tenant\" is not a valid HTTP header name",
        ),
        (
            "{models: {providers: {'a/b': {}}}}",
            "models.providers: \"a/b\" is not a usable provider id",
        ),
        (
            "{agents: {defaults: {model: {primary: 'openai/'}}}}",
            "agents.defaults.model.primary must be \"<provider>/<model>\"",
        ),
        (
            "{agents: {defaults: {model: {fallbacks: ['ok/m', 7]}}}}",
            "agents.defaults.model.fallbacks[1] must be a string",
        ),
        (
            "{agents: {defaults: {model: {primary: 'a/b', fallback: ['c/d']}}}}",
            "agents.defaults.model has an unknown key \"fallback\"; the keys are primary, fallbacks",
        ),
        (
            "{agents: {defaults: {model: 5}}}",
            "agents.defaults.model must be \"<provider>/<model>\" or {primary",
        ),
    ];
    for (text, want) in cases {
        let err = parse_err(text, &[]);
        assert!(err.contains(want), "{text}\n  got:  {err}\n  want: {want}");
    }
}

#[test]
fn an_unset_variable_leaves_the_key_unset_without_failing_the_load() {
    let cfg = parse(
        r#"{models: {providers: {
             openai: {apiKey: "${OPENAI_API_KEY}"},
             proxy: {baseUrl: "${PROXY_URL}/v1", apiKey: {source: "env", provider: "default", id: "PROXY_KEY"},
                     headers: {"X-Tenant": "${TENANT}", "X-Static": "yes"}},
           }}}"#,
        &[],
    )
    .unwrap();
    let m = &cfg.models;
    assert_eq!(m.provider("openai").unwrap().api_key, None);
    let proxy = m.provider("proxy").unwrap();
    assert_eq!(proxy.base_url, None);
    assert_eq!(proxy.api_key, None);
    assert_eq!(proxy.headers.len(), 1);
    assert_eq!(proxy.headers[0].0, "X-Static");
    let unresolved = |key: &str, var: &str| UnresolvedRef {
        key: key.into(),
        var: var.into(),
    };
    assert_eq!(
        m.unresolved,
        vec![
            unresolved("models.providers.openai.apiKey", "OPENAI_API_KEY"),
            unresolved("models.providers.proxy.baseUrl", "PROXY_URL"),
            unresolved("models.providers.proxy.apiKey", "PROXY_KEY"),
            unresolved("models.providers.proxy.headers.X-Tenant", "TENANT"),
        ]
    );
    assert_eq!(
        m.unresolved_at("models.providers.proxy")
            .map(|u| u.var.as_str()),
        Some("PROXY_URL")
    );
    assert_eq!(m.unresolved_at("models.providers.prox"), None);
    assert!(
        cfg.warnings[0].contains(
            "Missing env var \"OPENAI_API_KEY\" referenced at config path: models.providers.openai.apiKey (left unset: model requests that need this key fail until the variable is set)"
        ),
        "{:?}",
        cfg.warnings
    );
}

#[test]
fn secret_refs_and_headers_resolve_from_the_environment() {
    let cfg = parse(
        r#"{models: {providers: {proxy: {
             apiKey: {source: "env", provider: "default", id: "PROXY_KEY"},
             headers: {"X-Tenant": "${TENANT}", Authorization: {source: "env", provider: "default", id: "PROXY_AUTH"}},
             authHeader: true, maxTokens: 2048,
             models: [{id: "m1", name: "Model One", reasoning: true, api: "anthropic-messages",
                       baseUrl: "https://proxy.example/anthropic", headers: {"X-Model": "1"}}],
           }}}}"#,
        &[
            ("PROXY_KEY", "pk"),
            ("TENANT", "acme"),
            ("PROXY_AUTH", "Bearer hdr"),
        ],
    )
    .unwrap();
    let p = cfg.models.provider("proxy").unwrap();
    assert_eq!(p.api_key.as_ref().unwrap().expose(), "pk");
    let headers: Vec<(&str, &str)> = p
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.expose()))
        .collect();
    assert_eq!(
        headers,
        vec![("X-Tenant", "acme"), ("Authorization", "Bearer hdr")]
    );
    assert_eq!(p.auth_header, Some(true));
    assert_eq!(p.max_tokens, Some(2048));
    let m = &p.models[0];
    assert_eq!(m.name.as_deref(), Some("Model One"));
    assert_eq!(m.reasoning, Some(true));
    assert_eq!(m.api, Some(ModelApi::AnthropicMessages));
    assert_eq!(
        m.base_url.as_deref(),
        Some("https://proxy.example/anthropic")
    );
    assert_eq!(m.headers[0].0, "X-Model");
    assert!(!format!("{p:?}").contains("Bearer hdr"));
}

#[test]
fn model_keys_clawgate_does_not_use_are_reported_as_ignored() {
    let cfg = parse(
        "{models: {mode: 'replace', providers: {x: {region: 'eu', baseUrl: 'https://x', regoin: 1}}}, agents: {defaults: {model: 'x/m', workspace: '~/w'}}}",
        &[],
    )
    .unwrap();
    assert_eq!(
        cfg.ignored,
        vec![
            "models.mode",
            "models.providers.x.region",
            "agents.defaults.workspace"
        ]
    );
    assert_eq!(cfg.unknown, vec!["models.providers.x.regoin"]);
}
