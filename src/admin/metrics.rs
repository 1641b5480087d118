//! Gateway internal time: how long a call spends inside mcpgate itself, from the parsed
//! request to the upstream write, plus from the upstream reply to the client write. Upstream
//! and network time are excluded, so this is the gateway's own overhead.
//!
//! Each core records into its own histogram and merges it into the shared one every
//! [`MERGE_EVERY`] calls or [`MERGE_AFTER`], whichever comes first; the shared lock is taken
//! only then.

use std::cell::{Cell, RefCell};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Calls recorded on a core before its histogram is merged into the shared one.
const MERGE_EVERY: u64 = 4096;
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
        })
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
}

/// One core's recorder.
pub struct CoreMetrics {
    hub: Arc<MetricsHub>,
    internal: RefCell<Histogram<u64>>,
    unmerged: Cell<u64>,
    last_merge: Cell<Instant>,
}

impl CoreMetrics {
    pub fn new(hub: Arc<MetricsHub>) -> Self {
        CoreMetrics {
            hub,
            internal: RefCell::new(new_histogram()),
            unmerged: Cell::new(0),
            last_merge: Cell::new(Instant::now()),
        }
    }

    /// Records one call's internal time; `now` is a timestamp the caller already took.
    pub fn record_internal(&self, nanos: u64, now: Instant) {
        let mut h = self.internal.borrow_mut();
        let _ = h.record(nanos.clamp(1, MAX_NANOS));
        let n = self.unmerged.get() + 1;
        if n >= MERGE_EVERY || now.saturating_duration_since(self.last_merge.get()) >= MERGE_AFTER {
            self.hub.merge(&mut h);
            self.unmerged.set(0);
            self.last_merge.set(now);
        } else {
            self.unmerged.set(n);
        }
    }

    /// Merges what this core recorded so far.
    pub fn flush(&self) {
        if self.unmerged.get() > 0 {
            self.hub.merge(&mut self.internal.borrow_mut());
            self.unmerged.set(0);
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
}
