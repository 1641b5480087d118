//! Bad input from clients (raw HTTP, byte for byte) and bad behaviour from upstream servers.
//! Each test checks the specified error and then that the gateway still serves a normal call.

#[macro_use]
mod common;

use common::raw_http::{self, RawSession};
use common::*;
use serde_json::{json, Value};

both_drivers!(
    malformed_json_is_parse_error,
    wrong_content_type_is_415,
    missing_or_unsuitable_accept_is_406,
    forged_or_unknown_session_is_404,
    unknown_tool_is_invalid_params,
    body_over_configured_limit_is_413,
    body_over_default_limit_is_413,
    malformed_request_line_is_400,
    upstream_exiting_mid_call_is_error_naming_it,
    upstream_printing_garbage_still_answers,
    garbage_only_upstream_fails_alone,
    hung_upstream_times_out,
    dead_http_upstream_fails_alone,
);

/// The gateway most tests use: the mock with its fault tools, and a second, healthy mock.
async fn gateway(driver: &str) -> Gateway {
    Gateway::start(
        driver,
        &config(&[
            ("mock", mock_stdio(&["--faults"])),
            ("healthy", mock_stdio(&[])),
        ]),
    )
    .await
}

/// `tools/call` of an echo tool on a raw session; the reply must carry the message.
async fn raw_echo_ok(session: &RawSession, tool: &str) {
    let message = format!("raw session still serving {}", unique_token());
    let reply = session
        .request(
            "tools/call",
            json!({ "name": tool, "arguments": { "message": message } }),
        )
        .await;
    assert!(reply.get("error").is_none(), "{tool}: {reply}");
    assert_ne!(reply["result"]["isError"], true, "{tool}: {reply}");
    assert!(
        reply["result"].to_string().contains(&message),
        "{tool}: {reply}"
    );
}

/// A session's request body for `mock__echo` with `message`.
fn echo_body(session: &RawSession, message: &str) -> Vec<u8> {
    session
        .request_body(
            "tools/call",
            json!({ "name": "mock__echo", "arguments": { "message": message } }),
        )
        .1
}

fn assert_jsonrpc_error(reply: &Value, code: i64, what: &str) {
    assert_eq!(reply["jsonrpc"], "2.0", "{what}: {reply}");
    assert_eq!(reply["error"]["code"], code, "{what}: {reply}");
    assert!(reply["error"]["message"].is_string(), "{what}: {reply}");
}

async fn malformed_json_is_parse_error(driver: &str) {
    let gw = gateway(driver).await;
    let session = RawSession::open(&gw.addr()).await;
    for body in [
        &b"{\"jsonrpc\": \"2.0\", \"id\": 7, \"method\": "[..],
        b"not json at all",
        b"{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"ping\"}}",
        b"\xff\xfe\x00garbage",
    ] {
        let response = session.post(body).await;
        let what = format!("body {:?}", String::from_utf8_lossy(body));
        assert_eq!(response.status, 400, "{what}: {response:?}");
        let reply = response.jsonrpc();
        assert_jsonrpc_error(&reply, -32700, &what);
        assert!(reply["id"].is_null(), "{what}: id must be null: {reply}");
        raw_echo_ok(&session, "mock__echo").await;
    }
    gw.assert_echo_works("mock__echo").await;
}

async fn wrong_content_type_is_415(driver: &str) {
    let gw = gateway(driver).await;
    let session = RawSession::open(&gw.addr()).await;
    for content_type in [
        "text/plain",
        "application/xml",
        "application/x-www-form-urlencoded",
    ] {
        let body = echo_body(&session, "wrong content type");
        let response = session
            .post_with(&[("Content-Type", Some(content_type))], &body)
            .await;
        assert_eq!(
            response.status, 415,
            "Content-Type {content_type}: {response:?}"
        );
        raw_echo_ok(&session, "mock__echo").await;
    }
    gw.assert_echo_works("mock__echo").await;
}

