//! Where the state directory and the config file are.
//!
//! clawgate uses OpenClaw's locations (`~/.openclaw`, `openclaw.json`) on purpose: it is a
//! drop-in replacement for OpenClaw's gateway, so an existing OpenClaw setup (config,
//! device identities, pairings) must be found without any extra step, and the OpenClaw
//! CLI/apps pointed at the same state keep working. Each `OPENCLAW_*` variable has a
//! `CLAWGATE_*` twin that wins when both are set, so clawgate can be pointed somewhere else
//! without disturbing an OpenClaw install that reads the `OPENCLAW_*` one.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::profile::env_profile_state_dir;

/// File name of the config inside the state directory (OpenClaw's name).
pub const CONFIG_FILE_NAME: &str = "openclaw.json";

/// Name of the state directory under `$HOME` (OpenClaw's name).
pub const STATE_DIR_NAME: &str = ".openclaw";

/// Reads the environment variable clawgate calls `CLAWGATE_<suffix>`, falling back to
/// `OPENCLAW_<suffix>`. Empty values count as unset (a `.env` line `NAME=` means "unset").
/// Returns the name that supplied the value, for messages.
pub(crate) fn env_with_fallback(
    env: &dyn Fn(&str) -> Option<String>,
    suffix: &str,
) -> Option<(String, String)> {
    ["CLAWGATE_", "OPENCLAW_"].iter().find_map(|prefix| {
        let name = format!("{prefix}{suffix}");
        env(&name)
            .filter(|v| !v.is_empty())
            .map(|value| (name, value))
    })
}

/// The user's home directory from the environment (`HOME`, then `USERPROFILE`), or the
/// current directory when neither is set (e.g. a bare service environment).
pub(crate) fn home_dir(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    env("HOME")
        .filter(|h| !h.is_empty())
        .or_else(|| env("USERPROFILE").filter(|h| !h.is_empty()))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Expands a leading `~` / `~/` like OpenClaw's `resolveUserPath`, so values written for
/// OpenClaw (`OPENCLAW_STATE_DIR=~/.openclaw-work`) mean the same thing here. Shells do
/// not expand `~` inside `NAME=~/x` in service files or `.env` files.
pub(crate) fn expand_tilde(value: &str, env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    if value == "~" {
        return home_dir(env);
    }
    match value
        .strip_prefix("~/")
        .or_else(|| value.strip_prefix("~\\"))
    {
        Some(rest) => home_dir(env).join(rest),
        None => PathBuf::from(value),
    }
}

/// The state directory: `flag` > `CLAWGATE_STATE_DIR` > `OPENCLAW_STATE_DIR` >
/// `$HOME/.openclaw-<profile>` (`CLAWGATE_PROFILE` / `OPENCLAW_PROFILE`, see
/// [`crate::profile_overrides`] for `--profile`) > `$HOME/.openclaw`.
pub fn resolve_state_dir(flag: Option<&Path>, env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    if let Some(flag) = flag {
        return expand_tilde(&flag.to_string_lossy(), env);
    }
    if let Some((_, value)) = env_with_fallback(env, "STATE_DIR") {
        return expand_tilde(&value, env);
    }
    env_profile_state_dir(env).unwrap_or_else(|| home_dir(env).join(STATE_DIR_NAME))
}

/// The config file path: `flag` > `CLAWGATE_CONFIG_PATH` > `OPENCLAW_CONFIG_PATH` >
/// `<state dir>/openclaw.json` (state dir from the environment, see
/// [`resolve_state_dir`]). Use [`locate_config`] when a `--state-dir` flag exists too or
/// when you need to know which source named the path.
pub fn resolve_config_path(flag: Option<&Path>, env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    locate_config(flag, None, env).path
}

/// What named the config file path; decides whether a missing file is an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathOrigin {
    /// The `--config` command-line flag.
    Flag,
    /// The named environment variable (`CLAWGATE_CONFIG_PATH` or `OPENCLAW_CONFIG_PATH`).
    Env(String),
    /// Derived from the state directory: a missing file means "no config", not an error.
    Default,
}

impl fmt::Display for PathOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathOrigin::Flag => f.write_str("--config"),
            PathOrigin::Env(name) => f.write_str(name),
            PathOrigin::Default => f.write_str("the default location"),
        }
    }
}

/// A config file path and what named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigLocation {
    pub path: PathBuf,
    pub origin: PathOrigin,
}

