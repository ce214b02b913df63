//! The typed view of the `gateway.*` keys clawgate implements, and the walk that builds it
//! from the JSON tree with error messages that name the dotted key.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde_json::{Map, Value};

use crate::error::{ConfigError, InvalidValue};
use crate::modes::{
    AuthMode, BindMode, GatewayMode, RemoteTransport, SshHostKeyPolicy, TailscaleMode,
};
use crate::paths::expand_tilde;
use crate::secret::Secret;

/// The `gateway.*` settings clawgate implements, as written in the config file (after
/// `${VAR}` substitution and SecretRef resolution). `None` / empty means "not set": the
/// defaults are applied by [`resolve_gateway_settings`](crate::resolve_gateway_settings).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GatewayConfig {
    /// `gateway.port` (1–65535).
    pub port: Option<u16>,
    /// `gateway.mode`.
    pub mode: Option<GatewayMode>,
    /// `gateway.bind`.
    pub bind: Option<BindMode>,
    /// `gateway.customBindHost` (checked to be an IPv4 address only when `bind` is
    /// `custom`, like OpenClaw).
    pub custom_bind_host: Option<String>,
    /// `gateway.auth.*`.
    pub auth: AuthConfig,
    /// `gateway.remote.*`: where the operator CLI connects in remote mode. Never used for
    /// the local gateway's own auth.
    pub remote: RemoteConfig,
    /// `gateway.trustedProxies[]`: IPs or CIDRs (validated).
    pub trusted_proxies: Vec<String>,
    /// `gateway.nodes.pairing.autoApproveLocal`.
    pub auto_approve_local: Option<bool>,
    /// `gateway.nodes.pairing.autoApproveCidrs[]`: IPs or CIDRs (validated) whose fresh,
    /// scopeless node devices pair without asking.
    pub node_auto_approve_cidrs: Vec<String>,
    /// `gateway.nodes.pairing.sshVerify`.
    pub node_ssh_verify: SshVerifyConfig,
    /// `gateway.nodes.commands.allow[]`.
    pub node_commands_allow: Vec<String>,
    /// `gateway.nodes.commands.deny[]`.
    pub node_commands_deny: Vec<String>,
    /// `gateway.tls.*`.
    pub tls: TlsConfig,
    /// `gateway.tailscale.mode`.
    pub tailscale_mode: Option<TailscaleMode>,
    /// `gateway.allowRealIpFallback`.
    pub allow_real_ip_fallback: Option<bool>,
    /// `gateway.controlUi.*`.
    pub control_ui: ControlUiConfig,
    /// The strings of `gateway.tools.allow[]`, other entries skipped. clawgate serves no
    /// HTTP tools; `security audit` reads the list to judge the config as OpenClaw would.
    pub tools_allow: Vec<String>,
}

/// `gateway.auth.*`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuthConfig {
    pub mode: Option<AuthMode>,
    pub token: Option<Secret>,
    pub password: Option<Secret>,
    /// `gateway.auth.rateLimit`, when the object is present (possibly empty).
    pub rate_limit: Option<RateLimitConfig>,
    /// `gateway.auth.allowTailscale`.
    pub allow_tailscale: Option<bool>,
    /// `gateway.auth.identityScopes`: a verified login and the operator scopes it gets, in
    /// the file's order.
    pub identity_scopes: Vec<(String, Vec<String>)>,
    /// `gateway.auth.trustedProxy`, when present.
    pub trusted_proxy: Option<TrustedProxyConfig>,
}

/// `gateway.auth.rateLimit.*`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateLimitConfig {
    pub max_attempts: Option<u32>,
    pub window_ms: Option<u64>,
    pub lockout_ms: Option<u64>,
    pub exempt_loopback: Option<bool>,
}

/// `gateway.auth.trustedProxy.*`, as written (the gateway trims and lowercases header names
/// when it starts).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxyConfig {
    pub user_header: Option<String>,
    pub required_headers: Vec<String>,
    pub allow_users: Vec<String>,
    pub allow_loopback: Option<bool>,
    /// `deviceAutoApprove.enabled` is `true`. clawgate does not implement it; `security
    /// audit` reads it to judge the config as OpenClaw would.
    pub device_auto_approve: bool,
    /// The strings of `deviceAutoApprove.scopes` (same reader).
    pub device_auto_approve_scopes: Vec<String>,
}

/// `gateway.controlUi.*`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ControlUiConfig {
    /// `enabled`: `false` turns the browser UI off (it is on by default).
    pub enabled: Option<bool>,
    /// `basePath`, normalized: `""` for the root, else `/a/b` (leading slash, no trailing
    /// one). See [`normalize_base_path`].
    pub base_path: String,
    /// `allowedOrigins[]`, as written.
    pub allowed_origins: Vec<String>,
    /// `dangerouslyAllowHostHeaderOriginFallback`.
    pub host_header_origin_fallback: Option<bool>,
}

