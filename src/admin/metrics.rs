//! What the worker cores measure, collected without slowing them: the gateway's internal
//! time, and the per-call figures of `call_metrics` (requests by method, server, tool and
//! outcome; client-facing and upstream latency; calls in flight). The audit pipeline's
//! counters are read from it too, so one snapshot ([`MetricsHub::calls`]) has everything a
//! renderer (Prometheus text, the admin API) needs.
//!
//! Internal time is how long a call spends inside mcpgate itself, from the parsed request to
//! the upstream write, plus from the upstream reply to the client write. Upstream and network
//! time are excluded, so this is the gateway's own overhead.
//!
//! Each core records into its own tables and merges them into the shared ones once
//! [`MERGE_AFTER`] has passed since its last merge (and when [`CoreMetrics::flush`] is called,
//! which a timer on each core does every second so idle cores report too); the shared lock is
//! taken only then. Not by count: a merge costs the same whatever it carries (it walks whole
//! histograms, ~0.6 M instructions), so merging every few thousand calls made a busy core pay
//! ~300 instructions per call for a page that is read at most every few seconds.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::call_metrics::{
    CallFigures, CoreCalls, HubCalls, RequestCount, ServerGauge, ServerLatency,
};
use crate::audit::{AuditCounts, AuditStats};

/// Longest a core keeps records to itself while it is recording.
const MERGE_AFTER: Duration = Duration::from_secs(1);
/// Values are nanoseconds; anything above 60 s is clamped.
const MAX_NANOS: u64 = 60_000_000_000;

fn new_histogram() -> Histogram<u64> {
    // 3 significant digits over 1 ns..60 s: a few tens of KiB per histogram. The bounds are
    // constants (covered by the tests), so construction cannot fail at run time.
    Histogram::new_with_bounds(1, MAX_NANOS, 3).expect("constant histogram bounds are valid")
}

/// The figures every core contributes to.
pub struct MetricsHub {
    internal: Mutex<Histogram<u64>>,
    calls: Mutex<HubCalls>,
    /// Cores registered so far (each gets an index for its in-flight gauges).
    cores: AtomicUsize,
    /// The audit pipeline's counters, when it runs.
    audit: OnceLock<Arc<AuditStats>>,
}

/// Everything about calls, at one moment: plain data for a renderer to walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallsSnapshot {
    /// Sorted by method, outcome, server, tool.
    pub requests: Vec<RequestCount>,
    /// Per server, by name.
    pub latency: Vec<ServerLatency>,
    /// Per server, by name: calls sent upstream and not yet answered.
    pub in_flight: Vec<ServerGauge>,
    /// The audit log's and access log's records written and dropped, and sink errors (all
    /// zero when neither runs).
    pub audit: AuditCounts,
    /// Whether the audit pipeline runs.
    pub audit_running: bool,
}

