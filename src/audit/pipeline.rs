//! The way from the worker cores to the log thread: two bounded lock-free queues (audit
//! records, access-log records), the counters operators and metrics read, and the log
//! thread's start and stop.
//!
//! A worker pushes a boxed record and goes on: when a queue is full the record is dropped and
//! counted, never waited for. The log thread drains on a short period and is woken earlier
//! only when a queue passes its high-water mark (one `unpark` per crossing, not per record).
//!
//! Owns: the queues, [`AuditStats`], opening the sinks at start (an unusable path is an error
//! naming its config key), and the flush at shutdown. Must never: block a worker, or make a
//! syscall per record on a worker.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

use crossbeam_queue::ArrayQueue;

use super::access::AccessRecord;
use super::entry::EntryWriter;
use super::record::AuditRecord;
use super::redact::Redactor;
use super::rotating::RotatingFile;
use super::sqlite::SqliteStore;
use super::writer::{self, AuditBatch, Sinks};
use crate::config::{AccessLogConfig, AuditConfig};

/// What the audit pipeline did so far; read by metrics and the shutdown line.
#[derive(Debug, Default)]
pub struct AuditStats {
    /// Audit records the log thread took and handed to its sinks.
    pub written: AtomicU64,
    /// Audit records dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Sink writes that failed (each failed batch write or rotation, per sink).
    pub sink_errors: AtomicU64,
    pub access_written: AtomicU64,
    pub access_dropped: AtomicU64,
}

/// The counters, read at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditCounts {
    pub written: u64,
    pub dropped: u64,
    pub sink_errors: u64,
    pub access_written: u64,
    pub access_dropped: u64,
}

impl AuditStats {
    pub fn counts(&self) -> AuditCounts {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        AuditCounts {
            written: read(&self.written),
            dropped: read(&self.dropped),
            sink_errors: read(&self.sink_errors),
            access_written: read(&self.access_written),
            access_dropped: read(&self.access_dropped),
        }
    }
}

/// One bounded queue and when a push should wake the log thread.
pub(super) struct Lane<T> {
    pub(super) queue: ArrayQueue<Box<T>>,
    high_water: usize,
    /// Pushes between two looks at the queue's length (reading it touches lines the log
    /// thread writes, so it is not done on every push).
    check_every: u32,
    /// Whether the first drop was logged.
    drop_warned: AtomicBool,
}

impl<T> Lane<T> {
    fn new(capacity: usize) -> Lane<T> {
        Lane {
            queue: ArrayQueue::new(capacity),
            high_water: (capacity / 2).max(1),
            check_every: (capacity / 16).clamp(1, 64) as u32,
            drop_warned: AtomicBool::new(false),
        }
    }
}

/// What workers and the log thread share.
pub(super) struct Shared {
    pub(super) records: Option<Lane<AuditRecord>>,
    pub(super) access: Option<Lane<AccessRecord>>,
    /// Set by the push that woke the log thread, cleared by the log thread before it drains.
    pub(super) wake_requested: AtomicBool,
    pub(super) stop: AtomicBool,
    pub(super) log_thread: OnceLock<Thread>,
    pub(super) stats: Arc<AuditStats>,
}

impl Shared {
    fn wake(&self) {
        if !self.wake_requested.swap(true, Ordering::AcqRel) {
            if let Some(t) = self.log_thread.get() {
                t.unpark();
            }
        }
    }

    fn push<T>(&self, lane: &Lane<T>, item: Box<T>, since_check: &Cell<u32>, dropped: &AtomicU64) {
        if lane.queue.push(item).is_err() {
            let before = dropped.fetch_add(1, Ordering::Relaxed);
            if before == 0 && !lane.drop_warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "the audit log thread is not keeping up: records are being dropped \
                     (counted; the total is logged at shutdown)"
                );
            }
            self.wake();
            return;
        }
        let n = since_check.get() + 1;
        if n < lane.check_every {
            since_check.set(n);
            return;
        }
        since_check.set(0);
        if lane.queue.len() >= lane.high_water {
            self.wake();
        }
    }
}

/// A worker core's end of the queues.
pub struct AuditSender {
    shared: Arc<Shared>,
    records_since_check: Cell<u32>,
    access_since_check: Cell<u32>,
    /// Whether records carry the request's arguments.
    pub log_arguments: bool,
}

