//! Profiles: several independent gateways (and CLIs) on one machine, as OpenClaw runs them.
//!
//! A profile `<name>` is a state directory `~/.openclaw-<name>` (so also its config file
//! `~/.openclaw-<name>/openclaw.json`) and, unless a port is configured, a gateway port
//! derived from the name. It comes from `--profile <name>` (or `--dev`, which is profile
//! `dev` with port 19001), else from `CLAWGATE_PROFILE` / `OPENCLAW_PROFILE`.
//!
//! OpenClaw applies `--profile` by rewriting its own environment before anything reads it
//! (`applyCliProfileEnv` in `src/cli/profile.ts`); clawgate does the same with a
//! process-wide overlay that [`process_env`](crate::process_env) consults, set once by the
//! binary before a command runs ([`apply_cli_profile`]). Rewriting the real environment would
//! need `unsafe` (`std::env::set_var`), and the overlay keeps every library function pure:
//! they all take the environment as a closure.

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::error::ConfigError;
use crate::paths::{CONFIG_FILE_NAME, STATE_DIR_NAME, env_with_fallback, expand_tilde, home_dir};

/// The gateway port `--dev` stands for (OpenClaw's), as if `OPENCLAW_GATEWAY_PORT=19001`.
const DEV_PORT: u16 = 19001;

/// The rule a profile name follows, for messages (OpenClaw's `PROFILE_NAME_RE`,
/// `^[a-z0-9][a-z0-9_-]{0,63}$` case-insensitive).
const NAME_RULE: &str = "use letters, numbers, \"_\", \"-\" only, starting with a letter or digit, at most 64 characters";

/// Whether `name` is a valid profile name (see [`NAME_RULE`]).
pub fn is_valid_profile_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && name.len() <= 64
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `default` (any case) is the unnamed profile: `~/.openclaw` and port 18789.
fn is_default(name: &str) -> bool {
    name.eq_ignore_ascii_case("default")
}

/// The profile the environment names (`CLAWGATE_PROFILE`, else `OPENCLAW_PROFILE`), trimmed,
/// when it is a named one. An invalid name counts as none here, like OpenClaw's
/// `normalizeProfileName`; the binary refuses it before any command runs
/// ([`apply_cli_profile`]).
pub(crate) fn env_profile(env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let (_, value) = env_with_fallback(env, "PROFILE")?;
    let name = value.trim();
    (is_valid_profile_name(name) && !is_default(name)).then(|| name.to_owned())
}

/// The named profile in effect (`--profile`, `--dev`, `CLAWGATE_PROFILE`,
/// `OPENCLAW_PROFILE`), e.g. for a hint that repeats it: `clawgate --profile work gateway run`.
/// `None` for the default profile.
pub fn active_profile(env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    env_profile(env)
}

/// A profile's state directory: `~/.openclaw-<name>`, `~/.openclaw` for `default`.
fn profile_state_dir(name: &str, env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    if is_default(name) {
        home_dir(env).join(STATE_DIR_NAME)
    } else {
        home_dir(env).join(format!("{STATE_DIR_NAME}-{name}"))
    }
}

/// The state directory of the environment's profile, if it names one.
pub(crate) fn env_profile_state_dir(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    env_profile(env).map(|name| profile_state_dir(&name, env))
}

/// A named profile's gateway port: 20000 + FNV-1a-32(name) mod 40000 (OpenClaw's
/// `resolveGatewayPort`), so profiles on one machine get distinct ports without
/// configuring any.
pub fn profile_port(name: &str) -> u16 {
    let hash = name.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    });
    // < 60000, so the cast cannot truncate.
    (20_000 + hash % 40_000) as u16
}

/// The port of the environment's profile, if it names one.
pub(crate) fn env_profile_port(env: &dyn Fn(&str) -> Option<String>) -> Option<u16> {
    env_profile(env).map(|name| profile_port(&name))
}

