//! From the config to concrete models: built-in providers, `provider/model` resolution,
//! the fallback chain, and the `models.list` payload.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use clawgate_config::{ModelApi, ModelConfig, ModelRef, ModelsConfig, ProviderConfig, Secret};

use crate::error::{LlmError, Quoted};

/// A provider that works without a `models.providers` entry.
struct BuiltIn {
    id: &'static str,
    base_url: &'static str,
    api: ModelApi,
    /// The environment variable holding its key.
    key_env: Option<&'static str>,
    /// The model used when `agents.defaults.model` is not set but this provider has a key.
    default_model: Option<&'static str>,
}

/// OpenClaw's built-in providers that clawgate speaks, in the order a default model is
/// chosen (OpenClaw's default provider, `openai`, first).
fn built_ins() -> [BuiltIn; 3] {
    [
        BuiltIn {
            id: "openai",
            base_url: "https://api.openai.com/v1",
            api: ModelApi::OpenAiCompletions,
            key_env: Some("OPENAI_API_KEY"),
            // OpenClaw 2026.9.6's DEFAULT_PROVIDER/DEFAULT_MODEL.
            default_model: Some("gpt-6-astra"),
        },
        BuiltIn {
            id: "anthropic",
            base_url: "https://api.anthropic.com",
            api: ModelApi::AnthropicMessages,
            key_env: Some("ANTHROPIC_API_KEY"),
            // OpenClaw's default Anthropic model.
            default_model: Some("claude-opus-5"),
        },
        BuiltIn {
            id: "ollama",
            base_url: "http://127.0.0.1:11434",
            api: ModelApi::Ollama,
            key_env: None,
            default_model: None,
        },
    ]
}

/// The protocols clawgate speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    OpenAiCompletions,
    AnthropicMessages,
    Ollama,
}

impl Api {
    pub fn as_str(self) -> &'static str {
        match self {
            Api::OpenAiCompletions => "openai-completions",
            Api::AnthropicMessages => "anthropic-messages",
            Api::Ollama => "ollama",
        }
    }
}

/// Where an API key in use came from, for messages that tell the user what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `models.providers.<id>.apiKey`.
    Config(String),
    /// An environment variable (`OPENAI_API_KEY`).
    Env(&'static str),
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Config(key) => f.write_str(key),
            KeySource::Env(var) => write!(f, "the {var} environment variable"),
        }
    }
}

/// A model ready to be called: the merged provider and model settings.
#[derive(Debug, Clone)]
pub struct ResolvedModel {
    pub model: ModelRef,
    /// The provider id as configured (`mock`), for config keys in messages.
    pub provider_id: String,
    /// Display name (`models[].name`, or the id).
    pub name: String,
    pub api: Api,
    /// The base URL, without a trailing `/`.
    pub base_url: String,
    /// The API key and where it came from.
    pub key: Option<(Secret, KeySource)>,
    /// Extra request headers (provider's, then the model's).
    pub headers: Vec<(String, Secret)>,
    /// Send the key as `Authorization: Bearer` (`authHeader`).
    pub auth_header: bool,
    /// Limit for a whole request (`timeoutSeconds`).
    pub request_timeout: Option<Duration>,
    /// Limit for silence on the connection.
    pub idle_timeout: Duration,
    pub max_tokens: Option<u32>,
    pub context_window: Option<u64>,
    pub reasoning: Option<bool>,
    pub input: Vec<String>,
    /// The base URL points at this machine or a private network.
    pub local: bool,
}

impl ResolvedModel {
    /// `models.providers.<id>.<name>`.
    pub fn key(&self, name: &str) -> String {
        format!("models.providers.{}.{name}", self.provider_id)
    }

    /// True for OpenAI's own API (some request fields are only sent there).
    pub fn is_native_openai(&self) -> bool {
        reqwest::Url::parse(&self.base_url).is_ok_and(|u| {
            u.scheme() == "https"
                && u.host_str()
                    .is_some_and(|h| h == "api.openai.com" || h.ends_with(".api.openai.com"))
        })
    }
}

/// Default silence limits, as OpenClaw's model idle watchdog: 120 s for cloud providers,
/// 300 s for local and self-hosted ones (which stay silent while they load a model or
/// evaluate a long prompt).
pub const CLOUD_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
pub const LOCAL_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Provider ids OpenClaw treats as self-hosted wherever their base URL points.
const SELF_HOSTED_PROVIDERS: &[&str] = &["ollama", "lmstudio", "vllm", "sglang", "llama-cpp"];

/// Anthropic requires an output budget; this one is used when neither the request nor the
/// config sets one.
pub(crate) const ANTHROPIC_DEFAULT_MAX_TOKENS: u32 = 8192;

