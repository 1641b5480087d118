//! When each call is due, and from when its latency counts.
//!
//! Closed loop: a call is due the moment the previous one on its connection is answered.
//!
//! Open loop at `rate` calls/s over `C` connections: connection `g` sends its `k`-th call at
//! `t0 + (g + k·C) / rate`, so all connections together send at `rate`, evenly interleaved.
//!
//! Coordinated omission: when the connection is still busy with its previous call at a call's
//! intended time, the send is *late* and the call's latency counts from the intended time, not
//! the actual send — otherwise a server stall would delay, and so hide, the very calls that
//! would have seen it. When the connection was idle and only the timer woke it late (monoio's
//! timer ticks in milliseconds), the latency counts from the actual send: that delay is the
//! load generator's, not the server's.

use std::time::{Duration, Instant};

/// The pacing of one connection.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Calls per second in total (open loop), or `None` (closed loop).
    rate: Option<f64>,
    t0: Instant,
    /// This connection's index and the number of connections.
    index: u64,
    connections: u64,
}

/// How one send relates to its schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendTiming {
    /// Where the call's latency is measured from.
    pub origin: Instant,
    /// The connection was still busy at the intended time.
    pub late: bool,
    /// Actual send − intended send (zero in closed loop).
    pub lag: Duration,
}

impl Schedule {
    pub fn new(rate: Option<f64>, t0: Instant, index: usize, connections: usize) -> Schedule {
        Schedule {
            rate,
            t0,
            index: index as u64,
            connections: connections.max(1) as u64,
        }
    }

    pub fn is_open(&self) -> bool {
        self.rate.is_some()
    }

    /// When call `slot` (0, 1, …) of this connection is due; `now` in closed loop.
    pub fn intended(&self, slot: u64, now: Instant) -> Instant {
        match self.rate {
            Some(rate) => {
                let nth = self.index + slot * self.connections;
                self.t0 + Duration::from_secs_f64(nth as f64 / rate)
            }
            None => now,
        }
    }

    /// The timing of a call intended at `intended`, sent at `send_at`, on a connection that
    /// became free (its previous call ended) at `free_at`.
    pub fn timing(&self, intended: Instant, send_at: Instant, free_at: Instant) -> SendTiming {
        if !self.is_open() {
            return SendTiming {
                origin: send_at,
                late: false,
                lag: Duration::ZERO,
            };
        }
        let late = free_at > intended;
        SendTiming {
            origin: if late { intended } else { send_at },
            late,
            lag: send_at.saturating_duration_since(intended),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn open_loop_interleaves_connections() {
        let t0 = Instant::now();
        // 1000 calls/s over 4 connections: connection 1 at 1 ms, 5 ms, 9 ms, …
        let s = Schedule::new(Some(1000.0), t0, 1, 4);
        assert_eq!(s.intended(0, t0), t0 + MS);
        assert_eq!(s.intended(2, t0), t0 + 9 * MS);
        let later = t0 + 42 * MS;
        assert_eq!(Schedule::new(None, t0, 1, 4).intended(7, later), later);
    }

    #[test]
    fn latency_counts_from_the_intended_time_only_when_the_connection_was_busy() {
        let t0 = Instant::now();
        let s = Schedule::new(Some(100.0), t0, 0, 1);
        let intended = t0 + 10 * MS;
        // Busy until 30 ms: sent 20 ms late, charged from the intended time.
        let busy = s.timing(intended, t0 + 30 * MS, t0 + 30 * MS);
        assert_eq!(
            (busy.origin, busy.late, busy.lag),
            (intended, true, 20 * MS)
        );
        // Idle since 5 ms, the timer woke it 1 ms late: charged from the actual send.
        let idle = s.timing(intended, t0 + 11 * MS, t0 + 5 * MS);
        assert_eq!(
            (idle.origin, idle.late, idle.lag),
            (t0 + 11 * MS, false, MS)
        );
        // Closed loop: always from the send.
        let closed = Schedule::new(None, t0, 0, 1).timing(intended, t0 + 30 * MS, t0 + 30 * MS);
        assert_eq!((closed.origin, closed.late), (t0 + 30 * MS, false));
    }
}
