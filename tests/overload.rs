//! Overload, with real processes and sockets under both drivers:
//! - a server whose calls hang, behind a small `max_concurrent_calls`: the calls within the
//!   bound complete, the ones beyond it wait `queue_timeout_ms` and fail naming the server as
//!   saturated without reaching it, and another server's calls are answered all along; a
//!   reload that changes the bound applies it to new calls;
//! - a client that opens a streaming call producing hundreds of MB of progress and does not
//!   read: the gateway's memory stays bounded, other clients are answered, and the stream is
//!   either caught up later (progress coalesced, the reply intact) or, once the client has
//!   taken nothing for `client_write_timeout_ms`, closed.
//!
//! Nothing here asserts on timing: waits end on replies, log lines and the ledger's events.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::ledger_http::{AfterReply, LedgerHttp};
use common::procfs::rss_kib;
use common::raw_http::RawSession;
use common::raw_sse::{Chunk, SseConn};
use common::*;
use serde_json::{json, Value};

async fn calls_beyond_the_bound_wait_then_fail_and_other_servers_are_served(driver: &str) {
    let slow = LedgerHttp::start(AfterReply::KeepAlive).await;
    let mut entry = http_server(&slow.url);
    entry["max_concurrent_calls"] = json!(2);
    entry["queue_timeout_ms"] = json!(300);
    entry["health_check_ms"] = json!(3_600_000);
    let cfg = config(&[("slow", entry), ("fast", mock_stdio(&[]))]);
    // One worker: its share is the whole bound.
    let gw = Gateway::start_workers(driver, &cfg, 1).await;
    let client = Arc::new(gw.client().await);
    let call_on = |tool: &'static str, tag: String| {
        let client = client.clone();
        tokio::spawn(async move { call(&client, tool, json!({ "tag": tag })).await })
    };

    let held: Vec<_> = (0..2)
        .map(|n| call_on("slow__hold", format!("held-{n}")))
        .collect();
    slow.wait_held(2).await;
    let extra: Vec<_> = (0..3)
        .map(|n| call_on("slow__run", format!("extra-{n}")))
        .collect();
    for (n, refused) in extra.into_iter().enumerate() {
        let refused = refused.await.expect("call task");
        let error = mcp_error(&format!("extra call {n}"), refused);
        for part in [
            "upstream server 'slow' is saturated",
            "2 calls in flight",
            "max_concurrent_calls 2",
            "within 300 ms",
        ] {
            assert!(
                error.message.contains(part),
                "{part:?} in {:?}",
                error.message
            );
        }
        assert_eq!(error.data, Some(json!({ "server": "slow" })));
        assert_eq!(slow.runs(&format!("extra-{n}")), 0, "a refused call ran");
    }
    // The other server is not held up by this one.
    gw.assert_echo_works("fast__echo").await;
    assert_eq!(slow.held(), 2, "a call beyond the bound reached the server");

    slow.release(2);
    for (n, call) in held.into_iter().enumerate() {
        let result = call
            .await
            .expect("call task")
            .unwrap_or_else(|e| panic!("held call {n} failed: {e}"));
        assert_eq!(text_of(&result), format!("ran held-{n} 1"));
    }
    // Slots are free again.
    let result = call_ok(&client, "slow__run", json!({ "tag": "after" })).await;
    assert_eq!(text_of(&result), "ran after 1");
}

