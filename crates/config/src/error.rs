//! [`ConfigError`] and [`InvalidValue`].

use std::fmt;
use std::path::PathBuf;

/// Everything that can go wrong while finding, reading, validating or resolving
/// configuration.
///
/// Every message names what is wrong (the file, the dotted key, the env var or the flag)
/// and how to fix it, because these errors are printed as-is before the process exits
/// (the CLI maps them to exit code 78, like OpenClaw's config refusals).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file exists but could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A config file named explicitly (flag or env var) does not exist. A missing file at
    /// the default location is not an error (zero-config start).
    #[error(
        "config file {} does not exist (it was named by {named_by}); create it or correct {named_by}",
        path.display()
    )]
    MissingFile { path: PathBuf, named_by: String },

    /// The file is not valid JSON5. `line` and `column` are 1-based.
    #[error("{}", syntax_message(path, *line, *column, message))]
    Syntax {
        path: PathBuf,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },

    /// A `${VAR}` reference in a key clawgate uses names an unset (or empty) variable.
    #[error(
        "{}: Missing env var \"{var}\" referenced at config path: {key} (set {var} in the environment, or write $${{{var}}} for a literal ${{{var}}})",
        file.display()
    )]
    MissingEnvVar {
        file: PathBuf,
        var: String,
        key: String,
    },

    /// A known key has a value of the wrong type or outside the allowed set. `message`
    /// starts with the dotted key.
    #[error("{}: {message}", file.display())]
    Invalid {
        file: PathBuf,
        key: String,
        message: String,
    },

    /// An environment variable clawgate reads has an unusable value.
    #[error("{message}")]
    Env { var: String, message: String },

    /// A command-line flag has an unusable value.
    #[error("{message}")]
    Flag { flag: String, message: String },

    /// The effective settings (flags, env and config combined) are inconsistent or
    /// incomplete: auth mode without its secret, `bind=custom` without a host, …
    #[error("{message}")]
    Settings { message: String },

    /// The operator CLI's connection target cannot be resolved.
    #[error("{message}")]
    Client { message: String },
}

fn syntax_message(
    path: &std::path::Path,
    line: Option<usize>,
    column: Option<usize>,
    message: &str,
) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!(
            "invalid JSON5 in {} at line {line} column {column}: {message}",
            path.display()
        ),
        _ => format!("invalid JSON5 in {}: {message}", path.display()),
    }
}

/// A string that is not one of an enum's allowed values (`gateway.bind`, `--auth`, …).
///
/// Displays as `must be one of a, b, c (got "x")`, plus a hint for common mistakes, so
/// callers can prefix it with whatever named the value (`gateway.bind`, `--bind`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidValue {
    /// The rejected input.
    pub got: String,
    /// The accepted spellings, in the order they are listed to the user.
    pub allowed: &'static [&'static str],
    /// Extra advice for a recognisable mistake.
    pub hint: Option<&'static str>,
}

impl fmt::Display for InvalidValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "must be one of {} (got {})",
            self.allowed.join(", "),
            serde_json::Value::String(self.got.clone())
        )?;
        if let Some(hint) = self.hint {
            write!(f, "; {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for InvalidValue {}
