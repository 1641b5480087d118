//! The data plane end to end: the official Rust SDK (rmcp) as the client, the gateway in the
//! middle, and real upstream servers behind it — the reference server `server-everything`
//! over stdio and over streamable HTTP, and mcpgate's own mock upstream over stdio and HTTP.
//!
//! Results must be byte-faithful: every `tools/call` result through the gateway must equal
//! (serde equality of the whole `CallToolResult`) what the same upstream returns when rmcp calls
//! it directly.

#[macro_use]
mod common;

use common::*;
use rmcp::model::{PaginatedRequestParams, Tool};
use serde_json::{json, Value};

both_drivers!(
    lists_every_server_with_prefixes,
    everything_stdio_results_match_direct,
    everything_http_results_match_direct,
    mock_stdio_results_match_direct,
    mock_http_results_match_direct,
    tool_prefix_on_conflict,
    tool_prefix_never,
    pagination_lists_all_603_tools,
    default_config_serves_mock_tools,
);

/// The calls made on server-everything (argument names from its tool schemas:
/// `echo {message}`, `get-sum {a, b}`, `get-tiny-image {}`, `get-structured-content {location}`
/// with `location` one of "New York", "Chicago", "Los Angeles").
fn everything_calls() -> Vec<(&'static str, Value)> {
    vec![
        (
            "echo",
            json!({ "message": "hello through mcpgate: \"quotes\", \\backslash\\, tab\t, newline\n, unicode ✓ 🚀" }),
        ),
        ("get-sum", json!({ "a": 19, "b": 23.5 })),
        ("get-tiny-image", json!({})),
        ("get-structured-content", json!({ "location": "Chicago" })),
    ]
}

/// The calls made on the mock upstream.
fn mock_calls() -> Vec<(&'static str, Value)> {
    vec![
        (
            "echo",
            json!({ "message": "hello mock: \"quotes\", unicode ✓ 🚀, newline\n" }),
        ),
        ("add", json!({ "a": 2, "b": 40 })),
    ]
}

/// Every tool of `direct` (the upstream's own list) is exposed as `<server>__<tool>` and, apart
/// from the name, its definition (description, schemas, annotations, `_meta`) is untouched.
fn assert_exposed(gateway_tools: &[Tool], server: &str, direct: &[Tool]) {
    assert!(!direct.is_empty(), "{server} lists no tools directly");
    for tool in direct {
        let exposed_name = format!("{server}__{}", tool.name);
        let exposed = gateway_tools
            .iter()
            .find(|t| t.name == exposed_name)
            .unwrap_or_else(|| {
                panic!(
                    "gateway does not expose {exposed_name:?}; it lists {:?}",
                    names(gateway_tools)
                )
            });
        let mut renamed = exposed.clone();
        renamed.name = tool.name.clone();
        assert_eq!(
            serde_json::to_value(&renamed).unwrap(),
            serde_json::to_value(tool).unwrap(),
            "definition of {exposed_name} differs from the upstream's {:?}",
            tool.name
        );
    }
}

/// Makes each call directly and through the gateway (as `<server>__<tool>`) and requires the
/// two results to be equal.
async fn assert_calls_match(
    gateway: &Client,
    direct: &Client,
    server: &str,
    calls: &[(&str, Value)],
) {
    for (tool, args) in calls {
        let expected = call_ok(direct, tool, args.clone()).await;
        let exposed = format!("{server}__{tool}");
        let got = call_ok(gateway, &exposed, args.clone()).await;
        assert_eq!(
            serde_json::to_value(&got).unwrap(),
            serde_json::to_value(&expected).unwrap(),
            "{exposed} {args} through the gateway differs from {tool} called directly"
        );
    }
}

async fn direct_tools(client: Client) -> Vec<Tool> {
    let tools = list_tools(&client).await;
    close(client).await;
    tools
}

