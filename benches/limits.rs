//! Limit accounting on the hot path (`auth::limits`): `admit_request` + `admit_call` + dropping
//! the permit, through a key → team → customer chain where every account has a rate limit, a
//! budget and a concurrency cap. Simulated time, so nothing is refused unless meant to be.
//! Timed in thread CPU time (see `on_cpu`).

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};

use mcpgate::auth::limits::{
    AccountId, AccountKind, AccountLabel, BudgetSpec, Clock, CoreLimits, LimitSpec, Limits, Now,
    Period, RateSpec, MILLI,
};

const CORES: usize = 8;

fn spec(per_second: f64, burst: u32, period: Period, units: u64, max_concurrent: u32) -> LimitSpec {
    LimitSpec {
        rate: Some(RateSpec { per_second, burst }),
        budgets: vec![BudgetSpec {
            period,
            limit_milli: units * MILLI,
        }],
        max_concurrent: Some(max_concurrent),
    }
}

/// `keys` keys, all in one team of one customer; returns the limits and each key's chain.
fn build(
    keys: usize,
    k: LimitSpec,
    t: LimitSpec,
    c: LimitSpec,
) -> (Arc<Limits>, Vec<[AccountId; 3]>) {
    let mut accounts: Vec<_> = (0..keys)
        .map(|i| {
            (
                AccountLabel::new(AccountKind::Key, &format!("key{i}")),
                k.clone(),
            )
        })
        .collect();
    accounts.push((AccountLabel::new(AccountKind::Team, "platform"), t));
    accounts.push((AccountLabel::new(AccountKind::Customer, "acme"), c));
    let limits = match Limits::new(accounts, CORES) {
        Ok(l) => l,
        Err(e) => panic!("bench setup: {e}"),
    };
    let id = |label: AccountLabel| {
        limits
            .id(&label)
            .unwrap_or_else(|| panic!("bench setup: {label}"))
    };
    let (team, customer) = (
        id(AccountLabel::new(AccountKind::Team, "platform")),
        id(AccountLabel::new(AccountKind::Customer, "acme")),
    );
    let chains = (0..keys)
        .map(|i| {
            [
                id(AccountLabel::new(AccountKind::Key, &format!("key{i}"))),
                team,
                customer,
            ]
        })
        .collect();
    (limits, chains)
}

/// Busy accounts: large bursts and budgets, so cores lease and rarely touch shared state.
fn leased(keys: usize) -> (Arc<Limits>, Vec<[AccountId; 3]>) {
    build(
        keys,
        spec(2_000.0, 4_000, Period::Day, 100_000_000, 64),
        spec(20_000.0, 40_000, Period::Month, 4_000_000_000, 1_000),
        spec(200_000.0, 400_000, Period::Month, 4_000_000_000, 10_000),
    )
}

/// Small limits (bursts under 8 per core, budgets under 64 units per core): every check
/// goes to the shared atomics, the exact path.
fn exact() -> (Arc<Limits>, Vec<[AccountId; 3]>) {
    build(
        1,
        spec(10.0, 10, Period::Minute, 500, 64),
        spec(100.0, 20, Period::Minute, 500, 64),
        spec(100.0, 20, Period::Minute, 500, 64),
    )
}

/// Limits nothing here ever reaches (1e9 calls/s, 4 billion units a month), for runs whose
/// threads each keep their own simulated clock.
fn unreachable(keys: usize, caps: bool) -> (Arc<Limits>, Vec<[AccountId; 3]>) {
    let mut s = spec(1e9, u32::MAX, Period::Month, 4_000_000_000, 10_000);
    if !caps {
        s.max_concurrent = None;
    }
    build(keys, s.clone(), s.clone(), s)
}

fn start() -> Now {
    Now {
        mono_ns: 1_000_000_000_000,
        unix_secs: 1_798_700_000,
    }
}

/// One request carrying one call: what the gateway does per `tools/call`.
fn request_and_call(core: &CoreLimits, chain: &[AccountId], now: Now) {
    if let Err(r) = core.admit_request(chain, now) {
        panic!("bench refused a request: {r}");
    }
    match core.admit_call(chain, MILLI, now) {
        Ok(permit) => drop(black_box(permit)),
        Err(r) => panic!("bench refused a call: {r}"),
    }
}

