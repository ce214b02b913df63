//! The Telegram channel's durable state: the inbound spool (every update received, keyed by
//! bot id and `update_id`, written before the poll offset moves past it and marked handled
//! once handled), the next poll offset per bot, DM pairing codes and the senders approved
//! through them.
//!
//! The spool and the offset are written in one batch, so an update Telegram will no longer
//! send is always on disk; at start-up the channel hands the unhandled ones over again and
//! resumes from the stored offset.
//!
//! The outbox holds the parts of each reply (keyed by the update it answers): a part is
//! `queued`, then `sending` on disk before the Bot API is called, then `sent` with its message
//! id. A part found `sending` after a restart may or may not have reached the chat: it becomes
//! `uncertain` and is never sent again (the Bot API has no idempotency key).

use crate::{Store, StoreError};
use rusqlite::{OptionalExtension, params};
use serde_json::Value;

/// One received update.
#[derive(Debug, Clone, PartialEq)]
pub struct SpooledUpdate {
    pub bot_id: String,
    pub update_id: i64,
    /// The update as the Bot API sent it.
    pub update: Value,
    pub received_at_ms: i64,
    pub handled_at_ms: Option<i64>,
}

/// A pending DM pairing request: an unknown sender and the code the owner approves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingCodeRecord {
    /// The bot's account id (`default` until `accounts.*` exist).
    pub account: String,
    pub code: String,
    pub sender_id: String,
    /// The chat the request came from (a DM: the sender's own chat).
    pub chat_id: String,
    /// The sender's name or `@username`, for listings.
    pub sender_label: Option<String>,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
}

/// A sender allowed to DM the bot through an approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedSenderRecord {
    pub account: String,
    pub sender_id: String,
    pub approved_at_ms: i64,
}

/// Where a part of a reply is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutboxState {
    /// Not sent yet.
    Queued,
    /// The send began; whether it reached the chat is unknown until it is `Sent`.
    Sending,
    Sent,
    /// A send cut off by a restart: it may have arrived; it is not sent again.
    Uncertain,
    /// The Bot API refused it for good.
    Failed,
}

impl OutboxState {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Queued => "queued",
            OutboxState::Sending => "sending",
            OutboxState::Sent => "sent",
            OutboxState::Uncertain => "uncertain",
            OutboxState::Failed => "failed",
        }
    }

    pub fn parse(value: &str) -> Option<OutboxState> {
        Some(match value {
            "queued" => OutboxState::Queued,
            "sending" => OutboxState::Sending,
            "sent" => OutboxState::Sent,
            "uncertain" => OutboxState::Uncertain,
            "failed" => OutboxState::Failed,
            _ => return None,
        })
    }
}

/// One part (chunk) of a reply in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxPart {
    pub bot_id: String,
    /// The update the reply answers.
    pub update_id: i64,
    /// The part's place in the reply, from 0.
    pub part: i64,
    pub chat_id: String,
    /// The part's text, in Markdown.
    pub text: String,
    pub reply_to: Option<i64>,
    pub state: OutboxState,
    /// The message id Telegram gave it, once sent.
    pub message_id: Option<i64>,
    pub updated_at_ms: i64,
}

/// A change to the Telegram tables.
#[derive(Debug, Clone)]
pub enum TelegramWrite {
    /// Records an update; one already spooled is left as it is.
    Spool(SpooledUpdate),
    /// The next `getUpdates` offset of a bot; it never moves backwards.
    Offset {
        bot_id: String,
        next_offset: i64,
    },
    /// The update has been handled.
    Handled {
        bot_id: String,
        update_id: i64,
        at_ms: i64,
    },
    /// Forgets handled updates received before `before_ms` (the spool stays small).
    PruneHandled {
        bot_id: String,
        before_ms: i64,
    },
    PutPairing(PairingCodeRecord),
    DeletePairing {
        account: String,
        code: String,
    },
    /// Forgets the codes of `account` that expired at or before `now_ms`.
    ExpirePairing {
        account: String,
        now_ms: i64,
    },
    Allow(AllowedSenderRecord),
    Disallow {
        account: String,
        sender_id: String,
    },
    /// Records the parts of a reply; a part already recorded is left as it is.
    QueueReply(Vec<OutboxPart>),
    /// Moves a part of a reply to `state`.
    SetPart {
        bot_id: String,
        update_id: i64,
        part: i64,
        state: OutboxState,
        message_id: Option<i64>,
        at_ms: i64,
    },
}

