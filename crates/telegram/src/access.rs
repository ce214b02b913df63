//! Who may DM the bot (`channels.telegram.dmPolicy`, `allowFrom`, the approved senders in the
//! store) and DM pairing: an unknown sender under `pairing` gets an 8-character code the owner
//! approves with `clawgate pairing approve telegram <CODE>` ([`approve`]).
//!
//! Codes use upper-case letters and digits without `0 O 1 I`, are valid for one hour, at most
//! three are pending per account, and they are stored durably (a restart keeps them). A sender
//! with a pending code gets no second reply; the message that asked is dropped.

use std::time::Duration;

use clawgate_config::{DmPolicy, GroupPolicy, TelegramConfig, TelegramGroupConfig};
use clawgate_store::{AllowedSenderRecord, PairingCodeRecord, Store, StoreError, TelegramWrite};
use rand::Rng as _;

use crate::format::escape_html;

/// The alphabet of pairing codes: no `0`, `O`, `1` or `I`.
pub const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
/// The length of a pairing code.
pub const CODE_LEN: usize = 8;
/// How long a code is valid.
pub const CODE_TTL: Duration = Duration::from_secs(3600);
/// Pending codes per account at most.
pub const MAX_PENDING: usize = 3;

/// What to do with a DM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DmDecision {
    /// Hand it over.
    Accept,
    /// Drop it and send this HTML reply (a new pairing code).
    PairingReply { code: String, html: String },
    /// Drop it without a reply; the reason is for the log.
    Drop(&'static str),
}

/// A fresh pairing code.
pub fn new_code() -> String {
    let mut rng = rand::rng();
    (0..CODE_LEN)
        .map(|_| CODE_ALPHABET[rng.random_range(0..CODE_ALPHABET.len())] as char)
        .collect()
}

/// The command that approves `code`.
pub fn approve_command(code: &str) -> String {
    format!("clawgate pairing approve telegram {code}")
}

/// The reply to an unknown sender (Telegram HTML).
pub fn pairing_reply_html(sender_id: &str, code: &str) -> String {
    format!(
        "clawgate: access not configured.\n\nYour Telegram user id: <code>{}</code>\nPairing code:\n<pre><code>{code}</code></pre>\n\nAsk the bot owner to approve with:\n<code>{}</code>",
        escape_html(sender_id),
        approve_command(code)
    )
}

/// The same reply as plain text (sent if Telegram cannot parse the HTML).
pub fn pairing_reply_plain(sender_id: &str, code: &str) -> String {
    format!(
        "clawgate: access not configured.\n\nYour Telegram user id: {sender_id}\nPairing code:\n{code}\n\nAsk the bot owner to approve with:\n{}",
        approve_command(code)
    )
}

/// Whether `id` is in an `allowFrom` list (or the list holds `*`).
pub fn listed(allow_from: &[String], id: &str) -> bool {
    allow_from.iter().any(|a| a == "*" || a == id)
}

/// Who sent a DM.
#[derive(Debug, Clone, Copy)]
pub struct DmSender<'a> {
    pub sender_id: &'a str,
    /// The chat it came from (in a DM, the sender's own chat).
    pub chat_id: &'a str,
    /// The sender's `@username` or name, for listings.
    pub label: Option<&'a str>,
}

/// Decides about a message in the group `chat_id` from `sender_id`, as OpenClaw does: the
/// group's own `allowFrom`, when it has one, must list the sender; then `groupPolicy`
/// `disabled` drops everything, `open` lets any group in, and `allowlist` (the default) needs
/// the chat in `groups` (or a `"*"` entry) and the sender in `groupAllowFrom` (else
/// `allowFrom`). `Err` says why the message was dropped.
pub fn check_group<'c>(
    cfg: &'c TelegramConfig,
    allow_from: &[String],
    chat_id: &str,
    sender_id: &str,
) -> Result<&'c TelegramGroupConfig, &'static str> {
    static OPEN_GROUP: std::sync::LazyLock<TelegramGroupConfig> =
        std::sync::LazyLock::new(|| TelegramGroupConfig {
            require_mention: true,
            allow_from: Vec::new(),
        });
    let group = cfg.groups.get(chat_id).or_else(|| cfg.groups.get("*"));
    if let Some(g) = group
        && !g.allow_from.is_empty()
        && !listed(&g.allow_from, sender_id)
    {
        return Err("the sender is not in this group's allowFrom");
    }
    match cfg.group_policy {
        GroupPolicy::Disabled => Err("channels.telegram.groupPolicy is disabled"),
        GroupPolicy::Open => Ok(group.unwrap_or(&OPEN_GROUP)),
        GroupPolicy::Allowlist => {
            let Some(group) = group else {
                return Err("the group is not in channels.telegram.groups");
            };
            let allowed = if !group.allow_from.is_empty() {
                &group.allow_from
            } else if !cfg.group_allow_from.is_empty() {
                &cfg.group_allow_from
            } else {
                allow_from
            };
            if listed(allowed, sender_id) {
                Ok(group)
            } else {
                Err("the sender is not in channels.telegram.groupAllowFrom")
            }
        }
    }
}

