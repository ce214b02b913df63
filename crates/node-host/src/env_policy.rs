//! The environment a `system.run` child gets: the node host's own environment minus
//! variables that hook interpreters or tools and the gateway's credentials, plus the caller's
//! overrides once they pass the same checks the OpenClaw node host makes (`PATH`, `LD_*`,
//! `NODE_OPTIONS` and the like are refused with
//! `SYSTEM_RUN_DENIED: environment override rejected (…)`).

use crate::env_lists::{
    ALLOWED_INHERITED, BLOCKED_EVERYWHERE, BLOCKED_OVERRIDE_ONLY, BLOCKED_OVERRIDE_PREFIXES,
    BLOCKED_PREFIXES,
};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Overrides a shell wrapper (`sh -c …`) still receives: only terminal and locale settings.
const SHELL_WRAPPER_ALLOWED: &[&str] = &[
    "TERM",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "COLORTERM",
    "NO_COLOR",
    "FORCE_COLOR",
];

/// Set to `1` in every child, as the OpenClaw node host does, so tools can tell they were
/// launched by it.
pub const EXEC_MARKER_ENV: &str = "OPENCLAW_CLI";

/// Every variable clawgate (and OpenClaw) reads a gateway credential from: the config's
/// fallbacks for `gateway.auth.*` and the remote mode's secrets, `clawgate node run`,
/// `gateway run` and the operator commands all take `CLAWGATE_GATEWAY_TOKEN|PASSWORD`, then
/// `OPENCLAW_GATEWAY_TOKEN|PASSWORD`. The node host was started with them; the commands it
/// runs for whoever may invoke it never see them.
pub const GATEWAY_SECRET_VARS: &[&str] = &[
    "CLAWGATE_GATEWAY_PASSWORD",
    "CLAWGATE_GATEWAY_TOKEN",
    "OPENCLAW_GATEWAY_PASSWORD",
    "OPENCLAW_GATEWAY_TOKEN",
];

/// What is wrong with requested overrides.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OverrideRejection {
    /// Upper-cased, sorted, unique.
    pub blocked: Vec<String>,
    /// As given (trimmed), sorted, unique.
    pub invalid: Vec<String>,
}

impl OverrideRejection {
    pub fn is_empty(&self) -> bool {
        self.blocked.is_empty() && self.invalid.is_empty()
    }

    /// `SYSTEM_RUN_DENIED: environment override rejected (blocked override keys: PATH)`.
    pub fn message(&self) -> String {
        let mut details = Vec::new();
        if !self.blocked.is_empty() {
            details.push(format!(
                "blocked override keys: {}",
                self.blocked.join(", ")
            ));
        }
        if !self.invalid.is_empty() {
            details.push(format!(
                "invalid non-portable override keys: {}",
                self.invalid.join(", ")
            ));
        }
        format!(
            "SYSTEM_RUN_DENIED: environment override rejected ({})",
            details.join("; ")
        )
    }
}

fn is_portable_key(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_override_key_shape(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '(' || c == ')')
}

fn in_list(list: &[&str], upper: &str) -> bool {
    list.binary_search(&upper).is_ok() || list.contains(&upper)
}

fn cargo_target_runner(upper: &str) -> bool {
    upper
        .strip_prefix("CARGO_TARGET_")
        .is_some_and(|rest| rest.ends_with("_LINKER") || rest.ends_with("_RUNNER"))
}

/// Whether a caller may not set `upper` (already upper-cased).
fn override_blocked(upper: &str) -> bool {
    upper == "PATH"
        || in_list(BLOCKED_EVERYWHERE, upper)
        || in_list(BLOCKED_OVERRIDE_ONLY, upper)
        || BLOCKED_PREFIXES.iter().any(|p| upper.starts_with(p))
        || BLOCKED_OVERRIDE_PREFIXES
            .iter()
            .any(|p| upper.starts_with(p))
        || cargo_target_runner(upper)
}

/// Whether an inherited variable is dropped before the child starts.
pub fn inherited_blocked(key: &str) -> bool {
    let upper = key.to_ascii_uppercase();
    in_list(GATEWAY_SECRET_VARS, &upper)
        || in_list(BLOCKED_EVERYWHERE, &upper)
        || (in_list(BLOCKED_OVERRIDE_ONLY, &upper) && !in_list(ALLOWED_INHERITED, &upper))
        || BLOCKED_PREFIXES.iter().any(|p| upper.starts_with(p))
}