async fn lists_every_server_with_prefixes(driver: &str) {
    let everything_http = HttpUpstream::everything().await;
    let mock_http = HttpUpstream::mock(&[]).await;
    let gw = Gateway::start(
        driver,
        &config(&[
            ("everything", everything_stdio()),
            ("everything_http", http_server(&everything_http.url)),
            ("mock", mock_stdio(&[])),
            ("mock_http", http_server(&mock_http.url)),
        ]),
    )
    .await;
    let client = gw.client().await;
    let tools = list_tools(&client).await;
    assert_unique_names(&tools);

    assert_exposed(
        &tools,
        "everything",
        &direct_tools(connect_everything_stdio().await).await,
    );
    assert_exposed(
        &tools,
        "everything_http",
        &direct_tools(connect_http(&everything_http.url).await).await,
    );
    assert_exposed(
        &tools,
        "mock",
        &direct_tools(connect_mock_stdio(&[]).await).await,
    );
    assert_exposed(
        &tools,
        "mock_http",
        &direct_tools(connect_http(&mock_http.url).await).await,
    );

    let prefixes = ["everything__", "everything_http__", "mock__", "mock_http__"];
    for name in names(&tools) {
        assert!(
            prefixes.iter().any(|p| name.starts_with(p)),
            "{name:?} does not carry a server prefix"
        );
    }
    for fixed in [
        "mock__echo",
        "mock__add",
        "mock__sleep",
        "everything__get-sum",
    ] {
        assert!(
            names(&tools).iter().any(|n| n == fixed),
            "{fixed} not listed"
        );
    }
    close(client).await;
}

async fn everything_stdio_results_match_direct(driver: &str) {
    let gw = Gateway::start(driver, &config(&[("everything", everything_stdio())])).await;
    let client = gw.client().await;
    let direct = connect_everything_stdio().await;
    assert_exposed(
        &list_tools(&client).await,
        "everything",
        &list_tools(&direct).await,
    );
    assert_calls_match(&client, &direct, "everything", &everything_calls()).await;
    check_everything_results(&client, "everything").await;
    close(direct).await;
    close(client).await;
}

async fn everything_http_results_match_direct(driver: &str) {
    let upstream = HttpUpstream::everything().await;
    let gw = Gateway::start(driver, &config(&[("remote", http_server(&upstream.url))])).await;
    let client = gw.client().await;
    let direct = connect_http(&upstream.url).await;
    assert_exposed(
        &list_tools(&client).await,
        "remote",
        &list_tools(&direct).await,
    );
    assert_calls_match(&client, &direct, "remote", &everything_calls()).await;
    check_everything_results(&client, "remote").await;
    close(direct).await;
    close(client).await;
}

/// Sanity checks on what server-everything returns (so "equal to direct" cannot pass on two
/// equally empty results).
async fn check_everything_results(client: &Client, server: &str) {
    let echo = call_ok(
        client,
        &format!("{server}__echo"),
        json!({ "message": "ping ✓" }),
    )
    .await;
    assert_eq!(text_of(&echo), "Echo: ping ✓");

    let sum = call_ok(
        client,
        &format!("{server}__get-sum"),
        json!({ "a": 19, "b": 23.5 }),
    )
    .await;
    assert!(
        text_of(&sum).contains("42.5"),
        "get-sum said {:?}",
        text_of(&sum)
    );

    let image = call_ok(client, &format!("{server}__get-tiny-image"), json!({})).await;
    let image = serde_json::to_value(&image).unwrap();
    let blocks = image["content"].as_array().expect("content array");
    let png = blocks
        .iter()
        .find(|b| b["type"] == "image")
        .unwrap_or_else(|| panic!("no image block in {image}"));
    assert_eq!(png["mimeType"], "image/png");
    assert!(
        png["data"]
            .as_str()
            .is_some_and(|d| d.starts_with("iVBORw0KGgo")),
        "{png}"
    );

    let weather = call_ok(
        client,
        &format!("{server}__get-structured-content"),
        json!({ "location": "Los Angeles" }),
    )
    .await;
    assert_eq!(
        weather.structured_content,
        Some(json!({ "temperature": 73, "conditions": "Sunny / Clear", "humidity": 48 }))
    );
}