impl From<TelegramWrite> for crate::Write {
    fn from(w: TelegramWrite) -> crate::Write {
        crate::Write::Telegram(w)
    }
}

fn json_value(r: &rusqlite::Row<'_>, column: usize) -> rusqlite::Result<Value> {
    let text: String = r.get(column)?;
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn pairing_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PairingCodeRecord> {
    Ok(PairingCodeRecord {
        account: r.get(0)?,
        code: r.get(1)?,
        sender_id: r.get(2)?,
        chat_id: r.get(3)?,
        sender_label: r.get(4)?,
        created_at_ms: r.get(5)?,
        expires_at_ms: r.get(6)?,
    })
}

fn outbox_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxPart> {
    let state: String = r.get(6)?;
    Ok(OutboxPart {
        bot_id: r.get(0)?,
        update_id: r.get(1)?,
        part: r.get(2)?,
        chat_id: r.get(3)?,
        text: r.get(4)?,
        reply_to: r.get(5)?,
        state: OutboxState::parse(&state).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                6,
                rusqlite::types::Type::Text,
                format!("unknown outbox state {state:?}").into(),
            )
        })?,
        message_id: r.get(7)?,
        updated_at_ms: r.get(8)?,
    })
}

const OUTBOX_COLUMNS: &str =
    "bot_id, update_id, part, chat_id, text, reply_to, state, message_id, updated_at_ms";

const PAIRING_COLUMNS: &str =
    "account, code, sender_id, chat_id, sender_label, created_at_ms, expires_at_ms";

impl Store {
    /// The stored `getUpdates` offset of a bot.
    pub async fn telegram_offset(&self, bot_id: &str) -> Result<Option<i64>, StoreError> {
        let bot_id = bot_id.to_owned();
        self.read(move |conn| {
            conn.query_row(
                "SELECT next_offset FROM telegram_offsets WHERE bot_id = ?1",
                [bot_id],
                |r| r.get(0),
            )
            .optional()
        })
        .await
    }

