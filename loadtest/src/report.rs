//! Turning a run's figures into the report: one JSON object (`--json`) or a short text block.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::plan::Plan;
use crate::stats::{ErrorCounts, Stats};

/// Latency of the successful calls, µs (all zero when none succeeded).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latency {
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p99_9: u64,
    pub max: u64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency {
                min: 0,
                mean: 0.0,
                p50: 0,
                p90: 0,
                p99: 0,
                p99_9: 0,
                max: 0,
            };
        }
        Latency {
            min: h.min(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p99_9: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }

    /// `(name, value)` for each figure, in report order.
    pub fn rows(&self) -> [(&'static str, f64); 7] {
        [
            ("min", self.min as f64),
            ("mean", self.mean),
            ("p50", self.p50 as f64),
            ("p90", self.p90 as f64),
            ("p99", self.p99 as f64),
            ("p99.9", self.p99_9 as f64),
            ("max", self.max as f64),
        ]
    }
}

/// Every figure of one run (or of one side of a comparison, rounds merged).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub url: String,
    /// "closed" or "open" loop.
    pub mode: &'static str,
    /// Target calls/s (open loop).
    pub rate: Option<f64>,
    pub threads: usize,
    pub connections: usize,
    pub io_driver: &'static str,
    pub tools: Vec<String>,
    /// Measured time: from the end of the warm-up to the end of the last measured call.
    pub duration_secs: f64,
    /// Calls attempted in the measured window (`ok` + `errors`).
    pub calls: u64,
    pub ok: u64,
    pub errors: u64,
    pub error_kinds: ErrorCounts,
    /// Successful calls per second.
    pub throughput: f64,
    pub latency_us: Latency,
    /// Open loop: sends whose connection was still busy at their intended time (their
    /// latency counts from that time).
    pub late_sends: u64,
    /// Open loop: the largest delay of a send after its intended time, µs.
    pub max_send_lag_us: u64,
    pub reconnects: u64,
}

impl Summary {
    pub fn new(plan: &Plan, stats: &Stats, measured: Duration) -> Summary {
        let secs = measured.as_secs_f64();
        Summary {
            url: plan.target.display.clone(),
            mode: plan.mode(),
            rate: plan.rate,
            threads: plan.threads,
            connections: plan.connections,
            io_driver: plan.driver.as_str(),
            tools: plan.mix.calls().iter().map(|c| c.tool.clone()).collect(),
            duration_secs: secs,
            calls: stats.calls(),
            ok: stats.ok,
            errors: stats.errors.total(),
            error_kinds: stats.errors.clone(),
            throughput: if secs > 0.0 {
                stats.ok as f64 / secs
            } else {
                0.0
            },
            latency_us: Latency::of(&stats.latency),
            late_sends: stats.late_sends,
            max_send_lag_us: stats.max_send_lag_us,
            reconnects: stats.reconnects,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    pub fn to_text(&self) -> String {
        let l = &self.latency_us;
        let mut out = format!(
            "{}  ({} loop, {} threads, {} connections, {}; tools: {})\n",
            self.url,
            self.mode,
            self.threads,
            self.connections,
            self.io_driver,
            self.tools.join(", ")
        );
        out += &format!("  measured    {:.2} s\n", self.duration_secs);
        out += &format!(
            "  calls       {}  (ok {}, errors {})\n",
            self.calls, self.ok, self.errors
        );
        out += &format!("  throughput  {:.1} calls/s\n", self.throughput);
        out += &format!(
            "  latency µs  mean {:.1}  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}\n",
            l.mean, l.p50, l.p90, l.p99, l.p99_9, l.max
        );
        if self.errors > 0 {
            out += &format!("  errors      {}\n", self.error_kinds.describe());
        }
        if let Some(rate) = self.rate {
            out += &format!(
                "  schedule    {rate} calls/s; late sends {}, max send lag {} µs\n",
                self.late_sends, self.max_send_lag_us
            );
        }
        if self.reconnects > 0 {
            out += &format!("  reconnects  {}\n", self.reconnects);
        }
        out
    }
}
