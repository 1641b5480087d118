//! Reading what a gateway's audit log and access log wrote: the JSONL files line by line, the
//! SQLite store through `mcpgate::audit::query` (the admin API's read path), each waited for
//! by polling with a deadline (the log thread writes every few milliseconds; a test never
//! sleeps for it).

use std::path::Path;

use mcpgate::audit::{query, AuditQuery};
use serde_json::Value;

use super::poll_until;

/// The complete JSON lines of `path` (none when it does not exist yet; a line still being
/// written is left out).
pub fn jsonl(path: &Path) -> Vec<Value> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let complete = match text.rfind('\n') {
        Some(end) => &text[..end],
        None => "",
    };
    complete
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect()
}

/// Every entry of the SQLite store at `db`, newest first (none while it cannot be read).
pub fn store(db: &Path) -> Vec<Value> {
    let q = AuditQuery {
        limit: 1000,
        ..AuditQuery::default()
    };
    match query(db, &q) {
        Ok(json) => serde_json::from_str(&json).expect("the query answers a JSON array"),
        Err(_) => Vec::new(),
    }
}

/// Reads with `read` until what it returns satisfies `done`, failing the test at the deadline.
pub async fn wait_until(
    what: &str,
    read: impl Fn() -> Vec<Value>,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    poll_until(what, || {
        let values = read();
        std::future::ready(done(&values).then_some(values))
    })
    .await
}

/// Waits until `path` holds at least `n` JSON lines.
pub async fn wait_lines(path: &Path, n: usize) -> Vec<Value> {
    wait_until(
        &format!("{n} lines in {}", path.display()),
        || jsonl(path),
        |v| v.len() >= n,
    )
    .await
}

/// Waits until the store at `db` holds at least `n` entries.
pub async fn wait_entries(db: &Path, n: usize) -> Vec<Value> {
    wait_until(
        &format!("{n} entries in {}", db.display()),
        || store(db),
        |v| v.len() >= n,
    )
    .await
}

/// Every byte of the store (the database and its write-ahead log) as text, for checking what
/// must never be in it.
pub fn store_bytes(db: &Path) -> String {
    let mut all = Vec::new();
    for suffix in ["", "-wal"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        if let Ok(bytes) = std::fs::read(&name) {
            all.extend_from_slice(&bytes);
        }
    }
    String::from_utf8_lossy(&all).into_owned()
}

/// The entry whose `field` is `value` (the first such).
pub fn entry<'a>(entries: &'a [Value], field: &str, value: &str) -> &'a Value {
    entries
        .iter()
        .find(|e| e[field] == value)
        .unwrap_or_else(|| panic!("no entry with {field} = {value:?} in {entries:#?}"))
}
