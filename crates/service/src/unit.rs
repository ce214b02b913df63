//! The systemd user unit: its name, where it lives and what it says, as OpenClaw 2026.9.6
//! writes it (`src/daemon/constants.ts`, `systemd-unit.ts`, `systemd-service-files.ts`,
//! `service-env.ts`). OpenClaw's scripts and `openclaw doctor` find the gateway service by
//! this name, this path and the `OPENCLAW_SERVICE_MARKER`/`OPENCLAW_SERVICE_KIND` lines, so
//! all of them are copied exactly; only `ExecStart` runs clawgate.

use std::path::{Path, PathBuf};

/// The unit name without a profile (OpenClaw's `GATEWAY_SYSTEMD_SERVICE_NAME`).
const BASE_NAME: &str = "openclaw-gateway";

/// OpenClaw's fixed systemd policy (`SYSTEMD_FIXED_POLICY`), per section, in its order.
/// `TimeoutStopSec=330` is its `GATEWAY_SERVICE_STOP_TIMEOUT_MS`: the five-minute drain plus
/// a teardown reserve, so systemd does not SIGKILL a gateway still finishing replies.
const UNIT_POLICY: [&str; 4] = [
    "After=network-online.target",
    "Wants=network-online.target",
    "StartLimitBurst=10",
    "StartLimitIntervalSec=300",
];
const SERVICE_POLICY: [&str; 8] = [
    "Restart=always",
    "RestartSec=5",
    // 78 (EX_CONFIG) is what `gateway run` exits with on a config it refuses: restarting
    // cannot fix that, so systemd stops until the config is fixed.
    "RestartPreventExitStatus=78",
    "TimeoutStopSec=330",
    "TimeoutStartSec=30",
    // 143 = 128 + SIGTERM: a gateway stopped by systemd did not fail.
    "SuccessExitStatus=0 143",
    "OOMPolicy=continue",
    "KillMode=mixed",
];
const INSTALL_POLICY: [&str; 1] = ["WantedBy=default.target"];

/// `openclaw-gateway.service`, or `openclaw-gateway-<profile>.service` for a named profile.
pub fn unit_name(profile: Option<&str>) -> String {
    match profile {
        Some(p) => format!("{BASE_NAME}-{p}.service"),
        None => format!("{BASE_NAME}.service"),
    }
}

/// `~/.config/systemd/user/<unit>`: OpenClaw uses `$HOME/.config` whatever
/// `XDG_CONFIG_HOME` says, and its doctor scans exactly that directory.
pub fn unit_path(home: &Path, unit: &str) -> PathBuf {
    home.join(".config/systemd/user").join(unit)
}

/// What the unit runs and the environment it runs in.
pub struct UnitSpec<'a> {
    /// This clawgate binary, absolute.
    pub exe: &'a Path,
    pub port: u16,
    /// The named profile, if any (never `default`).
    pub profile: Option<&'a str>,
    pub home: &'a Path,
    /// Written only when the installing environment set one: otherwise the service derives
    /// it from `HOME` and the profile, as the CLI does.
    pub state_dir: Option<&'a Path>,
    /// Written only when the installing environment named one: a config path given
    /// explicitly must exist, the default one need not.
    pub config_path: Option<&'a Path>,
}

/// The unit file's text, byte for byte what OpenClaw's `buildSystemdUnit` writes for the
/// same command and environment. Errors name a value systemd cannot carry (a line break, a
/// path that is not UTF-8).
pub fn render(spec: &UnitSpec) -> Result<String, String> {
    let exe = utf8(spec.exe, "this clawgate binary's path")?;
    let port = spec.port.to_string();
    let mut exec_start = Vec::new();
    for arg in [exe, "gateway", "run", "--port", &port] {
        // systemd expands `$NAME` in ExecStart (not in Environment=), so a literal dollar in
        // a path must be doubled; OpenClaw does not, and such a path would break there.
        exec_start.push(escape(&arg.replace('%', "%%").replace('$', "$$"))?);
    }
    let unit = unit_name(spec.profile);
    let mut env: Vec<(&str, String)> = vec![("HOME", utf8(spec.home, "HOME")?.to_owned())];
    if let Some(dir) = spec.state_dir {
        env.push(("OPENCLAW_STATE_DIR", utf8(dir, "the state dir")?.to_owned()));
    }
    if let Some(path) = spec.config_path {
        env.push((
            "OPENCLAW_CONFIG_PATH",
            utf8(path, "the config path")?.to_owned(),
        ));
    }
    if let Some(p) = spec.profile {
        env.push(("OPENCLAW_PROFILE", p.to_owned()));
    }
    env.push(("OPENCLAW_GATEWAY_PORT", port.clone()));
    // The gateway reads this to know it runs under systemd (a second copy then defers to a
    // healthy incumbent instead of failing on the lock).
    env.push(("OPENCLAW_SYSTEMD_UNIT", unit));
    env.push(("OPENCLAW_SERVICE_MARKER", "openclaw".to_owned()));
    env.push(("OPENCLAW_SERVICE_KIND", "gateway".to_owned()));

    let mut lines = vec![
        "[Unit]".to_owned(),
        format!("Description={}", description(spec.profile)),
    ];
    lines.extend(UNIT_POLICY.map(str::to_owned));
    lines.push(String::new());
    lines.push("[Service]".to_owned());
    lines.push(format!("ExecStart={}", exec_start.join(" ")));
    lines.extend(SERVICE_POLICY.map(str::to_owned));
    for (key, value) in env {
        let assignment = format!("{key}={}", value.trim()).replace('%', "%%");
        lines.push(format!("Environment={}", escape(&assignment)?));
    }
    lines.push(String::new());
    lines.push("[Install]".to_owned());
    lines.extend(INSTALL_POLICY.map(str::to_owned));
    lines.push(String::new());
    Ok(lines.join("\n"))
}

