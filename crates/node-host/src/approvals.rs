//! Exec approvals: the policy document that decides whether `system.run` may run a command
//! on this node (`security` full/allowlist/deny, `ask` off/on-miss/always, allowlists per
//! agent), kept as JSON in the node's state directory and served through
//! `system.execApprovals.get/set` in the shape the OpenClaw node host uses:
//! `{path, exists, file:{version:1, socket:{path}, defaults:{…}, agents:{…}}, hash}`.
//!
//! The document itself lives in [`clawgate_config::exec_approvals`]; here is the matching of
//! a command against its allowlist and the decision table.

pub use clawgate_config::exec_approvals::*;

use crate::argv;
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------
// Allowlist matching

/// A glob over paths: `**` any characters, `*` any but `/`, `?` one but `/`.
fn glob_matches(pattern: &str, target: &str) -> bool {
    let mut re = String::from("^");
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                re.push_str(".*");
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            other => re.push_str(&regex::escape(&other.to_string())),
        }
    }
    re.push('$');
    regex::Regex::new(&re).is_ok_and(|r| r.is_match(target))
}

fn expand_home(pattern: &str) -> String {
    if let Some(rest) = pattern.strip_prefix('~')
        && let Some(home) = std::env::var_os("HOME")
    {
        return format!("{}{rest}", Path::new(&home).display());
    }
    pattern.to_owned()
}

fn has_path_selector(s: &str) -> bool {
    s.contains('/') || s.contains('\\') || s.contains('~')
}

/// `sha256:cwd-argv:v1:<hex>`: binds an allow-always grant to the exact arguments and cwd.
pub fn cwd_bound_arg_pattern(argv: &[String], cwd: &str) -> String {
    let cwd = normalize_posix(cwd);
    let args = &argv[argv.len().min(1)..];
    let mut subject = format!("{}\0{cwd}\0{}\0", cwd.len(), args.len());
    for arg in args {
        subject.push_str(&format!("{}\0{arg}\0", arg.len()));
    }
    format!("sha256:cwd-argv:v1:{}", sha256_hex(subject.as_bytes()))
}

/// `path.posix.normalize`: collapses `//`, `.` and `..` lexically.
fn normalize_posix(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let absolute = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    let trailing = p.ends_with('/') && !joined.is_empty();
    let mut out = if absolute {
        format!("/{joined}")
    } else {
        joined
    };
    if out.is_empty() {
        out = ".".into();
    }
    if trailing {
        out.push('/');
    }
    out
}

fn arg_pattern_matches(arg_pattern: &str, argv: &[String]) -> bool {
    if arg_pattern.starts_with("sha256:argv:") {
        return false;
    }
    let args = &argv[argv.len().min(1)..];
    let subject = if arg_pattern.contains('\0') {
        if args.is_empty() {
            "\0\0".to_owned()
        } else {
            format!("{}\0", args.join("\0"))
        }
    } else {
        args.join(" ")
    };
    regex::Regex::new(arg_pattern).is_ok_and(|r| r.is_match(&subject))
}

/// One command to check: its argv and where its executable resolved to.
#[derive(Debug, Clone)]
pub struct ResolvedCommand {
    pub argv: Vec<String>,
    pub resolved: Option<PathBuf>,
}

impl ResolvedCommand {
    pub fn resolve(argv: Vec<String>, cwd: Option<&Path>, path_env: &str) -> Self {
        let resolved = argv
            .first()
            .and_then(|a0| argv::resolve_executable(a0, cwd, path_env));
        ResolvedCommand { argv, resolved }
    }

    /// The resolved path with symlinks followed (what path patterns are matched against).
    pub fn trust_path(&self) -> Option<PathBuf> {
        let p = self.resolved.as_ref()?;
        Some(std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
    }
}

/// The allowlist entry that permits `cmd` run in `cwd`, if any.
pub fn match_allowlist<'a>(
    entries: &'a [AllowEntry],
    cmd: &ResolvedCommand,
    cwd: Option<&str>,
) -> Option<&'a AllowEntry> {
    if entries.is_empty() {
        return None;
    }
    let resolved = cmd.resolved.as_ref()?;
    if let Some(wild) = entries.iter().find(|e| {
        e.pattern.trim() == "*"
            && e.arg_pattern.is_none()
            && e.source.as_deref() != Some("allow-always")
    }) {
        return Some(wild);
    }
    let trust = cmd.trust_path()?;
    let trust = trust.to_string_lossy();
    let argv0 = cmd.argv.first().map(String::as_str).unwrap_or("");
    let mut names: Vec<String> = Vec::new();
    if !has_path_selector(argv0) {
        names.push(argv::basename(argv0).to_owned());
        if let Some(base) = resolved.file_name() {
            names.push(base.to_string_lossy().into_owned());
        }
    }
    let mut path_only = None;
    for entry in entries {
        let pattern = entry.pattern.trim();
        if pattern.is_empty() {
            continue;
        }
        let hit = if has_path_selector(pattern) {
            glob_matches(&expand_home(pattern), &trust)
        } else {
            pattern != "*" && names.iter().any(|n| glob_matches(pattern, n))
        };
        if !hit {
            continue;
        }
        match &entry.arg_pattern {
            None => {
                if entry.source.as_deref() != Some("allow-always") && path_only.is_none() {
                    path_only = Some(entry);
                }
            }
            Some(ap) if ap.starts_with("sha256:cwd-argv:v1:") => {
                if let Some(cwd) = cwd
                    && *ap == cwd_bound_arg_pattern(&cmd.argv, cwd)
                {
                    return Some(entry);
                }
            }
            Some(ap) => {
                if entry.source.as_deref() != Some("allow-always")
                    && arg_pattern_matches(ap, &cmd.argv)
                {
                    return Some(entry);
                }
            }
        }
    }
    path_only
}

