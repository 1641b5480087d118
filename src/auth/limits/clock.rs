//! The one clock reading a request is judged by.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// One reading of the clock, taken once per request by the caller and passed to every check:
/// a request is judged at one instant, and tests drive time by hand instead of sleeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic nanoseconds since a process-wide origin. Drives rate limits; must come from
    /// the same origin on every core (as [`Clock::now`] does).
    pub mono_ns: u64,
    /// Wall-clock seconds since the Unix epoch (UTC). Decides budget periods.
    pub unix_secs: u64,
}

impl Now {
    /// A reading `ns` nanoseconds later on both clocks (whole seconds for the wall clock).
    pub fn plus_ns(self, ns: u64) -> Now {
        let mono_ns = self.mono_ns.saturating_add(ns);
        // Wall seconds advance when the monotonic clock crosses a second boundary, so that
        // simulated time keeps both clocks in step.
        let secs = mono_ns / 1_000_000_000 - self.mono_ns / 1_000_000_000;
        Now {
            mono_ns,
            unix_secs: self.unix_secs.saturating_add(secs),
        }
    }
}

/// The production clock.
pub struct Clock;

impl Clock {
    /// Reads both clocks (two vDSO calls, a few tens of ns).
    pub fn now() -> Now {
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        let origin = *ORIGIN.get_or_init(Instant::now);
        let mono_ns = u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
        // A wall clock before 1970 is a broken host; period 0 is as good an answer as any.
        let unix_secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Now { mono_ns, unix_secs }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_is_monotonic_and_near_the_wall_clock() {
        let a = Clock::now();
        let b = Clock::now();
        assert!(b.mono_ns >= a.mono_ns);
        assert!(a.unix_secs > 1_700_000_000, "{a:?}");
    }

    #[test]
    fn plus_ns_keeps_both_clocks_in_step() {
        let t = Now {
            mono_ns: 1_900_000_000,
            unix_secs: 100,
        };
        assert_eq!(
            t.plus_ns(50_000_000),
            Now {
                mono_ns: 1_950_000_000,
                unix_secs: 100
            }
        );
        assert_eq!(
            t.plus_ns(100_000_000),
            Now {
                mono_ns: 2_000_000_000,
                unix_secs: 101
            }
        );
        assert_eq!(t.plus_ns(3_600_000_000_000).unix_secs, 3_700);
    }
}
