//! The gateway as a systemd user service (`clawgate gateway install|uninstall|start|stop|
//! restart` and the service part of `gateway status`), under OpenClaw's unit name, path
//! and policy (OpenClaw 2026.9.6 `src/daemon/systemd*.ts`, `src/cli/daemon-cli/*.ts`), so a
//! unit either of them installs is the one the other's scripts and doctor look for.
//!
//! systemctl calls, in OpenClaw's order:
//! * every command first runs `systemctl --user status`: are user services usable at all;
//! * install: write the unit, `daemon-reload`, `enable <unit>`, `restart <unit>`, then
//!   `is-enabled <unit>` to verify;
//! * start / restart: `reset-failed <unit>`, then `start` / `restart <unit>`;
//! * stop: `stop <unit>`;
//! * uninstall: `disable --now <unit>`, remove the unit (and its `.bak`), `daemon-reload`
//!   (OpenClaw skips the reload, leaving systemd a stale unit in memory).
//!
//! Outcomes, as OpenClaw's: done (also install when already installed, and stop when
//! nothing is installed); a [`FailureKind::Service`] failure when the service manager failed
//! or is unavailable or there is no unit to start; a [`FailureKind::Usage`] failure for a bad
//! option or config.

mod context;
pub mod status;
mod systemctl;
mod unit;

use clawgate_config::{self as config, GatewayRunInputs, PathOrigin};
pub use context::{Context, Failure, FailureKind, LABEL, LOADED_TEXT, NOT_LOADED_TEXT};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What `install` is asked for.
#[derive(Debug, Default)]
pub struct InstallOptions {
    /// Port the service's gateway listens on (default: the gateway's own resolution).
    pub port: Option<u16>,
    /// Rewrite an existing unit (the old one kept as `<unit>.bak`) and restart the service.
    pub force: bool,
}

/// What a command did: lines for a person, the JSON `result` word and warnings.
pub struct Done {
    pub result: &'static str,
    pub lines: Vec<String>,
    pub warnings: Vec<String>,
    /// Whether the unit is enabled afterwards, when the command knows; otherwise JSON output
    /// asks `is-enabled` (text output does not need it).
    pub loaded: Option<bool>,
}

/// Runs `body` (one of [`install`], [`uninstall`], [`start`], [`restart`], [`stop`]) for the
/// current environment's service after checking that systemd user services are usable.
pub fn run(
    action: &'static str,
    env: &dyn Fn(&str) -> Option<String>,
    body: impl FnOnce(&Context) -> Result<Done, Failure>,
) -> Result<(Context, Done), Failure> {
    let ctx = Context::from_env(env)?;
    ctx.systemctl
        .check_available()
        .map_err(|u| Failure::unavailable(action, &u))?;
    let done = body(&ctx)?;
    Ok((ctx, done))
}

// ---- install --------------------------------------------------------------------------------