async fn missing_or_unsuitable_accept_is_406(driver: &str) {
    let gw = gateway(driver).await;
    let session = RawSession::open(&gw.addr()).await;
    for accept in [None, Some("text/html"), Some("image/png")] {
        let body = echo_body(&session, "bad accept");
        let response = session.post_with(&[("Accept", accept)], &body).await;
        assert_eq!(response.status, 406, "Accept {accept:?}: {response:?}");
        raw_echo_ok(&session, "mock__echo").await;
    }
    // Any Accept that admits application/json is served.
    for accept in [
        "application/json",
        "*/*",
        "application/json;q=0.9, text/event-stream",
    ] {
        let body = echo_body(&session, "good accept");
        let response = session.post_with(&[("Accept", Some(accept))], &body).await;
        assert_eq!(response.status, 200, "Accept {accept:?}: {response:?}");
        assert!(
            response.jsonrpc()["result"].is_object(),
            "Accept {accept:?}: {response:?}"
        );
    }
    // Also before any session exists: an initialize without Accept.
    let init = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": { "protocolVersion": raw_http::PROTOCOL_VERSION, "capabilities": {},
                    "clientInfo": { "name": "t", "version": "0" } }
    });
    let response = raw_http::post(
        &gw.addr(),
        &[("Content-Type", "application/json")],
        init.to_string().as_bytes(),
    )
    .await;
    assert_eq!(
        response.status, 406,
        "initialize without Accept: {response:?}"
    );
    gw.assert_echo_works("mock__echo").await;
}

async fn forged_or_unknown_session_is_404(driver: &str) {
    let gw = gateway(driver).await;
    let session = RawSession::open(&gw.addr()).await;
    let real = session.session_id.clone();
    // The real id with one character changed (a forged MAC or payload), a truncated one, ones
    // made up. The changed character is never the last one, which in base64 may carry only
    // padding bits.
    let mutate = |at: usize| -> String {
        let mut chars: Vec<char> = real.chars().collect();
        chars[at] = if chars[at] == 'A' { 'B' } else { 'A' };
        chars.into_iter().collect()
    };
    assert!(
        real.len() >= 4,
        "session id {real:?} is too short to be a MAC'd token"
    );
    let forged_head = mutate(real.len() / 4);
    let forged_tail = mutate(real.len() - 2);
    let truncated = real[..real.len() / 2].to_string();
    let extended = format!("{real}A");
    for bad in [
        forged_head.as_str(),
        forged_tail.as_str(),
        truncated.as_str(),
        extended.as_str(),
        "0123456789abcdef",
        "x",
    ] {
        assert_ne!(bad, real);
        let body = echo_body(&session, "forged session");
        let response = session
            .post_with(&[("Mcp-Session-Id", Some(bad))], &body)
            .await;
        assert_eq!(response.status, 404, "Mcp-Session-Id {bad:?}: {response:?}");
    }
    raw_echo_ok(&session, "mock__echo").await;
    gw.assert_echo_works("mock__echo").await;
}

async fn unknown_tool_is_invalid_params(driver: &str) {
    let gw = gateway(driver).await;
    let session = RawSession::open(&gw.addr()).await;
    for name in ["mock__no_such_tool", "no_such_server__echo", "echo", ""] {
        let reply = session
            .request(
                "tools/call",
                json!({ "name": name, "arguments": { "message": "x" } }),
            )
            .await;
        assert_jsonrpc_error(&reply, -32602, &format!("tools/call {name:?}"));
    }
    raw_echo_ok(&session, "mock__echo").await;

    // The same through rmcp.
    let client = gw.client().await;
    let error = mcp_error(
        "unknown tool via rmcp",
        call(&client, "mock__no_such_tool", json!({})).await,
    );
    assert_eq!(error.code.0, -32602, "{error:?}");
    close(client).await;
    gw.assert_echo_works("mock__echo").await;
}

async fn body_over_configured_limit_is_413(driver: &str) {
    let mut cfg = config(&[("mock", mock_stdio(&[]))]);
    cfg["max_body_bytes"] = json!(65536);
    let gw = Gateway::start(driver, &cfg).await;
    let session = RawSession::open(&gw.addr()).await;

    let big = "x".repeat(70_000);
    let response = session.post(&echo_body(&session, &big)).await;
    assert_eq!(
        response.status, 413,
        "70 kB body over a 64 KiB limit: {:?}",
        response.status
    );

    // Just under the limit is served in full.
    let fits = "y".repeat(60_000);
    let body = echo_body(&session, &fits);
    assert!(body.len() < 65536);
    let response = session.post(&body).await;
    assert_eq!(response.status, 200, "60 kB body under a 64 KiB limit");
    let reply = response.jsonrpc();
    assert!(
        reply["result"].to_string().contains(&fits),
        "60 kB echo not returned whole"
    );

    raw_echo_ok(&session, "mock__echo").await;
    gw.assert_echo_works("mock__echo").await;
}

