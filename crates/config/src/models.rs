//! The typed view of the model keys: `models.providers.<id>.*` and `agents.defaults.model`,
//! with OpenClaw's meanings.
//!
//! Type errors (an `api` no adapter knows, a `baseUrl` that is not an http(s) URL, a
//! malformed model ref) are fatal like every other typed key, and name the dotted key. A
//! `${VAR}` whose variable is unset is not: the value is left out and recorded in
//! [`ModelsConfig::unresolved`], so the gateway still starts and only the model requests
//! that need that value fail, with a message naming the key and the variable.

use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};

use crate::error::ConfigError;
use crate::gateway_config::{Reader, parse_secret_ref, shown, type_name};
use crate::secret::Secret;
use crate::subst::join_key;

/// The wire protocol of a provider (`models.providers.<id>.api`, or a model's own `api`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ModelApi {
    /// `openai-completions`: `POST {baseUrl}/chat/completions`, server-sent events.
    OpenAiCompletions,
    /// `anthropic-messages`: `POST {baseUrl}/v1/messages`, server-sent events.
    AnthropicMessages,
    /// `ollama`: Ollama's native `POST {baseUrl}/api/chat`, newline-delimited JSON.
    Ollama,
    /// Another adapter OpenClaw knows (`openai-responses`, `google-generative-ai`, …) that
    /// clawgate does not speak yet. Accepted in the file; a request to such a provider
    /// fails with a message that says so.
    Unsupported(String),
}

impl ModelApi {
    /// The adapters clawgate speaks, as spelled in the config.
    pub const SUPPORTED: &'static [&'static str] =
        &["openai-completions", "anthropic-messages", "ollama"];

    /// The other values of OpenClaw's `api` enum (2026.9.6).
    const OPENCLAW_ONLY: &'static [&'static str] = &[
        "openai-responses",
        "openai-chatgpt-responses",
        "google-generative-ai",
        "google-vertex",
        "github-copilot",
        "bedrock-converse-stream",
        "pi-messages",
        "azure-openai-responses",
    ];

    /// The spelling used in the config file.
    pub fn as_str(&self) -> &str {
        match self {
            ModelApi::OpenAiCompletions => "openai-completions",
            ModelApi::AnthropicMessages => "anthropic-messages",
            ModelApi::Ollama => "ollama",
            ModelApi::Unsupported(name) => name,
        }
    }

    /// Parses a config value; `None` for a value that is no adapter at all.
    fn parse(s: &str) -> Option<ModelApi> {
        match s {
            "openai-completions" => Some(ModelApi::OpenAiCompletions),
            "anthropic-messages" => Some(ModelApi::AnthropicMessages),
            "ollama" => Some(ModelApi::Ollama),
            other if Self::OPENCLAW_ONLY.contains(&other) => {
                Some(ModelApi::Unsupported(other.to_owned()))
            }
            _ => None,
        }
    }
}

impl fmt::Display for ModelApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A model reference, `provider/model` (`openai/gpt-4o`, `ollama/llama3.2`,
/// `openrouter/anthropic/claude-sonnet-4`: everything after the first `/` is the model id).
///
/// As in OpenClaw, a bare model id means the default provider `openai`, and the provider
/// part is lowercased.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelRef {
    pub provider: String,
    pub model: String,
}

impl ModelRef {
    /// OpenClaw's default provider for a bare model id.
    pub const DEFAULT_PROVIDER: &'static str = "openai";

    /// `provider/model` → a ref. Errors say what is wrong, for a message that starts with
    /// the key the value came from.
    pub fn parse(input: &str) -> Result<ModelRef, String> {
        let text = input.trim();
        let invalid = || {
            format!(
                "must be \"<provider>/<model>\", e.g. \"openai/gpt-4o\" or \"ollama/llama3.2\" (got {})",
                Value::String(input.to_owned())
            )
        };
        if text.is_empty() {
            return Err(invalid());
        }
        let (provider, model) = match text.split_once('/') {
            None => (Self::DEFAULT_PROVIDER, text),
            Some((provider, model)) => (provider.trim(), model.trim()),
        };
        if provider.is_empty() || model.is_empty() {
            return Err(invalid());
        }
        Ok(ModelRef {
            provider: provider.to_ascii_lowercase(),
            model: model.to_owned(),
        })
    }
}

impl FromStr for ModelRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ModelRef::parse(s)
    }
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.provider, self.model)
    }
}

