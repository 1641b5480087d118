//! What servers announce outside calls reaches clients on their `GET /mcp` streams:
//! - a server whose tools change tells the gateway (`notifications/tools/list_changed`); the
//!   gateway lists it again, serves the new tools, and tells every client;
//! - a server's `notifications/resources/updated` reaches the sessions that subscribed to that
//!   resource, under the URI they subscribed with, and no other session;
//! - a server that floods `list_changed` (20000 in one go) costs the gateway one pending entry,
//!   not a queue: it is listed again at most twice for the whole flood, the gateway serves on,
//!   and clients see the list the server ends with.
//!
//! The server is a small one on the official TypeScript SDK (tests/fixtures/changing-server.mjs):
//! its `grow` tool adds a tool (the SDK then sends the notification by itself), and its `touch`
//! tool changes a subscribable resource, and its `flood` tool misbehaves. It runs over stdio, and over streamable HTTP, where it
//! announces the change on its own `GET` stream, which the gateway follows.

mod common;

use common::admin::Admin;
use common::raw_http::{build_request, RawSession};
use common::*;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

fn changing_server() -> serde_json::Value {
    let path = repo_root().join("tests/fixtures/changing-server.mjs");
    stdio_server("node", &[&path.to_string_lossy()])
}

/// Reads the stream's lines until `pick` takes one, and returns what it took.
async fn read_line_where<R: tokio::io::AsyncBufRead + Unpin, T>(
    lines: &mut R,
    what: &str,
    pick: impl Fn(&str) -> Option<T>,
) -> T {
    within(what, async {
        let mut line = String::new();
        loop {
            line.clear();
            let n = lines.read_line(&mut line).await.expect("read the stream");
            assert!(n > 0, "the stream ended before {what}");
            if let Some(picked) = pick(&line) {
                return picked;
            }
        }
    })
    .await
}

/// Reads the stream's lines until one contains `needle`.
async fn read_until<R: tokio::io::AsyncBufRead + Unpin>(lines: &mut R, needle: &str) {
    let what = format!("a stream line with {needle:?}");
    read_line_where(lines, &what, |l| l.contains(needle).then_some(())).await
}

/// `grow` through `session`; its stream hears of the list change, and the new tool is listed.
async fn grow_and_see_it_announced<R: tokio::io::AsyncBufRead + Unpin>(
    session: &RawSession,
    stream: &mut R,
) {
    let grown = session
        .request("tools/call", json!({"name": "dyn__grow", "arguments": {}}))
        .await;
    assert_eq!(grown["result"]["content"][0]["text"], "added grown-1");
    read_until(stream, "notifications/tools/list_changed").await;
    // The gateway listed the server again before telling anyone.
    let after = tool_names(&session.request("tools/list", json!({})).await);
    assert_eq!(
        after,
        with_fixed_tools(&["dyn__grow", "dyn__grown-1", "dyn__touch"])
    );
}

/// `names` with the fixture's `flood` and `listed`, sorted.
fn with_fixed_tools(names: &[&str]) -> Vec<String> {
    let mut all: Vec<String> = ["dyn__flood", "dyn__listed"]
        .iter()
        .chain(names)
        .map(|n| n.to_string())
        .collect();
    all.sort();
    all
}

