//! Admission through chains of accounts, permits and reloads, on one or a few cores.
//! (Each piece's own rules are tested beside it; real threads in `thread_tests.rs`.)

use std::sync::Arc;
use std::time::Duration;

use super::*;

const SEC: u64 = 1_000_000_000;
/// 2026-12-31T23:59:58Z, two seconds before a new day, month and year.
const NEW_YEAR_EVE: u64 = 1_798_761_598;
const T0: Now = Now {
    mono_ns: 1_000 * SEC,
    unix_secs: NEW_YEAR_EVE,
};

pub(super) fn key(name: &str) -> AccountLabel {
    AccountLabel::new(AccountKind::Key, name)
}
pub(super) fn team(name: &str) -> AccountLabel {
    AccountLabel::new(AccountKind::Team, name)
}
pub(super) fn customer(name: &str) -> AccountLabel {
    AccountLabel::new(AccountKind::Customer, name)
}
pub(super) fn rate(per_second: f64, burst: u32) -> LimitSpec {
    LimitSpec {
        rate: Some(RateSpec { per_second, burst }),
        ..LimitSpec::default()
    }
}
pub(super) fn budget(period: Period, units: u64) -> LimitSpec {
    LimitSpec {
        budgets: vec![BudgetSpec {
            period,
            limit_milli: units * MILLI,
        }],
        ..LimitSpec::default()
    }
}
pub(super) fn concurrent(max: u32) -> LimitSpec {
    LimitSpec {
        max_concurrent: Some(max),
        ..LimitSpec::default()
    }
}

/// Limits for key "eng" → team "platform" → customer "acme"; returns them and the chain.
fn chain_of(k: LimitSpec, t: LimitSpec, c: LimitSpec) -> (Arc<Limits>, [AccountId; 3]) {
    let limits = Limits::new(
        vec![
            (key("eng"), k),
            (team("platform"), t),
            (customer("acme"), c),
        ],
        2,
    )
    .expect("valid limits");
    let ids =
        [key("eng"), team("platform"), customer("acme")].map(|l| limits.id(&l).expect("defined"));
    (limits, ids)
}

/// Counts admissions until the first refusal (`admit` returns false); fails instead of
/// hanging if a bug admits without end.
pub(super) fn count_until_refused(mut admit: impl FnMut(u64) -> bool) -> u64 {
    for n in 0..10_000_000 {
        if !admit(n) {
            return n;
        }
    }
    panic!("never refused");
}

fn refused_by(r: Result<impl std::fmt::Debug, Refusal>) -> Refusal {
    match r {
        Ok(v) => panic!("expected a refusal, got {v:?}"),
        Err(refusal) => refusal,
    }
}

#[test]
fn limits_are_shareable_across_threads() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<Limits>();
    fn static_<T: 'static>() {}
    static_::<CallPermit>();
}

#[test]
fn rate_refused_by_the_last_account_costs_the_others_nothing() {
    let (limits, chain) = chain_of(rate(0.001, 2), rate(0.001, 2), rate(0.001, 1));
    let core = CoreLimits::new(&limits);
    assert!(core.admit_request(&chain, T0).is_ok());
    let r = refused_by(core.admit_request(&chain, T0));
    assert_eq!(r.account, customer("acme"));
    assert!(matches!(r.kind, RefusalKind::Rate { burst: 1, .. }));
    // Key and team each spent exactly one cell: one more each, then the key refuses.
    assert!(core.admit_request(&chain[..2], T0).is_ok());
    assert_eq!(
        refused_by(core.admit_request(&chain[..2], T0)).account,
        key("eng")
    );
}

#[test]
fn the_tightest_limit_wins_and_says_so() {
    let (limits, chain) = chain_of(rate(100.0, 100), rate(10.0, 20), rate(1_000.0, 1_000));
    let core = CoreLimits::new(&limits);
    for _ in 0..20 {
        assert!(core.admit_request(&chain, T0).is_ok());
    }
    let r = refused_by(core.admit_request(&chain, T0));
    assert_eq!(
        r.to_string(),
        r#"team "platform" is over its rate limit (10 per second, burst 20); retry in 1 s"#
    );
    assert_eq!(
        r.kind,
        RefusalKind::Rate {
            retry_after: Duration::from_millis(100),
            per_second: 10.0,
            burst: 20
        }
    );
    assert_eq!(r.retry_after_secs(), 1);
    assert!(core.admit_request(&chain, T0.plus_ns(SEC / 10)).is_ok());
}