async fn body_over_default_limit_is_413(driver: &str) {
    let gw = Gateway::start(driver, &config(&[("mock", mock_stdio(&[]))])).await;
    let session = RawSession::open(&gw.addr()).await;

    let big = "x".repeat(4 * 1024 * 1024 + 4096);
    let response = session.post(&echo_body(&session, &big)).await;
    assert_eq!(response.status, 413, "body over the default 4 MiB limit");

    // 1 MiB is well under the default and round-trips intact.
    let fits = "z".repeat(1024 * 1024);
    let response = session.post(&echo_body(&session, &fits)).await;
    assert_eq!(response.status, 200, "1 MiB body under the default limit");
    let reply = response.jsonrpc();
    assert!(
        reply["result"].to_string().contains(&fits),
        "1 MiB echo not returned whole"
    );

    raw_echo_ok(&session, "mock__echo").await;
    gw.assert_echo_works("mock__echo").await;
}

async fn malformed_request_line_is_400(driver: &str) {
    let gw = gateway(driver).await;
    let addr = gw.addr();
    let requests: [&[u8]; 4] = [
        b"THIS IS NOT HTTP\r\n\r\n",
        b"POST /mcp HTTP/1.1 trailing junk\r\nHost: x\r\n\r\n",
        b"POST\r\n\r\n",
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n",
    ];
    for request in requests {
        let response = raw_http::send_raw(&addr, request.to_vec()).await;
        assert_eq!(
            response.status,
            400,
            "request {:?}: {response:?}",
            String::from_utf8_lossy(request)
        );
    }
    // A header line without a colon.
    let mut request = b"POST /mcp HTTP/1.1\r\nHost: ".to_vec();
    request.extend_from_slice(addr.as_bytes());
    request.extend_from_slice(b"\r\nthis header has no colon\r\nContent-Length: 2\r\n\r\n{}");
    let response = raw_http::send_raw(&addr, request).await;
    assert_eq!(response.status, 400, "header without a colon: {response:?}");

    let session = RawSession::open(&addr).await;
    raw_echo_ok(&session, "mock__echo").await;
    gw.assert_echo_works("mock__echo").await;
}

/// The error in a failed call must be a JSON-RPC error with one of `codes` whose message names
/// `server`.
fn assert_upstream_error(what: &str, error: &rmcp::model::ErrorData, codes: &[i32], server: &str) {
    assert!(
        codes.contains(&error.code.0),
        "{what}: error code {} not one of {codes:?}: {error:?}",
        error.code.0
    );
    assert!(
        error.message.contains(server),
        "{what}: error message does not name server {server:?}: {error:?}"
    );
}

async fn upstream_exiting_mid_call_is_error_naming_it(driver: &str) {
    let mut gw = gateway(driver).await;
    let client = gw.client().await;
    let mark = gw.proc.mark();
    let error = mcp_error(
        "mock__fault_exit",
        call(&client, "mock__fault_exit", json!({})).await,
    );
    assert_upstream_error("mock__fault_exit", &error, &[-32000], "mock");
    // The other server was never affected.
    let echo = call_ok(&client, "healthy__echo", json!({ "message": "unaffected" })).await;
    assert!(text_of(&echo).contains("unaffected"));
    close(client).await;
    gw.assert_echo_works("healthy__echo").await;
    // The supervisor restarts the dead server (after its backoff; the event is the gateway's
    // log line that the server is ready again), and then it serves calls again.
    let line = gw.proc.wait_stderr_line_after(
        mark,
        |l| l.contains("ready") && l.contains("server=mock"),
        READY_TIMEOUT,
    );
    eprintln!("gateway reported: {line}");
    gw.assert_echo_works("mock__echo").await;
}

