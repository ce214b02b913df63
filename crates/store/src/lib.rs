//! The gateway's durable state: one SQLite database in the state dir (WAL, `synchronous=FULL`,
//! versioned migrations, file mode 0600 in a 0700 directory).
//!
//! Every [`Store::apply`] is one transaction that is on disk when it returns, so an approval
//! that was answered survives a SIGKILL right after. A database that is corrupt or was written
//! by a newer clawgate is refused with a message naming the file; it is never replaced.
//!
//! Writes go through one writing connection, one batch at a time in the order they were asked,
//! each on a blocking-pool thread: a caller awaits its batch without holding up the async
//! worker it runs on, however long the disk takes. Loads (the `devices()`… reads) run on the
//! caller's thread and are meant for startup, before the gateway serves.

#![forbid(unsafe_code)]

mod devices;
mod nodes;
mod sessions;
mod telegram;

pub use devices::{DeviceRecord, DeviceWrite, PairingRequestRecord, TokenRecord};
pub use nodes::{NodeRecord, NodeRequestRecord, NodeWrite};
pub use sessions::{RunRecord, RunStatus, SessionRecord, SessionWrite, TranscriptEntry};
pub use telegram::{
    AllowedSenderRecord, OutboxPart, OutboxState, PairingCodeRecord, SpooledUpdate, TelegramWrite,
};

use rusqlite::{Connection, OpenFlags};
use std::fs;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The file name inside the state dir.
pub const DB_FILE: &str = "clawgate.sqlite";

