//! Stateless MCP 2026-07-28 clients (no `initialize`, no session; revision, capabilities and
//! method carried by every request) served beside handshake-era clients on one gateway.
//! The upstream is the reference server-everything over stdio.

#[macro_use]
mod common;

use common::raw_http::{self, Response, ACCEPT_BOTH};
use common::*;
use rmcp::model::{CallToolRequestParams, ProtocolVersion};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientLifecycleMode, ClientServiceExt};
use serde_json::{json, Value};

both_drivers!(
    sdk_client_without_session_beside_a_handshake_client,
    raw_requests_follow_the_revision,
    refusals_are_the_revisions_errors,
    handshake_clients_are_served_as_before,
);

const REVISION: &str = "2026-07-28";

async fn gateway(driver: &str) -> Gateway {
    Gateway::start(driver, &config(&[("everything", everything_stdio())])).await
}

/// The `_meta` every 2026-07-28 request carries.
fn meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": REVISION,
        "io.modelcontextprotocol/clientInfo": { "name": "mcpgate-stateless-test", "version": "0" },
        "io.modelcontextprotocol/clientCapabilities": {}
    })
}

/// A request body with `params` (an object) plus the revision's `_meta`.
fn body(id: u64, method: &str, mut params: Value) -> Vec<u8> {
    params["_meta"] = meta();
    json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params })
        .to_string()
        .into_bytes()
}

/// POSTs `body` with the revision's headers (`Mcp-Name` when `name` is given), no session.
async fn post(addr: &str, method: &str, name: Option<&str>, body: &[u8]) -> Response {
    let mut headers = vec![
        ("Content-Type", "application/json"),
        ("Accept", ACCEPT_BOTH),
        ("MCP-Protocol-Version", REVISION),
        ("Mcp-Method", method),
    ];
    if let Some(name) = name {
        headers.push(("Mcp-Name", name));
    }
    raw_http::post(addr, &headers, body).await
}

fn assert_error(response: &Response, status: u16, code: i64, what: &str) -> Value {
    assert_eq!(response.status, status, "{what}: {response:?}");
    let reply = response.jsonrpc();
    assert_eq!(reply["error"]["code"], code, "{what}: {reply}");
    reply
}

/// rmcp's own 2026-07-28 client (`server/discover`, then per-request `_meta` and headers)
/// lists and calls tools with no session, while a handshake client uses the same gateway.
async fn sdk_client_without_session_beside_a_handshake_client(driver: &str) {
    let gw = gateway(driver).await;
    let legacy = gw.client().await;
    let transport = http_transport(StreamableHttpClientTransportConfig::with_uri(
        gw.url.as_str(),
    ));
    let lifecycle = ClientLifecycleMode::Discover {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
    };
    let modern = within(
        "rmcp discover",
        ().serve_with_lifecycle(transport, lifecycle),
    )
    .await
    .unwrap_or_else(|e| panic!("rmcp 2026-07-28 client: {e}\n{}", gw.proc.log_tail()));
    let info = modern.peer_info().expect("discovered server info");
    assert_eq!(info.protocol_version, ProtocolVersion::V_2026_07_28);
    assert!(info.capabilities.tools.is_some(), "{info:?}");

    let tools = within("modern tools/list", modern.list_all_tools())
        .await
        .expect("modern tools/list");
    assert!(
        names(&tools).contains(&"everything__echo".to_string()),
        "{:?}",
        names(&tools)
    );
    for (who, client) in [("modern", &modern), ("handshake", &legacy)] {
        let message = format!("{who} says {}", unique_token());
        let result = within(
            "echo",
            client.call_tool(
                CallToolRequestParams::new("everything__echo").with_arguments(
                    json!({ "message": message })
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                ),
            ),
        )
        .await
        .unwrap_or_else(|e| panic!("{who} echo: {e}"));
        assert!(text_of(&result).contains(&message), "{who}: {result:?}");
    }
    close(modern).await;
    close(legacy).await;
}

