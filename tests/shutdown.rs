//! Graceful shutdown: SIGTERM while calls are in flight. The listener stops accepting at once
//! (new connections are refused), idle keep-alive connections close, `GET /mcp` and `GET /sse`
//! streams end cleanly (the final chunk, then an orderly close) once what they owe is sent,
//! every call in flight completes with its normal result, the stdio children are stopped and
//! reaped, and the process exits 0. Calls still running at `shutdown_grace_ms` are answered
//! with an error; a second signal stops at once.
//!
//! The upstream is `mcpgate mock-upstream --stdio`, whose `sleep` logs each call it starts and
//! whose `fault_hang` logs each call it will never answer (its stderr is in the gateway's log):
//! those lines prove a call is in flight before the signal is sent.

mod common;

use std::time::Duration;

use common::procfs::{self, ProcInfo};
use common::raw_http::{build_request, read_response, send_raw, RawSession};
use common::raw_sse::{Chunk, SseConn};
use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

both_drivers!(
    sigterm_lets_calls_in_flight_finish_then_exits_0,
    calls_still_running_at_the_deadline_are_answered_with_an_error,
    a_streaming_call_cut_at_the_deadline_ends_with_an_error_event,
    a_second_signal_stops_at_once,
);

/// How long each drained call sleeps upstream: long enough that the checks made while it runs
/// usually see a draining gateway (they stay correct, only weaker, on a very slow machine).
const SLEEP_MS: u64 = 3000;
/// Calls in flight through rmcp clients.
const CALLS: usize = 3;
/// Upper bound for the gateway to exit once it should (liveness only).
const EXIT_WAIT: Duration = Duration::from_secs(60);

fn wait_log(gw: &mut Gateway, mark: usize, what: impl Fn(&str) -> bool) -> String {
    tokio::task::block_in_place(|| gw.proc.wait_stderr_line_after(mark, what, READY_TIMEOUT))
}

/// The gateway's children (the stdio servers) and their process groups; at least one.
fn children(gw: &Gateway) -> Vec<ProcInfo> {
    let children = procfs::children_and_their_groups(gw.proc.pid());
    assert!(
        !children.is_empty(),
        "the stdio server should run as a child of the gateway"
    );
    children
}

/// After the gateway (pid `gateway`) exited: none of `children` exists any more (not even as a
/// zombie), and nothing lives in their process groups or in the gateway's own.
fn assert_no_child_remains(gateway: u32, children: &[ProcInfo]) {
    let left = procfs::live_in_group(gateway);
    assert!(
        left.is_empty(),
        "processes left in the gateway's group: {left:?}"
    );
    for child in children {
        assert!(
            !procfs::still_there(child),
            "process {child:?} outlived the gateway"
        );
        let left = procfs::live_in_group(child.pid);
        assert!(
            left.is_empty(),
            "processes left in group {}: {left:?}",
            child.pid
        );
    }
}