    /// The updates of a bot received but not handled, oldest first.
    pub async fn telegram_unhandled(&self, bot_id: &str) -> Result<Vec<SpooledUpdate>, StoreError> {
        let bot_id = bot_id.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT bot_id, update_id, update_json, received_at_ms, handled_at_ms
                 FROM telegram_updates WHERE bot_id = ?1 AND handled_at_ms IS NULL
                 ORDER BY update_id",
            )?;
            stmt.query_map([bot_id], |r| {
                Ok(SpooledUpdate {
                    bot_id: r.get(0)?,
                    update_id: r.get(1)?,
                    update: json_value(r, 2)?,
                    received_at_ms: r.get(3)?,
                    handled_at_ms: r.get(4)?,
                })
            })?
            .collect()
        })
        .await
    }

    /// One spooled update.
    pub async fn telegram_update(
        &self,
        bot_id: &str,
        update_id: i64,
    ) -> Result<Option<SpooledUpdate>, StoreError> {
        let bot_id = bot_id.to_owned();
        self.read(move |conn| {
            conn.query_row(
                "SELECT bot_id, update_id, update_json, received_at_ms, handled_at_ms
                 FROM telegram_updates WHERE bot_id = ?1 AND update_id = ?2",
                params![bot_id, update_id],
                |r| {
                    Ok(SpooledUpdate {
                        bot_id: r.get(0)?,
                        update_id: r.get(1)?,
                        update: json_value(r, 2)?,
                        received_at_ms: r.get(3)?,
                        handled_at_ms: r.get(4)?,
                    })
                },
            )
            .optional()
        })
        .await
    }

    /// The parts of the reply to an update, in order.
    pub async fn telegram_outbox(
        &self,
        bot_id: &str,
        update_id: i64,
    ) -> Result<Vec<OutboxPart>, StoreError> {
        let bot_id = bot_id.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {OUTBOX_COLUMNS} FROM telegram_outbox
                 WHERE bot_id = ?1 AND update_id = ?2 ORDER BY part"
            ))?;
            stmt.query_map(params![bot_id, update_id], outbox_row)?
                .collect()
        })
        .await
    }

    /// How many parts of replies are in each state, every bot together (`doctor`, status).
    pub async fn telegram_outbox_counts(
        &self,
    ) -> Result<std::collections::HashMap<OutboxState, u64>, StoreError> {
        self.read(|conn| {
            let mut stmt =
                conn.prepare_cached("SELECT state, COUNT(*) FROM telegram_outbox GROUP BY state")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            let mut counts = std::collections::HashMap::new();
            for row in rows {
                let (state, n) = row?;
                if let Some(state) = OutboxState::parse(&state) {
                    counts.insert(state, n.max(0) as u64);
                }
            }
            Ok(counts)
        })
        .await
    }

    /// How many received updates are not handled yet, every bot together.
    pub async fn telegram_unhandled_count(&self) -> Result<u64, StoreError> {
        self.read(|conn| {
            conn.query_row(
                "SELECT COUNT(*) FROM telegram_updates WHERE handled_at_ms IS NULL",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n.max(0) as u64)
        })
        .await
    }

    /// The pairing requests of an account (expired ones included), oldest first.
    pub async fn telegram_pairing_requests(
        &self,
        account: &str,
    ) -> Result<Vec<PairingCodeRecord>, StoreError> {
        let account = account.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {PAIRING_COLUMNS} FROM telegram_pairing WHERE account = ?1
                 ORDER BY created_at_ms, code"
            ))?;
            stmt.query_map([account], pairing_row)?.collect()
        })
        .await
    }

    /// Whether `sender_id` was approved for `account`.
    pub async fn telegram_is_allowed(
        &self,
        account: &str,
        sender_id: &str,
    ) -> Result<bool, StoreError> {
        let (account, sender_id) = (account.to_owned(), sender_id.to_owned());
        self.read(move |conn| {
            conn.query_row(
                "SELECT 1 FROM telegram_allowed WHERE account = ?1 AND sender_id = ?2",
                params![account, sender_id],
                |_| Ok(()),
            )
            .optional()
            .map(|found| found.is_some())
        })
        .await
    }

    /// The approved senders of an account, in approval order.
    pub async fn telegram_allowed(
        &self,
        account: &str,
    ) -> Result<Vec<AllowedSenderRecord>, StoreError> {
        let account = account.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT account, sender_id, approved_at_ms FROM telegram_allowed
                 WHERE account = ?1 ORDER BY approved_at_ms, sender_id",
            )?;
            stmt.query_map([account], |r| {
                Ok(AllowedSenderRecord {
                    account: r.get(0)?,
                    sender_id: r.get(1)?,
                    approved_at_ms: r.get(2)?,
                })
            })?
            .collect()
        })
        .await
    }
}