/// Writes the unit (keeping a replaced one as `.bak` under `force`), reloads, enables and
/// restarts it, and checks that it is enabled.
pub fn install(ctx: &Context, args: &InstallOptions) -> Result<Done, Failure> {
    let env = config::process_env;
    let config_error = |e: config::ConfigError| {
        let mut f = Failure::new(FailureKind::Usage, format!("gateway install failed: {e}"));
        f.hints
            .push("fix the config, then run `clawgate gateway install` again".to_owned());
        f
    };
    let location = config::locate_config(None, None, &env);
    let loaded = config::load_config(&location, &env).map_err(config_error)?;
    let inputs = GatewayRunInputs {
        port: args.port,
        ..GatewayRunInputs::default()
    };
    let settings =
        config::resolve_gateway_settings(&inputs, loaded.as_ref(), &env).map_err(config_error)?;
    let exe = std::env::current_exe()
        .and_then(std::path::absolute)
        .map_err(|e| {
            Failure::new(
                FailureKind::Service,
                format!("gateway install failed: cannot tell this clawgate binary's path: {e}"),
            )
        })?;
    let absolute = |p: PathBuf| std::path::absolute(&p).unwrap_or(p);
    let state_dir = ["CLAWGATE_STATE_DIR", "OPENCLAW_STATE_DIR"]
        .iter()
        .any(|name| env(name).is_some_and(|v| !v.is_empty()))
        .then(|| absolute(config::resolve_state_dir(None, &env)));
    let config_path = (location.origin != PathOrigin::Default).then(|| absolute(location.path));
    let text = unit::render(&unit::UnitSpec {
        exe: &exe,
        port: settings.port,
        profile: ctx.profile.as_deref(),
        home: &ctx.home,
        state_dir: state_dir.as_deref(),
        config_path: config_path.as_deref(),
    })
    .map_err(|e| Failure::new(FailureKind::Usage, format!("gateway install failed: {e}")))?;

    let previous = match std::fs::read(&ctx.path) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_failure("read", &ctx.path, &e)),
    };
    if let Some(previous) = &previous
        && !args.force
    {
        // OpenClaw's answer to installing twice: success, nothing touched, how to redo it.
        let loaded = ctx.enabled();
        let state = if previous == text.as_bytes() {
            "unit up to date"
        } else {
            "unit differs from what this install would write"
        };
        let enabled = match loaded {
            Some(true) => LOADED_TEXT,
            Some(false) => NOT_LOADED_TEXT,
            None => "enablement unknown",
        };
        return Ok(Done {
            result: "already-installed",
            lines: vec![
                format!(
                    "Gateway service already installed: {} ({state}, {enabled}).",
                    ctx.path.display()
                ),
                "Reinstall with: clawgate gateway install --force".to_owned(),
            ],
            warnings: Vec::new(),
            loaded,
        });
    }

    let mut lines = vec![format!("Installed systemd service: {}", ctx.path.display())];
    if let Some(previous) = &previous {
        let backup = backup_path(&ctx.path);
        write_file(&backup, previous)?;
        lines.push(format!("Previous unit backed up to: {}", backup.display()));
    }
    write_file(&ctx.path, text.as_bytes())?;
    for step in [
        &["daemon-reload"][..],
        &["enable", &ctx.unit],
        &["restart", &ctx.unit],
    ] {
        ctx.run("install", step)?;
    }
    let loaded = ctx.enabled();
    if loaded != Some(true) {
        return Err(Failure::new(
            FailureKind::Service,
            format!(
                "gateway install verification failed: {} is not {LOADED_TEXT} (systemctl --user is-enabled {})",
                ctx.unit, ctx.unit
            ),
        ));
    }
    lines.push(
        "Gateway service installed. Runtime readiness has not been checked; startup may still be in progress. Check with `clawgate gateway status` and `clawgate health`.".to_owned(),
    );
    Ok(Done {
        result: "installed",
        lines,
        warnings: linger_warning(&env).into_iter().collect(),
        loaded,
    })
}

/// `<unit>.bak`, where a forced install keeps the unit it replaces (OpenClaw's name).
fn backup_path(unit: &Path) -> PathBuf {
    let mut name = unit.as_os_str().to_owned();
    name.push(".bak");
    PathBuf::from(name)
}

/// Writes `bytes` to `path` as mode 0644 (the unit holds no secret, and systemd reads it
/// as the user), through a temporary file renamed over it so systemd never reads half a
/// unit.
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(path.file_name().unwrap_or_default());
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&tmp, bytes))
        .and_then(|()| std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)))
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| io_failure("write", path, &e))
}

fn io_failure(verb: &str, path: &Path, e: &std::io::Error) -> Failure {
    Failure::new(
        FailureKind::Service,
        format!("cannot {verb} {}: {e}", path.display()),
    )
}

