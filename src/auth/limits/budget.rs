//! Call budgets: at most `limit` cost milli-units per calendar period, shared by all cores.
//!
//! Shared state is one `AtomicU64` per budget, packing the period it counts and the amount
//! used in it, updated by CAS:
//!
//! ```text
//!  63            42 41                                0
//! [ period tag: 22 ][ used milli-units: 42            ]
//! ```
//!
//! 42 bits of milli-units hold 4.39 billion units per period ([`MAX_BUDGET_MILLI`]; larger
//! budgets are refused at construction). The tag is the period index since the epoch modulo
//! 2^22: minute tags repeat every ~8 years, hour tags every ~478, day and month tags never in
//! practice. A counter whose tag differs from the current period's is from an older period
//! and reads as zero, so a new period starts fresh without anyone resetting it. At a wrap, a
//! counter last touched exactly 2^22 periods ago (to the minute, for minute budgets) would be
//! taken as current: at worst a key idle for 8 years is refused for up to one minute.
//!
//! A core leases a few units at once when it is busy and spends them locally. Leased units
//! count as used, so a budget is never overspent; it may refuse while other cores still hold
//! unspent leases. Leases are for one period: at its end they are void, as is the budget.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::rate::LEASE_TTL_NS;
use super::spec::{BudgetSpec, MILLI};

const USED_BITS: u32 = 42;
/// The largest budget per period, in milli-units (2^42 − 1, about 4.39 billion units).
pub const MAX_BUDGET_MILLI: u64 = (1 << USED_BITS) - 1;
const TAG_MASK: u64 = (1 << (64 - USED_BITS)) - 1;
/// Most one lease holds beyond the call it is taken for.
const MAX_CHUNK_MILLI: u64 = 100 * MILLI;

/// A budget spec turned into what the hot path needs.
#[derive(Debug)]
pub(super) struct BudgetParams {
    pub spec: BudgetSpec,
    /// Largest extra a lease takes: limit / (64 · cores) in whole units, at most 100 units.
    /// 0 for budgets under 64 units per core, which are then exact.
    chunk_max: u64,
}

impl BudgetParams {
    pub fn new(spec: BudgetSpec, cores: usize) -> BudgetParams {
        let share = spec.limit_milli / (cores.max(1) as u64).saturating_mul(64);
        let chunk_max = (share / MILLI * MILLI).min(MAX_CHUNK_MILLI);
        BudgetParams { spec, chunk_max }
    }

    #[cfg(test)]
    pub fn chunk_max(&self) -> u64 {
        self.chunk_max
    }
}

/// The tag a period index is stored under.
pub(super) fn tag_of(index: u64) -> u64 {
    index & TAG_MASK
}

fn next_tag(tag: u64) -> u64 {
    (tag + 1) & TAG_MASK
}

fn pack(tag: u64, used: u64) -> u64 {
    (tag << USED_BITS) | used
}

fn unpack(word: u64) -> (u64, u64) {
    (word >> USED_BITS, word & MAX_BUDGET_MILLI)
}

/// Charges at least `need` and up to `need + extra` to the period tagged `tag`: the tag
/// charged and the amount, or `None` if less than `need` is left.
///
/// A counter already in the *next* period is charged there rather than reset: a call that
/// read the clock just before midnight must not wipe out the new day's count.
fn take(word: &AtomicU64, tag: u64, need: u64, extra: u64, limit: u64) -> Option<(u64, u64)> {
    let mut cur = word.load(Relaxed);
    loop {
        let (stored, used) = unpack(cur);
        let (tag, used) = if stored == tag || stored == next_tag(tag) {
            (stored, used)
        } else {
            (tag, 0)
        };
        let left = limit.saturating_sub(used);
        if left < need {
            return None;
        }
        let got = need.saturating_add(extra).min(left);
        match word.compare_exchange_weak(cur, pack(tag, used + got), Relaxed, Relaxed) {
            Ok(_) => return Some((tag, got)),
            Err(actual) => cur = actual,
        }
    }
}

