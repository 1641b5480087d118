//! Clients that misbehave at the socket: a thousand connections sending random bytes and five
//! hundred that send part of a request head and then nothing, while a normal MCP client keeps
//! calling; and the bound on how long a request head may take (`header_read_timeout_ms`):
//! 408 and close for a head begun and not finished, a plain close for a connection that never
//! sent a byte, no bound on an idle keep-alive connection or on a body.

mod common;

use std::time::Duration;

use common::raw_http::{build_request, read_response, RawSession};
use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

both_drivers!(
    garbage_and_slow_clients_leave_a_normal_client_served,
    request_heads_must_arrive_in_time,
);

const GARBAGE_CLIENTS: usize = 1000;
const SLOW_CLIENTS: usize = 500;
/// The start of a request head; the slow clients never send the rest.
const PARTIAL_HEAD: &[u8] = b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appl";
/// Generous bound for everything a connection is owed to arrive (liveness only).
const CONNECTION_BOUND: Duration = Duration::from_secs(120);

/// Deterministic noise (xorshift), different per connection.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Everything the server sends until it closes the connection (a reset counts as a close).
async fn read_until_closed(conn: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
        }
    }
}

fn status_of(reply: &[u8]) -> String {
    String::from_utf8_lossy(reply)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

async fn garbage_and_slow_clients_leave_a_normal_client_served(driver: &str) {
    let mut cfg = config(&[("mock", mock_stdio(&[]))]);
    // Short, so the slow clients are shed within the test.
    cfg["header_read_timeout_ms"] = json!(2000);
    let gw = Gateway::start(driver, &cfg).await;
    let addr = gw.addr();
    let client = gw.client().await;
    call_ok(&client, "mock__echo", json!({ "message": "before" })).await;

    // Half-open slow clients: connected, part of a head sent, then silence.
    let mut slow = Vec::with_capacity(SLOW_CLIENTS);
    for _ in 0..SLOW_CLIENTS {
        let mut conn = within("connect a slow client", TcpStream::connect(&addr))
            .await
            .expect("connect");
        conn.write_all(PARTIAL_HEAD).await.expect("write");
        slow.push(conn);
    }
    // Garbage senders, all at once, each reading whatever comes back until the close.
    let garbage = {
        let addr = addr.clone();
        tokio::spawn(async move {
            let mut tasks = Vec::with_capacity(GARBAGE_CLIENTS);
            for i in 0..GARBAGE_CLIENTS {
                let addr = addr.clone();
                tasks.push(tokio::spawn(async move {
                    let mut conn = TcpStream::connect(&addr).await.expect("connect");
                    // The server may close (having answered 400) before all of it is written.
                    let _ = conn.write_all(&noise(i as u64 + 1, 512)).await;
                    read_until_closed(&mut conn).await
                }));
            }
            let mut replies = Vec::with_capacity(GARBAGE_CLIENTS);
            for t in tasks {
                replies.push(t.await.expect("garbage task"));
            }
            replies
        })
    };

    // Meanwhile the normal client is answered, every time.
    for i in 0..50 {
        let message = format!("during the abuse {i}");
        let echo = call_ok(&client, "mock__echo", json!({ "message": message })).await;
        assert_eq!(text_of(&echo), message);
    }

    let replies = tokio::time::timeout(CONNECTION_BOUND, garbage)
        .await
        .expect("every garbage connection closed")
        .expect("garbage task");
    for reply in &replies {
        // A reply, when there is one, refuses the request; nothing is ever served to noise.
        let status = status_of(reply);
        assert!(
            reply.is_empty() || status.starts_with("HTTP/1.1 4"),
            "{status:?}"
        );
    }
    let refused = replies.iter().filter(|r| !r.is_empty()).count();
    eprintln!("{refused} of {GARBAGE_CLIENTS} garbage connections got a 4xx before the close");

    // Each slow client is answered 408 and closed once its head is overdue.
    for mut conn in slow {
        let reply = tokio::time::timeout(CONNECTION_BOUND, read_until_closed(&mut conn))
            .await
            .expect("the slow client was closed");
        let status = status_of(&reply);
        assert_eq!(status, "HTTP/1.1 408 Request Timeout", "{reply:?}");
    }

    let echo = call_ok(&client, "mock__echo", json!({ "message": "after" })).await;
    assert_eq!(text_of(&echo), "after");
    close(client).await;
}

async fn request_heads_must_arrive_in_time(driver: &str) {
    let mut cfg = config(&[("mock", mock_stdio(&[]))]);
    cfg["header_read_timeout_ms"] = json!(1000);
    let gw = Gateway::start(driver, &cfg).await;
    let addr = gw.addr();
    let session = RawSession::open(&addr).await;
    let headers = session.headers();
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let ping = |id: u64| {
        let body = json!({ "jsonrpc": "2.0", "id": id, "method": "ping" }).to_string();
        build_request("POST", "/mcp", &addr, &headers, body.as_bytes())
    };

    // A keep-alive connection, served once and then idle.
    let mut idle = TcpStream::connect(&addr).await.expect("connect");
    idle.write_all(&ping(1)).await.expect("write");
    let reply = within("ping", read_response(&mut idle)).await;
    assert_eq!(reply.status, 200, "{reply:?}");

    // A request whose head is complete but whose body has not come yet.
    let request = ping(2);
    let split = request
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("head end")
        + 4;
    let mut body_later = TcpStream::connect(&addr).await.expect("connect");
    body_later
        .write_all(&request[..split])
        .await
        .expect("write head");

    // A connection that sends nothing is closed without a word; one that began a head and
    // stopped gets 408 and is closed.
    let mut silent = TcpStream::connect(&addr).await.expect("connect");
    let mut partial = TcpStream::connect(&addr).await.expect("connect");
    partial.write_all(PARTIAL_HEAD).await.expect("write");
    let got = within(
        "the silent connection to close",
        read_until_closed(&mut silent),
    )
    .await;
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    let got = within(
        "the partial head to time out",
        read_until_closed(&mut partial),
    )
    .await;
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{text}"
    );
    assert!(text.contains("Connection: close"), "{text}");

    // Those timed out, so the bound has passed for the connections opened before them too:
    // the idle one still serves, and the body that arrives late is still read.
    idle.write_all(&ping(3)).await.expect("write");
    let reply = within("ping on the idle connection", read_response(&mut idle)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.jsonrpc()["id"], 3);
    body_later
        .write_all(&request[split..])
        .await
        .expect("write body");
    let reply = within("the late body's reply", read_response(&mut body_later)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.jsonrpc()["id"], 2);
    gw.assert_echo_works("mock__echo").await;
}
