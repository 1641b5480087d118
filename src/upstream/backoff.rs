//! The pause before reconnecting to (or restarting) a server that went away: exponential from
//! [`BACKOFF_MIN`] to [`BACKOFF_MAX`] with ±20% jitter, so many gateways do not all knock at
//! once, and back to the start after a connection that stayed up for [`HEALTHY_UPTIME`].

use std::time::Duration;

/// First and longest pause.
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A server that stayed up this long is retried from [`BACKOFF_MIN`] again.
pub const HEALTHY_UPTIME: Duration = Duration::from_secs(60);

/// The backoff state of one server.
pub struct Backoff {
    delay: Duration,
    rng: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64);
        Backoff {
            delay: BACKOFF_MIN,
            // Never zero: xorshift would stay at zero.
            rng: (t.unwrap_or(0) ^ (u64::from(std::process::id()) << 32)) | 1,
        }
    }
}

impl Backoff {
    /// The pause before the next attempt, after one that was up (ready) for `up_for`.
    pub fn pause_after(&mut self, up_for: Duration) -> Duration {
        if up_for >= HEALTHY_UPTIME {
            self.delay = BACKOFF_MIN;
        }
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        // ±20% jitter: factor in [0.8, 1.2).
        let factor = 0.8 + (self.rng % 4000) as f64 / 10_000.0;
        let pause = self.delay.mul_f64(factor);
        self.delay = (self.delay * 2).min(BACKOFF_MAX);
        pause
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_with_jitter_and_resets_after_a_healthy_run() {
        let mut b = Backoff::default();
        let within = |pause: Duration, base: Duration| {
            pause >= base.mul_f64(0.8) && pause < base.mul_f64(1.2)
        };
        for base in [1, 2, 4, 8, 16, 30, 30] {
            let pause = b.pause_after(Duration::ZERO);
            assert!(
                within(pause, Duration::from_secs(base)),
                "{pause:?} for {base} s"
            );
        }
        assert!(within(b.pause_after(HEALTHY_UPTIME), BACKOFF_MIN));
    }
}
