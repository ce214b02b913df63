//! The service this invocation manages (the unit under this profile's name, in the user's
//! systemd directory) and how its commands fail.

use super::systemctl::{self, Systemctl, Unavailable};
use super::unit;
use clawgate_config as config;
use serde_json::{Value, json};
use std::path::PathBuf;

/// Why a command failed: a bad option or config, or the service manager (failed, unusable,
/// or no unit to act on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    Usage,
    Service,
}

/// OpenClaw's service label and its words for an enabled / disabled unit.
pub const LABEL: &str = "systemd";
pub const LOADED_TEXT: &str = "enabled";
pub const NOT_LOADED_TEXT: &str = "disabled";

/// A command that did not do what was asked.
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
    pub hints: Vec<String>,
}

impl Failure {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
            hints: Vec::new(),
        }
    }

    pub fn unavailable(action: &str, why: &Unavailable) -> Self {
        Failure {
            kind: FailureKind::Service,
            message: format!("gateway {action} failed: {}", why.message()),
            hints: why.hints(),
        }
    }

    /// A systemctl step that failed: because user services are unusable here (with the
    /// hints for that), or for its own reason.
    pub fn step(action: &str, step: &str, out: &systemctl::Outcome) -> Self {
        match systemctl::classify(&out.detail) {
            Some(u) => Failure::unavailable(action, &u),
            None => Failure::new(
                FailureKind::Service,
                format!(
                    "gateway {action} failed: systemctl {step} failed: {}",
                    if out.detail.is_empty() {
                        "unknown error"
                    } else {
                        &out.detail
                    }
                ),
            ),
        }
    }

    pub fn not_installed(action: &str, ctx: &Context) -> Self {
        Failure {
            kind: FailureKind::Service,
            message: format!(
                "gateway {action} failed: the gateway service is not installed ({} not found)",
                ctx.path.display()
            ),
            hints: vec![
                "install it with `clawgate gateway install`, or run the gateway in the foreground: `clawgate gateway run`".to_owned(),
            ],
        }
    }
}

/// The service this invocation manages.
pub struct Context {
    pub unit: String,
    pub path: PathBuf,
    pub home: PathBuf,
    pub profile: Option<String>,
    pub systemctl: Systemctl,
}

impl Context {
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Self, Failure> {
        let home = env("HOME").filter(|h| !h.is_empty()).ok_or_else(|| {
            Failure::new(
                FailureKind::Usage,
                "HOME is not set; the gateway's user unit lives under ~/.config/systemd/user",
            )
        })?;
        let profile = config::active_profile(env);
        let unit = unit::unit_name(profile.as_deref());
        let home = PathBuf::from(home);
        Ok(Context {
            path: unit::unit_path(&home, &unit),
            unit,
            home,
            profile,
            systemctl: Systemctl::from_env(env),
        })
    }

    /// `systemctl --user <args>` that must succeed.
    pub fn run(&self, action: &str, args: &[&str]) -> Result<systemctl::Outcome, Failure> {
        let out = self
            .systemctl
            .user(args)
            .map_err(|u| Failure::unavailable(action, &u))?;
        if out.success {
            Ok(out)
        } else {
            Err(Failure::step(action, args[0], &out))
        }
    }

    /// `is-enabled`: `None` when systemd could not say.
    pub fn enabled(&self) -> Option<bool> {
        let out = self.systemctl.user(&["is-enabled", &self.unit]).ok()?;
        if out.success {
            Some(true)
        } else {
            systemctl::classify(&out.detail).is_none().then_some(false)
        }
    }

    /// OpenClaw's service snapshot (`buildDaemonServiceSnapshot`) plus the unit's name and path.
    pub fn snapshot(&self, loaded: Option<bool>) -> Value {
        json!({
            "label": LABEL,
            "unit": self.unit,
            "unitPath": self.path,
            "loaded": loaded,
            "loadedText": LOADED_TEXT,
            "notLoadedText": NOT_LOADED_TEXT,
        })
    }
}