impl ControlUiConfig {
    /// Whether the gateway serves its browser UI (`enabled` is not `false`).
    pub fn serves_ui(&self) -> bool {
        self.enabled != Some(false)
    }

    /// The non-blank origins, trimmed (OpenClaw's `normalizeStringEntries`).
    pub fn origins(&self) -> impl Iterator<Item = &str> {
        self.allowed_origins
            .iter()
            .map(|o| o.trim())
            .filter(|o| !o.is_empty())
    }
}

/// OpenClaw's `normalizeControlUiBasePath`: trimmed, a leading `/` added, trailing ones
/// removed, `/` alone meaning the root (`""`). Refused: query or fragment characters,
/// whitespace inside, backslashes and `.`/`..` segments, which a browser would resolve
/// elsewhere.
fn normalize_base_path(raw: &str) -> Result<String, &'static str> {
    let trimmed = raw.trim().trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    if trimmed
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#' | '\\' | '%'))
    {
        return Err("must be a URL path without spaces, '?', '#', '%' or backslashes");
    }
    let path = if trimmed.starts_with('/') {
        trimmed.to_owned()
    } else {
        format!("/{trimmed}")
    };
    if path
        .split('/')
        .skip(1)
        .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        return Err("must not have empty, '.' or '..' segments");
    }
    Ok(path)
}

/// `gateway.remote.*`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RemoteConfig {
    pub url: Option<String>,
    pub token: Option<Secret>,
    pub password: Option<Secret>,
    /// The certificate pin, normalized to 64 lowercase hex digits (input may be
    /// colon-separated and/or carry a `sha256:` prefix, any case). An array in the config
    /// (a pin set, e.g. old and new certificate during a rotation) is kept as its pins
    /// joined by commas, the form `--tls-fingerprint` and the client's TLS options take.
    pub tls_fingerprint: Option<String>,
    pub transport: Option<RemoteTransport>,
    /// `user@host` or `user@host:port`.
    pub ssh_target: Option<String>,
    /// Passed to `ssh -i`; a leading `~` is expanded.
    pub ssh_identity: Option<PathBuf>,
    pub remote_port: Option<u16>,
    /// `strict` (default) or `openssh`.
    pub ssh_host_key_policy: Option<SshHostKeyPolicy>,
}

/// `gateway.tls.*`. Paths have a leading `~` expanded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    pub enabled: Option<bool>,
    pub auto_generate: Option<bool>,
    pub cert_path: Option<PathBuf>,
    pub key_path: Option<PathBuf>,
    pub ca_path: Option<PathBuf>,
}

/// `gateway.nodes.pairing.sshVerify`: `false`, `true` or `{user, identity, timeoutMs, cidrs}`.
/// Absent means on with every default, as in OpenClaw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshVerifyConfig {
    /// `false` turns it off; `true` and the object form leave it on.
    pub enabled: bool,
    /// The remote user (default: the gateway process's user).
    pub user: Option<String>,
    /// The SSH identity file passed to `ssh -i` (default: ssh's own choice).
    pub identity: Option<String>,
    /// The probe's time limit (default 7000).
    pub timeout_ms: Option<u64>,
    /// IPs or CIDRs (validated) that may be probed (default: private and CGNAT ranges).
    pub cidrs: Vec<String>,
}

impl Default for SshVerifyConfig {
    fn default() -> Self {
        SshVerifyConfig {
            enabled: true,
            user: None,
            identity: None,
            timeout_ms: None,
            cidrs: Vec::new(),
        }
    }
}

/// Reads typed values out of the JSON tree; every error names the dotted key.
pub(crate) struct Reader<'a> {
    pub file: &'a Path,
    /// Config path → variable, for `${VAR}` references whose variable was missing.
    pub missing: &'a HashMap<String, String>,
    /// Config paths of strings that contained a replaced `${VAR}`: there a number or
    /// boolean may arrive as text (`port: "${GATEWAY_PORT}"`) and is accepted as such.
    pub substituted: &'a HashSet<String>,
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

/// How a value looks in a message: JSON text for scalars, a type name for containers.
pub(crate) fn shown(v: &Value) -> String {
    match v {
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
        other => other.to_string(),
    }
}

