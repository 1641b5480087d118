//! Rate limits: a token bucket kept as GCRA, plus per-core leases of cells.
//!
//! Shared state is one `AtomicU64`, the bucket's *theoretical arrival time* (TAT, in
//! monotonic ns): the instant by which every cell handed out so far would have been paid for
//! at the sustained rate. A cell may be taken at `now` if the TAT after taking it stays
//! within `burst` cell-intervals of `now`. Taking cells is one CAS; nothing locks.
//!
//! A busy core takes several cells in one CAS (a lease) and spends them locally, so the
//! shared cache line is touched once per up to 32 calls rather than per call. A lease lives
//! [`LEASE_TTL_NS`]: cells are accounted when leased, and a short life bounds how late they
//! can be spent. Lease sizes follow the core's own pace, so a quiet core takes one cell at a
//! time and strands none. Bounds are in the module docs of `limits`.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use super::spec::RateSpec;

/// How long a core may keep spending cells it leased.
pub(super) const LEASE_TTL_NS: u64 = 50_000_000;
/// Most cells one lease holds, whatever the burst.
const MAX_LEASE: usize = 32;
/// Longest interval between cells (100 years), so products of it stay in range.
const MAX_INTERVAL_NS: f64 = 100.0 * 365.0 * 86_400.0 * 1e9;

/// A rate spec turned into the integers the hot path works with.
#[derive(Debug)]
pub(super) struct RateParams {
    pub spec: RateSpec,
    /// One cell's worth of time, `1 / per_second`, rounded to the ns.
    interval_ns: u64,
    /// `burst` intervals: how far ahead of `now` the TAT may run.
    window_ns: u64,
    /// Largest lease: `burst / (4 · cores)`, 1..=32. 1 (exact) for bursts under 8 per core.
    lease_max: u32,
}

impl RateParams {
    pub fn new(spec: RateSpec, cores: usize) -> RateParams {
        // Float-to-int `as` saturates; validation already refused non-positive rates.
        let interval_ns = (1e9 / spec.per_second).round().clamp(1.0, MAX_INTERVAL_NS) as u64;
        let window_ns = interval_ns.saturating_mul(u64::from(spec.burst));
        let lease_max =
            (spec.burst as usize / cores.max(1).saturating_mul(4)).clamp(1, MAX_LEASE) as u32;
        RateParams {
            spec,
            interval_ns,
            window_ns,
            lease_max,
        }
    }

    #[cfg(test)]
    pub fn interval_ns(&self) -> u64 {
        self.interval_ns
    }

    #[cfg(test)]
    pub fn lease_max(&self) -> u32 {
        self.lease_max
    }
}

/// Takes up to `want` cells from the shared bucket at `now`: the number taken (at least 1),
/// or the instant the next cell frees.
pub(super) fn take(tat: &AtomicU64, p: &RateParams, want: u32, now: u64) -> Result<u32, u64> {
    let horizon = now.saturating_add(p.window_ns);
    let mut cur = tat.load(Relaxed);
    loop {
        // TAT <= now means a full bucket. TAT beyond the horizon happens only after a reload
        // shrank the bucket; it cannot owe more than it holds, so clamp.
        let base = cur.clamp(now, horizon);
        let room = (horizon - base) / p.interval_ns;
        if room == 0 {
            return Err(base
                .saturating_add(p.interval_ns)
                .saturating_sub(p.window_ns));
        }
        let got = room.min(u64::from(want));
        match tat.compare_exchange_weak(cur, base + got * p.interval_ns, Relaxed, Relaxed) {
            Ok(_) => return Ok(got as u32),
            Err(actual) => cur = actual,
        }
    }
}

/// Cells the bucket holds at `now` (cells leased to cores count as taken).
pub(super) fn available(tat: &AtomicU64, p: &RateParams, now: u64) -> u64 {
    let horizon = now.saturating_add(p.window_ns);
    let base = tat.load(Relaxed).clamp(now, horizon);
    (horizon - base) / p.interval_ns.max(1)
}

/// Gives back cells taken moments ago (a later account in the chain refused). Exact as long
/// as it runs within one interval of the take, as it does: nothing can have refilled past
/// the cells in between.
pub(super) fn refund(tat: &AtomicU64, p: &RateParams, cells: u32) {
    let back = u64::from(cells).saturating_mul(p.interval_ns);
    // The closure never declines, so this cannot fail.
    let _ = tat.fetch_update(Relaxed, Relaxed, |cur| Some(cur.saturating_sub(back)));
}

/// A core's lease on one bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct RateLease {
    /// Leased cells not yet spent.
    cells: u32,
    /// Cells in the lease when taken.
    size: u32,
    taken_at: u64,
    expires: u64,
    /// The shared bucket had no cell before this instant: refuse here without touching it.
    blocked_until: u64,
}

/// What one admission took, so it can be given back exactly.
#[derive(Debug, Clone, Copy)]
pub(super) enum RateTaken {
    Lease,
    Fresh { got: u32, before: RateLease },
}

/// Spends one cell at `now`, or says how long until one frees.
pub(super) fn admit(
    p: &RateParams,
    tat: &AtomicU64,
    lease: &Cell<RateLease>,
    now: u64,
) -> Result<RateTaken, Duration> {
    let mut l = lease.get();
    if l.cells > 0 && now < l.expires {
        l.cells -= 1;
        lease.set(l);
        return Ok(RateTaken::Lease);
    }
    if now < l.blocked_until {
        return Err(Duration::from_nanos(l.blocked_until - now));
    }
    match take(tat, p, next_lease_size(&l, p.lease_max, now), now) {
        Ok(got) => {
            lease.set(RateLease {
                cells: got - 1,
                size: got,
                taken_at: now,
                expires: now.saturating_add(LEASE_TTL_NS),
                blocked_until: 0,
            });
            Ok(RateTaken::Fresh { got, before: l })
        }
        Err(free_at) => {
            l.blocked_until = free_at;
            lease.set(l);
            Err(Duration::from_nanos(free_at.saturating_sub(now)))
        }
    }
}

/// Undoes one [`admit`]; admissions are undone in reverse order.
pub(super) fn undo(p: &RateParams, tat: &AtomicU64, lease: &Cell<RateLease>, taken: RateTaken) {
    match taken {
        RateTaken::Lease => {
            let mut l = lease.get();
            l.cells += 1;
            lease.set(l);
        }
        RateTaken::Fresh { got, before } => {
            refund(tat, p, got);
            lease.set(before);
        }
    }
}

/// Sized so that, at the pace the core spent its previous lease, it spends this one in about
/// half a lease lifetime: busy cores lease up to `max`, quiet ones one cell at a time.
fn next_lease_size(l: &RateLease, max: u32, now: u64) -> u32 {
    if max == 1 {
        return 1;
    }
    let spent = u64::from(l.size - l.cells);
    let elapsed = now.saturating_sub(l.taken_at).max(1);
    (spent.saturating_mul(LEASE_TTL_NS) / elapsed.saturating_mul(2)).clamp(1, u64::from(max)) as u32
}

#[cfg(test)]
#[path = "rate_tests.rs"]
mod tests;