/// `PAGER=cat` / `GIT_PAGER=""` are accepted (as empty) so tools never page.
fn is_no_pager(upper: &str, value: &str) -> bool {
    (upper == "GIT_PAGER" || upper == "PAGER") && (value.is_empty() || value == "cat")
}

/// Checks the caller's `env` object. Non-string values are ignored, like the real host.
pub fn inspect_overrides(env: Option<&Map<String, Value>>) -> OverrideRejection {
    let mut rejection = OverrideRejection::default();
    let Some(env) = env else {
        return rejection;
    };
    for (raw_key, value) in env {
        let Some(value) = value.as_str() else {
            continue;
        };
        let key = raw_key.trim();
        if key.is_empty() || !is_override_key_shape(key) {
            let shown = if key.is_empty() {
                raw_key.as_str()
            } else {
                key
            };
            rejection.invalid.push(shown.to_owned());
            continue;
        }
        let upper = key.to_ascii_uppercase();
        if is_no_pager(&upper, value) {
            continue;
        }
        if override_blocked(&upper) {
            rejection.blocked.push(upper);
        }
    }
    rejection.blocked.sort();
    rejection.blocked.dedup();
    rejection.invalid.sort();
    rejection.invalid.dedup();
    rejection
}

/// Names of `KEY=value` words an `env` dispatch wrapper sets before the real command
/// (`env LD_PRELOAD=x ls`).
pub fn env_wrapper_assignments(argv: &[String]) -> Vec<String> {
    let Some(first) = argv.first() else {
        return Vec::new();
    };
    if crate::argv::basename(first) != "env" {
        return Vec::new();
    }
    let mut keys = Vec::new();
    for word in &argv[1..] {
        if word.starts_with('-') {
            continue;
        }
        match word.split_once('=') {
            Some((key, _)) if !key.is_empty() => keys.push(key.to_owned()),
            _ => break,
        }
    }
    keys
}

/// Blocked keys among `env` wrapper assignments, for
/// `SYSTEM_RUN_DENIED: command env assignment rejected (blocked env assignment keys: …)`.
pub fn blocked_assignments(argv: &[String]) -> Vec<String> {
    let mut blocked: Vec<String> = env_wrapper_assignments(argv)
        .into_iter()
        .map(|k| k.to_ascii_uppercase())
        .filter(|upper| override_blocked(upper))
        .collect();
    blocked.sort();
    blocked.dedup();
    blocked
}