/// OpenClaw's non-interactive lingering check (`ensureSystemdUserLingerNonInteractive`,
/// without its `sudo -n` attempt: installing a user service should not escalate). Silent
/// when `loginctl` cannot tell.
fn linger_warning(env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let user = env("USER")
        .or_else(|| env("LOGNAME"))
        .filter(|u| !u.is_empty())?;
    let out = Command::new("loginctl")
        .args(["show-user", &user, "-p", "Linger"])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    (out.status.success() && systemctl::parse_show(&stdout).get("Linger") == Some(&"no")).then(|| {
        format!(
            "Systemd lingering is disabled for {user}: user services stop when you log out, and the gateway with them. Run: sudo loginctl enable-linger {user}"
        )
    })
}

// ---- uninstall, start, stop, restart --------------------------------------------------------

/// Disables and stops the unit, removes it (and its `.bak`) and reloads systemd.
pub fn uninstall(ctx: &Context) -> Result<Done, Failure> {
    let out = ctx
        .systemctl
        .user(&["disable", "--now", &ctx.unit])
        .map_err(|u| Failure::unavailable("uninstall", &u))?;
    if !out.success && !already_gone(&out.detail) {
        return Err(Failure::step("uninstall", "disable", &out));
    }
    let removed = match std::fs::remove_file(&ctx.path) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(io_failure("remove", &ctx.path, &e)),
    };
    let backup = backup_path(&ctx.path);
    if let Err(e) = std::fs::remove_file(&backup)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        return Err(io_failure("remove", &backup, &e));
    }
    let line = if removed {
        ctx.run("uninstall", &["daemon-reload"])?;
        format!("Removed systemd service: {}", ctx.path.display())
    } else {
        format!("Systemd service not found at {}", ctx.path.display())
    };
    Ok(Done {
        result: "uninstalled",
        lines: vec![line],
        warnings: Vec::new(),
        loaded: Some(false),
    })
}

/// Whether a failed `disable --now` only says there was nothing to disable (OpenClaw's
/// `isSystemdUnitAlreadyMissingOrInactive`).
fn already_gone(detail: &str) -> bool {
    let d = detail.to_lowercase();
    [
        "does not exist",
        "not loaded",
        "not-found",
        "could not be found",
        "inactive",
        "not active",
    ]
    .iter()
    .any(|s| d.contains(s))
}

pub fn start(ctx: &Context) -> Result<Done, Failure> {
    activate(ctx, "start", "Started")
}

pub fn restart(ctx: &Context) -> Result<Done, Failure> {
    activate(ctx, "restart", "Restarted")
}

/// `start` / `restart`: clear a start-limit hit first, as OpenClaw does, so a unit that
/// crashed too often starts again when asked.
fn activate(ctx: &Context, action: &'static str, done: &str) -> Result<Done, Failure> {
    if !ctx.path.exists() {
        return Err(Failure::not_installed(action, ctx));
    }
    // Its outcome does not matter: there may be nothing to reset.
    let _ = ctx.systemctl.user(&["reset-failed", &ctx.unit]);
    ctx.run(action, &[action, &ctx.unit])?;
    Ok(Done {
        result: if action == "start" {
            "started"
        } else {
            "restarted"
        },
        lines: vec![format!("{done} systemd service: {}", ctx.unit)],
        warnings: Vec::new(),
        loaded: None,
    })
}

pub fn stop(ctx: &Context) -> Result<Done, Failure> {
    if !ctx.path.exists() {
        return Ok(Done {
            result: "not-loaded",
            lines: vec!["Gateway service not installed.".to_owned()],
            warnings: Vec::new(),
            loaded: Some(false),
        });
    }
    ctx.run("stop", &["stop", &ctx.unit])?;
    Ok(Done {
        result: "stopped",
        lines: vec![format!("Stopped systemd service: {}", ctx.unit)],
        warnings: Vec::new(),
        loaded: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_to_disable_is_not_a_failure() {
        assert!(already_gone(
            "Failed to disable unit: Unit file openclaw-gateway.service does not exist."
        ));
        assert!(!already_gone("Failed to disable unit: Access denied"));
    }
}