/// Like [`shown`] but never prints the value: for secret-bearing keys.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Reader<'_> {
    pub(crate) fn invalid(&self, key: &str, message: String) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_owned(),
            key: key.to_owned(),
            message,
        }
    }

    fn check_missing(&self, key: &str) -> Result<(), ConfigError> {
        match self.missing.get(key) {
            Some(var) => Err(ConfigError::MissingEnvVar {
                file: self.file.to_owned(),
                var: var.clone(),
                key: key.to_owned(),
            }),
            None => Ok(()),
        }
    }

    /// The object at `key`, or an empty one when absent/null.
    pub(crate) fn object<'v>(
        &self,
        parent: &'v Map<String, Value>,
        name: &str,
        key: &str,
    ) -> Result<Option<&'v Map<String, Value>>, ConfigError> {
        match parent.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(o)) => Ok(Some(o)),
            Some(other) => Err(self.invalid(
                key,
                format!("{key} must be an object (got {})", shown(other)),
            )),
        }
    }

    pub(crate) fn string(
        &self,
        parent: &Map<String, Value>,
        name: &str,
        key: &str,
    ) -> Result<Option<String>, ConfigError> {
        match parent.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => {
                self.check_missing(key)?;
                Ok(Some(s.clone()))
            }
            Some(other) => Err(self.invalid(
                key,
                format!("{key} must be a string (got {})", shown(other)),
            )),
        }
    }

    pub(crate) fn path(
        &self,
        parent: &Map<String, Value>,
        name: &str,
        key: &str,
    ) -> Result<Option<PathBuf>, ConfigError> {
        Ok(self
            .string(parent, name, key)?
            .map(|s| expand_tilde(&s, self.env)))
    }

    pub(crate) fn bool(
        &self,
        parent: &Map<String, Value>,
        name: &str,
        key: &str,
    ) -> Result<Option<bool>, ConfigError> {
        match parent.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s))
                if self.substituted.contains(key) && (s == "true" || s == "false") =>
            {
                Ok(Some(s == "true"))
            }
            Some(other) => {
                if other.is_string() {
                    self.check_missing(key)?;
                }
                Err(self.invalid(
                    key,
                    format!("{key} must be true or false (got {})", shown(other)),
                ))
            }
        }
    }

    /// An integer in `min..=max`.
    pub(crate) fn int(
        &self,
        parent: &Map<String, Value>,
        name: &str,
        key: &str,
        min: u64,
        max: u64,
    ) -> Result<Option<u64>, ConfigError> {
        match parent.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => {
                if v.is_string() {
                    self.check_missing(key)?;
                }
                let n = match v {
                    Value::String(s) if self.substituted.contains(key) => {
                        s.trim().parse::<u64>().ok()
                    }
                    other => other.as_u64(),
                };
                match n {
                    Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
                    _ => {
                        let range = if max == u64::MAX {
                            format!("of at least {min}")
                        } else {
                            format!("between {min} and {max}")
                        };
                        Err(self.invalid(
                            key,
                            format!("{key} must be an integer {range} (got {})", shown(v)),
                        ))
                    }
                }
            }
        }
    }

    fn port(
        &self,
        parent: &Map<String, Value>,
        name: &str,
        key: &str,
    ) -> Result<Option<u16>, ConfigError> {
        Ok(self
            .int(parent, name, key, 1, u64::from(u16::MAX))?
            .and_then(|n| u16::try_from(n).ok()))
    }

    pub(crate) fn enumeration<T: FromStr<Err = InvalidValue>>(
        &self,
        parent: &Map<String, Value>,
        name: &str,
        key: &str,
        allowed: &'static [&'static str],
    ) -> Result<Option<T>, ConfigError> {
        match parent.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => {
                self.check_missing(key)?;
                s.parse::<T>()
                    .map(Some)
                    .map_err(|e| self.invalid(key, format!("{key} {e}")))
            }
            Some(other) => Err(self.invalid(
                key,
                format!(
                    "{key} must be one of {} (got {})",
                    allowed.join(", "),
                    shown(other)
                ),
            )),
        }
    }

    pub(crate) fn string_list(
        &self,
        parent: &Map<String, Value>,
        name: &str,
        key: &str,
    ) -> Result<Vec<String>, ConfigError> {
        match parent.get(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let item_key = format!("{key}[{i}]");
                    match item {
                        Value::String(s) => {
                            self.check_missing(&item_key)?;
                            Ok(s.clone())
                        }
                        other => Err(self.invalid(
                            &item_key,
                            format!("{item_key} must be a string (got {})", shown(other)),
                        )),
                    }
                })
                .collect(),
            Some(other) => Err(self.invalid(
                key,
                format!("{key} must be an array of strings (got {})", shown(other)),
            )),
        }
    }

    /// A secret: a string, or a SecretRef object `{source, provider, id}`. Only
    /// `source: "env"` is resolved (from the variable named by `id`).
    pub(crate) fn secret(
        &self,
        parent: &Map<String, Value>,
        name: &str,
        key: &str,
    ) -> Result<Option<Secret>, ConfigError> {
        let shape_error = |got: &Value| {
            self.invalid(
                key,
                format!(
                    "{key} must be a string or a SecretRef object {{\"source\": \"env\", \"provider\": \"default\", \"id\": \"ENV_VAR_NAME\"}} (got {})",
                    type_name(got)
                ),
            )
        };
        match parent.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => {
                self.check_missing(key)?;
                Ok(Some(Secret::new(s.clone())))
            }
            Some(v @ Value::Object(obj)) => {
                let Some(SecretRef { source, id }) = parse_secret_ref(obj) else {
                    return Err(shape_error(v));
                };
                if source != "env" {
                    return Err(self.invalid(
                        key,
                        format!(
                            "{key} is a SecretRef with source \"{source}\", which clawgate does not support yet; use {{\"source\": \"env\", \"provider\": \"default\", \"id\": \"ENV_VAR_NAME\"}} or a \"${{ENV_VAR_NAME}}\" string instead"
                        ),
                    ));
                }
                match (self.env)(id).filter(|v| !v.is_empty()) {
                    Some(value) => Ok(Some(Secret::new(value))),
                    None => Err(self.invalid(
                        key,
                        format!(
                            "{key} is a SecretRef to environment variable {id}, which is not set (or empty); set {id} in the gateway's environment"
                        ),
                    )),
                }
            }
            Some(other) => Err(shape_error(other)),
        }
    }

    /// `gateway.nodes.pairing.sshVerify`: a boolean or an object of the four known keys.
    fn ssh_verify(&self, pairing: &Map<String, Value>) -> Result<SshVerifyConfig, ConfigError> {
        let key = "gateway.nodes.pairing.sshVerify";
        let obj = match pairing.get("sshVerify") {
            None | Some(Value::Null) => return Ok(SshVerifyConfig::default()),
            Some(Value::Bool(enabled)) => {
                return Ok(SshVerifyConfig {
                    enabled: *enabled,
                    ..SshVerifyConfig::default()
                });
            }
            Some(Value::Object(obj)) => obj,
            Some(other) => {
                return Err(self.invalid(
                    key,
                    format!(
                        "{key} must be true, false or an object {{user, identity, timeoutMs, cidrs}} (got {})",
                        shown(other)
                    ),
                ));
            }
        };
        const KNOWN: [&str; 4] = ["user", "identity", "timeoutMs", "cidrs"];
        if let Some(unknown) = obj.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(self.invalid(
                key,
                format!(
                    "{key} has an unknown key {:?}; the keys are {}",
                    unknown,
                    KNOWN.join(", ")
                ),
            ));
        }
        let trimmed = |s: Option<String>| s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        Ok(SshVerifyConfig {
            enabled: true,
            user: trimmed(self.string(obj, "user", &format!("{key}.user"))?),
            identity: trimmed(self.string(obj, "identity", &format!("{key}.identity"))?),
            timeout_ms: self.int(obj, "timeoutMs", &format!("{key}.timeoutMs"), 1, u64::MAX)?,
            cidrs: self.ip_or_cidr_list(obj, "cidrs", &format!("{key}.cidrs"))?,
        })
    }

    /// A list of IP addresses or CIDRs, each checked.
    fn ip_or_cidr_list(
        &self,
        obj: &Map<String, Value>,
        name: &str,
        key: &str,
    ) -> Result<Vec<String>, ConfigError> {
        let list = self.string_list(obj, name, key)?;
        for (i, entry) in list.iter().enumerate() {
            if !is_ip_or_cidr(entry) {
                let item_key = format!("{key}[{i}]");
                return Err(self.invalid(
                    &item_key,
                    format!(
                        "{item_key} must be an IP address or CIDR such as \"10.0.0.1\" or \"10.0.0.0/8\" (got {})",
                        Value::String(entry.clone())
                    ),
                ));
            }
        }
        Ok(list)
    }

    /// `gateway.auth.identityScopes`: an object mapping a non-empty login to an array of
    /// known operator scopes (OpenClaw's schema).
    fn identity_scopes(
        &self,
        auth: &Map<String, Value>,
    ) -> Result<Vec<(String, Vec<String>)>, ConfigError> {
        let key = "gateway.auth.identityScopes";
        let map = match auth.get("identityScopes") {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Object(m)) => m,
            Some(_) => {
                return Err(self.invalid(key, format!(
                    "{key} must be an object mapping a login to its scopes, e.g. {{\"alice@example.com\": [\"operator.admin\"]}}"
                )));
            }
        };
        let known = clawgate_protocol::scopes::ALL;
        map.iter()
            .map(|(login, scopes)| {
                if login.is_empty() {
                    return Err(self.invalid(key, format!("{key}: a login must not be empty")));
                }
                let at = format!("{key}.{login}");
                let items = scopes.as_array().ok_or_else(|| {
                    self.invalid(&at, format!("{at} must be an array of operator scopes"))
                })?;
                let scopes = items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| match v.as_str() {
                        Some(s) if known.contains(&s) => Ok(s.to_owned()),
                        _ => Err(self.invalid(
                            &format!("{at}[{i}]"),
                            format!("{at}[{i}] must be one of {} (got {v})", known.join(", ")),
                        )),
                    })
                    .collect::<Result<_, _>>()?;
                Ok((login.clone(), scopes))
            })
            .collect()
    }

    /// `gateway.auth.trustedProxy`: the keys clawgate implements checked, `deviceAutoApprove`
    /// read as OpenClaw's audit reads it.
    fn trusted_proxy(&self, tp: &Map<String, Value>) -> Result<TrustedProxyConfig, ConfigError> {
        let k = "gateway.auth.trustedProxy";
        let auto_approve = tp.get("deviceAutoApprove");
        Ok(TrustedProxyConfig {
            user_header: self.string(tp, "userHeader", &format!("{k}.userHeader"))?,
            required_headers: self.string_list(
                tp,
                "requiredHeaders",
                &format!("{k}.requiredHeaders"),
            )?,
            allow_users: self.string_list(tp, "allowUsers", &format!("{k}.allowUsers"))?,
            allow_loopback: self.bool(tp, "allowLoopback", &format!("{k}.allowLoopback"))?,
            device_auto_approve: auto_approve.and_then(|a| a.get("enabled"))
                == Some(&Value::Bool(true)),
            device_auto_approve_scopes: auto_approve
                .and_then(|a| a.get("scopes"))
                .map(strings_of)
                .unwrap_or_default(),
        })
    }
}

