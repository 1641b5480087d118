use super::*;
use crate::auth::limits::tests::count_until_refused;

const SEC: u64 = 1_000_000_000;
const MS: u64 = 1_000_000;
/// An arbitrary start, far from 0 so nothing relies on a zero clock.
const T0: u64 = 1_000 * SEC;

fn params(per_second: f64, burst: u32, cores: usize) -> RateParams {
    RateParams::new(RateSpec { per_second, burst }, cores)
}

struct Core(Cell<RateLease>);

impl Core {
    fn new() -> Core {
        Core(Cell::new(RateLease::default()))
    }
    fn admit(&self, p: &RateParams, tat: &AtomicU64, now: u64) -> Result<RateTaken, Duration> {
        admit(p, tat, &self.0, now)
    }
    /// Admits until refused at a fixed instant; returns how many got through.
    fn drain(&self, p: &RateParams, tat: &AtomicU64, now: u64) -> u64 {
        count_until_refused(|_| self.admit(p, tat, now).is_ok())
    }
}

#[test]
fn burst_then_refusal_with_retry_after() {
    let p = params(1.0, 3, 1);
    let tat = AtomicU64::new(0);
    let core = Core::new();
    for _ in 0..3 {
        assert!(core.admit(&p, &tat, T0).is_ok());
    }
    assert_eq!(core.admit(&p, &tat, T0).err(), Some(Duration::from_secs(1)));
    assert_eq!(
        core.admit(&p, &tat, T0 + 400 * MS).err(),
        Some(Duration::from_millis(600))
    );
    assert!(core.admit(&p, &tat, T0 + SEC).is_ok());
    assert_eq!(
        core.admit(&p, &tat, T0 + SEC).err(),
        Some(Duration::from_secs(1))
    );
}

#[test]
fn refills_at_the_sustained_rate() {
    let p = params(10.0, 5, 1);
    let tat = AtomicU64::new(0);
    let core = Core::new();
    assert_eq!(core.drain(&p, &tat, T0), 5);
    assert_eq!(core.drain(&p, &tat, T0 + 300 * MS), 3);
    assert_eq!(core.drain(&p, &tat, T0 + 350 * MS), 0);
    // A long pause refills to the burst, never beyond.
    assert_eq!(core.drain(&p, &tat, T0 + 3_600 * SEC), 5);
}

#[test]
fn fractional_rates() {
    let p = params(0.5, 1, 1);
    assert_eq!(p.interval_ns(), 2 * SEC);
    let tat = AtomicU64::new(0);
    let core = Core::new();
    assert!(core.admit(&p, &tat, T0).is_ok());
    assert_eq!(
        core.admit(&p, &tat, T0 + SEC).err(),
        Some(Duration::from_secs(1))
    );
    assert!(core.admit(&p, &tat, T0 + 2 * SEC).is_ok());
}

#[test]
fn small_bursts_are_exact_across_cores() {
    let p = params(2.0, 7, 2);
    assert_eq!(p.lease_max(), 1);
    let tat = AtomicU64::new(0);
    let (a, b) = (Core::new(), Core::new());
    let mut admitted = 0;
    for i in 0..20u64 {
        let core = if i % 2 == 0 { &a } else { &b };
        admitted += u32::from(core.admit(&p, &tat, T0 + i).is_ok());
    }
    assert_eq!(admitted, 7);
    // Exactly one more per half second, whichever core asks.
    assert!(b.admit(&p, &tat, T0 + 500 * MS).is_ok());
    assert!(a.admit(&p, &tat, T0 + 500 * MS).is_err());
    assert!(a.admit(&p, &tat, T0 + SEC).is_ok());
    assert!(b.admit(&p, &tat, T0 + SEC).is_err());
}

#[test]
fn a_busy_core_leases_and_touches_the_shared_bucket_rarely() {
    let p = params(1e6, 10_000, 2);
    assert_eq!(p.lease_max(), 32);
    let tat = AtomicU64::new(0);
    let core = Core::new();
    let mut touches = 0;
    let mut last = tat.load(Relaxed);
    for i in 0..10_000u64 {
        assert!(core.admit(&p, &tat, T0 + i * 1_000).is_ok());
        let now = tat.load(Relaxed);
        touches += u32::from(now != last);
        last = now;
    }
    assert!(touches < 10_000 / 32 + 10, "{touches} shared updates");
}

#[test]
fn a_quiet_core_takes_one_cell_at_a_time() {
    let p = params(1_000.0, 10_000, 2);
    let tat = AtomicU64::new(0);
    let core = Core::new();
    for i in 0..10u64 {
        // One call per lease lifetime: nothing to gain from leasing, so it leases 1.
        assert!(matches!(
            core.admit(&p, &tat, T0 + i * LEASE_TTL_NS),
            Ok(RateTaken::Fresh { got: 1, .. })
        ));
    }
}

