//! The embedded audit store: one SQLite table, written by the log thread in one transaction
//! per batch (WAL, so readers such as audit queries never wait for it). The table has no
//! secondary index: each would cost every record another B-tree insert (measured: four
//! indexes more than doubled the gateway's instructions per call), while the queries of
//! `query.rs` read newest first by row id and stop at their limit.
//!
//! Owns: the schema and the batch insert. Must never: be opened for writing anywhere but the
//! log thread (queries open it read-only).

use std::path::Path;

use rusqlite::{params, Connection};

use super::entry::AuditEntry;

/// Bumped when the table changes shape; a store of another version is refused at start.
const SCHEMA_VERSION: i64 = 2;

/// The table; the row id is the order records were written in.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit (
    id             INTEGER PRIMARY KEY,
    at_us          INTEGER NOT NULL,
    time           TEXT    NOT NULL,
    key            TEXT    NOT NULL,
    key_group      TEXT,
    session        TEXT,
    client_name    TEXT,
    client_version TEXT,
    method         TEXT    NOT NULL,
    server         TEXT,
    tool           TEXT,
    outcome        TEXT    NOT NULL,
    error          TEXT,
    latency_us     INTEGER NOT NULL,
    upstream_us    INTEGER,
    request_bytes  INTEGER NOT NULL,
    reply_bytes    INTEGER NOT NULL,
    rpc_id         TEXT,
    arguments      TEXT
);
";

const INSERT: &str = "INSERT INTO audit (at_us, time, key, key_group, session, client_name,
    client_version, method, server, tool, outcome, error, latency_us, upstream_us,
    request_bytes, reply_bytes, rpc_id, arguments)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)";

pub struct SqliteStore {
    conn: Connection,
}

/// SQLite stores integers as i64.
fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl SqliteStore {
    /// Opens (creating) the store at `path`, in WAL mode, with its table.
    pub fn open(path: &Path) -> Result<SqliteStore, String> {
        let conn = Connection::open(path).map_err(|e| e.to_string())?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(|e| e.to_string())?;
        if version != 0 && version != SCHEMA_VERSION {
            return Err(format!(
                "it holds an audit store of schema version {version}; this mcpgate writes \
                 version {SCHEMA_VERSION}: move the file away or point audit.sqlite elsewhere"
            ));
        }
        // `journal_mode` answers with the mode it set: a file system without shared memory
        // (some network mounts) stays in another one, which still works, only slower.
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(|e| e.to_string())?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), mode, "the audit store is not in WAL mode");
        }
        conn.execute_batch(&format!(
            "PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000; {SCHEMA}
             PRAGMA user_version = {SCHEMA_VERSION};"
        ))
        .map_err(|e| e.to_string())?;
        Ok(SqliteStore { conn })
    }

    /// Inserts `entries` in one transaction: all of them, or (on error) none.
    pub fn insert(&mut self, entries: &[AuditEntry]) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(INSERT)?;
            for e in entries {
                insert.execute(params![
                    int(e.at_micros),
                    e.time,
                    e.key,
                    e.group,
                    e.session,
                    e.client_name,
                    e.client_version,
                    e.method,
                    e.server,
                    e.tool,
                    e.outcome,
                    e.error,
                    int(e.latency_us),
                    e.upstream_us.map(int),
                    int(e.request_bytes),
                    int(e.reply_bytes),
                    e.rpc_id.as_ref().map(|r| r.get()),
                    e.arguments.as_ref().map(|a| a.get()),
                ])?;
            }
        }
        tx.commit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::entry::tests::sample;
    use crate::audit::redact::Redactor;

    #[test]
    fn batches_land_in_the_table() {
        let dir = std::env::temp_dir().join(format!(
            "mcpgate-sqlite-{}-{}",
            std::process::id(),
            crate::audit::clock::now_micros()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.db");
        let mut store = SqliteStore::open(&path).unwrap();
        let entry = AuditEntry::new(&sample(), &Redactor::new(&[]));
        store.insert(&[entry.clone(), entry]).unwrap();
        drop(store);
        // Reopening keeps what is there.
        let store = SqliteStore::open(&path).unwrap();
        let (n, server, mode): (i64, String, String) = store
            .conn
            .query_row(
                "SELECT count(*), max(server), (SELECT journal_mode FROM pragma_journal_mode) FROM audit",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!((n, server.as_str(), mode.as_str()), (2, "mock", "wal"));
        store.conn.execute_batch("PRAGMA user_version = 9").unwrap();
        drop(store);
        let refused = SqliteStore::open(&path).err().unwrap();
        assert!(refused.contains("schema version 9"), "{refused}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