/// Variables the command line sets (`Some`) or clears (`None`) on top of the environment.
pub type EnvOverrides = Vec<(&'static str, Option<String>)>;

/// What `--profile <flag>` / `--dev` change in the environment `env`, OpenClaw's
/// `applyCliProfileEnv`:
/// * the profile becomes `CLAWGATE_PROFILE` (so it beats one inherited from the environment);
/// * `--dev` (or `--profile dev`) sets the gateway port to 19001 unless
///   `CLAWGATE_GATEWAY_PORT` / `OPENCLAW_GATEWAY_PORT` is set;
/// * an explicit state dir or config path in the environment is kept, unless it merely
///   names the inherited profile's own location (`OPENCLAW_STATE_DIR=~/.openclaw` in a
///   service's environment): then it follows the profile switch.
///
/// Errors: `--dev` with another profile, an invalid `--profile`, and an invalid profile in
/// the environment (checked even without flags, so a typo never falls back to the default
/// profile's gateway silently).
pub fn profile_overrides(
    flag: Option<&str>,
    dev: bool,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<EnvOverrides, ConfigError> {
    let inherited = match env_with_fallback(env, "PROFILE") {
        Some((var, value)) if !is_valid_profile_name(value.trim()) => {
            return Err(ConfigError::Env {
                message: format!(
                    "{var} is not a valid profile name (got {}): {NAME_RULE}; fix or unset {var}",
                    serde_json::Value::String(value.clone())
                ),
                var,
            });
        }
        Some((_, value)) => value.trim().to_owned(),
        None => "default".to_owned(),
    };
    let selected = match (flag.map(str::trim), dev) {
        (Some(name), true) if name != "dev" => {
            return Err(ConfigError::Flag {
                flag: "--dev".to_owned(),
                message: "Cannot combine --dev with --profile: --dev is the profile \"dev\" (state ~/.openclaw-dev, port 19001); pass one of them".to_owned(),
            });
        }
        (_, true) => "dev",
        (Some(""), false) => {
            return Err(ConfigError::Flag {
                flag: "--profile".to_owned(),
                message: "--profile requires a value, e.g. --profile work (state ~/.openclaw-work)"
                    .to_owned(),
            });
        }
        (Some(name), false) if !is_valid_profile_name(name) => {
            return Err(ConfigError::Flag {
                flag: "--profile".to_owned(),
                message: format!(
                    "Invalid --profile {} ({NAME_RULE})",
                    serde_json::Value::String(name.to_owned())
                ),
            });
        }
        (Some(name), false) => name,
        (None, false) => return Ok(Vec::new()),
    };

    let mut overrides: EnvOverrides = vec![("CLAWGATE_PROFILE", Some(selected.to_owned()))];
    let inherited_dir = profile_state_dir(&inherited, env);
    let switches = inherited_dir != profile_state_dir(selected, env);
    let explicit = |suffix| env_with_fallback(env, suffix).map(|(_, v)| expand_tilde(&v, env));
    let state_dir = explicit("STATE_DIR");
    // Clearing both names lets the profile's own location apply (and keeps a missing
    // config file at the new location a zero-config start, not an error).
    let switch_state = switches && state_dir.as_ref() == Some(&inherited_dir);
    if switch_state {
        overrides.push(("CLAWGATE_STATE_DIR", None));
        overrides.push(("OPENCLAW_STATE_DIR", None));
    }
    if switches
        && (state_dir.is_none() || switch_state)
        && explicit("CONFIG_PATH") == Some(inherited_dir.join(CONFIG_FILE_NAME))
    {
        overrides.push(("CLAWGATE_CONFIG_PATH", None));
        overrides.push(("OPENCLAW_CONFIG_PATH", None));
    }
    if selected == "dev" && env_with_fallback(env, "GATEWAY_PORT").is_none() {
        overrides.push(("CLAWGATE_GATEWAY_PORT", Some(DEV_PORT.to_string())));
    }
    Ok(overrides)
}

static CLI_OVERRIDES: OnceLock<EnvOverrides> = OnceLock::new();

/// Applies `--profile` / `--dev` (see [`profile_overrides`]) to what
/// [`process_env`](crate::process_env) returns, for the rest of the process. Called once by
/// the binary, before any command reads the environment; a second call changes nothing.
pub fn apply_cli_profile(flag: Option<&str>, dev: bool) -> Result<(), ConfigError> {
    let overrides = profile_overrides(flag, dev, &|name| std::env::var(name).ok())?;
    let _ = CLI_OVERRIDES.set(overrides);
    Ok(())
}

/// The variables [`apply_cli_profile`] set (`Some`) or cleared (`None`), for child processes
/// of clawgate itself that must see the same profile.
pub fn cli_env_overrides() -> &'static [(&'static str, Option<String>)] {
    CLI_OVERRIDES.get().map_or(&[], Vec::as_slice)
}