/// How long a write waits for a lock another process holds on the database (an `sqlite3`
/// shell, a backup) before it fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Migrations, in order; `PRAGMA user_version` records how many have run.
const MIGRATIONS: &[&str] = &[
    // 1: devices, their tokens, pending pairing requests.
    "CREATE TABLE devices (
        device_id TEXT PRIMARY KEY,
        public_key TEXT NOT NULL,
        display_name TEXT,
        platform TEXT,
        device_family TEXT,
        client_id TEXT NOT NULL,
        client_mode TEXT NOT NULL,
        roles_json TEXT NOT NULL,
        scopes_json TEXT NOT NULL,
        approved_via TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL,
        approved_at_ms INTEGER NOT NULL,
        last_seen_at_ms INTEGER,
        last_seen_reason TEXT
    );
    CREATE TABLE device_tokens (
        device_id TEXT NOT NULL REFERENCES devices(device_id) ON DELETE CASCADE,
        role TEXT NOT NULL,
        scopes_json TEXT NOT NULL,
        generation INTEGER NOT NULL,
        token_hash TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL,
        rotated_at_ms INTEGER,
        revoked_at_ms INTEGER,
        PRIMARY KEY (device_id, role)
    );
    CREATE TABLE pairing_requests (
        request_id TEXT PRIMARY KEY,
        device_id TEXT NOT NULL,
        role TEXT NOT NULL,
        public_key TEXT NOT NULL,
        display_name TEXT,
        platform TEXT,
        device_family TEXT,
        client_id TEXT NOT NULL,
        client_mode TEXT NOT NULL,
        scopes_json TEXT NOT NULL,
        reason TEXT NOT NULL,
        is_repair INTEGER NOT NULL,
        created_at_ms INTEGER NOT NULL,
        last_attempt_ms INTEGER NOT NULL,
        UNIQUE (device_id, role)
    );",
    // 2: node capability approvals (the approved command surface per node) and their requests.
    "CREATE TABLE nodes (
        node_id TEXT PRIMARY KEY,
        display_name TEXT,
        platform TEXT,
        version TEXT,
        device_family TEXT,
        client_id TEXT NOT NULL,
        caps_json TEXT NOT NULL,
        commands_json TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL,
        approved_at_ms INTEGER NOT NULL
    );
    CREATE TABLE node_pairing_requests (
        request_id TEXT PRIMARY KEY,
        node_id TEXT NOT NULL UNIQUE,
        display_name TEXT,
        platform TEXT,
        version TEXT,
        device_family TEXT,
        client_id TEXT NOT NULL,
        client_mode TEXT NOT NULL,
        caps_json TEXT NOT NULL,
        commands_json TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL,
        last_attempt_ms INTEGER NOT NULL
    );",
    // 3: a label an operator gives a device (`device.pair.rename`), apart from its own name.
    "ALTER TABLE devices ADD COLUMN operator_label TEXT;",
    // 4: the agent's sessions (a key's current session id), their transcripts and runs.
    "CREATE TABLE sessions (
        session_key TEXT PRIMARY KEY,
        session_id TEXT NOT NULL UNIQUE,
        agent_id TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL,
        updated_at_ms INTEGER NOT NULL,
        meta_json TEXT NOT NULL
    );
    CREATE TABLE transcript (
        session_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        run_id TEXT,
        message_json TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL,
        PRIMARY KEY (session_id, seq)
    );
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        session_key TEXT NOT NULL,
        session_id TEXT NOT NULL,
        status TEXT NOT NULL,
        started_at_ms INTEGER NOT NULL,
        ended_at_ms INTEGER,
        stop_reason TEXT,
        reply_text TEXT,
        error TEXT
    );
    CREATE INDEX runs_by_status ON runs (status);",
    // 5: the Telegram channel: the inbound spool, the poll offset per bot, DM pairing codes
    // and the senders approved through them.
    "CREATE TABLE telegram_updates (
        bot_id TEXT NOT NULL,
        update_id INTEGER NOT NULL,
        update_json TEXT NOT NULL,
        received_at_ms INTEGER NOT NULL,
        handled_at_ms INTEGER,
        PRIMARY KEY (bot_id, update_id)
    );
    CREATE INDEX telegram_updates_unhandled ON telegram_updates (bot_id, handled_at_ms);
    CREATE TABLE telegram_offsets (
        bot_id TEXT PRIMARY KEY,
        next_offset INTEGER NOT NULL
    );
    CREATE TABLE telegram_pairing (
        account TEXT NOT NULL,
        code TEXT NOT NULL,
        sender_id TEXT NOT NULL,
        chat_id TEXT NOT NULL,
        sender_label TEXT,
        created_at_ms INTEGER NOT NULL,
        expires_at_ms INTEGER NOT NULL,
        PRIMARY KEY (account, code),
        UNIQUE (account, sender_id)
    );
    CREATE TABLE telegram_allowed (
        account TEXT NOT NULL,
        sender_id TEXT NOT NULL,
        approved_at_ms INTEGER NOT NULL,
        PRIMARY KEY (account, sender_id)
    );",
    // 6: the Telegram outbox: every part of a reply, recorded before it is sent, so that a
    // restart neither sends a part twice nor loses one without saying so.
    "CREATE TABLE telegram_outbox (
        bot_id TEXT NOT NULL,
        update_id INTEGER NOT NULL,
        part INTEGER NOT NULL,
        chat_id TEXT NOT NULL,
        text TEXT NOT NULL,
        reply_to INTEGER,
        state TEXT NOT NULL,
        message_id INTEGER,
        updated_at_ms INTEGER NOT NULL,
        PRIMARY KEY (bot_id, update_id, part)
    );
    CREATE INDEX telegram_outbox_by_state ON telegram_outbox (bot_id, state);",
];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the state dir {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is not a readable clawgate database ({detail}); it was left untouched — move it aside to start with empty state, or restore it from a backup"
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "{path} was written by a newer clawgate (schema {found}, this version knows {known}); upgrade clawgate or point --state-dir elsewhere — the file was left untouched"
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error(
        "{path} has schema version {found}, which no clawgate writes; it was left untouched — restore it from a backup, or move it aside to start with empty state"
    )]
    InvalidSchema { path: PathBuf, found: i64 },
    #[error(
        "{path}: the {column} of {table} row {row} is unreadable ({detail}); the file was refused rather than loaded with that row dropped or emptied, and left untouched — correct the value, or remove the row (its device or node then asks to pair again): sqlite3 {path} \"{delete}\""
    )]
    UnreadableRow {
        path: PathBuf,
        table: String,
        row: String,
        column: String,
        detail: String,
        /// The statement that removes the row.
        delete: String,
    },
    #[error(
        "a write to {path} was interrupted before it reported back (the gateway is shutting down, or the write failed unexpectedly)"
    )]
    WriteAborted { path: PathBuf },
    #[error("state database {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
}

/// One change; [`Store::apply`] runs a batch in one transaction. One variant per table
/// family, each family's records, loads and SQL in its own module.
#[derive(Debug, Clone)]
pub enum Write {
    Device(DeviceWrite),
    Node(NodeWrite),
    Session(SessionWrite),
    Telegram(TelegramWrite),
}

impl From<DeviceWrite> for Write {
    fn from(w: DeviceWrite) -> Write {
        Write::Device(w)
    }
}

impl From<NodeWrite> for Write {
    fn from(w: NodeWrite) -> Write {
        Write::Node(w)
    }
}

