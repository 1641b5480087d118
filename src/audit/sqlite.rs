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

use super::row::EncodedBatch;

/// Bumped when the table changes shape; a store of another version is refused at start.
const SCHEMA_VERSION: i64 = 5;

/// The batches, and the view that reads them as one row per record (`seq`: the record's place
/// in its batch). A batch is stored in the compact form of [`super::row`]; the view decodes
/// it into columns named as the entry's fields (`group` is `key_group`, a word SQL reserves),
/// with `at_us` (the time as microseconds since the Unix epoch) and `entry` (the entry as the
/// JSON object a JSONL line holds).
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit_batch (
    id      INTEGER PRIMARY KEY,
    at_us   INTEGER NOT NULL,
    strings TEXT NOT NULL,
    records TEXT NOT NULL
);
CREATE VIEW IF NOT EXISTS audit AS
SELECT batch, seq, at_us,
    strftime('%Y-%m-%dT%H:%M:%fZ', at_us / 1000 / 1000.0, 'unixepoch') AS time,
    key, key_group, session, client_name, client_version, method, server, tool, outcome, error,
    latency_us, upstream_us, request_bytes, reply_bytes, rpc_id, arguments,
    json_object('time', strftime('%Y-%m-%dT%H:%M:%fZ', at_us / 1000 / 1000.0, 'unixepoch'),
        'key', key, 'group', key_group, 'session', session, 'client_name', client_name,
        'client_version', client_version, 'method', method, 'server', server, 'tool', tool,
        'outcome', outcome, 'error', error, 'latency_us', latency_us, 'upstream_us', upstream_us,
        'request_bytes', request_bytes, 'reply_bytes', reply_bytes, 'rpc_id', json(rpc_id),
        'arguments', json(arguments)) AS entry
FROM (
    SELECT b.id AS batch, r.key AS seq, b.at_us + (r.value ->> 0) AS at_us,
        b.strings ->> (r.value ->> 1) AS key, b.strings ->> (r.value ->> 2) AS key_group,
        b.strings ->> (r.value ->> 3) AS session, b.strings ->> (r.value ->> 4) AS client_name,
        b.strings ->> (r.value ->> 5) AS client_version, b.strings ->> (r.value ->> 6) AS method,
        b.strings ->> (r.value ->> 7) AS server, b.strings ->> (r.value ->> 8) AS tool,
        b.strings ->> (r.value ->> 9) AS outcome, r.value ->> 10 AS error,
        r.value ->> 11 AS latency_us, r.value ->> 12 AS upstream_us,
        r.value ->> 13 AS request_bytes, r.value ->> 14 AS reply_bytes,
        r.value -> 15 AS rpc_id, r.value -> 16 AS arguments
    FROM audit_batch b, json_each(b.records) r
);
";

const INSERT: &str = "INSERT INTO audit_batch (at_us, strings, records) VALUES (?1, ?2, ?3)";

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

    /// Inserts one batch row. All of it lands, or (on error) none.
    pub fn insert(&mut self, batch: &EncodedBatch<'_>) -> rusqlite::Result<()> {
        // Bound as text without another UTF-8 pass: the batch holds only JSON written from
        // Rust strings.
        let strings = ToSqlOutput::Borrowed(ValueRef::Text(batch.strings));
        let rows = ToSqlOutput::Borrowed(ValueRef::Text(batch.rows));
        self.conn
            .prepare_cached(INSERT)?
            .execute(rusqlite::params![batch.base_us, strings, rows])
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::entry::tests::{sample, temp_dir};
    use crate::audit::entry::EntryWriter;
    use crate::audit::redact::Redactor;
    use crate::audit::row::RowBatch;

    #[test]
    fn batches_land_in_the_table() {
        let dir = temp_dir("sqlite");
        let path = dir.join("audit.db");
        let mut store = SqliteStore::open(&path).unwrap();
        let writer = EntryWriter::new(Redactor::new(&[]));
        let mut batch = RowBatch::default();
        batch.push(&writer, &sample());
        batch.push(&writer, &sample());
        store.insert(&batch.finish()).unwrap();
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
        let dir = temp_dir("sqlite-view");
        let mut store = SqliteStore::open(&dir.join("audit.db")).unwrap();
        let mut writer = EntryWriter::new(Redactor::new(&["token".to_owned()]));
        let mut records = vec![sample(), sample(), sample()];
        // The last microsecond of a second and of a day: times are cut to milliseconds,
        // never rounded up.
        records[1].at_micros = 1_700_000_000_999_999;
        records[2].at_micros = 1_700_006_399_999_999;
        records[2].detail = crate::audit::Detail::None;
        records[2].arguments = None;
        let (mut batch, mut objects) = (RowBatch::default(), Vec::new());
        for record in &records {
            batch.push(&writer, record);
            let mut object = Vec::new();
            writer.append_object(record, &mut object);
            objects.push(serde_json::from_slice::<serde_json::Value>(&object).unwrap());
        }
        store.insert(&batch.finish()).unwrap();
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