/// Finds the config file, in order: `config_flag`, `CLAWGATE_CONFIG_PATH`,
/// `OPENCLAW_CONFIG_PATH`, then `<state dir>/openclaw.json` where the state dir comes from
/// `state_dir_flag` or the environment ([`resolve_state_dir`]), so `--state-dir` moves the
/// default config too.
pub fn locate_config(
    config_flag: Option<&Path>,
    state_dir_flag: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> ConfigLocation {
    if let Some(flag) = config_flag {
        return ConfigLocation {
            path: expand_tilde(&flag.to_string_lossy(), env),
            origin: PathOrigin::Flag,
        };
    }
    if let Some((name, value)) = env_with_fallback(env, "CONFIG_PATH") {
        return ConfigLocation {
            path: expand_tilde(&value, env),
            origin: PathOrigin::Env(name),
        };
    }
    ConfigLocation {
        path: resolve_state_dir(state_dir_flag, env).join(CONFIG_FILE_NAME),
        origin: PathOrigin::Default,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn state_dir_precedence() {
        let env = env_of(&[
            ("HOME", "/home/u"),
            ("CLAWGATE_STATE_DIR", "/cg"),
            ("OPENCLAW_STATE_DIR", "/oc"),
        ]);
        assert_eq!(
            resolve_state_dir(Some(Path::new("/flag")), &env),
            PathBuf::from("/flag")
        );
        assert_eq!(resolve_state_dir(None, &env), PathBuf::from("/cg"));
        let env = env_of(&[("HOME", "/home/u"), ("OPENCLAW_STATE_DIR", "/oc")]);
        assert_eq!(resolve_state_dir(None, &env), PathBuf::from("/oc"));
        let env = env_of(&[("HOME", "/home/u"), ("CLAWGATE_STATE_DIR", "")]);
        assert_eq!(
            resolve_state_dir(None, &env),
            PathBuf::from("/home/u/.openclaw")
        );
        let env = env_of(&[("HOME", "/home/u"), ("OPENCLAW_STATE_DIR", "~/.oc-work")]);
        assert_eq!(
            resolve_state_dir(None, &env),
            PathBuf::from("/home/u/.oc-work")
        );
    }

    #[test]
    fn profile_moves_the_state_dir_and_config_unless_named_explicitly() {
        let env = env_of(&[("HOME", "/home/u"), ("OPENCLAW_PROFILE", "work")]);
        assert_eq!(
            resolve_state_dir(None, &env),
            PathBuf::from("/home/u/.openclaw-work")
        );
        assert_eq!(
            locate_config(None, None, &env),
            ConfigLocation {
                path: "/home/u/.openclaw-work/openclaw.json".into(),
                origin: PathOrigin::Default
            }
        );
        let env = env_of(&[
            ("HOME", "/home/u"),
            ("CLAWGATE_PROFILE", "lab"),
            ("OPENCLAW_STATE_DIR", "/state"),
        ]);
        assert_eq!(resolve_state_dir(None, &env), PathBuf::from("/state"));
        assert_eq!(
            resolve_state_dir(Some(Path::new("/flag")), &env),
            PathBuf::from("/flag")
        );
        let env = env_of(&[("HOME", "/home/u"), ("OPENCLAW_PROFILE", "default")]);
        assert_eq!(
            resolve_state_dir(None, &env),
            PathBuf::from("/home/u/.openclaw")
        );
    }

    #[test]
    fn config_path_precedence() {
        let env = env_of(&[
            ("HOME", "/home/u"),
            ("CLAWGATE_CONFIG_PATH", "/cg.json"),
            ("OPENCLAW_CONFIG_PATH", "/oc.json"),
            ("OPENCLAW_STATE_DIR", "/state"),
        ]);
        assert_eq!(
            resolve_config_path(Some(Path::new("/f.json")), &env),
            PathBuf::from("/f.json")
        );
        assert_eq!(
            locate_config(None, None, &env),
            ConfigLocation {
                path: "/cg.json".into(),
                origin: PathOrigin::Env("CLAWGATE_CONFIG_PATH".into())
            }
        );
        let env = env_of(&[
            ("HOME", "/home/u"),
            ("OPENCLAW_CONFIG_PATH", "/oc.json"),
            ("OPENCLAW_STATE_DIR", "/state"),
        ]);
        assert_eq!(resolve_config_path(None, &env), PathBuf::from("/oc.json"));
        let env = env_of(&[("HOME", "/home/u"), ("OPENCLAW_STATE_DIR", "/state")]);
        assert_eq!(
            locate_config(None, None, &env),
            ConfigLocation {
                path: "/state/openclaw.json".into(),
                origin: PathOrigin::Default
            }
        );
        assert_eq!(
            locate_config(None, Some(Path::new("/sd")), &env).path,
            PathBuf::from("/sd/openclaw.json")
        );
        let env = env_of(&[("HOME", "/home/u")]);
        assert_eq!(
            resolve_config_path(None, &env),
            PathBuf::from("/home/u/.openclaw/openclaw.json")
        );
    }
}
