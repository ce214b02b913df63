//! The permissions of the state dir and the config file: OpenClaw's `fs.*` audit findings
//! and the repair that `security audit --fix` and `doctor --fix` apply.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Finding, Severity};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathPermissions {
    pub is_symlink: bool,
    /// `mode & 0o777`.
    pub bits: u32,
}

/// `chmod 700 <path>`, quoted for a POSIX shell when needed (OpenClaw's
/// `formatPermissionRemediation`).
pub fn chmod_command(path: &Path, mode: u32) -> String {
    let p = path.display().to_string();
    let separator = if p.starts_with('-') { "-- " } else { "" };
    let plain = !p.is_empty()
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c));
    let quoted = if plain {
        p
    } else {
        format!("'{}'", p.replace('\'', "'\\''"))
    };
    format!("chmod {mode:03o} {separator}{quoted}")
}

/// The state dir and config file checks (`collectFilesystemFindings`). A path that could
/// not be inspected (missing) has no findings.
pub fn filesystem_findings(
    state_dir: &Path,
    state_dir_perms: Option<PathPermissions>,
    config_path: &Path,
    config_perms: Option<PathPermissions>,
) -> Vec<Finding> {
    use Severity::{Critical, Warn};
    let mut findings = Vec::new();
    if let Some(p) = state_dir_perms {
        let at = format!("{} mode={:03o}", state_dir.display(), p.bits);
        let fix = chmod_command(state_dir, 0o700);
        if p.is_symlink {
            findings.push(Finding::bare(
                "fs.state_dir.symlink",
                Warn,
                "State dir is a symlink",
                format!(
                    "{} is a symlink; treat this as an extra trust boundary.",
                    state_dir.display()
                ),
            ));
        }
        if p.bits & 0o002 != 0 {
            findings.push(Finding::new(
                "fs.state_dir.perms_world_writable",
                Critical,
                "State dir is world-writable",
                format!("{at}; other users can write into your OpenClaw state."),
                fix,
            ));
        } else if p.bits & 0o020 != 0 {
            findings.push(Finding::new(
                "fs.state_dir.perms_group_writable",
                Warn,
                "State dir is group-writable",
                format!("{at}; group users can write into your OpenClaw state."),
                fix,
            ));
        } else if p.bits & 0o044 != 0 {
            findings.push(Finding::new(
                "fs.state_dir.perms_readable",
                Warn,
                "State dir is readable by others",
                format!("{at}; consider restricting to 700."),
                fix,
            ));
        }
    }
    if let Some(p) = config_perms {
        let at = format!("{} mode={:03o}", config_path.display(), p.bits);
        let fix = chmod_command(config_path, 0o600);
        if p.is_symlink {
            findings.push(Finding::bare(
                "fs.config.symlink",
                Warn,
                "Config file is a symlink",
                format!(
                    "{} is a symlink; make sure you trust its target.",
                    config_path.display()
                ),
            ));
        }
        // Who may read a symlink's target is the target's business: only writability is
        // reported through a link.
        if p.bits & 0o022 != 0 {
            findings.push(Finding::new(
                "fs.config.perms_writable",
                Critical,
                "Config file is writable by others",
                format!("{at}; another user could change gateway/auth/tool policies."),
                fix,
            ));
        } else if !p.is_symlink && p.bits & 0o004 != 0 {
            findings.push(Finding::new(
                "fs.config.perms_world_readable",
                Critical,
                "Config file is world-readable",
                format!("{at}; config can contain tokens and private settings."),
                fix,
            ));
        } else if !p.is_symlink && p.bits & 0o040 != 0 {
            findings.push(Finding::new(
                "fs.config.perms_group_readable",
                Warn,
                "Config file is group-readable",
                format!("{at}; config can contain tokens and private settings."),
                fix,
            ));
        }
    }
    findings
}

/// `lstat`, then the target's mode through a symlink when it can be read.
pub fn inspect_permissions(path: &Path) -> Option<PathPermissions> {
    use std::os::unix::fs::PermissionsExt as _;
    let link = std::fs::symlink_metadata(path).ok()?;
    let is_symlink = link.file_type().is_symlink();
    let mode = if is_symlink {
        std::fs::metadata(path).map_or(link.permissions().mode(), |m| m.permissions().mode())
    } else {
        link.permissions().mode()
    };
    Some(PathPermissions {
        is_symlink,
        bits: mode & 0o777,
    })
}