/// The child's environment: the inherited one (filtered), then accepted overrides (for a
/// shell wrapper only terminal/locale ones), then the exec marker.
pub fn child_env(
    inherited: impl IntoIterator<Item = (String, String)>,
    overrides: Option<&Map<String, Value>>,
    shell_wrapper: bool,
) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = inherited
        .into_iter()
        .filter(|(k, _)| !k.trim().is_empty() && !inherited_blocked(k))
        .collect();
    if let Some(overrides) = overrides {
        for (raw_key, value) in overrides {
            let Some(value) = value.as_str() else {
                continue;
            };
            let key = raw_key.trim();
            if key.is_empty() || !is_override_key_shape(key) {
                continue;
            }
            let upper = key.to_ascii_uppercase();
            if is_no_pager(&upper, value) {
                env.insert(key.to_owned(), String::new());
                continue;
            }
            if override_blocked(&upper) {
                continue;
            }
            if shell_wrapper
                && !(is_portable_key(key)
                    && (SHELL_WRAPPER_ALLOWED.contains(&upper.as_str())
                        || upper.starts_with("LC_")))
            {
                continue;
            }
            env.insert(key.to_owned(), value.to_owned());
        }
    }
    env.insert(EXEC_MARKER_ENV.into(), "1".into());
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn lists_are_sorted_for_binary_search() {
        for list in [
            BLOCKED_EVERYWHERE,
            BLOCKED_OVERRIDE_ONLY,
            ALLOWED_INHERITED,
            GATEWAY_SECRET_VARS,
        ] {
            assert!(list.windows(2).all(|w| w[0] < w[1]));
        }
    }

    #[test]
    fn path_ld_and_node_options_are_refused() {
        let env = obj(
            json!({"PATH": "/tmp", "LD_PRELOAD": "x.so", "NODE_OPTIONS": "--require x", "FOO": "1"}),
        );
        let r = inspect_overrides(Some(&env));
        assert_eq!(r.blocked, ["LD_PRELOAD", "NODE_OPTIONS", "PATH"]);
        assert!(r.invalid.is_empty());
        assert_eq!(
            r.message(),
            "SYSTEM_RUN_DENIED: environment override rejected (blocked override keys: LD_PRELOAD, NODE_OPTIONS, PATH)"
        );
    }

    #[test]
    fn lower_case_and_invalid_keys() {
        let env =
            obj(json!({"path": "/x", "ld_library_path": "/y", "BAD-KEY": "1", "DYLD_X": "1"}));
        let r = inspect_overrides(Some(&env));
        assert_eq!(r.blocked, ["DYLD_X", "LD_LIBRARY_PATH", "PATH"]);
        assert_eq!(r.invalid, ["BAD-KEY"]);
        assert!(
            r.message()
                .contains("invalid non-portable override keys: BAD-KEY")
        );
    }

    #[test]
    fn harmless_overrides_pass_and_pagers_are_neutralised() {
        let env = obj(json!({"FOO": "bar", "PAGER": "cat", "HOME": "/x"}));
        let r = inspect_overrides(Some(&env));
        assert_eq!(r.blocked, ["HOME"]);
        let env = obj(json!({"FOO": "bar", "PAGER": "cat"}));
        assert!(inspect_overrides(Some(&env)).is_empty());
        let child = child_env(
            vec![
                ("LD_PRELOAD".into(), "x".into()),
                ("HOME".into(), "/h".into()),
            ],
            Some(&env),
            false,
        );
        assert_eq!(child.get("FOO").map(String::as_str), Some("bar"));
        assert_eq!(child.get("PAGER").map(String::as_str), Some(""));
        assert_eq!(child.get("HOME").map(String::as_str), Some("/h"));
        assert!(!child.contains_key("LD_PRELOAD"));
    }

    #[test]
    fn gateway_credentials_are_never_inherited() {
        let inherited = GATEWAY_SECRET_VARS
            .iter()
            .map(|k| (k.to_string(), "secret".to_owned()))
            .chain([("Openclaw_Gateway_Token".into(), "secret".into())])
            .chain([("ORDINARY".into(), "plain".into())]);
        let child = child_env(inherited, None, false);
        assert_eq!(
            child.keys().collect::<Vec<_>>(),
            ["OPENCLAW_CLI", "ORDINARY"]
        );
    }

    /// Every name the config and the CLI read a gateway credential from (`GATEWAY_*TOKEN`,
    /// `…PASSWORD`, `…SECRET`, as the suffix of either prefix or in full) is withheld.
    #[test]
    fn every_credential_variable_the_project_reads_is_withheld() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let name = regex::Regex::new(
            r#""((?:CLAWGATE_|OPENCLAW_)?GATEWAY_[A-Z_]*(?:TOKEN|PASSWORD|SECRET))""#,
        )
        .unwrap();
        let mut found = Vec::new();
        let mut dirs = vec![root.join("config/src"), root.join("cli/src")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    found.extend(name.captures_iter(&text).map(|c| c[1].to_owned()));
                }
            }
        }
        assert!(found.iter().any(|n| n == "GATEWAY_TOKEN"), "{found:?}");
        for n in found {
            let full = if n.starts_with("GATEWAY_") {
                vec![format!("CLAWGATE_{n}"), format!("OPENCLAW_{n}")]
            } else {
                vec![n]
            };
            for var in full {
                assert!(
                    GATEWAY_SECRET_VARS.contains(&var.as_str()),
                    "{var} is read but not withheld"
                );
            }
        }
    }

    #[test]
    fn shell_wrappers_only_get_locale_overrides() {
        let env = obj(json!({"FOO": "bar", "LANG": "C", "LC_TIME": "C"}));
        let child = child_env(Vec::new(), Some(&env), true);
        assert!(!child.contains_key("FOO"));
        assert_eq!(child.get("LANG").map(String::as_str), Some("C"));
        assert_eq!(child.get("LC_TIME").map(String::as_str), Some("C"));
    }

    #[test]
    fn env_wrapper_assignments_are_checked() {
        let argv: Vec<String> = ["/usr/bin/env", "-i", "LD_PRELOAD=x", "FOO=1", "ls", "A=B"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(blocked_assignments(&argv), ["LD_PRELOAD"]);
        let argv: Vec<String> = ["ls", "LD_PRELOAD=x"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(blocked_assignments(&argv).is_empty());
    }
}
