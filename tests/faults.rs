//! Upstreams failing under a running gateway: a stdio server killed with SIGKILL mid-call, an
//! HTTP upstream killed (mid-call and between calls) and started again on the same port, with
//! and without MCP sessions, and an upstream that never answers while other calls go on.
//!
//! Calls that must fail fast run against servers whose `timeout_ms` is far beyond the test's
//! own bound on a call, so a call that failed only by timing out would fail the test: no clock
//! is read to decide anything.

mod common;

use std::time::{Duration, Instant};

use common::procfs;
use common::*;
use serde_json::json;

both_drivers!(
    stdio_server_killed_mid_call_fails_fast_and_comes_back,
    http_upstream_killed_fails_fast_and_is_used_again_when_back,
    http_upstream_with_sessions_restarted_is_initialized_again,
    hung_upstream_times_out_while_other_calls_are_answered,
);

/// A `timeout_ms` no test call can reach (its own bound, `CALL_TIMEOUT`, is 60 s).
const NEVER_MS: u64 = 600_000;
/// The brief's bound for a killed stdio server to serve again (liveness, not a measurement:
/// the supervisor restarts it after a backoff of about 1 s).
const BACK_WITHIN: Duration = Duration::from_secs(5);

fn wait_log(proc: &mut Proc, mark: usize, what: impl Fn(&str) -> bool, bound: Duration) -> String {
    tokio::task::block_in_place(|| proc.wait_stderr_line_after(mark, what, bound))
}

fn assert_names(what: &str, error: &rmcp::model::ErrorData, server: &str) {
    assert_eq!(error.code.0, -32000, "{what}: {error:?}");
    assert!(
        error.message.contains(&format!("'{server}'")),
        "{what}: the error does not name {server:?}: {error:?}"
    );
}

async fn stdio_server_killed_mid_call_fails_fast_and_comes_back(driver: &str) {
    let mut mock = mock_stdio(&[]);
    mock["timeout_ms"] = json!(NEVER_MS);
    let mut gw = Gateway::start(driver, &config(&[("mock", mock)])).await;
    let child = procfs::children_and_their_groups(gw.proc.pid())
        .into_iter()
        .find(|p| p.ppid == gw.proc.pid())
        .expect("the stdio server runs as a child of the gateway");

    let client = gw.client().await;
    let mark = gw.proc.mark();
    let pending = tokio::spawn(async move {
        let result = call(&client, "mock__sleep", json!({ "ms": 60_000 })).await;
        (client, result)
    });
    wait_log(
        &mut gw.proc,
        mark,
        |l| l.contains("sleeps 60000 ms"),
        READY_TIMEOUT,
    );

    let mark = gw.proc.mark();
    // SAFETY: kill(2) on the gateway's child, alive (its call is in flight).
    assert_eq!(unsafe { libc::kill(child.pid as i32, libc::SIGKILL) }, 0);
    let (client, result) = pending.await.expect("call task");
    let error = mcp_error("a call whose server was killed", result);
    assert_names("a call whose server was killed", &error, "mock");
    assert!(
        error.message.contains("SIGKILL"),
        "the error does not say how the server ended: {error:?}"
    );

    // The supervisor starts it again; then it serves.
    let line = wait_log(
        &mut gw.proc,
        mark,
        |l| l.contains("stdio server ready") && l.contains("server=mock"),
        BACK_WITHIN,
    );
    assert!(!line.contains(&format!("pid={} ", child.pid)), "{line}");
    let echo = call_ok(&client, "mock__echo", json!({ "message": "back" })).await;
    assert_eq!(text_of(&echo), "back");
    close(client).await;
}

