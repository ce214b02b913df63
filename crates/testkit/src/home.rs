//! Private, throw-away homes for the processes a test starts.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::process::Command;

/// Set to keep every test home on disk (its path is printed) for debugging.
pub const KEEP_ENV: &str = "CLAWGATE_TEST_KEEP_TMP";

/// Inherited variables removed from every child: anything `OPENCLAW_*` (among
/// them `OPENCLAW_GATEWAY_TOKEN/PASSWORD/URL/PROFILE`) and npm's registry
/// setting, which is replaced.
fn is_scrubbed(name: &str) -> bool {
    name.starts_with("OPENCLAW_") || name.eq_ignore_ascii_case("npm_config_registry")
}

/// A temp directory holding a private `HOME`, state dir, config file, log file
/// and `TMPDIR` for one process (or several that must share state).
///
/// Layout: `<root>/home`, `<root>/state`, `<root>/config.json5`,
/// `<root>/openclaw.log`, `<root>/tmp`. Removed on drop unless
/// `CLAWGATE_TEST_KEEP_TMP` is set.
#[derive(Debug)]
pub struct IsolatedHome {
    dir: TempDir,
}

impl IsolatedHome {
    /// Creates the directories (the state dir private, 0700, as OpenClaw and clawgate make
    /// it); writes no config file.
    pub fn new() -> Self {
        let mut dir = tempfile::Builder::new()
            .prefix("clawgate-test-")
            .tempdir()
            .expect("creating a temp dir for a test home");
        for sub in ["home", "state", "tmp"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("creating test home dirs");
        }
        std::fs::set_permissions(
            dir.path().join("state"),
            std::fs::Permissions::from_mode(0o700),
        )
        .expect("making the test state dir private");
        if std::env::var_os(KEEP_ENV).is_some() {
            dir.disable_cleanup(true);
            eprintln!("keeping test home {}", dir.path().display());
        }
        Self { dir }
    }

    /// Creates the directories and an OpenClaw config file holding
    /// [`IsolatedHome::openclaw_base_config`] merged with `overrides`.
    pub fn for_openclaw(overrides: &Value) -> Self {
        let home = Self::new();
        home.write_openclaw_config(overrides);
        home
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// `HOME` for the process.
    pub fn home(&self) -> PathBuf {
        self.root().join("home")
    }

    /// `OPENCLAW_STATE_DIR` for the process.
    pub fn state_dir(&self) -> PathBuf {
        self.root().join("state")
    }

    /// `OPENCLAW_CONFIG_PATH` for the process (may not exist yet).
    pub fn config_path(&self) -> PathBuf {
        self.root().join("config.json5")
    }

    /// The `logging.file` set by the base OpenClaw config.
    pub fn log_file(&self) -> PathBuf {
        self.root().join("openclaw.log")
    }

    /// `TMPDIR` for the process.
    pub fn tmp_dir(&self) -> PathBuf {
        self.root().join("tmp")
    }

    /// The config every OpenClaw process gets unless overridden: logs go to
    /// this home, no update checks, no model catalog downloads.
    pub fn openclaw_base_config(&self) -> Value {
        json!({
            "logging": { "file": self.log_file() },
            "update": { "checkOnStart": false },
            "models": { "catalogRefresh": { "enabled": false } },
        })
    }

    /// Writes `config` as the config file, as is (JSON is valid JSON5), readable by its owner
    /// only (0600, as OpenClaw writes it).
    pub fn write_config(&self, config: &Value) {
        let text = serde_json::to_string_pretty(config).expect("serializing config");
        std::fs::write(self.config_path(), text).expect("writing test config");
        std::fs::set_permissions(self.config_path(), std::fs::Permissions::from_mode(0o600))
            .expect("making the test config private");
    }

    /// Writes the base OpenClaw config deep-merged with `overrides`.
    pub fn write_openclaw_config(&self, overrides: &Value) {
        let mut config = self.openclaw_base_config();
        merge_json(&mut config, overrides);
        self.write_config(&config);
    }

    /// The config file's contents, if any.
    pub fn read_config(&self) -> Option<String> {
        std::fs::read_to_string(self.config_path()).ok()
    }

    /// The environment a process in this home gets, as `(name, value)` pairs.
    /// `None` means "remove".
    pub fn env(&self) -> Vec<(OsString, Option<OsString>)> {
        let mut env: Vec<(OsString, Option<OsString>)> = std::env::vars_os()
            .filter(|(k, _)| k.to_str().is_some_and(is_scrubbed))
            .map(|(k, _)| (k, None))
            .collect();
        let home = self.home();
        let set = [
            ("HOME", home.clone().into_os_string()),
            ("OPENCLAW_STATE_DIR", self.state_dir().into_os_string()),
            ("OPENCLAW_CONFIG_PATH", self.config_path().into_os_string()),
            ("OPENCLAW_NO_AUTO_UPDATE", "1".into()),
            ("OPENCLAW_DISABLE_BONJOUR", "1".into()),
            // A dead loopback port: registry lookups fail at once.
            ("NPM_CONFIG_REGISTRY", "http://127.0.0.1:9".into()),
            ("TMPDIR", self.tmp_dir().into_os_string()),
            ("XDG_CONFIG_HOME", home.join(".config").into_os_string()),
            ("XDG_CACHE_HOME", home.join(".cache").into_os_string()),
            ("XDG_DATA_HOME", home.join(".local/share").into_os_string()),
            ("XDG_STATE_HOME", home.join(".local/state").into_os_string()),
        ];
        env.extend(set.into_iter().map(|(k, v)| (OsString::from(k), Some(v))));
        env
    }

    /// Applies [`IsolatedHome::env`] to `cmd` and runs it from the home's root.
    pub fn apply(&self, cmd: &mut Command) {
        for (k, v) in self.env() {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        cmd.current_dir(self.root());
    }
}

impl Default for IsolatedHome {
    fn default() -> Self {
        Self::new()
    }
}

/// Deep-merges `overlay` into `base`: objects merge key by key, anything else
/// (including arrays) replaces. A `null` in the overlay removes the key.
pub fn merge_json(base: &mut Value, overlay: &Value) {
    match (base, overlay) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                if v.is_null() {
                    b.remove(k);
                } else {
                    merge_json(b.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_is_deep_and_null_removes() {
        let mut base = json!({"a": {"b": 1, "c": 2}, "d": [1, 2], "e": 1});
        merge_json(
            &mut base,
            &json!({"a": {"c": 3, "x": {"y": true}}, "d": [9], "e": null}),
        );
        assert_eq!(
            base,
            json!({"a": {"b": 1, "c": 3, "x": {"y": true}}, "d": [9]})
        );
    }

    #[test]
    fn home_env_is_private() {
        let home = IsolatedHome::for_openclaw(&json!({"gateway": {"mode": "remote"}}));
        let env = home.env();
        let get = |k: &str| {
            env.iter()
                .rev()
                .find(|(n, _)| n == k)
                .and_then(|(_, v)| v.clone())
        };
        assert_eq!(get("HOME"), Some(home.home().into_os_string()));
        assert_eq!(get("OPENCLAW_NO_AUTO_UPDATE"), Some("1".into()));
        let config: Value = serde_json::from_str(&home.read_config().unwrap()).unwrap();
        assert_eq!(config["gateway"]["mode"], "remote");
        assert_eq!(config["update"]["checkOnStart"], false);
        assert_eq!(config["logging"]["file"], json!(home.log_file()));
    }
}