async fn a_reload_applies_a_new_bound_to_new_calls(driver: &str) {
    let slow = LedgerHttp::start(AfterReply::KeepAlive).await;
    let bounded = |max: u32| {
        let mut entry = http_server(&slow.url);
        entry["max_concurrent_calls"] = json!(max);
        entry["queue_timeout_ms"] = json!(0);
        entry["health_check_ms"] = json!(3_600_000);
        config(&[("slow", entry)])
    };
    let mut gw = Gateway::start_workers(driver, &bounded(1), 1).await;
    let client = Arc::new(gw.client().await);
    let hold = |tag: &'static str| {
        let client = client.clone();
        tokio::spawn(async move { call(&client, "slow__hold", json!({ "tag": tag })).await })
    };
    let saturated = |max: u32| {
        let client = client.clone();
        async move {
            let refused = call(&client, "slow__run", json!({ "tag": "refused" })).await;
            let error = mcp_error("a call beyond the bound", refused);
            let expected =
                format!("max_concurrent_calls {max} is {max}) and none finished within 0 ms");
            assert!(
                error.message.contains(&expected),
                "{expected:?} in {:?}",
                error.message
            );
        }
    };

    let before = hold("before");
    slow.wait_held(1).await;
    saturated(1).await;

    let mark = gw.proc.mark();
    tokio::task::block_in_place(|| {
        gw.reload_with(&bounded(2), "config reload applied");
        gw.proc.wait_stderr_line_after(
            mark,
            |l| l.contains("its tools are now served") && l.contains("server=slow"),
            READY_TIMEOUT,
        );
    });
    // The changed server is a new one with the new bound; the held call stays on the old.
    let after = [hold("after-1"), hold("after-2")];
    slow.wait_held(3).await;
    saturated(2).await;
    assert_eq!(slow.runs("refused"), 0);

    slow.release(3);
    for (tag, call) in [("before", before)]
        .into_iter()
        .chain(["after-1", "after-2"].into_iter().zip(after))
    {
        let result = call
            .await
            .expect("call task")
            .unwrap_or_else(|e| panic!("held call {tag} failed: {e}"));
        assert_eq!(text_of(&result), format!("ran {tag} 1"));
    }
}

/// Progress notifications the flood sends, and the bytes each carries: 200 MB in all.
const FLOOD_COUNT: u64 = 10_000;
const FLOOD_BYTES: u64 = 20_000;
/// How much the gateway's RSS may grow while it serves the flood to a client that does not
/// read: a fraction of the flood (what the gateway holds is bounded near 1 MiB per call).
const RSS_GROWTH_MAX_KIB: u64 = 64 * 1024;

fn flood_config(write_timeout_ms: u64) -> Value {
    let mut cfg = config(&[
        ("flood", node_fixture_stdio("flood-server.mjs")),
        ("fast", mock_stdio(&[])),
    ]);
    cfg["client_write_timeout_ms"] = json!(write_timeout_ms);
    cfg
}

/// Starts a flood call on a raw connection that then reads nothing; returns it and the
/// call's JSON-RPC id.
async fn start_unread_flood(session: &RawSession, count: u64) -> (SseConn, u64) {
    let (id, body) = session.request_body(
        "tools/call",
        json!({
            "name": "flood__flood",
            "arguments": { "count": count, "bytes": FLOOD_BYTES },
            "_meta": { "progressToken": "slow-reader" }
        }),
    );
    let headers = session.headers();
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let stream = SseConn::request(&session.addr, "POST", "/mcp", &headers, &body).await;
    assert!(
        stream.head.starts_with("HTTP/1.1 200")
            && stream
                .head
                .to_ascii_lowercase()
                .contains("content-type: text/event-stream"),
        "{}",
        stream.head
    );
    (stream, id)
}