/// Percentiles of gateway internal time, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InternalTimeSummary {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl MetricsHub {
    pub fn new() -> Arc<Self> {
        Arc::new(MetricsHub {
            internal: Mutex::new(new_histogram()),
            calls: Mutex::new(HubCalls::default()),
            cores: AtomicUsize::new(0),
            audit: OnceLock::new(),
        })
    }

    /// Makes the audit pipeline's counters part of the snapshots.
    pub fn attach_audit(&self, stats: Arc<AuditStats>) {
        let _ = self.audit.set(stats);
    }

    /// The per-call figures merged so far (each core's are at most [`MERGE_AFTER`] old while
    /// it records, about a second while it is idle).
    pub fn calls(&self) -> CallsSnapshot {
        let (requests, latency, in_flight) = self
            .calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .snapshot();
        let audit = self.audit.get();
        CallsSnapshot {
            requests,
            latency,
            in_flight,
            audit: audit.map(|s| s.counts()).unwrap_or_default(),
            audit_running: audit.is_some(),
        }
    }

    pub fn internal_time(&self) -> InternalTimeSummary {
        let h = match self.internal.lock() {
            Ok(h) => h,
            Err(p) => p.into_inner(),
        };
        InternalTimeSummary {
            count: h.len(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }

    /// A copy of the merged internal-time histogram (nanoseconds), for `/metrics`: the lock
    /// cores merge under is held for the copy only, not while it is turned into buckets.
    pub fn internal_histogram(&self) -> Histogram<u64> {
        match self.internal.lock() {
            Ok(h) => h.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn merge(&self, local: &mut Histogram<u64>) {
        let mut shared = match self.internal.lock() {
            Ok(h) => h,
            Err(p) => p.into_inner(),
        };
        // Same bounds on both sides, so adding cannot fail.
        let _ = shared.add(&*local);
        drop(shared);
        local.reset();
    }

    fn merge_calls(&self, core: usize, local: &mut CoreCalls) {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .merge(core, local);
    }
}

/// One core's recorder.
pub struct CoreMetrics {
    hub: Arc<MetricsHub>,
    /// This core's index among the hub's cores.
    core: usize,
    internal: RefCell<Histogram<u64>>,
    calls: RefCell<CoreCalls>,
    unmerged: Cell<u64>,
    last_merge: Cell<Instant>,
}

impl CoreMetrics {
    pub fn new(hub: Arc<MetricsHub>) -> Self {
        let core = hub.cores.fetch_add(1, Ordering::Relaxed);
        CoreMetrics {
            hub,
            core,
            internal: RefCell::new(new_histogram()),
            calls: RefCell::new(CoreCalls::default()),
            unmerged: Cell::new(0),
            last_merge: Cell::new(Instant::now()),
        }
    }

    /// Records one call's internal time; `now` is a timestamp the caller already took.
    pub fn record_internal(&self, nanos: u64, now: Instant) {
        let _ = self.internal.borrow_mut().record(nanos.clamp(1, MAX_NANOS));
        self.recorded(now);
    }

    /// Records one finished routed request; `now` is a timestamp the caller already took.
    pub fn record_call(&self, call: &CallFigures<'_>, now: Instant) {
        self.calls.borrow_mut().record(call);
        self.recorded(now);
    }

    /// A call was sent to `server` (`+1`) or came back from it (`-1`).
    pub fn in_flight(&self, server: &Arc<str>, delta: i64) {
        self.calls.borrow_mut().in_flight(server, delta);
    }

    /// Counts a record, and merges once [`MERGE_AFTER`] has passed since the last merge.
    fn recorded(&self, now: Instant) {
        let n = self.unmerged.get() + 1;
        if now.saturating_duration_since(self.last_merge.get()) >= MERGE_AFTER {
            self.merge_all();
            self.last_merge.set(now);
        } else {
            self.unmerged.set(n);
        }
    }

    fn merge_all(&self) {
        self.hub.merge(&mut self.internal.borrow_mut());
        self.hub
            .merge_calls(self.core, &mut self.calls.borrow_mut());
        self.unmerged.set(0);
    }

    /// Merges what this core recorded so far (and its calls in flight).
    pub fn flush(&self) {
        if self.unmerged.get() > 0 || self.calls.borrow().dirty() {
            self.merge_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cores_merge_into_the_hub() {
        let hub = MetricsHub::new();
        let a = CoreMetrics::new(hub.clone());
        let b = CoreMetrics::new(hub.clone());
        let start = Instant::now();
        for i in 1..=100 {
            a.record_internal(i * 1000, start);
            b.record_internal(i * 1000, start);
        }
        assert_eq!(
            hub.internal_time().count,
            0,
            "nothing merged before a flush"
        );
        a.flush();
        b.flush();
        let s = hub.internal_time();
        assert_eq!(s.count, 200);
        assert!(s.p50 >= 49_000 && s.p50 <= 51_000, "{s:?}");
        assert!(s.max >= 99_900, "{s:?}");
    }

    #[test]
    fn call_figures_reach_the_snapshot_after_a_merge() {
        use crate::audit::record::{Outcome, RoutedMethod};
        let hub = MetricsHub::new();
        let core = CoreMetrics::new(hub.clone());
        let server: Arc<str> = Arc::from("mock");
        let tool: Arc<str> = Arc::from("echo");
        let start = Instant::now();
        core.in_flight(&server, 1);
        let call = CallFigures {
            method: RoutedMethod::ToolsCall,
            server: Some(&server),
            tool: Some(&tool),
            outcome: Outcome::Ok,
            latency_us: 50,
            upstream_us: Some(30),
        };
        core.record_call(&call, start);
        assert!(hub.calls().requests.is_empty(), "per core until merged");
        core.flush();
        let calls = hub.calls();
        assert_eq!(calls.requests.len(), 1);
        assert_eq!(calls.in_flight[0].in_flight, 1);
        assert!(!calls.audit_running);
        // A second later the next record merges by itself.
        core.in_flight(&server, -1);
        core.record_call(&call, start + MERGE_AFTER);
        let calls = hub.calls();
        assert_eq!(calls.requests[0].count, 2);
        assert_eq!(calls.in_flight[0].in_flight, 0);
        let stats = Arc::new(AuditStats::default());
        stats.dropped.fetch_add(3, Ordering::Relaxed);
        hub.attach_audit(stats);
        assert_eq!(hub.calls().audit.dropped, 3);
        assert!(hub.calls().audit_running);
    }
}
