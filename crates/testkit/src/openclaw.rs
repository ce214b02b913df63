//! The real OpenClaw CLI, installed by `scripts/setup-openclaw`.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::cli::{CliCommand, Flavor};
use crate::home::IsolatedHome;
use crate::net::require_loopback_only_netns;

/// Environment variable naming the OpenClaw CLI wrapper.
pub const OPENCLAW_BIN_ENV: &str = "CLAWGATE_OPENCLAW_BIN";

/// The OpenClaw release the project is wire-compatible with.
pub const OPENCLAW_VERSION: &str = "2026.9.6";

/// Handle on the real OpenClaw CLI.
#[derive(Clone, Debug)]
pub struct OpenClaw {
    bin: PathBuf,
}

impl OpenClaw {
    /// Finds the CLI through `CLAWGATE_OPENCLAW_BIN` and checks that this
    /// process is in a loopback-only network namespace.
    ///
    /// Panics (a missing tool is a failure, not a skip) when the variable is
    /// unset or names no executable, or when the network is reachable.
    #[track_caller]
    pub fn from_env() -> Self {
        let Some(bin) = std::env::var_os(OPENCLAW_BIN_ENV) else {
            panic!(
                "{OPENCLAW_BIN_ENV} is not set. The interop tests drive the real OpenClaw \
                 {OPENCLAW_VERSION} CLI; run the suite with ./scripts/test, which installs it \
                 (scripts/setup-openclaw) and sets the variable."
            );
        };
        let bin = PathBuf::from(bin);
        if !is_executable(&bin) {
            panic!(
                "{OPENCLAW_BIN_ENV}={} is not an executable file. Run ./scripts/test (or \
                 scripts/setup-openclaw) to install OpenClaw {OPENCLAW_VERSION}.",
                bin.display()
            );
        }
        require_loopback_only_netns();
        Self { bin }
    }

    /// The CLI's path.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// The Node binary and OpenClaw's `dist` directory, read from the wrapper
    /// (`exec '<node>' '<package>/openclaw.mjs' "$@"`), for tests that import one of its
    /// modules directly.
    pub fn node_and_dist(&self) -> (PathBuf, PathBuf) {
        let wrapper = std::fs::read_to_string(&self.bin).expect("read the OpenClaw wrapper");
        let exec = wrapper
            .lines()
            .find_map(|l| l.strip_prefix("exec "))
            .expect("the wrapper ends with an exec line");
        let quoted: Vec<&str> = exec.split('\'').skip(1).step_by(2).collect();
        let [node, entry, ..] = quoted[..] else {
            panic!("unexpected exec line in {}: {exec}", self.bin.display());
        };
        let dist = Path::new(entry).with_file_name("dist");
        (PathBuf::from(node), dist)
    }

    /// A private home with the base OpenClaw config merged with `overrides`,
    /// for runs that must share state (`oc.cli().in_home(&home)`).
    pub fn isolated_home(&self, overrides: &Value) -> IsolatedHome {
        IsolatedHome::for_openclaw(overrides)
    }

    /// A builder for one `openclaw …` run in a private home (see
    /// [`crate::IsolatedHome`]).
    pub fn cli<'h>(&self) -> CliCommand<'h> {
        CliCommand::new(self.bin.clone(), Flavor::OpenClaw)
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
