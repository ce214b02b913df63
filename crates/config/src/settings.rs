//! The gateway's effective run settings: command-line flags, environment, config file and
//! defaults combined, in that order of precedence.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use crate::error::ConfigError;
use crate::gateway_config::{GatewayConfig, SshVerifyConfig};
use crate::load::LoadedConfig;
use crate::modes::{AuthMode, BindMode, GatewayMode, TailscaleMode};
use crate::paths::{env_with_fallback, locate_config, resolve_state_dir};
use crate::profile::env_profile_port;
use crate::secret::{REDACTED, Secret};

/// OpenClaw's default gateway port.
pub const DEFAULT_PORT: u16 = 18789;

/// The `clawgate gateway` flags that feed [`resolve_gateway_settings`]. `None` = flag not
/// given.
#[derive(Debug, Clone, Default)]
pub struct GatewayRunInputs {
    /// `--port`.
    pub port: Option<u16>,
    /// `--bind`.
    pub bind: Option<BindMode>,
    /// `--auth`.
    pub auth_mode: Option<AuthMode>,
    /// `--token`.
    pub token: Option<Secret>,
    /// `--password`.
    pub password: Option<Secret>,
    /// `--config`.
    pub config_path: Option<PathBuf>,
    /// `--state-dir`.
    pub state_dir: Option<PathBuf>,
}

/// Where a secret in effect came from, for messages ("token from CLAWGATE_GATEWAY_TOKEN")
/// and for the startup refusal that needs to know whether a secret was *configured*.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A command-line flag (`--token` / `--password`).
    Flag,
    /// The named environment variable.
    Env(String),
    /// The named config key (also when it was a `${VAR}` string or a SecretRef).
    Config(String),
    /// No token is configured anywhere: the gateway generates one at startup.
    Generated,
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Flag => f.write_str("the command line"),
            SecretSource::Env(name) | SecretSource::Config(name) => f.write_str(name),
            SecretSource::Generated => f.write_str("generated at startup"),
        }
    }
}

/// `gateway.auth.rateLimit` with OpenClaw's defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitSettings {
    /// Failed attempts allowed per window before a lockout (default 10).
    pub max_attempts: u32,
    /// Counting window (default 60 000 ms).
    pub window_ms: u64,
    /// Lockout length (default 300 000 ms = 5 min).
    pub lockout_ms: u64,
    /// Loopback clients are never locked out, only slowed down (default true).
    pub exempt_loopback: bool,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        RateLimitSettings {
            max_attempts: 10,
            window_ms: 60_000,
            lockout_ms: 300_000,
            exempt_loopback: true,
        }
    }
}

/// Effective gateway auth.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthSettings {
    pub mode: AuthMode,
    /// `None` in token mode means "generate one at startup" (see
    /// [`GatewaySettings::source_of_token`]).
    pub token: Option<Secret>,
    pub password: Option<Secret>,
    pub rate_limit: RateLimitSettings,
}

/// `gateway.tls` when enabled, with default paths filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// Default `<state dir>/gateway/tls/gateway-cert.pem` (OpenClaw's location).
    pub cert_path: PathBuf,
    /// Default `<state dir>/gateway/tls/gateway-key.pem`.
    pub key_path: PathBuf,
    pub ca_path: Option<PathBuf>,
    /// Generate a self-signed pair when both files are missing (default true).
    pub auto_generate: bool,
}

/// Everything `clawgate gateway` needs to start, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewaySettings {
    pub port: u16,
    pub bind: BindMode,
    /// Set (and a valid IPv4 address) exactly when `bind` is `custom`.
    pub custom_bind_host: Option<Ipv4Addr>,
    pub auth: AuthSettings,
    pub state_dir: PathBuf,
    /// The config file in effect (it may not exist: zero-config start).
    pub config_path: PathBuf,
    /// `gateway.mode` as configured (`None` = unset). OpenClaw refuses to start the gateway
    /// when this is `remote`; that decision is the CLI's.
    pub gateway_mode: Option<GatewayMode>,
    /// `gateway.nodes.pairing.autoApproveLocal` (default true).
    pub auto_approve_local: bool,
    /// `gateway.nodes.pairing.autoApproveCidrs` (default none).
    pub node_auto_approve_cidrs: Vec<String>,
    /// `gateway.nodes.pairing.sshVerify` (default on).
    pub node_ssh_verify: SshVerifyConfig,
    pub trusted_proxies: Vec<String>,
    /// `gateway.nodes.commands.allow`.
    pub node_commands_allow: Vec<String>,
    /// `gateway.nodes.commands.deny`.
    pub node_commands_deny: Vec<String>,
    pub tls: Option<TlsSettings>,
    pub tailscale_mode: TailscaleMode,
    /// Where the token came from; `Some(Generated)` when the mode is token and no token is
    /// configured anywhere, `None` when no token is set and none is needed.
    pub source_of_token: Option<SecretSource>,
    /// Where the password came from, if one is set.
    pub source_of_password: Option<SecretSource>,
    /// Advice worth printing next to an auth refusal or a generated-token warning (e.g.
    /// that `gateway.remote.token` does not enable local auth).
    pub hints: Vec<String>,
}