pub(crate) fn apply(tx: &rusqlite::Transaction<'_>, w: &TelegramWrite) -> rusqlite::Result<()> {
    match w {
        TelegramWrite::Spool(u) => tx
            .execute(
                "INSERT INTO telegram_updates (bot_id, update_id, update_json, received_at_ms, handled_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(bot_id, update_id) DO NOTHING",
                params![
                    u.bot_id,
                    u.update_id,
                    u.update.to_string(),
                    u.received_at_ms,
                    u.handled_at_ms
                ],
            )
            .map(drop),
        TelegramWrite::Offset {
            bot_id,
            next_offset,
        } => tx
            .execute(
                "INSERT INTO telegram_offsets (bot_id, next_offset) VALUES (?1, ?2)
                 ON CONFLICT(bot_id) DO UPDATE SET next_offset = MAX(next_offset, excluded.next_offset)",
                params![bot_id, next_offset],
            )
            .map(drop),
        TelegramWrite::Handled {
            bot_id,
            update_id,
            at_ms,
        } => tx
            .execute(
                "UPDATE telegram_updates SET handled_at_ms = ?3
                 WHERE bot_id = ?1 AND update_id = ?2 AND handled_at_ms IS NULL",
                params![bot_id, update_id, at_ms],
            )
            .map(drop),
        TelegramWrite::PruneHandled { bot_id, before_ms } => {
            tx.execute(
                "DELETE FROM telegram_updates
                 WHERE bot_id = ?1 AND handled_at_ms IS NOT NULL AND received_at_ms < ?2",
                params![bot_id, before_ms],
            )?;
            // A reply goes with the update it answers.
            tx.execute(
                "DELETE FROM telegram_outbox WHERE bot_id = ?1 AND NOT EXISTS (
                     SELECT 1 FROM telegram_updates u
                     WHERE u.bot_id = telegram_outbox.bot_id AND u.update_id = telegram_outbox.update_id)",
                [bot_id],
            )
            .map(drop)
        }
        TelegramWrite::PutPairing(p) => tx
            .execute(
                &format!(
                    "INSERT INTO telegram_pairing ({PAIRING_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT(account, code) DO UPDATE SET sender_id=excluded.sender_id,
                         chat_id=excluded.chat_id, sender_label=excluded.sender_label,
                         created_at_ms=excluded.created_at_ms, expires_at_ms=excluded.expires_at_ms"
                ),
                params![
                    p.account,
                    p.code,
                    p.sender_id,
                    p.chat_id,
                    p.sender_label,
                    p.created_at_ms,
                    p.expires_at_ms
                ],
            )
            .map(drop),
        TelegramWrite::DeletePairing { account, code } => tx
            .execute(
                "DELETE FROM telegram_pairing WHERE account = ?1 AND code = ?2",
                params![account, code],
            )
            .map(drop),
        TelegramWrite::ExpirePairing { account, now_ms } => tx
            .execute(
                "DELETE FROM telegram_pairing WHERE account = ?1 AND expires_at_ms <= ?2",
                params![account, now_ms],
            )
            .map(drop),
        TelegramWrite::Allow(a) => tx
            .execute(
                "INSERT INTO telegram_allowed (account, sender_id, approved_at_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT(account, sender_id) DO NOTHING",
                params![a.account, a.sender_id, a.approved_at_ms],
            )
            .map(drop),
        TelegramWrite::Disallow { account, sender_id } => tx
            .execute(
                "DELETE FROM telegram_allowed WHERE account = ?1 AND sender_id = ?2",
                params![account, sender_id],
            )
            .map(drop),
        TelegramWrite::QueueReply(parts) => {
            let mut stmt = tx.prepare_cached(&format!(
                "INSERT INTO telegram_outbox ({OUTBOX_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT(bot_id, update_id, part) DO NOTHING"
            ))?;
            for p in parts {
                stmt.execute(params![
                    p.bot_id,
                    p.update_id,
                    p.part,
                    p.chat_id,
                    p.text,
                    p.reply_to,
                    p.state.as_str(),
                    p.message_id,
                    p.updated_at_ms
                ])?;
            }
            Ok(())
        }
        TelegramWrite::SetPart {
            bot_id,
            update_id,
            part,
            state,
            message_id,
            at_ms,
        } => tx
            .execute(
                "UPDATE telegram_outbox SET state = ?4, message_id = COALESCE(?5, message_id),
                     updated_at_ms = ?6
                 WHERE bot_id = ?1 AND update_id = ?2 AND part = ?3",
                params![bot_id, update_id, part, state.as_str(), message_id, at_ms],
            )
            .map(drop),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn update(id: i64) -> SpooledUpdate {
        SpooledUpdate {
            bot_id: "42".into(),
            update_id: id,
            update: json!({"update_id": id, "message": {"text": format!("m{id}")}}),
            received_at_ms: id * 10,
            handled_at_ms: None,
        }
    }

    #[tokio::test]
    async fn outbox_parts_keep_their_state_and_go_with_their_update() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let part = |n: i64| OutboxPart {
            bot_id: "42".into(),
            update_id: 7,
            part: n,
            chat_id: "9".into(),
            text: format!("part {n}"),
            reply_to: Some(3),
            state: OutboxState::Queued,
            message_id: None,
            updated_at_ms: 1,
        };
        s.apply(vec![
            TelegramWrite::Spool(update(7)).into(),
            TelegramWrite::QueueReply(vec![part(0), part(1)]).into(),
            TelegramWrite::SetPart {
                bot_id: "42".into(),
                update_id: 7,
                part: 0,
                state: OutboxState::Sent,
                message_id: Some(500),
                at_ms: 2,
            }
            .into(),
            // Queued again (a resumed reply): left as it is.
            TelegramWrite::QueueReply(vec![part(0)]).into(),
        ])
        .await
        .unwrap();
        drop(s);
        let s = Store::open(dir.path()).unwrap();
        let parts = s.telegram_outbox("42", 7).await.unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(
            (parts[0].state, parts[0].message_id),
            (OutboxState::Sent, Some(500))
        );
        assert_eq!(
            (parts[1].state, parts[1].message_id),
            (OutboxState::Queued, None)
        );
        let counts = s.telegram_outbox_counts().await.unwrap();
        assert_eq!(counts.get(&OutboxState::Queued), Some(&1));
        assert_eq!(s.telegram_unhandled_count().await.unwrap(), 1);

        s.apply(vec![
            TelegramWrite::Handled {
                bot_id: "42".into(),
                update_id: 7,
                at_ms: 10,
            }
            .into(),
            TelegramWrite::PruneHandled {
                bot_id: "42".into(),
                before_ms: 1_000,
            }
            .into(),
        ])
        .await
        .unwrap();
        assert!(s.telegram_outbox("42", 7).await.unwrap().is_empty());
        assert_eq!(s.telegram_unhandled_count().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn the_spool_and_offset_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.telegram_offset("42").await.unwrap(), None);
        s.apply(vec![
            TelegramWrite::Spool(update(7)).into(),
            TelegramWrite::Spool(update(8)).into(),
            TelegramWrite::Offset {
                bot_id: "42".into(),
                next_offset: 9,
            }
            .into(),
        ])
        .await
        .unwrap();
        s.apply(vec![
            TelegramWrite::Handled {
                bot_id: "42".into(),
                update_id: 7,
                at_ms: 100,
            }
            .into(),
            // An offset never moves back, a spooled update is never replaced.
            TelegramWrite::Offset {
                bot_id: "42".into(),
                next_offset: 3,
            }
            .into(),
            TelegramWrite::Spool(SpooledUpdate {
                update: json!({"other": true}),
                ..update(8)
            })
            .into(),
        ])
        .await
        .unwrap();
        drop(s);

        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.telegram_offset("42").await.unwrap(), Some(9));
        assert_eq!(s.telegram_offset("43").await.unwrap(), None);
        assert_eq!(s.telegram_unhandled("42").await.unwrap(), vec![update(8)]);
        let seven = s.telegram_update("42", 7).await.unwrap().unwrap();
        assert_eq!(seven.handled_at_ms, Some(100));

        s.apply(vec![
            TelegramWrite::PruneHandled {
                bot_id: "42".into(),
                before_ms: 1000,
            }
            .into(),
        ])
        .await
        .unwrap();
        assert_eq!(s.telegram_update("42", 7).await.unwrap(), None);
        assert!(
            s.telegram_update("42", 8).await.unwrap().is_some(),
            "unhandled stays"
        );
    }

    #[tokio::test]
    async fn pairing_codes_and_approvals() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let code = |c: &str, exp: i64| PairingCodeRecord {
            account: "default".into(),
            code: c.into(),
            sender_id: format!("u{c}"),
            chat_id: format!("u{c}"),
            sender_label: None,
            created_at_ms: exp - 10,
            expires_at_ms: exp,
        };
        s.apply(vec![
            TelegramWrite::PutPairing(code("AAAA2222", 100)).into(),
            TelegramWrite::PutPairing(code("BBBB3333", 200)).into(),
        ])
        .await
        .unwrap();
        s.apply(vec![
            TelegramWrite::ExpirePairing {
                account: "default".into(),
                now_ms: 150,
            }
            .into(),
        ])
        .await
        .unwrap();
        assert_eq!(
            s.telegram_pairing_requests("default").await.unwrap(),
            vec![code("BBBB3333", 200)]
        );
        s.apply(vec![
            TelegramWrite::DeletePairing {
                account: "default".into(),
                code: "BBBB3333".into(),
            }
            .into(),
            TelegramWrite::Allow(AllowedSenderRecord {
                account: "default".into(),
                sender_id: "uBBBB3333".into(),
                approved_at_ms: 160,
            })
            .into(),
        ])
        .await
        .unwrap();
        assert!(
            s.telegram_pairing_requests("default")
                .await
                .unwrap()
                .is_empty()
        );
        assert!(s.telegram_is_allowed("default", "uBBBB3333").await.unwrap());
        assert!(!s.telegram_is_allowed("other", "uBBBB3333").await.unwrap());
        assert_eq!(s.telegram_allowed("default").await.unwrap().len(), 1);
        s.apply(vec![
            TelegramWrite::Disallow {
                account: "default".into(),
                sender_id: "uBBBB3333".into(),
            }
            .into(),
        ])
        .await
        .unwrap();
        assert!(!s.telegram_is_allowed("default", "uBBBB3333").await.unwrap());
    }
}