/// The outcome of checking one `system.run` against the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// `reason` is the `exec.denied` event reason; `message` the invoke error message.
    Denied {
        reason: &'static str,
        message: &'static str,
    },
}

/// The decision table of the OpenClaw node host: deny → disabled; ask always (or on-miss
/// with an allowlist miss) needs an approval; allowlist without a match is a miss.
pub fn evaluate(
    security: Security,
    ask: Ask,
    analysis_ok: bool,
    allowlist_satisfied: bool,
    approved: bool,
) -> Verdict {
    if security == Security::Deny {
        return Verdict::Denied {
            reason: "security=deny",
            message: "SYSTEM_RUN_DISABLED: security=deny",
        };
    }
    let miss = !analysis_ok || !allowlist_satisfied;
    let requires_ask =
        ask == Ask::Always || (ask == Ask::OnMiss && security == Security::Allowlist && miss);
    if requires_ask && !approved {
        return Verdict::Denied {
            reason: "approval-required",
            message: "SYSTEM_RUN_DENIED: approval required",
        };
    }
    if security == Security::Allowlist && miss && !approved {
        return Verdict::Denied {
            reason: "allowlist-miss",
            message: "SYSTEM_RUN_DENIED: allowlist miss",
        };
    }
    Verdict::Allowed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(words: &[&str]) -> Vec<String> {
        words.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn cwd_bound_hash_matches_the_capture() {
        // node-invoke-prepare.jsonl: argv [/usr/bin/echo, hi], cwd /tmp.
        assert_eq!(
            cwd_bound_arg_pattern(&v(&["/usr/bin/echo", "hi"]), "/tmp"),
            "sha256:cwd-argv:v1:264bab8ae641cab99f3f02900f4414f4ee38151b294a0151c4ab502fe719b37e"
        );
    }

    #[test]
    fn decision_table() {
        use Verdict::*;
        assert_eq!(
            evaluate(Security::Full, Ask::Off, false, false, false),
            Allowed
        );
        assert!(matches!(
            evaluate(Security::Deny, Ask::Off, true, true, true),
            Denied {
                message: "SYSTEM_RUN_DISABLED: security=deny",
                ..
            }
        ));
        assert!(matches!(
            evaluate(Security::Allowlist, Ask::Off, true, false, false),
            Denied {
                message: "SYSTEM_RUN_DENIED: allowlist miss",
                reason: "allowlist-miss"
            }
        ));
        assert!(matches!(
            evaluate(Security::Allowlist, Ask::OnMiss, true, false, false),
            Denied {
                message: "SYSTEM_RUN_DENIED: approval required",
                reason: "approval-required"
            }
        ));
        assert_eq!(
            evaluate(Security::Allowlist, Ask::OnMiss, true, true, false),
            Allowed
        );
        assert_eq!(
            evaluate(Security::Allowlist, Ask::OnMiss, true, false, true),
            Allowed
        );
        assert!(matches!(
            evaluate(Security::Full, Ask::Always, true, true, false),
            Denied {
                reason: "approval-required",
                ..
            }
        ));
    }

    #[test]
    fn allowlist_patterns() {
        let entries = |ps: &[(&str, Option<&str>)]| -> Vec<AllowEntry> {
            ps.iter()
                .map(|(p, a)| AllowEntry {
                    pattern: p.to_string(),
                    arg_pattern: a.map(str::to_owned),
                    source: None,
                })
                .collect()
        };
        let path = argv::DEFAULT_PATH;
        let echo = ResolvedCommand::resolve(v(&["echo", "hi"]), None, path);
        let trust = echo.trust_path().unwrap();
        let trust = trust.to_string_lossy().into_owned();
        assert!(match_allowlist(&entries(&[("echo", None)]), &echo, None).is_some());
        assert!(match_allowlist(&entries(&[("ech?", None)]), &echo, None).is_some());
        assert!(match_allowlist(&entries(&[(&trust, None)]), &echo, None).is_some());
        assert!(match_allowlist(&entries(&[("/**", None)]), &echo, None).is_some());
        assert!(match_allowlist(&entries(&[("*", None)]), &echo, None).is_some());
        assert!(match_allowlist(&entries(&[("ls", None)]), &echo, None).is_none());
        assert!(match_allowlist(&entries(&[("/opt/*", None)]), &echo, None).is_none());
        assert!(match_allowlist(&entries(&[("echo", Some("^hi$"))]), &echo, None).is_some());
        assert!(match_allowlist(&entries(&[("echo", Some("^bye$"))]), &echo, None).is_none());
        // A name with a slash only matches path patterns.
        let abs = ResolvedCommand::resolve(v(&[&trust, "hi"]), None, path);
        assert!(match_allowlist(&entries(&[("echo", None)]), &abs, None).is_none());
        // Nothing resolvable, nothing allowed.
        let missing = ResolvedCommand::resolve(v(&["no-such-bin-xyz"]), None, path);
        assert!(match_allowlist(&entries(&[("*", None)]), &missing, None).is_none());
        // Generated grants bind cwd and argv.
        let hash = cwd_bound_arg_pattern(&echo.argv, "/tmp");
        let grant = entries(&[("echo", Some(&hash))]);
        assert!(match_allowlist(&grant, &echo, Some("/tmp")).is_some());
        assert!(match_allowlist(&grant, &echo, Some("/var")).is_none());
    }
}
