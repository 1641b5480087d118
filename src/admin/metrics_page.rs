//! `GET /metrics`: every family the gateway exports, rendered when scraped (on the admin
//! thread; the workers only record).
//!
//! Owns: the family names, their help and labels. A family is one call on [`Exposition`]; a
//! new source of figures adds one function here, called from [`render`]. Must never: hold a
//! lock a worker core waits on for longer than a copy (the internal-time histogram is copied
//! under the lock its merges take, then turned into buckets).

use super::call_metrics::Latency;
use super::exposition::{Buckets, Exposition};
use super::metrics::CallsSnapshot;
use super::state::AdminState;
use super::stats_view::STATES;
use crate::registry::RegistrySnapshot;

/// Upper bounds (ns) of the gateway internal-time buckets: 0.5 µs to 10 ms.
pub const INTERNAL_BOUNDS_NS: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];

/// The whole page, in the text exposition format.
pub fn render(state: &AdminState) -> String {
    let mut page = Exposition::new();
    let snapshot = state.registry.load();
    process(&mut page, state);
    upstreams(&mut page, &snapshot);
    catalog(&mut page, &snapshot);
    internal_time(&mut page, state);
    calls(&mut page, &state.metrics.calls());
    page.into_text()
}

fn process(page: &mut Exposition, state: &AdminState) {
    page.gauge(
        "mcpgate_info",
        "Always 1; the labels say which mcpgate runs and on which I/O driver.",
    )
    .sample(
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("io_driver", state.driver.as_str()),
        ],
        1.0,
    );
    let started = state
        .started_at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    page.gauge(
        "mcpgate_start_time_seconds",
        "When serving began, in seconds since the Unix epoch.",
    )
    .sample(&[], started.floor());
    page.gauge("mcpgate_uptime_seconds", "Seconds since serving began.")
        .sample(&[], state.started.elapsed().as_secs_f64().floor());
    page.gauge("mcpgate_workers", "Worker cores serving clients.")
        .sample(&[], state.workers as f64);
    if let Some(reloads) = &state.reloads {
        page.counter(
            "mcpgate_config_reloads_total",
            "Config reloads since start: applied, or refused (the previous config kept serving).",
        )
        .sample(&[("outcome", "applied")], reloads.applied() as f64)
        .sample(&[("outcome", "refused")], reloads.refused() as f64);
    }
}

fn upstreams(page: &mut Exposition, snapshot: &RegistrySnapshot) {
    page.gauge("mcpgate_servers", "Upstream servers in the registry.")
        .sample(&[], snapshot.servers.len() as f64);
    let mut states = page.gauge(
        "mcpgate_upstream_state",
        "1 for the health state each upstream server is in, 0 for the others.",
    );
    for server in &snapshot.servers {
        let now = server.health.state();
        for s in STATES {
            let value = if s == now { 1.0 } else { 0.0 };
            states.sample(&[("server", &server.name), ("state", s.as_str())], value);
        }
    }
}

fn catalog(page: &mut Exposition, snapshot: &RegistrySnapshot) {
    page.gauge(
        "mcpgate_exposed_items",
        "Items the gateway exposes now, by kind.",
    )
    .sample(&[("kind", "tools")], snapshot.tools.items.len() as f64)
    .sample(&[("kind", "prompts")], snapshot.prompts.items.len() as f64)
    .sample(
        &[("kind", "resources")],
        snapshot.resources.items.len() as f64,
    )
    .sample(
        &[("kind", "resource_templates")],
        snapshot.resource_templates.items.len() as f64,
    );
    page.gauge(
        "mcpgate_tools_disabled",
        "Tools disabled through the admin API (not listed, not callable).",
    )
    .sample(&[], snapshot.tools.switched_off.len() as f64);
    page.gauge(
        "mcpgate_client_streams",
        "Client GET /mcp and GET /sse streams open now.",
    )
    .sample(
        &[],
        snapshot.access.governance().open_streams_total() as f64,
    );
}

fn internal_time(page: &mut Exposition, state: &AdminState) {
    let histogram = state.metrics.internal_histogram();
    let buckets = Buckets::from_hdr(&histogram, &INTERNAL_BOUNDS_NS, 1e9);
    page.histogram(
        "mcpgate_gateway_internal_seconds",
        "Time a call spends inside mcpgate itself (not upstream or network), merged from \
         the cores at least every second while they serve.",
    )
    .series(&[], &buckets);
}

/// Requests by method, server, tool and outcome (tool calls are `method="tools/call"`),
/// latencies per server, calls in flight, and what the audit and access logs wrote and dropped.
fn calls(page: &mut Exposition, calls: &CallsSnapshot) {
    let mut requests = page.counter(
        "mcpgate_requests_total",
        "Routed MCP requests by method, server, tool (or prompt) and outcome; server and tool \
         are empty for a name the gateway does not know.",
    );
    for r in &calls.requests {
        requests.sample(
            &[
                ("method", r.method),
                ("server", &r.server),
                ("tool", &r.tool),
                ("outcome", r.outcome),
            ],
            r.count as f64,
        );
    }
    let mut client = page.histogram(
        "mcpgate_request_duration_seconds",
        "Client-facing time of routed requests, from the parsed request to the reply written, \
         per server.",
    );
    for l in &calls.latency {
        client.series(&[("server", &l.server)], &seconds(&l.client));
    }
    let mut upstream = page.histogram(
        "mcpgate_upstream_duration_seconds",
        "Time upstream, from the request written to the server to its reply read, per server.",
    );
    for l in &calls.latency {
        upstream.series(&[("server", &l.server)], &seconds(&l.upstream));
    }
    let mut in_flight = page.gauge(
        "mcpgate_calls_in_flight",
        "Calls sent to a server and not yet answered.",
    );
    for g in &calls.in_flight {
        in_flight.sample(&[("server", &g.server)], g.in_flight as f64);
    }
    let a = &calls.audit;
    page.counter(
        "mcpgate_audit_records_total",
        "Audit records written to the sinks, or dropped because the queue was full.",
    )
    .sample(&[("result", "written")], a.written as f64)
    .sample(&[("result", "dropped")], a.dropped as f64);
    page.counter(
        "mcpgate_access_log_lines_total",
        "Access-log lines written, or dropped because the queue was full.",
    )
    .sample(&[("result", "written")], a.access_written as f64)
    .sample(&[("result", "dropped")], a.access_dropped as f64);
    page.counter(
        "mcpgate_audit_sink_errors_total",
        "Writes to an audit or access-log sink that failed.",
    )
    .sample(&[], a.sink_errors as f64);
}

/// A latency kept in microseconds, as Prometheus buckets in seconds.
fn seconds(l: &Latency) -> Buckets {
    Buckets {
        cumulative: l
            .buckets
            .iter()
            .map(|b| (b.le_micros as f64 / 1e6, b.cumulative))
            .collect(),
        sum: l.sum_micros as f64 / 1e6,
        count: l.count,
    }
}
