//! `${VAR}` substitution in config strings, with OpenClaw's grammar:
//!
//! * `${NAME}` where NAME matches `[A-Z_][A-Z0-9_]*` is replaced by the variable's value;
//!   anything else (`${lower}`, `${}`, an unclosed `${`) stays literal text.
//! * An unset **or empty** variable is "missing".
//! * `${NAME:-fallback}` uses `fallback` when NAME is missing (the fallback may not contain
//!   `$` or `{`).
//! * `$${NAME}` is an escape: it becomes the literal text `${NAME}` and never reads the
//!   environment.
//! * Only string values are substituted, never object keys.

use serde_json::Value;

/// One `${VAR}` whose variable was missing; the placeholder was left in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Missing {
    pub var: String,
    /// Dotted config path of the string (`gateway.auth.token`, `a.b[2]`).
    pub path: String,
}

pub(crate) fn join_key(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// What [`substitute_tree`] found besides the new tree.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// References that could not be resolved (left as written).
    pub missing: Vec<Missing>,
    /// Paths of strings in which at least one reference was replaced.
    pub substituted: Vec<String>,
}

/// Substitutes every string in `value`.
pub(crate) fn substitute_tree(
    value: &Value,
    env: &dyn Fn(&str) -> Option<String>,
) -> (Value, Report) {
    let mut report = Report::default();
    let out = walk(value, "", env, &mut report);
    (out, report)
}

fn walk(
    value: &Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
    report: &mut Report,
) -> Value {
    match value {
        Value::String(s) => {
            let mut replaced = false;
            let out = substitute(s, path, env, &mut report.missing, &mut replaced);
            if replaced {
                report.substituted.push(path.to_owned());
            }
            Value::String(out)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| walk(v, &format!("{path}[{i}]"), env, report))
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), walk(v, &join_key(path, k), env, report)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// Substitutes one string. Missing references are recorded and left as written.
#[cfg(test)]
fn substitute_str(
    s: &str,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
    missing: &mut Vec<Missing>,
) -> String {
    substitute(s, path, env, missing, &mut false)
}

/// Substitutes one string; sets `replaced` when a reference was replaced by a variable's
/// value or its fallback. Missing references are recorded and left as written.
fn substitute(
    s: &str,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
    missing: &mut Vec<Missing>,
    replaced: &mut bool,
) -> String {
    if !s.contains('$') {
        return s.to_owned();
    }
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut copied = 0; // bytes of `s` already handled
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        let escaped = bytes.get(i + 1) == Some(&b'$') && bytes.get(i + 2) == Some(&b'{');
        if !escaped && bytes.get(i + 1) != Some(&b'{') {
            i += 1;
            continue;
        }
        let start = i + if escaped { 3 } else { 2 };
        let Some(close) = s[start..].find('}').map(|off| start + off) else {
            i += 1;
            continue;
        };
        let body = &s[start..close];
        let (name, fallback) = match body.find(":-") {
            Some(op) => (&body[..op], Some(&body[op + 2..])),
            None => (body, None),
        };
        let valid =
            is_env_name(name) && !fallback.is_some_and(|f| f.contains('$') || f.contains('{'));
        if !valid {
            i += 1;
            continue;
        }
        out.push_str(&s[copied..i]);
        if escaped {
            out.push_str("${");
            out.push_str(body);
            out.push('}');
        } else {
            match env(name).filter(|v| !v.is_empty()) {
                Some(v) => {
                    out.push_str(&v);
                    *replaced = true;
                }
                None => match fallback {
                    Some(f) => {
                        out.push_str(f);
                        *replaced = true;
                    }
                    None => {
                        missing.push(Missing {
                            var: name.to_owned(),
                            path: path.to_owned(),
                        });
                        out.push_str(&s[i..=close]);
                    }
                },
            }
        }
        copied = close + 1;
        i = close + 1;
    }
    out.push_str(&s[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        match k {
            "BASE" => Some("https://api.example".into()),
            "TOKEN" => Some("t0k".into()),
            "EMPTY" => Some(String::new()),
            "lower" => Some("should-not-be-used".into()),
            _ => None,
        }
    }

    fn sub(s: &str) -> (String, Vec<Missing>) {
        let mut m = Vec::new();
        (substitute_str(s, "k", &env, &mut m), m)
    }

    #[test]
    fn substitutes_whole_and_inline() {
        assert_eq!(sub("${TOKEN}").0, "t0k");
        assert_eq!(sub("${BASE}/v1").0, "https://api.example/v1");
        assert_eq!(sub("a ${TOKEN} b ${TOKEN}").0, "a t0k b t0k");
        assert_eq!(sub("no dollars").0, "no dollars");
        assert_eq!(sub("price: $5").0, "price: $5");
    }

    #[test]
    fn escapes_and_literals() {
        assert_eq!(sub("$${TOKEN}").0, "${TOKEN}");
        assert_eq!(sub("x$${MISSING}y").0, "x${MISSING}y");
        assert!(sub("$${MISSING}").1.is_empty());
        assert_eq!(sub("${lower}").0, "${lower}");
        assert_eq!(sub("${}").0, "${}");
        assert_eq!(sub("${TOKEN").0, "${TOKEN");
        assert_eq!(sub("ü${TOKEN}ü").0, "üt0kü");
    }

    #[test]
    fn missing_and_empty_are_recorded_and_left_as_written() {
        let (out, missing) = sub("${NOPE}/x/${EMPTY}");
        assert_eq!(out, "${NOPE}/x/${EMPTY}");
        assert_eq!(
            missing,
            vec![
                Missing {
                    var: "NOPE".into(),
                    path: "k".into()
                },
                Missing {
                    var: "EMPTY".into(),
                    path: "k".into()
                }
            ]
        );
    }

    #[test]
    fn fallbacks() {
        assert_eq!(sub("${NOPE:-dflt}").0, "dflt");
        assert_eq!(sub("${EMPTY:-}").0, "");
        assert_eq!(sub("${TOKEN:-dflt}").0, "t0k");
        // A fallback containing `$` is not a placeholder at all.
        assert_eq!(sub("${NOPE:-$x}").0, "${NOPE:-$x}");
    }

    #[test]
    fn tree_paths() {
        let v = serde_json::json!({"a": {"b": ["${TOKEN}", "${NOPE}"]}, "${TOKEN}": 1});
        let (out, report) = substitute_tree(&v, &env);
        assert_eq!(
            out,
            serde_json::json!({"a": {"b": ["t0k", "${NOPE}"]}, "${TOKEN}": 1})
        );
        assert_eq!(report.missing[0].path, "a.b[1]");
        assert_eq!(report.substituted, vec!["a.b[0]"]);
    }
}
