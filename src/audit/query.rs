//! Reading the audit store back: `GET /api/audit?limit=&server=&tool=&key=&outcome=&method=&since=`
//! as the admin API serves it. Newest first, at most [`MAX_LIMIT`] entries, each the same JSON
//! object a JSONL line holds.
//!
//! Owns: the query string's parameters (with precise errors for bad values) and the read-only
//! SQL. Must never: open the store for writing, or run on a worker core (SQLite reads the
//! disk; the admin API calls this from its own thread).

use std::fmt;
use std::path::Path;

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OpenFlags};

use super::clock::parse_rfc3339;
use super::record::{Outcome, RoutedMethod};
use crate::http::percent::{percent_decode, Plus};

/// Entries returned when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 100;
/// Most entries one query returns.
pub const MAX_LIMIT: usize = 1000;

const PARAMETERS: &str = "limit, server, tool, key, outcome, method, since";

/// What to read: every filter given must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    pub limit: usize,
    pub server: Option<String>,
    /// The tool or prompt name, or resource URI, as recorded.
    pub tool: Option<String>,
    /// The virtual key's name (`anonymous` without keys).
    pub key: Option<String>,
    pub outcome: Option<Outcome>,
    pub method: Option<RoutedMethod>,
    /// Only requests that arrived at or after this time (microseconds since the Unix epoch).
    pub since_micros: Option<u64>,
}

impl Default for AuditQuery {
    fn default() -> Self {
        AuditQuery {
            limit: DEFAULT_LIMIT,
            server: None,
            tool: None,
            key: None,
            outcome: None,
            method: None,
            since_micros: None,
        }
    }
}

/// Why a query was not answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditQueryError {
    /// A parameter of the query string is wrong (answer 400).
    Parameter { name: String, message: String },
    /// The store could not be read (answer 500).
    Store(String),
}

impl AuditQueryError {
    fn parameter(name: &str, message: impl Into<String>) -> AuditQueryError {
        AuditQueryError::Parameter {
            name: name.to_owned(),
            message: message.into(),
        }
    }

    /// Whether the caller's query is at fault (rather than the store).
    pub fn is_bad_request(&self) -> bool {
        matches!(self, AuditQueryError::Parameter { .. })
    }
}

impl fmt::Display for AuditQueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuditQueryError::Parameter { name, message } => write!(f, "{name}: {message}"),
            AuditQueryError::Store(why) => write!(f, "cannot read the audit store: {why}"),
        }
    }
}

impl std::error::Error for AuditQueryError {}

impl AuditQuery {
    /// Reads a query string (without the `?`). Empty values count as not given; unknown or
    /// repeated parameters and bad values are errors naming the parameter.
    pub fn from_query_string(query: &str) -> Result<AuditQuery, AuditQueryError> {
        let mut q = AuditQuery::default();
        let mut seen: Vec<String> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = percent_decode(raw_name, Plus::Space)
                .ok_or_else(|| AuditQueryError::parameter("query", "a malformed %-escape"))?;
            let value = percent_decode(raw_value, Plus::Space).ok_or_else(|| {
                AuditQueryError::parameter(&name, "a malformed %-escape or text that is not UTF-8")
            })?;
            if !PARAMETERS.split(", ").any(|p| p == name) {
                let shown: String = name.chars().take(40).collect();
                return Err(AuditQueryError::parameter(
                    &shown,
                    format!("unknown parameter (expected one of {PARAMETERS})"),
                ));
            }
            if seen.contains(&name) {
                return Err(AuditQueryError::parameter(&name, "given more than once"));
            }
            seen.push(name.clone());
            if value.is_empty() {
                continue;
            }
            match name.as_str() {
                "limit" => {
                    q.limit = value
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| {
                            AuditQueryError::parameter(
                                "limit",
                                format!("expected a whole number from 1 to {MAX_LIMIT}"),
                            )
                        })?;
                }
                "server" => q.server = Some(value),
                "tool" => q.tool = Some(value),
                "key" => q.key = Some(value),
                "outcome" => {
                    let expected: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
                    q.outcome = Some(Outcome::parse(&value).ok_or_else(|| {
                        AuditQueryError::parameter(
                            "outcome",
                            format!("expected one of {}", expected.join(", ")),
                        )
                    })?);
                }
                "method" => {
                    let expected: Vec<&str> =
                        RoutedMethod::ALL.iter().map(|m| m.as_str()).collect();
                    q.method = Some(RoutedMethod::parse(&value).ok_or_else(|| {
                        AuditQueryError::parameter(
                            "method",
                            format!("expected one of {}", expected.join(", ")),
                        )
                    })?);
                }
                _ => {
                    q.since_micros = Some(parse_rfc3339(&value).ok_or_else(|| {
                        AuditQueryError::parameter(
                            "since",
                            "expected an RFC 3339 time such as 2025-06-01T12:00:00Z (or a date, 2025-06-01)",
                        )
                    })?);
                }
            }
        }
        Ok(q)
    }
}

