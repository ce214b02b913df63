//! `security.audit.suppressions`: findings of `security audit` the user has accepted.

use serde_json::Value;

use crate::error::ConfigError;
use crate::load::LoadedConfig;

const KEY: &str = "security.audit.suppressions";

/// One entry of `security.audit.suppressions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    pub check_id: String,
    pub title_includes: Option<String>,
    pub detail_includes: Option<String>,
    pub reason: Option<String>,
}

impl LoadedConfig {
    /// `security.audit.suppressions`, checked like OpenClaw's schema (an array of objects
    /// with a non-empty `checkId` and optional non-empty `titleIncludes`, `detailIncludes`,
    /// `reason`). Read on demand: only `security audit` uses them, and a bad entry must not
    /// keep the gateway from starting.
    pub fn audit_suppressions(&self) -> Result<Vec<Suppression>, ConfigError> {
        let invalid = |key: String, message: String| ConfigError::Invalid {
            file: self.path.clone(),
            key,
            message,
        };
        let list = match self
            .raw
            .get("security")
            .and_then(|s| s.get("audit"))
            .and_then(|a| a.get("suppressions"))
        {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Array(list)) => list,
            Some(_) => {
                return Err(invalid(
                    KEY.to_owned(),
                    format!(
                        "{KEY} must be an array of {{checkId, titleIncludes?, detailIncludes?, reason?}} objects"
                    ),
                ));
            }
        };
        list.iter()
            .enumerate()
            .map(|(i, entry)| {
                let at = format!("{KEY}[{i}]");
                let Value::Object(obj) = entry else {
                    return Err(invalid(at.clone(), format!(
                        "{at} must be an object like {{\"checkId\": \"gateway.tailscale_serve\", \"reason\": \"…\"}}"
                    )));
                };
                if let Some(unknown) = obj.keys().find(|k| {
                    !matches!(
                        k.as_str(),
                        "checkId" | "titleIncludes" | "detailIncludes" | "reason"
                    )
                }) {
                    return Err(invalid(format!("{at}.{unknown}"), format!(
                        "{at}.{unknown} is not a suppression key (use checkId, titleIncludes, detailIncludes, reason)"
                    )));
                }
                let text = |key: &str| match obj.get(key) {
                    None => Ok(None),
                    Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
                    Some(_) => Err(invalid(
                        format!("{at}.{key}"),
                        format!("{at}.{key} must be a non-empty string"),
                    )),
                };
                Ok(Suppression {
                    check_id: text("checkId")?.ok_or_else(|| invalid(format!("{at}.checkId"), format!(
                        "{at}.checkId is required: the check id to suppress, e.g. \"gateway.tailscale_serve\""
                    )))?,
                    title_includes: text("titleIncludes")?,
                    detail_includes: text("detailIncludes")?,
                    reason: text("reason")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn suppressions_are_validated_with_the_key_that_is_wrong() {
        let parse = |v: Value| {
            LoadedConfig::from_value(
                std::path::Path::new("/c.json"),
                json!({"security": {"audit": {"suppressions": v}}}),
                &|_: &str| None,
            )
            .unwrap()
            .audit_suppressions()
            .map_err(|e| match e {
                ConfigError::Invalid { message, .. } => message,
                other => other.to_string(),
            })
        };
        assert_eq!(parse(json!([])), Ok(vec![]));
        assert_eq!(
            parse(json!([{"checkId": "a", "reason": "ok"}])),
            Ok(vec![Suppression {
                check_id: "a".into(),
                title_includes: None,
                detail_includes: None,
                reason: Some("ok".into())
            }])
        );
        assert!(parse(json!({})).unwrap_err().contains("must be an array"));
        assert!(
            parse(json!(["a"]))
                .unwrap_err()
                .starts_with("security.audit.suppressions[0] must be an object")
        );
        assert!(
            parse(json!([{"reason": "x"}]))
                .unwrap_err()
                .starts_with("security.audit.suppressions[0].checkId is required")
        );
        assert_eq!(
            parse(json!([{"checkId": "a"}, {"checkId": ""}])).unwrap_err(),
            "security.audit.suppressions[1].checkId must be a non-empty string"
        );
        assert!(
            parse(json!([{"checkId": "a", "titleInclude": "x"}]))
                .unwrap_err()
                .starts_with(
                    "security.audit.suppressions[0].titleInclude is not a suppression key"
                )
        );
        let empty =
            LoadedConfig::from_value(std::path::Path::new("/c.json"), json!({}), &|_: &str| None)
                .unwrap();
        assert_eq!(empty.audit_suppressions().unwrap(), vec![]);
        let err = LoadedConfig::from_value(
            std::path::Path::new("/c.json"),
            json!({"security": {"audit": {"suppressions": [{"reason": "x"}]}}}),
            &|_: &str| None,
        )
        .unwrap()
        .audit_suppressions()
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("/c.json: security.audit.suppressions[0].checkId is required"),
            "{err}"
        );
    }
}