impl AuditSender {
    /// Whether audit records are wanted at all.
    pub fn audits(&self) -> bool {
        self.shared.records.is_some()
    }

    /// Whether access-log records are wanted.
    pub fn logs_access(&self) -> bool {
        self.shared.access.is_some()
    }

    /// Hands a record to the log thread, or drops (and counts) it when the queue is full.
    pub fn record(&self, record: Box<AuditRecord>) {
        if let Some(lane) = &self.shared.records {
            let dropped = &self.shared.stats.dropped;
            self.shared
                .push(lane, record, &self.records_since_check, dropped);
        }
    }

    pub fn access(&self, record: Box<AccessRecord>) {
        if let Some(lane) = &self.shared.access {
            let dropped = &self.shared.stats.access_dropped;
            self.shared
                .push(lane, record, &self.access_since_check, dropped);
        }
    }
}

/// Hands out one [`AuditSender`] per worker core.
#[derive(Clone)]
pub struct AuditSenders {
    shared: Arc<Shared>,
    log_arguments: bool,
}

impl AuditSenders {
    pub fn sender(&self) -> AuditSender {
        AuditSender {
            shared: self.shared.clone(),
            records_since_check: Cell::new(0),
            access_since_check: Cell::new(0),
            log_arguments: self.log_arguments,
        }
    }
}

/// The running pipeline: hands out senders, and stops the log thread at shutdown.
pub struct AuditLog {
    shared: Arc<Shared>,
    log_arguments: bool,
    thread: Option<JoinHandle<()>>,
    finished: crossbeam_channel::Receiver<()>,
}

impl AuditLog {
    /// Opens the sinks the config names and starts the log thread; `None` when nothing is to
    /// be written (audit disabled or without sinks, and no access log). An error names the
    /// config key of the path that cannot be used.
    pub fn start(
        audit: &AuditConfig,
        access: Option<&AccessLogConfig>,
    ) -> Result<Option<AuditLog>, String> {
        let audits = audit.writes();
        if !audits && access.is_none() {
            return Ok(None);
        }
        let mut sinks = Sinks {
            jsonl: None,
            sqlite: None,
            access: None,
            entries: EntryWriter::new(Redactor::new(&audit.redact)),
            batch: AuditBatch::new(
                audits && audit.sqlite.is_some(),
                audits && audit.jsonl.is_some(),
            ),
            reported: Default::default(),
        };
        if audits {
            if let Some(path) = &audit.sqlite {
                let store = SqliteStore::open(path).map_err(|e| {
                    format!(
                        "audit.sqlite: cannot open the audit store {}: {e}",
                        path.display()
                    )
                })?;
                sinks.sqlite = Some(store);
            }
            if let Some(path) = &audit.jsonl {
                let file = RotatingFile::open(path, audit.jsonl_max_bytes, audit.jsonl_keep)
                    .map_err(|e| format!("audit.jsonl: cannot open {}: {e}", path.display()))?;
                sinks.jsonl = Some(file);
            }
        }
        if let Some(access) = access {
            let file =
                RotatingFile::open(&access.path, access.max_bytes, access.keep).map_err(|e| {
                    format!(
                        "access_log.path: cannot open {}: {e}",
                        access.path.display()
                    )
                })?;
            sinks.access = Some(file);
        }
        let shared = Arc::new(Shared {
            records: audits.then(|| Lane::new(audit.queue_capacity)),
            access: access.map(|_| Lane::new(audit.queue_capacity)),
            wake_requested: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            log_thread: OnceLock::new(),
            stats: Arc::new(AuditStats::default()),
        });
        let (done, finished) = crossbeam_channel::bounded(1);
        let for_thread = shared.clone();
        let thread = std::thread::Builder::new()
            .name("mcpgate-audit".into())
            .spawn(move || writer::run(for_thread, sinks, done))
            .map_err(|e| format!("cannot start the audit log thread: {e}"))?;
        let _ = shared.log_thread.set(thread.thread().clone());
        Ok(Some(AuditLog {
            shared,
            log_arguments: audit.log_arguments && audits,
            thread: Some(thread),
            finished,
        }))
    }

    /// What worker cores take their senders from.
    pub fn senders(&self) -> AuditSenders {
        AuditSenders {
            shared: self.shared.clone(),
            log_arguments: self.log_arguments,
        }
    }