/// A `${VAR}` reference in a model key whose variable was unset or empty: the key is
/// treated as not set, and anything that needs it reports `key` and `var`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnresolvedRef {
    /// The dotted key (`models.providers.openai.apiKey`).
    pub key: String,
    /// The variable (`OPENAI_API_KEY`).
    pub var: String,
}

/// The model settings of a config file. Empty when the file has none: the built-in
/// providers (`openai`, `anthropic`, `ollama`) need no entry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelsConfig {
    /// `models.providers`, in file order.
    pub providers: Vec<ProviderConfig>,
    /// `agents.defaults.model.primary` (or `agents.defaults.model` as a plain string).
    pub primary: Option<ModelRef>,
    /// `agents.defaults.model.fallbacks[]`, tried in order when the primary fails.
    pub fallbacks: Vec<ModelRef>,
    /// `${VAR}` references in these keys whose variable is unset.
    pub unresolved: Vec<UnresolvedRef>,
}

impl ModelsConfig {
    /// The configured provider `id` (provider ids match case-insensitively).
    pub fn provider(&self, id: &str) -> Option<&ProviderConfig> {
        self.providers
            .iter()
            .find(|p| p.id.eq_ignore_ascii_case(id))
    }

    /// The first unresolved `${VAR}` at `key` or below it.
    pub fn unresolved_at(&self, key: &str) -> Option<&UnresolvedRef> {
        self.unresolved.iter().find(|u| {
            u.key == key
                || u.key
                    .strip_prefix(key)
                    .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
        })
    }
}

/// `models.providers.<id>`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderConfig {
    /// The provider id as written (`openai`, `mock`, `local-llama`).
    pub id: String,
    /// `baseUrl`: an `http://` or `https://` URL.
    pub base_url: Option<String>,
    /// `apiKey`: a string (after `${VAR}` substitution) or an env SecretRef.
    pub api_key: Option<Secret>,
    /// `api`: the wire protocol.
    pub api: Option<ModelApi>,
    /// `authHeader`: send the key as `Authorization: Bearer` even where the protocol has
    /// its own header (Anthropic's `x-api-key`).
    pub auth_header: Option<bool>,
    /// `headers`: extra request headers (values may be credentials, hence [`Secret`]).
    pub headers: Vec<(String, Secret)>,
    /// `timeoutSeconds`: limit for a whole model request; also the stream idle limit.
    pub timeout_seconds: Option<u64>,
    /// `maxTokens`: output budget for models of this provider that set none.
    pub max_tokens: Option<u64>,
    /// `models[]`.
    pub models: Vec<ModelConfig>,
}

/// `models.providers.<id>.models[i]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// `id`: the model id sent to the provider.
    pub id: String,
    /// `name`: display name (`models.list`); the id when absent.
    pub name: Option<String>,
    /// `api`: overrides the provider's.
    pub api: Option<ModelApi>,
    /// `baseUrl`: overrides the provider's.
    pub base_url: Option<String>,
    /// `reasoning`: a reasoning model.
    pub reasoning: Option<bool>,
    /// `input`: `text`, `image`, …
    pub input: Vec<String>,
    /// `contextWindow`, in tokens.
    pub context_window: Option<u64>,
    /// `maxTokens`: output budget per request.
    pub max_tokens: Option<u64>,
    /// `headers`: merged over the provider's.
    pub headers: Vec<(String, Secret)>,
}

/// Reads `models` and `agents.defaults.model` from the (substituted) root object.
pub(crate) fn read_models(
    r: &Reader<'_>,
    root: &Map<String, Value>,
) -> Result<ModelsConfig, ConfigError> {
    let mut read = ModelsReader {
        r,
        unresolved: Vec::new(),
    };
    let mut cfg = ModelsConfig::default();
    if let Some(models) = r.object(root, "models", "models")?
        && let Some(providers) = r.object(models, "providers", "models.providers")?
    {
        for (id, value) in providers {
            cfg.providers.push(read.provider(id, value)?);
        }
    }
    // `agents` and `agents.defaults` are mostly not implemented, so a value of another
    // shape there is reported as ignored (by the key walk), not refused.
    if let Some(Value::Object(agents)) = root.get("agents")
        && let Some(Value::Object(defaults)) = agents.get("defaults")
    {
        read.agent_model(defaults, &mut cfg)?;
    }
    cfg.unresolved = read.unresolved;
    Ok(cfg)
}

struct ModelsReader<'a, 'r> {
    r: &'a Reader<'r>,
    unresolved: Vec<UnresolvedRef>,
}