/// Hint printed when only `gateway.remote.token` is set (OpenClaw's wording).
const REMOTE_TOKEN_HINT: &str =
    "\"gateway.remote.token\" is for remote CLI calls; it does not enable local gateway auth.";
const REMOTE_PASSWORD_HINT: &str =
    "\"gateway.remote.password\" is for remote CLI calls; it does not enable local gateway auth.";

/// Parses a port from an env var: `N`, `host:N` or `[v6]:N` (OpenClaw accepts all three
/// in `OPENCLAW_GATEWAY_PORT`).
pub(crate) fn parse_env_port(value: &str) -> Option<u16> {
    let v = value.trim();
    let digits = match v.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && (!host.contains(':') || host.ends_with(']')) => {
            port
        }
        Some(_) => return None,
        None => v,
    };
    digits.parse::<u16>().ok().filter(|p| *p != 0)
}

/// `CLAWGATE_GATEWAY_PORT` / `OPENCLAW_GATEWAY_PORT`, validated.
pub(crate) fn env_port(env: &dyn Fn(&str) -> Option<String>) -> Result<Option<u16>, ConfigError> {
    match env_with_fallback(env, "GATEWAY_PORT") {
        None => Ok(None),
        Some((var, value)) => match parse_env_port(&value) {
            Some(port) => Ok(Some(port)),
            None => Err(ConfigError::Env {
                message: format!(
                    "{var} must be a port number between 1 and 65535, optionally as host:port (got {}); fix or unset {var}",
                    serde_json::Value::String(value.clone())
                ),
                var,
            }),
        },
    }
}

