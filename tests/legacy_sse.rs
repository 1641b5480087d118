//! The legacy 2024-11-05 HTTP+SSE transport (`GET /sse` + `POST /messages?session_id=…`) for
//! old clients. The client is the official TypeScript SDK's `SSEClientTransport`, driven by
//! `tests/fixtures/legacy-sse-client.mjs`; server-everything runs behind the gateway over
//! stdio. The transport's rules are checked byte for byte over a plain TCP socket.

mod common;

use common::legacy_sse_client::{run_legacy_client, sse_url};
use common::raw_http::{build_request, send_raw, RawSession, Response};
use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

both_drivers!(
    legacy_client_lists_and_calls_like_mcp,
    progress_reaches_the_legacy_client,
    sampling_follows_the_capabilities_the_legacy_client_declared,
    legacy_transport_rules,
);

async fn gateway(driver: &str) -> Gateway {
    Gateway::start(driver, &config(&[("everything", everything_stdio())])).await
}

fn step<'a>(lines: &'a [Value], name: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["step"] == name)
        .unwrap_or_else(|| panic!("no {name:?} step in {lines:?}"))
}

fn call_step<'a>(lines: &'a [Value], tool: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["step"] == "call" && l["name"] == tool)
        .unwrap_or_else(|| panic!("no call of {tool} in {lines:?}"))
}

async fn legacy_client_lists_and_calls_like_mcp(driver: &str) {
    let gw = gateway(driver).await;
    let message = format!("legacy {}", unique_token());
    let calls = [
        ("everything__echo", json!({ "message": message })),
        ("everything__get-sum", json!({ "a": 2, "b": 40 })),
        (
            "everything__get-structured-content",
            json!({ "location": "New York" }),
        ),
    ];
    let lines = run_legacy_client(
        &gw,
        json!({
            "url": sse_url(&gw),
            "old": true,
            "calls": calls.iter().map(|(name, args)| json!({"name": name, "arguments": args})).collect::<Vec<_>>(),
        }),
    )
    .await;

    // A 2024 client gets its own revision.
    assert_eq!(step(&lines, "initialized")["protocolVersion"], "2024-11-05");

    // The same tools as on /mcp, in the same order.
    let client = gw.client().await;
    let expected = names(&list_tools(&client).await);
    close(client).await;
    assert_eq!(step(&lines, "tools")["names"], json!(expected));

    // Each call answers exactly what the same call answers on /mcp.
    let session = RawSession::open(&gw.addr()).await;
    for (name, args) in &calls {
        let legacy = &call_step(&lines, name)["response"];
        let direct = session
            .request("tools/call", json!({ "name": name, "arguments": args }))
            .await;
        assert!(legacy["result"].is_object(), "{name}: {legacy}");
        assert_eq!(legacy["result"], direct["result"], "{name}");
    }
    assert!(
        call_step(&lines, "everything__echo")["response"]
            .to_string()
            .contains(&message),
        "{lines:?}"
    );
}

