//! Exec approvals in Telegram: a command a node waits to run is shown to the approvers as a
//! card with inline Allow Once / Allow Always / Deny buttons (OpenClaw's callback data,
//! `tga1:e:<o|a|d>:<id>`), or answered with `/approve <id> <decision>`; the card is edited
//! with the outcome once the approval is resolved, wherever it was answered.

use serde_json::{Value, json};

/// The decisions, as `exec.approval.resolve` takes them, with their button labels.
const DECISIONS: [(&str, &str, char); 3] = [
    ("allow-once", "Allow Once", 'o'),
    ("allow-always", "Allow Always", 'a'),
    ("deny", "Deny", 'd'),
];

/// OpenClaw's prefix for exec approval callbacks; its buttons and ours are interchangeable.
const CALLBACK_PREFIX: &str = "tga1:e:";
/// Telegram's limit on a button's callback data.
const MAX_CALLBACK_BYTES: usize = 64;

/// An exec approval waiting for an answer, as the approvers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalCard {
    pub id: String,
    /// The command line the node would run.
    pub command: String,
    pub node_id: Option<String>,
    /// When it is denied for want of an answer (Unix ms).
    pub expires_at_ms: Option<i64>,
}

impl ApprovalCard {
    /// The card from an `exec.approval.requested` payload.
    pub fn from_event(payload: &Value) -> Option<ApprovalCard> {
        let request = &payload["request"];
        let command = request["command"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| {
                let argv: Vec<&str> = request["systemRunPlan"]["argv"]
                    .as_array()?
                    .iter()
                    .filter_map(Value::as_str)
                    .collect();
                Some(argv.join(" "))
            })
            .unwrap_or_default();
        Some(ApprovalCard {
            id: payload["id"].as_str()?.to_owned(),
            command,
            node_id: request["nodeId"].as_str().map(str::to_owned),
            expires_at_ms: payload["expiresAtMs"].as_i64(),
        })
    }

    /// The card's text, in Markdown.
    pub fn markdown(&self, now_ms: i64) -> String {
        let mut text = format!(
            "Approval required.\n\nPending command:\n```sh\n{}\n```\n\nHost: node",
            self.command.replace("```", "`\u{200b}``")
        );
        if let Some(node) = &self.node_id {
            text.push_str(&format!("\nNode: {node}"));
        }
        if let Some(expires) = self.expires_at_ms {
            let minutes = ((expires - now_ms).max(0) + 59_999) / 60_000;
            text.push_str(&format!("\nExpires in: {minutes} min"));
        }
        text.push_str(&format!(
            "\nFull id: `{}`\n\nOr answer with `/approve {} allow-once|allow-always|deny`.",
            self.id, self.id
        ));
        text
    }

    /// The inline keyboard: one row of Allow Once / Allow Always / Deny.
    pub fn keyboard(&self) -> Value {
        let row: Vec<Value> = DECISIONS
            .iter()
            .filter_map(|(_, label, code)| {
                let data = format!("{CALLBACK_PREFIX}{code}:{}", self.id);
                (data.len() <= MAX_CALLBACK_BYTES)
                    .then(|| json!({"text": label, "callback_data": data}))
            })
            .collect();
        json!({"inline_keyboard": [row]})
    }
}

/// The approval id and decision of a button press, if it is an exec approval button.
pub fn parse_callback(data: &str) -> Option<(String, &'static str)> {
    let rest = data.strip_prefix(CALLBACK_PREFIX)?;
    let (code, id) = rest.split_once(':')?;
    let decision = DECISIONS
        .iter()
        .find(|(_, _, c)| code.len() == 1 && code.starts_with(*c))?
        .0;
    (!id.is_empty()).then(|| (id.to_owned(), decision))
}

/// What a `/approve` message asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApproveCommand {
    /// `/approve <id> <decision>`.
    Resolve { id: String, decision: &'static str },
    /// A `/approve` that cannot be understood: the reply says how to write it.
    Usage,
}