impl ModelsReader<'_, '_> {
    /// Records `key` as unresolved when its `${VAR}` was missing; true if so.
    fn is_unresolved(&mut self, key: &str) -> bool {
        match self.r.missing.get(key) {
            Some(var) => {
                self.unresolved.push(UnresolvedRef {
                    key: key.to_owned(),
                    var: var.clone(),
                });
                true
            }
            None => false,
        }
    }

    /// A string; `None` when absent, blank or an unresolved `${VAR}`.
    fn text(
        &mut self,
        obj: &Map<String, Value>,
        name: &str,
        key: &str,
    ) -> Result<Option<String>, ConfigError> {
        match obj.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => {
                if self.is_unresolved(key) || s.trim().is_empty() {
                    Ok(None)
                } else {
                    Ok(Some(s.trim().to_owned()))
                }
            }
            Some(other) => Err(self.r.invalid(
                key,
                format!("{key} must be a string (got {})", shown(other)),
            )),
        }
    }

    /// A credential: a string or a SecretRef `{source: "env", provider, id}`. An unset
    /// variable (in `${VAR}` or the SecretRef) leaves it unset and recorded.
    fn secret(
        &mut self,
        obj: &Map<String, Value>,
        name: &str,
        key: &str,
    ) -> Result<Option<Secret>, ConfigError> {
        let r = self.r;
        let shape_error = |got: &Value| {
            r.invalid(
                key,
                format!(
                    "{key} must be a string or a SecretRef object {{\"source\": \"env\", \"provider\": \"default\", \"id\": \"ENV_VAR_NAME\"}} (got {})",
                    type_name(got)
                ),
            )
        };
        match obj.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => {
                if self.is_unresolved(key) || s.trim().is_empty() {
                    Ok(None)
                } else {
                    Ok(Some(Secret::new(s.trim())))
                }
            }
            Some(v @ Value::Object(o)) => {
                let Some(secret_ref) = parse_secret_ref(o) else {
                    return Err(shape_error(v));
                };
                if secret_ref.source != "env" {
                    return Err(self.r.invalid(
                        key,
                        format!(
                            "{key} is a SecretRef with source \"{}\", which clawgate does not support yet; use {{\"source\": \"env\", \"provider\": \"default\", \"id\": \"ENV_VAR_NAME\"}} or a \"${{ENV_VAR_NAME}}\" string instead",
                            secret_ref.source
                        ),
                    ));
                }
                match (self.r.env)(secret_ref.id).filter(|v| !v.trim().is_empty()) {
                    Some(value) => Ok(Some(Secret::new(value.trim()))),
                    None => {
                        self.unresolved.push(UnresolvedRef {
                            key: key.to_owned(),
                            var: secret_ref.id.to_owned(),
                        });
                        Ok(None)
                    }
                }
            }
            Some(other) => Err(shape_error(other)),
        }
    }

    fn url(
        &mut self,
        obj: &Map<String, Value>,
        name: &str,
        key: &str,
    ) -> Result<Option<String>, ConfigError> {
        let Some(url) = self.text(obj, name, key)? else {
            return Ok(None);
        };
        let lower = url.to_ascii_lowercase();
        let rest = lower
            .strip_prefix("https://")
            .or_else(|| lower.strip_prefix("http://"));
        match rest {
            Some(host) if !host.is_empty() && !host.starts_with('/') => Ok(Some(url)),
            _ => Err(self.r.invalid(
                key,
                format!(
                    "{key} must be an http:// or https:// URL such as \"http://127.0.0.1:11434\" or \"https://api.openai.com/v1\" (got {})",
                    Value::String(url)
                ),
            )),
        }
    }

    fn api(
        &mut self,
        obj: &Map<String, Value>,
        name: &str,
        key: &str,
    ) -> Result<Option<ModelApi>, ConfigError> {
        let Some(text) = self.text(obj, name, key)? else {
            return Ok(None);
        };
        match ModelApi::parse(&text) {
            Some(api) => Ok(Some(api)),
            None => Err(self.r.invalid(
                key,
                format!(
                    "{key}: unknown api {} (expected {})",
                    Value::String(text),
                    ModelApi::SUPPORTED.join(", ")
                ),
            )),
        }
    }

    fn positive(
        &mut self,
        obj: &Map<String, Value>,
        name: &str,
        key: &str,
    ) -> Result<Option<u64>, ConfigError> {
        if self.r.missing.contains_key(key) {
            self.is_unresolved(key);
            return Ok(None);
        }
        self.r.int(obj, name, key, 1, u64::MAX)
    }

    /// `headers`: an object of header name → string or SecretRef.
    fn headers(
        &mut self,
        obj: &Map<String, Value>,
        key: &str,
    ) -> Result<Vec<(String, Secret)>, ConfigError> {
        let Some(headers) = self.r.object(obj, "headers", key)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for name in headers.keys() {
            let header_key = join_key(key, name);
            if !is_header_name(name) {
                return Err(self.r.invalid(
                    &header_key,
                    format!(
                        "{header_key}: {} is not a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~ only)",
                        Value::String(name.clone())
                    ),
                ));
            }
            if let Some(value) = self.secret(headers, name, &header_key)? {
                if value.expose().contains(['\r', '\n']) {
                    return Err(self.r.invalid(
                        &header_key,
                        format!("{header_key} must be a single line (it contains a line break)"),
                    ));
                }
                out.push((name.clone(), value));
            }
        }
        Ok(out)
    }

    fn provider(&mut self, id: &str, value: &Value) -> Result<ProviderConfig, ConfigError> {
        let key = join_key("models.providers", id);
        if id.trim().is_empty() || id.contains('/') {
            return Err(self.r.invalid(
                &key,
                format!(
                    "models.providers: {} is not a usable provider id (it must be non-empty and contain no \"/\", since model refs are \"<provider>/<model>\")",
                    Value::String(id.to_owned())
                ),
            ));
        }
        let Value::Object(obj) = value else {
            return Err(self.r.invalid(
                &key,
                format!(
                    "{key} must be an object like {{baseUrl: \"https://…/v1\", apiKey: \"${{API_KEY}}\", api: \"openai-completions\", models: [{{id: \"…\"}}]}} (got {})",
                    shown(value)
                ),
            ));
        };
        let at = |name: &str| join_key(&key, name);
        let mut provider = ProviderConfig {
            id: id.to_owned(),
            base_url: self.url(obj, "baseUrl", &at("baseUrl"))?,
            api_key: self.secret(obj, "apiKey", &at("apiKey"))?,
            api: self.api(obj, "api", &at("api"))?,
            auth_header: self.r.bool(obj, "authHeader", &at("authHeader"))?,
            headers: self.headers(obj, &at("headers"))?,
            timeout_seconds: self.positive(obj, "timeoutSeconds", &at("timeoutSeconds"))?,
            max_tokens: self.positive(obj, "maxTokens", &at("maxTokens"))?,
            models: Vec::new(),
        };
        let models_key = at("models");
        match obj.get("models") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let model = self.model(item, &format!("{models_key}[{i}]"))?;
                    if !provider.models.iter().any(|m| m.id == model.id) {
                        provider.models.push(model);
                    }
                }
            }
            Some(other) => {
                return Err(self.r.invalid(
                    &models_key,
                    format!(
                        "{models_key} must be an array of models like [{{id: \"gpt-4o\", contextWindow: 128000}}] (got {})",
                        shown(other)
                    ),
                ));
            }
        }
        Ok(provider)
    }

    fn model(&mut self, value: &Value, key: &str) -> Result<ModelConfig, ConfigError> {
        let Value::Object(obj) = value else {
            return Err(self.r.invalid(
                key,
                format!(
                    "{key} must be an object like {{id: \"gpt-4o\", contextWindow: 128000}} (got {})",
                    shown(value)
                ),
            ));
        };
        let at = |name: &str| join_key(key, name);
        let id_key = at("id");
        let id = match obj.get("id") {
            Some(Value::String(s))
                if !s.trim().is_empty() && !self.r.missing.contains_key(&id_key) =>
            {
                s.trim().to_owned()
            }
            other => {
                return Err(self.r.invalid(
                    &id_key,
                    format!(
                        "{id_key} must be the model id the provider expects, e.g. \"gpt-4o\" (got {})",
                        other.map_or_else(|| "nothing".to_owned(), shown)
                    ),
                ));
            }
        };
        let input_key = at("input");
        let input = match obj.get("input") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            Some(other) => {
                return Err(self.r.invalid(
                    &input_key,
                    format!(
                        "{input_key} must be an array like [\"text\", \"image\"] (got {})",
                        shown(other)
                    ),
                ));
            }
        };
        Ok(ModelConfig {
            id,
            name: self.text(obj, "name", &at("name"))?,
            api: self.api(obj, "api", &at("api"))?,
            base_url: self.url(obj, "baseUrl", &at("baseUrl"))?,
            reasoning: self.r.bool(obj, "reasoning", &at("reasoning"))?,
            input,
            context_window: self.positive(obj, "contextWindow", &at("contextWindow"))?,
            max_tokens: self.positive(obj, "maxTokens", &at("maxTokens"))?,
            headers: self.headers(obj, &at("headers"))?,
        })
    }

    fn model_ref(&mut self, value: &str, key: &str) -> Result<Option<ModelRef>, ConfigError> {
        if self.is_unresolved(key) || value.trim().is_empty() {
            return Ok(None);
        }
        ModelRef::parse(value)
            .map(Some)
            .map_err(|why| self.r.invalid(key, format!("{key} {why}")))
    }

    /// `agents.defaults.model`: `"provider/model"` or `{primary, fallbacks}`.
    fn agent_model(
        &mut self,
        defaults: &Map<String, Value>,
        cfg: &mut ModelsConfig,
    ) -> Result<(), ConfigError> {
        const KEY: &str = "agents.defaults.model";
        let obj = match defaults.get("model") {
            None | Some(Value::Null) => return Ok(()),
            Some(Value::String(s)) => {
                cfg.primary = self.model_ref(s, KEY)?;
                return Ok(());
            }
            Some(Value::Object(obj)) => obj,
            Some(other) => {
                return Err(self.r.invalid(
                    KEY,
                    format!(
                        "{KEY} must be \"<provider>/<model>\" or {{primary: \"<provider>/<model>\", fallbacks: [\"<provider>/<model>\", …]}} (got {})",
                        shown(other)
                    ),
                ));
            }
        };
        if let Some(unknown) = obj.keys().find(|k| *k != "primary" && *k != "fallbacks") {
            return Err(self.r.invalid(
                KEY,
                format!(
                    "{KEY} has an unknown key {}; the keys are primary, fallbacks",
                    Value::String(unknown.clone())
                ),
            ));
        }
        let primary_key = format!("{KEY}.primary");
        cfg.primary = match obj.get("primary") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => self.model_ref(s, &primary_key)?,
            Some(other) => {
                return Err(self.r.invalid(
                    &primary_key,
                    format!(
                        "{primary_key} must be a string \"<provider>/<model>\" (got {})",
                        shown(other)
                    ),
                ));
            }
        };
        let fallbacks_key = format!("{KEY}.fallbacks");
        match obj.get("fallbacks") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let item_key = format!("{fallbacks_key}[{i}]");
                    let Value::String(s) = item else {
                        return Err(self.r.invalid(
                            &item_key,
                            format!(
                                "{item_key} must be a string \"<provider>/<model>\" (got {})",
                                shown(item)
                            ),
                        ));
                    };
                    if let Some(model) = self.model_ref(s, &item_key)?
                        && !cfg.fallbacks.contains(&model)
                    {
                        cfg.fallbacks.push(model);
                    }
                }
            }
            Some(other) => {
                return Err(self.r.invalid(
                    &fallbacks_key,
                    format!(
                        "{fallbacks_key} must be an array of \"<provider>/<model>\" strings (got {})",
                        shown(other)
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// RFC 9110 token characters.
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_refs() {
        let r = ModelRef::parse("openai/gpt-4o").unwrap();
        assert_eq!(
            (r.provider.as_str(), r.model.as_str()),
            ("openai", "gpt-4o")
        );
        let r = ModelRef::parse(" OpenRouter/anthropic/claude-sonnet-4 ").unwrap();
        assert_eq!(r.provider, "openrouter");
        assert_eq!(r.model, "anthropic/claude-sonnet-4");
        assert_eq!(r.to_string(), "openrouter/anthropic/claude-sonnet-4");
        assert_eq!(ModelRef::parse("gpt-4o").unwrap().provider, "openai");
        for bad in ["", "  ", "/x", "x/", " / "] {
            let err = ModelRef::parse(bad).unwrap_err();
            assert!(err.contains("\"<provider>/<model>\""), "{bad:?}: {err}");
        }
    }

    #[test]
    fn apis() {
        assert_eq!(ModelApi::parse("ollama"), Some(ModelApi::Ollama));
        assert_eq!(
            ModelApi::parse("google-generative-ai"),
            Some(ModelApi::Unsupported("google-generative-ai".into()))
        );
        assert_eq!(ModelApi::parse("Ollama"), None);
    }

    #[test]
    fn header_names() {
        assert!(is_header_name("X-Tenant-Id"));
        assert!(!is_header_name("X Tenant"));
        assert!(!is_header_name(""));
        assert!(!is_header_name("a:b"));
    }
}