/// One `--fix` permission change, in OpenClaw's JSON shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChmodAction {
    pub kind: &'static str,
    pub path: PathBuf,
    /// Decimal in JSON, as OpenClaw writes it (448 = 0o700).
    pub mode: u32,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ChmodAction {
    /// OpenClaw's line for it: `chmod 700 ~/.openclaw`, `skip chmod … (already)`, or the
    /// failure.
    pub fn line(&self, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
        let target = format!("{:03o} {}", self.mode, shorten_home(&self.path, env));
        match (self.ok, self.skipped, &self.error) {
            (true, _, _) => Some(format!("chmod {target}")),
            (false, Some(why), _) => Some(format!("skip chmod {target} ({why})")),
            (false, None, Some(e)) => Some(format!("chmod {target} failed: {e}")),
            (false, None, None) => None,
        }
    }
}

/// What a chmod target must be.
#[derive(Clone, Copy)]
enum Expect {
    Dir,
    File,
}

/// chmod unless the path is a symlink, of the wrong type, missing or already right
/// (OpenClaw's `safeChmod`).
fn safe_chmod(path: &Path, mode: u32, expect: Expect) -> ChmodAction {
    use std::os::unix::fs::PermissionsExt as _;
    let action = |ok, skipped, error| ChmodAction {
        kind: "chmod",
        path: path.to_owned(),
        mode,
        ok,
        skipped,
        error,
    };
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return action(false, Some("missing"), None);
        }
        Err(e) => return action(false, None, Some(e.to_string())),
    };
    let skipped = if meta.file_type().is_symlink() {
        Some("symlink")
    } else if matches!(expect, Expect::Dir) && !meta.is_dir() {
        Some("not-a-directory")
    } else if matches!(expect, Expect::File) && !meta.is_file() {
        Some("not-a-file")
    } else if meta.permissions().mode() & 0o777 == mode {
        Some("already")
    } else {
        None
    };
    if skipped.is_some() {
        return action(false, skipped, None);
    }
    match std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
        Ok(()) => action(true, None, None),
        Err(e) => action(false, None, Some(e.to_string())),
    }
}

/// OpenClaw's `--fix` for what clawgate has: the state dir to 700 and the config file to
/// 600 (`security audit --fix`, `doctor --fix`).
pub fn fix_permissions(state_dir: &Path, config_path: &Path) -> Vec<ChmodAction> {
    vec![
        safe_chmod(state_dir, 0o700, Expect::Dir),
        safe_chmod(config_path, 0o600, Expect::File),
    ]
}

/// The `fs.*` findings of the state dir and config file as they are now.
pub fn current_filesystem_findings(state_dir: &Path, config_path: &Path) -> Vec<Finding> {
    filesystem_findings(
        state_dir,
        inspect_permissions(state_dir),
        config_path,
        inspect_permissions(config_path),
    )
}