fn single_core(c: &mut Criterion) {
    let mut g = c.benchmark_group("limits");

    let (limits, chains) = leased(1);
    let core = CoreLimits::new(&limits);
    let mut now = start();
    g.bench_function("request+call, 3-account chain, busy (leased)", |b| {
        b.iter_custom(|iters| {
            on_cpu(iters, || {
                now = now.plus_ns(1_000_000); // 1000 calls/s: half the key's rate
                request_and_call(&core, black_box(&chains[0]), now);
            })
        })
    });

    let (limits, chains) = leased(1);
    let core = CoreLimits::new(&limits);
    let mut now = start();
    g.bench_function("request only (rate limits), busy", |b| {
        b.iter_custom(|iters| {
            on_cpu(iters, || {
                now = now.plus_ns(1_000_000);
                black_box(core.admit_request(black_box(&chains[0]), now)).is_ok()
            })
        })
    });
    let mut now = start();
    g.bench_function("call only (budgets + slots, permit dropped), busy", |b| {
        b.iter_custom(|iters| {
            on_cpu(iters, || {
                now = now.plus_ns(1_000_000);
                drop(black_box(core.admit_call(
                    black_box(&chains[0]),
                    MILLI,
                    now,
                )))
            })
        })
    });

    let (limits, chains) = exact();
    let core = CoreLimits::new(&limits);
    let mut now = start();
    g.bench_function("request+call, 3-account chain, exact (no leases)", |b| {
        b.iter_custom(|iters| {
            on_cpu(iters, || {
                now = now.plus_ns(150_000_000); // 400 calls a minute, under every limit
                request_and_call(&core, black_box(&chains[0]), now);
            })
        })
    });

    let (limits, chains) = leased(1);
    let core = CoreLimits::new(&limits);
    let now = start();
    while core.admit_request(&chains[0], now).is_ok() {}
    g.bench_function("request refused by the key's rate limit", |b| {
        b.iter_custom(|iters| {
            on_cpu(iters, || {
                core.admit_request(black_box(&chains[0]), now).is_err()
            })
        })
    });

    g.bench_function("Clock::now", |b| {
        b.iter_custom(|iters| on_cpu(iters, Clock::now))
    });
    g.finish();
}

/// Two cores, each with its own key, sharing the team and customer: the cost of the shared
/// cache lines moving between cores. With and without concurrency caps, whose gauges are
/// touched on every call. Timed in thread CPU time, so that other load on the machine
/// (which preempts the threads) does not count; cache-line transfers still do.
fn two_cores(c: &mut Criterion) {
    let mut g = c.benchmark_group("limits");
    g.measurement_time(Duration::from_secs(5));
    for caps in [true, false] {
        let name = if caps {
            "request+call, 2 cores sharing team and customer, per call"
        } else {
            "request+call, 2 cores sharing team and customer, no concurrency caps, per call"
        };
        g.bench_function(name, |b| b.iter_custom(|iters| run_two_cores(iters, caps)));
    }
    g.finish();
}

/// Mean time per call of two threads each making `iters` calls at once.
fn run_two_cores(iters: u64, caps: bool) -> Duration {
    let (limits, chains) = unreachable(2, caps);
    let barrier = Arc::new(Barrier::new(2));
    let threads: Vec<_> = (0..2)
        .map(|i| {
            let (limits, chain, barrier) = (Arc::clone(&limits), chains[i], Arc::clone(&barrier));
            std::thread::spawn(move || {
                let core = CoreLimits::new(&limits);
                let mut now = start();
                barrier.wait();
                let t = thread_cpu_time();
                for _ in 0..iters {
                    now = now.plus_ns(1_000);
                    request_and_call(&core, &chain, now);
                }
                thread_cpu_time().saturating_sub(t)
            })
        })
        .collect();
    let times: Vec<Duration> = threads
        .into_iter()
        .map(|t| t.join().unwrap_or_else(|_| panic!("bench thread")))
        .collect();
    times.iter().sum::<Duration>() / 2
}

/// Runs `f` `iters` times; returns the CPU time this thread spent. Other load on the machine
/// preempts the thread but is not counted, which wall time on a shared 2-core box would.
fn on_cpu<R>(iters: u64, mut f: impl FnMut() -> R) -> Duration {
    let t = thread_cpu_time();
    for _ in 0..iters {
        black_box(f());
    }
    thread_cpu_time().saturating_sub(t)
}

/// CPU time this thread has run.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

criterion_group!(benches, single_core, two_cores);
criterion_main!(benches);