/// `OpenClaw Gateway`, `OpenClaw Gateway (profile: <name>)`: OpenClaw's wording, which its
/// doctor parses.
fn description(profile: Option<&str>) -> String {
    match profile {
        Some(p) => format!("OpenClaw Gateway (profile: {p})"),
        None => "OpenClaw Gateway".to_owned(),
    }
}

fn utf8<'a>(path: &'a Path, what: &str) -> Result<&'a str, String> {
    path.to_str().ok_or_else(|| {
        format!(
            "{what} ({}) is not UTF-8; systemd units are text",
            path.display()
        )
    })
}

/// One word of a unit line, quoted when it holds whitespace, `"` or `\` (OpenClaw's
/// `systemdEscapeArg`). A line break cannot be carried at all.
fn escape(value: &str) -> Result<String, String> {
    if value.contains(['\r', '\n']) {
        return Err(format!(
            "{value:?} contains a line break, which a systemd unit cannot hold"
        ));
    }
    if !value.contains(|c: char| c.is_whitespace() || c == '"' || c == '\\') {
        return Ok(value.to_owned());
    }
    Ok(format!(
        "\"{}\"",
        value.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

/// The `ExecStart=` value of an installed unit, as written (for `gateway status`).
pub fn exec_start(unit_text: &str) -> Option<&str> {
    unit_text
        .lines()
        .find_map(|l| l.trim().strip_prefix("ExecStart="))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec<'a>(exe: &'a Path, profile: Option<&'a str>) -> UnitSpec<'a> {
        UnitSpec {
            exe,
            port: 18789,
            profile,
            home: Path::new("/home/u"),
            state_dir: None,
            config_path: None,
        }
    }

    #[test]
    fn names_follow_openclaw() {
        assert_eq!(unit_name(None), "openclaw-gateway.service");
        assert_eq!(unit_name(Some("work")), "openclaw-gateway-work.service");
        assert_eq!(
            unit_path(Path::new("/home/u"), "openclaw-gateway.service"),
            Path::new("/home/u/.config/systemd/user/openclaw-gateway.service")
        );
    }

    #[test]
    fn unusual_paths_are_quoted_and_escaped_like_openclaw() {
        let text = render(&spec(Path::new("/opt/my apps/50%/$x/clawgate"), Some("w"))).unwrap();
        assert!(
            text.contains(
                "ExecStart=\"/opt/my apps/50%%/$$x/clawgate\" gateway run --port 18789\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("Description=OpenClaw Gateway (profile: w)\n"),
            "{text}"
        );
        let home = Path::new("/home/a \"b\"\\c");
        let mut s = spec(Path::new("/bin/clawgate"), None);
        s.home = home;
        let text = render(&s).unwrap();
        assert!(
            text.contains("Environment=\"HOME=/home/a \\\"b\\\"\\\\c\"\n"),
            "{text}"
        );
    }

    #[test]
    fn line_breaks_are_refused() {
        let err = render(&spec(Path::new("/bin/claw\ngate"), None)).unwrap_err();
        assert!(err.contains("line break"), "{err}");
    }

    #[test]
    fn exec_start_is_read_back() {
        let text = render(&spec(Path::new("/bin/clawgate"), None)).unwrap();
        assert_eq!(
            exec_start(&text),
            Some("/bin/clawgate gateway run --port 18789")
        );
    }
}
