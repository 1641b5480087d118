//! Limits through the gateway: a key's rate limit (429 + `Retry-After`), budgets with per-tool
//! pricing, a team budget shared by two keys, a key's cap on calls in flight and the cap on
//! open streams. Clients are the official Rust SDK (rmcp) and raw HTTP.

mod common;

use common::raw_http::{
    build_request, initialize_body, send_raw, RawSession, ACCEPT_BOTH, PROTOCOL_VERSION,
};
use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const RATED: &str = "rated-key-8c1f4e7a2d9b3650";
const THRIFTY: &str = "thrifty-key-2e9a6c1d7f4b8035";
const HENRY: &str = "henry-key-6d3b9f2a1e7c4058";
const IRIS: &str = "iris-key-1a5e8c3f9b2d7064";
const SOLO: &str = "solo-key-9f7e2b4c6a1d3085";

fn limited_config() -> Value {
    let mut ledger = node_fixture_stdio("ledger-server.mjs");
    ledger["tool_pricing"] = json!({ "echo": 2 });
    let mut cfg = config(&[("ledger", ledger), ("mock", mock_stdio(&["--faults"]))]);
    cfg["virtual_keys"] = json!([
        // One request per 100 s after a burst of 3: nothing refills during the test.
        { "name": "rated", "key": RATED, "grants": { "ledger": ["*"] },
          "rate_limit": { "per_second": 0.01, "burst": 3 } },
        { "name": "thrifty", "key": THRIFTY, "grants": { "ledger": ["*"] },
          "budget": { "calls_per_day": 3 } },
        { "name": "henry", "key": HENRY, "team": "duo", "grants": { "ledger": ["*"] } },
        { "name": "iris", "key": IRIS, "team": "duo", "grants": { "ledger": ["*"] } },
        { "name": "solo", "key": SOLO, "grants": { "mock": ["*"] }, "max_concurrent_calls": 1 }
    ]);
    cfg["teams"] = json!({ "duo": { "budget": { "calls_per_hour": 2 } } });
    cfg
}

async fn initialize_with(addr: &str, key: &str) -> common::raw_http::Response {
    let headers = [
        ("Content-Type", "application/json"),
        ("Accept", ACCEPT_BOTH),
        ("x-api-key", key),
    ];
    send_raw(
        addr,
        build_request(
            "POST",
            "/mcp",
            addr,
            &headers,
            &initialize_body(PROTOCOL_VERSION),
        ),
    )
    .await
}

/// The JSON-RPC error of a refused call, checked to be the limit error (-32029).
fn limit_error(
    what: &str,
    result: Result<rmcp::model::CallToolResult, rmcp::service::ServiceError>,
) -> String {
    let error = mcp_error(what, result);
    assert_eq!(error.code.0, -32029, "{what}: {error:?}");
    error.message.to_string()
}

both_drivers!(a_rate_limited_key_gets_429_after_its_burst);

async fn a_rate_limited_key_gets_429_after_its_burst(driver: &str) {
    let gw = Gateway::start(driver, &limited_config()).await;
    let addr = gw.addr();
    for i in 0..3 {
        let ok = initialize_with(&addr, RATED).await;
        assert_eq!(ok.status, 200, "request {i} of the burst: {ok:?}");
    }
    let limited = initialize_with(&addr, RATED).await;
    assert_eq!(limited.status, 429, "{limited:?}");
    let retry: u64 = limited
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("429 without a numeric Retry-After: {limited:?}"));
    assert!((1..=100).contains(&retry), "Retry-After {retry}");
    let body = limited.body_text();
    assert!(
        body.contains("key \\\"rated\\\"") && body.contains("rate limit"),
        "{body}"
    );
    // Other keys are not held back by it.
    assert_eq!(initialize_with(&addr, THRIFTY).await.status, 200);
}

both_drivers!(a_budget_runs_out_and_says_so);

