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

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::Connection;

#[cfg(doc)]
use super::entry::Shape;

/// Bumped when the table changes shape; a store of another version is refused at start.
const SCHEMA_VERSION: i64 = 4;

/// The batches, and the view that reads them as one row per record (`seq`: the record's place
/// in its batch). A batch is a JSON array of entries in [`Shape::Row`] form; the view names
/// their values with the entry's field names (`group` is `key_group`, a word SQL reserves),
/// adds `at_us` (the time as microseconds since the Unix epoch) and `entry` (the entry as the
/// JSON object a JSONL line holds).
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit_batch (
    id      INTEGER PRIMARY KEY,
    records TEXT NOT NULL
);
CREATE VIEW IF NOT EXISTS audit AS
SELECT batch, seq, at_us, time, key, key_group, session, client_name, client_version, method,
    server, tool, outcome, error, latency_us, upstream_us, request_bytes, reply_bytes, rpc_id,
    arguments,
    json_object('time', time, 'key', key, 'group', key_group, 'session', session,
        'client_name', client_name, 'client_version', client_version, 'method', method,
        'server', server, 'tool', tool, 'outcome', outcome, 'error', error,
        'latency_us', latency_us, 'upstream_us', upstream_us, 'request_bytes', request_bytes,
        'reply_bytes', reply_bytes, 'rpc_id', json(rpc_id), 'arguments', json(arguments)) AS entry
FROM (
    SELECT b.id AS batch, r.key AS seq, r.value ->> 0 AS at_us,
        strftime('%Y-%m-%dT%H:%M:%fZ', (r.value ->> 0) / 1000 / 1000.0, 'unixepoch') AS time,
        r.value ->> 1 AS key, r.value ->> 2 AS key_group, r.value ->> 3 AS session,
        r.value ->> 4 AS client_name, r.value ->> 5 AS client_version, r.value ->> 6 AS method,
        r.value ->> 7 AS server, r.value ->> 8 AS tool, r.value ->> 9 AS outcome,
        r.value ->> 10 AS error, r.value ->> 11 AS latency_us, r.value ->> 12 AS upstream_us,
        r.value ->> 13 AS request_bytes, r.value ->> 14 AS reply_bytes,
        r.value -> 15 AS rpc_id, r.value -> 16 AS arguments
    FROM audit_batch b, json_each(b.records) r
);
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

    /// Inserts one batch row: `records` is a JSON array of entries in [`Shape::Row`] form.
    /// All of it lands, or (on error) none.
    pub fn insert(&mut self, records: &[u8]) -> rusqlite::Result<()> {
        // Bound as text without another UTF-8 pass: the entry writer writes only JSON made
        // from Rust strings.
        let text = ToSqlOutput::Borrowed(ValueRef::Text(records));
        self.conn.prepare_cached(INSERT)?.execute([text]).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::entry::tests::sample;
    use crate::audit::entry::{EntryWriter, Shape};
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
        let mut batch = b"[".to_vec();
        let mut writer = EntryWriter::new(Redactor::new(&[]));
        writer.append(&sample(), Shape::Row, &mut batch);
        batch.push(b',');
        writer.append(&sample(), Shape::Row, &mut batch);
        batch.push(b']');
        store.insert(&batch).unwrap();
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

    #[test]
    fn the_view_reads_rows_back_as_the_objects_the_jsonl_file_holds() {
        let dir = std::env::temp_dir().join(format!(
            "mcpgate-sqlite-view-{}-{}",
            std::process::id(),
            crate::audit::clock::now_micros()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut store = SqliteStore::open(&dir.join("audit.db")).unwrap();
        let mut writer = EntryWriter::new(Redactor::new(&["token".to_owned()]));
        let mut records = vec![sample(), sample(), sample()];
        // The last microsecond of a second and of a day: times are cut to milliseconds,
        // never rounded up.
        records[1].at_micros = 1_700_000_000_999_999;
        records[2].at_micros = 1_700_006_399_999_999;
        records[2].detail = crate::audit::Detail::None;
        records[2].arguments = None;
        let (mut batch, mut objects) = (b"[".to_vec(), Vec::new());
        for (i, record) in records.iter().enumerate() {
            if i > 0 {
                batch.push(b',');
            }
            writer.append(record, Shape::Row, &mut batch);
            let mut object = Vec::new();
            writer.append(record, Shape::Object, &mut object);
            objects.push(serde_json::from_slice::<serde_json::Value>(&object).unwrap());
        }
        batch.push(b']');
        store.insert(&batch).unwrap();
        let mut statement = store
            .conn
            .prepare("SELECT entry, at_us FROM audit ORDER BY seq")
            .unwrap();
        let read: Vec<(String, i64)> = statement
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(read.len(), 3);
        for ((entry, at_us), (object, record)) in read.iter().zip(objects.iter().zip(&records)) {
            let entry: serde_json::Value = serde_json::from_str(entry).unwrap();
            assert_eq!(&entry, object);
            assert_eq!(*at_us as u64, record.at_micros);
        }
        assert_eq!(objects[1]["time"], "2023-11-14T22:13:20.999Z");
        assert_eq!(objects[2]["time"], "2023-11-14T23:59:59.999Z");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
