//! A server whose tools change tells the gateway (`notifications/tools/list_changed`); the
//! gateway lists it again, serves the new tools, and tells every client on its `GET /mcp`
//! stream. The server is a small one on the official TypeScript SDK whose `grow` tool adds a
//! tool (the SDK then sends the notification by itself).

mod common;

use common::raw_http::{build_request, RawSession};
use common::*;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

fn growing_server() -> serde_json::Value {
    let path = repo_root().join("tests/fixtures/growing-tools-server.mjs");
    stdio_server("node", &[&path.to_string_lossy()])
}

/// Reads the stream's lines until one contains `needle`.
async fn read_until<R: tokio::io::AsyncBufRead + Unpin>(lines: &mut R, needle: &str) {
    within(&format!("a stream line with {needle:?}"), async {
        let mut line = String::new();
        loop {
            line.clear();
            let n = lines.read_line(&mut line).await.expect("read the stream");
            assert!(n > 0, "the stream ended before {needle:?}");
            if line.contains(needle) {
                return;
            }
        }
    })
    .await
}

fn tool_names(list: &serde_json::Value) -> Vec<String> {
    list["result"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect()
}

both_drivers!(a_changed_tool_list_reaches_connected_clients);

async fn a_changed_tool_list_reaches_connected_clients(driver: &str) {
    let gw = Gateway::start(driver, &config(&[("dyn", growing_server())])).await;
    let session = RawSession::open(&gw.addr()).await;
    let before = tool_names(&session.request("tools/list", json!({})).await);
    assert_eq!(before, ["dyn__grow"]);

    // A client listening on its GET stream (open once its first comment arrives).
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

    let grown = session
        .request("tools/call", json!({"name": "dyn__grow", "arguments": {}}))
        .await;
    assert_eq!(grown["result"]["content"][0]["text"], "added grown-1");
    read_until(&mut stream, "notifications/tools/list_changed").await;

    // The gateway listed the server again before telling anyone.
    let after = tool_names(&session.request("tools/list", json!({})).await);
    assert_eq!(after, ["dyn__grow", "dyn__grown-1"]);
    let answer = session
        .request(
            "tools/call",
            json!({"name": "dyn__grown-1", "arguments": {}}),
        )
        .await;
    assert_eq!(answer["result"]["content"][0]["text"], "grown-1 answers");
}