/// The largest RSS of `pid` seen until the returned flag is set (sampled, for the bound).
fn sample_rss(pid: u32) -> (Arc<AtomicBool>, tokio::task::JoinHandle<u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let sampler = tokio::spawn(async move {
        let mut max = 0;
        while !stopped.load(Ordering::Relaxed) {
            max = max.max(rss_kib(pid).unwrap_or(0));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        max.max(rss_kib(pid).unwrap_or(0))
    });
    (stop, sampler)
}

/// Waits for the flood's last line to have been through the gateway: the fixture serves one
/// request at a time, so an answer to one sent after the flood comes after all of it.
async fn wait_flood_through(gw: &mut Gateway) {
    let sent = format!("flood of {FLOOD_COUNT} sent");
    tokio::task::block_in_place(|| {
        gw.proc
            .wait_stderr_line(|l| l.contains(&sent), CALL_TIMEOUT)
    });
    let client = gw.client().await;
    let result = call_ok(&client, "flood__echo", json!({ "message": "after" })).await;
    assert_eq!(text_of(&result), "Echo: after");
    close(client).await;
}

/// The JSON-RPC messages of SSE chunks.
fn messages(chunks: &[String]) -> Vec<Value> {
    chunks
        .iter()
        .flat_map(|chunk| chunk.split("\n\n"))
        .filter_map(|event| event.strip_prefix("data: "))
        .map(|data| serde_json::from_str(data).expect("a JSON event"))
        .collect()
}

async fn a_slow_reader_holds_bounded_memory_and_catches_up(driver: &str) {
    // No write timeout to speak of: this client is slow, not gone.
    let mut gw = Gateway::start(driver, &flood_config(3_600_000)).await;
    let session = RawSession::open(&gw.addr()).await;
    // Warm up (the process's allocations for a streaming call) with a flood read as it comes.
    let (mut warm, _) = start_unread_flood(&session, 10).await;
    warm.until_end().await.expect("the warm-up stream");
    let pid = gw.proc.pid();
    let baseline = rss_kib(pid).expect("the gateway's RSS");

    let (stop, sampler) = sample_rss(pid);
    let (mut slow, id) = start_unread_flood(&session, FLOOD_COUNT).await;
    wait_flood_through(&mut gw).await;
    gw.assert_echo_works("fast__echo").await;
    stop.store(true, Ordering::Relaxed);
    let peak = sampler.await.expect("sampler");
    assert!(
        peak.saturating_sub(baseline) < RSS_GROWTH_MAX_KIB,
        "RSS grew from {baseline} KiB to {peak} KiB while a client did not read a {} MB stream",
        FLOOD_COUNT * FLOOD_BYTES / 1_000_000
    );
    assert!(
        gw.proc.stderr_text().contains("client is not keeping up"),
        "the bound did not engage:\n{}",
        gw.proc.log_tail()
    );

    // The client reads at last: coalesced progress, the newest of it, then the reply whole.
    let chunks = slow.until_end().await.expect("the slow stream to its end");
    let messages = messages(&chunks);
    let (reply, progress) = messages.split_last().expect("messages");
    assert_eq!(reply["id"], id, "{reply}");
    assert_eq!(
        reply["result"]["content"][0]["text"],
        format!("flooded {FLOOD_COUNT}")
    );
    assert!(
        (progress.len() as u64) < FLOOD_COUNT,
        "{} progress notifications for {FLOOD_COUNT} sent: nothing was coalesced",
        progress.len()
    );
    let last = progress.last().expect("progress");
    assert_eq!(last["method"], "notifications/progress");
    assert_eq!(last["params"]["progressToken"], "slow-reader");
    assert_eq!(
        last["params"]["progress"],
        FLOOD_COUNT - 1,
        "the newest progress"
    );
}

async fn a_client_that_never_reads_has_its_stream_closed(driver: &str) {
    let mut gw = Gateway::start(driver, &flood_config(500)).await;
    let session = RawSession::open(&gw.addr()).await;
    let pid = gw.proc.pid();
    let baseline = rss_kib(pid).expect("the gateway's RSS");
    let (stop, sampler) = sample_rss(pid);
    let mark = gw.proc.mark();
    let (mut unread, _) = start_unread_flood(&session, FLOOD_COUNT).await;
    tokio::task::block_in_place(|| {
        gw.proc.wait_stderr_line_after(
            mark,
            |l| l.contains("took no bytes of its reply or stream for 500 ms"),
            CALL_TIMEOUT,
        )
    });
    wait_flood_through(&mut gw).await;
    gw.assert_echo_works("fast__echo").await;
    stop.store(true, Ordering::Relaxed);
    let peak = sampler.await.expect("sampler");
    assert!(
        peak.saturating_sub(baseline) < RSS_GROWTH_MAX_KIB,
        "RSS grew from {baseline} KiB to {peak} KiB while a client did not read a {} MB stream",
        FLOOD_COUNT * FLOOD_BYTES / 1_000_000
    );
    // What was on its way still arrives, then the connection ends: no reply, no final chunk.
    let mut seen = Vec::new();
    let end = loop {
        match unread.next().await {
            Ok(Chunk::Data(data)) => seen.push(data),
            Ok(Chunk::Last) => panic!("the stream ended normally after {} chunks", seen.len()),
            Err(e) => break e,
        }
    };
    assert!(end.contains("closed") || end.contains("failed"), "{end}");
    assert!(
        messages(&seen).iter().all(|m| m["result"].is_null()),
        "the reply reached a stream that was closed"
    );
}

both_drivers!(
    calls_beyond_the_bound_wait_then_fail_and_other_servers_are_served,
    a_reload_applies_a_new_bound_to_new_calls,
    a_slow_reader_holds_bounded_memory_and_catches_up,
    a_client_that_never_reads_has_its_stream_closed
);
