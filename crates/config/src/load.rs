//! Reading an OpenClaw config file into a [`LoadedConfig`].

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::agent::{AgentConfig, read_agent};
use crate::discovery::{DiscoveryConfig, read_discovery};
use crate::error::ConfigError;
use crate::gateway_config::{GatewayConfig, Reader, read_gateway};
use crate::models::{ModelsConfig, read_models};
use crate::paths::{ConfigLocation, PathOrigin};
use crate::redact::redacted;
use crate::schema::classify;
use crate::subst::substitute_tree;
use crate::telegram::{TelegramConfig, read_telegram};

/// A parsed, validated config file.
///
/// `Debug` shows `raw` and `authored` through [`redacted`], so logging a `LoadedConfig`
/// never leaks the secrets it holds.
#[derive(Clone)]
pub struct LoadedConfig {
    /// The file it came from.
    pub path: PathBuf,
    /// The whole document after `${VAR}` substitution. Contains real secrets: use
    /// [`redacted`] before showing it to anyone.
    pub raw: Value,
    /// The whole document as written, before substitution. Anything that writes the file
    /// back (`config.set`, `config.patch`) must start from this, not from `raw`, or every
    /// `${VAR}` reference would be replaced by the secret it points to (OpenClaw #9627).
    pub authored: Value,
    /// The `gateway.*` keys clawgate implements, typed.
    pub gateway: GatewayConfig,
    /// `models.providers.*` and `agents.defaults.model`, typed.
    pub models: ModelsConfig,
    /// `discovery.*` and the Bonjour plugin's switch, typed.
    pub discovery: DiscoveryConfig,
    /// The agent runtime's settings (`agents.defaults.maxConcurrent`, `messages.queue.mode`…).
    pub agent: AgentConfig,
    /// `channels.telegram.*`, typed; `None` when the file has no such section.
    pub telegram: Option<TelegramConfig>,
    /// Dotted paths of keys OpenClaw knows but clawgate does not implement (`agents`,
    /// `channels.telegram`, `gateway.controlUi`), each reported once at its highest level.
    /// Never fatal; the caller logs them once.
    pub ignored: Vec<String>,
    /// Dotted paths of keys under `gateway` that OpenClaw's schema does not know either:
    /// probably typos. OpenClaw rejects these; clawgate only warns.
    pub unknown: Vec<String>,
    /// Other non-fatal findings, ready to log: unresolved `${VAR}` references in keys
    /// clawgate does not use (left as written), unsupported `$include`.
    pub warnings: Vec<String>,
    /// `(unknown key, advice)` pairs used by [`LoadedConfig::diagnostics`].
    suggestions: Vec<(String, String)>,
}

impl fmt::Debug for LoadedConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedConfig")
            .field("path", &self.path)
            .field("raw", &redacted(&self.raw))
            .field("authored", &redacted(&self.authored))
            .field("gateway", &self.gateway)
            .field("models", &self.models)
            .field("discovery", &self.discovery)
            .field("telegram", &self.telegram)
            .field("ignored", &self.ignored)
            .field("unknown", &self.unknown)
            .field("warnings", &self.warnings)
            .finish_non_exhaustive()
    }
}

impl LoadedConfig {
    /// Parses JSON5 `text` (the content of `path`). An empty or whitespace-only text is an
    /// empty config (`touch openclaw.json` is a common way to create one).
    pub fn from_json5(
        path: &Path,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        if text.trim().is_empty() {
            return Self::from_value(path, Value::Object(Map::new()), env);
        }
        check_nesting(path, text)?;
        let value: Value = json5::from_str(text).map_err(|e| syntax_error(path, &e))?;
        Self::from_value(path, value, env)
    }

