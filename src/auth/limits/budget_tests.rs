use super::*;
use crate::auth::limits::period::Period;
use crate::auth::limits::tests::count_until_refused;

const MS: u64 = 1_000_000;
/// A period index well past tag 0, so nothing relies on a zeroed counter.
const P: u64 = 29_000_000;

fn params(units: u64, cores: usize) -> BudgetParams {
    BudgetParams::new(
        BudgetSpec {
            period: Period::Day,
            limit_milli: units * MILLI,
        },
        cores,
    )
}

struct Core(Cell<BudgetLease>);

impl Core {
    fn new() -> Core {
        Core(Cell::new(BudgetLease::default()))
    }
    fn charge(
        &self,
        p: &BudgetParams,
        word: &AtomicU64,
        index: u64,
        cost: u64,
        now: u64,
    ) -> Option<BudgetTaken> {
        charge(p, word, &self.0, index, cost, now)
    }
}

#[test]
fn packing_widths() {
    assert_eq!(MAX_BUDGET_MILLI, 4_398_046_511_103);
    assert_eq!(TAG_MASK, (1 << 22) - 1);
    let w = pack(TAG_MASK, MAX_BUDGET_MILLI);
    assert_eq!(w, u64::MAX);
    assert_eq!(unpack(w), (TAG_MASK, MAX_BUDGET_MILLI));
    assert_eq!(unpack(pack(5, 7)), (5, 7));
    assert_eq!(tag_of((1 << 22) + 5), 5);
    assert_eq!(next_tag(TAG_MASK), 0);
}

#[test]
fn lease_sizes() {
    assert_eq!(params(100, 2).chunk_max(), 0);
    assert_eq!(params(63, 1).chunk_max(), 0);
    assert_eq!(params(64, 1).chunk_max(), MILLI);
    assert_eq!(params(128, 1).chunk_max(), 2 * MILLI);
    assert_eq!(params(10_000, 4).chunk_max(), 39 * MILLI);
    assert_eq!(params(100_000_000, 16).chunk_max(), 100 * MILLI);
}

#[test]
fn small_budgets_are_exact_across_cores() {
    let p = params(3, 2);
    let word = AtomicU64::new(0);
    let (a, b) = (Core::new(), Core::new());
    assert!(a.charge(&p, &word, P, MILLI, 0).is_some());
    assert!(b.charge(&p, &word, P, MILLI, 1).is_some());
    assert!(a.charge(&p, &word, P, MILLI, 2).is_some());
    assert!(b.charge(&p, &word, P, MILLI, 3).is_none());
    assert!(a.charge(&p, &word, P, MILLI, 4).is_none());
    assert_eq!(used(&word, P), 3 * MILLI);
}

#[test]
fn fractional_costs() {
    let p = params(1, 1);
    let word = AtomicU64::new(0);
    let core = Core::new();
    for _ in 0..4 {
        assert!(core.charge(&p, &word, P, 250, 0).is_some());
    }
    assert!(core.charge(&p, &word, P, 250, 0).is_none());
    let word = AtomicU64::new(0);
    let core = Core::new();
    for _ in 0..3 {
        assert!(core.charge(&p, &word, P, 300, 0).is_some());
    }
    assert!(core.charge(&p, &word, P, 300, 0).is_none());
    assert!(
        core.charge(&p, &word, P, 100, 0).is_some(),
        "what is left still covers a cheaper call"
    );
    assert_eq!(used(&word, P), MILLI);
}

#[test]
fn a_call_costing_more_than_the_budget_is_refused() {
    let p = params(2, 1);
    let word = AtomicU64::new(0);
    assert!(Core::new().charge(&p, &word, P, 2_001, 0).is_none());
    assert_eq!(word.load(Relaxed), 0, "a refusal writes nothing");
}

#[test]
fn a_new_period_starts_fresh_and_voids_old_leases() {
    let p = params(1_000, 1);
    assert_eq!(p.chunk_max(), 15 * MILLI);
    let word = AtomicU64::new(0);
    let core = Core::new();
    let n = count_until_refused(|n| core.charge(&p, &word, P, MILLI, n * MS).is_some());
    assert_eq!(n, 1_000);
    // Hold a lease with units left in period P+1, then move to P+2.
    assert!(core.charge(&p, &word, P + 1, MILLI, n * MS).is_some());
    assert!(core.charge(&p, &word, P + 1, MILLI, n * MS + 1).is_some());
    assert!(
        core.0.get().avail > 0,
        "the test needs a lease with units left"
    );
    // Much later than a lease lifetime: a quiet core takes only what the call costs.
    assert!(core
        .charge(&p, &word, P + 2, MILLI, n * MS + 1_000 * MS)
        .is_some());
    assert_eq!(core.0.get().tag, tag_of(P + 2));
    // The new period's counter holds only what was charged in it.
    assert_eq!(used(&word, P + 2), MILLI);
    assert_eq!(
        used(&word, P + 1) + used(&word, P),
        0,
        "older periods read as zero"
    );
}