async fn a_budget_runs_out_and_says_so(driver: &str) {
    let gw = Gateway::start(driver, &limited_config()).await;
    let thrifty = connect_http_with_key(&gw.url, THRIFTY).await;
    // 3 units a day; echo costs 2 (tool_pricing), record 1.
    call_ok(&thrifty, "ledger__echo", json!({ "message": "a" })).await;
    let refused = limit_error(
        "a second echo (2 units, 1 left)",
        call(&thrifty, "ledger__echo", json!({ "message": "b" })).await,
    );
    assert!(
        refused.contains("budget")
            && refused.contains("key \"thrifty\"")
            && refused.contains("per day"),
        "{refused}"
    );
    call_ok(&thrifty, "ledger__record", json!({ "tag": "last-unit" })).await;
    let refused = limit_error(
        "a call with nothing left",
        call(&thrifty, "ledger__recorded", json!({})).await,
    );
    assert!(refused.contains("budget"), "{refused}");
    // Listing is not a tool call: it costs nothing.
    assert_eq!(list_tools(&thrifty).await.len(), 3);
    close(thrifty).await;
}

both_drivers!(a_team_budget_caps_two_keys_together);

async fn a_team_budget_caps_two_keys_together(driver: &str) {
    let gw = Gateway::start(driver, &limited_config()).await;
    let henry = connect_http_with_key(&gw.url, HENRY).await;
    let iris = connect_http_with_key(&gw.url, IRIS).await;
    call_ok(&henry, "ledger__record", json!({ "tag": "henry" })).await;
    call_ok(&iris, "ledger__record", json!({ "tag": "iris" })).await;
    for (who, client) in [("henry", &henry), ("iris", &iris)] {
        let refused = limit_error(
            &format!("{who} after the team's 2 calls"),
            call(client, "ledger__record", json!({ "tag": who })).await,
        );
        assert!(refused.contains("team \"duo\""), "{refused}");
    }
    // The refused calls never reached the server.
    let other = connect_http_with_key(&gw.url, THRIFTY).await;
    let ledger = call_ok(&other, "ledger__recorded", json!({})).await;
    assert_eq!(text_of(&ledger), r#"["henry","iris"]"#);
    close(henry).await;
    close(iris).await;
    close(other).await;
}

both_drivers!(calls_in_flight_are_capped_per_key);

async fn calls_in_flight_are_capped_per_key(driver: &str) {
    let mut gw = Gateway::start(driver, &limited_config()).await;
    let holder = connect_http_with_key(&gw.url, SOLO).await;
    let probe = connect_http_with_key(&gw.url, SOLO).await;
    let mark = gw.proc.mark();
    // `fault_hang` never answers; the mock logs (into the gateway's log) that it got it, so
    // the call is known to be in flight before the probe is sent.
    let held = tokio::spawn(async move {
        let result = call(&holder, "mock__fault_hang", json!({})).await;
        (holder, result)
    });
    gw.proc
        .wait_stderr_line_after(mark, |l| l.contains("hangs (fault_hang)"), READY_TIMEOUT);
    let refused = limit_error(
        "a second call while one is in flight",
        call(&probe, "mock__echo", json!({ "message": "probe" })).await,
    );
    assert!(
        refused.contains("in flight") && refused.contains("\"solo\""),
        "{refused}"
    );
    held.abort();
    close(probe).await;
}

both_drivers!(open_streams_are_capped);

async fn open_streams_are_capped(driver: &str) {
    let mut cfg = config(&[("mock", mock_stdio(&[]))]);
    cfg["max_streams_per_key"] = json!(1);
    let gw = Gateway::start(driver, &cfg).await;
    let first = RawSession::open(&gw.addr()).await;
    let second = RawSession::open(&gw.addr()).await;
    let get = |session: &RawSession| {
        let mut headers = session.headers();
        headers.retain(|(n, _)| *n != "Content-Type" && *n != "Accept");
        headers.push(("Accept", "text/event-stream".to_string()));
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        build_request("GET", "/mcp", &gw.addr(), &headers, b"")
    };
    // The first stream is open once its head has arrived.
    let mut open = tokio::net::TcpStream::connect(gw.addr())
        .await
        .expect("connect");
    open.write_all(&get(&first)).await.expect("GET /mcp");
    let mut head = Vec::new();
    within("the first stream's head", async {
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            let n = open.read(&mut byte).await.expect("read");
            assert!(n > 0, "the stream closed");
            head.push(byte[0]);
        }
    })
    .await;
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let refused = send_raw(&gw.addr(), get(&second)).await;
    assert_eq!(refused.status, 429, "{refused:?}");
    assert!(
        refused.body_text().contains("max_streams_per_key"),
        "{}",
        refused.body_text()
    );
    drop(open);
}