/// The model settings plus the API keys found in the environment, resolved once.
#[derive(Debug, Clone)]
pub(crate) struct Catalog {
    config: ModelsConfig,
    /// `(variable, value)` for the built-in providers' key variables that are set.
    env_keys: Vec<(&'static str, Secret)>,
    /// Overrides every model's idle limit (tests, benchmarks).
    idle_override: Option<Duration>,
}

impl Catalog {
    pub(crate) fn new(
        config: &ModelsConfig,
        env: &dyn Fn(&str) -> Option<String>,
        idle_override: Option<Duration>,
    ) -> Catalog {
        let env_keys = built_ins()
            .iter()
            .filter_map(|b| b.key_env)
            .filter_map(|var| {
                env(var)
                    .map(|v| v.trim().to_owned())
                    .filter(|v| !v.is_empty())
                    .map(|v| (var, Secret::new(v)))
            })
            .collect();
        Catalog {
            config: config.clone(),
            env_keys,
            idle_override,
        }
    }

    fn env_key(&self, var: &str) -> Option<&Secret> {
        self.env_keys
            .iter()
            .find(|(name, _)| *name == var)
            .map(|(_, v)| v)
    }

    /// Whether the built-in provider `b` has a key (config or environment).
    fn built_in_has_key(&self, b: &BuiltIn) -> bool {
        self.config
            .provider(b.id)
            .is_some_and(|p| p.api_key.is_some())
            || b.key_env.is_some_and(|var| self.env_key(var).is_some())
    }

    /// The models to try, in order: `agents.defaults.model.primary` (or, when it is not
    /// set, the default model of the first built-in provider with a key), then the
    /// fallbacks.
    pub(crate) fn route(&self) -> Result<Vec<ModelRef>, LlmError> {
        let mut route: Vec<ModelRef> = Vec::new();
        let primary = self.config.primary.clone().or_else(|| {
            built_ins()
                .iter()
                .find(|b| b.default_model.is_some() && self.built_in_has_key(b))
                .and_then(|b| {
                    Some(ModelRef {
                        provider: b.id.to_owned(),
                        model: b.default_model?.to_owned(),
                    })
                })
        });
        route.extend(primary);
        for fallback in &self.config.fallbacks {
            if !route.contains(fallback) {
                route.push(fallback.clone());
            }
        }
        if route.is_empty() {
            if let Some(unset) = self.config.unresolved_at("agents.defaults.model") {
                return Err(LlmError::Config {
                    model: None,
                    key: unset.key.clone(),
                    message: format!(
                        "{} is \"${{{}}}\", but {} is not set in the gateway's environment",
                        unset.key, unset.var, unset.var
                    ),
                });
            }
            return Err(LlmError::NoModelConfigured);
        }
        Ok(route)
    }