    pub fn stats(&self) -> Arc<AuditStats> {
        self.shared.stats.clone()
    }

    /// Writes what is queued, closes the sinks and stops the log thread, waiting at most
    /// `bound` (a sink that hangs, such as a FIFO nobody reads, must not hold the shutdown).
    /// Whether everything was written, and the final counts.
    pub fn close(mut self, bound: Duration) -> (bool, AuditCounts) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.shared.log_thread.get() {
            t.unpark();
        }
        let flushed = self.finished.recv_timeout(bound).is_ok();
        if flushed {
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
        (flushed, self.shared.stats.counts())
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::audit::entry::tests::{sample, temp_dir};

    fn config(dir: &std::path::Path) -> AuditConfig {
        AuditConfig {
            sqlite: Some(dir.join("audit.db")),
            jsonl: Some(dir.join("audit.jsonl")),
            ..AuditConfig::default()
        }
    }

    #[test]
    fn records_reach_both_sinks_and_close_writes_what_is_queued() {
        let dir = temp_dir("sinks");
        let log = AuditLog::start(&config(&dir), None).unwrap().unwrap();
        let sender = log.senders().sender();
        for _ in 0..3 {
            sender.record(Box::new(sample()));
        }
        let (flushed, counts) = log.close(Duration::from_secs(30));
        assert!(flushed);
        assert_eq!(
            (counts.written, counts.dropped, counts.sink_errors),
            (3, 0, 0)
        );
        let lines = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap();
        assert_eq!(lines.lines().count(), 3);
        let q = crate::audit::AuditQuery::default();
        let stored: Vec<serde_json::Value> =
            serde_json::from_str(&crate::audit::query(&dir.join("audit.db"), &q).unwrap()).unwrap();
        assert_eq!(stored.len(), 3);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn nothing_to_write_starts_no_thread() {
        let off = AuditConfig {
            enabled: false,
            ..AuditConfig::default()
        };
        assert!(AuditLog::start(&off, None).unwrap().is_none());
        let no_sinks = AuditConfig {
            sqlite: None,
            ..AuditConfig::default()
        };
        assert!(AuditLog::start(&no_sinks, None).unwrap().is_none());
    }

    #[test]
    fn unusable_paths_name_their_key() {
        let missing = PathBuf::from("/nonexistent-mcpgate-dir/x");
        let sqlite = AuditConfig {
            sqlite: Some(missing.clone()),
            ..AuditConfig::default()
        };
        let err = AuditLog::start(&sqlite, None).err().unwrap();
        assert!(err.starts_with("audit.sqlite: ") && err.contains("/nonexistent-mcpgate-dir/x"));
        let jsonl = AuditConfig {
            sqlite: None,
            jsonl: Some(missing.clone()),
            ..AuditConfig::default()
        };
        let err = AuditLog::start(&jsonl, None).err().unwrap();
        assert!(err.starts_with("audit.jsonl: "), "{err}");
        let access = AccessLogConfig {
            path: missing,
            max_bytes: 1,
            keep: 1,
        };
        let err = AuditLog::start(&jsonl_off(), Some(&access)).err().unwrap();
        assert!(err.starts_with("access_log.path: "), "{err}");
    }

    fn jsonl_off() -> AuditConfig {
        AuditConfig {
            enabled: false,
            ..AuditConfig::default()
        }
    }

    #[test]
    fn sink_errors_are_counted_and_never_stop_the_log() {
        let dir = temp_dir("errors");
        // Rotation cannot happen (a directory stands where the rotated file would go).
        std::fs::create_dir_all(dir.join("audit.jsonl.1").join("x")).unwrap();
        let cfg = AuditConfig {
            sqlite: None,
            jsonl: Some(dir.join("audit.jsonl")),
            jsonl_max_bytes: 10,
            jsonl_keep: 1,
            ..AuditConfig::default()
        };
        let log = AuditLog::start(&cfg, None).unwrap().unwrap();
        let sender = log.senders().sender();
        for _ in 0..3 {
            sender.record(Box::new(sample()));
        }
        let (flushed, counts) = log.close(Duration::from_secs(30));
        assert!(flushed);
        assert_eq!(counts.written, 3);
        assert!(counts.sink_errors >= 1, "{counts:?}");
        let lines = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap();
        assert_eq!(lines.lines().count(), 3, "the records were kept");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
