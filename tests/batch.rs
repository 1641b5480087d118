//! JSON-RPC batches: served for sessions that negotiated 2025-03-26 (the one revision with
//! them), refused with a clear error for later ones. Raw HTTP, byte for byte; the upstreams
//! are the mock and server-everything over stdio.

#[macro_use]
mod common;

use common::raw_http::{RawSession, Response};
use common::*;
use serde_json::{json, Value};

both_drivers!(
    mixed_batch_is_answered_in_order,
    batch_of_notifications_is_202,
    batch_on_a_later_revision_is_refused,
    oversized_and_empty_batches_are_refused,
    streaming_call_in_a_batch_answers_over_sse,
);

const BATCH_REVISION: &str = "2025-03-26";

async fn gateway(driver: &str) -> Gateway {
    Gateway::start(
        driver,
        &config(&[
            ("mock", mock_stdio(&[])),
            ("everything", everything_stdio()),
        ]),
    )
    .await
}

fn request(id: u64, method: &str, params: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params })
}

async fn post_batch(session: &RawSession, batch: &[Value]) -> Response {
    session
        .post(Value::from(batch.to_vec()).to_string().as_bytes())
        .await
}

fn error_message(reply: &Value) -> String {
    reply["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A request, a notification, a malformed message, another request and an `initialize`:
/// one JSON array with a reply per request and per bad message, in request order.
async fn mixed_batch_is_answered_in_order(driver: &str) {
    let gw = gateway(driver).await;
    let session = RawSession::open_at(&gw.addr(), BATCH_REVISION).await;
    let message = format!("batched {}", unique_token());
    let batch = [
        request(
            10,
            "tools/call",
            json!({ "name": "mock__echo", "arguments": { "message": message } }),
        ),
        json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }),
        json!({ "id": 11, "method": "ping" }),
        request(12, "tools/list", json!({})),
        request(
            13,
            "initialize",
            json!({ "protocolVersion": BATCH_REVISION, "capabilities": {},
                    "clientInfo": { "name": "x", "version": "0" } }),
        ),
    ];
    let response = post_batch(&session, &batch).await;
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(
        response.header("content-type"),
        Some("application/json"),
        "{response:?}"
    );
    let replies: Vec<Value> =
        serde_json::from_slice(&response.body).expect("a JSON array of replies");
    assert_eq!(replies.len(), 4, "{replies:?}");

    assert_eq!(replies[0]["id"], 10, "{replies:?}");
    assert!(
        replies[0]["result"].to_string().contains(&message),
        "{replies:?}"
    );
    assert_eq!(replies[1]["error"]["code"], -32600, "{replies:?}");
    assert!(replies[1]["id"].is_null(), "{replies:?}");
    assert_eq!(replies[2]["id"], 12, "{replies:?}");
    assert!(replies[2]["result"]["tools"].is_array(), "{replies:?}");
    assert_eq!(replies[3]["id"], 13, "{replies:?}");
    assert_eq!(replies[3]["error"]["code"], -32600, "{replies:?}");
    assert!(
        error_message(&replies[3]).contains("initialize"),
        "{replies:?}"
    );
}

/// Notifications and responses only: nothing to answer, 202 with no body.
async fn batch_of_notifications_is_202(driver: &str) {
    let gw = gateway(driver).await;
    let session = RawSession::open_at(&gw.addr(), BATCH_REVISION).await;
    let batch = [
        json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }),
        json!({ "jsonrpc": "2.0", "method": "notifications/cancelled",
                "params": { "requestId": 99, "reason": "test" } }),
        json!({ "jsonrpc": "2.0", "id": 424242, "result": {} }),
    ];
    let response = post_batch(&session, &batch).await;
    assert_eq!(response.status, 202, "{response:?}");
    assert!(response.body.is_empty(), "{response:?}");
}

/// A 2025-06-18 session (batching was removed in that revision) is told so, and keeps
/// working with single messages.
async fn batch_on_a_later_revision_is_refused(driver: &str) {
    let gw = gateway(driver).await;
    let session = RawSession::open_at(&gw.addr(), "2025-06-18").await;
    let response = post_batch(&session, &[request(1, "ping", json!({}))]).await;
    assert_eq!(response.status, 400, "{response:?}");
    let reply = response.jsonrpc();
    assert_eq!(reply["error"]["code"], -32600, "{reply}");
    let message = error_message(&reply);
    assert!(
        message.contains("2025-03-26") && message.contains("2025-06-18"),
        "{reply}"
    );
    let reply = session.request("ping", json!({})).await;
    assert!(reply["result"].is_object(), "{reply}");
}

/// More messages than the limit, and no messages at all: one -32600 error each.
async fn oversized_and_empty_batches_are_refused(driver: &str) {
    let gw = gateway(driver).await;
    let session = RawSession::open_at(&gw.addr(), BATCH_REVISION).await;
    let pings: Vec<Value> = (0..101).map(|i| request(i, "ping", json!({}))).collect();
    let response = post_batch(&session, &pings).await;
    assert_eq!(response.status, 400, "{response:?}");
    let reply = response.jsonrpc();
    assert_eq!(reply["error"]["code"], -32600, "{reply}");
    assert!(error_message(&reply).contains("at most 100"), "{reply}");

    let response = post_batch(&session, &[]).await;
    assert_eq!(response.status, 400, "{response:?}");
    let reply = response.jsonrpc();
    assert_eq!(reply["error"]["code"], -32600, "{reply}");
    assert!(reply["id"].is_null(), "{reply}");

    // The limit itself is fine.
    let response = post_batch(&session, &pings[..100]).await;
    assert_eq!(response.status, 200, "{response:?}");
    let replies: Vec<Value> = serde_json::from_slice(&response.body).expect("JSON array");
    assert_eq!(replies.len(), 100);
}

/// A call that reports progress makes the batch's reply an SSE stream: the finished replies,
/// the call's progress (under the client's own token), then the call's reply.
async fn streaming_call_in_a_batch_answers_over_sse(driver: &str) {
    let gw = gateway(driver).await;
    let session = RawSession::open_at(&gw.addr(), BATCH_REVISION).await;
    let batch = [
        request(
            20,
            "tools/call",
            json!({ "name": "everything__trigger-long-running-operation",
                    "arguments": { "duration": 0.2, "steps": 2 },
                    "_meta": { "progressToken": "batch-progress" } }),
        ),
        request(21, "ping", json!({})),
    ];
    let response = post_batch(&session, &batch).await;
    assert_eq!(response.status, 200, "{response:?}");
    let content_type = response.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{response:?}"
    );
    let text = response.body_text();
    let events: Vec<Value> = text
        .split("\n\n")
        .filter_map(|e| {
            let data: Vec<&str> = e.lines().filter_map(|l| l.strip_prefix("data:")).collect();
            (!data.is_empty()).then(|| serde_json::from_str(data.join("\n").trim()))
        })
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("SSE data is not JSON ({e}): {text}"));
    let position = |pred: &dyn Fn(&Value) -> bool| events.iter().position(pred);
    let ping = position(&|e| e["id"] == 21 && e["result"].is_object());
    let progress = position(&|e| {
        e["method"] == "notifications/progress" && e["params"]["progressToken"] == "batch-progress"
    });
    let call = position(&|e| e["id"] == 20 && e["result"].is_object());
    assert!(ping.is_some(), "{text}");
    assert!(progress.is_some(), "{text}");
    assert!(call > progress, "the call's reply ends its stream: {text}");
    let result = &events[call.unwrap_or_default()]["result"];
    assert!(result.to_string().contains("completed"), "{result}");
}
