//! Per-call figures: requests by (method, server, tool, outcome), client-facing and upstream
//! latency per server (HDR histograms, microseconds), and calls in flight per server.
//!
//! Each core keeps its own tables (keyed by the addresses of the shared names it was given,
//! so a call hashes four words and copies no string) and moves them into the hub's when
//! [`super::metrics::CoreMetrics`] merges. The hub keys by name, so names that a reload
//! rebuilt still add up. Must never: take the hub's lock per call, or use a tool label that a
//! client chose (URIs and unknown names are not labels: their count is unbounded).

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use hdrhistogram::Histogram;

use crate::audit::record::{Outcome, RoutedMethod};

/// Latencies above this (in microseconds: one hour) are clamped.
const MAX_MICROS: u64 = 3_600_000_000;

/// Upper bounds (µs) of the buckets a snapshot reports, for Prometheus-style histograms.
pub const BUCKETS_MICROS: [u64; 18] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000, 30_000_000, 60_000_000,
];

fn new_histogram() -> Histogram<u64> {
    // Two significant digits over 1 µs..1 h: about 25 KiB. The bounds are constants (covered
    // by the tests), so construction cannot fail at run time.
    Histogram::new_with_bounds(1, MAX_MICROS, 2).expect("constant histogram bounds are valid")
}

/// One finished request, as metrics see it.
pub struct CallFigures<'a> {
    pub method: RoutedMethod,
    pub server: Option<&'a Arc<str>>,
    /// A catalog item's name (never a URI or a name the client made up).
    pub tool: Option<&'a Arc<str>>,
    pub outcome: Outcome,
    pub latency_us: u64,
    pub upstream_us: Option<u64>,
}

/// A histogram and the exact sum of what it holds.
struct Timing {
    histogram: Histogram<u64>,
    sum: u64,
}

impl Timing {
    fn new() -> Timing {
        Timing {
            histogram: new_histogram(),
            sum: 0,
        }
    }

    fn record(&mut self, micros: u64) {
        let _ = self.histogram.record(micros.clamp(1, MAX_MICROS));
        self.sum = self.sum.saturating_add(micros);
    }

    fn add(&mut self, other: &Timing) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.histogram.add(&other.histogram);
        self.sum = self.sum.saturating_add(other.sum);
    }

    fn reset(&mut self) {
        self.histogram.reset();
        self.sum = 0;
    }

    fn snapshot(&self) -> Latency {
        let h = &self.histogram;
        Latency {
            count: h.len(),
            sum_micros: self.sum,
            buckets: BUCKETS_MICROS
                .iter()
                .map(|&le| Bucket {
                    le_micros: le,
                    cumulative: if h.is_empty() {
                        0
                    } else {
                        h.count_between(1, le)
                    },
                })
                .collect(),
            p50_micros: h.value_at_quantile(0.5),
            p90_micros: h.value_at_quantile(0.9),
            p99_micros: h.value_at_quantile(0.99),
            max_micros: h.max(),
        }
    }
}

/// What one core knows of one server.
struct CoreServer {
    name: Arc<str>,
    client: Timing,
    upstream: Timing,
    in_flight: i64,
    /// Recorded anything since the last merge.
    touched: bool,
}

/// A hasher for keys that are a few machine words (addresses, small enums) no client chooses:
/// a multiply per word instead of SipHash, since a call looks up these tables several times.
#[derive(Default, Clone, Copy)]
struct WordHasher(u64);

impl WordHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        bytes.iter().for_each(|b| self.add(u64::from(*b)));
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn write_isize(&mut self, n: isize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        // Addresses end in zero bits, which the multiply keeps low: fold the high ones in.
        self.0 ^ (self.0 >> 29)
    }
}

type WordMap<K, V> = HashMap<K, V, BuildHasherDefault<WordHasher>>;

/// Identity of a shared name: its address (0: none).
fn addr(name: Option<&Arc<str>>) -> usize {
    name.map_or(0, |n| Arc::as_ptr(n) as *const u8 as usize)
}

type CountKey = (RoutedMethod, Outcome, usize, usize);

/// The server and tool a count is for, and the count.
type Counted = (Option<Arc<str>>, Option<Arc<str>>, u64);

/// One core's figures since its last merge (and its calls in flight, which persist).
#[derive(Default)]
pub(super) struct CoreCalls {
    /// The names are held so their addresses cannot be reused while they key the table.
    counts: WordMap<CountKey, Counted>,
    servers: WordMap<usize, CoreServer>,
}

