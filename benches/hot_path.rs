//! The per-request hot path, piece by piece: HTTP head parse, JSON-RPC envelope parse
//! (the gateway's scanner vs serde_json borrowed `RawValue` vs simd-json), session check,
//! routing lookup, params rewrite (tool name), and reply splice (id rewrite).

#[path = "support/registry.rs"]
mod registry;

use std::borrow::Cow;
use std::hint::black_box;
use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use mcpgate::http::request::parse_head;
use mcpgate::http::HttpLimits;
use mcpgate::jsonrpc::{parse_message, write_result, RawObject};
use mcpgate::mcp::{ProtocolVersion, SessionKeys, SessionVerifier};

fn small_call() -> Vec<u8> {
    br#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"mock__echo","arguments":{"message":"hello world"}}}"#.to_vec()
}

fn large_call() -> Vec<u8> {
    let text = "x".repeat(8600);
    format!(
        r#"{{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{{"name":"mock__echo","arguments":{{"message":"{text}"}}}}}}"#
    )
    .into_bytes()
}

fn http_request(body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nMcp-Session-Id: AQAAAABrAfJsApw231BbzkdnlJX_dcj428phGeJlP0HBIQ\r\n\
         MCP-Protocol-Version: 2025-06-18\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

fn bench_http(c: &mut Criterion) {
    let req = http_request(&small_call());
    let limits = HttpLimits::default();
    c.bench_function("http/parse_head", |b| {
        b.iter(|| black_box(parse_head(black_box(&req), &limits)).is_partial_hint())
    });
}

trait Hint {
    fn is_partial_hint(&self) -> bool;
}
impl Hint for mcpgate::http::request::HeadParse<'_> {
    fn is_partial_hint(&self) -> bool {
        matches!(self, mcpgate::http::request::HeadParse::Partial)
    }
}

/// The envelope as serde_json reads it with borrowed raw values: what the gateway used
/// before its own scanner, kept here as the comparison.
#[derive(Deserialize)]
#[allow(dead_code)]
struct SerdeEnvelope<'a> {
    #[serde(borrow)]
    jsonrpc: Option<Cow<'a, str>>,
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow)]
    params: Option<&'a RawValue>,
}

fn bench_envelope(c: &mut Criterion) {
    let mut g = c.benchmark_group("envelope");
    for (label, msg) in [("135B", small_call()), ("8.7KB", large_call())] {
        g.throughput(Throughput::Bytes(msg.len() as u64));
        g.bench_function(format!("scanner/{label}"), |b| {
            b.iter(|| {
                black_box(parse_message(black_box(&msg)).map(|e| e.params.map(|p| p.get().len())))
            })
        });
        g.bench_function(format!("serde_json_raw/{label}"), |b| {
            b.iter(|| {
                let env = serde_json::from_slice::<SerdeEnvelope<'_>>(black_box(&msg));
                black_box(env.map(|e| e.params.map(|p| p.get().len())).ok())
            })
        });
        g.bench_function(format!("simd_json_borrowed/{label}"), |b| {
            // simd-json parses in place, so forwarding the original bytes needs a copy first.
            b.iter(|| {
                let mut copy = msg.clone();
                let v = simd_json::to_borrowed_value(black_box(&mut copy))
                    .map(|v| matches!(v, simd_json::BorrowedValue::Object(_)));
                black_box(v.is_ok())
            })
        });
    }
    g.finish();
}

fn bench_route(c: &mut Criterion) {
    let snap = registry::snapshot(500);
    c.bench_function("route/lookup_500_tools", |b| {
        b.iter(|| black_box(snap.tool(black_box("mock__tool_0321")).map(|t| t.server)))
    });
    let params =
        r#"{"name":"mock__tool_0321","arguments":{"q":"hello world"},"_meta":{"progressToken":7}}"#;
    let mut out = Vec::with_capacity(256);
    c.bench_function("route/rewrite_params_name", |b| {
        b.iter(|| {
            out.clear();
            if let Ok(obj) = RawObject::parse(black_box(params)) {
                obj.write_replacing(&mut out, "name", "tool_0321");
            }
            black_box(out.len())
        })
    });
}

fn bench_splice(c: &mut Criterion) {
    let mut g = c.benchmark_group("splice");
    for (label, size) in [("100B", 100usize), ("64KiB", 64 * 1024)] {
        let reply = format!(
            r#"{{"jsonrpc":"2.0","id":17,"result":{{"content":[{{"type":"text","text":"{}"}}]}}}}"#,
            "y".repeat(size)
        );
        let mut out = Vec::with_capacity(size + 256);
        g.throughput(Throughput::Bytes(reply.len() as u64));
        g.bench_function(format!("parse_and_rewrite_id/{label}"), |b| {
            b.iter(|| {
                out.clear();
                if let Ok(env) = parse_message(black_box(reply.as_bytes())) {
                    if let Some(r) = env.result {
                        write_result(&mut out, "\"client-id-1\"", r.get());
                    }
                }
                black_box(out.len())
            })
        });
    }
    g.finish();
}

fn bench_session(c: &mut Criterion) {
    let keys = match SessionKeys::new(None, Duration::from_secs(3600)) {
        Ok(k) => k,
        Err(e) => panic!("bench setup: {e}"),
    };
    let id = keys.issue(ProtocolVersion::V2025_06_18).unwrap_or_default();
    c.bench_function("session/verify_uncached_hmac", |b| {
        b.iter(|| black_box(keys.verify(black_box(id.as_bytes())).is_ok()))
    });
    let verifier = SessionVerifier::new(keys.clone());
    c.bench_function("session/verify_cached", |b| {
        b.iter(|| black_box(verifier.verify(black_box(id.as_bytes())).is_ok()))
    });
}

criterion_group!(
    benches,
    bench_http,
    bench_envelope,
    bench_route,
    bench_splice,
    bench_session
);
criterion_main!(benches);