#[test]
fn budget_and_slots_are_given_back_when_the_customer_refuses() {
    let mut k = budget(Period::Day, 10);
    k.max_concurrent = Some(5);
    let mut t = budget(Period::Month, 10);
    t.max_concurrent = Some(5);
    let mut c = budget(Period::Day, 2);
    c.max_concurrent = Some(1);
    let (limits, chain) = chain_of(k, t, c);
    let core = CoreLimits::new(&limits);
    let first = core.admit_call(&chain, MILLI, T0).expect("room everywhere");
    assert_eq!(first.slots(), 3);
    // The customer's one slot is taken: refused, and key and team keep only the first call.
    let r = refused_by(core.admit_call(&chain, MILLI, T0));
    assert_eq!(
        r.to_string(),
        r#"customer "acme" has 1 call in flight, its limit"#
    );
    let used = |id, p| limits.budget_used_milli(id, p, T0);
    assert_eq!(
        (used(chain[0], Period::Day), used(chain[1], Period::Month)),
        (MILLI, MILLI)
    );
    assert_eq!(
        (
            limits.in_flight(chain[0]),
            limits.in_flight(chain[1]),
            limits.in_flight(chain[2])
        ),
        (1, 1, 1)
    );
    drop(first);
    assert_eq!(
        (
            limits.in_flight(chain[0]),
            limits.in_flight(chain[1]),
            limits.in_flight(chain[2])
        ),
        (0, 0, 0)
    );
    // Now the customer's budget refuses (2 units, 1 used, this call costs 1.5).
    let r = refused_by(core.admit_call(&chain, 1_500, T0));
    assert_eq!(r.account, customer("acme"));
    assert!(matches!(
        r.kind,
        RefusalKind::Budget {
            period: Period::Day,
            cost_milli: 1_500,
            ..
        }
    ));
    assert_eq!(
        (used(chain[0], Period::Day), used(chain[1], Period::Month)),
        (MILLI, MILLI)
    );
    assert_eq!(limits.in_flight(chain[0]) + limits.in_flight(chain[1]), 0);
}

#[test]
fn budgets_renew_at_midnight_and_at_the_new_month() {
    let (limits, chain) = chain_of(
        budget(Period::Day, 2),
        budget(Period::Month, 3),
        LimitSpec::default(),
    );
    let core = CoreLimits::new(&limits);
    for _ in 0..2 {
        assert!(core.admit_call(&chain, MILLI, T0).is_ok());
    }
    let r = refused_by(core.admit_call(&chain, MILLI, T0));
    assert_eq!(
        r.to_string(),
        r#"budget exhausted: key "eng" has used its 2 units per day; it renews in 2 s"#
    );
    assert_eq!(r.retry_after_secs(), 2);
    let new_year = T0.plus_ns(2 * SEC);
    assert_eq!(new_year.unix_secs, 1_798_761_600);
    assert!(core.admit_call(&chain, MILLI, new_year).is_ok());
    // The team's month (3 units) is fresh in January too; December's 2 do not count.
    assert_eq!(
        limits.budget_used_milli(chain[1], Period::Month, new_year),
        MILLI
    );
}

#[test]
fn a_leap_february_renews_on_march_first() {
    let (limits, chain) = chain_of(
        budget(Period::Month, 1),
        LimitSpec::default(),
        LimitSpec::default(),
    );
    let core = CoreLimits::new(&limits);
    let feb_28 = Now {
        mono_ns: T0.mono_ns,
        unix_secs: 1_835_308_800,
    }; // 2028-02-28T00:00Z
    assert!(core.admit_call(&chain, MILLI, feb_28).is_ok());
    let r = refused_by(core.admit_call(&chain, MILLI, feb_28));
    assert!(
        matches!(r.kind, RefusalKind::Budget { renews_in, .. } if renews_in == Duration::from_secs(2 * 86_400))
    );
    assert!(r.to_string().ends_with("it renews in 2 d"), "{r}");
    let march = Now {
        mono_ns: T0.mono_ns,
        unix_secs: 1_835_481_600,
    };
    assert!(core.admit_call(&chain, MILLI, march).is_ok());
}

#[test]
fn fractional_costs_add_up_exactly() {
    let (limits, chain) = chain_of(
        budget(Period::Hour, 1),
        LimitSpec::default(),
        LimitSpec::default(),
    );
    let core = CoreLimits::new(&limits);
    let cost = to_milli(0.1).expect("a valid cost");
    for _ in 0..10 {
        assert!(core.admit_call(&chain, cost, T0).is_ok());
    }
    let r = refused_by(core.admit_call(&chain, cost, T0));
    assert!(r.to_string().contains("(this call costs 0.1 units)"), "{r}");
    assert!(
        core.admit_call(&chain, 0, T0).is_ok(),
        "a free call needs no budget"
    );
}