impl From<SessionWrite> for Write {
    fn from(w: SessionWrite) -> Write {
        Write::Session(w)
    }
}

pub struct Store {
    path: PathBuf,
    /// The connection loads read through (`PRAGMA query_only`).
    pub(crate) loader: Arc<Mutex<Connection>>,
    /// The connection every write goes through. tokio's mutex hands it out in the order it was
    /// asked for, so batches apply in that order.
    writer: Arc<tokio::sync::Mutex<Connection>>,
}

pub(crate) fn json_vec(v: &[String]) -> String {
    serde_json::to_string(v).expect("strings serialize")
}

/// A JSON list of strings (scopes, roles, commands); one that does not parse is an error,
/// never an empty list.
pub(crate) fn string_list(r: &rusqlite::Row<'_>, column: usize) -> rusqlite::Result<Vec<String>> {
    let text: String = r.get(column)?;
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(e))
    })
}

impl Store {
    /// Opens (creating if needed) `<state_dir>/clawgate.sqlite` and runs pending migrations.
    pub fn open(state_dir: &Path) -> Result<Store, StoreError> {
        if !state_dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(state_dir)
                .map_err(|source| StoreError::Dir {
                    path: state_dir.to_owned(),
                    source,
                })?;
        }
        let path = state_dir.join(DB_FILE);
        if !path.exists() {
            // Create the file with 0600 before SQLite does, so it is never world-readable.
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(|source| StoreError::Dir {
                    path: path.clone(),
                    source,
                })?;
        } else {
            let _ = fs::set_permissions(&path, fs::Permissions::from_mode(0o600));
        }
        let sqlite = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let corrupt = |e: rusqlite::Error| StoreError::Corrupt {
            path: path.clone(),
            detail: e.to_string(),
        };
        let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_WRITE)
            .map_err(corrupt)?;
        // The first read of the header is where a non-database file shows itself.
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(corrupt)?;
        let known = MIGRATIONS.len() as i64;
        if version < 0 {
            return Err(StoreError::InvalidSchema {
                path,
                found: version,
            });
        }
        if version > known {
            return Err(StoreError::NewerSchema {
                path,
                found: version,
                known,
            });
        }
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(corrupt)?;
        if check != "ok" {
            return Err(StoreError::Corrupt {
                path,
                detail: check,
            });
        }
        // Until the schema is in place nothing worth an fsync is written (see below).
        conn.execute_batch(
            "PRAGMA synchronous=NORMAL; PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON;",
        )
        .map_err(sqlite)?;
        if version < known {
            // All pending migrations in one transaction, never a half-migrated file. It is
            // committed without waiting for the disk (WAL keeps that safe): a schema lost to a
            // power cut is simply migrated again, and the first write that matters is synced
            // together with it. This keeps a fresh start from waiting on fsyncs.
            let pending: Vec<&str> = MIGRATIONS[version as usize..].to_vec();
            let tx_sql = format!(
                "BEGIN; {}; PRAGMA user_version = {known}; COMMIT;",
                pending.join(";\n")
            );
            conn.execute_batch(&tx_sql).map_err(sqlite)?;
        }
        // This connection only loads from now on; writes get their own.
        conn.execute_batch("PRAGMA query_only=ON;")
            .map_err(sqlite)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite)?;
        let write_conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_WRITE)
            .map_err(sqlite)?;
        // Every write is on disk when `apply` returns.
        write_conn
            .execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")
            .map_err(sqlite)?;
        write_conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite)?;
        for suffix in ["-wal", "-shm"] {
            let side = PathBuf::from(format!("{}{suffix}", path.display()));
            let _ = fs::set_permissions(&side, fs::Permissions::from_mode(0o600));
        }
        Ok(Store {
            path,
            loader: Arc::new(Mutex::new(conn)),
            writer: Arc::new(tokio::sync::Mutex::new(write_conn)),
        })
    }

    /// Runs a read on the loading connection on a blocking-pool thread, for reads while the
    /// gateway serves (a transcript page): the caller's async worker never waits on the disk.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let loader = self.loader.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = loader.lock().unwrap_or_else(|e| e.into_inner());
            f(&conn).map_err(|source| StoreError::Sqlite { path, source })
        })
        .await
        .map_err(|_| StoreError::WriteAborted {
            path: self.path.clone(),
        })?
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Applies `writes` in one transaction, durable when this returns. Batches apply one at a
    /// time, in the order they were asked for, on a blocking-pool thread: the caller's async
    /// worker stays free, and tokio counts the write as work under way (a runtime with paused
    /// time does not skip ahead while the disk works).
    pub async fn apply(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.apply_then(writes, || ()).await
    }

    /// [`Store::apply`], then `then` right after the commit on the same thread. Once a batch's
    /// turn has come it runs to the end even if its caller stops waiting (its socket closed),
    /// so a caller that mirrors the tables in memory does it in `then`: what is on disk and
    /// what it holds cannot part.
    pub async fn apply_then<T: Send + 'static>(
        &self,
        writes: Vec<Write>,
        then: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, StoreError> {
        let mut conn = self.writer.clone().lock_owned().await;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            apply_batch(&mut conn, &writes)
                .map_err(|source| StoreError::Sqlite { path, source })?;
            Ok(then())
        })
        .await
        .map_err(|_| StoreError::WriteAborted {
            path: self.path.clone(),
        })?
    }

    /// Runs a query without parameters over `table` and maps every row. A row that does not
    /// map (a JSON list that does not parse, a value of the wrong type) fails the whole load
    /// with an error naming the row by its `key` columns: loading the rest would silently drop
    /// or widen what that row grants.
    pub(crate) fn query_all<T>(
        &self,
        table: &str,
        key: &[&str],
        sql: &str,
        map: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, StoreError> {
        let conn = self.loader.lock().expect("store loader lock");
        let mut stmt = conn.prepare(sql).map_err(|e| self.err(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            out.push(map(row).map_err(|e| self.unreadable(table, key, row, e))?);
        }
        Ok(out)
    }

    fn unreadable(
        &self,
        table: &str,
        key: &[&str],
        row: &rusqlite::Row<'_>,
        e: rusqlite::Error,
    ) -> StoreError {
        let column = match &e {
            rusqlite::Error::FromSqlConversionFailure(i, _, _)
            | rusqlite::Error::InvalidColumnType(i, _, _)
            | rusqlite::Error::IntegralValueOutOfRange(i, _) => row.as_ref().column_name(*i).ok(),
            _ => None,
        };
        let Some(column) = column else {
            return self.err(e);
        };
        let row_key = key
            .iter()
            .map(|k| {
                let value: String = row.get(*k).unwrap_or_default();
                format!("{k}='{}'", value.replace('\'', "''"))
            })
            .collect::<Vec<_>>();
        let detail = match e {
            rusqlite::Error::FromSqlConversionFailure(_, _, cause) => cause.to_string(),
            other => other.to_string(),
        };
        StoreError::UnreadableRow {
            path: self.path.clone(),
            table: table.to_owned(),
            row: row_key.join(", "),
            column: column.to_owned(),
            detail,
            delete: format!("DELETE FROM {table} WHERE {}", row_key.join(" AND ")),
        }
    }
}

fn apply_batch(conn: &mut Connection, writes: &[Write]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    for w in writes {
        apply_one(&tx, w)?;
    }
    tx.commit()
}

fn apply_one(tx: &rusqlite::Transaction<'_>, w: &Write) -> rusqlite::Result<()> {
    match w {
        Write::Device(w) => devices::apply(tx, w),
        Write::Node(w) => nodes::apply(tx, w),
        Write::Session(w) => sessions::apply(tx, w),
        Write::Telegram(w) => telegram::apply(tx, w),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(id: &str) -> DeviceRecord {
        DeviceRecord {
            device_id: id.into(),
            public_key: "pk".into(),
            display_name: Some("laptop".into()),
            platform: Some("linux".into()),
            device_family: None,
            client_id: "cli".into(),
            client_mode: "cli".into(),
            roles: vec!["operator".into()],
            scopes: vec!["operator.read".into()],
            approved_via: "owner".into(),
            created_at_ms: 1,
            approved_at_ms: 2,
            last_seen_at_ms: None,
            last_seen_reason: None,
            operator_label: None,
        }
    }

    fn token(id: &str) -> TokenRecord {
        TokenRecord {
            device_id: id.into(),
            role: "operator".into(),
            scopes: vec!["operator.read".into()],
            generation: 1,
            token_hash: "h".into(),
            created_at_ms: 2,
            rotated_at_ms: None,
            revoked_at_ms: None,
        }
    }

    #[tokio::test]
    async fn round_trip_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let s = Store::open(&state).unwrap();
        s.apply(vec![
            Write::Device(DeviceWrite::PutDevice(device("d1"))),
            Write::Device(DeviceWrite::PutToken(token("d1"))),
        ])
        .await
        .unwrap();
        drop(s);
        let s = Store::open(&state).unwrap();
        assert_eq!(s.devices().unwrap(), vec![device("d1")]);
        assert_eq!(s.tokens().unwrap(), vec![token("d1")]);
        assert_eq!(
            fs::metadata(s.path()).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(&state).unwrap().permissions().mode() & 0o777,
            0o700
        );
        s.apply(vec![Write::Device(DeviceWrite::DeleteDevice("d1".into()))])
            .await
            .unwrap();
        assert!(
            s.tokens().unwrap().is_empty(),
            "tokens go with their device"
        );
    }

    #[tokio::test]
    async fn a_failed_batch_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        // A token for an unknown device violates the foreign key: the device write is rolled back.
        let res = s
            .apply(vec![
                Write::Device(DeviceWrite::PutDevice(device("d1"))),
                Write::Device(DeviceWrite::PutToken(token("nope"))),
            ])
            .await;
        assert!(res.is_err());
        assert!(s.devices().unwrap().is_empty());
    }

    #[test]
    fn corrupt_and_newer_databases_are_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        fs::write(
            &path,
            b"this is not sqlite, just some bytes that must survive",
        )
        .unwrap();
        let err = Store::open(dir.path()).err().unwrap();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("left untouched"));
        assert_eq!(
            fs::read(&path).unwrap(),
            b"this is not sqlite, just some bytes that must survive"
        );

        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        let c = Connection::open(dir.path().join(DB_FILE)).unwrap();
        c.execute_batch("PRAGMA user_version = 99").unwrap();
        drop(c);
        let err = Store::open(dir.path()).err().unwrap();
        assert!(
            matches!(err, StoreError::NewerSchema { found: 99, .. }),
            "{err}"
        );
    }

    #[test]
    fn a_negative_schema_version_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        let c = Connection::open(dir.path().join(DB_FILE)).unwrap();
        c.execute_batch("PRAGMA user_version = -1").unwrap();
        drop(c);
        let err = Store::open(dir.path()).err().unwrap();
        assert!(
            matches!(err, StoreError::InvalidSchema { found: -1, .. }),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains(&dir.path().join(DB_FILE).display().to_string()),
            "{text}"
        );
        assert!(text.contains("left untouched"), "{text}");
    }

    #[tokio::test]
    async fn an_unreadable_json_column_refuses_the_load_naming_table_row_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.apply(vec![
            Write::Device(DeviceWrite::PutDevice(device("d1"))),
            Write::Device(DeviceWrite::PutToken(token("d1"))),
        ])
        .await
        .unwrap();
        drop(s);
        let c = Connection::open(dir.path().join(DB_FILE)).unwrap();
        c.execute_batch(
            "UPDATE device_tokens SET scopes_json = '[\"operator.read\"' WHERE device_id = 'd1'",
        )
        .unwrap();
        drop(c);
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(
            s.devices().unwrap(),
            vec![device("d1")],
            "other tables still load"
        );
        let err = s
            .tokens()
            .expect_err("a token whose scopes cannot be read is not loaded");
        let text = err.to_string();
        for part in [
            "the scopes_json of device_tokens row device_id='d1', role='operator'",
            "EOF while parsing a list",
            "DELETE FROM device_tokens WHERE device_id='d1' AND role='operator'",
            DB_FILE,
        ] {
            assert!(text.contains(part), "{part} missing from: {text}");
        }
    }

    /// A write that waits for the database (another process holds its write lock, as a slow
    /// disk or a backup would make it wait) leaves the runtime free: on a single thread,
    /// another task runs to completion meanwhile, and the write lands once the lock is gone.
    #[tokio::test(flavor = "current_thread")]
    async fn a_waiting_write_leaves_the_runtime_free() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let holder = Connection::open(s.path()).unwrap();
        holder.execute_batch("BEGIN IMMEDIATE").unwrap();

        let write = s.apply(vec![Write::Device(DeviceWrite::PutDevice(device("d1")))]);
        tokio::pin!(write);
        let other = tokio::spawn(async {
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
        });
        tokio::select! {
            outcome = &mut write => panic!("the write finished under another's lock: {outcome:?}"),
            done = other => done.unwrap(),
        }
        assert!(s.devices().unwrap().is_empty(), "not written yet");

        holder.execute_batch("ROLLBACK").unwrap();
        write.await.unwrap();
        assert_eq!(s.devices().unwrap(), vec![device("d1")]);
    }
}
