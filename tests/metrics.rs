//! `GET /metrics` on the admin listener, read by a Prometheus text-format parser
//! (`prometheus-parse`) while the test changes what the gateway serves: every line is a valid
//! sample, comment or type line; the I/O driver, the servers' health gauges (an HTTP server
//! the test stops turns unhealthy), the exposed and disabled tools, open client streams and
//! the config reload counters follow what the test did; the internal-time histogram is a
//! proper cumulative histogram.

mod common;

use common::admin::Admin;
use common::*;
use prometheus_parse::{LineInfo, Sample, Scrape, Value};
use serde_json::json;

const ADMIN_TOKEN: &str = "metrics-admin-token-0123456789";

/// Parses `page`; every line must be a sample, `# HELP`, `# TYPE` or empty (the parser skips
/// lines it cannot read, so that is checked first).
fn parse(page: &str) -> Scrape {
    for line in page.lines() {
        let ok = match LineInfo::parse(line) {
            LineInfo::Sample { .. } | LineInfo::Empty => true,
            LineInfo::Doc { .. } | LineInfo::Type { .. } => line.starts_with("# "),
            LineInfo::Ignored => false,
        };
        assert!(ok, "not a valid exposition line: {line:?}\n{page}");
    }
    assert!(page.ends_with('\n'), "the page must end with a newline");
    Scrape::parse(page.lines().map(|l| Ok(l.to_owned()))).expect("parse the page")
}

/// The one sample of `metric` whose labels include `labels`.
fn sample<'s>(scrape: &'s Scrape, metric: &str, labels: &[(&str, &str)]) -> &'s Sample {
    let found: Vec<&Sample> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .collect();
    assert_eq!(found.len(), 1, "{metric}{labels:?}: {found:?}");
    found[0]
}

fn gauge(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    match sample(scrape, metric, labels).value {
        Value::Gauge(v) => v,
        ref other => panic!("{metric} is not a gauge: {other:?}"),
    }
}

fn counter(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    match sample(scrape, metric, labels).value {
        Value::Counter(v) => v,
        ref other => panic!("{metric} is not a counter: {other:?}"),
    }
}

/// The health state gauges of `server`: the one state at 1 (the others must be 0).
fn state_of(scrape: &Scrape, server: &str) -> String {
    let states = ["starting", "healthy", "unhealthy", "backoff", "disabled"];
    let on: Vec<&str> = states
        .iter()
        .copied()
        .filter(|s| {
            let v = gauge(
                scrape,
                "mcpgate_upstream_state",
                &[("server", server), ("state", s)],
            );
            assert!(v == 0.0 || v == 1.0, "{server} {s}: {v}");
            v == 1.0
        })
        .collect();
    assert_eq!(on.len(), 1, "{server} must be in exactly one state: {on:?}");
    on[0].to_owned()
}

both_drivers!(metrics_parse_and_follow_what_the_gateway_does);

