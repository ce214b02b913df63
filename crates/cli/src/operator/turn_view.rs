//! How `agent` and `chat` show a run as it goes: the reply text on stdout as it streams, tool
//! calls on stderr (dimmed on a terminal) as they start and end.

use super::table::clean;
use clawgate_client::turn::TurnUpdate;
use serde_json::Value;
use std::io::{IsTerminal, Write};

/// The most characters of a tool's arguments or result shown on its line.
const TOOL_TEXT_MAX: usize = 160;

pub struct TurnView {
    /// Whether stdout is inside a line of reply text.
    mid_line: bool,
    stdout_tty: bool,
    stderr_tty: bool,
}

/// Text shortened to `max` characters on one line.
fn one_line(text: &str, max: usize) -> String {
    let flat = clean(text.trim());
    match flat.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &flat[..i]),
        None => flat,
    }
}

/// What a tool call's line says of its arguments: an `exec` command as it is, else the JSON.
fn args_text(name: &str, args: &Value) -> String {
    match args.get("command").and_then(Value::as_str) {
        Some(command) if name == "exec" => one_line(command, TOOL_TEXT_MAX),
        _ if args.is_null() => String::new(),
        _ => one_line(&args.to_string(), TOOL_TEXT_MAX),
    }
}

/// Reply text safe for a terminal: no escape sequences or other control characters but
/// newlines and tabs.
fn terminal_safe(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect()
}

impl TurnView {
    pub fn new() -> Self {
        TurnView {
            mid_line: false,
            stdout_tty: std::io::stdout().is_terminal(),
            stderr_tty: std::io::stderr().is_terminal(),
        }
    }

    fn out(&mut self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = if self.stdout_tty {
            out.write_all(terminal_safe(text).as_bytes())
        } else {
            out.write_all(text.as_bytes())
        };
        let _ = out.flush();
        if !text.is_empty() {
            self.mid_line = !text.ends_with('\n');
        }
    }

    /// Ends the reply's current line, so that what follows starts a line of its own.
    fn break_line(&mut self) {
        if self.mid_line {
            self.out("\n");
        }
    }

    /// A line on stderr, dimmed on a terminal.
    pub fn note(&mut self, line: &str) {
        self.break_line();
        let mut err = std::io::stderr().lock();
        let _ = if self.stderr_tty {
            writeln!(err, "\x1b[2m{line}\x1b[0m")
        } else {
            writeln!(err, "{line}")
        };
    }

    pub fn show(&mut self, update: TurnUpdate<'_>) {
        match update {
            TurnUpdate::Text(text) => {
                self.out(text);
            }
            TurnUpdate::NewAnswer => self.break_line(),
            TurnUpdate::ToolStart { name, args, .. } => {
                let args = args_text(name, args);
                let name = clean(name);
                if args.is_empty() {
                    self.note(&format!("[tool] {name}"));
                } else {
                    self.note(&format!("[tool] {name}: {args}"));
                }
            }
            TurnUpdate::ToolResult {
                name,
                is_error,
                text,
                ..
            } => {
                let name = clean(name);
                if is_error {
                    self.note(&format!(
                        "[tool] {name} failed: {}",
                        one_line(&text, TOOL_TEXT_MAX)
                    ));
                } else {
                    self.note(&format!("[tool] {name} done"));
                }
            }
            TurnUpdate::Aborting => self.note("(aborting the reply…)"),
        }
    }

    /// Ends the reply with a newline.
    pub fn finish(&mut self) {
        self.break_line();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tool_lines_are_short_and_clean() {
        assert_eq!(
            args_text("exec", &json!({"command": "echo hi\nls", "host": "node"})),
            "echo hi ls"
        );
        assert_eq!(args_text("read", &json!({"path": "a"})), r#"{"path":"a"}"#);
        assert_eq!(one_line(&"x".repeat(200), 5), "xxxxx…");
        assert_eq!(terminal_safe("a\x1b[2Jb\nc\td"), "a[2Jb\nc\td");
    }
}