/// Decides about a DM from `from` under `policy`; in pairing mode an unknown sender's code is
/// written to the store before this returns.
pub async fn check_dm(
    store: &Store,
    account: &str,
    policy: DmPolicy,
    allow_from: &[String],
    from: DmSender<'_>,
    now_ms: i64,
) -> Result<DmDecision, StoreError> {
    let DmSender {
        sender_id,
        chat_id,
        label: sender_label,
    } = from;
    match policy {
        DmPolicy::Disabled => {
            return Ok(DmDecision::Drop("channels.telegram.dmPolicy is disabled"));
        }
        DmPolicy::Open => return Ok(DmDecision::Accept),
        DmPolicy::Pairing | DmPolicy::Allowlist => {}
    }
    if listed(allow_from, sender_id) || store.telegram_is_allowed(account, sender_id).await? {
        return Ok(DmDecision::Accept);
    }
    if policy == DmPolicy::Allowlist {
        return Ok(DmDecision::Drop(
            "the sender is not in channels.telegram.allowFrom",
        ));
    }
    store
        .apply(vec![
            TelegramWrite::ExpirePairing {
                account: account.to_owned(),
                now_ms,
            }
            .into(),
        ])
        .await?;
    let pending = store.telegram_pairing_requests(account).await?;
    if pending.iter().any(|p| p.sender_id == sender_id) {
        return Ok(DmDecision::Drop("the sender's pairing code is pending"));
    }
    if pending.len() >= MAX_PENDING {
        return Ok(DmDecision::Drop(
            "three pairing requests are pending already; approve or wait for one to expire",
        ));
    }
    let code = loop {
        let c = new_code();
        if !pending.iter().any(|p| p.code == c) {
            break c;
        }
    };
    store
        .apply(vec![
            TelegramWrite::PutPairing(PairingCodeRecord {
                account: account.to_owned(),
                code: code.clone(),
                sender_id: sender_id.to_owned(),
                chat_id: chat_id.to_owned(),
                sender_label: sender_label.map(str::to_owned),
                created_at_ms: now_ms,
                expires_at_ms: now_ms + CODE_TTL.as_millis() as i64,
            })
            .into(),
        ])
        .await?;
    Ok(DmDecision::PairingReply {
        html: pairing_reply_html(sender_id, &code),
        code,
    })
}