/// The parts of a SecretRef we use. `None` when `obj` is not a SecretRef.
pub(crate) struct SecretRef<'a> {
    pub source: &'a str,
    pub id: &'a str,
}

/// A SecretRef is an object with string `source` and `id` (and optionally `provider`) and
/// no other keys.
pub(crate) fn parse_secret_ref(obj: &Map<String, Value>) -> Option<SecretRef<'_>> {
    let source = obj.get("source")?.as_str()?;
    let id = obj.get("id")?.as_str()?;
    let only_ref_keys = obj
        .iter()
        .all(|(k, v)| matches!(k.as_str(), "source" | "id") || (k == "provider" && v.is_string()));
    only_ref_keys.then_some(SecretRef { source, id })
}

fn is_ip_or_cidr(s: &str) -> bool {
    match s.split_once('/') {
        None => s.parse::<IpAddr>().is_ok(),
        Some((ip, bits)) => match (ip.parse::<IpAddr>(), bits.parse::<u8>()) {
            (Ok(IpAddr::V4(_)), Ok(b)) => b <= 32,
            (Ok(IpAddr::V6(_)), Ok(b)) => b <= 128,
            _ => false,
        },
    }
}

/// `gateway.remote.tlsFingerprint`: one fingerprint (OpenClaw's form) or an array of them
/// (a pin set), normalized and joined by commas.
fn tls_pins(r: &Reader, remote: &Map<String, Value>) -> Result<Option<String>, ConfigError> {
    const KEY: &str = "gateway.remote.tlsFingerprint";
    let entries: Vec<(String, String)> = match remote.get("tlsFingerprint") {
        Some(Value::Array(_)) => {
            let list = r.string_list(remote, "tlsFingerprint", KEY)?;
            if list.is_empty() {
                return Err(r.invalid(
                    KEY,
                    format!("{KEY} must hold at least one SHA-256 fingerprint (got [])"),
                ));
            }
            list.into_iter()
                .enumerate()
                .map(|(i, fp)| (format!("{KEY}[{i}]"), fp))
                .collect()
        }
        _ => match r.string(remote, "tlsFingerprint", KEY)? {
            Some(fp) => vec![(KEY.to_owned(), fp)],
            None => return Ok(None),
        },
    };
    let mut pins: Vec<String> = Vec::new();
    for (key, fp) in entries {
        let pin = normalize_fingerprint(&fp).ok_or_else(|| {
            let several = if fp.contains(',') {
                "; several pins go in an array, e.g. [\"sha256:<old>\", \"sha256:<new>\"]"
            } else {
                ""
            };
            r.invalid(
                &key,
                format!(
                    "{key} must be a SHA-256 fingerprint: 64 hex digits, optionally colon-separated and prefixed with \"sha256:\" (got {}){several}",
                    Value::String(fp.clone())
                ),
            )
        })?;
        if !pins.contains(&pin) {
            pins.push(pin);
        }
    }
    Ok(Some(pins.join(",")))
}