async fn mock_stdio_results_match_direct(driver: &str) {
    let gw = Gateway::start(driver, &config(&[("mock", mock_stdio(&[]))])).await;
    let client = gw.client().await;
    let direct = connect_mock_stdio(&[]).await;
    assert_exposed(
        &list_tools(&client).await,
        "mock",
        &list_tools(&direct).await,
    );
    assert_calls_match(&client, &direct, "mock", &mock_calls()).await;
    check_mock_results(&client, "mock").await;
    close(direct).await;
    close(client).await;
}

async fn mock_http_results_match_direct(driver: &str) {
    let upstream = HttpUpstream::mock(&[]).await;
    let gw = Gateway::start(
        driver,
        &config(&[("mock_http", http_server(&upstream.url))]),
    )
    .await;
    let client = gw.client().await;
    let direct = connect_http(&upstream.url).await;
    assert_exposed(
        &list_tools(&client).await,
        "mock_http",
        &list_tools(&direct).await,
    );
    assert_calls_match(&client, &direct, "mock_http", &mock_calls()).await;
    check_mock_results(&client, "mock_http").await;
    close(direct).await;
    close(client).await;
}

async fn check_mock_results(client: &Client, server: &str) {
    let echo = call_ok(
        client,
        &format!("{server}__echo"),
        json!({ "message": "ping ✓" }),
    )
    .await;
    assert!(
        text_of(&echo).contains("ping ✓"),
        "echo said {:?}",
        text_of(&echo)
    );
    let add = call_ok(
        client,
        &format!("{server}__add"),
        json!({ "a": 2, "b": 40 }),
    )
    .await;
    let sum = add
        .structured_content
        .as_ref()
        .and_then(|s| s["sum"].as_f64());
    assert_eq!(sum, Some(42.0), "add returned {add:?}");
}

/// `on_conflict`: only names that collide across servers get the prefix.
async fn tool_prefix_on_conflict(driver: &str) {
    let mut cfg = config(&[
        ("everything", everything_stdio()),
        ("mock", mock_stdio(&[])),
    ]);
    cfg["tool_prefix"] = json!("on_conflict");
    let gw = Gateway::start(driver, &cfg).await;
    let client = gw.client().await;
    let tools = list_tools(&client).await;
    assert_unique_names(&tools);
    let listed = names(&tools);
    let has = |n: &str| listed.iter().any(|l| l == n);

    // `echo` exists on both servers: both are prefixed, neither is exposed bare.
    assert!(has("everything__echo") && has("mock__echo"), "{listed:?}");
    assert!(
        !has("echo"),
        "colliding `echo` exposed unprefixed: {listed:?}"
    );
    // Names without a collision stay as the upstream named them.
    for bare in [
        "add",
        "sleep",
        "get-sum",
        "get-tiny-image",
        "get-structured-content",
    ] {
        assert!(
            has(bare),
            "{bare} should be exposed without a prefix: {listed:?}"
        );
    }
    for name in &listed {
        if name.starts_with("everything__") || name.starts_with("mock__") {
            assert!(
                name.ends_with("__echo"),
                "{name} is prefixed without a collision"
            );
        }
    }

    // Both forms route to the right upstream.
    let everything = call_ok(&client, "everything__echo", json!({ "message": "a" })).await;
    assert_eq!(text_of(&everything), "Echo: a");
    let direct_mock = connect_mock_stdio(&[]).await;
    for (exposed, tool, args) in [
        ("mock__echo", "echo", json!({ "message": "b" })),
        ("add", "add", json!({ "a": 1, "b": 2 })),
    ] {
        let got = call_ok(&client, exposed, args.clone()).await;
        let expected = call_ok(&direct_mock, tool, args).await;
        assert_eq!(
            serde_json::to_value(&got).unwrap(),
            serde_json::to_value(&expected).unwrap(),
            "{exposed}"
        );
    }
    let sum = call_ok(&client, "get-sum", json!({ "a": 1, "b": 2 })).await;
    assert!(text_of(&sum).contains('3'), "{sum:?}");
    close(direct_mock).await;
    close(client).await;
}

