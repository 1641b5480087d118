//! Real threads, one `CoreLimits` each, hammering shared `Limits`: the bounds hold.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Barrier};

use super::tests::{budget, concurrent, count_until_refused, customer, key, rate, team};
use super::*;

const SEC: u64 = 1_000_000_000;
const T0: Now = Now {
    mono_ns: 1_000 * SEC,
    unix_secs: 1_798_700_000,
};
const THREADS: usize = 4;

/// Runs `body(thread index, its CoreLimits)` on THREADS threads started together; the
/// CoreLimits are dropped (leases returned) before this returns.
fn on_threads<R, F>(limits: &Arc<Limits>, body: F) -> Vec<R>
where
    R: Send + 'static,
    F: Fn(usize, &CoreLimits) -> R + Send + Sync + 'static,
{
    let body = Arc::new(body);
    let barrier = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|i| {
            let (limits, body, barrier) =
                (Arc::clone(limits), Arc::clone(&body), Arc::clone(&barrier));
            std::thread::spawn(move || {
                let core = CoreLimits::new(&limits);
                barrier.wait();
                body(i, &core)
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("a test thread failed"))
        .collect()
}

/// Keys k0..k3 (one per thread, `k` limits each) plus one team and one customer.
fn accounts(k: LimitSpec, t: LimitSpec, c: LimitSpec) -> (Arc<Limits>, Vec<[AccountId; 3]>) {
    let mut list: Vec<_> = (0..THREADS)
        .map(|i| (key(&format!("k{i}")), k.clone()))
        .collect();
    list.push((team("t"), t));
    list.push((customer("c"), c));
    let limits = Limits::new(list, THREADS).expect("valid limits");
    let (t, c) = (AccountId(THREADS as u32), AccountId(THREADS as u32 + 1));
    let chains = (0..THREADS).map(|i| [AccountId(i as u32), t, c]).collect();
    (limits, chains)
}

#[test]
fn at_one_instant_all_threads_together_get_exactly_the_burst() {
    let (limits, chains) = accounts(
        LimitSpec::default(),
        rate(1_000.0, 4_000),
        LimitSpec::default(),
    );
    let admitted = on_threads(&limits, move |i, core| {
        count_until_refused(|_| core.admit_request(&chains[i], T0).is_ok())
    });
    // Leased cells are spent before a core is refused, so nothing is stranded.
    assert_eq!(admitted.iter().sum::<u64>(), 4_000, "{admitted:?}");
}

#[test]
fn with_a_moving_clock_every_window_stays_within_the_rate() {
    let per_second = 100_000.0;
    let burst = 1_000;
    let (limits, chains) = accounts(
        LimitSpec::default(),
        LimitSpec::default(),
        rate(per_second, burst),
    );
    let clock = Arc::new(AtomicU64::new(T0.mono_ns));
    let step = 1_000; // each attempt advances the shared clock by 1 µs: 10× the rate
    let attempts = 25_000;
    let c = Arc::clone(&clock);
    let per_thread = on_threads(&limits, move |i, core| {
        let mut times = Vec::new();
        for _ in 0..attempts {
            let now = Now {
                mono_ns: c.fetch_add(step, Relaxed),
                unix_secs: T0.unix_secs,
            };
            if core.admit_request(&chains[i], now).is_ok() {
                times.push(now.mono_ns);
            }
        }
        times
    });
    let mut times: Vec<u64> = per_thread.into_iter().flatten().collect();
    times.sort_unstable();
    let interval = 10_000; // ns per cell at 100k/s
    let lease_max = u64::from(burst) / (4 * THREADS as u64);
    let lease_max = lease_max.min(32);
    let overshoot = (THREADS as u64 * (lease_max - 1)).min(50_000_000 / interval);
    let span = clock.load(Relaxed) - T0.mono_ns;
    let exact = u64::from(burst) + span / interval;
    let total = times.len() as u64;
    assert!(
        total <= exact,
        "{total} admitted, an exact bucket admits {exact}"
    );
    assert!(
        total >= exact / 2,
        "{total} admitted of {exact}: far too many refusals"
    );
    for i in 0..times.len() {
        for j in i..times.len() {
            let window = times[j] - times[i];
            if window > 5_000_000 {
                break;
            }
            let allowed = u64::from(burst) + window / interval + overshoot;
            assert!(
                (j - i + 1) as u64 <= allowed,
                "{} calls within {window} ns",
                j - i + 1
            );
        }
    }
}

#[test]
fn threads_share_a_budget_exactly() {
    let (limits, chains) = accounts(
        LimitSpec::default(),
        budget(Period::Day, 20_000),
        LimitSpec::default(),
    );
    let team_id = chains[0][1];
    let c = chains.clone();
    let admitted = on_threads(&limits, move |i, core| {
        count_until_refused(|n| core.admit_call(&c[i], MILLI, T0.plus_ns(n * 1_000)).is_ok())
    });
    assert_eq!(admitted.iter().sum::<u64>(), 20_000, "{admitted:?}");
    assert_eq!(
        limits.budget_used_milli(team_id, Period::Day, T0),
        20_000 * MILLI
    );

    // Fractional costs: never over the budget, and short of it by less than a call per core.
    let (limits, chains) = accounts(
        LimitSpec::default(),
        budget(Period::Day, 20_000),
        LimitSpec::default(),
    );
    let admitted = on_threads(&limits, move |i, core| {
        count_until_refused(|n| {
            core.admit_call(&chains[i], 300, T0.plus_ns(n * 1_000))
                .is_ok()
        })
    });
    let spent = admitted.iter().sum::<u64>() * 300;
    assert!(
        spent <= 20_000 * MILLI && spent > 20_000 * MILLI - THREADS as u64 * 300,
        "{spent}"
    );
}

#[test]
fn refunds_stay_exact_under_contention() {
    // The customer is the tightest: everything the key and team took for refused attempts
    // must come back.
    let mut t = rate(1e6, 100_000);
    t.budgets = budget(Period::Day, 1_000_000).budgets;
    let mut c = rate(1.0, 500);
    c.budgets = budget(Period::Day, 700).budgets;
    let (limits, chains) = accounts(rate(1e6, 100_000), t, c);
    let team_id = chains[0][1];
    let ch = chains.clone();
    let counts = on_threads(&limits, move |i, core| {
        let (mut requests, mut calls) = (0u64, 0u64);
        for _ in 0..2_000 {
            requests += u64::from(core.admit_request(&ch[i], T0).is_ok());
            calls += u64::from(core.admit_call(&ch[i], MILLI, T0).is_ok());
        }
        (requests, calls)
    });
    let requests: u64 = counts.iter().map(|c| c.0).sum();
    let calls: u64 = counts.iter().map(|c| c.1).sum();
    assert_eq!((requests, calls), (500, 700));
    // Budget refunds are exact, and dropped cores returned their leases.
    assert_eq!(
        limits.budget_used_milli(team_id, Period::Day, T0),
        700 * MILLI
    );
    // The team's bucket lost the 500 admitted cells plus at most the leases that lapsed
    // with the cores, not the ~7,500 cells of refused attempts.
    let fresh = CoreLimits::new(&limits);
    let left = count_until_refused(|_| fresh.admit_request(&chains[0][1..2], T0).is_ok());
    assert!(
        (100_000 - 500 - THREADS as u64 * 31..=100_000 - 500).contains(&left),
        "{left}"
    );
    assert_eq!(limits.in_flight(team_id), 0);
}

#[test]
fn the_concurrency_cap_holds_under_threads() {
    let (limits, chains) = accounts(LimitSpec::default(), LimitSpec::default(), concurrent(8));
    let held = Arc::new(AtomicI64::new(0));
    let most = Arc::new(AtomicI64::new(0));
    let (h, m) = (Arc::clone(&held), Arc::clone(&most));
    let admitted = on_threads(&limits, move |i, core| {
        let mut mine = std::collections::VecDeque::new();
        let mut n = 0u64;
        for round in 0..20_000u64 {
            if let Ok(permit) = core.admit_call(&chains[i], 0, T0) {
                n += 1;
                // Counted after taking the slot and before giving it back: never above
                // the gauge, so never above the cap.
                m.fetch_max(h.fetch_add(1, Relaxed) + 1, Relaxed);
                mine.push_back(permit);
            }
            if mine.len() > 3 || (round % 3 == 0 && !mine.is_empty()) {
                h.fetch_sub(1, Relaxed);
                mine.pop_front();
            }
        }
        h.fetch_sub(mine.len() as i64, Relaxed);
        n
    });
    assert!(admitted.iter().sum::<u64>() > 1_000);
    let most = most.load(Relaxed);
    assert!((2..=8).contains(&most), "{most} held at once");
    assert_eq!(limits.in_flight(AccountId(THREADS as u32 + 1)), 0);
}
