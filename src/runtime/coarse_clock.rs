//! Clock readings for decisions counted in seconds (a session's expiry, a pooled connection's
//! idle age), taken from the kernel's tick-granular clocks. Through the vDSO those are a copy
//! of the last tick's time, a few nanoseconds; a precise reading reads the TSC and, under a
//! hypervisor, costs tens of nanoseconds, and a call made nine of them.
//!
//! Owns: the coarse readings. Must never: be used for anything measured in microseconds or
//! milliseconds (a reading lags the true time by up to one tick, 1–10 ms), nor be mixed with
//! `Instant`.

/// Reads `clock` as a duration since its origin; zero if the kernel refuses it (it does not,
/// for the clocks used here, on any Linux since 2.6.32).
fn read(clock: libc::clockid_t) -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec this frame owns; clock_gettime writes only it.
    let ok = unsafe { libc::clock_gettime(clock, &mut ts) } == 0;
    match (ok, u64::try_from(ts.tv_sec), u32::try_from(ts.tv_nsec)) {
        (true, Ok(secs), Ok(nanos)) => std::time::Duration::new(secs, nanos),
        _ => std::time::Duration::ZERO,
    }
}

/// Milliseconds on the monotonic clock (since boot), to the last tick.
pub fn monotonic_ms() -> u64 {
    u64::try_from(read(libc::CLOCK_MONOTONIC_COARSE).as_millis()).unwrap_or(u64::MAX)
}

/// Seconds since the Unix epoch (UTC), to the last tick.
pub fn unix_secs() -> u64 {
    read(libc::CLOCK_REALTIME_COARSE).as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{SystemTime, UNIX_EPOCH};

    #[test]
    fn coarse_readings_agree_with_the_precise_clocks() {
        let precise = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let coarse = unix_secs();
        // One tick apart at most, which can cross one second boundary.
        assert!(coarse.abs_diff(precise) <= 1, "{coarse} vs {precise}");
        let a = monotonic_ms();
        let b = monotonic_ms();
        assert!(a > 0 && b >= a, "{a} then {b}");
    }
}
