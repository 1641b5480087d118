//! Stopping work nobody waits for: a client's `notifications/cancelled` and a client that hangs
//! up mid-call both reach the upstream as `notifications/cancelled` with the upstream's own
//! request id. The upstream is `mcpgate mock-upstream --stdio --faults`, whose `fault_hang`
//! never answers and which logs each call that hangs and each cancellation it receives (its
//! stderr is in the gateway's log), so the test sees what the upstream saw.

mod common;

use std::io::Write;
use std::time::Duration;

use common::raw_http::{build_request, RawSession};
use common::*;
use rmcp::model::{CallToolRequestParams, ClientRequest, Request};
use rmcp::service::PeerRequestOptions;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

/// The upstream id of the call the mock reports hanging, from its log line.
fn hanging_id(line: &str) -> u64 {
    let id = mock_request_id(line);
    id.parse()
        .unwrap_or_else(|_| panic!("request id {id:?} is not a number"))
}

fn wait_line(gw: &mut Gateway, mark: usize, needle: &str) -> String {
    tokio::task::block_in_place(|| {
        gw.proc
            .wait_stderr_line_after(mark, |l| l.contains(needle), WAIT)
    })
}

both_drivers!(client_cancellation_reaches_the_upstream);

async fn client_cancellation_reaches_the_upstream(driver: &str) {
    let mut gw = Gateway::start(driver, &config(&[("mock", mock_stdio(&["--faults"]))])).await;
    let client = gw.client().await;
    let mark = gw.proc.mark();
    let call = ClientRequest::CallToolRequest(Request::new(CallToolRequestParams::new(
        "mock__fault_hang",
    )));
    let handle = within(
        "send the call",
        client.send_cancellable_request(call, PeerRequestOptions::no_options()),
    )
    .await
    .expect("call sent");
    let id = hanging_id(&wait_line(&mut gw, mark, "hangs (fault_hang)"));

    let mark = gw.proc.mark();
    within(
        "cancel",
        handle.cancel(Some("the test changed its mind".into())),
    )
    .await
    .expect("cancellation sent");
    wait_line(&mut gw, mark, &format!("cancelled: {{\"requestId\":{id},"));

    gw.assert_echo_works("mock__echo").await;
    close(client).await;
}

both_drivers!(client_hang_up_reaches_the_upstream);

async fn client_hang_up_reaches_the_upstream(driver: &str) {
    let mut gw = Gateway::start(driver, &config(&[("mock", mock_stdio(&["--faults"]))])).await;
    let session = RawSession::open(&gw.addr()).await;
    let (_, body) = session.request_body("tools/call", json!({"name": "mock__fault_hang"}));
    let headers = session.headers();
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let request = build_request("POST", "/mcp", &gw.addr(), &headers, &body);

    let mark = gw.proc.mark();
    let mut conn = std::net::TcpStream::connect(gw.addr()).expect("connect");
    conn.write_all(&request).expect("send the call");
    let id = hanging_id(&wait_line(&mut gw, mark, "hangs (fault_hang)"));

    // The client goes away without a word.
    let mark = gw.proc.mark();
    drop(conn);
    wait_line(&mut gw, mark, &format!("cancelled: {{\"requestId\":{id},"));

    gw.assert_echo_works("mock__echo").await;
}