impl CoreCalls {
    fn server(&mut self, name: &Arc<str>) -> &mut CoreServer {
        self.servers
            .entry(addr(Some(name)))
            .or_insert_with(|| CoreServer {
                name: name.clone(),
                client: Timing::new(),
                upstream: Timing::new(),
                in_flight: 0,
                touched: false,
            })
    }

    pub(super) fn record(&mut self, call: &CallFigures<'_>) {
        let key = (
            call.method,
            call.outcome,
            addr(call.server),
            addr(call.tool),
        );
        self.counts
            .entry(key)
            .or_insert_with(|| (call.server.cloned(), call.tool.cloned(), 0))
            .2 += 1;
        if let Some(server) = call.server {
            let s = self.server(server);
            s.touched = true;
            s.client.record(call.latency_us);
            if let Some(up) = call.upstream_us {
                s.upstream.record(up);
            }
        }
    }

    /// A call went upstream (`+1`) or came back (`-1`).
    pub(super) fn in_flight(&mut self, server: &Arc<str>, delta: i64) {
        let s = self.server(server);
        s.in_flight += delta;
        s.touched = true;
    }

    /// Whether anything is waiting to be merged.
    pub(super) fn dirty(&self) -> bool {
        !self.counts.is_empty() || self.servers.values().any(|s| s.touched)
    }
}

/// The merged figures of every core.
#[derive(Default)]
pub(super) struct HubCalls {
    counts: BTreeMap<(RoutedMethod, Outcome, Arc<str>, Arc<str>), u64>,
    /// Per server name: client-facing and upstream timings.
    servers: BTreeMap<Arc<str>, (Timing, Timing)>,
    /// Per core (by index): its calls in flight per server, as of its last merge.
    in_flight: Vec<BTreeMap<Arc<str>, i64>>,
}

impl HubCalls {
    /// Moves `core`'s figures in (its counts and histograms restart from zero).
    pub(super) fn merge(&mut self, core_index: usize, core: &mut CoreCalls) {
        let empty: Arc<str> = Arc::from("");
        for ((method, outcome, _, _), (server, tool, n)) in core.counts.drain() {
            let server = server.unwrap_or_else(|| empty.clone());
            let tool = tool.unwrap_or_else(|| empty.clone());
            *self
                .counts
                .entry((method, outcome, server, tool))
                .or_insert(0) += n;
        }
        if self.in_flight.len() <= core_index {
            self.in_flight.resize_with(core_index + 1, BTreeMap::new);
        }
        let gauges = &mut self.in_flight[core_index];
        gauges.clear();
        core.servers.retain(|_, s| {
            if s.touched {
                let (client, upstream) = self
                    .servers
                    .entry(s.name.clone())
                    .or_insert_with(|| (Timing::new(), Timing::new()));
                client.add(&s.client);
                upstream.add(&s.upstream);
                s.client.reset();
                s.upstream.reset();
            }
            if s.in_flight != 0 {
                gauges.insert(s.name.clone(), s.in_flight);
            }
            // An idle server's tables go (a reload may have removed it); one with calls in
            // flight, or recorded into just now, stays.
            let keep = s.touched || s.in_flight != 0;
            s.touched = false;
            keep
        });
    }

    pub(super) fn snapshot(&self) -> (Vec<RequestCount>, Vec<ServerLatency>, Vec<ServerGauge>) {
        let requests = self
            .counts
            .iter()
            .map(|((method, outcome, server, tool), &count)| RequestCount {
                method: method.as_str(),
                server: server.to_string(),
                tool: tool.to_string(),
                outcome: outcome.as_str(),
                count,
            })
            .collect();
        let latency = self
            .servers
            .iter()
            .map(|(server, (client, upstream))| ServerLatency {
                server: server.to_string(),
                client: client.snapshot(),
                upstream: upstream.snapshot(),
            })
            .collect();
        let mut in_flight: BTreeMap<&Arc<str>, i64> = BTreeMap::new();
        for core in &self.in_flight {
            for (server, n) in core {
                *in_flight.entry(server).or_insert(0) += n;
            }
        }
        // Every server that had latency or calls in flight gets a gauge, zero included.
        for server in self.servers.keys() {
            in_flight.entry(server).or_insert(0);
        }
        let in_flight = in_flight
            .into_iter()
            .map(|(server, in_flight)| ServerGauge {
                server: server.to_string(),
                in_flight,
            })
            .collect();
        (requests, latency, in_flight)
    }
}