/// The entries of the store at `db` that match `q`, newest first, as a JSON array.
pub fn query(db: &Path, q: &AuditQuery) -> Result<String, AuditQueryError> {
    let store = |e: rusqlite::Error| AuditQueryError::Store(e.to_string());
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(db, flags)
        .map_err(|e| AuditQueryError::Store(format!("{}: {e}", db.display())))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(store)?;
    let mut filters: Vec<&str> = Vec::new();
    let mut values: Vec<SqlValue> = Vec::new();
    let text_filters = [
        ("server = ?", &q.server),
        ("tool = ?", &q.tool),
        ("key = ?", &q.key),
    ];
    for (filter, value) in text_filters {
        if let Some(v) = value {
            filters.push(filter);
            values.push(SqlValue::Text(v.clone()));
        }
    }
    if let Some(o) = q.outcome {
        filters.push("outcome = ?");
        values.push(SqlValue::Text(o.as_str().to_owned()));
    }
    if let Some(m) = q.method {
        filters.push("method = ?");
        values.push(SqlValue::Text(m.as_str().to_owned()));
    }
    if let Some(since) = q.since_micros {
        filters.push("at_us >= ?");
        values.push(SqlValue::Integer(i64::try_from(since).unwrap_or(i64::MAX)));
    }
    let filter = if filters.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", filters.join(" AND "))
    };
    let sql = format!(
        "SELECT entry FROM audit {filter} ORDER BY batch DESC, seq DESC LIMIT {}",
        q.limit.min(MAX_LIMIT)
    );
    let mut statement = conn.prepare(&sql).map_err(store)?;
    let records = statement
        .query_map(rusqlite::params_from_iter(values), |row| {
            row.get::<_, String>(0)
        })
        .map_err(store)?
        .collect::<Result<Vec<String>, _>>()
        .map_err(store)?;
    Ok(format!("[{}]", records.join(",")))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Arc;

    use super::*;
    use crate::audit::entry::tests::{sample, temp_dir};
    use crate::audit::entry::EntryWriter;
    use crate::audit::record::Target;
    use crate::audit::redact::Redactor;
    use crate::audit::row::RowBatch;
    use crate::audit::sqlite::SqliteStore;

    fn parse(q: &str) -> Result<AuditQuery, AuditQueryError> {
        AuditQuery::from_query_string(q)
    }

    fn bad(q: &str) -> String {
        match parse(q) {
            Err(AuditQueryError::Parameter { name, .. }) => name,
            other => panic!("{q}: {other:?}"),
        }
    }

    #[test]
    fn query_strings_are_read() {
        assert_eq!(parse("").unwrap(), AuditQuery::default());
        assert_eq!(
            parse("limit=&server=&tool=").unwrap(),
            AuditQuery::default()
        );
        let q = parse(
            "limit=5&server=my%20srv&tool=a+b&key=eng&outcome=tool_error&method=tools%2Fcall&since=2023-11-14T22:13:20Z",
        )
        .unwrap();
        assert_eq!(q.limit, 5);
        assert_eq!(q.server.as_deref(), Some("my srv"));
        assert_eq!(q.tool.as_deref(), Some("a b"));
        assert_eq!(q.key.as_deref(), Some("eng"));
        assert_eq!(q.outcome, Some(Outcome::ToolError));
        assert_eq!(q.method, Some(RoutedMethod::ToolsCall));
        assert_eq!(q.since_micros, Some(1_700_000_000_000_000));
    }

    #[test]
    fn bad_parameters_are_named() {
        assert_eq!(bad("limit=0"), "limit");
        assert_eq!(bad("limit=1001"), "limit");
        assert_eq!(bad("limit=ten"), "limit");
        assert_eq!(bad("outcome=fine"), "outcome");
        assert_eq!(bad("method=tools/list"), "method");
        assert_eq!(bad("since=yesterday"), "since");
        assert_eq!(bad("server=%zz"), "server");
        assert_eq!(bad("server=a&server=b"), "server");
        assert_eq!(bad("order=asc"), "order");
        let message = parse("limit=0").unwrap_err().to_string();
        assert_eq!(message, "limit: expected a whole number from 1 to 1000");
        assert!(parse("limit=0").unwrap_err().is_bad_request());
    }

    fn store_with(entries: &[(u64, &str, &str, Outcome)]) -> (PathBuf, PathBuf) {
        let dir = temp_dir("query");
        let path = dir.join("audit.db");
        let mut store = SqliteStore::open(&path).unwrap();
        let writer = EntryWriter::new(Redactor::new(&[]));
        let mut batch = RowBatch::default();
        for &(at, key, tool, outcome) in entries {
            let mut r = sample();
            r.at_micros = at;
            r.key = Some(Arc::from(key));
            r.target = Target::Item(Arc::from(tool));
            r.outcome = outcome;
            batch.push(&writer, &r);
        }
        store.insert(&batch.finish()).unwrap();
        (dir, path)
    }

    fn run(path: &Path, q: &str) -> Vec<serde_json::Value> {
        let json = query(path, &parse(q).unwrap()).unwrap();
        serde_json::from_str(&json).unwrap()
    }

    #[test]
    fn queries_filter_and_put_the_newest_first() {
        let base = 1_700_000_000_000_000;
        let (dir, path) = store_with(&[
            (base, "eng", "echo", Outcome::Ok),
            (base + 1_000_000, "ci", "echo", Outcome::Denied),
            (base + 2_000_000, "eng", "add", Outcome::ToolError),
            (base + 3_000_000, "eng", "echo", Outcome::Ok),
        ]);
        let all = run(&path, "");
        let times: Vec<&str> = all.iter().map(|e| e["time"].as_str().unwrap()).collect();
        assert_eq!(
            times,
            [
                "2023-11-14T22:13:23.000Z",
                "2023-11-14T22:13:22.000Z",
                "2023-11-14T22:13:21.000Z",
                "2023-11-14T22:13:20.000Z"
            ]
        );
        assert_eq!(all[0]["server"], "mock");
        assert_eq!(all[0]["rpc_id"], "req-7");
        assert_eq!(all[0]["session"], "deadbeef00010203");
        assert_eq!(run(&path, "key=ci")[0]["outcome"], "denied");
        assert_eq!(run(&path, "tool=echo&key=eng").len(), 2);
        assert_eq!(
            run(&path, "server=mock&tool=add")[0]["outcome"],
            "tool_error"
        );
        assert_eq!(run(&path, "outcome=ok&limit=1")[0]["time"], times[0]);
        assert_eq!(run(&path, "since=2023-11-14T22:13:22Z").len(), 2);
        assert_eq!(run(&path, "method=prompts/get").len(), 0);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_missing_store_is_a_store_error() {
        let err = query(Path::new("/nonexistent/audit.db"), &AuditQuery::default()).unwrap_err();
        assert!(!err.is_bad_request());
        assert!(err.to_string().contains("/nonexistent/audit.db"), "{err}");
    }
}
