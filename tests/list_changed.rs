//! What servers announce outside calls reaches clients on their `GET /mcp` streams:
//! - a server whose tools change tells the gateway (`notifications/tools/list_changed`); the
//!   gateway lists it again, serves the new tools, and tells every client;
//! - a server's `notifications/resources/updated` reaches the sessions that subscribed to that
//!   resource, under the URI they subscribed with, and no other session.
//!
//! The server is a small one on the official TypeScript SDK (tests/fixtures/changing-server.mjs):
//! its `grow` tool adds a tool (the SDK then sends the notification by itself), and its `touch`
//! tool changes a subscribable resource. It runs over stdio, and over streamable HTTP, where it
//! announces the change on its own `GET` stream, which the gateway follows.

mod common;

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
    assert_eq!(after, ["dyn__grow", "dyn__grown-1", "dyn__touch"]);
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
    assert_eq!(before, ["dyn__grow", "dyn__touch"]);
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
    // The gateway follows the server's GET stream once its session is up.
    tokio::task::block_in_place(|| {
        gw.proc.wait_stderr_line(
            |l| l.contains("following the server's GET stream"),
            std::time::Duration::from_secs(20),
        )
    });
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