#[test]
fn a_core_whose_clock_lags_charges_the_newer_period() {
    let p = params(10, 2);
    let word = AtomicU64::new(0);
    let (ahead, behind) = (Core::new(), Core::new());
    assert!(ahead.charge(&p, &word, P + 1, MILLI, 0).is_some());
    // A call that read the clock just before the boundary must not reset the new period.
    assert!(behind.charge(&p, &word, P, MILLI, 0).is_some());
    assert_eq!(used(&word, P + 1), 2 * MILLI);
    // A counter from an older period than the caller's is reset.
    assert!(behind.charge(&p, &word, P + 3, MILLI, 0).is_some());
    assert_eq!(used(&word, P + 3), MILLI);
}

#[test]
fn leases_never_overspend_and_drain_exactly() {
    let cores_n = 4;
    let p = params(10_000, cores_n);
    assert!(p.chunk_max() > 0);
    let word = AtomicU64::new(0);
    let cores: Vec<Core> = (0..cores_n).map(|_| Core::new()).collect();
    let mut spent = 0u64;
    let mut now = 0;
    count_until_refused(|_| {
        let before = spent;
        for c in &cores {
            now += 1_000;
            if c.charge(&p, &word, P, MILLI, now).is_some() {
                spent += MILLI;
            }
            assert!(used(&word, P) <= p.spec.limit_milli);
        }
        spent > before
    });
    // Whole-unit leases and whole-unit costs: every leased unit gets spent.
    assert_eq!(spent, 10_000 * MILLI);
}

#[test]
fn an_idle_core_holds_at_most_one_lease() {
    let cores_n = 2;
    let p = params(10_000, cores_n);
    let word = AtomicU64::new(0);
    let (idle, busy) = (Core::new(), Core::new());
    for i in 0..20 {
        assert!(idle.charge(&p, &word, P, MILLI, i * 1_000).is_some());
    }
    let held = idle.0.get().avail;
    assert!(held > 0 && held <= p.chunk_max(), "{held}");
    let spent = 20 * MILLI
        + MILLI
            * count_until_refused(|i| busy.charge(&p, &word, P, MILLI, MS + i * 1_000).is_some());
    let now = 100 * MS;
    assert_eq!(
        spent + held,
        10_000 * MILLI,
        "refused early by exactly what the idle core holds"
    );
    give_back(&word, &idle.0);
    assert!(
        busy.charge(&p, &word, P, MILLI, now).is_some(),
        "returned units are spendable"
    );
}

#[test]
fn undo_restores_lease_and_counter() {
    let p = params(1_000, 1);
    let word = AtomicU64::new(0);
    let core = Core::new();
    let t = 1_000 * MS;
    let first = core.charge(&p, &word, P, MILLI, t).expect("room");
    assert!(
        matches!(first, BudgetTaken::Fresh { got: MILLI, .. }),
        "{first:?}"
    );
    let after_first = (core.0.get(), word.load(Relaxed));
    let second = core.charge(&p, &word, P, MILLI, t + 1).expect("room");
    assert!(
        matches!(second, BudgetTaken::Fresh { got, .. } if got > MILLI),
        "{second:?}"
    );
    let after_second = (core.0.get(), word.load(Relaxed));
    let third = core.charge(&p, &word, P, 500, t + 2).expect("room");
    assert!(matches!(third, BudgetTaken::Lease { .. }));
    undo(&word, &core.0, third);
    assert_eq!((core.0.get(), word.load(Relaxed)), after_second);
    undo(&word, &core.0, second);
    assert_eq!((core.0.get(), word.load(Relaxed)), after_first);
    undo(&word, &core.0, first);
    assert_eq!(core.0.get(), BudgetLease::default());
    assert_eq!(used(&word, P), 0);
}

#[test]
fn refunds_to_a_finished_period_are_dropped() {
    let word = AtomicU64::new(pack(tag_of(P + 1), 7));
    refund(&word, tag_of(P), 5);
    assert_eq!(unpack(word.load(Relaxed)), (tag_of(P + 1), 7));
    refund(&word, tag_of(P + 1), 5);
    assert_eq!(unpack(word.load(Relaxed)), (tag_of(P + 1), 2));
}