/// Gives back `amount` charged to the period tagged `tag`; nothing if that period is over.
/// Exact: leased units were counted as used, so returning them only corrects the count.
pub(super) fn refund(word: &AtomicU64, tag: u64, amount: u64) {
    // The closure declines when the period has moved on; then there is nothing to return.
    let _ = word.fetch_update(Relaxed, Relaxed, |cur| {
        let (stored, used) = unpack(cur);
        (stored == tag).then(|| pack(stored, used.saturating_sub(amount)))
    });
}

/// Milli-units used (spent or leased) in the period with this index.
pub(super) fn used(word: &AtomicU64, index: u64) -> u64 {
    let (stored, used) = unpack(word.load(Relaxed));
    if stored == tag_of(index) {
        used
    } else {
        0
    }
}

/// A core's lease on one budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BudgetLease {
    /// The period the lease is for; `u64::MAX` (no tag) when there is none.
    tag: u64,
    /// Leased milli-units not yet spent.
    avail: u64,
    last_take: u64,
    /// The extra taken last time; doubles while the core stays busy.
    extra: u64,
}

impl Default for BudgetLease {
    fn default() -> BudgetLease {
        BudgetLease {
            tag: u64::MAX,
            avail: 0,
            last_take: 0,
            extra: 0,
        }
    }
}

/// What one charge took, so it can be given back exactly.
#[derive(Debug, Clone, Copy)]
pub(super) enum BudgetTaken {
    Lease {
        before: BudgetLease,
    },
    Fresh {
        tag: u64,
        got: u64,
        before: BudgetLease,
    },
}

/// Charges `cost` milli-units (> 0) in the period with index `index`; `None` if the budget
/// cannot cover it. `now_ns` (monotonic) only sizes the lease.
pub(super) fn charge(
    p: &BudgetParams,
    word: &AtomicU64,
    lease: &Cell<BudgetLease>,
    index: u64,
    cost: u64,
    now_ns: u64,
) -> Option<BudgetTaken> {
    let before = lease.get();
    let mut l = before;
    let tag = tag_of(index);
    if l.tag != tag && l.tag != next_tag(tag) {
        // A lease from a past period is void, like that period's budget.
        l.tag = tag;
        l.avail = 0;
    }
    if l.avail >= cost {
        l.avail -= cost;
        lease.set(l);
        return Some(BudgetTaken::Lease { before });
    }
    let need = cost - l.avail;
    // Lease beyond this call only while the core keeps coming back within a lease lifetime:
    // an idle core then holds little, and a budget near its end is not spread across cores.
    let busy = now_ns.saturating_sub(l.last_take) <= LEASE_TTL_NS;
    let extra = if busy {
        (l.extra * 2).max(cost).min(p.chunk_max)
    } else {
        0
    };
    let (tag, got) = take(word, l.tag, need, extra, p.spec.limit_milli)?;
    lease.set(BudgetLease {
        tag,
        avail: l.avail + got - cost,
        last_take: now_ns,
        extra,
    });
    Some(BudgetTaken::Fresh { tag, got, before })
}

/// Undoes one [`charge`]; charges are undone in reverse order.
pub(super) fn undo(word: &AtomicU64, lease: &Cell<BudgetLease>, taken: BudgetTaken) {
    match taken {
        BudgetTaken::Lease { before } => lease.set(before),
        BudgetTaken::Fresh { tag, got, before } => {
            refund(word, tag, got);
            lease.set(before);
        }
    }
}

/// Returns a lease's unspent units to the shared counter (when a core's state is dropped).
pub(super) fn give_back(word: &AtomicU64, lease: &Cell<BudgetLease>) {
    let l = lease.replace(BudgetLease::default());
    if l.avail > 0 {
        refund(word, l.tag, l.avail);
    }
}

#[cfg(test)]
#[path = "budget_tests.rs"]
mod tests;