    /// Merges provider, model and built-in settings for `model`.
    pub(crate) fn resolve(&self, model: &ModelRef) -> Result<ResolvedModel, LlmError> {
        let config_error = |key: String, message: String| LlmError::Config {
            model: Some(model.clone()),
            key,
            message,
        };
        let provider = self.config.provider(&model.provider);
        let built_in = built_ins().into_iter().find(|b| b.id == model.provider);
        if provider.is_none() && built_in.is_none() {
            let key = format!("models.providers.{}", model.provider);
            return Err(config_error(
                key.clone(),
                format!(
                    "unknown provider {}: add {key} with its baseUrl, api and apiKey, or use a built-in provider (openai/…, anthropic/…, ollama/…)",
                    Quoted(&model.provider)
                ),
            ));
        }
        let provider_id = provider.map_or(model.provider.as_str(), |p| p.id.as_str());
        let key = |name: &str| format!("models.providers.{provider_id}.{name}");
        let (index, entry) = provider
            .and_then(|p| {
                p.models
                    .iter()
                    .enumerate()
                    .find(|(_, m)| m.id == model.model)
            })
            .map_or((None, None), |(i, m)| (Some(i), Some(m)));

        if let Some(unset) = self.unresolved_for(provider_id, index) {
            return Err(config_error(
                unset.key.clone(),
                format!(
                    "{} uses ${{{}}}, which is not set in the gateway's environment; set {} or change {}",
                    unset.key, unset.var, unset.var, unset.key
                ),
            ));
        }

        let (api, api_key) = match (
            entry.and_then(|m| m.api.as_ref()),
            provider.and_then(|p| p.api.as_ref()),
        ) {
            (Some(api), _) => (
                api.clone(),
                format!("{}.api", model_key(provider_id, index)),
            ),
            (None, Some(api)) => (api.clone(), key("api")),
            (None, None) => (
                built_in
                    .as_ref()
                    .map_or(ModelApi::OpenAiCompletions, |b| b.api.clone()),
                key("api"),
            ),
        };
        let api = match api {
            ModelApi::OpenAiCompletions => Api::OpenAiCompletions,
            ModelApi::AnthropicMessages => Api::AnthropicMessages,
            ModelApi::Ollama => Api::Ollama,
            ModelApi::Unsupported(name) => {
                return Err(config_error(
                    api_key.clone(),
                    format!(
                        "{api_key} is {}, which clawgate does not support yet (supported: {})",
                        Quoted(&name),
                        ModelApi::SUPPORTED.join(", ")
                    ),
                ));
            }
        };

        let base_url = entry
            .and_then(|m| m.base_url.clone())
            .or_else(|| provider.and_then(|p| p.base_url.clone()))
            .or_else(|| built_in.as_ref().map(|b| b.base_url.to_owned()))
            .ok_or_else(|| {
                config_error(
                    key("baseUrl"),
                    format!(
                        "{} is not set: a custom provider needs the URL of its API, e.g. \"http://127.0.0.1:8080/v1\"",
                        key("baseUrl")
                    ),
                )
            })?;
        let base_url = base_url.trim_end_matches('/').to_owned();
        let local = is_local_url(&base_url);

        let api_key = match provider.and_then(|p| p.api_key.clone()) {
            Some(secret) => Some((secret, KeySource::Config(key("apiKey")))),
            None => built_in
                .as_ref()
                .and_then(|b| b.key_env)
                .and_then(|var| self.env_key(var).map(|s| (s.clone(), KeySource::Env(var)))),
        };
        // Ollama needs no key; a server on this machine or a private network usually
        // does not either, so a missing key is only an error for remote providers.
        if api_key.is_none() && api != Api::Ollama && !local {
            let env_hint = built_in
                .as_ref()
                .and_then(|b| b.key_env)
                .map(|var| format!(" or the {var} environment variable"))
                .unwrap_or_default();
            return Err(config_error(
                key("apiKey"),
                format!(
                    "no API key for provider {}: set {}{env_hint}",
                    Quoted(provider_id),
                    key("apiKey")
                ),
            ));
        }

        let mut headers: Vec<(String, Secret)> =
            provider.map(|p| p.headers.clone()).unwrap_or_default();
        for (name, value) in entry.map(|m| m.headers.as_slice()).unwrap_or_default() {
            headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            headers.push((name.clone(), value.clone()));
        }

        let timeout_seconds = provider.and_then(|p| p.timeout_seconds);
        let self_hosted = SELF_HOSTED_PROVIDERS
            .iter()
            .any(|p| provider_id == *p || provider_id.starts_with(&format!("{p}-")));
        let idle_timeout = self.idle_override.unwrap_or_else(|| match timeout_seconds {
            Some(secs) => Duration::from_secs(secs),
            None if local || self_hosted => LOCAL_IDLE_TIMEOUT,
            None => CLOUD_IDLE_TIMEOUT,
        });
        let max_tokens = entry
            .and_then(|m| m.max_tokens)
            .or_else(|| provider.and_then(|p| p.max_tokens))
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX));

