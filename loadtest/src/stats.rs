//! What a run measured: a latency histogram of the successful calls and every failure counted
//! by kind. One `Stats` per thread, merged at the end (no shared counters on the hot path).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency the histogram tells apart: one hour, in µs. Longer ones are clamped to it.
const MAX_TRACKED_US: u64 = 3_600_000_000;
/// Three significant digits: 0.1% resolution at every magnitude.
const SIGNIFICANT_DIGITS: u8 = 3;

/// Why one call (or the attempt to make it) failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// TCP connect failed (or timed out).
    Connect,
    /// `initialize` or `notifications/initialized` failed.
    Handshake,
    /// I/O error or the peer closed the connection mid-reply.
    Transport,
    /// A reply that is not a readable JSON-RPC response to the request.
    Protocol,
    /// No response within `--timeout-ms`.
    Timeout,
    /// A non-2xx HTTP status.
    Http(u16),
    /// A JSON-RPC error response, by code.
    JsonRpc(i64),
    /// A tool result with `isError: true`.
    Tool,
}

/// Failures by kind; HTTP statuses and JSON-RPC codes by value.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ErrorCounts {
    pub connect: u64,
    pub handshake: u64,
    pub transport: u64,
    pub protocol: u64,
    pub timeout: u64,
    pub tool: u64,
    pub http: BTreeMap<u16, u64>,
    pub jsonrpc: BTreeMap<i64, u64>,
}

impl ErrorCounts {
    pub fn add(&mut self, kind: ErrorKind) {
        match kind {
            ErrorKind::Connect => self.connect += 1,
            ErrorKind::Handshake => self.handshake += 1,
            ErrorKind::Transport => self.transport += 1,
            ErrorKind::Protocol => self.protocol += 1,
            ErrorKind::Timeout => self.timeout += 1,
            ErrorKind::Tool => self.tool += 1,
            ErrorKind::Http(code) => *self.http.entry(code).or_default() += 1,
            ErrorKind::JsonRpc(code) => *self.jsonrpc.entry(code).or_default() += 1,
        }
    }

    pub fn total(&self) -> u64 {
        self.connect
            + self.handshake
            + self.transport
            + self.protocol
            + self.timeout
            + self.tool
            + self.http.values().sum::<u64>()
            + self.jsonrpc.values().sum::<u64>()
    }

    pub fn merge(&mut self, other: &ErrorCounts) {
        self.connect += other.connect;
        self.handshake += other.handshake;
        self.transport += other.transport;
        self.protocol += other.protocol;
        self.timeout += other.timeout;
        self.tool += other.tool;
        for (code, n) in &other.http {
            *self.http.entry(*code).or_default() += n;
        }
        for (code, n) in &other.jsonrpc {
            *self.jsonrpc.entry(*code).or_default() += n;
        }
    }

    /// One line, e.g. `connect 3, http 503 ×2, jsonrpc -32602 ×10`; empty when none.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (name, n) in [
            ("connect", self.connect),
            ("handshake", self.handshake),
            ("transport", self.transport),
            ("protocol", self.protocol),
            ("timeout", self.timeout),
            ("tool error", self.tool),
        ] {
            if n > 0 {
                parts.push(format!("{name} ×{n}"));
            }
        }
        for (code, n) in &self.http {
            parts.push(format!("http {code} ×{n}"));
        }
        for (code, n) in &self.jsonrpc {
            parts.push(format!("jsonrpc {code} ×{n}"));
        }
        parts.join(", ")
    }
}

/// Everything one thread (or, merged, a whole run) measured inside the measurement window.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Latency of successful calls, µs.
    pub latency: Histogram<u64>,
    pub ok: u64,
    pub errors: ErrorCounts,
    /// Open loop: sends whose connection was still busy at their intended time.
    pub late_sends: u64,
    /// Open loop: the largest delay between a send's intended and actual time, µs.
    pub max_send_lag_us: u64,
    /// Connections opened again after one broke (or the server closed it).
    pub reconnects: u64,
    /// When the last measured call ended.
    pub last_done: Option<Instant>,
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

impl Stats {
    pub fn new() -> Stats {
        Stats {
            latency: new_histogram(),
            ok: 0,
            errors: ErrorCounts::default(),
            late_sends: 0,
            max_send_lag_us: 0,
            reconnects: 0,
            last_done: None,
        }
    }

    /// Calls attempted: successes plus failures.
    pub fn calls(&self) -> u64 {
        self.ok + self.errors.total()
    }

    pub fn record_ok(&mut self, latency: Duration, done: Instant) {
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        self.latency.saturating_record(us);
        self.ok += 1;
        self.finished_at(done);
    }

    pub fn record_error(&mut self, kind: ErrorKind, done: Instant) {
        self.errors.add(kind);
        self.finished_at(done);
    }

    pub fn record_send_lag(&mut self, lag: Duration, late: bool) {
        let us = u64::try_from(lag.as_micros()).unwrap_or(u64::MAX);
        self.max_send_lag_us = self.max_send_lag_us.max(us);
        if late {
            self.late_sends += 1;
        }
    }

    fn finished_at(&mut self, done: Instant) {
        if self.last_done.is_none_or(|t| t < done) {
            self.last_done = Some(done);
        }
    }

    pub fn merge(&mut self, other: &Stats) {
        // Both histograms share bounds, so adding cannot fail; were it to, the counts stay.
        let _ = self.latency.add(&other.latency);
        self.ok += other.ok;
        self.errors.merge(&other.errors);
        self.late_sends += other.late_sends;
        self.max_send_lag_us = self.max_send_lag_us.max(other.max_send_lag_us);
        self.reconnects += other.reconnects;
        if let Some(done) = other.last_done {
            self.finished_at(done);
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_TRACKED_US, SIGNIFICANT_DIGITS)
        .expect("constant histogram bounds are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_merges() {
        let now = Instant::now();
        let mut a = Stats::new();
        a.record_ok(Duration::from_micros(100), now);
        a.record_error(ErrorKind::Http(503), now);
        a.record_error(ErrorKind::JsonRpc(-32602), now);
        let mut b = Stats::new();
        b.record_ok(Duration::from_micros(300), now + Duration::from_millis(1));
        b.record_error(ErrorKind::Http(503), now);
        b.record_error(ErrorKind::Timeout, now);
        a.merge(&b);
        assert_eq!((a.ok, a.errors.total(), a.calls()), (2, 4, 6));
        assert_eq!(a.errors.http[&503], 2);
        assert_eq!(a.latency.len(), 2);
        assert_eq!(a.last_done, Some(now + Duration::from_millis(1)));
        assert_eq!(
            a.errors.describe(),
            "timeout ×1, http 503 ×2, jsonrpc -32602 ×1"
        );
    }
}
