//! The gateway's keep-alive connections to a streamable-HTTP server and tools that must not
//! run twice: a connection the server closed while it sat in the pool is not used again (each
//! call after the close runs exactly once and is answered), and a call whose connection the
//! server closes after reading the request, without answering, fails naming the server and
//! saying so, having run once: it is not sent again.

mod common;

use common::ledger_http::{AfterReply, LedgerHttp};
use common::*;
use serde_json::{json, Value};

/// The ledger server alone, its health checks out of the way (they would use connections
/// too), on one worker core so every call shares one pool.
async fn gateway(driver: &str, server: &LedgerHttp) -> Gateway {
    let mut entry = http_server(&server.url);
    entry["health_check_ms"] = json!(3_600_000);
    Gateway::start_workers(driver, &config(&[("ledger", entry)]), 1).await
}

fn tag(n: usize) -> Value {
    json!({ "tag": format!("call-{n}") })
}

async fn closed_idle_connections_are_not_reused(driver: &str) {
    let server = LedgerHttp::start(AfterReply::Close).await;
    let gw = gateway(driver, &server).await;
    let client = gw.client().await;
    // The connections of the gateway's handshake and listing were closed by the server too;
    // the first call must not find one of them still open from the server's side.
    server.wait_all_closed().await;
    for n in 0..5 {
        let result = call_ok(&client, "ledger__run", tag(n)).await;
        assert_eq!(text_of(&result), format!("ran call-{n} 1"));
        // The connection that answered is in the gateway's pool, and now closed by the server.
        server.wait_closed_after(&format!("call-{n}")).await;
    }
    for n in 0..5 {
        assert_eq!(server.runs(&format!("call-{n}")), 1, "call-{n}");
    }
    close(client).await;
}

async fn a_request_the_server_may_have_received_is_not_sent_again(driver: &str) {
    let server = LedgerHttp::start(AfterReply::KeepAlive).await;
    let gw = gateway(driver, &server).await;
    let client = gw.client().await;
    // Leaves a kept-alive connection in the pool, which the next call reuses.
    call_ok(&client, "ledger__run", json!({ "tag": "first" })).await;
    let failed = call(&client, "ledger__vanish", json!({ "tag": "once" })).await;
    let error = mcp_error("a call whose connection closed unanswered", failed);
    for part in [
        "upstream server 'ledger'",
        "closed after the request was sent",
        "may have received the request",
        "not sent again",
    ] {
        assert!(
            error.message.contains(part),
            "{part:?} in {:?}",
            error.message
        );
    }
    assert_eq!(error.data, Some(json!({ "server": "ledger" })));
    assert_eq!(server.runs("once"), 1, "the tool ran again");
    // The server is still used.
    let result = call_ok(&client, "ledger__run", json!({ "tag": "after" })).await;
    assert_eq!(text_of(&result), "ran after 1");
    close(client).await;
}

/// A server that closes each answered connection when the next request arrives on it, without
/// answering (a close that crossed the request, which the pool's check cannot see coming): the
/// gateway's handshake and listing are sent again on a new connection, so the server comes up;
/// a tool call that meets such a connection fails and is not sent again.
async fn harmless_requests_are_sent_again_when_a_pooled_connection_was_closed(driver: &str) {
    let server = LedgerHttp::start(AfterReply::CloseOnNextRequest).await;
    let gw = gateway(driver, &server).await;
    let client = gw.client().await;
    // initialize, its notification and tools/list: the last two each met a closed connection.
    let names: Vec<String> = list_tools(&client)
        .await
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(names.contains(&"ledger__run".to_owned()), "{names:?}");
    assert!(
        server.unanswered() >= 2,
        "{} unanswered",
        server.unanswered()
    );
    // The worker's pool is empty: a new connection, answered, then pooled.
    let result = call_ok(&client, "ledger__run", tag(0)).await;
    assert_eq!(text_of(&result), "ran call-0 1");
    let before = server.unanswered();
    // It meets the pooled connection, which the server closes unanswered.
    let failed = call(&client, "ledger__run", tag(1)).await;
    let error = mcp_error("a tool call on a connection closed under it", failed);
    assert!(
        error.message.contains("not sent again"),
        "{:?}",
        error.message
    );
    assert_eq!(server.unanswered(), before + 1);
    assert_eq!(server.runs("call-1"), 0, "the tool ran");
    let result = call_ok(&client, "ledger__run", tag(2)).await;
    assert_eq!(text_of(&result), "ran call-2 1");
    close(client).await;
}

both_drivers!(
    closed_idle_connections_are_not_reused,
    a_request_the_server_may_have_received_is_not_sent_again,
    harmless_requests_are_sent_again_when_a_pooled_connection_was_closed
);
