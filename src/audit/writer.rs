//! The log thread: drains the queues every [`PERIOD`] (or at once when a queue passed its
//! high-water mark), writes records as entries into one batch text and access records as
//! lines, and writes each batch to the sinks
//! — the JSONL file and the SQLite store for audit records, the access-log file for HTTP
//! requests. At shutdown it drains what is left, then ends.
//!
//! Owns: batching, redaction, and sink errors: each kind is logged once and every one is
//! counted; a failing sink never stops the gateway or the other sinks. Must never: run on a
//! worker core, or give up on a sink for good (a full disk may get space again).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::entry::EntryWriter;
use super::pipeline::Shared;
use super::rotating::{Failure, RotatingFile};
use super::row::RowBatch;
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

/// One batch of audit records as text, in the form each sink takes: compact rows (the
/// SQLite store) and JSON objects, one per line (the JSONL file). Only the forms of the sinks
/// configured are written. Kept between batches, so its buffers are allocated once.
pub(super) struct AuditBatch {
    rows: Option<RowBatch>,
    lines: Option<Vec<u8>>,
    len: usize,
}

impl AuditBatch {
    pub(super) fn new(rows: bool, lines: bool) -> AuditBatch {
        AuditBatch {
            rows: rows.then(RowBatch::default),
            lines: lines.then(Vec::new),
            len: 0,
        }
    }

    fn clear(&mut self) {
        if let Some(rows) = &mut self.rows {
            rows.clear();
        }
        if let Some(lines) = &mut self.lines {
            lines.clear();
        }
        self.len = 0;
    }

    fn push(&mut self, writer: &mut EntryWriter, record: &super::AuditRecord) {
        if let Some(rows) = &mut self.rows {
            rows.push(writer, record);
        }
        if let Some(lines) = &mut self.lines {
            writer.append_object(record, lines);
            lines.push(b'\n');
        }
        self.len += 1;
    }

    fn len(&self) -> usize {
        self.len
    }
}

pub(super) struct Sinks {
    pub(super) jsonl: Option<RotatingFile>,
    pub(super) sqlite: Option<SqliteStore>,
    pub(super) access: Option<RotatingFile>,
    pub(super) entries: EntryWriter,
    pub(super) batch: AuditBatch,
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

    /// Writes `self.batch` to the audit sinks.
    fn write_audit(&mut self, shared: &Shared) {
        if let (Some(store), Some(rows)) = (&mut self.sqlite, &mut self.batch.rows) {
            if let Err(e) = store.insert(&rows.finish()) {
                self.failed(shared, Kind::Sqlite, "cannot write to the audit store", &e);
            }
        }
        let (Some(file), Some(lines)) = (&mut self.jsonl, &self.batch.lines) else {
            return;
        };
        // Entries are JSON without line breaks (inside strings they are escaped).
        let entries = lines
            .split_inclusive(|b| *b == b'\n')
            .map(|line| &line[..line.len() - 1]);
        let (path, failures) = write_lines(file, entries);
        self.report(shared, &path, failures, JSONL_FAILURES);
    }

    fn write_access(&mut self, shared: &Shared, lines: &[Vec<u8>]) {
        let Some(file) = &mut self.access else {
            return;
        };
        let (path, failures) = write_lines(file, lines.iter().map(Vec::as_slice));
        self.report(shared, &path, failures, ACCESS_FAILURES);
    }

    /// Counts (and logs the first of each kind) what writing a file's lines failed at.
    fn report(
        &mut self,
        shared: &Shared,
        path: &str,
        failures: Vec<(Failure, std::io::Error)>,
        kinds: FileFailures,
    ) {
        for (failure, e) in failures {
            let (kind, what) = match failure {
                Failure::Write => kinds.write,
                Failure::Rotate => kinds.rotate,
            };
            self.failed(shared, kind, &format!("{what} {path}"), &e);
        }
    }
}

/// How a rotating file's failures are counted and described.
#[derive(Clone, Copy)]
struct FileFailures {
    write: (Kind, &'static str),
    rotate: (Kind, &'static str),
}

const JSONL_FAILURES: FileFailures = FileFailures {
    write: (Kind::JsonlWrite, "cannot write the audit JSONL file"),
    rotate: (Kind::JsonlRotate, "cannot rotate the audit JSONL file"),
};

const ACCESS_FAILURES: FileFailures = FileFailures {
    write: (Kind::AccessWrite, "cannot write the access log"),
    rotate: (Kind::AccessRotate, "cannot rotate the access log"),
};

/// Writes `lines` to `file` and flushes it; the file's path (for messages) and what failed.
fn write_lines<'a>(
    file: &mut RotatingFile,
    lines: impl Iterator<Item = &'a [u8]>,
) -> (String, Vec<(Failure, std::io::Error)>) {
    let mut failures = Vec::new();
    for line in lines {
        if let Err(f) = file.push_line(line) {
            failures.push(f);
        }
    }
    if let Err(f) = file.flush() {
        failures.push(f);
    }
    let path = if failures.is_empty() {
        String::new()
    } else {
        file.path().display().to_string()
    };
    (path, failures)
}

/// Takes up to [`BATCH`] records off each queue and writes them; how many were taken.
fn drain_once(shared: &Shared, sinks: &mut Sinks) -> usize {
    let mut taken = 0;
    if let Some(lane) = &shared.records {
        sinks.batch.clear();
        while sinks.batch.len() < BATCH {
            let Some(record) = lane.queue.pop() else {
                break;
            };
            sinks.batch.push(&mut sinks.entries, &record);
        }
        if sinks.batch.len() > 0 {
            sinks.write_audit(shared);
            let n = sinks.batch.len();
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

/// Marks the calling thread as a batch thread for the scheduler: it gets its fair share of a
/// core, but waking up never preempts a running thread. A worker busy with calls keeps its
/// core until it waits for I/O or its time slice ends; the log thread's batch runs then,
/// instead of cutting into calls in flight (on a small machine the log thread shares the
/// workers' cores).
fn yield_to_workers() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `param` is a valid, initialised `sched_param` that outlives the call; pid 0
        // names the calling thread, whose policy alone changes.
        let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
        if rc != 0 {
            tracing::debug!(
                error = %std::io::Error::last_os_error(),
                "the audit log thread keeps the normal scheduling policy"
            );
        }
    }
}

/// The log thread's body; `done` is told once everything queued at the stop is written.
pub(super) fn run(shared: Arc<Shared>, mut sinks: Sinks, done: crossbeam_channel::Sender<()>) {
    yield_to_workers();
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