/// This machine's gateway port when no flag names one, OpenClaw's `resolveGatewayPort`:
/// `CLAWGATE_GATEWAY_PORT` / `OPENCLAW_GATEWAY_PORT` > `gateway.port` > the named
/// profile's port ([`crate::profile_port`]) > 18789.
pub(crate) fn local_port(
    config_port: Option<u16>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<u16, ConfigError> {
    Ok(env_port(env)?
        .or(config_port)
        .or_else(|| env_profile_port(env))
        .unwrap_or(DEFAULT_PORT))
}

/// First of flag > `CLAWGATE_<suffix>` > `OPENCLAW_<suffix>` > config.
pub(crate) fn pick_secret(
    flag: Option<&Secret>,
    env: &dyn Fn(&str) -> Option<String>,
    env_suffix: &str,
    config: Option<(&Secret, &str)>,
) -> Credential {
    if let Some(s) = flag {
        return Some((s.clone(), SecretSource::Flag));
    }
    if let Some((var, value)) = env_with_fallback(env, env_suffix) {
        return Some((Secret::new(value), SecretSource::Env(var)));
    }
    config.map(|(s, key)| (s.clone(), SecretSource::Config(key.to_owned())))
}

/// A secret with where it came from.
pub(crate) type Credential = Option<(Secret, SecretSource)>;

/// The local gateway's token and password: flag > env > `gateway.auth.*`, the one order the
/// gateway and the local CLI share, so both agree on the secret in effect.
pub(crate) fn local_secrets(
    token: Option<&Secret>,
    password: Option<&Secret>,
    cfg: &GatewayConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> (Credential, Credential) {
    let token = pick_secret(
        token,
        env,
        "GATEWAY_TOKEN",
        cfg.auth.token.as_ref().map(|s| (s, "gateway.auth.token")),
    );
    let password = pick_secret(
        password,
        env,
        "GATEWAY_PASSWORD",
        cfg.auth
            .password
            .as_ref()
            .map(|s| (s, "gateway.auth.password")),
    );
    (token, password)
}

/// How a secret's source is named in a message, e.g. `--token` or `gateway.auth.token`.
pub(crate) fn source_label(source: &SecretSource, flag: &str) -> String {
    match source {
        SecretSource::Flag => flag.to_owned(),
        other => other.to_string(),
    }
}

/// Rejects placeholder values that would otherwise become the gateway secret.
pub(crate) fn check_secret(kind: &str, secret: &Secret, label: &str) -> Result<(), ConfigError> {
    let v = secret.expose().trim();
    if v.is_empty() || v.eq_ignore_ascii_case("undefined") || v.eq_ignore_ascii_case("null") {
        let fix = if kind == "token" {
            "Set a real token there (for example 48 random hex characters), or remove it so the gateway generates one."
        } else {
            "Set a real password there."
        };
        return Err(ConfigError::Settings {
            message: format!(
                "Gateway {kind} must not be blank or the literal string undefined/null (from {label}). {fix}"
            ),
        });
    }
    if v == REDACTED {
        return Err(ConfigError::Settings {
            message: format!(
                "Gateway {kind} from {label} is the redaction marker {REDACTED}, not a real {kind}: `config get` hides secrets. Copy the real value from the config file or the environment instead."
            ),
        });
    }
    Ok(())
}

/// Resolves the gateway's run settings. Precedence for every setting: flag > env >
/// config > default. Pure: the environment comes from `env`.
///
/// Differences from OpenClaw, on purpose:
/// * env beats config for the token and password too (OpenClaw's server reads config
///   first), so one rule holds for every setting and the local CLI (which uses the same
///   order) always agrees with the gateway on the secret in effect;
/// * `gateway.remote.token` / `gateway.remote.password` never enable local auth (OpenClaw
///   falls back to them): they are the CLI's credentials for a remote gateway, and
///   conflating the two is a common source of confusion;
/// * both a token and a password with no explicit mode is an error whatever their
///   sources (OpenClaw only checks the config file), so an env var left over in a shell
///   cannot silently switch the mode;
/// * the default bind is always loopback (no container detection).
///
/// Token mode with no token anywhere is not an error: `auth.token` is `None` and
/// `source_of_token` is `Some(Generated)`; the gateway generates a runtime token.
pub fn resolve_gateway_settings(
    inputs: &GatewayRunInputs,
    loaded: Option<&LoadedConfig>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<GatewaySettings, ConfigError> {
    let default_cfg = GatewayConfig::default();
    let cfg = loaded.map_or(&default_cfg, |l| &l.gateway);

    // `--port 0` asks for any free port (the gateway prints the one it got): scripts and
    // tests use it to avoid port races. Config and env must name a real port.
    let port = match inputs.port {
        Some(p) => p,
        None => local_port(cfg.port, env)?,
    };

    let bind = inputs.bind.or(cfg.bind).unwrap_or(BindMode::Loopback);
    let custom_bind_host = if bind == BindMode::Custom {
        Some(custom_host(cfg.custom_bind_host.as_deref())?)
    } else {
        None
    };

    let (token, password) =
        local_secrets(inputs.token.as_ref(), inputs.password.as_ref(), cfg, env);

    let mode = match inputs.auth_mode.or(cfg.auth.mode) {
        Some(mode) => mode,
        None => match (&token, &password) {
            (Some((_, ts)), Some((_, ps))) => {
                return Err(ConfigError::Settings {
                    message: format!(
                        "Gateway auth has both a token (from {}) and a password (from {}), but no auth mode is set. Set gateway.auth.mode to token or password (or pass --auth token|password).",
                        source_label(ts, "--token"),
                        source_label(ps, "--password"),
                    ),
                });
            }
            (_, Some(_)) => AuthMode::Password,
            _ => AuthMode::Token,
        },
    };

    let mut hints = Vec::new();
    if token.is_none() && cfg.remote.token.is_some() {
        hints.push(REMOTE_TOKEN_HINT.to_owned());
    }

    let trusted_proxies = cfg.trusted_proxies.clone();
    match mode {
        AuthMode::Token => {
            if let Some((secret, source)) = &token {
                check_secret("token", secret, &source_label(source, "--token"))?;
            }
        }
        AuthMode::Password => match &password {
            Some((secret, source)) => {
                check_secret("password", secret, &source_label(source, "--password"))?;
            }
            None => {
                let mut message = "Gateway auth is set to password, but no password is configured.\nSet gateway.auth.password (or CLAWGATE_GATEWAY_PASSWORD / OPENCLAW_GATEWAY_PASSWORD), or pass --password.".to_owned();
                if cfg.remote.password.is_some() {
                    message.push('\n');
                    message.push_str(REMOTE_PASSWORD_HINT);
                }
                return Err(ConfigError::Settings { message });
            }
        },
        AuthMode::TrustedProxy => {
            if trusted_proxies.is_empty() {
                return Err(ConfigError::Settings {
                    message: "gateway auth mode=trusted-proxy requires gateway.trustedProxies to be configured with at least one proxy IP".to_owned(),
                });
            }
            if let Some((_, source)) = &token {
                return Err(ConfigError::Settings {
                    message: format!(
                        "gateway auth mode is trusted-proxy, but a shared token is also configured; remove {} because trusted-proxy and token auth are mutually exclusive",
                        source_label(source, "--token")
                    ),
                });
            }
        }
        AuthMode::None => {}
    }

    let source_of_token = match (&token, mode) {
        (Some((_, source)), _) => Some(source.clone()),
        (None, AuthMode::Token) => Some(SecretSource::Generated),
        (None, _) => None,
    };
    let source_of_password = password.as_ref().map(|(_, s)| s.clone());

    let rl = RateLimitSettings::default();
    let configured = cfg.auth.rate_limit.clone().unwrap_or_default();
    let rate_limit = RateLimitSettings {
        max_attempts: configured.max_attempts.unwrap_or(rl.max_attempts),
        window_ms: configured.window_ms.unwrap_or(rl.window_ms),
        lockout_ms: configured.lockout_ms.unwrap_or(rl.lockout_ms),
        exempt_loopback: configured.exempt_loopback.unwrap_or(rl.exempt_loopback),
    };

    let state_dir = resolve_state_dir(inputs.state_dir.as_deref(), env);
    let config_path = match loaded {
        Some(l) => l.path.clone(),
        None => {
            locate_config(
                inputs.config_path.as_deref(),
                inputs.state_dir.as_deref(),
                env,
            )
            .path
        }
    };

    let tls = (cfg.tls.enabled == Some(true)).then(|| {
        let dir = state_dir.join("gateway").join("tls");
        TlsSettings {
            cert_path: cfg
                .tls
                .cert_path
                .clone()
                .unwrap_or_else(|| dir.join("gateway-cert.pem")),
            key_path: cfg
                .tls
                .key_path
                .clone()
                .unwrap_or_else(|| dir.join("gateway-key.pem")),
            ca_path: cfg.tls.ca_path.clone(),
            auto_generate: cfg.tls.auto_generate.unwrap_or(true),
        }
    });

    Ok(GatewaySettings {
        port,
        bind,
        custom_bind_host,
        auth: AuthSettings {
            mode,
            token: token.map(|(s, _)| s),
            password: password.map(|(s, _)| s),
            rate_limit,
        },
        state_dir,
        config_path,
        gateway_mode: cfg.mode,
        auto_approve_local: cfg.auto_approve_local.unwrap_or(true),
        node_auto_approve_cidrs: cfg.node_auto_approve_cidrs.clone(),
        node_ssh_verify: cfg.node_ssh_verify.clone(),
        trusted_proxies,
        node_commands_allow: cfg.node_commands_allow.clone(),
        node_commands_deny: cfg.node_commands_deny.clone(),
        tls,
        tailscale_mode: cfg.tailscale_mode.unwrap_or(TailscaleMode::Off),
        source_of_token,
        source_of_password,
        hints,
    })
}

/// `gateway.customBindHost` for `bind=custom`: required, canonical dotted IPv4 (OpenClaw's
/// rules and wording).
fn custom_host(host: Option<&str>) -> Result<Ipv4Addr, ConfigError> {
    let Some(host) = host else {
        return Err(ConfigError::Settings {
            message: "gateway.bind=custom requires gateway.customBindHost (an IPv4 address of this machine, e.g. \"192.168.1.10\")".to_owned(),
        });
    };
    match host.parse::<Ipv4Addr>() {
        Ok(ip) if ip.to_string() == host => Ok(ip),
        _ => Err(ConfigError::Settings {
            message: format!(
                "gateway.bind=custom requires a valid IPv4 customBindHost (got {host})"
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_port_forms() {
        assert_eq!(parse_env_port("18789"), Some(18789));
        assert_eq!(parse_env_port(" 19001 "), Some(19001));
        assert_eq!(parse_env_port("localhost:19001"), Some(19001));
        assert_eq!(parse_env_port("[::1]:19001"), Some(19001));
        assert_eq!(parse_env_port("::1"), None);
        assert_eq!(parse_env_port("abc"), None);
        assert_eq!(parse_env_port("0"), None);
        assert_eq!(parse_env_port("65536"), None);
        assert_eq!(parse_env_port(":80"), None);
    }

    #[test]
    fn local_port_is_env_then_config_then_profile_then_default() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let profile = env(&[("OPENCLAW_PROFILE", "work")]);
        assert_eq!(local_port(None, &profile).unwrap(), 41984);
        assert_eq!(local_port(Some(1234), &profile).unwrap(), 1234);
        let both = env(&[
            ("OPENCLAW_PROFILE", "work"),
            ("OPENCLAW_GATEWAY_PORT", "19001"),
        ]);
        assert_eq!(local_port(Some(1234), &both).unwrap(), 19001);
        let default = env(&[("OPENCLAW_PROFILE", "default")]);
        assert_eq!(local_port(None, &default).unwrap(), DEFAULT_PORT);
        assert_eq!(local_port(None, &env(&[])).unwrap(), DEFAULT_PORT);
    }

    #[test]
    fn custom_host_rules() {
        assert_eq!(
            custom_host(Some("10.0.0.5")).unwrap(),
            Ipv4Addr::new(10, 0, 0, 5)
        );
        assert!(custom_host(Some("010.0.0.5")).is_err());
        assert!(custom_host(Some("::1")).is_err());
        assert!(custom_host(None).is_err());
    }
}
