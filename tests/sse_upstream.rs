//! Legacy HTTP+SSE upstreams (`"type": "sse"`): the reference server `server-everything`
//! started in its SSE mode behind the gateway. What it lists and answers through the gateway
//! must equal what the same server answers directly (over stdio); when it dies, calls fail at
//! once naming it, and when it comes back on its port the gateway reconnects by itself; a
//! server that is down at start joins once it comes up.

#[macro_use]
mod common;

use common::*;
use rmcp::model::Tool;
use serde_json::{json, Value};

both_drivers!(
    sse_server_lists_and_answers_like_direct,
    sse_server_restart_is_reconnected,
    sse_server_down_at_start_joins_when_it_comes_up,
);

const SERVER: &str = "legacy";

/// Calls whose results do not depend on the transport or the moment.
fn calls() -> Vec<(&'static str, Value)> {
    vec![
        (
            "echo",
            json!({ "message": "through legacy SSE: \"quotes\", \\backslash\\, newline\n, unicode ✓ 🚀" }),
        ),
        ("get-sum", json!({ "a": 19, "b": 23.5 })),
        ("get-tiny-image", json!({})),
        ("get-structured-content", json!({ "location": "Chicago" })),
    ]
}

/// `tools` with the `legacy__` prefix taken off, as JSON, in name order.
fn unprefixed(tools: &[Tool]) -> Vec<Value> {
    let mut out: Vec<Value> = tools
        .iter()
        .map(|t| {
            let mut t = t.clone();
            let name = t
                .name
                .strip_prefix(&format!("{SERVER}__"))
                .unwrap_or_else(|| panic!("{} is not prefixed with {SERVER}__", t.name))
                .to_string();
            t.name = name.into();
            serde_json::to_value(&t).expect("tool as JSON")
        })
        .collect();
    out.sort_by_key(|t| t["name"].as_str().map(str::to_owned));
    out
}

async fn sse_server_lists_and_answers_like_direct(driver: &str) {
    let upstream = SseEverything::start().await;
    let gw = Gateway::start(driver, &config(&[(SERVER, sse_server(&upstream.url))])).await;
    let through = gw.client().await;
    let direct = connect_everything_stdio().await;

    // Every tool, and nothing else, under its prefixed name with its definition untouched.
    let mut expected =
        serde_json::to_value(everything_tools_as_gateway_sees_them().await).expect("tools as JSON");
    let expected = expected.as_array_mut().expect("an array");
    expected.sort_by_key(|t| t["name"].as_str().map(str::to_owned));
    assert!(!expected.is_empty(), "server-everything lists no tools");
    assert_eq!(&unprefixed(&list_tools(&through).await), expected);

    for (tool, args) in calls() {
        let want = call_ok(&direct, tool, args.clone()).await;
        let got = call_ok(&through, &format!("{SERVER}__{tool}"), args.clone()).await;
        assert_eq!(
            serde_json::to_value(&got).expect("result as JSON"),
            serde_json::to_value(&want).expect("result as JSON"),
            "{tool} {args} through the SSE upstream differs from the direct call"
        );
    }

    let direct_prompts = within("direct prompts/list", direct.list_all_prompts())
        .await
        .expect("direct prompts/list");
    let prompts = within("prompts/list", through.list_all_prompts())
        .await
        .expect("prompts/list through the gateway");
    let mut want: Vec<String> = direct_prompts
        .iter()
        .map(|p| format!("{SERVER}__{}", p.name))
        .collect();
    let mut got: Vec<String> = prompts.iter().map(|p| p.name.clone()).collect();
    want.sort();
    got.sort();
    assert!(!want.is_empty(), "server-everything lists no prompts");
    assert_eq!(got, want);

    close(through).await;
    close(direct).await;
}

async fn sse_server_restart_is_reconnected(driver: &str) {
    let upstream = SseEverything::start().await;
    let port = upstream.port;
    let mut gw = Gateway::start(driver, &config(&[(SERVER, sse_server(&upstream.url))])).await;
    let echo = format!("{SERVER}__echo");
    gw.assert_echo_works(&echo).await;
    let client = gw.client().await;

    // The server dies: once the gateway has seen its stream end, calls fail at once, naming it.
    let mark = gw.proc.mark();
    drop(upstream);
    gw.proc.wait_stderr_line_after(
        mark,
        |l| l.contains("SSE stream ended") && l.contains(SERVER),
        READY_TIMEOUT,
    );
    let error = mcp_error(
        "echo while the server is down",
        call(&client, &echo, json!({ "message": "anyone there?" })).await,
    );
    assert_eq!(error.code.0, -32000, "not an unavailable error: {error:?}");
    assert!(
        error.message.contains(SERVER) && error.message.contains("unavailable"),
        "the error does not say the server is unavailable: {error:?}"
    );

    // It comes back on the same port: the gateway reconnects and handshakes by itself, and
    // the same client session calls it again.
    let mark = gw.proc.mark();
    let _upstream = SseEverything::start_on(port).await;
    gw.proc.wait_stderr_line_after(
        mark,
        |l| l.contains("SSE upstream ready") && l.contains(SERVER),
        READY_TIMEOUT,
    );
    let result = call_ok(&client, &echo, json!({ "message": "back again" })).await;
    assert_eq!(text_of(&result), "Echo: back again");
    close(client).await;
}

async fn sse_server_down_at_start_joins_when_it_comes_up(driver: &str) {
    let port = free_port();
    let mut late = sse_server(&format!("http://127.0.0.1:{port}/sse"));
    late["timeout_ms"] = json!(1000);
    let mut gw = Gateway::start(
        driver,
        &config(&[(SERVER, late), ("mock", mock_stdio(&[]))]),
    )
    .await;
    let client = gw.client().await;
    let tools = names(&list_tools(&client).await);
    assert!(
        tools.iter().all(|n| !n.starts_with("legacy__")),
        "{tools:?}"
    );
    assert!(tools.iter().any(|n| n == "mock__echo"), "{tools:?}");

    let mark = gw.proc.mark();
    let _upstream = SseEverything::start_on(port).await;
    gw.proc.wait_stderr_line_after(
        mark,
        |l| l.contains("came up") && l.contains(SERVER),
        READY_TIMEOUT,
    );
    let client = gw.client().await;
    let tools = names(&list_tools(&client).await);
    assert!(tools.iter().any(|n| n == "legacy__get-sum"), "{tools:?}");
    let result = call_ok(&client, "legacy__get-sum", json!({ "a": 2, "b": 40 })).await;
    assert!(text_of(&result).contains("42"), "{result:?}");
    close(client).await;
}