#[test]
fn all_cores_together_never_exceed_the_burst_at_one_instant() {
    let p = params(1_000.0, 1_000, 4);
    assert!(p.lease_max() > 1);
    let tat = AtomicU64::new(0);
    let cores: Vec<Core> = (0..4).map(|_| Core::new()).collect();
    // Warm every core up so each holds a lease, at staggered instants.
    for (i, c) in cores.iter().enumerate() {
        for k in 0..50 {
            let _ = c.admit(&p, &tat, T0 + (i as u64 * 50 + k) * 1_000);
        }
    }
    // Round robin at one instant until all refuse: exactly what the bucket held is spent.
    let now = T0 + MS;
    let mut total = 200;
    count_until_refused(|_| {
        let before = total;
        for c in &cores {
            total += u64::from(c.admit(&p, &tat, now).is_ok());
        }
        total > before
    });
    // 200 in the first 0.2 ms + refill of at most 1 cell: the burst bounds everything.
    assert!(total <= 1_001, "{total}");
    assert!(total >= 1_000, "{total}");
}

#[test]
fn leases_cannot_be_spent_late() {
    let p = params(10.0, 1_000, 2);
    let tat = AtomicU64::new(0);
    let (a, b) = (Core::new(), Core::new());
    for i in 0..100 {
        assert!(a.admit(&p, &tat, T0 + i * 1_000).is_ok());
    }
    assert!(
        a.0.get().cells > 0,
        "the test needs a lease with cells left"
    );
    // An hour later the bucket is full again; the old lease must not add to it.
    let later = T0 + 3_600 * SEC;
    let total = a.drain(&p, &tat, later) + b.drain(&p, &tat, later);
    assert_eq!(total, 1_000);
}

/// Simulated traffic on 3 cores at a varying pace: in every window of admitted calls, the
/// count stays within burst + window · rate + the documented lease overshoot.
#[test]
fn overshoot_stays_within_the_documented_bound() {
    let cores_n = 3;
    let p = params(1_000.0, 240, cores_n);
    let n = u64::from(p.lease_max());
    assert!(n > 1);
    let bound = (cores_n as u64 * (n - 1)).min(LEASE_TTL_NS.div_ceil(p.interval_ns()));
    let tat = AtomicU64::new(0);
    let cores: Vec<Core> = (0..cores_n).map(|_| Core::new()).collect();
    let mut admitted = Vec::new();
    let mut now = T0;
    let mut x: u64 = 12_345;
    for _ in 0..40_000 {
        // xorshift: deterministic, uneven gaps (mostly short, sometimes long pauses).
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        now += match x % 100 {
            0 => 200 * MS,
            1..=9 => 5 * MS,
            _ => 50_000 + x % 400_000,
        };
        if cores[(x >> 8) as usize % cores_n]
            .admit(&p, &tat, now)
            .is_ok()
        {
            admitted.push(now);
        }
    }
    assert!(admitted.len() > 10_000);
    for i in 0..admitted.len() {
        for j in i..admitted.len() {
            let window = admitted[j] - admitted[i];
            let allowed = 240 + window / p.interval_ns() + bound;
            assert!(
                (j - i + 1) as u64 <= allowed,
                "{} calls in {window} ns",
                j - i + 1
            );
            if window > 2 * SEC {
                break;
            }
        }
    }
}

#[test]
fn undo_gives_back_exactly_what_was_taken() {
    let p = params(1.0, 100, 1);
    let tat = AtomicU64::new(0);
    let core = Core::new();
    let first = core.admit(&p, &tat, T0).expect("a full bucket admits");
    let after_first = (core.0.get(), tat.load(Relaxed));
    let second = core.admit(&p, &tat, T0 + 1).expect("a full bucket admits");
    assert!(
        matches!(second, RateTaken::Fresh { got: 25, .. }),
        "{second:?}"
    );
    let after_second = (core.0.get(), tat.load(Relaxed));
    let third = core.admit(&p, &tat, T0 + 2).expect("the lease admits");
    assert!(matches!(third, RateTaken::Lease));
    undo(&p, &tat, &core.0, third);
    assert_eq!((core.0.get(), tat.load(Relaxed)), after_second);
    undo(&p, &tat, &core.0, second);
    assert_eq!((core.0.get(), tat.load(Relaxed)), after_first);
    undo(&p, &tat, &core.0, first);
    assert_eq!(core.0.get(), RateLease::default());
    assert_eq!(tat.load(Relaxed), T0, "the bucket is full again");
    assert_eq!(core.drain(&p, &tat, T0 + 3), 100);
}

#[test]
fn a_shrunk_bucket_does_not_carry_a_long_debt() {
    let tat = AtomicU64::new(0);
    let big = params(1.0, 100, 1);
    assert_eq!(Core::new().drain(&big, &tat, T0), 100);
    // After a reload to burst 2 the debt of 100 s is capped at the new bucket.
    let small = params(1.0, 2, 1);
    assert_eq!(
        Core::new().admit(&small, &tat, T0).err(),
        Some(Duration::from_secs(1))
    );
}

#[test]
fn refusals_are_remembered_locally() {
    let p = params(1.0, 1, 1);
    let tat = AtomicU64::new(0);
    let core = Core::new();
    assert!(core.admit(&p, &tat, T0).is_ok());
    assert!(core.admit(&p, &tat, T0).is_err());
    let stored = tat.load(Relaxed);
    // Someone else's state change is not seen until the remembered instant: no shared read.
    tat.store(0, Relaxed);
    assert_eq!(
        core.admit(&p, &tat, T0 + 500 * MS).err(),
        Some(Duration::from_millis(500))
    );
    tat.store(stored, Relaxed);
    assert!(core.admit(&p, &tat, T0 + SEC).is_ok());
}