async fn http_upstream_killed_fails_fast_and_is_used_again_when_back(driver: &str) {
    let mut upstream = HttpUpstream::mock(&[]).await;
    let port = upstream.port();
    let mut remote = http_server(&upstream.url);
    remote["timeout_ms"] = json!(NEVER_MS);
    let gw = Gateway::start(
        driver,
        &config(&[("remote", remote), ("mock", mock_stdio(&[]))]),
    )
    .await;
    let client = gw.client().await;
    call_ok(&client, "remote__echo", json!({ "message": "before" })).await;

    // Killed with a call in flight: that call fails, and so does the next one.
    let mark = upstream.proc.mark();
    let in_flight = {
        let client = gw.client().await;
        tokio::spawn(async move {
            let result = call(&client, "remote__sleep", json!({ "ms": 60_000 })).await;
            (client, result)
        })
    };
    wait_log(
        &mut upstream.proc,
        mark,
        |l| l.contains("sleeps 60000 ms"),
        READY_TIMEOUT,
    );
    upstream.proc.signal(libc::SIGKILL);
    tokio::task::block_in_place(|| upstream.proc.wait_exit(READY_TIMEOUT));
    let (other, result) = in_flight.await.expect("call task");
    assert_names(
        "a call in flight when its server died",
        &mcp_error("in flight", result),
        "remote",
    );
    close(other).await;
    let started = Instant::now();
    let error = mcp_error(
        "a call to a dead server",
        call(&client, "remote__echo", json!({ "message": "x" })).await,
    );
    eprintln!(
        "a call to the dead server failed after {:?}",
        started.elapsed()
    );
    assert_names("a call to a dead server", &error, "remote");
    // Nothing else is affected.
    call_ok(&client, "mock__echo", json!({ "message": "unaffected" })).await;

    // Back on the same port: the next call goes through, nobody intervening.
    let _upstream = HttpUpstream::mock_on(port, &[]).await;
    let echo = call_ok(&client, "remote__echo", json!({ "message": "after" })).await;
    assert_eq!(text_of(&echo), "after");
    close(client).await;
}

async fn http_upstream_with_sessions_restarted_is_initialized_again(driver: &str) {
    // server-everything issues a session id at initialize; a restarted one knows none.
    let mut upstream = HttpUpstream::everything().await;
    let port = upstream.port();
    let mut remote = http_server(&upstream.url);
    remote["timeout_ms"] = json!(NEVER_MS);
    let mut gw = Gateway::start(driver, &config(&[("everything", remote)])).await;
    let client = gw.client().await;
    call_ok(&client, "everything__echo", json!({ "message": "before" })).await;

    upstream.proc.signal(libc::SIGKILL);
    tokio::task::block_in_place(|| upstream.proc.wait_exit(READY_TIMEOUT));
    let error = mcp_error(
        "a call to a dead server",
        call(&client, "everything__echo", json!({ "message": "x" })).await,
    );
    assert_names("a call to a dead server", &error, "everything");

    let mark = gw.proc.mark();
    let _upstream = HttpUpstream::everything_on(port).await;
    let echo = call_ok(
        &client,
        "everything__echo",
        json!({ "message": "after restart" }),
    )
    .await;
    assert!(text_of(&echo).contains("after restart"), "{echo:?}");
    // It got there by a new session, which the gateway set up by itself.
    wait_log(
        &mut gw.proc,
        mark,
        |l| l.contains("initializing again") && l.contains("everything"),
        READY_TIMEOUT,
    );
    close(client).await;
}

async fn hung_upstream_times_out_while_other_calls_are_answered(driver: &str) {
    let mut hang = mock_stdio(&["--faults"]);
    // Long enough that the other calls below are answered while it is pending, even on a slow
    // machine; short enough to keep the test short.
    hang["timeout_ms"] = json!(10_000);
    let mut gw = Gateway::start(
        driver,
        &config(&[("hang", hang), ("other", mock_stdio(&[]))]),
    )
    .await;
    let client = gw.client().await;
    let mark = gw.proc.mark();
    let hanging = {
        let client = gw.client().await;
        tokio::spawn(async move {
            let result = call(&client, "hang__fault_hang", json!({})).await;
            (client, result)
        })
    };
    let line = wait_log(
        &mut gw.proc,
        mark,
        |l| l.contains("hangs (fault_hang)") && l.contains("server=hang"),
        READY_TIMEOUT,
    );
    let upstream_id = mock_request_id(&line);

    // Meanwhile the gateway answers everything else: the other server, and the hung server's
    // own other calls.
    for i in 0..20 {
        let message = format!("meanwhile {i}");
        let echo = call_ok(&client, "other__echo", json!({ "message": message })).await;
        assert_eq!(text_of(&echo), message);
    }
    let echo = call_ok(&client, "hang__echo", json!({ "message": "same server" })).await;
    assert_eq!(text_of(&echo), "same server");
    assert!(
        !hanging.is_finished(),
        "the hung call ended before the other calls were answered"
    );

    let (other, result) = hanging.await.expect("call task");
    let error = mcp_error("the hung call", result);
    assert_eq!(error.code.0, -32001, "{error:?}");
    assert!(error.message.contains("'hang'"), "{error:?}");
    // The server is told to stop working on it (its id is unique in this log).
    wait_log(
        &mut gw.proc,
        0,
        |l| l.contains(&format!("cancelled: {{\"requestId\":{upstream_id},")),
        READY_TIMEOUT,
    );
    close(other).await;
    close(client).await;
}