/// Normalizes a SHA-256 certificate fingerprint the way OpenClaw accepts it: 64 hex digits
/// or 32 colon-separated hex bytes, optional `sha256:` prefix, any case → 64 lowercase hex
/// digits.
pub(crate) fn normalize_fingerprint(input: &str) -> Option<String> {
    let s = input.trim();
    let s = if s.len() >= 7 && s[..7].eq_ignore_ascii_case("sha256:") {
        &s[7..]
    } else {
        s
    };
    let hex: String = if s.contains(':') {
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 32 || parts.iter().any(|p| p.len() != 2) {
            return None;
        }
        parts.concat()
    } else {
        s.to_owned()
    };
    (hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| hex.to_ascii_lowercase())
}

/// Builds the typed view from the (substituted) `gateway` object.
pub(crate) fn read_gateway(
    r: &Reader<'_>,
    gw: &Map<String, Value>,
) -> Result<GatewayConfig, ConfigError> {
    let mut cfg = GatewayConfig {
        port: r.port(gw, "port", "gateway.port")?,
        mode: r.enumeration(gw, "mode", "gateway.mode", GatewayMode::ALLOWED)?,
        bind: r.enumeration(gw, "bind", "gateway.bind", BindMode::ALLOWED)?,
        custom_bind_host: r.string(gw, "customBindHost", "gateway.customBindHost")?,
        trusted_proxies: r.ip_or_cidr_list(gw, "trustedProxies", "gateway.trustedProxies")?,
        ..GatewayConfig::default()
    };

    if let Some(auth) = r.object(gw, "auth", "gateway.auth")? {
        cfg.auth.mode = r.enumeration(auth, "mode", "gateway.auth.mode", AuthMode::ALLOWED)?;
        cfg.auth.token = r.secret(auth, "token", "gateway.auth.token")?;
        cfg.auth.password = r.secret(auth, "password", "gateway.auth.password")?;
        if let Some(rl) = r.object(auth, "rateLimit", "gateway.auth.rateLimit")? {
            let k = "gateway.auth.rateLimit";
            cfg.auth.rate_limit = Some(RateLimitConfig {
                max_attempts: r
                    .int(
                        rl,
                        "maxAttempts",
                        &format!("{k}.maxAttempts"),
                        1,
                        u64::from(u32::MAX),
                    )?
                    .and_then(|n| u32::try_from(n).ok()),
                window_ms: r.int(rl, "windowMs", &format!("{k}.windowMs"), 1, u64::MAX)?,
                lockout_ms: r.int(rl, "lockoutMs", &format!("{k}.lockoutMs"), 0, u64::MAX)?,
                exempt_loopback: r.bool(rl, "exemptLoopback", &format!("{k}.exemptLoopback"))?,
            });
        }
        cfg.auth.allow_tailscale = r.bool(auth, "allowTailscale", "gateway.auth.allowTailscale")?;
        cfg.auth.identity_scopes = r.identity_scopes(auth)?;
        if let Some(tp) = r.object(auth, "trustedProxy", "gateway.auth.trustedProxy")? {
            cfg.auth.trusted_proxy = Some(r.trusted_proxy(tp)?);
        }
    }

    if let Some(remote) = r.object(gw, "remote", "gateway.remote")? {
        let rc = &mut cfg.remote;
        rc.url = r.string(remote, "url", "gateway.remote.url")?;
        rc.token = r.secret(remote, "token", "gateway.remote.token")?;
        rc.password = r.secret(remote, "password", "gateway.remote.password")?;
        rc.transport = r.enumeration(
            remote,
            "transport",
            "gateway.remote.transport",
            RemoteTransport::ALLOWED,
        )?;
        rc.ssh_target = r.string(remote, "sshTarget", "gateway.remote.sshTarget")?;
        rc.ssh_identity = r.path(remote, "sshIdentity", "gateway.remote.sshIdentity")?;
        rc.remote_port = r.port(remote, "remotePort", "gateway.remote.remotePort")?;
        rc.ssh_host_key_policy = r.enumeration(
            remote,
            "sshHostKeyPolicy",
            "gateway.remote.sshHostKeyPolicy",
            SshHostKeyPolicy::ALLOWED,
        )?;
        rc.tls_fingerprint = tls_pins(r, remote)?;
    }

    if let Some(nodes) = r.object(gw, "nodes", "gateway.nodes")? {
        if let Some(pairing) = r.object(nodes, "pairing", "gateway.nodes.pairing")? {
            cfg.auto_approve_local = r.bool(
                pairing,
                "autoApproveLocal",
                "gateway.nodes.pairing.autoApproveLocal",
            )?;
            cfg.node_auto_approve_cidrs = r.ip_or_cidr_list(
                pairing,
                "autoApproveCidrs",
                "gateway.nodes.pairing.autoApproveCidrs",
            )?;
            cfg.node_ssh_verify = r.ssh_verify(pairing)?;
        }
        if let Some(commands) = r.object(nodes, "commands", "gateway.nodes.commands")? {
            cfg.node_commands_allow =
                r.string_list(commands, "allow", "gateway.nodes.commands.allow")?;
            cfg.node_commands_deny =
                r.string_list(commands, "deny", "gateway.nodes.commands.deny")?;
        }
    }

    if let Some(tls) = r.object(gw, "tls", "gateway.tls")? {
        cfg.tls = TlsConfig {
            enabled: r.bool(tls, "enabled", "gateway.tls.enabled")?,
            auto_generate: r.bool(tls, "autoGenerate", "gateway.tls.autoGenerate")?,
            cert_path: r.path(tls, "certPath", "gateway.tls.certPath")?,
            key_path: r.path(tls, "keyPath", "gateway.tls.keyPath")?,
            ca_path: r.path(tls, "caPath", "gateway.tls.caPath")?,
        };
    }

    if let Some(ts) = r.object(gw, "tailscale", "gateway.tailscale")? {
        cfg.tailscale_mode =
            r.enumeration(ts, "mode", "gateway.tailscale.mode", TailscaleMode::ALLOWED)?;
    }

    cfg.allow_real_ip_fallback =
        r.bool(gw, "allowRealIpFallback", "gateway.allowRealIpFallback")?;
    if let Some(ui) = r.object(gw, "controlUi", "gateway.controlUi")? {
        cfg.control_ui = ControlUiConfig {
            enabled: r.bool(ui, "enabled", "gateway.controlUi.enabled")?,
            base_path: match r.string(ui, "basePath", "gateway.controlUi.basePath")? {
                Some(raw) => normalize_base_path(&raw).map_err(|reason| {
                    r.invalid(
                        "gateway.controlUi.basePath",
                        format!("gateway.controlUi.basePath {reason} (got {raw:?}; e.g. \"/openclaw\", or \"/\" for the root)"),
                    )
                })?,
                None => String::new(),
            },
            allowed_origins: r.string_list(
                ui,
                "allowedOrigins",
                "gateway.controlUi.allowedOrigins",
            )?,
            host_header_origin_fallback: r.bool(
                ui,
                "dangerouslyAllowHostHeaderOriginFallback",
                "gateway.controlUi.dangerouslyAllowHostHeaderOriginFallback",
            )?,
        };
    }
    cfg.tools_allow = gw
        .get("tools")
        .and_then(|t| t.get("allow"))
        .map(strings_of)
        .unwrap_or_default();

    Ok(cfg)
}