/// `/approve <id> [allow-once|allow-always|always|deny]` (the decision defaults to
/// allow-once; `/approve@bot` as well). `None` for any other text.
pub fn parse_approve_command(text: &str) -> Option<ApproveCommand> {
    let mut words = text.split_whitespace();
    let head = words.next()?;
    let command = head.split('@').next()?;
    if !command.eq_ignore_ascii_case("/approve") {
        return None;
    }
    let Some(id) = words.next() else {
        return Some(ApproveCommand::Usage);
    };
    let decision = match words.next().map(str::to_ascii_lowercase).as_deref() {
        None | Some("allow-once") | Some("once") | Some("allow") => "allow-once",
        Some("allow-always") | Some("always") => "allow-always",
        Some("deny") => "deny",
        Some(_) => return Some(ApproveCommand::Usage),
    };
    if words.next().is_some() {
        return Some(ApproveCommand::Usage);
    }
    Some(ApproveCommand::Resolve {
        id: id.to_owned(),
        decision,
    })
}

/// How a card ends, appended to its text once the approval is resolved.
pub fn outcome_line(decision: &str) -> &'static str {
    match decision {
        "allow-once" => "✅ Allowed once.",
        "allow-always" => "✅ Allowed always.",
        "deny" => "❌ Denied.",
        _ => "Resolved.",
    }
}

/// What someone who may not answer approvals is told when they try.
pub const NOT_AN_APPROVER: &str = "You may not answer exec approvals: only the approvers in channels.telegram.execApprovals.approvers (or else commands.ownerAllowFrom) can.";

/// The usage a malformed `/approve` gets.
pub const APPROVE_USAGE: &str =
    "Usage: /approve <id> allow-once|allow-always|deny (the id is on the approval card).";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buttons_carry_openclaws_callback_data_and_parse_back() {
        let card = ApprovalCard {
            id: "0b7c6a57-8f61-4b8e-9a8e-6b1c0f9d7e21".into(),
            command: "uname -a".into(),
            node_id: Some("node-1".into()),
            expires_at_ms: Some(1_000 + 30 * 60_000),
        };
        let keyboard = card.keyboard();
        let row = keyboard["inline_keyboard"][0].as_array().unwrap();
        let data: Vec<&str> = row
            .iter()
            .map(|b| b["callback_data"].as_str().unwrap())
            .collect();
        assert_eq!(
            data,
            [
                "tga1:e:o:0b7c6a57-8f61-4b8e-9a8e-6b1c0f9d7e21",
                "tga1:e:a:0b7c6a57-8f61-4b8e-9a8e-6b1c0f9d7e21",
                "tga1:e:d:0b7c6a57-8f61-4b8e-9a8e-6b1c0f9d7e21",
            ]
        );
        assert_eq!(parse_callback(data[2]), Some((card.id.clone(), "deny")));
        assert_eq!(parse_callback("tga1:e:x:abc"), None);
        assert_eq!(parse_callback("tga1:p:o:abc"), None);
        assert_eq!(parse_callback("tga1:e:o:"), None);
        let text = card.markdown(1_000);
        assert!(text.contains("```sh\nuname -a\n```"), "{text}");
        assert!(text.contains("Node: node-1"), "{text}");
        assert!(text.contains("Expires in: 30 min"), "{text}");
    }

    #[test]
    fn approve_commands() {
        assert_eq!(
            parse_approve_command("/approve abc"),
            Some(ApproveCommand::Resolve {
                id: "abc".into(),
                decision: "allow-once"
            })
        );
        assert_eq!(
            parse_approve_command("/approve@fake_bot abc always"),
            Some(ApproveCommand::Resolve {
                id: "abc".into(),
                decision: "allow-always"
            })
        );
        assert_eq!(
            parse_approve_command("/APPROVE abc deny"),
            Some(ApproveCommand::Resolve {
                id: "abc".into(),
                decision: "deny"
            })
        );
        assert_eq!(
            parse_approve_command("/approve"),
            Some(ApproveCommand::Usage)
        );
        assert_eq!(
            parse_approve_command("/approve abc maybe"),
            Some(ApproveCommand::Usage)
        );
        assert_eq!(parse_approve_command("/approved abc"), None);
        assert_eq!(parse_approve_command("please /approve abc"), None);
    }
}
