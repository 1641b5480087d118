//! One `tools/call` end to end inside the process: the gateway's `/mcp` handler (session check,
//! envelope, route, name rewrite, upstream exchange, reply splice) driven directly on a monoio
//! runtime, against the mock upstream over streamable HTTP (its own thread, loopback TCP) and
//! over stdio (a child process). One call in flight, so a figure is one call's latency.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};

use mcpgate::admin::metrics::{CoreMetrics, MetricsHub};
use mcpgate::config::parse_config;
use mcpgate::http::request::{parse_head, HeadParse};
use mcpgate::http::{Handler, HttpLimits, Response};
use mcpgate::mcp::{McpService, ProtocolVersion, ServiceSettings, SessionKeys, SessionVerifier};
use mcpgate::mock::{MockConfig, MockServer};
use mcpgate::registry::{PublishedRegistry, RegistryReader};
use mcpgate::runtime::{bind_listeners, CoreHandle, IoDriver};
use mcpgate::upstream::start::{start_upstreams, StartedUpstreams};

fn fail(what: &str, e: impl std::fmt::Display) -> ! {
    panic!("bench setup: {what}: {e}")
}

/// A gateway handler in front of `servers` (a `mcpServers` JSON object).
fn gateway(servers: &str) -> (McpService, String, StartedUpstreams) {
    let config = parse_config(&format!(r#"{{"mcpServers": {servers}}}"#), &|_| None)
        .unwrap_or_else(|e| fail("config", e));
    // The bench drives the handler on its own runtime, which is not running while upstreams
    // start, so stdio pipes live on a dedicated thread here: one cross-thread hop each way
    // that a worker core owning the pipes does not pay.
    let stdio_core = CoreHandle::dedicated("bench-stdio", IoDriver::Epoll)
        .unwrap_or_else(|e| fail("stdio thread", e));
    let started = start_upstreams(&config, IoDriver::Epoll, &[stdio_core])
        .unwrap_or_else(|e| fail("upstreams", e));
    let keys =
        SessionKeys::new(None, Duration::from_secs(3600)).unwrap_or_else(|e| fail("keys", e));
    let session = keys
        .issue(ProtocolVersion::V2025_06_18)
        .unwrap_or_else(|e| fail("session", e));
    let settings = Arc::new(ServiceSettings {
        allowed_origins: Vec::new(),
        loopback_listener: true,
        heartbeat: Duration::from_secs(15),
        cores: Vec::new(),
    });
    let service = McpService::new(
        RegistryReader::new(PublishedRegistry::new(started.snapshot)),
        SessionVerifier::new(keys),
        settings,
        CoreMetrics::new(MetricsHub::new()),
    );
    (service, session, started.upstreams)
}

fn request(session: &str, tool: &str) -> Vec<u8> {
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"{tool}","arguments":{{"message":"hello world"}}}}}}"#
    );
    format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nMcp-Session-Id: {session}\r\n\
         MCP-Protocol-Version: 2025-06-18\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn bench_call(c: &mut Criterion, name: &str, service: &McpService, raw: &[u8]) {
    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .unwrap_or_else(|e| fail("runtime", e));
    let limits = HttpLimits::default();
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let HeadParse::Complete(head) = parse_head(raw, &limits) else {
                    fail("request", "does not parse")
                };
                let body = &raw[head.head_len..];
                let mut resp = Response::new();
                let start = Instant::now();
                for _ in 0..iters {
                    resp.reset();
                    service.handle(&head, body, &mut resp).await;
                    if !resp.body.windows(11).any(|w| w == b"hello world") {
                        fail("reply", String::from_utf8_lossy(&resp.body));
                    }
                }
                start.elapsed()
            })
        })
    });
}

fn end_to_end(c: &mut Criterion) {
    let listeners = bind_listeners("127.0.0.1:0".parse().unwrap_or_else(|e| fail("addr", e)), 1)
        .unwrap_or_else(|e| fail("listen", e));
    let addr = listeners[0]
        .local_addr()
        .unwrap_or_else(|e| fail("addr", e));
    let mock = Arc::new(MockServer::new(MockConfig::default()));
    mcpgate::mock::http::spawn_http_workers(mock, listeners, IoDriver::Epoll, None)
        .unwrap_or_else(|e| fail("mock", e));

    let (service, session, http_upstreams) =
        gateway(&format!(r#"{{"m": {{"url": "http://{addr}/mcp"}}}}"#));
    bench_call(
        c,
        "end_to_end/tools_call_http_upstream",
        &service,
        &request(&session, "m__echo"),
    );
    http_upstreams.shutdown(Duration::from_secs(1));

    let exe = env!("CARGO_BIN_EXE_mcpgate");
    let (service, session, stdio_upstreams) = gateway(&format!(
        r#"{{"s": {{"command": "{exe}", "args": ["mock-upstream", "--stdio"]}}}}"#
    ));
    bench_call(
        c,
        "end_to_end/tools_call_stdio_upstream",
        &service,
        &request(&session, "s__echo"),
    );
    stdio_upstreams.shutdown(Duration::from_secs(2));
}

criterion_group!(benches, end_to_end);
criterion_main!(benches);