/// The strings of an array, other entries skipped; nothing for anything but an array. For
/// keys clawgate does not implement and reads only to judge a config as OpenClaw would.
pub(crate) fn strings_of(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints() {
        let hex = "AB".repeat(32);
        let want = Some("ab".repeat(32));
        assert_eq!(normalize_fingerprint(&hex), want);
        assert_eq!(normalize_fingerprint(&format!("sha256:{hex}")), want);
        assert_eq!(normalize_fingerprint(&format!("SHA256:{hex}")), want);
        let colon = vec!["aB"; 32].join(":");
        assert_eq!(normalize_fingerprint(&colon), want);
        assert_eq!(normalize_fingerprint("abc"), None);
        assert_eq!(normalize_fingerprint(&"zz".repeat(32)), None);
    }

    #[test]
    fn tls_fingerprint_is_one_pin_or_a_pin_set() {
        let parse = |text: &str| {
            crate::LoadedConfig::from_json5(
                std::path::Path::new("/c/openclaw.json"),
                text,
                &|_: &str| None,
            )
            .map(|l| l.gateway.remote.tls_fingerprint)
            .map_err(|e| e.to_string())
        };
        let (a, b) = ("ab".repeat(32), "cd".repeat(32));
        let colons = vec!["CD"; 32].join(":");
        assert_eq!(
            parse(&format!(
                "{{gateway: {{remote: {{tlsFingerprint: 'sha256:{a}'}}}}}}"
            )),
            Ok(Some(a.clone()))
        );
        assert_eq!(
            parse(&format!(
                "{{gateway: {{remote: {{tlsFingerprint: ['{a}', 'SHA256:{colons}', '{a}']}}}}}}"
            )),
            Ok(Some(format!("{a},{b}")))
        );
        let err = parse(&format!(
            "{{gateway: {{remote: {{tlsFingerprint: ['{a}', 'nope']}}}}}}"
        ))
        .unwrap_err();
        assert!(
            err.contains("gateway.remote.tlsFingerprint[1] must be a SHA-256 fingerprint")
                && err.contains("(got \"nope\")"),
            "{err}"
        );
        let err = parse("{gateway: {remote: {tlsFingerprint: []}}}").unwrap_err();
        assert!(err.contains("at least one SHA-256 fingerprint"), "{err}");
        let err = parse("{gateway: {remote: {tlsFingerprint: [5]}}}").unwrap_err();
        assert!(err.contains("tlsFingerprint[0] must be a string"), "{err}");
        let err = parse(&format!(
            "{{gateway: {{remote: {{tlsFingerprint: '{a},{b}'}}}}}}"
        ))
        .unwrap_err();
        assert!(err.contains("several pins go in an array"), "{err}");
    }

    fn gateway(config: serde_json::Value) -> Result<GatewayConfig, String> {
        crate::LoadedConfig::from_value(Path::new("/c/openclaw.json"), config, &|_: &str| None)
            .map(|l| l.gateway)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn exposure_keys_are_typed() {
        use serde_json::json;
        let gw = gateway(json!({"gateway": {
            "allowRealIpFallback": true, "tools": {"allow": ["exec", 3]},
            "controlUi": {"enabled": false, "basePath": " ui/ ", "allowedOrigins": [" * ", ""],
                "dangerouslyAllowHostHeaderOriginFallback": true},
            "auth": {"allowTailscale": false, "rateLimit": {},
                "identityScopes": {"alice@example.com": ["operator.admin"]},
                "trustedProxy": {"userHeader": "X-User", "allowUsers": ["a"],
                    "deviceAutoApprove": {"enabled": true, "scopes": ["operator.admin", 1]}}}}}))
        .unwrap();
        assert_eq!(gw.allow_real_ip_fallback, Some(true));
        assert_eq!(gw.tools_allow, ["exec"]);
        assert_eq!(gw.control_ui.enabled, Some(false));
        assert_eq!(gw.control_ui.base_path, "/ui");
        assert_eq!(gw.control_ui.origins().collect::<Vec<_>>(), ["*"]);
        assert_eq!(gw.control_ui.host_header_origin_fallback, Some(true));
        assert_eq!(gw.auth.allow_tailscale, Some(false));
        assert_eq!(gw.auth.rate_limit, Some(RateLimitConfig::default()));
        assert_eq!(
            gw.auth.identity_scopes,
            [(
                "alice@example.com".to_owned(),
                vec!["operator.admin".to_owned()]
            )]
        );
        let tp = gw.auth.trusted_proxy.unwrap();
        assert_eq!(tp.user_header.as_deref(), Some("X-User"));
        assert_eq!(tp.allow_users, ["a"]);
        assert!(tp.device_auto_approve);
        assert_eq!(tp.device_auto_approve_scopes, ["operator.admin"]);
        assert_eq!(gateway(json!({})).unwrap().auth.rate_limit, None);

        for (config, says) in [
            (
                json!({"auth": {"identityScopes": {"a": ["operator.root"]}}}),
                "gateway.auth.identityScopes.a[0] must be one of operator.admin",
            ),
            (
                json!({"auth": {"identityScopes": {"": []}}}),
                "gateway.auth.identityScopes: a login must not be empty",
            ),
            (
                json!({"auth": {"identityScopes": {"a": "operator.admin"}}}),
                "gateway.auth.identityScopes.a must be an array of operator scopes",
            ),
            (
                json!({"auth": {"identityScopes": []}}),
                "gateway.auth.identityScopes must be an object mapping a login",
            ),
            (
                json!({"auth": {"trustedProxy": {"allowUsers": "a"}}}),
                "gateway.auth.trustedProxy.allowUsers must be an array of strings",
            ),
            (
                json!({"controlUi": {"allowedOrigins": [5]}}),
                "gateway.controlUi.allowedOrigins[0] must be a string",
            ),
            (
                json!({"auth": {"allowTailscale": "yes"}}),
                "gateway.auth.allowTailscale must be true or false",
            ),
            (
                json!({"controlUi": {"enabled": "no"}}),
                "gateway.controlUi.enabled must be true or false",
            ),
            (
                json!({"controlUi": {"basePath": "/a/../b"}}),
                "gateway.controlUi.basePath must not have empty, '.' or '..' segments",
            ),
            (
                json!({"controlUi": {"basePath": "/ui?x=1"}}),
                "gateway.controlUi.basePath must be a URL path without spaces",
            ),
        ] {
            let err = gateway(json!({ "gateway": config })).unwrap_err();
            assert!(err.contains(says), "{err}");
        }
    }

    #[test]
    fn control_ui_base_path_is_normalized() {
        for (raw, want) in [
            ("/", ""),
            ("", ""),
            ("openclaw", "/openclaw"),
            ("/openclaw/", "/openclaw"),
            (" /a/b ", "/a/b"),
        ] {
            assert_eq!(normalize_base_path(raw).as_deref(), Ok(want), "{raw:?}");
        }
        assert!(normalize_base_path("/a//b").is_err());
        assert!(normalize_base_path("/a b").is_err());
        assert_eq!(ControlUiConfig::default().base_path, "");
        assert!(ControlUiConfig::default().serves_ui());
    }

    #[test]
    fn proxies() {
        assert!(is_ip_or_cidr("10.0.0.1"));
        assert!(is_ip_or_cidr("10.0.0.0/8"));
        assert!(is_ip_or_cidr("::1"));
        assert!(is_ip_or_cidr("fd00::/8"));
        assert!(!is_ip_or_cidr("10.0.0.0/33"));
        assert!(!is_ip_or_cidr("proxy.local"));
    }
}
