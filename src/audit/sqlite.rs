//! The embedded audit store: one row per batch the log thread writes, holding the batch's
//! records as a JSON array, and a view (`audit`) with one row per record for whoever reads the
//! file with SQL. WAL, so readers such as audit queries never wait for the writer.
//!
//! Why batches, not a row per record: a row per record made SQLite the largest cost of an
//! audited call (15,300 instructions per record on the log thread without indexes, 36,400
//! with four; see `perf/RESULTS.md`), and on a small machine the log thread takes that CPU
//! from the cores that serve. A batch is one insert of text the JSONL sink writes anyway.
//!
//! Owns: the schema and the batch insert. Must never: be opened for writing anywhere but the
//! log thread (queries open it read-only).

use std::path::Path;

use rusqlite::{params, Connection};

use super::entry::AuditEntry;

/// Bumped when the table changes shape; a store of another version is refused at start.
const SCHEMA_VERSION: i64 = 3;

/// The batches, and the view that reads them as one row per record (`seq`: the record's place
/// in its batch). The view's columns are the records' fields.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit_batch (
    id      INTEGER PRIMARY KEY,
    records TEXT NOT NULL
);
CREATE VIEW IF NOT EXISTS audit AS
SELECT b.id AS batch, r.key AS seq,
    r.value ->> '$.time' AS time, r.value ->> '$.key' AS key, r.value ->> '$.group' AS key_group,
    r.value ->> '$.session' AS session, r.value ->> '$.client_name' AS client_name,
    r.value ->> '$.client_version' AS client_version, r.value ->> '$.method' AS method,
    r.value ->> '$.server' AS server, r.value ->> '$.tool' AS tool,
    r.value ->> '$.outcome' AS outcome, r.value ->> '$.error' AS error,
    r.value ->> '$.latency_us' AS latency_us, r.value ->> '$.upstream_us' AS upstream_us,
    r.value ->> '$.request_bytes' AS request_bytes, r.value ->> '$.reply_bytes' AS reply_bytes,
    r.value -> '$.rpc_id' AS rpc_id, r.value -> '$.arguments' AS arguments,
    r.value AS record
FROM audit_batch b, json_each(b.records) r;
";

const INSERT: &str = "INSERT INTO audit_batch (records) VALUES (?1)";

pub struct SqliteStore {
    conn: Connection,
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

    /// Inserts `entries` as one batch row: all of them, or (on error) none.
    pub fn insert(&mut self, entries: &[AuditEntry]) -> rusqlite::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut records = Vec::with_capacity(entries.len() * 400);
        records.push(b'[');
        for (i, entry) in entries.iter().enumerate() {
            if i > 0 {
                records.push(b',');
            }
            entry.write_json(&mut records);
        }
        records.push(b']');
        // Only JSON text was written, from strings: it is UTF-8.
        let records = String::from_utf8(records)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        self.conn
            .prepare_cached(INSERT)?
            .execute(params![records])
            .map(drop)
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