fn tool_names(list: &serde_json::Value) -> Vec<String> {
    let mut names: Vec<String> = list["result"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// `session`'s `GET /mcp` stream, once open (its first comment has arrived).
async fn open_stream(gw: &Gateway, session: &RawSession) -> BufReader<tokio::net::TcpStream> {
    let mut headers = session.headers();
    headers.retain(|(n, _)| *n != "Content-Type" && *n != "Accept");
    headers.push(("Accept", "text/event-stream".to_string()));
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let mut conn = tokio::net::TcpStream::connect(gw.addr())
        .await
        .expect("connect");
    conn.write_all(&build_request("GET", "/mcp", &gw.addr(), &headers, b""))
        .await
        .expect("GET /mcp");
    let mut stream = BufReader::new(conn);
    read_until(&mut stream, "mcpgate stream open").await;
    stream
}

/// The next `data:` line of the stream.
async fn next_data<R: tokio::io::AsyncBufRead + Unpin>(lines: &mut R) -> String {
    read_line_where(lines, "the next event", |l| {
        l.strip_prefix("data: ").map(|d| d.trim_end().to_owned())
    })
    .await
}

both_drivers!(resource_updates_reach_their_subscribers_only);

async fn resource_updates_reach_their_subscribers_only(driver: &str) {
    let gw = Gateway::start(driver, &config(&[("dyn", changing_server())])).await;
    let subscriber = RawSession::open(&gw.addr()).await;
    let bystander = RawSession::open(&gw.addr()).await;
    let mut subscribed = open_stream(&gw, &subscriber).await;
    let mut other = open_stream(&gw, &bystander).await;

    let uri = "mcpgate://dyn/note://counter";
    let listed = subscriber.request("resources/list", json!({})).await;
    assert_eq!(listed["result"]["resources"][0]["uri"], uri);
    let ok = subscriber
        .request("resources/subscribe", json!({ "uri": uri }))
        .await;
    assert_eq!(ok["result"], json!({}));

    let touched = bystander
        .request("tools/call", json!({"name": "dyn__touch", "arguments": {}}))
        .await;
    assert_eq!(touched["result"]["content"][0]["text"], "counter is 1");
    let update: serde_json::Value =
        serde_json::from_str(&next_data(&mut subscribed).await).expect("JSON");
    assert_eq!(
        update,
        json!({"jsonrpc": "2.0", "method": "notifications/resources/updated", "params": {"uri": uri}})
    );

    // The bystander's next event is the tool list change that follows, not the update.
    bystander
        .request("tools/call", json!({"name": "dyn__grow", "arguments": {}}))
        .await;
    let next = next_data(&mut other).await;
    assert!(next.contains("notifications/tools/list_changed"), "{next}");

    // Unsubscribed: the next touch is not announced; the list change after it is.
    subscriber
        .request("resources/unsubscribe", json!({ "uri": uri }))
        .await;
    let _ = next_data(&mut subscribed).await; // the list change of `grow`
    bystander
        .request("tools/call", json!({"name": "dyn__touch", "arguments": {}}))
        .await;
    bystander
        .request("tools/call", json!({"name": "dyn__grow", "arguments": {}}))
        .await;
    let next = next_data(&mut subscribed).await;
    assert!(next.contains("notifications/tools/list_changed"), "{next}");
}

both_drivers!(a_changed_tool_list_reaches_connected_clients);

async fn a_changed_tool_list_reaches_connected_clients(driver: &str) {
    let gw = Gateway::start(driver, &config(&[("dyn", changing_server())])).await;
    let session = RawSession::open(&gw.addr()).await;
    let before = tool_names(&session.request("tools/list", json!({})).await);
    assert_eq!(before, with_fixed_tools(&["dyn__grow", "dyn__touch"]));
    let mut stream = open_stream(&gw, &session).await;
    grow_and_see_it_announced(&session, &mut stream).await;
    let answer = session
        .request(
            "tools/call",
            json!({"name": "dyn__grown-1", "arguments": {}}),
        )
        .await;
    assert_eq!(answer["result"]["content"][0]["text"], "grown-1 answers");
}

both_drivers!(an_http_servers_list_change_on_its_own_stream_reaches_clients);

async fn an_http_servers_list_change_on_its_own_stream_reaches_clients(driver: &str) {
    let server = HttpUpstream::node_fixture("changing-server.mjs").await;
    let mut gw = Gateway::start(driver, &config(&[("dyn", http_server(&server.url))])).await;
    gw.wait_following_get_stream();
    let session = RawSession::open(&gw.addr()).await;
    let mut stream = open_stream(&gw, &session).await;
    grow_and_see_it_announced(&session, &mut stream).await;
}

both_drivers!(legacy_sse_clients_hear_of_list_changes_too);

async fn legacy_sse_clients_hear_of_list_changes_too(driver: &str) {
    let gw = Gateway::start(driver, &config(&[("dyn", changing_server())])).await;
    let mut conn = tokio::net::TcpStream::connect(gw.addr())
        .await
        .expect("connect");
    let get = build_request(
        "GET",
        "/sse",
        &gw.addr(),
        &[("Accept", "text/event-stream")],
        b"",
    );
    conn.write_all(&get).await.expect("GET /sse");
    let mut legacy = BufReader::new(conn);
    read_until(&mut legacy, "/messages?session_id=").await;

    let session = RawSession::open(&gw.addr()).await;
    session
        .request("tools/call", json!({"name": "dyn__grow", "arguments": {}}))
        .await;
    read_until(&mut legacy, "notifications/tools/list_changed").await;
}

/// How many times the fixture has answered `tools/list` (its `listed` tool).
async fn times_listed(session: &RawSession) -> u64 {
    let reply = session
        .request(
            "tools/call",
            json!({"name": "dyn__listed", "arguments": {}}),
        )
        .await;
    let text = reply["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("listed: {reply}"));
    text.strip_prefix("tools/list answered ")
        .and_then(|t| t.strip_suffix(" times"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("listed: {text:?}"))
}

/// Calls `dyn__flood`; once it answers, the server has sent every notice of the flood and
/// then added `dyn__flooded`.
async fn flood(session: &RawSession) {
    let flooded = session
        .request("tools/call", json!({"name": "dyn__flood", "arguments": {}}))
        .await;
    assert_eq!(
        flooded["result"]["content"][0]["text"], "sent 20000 list changes",
        "{flooded}"
    );
}

/// Waits until the client's `tools/list` shows the tool the flood ended with, and calls it.
async fn flooded_tool_is_served(session: &RawSession) {
    poll_until("the tool added after the flood is listed", || async {
        let names = tool_names(&session.request("tools/list", json!({})).await);
        names.iter().any(|n| n == "dyn__flooded").then_some(())
    })
    .await;
    let answer = session
        .request(
            "tools/call",
            json!({"name": "dyn__flooded", "arguments": {}}),
        )
        .await;
    assert_eq!(answer["result"]["content"][0]["text"], "flooded answers");
}

const ADMIN_TOKEN: &str = "admin-token-for-list-changed-0123456789";

both_drivers!(a_stdio_server_flooding_list_changes_is_listed_again_at_most_twice);

async fn a_stdio_server_flooding_list_changes_is_listed_again_at_most_twice(driver: &str) {
    let mut cfg = config(&[("dyn", changing_server())]);
    cfg["admin"] = json!({ "listen": "127.0.0.1:0", "token": "${ADMIN_TOKEN}" });
    let mut gw = Gateway::start_with_env(driver, &cfg, &[("ADMIN_TOKEN", ADMIN_TOKEN)]).await;
    let admin = Admin::of(&mut gw, Some(ADMIN_TOKEN));
    let session = RawSession::open(&gw.addr()).await;
    let mut stream = open_stream(&gw, &session).await;
    let before = times_listed(&session).await;

    flood(&session).await;
    // The flood's reply followed every notice on the child's stdout, so each was reported by
    // now. The registry keeper answers the admin API in turn with the rest of its work: had it
    // queued the notices, it would answer after listing the server once for each of them.
    let unchanged = admin.set_tool("dyn__grow", true).await;
    assert_eq!(unchanged["changed"], false, "{unchanged}");
    let listings = times_listed(&session).await - before;
    assert!(
        listings <= 2,
        "20000 list changes made the gateway list the server {listings} times"
    );

    flooded_tool_is_served(&session).await;
    read_until(&mut stream, "notifications/tools/list_changed").await;
}

both_drivers!(an_http_server_flooding_list_changes_on_its_stream_ends_with_its_last_list);

async fn an_http_server_flooding_list_changes_on_its_stream_ends_with_its_last_list(driver: &str) {
    let server = HttpUpstream::node_fixture("changing-server.mjs").await;
    let mut gw = Gateway::start(driver, &config(&[("dyn", http_server(&server.url))])).await;
    gw.wait_following_get_stream();
    let session = RawSession::open(&gw.addr()).await;
    flood(&session).await;
    flooded_tool_is_served(&session).await;
    // The gateway serves on, the server's other tools too.
    let grown = session
        .request("tools/call", json!({"name": "dyn__grow", "arguments": {}}))
        .await;
    assert_eq!(grown["result"]["content"][0]["text"], "added grown-1");
}
