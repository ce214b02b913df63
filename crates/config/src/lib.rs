//! Configuration for the clawgate gateway and its operator CLI.
//!
//! clawgate reads OpenClaw's own config file (`~/.openclaw/openclaw.json`, JSON5) so an
//! existing OpenClaw setup works unchanged. This crate:
//!
//! * finds the state directory and config file ([`resolve_state_dir`],
//!   [`resolve_config_path`], [`locate_config`]) with OpenClaw's locations and env names,
//!   each `OPENCLAW_*` variable having a `CLAWGATE_*` twin that wins, and OpenClaw's
//!   profiles (`--profile`, `--dev`, `OPENCLAW_PROFILE`: [`apply_cli_profile`]);
//! * loads and validates the file ([`load_config`], [`load_file`], [`LoadedConfig`]):
//!   JSON5, `${VAR}` substitution (`$${VAR}` escapes), SecretRefs with `source: "env"`,
//!   typed checks of the `gateway.*` and model keys (`models.providers.*`,
//!   `agents.defaults.model`: [`ModelsConfig`]) clawgate implements with errors that name the
//!   dotted key and the fix, and a report of everything else (`ignored`, `unknown`) that
//!   is never fatal;
//! * resolves the gateway's run settings ([`resolve_gateway_settings`]) and the operator
//!   CLI's connection target ([`resolve_client_target`]) with precedence
//!   flag > env > config > default;
//! * supports `config.get` ([`redacted`], [`config_hash`]);
//! * wraps credentials in [`Secret`], which never prints or serializes its value.
//!
//! Every function that reads the environment takes it as `&dyn Fn(&str) -> Option<String>`
//! so tests never touch the process environment; production code passes [`process_env`].
//!
//! ```no_run
//! use clawgate_config::{GatewayRunInputs, locate_config, load_config, process_env, resolve_gateway_settings};
//!
//! # fn main() -> Result<(), clawgate_config::ConfigError> {
//! let inputs = GatewayRunInputs::default();
//! let location = locate_config(inputs.config_path.as_deref(), inputs.state_dir.as_deref(), &process_env);
//! let loaded = load_config(&location, &process_env)?;
//! for line in loaded.iter().flat_map(|c| c.diagnostics()) {
//!     eprintln!("warning: {line}");
//! }
//! let settings = resolve_gateway_settings(&inputs, loaded.as_ref(), &process_env)?;
//! assert!(settings.port > 0);
//! # Ok(())
//! # }
//! ```

mod agent;
mod client;
mod discovery;
mod error;
pub mod exec_approvals;
mod gateway_config;
mod load;
mod models;
mod modes;
mod paths;
mod profile;
mod redact;
mod schema;
mod secret;
mod settings;
mod subst;
mod suppressions;
mod telegram;

pub use agent::AgentConfig;
pub use client::{
    ClientFlags, ClientTarget, ProbeSshFlags, ProbeSshOrigin, ProbeSshTarget, SshTunnelTarget,
    TargetSource, resolve_client_target, resolve_local_target, resolve_probe_ssh,
};
pub use discovery::DiscoveryConfig;
pub use error::{ConfigError, InvalidValue};
pub use gateway_config::{
    AuthConfig, ControlUiConfig, GatewayConfig, RateLimitConfig, RemoteConfig, SshVerifyConfig,
    TlsConfig, TrustedProxyConfig,
};
pub use load::{LoadedConfig, load_config, load_file};
pub use models::{ModelApi, ModelConfig, ModelRef, ModelsConfig, ProviderConfig, UnresolvedRef};
pub use modes::{
    AuthMode, BindMode, GatewayMode, MdnsMode, RemoteTransport, SshHostKeyPolicy, TailscaleMode,
};
pub use paths::{
    CONFIG_FILE_NAME, ConfigLocation, PathOrigin, STATE_DIR_NAME, locate_config,
    resolve_config_path, resolve_state_dir,
};
pub use profile::{
    EnvOverrides, active_profile, apply_cli_profile, cli_env_overrides, is_valid_profile_name,
    profile_overrides, profile_port,
};
pub use redact::{config_hash, redacted};
pub use secret::{REDACTED, Secret};
pub use settings::{
    AuthSettings, DEFAULT_PORT, GatewayRunInputs, GatewaySettings, RateLimitSettings, SecretSource,
    TlsSettings, resolve_gateway_settings,
};
pub use suppressions::Suppression;
pub use telegram::{
    DEFAULT_ACCOUNT_ID, DmPolicy, ErrorPolicy, GroupPolicy, ReplyToMode, TELEGRAM_API_ROOT,
    TELEGRAM_MAX_TEXT, TELEGRAM_TOKEN_ENV, TelegramConfig, TelegramGroupConfig, TokenSource,
};

/// The process environment as the command line left it, for production callers:
/// `process_env("HOME")`. `--profile` / `--dev` ([`apply_cli_profile`]) set or clear a few
/// variables on top of the real environment. Non-UTF-8 values count as unset.
pub fn process_env(name: &str) -> Option<String> {
    profile::cli_override(name).unwrap_or_else(|| std::env::var(name).ok())
}