/// Why an approval failed.
#[derive(Debug, thiserror::Error)]
pub enum PairingError {
    #[error(
        "no pending Telegram pairing request has code {code}; the sender gets a new code by messaging the bot again (codes are valid for one hour)"
    )]
    UnknownCode { code: String },
    #[error(
        "Telegram pairing code {code} expired; the sender gets a new code by messaging the bot again"
    )]
    Expired { code: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Approves a pending code: the sender may DM the bot from now on (durably). Returns the
/// request that was approved (its sender and chat, e.g. to tell them).
pub async fn approve(
    store: &Store,
    account: &str,
    code: &str,
    now_ms: i64,
) -> Result<PairingCodeRecord, PairingError> {
    let code = code.trim().to_ascii_uppercase();
    let pending = store.telegram_pairing_requests(account).await?;
    let Some(request) = pending.into_iter().find(|p| p.code == code) else {
        return Err(PairingError::UnknownCode { code });
    };
    let delete = TelegramWrite::DeletePairing {
        account: account.to_owned(),
        code: code.clone(),
    };
    if request.expires_at_ms <= now_ms {
        store.apply(vec![delete.into()]).await?;
        return Err(PairingError::Expired { code });
    }
    store
        .apply(vec![
            delete.into(),
            TelegramWrite::Allow(AllowedSenderRecord {
                account: account.to_owned(),
                sender_id: request.sender_id.clone(),
                approved_at_ms: now_ms,
            })
            .into(),
        ])
        .await?;
    Ok(request)
}

/// Drops a pending request without approving it.
pub async fn dismiss(store: &Store, account: &str, code: &str) -> Result<bool, PairingError> {
    let code = code.trim().to_ascii_uppercase();
    let pending = store.telegram_pairing_requests(account).await?;
    if !pending.iter().any(|p| p.code == code) {
        return Ok(false);
    }
    store
        .apply(vec![
            TelegramWrite::DeletePairing {
                account: account.to_owned(),
                code,
            }
            .into(),
        ])
        .await?;
    Ok(true)
}

/// The pending requests of `account` that have not expired, oldest first.
pub async fn pending(
    store: &Store,
    account: &str,
    now_ms: i64,
) -> Result<Vec<PairingCodeRecord>, StoreError> {
    Ok(store
        .telegram_pairing_requests(account)
        .await?
        .into_iter()
        .filter(|p| p.expires_at_ms > now_ms)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_policies() {
        use clawgate_config::TelegramGroupConfig;
        let mut cfg = TelegramConfig::default();
        let dm_allow = vec!["5".to_owned()];
        // allowlist (default): the chat must be listed, the sender allowed (groupAllowFrom,
        // else allowFrom).
        assert!(check_group(&cfg, &dm_allow, "-1", "5").is_err());
        cfg.groups.insert(
            "*".into(),
            TelegramGroupConfig {
                require_mention: true,
                allow_from: Vec::new(),
            },
        );
        assert!(check_group(&cfg, &dm_allow, "-1", "5").is_ok());
        assert!(check_group(&cfg, &dm_allow, "-1", "6").is_err());
        cfg.group_allow_from = vec!["6".into()];
        assert!(check_group(&cfg, &dm_allow, "-1", "6").is_ok());
        assert!(check_group(&cfg, &dm_allow, "-1", "5").is_err());
        // open: any group, any sender.
        cfg.group_policy = GroupPolicy::Open;
        cfg.groups.clear();
        assert!(check_group(&cfg, &[], "-1", "42").unwrap().require_mention);
        // disabled: none.
        cfg.group_policy = GroupPolicy::Disabled;
        assert_eq!(
            check_group(&cfg, &dm_allow, "-1", "5").unwrap_err(),
            "channels.telegram.groupPolicy is disabled"
        );
    }

    #[test]
    fn codes_use_the_alphabet() {
        for _ in 0..200 {
            let c = new_code();
            assert_eq!(c.len(), CODE_LEN);
            assert!(c.bytes().all(|b| CODE_ALPHABET.contains(&b)), "{c}");
            assert!(!c.contains(['0', 'O', '1', 'I']), "{c}");
        }
    }

    #[tokio::test]
    async fn pairing_expiry_and_the_pending_cap() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let check = |sender: &'static str, now: i64| {
            let store = &store;
            async move {
                check_dm(
                    store,
                    "default",
                    DmPolicy::Pairing,
                    &[],
                    DmSender {
                        sender_id: sender,
                        chat_id: sender,
                        label: None,
                    },
                    now,
                )
                .await
                .unwrap()
            }
        };
        let DmDecision::PairingReply { code, html } = check("1", 0).await else {
            panic!("a code for a new sender");
        };
        assert!(html.contains(&format!("clawgate pairing approve telegram {code}")));
        assert!(html.contains("Your Telegram user id: <code>1</code>"));
        assert_eq!(
            check("1", 10).await,
            DmDecision::Drop("the sender's pairing code is pending")
        );
        assert!(matches!(
            check("2", 20).await,
            DmDecision::PairingReply { .. }
        ));
        assert!(matches!(
            check("3", 30).await,
            DmDecision::PairingReply { .. }
        ));
        assert!(matches!(check("4", 40).await, DmDecision::Drop(r) if r.starts_with("three")));
        // An hour later the codes expired: the first sender gets a new one.
        let hour = CODE_TTL.as_millis() as i64;
        let DmDecision::PairingReply { code: again, .. } = check("1", hour + 1).await else {
            panic!("a new code after expiry");
        };
        assert!(matches!(
            approve(&store, "default", &code, hour + 2).await,
            Err(PairingError::UnknownCode { .. })
        ));
        let approved = approve(&store, "default", &again.to_lowercase(), hour + 2)
            .await
            .unwrap();
        assert_eq!(approved.sender_id, "1");
        assert_eq!(check("1", hour + 3).await, DmDecision::Accept);
        let left: Vec<String> = pending(&store, "default", hour + 3)
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.sender_id)
            .collect();
        assert_eq!(left, vec!["2", "3"], "the approved code is gone");
        assert!(
            pending(&store, "default", hour + 31)
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn allowlist_open_and_disabled() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let allow = vec!["5".to_owned()];
        let d = |p, id: &'static str| {
            let (store, allow) = (&store, &allow);
            async move {
                check_dm(
                    store,
                    "default",
                    p,
                    allow,
                    DmSender {
                        sender_id: id,
                        chat_id: id,
                        label: None,
                    },
                    0,
                )
                .await
                .unwrap()
            }
        };
        assert_eq!(d(DmPolicy::Allowlist, "5").await, DmDecision::Accept);
        assert!(matches!(
            d(DmPolicy::Allowlist, "6").await,
            DmDecision::Drop(_)
        ));
        assert_eq!(d(DmPolicy::Pairing, "5").await, DmDecision::Accept);
        assert_eq!(d(DmPolicy::Open, "6").await, DmDecision::Accept);
        assert!(matches!(
            d(DmPolicy::Disabled, "5").await,
            DmDecision::Drop(_)
        ));
        assert!(
            store
                .telegram_pairing_requests("default")
                .await
                .unwrap()
                .is_empty()
        );
    }
}