    /// Validates an already parsed document (e.g. the result of a `config.patch`).
    pub fn from_value(
        path: &Path,
        authored: Value,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let Value::Object(root) = &authored else {
            return Err(ConfigError::Invalid {
                file: path.to_owned(),
                key: String::new(),
                message: format!(
                    "the config must be an object like {{ gateway: {{ port: 18789 }} }} (got {})",
                    match authored {
                        Value::Array(_) => "an array".to_owned(),
                        ref other => other.to_string(),
                    }
                ),
            });
        };
        if let Some(Value::Object(gw)) = root.get("gateway")
            && let Some(at) = find_include(gw, "gateway")
        {
            return Err(ConfigError::Invalid {
                file: path.to_owned(),
                key: at.clone(),
                message: format!(
                    "{at}: $include is not supported by clawgate yet; copy the included gateway settings into {} instead",
                    path.display()
                ),
            });
        }

        let (raw, subst) = substitute_tree(&authored, env);
        let missing = subst.missing;
        let substituted: HashSet<String> = subst.substituted.into_iter().collect();
        let missing_by_path: HashMap<String, String> = missing
            .iter()
            .map(|m| (m.path.clone(), m.var.clone()))
            .collect();

        let empty = Map::new();
        let gw = match raw.get("gateway") {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(gw)) => gw,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    file: path.to_owned(),
                    key: "gateway".to_owned(),
                    message: format!(
                        "gateway must be an object (got {})",
                        if other.is_array() {
                            "an array".to_owned()
                        } else {
                            other.to_string()
                        }
                    ),
                });
            }
        };
        let reader = Reader {
            file: path,
            missing: &missing_by_path,
            substituted: &substituted,
            env,
        };
        let gateway = read_gateway(&reader, gw)?;
        let models = read_models(&reader, raw.as_object().unwrap_or(&empty))?;
        let discovery = read_discovery(&reader, raw.as_object().unwrap_or(&empty))?;
        let agent = read_agent(&reader, raw.as_object().unwrap_or(&empty))?;
        let telegram = read_telegram(&reader, raw.as_object().unwrap_or(&empty))?;

        let report = classify(raw.as_object().unwrap_or(&empty));
        let mut warnings: Vec<String> = missing
            .iter()
            .map(|m| {
                let effect = if models.unresolved.iter().any(|u| u.key == m.path) {
                    "left unset: model requests that need this key fail until the variable is set"
                } else {
                    "left as written; clawgate does not use this key"
                };
                format!(
                    "Missing env var \"{}\" referenced at config path: {} ({effect})",
                    m.var, m.path
                )
            })
            .collect();
        if root.contains_key("$include") {
            warnings.push(
                "$include is not supported by clawgate yet: settings in included files (including any gateway settings) are not applied".to_owned(),
            );
        }

        Ok(LoadedConfig {
            path: path.to_owned(),
            raw,
            authored,
            gateway,
            models,
            discovery,
            agent,
            telegram,
            ignored: report.ignored,
            unknown: report.unknown,
            warnings,
            suggestions: report.suggestions,
        })
    }

    /// Everything worth telling the user about this file, one log line each: the ignored
    /// keys (a single line), each unknown key with a suggestion, then [`Self::warnings`].
    pub fn diagnostics(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.ignored.is_empty() {
            out.push(format!(
                "{}: ignoring keys clawgate does not implement: {}",
                self.path.display(),
                self.ignored.join(", ")
            ));
        }
        for key in &self.unknown {
            let advice = self
                .suggestions
                .iter()
                .find(|(k, _)| k == key)
                .map_or("typo?", |(_, s)| s.as_str());
            out.push(format!(
                "{}: unknown key {key} ({advice})",
                self.path.display()
            ));
        }
        for w in &self.warnings {
            out.push(format!("{}: {w}", self.path.display()));
        }
        out
    }
}

fn find_include(obj: &Map<String, Value>, path: &str) -> Option<String> {
    obj.iter().find_map(|(k, v)| {
        let here = format!("{path}.{k}");
        if k == "$include" {
            return Some(here);
        }
        match v {
            Value::Object(child) => find_include(child, &here),
            _ => None,
        }
    })
}

/// Deepest nesting of objects and arrays a config may have. The JSON5 parser and every walk
/// over the document recurse once per level, so a file nested thousands of levels deep would
/// overflow the stack and abort; real configs nest less than ten levels.
const MAX_NESTING: usize = 128;

/// Refuses a document nested deeper than [`MAX_NESTING`] before it is parsed, pointing at
/// the first bracket too many. Brackets inside strings and comments do not count.
fn check_nesting(path: &Path, text: &str) -> Result<(), ConfigError> {
    let mut depth = 0usize;
    let mut quote = None;
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        if let Some(q) = quote {
            if c == '\\' {
                chars.next();
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '/' if chars.next_if(|&(_, n)| n == '/').is_some() => {
                while chars.next_if(|&(_, n)| n != '\n').is_some() {}
            }
            '/' if chars.next_if(|&(_, n)| n == '*').is_some() => {
                let mut star = false;
                for (_, n) in chars.by_ref() {
                    if star && n == '/' {
                        break;
                    }
                    star = n == '*';
                }
            }
            '{' | '[' => {
                depth += 1;
                if depth > MAX_NESTING {
                    let before = &text[..at];
                    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
                    return Err(ConfigError::Syntax {
                        path: path.to_owned(),
                        line: Some(before.matches('\n').count() + 1),
                        column: Some(before[line_start..].chars().count() + 1),
                        message: format!(
                            "objects and arrays nested more than {MAX_NESTING} levels deep; a config needs far fewer, so this value is probably generated by mistake: remove or flatten it"
                        ),
                    });
                }
            }
            '}' | ']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Maps a json5 error to [`ConfigError::Syntax`] with a 1-based position. The message part
/// is json5's text without its own " at line L column C" suffix.
fn syntax_error(path: &Path, e: &json5::Error) -> ConfigError {
    let full = e.to_string();
    match e.position() {
        Some(pos) => {
            let suffix = format!(" at {pos}");
            let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
            ConfigError::Syntax {
                path: path.to_owned(),
                line: Some(pos.line + 1),
                column: Some(pos.column + 1),
                message,
            }
        }
        None => ConfigError::Syntax {
            path: path.to_owned(),
            line: None,
            column: None,
            message: full,
        },
    }
}

/// Reads and validates the config file at `path`. A missing file is an error here; use
/// [`load_config`] to treat a missing default file as "no config".
pub fn load_file(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<LoadedConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    LoadedConfig::from_json5(path, &text, env)
}

/// Loads the config at `location` (see [`locate_config`](crate::locate_config)).
///
/// A missing file at the default location is `Ok(None)`: clawgate starts with zero config.
/// A missing file that a flag or env var named explicitly is an error naming both, since
/// silently running without the config the user pointed at would be worse.
pub fn load_config(
    location: &ConfigLocation,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<LoadedConfig>, ConfigError> {
    match std::fs::metadata(&location.path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match &location.origin {
            PathOrigin::Default => Ok(None),
            origin => Err(ConfigError::MissingFile {
                path: location.path.clone(),
                named_by: origin.to_string(),
            }),
        },
        _ => load_file(&location.path, env).map(Some),
    }
}
