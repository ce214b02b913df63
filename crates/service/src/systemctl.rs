//! Running `systemctl --user`, telling "systemd user services are unavailable here" apart
//! from a failed action (OpenClaw's `systemd-exec.ts` / `systemd-hints.ts`), and reading
//! `systemctl show`.

use std::collections::HashMap;
use std::ffi::OsString;
use std::process::{Command, Stdio};

/// Names the systemctl to run instead of the one on `PATH` (tests use a fake one).
const SYSTEMCTL_ENV: &str = "CLAWGATE_SYSTEMCTL";

/// The systemctl binary this process uses.
pub struct Systemctl {
    program: OsString,
}

/// How one systemctl run ended.
pub struct Outcome {
    pub success: bool,
    pub stdout: String,
    /// stderr then stdout, trimmed: what systemctl said (OpenClaw's `readSystemctlDetail`).
    pub detail: String,
}

/// Why systemd user services cannot be used on this machine.
#[derive(Debug)]
pub enum Unavailable {
    /// There is no systemctl to run.
    Missing(String),
    /// systemctl cannot reach this user's manager: no login session, no `XDG_RUNTIME_DIR`
    /// (typical over SSH on a server without lingering).
    UserBus(String),
    /// Not booted with systemd, or the user scope is not supported.
    Other(String),
}

impl Unavailable {
    pub fn message(&self) -> String {
        match self {
            Unavailable::Missing(why) => format!(
                "systemctl not available; systemd user services are required on Linux ({why})"
            ),
            Unavailable::UserBus(detail) | Unavailable::Other(detail) => {
                format!("systemctl --user unavailable: {detail}")
            }
        }
    }

    /// OpenClaw's `renderSystemdUnavailableHints`, naming clawgate's foreground command.
    pub fn hints(&self) -> Vec<String> {
        let mut hints = vec![
            "systemd user services are unavailable; install/enable systemd or run the gateway under your supervisor (`clawgate gateway run` runs it in the foreground).".to_owned(),
        ];
        if matches!(self, Unavailable::UserBus(_)) {
            hints.push("On a headless server (SSH/no desktop session): run `sudo loginctl enable-linger $(whoami)` to persist your systemd user session across logins.".to_owned());
            hints.push("Also ensure XDG_RUNTIME_DIR is set: `export XDG_RUNTIME_DIR=/run/user/$(id -u)`, then retry.".to_owned());
        }
        hints.push("If you're in a container, run the gateway in the foreground instead: `clawgate gateway run`.".to_owned());
        hints
    }
}

/// Whether what a failed systemctl said means user services are unusable here (OpenClaw's
/// `classifySystemdUnavailableDetail`), rather than that one action failed.
pub fn classify(detail: &str) -> Option<Unavailable> {
    let d = detail.to_lowercase();
    let user_bus = [
        "failed to connect to bus",
        "failed to connect to user scope bus",
        "dbus_session_bus_address",
        "xdg_runtime_dir",
        "no medium found",
    ];
    let other = [
        "not been booted with systemd",
        "systemctl --user unavailable",
        "not supported",
    ];
    if user_bus.iter().any(|s| d.contains(s)) {
        Some(Unavailable::UserBus(detail.to_owned()))
    } else if other.iter().any(|s| d.contains(s)) {
        Some(Unavailable::Other(detail.to_owned()))
    } else {
        None
    }
}

impl Systemctl {
    /// `CLAWGATE_SYSTEMCTL` if set, else `systemctl` looked up on `PATH` when run.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Self {
        let program = env(SYSTEMCTL_ENV)
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "systemctl".to_owned());
        Systemctl {
            program: program.into(),
        }
    }

    /// `systemctl --user <args>`; `Err` only when systemctl could not be started at all.
    pub fn user(&self, args: &[&str]) -> Result<Outcome, Unavailable> {
        let out = Command::new(&self.program)
            .arg("--user")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                Unavailable::Missing(format!(
                    "cannot run {}: {e}",
                    self.program.to_string_lossy()
                ))
            })?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        Ok(Outcome {
            success: out.status.success(),
            detail: format!("{} {}", stderr.trim(), stdout.trim())
                .trim()
                .to_owned(),
            stdout,
        })
    }

    /// Whether this user's systemd manager can be used (OpenClaw's `assertSystemdAvailable`:
    /// `systemctl --user status` succeeds, or fails for a reason other than reachability).
    pub fn check_available(&self) -> Result<(), Unavailable> {
        let out = self.user(&["status"])?;
        if out.success {
            return Ok(());
        }
        match classify(&out.detail) {
            Some(unavailable) => Err(unavailable),
            None if !out.detail.is_empty() => Ok(()),
            None => Err(Unavailable::Other(
                "systemctl --user status failed without saying why".to_owned(),
            )),
        }
    }
}

/// The `Key=Value` lines of `systemctl show`.
pub fn parse_show(stdout: &str) -> HashMap<&str, &str> {
    stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_managers_are_told_apart_from_failed_actions() {
        assert!(matches!(
            classify("Failed to connect to bus: No medium found"),
            Some(Unavailable::UserBus(_))
        ));
        assert!(matches!(
            classify(
                "System has not been booted with systemd as init system (PID 1). Can't operate."
            ),
            Some(Unavailable::Other(_))
        ));
        assert!(classify("Failed to disable unit: Unit file x.service does not exist.").is_none());
        let hints = Unavailable::UserBus(String::new()).hints().join("\n");
        assert!(hints.contains("loginctl enable-linger"), "{hints}");
        let hints = Unavailable::Missing(String::new()).hints().join("\n");
        assert!(!hints.contains("linger"), "{hints}");
        assert!(hints.contains("clawgate gateway run"), "{hints}");
    }

    #[test]
    fn show_output_is_parsed() {
        let show = parse_show("Id=a.service\nActiveState=active\nMainPID=42\nnoise\n");
        assert_eq!(show.get("ActiveState"), Some(&"active"));
        assert_eq!(show.get("MainPID"), Some(&"42"));
        assert_eq!(show.len(), 3);
    }
}