#[test]
fn permits_release_their_slots_on_drop_even_in_another_task() {
    let (limits, chain) = chain_of(concurrent(2), LimitSpec::default(), LimitSpec::default());
    let core = CoreLimits::new(&limits);
    let a = core.admit_call(&chain, MILLI, T0).expect("slot");
    let b = core.admit_call(&chain, MILLI, T0).expect("slot");
    let r = refused_by(core.admit_call(&chain, MILLI, T0));
    assert_eq!(
        r.to_string(),
        r#"key "eng" has 2 calls in flight, its limit"#
    );
    drop(a);
    let c = core
        .admit_call(&chain, MILLI, T0)
        .expect("a slot was freed");
    // A permit is 'static: it can move into a task on this core and live across awaits,
    // and even outlive the CoreLimits that issued it.
    drop(core);
    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .build()
        .expect("a runtime");
    let lim = Arc::clone(&limits);
    rt.block_on(async move {
        let task = monoio::spawn(async move {
            let held = (b, c);
            std::future::ready(()).await;
            assert_eq!(lim.in_flight(chain[0]), 2);
            drop(held);
        });
        task.await;
    });
    assert_eq!(limits.in_flight(chain[0]), 0);
}

#[test]
fn reload_carries_counters_over_by_label() {
    let mut k = budget(Period::Day, 5);
    k.rate = Some(RateSpec {
        per_second: 0.001,
        burst: 3,
    });
    k.max_concurrent = Some(4);
    let old = Limits::new(
        vec![
            (key("eng"), k.clone()),
            (key("ops"), budget(Period::Day, 5)),
        ],
        2,
    )
    .expect("valid");
    let (eng, ops) = (
        old.id(&key("eng")).expect("eng"),
        old.id(&key("ops")).expect("ops"),
    );
    let old_core = CoreLimits::new(&old);
    for _ in 0..2 {
        assert!(old_core.admit_request(&[eng, ops], T0).is_ok());
        assert!(old_core.admit_call(&[eng, ops], MILLI, T0).is_ok());
    }
    let in_flight = old_core.admit_call(&[eng], MILLI, T0).expect("room");

    // The new config raises eng's budget, caps it at 1 call in flight, renames ops.
    let mut k2 = k;
    k2.budgets[0].limit_milli = 10 * MILLI;
    k2.max_concurrent = Some(1);
    let accounts = vec![
        (key("new"), LimitSpec::default()),
        (key("eng"), k2),
        (key("ops2"), budget(Period::Day, 5)),
    ];
    let new = Limits::carry_over(accounts, 2, &old).expect("valid");
    let (eng2, ops2) = (
        new.id(&key("eng")).expect("eng"),
        new.id(&key("ops2")).expect("ops2"),
    );
    assert_ne!(eng2, eng, "ids are positions in the new list");
    assert_eq!(new.budget_used_milli(eng2, Period::Day, T0), 3 * MILLI);
    assert_eq!(
        new.budget_used_milli(ops2, Period::Day, T0),
        0,
        "a new label starts fresh"
    );
    let core = CoreLimits::new(&new);
    // The call still in flight from before the reload counts against the new cap.
    assert_eq!(
        refused_by(core.admit_call(&[eng2], MILLI, T0)).kind,
        RefusalKind::Concurrency { max: 1 }
    );
    drop(in_flight);
    drop(old_core);
    // The rate bucket carried over too: 2 of 3 cells were spent.
    assert!(core.admit_request(&[eng2], T0).is_ok());
    assert!(core.admit_request(&[eng2], T0).is_err());
    // 3 of the new 10 units are used: 7 more.
    let more = count_until_refused(|_| core.admit_call(&[eng2], MILLI, T0).is_ok());
    assert_eq!(more, 7);
}

#[test]
fn dropping_a_core_returns_its_budget_leases() {
    let (limits, chain) = chain_of(
        budget(Period::Day, 1_000_000),
        LimitSpec::default(),
        LimitSpec::default(),
    );
    let core = CoreLimits::new(&limits);
    let mut now = T0;
    for _ in 0..1_000 {
        now = now.plus_ns(1_000);
        assert!(core.admit_call(&chain, MILLI, now).is_ok());
    }
    assert!(
        limits.budget_used_milli(chain[0], Period::Day, now) > 1_000 * MILLI,
        "the core holds a lease"
    );
    drop(core);
    assert_eq!(
        limits.budget_used_milli(chain[0], Period::Day, now),
        1_000 * MILLI
    );
}

#[test]
fn invalid_specs_are_refused() {
    let dup = Limits::new(
        vec![
            (key("a"), LimitSpec::default()),
            (key("a"), LimitSpec::default()),
        ],
        1,
    );
    assert_eq!(
        dup.err().map(|e| e.to_string()),
        Some(r#"key "a" is defined twice"#.to_string())
    );
    let same_name_other_kind = Limits::new(
        vec![
            (key("a"), LimitSpec::default()),
            (team("a"), LimitSpec::default()),
        ],
        1,
    );
    assert!(same_name_other_kind.is_ok());
    assert!(matches!(
        Limits::new(vec![(key("a"), rate(1.0, 0))], 1),
        Err(LimitsError::InvalidRate { .. })
    ));
}