async fn metrics_parse_and_follow_what_the_gateway_does(driver: &str) {
    let remote = HttpUpstream::mock(&["--tools", "0"]).await;
    let mut remote_cfg = http_server(&remote.url);
    remote_cfg["health_check_ms"] = json!(200);
    let mut cfg = config(&[
        ("mock", mock_stdio(&["--tools", "0"])),
        ("remote", remote_cfg),
    ]);
    cfg["admin"] = json!({ "listen": "127.0.0.1:0", "token": "${ADMIN_TOKEN}" });
    let mut gw = Gateway::start_with_env(driver, &cfg, &[("ADMIN_TOKEN", ADMIN_TOKEN)]).await;
    let admin = Admin::of(&mut gw, Some(ADMIN_TOKEN));

    let scrape = parse(&admin.metrics().await);
    for family in [
        "mcpgate_info",
        "mcpgate_upstream_state",
        "mcpgate_exposed_items",
        "mcpgate_config_reloads_total",
        "mcpgate_gateway_internal_seconds",
    ] {
        assert!(scrape.docs.contains_key(family), "no HELP for {family}");
    }
    let io_driver = if driver == "uring" {
        "io_uring"
    } else {
        "epoll"
    };
    assert_eq!(
        gauge(&scrape, "mcpgate_info", &[("io_driver", io_driver)]),
        1.0
    );
    assert_eq!(gauge(&scrape, "mcpgate_workers", &[]), 2.0);
    assert_eq!(gauge(&scrape, "mcpgate_servers", &[]), 2.0);
    assert_eq!(state_of(&scrape, "mock"), "healthy");
    assert_eq!(state_of(&scrape, "remote"), "healthy");
    assert_eq!(
        gauge(&scrape, "mcpgate_exposed_items", &[("kind", "tools")]),
        6.0
    );
    assert_eq!(gauge(&scrape, "mcpgate_tools_disabled", &[]), 0.0);
    assert_eq!(gauge(&scrape, "mcpgate_client_streams", &[]), 0.0);
    for outcome in ["applied", "refused"] {
        let n = counter(
            &scrape,
            "mcpgate_config_reloads_total",
            &[("outcome", outcome)],
        );
        assert_eq!(n, 0.0, "{outcome}");
    }

    // A client's calls and its open stream.
    let client = gw.client().await;
    let listed = list_tools(&client).await;
    for i in 0..5 {
        call_ok(&client, "mock__echo", json!({ "message": format!("m{i}") })).await;
    }
    admin.wait_for_streams(1).await;
    // A tool disabled through the admin API.
    admin.set_tool("mock__add", false).await;
    let scrape = parse(&admin.metrics().await);
    assert_eq!(gauge(&scrape, "mcpgate_client_streams", &[]), 1.0);
    assert_eq!(gauge(&scrape, "mcpgate_tools_disabled", &[]), 1.0);
    assert_eq!(
        gauge(&scrape, "mcpgate_exposed_items", &[("kind", "tools")]),
        (listed.len() - 1) as f64
    );
    let histogram = sample(&scrape, "mcpgate_gateway_internal_seconds", &[]);
    let Value::Histogram(buckets) = &histogram.value else {
        panic!("not a histogram: {histogram:?}");
    };
    assert!(buckets.len() > 2);
    assert!(
        buckets
            .windows(2)
            .all(|w| w[0].less_than < w[1].less_than && w[0].count <= w[1].count),
        "buckets must be cumulative: {buckets:?}"
    );
    let last = buckets.last().expect("buckets");
    assert!(last.less_than.is_infinite());
    let count = match sample(&scrape, "mcpgate_gateway_internal_seconds_count", &[]).value {
        Value::Untyped(v) => v,
        ref other => panic!("{other:?}"),
    };
    assert_eq!(last.count, count, "+Inf bucket and _count agree");
    // Cores merge what they recorded at least every second while serving: never more than
    // the calls made.
    assert!(count <= 5.0, "{count}");

    // The per-call families count exactly the calls made, once the cores have merged (at
    // least every second): five echo calls answered, one call of a tool nobody has.
    let refused = client
        .call_tool(rmcp::model::CallToolRequestParams::new("mock__nope"))
        .await;
    assert!(refused.is_err(), "{refused:?}");
    let admin_ref = &admin;
    let scrape = poll_until(
        "the per-call counters to reach the calls made",
        || async move {
            {
                let scrape = parse(&admin_ref.metrics().await);
                let total = |outcome: &str| -> f64 {
                    scrape
                        .samples
                        .iter()
                        .filter(|s| {
                            s.metric == "mcpgate_requests_total"
                                && s.labels.get("method") == Some("tools/call")
                                && s.labels.get("outcome") == Some(outcome)
                        })
                        .map(|s| match s.value {
                            Value::Counter(v) => v,
                            ref other => panic!("not a counter: {other:?}"),
                        })
                        .sum()
                };
                if total("ok") >= 5.0 && total("unknown") >= 1.0 {
                    assert_eq!((total("ok"), total("unknown")), (5.0, 1.0));
                    return Some(scrape);
                }
                None
            }
        },
    )
    .await;
    assert_eq!(
        counter(
            &scrape,
            "mcpgate_requests_total",
            &[
                ("method", "tools/call"),
                ("server", "mock"),
                ("outcome", "ok")
            ]
        ),
        5.0
    );
    let answered = match sample(
        &scrape,
        "mcpgate_request_duration_seconds_count",
        &[("server", "mock")],
    )
    .value
    {
        Value::Untyped(v) => v,
        ref other => panic!("{other:?}"),
    };
    assert_eq!(
        answered, 5.0,
        "client-facing latency counts the answered calls"
    );
    assert_eq!(
        gauge(&scrape, "mcpgate_calls_in_flight", &[("server", "mock")]),
        0.0
    );

    // The HTTP server goes away: its health check fails and its gauge says so.
    let mark = gw.proc.mark();
    drop(remote);
    gw.proc.wait_stderr_line_after(
        mark,
        |l| l.contains("upstream not healthy") && l.contains("server=remote"),
        READY_TIMEOUT,
    );
    let scrape = parse(&admin.metrics().await);
    assert_eq!(state_of(&scrape, "remote"), "unhealthy");
    assert_eq!(state_of(&scrape, "mock"), "healthy");

    // One reload applied, one refused. (Writing the file and sending SIGHUP can reload twice
    // when the file watcher looks in between, so the counters are held against the log.)
    gw.reload_with(&cfg, "config reload applied");
    gw.reload_with(&json!("not an object"), "config reload refused");
    let (admin_ref, gw_ref) = (&admin, &gw);
    poll_until("the reload counters to match the log", || async move {
        {
            let scrape = parse(&admin_ref.metrics().await);
            let reloads = |outcome| {
                counter(
                    &scrape,
                    "mcpgate_config_reloads_total",
                    &[("outcome", outcome)],
                )
            };
            let log = gw_ref.proc.stderr_text();
            let logged = |what: &str| log.lines().filter(|l| l.contains(what)).count() as f64;
            let applied = logged("config reloaded");
            let refused = logged("config reload refused");
            assert!(applied >= 1.0 && refused >= 1.0);
            ((reloads("applied"), reloads("refused")) == (applied, refused)).then_some(())
        }
    })
    .await;
    close(client).await;
}