async fn progress_reaches_the_legacy_client(driver: &str) {
    let gw = gateway(driver).await;
    let tool = "everything__trigger-long-running-operation";
    let lines = run_legacy_client(
        &gw,
        json!({
            "url": sse_url(&gw),
            "old": true,
            "calls": [{ "name": tool, "arguments": { "duration": 0.3, "steps": 3 }, "progress": true }],
        }),
    )
    .await;
    let call = call_step(&lines, tool);
    let text = call["response"]["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(text.contains("completed"), "{call}");

    // Every progress notification came on the stream, in order, under the client's own token.
    let token = &call["progressToken"];
    assert!(!token.is_null(), "the SDK sent no progress token: {call}");
    let streamed = call["streamedProgress"].as_array().expect("array");
    let values: Vec<&Value> = streamed.iter().map(|p| &p["progress"]).collect();
    assert_eq!(values, [&json!(1), &json!(2), &json!(3)], "{call}");
    for p in streamed {
        assert_eq!(&p["progressToken"], token, "{call}");
    }
    // The SDK's `onprogress` saw them too, except one that arrived in the same read as the
    // response: the SDK drops that one itself (typescript-sdk #2580), whatever the server does.
    let seen = call["progress"].as_array().expect("array");
    assert!(
        !seen.is_empty() && seen.iter().zip(1..).all(|(p, n)| p == &json!(n)),
        "onprogress got {seen:?}: {call}"
    );
}

async fn sampling_follows_the_capabilities_the_legacy_client_declared(driver: &str) {
    let gw = gateway(driver).await;
    let tool = "everything__trigger-sampling-request";
    let prompt = format!("hello from {}", unique_token());
    let plan = |sampling: bool| {
        json!({
            "url": sse_url(&gw),
            "old": true,
            "sampling": sampling,
            "calls": [{ "name": tool, "arguments": { "prompt": prompt, "maxTokens": 10 } }],
        })
    };

    // Declared at `initialize` (on a POST, after the session id was issued): the server's
    // request reaches the client on its stream, and the client's POSTed answer the server.
    let lines = run_legacy_client(&gw, plan(true)).await;
    let sampled = step(&lines, "sampled");
    assert!(
        sampled["messages"].to_string().contains(&prompt),
        "{sampled}"
    );
    let response = &call_step(&lines, tool)["response"];
    assert!(
        response["result"]
            .to_string()
            .contains("sampled by the legacy test client"),
        "{response}"
    );

    // Not declared: the client is never asked, and the call fails naming the capability.
    let lines = run_legacy_client(&gw, plan(false)).await;
    assert!(lines.iter().all(|l| l["step"] != "sampled"), "{lines:?}");
    let response = call_step(&lines, tool)["response"].to_string();
    assert!(response.contains("sampling"), "{response}");
}

/// A `GET /sse` stream read event by event over a plain socket.
struct RawStream {
    conn: TcpStream,
    buf: Vec<u8>,
}

impl RawStream {
    async fn open(addr: &str) -> (RawStream, String) {
        let mut conn = within("connect", TcpStream::connect(addr))
            .await
            .expect("connect");
        let request = build_request("GET", "/sse", addr, &[("Accept", "text/event-stream")], b"");
        conn.write_all(&request).await.expect("write GET /sse");
        let mut stream = RawStream {
            conn,
            buf: Vec::new(),
        };
        let head = loop {
            if let Some(end) = find(&stream.buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&stream.buf[..end]).into_owned();
                stream.buf.drain(..end + 4);
                break head;
            }
            stream.fill().await;
        };
        (stream, head)
    }

    async fn fill(&mut self) {
        let mut chunk = vec![0u8; 65536];
        let n = within("read the SSE stream", self.conn.read(&mut chunk))
            .await
            .expect("read");
        assert!(n > 0, "the SSE stream ended");
        self.buf.extend_from_slice(&chunk[..n]);
    }

    /// The next event (comments skipped), as text, with its chunk framing removed.
    async fn event(&mut self) -> String {
        loop {
            // One chunk per write; an event never spans chunks.
            if let Some(line_end) = find(&self.buf, b"\r\n") {
                let size = usize::from_str_radix(
                    std::str::from_utf8(&self.buf[..line_end]).expect("chunk size"),
                    16,
                )
                .expect("hex chunk size");
                if self.buf.len() >= line_end + 2 + size + 2 {
                    let data = self.buf[line_end + 2..line_end + 2 + size].to_vec();
                    self.buf.drain(..line_end + 2 + size + 2);
                    let text = String::from_utf8(data).expect("utf-8 event");
                    if !text.starts_with(':') {
                        return text;
                    }
                    continue;
                }
            }
            self.fill().await;
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn post_message(addr: &str, query: &str, body: &Value) -> Response {
    let path = format!("/messages{query}");
    let headers = [("Content-Type", "application/json")];
    send_raw(
        addr,
        build_request("POST", &path, addr, &headers, body.to_string().as_bytes()),
    )
    .await
}

fn assert_refused(response: &Response, status: u16, says: &str, what: &str) {
    assert_eq!(response.status, status, "{what}: {response:?}");
    let reply = response.jsonrpc();
    assert_eq!(reply["error"]["code"], -32600, "{what}: {reply}");
    let message = reply["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(says), "{what}: {message:?}");
}

async fn legacy_transport_rules(driver: &str) {
    let gw = gateway(driver).await;
    let addr = gw.addr();
    let (mut stream, head) = RawStream::open(&addr).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{head}"
    );

    // The endpoint event, exactly.
    let endpoint = stream.event().await;
    let session_id = endpoint
        .strip_prefix("event: endpoint\ndata: /messages?session_id=")
        .and_then(|rest| rest.strip_suffix("\n\n"))
        .unwrap_or_else(|| panic!("endpoint event {endpoint:?}"));
    assert!(
        !session_id.is_empty()
            && session_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{endpoint:?}"
    );
    let query = format!("?session_id={session_id}");

    // A message is accepted at once; its answer comes on the stream as a `message` event.
    let ping = json!({ "jsonrpc": "2.0", "id": 7, "method": "ping" });
    let response = post_message(&addr, &query, &ping).await;
    assert_eq!(response.status, 202, "{response:?}");
    assert_eq!(
        stream.event().await,
        "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{}}\n\n"
    );

    let response = post_message(&addr, "", &ping).await;
    assert_refused(&response, 400, "session_id", "POST without a session_id");

    // A forged id: the real one with its MAC's last character changed.
    let mut forged = session_id.to_string();
    let last = forged.pop().expect("non-empty");
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let response = post_message(&addr, &format!("?session_id={forged}"), &ping).await;
    assert_refused(
        &response,
        404,
        "Session not found",
        "POST with a forged session",
    );
    let response = post_message(&addr, "?session_id=not-a-session", &ping).await;
    assert_refused(
        &response,
        404,
        "Session not found",
        "POST with an unknown session",
    );

    // The client goes away. The gateway notices when it next writes to the stream, which every
    // request (its answer goes there) causes; so some POSTs may still be accepted, then 404.
    drop(stream);
    let mut closed = None;
    for _ in 0..100 {
        let response = post_message(&addr, &query, &ping).await;
        if response.status != 202 {
            closed = Some(response);
            break;
        }
    }
    let response = closed.expect("POSTs to a closed stream were still accepted after 100 tries");
    assert_refused(
        &response,
        404,
        "stream of this session is closed",
        "POST after close",
    );
}
