//! Command lines: how they are shown (`commandText`), which are shell wrappers
//! (`sh -c '…'`), how a shell payload splits into simple commands for allowlist checks, and
//! where an executable lives on `PATH`.

use std::path::{Path, PathBuf};

/// `PATH` used when the node host's own environment has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Shells whose `-c` payload is the real command.
const SHELLS: &[&str] = &["ash", "bash", "dash", "fish", "ksh", "mksh", "sh", "zsh"];

/// The last path component (`/usr/bin/env` → `env`).
pub fn basename(word: &str) -> &str {
    word.trim().rsplit('/').next().unwrap_or(word)
}

/// Argv shown with minimal quoting: words with whitespace or `"` are double-quoted (inner
/// `"` escaped), empty words become `""`. `["sh","-c","echo a"]` → `sh -c "echo a"`.
pub fn format_exec_command(argv: &[String]) -> String {
    argv.iter()
        .map(|arg| {
            if arg.is_empty() {
                "\"\"".to_owned()
            } else if arg.chars().any(|c| c.is_whitespace() || c == '"') {
                format!("\"{}\"", arg.replace('"', "\\\""))
            } else {
                arg.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether `argv[0]` is a POSIX shell.
pub fn is_shell(argv0: &str) -> bool {
    SHELLS.contains(&basename(argv0))
}

/// The inline payload of `sh -c '<payload>'` (also `-lc`, `-ec`, … and options before it),
/// or `None` when `argv` is not a shell wrapper with an inline command.
pub fn shell_payload(argv: &[String]) -> Option<&str> {
    let first = argv.first()?;
    if !is_shell(first) {
        return None;
    }
    let mut i = 1;
    while i < argv.len() {
        let word = argv[i].as_str();
        if word == "--" || !word.starts_with('-') || word == "-" {
            return None;
        }
        let cluster = word.trim_start_matches('-');
        if !word.starts_with("--") && cluster.contains('c') {
            return argv.get(i + 1).map(String::as_str);
        }
        // `-o opt` / `+o opt` take a value.
        if word == "-o" || word == "-O" {
            i += 1;
        }
        i += 1;
    }
    None
}

/// Splits a shell payload into simple commands (separated by `;`, `&&`, `||`, `|` or
/// newlines) of plain words. Anything this cannot reason about — substitutions,
/// variables, redirections, subshells, background jobs, globs — gives `None`, which
/// allowlist checks treat as a miss.
pub fn split_shell_payload(payload: &str) -> Option<Vec<Vec<String>>> {
    let mut segments: Vec<Vec<String>> = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    // After `|`, `&&` or `||` another command must follow.
    let mut dangling = false;
    let mut chars = payload.chars().peekable();
    let end_word = |words: &mut Vec<String>, word: &mut String, in_word: &mut bool| {
        if *in_word {
            words.push(std::mem::take(word));
            *in_word = false;
        }
    };
    let end_segment = |segments: &mut Vec<Vec<String>>, words: &mut Vec<String>| -> bool {
        if words.is_empty() {
            return false;
        }
        segments.push(std::mem::take(words));
        true
    };
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        other => word.push(other),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '$' | '`' => return None,
                        '\\' => match chars.next()? {
                            e @ ('"' | '\\' | '$' | '`') => word.push(e),
                            '\n' => {}
                            other => {
                                word.push('\\');
                                word.push(other);
                            }
                        },
                        other => word.push(other),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next()? {
                    '\n' => {}
                    other => word.push(other),
                }
            }
            ' ' | '\t' => end_word(&mut words, &mut word, &mut in_word),
            ';' | '\n' => {
                end_word(&mut words, &mut word, &mut in_word);
                end_segment(&mut segments, &mut words);
            }
            '|' | '&' => {
                end_word(&mut words, &mut word, &mut in_word);
                let doubled = chars.peek() == Some(&c);
                if c == '&' && !doubled {
                    return None;
                }
                if doubled {
                    chars.next();
                }
                if !end_segment(&mut segments, &mut words) {
                    return None;
                }
                dangling = true;
                continue;
            }
            '$' | '`' | '<' | '>' | '(' | ')' | '{' | '}' | '*' | '?' | '[' | '~' | '#' => {
                if c == '#' && in_word {
                    word.push(c);
                } else {
                    return None;
                }
            }
            other => {
                in_word = true;
                word.push(other);
            }
        }
        if in_word {
            dangling = false;
        }
    }
    end_word(&mut words, &mut word, &mut in_word);
    end_segment(&mut segments, &mut words);
    if dangling {
        return None;
    }
    // Leading `NAME=value` assignments change the command's environment.
    if segments
        .iter()
        .any(|s| s[0].contains('=') && !s[0].starts_with('='))
    {
        return None;
    }
    (!segments.is_empty()).then_some(segments)
}

/// The directories of `path_env` (colon-separated), empty entries skipped.
pub fn path_dirs(path_env: &str) -> Vec<PathBuf> {
    path_env
        .split(':')
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .collect()
}

fn is_executable_file(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The first `<dir>/<bin>` that exists on `path_env` (what `system.which` reports). A name
/// with a slash is not looked up.
pub fn which(bin: &str, path_env: &str) -> Option<PathBuf> {
    if bin.is_empty() || bin.contains('/') || bin.contains('\\') {
        return None;
    }
    path_dirs(path_env)
        .into_iter()
        .map(|dir| dir.join(bin))
        .find(|candidate| candidate.exists())
}

/// Where `argv0` runs from: a path with a slash relative to `cwd`, else the first executable
/// `<dir>/<argv0>` on `path_env`.
pub fn resolve_executable(argv0: &str, cwd: Option<&Path>, path_env: &str) -> Option<PathBuf> {
    let argv0 = argv0.trim();
    if argv0.is_empty() {
        return None;
    }
    if argv0.contains('/') {
        let path = Path::new(argv0);
        let full = if path.is_absolute() {
            path.to_path_buf()
        } else {
            cwd.map(Path::to_path_buf)
                .or_else(|| std::env::current_dir().ok())?
                .join(path)
        };
        return is_executable_file(&full).then_some(full);
    }
    path_dirs(path_env)
        .into_iter()
        .map(|dir| dir.join(argv0))
        .find(|candidate| is_executable_file(candidate))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(words: &[&str]) -> Vec<String> {
        words.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn command_text_matches_the_captures() {
        assert_eq!(format_exec_command(&v(&["echo", "hi"])), "echo hi");
        assert_eq!(
            format_exec_command(&v(&["sh", "-c", "echo out; echo err 1>&2; exit 3"])),
            "sh -c \"echo out; echo err 1>&2; exit 3\""
        );
        assert_eq!(
            format_exec_command(&v(&["a", "", "b\"c"])),
            "a \"\" \"b\\\"c\""
        );
    }

    #[test]
    fn shell_payloads() {
        assert_eq!(shell_payload(&v(&["sh", "-c", "ls"])), Some("ls"));
        assert_eq!(
            shell_payload(&v(&["/bin/bash", "-lc", "ls -l"])),
            Some("ls -l")
        );
        assert_eq!(shell_payload(&v(&["bash", "-e", "-c", "x"])), Some("x"));
        assert_eq!(shell_payload(&v(&["bash", "script.sh"])), None);
        assert_eq!(shell_payload(&v(&["echo", "-c", "x"])), None);
    }

    #[test]
    fn payload_segments() {
        assert_eq!(
            split_shell_payload("ls -l && echo 'a b' | wc -l; true").unwrap(),
            vec![
                v(&["ls", "-l"]),
                v(&["echo", "a b"]),
                v(&["wc", "-l"]),
                v(&["true"])
            ]
        );
        assert_eq!(
            split_shell_payload("echo \"x\\\"y\"").unwrap(),
            vec![v(&["echo", "x\"y"])]
        );
        for unsafe_payload in [
            "echo $(id)",
            "echo `id`",
            "echo $HOME",
            "cat < /etc/passwd",
            "ls > x",
            "sleep 1 &",
            "(ls)",
            "ls *",
            "FOO=1 ls",
            "ls &&",
            "echo 'unterminated",
        ] {
            assert_eq!(
                split_shell_payload(unsafe_payload),
                None,
                "{unsafe_payload}"
            );
        }
    }

    #[test]
    fn which_and_resolution() {
        let sh = which("sh", DEFAULT_PATH).expect("sh on PATH");
        assert!(sh.ends_with("sh"));
        assert_eq!(which("no-such-binary-xyz", DEFAULT_PATH), None);
        assert_eq!(which("/bin/sh", DEFAULT_PATH), None);
        assert!(resolve_executable("sh", None, DEFAULT_PATH).is_some());
        assert!(resolve_executable("/bin/sh", None, "").is_some());
        assert!(resolve_executable("./nope", Some(Path::new("/")), "").is_none());
    }
}