        Ok(ResolvedModel {
            model: model.clone(),
            provider_id: provider_id.to_owned(),
            name: entry
                .and_then(|m| m.name.clone())
                .unwrap_or_else(|| model.model.clone()),
            api,
            base_url,
            key: api_key,
            headers,
            auth_header: provider.and_then(|p| p.auth_header).unwrap_or(false),
            request_timeout: timeout_seconds.map(Duration::from_secs),
            idle_timeout,
            max_tokens,
            context_window: entry.and_then(|m| m.context_window),
            reasoning: entry.and_then(|m| m.reasoning),
            input: entry.map(|m| m.input.clone()).unwrap_or_default(),
            local,
        })
    }

    /// An unset `${VAR}` that matters for the provider `id` and its model entry `index`:
    /// one in a provider-level key or in that model's entry.
    fn unresolved_for(
        &self,
        id: &str,
        index: Option<usize>,
    ) -> Option<&clawgate_config::UnresolvedRef> {
        let provider_prefix = format!("models.providers.{id}.");
        let models_prefix = format!("{provider_prefix}models[");
        let this_model = index.map(|i| model_key(id, Some(i)));
        self.config.unresolved.iter().find(|u| {
            u.key.starts_with(&provider_prefix)
                && (!u.key.starts_with(&models_prefix)
                    || this_model
                        .as_ref()
                        .is_some_and(|m| u.key == *m || u.key.starts_with(&format!("{m}."))))
        })
    }

    /// The `models.list` payload: `{models: [{id, name, provider, contextWindow?,
    /// reasoning?, available}, …]}` as OpenClaw projects its catalog, plus `local` and
    /// `input` when `includeDetails` is set.
    ///
    /// Lists the configured models (`models.providers.*.models[]`, in file order) and the
    /// models of the fallback chain; `available` says whether a request could be sent
    /// (provider known and supported, key present).
    pub(crate) fn models_list(&self, params: &ModelsListParams) -> Value {
        let mut refs: Vec<(ModelRef, Option<&ModelConfig>)> = Vec::new();
        for provider in &self.config.providers {
            for m in &provider.models {
                refs.push((
                    ModelRef {
                        provider: provider.id.to_ascii_lowercase(),
                        model: m.id.clone(),
                    },
                    Some(m),
                ));
            }
        }
        for model in self.route().unwrap_or_default() {
            if !refs.iter().any(|(r, _)| *r == model) {
                refs.push((model, None));
            }
        }
        let wanted = params.provider.as_deref().map(str::to_ascii_lowercase);
        let models: Vec<Value> = refs
            .into_iter()
            .filter(|(r, _)| wanted.as_ref().is_none_or(|p| *p == r.provider))
            .map(|(model, entry)| self.list_entry(&model, entry, params.include_details))
            .collect();
        json!({ "models": models })
    }

    fn list_entry(&self, model: &ModelRef, entry: Option<&ModelConfig>, details: bool) -> Value {
        let resolved = self.resolve(model);
        let provider: Option<&ProviderConfig> = self.config.provider(&model.provider);
        let mut out = Map::new();
        out.insert("id".into(), json!(model.model));
        out.insert(
            "name".into(),
            json!(
                entry
                    .and_then(|m| m.name.as_deref())
                    .unwrap_or(&model.model)
            ),
        );
        out.insert(
            "provider".into(),
            json!(provider.map_or(model.provider.as_str(), |p| p.id.as_str())),
        );
        if let Some(window) = entry.and_then(|m| m.context_window) {
            out.insert("contextWindow".into(), json!(window));
        }
        if details && let Ok(r) = &resolved {
            out.insert("local".into(), json!(r.local));
        }
        if details && let Some(m) = entry.filter(|m| !m.input.is_empty()) {
            out.insert("input".into(), json!(m.input));
        }
        if let Some(reasoning) = entry.and_then(|m| m.reasoning) {
            out.insert("reasoning".into(), json!(reasoning));
        }
        out.insert("available".into(), json!(resolved.is_ok()));
        Value::Object(out)
    }
}

/// `models.providers.<id>.models[<i>]`, or the provider key when the model has no entry.
fn model_key(id: &str, index: Option<usize>) -> String {
    match index {
        Some(i) => format!("models.providers.{id}.models[{i}]"),
        None => format!("models.providers.{id}"),
    }
}

/// The `models.list` request parameters clawgate honours.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelsListParams {
    /// Only this provider's models.
    #[serde(default)]
    pub provider: Option<String>,
    /// Add `local` and `input` to each entry.
    #[serde(default)]
    pub include_details: bool,
}

/// Whether `url` points at this machine or a private network (loopback, RFC 1918,
/// CGNAT/Tailscale, IPv6 ULA and link-local, `localhost`, `*.local`, Docker's host
/// aliases), as OpenClaw classifies local model servers.
pub(crate) fn is_local_url(url: &str) -> bool {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return false;
    };
    let Some(host) = parsed.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<IpAddr>() {
        Ok(ip) => is_local_ip(ip),
        Err(_) => {
            let host = host.to_ascii_lowercase();
            host == "localhost"
                || host.ends_with(".localhost")
                || host.ends_with(".local")
                || matches!(
                    host.as_str(),
                    "host.docker.internal" | "docker.orb.internal" | "host.orb.internal"
                )
        }
    }
}

fn is_local_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_local_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4.is_loopback();
            }
            let first = v6.segments()[0];
            v6 == Ipv6Addr::LOCALHOST || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

fn is_local_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_unspecified()
        || (a == 100 && (64..=127).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_urls() {
        for url in [
            "http://127.0.0.1:11434",
            "http://localhost:8080/v1",
            "http://10.1.2.3/v1",
            "http://192.168.1.5:1234",
            "http://172.20.0.1",
            "http://100.101.102.103",
            "http://[::1]:8000",
            "http://[fd7a:115c:a1e0::1]",
            "http://box.local:11434",
            "http://host.docker.internal:11434",
        ] {
            assert!(is_local_url(url), "{url}");
        }
        for url in [
            "https://api.openai.com/v1",
            "http://8.8.8.8",
            "http://172.32.0.1",
            "http://[2001:db8::1]",
            "not a url",
        ] {
            assert!(!is_local_url(url), "{url}");
        }
    }
}
