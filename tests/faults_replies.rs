//! Broken replies from an HTTP upstream: an HTTP 500, bodies cut short (by `Content-Length`,
//! mid-chunk, mid-SSE-event), a body that is not JSON, and a connection closed without a
//! reply. Each call fails at once with a JSON-RPC error naming the server, and the server stays
//! usable for the next call. (Broken stdio replies, garbage lines and a server that exits
//! mid-call, are in `bad_input.rs`.)
//!
//! The upstream is `common::broken_http`, a server written byte by byte for this.

mod common;

use common::broken_http::{BrokenHttp, FAULTS};
use common::*;
use serde_json::json;

both_drivers!(broken_http_replies_fail_the_call_naming_the_server);

async fn broken_http_replies_fail_the_call_naming_the_server(driver: &str) {
    let broken = BrokenHttp::start().await;
    let mut server = http_server(&broken.url);
    // Beyond the test's own bound on a call: each failure must come from the broken reply, not
    // from a timeout.
    server["timeout_ms"] = json!(600_000);
    let gw = Gateway::start(
        driver,
        &config(&[("broken", server), ("mock", mock_stdio(&[]))]),
    )
    .await;
    let client = gw.client().await;
    for (tool, what) in FAULTS {
        let name = format!("broken__{tool}");
        let error = mcp_error(what, call(&client, &name, json!({})).await);
        eprintln!("{tool}: {}", error.message);
        assert_eq!(error.code.0, -32000, "{what}: {error:?}");
        assert!(
            error.message.contains("'broken'"),
            "{what}: the error does not name the server: {error:?}"
        );
        let says = match *tool {
            "status_500" => "HTTP 500: the broken server failed",
            "not_json" => "not JSON",
            _ => "connection",
        };
        assert!(error.message.contains(says), "{what}: {error:?}");
        // The next call to the same server goes through.
        let echo = call_ok(&client, "broken__echo", json!({ "message": tool })).await;
        assert_eq!(text_of(&echo), *tool);
    }
    close(client).await;
    gw.assert_echo_works("mock__echo").await;
}
