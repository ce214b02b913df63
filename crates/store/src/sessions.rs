//! The agent's sessions: which session id each session key currently points at, the
//! append-only transcript of every session id, and the runs (one turn each) with their outcome.
//!
//! A transcript message is stored as the JSON the wire shows (`chat.history`), so a page is
//! served as it was written. A run is written `running` before its first event and gets its
//! outcome when it ends; a run still `running` at start-up was cut off by a crash or a kill.

use crate::{Store, StoreError};
use rusqlite::{OptionalExtension, params};
use serde_json::Value;

/// A session key and the session id it currently points at.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    pub session_key: String,
    pub session_id: String,
    pub agent_id: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// Where the session's messages come from and go to (channel, peer, label…): a JSON
    /// object the agent runtime owns.
    pub meta: Value,
}

/// One transcript message.
#[derive(Debug, Clone, PartialEq)]
pub struct TranscriptEntry {
    pub session_id: String,
    /// Its position in the session, from 1.
    pub seq: i64,
    /// The run that wrote it (`None` for injected notes).
    pub run_id: Option<String>,
    /// The message as `chat.history` shows it.
    pub message: Value,
    pub created_at_ms: i64,
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Running,
    Ok,
    Error,
    Aborted,
    Timeout,
    /// It was running when the gateway stopped without finishing it.
    Interrupted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Ok => "ok",
            RunStatus::Error => "error",
            RunStatus::Aborted => "aborted",
            RunStatus::Timeout => "timeout",
            RunStatus::Interrupted => "interrupted",
        }
    }

    fn parse(s: &str) -> Option<RunStatus> {
        Some(match s {
            "running" => RunStatus::Running,
            "ok" => RunStatus::Ok,
            "error" => RunStatus::Error,
            "aborted" => RunStatus::Aborted,
            "timeout" => RunStatus::Timeout,
            "interrupted" => RunStatus::Interrupted,
            _ => return None,
        })
    }
}

/// One run of the agent (a turn) and how it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    pub run_id: String,
    pub session_key: String,
    pub session_id: String,
    pub status: RunStatus,
    pub started_at_ms: i64,
    pub ended_at_ms: Option<i64>,
    pub stop_reason: Option<String>,
    /// The final reply's text.
    pub reply_text: Option<String>,
    pub error: Option<String>,
}

/// A change to the sessions' tables.
#[derive(Debug, Clone)]
pub enum SessionWrite {
    /// Creates the key or points it at a new session id (a reset).
    PutSession(SessionRecord),
    Touch {
        session_key: String,
        at_ms: i64,
    },
    Append(TranscriptEntry),
    /// Creates the run or records its outcome.
    PutRun(RunRecord),
}

fn json_value(r: &rusqlite::Row<'_>, column: usize) -> rusqlite::Result<Value> {
    let text: String = r.get(column)?;
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn run_status(r: &rusqlite::Row<'_>, column: usize) -> rusqlite::Result<RunStatus> {
    let text: String = r.get(column)?;
    RunStatus::parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            column,
            rusqlite::types::Type::Text,
            format!("unknown run status {text:?}").into(),
        )
    })
}

const RUN_COLUMNS: &str = "run_id, session_key, session_id, status, started_at_ms, ended_at_ms, stop_reason, reply_text, error";

fn run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRecord> {
    Ok(RunRecord {
        run_id: r.get(0)?,
        session_key: r.get(1)?,
        session_id: r.get(2)?,
        status: run_status(r, 3)?,
        started_at_ms: r.get(4)?,
        ended_at_ms: r.get(5)?,
        stop_reason: r.get(6)?,
        reply_text: r.get(7)?,
        error: r.get(8)?,
    })
}

fn transcript_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TranscriptEntry> {
    Ok(TranscriptEntry {
        session_id: r.get(0)?,
        seq: r.get(1)?,
        run_id: r.get(2)?,
        message: json_value(r, 3)?,
        created_at_ms: r.get(4)?,
    })
}

impl Store {
    /// Every session key with its current session id (start-up).
    pub fn sessions(&self) -> Result<Vec<SessionRecord>, StoreError> {
        self.query_all(
            "sessions",
            &["session_key"],
            "SELECT session_key, session_id, agent_id, created_at_ms, updated_at_ms, meta_json
             FROM sessions ORDER BY created_at_ms",
            |r| {
                Ok(SessionRecord {
                    session_key: r.get(0)?,
                    session_id: r.get(1)?,
                    agent_id: r.get(2)?,
                    created_at_ms: r.get(3)?,
                    updated_at_ms: r.get(4)?,
                    meta: json_value(r, 5)?,
                })
            },
        )
    }

    /// The runs still marked running (start-up: the gateway stopped during them).
    pub fn running_runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        self.query_all(
            "runs",
            &["run_id"],
            &format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE status = 'running' ORDER BY started_at_ms"
            ),
            run_row,
        )
    }

    /// The highest transcript position of every session id that has one (start-up).
    pub fn transcript_ends(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.query_all(
            "transcript",
            &["session_id"],
            "SELECT session_id, MAX(seq) FROM transcript GROUP BY session_id",
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    /// The last `limit` messages of a session id, oldest first.
    pub async fn transcript(
        &self,
        session_id: &str,
        limit: usize,
    ) -> Result<Vec<TranscriptEntry>, StoreError> {
        let session_id = session_id.to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT session_id, seq, run_id, message_json, created_at_ms FROM transcript
                 WHERE session_id = ?1 ORDER BY seq DESC LIMIT ?2",
            )?;
            let mut rows = stmt
                .query_map(params![session_id, limit], transcript_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.reverse();
            Ok(rows)
        })
        .await
    }

    /// One run, by id.
    pub async fn run(&self, run_id: &str) -> Result<Option<RunRecord>, StoreError> {
        let run_id = run_id.to_owned();
        self.read(move |conn| {
            conn.query_row(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?1"),
                [run_id],
                run_row,
            )
            .optional()
        })
        .await
    }
}