/// `key=N` from a log line.
fn field(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

fn assert_refused(addr: &str) {
    match std::net::TcpStream::connect(addr) {
        Err(e) => assert_eq!(
            e.kind(),
            std::io::ErrorKind::ConnectionRefused,
            "a new connection while draining: {e}"
        ),
        Ok(_) => panic!("a new connection was accepted while draining"),
    }
}

/// Opens a session's `GET /mcp` stream and reads its opening comment.
async fn open_session_stream(addr: &str) -> SseConn {
    let session = RawSession::open(addr).await;
    let mut stream = SseConn::open(
        addr,
        "/mcp",
        &[
            ("Accept", "text/event-stream"),
            ("Mcp-Session-Id", &session.session_id),
            ("MCP-Protocol-Version", &session.version),
        ],
    )
    .await;
    assert!(stream.head.starts_with("HTTP/1.1 200"), "{}", stream.head);
    let first = stream.next().await.expect("the stream's first chunk");
    assert!(
        matches!(&first, Chunk::Data(d) if d.starts_with(':')),
        "{first:?}"
    );
    stream
}

/// Opens a legacy `GET /sse` stream; returns it with its `/messages?session_id=…` path.
async fn open_legacy_stream(addr: &str) -> (SseConn, String) {
    let mut stream = SseConn::open(addr, "/sse", &[("Accept", "text/event-stream")]).await;
    assert!(stream.head.starts_with("HTTP/1.1 200"), "{}", stream.head);
    let endpoint = match stream.next().await.expect("the endpoint event") {
        Chunk::Data(d) => d,
        Chunk::Last => panic!("the legacy stream ended at once"),
    };
    let path = endpoint
        .strip_prefix("event: endpoint\ndata: ")
        .and_then(|rest| rest.strip_suffix("\n\n"))
        .unwrap_or_else(|| panic!("endpoint event {endpoint:?}"))
        .to_owned();
    (stream, path)
}

/// A connection that was served once and now idles, kept alive.
async fn idle_connection(session: &RawSession) -> TcpStream {
    let (_, body) = session.request_body("ping", json!({}));
    let headers = session.headers();
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let mut conn = TcpStream::connect(&session.addr).await.expect("connect");
    let request = build_request("POST", "/mcp", &session.addr, &headers, &body);
    conn.write_all(&request).await.expect("write ping");
    let response = within("ping", read_response(&mut conn)).await;
    assert_eq!(response.status, 200, "{response:?}");
    assert!(response.header("connection").is_none(), "{response:?}");
    conn
}

async fn sigterm_lets_calls_in_flight_finish_then_exits_0(driver: &str) {
    let mut gw = Gateway::start(driver, &config(&[("mock", mock_stdio(&[]))])).await;
    let addr = gw.addr();
    let (pid, children) = (gw.proc.pid(), children(&gw));

    let mut session_stream = open_session_stream(&addr).await;
    let session = RawSession::open(&addr).await;
    let mut idle = idle_connection(&session).await;

    // Calls in flight: through rmcp clients (one connection each), and one on a legacy
    // session, whose answer is owed on its stream.
    let mark = gw.proc.mark();
    let mut calls = Vec::new();
    for _ in 0..CALLS {
        let client = gw.client().await;
        calls.push(tokio::spawn(async move {
            let result = call(&client, "mock__sleep", json!({ "ms": SLEEP_MS })).await;
            (client, result)
        }));
    }
    let (mut legacy, messages) = open_legacy_stream(&addr).await;
    let legacy_call = json!({ "jsonrpc": "2.0", "id": 41, "method": "tools/call",
        "params": { "name": "mock__sleep", "arguments": { "ms": SLEEP_MS } } });
    let accepted = send_raw(
        &addr,
        build_request(
            "POST",
            &messages,
            &addr,
            &[("Content-Type", "application/json")],
            legacy_call.to_string().as_bytes(),
        ),
    )
    .await;
    assert_eq!(accepted.status, 202, "{accepted:?}");
    tokio::task::block_in_place(|| {
        gw.proc.wait_stderr_lines_after(
            mark,
            |l| l.contains(&format!("sleeps {SLEEP_MS} ms")),
            CALLS + 1,
            READY_TIMEOUT,
        )
    });

    let mark = gw.proc.mark();
    gw.proc.signal(libc::SIGTERM);
    let draining = wait_log(&mut gw, mark, |l| l.contains("draining"));
    assert!(field(&draining, "requests") >= CALLS as u64, "{draining}");

    // From the "draining" line on, nobody new gets in.
    assert_refused(&addr);
    // The idle keep-alive connection is closed in order, with nothing sent on it.
    let mut rest = Vec::new();
    let read = within("the idle connection to close", idle.read_to_end(&mut rest)).await;
    assert!(
        read.is_ok() && rest.is_empty(),
        "idle connection: {read:?} {rest:?}"
    );
    // The session's stream ends with the final chunk, then the connection closes.
    let tail = session_stream.until_end().await;
    assert!(tail.is_ok(), "GET /mcp did not end cleanly: {tail:?}");
    session_stream
        .closed_cleanly()
        .await
        .unwrap_or_else(|e| panic!("GET /mcp after its final chunk: {e}"));

    // Every call in flight completes with its normal result.
    for handle in calls {
        let (client, result) = handle.await.expect("call task");
        let result = result.unwrap_or_else(|e| {
            panic!(
                "a call in flight at SIGTERM failed: {e}\n{}",
                gw.proc.log_tail()
            )
        });
        assert_ne!(result.is_error, Some(true), "{result:?}");
        assert_eq!(text_of(&result), format!("slept {SLEEP_MS} ms"));
        drop(client);
    }
    // The legacy stream delivers the answer it owed, then ends cleanly.
    let events = legacy
        .until_end()
        .await
        .unwrap_or_else(|e| panic!("GET /sse did not end cleanly: {e}"));
    let answer = events
        .iter()
        .filter_map(|e| e.strip_prefix("event: message\ndata: "))
        .map(|d| serde_json::from_str::<Value>(d.trim()).expect("JSON answer"))
        .find(|m| m["id"] == 41)
        .unwrap_or_else(|| panic!("no answer to the legacy call in {events:?}"));
    assert_eq!(
        answer["result"]["content"][0]["text"],
        format!("slept {SLEEP_MS} ms"),
        "{answer}"
    );
    legacy
        .closed_cleanly()
        .await
        .unwrap_or_else(|e| panic!("GET /sse after its final chunk: {e}"));

    let status = tokio::task::block_in_place(|| gw.proc.wait_exit(EXIT_WAIT));
    assert!(
        status.success(),
        "exit status {status}\n{}",
        gw.proc.log_tail()
    );
    let drained = wait_log(&mut gw, mark, |l| l.contains("drained"));
    assert!(field(&drained, "answered") >= CALLS as u64, "{drained}");
    assert_eq!(field(&drained, "abandoned"), 0, "{drained}");
    assert!(field(&drained, "streams_ended") >= 2, "{drained}");
    assert_no_child_remains(pid, &children);
}

async fn calls_still_running_at_the_deadline_are_answered_with_an_error(driver: &str) {
    let mut cfg = config(&[("mock", mock_stdio(&["--faults"]))]);
    cfg["shutdown_grace_ms"] = json!(1000);
    let mut gw = Gateway::start(driver, &cfg).await;
    let (pid, children) = (gw.proc.pid(), children(&gw));
    let session = RawSession::open(&gw.addr()).await;
    let mark = gw.proc.mark();
    let (id, body) = session.request_body("tools/call", json!({ "name": "mock__fault_hang" }));
    let hanging = tokio::spawn(async move { session.post(&body).await });
    let line = wait_log(&mut gw, mark, |l| l.contains("hangs (fault_hang)"));
    let upstream_id = mock_request_id(&line);

    let mark = gw.proc.mark();
    gw.proc.signal(libc::SIGTERM);
    let response = within("the abandoned call's answer", hanging)
        .await
        .expect("call task");
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.header("connection"), Some("close"), "{response:?}");
    let reply = response.jsonrpc();
    assert_eq!(reply["id"], id, "{reply}");
    assert_eq!(reply["error"]["code"], -32603, "{reply}");
    let message = reply["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("shutting down"), "{reply}");
    // The upstream heard that the call was abandoned.
    wait_log(&mut gw, mark, |l| {
        l.contains(&format!("cancelled: {{\"requestId\":{upstream_id},"))
    });

    let status = tokio::task::block_in_place(|| gw.proc.wait_exit(EXIT_WAIT));
    assert!(
        status.success(),
        "exit status {status}\n{}",
        gw.proc.log_tail()
    );
    let drained = wait_log(&mut gw, mark, |l| l.contains("drained"));
    assert_eq!(field(&drained, "abandoned"), 1, "{drained}");
    assert_no_child_remains(pid, &children);
}

async fn a_streaming_call_cut_at_the_deadline_ends_with_an_error_event(driver: &str) {
    let mut cfg = config(&[("everything", everything_stdio())]);
    cfg["shutdown_grace_ms"] = json!(1000);
    let mut gw = Gateway::start(driver, &cfg).await;
    let (pid, children) = (gw.proc.pid(), children(&gw));
    let session = RawSession::open(&gw.addr()).await;
    // Ten minutes of progress: it streams, and it cannot finish within the grace period.
    let (id, body) = session.request_body(
        "tools/call",
        json!({ "name": "everything__trigger-long-running-operation",
                "arguments": { "duration": 600, "steps": 600 },
                "_meta": { "progressToken": "cut" } }),
    );
    let headers = session.headers();
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let mut reply = SseConn::request(&gw.addr(), "POST", "/mcp", &headers, &body).await;
    assert!(reply.head.starts_with("HTTP/1.1 200"), "{}", reply.head);
    // The first progress event: the call is in flight and its reply streams.
    let first = reply.next().await.expect("a progress event");
    assert!(
        matches!(&first, Chunk::Data(d) if d.contains("notifications/progress")),
        "{first:?}"
    );

    let mark = gw.proc.mark();
    gw.proc.signal(libc::SIGTERM);
    let events = reply
        .until_end()
        .await
        .unwrap_or_else(|e| panic!("the cut reply did not end cleanly: {e}"));
    let last = events
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("data: "))
        .map(|d| serde_json::from_str::<Value>(d.trim()).expect("JSON event"))
        .unwrap_or_else(|| panic!("no event after SIGTERM: {events:?}"));
    assert_eq!(last["id"], id, "{last}");
    let message = last["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("shutting down"), "{last}");
    assert_eq!(last["error"]["data"]["server"], "everything", "{last}");
    reply
        .closed_cleanly()
        .await
        .unwrap_or_else(|e| panic!("after the final chunk: {e}"));

    let status = tokio::task::block_in_place(|| gw.proc.wait_exit(EXIT_WAIT));
    assert!(
        status.success(),
        "exit status {status}\n{}",
        gw.proc.log_tail()
    );
    let drained = wait_log(&mut gw, mark, |l| l.contains("drained"));
    assert_eq!(field(&drained, "abandoned"), 1, "{drained}");
    assert_no_child_remains(pid, &children);
}

async fn a_second_signal_stops_at_once(driver: &str) {
    let mut cfg = config(&[("mock", mock_stdio(&["--faults"]))]);
    // Far longer than the test waits: only the second signal can end this drain in time.
    cfg["shutdown_grace_ms"] = json!(600_000);
    let mut gw = Gateway::start(driver, &cfg).await;
    let (pid, children) = (gw.proc.pid(), children(&gw));
    let client = gw.client().await;
    let mark = gw.proc.mark();
    let hanging = tokio::spawn(async move {
        let result = call(&client, "mock__fault_hang", json!({})).await;
        (client, result)
    });
    wait_log(&mut gw, mark, |l| l.contains("hangs (fault_hang)"));

    let mark = gw.proc.mark();
    gw.proc.signal(libc::SIGTERM);
    wait_log(&mut gw, mark, |l| l.contains("draining"));
    gw.proc.signal(libc::SIGTERM);
    let status = tokio::task::block_in_place(|| gw.proc.wait_exit(EXIT_WAIT));
    assert_eq!(status.code(), Some(1), "{}", gw.proc.log_tail());
    wait_log(&mut gw, mark, |l| l.contains("second stop signal"));
    assert_no_child_remains(pid, &children);
    // The hanging call's connection went with the process.
    let (_client, result) = within("the cut call", hanging).await.expect("call task");
    assert!(result.is_err(), "{result:?}");
}