/// `never`: tools are exposed under their upstream names.
async fn tool_prefix_never(driver: &str) {
    let mut cfg = config(&[("everything", everything_stdio())]);
    cfg["tool_prefix"] = json!("never");
    let gw = Gateway::start(driver, &cfg).await;
    let client = gw.client().await;
    let tools = list_tools(&client).await;
    assert_unique_names(&tools);
    let direct = connect_everything_stdio().await;
    let direct_tools = list_tools(&direct).await;
    for tool in &direct_tools {
        let exposed = tools
            .iter()
            .find(|t| t.name == tool.name)
            .unwrap_or_else(|| panic!("{:?} not exposed bare: {:?}", tool.name, names(&tools)));
        assert_eq!(
            serde_json::to_value(exposed).unwrap(),
            serde_json::to_value(tool).unwrap()
        );
    }
    for name in names(&tools) {
        assert!(
            !name.contains("__"),
            "{name} carries a prefix in `never` mode"
        );
    }
    let args = json!({ "message": "never prefixed" });
    let got = call_ok(&client, "echo", args.clone()).await;
    let expected = call_ok(&direct, "echo", args).await;
    assert_eq!(
        serde_json::to_value(&got).unwrap(),
        serde_json::to_value(&expected).unwrap()
    );
    close(direct).await;
    close(client).await;
}

/// 600 synthetic tools + echo/add/sleep: the gateway follows the upstream's cursors and pages
/// its own `tools/list`; rmcp's `list_all_tools` sees all 603, once each.
async fn pagination_lists_all_603_tools(driver: &str) {
    let gw = Gateway::start(
        driver,
        &config(&[("mock", mock_stdio(&["--tools", "600"]))]),
    )
    .await;
    let client = gw.client().await;

    let direct = connect_mock_stdio(&["--tools", "600"]).await;
    let direct_tools = list_tools(&direct).await;
    close(direct).await;
    assert_eq!(
        direct_tools.len(),
        603,
        "the mock itself lists {}",
        direct_tools.len()
    );

    let tools = list_tools(&client).await;
    assert_unique_names(&tools);
    assert_eq!(tools.len(), 603, "gateway lists {} tools", tools.len());
    assert_exposed(&tools, "mock", &direct_tools);
    for i in [1, 2, 300, 599, 600] {
        let name = format!("mock__tool_{i:04}");
        assert!(tools.iter().any(|t| t.name == name), "{name} missing");
    }

    // Walk the pages by hand: the gateway paginates (opaque cursors) rather than sending one
    // 603-tool page, and every page's tools are distinct.
    let mut pages = 0;
    let mut seen = 0;
    let mut cursor = None;
    loop {
        let page = within(
            "tools/list page",
            client.list_tools(Some(PaginatedRequestParams::default().with_cursor(cursor))),
        )
        .await
        .unwrap_or_else(|e| panic!("tools/list page {pages}: {e}"));
        pages += 1;
        seen += page.tools.len();
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
        assert!(pages < 1000, "tools/list never ends");
    }
    assert_eq!(seen, 603);
    assert!(pages > 1, "tools/list returned all 603 tools in one page");
    close(client).await;
}

/// The README's start command: `mcpgate serve` with no `--config`, in a directory without a
/// config file, serves the built-in default (the mock upstream over stdio and over HTTP).
async fn default_config_serves_mock_tools(driver: &str) {
    let gw = Gateway::start_default_config(driver).await;
    let client = gw.client().await;
    let tools = list_tools(&client).await;
    assert_unique_names(&tools);
    let echoes: Vec<String> = names(&tools)
        .into_iter()
        .filter(|n| n.ends_with("__echo"))
        .collect();
    assert!(
        echoes.len() >= 2,
        "the default config should serve the mock over stdio and over HTTP (two echo tools); got {:?}",
        names(&tools)
    );
    for echo in &echoes {
        let message = format!("default config via {echo}");
        let result = call_ok(&client, echo, json!({ "message": message })).await;
        assert!(text_of(&result).contains(&message), "{echo}: {result:?}");
    }
    close(client).await;
}