/// Requests with one (method, server, tool, outcome). `server` and `tool` are empty when the
/// request named none the gateway knows (an unknown name; a URI, which is never a label).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestCount {
    pub method: &'static str,
    pub server: String,
    pub tool: String,
    pub outcome: &'static str,
    pub count: u64,
}

/// One latency histogram: Prometheus-style cumulative buckets (the `+Inf` bucket is `count`)
/// and a few quantiles, all in microseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Latency {
    pub count: u64,
    pub sum_micros: u64,
    pub buckets: Vec<Bucket>,
    pub p50_micros: u64,
    pub p90_micros: u64,
    pub p99_micros: u64,
    pub max_micros: u64,
}

/// Requests that took at most `le_micros`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    pub le_micros: u64,
    pub cumulative: u64,
}

/// `client`: from the parsed request to the reply written; `upstream`: from the request
/// written upstream to the reply read (only requests that reached the server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLatency {
    pub server: String,
    pub client: Latency,
    pub upstream: Latency,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerGauge {
    pub server: String,
    pub in_flight: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call<'a>(server: &'a Arc<str>, tool: &'a Arc<str>, outcome: Outcome) -> CallFigures<'a> {
        CallFigures {
            method: RoutedMethod::ToolsCall,
            server: Some(server),
            tool: Some(tool),
            outcome,
            latency_us: 1_000,
            upstream_us: Some(800),
        }
    }

    #[test]
    fn cores_add_up_by_name() {
        // Two cores, each with its own `Arc` of the same names (as after a reload).
        let (s1, t1): (Arc<str>, Arc<str>) = (Arc::from("mock"), Arc::from("echo"));
        let (s2, t2): (Arc<str>, Arc<str>) = (Arc::from("mock"), Arc::from("echo"));
        let (mut a, mut b) = (CoreCalls::default(), CoreCalls::default());
        for _ in 0..3 {
            a.record(&call(&s1, &t1, Outcome::Ok));
        }
        b.record(&call(&s2, &t2, Outcome::Ok));
        b.record(&call(&s2, &t2, Outcome::Denied));
        a.in_flight(&s1, 1);
        let mut hub = HubCalls::default();
        hub.merge(0, &mut a);
        hub.merge(1, &mut b);
        assert!(!a.dirty() && !b.dirty());
        let (requests, latency, in_flight) = hub.snapshot();
        let count = |o: &str| requests.iter().find(|r| r.outcome == o).map(|r| r.count);
        assert_eq!(requests.len(), 2);
        assert_eq!((count("ok"), count("denied")), (Some(4), Some(1)));
        assert_eq!(requests[0].server, "mock");
        assert_eq!(requests[0].tool, "echo");
        assert_eq!(latency.len(), 1);
        assert_eq!(latency[0].client.count, 5);
        assert_eq!(latency[0].client.sum_micros, 5_000);
        assert_eq!(latency[0].upstream.count, 5);
        let le_1ms = latency[0]
            .client
            .buckets
            .iter()
            .find(|b| b.le_micros == 1_000);
        assert_eq!(le_1ms.map(|b| b.cumulative), Some(5));
        assert_eq!(latency[0].client.buckets[0].cumulative, 0, "none ≤ 100 µs");
        assert_eq!(
            in_flight,
            [ServerGauge {
                server: "mock".into(),
                in_flight: 1
            }]
        );
        // The call comes back: the next merge of that core clears its gauge.
        a.in_flight(&s1, -1);
        hub.merge(0, &mut a);
        assert_eq!(hub.snapshot().2[0].in_flight, 0);
    }

    #[test]
    fn requests_without_a_server_count_under_empty_labels() {
        let mut core = CoreCalls::default();
        core.record(&CallFigures {
            method: RoutedMethod::ResourcesRead,
            server: None,
            tool: None,
            outcome: Outcome::Unknown,
            latency_us: 10,
            upstream_us: None,
        });
        let mut hub = HubCalls::default();
        hub.merge(0, &mut core);
        let (requests, latency, _) = hub.snapshot();
        assert_eq!(
            requests,
            [RequestCount {
                method: "resources/read",
                server: String::new(),
                tool: String::new(),
                outcome: "unknown",
                count: 1
            }]
        );
        assert!(latency.is_empty());
    }
}
