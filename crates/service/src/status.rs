//! The service part of `gateway status`: the unit file, `is-enabled` and `systemctl show`,
//! as OpenClaw reports them.

use super::context::{Context, LABEL, LOADED_TEXT, NOT_LOADED_TEXT};
use super::{systemctl, unit};
use serde_json::{Value, json};

/// The service section of `gateway status`.
pub struct ServiceStatus {
    json: Value,
    text: String,
}

impl ServiceStatus {
    /// OpenClaw's `service` object of `gateway status --json` (label, loaded, loadedText,
    /// notLoadedText, command, runtime), with the unit's name, path and `installed`.
    pub fn json(&self) -> Value {
        self.json.clone()
    }

    /// `Service: systemd (enabled)` and, when installed, the unit file, its command and
    /// `Runtime: running (pid 4242, state active, sub running)`.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// Inspects this machine's gateway service: the unit file, `is-enabled` and `show`. `None`
/// where there are no systemd user services to speak of (not Linux, no `HOME`). Nothing is
/// run when no unit is installed.
pub fn inspect(env: &dyn Fn(&str) -> Option<String>) -> Option<ServiceStatus> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let ctx = Context::from_env(env).ok()?;
    let Ok(unit_text) = std::fs::read_to_string(&ctx.path) else {
        let mut json = ctx.snapshot(Some(false));
        json["installed"] = json!(false);
        json["runtime"] = json!({"status": "stopped", "missingUnit": true});
        return Some(ServiceStatus {
            json,
            text: format!(
                "Service: {LABEL} (not installed: `clawgate gateway install` sets up {})\n",
                ctx.unit
            ),
        });
    };
    let loaded = ctx.enabled();
    let runtime = runtime(&ctx);
    let exec_start = unit::exec_start(&unit_text);
    let mut json = ctx.snapshot(loaded);
    json["installed"] = json!(true);
    json["command"] = json!({"execStart": exec_start, "sourcePath": ctx.path});
    json["runtime"] = runtime.clone();
    let state = match loaded {
        Some(true) => LOADED_TEXT,
        Some(false) => NOT_LOADED_TEXT,
        None => "unknown",
    };
    let mut text = format!(
        "Service: {LABEL} ({state})\nService file: {}\n",
        ctx.path.display()
    );
    if let Some(cmd) = exec_start {
        text.push_str(&format!("Command: {cmd}\n"));
    }
    text.push_str(&format!("Runtime: {}\n", runtime_line(&runtime)));
    Some(ServiceStatus { json, text })
}

/// `systemctl show` as OpenClaw's `readSystemdServiceRuntime` reports it: `status` running
/// (ActiveState active), stopped (inactive or failed) or unknown, with the systemd state,
/// sub-state, main pid and the last exit.
fn runtime(ctx: &Context) -> Value {
    let unknown = |detail: String| json!({"status": "unknown", "detail": detail});
    let out = match ctx.systemctl.user(&[
        "show",
        &ctx.unit,
        "--no-page",
        "--property",
        "Id,LoadState,ActiveState,SubState,Result,NRestarts,MainPID,ExecMainStatus,ExecMainCode",
    ]) {
        Ok(out) if out.success => out,
        Ok(out) => {
            return unknown(match systemctl::classify(&out.detail) {
                Some(u) => u.message(),
                None => out.detail,
            });
        }
        Err(u) => return unknown(u.message()),
    };
    let show = systemctl::parse_show(&out.stdout);
    let get = |key| show.get(key).copied().unwrap_or_default();
    if get("LoadState") != "loaded" {
        return unknown(format!(
            "{} is not loaded by the user systemd manager (LoadState={}); run `systemctl --user daemon-reload`",
            ctx.unit,
            get("LoadState")
        ));
    }
    let active = get("ActiveState");
    let status = match active {
        "active" => "running",
        "inactive" | "failed" => "stopped",
        _ => "unknown",
    };
    let mut rt = json!({"status": status, "state": active, "subState": get("SubState")});
    if let Some(pid) = get("MainPID").parse::<u32>().ok().filter(|p| *p > 0) {
        rt["pid"] = json!(pid);
    }
    // ExecMainCode is the CLD_* code of the main process's last exit; 0 means it has not
    // exited yet, and then ExecMainStatus says nothing.
    let reason = match get("ExecMainCode") {
        "1" => Some("exited"),
        "2" => Some("killed"),
        "3" => Some("dumped"),
        _ => None,
    };
    if let (Some(reason), Ok(code)) = (reason, get("ExecMainStatus").parse::<i32>()) {
        rt["lastExitStatus"] = json!(code);
        rt["lastExitReason"] = json!(reason);
    }
    for (key, field) in [("Result", "result"), ("NRestarts", "nRestarts")] {
        if !get(key).is_empty() {
            rt[field] = json!(get(key));
        }
    }
    rt
}

/// OpenClaw's `formatRuntimeStatus`: `running (pid 4242, state active, sub running)`.
fn runtime_line(rt: &Value) -> String {
    let text = |key: &str| rt.get(key).and_then(Value::as_str).unwrap_or_default();
    let status = text("status");
    let mut details = Vec::new();
    if let Some(pid) = rt.get("pid") {
        details.push(format!("pid {pid}"));
    }
    if !text("state").is_empty() && !text("state").eq_ignore_ascii_case(status) {
        details.push(format!("state {}", text("state")));
    }
    if !text("subState").is_empty() {
        details.push(format!("sub {}", text("subState")));
    }
    if let Some(code) = rt.get("lastExitStatus") {
        details.push(format!("last exit {code}"));
    }
    if !text("lastExitReason").is_empty() {
        details.push(format!("reason {}", text("lastExitReason")));
    }
    if !text("detail").is_empty() {
        details.push(text("detail").to_owned());
    }
    if details.is_empty() {
        status.to_owned()
    } else {
        format!("{status} ({})", details.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_lines_read_like_openclaws() {
        let rt = json!({"status": "running", "state": "active", "subState": "running", "pid": 42});
        assert_eq!(
            runtime_line(&rt),
            "running (pid 42, state active, sub running)"
        );
        let rt = json!({"status": "stopped", "state": "failed", "subState": "failed",
            "lastExitStatus": 78, "lastExitReason": "exited"});
        assert_eq!(
            runtime_line(&rt),
            "stopped (state failed, sub failed, last exit 78, reason exited)"
        );
        assert_eq!(
            runtime_line(&json!({"status": "unknown", "detail": "x"})),
            "unknown (x)"
        );
    }
}
