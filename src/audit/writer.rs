//! The log thread: drains the queues every [`PERIOD`] (or at once when a queue passed its
//! high-water mark), turns records into entries and lines, and writes each batch to the sinks
//! — the JSONL file and the SQLite store for audit records, the access-log file for HTTP
//! requests. At shutdown it drains what is left, then ends.
//!
//! Owns: batching, redaction, and sink errors: each kind is logged once and every one is
//! counted; a failing sink never stops the gateway or the other sinks. Must never: run on a
//! worker core, or give up on a sink for good (a full disk may get space again).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::entry::AuditEntry;
use super::pipeline::Shared;
use super::redact::Redactor;
use super::rotating::{Failure, RotatingFile};
use super::sqlite::SqliteStore;

/// How long the log thread sleeps between drains when nothing wakes it.
pub const PERIOD: Duration = Duration::from_millis(20);
/// Most records taken per batch (one SQLite transaction, one file write).
const BATCH: usize = 4096;

/// A kind of sink failure, logged the first time it happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    Sqlite = 1,
    JsonlWrite = 2,
    JsonlRotate = 4,
    AccessWrite = 8,
    AccessRotate = 16,
}

/// Which kinds were logged already.
#[derive(Default)]
pub(super) struct Reported(u8);

pub(super) struct Sinks {
    pub(super) jsonl: Option<RotatingFile>,
    pub(super) sqlite: Option<SqliteStore>,
    pub(super) access: Option<RotatingFile>,
    pub(super) redactor: Redactor,
    pub(super) reported: Reported,
}

impl Sinks {
    fn failed(&mut self, shared: &Shared, kind: Kind, what: &str, error: &dyn std::fmt::Display) {
        shared.stats.sink_errors.fetch_add(1, Ordering::Relaxed);
        if self.reported.0 & kind as u8 == 0 {
            self.reported.0 |= kind as u8;
            tracing::error!(
                error = %error,
                "{what}; the records concerned are lost (counted as sink errors), and \
                 later failures of this kind are counted without being logged"
            );
        }
    }

    fn write_audit(&mut self, shared: &Shared, entries: &[AuditEntry]) {
        if let Some(store) = &mut self.sqlite {
            if let Err(e) = store.insert(entries) {
                self.failed(shared, Kind::Sqlite, "cannot write to the audit store", &e);
            }
        }
        let Some(file) = &mut self.jsonl else {
            return;
        };
        let path = file.path().display().to_string();
        let mut failures = Vec::new();
        let mut line = Vec::with_capacity(512);
        for entry in entries {
            line.clear();
            entry.write_json(&mut line);
            if let Err(f) = file.push_line(&line) {
                failures.push(f);
            }
        }
        if let Err(f) = file.flush() {
            failures.push(f);
        }
        for (failure, e) in failures {
            let (kind, what) = match failure {
                Failure::Write => (Kind::JsonlWrite, "cannot write the audit JSONL file"),
                Failure::Rotate => (Kind::JsonlRotate, "cannot rotate the audit JSONL file"),
            };
            self.failed(shared, kind, &format!("{what} {path}"), &e);
        }
    }

    fn write_access(&mut self, shared: &Shared, lines: &[Vec<u8>]) {
        let Some(file) = &mut self.access else {
            return;
        };
        let path = file.path().display().to_string();
        let mut failures = Vec::new();
        for line in lines {
            if let Err(f) = file.push_line(line) {
                failures.push(f);
            }
        }
        if let Err(f) = file.flush() {
            failures.push(f);
        }
        for (failure, e) in failures {
            let (kind, what) = match failure {
                Failure::Write => (Kind::AccessWrite, "cannot write the access log"),
                Failure::Rotate => (Kind::AccessRotate, "cannot rotate the access log"),
            };
            self.failed(shared, kind, &format!("{what} {path}"), &e);
        }
    }
}

/// Takes up to [`BATCH`] records off each queue and writes them; how many were taken.
fn drain_once(shared: &Shared, sinks: &mut Sinks) -> usize {
    let mut taken = 0;
    if let Some(lane) = &shared.records {
        let mut entries = Vec::new();
        while entries.len() < BATCH {
            let Some(record) = lane.queue.pop() else {
                break;
            };
            entries.push(AuditEntry::new(&record, &sinks.redactor));
        }
        if !entries.is_empty() {
            sinks.write_audit(shared, &entries);
            let n = entries.len();
            shared.stats.written.fetch_add(n as u64, Ordering::Relaxed);
            taken += n;
        }
    }
    if let Some(lane) = &shared.access {
        let mut lines = Vec::new();
        while lines.len() < BATCH {
            let Some(record) = lane.queue.pop() else {
                break;
            };
            lines.push(record.line());
        }
        if !lines.is_empty() {
            sinks.write_access(shared, &lines);
            let n = lines.len();
            shared
                .stats
                .access_written
                .fetch_add(n as u64, Ordering::Relaxed);
            taken += n;
        }
    }
    taken
}

/// The log thread's body; `done` is told once everything queued at the stop is written.
pub(super) fn run(shared: Arc<Shared>, mut sinks: Sinks, done: crossbeam_channel::Sender<()>) {
    loop {
        let stopping = shared.stop.load(Ordering::Acquire);
        // Cleared before draining: a push that crosses the mark meanwhile wakes us again.
        shared.wake_requested.store(false, Ordering::Release);
        while drain_once(&shared, &mut sinks) > 0 {}
        if stopping {
            // The sinks close with `sinks` (the store's last transaction is already committed).
            drop(sinks);
            let _ = done.send(());
            return;
        }
        std::thread::park_timeout(PERIOD);
    }
}