/// `path` with the home directory shown as `~`.
pub fn shorten_home(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> String {
    let shown = path.display().to_string();
    match env("HOME").filter(|h| !h.is_empty() && h != "/") {
        Some(home) if shown == home => "~".to_owned(),
        Some(home) => match shown.strip_prefix(&format!("{}/", home.trim_end_matches('/'))) {
            Some(rest) => format!("~/{rest}"),
            None => shown,
        },
        None => shown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn perms(bits: u32) -> Option<PathPermissions> {
        Some(PathPermissions {
            is_symlink: false,
            bits,
        })
    }

    fn fs_ids(state: Option<PathPermissions>, cfg: Option<PathPermissions>) -> Vec<&'static str> {
        filesystem_findings(Path::new("/s"), state, Path::new("/s/c.json"), cfg)
            .into_iter()
            .map(|f| f.check_id)
            .collect()
    }

    #[test]
    fn state_dir_permissions() {
        assert_eq!(
            fs_ids(perms(0o777), None),
            ["fs.state_dir.perms_world_writable"]
        );
        assert_eq!(
            fs_ids(perms(0o770), None),
            ["fs.state_dir.perms_group_writable"]
        );
        assert_eq!(fs_ids(perms(0o755), None), ["fs.state_dir.perms_readable"]);
        assert_eq!(fs_ids(perms(0o750), None), ["fs.state_dir.perms_readable"]);
        assert_eq!(fs_ids(perms(0o700), None), Vec::<&str>::new());
        assert_eq!(fs_ids(None, None), Vec::<&str>::new());
        let link = Some(PathPermissions {
            is_symlink: true,
            bits: 0o700,
        });
        assert_eq!(fs_ids(link, None), ["fs.state_dir.symlink"]);
        let f = &filesystem_findings(Path::new("/s"), perms(0o755), Path::new("/c"), None)[0];
        assert_eq!(f.detail, "/s mode=755; consider restricting to 700.");
        assert_eq!(f.remediation.as_deref(), Some("chmod 700 /s"));
    }

    #[test]
    fn config_file_permissions() {
        assert_eq!(fs_ids(None, perms(0o666)), ["fs.config.perms_writable"]);
        assert_eq!(fs_ids(None, perms(0o620)), ["fs.config.perms_writable"]);
        assert_eq!(
            fs_ids(None, perms(0o644)),
            ["fs.config.perms_world_readable"]
        );
        assert_eq!(
            fs_ids(None, perms(0o640)),
            ["fs.config.perms_group_readable"]
        );
        assert_eq!(fs_ids(None, perms(0o600)), Vec::<&str>::new());
        let link = |bits| {
            Some(PathPermissions {
                is_symlink: true,
                bits,
            })
        };
        assert_eq!(fs_ids(None, link(0o644)), ["fs.config.symlink"]);
        assert_eq!(
            fs_ids(None, link(0o666)),
            ["fs.config.symlink", "fs.config.perms_writable"]
        );
        let f =
            &filesystem_findings(Path::new("/s"), None, Path::new("/s/c.json"), perms(0o644))[0];
        assert_eq!(
            f.detail,
            "/s/c.json mode=644; config can contain tokens and private settings."
        );
        assert_eq!(f.remediation.as_deref(), Some("chmod 600 /s/c.json"));
    }

    #[test]
    fn chmod_commands_are_quoted_for_the_shell() {
        assert_eq!(
            chmod_command(Path::new("/a/b.json"), 0o600),
            "chmod 600 /a/b.json"
        );
        assert_eq!(
            chmod_command(Path::new("/my dir/it's"), 0o700),
            "chmod 700 '/my dir/it'\\''s'"
        );
        assert_eq!(chmod_command(Path::new("-x"), 0o700), "chmod 700 -- -x");
    }

    #[test]
    fn permissions_are_read_through_symlinks() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.json");
        std::fs::write(&file, "{}").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(inspect_permissions(&file), perms(0o640));
        assert_eq!(
            inspect_permissions(&link),
            Some(PathPermissions {
                is_symlink: true,
                bits: 0o640
            })
        );
        assert_eq!(inspect_permissions(&dir.path().join("missing")), None);
    }

    #[test]
    fn fixes_chmod_only_real_files_and_dirs() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
        let file = state.join("c.json");
        std::fs::write(&file, "{}").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&state, &link).unwrap();
        let outcome = |a: ChmodAction| (a.ok, a.skipped);
        assert_eq!(
            outcome(safe_chmod(&state, 0o700, Expect::Dir)),
            (true, None)
        );
        let mode = std::fs::metadata(&state).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert_eq!(
            outcome(safe_chmod(&file, 0o600, Expect::File)),
            (false, Some("already"))
        );
        assert_eq!(
            outcome(safe_chmod(&link, 0o700, Expect::Dir)),
            (false, Some("symlink"))
        );
        assert_eq!(
            outcome(safe_chmod(&file, 0o700, Expect::Dir)),
            (false, Some("not-a-directory"))
        );
        assert_eq!(
            outcome(safe_chmod(&state, 0o600, Expect::File)),
            (false, Some("not-a-file"))
        );
        assert_eq!(
            outcome(safe_chmod(&dir.path().join("gone"), 0o600, Expect::File)),
            (false, Some("missing"))
        );
        let json = serde_json::to_value(safe_chmod(&state, 0o700, Expect::Dir)).unwrap();
        assert_eq!(
            json,
            json!({"kind": "chmod", "path": state, "mode": 448, "ok": false, "skipped": "already"})
        );
    }
}