/// The revision on the wire: `server/discover`'s shape, list results with `resultType` and
/// cache hints, a call routed by `Mcp-Name`, and never a session id.
async fn raw_requests_follow_the_revision(driver: &str) {
    let gw = gateway(driver).await;
    let addr = gw.addr();

    let response = post(
        &addr,
        "server/discover",
        None,
        &body(1, "server/discover", json!({})),
    )
    .await;
    assert_eq!(response.status, 200, "{response:?}");
    assert!(response.header("mcp-session-id").is_none(), "{response:?}");
    let result = &response.jsonrpc()["result"];
    assert_eq!(result["resultType"], "complete", "{result}");
    assert_eq!(result["supportedVersions"][0], REVISION, "{result}");
    assert!(
        result["supportedVersions"]
            .as_array()
            .is_some_and(|v| v.iter().any(|v| v == "2025-03-26")),
        "{result}"
    );
    assert_eq!(result["serverInfo"]["name"], "mcpgate", "{result}");
    assert!(result["capabilities"]["tools"].is_object(), "{result}");

    let response = post(&addr, "tools/list", None, &body(2, "tools/list", json!({}))).await;
    assert_eq!(response.status, 200, "{response:?}");
    let reply = response.jsonrpc();
    assert_eq!(reply["id"], 2, "{reply}");
    assert_eq!(reply["result"]["resultType"], "complete", "{reply}");
    assert_eq!(reply["result"]["cacheScope"], "private", "{reply}");
    assert!(reply["result"]["ttlMs"].is_u64(), "{reply}");
    assert!(
        reply["result"]["tools"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["name"] == "everything__get-sum")),
        "{reply}"
    );

    let call = body(
        3,
        "tools/call",
        json!({ "name": "everything__get-sum", "arguments": { "a": 40, "b": 2 } }),
    );
    let response = post(&addr, "tools/call", Some("everything__get-sum"), &call).await;
    assert_eq!(response.status, 200, "{response:?}");
    assert!(response.header("mcp-session-id").is_none(), "{response:?}");
    let reply = response.jsonrpc();
    assert_eq!(reply["id"], 3, "{reply}");
    assert_eq!(reply["result"]["resultType"], "complete", "{reply}");
    assert!(reply["result"].to_string().contains("42"), "{reply}");
}

/// Requests that break the revision's rules get its errors, with the statuses it names.
async fn refusals_are_the_revisions_errors(driver: &str) {
    let gw = gateway(driver).await;
    let addr = gw.addr();
    let call = body(
        1,
        "tools/call",
        json!({ "name": "everything__echo", "arguments": { "message": "x" } }),
    );

    let response = post(&addr, "tools/call", None, &call).await;
    let reply = assert_error(&response, 400, -32020, "no Mcp-Name");
    assert_eq!(reply["id"], 1, "{reply}");
    let response = post(&addr, "tools/call", Some("everything__get-sum"), &call).await;
    assert_error(&response, 400, -32020, "Mcp-Name of another tool");
    let response = post(&addr, "tools/list", Some("everything__echo"), &call).await;
    assert_error(&response, 400, -32020, "Mcp-Method other than the body's");

    let bare = json!({ "jsonrpc": "2.0", "id": 4, "method": "tools/list", "params": {} });
    let response = post(&addr, "tools/list", None, bare.to_string().as_bytes()).await;
    let reply = assert_error(&response, 400, -32602, "no _meta");
    let message = reply["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("clientCapabilities"), "{reply}");

    let headers = [
        ("Content-Type", "application/json"),
        ("Accept", ACCEPT_BOTH),
        ("MCP-Protocol-Version", "2099-01-01"),
        ("Mcp-Method", "tools/list"),
    ];
    let response = raw_http::post(&addr, &headers, &body(5, "tools/list", json!({}))).await;
    let reply = assert_error(&response, 400, -32022, "unknown revision");
    assert_eq!(reply["error"]["data"]["requested"], "2099-01-01", "{reply}");
    assert_eq!(reply["error"]["data"]["supported"][0], REVISION, "{reply}");

    let response = post(&addr, "ping", None, &body(6, "ping", json!({}))).await;
    assert_error(&response, 404, -32601, "ping, removed in the revision");

    let batch = format!(
        "[{}]",
        String::from_utf8_lossy(&body(7, "tools/list", json!({})))
    );
    let response = post(&addr, "tools/list", None, batch.as_bytes()).await;
    let reply = assert_error(&response, 400, -32600, "batch");
    let message = reply["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("2026-07-28"), "{reply}");

    gw.assert_echo_works("everything__echo").await;
}

/// A handshake-era client is untouched: without a session it is refused as before, and
/// `initialize` asking for 2026-07-28 is answered with the newest handshake revision.
async fn handshake_clients_are_served_as_before(driver: &str) {
    let gw = gateway(driver).await;
    let addr = gw.addr();
    let list = json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list" });
    let headers = [
        ("Content-Type", "application/json"),
        ("Accept", ACCEPT_BOTH),
    ];
    let response = raw_http::post(&addr, &headers, list.to_string().as_bytes()).await;
    let reply = assert_error(&response, 400, -32600, "no session, no revision");
    let message = reply["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("Mcp-Session-Id"), "{reply}");

    let init = json!({
        "jsonrpc": "2.0", "id": 2, "method": "initialize",
        "params": {
            "protocolVersion": REVISION, "capabilities": {},
            "clientInfo": { "name": "asks-for-2026", "version": "0" }
        }
    });
    let response = raw_http::post(&addr, &headers, init.to_string().as_bytes()).await;
    assert_eq!(response.status, 200, "{response:?}");
    assert!(response.header("mcp-session-id").is_some(), "{response:?}");
    let reply = response.jsonrpc();
    assert_eq!(reply["result"]["protocolVersion"], "2025-11-25", "{reply}");

    let session = raw_http::RawSession::open_at(&addr, "2025-11-25").await;
    let reply = session.request("ping", json!({})).await;
    assert!(reply["result"].is_object(), "{reply}");
}