async fn upstream_printing_garbage_still_answers(driver: &str) {
    let gw = gateway(driver).await;
    let client = gw.client().await;
    // The mock prints a non-JSON line on stdout, then the real reply: the gateway skips the
    // garbage and delivers the reply.
    let result = call_ok(&client, "mock__fault_garbage", json!({})).await;
    assert!(!result.content.is_empty(), "{result:?}");
    // And the same upstream session keeps working.
    let echo = call_ok(&client, "mock__echo", json!({ "message": "after garbage" })).await;
    assert!(text_of(&echo).contains("after garbage"));
    close(client).await;
    gw.assert_echo_works("mock__echo").await;
}

async fn garbage_only_upstream_fails_alone(driver: &str) {
    let mut garbage = stdio_server("sh", &["-c", "while read l; do echo garbage; done"]);
    garbage["timeout_ms"] = json!(2000);
    let mut gw = Gateway::start(
        driver,
        &config(&[("garbage", garbage), ("mock", mock_stdio(&[]))]),
    )
    .await;
    // The gateway reports the failed server in its log...
    let line = gw.proc.wait_stderr_line(
        |l| {
            let l = l.to_ascii_lowercase();
            l.contains("garbage")
                && [
                    "fail",
                    "error",
                    "invalid",
                    "unavailable",
                    "timed out",
                    "timeout",
                ]
                .iter()
                .any(|w| l.contains(w))
        },
        READY_TIMEOUT,
    );
    eprintln!("gateway reported: {line}");
    // ...serves the other server's tools and none of the failed one's...
    let client = gw.client().await;
    let tools = list_tools(&client).await;
    assert!(
        names(&tools).iter().all(|n| !n.starts_with("garbage__")),
        "{:?}",
        names(&tools)
    );
    assert!(names(&tools).iter().any(|n| n == "mock__echo"));
    // ...and a call addressed to the failed server gets an error naming it.
    let error = mcp_error(
        "garbage__echo",
        call(&client, "garbage__echo", json!({ "message": "x" })).await,
    );
    assert_upstream_error(
        "garbage__echo",
        &error,
        &[-32000, -32001, -32602],
        "garbage",
    );
    close(client).await;
    gw.assert_echo_works("mock__echo").await;
}

async fn hung_upstream_times_out(driver: &str) {
    let mut hanging = mock_stdio(&["--faults"]);
    hanging["timeout_ms"] = json!(1500);
    let gw = Gateway::start(driver, &config(&[("mock", hanging)])).await;
    let client = gw.client().await;
    let error = mcp_error(
        "mock__fault_hang",
        call(&client, "mock__fault_hang", json!({})).await,
    );
    assert_upstream_error("mock__fault_hang", &error, &[-32001], "mock");
    // The upstream itself is fine; only that call was abandoned.
    let echo = call_ok(&client, "mock__echo", json!({ "message": "after timeout" })).await;
    assert!(text_of(&echo).contains("after timeout"));
    close(client).await;
    gw.assert_echo_works("mock__echo").await;
}

async fn dead_http_upstream_fails_alone(driver: &str) {
    // A port that is bound but not listening: connections to it are refused, and no other
    // process can take it while the socket lives.
    let reserved =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    reserved
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .expect("bind");
    let port = reserved
        .local_addr()
        .expect("local addr")
        .as_socket()
        .expect("inet")
        .port();
    let mut dead = http_server(&format!("http://127.0.0.1:{port}/mcp"));
    dead["timeout_ms"] = json!(2000);
    let gw = Gateway::start(
        driver,
        &config(&[("dead", dead), ("mock", mock_stdio(&[]))]),
    )
    .await;
    let client = gw.client().await;
    let tools = list_tools(&client).await;
    assert!(names(&tools).iter().any(|n| n == "mock__echo"));
    let error = mcp_error(
        "dead__echo",
        call(&client, "dead__echo", json!({ "message": "x" })).await,
    );
    assert_upstream_error("dead__echo", &error, &[-32000, -32001, -32602], "dead");
    close(client).await;
    gw.assert_echo_works("mock__echo").await;
    drop(reserved);
}
