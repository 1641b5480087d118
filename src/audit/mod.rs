//! The audit log and the HTTP access log: who called what, when, and how it ended, written off
//! the hot path.
//!
//! A worker core observes each routed MCP request (`observation`), which feeds its metrics and
//! hands one [`AuditRecord`] to a bounded lock-free queue (`pipeline`); the HTTP server hands
//! one [`AccessRecord`] per request to another. A dedicated log thread (`writer`) drains both
//! in batches: audit records are written as entries (`entry`, arguments redacted by
//! `redact`) into a batch's text in each sink's form — compact rows for the SQLite store
//! (`row`, `sqlite`, the default), JSON objects for a JSONL file (`rotating`, rotated by
//! size); access records become lines of the access log. `query` reads the store
//! back for the admin API.
//!
//! Owns: records, queues, the log thread, sinks and queries. Must never: block a worker core
//! or make it wait for a sink (a full queue drops and counts), write a key's value, or record
//! arguments unless `audit.log_arguments` asks (and then never a redacted field).

pub mod access;
pub mod clock;
pub mod entry;
pub mod observation;
pub mod pipeline;
pub mod query;
pub mod record;
pub mod redact;
pub mod rotating;
pub mod row;
pub mod sqlite;
mod writer;

pub use access::{AccessPath, AccessRecord};
pub use observation::{Caller, Observation, Recorder};
pub use pipeline::{AuditCounts, AuditLog, AuditSender, AuditSenders, AuditStats};
pub use query::{query, AuditQuery, AuditQueryError};
pub use record::{AuditRecord, Detail, Outcome, RoutedMethod};