pub(crate) fn apply(tx: &rusqlite::Transaction<'_>, w: &SessionWrite) -> rusqlite::Result<()> {
    match w {
        SessionWrite::PutSession(s) => tx
            .execute(
                "INSERT INTO sessions (session_key, session_id, agent_id, created_at_ms, updated_at_ms, meta_json)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(session_key) DO UPDATE SET session_id=excluded.session_id,
                     agent_id=excluded.agent_id, created_at_ms=excluded.created_at_ms,
                     updated_at_ms=excluded.updated_at_ms, meta_json=excluded.meta_json",
                params![
                    s.session_key,
                    s.session_id,
                    s.agent_id,
                    s.created_at_ms,
                    s.updated_at_ms,
                    s.meta.to_string()
                ],
            )
            .map(drop),
        SessionWrite::Touch { session_key, at_ms } => tx
            .execute(
                "UPDATE sessions SET updated_at_ms = ?2 WHERE session_key = ?1",
                params![session_key, at_ms],
            )
            .map(drop),
        SessionWrite::Append(e) => tx
            .execute(
                "INSERT INTO transcript (session_id, seq, run_id, message_json, created_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    e.session_id,
                    e.seq,
                    e.run_id,
                    e.message.to_string(),
                    e.created_at_ms
                ],
            )
            .map(drop),
        SessionWrite::PutRun(r) => tx
            .execute(
                "INSERT INTO runs (run_id, session_key, session_id, status, started_at_ms, ended_at_ms,
                     stop_reason, reply_text, error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT(run_id) DO UPDATE SET status=excluded.status,
                     ended_at_ms=excluded.ended_at_ms, stop_reason=excluded.stop_reason,
                     reply_text=excluded.reply_text, error=excluded.error",
                params![
                    r.run_id,
                    r.session_key,
                    r.session_id,
                    r.status.as_str(),
                    r.started_at_ms,
                    r.ended_at_ms,
                    r.stop_reason,
                    r.reply_text,
                    r.error
                ],
            )
            .map(drop),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn session(key: &str, id: &str) -> SessionRecord {
        SessionRecord {
            session_key: key.into(),
            session_id: id.into(),
            agent_id: "main".into(),
            created_at_ms: 1,
            updated_at_ms: 1,
            meta: json!({"channel": "webchat"}),
        }
    }

    fn entry(id: &str, seq: i64) -> TranscriptEntry {
        TranscriptEntry {
            session_id: id.into(),
            seq,
            run_id: Some("r1".into()),
            message: json!({"role": "user", "content": [{"type": "text", "text": format!("m{seq}")}]}),
            created_at_ms: seq,
        }
    }

    #[tokio::test]
    async fn sessions_transcripts_and_runs_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let run = RunRecord {
            run_id: "r1".into(),
            session_key: "agent:main:main".into(),
            session_id: "s1".into(),
            status: RunStatus::Running,
            started_at_ms: 5,
            ended_at_ms: None,
            stop_reason: None,
            reply_text: None,
            error: None,
        };
        let mut writes: Vec<crate::Write> = vec![
            SessionWrite::PutSession(session("agent:main:main", "s1")).into(),
            SessionWrite::PutRun(run.clone()).into(),
        ];
        writes.extend((1..=5).map(|i| SessionWrite::Append(entry("s1", i)).into()));
        s.apply(writes).await.unwrap();
        drop(s);

        let s = Store::open(dir.path()).unwrap();
        assert_eq!(
            s.sessions().unwrap(),
            vec![session("agent:main:main", "s1")]
        );
        assert_eq!(s.running_runs().unwrap(), vec![run.clone()]);
        assert_eq!(s.transcript_ends().unwrap(), vec![("s1".to_owned(), 5)]);
        let page = s.transcript("s1", 2).await.unwrap();
        assert_eq!(
            page,
            vec![entry("s1", 4), entry("s1", 5)],
            "the last two, oldest first"
        );

        let ended = RunRecord {
            status: RunStatus::Ok,
            ended_at_ms: Some(9),
            stop_reason: Some("stop".into()),
            reply_text: Some("hi".into()),
            ..run
        };
        s.apply(vec![SessionWrite::PutRun(ended.clone()).into()])
            .await
            .unwrap();
        assert!(s.running_runs().unwrap().is_empty());
        assert_eq!(s.run("r1").await.unwrap(), Some(ended));
        assert_eq!(s.run("nope").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_transcript_position_is_written_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.apply(vec![SessionWrite::Append(entry("s1", 1)).into()])
            .await
            .unwrap();
        let again = s
            .apply(vec![SessionWrite::Append(entry("s1", 1)).into()])
            .await;
        assert!(
            again.is_err(),
            "a second message at the same position is refused"
        );
        assert_eq!(s.transcript("s1", 10).await.unwrap(), vec![entry("s1", 1)]);
    }
}