/// The overlay's answer for `name`: `Some(value)` when the command line set or cleared it.
pub(crate) fn cli_override(name: &str) -> Option<Option<String>> {
    cli_env_overrides()
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    fn set(name: &'static str, value: &str) -> (&'static str, Option<String>) {
        (name, Some(value.to_owned()))
    }

    #[test]
    fn profile_names_follow_openclaw_rule() {
        for ok in ["dev", "work", "A-1", "x_y", "0", &"a".repeat(64)] {
            assert!(is_valid_profile_name(ok), "{ok}");
        }
        for bad in ["", "-x", "_x", "a b", "a/b", "..", "é", &"a".repeat(65)] {
            assert!(!is_valid_profile_name(bad), "{bad}");
        }
    }

    #[test]
    fn profile_port_matches_openclaw() {
        // Values printed by OpenClaw 2026.9.6's resolveGatewayPort({}, {OPENCLAW_PROFILE}).
        for (name, port) in [
            ("dev", 38556),
            ("work", 41984),
            ("Work", 28704),
            ("rescue", 23532),
            ("a", 22220),
        ] {
            assert_eq!(profile_port(name), port, "{name}");
        }
    }

    #[test]
    fn env_profile_ignores_default_and_invalid_names() {
        let env = env_of(&[("OPENCLAW_PROFILE", " work ")]);
        assert_eq!(env_profile(&env).as_deref(), Some("work"));
        let env = env_of(&[("CLAWGATE_PROFILE", "lab"), ("OPENCLAW_PROFILE", "work")]);
        assert_eq!(env_profile(&env).as_deref(), Some("lab"));
        for value in ["Default", "a b", ""] {
            assert_eq!(env_profile(&env_of(&[("OPENCLAW_PROFILE", value)])), None);
        }
    }

    #[test]
    fn flags_become_overrides() {
        let home = [("HOME", "/h")];
        let env = env_of(&home);
        assert_eq!(profile_overrides(None, false, &env).unwrap(), vec![]);
        assert_eq!(
            profile_overrides(Some("work"), false, &env).unwrap(),
            vec![set("CLAWGATE_PROFILE", "work")]
        );
        let dev = vec![
            set("CLAWGATE_PROFILE", "dev"),
            set("CLAWGATE_GATEWAY_PORT", "19001"),
        ];
        assert_eq!(profile_overrides(None, true, &env).unwrap(), dev);
        assert_eq!(profile_overrides(Some("dev"), false, &env).unwrap(), dev);
        assert_eq!(profile_overrides(Some("dev"), true, &env).unwrap(), dev);
        // An explicit port wins over --dev's.
        let env = env_of(&[("HOME", "/h"), ("OPENCLAW_GATEWAY_PORT", "1234")]);
        assert_eq!(
            profile_overrides(None, true, &env).unwrap(),
            vec![set("CLAWGATE_PROFILE", "dev")]
        );
    }

    #[test]
    fn explicit_paths_win_unless_they_name_the_inherited_profile() {
        let env = env_of(&[
            ("HOME", "/h"),
            ("OPENCLAW_STATE_DIR", "/elsewhere"),
            ("OPENCLAW_CONFIG_PATH", "/h/.openclaw/openclaw.json"),
        ]);
        assert_eq!(
            profile_overrides(Some("work"), false, &env).unwrap(),
            vec![set("CLAWGATE_PROFILE", "work")]
        );
        // A service environment of the default profile: both follow the switch.
        let env = env_of(&[
            ("HOME", "/h"),
            ("OPENCLAW_STATE_DIR", "~/.openclaw"),
            ("OPENCLAW_CONFIG_PATH", "/h/.openclaw/openclaw.json"),
        ]);
        assert_eq!(
            profile_overrides(Some("work"), false, &env).unwrap(),
            vec![
                set("CLAWGATE_PROFILE", "work"),
                ("CLAWGATE_STATE_DIR", None),
                ("OPENCLAW_STATE_DIR", None),
                ("CLAWGATE_CONFIG_PATH", None),
                ("OPENCLAW_CONFIG_PATH", None),
            ]
        );
        // The same profile again: nothing to switch.
        let env = env_of(&[
            ("HOME", "/h"),
            ("OPENCLAW_PROFILE", "work"),
            ("OPENCLAW_STATE_DIR", "/h/.openclaw-work"),
        ]);
        assert_eq!(
            profile_overrides(Some("work"), false, &env).unwrap(),
            vec![set("CLAWGATE_PROFILE", "work")]
        );
    }

    #[test]
    fn bad_profiles_name_the_flag_or_variable_and_the_rule() {
        let env = env_of(&[("HOME", "/h")]);
        let e = profile_overrides(Some("a b"), false, &env).unwrap_err();
        assert!(matches!(&e, ConfigError::Flag { flag, .. } if flag == "--profile"));
        assert_eq!(
            e.to_string(),
            "Invalid --profile \"a b\" (use letters, numbers, \"_\", \"-\" only, starting with a letter or digit, at most 64 characters)"
        );
        let e = profile_overrides(Some(" "), false, &env).unwrap_err();
        assert!(
            e.to_string().starts_with("--profile requires a value"),
            "{e}"
        );
        let e = profile_overrides(Some("work"), true, &env).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("Cannot combine --dev with --profile"),
            "{e}"
        );
        let env = env_of(&[("HOME", "/h"), ("OPENCLAW_PROFILE", "../x")]);
        let e = profile_overrides(None, false, &env).unwrap_err();
        assert!(matches!(&e, ConfigError::Env { var, .. } if var == "OPENCLAW_PROFILE"));
        assert!(
            e.to_string().contains("fix or unset OPENCLAW_PROFILE"),
            "{e}"
        );
    }
}
