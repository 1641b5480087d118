//! The gateway's HTTP/1.1 server and the streamable-HTTP session rules, byte for byte over a
//! plain TCP socket: keep-alive, pipelining, split and chunked requests, `Connection: close`,
//! limits, `Expect: 100-continue`, routing, the `GET /mcp` stream, `DELETE`, protocol-version
//! and `Origin` checks, and JSON-RPC edge cases.
//!
//! Unlike `raw_http::send_raw` (one request per connection, leftover bytes dropped), the
//! [`Conn`] here keeps what it has read past one response, so several responses on one
//! connection can be read in order, and it can tell an interim `100 Continue` apart and
//! check that the server closes the connection.

#[macro_use]
mod common;

use base64::Engine;
use common::raw_http::{build_request, RawSession, Response, ACCEPT_BOTH, PROTOCOL_VERSION};
use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

both_drivers!(
    keep_alive_serves_many_requests,
    pipelined_requests_are_answered_in_order,
    deep_pipeline_is_answered_in_order,
    head_requests_get_no_body,
    request_split_across_writes_is_answered,
    chunked_request_body_is_decoded,
    malformed_chunked_body_is_400_and_closes,
    connection_close_is_honoured,
    oversized_head_is_431_and_closes,
    garbage_request_line_is_400_and_closes,
    expect_100_continue_precedes_the_body,
    expect_100_continue_is_ignored_for_http10,
    routing_of_paths_and_methods,
    get_mcp_opens_an_event_stream,
    delete_ends_the_session,
    protocol_version_header_is_checked,
    initialize_negotiates_the_revision,
    origin_is_checked,
    jsonrpc_edge_cases,
);

// ---------------------------------------------------------------------------------------------
// A client connection that keeps its read buffer between responses
// ---------------------------------------------------------------------------------------------

struct Conn {
    reader: OwnedReadHalf,
    /// `None` once handed to a writer task ([`Conn::take_writer`]).
    writer: Option<OwnedWriteHalf>,
    /// Bytes read but not yet consumed by a parsed response.
    buf: Vec<u8>,
}

impl Conn {
    async fn open(addr: &str) -> Conn {
        let stream = within(&format!("connect {addr}"), TcpStream::connect(addr))
            .await
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        // Every write leaves as its own segment: split requests really arrive split.
        stream.set_nodelay(true).expect("TCP_NODELAY");
        let (reader, writer) = stream.into_split();
        Conn {
            reader,
            writer: Some(writer),
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        let writer = self.writer.as_mut().expect("the writer was taken");
        within("write to the gateway", async {
            writer.write_all(bytes).await?;
            writer.flush().await
        })
        .await
        .unwrap_or_else(|e| panic!("write to the gateway: {e}"));
    }

    /// The write half, for writing from another task while this one reads.
    fn take_writer(&mut self) -> OwnedWriteHalf {
        self.writer.take().expect("the writer was taken")
    }

    /// Reads more bytes into the buffer; false at EOF (or a reset, which also ends the stream).
    async fn fill(&mut self) -> bool {
        let mut chunk = vec![0u8; 65536];
        match within("read from the gateway", self.reader.read(&mut chunk)).await {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => false,
            Err(e) => panic!("read from the gateway: {e}"),
        }
    }

    /// Reads one response head (an interim `1xx` one too): status, headers, and the raw head.
    async fn head(&mut self) -> (u16, Vec<(String, String)>, String) {
        let end = loop {
            if let Some(pos) = find(&self.buf, b"\r\n\r\n") {
                break pos;
            }
            assert!(
                self.fill().await,
                "connection closed before a complete response head; got {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        };
        let raw = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        self.buf.drain(..end + 4);
        let mut lines = raw.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        assert!(
            status_line.starts_with("HTTP/1.1 "),
            "bad status line {status_line:?} (bytes left over from the previous response?)"
        );
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers = lines
            .map(|l| {
                let (n, v) = l
                    .split_once(':')
                    .unwrap_or_else(|| panic!("bad header line {l:?} in {raw:?}"));
                (n.trim().to_string(), v.trim().to_string())
            })
            .collect();
        (status, headers, raw)
    }

    /// Reads exactly `n` body bytes.
    async fn take(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(
                self.fill().await,
                "connection closed inside a {n}-byte body"
            );
        }
        self.buf.drain(..n).collect()
    }

    /// Reads a CRLF-terminated line (without the CRLF).
    async fn line(&mut self) -> String {
        loop {
            if let Some(pos) = find(&self.buf, b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..pos]).into_owned();
                self.buf.drain(..pos + 2);
                return line;
            }
            assert!(self.fill().await, "connection closed inside a chunked body");
        }
    }

    /// Reads one chunk of a chunked body; empty for the last chunk.
    async fn chunk(&mut self) -> Vec<u8> {
        let size_line = self.line().await;
        let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or_else(|_| panic!("bad chunk size line {size_line:?}"));
        if size == 0 {
            // Trailers up to the empty line.
            while !self.line().await.is_empty() {}
            return Vec::new();
        }
        let data = self.take(size).await;
        assert_eq!(
            self.take(2).await,
            b"\r\n",
            "chunk data not followed by CRLF"
        );
        data
    }

    /// Reads the next response, interim ones included, with its whole body.
    async fn next(&mut self) -> Response {
        let (status, headers, raw) = self.head().await;
        let mut response = Response {
            status,
            headers,
            body: Vec::new(),
        };
        if (100..200).contains(&status) {
            return response;
        }
        let chunked = response
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        if chunked {
            loop {
                let chunk = self.chunk().await;
                if chunk.is_empty() {
                    break;
                }
                response.body.extend_from_slice(&chunk);
            }
        } else {
            let length: usize = response
                .header("content-length")
                .unwrap_or_else(|| panic!("response has neither length nor chunking: {raw:?}"))
                .parse()
                .unwrap_or_else(|_| panic!("bad Content-Length in {raw:?}"));
            response.body = self.take(length).await;
        }
        response
    }

    /// Reads the next final response, asserting that no interim one comes first.
    async fn response(&mut self) -> Response {
        let response = self.next().await;
        assert!(
            response.status >= 200,
            "unexpected interim response {response:?}"
        );
        response
    }

    /// Asserts that the server closes the connection with nothing more to say.
    async fn expect_close(&mut self) {
        while self.fill().await {}
        assert!(
            self.buf.is_empty(),
            "bytes after the last response before the close: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

async fn gateway(driver: &str) -> Gateway {
    Gateway::start(driver, &config(&[("mock", mock_stdio(&[]))])).await
}

/// A JSON-RPC request body.
fn rpc(id: Value, method: &str, params: Value) -> Vec<u8> {
    json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params })
        .to_string()
        .into_bytes()
}

/// `POST /mcp` of an `initialize` (id `id`, asking for `version`) outside any session, with
/// `extra` headers beside the JSON ones.
fn initialize_request(addr: &str, id: Value, version: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let body = rpc(
        id,
        "initialize",
        json!({ "protocolVersion": version, "capabilities": {},
                "clientInfo": { "name": "http1-test", "version": "0" } }),
    );
    let mut headers = vec![
        ("Content-Type", "application/json"),
        ("Accept", ACCEPT_BOTH),
    ];
    headers.extend_from_slice(extra);
    build_request("POST", "/mcp", addr, &headers, &body)
}

fn echo_params(message: &str) -> Value {
    json!({ "name": "mock__echo", "arguments": { "message": message } })
}

/// The headers a client sends inside `session` (without `MCP-Protocol-Version`).
fn session_headers(session: &RawSession) -> Vec<(&str, &str)> {
    vec![
        ("Content-Type", "application/json"),
        ("Accept", ACCEPT_BOTH),
        ("Mcp-Session-Id", session.session_id.as_str()),
    ]
}

/// `POST /mcp` inside `session` with the negotiated `MCP-Protocol-Version` and `extra` headers.
fn session_post(session: &RawSession, extra: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut headers = session_headers(session);
    headers.push(("MCP-Protocol-Version", PROTOCOL_VERSION));
    headers.extend_from_slice(extra);
    build_request("POST", "/mcp", &session.addr, &headers, body)
}

/// Asserts a 200 JSON-RPC reply to `id`; returns it.
fn assert_reply(response: &Response, id: &Value, what: &str) -> Value {
    assert_eq!(response.status, 200, "{what}: {response:?}");
    let reply = response.jsonrpc();
    assert_eq!(reply["jsonrpc"], "2.0", "{what}: {reply}");
    assert_eq!(&reply["id"], id, "{what}: {reply}");
    reply
}

/// Asserts a 200 reply to `id` carrying a result (no error); returns the result.
fn assert_result(response: &Response, id: &Value, what: &str) -> Value {
    let reply = assert_reply(response, id, what);
    assert!(reply.get("error").is_none(), "{what}: {reply}");
    assert!(reply["result"].is_object(), "{what}: {reply}");
    reply["result"].clone()
}

/// Asserts an HTTP error status whose body is a JSON-RPC error with `code` and a null id.
fn assert_refused(response: &Response, status: u16, code: i64, what: &str) {
    assert_eq!(response.status, status, "{what}: {response:?}");
    let reply = response.jsonrpc();
    assert_eq!(reply["error"]["code"], code, "{what}: {reply}");
    assert!(reply["error"]["message"].is_string(), "{what}: {reply}");
    assert!(reply["id"].is_null(), "{what}: {reply}");
}

fn assert_keeps_open(response: &Response, what: &str) {
    assert!(
        !response
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close")),
        "{what}: the server wants to close a keep-alive connection: {response:?}"
    );
}

fn assert_announces_close(response: &Response, what: &str) {
    assert!(
        response
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close")),
        "{what}: response lacks `Connection: close`: {response:?}"
    );
}

/// A ping on a fresh connection in `session` must be answered: the gateway still serves.
async fn assert_still_serving(session: &RawSession) {
    let mut conn = Conn::open(&session.addr).await;
    conn.send(&session_post(
        session,
        &[],
        &rpc(json!(77), "ping", json!({})),
    ))
    .await;
    let response = conn.response().await;
    assert_result(&response, &json!(77), "ping on a new connection");
}

/// The same request with `HTTP/1.0` in its request line.
fn as_http10(request: Vec<u8>) -> Vec<u8> {
    let text = String::from_utf8(request).expect("request is text");
    text.replacen(" HTTP/1.1\r\n", " HTTP/1.0\r\n", 1)
        .into_bytes()
}

/// A `Transfer-Encoding: chunked` POST head in `session` (no body).
fn chunked_head(session: &RawSession, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut head = format!("POST /mcp HTTP/1.1\r\nHost: {}\r\n", session.addr);
    for (n, v) in session_headers(session) {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str(&format!("MCP-Protocol-Version: {PROTOCOL_VERSION}\r\n"));
    for (n, v) in extra {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("Transfer-Encoding: chunked\r\n\r\n");
    head.into_bytes()
}

/// `data` framed as one chunk.
fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

// ---------------------------------------------------------------------------------------------
// Connection handling
// ---------------------------------------------------------------------------------------------

async fn keep_alive_serves_many_requests(driver: &str) {
    let gw = gateway(driver).await;
    let session = RawSession::open(&gw.addr()).await;
    let mut conn = Conn::open(&gw.addr()).await;
    for round in 0..3 {
        let what = format!("round {round}");
        let id = json!(round * 10 + 1);
        conn.send(&session_post(
            &session,
            &[],
            &rpc(id.clone(), "ping", json!({})),
        ))
        .await;
        let response = conn.response().await;
        assert_result(&response, &id, &format!("{what}: ping"));
        assert_keeps_open(&response, &what);

        let id = json!(round * 10 + 2);
        conn.send(&session_post(
            &session,
            &[],
            &rpc(id.clone(), "tools/list", json!({})),
        ))
        .await;
        let response = conn.response().await;
        let result = assert_result(&response, &id, &format!("{what}: tools/list"));
        assert!(
            result["tools"].to_string().contains("mock__echo"),
            "{what}: {result}"
        );
        assert_keeps_open(&response, &what);

        let id = json!(round * 10 + 3);
        let message = format!("keep-alive round {round}");
        conn.send(&session_post(
            &session,
            &[],
            &rpc(id.clone(), "tools/call", echo_params(&message)),
        ))
        .await;
        let response = conn.response().await;
        let result = assert_result(&response, &id, &format!("{what}: tools/call"));
        assert!(result.to_string().contains(&message), "{what}: {result}");
        assert_keeps_open(&response, &what);

        // Errors answered on the HTTP level do not end the connection either.
        conn.send(&build_request("GET", "/nowhere", &session.addr, &[], b""))
            .await;
        let response = conn.response().await;
        assert_eq!(response.status, 404, "{what}: {response:?}");
        assert_keeps_open(&response, &what);
        conn.send(&session_post(
            &session,
            &[("Content-Type", "text/plain")],
            &rpc(json!(5), "ping", json!({})),
        ))
        .await;
        let response = conn.response().await;
        assert_eq!(response.status, 415, "{what}: {response:?}");
        assert_keeps_open(&response, &what);

        conn.send(&build_request("GET", "/healthz", &session.addr, &[], b""))
            .await;
        let response = conn.response().await;
        assert_eq!(response.status, 200, "{what}: healthz {response:?}");
        assert_keeps_open(&response, &what);
    }
}

async fn pipelined_requests_are_answered_in_order(driver: &str) {
    let gw = gateway(driver).await;
    let session = RawSession::open(&gw.addr()).await;
    let mut conn = Conn::open(&gw.addr()).await;

    // Three pings in one write.
    let mut batch = Vec::new();
    for id in 1..=3 {
        batch.extend(session_post(
            &session,
            &[],
            &rpc(json!(id), "ping", json!({})),
        ));
    }
    conn.send(&batch).await;
    for id in 1..=3 {
        let response = conn.response().await;
        assert_result(&response, &json!(id), &format!("pipelined ping {id}"));
    }

    // A call that goes upstream between two the gateway answers itself, plus other
    // kinds of request: the order of the replies is the order of the requests.
    let mut batch = Vec::new();
    batch.extend(session_post(
        &session,
        &[],
        &rpc(json!("first"), "ping", json!({})),
    ));
    batch.extend(session_post(
        &session,
        &[],
        &rpc(json!(2), "tools/call", echo_params("pipelined echo")),
    ));
    batch.extend(build_request("GET", "/healthz", &session.addr, &[], b""));
    batch.extend(session_post(
        &session,
        &[],
        &rpc(json!(3), "tools/call", echo_params("second pipelined echo")),
    ));
    batch.extend(session_post(
        &session,
        &[],
        &rpc(json!(4), "ping", json!({})),
    ));
    conn.send(&batch).await;

    let response = conn.response().await;
    assert_result(&response, &json!("first"), "pipelined ping \"first\"");
    let response = conn.response().await;
    let result = assert_result(&response, &json!(2), "pipelined tools/call 2");
    assert!(result.to_string().contains("pipelined echo"), "{result}");
    let response = conn.response().await;
    assert_eq!(response.status, 200, "pipelined healthz: {response:?}");
    assert_eq!(
        response.body_text().trim(),
        "ok",
        "pipelined healthz: {response:?}"
    );
    let response = conn.response().await;
    let result = assert_result(&response, &json!(3), "pipelined tools/call 3");
    assert!(
        result.to_string().contains("second pipelined echo"),
        "{result}"
    );
    let response = conn.response().await;
    assert_result(&response, &json!(4), "pipelined ping 4");
    assert_keeps_open(&response, "after the pipeline");

    // Pipelining up to a `Connection: close` request: both answered, then the close.
    let mut batch = session_post(&session, &[], &rpc(json!(5), "ping", json!({})));
    batch.extend(session_post(
        &session,
        &[("Connection", "close")],
        &rpc(json!(6), "ping", json!({})),
    ));
    conn.send(&batch).await;
    assert_result(&conn.response().await, &json!(5), "ping before the close");
    let response = conn.response().await;
    assert_result(&response, &json!(6), "ping asking to close");
    assert_announces_close(&response, "ping asking to close");
    conn.expect_close().await;
}

async fn deep_pipeline_is_answered_in_order(driver: &str) {
    let gw = gateway(driver).await;
    let session = RawSession::open(&gw.addr()).await;
    let mut conn = Conn::open(&gw.addr()).await;

    // Hundreds of requests, a third of them echoes of 1 kB that go upstream, written by another
    // task while this one reads: the replies (well over the server's flush threshold) come
    // back complete and in request order.
    const N: usize = 400;
    let padding = "p".repeat(1000);
    let mut pipeline = Vec::new();
    for i in 0..N {
        let body = if i % 3 == 0 {
            rpc(
                json!(i),
                "tools/call",
                echo_params(&format!("deep-{i}-{padding}")),
            )
        } else {
            rpc(json!(i), "ping", json!({}))
        };
        pipeline.extend(session_post(&session, &[], &body));
    }
    let mut writer = conn.take_writer();
    let write = tokio::spawn(async move {
        writer
            .write_all(&pipeline)
            .await
            .expect("write the pipeline");
        writer.flush().await.expect("flush the pipeline");
        writer
    });
    for i in 0..N {
        let response = conn.response().await;
        let result = assert_result(&response, &json!(i), &format!("deep pipeline #{i}"));
        if i % 3 == 0 {
            assert!(
                result.to_string().contains(&format!("deep-{i}-{padding}")),
                "deep pipeline #{i}: {result}"
            );
        }
    }
    let mut writer = within("pipeline writer", write).await.expect("writer task");
    // And the connection is still usable.
    writer
        .write_all(&session_post(
            &session,
            &[],
            &rpc(json!("after"), "ping", json!({})),
        ))
        .await
        .expect("write after the pipeline");
    assert_result(
        &conn.response().await,
        &json!("after"),
        "ping after the pipeline",
    );
}

async fn head_requests_get_no_body(driver: &str) {
    let gw = gateway(driver).await;
    let addr = gw.addr();
    let session = RawSession::open(&addr).await;
    let mut conn = Conn::open(&addr).await;

    // A response to HEAD has no body whatever its headers say (RFC 9110 §9.3.2); a body would
    // be read as the start of the next response on the connection.
    for path in ["/healthz", "/nowhere", "/mcp"] {
        let mut pipeline = build_request("HEAD", path, &addr, &[], b"");
        pipeline.extend(session_post(
            &session,
            &[],
            &rpc(json!(path), "ping", json!({})),
        ));
        conn.send(&pipeline).await;
        let (status, _, raw) = conn.head().await;
        assert!(
            (200..500).contains(&status),
            "HEAD {path}: unexpected status: {raw}"
        );
        let response = conn.response().await;
        assert_result(&response, &json!(path), &format!("ping after HEAD {path}"));
    }
}

async fn request_split_across_writes_is_answered(driver: &str) {
    let gw = gateway(driver).await;
    let session = RawSession::open(&gw.addr()).await;
    let mut conn = Conn::open(&gw.addr()).await;

    let message = "split across writes";
    let request = session_post(
        &session,
        &[],
        &rpc(json!(11), "tools/call", echo_params(message)),
    );
    let head_end = find(&request, b"\r\n\r\n").expect("head end") + 4;
    // Cuts: inside the method, inside a CRLF, between a header's name and value, between the
    // two CRLFs that end the head, and twice inside the body.
    let mut cuts = vec![
        2,
        find(&request, b"\r\n").unwrap() + 1,
        find(&request, b"Accept:").unwrap() + 4,
        head_end - 2,
        head_end,
        head_end + 5,
        head_end + (request.len() - head_end) / 2,
        request.len(),
    ];
    cuts.dedup();
    let mut from = 0;
    for cut in cuts {
        conn.send(&request[from..cut]).await;
        from = cut;
    }
    let response = conn.response().await;
    let result = assert_result(&response, &json!(11), "request split across writes");
    assert!(result.to_string().contains(message), "{result}");

    // One byte per write: a head and body trickling in.
    let request = session_post(&session, &[], &rpc(json!(12), "ping", json!({})));
    for byte in request.chunks(1) {
        conn.send(byte).await;
    }
    let response = conn.response().await;
    assert_result(&response, &json!(12), "request sent one byte per write");

    // The end of one request and the start of the next in one write.
    let first = session_post(&session, &[], &rpc(json!(13), "ping", json!({})));
    let second = session_post(&session, &[], &rpc(json!(14), "ping", json!({})));
    let mut joined = first.clone();
    joined.extend_from_slice(&second);
    let a = first.len() - 7;
    let b = first.len() + 20;
    conn.send(&joined[..a]).await;
    conn.send(&joined[a..b]).await;
    conn.send(&joined[b..]).await;
    assert_result(&conn.response().await, &json!(13), "first of two straddled");
    assert_result(
        &conn.response().await,
        &json!(14),
        "second of two straddled",
    );
}

async fn chunked_request_body_is_decoded(driver: &str) {
    let gw = gateway(driver).await;
    let session = RawSession::open(&gw.addr()).await;
    let mut conn = Conn::open(&gw.addr()).await;

    // A body in three chunks (one with an extension), each in its own write.
    let message = "chunked request body";
    let body = rpc(json!(21), "tools/call", echo_params(message));
    let (a, rest) = body.split_at(10);
    let (b, c) = rest.split_at(rest.len() / 2);
    let mut first = chunked_head(&session, &[]);
    first.extend(chunk(a));
    conn.send(&first).await;
    let mut second = format!("{:x};name=value\r\n", b.len()).into_bytes();
    second.extend_from_slice(b);
    second.extend_from_slice(b"\r\n");
    conn.send(&second).await;
    conn.send(&chunk(c)).await;
    conn.send(b"0\r\n\r\n").await;
    let response = conn.response().await;
    let result = assert_result(&response, &json!(21), "chunked body in 3 chunks");
    assert!(result.to_string().contains(message), "{result}");
    assert_keeps_open(&response, "chunked body");

    // A chunked request with a trailer, and a Content-Length request pipelined behind it, in
    // one write: the chunked body ends exactly where the next request starts.
    let body = rpc(json!(22), "ping", json!({}));
    let mut batch = chunked_head(&session, &[]);
    for piece in body.chunks(7) {
        batch.extend(chunk(piece));
    }
    batch.extend_from_slice(b"0\r\nX-Trailer: ignored\r\n\r\n");
    batch.extend(session_post(
        &session,
        &[],
        &rpc(json!(23), "ping", json!({})),
    ));
    conn.send(&batch).await;
    assert_result(
        &conn.response().await,
        &json!(22),
        "chunked ping in 7-byte chunks",
    );
    assert_result(
        &conn.response().await,
        &json!(23),
        "ping after a chunked request",
    );

    // A chunk boundary inside a multi-byte UTF-8 character is only framing.
    let message = "chunk \u{00e9}\u{4e2d}\u{1f600} boundary";
    let body = rpc(json!(24), "tools/call", echo_params(message));
    let mut batch = chunked_head(&session, &[]);
    let at = find(&body, "\u{4e2d}".as_bytes()).expect("CJK char") + 1;
    batch.extend(chunk(&body[..at]));
    batch.extend(chunk(&body[at..]));
    batch.extend_from_slice(b"0\r\n\r\n");
    conn.send(&batch).await;
    let result = assert_result(
        &conn.response().await,
        &json!(24),
        "chunk inside a character",
    );
    assert!(
        result["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains(message)),
        "{result}"
    );
}

async fn malformed_chunked_body_is_400_and_closes(driver: &str) {
    let gw = gateway(driver).await;
    let session = RawSession::open(&gw.addr()).await;
    let body = rpc(json!(31), "ping", json!({}));
    let len = format!("{:x}", body.len());
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("size that is not hex", b"zz\r\n{}\r\n0\r\n\r\n".to_vec()),
        (
            "data longer than its size",
            [
                format!("{:x}\r\n", body.len() - 3).as_bytes(),
                &body[..],
                b"\r\n0\r\n\r\n",
            ]
            .concat(),
        ),
        (
            "data not followed by CRLF",
            [len.as_bytes(), b"\r\n", &body[..], b"XY0\r\n\r\n"].concat(),
        ),
    ];
    for (what, framing) in cases {
        let mut conn = Conn::open(&gw.addr()).await;
        let mut request = chunked_head(&session, &[]);
        request.extend_from_slice(&framing);
        conn.send(&request).await;
        let response = conn.response().await;
        assert_eq!(response.status, 400, "{what}: {response:?}");
        assert_announces_close(&response, what);
        conn.expect_close().await;
    }
    assert_still_serving(&session).await;
}

async fn connection_close_is_honoured(driver: &str) {
    let gw = gateway(driver).await;
    let session = RawSession::open(&gw.addr()).await;

    // HTTP/1.1 asking to close.
    let mut conn = Conn::open(&gw.addr()).await;
    conn.send(&session_post(
        &session,
        &[("Connection", "close")],
        &rpc(json!(41), "ping", json!({})),
    ))
    .await;
    let response = conn.response().await;
    assert_result(&response, &json!(41), "Connection: close");
    assert_announces_close(&response, "Connection: close");
    conn.expect_close().await;

    // `close` among other connection options.
    let mut conn = Conn::open(&gw.addr()).await;
    conn.send(&session_post(
        &session,
        &[("Connection", "TE, Close")],
        &rpc(json!(42), "ping", json!({})),
    ))
    .await;
    let response = conn.response().await;
    assert_result(&response, &json!(42), "Connection: TE, Close");
    assert_announces_close(&response, "Connection: TE, Close");
    conn.expect_close().await;

    // HTTP/1.0 without keep-alive: POST and GET.
    let mut conn = Conn::open(&gw.addr()).await;
    conn.send(&as_http10(session_post(
        &session,
        &[],
        &rpc(json!(43), "ping", json!({})),
    )))
    .await;
    let response = conn.response().await;
    assert_result(&response, &json!(43), "HTTP/1.0 POST");
    assert_announces_close(&response, "HTTP/1.0 POST");
    conn.expect_close().await;

    let mut conn = Conn::open(&gw.addr()).await;
    conn.send(&as_http10(build_request(
        "GET",
        "/healthz",
        &session.addr,
        &[],
        b"",
    )))
    .await;
    let response = conn.response().await;
    assert_eq!(response.status, 200, "HTTP/1.0 GET /healthz: {response:?}");
    assert_announces_close(&response, "HTTP/1.0 GET /healthz");
    conn.expect_close().await;

    // HTTP/1.0 asking for keep-alive keeps the connection.
    let mut conn = Conn::open(&gw.addr()).await;
    for id in [44, 45] {
        conn.send(&as_http10(session_post(
            &session,
            &[("Connection", "keep-alive")],
            &rpc(json!(id), "ping", json!({})),
        )))
        .await;
        let response = conn.response().await;
        assert_result(&response, &json!(id), "HTTP/1.0 keep-alive");
        assert_keeps_open(&response, "HTTP/1.0 keep-alive");
    }
}

async fn oversized_head_is_431_and_closes(driver: &str) {
    let gw = gateway(driver).await;
    let session = RawSession::open(&gw.addr()).await;

    // Just under the 16 KiB default is served.
    let value = "v".repeat(15 * 1024);
    let mut conn = Conn::open(&gw.addr()).await;
    conn.send(&session_post(
        &session,
        &[("X-Padding", &value)],
        &rpc(json!(51), "ping", json!({})),
    ))
    .await;
    assert_result(&conn.response().await, &json!(51), "15 KiB head");

    // Over it: 431, `Connection: close`, and the close.
    for (what, request) in [
        (
            "one 17 KiB header",
            session_post(
                &session,
                &[("X-Padding", &"w".repeat(17 * 1024))],
                &rpc(json!(52), "ping", json!({})),
            ),
        ),
        ("many headers adding up to 20 KiB", {
            let values: Vec<(String, String)> = (0..40)
                .map(|i| (format!("X-Pad-{i}"), "p".repeat(512)))
                .collect();
            let headers: Vec<(&str, &str)> = values
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            session_post(&session, &headers, &rpc(json!(53), "ping", json!({})))
        }),
    ] {
        let mut conn = Conn::open(&gw.addr()).await;
        conn.send(&request).await;
        let response = conn.response().await;
        assert_eq!(response.status, 431, "{what}: {response:?}");
        assert_announces_close(&response, what);
        conn.expect_close().await;
    }

    // A head that never ends is refused once it passes the limit, without waiting for its end.
    let mut conn = Conn::open(&gw.addr()).await;
    let mut endless = format!("POST /mcp HTTP/1.1\r\nHost: {}\r\n", session.addr).into_bytes();
    while endless.len() <= 17 * 1024 {
        endless.extend_from_slice(b"X-More: 0123456789abcdef0123456789abcdef\r\n");
    }
    conn.send(&endless).await;
    let response = conn.response().await;
    assert_eq!(response.status, 431, "unterminated head: {response:?}");
    assert_announces_close(&response, "unterminated head");
    conn.expect_close().await;

    assert_still_serving(&session).await;
}

async fn garbage_request_line_is_400_and_closes(driver: &str) {
    let gw = gateway(driver).await;
    let session = RawSession::open(&gw.addr()).await;
    let requests: [&[u8]; 4] = [
        b"GARBAGE\r\n\r\n",
        b"GET /mcp HTTX/1.1\r\nHost: x\r\n\r\n",
        b"\x00\x01\x02\x03\r\n\r\n",
        b"POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}GARBAGE LINE\r\n\r\n",
    ];
    for (i, request) in requests.into_iter().enumerate() {
        let what = format!("request {:?}", String::from_utf8_lossy(request));
        let mut conn = Conn::open(&gw.addr()).await;
        conn.send(request).await;
        if i == 3 {
            // The first, well-formed request is answered (it lacks a session and an Accept).
            let response = conn.response().await;
            assert_eq!(response.status, 415, "{what}: {response:?}");
            assert_keeps_open(&response, &what);
        }
        let response = conn.response().await;
        assert_eq!(response.status, 400, "{what}: {response:?}");
        assert_announces_close(&response, &what);
        conn.expect_close().await;
    }
    assert_still_serving(&session).await;
}

async fn expect_100_continue_precedes_the_body(driver: &str) {
    let gw = gateway(driver).await;
    let session = RawSession::open(&gw.addr()).await;
    let mut conn = Conn::open(&gw.addr()).await;

    let message = "sent after 100 Continue";
    let request = session_post(
        &session,
        &[("Expect", "100-continue")],
        &rpc(json!(61), "tools/call", echo_params(message)),
    );
    let head_end = find(&request, b"\r\n\r\n").expect("head end") + 4;
    // Only the head: the 100 must come while the body has not been sent at all.
    conn.send(&request[..head_end]).await;
    let interim = conn.next().await;
    assert_eq!(interim.status, 100, "before the body: {interim:?}");
    conn.send(&request[head_end..]).await;
    let response = conn.response().await;
    let result = assert_result(&response, &json!(61), "body after 100 Continue");
    assert!(result.to_string().contains(message), "{result}");

    // The same connection again, with a chunked body.
    let mut head = chunked_head(&session, &[("Expect", "100-continue")]);
    conn.send(&head).await;
    let interim = conn.next().await;
    assert_eq!(interim.status, 100, "before a chunked body: {interim:?}");
    head.clear();
    head.extend(chunk(&rpc(json!(62), "ping", json!({}))));
    head.extend_from_slice(b"0\r\n\r\n");
    conn.send(&head).await;
    assert_result(&conn.response().await, &json!(62), "chunked body after 100");

    // A body sent together with its head needs no 100: exactly one response comes back.
    conn.send(&session_post(
        &session,
        &[("Expect", "100-continue")],
        &rpc(json!(63), "ping", json!({})),
    ))
    .await;
    assert_result(&conn.response().await, &json!(63), "Expect with the body");

    // A body that is too large is refused at once, without inviting it.
    let mut conn = Conn::open(&gw.addr()).await;
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nAccept: {ACCEPT_BOTH}\r\n\
         Mcp-Session-Id: {}\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        session.addr,
        session.session_id,
        64 * 1024 * 1024
    );
    conn.send(head.as_bytes()).await;
    let response = conn.next().await;
    assert_eq!(
        response.status, 413,
        "oversized body with Expect: {response:?}"
    );
    conn.expect_close().await;
}

async fn expect_100_continue_is_ignored_for_http10(driver: &str) {
    let gw = gateway(driver).await;
    let session = RawSession::open(&gw.addr()).await;
    let mut conn = Conn::open(&gw.addr()).await;
    // An HTTP/1.0 client does not know 1xx responses: the expectation must be ignored
    // (RFC 9110 §10.1.1), so the first response it reads is the real one. The 1 MB body cannot
    // arrive in the server's first read, so the server always sees the head without the whole
    // body, which is when a 100 would be sent.
    let padding = "x".repeat(1_000_000);
    let request = as_http10(session_post(
        &session,
        &[("Expect", "100-continue")],
        &rpc(json!(64), "ping", json!({ "padding": padding })),
    ));
    let mut writer = conn.take_writer();
    let write = tokio::spawn(async move {
        let _ = writer.write_all(&request).await;
        writer
    });
    let response = conn.next().await;
    assert_ne!(
        response.status, 100,
        "100 Continue sent to an HTTP/1.0 client: {response:?}"
    );
    assert_result(&response, &json!(64), "HTTP/1.0 request with Expect");
    conn.expect_close().await;
    within("writer", write).await.expect("writer task");
}

// ---------------------------------------------------------------------------------------------
// Routing and the session endpoints
// ---------------------------------------------------------------------------------------------

async fn routing_of_paths_and_methods(driver: &str) {
    let gw = gateway(driver).await;
    let addr = gw.addr();
    let session = RawSession::open(&addr).await;
    let mut conn = Conn::open(&addr).await;

    for path in ["/", "/nowhere", "/mcpx", "/mcp/extra", "/healthz/x"] {
        conn.send(&build_request("GET", path, &addr, &[], b""))
            .await;
        let response = conn.response().await;
        assert_eq!(response.status, 404, "GET {path}: {response:?}");
    }
    conn.send(&session_post(
        &session,
        &[],
        &rpc(json!(71), "ping", json!({})),
    ))
    .await;
    assert_result(&conn.response().await, &json!(71), "ping after 404s");
    let request = build_request(
        "POST",
        "/v1/mcp",
        &addr,
        &session_headers(&session),
        &rpc(json!(72), "ping", json!({})),
    );
    conn.send(&request).await;
    let response = conn.response().await;
    assert_eq!(response.status, 404, "POST /v1/mcp: {response:?}");

    for method in ["PUT", "PATCH"] {
        let mut headers = session_headers(&session);
        headers.push(("MCP-Protocol-Version", PROTOCOL_VERSION));
        conn.send(&build_request(method, "/mcp", &addr, &headers, b"{}"))
            .await;
        let response = conn.response().await;
        assert_eq!(response.status, 405, "{method} /mcp: {response:?}");
        let allow = response
            .header("allow")
            .unwrap_or_else(|| panic!("{method} /mcp: 405 without Allow: {response:?}"));
        for m in ["GET", "POST", "DELETE"] {
            assert!(
                allow.split(',').any(|a| a.trim() == m),
                "{method} /mcp: Allow {allow:?} lacks {m}"
            );
        }
    }

    conn.send(&build_request("GET", "/healthz", &addr, &[], b""))
        .await;
    let response = conn.response().await;
    assert_eq!(response.status, 200, "GET /healthz: {response:?}");
    assert_eq!(response.body_text().trim(), "ok", "{response:?}");

    // A query string does not change the route.
    conn.send(&build_request(
        "POST",
        "/mcp?x=1",
        &addr,
        &session_headers(&session),
        &rpc(json!(73), "ping", json!({})),
    ))
    .await;
    assert_result(&conn.response().await, &json!(73), "POST /mcp?x=1");
}

async fn get_mcp_opens_an_event_stream(driver: &str) {
    let gw = gateway(driver).await;
    let addr = gw.addr();
    let session = RawSession::open(&addr).await;

    let mut conn = Conn::open(&addr).await;
    conn.send(&build_request(
        "GET",
        "/mcp",
        &addr,
        &[
            ("Accept", "text/event-stream"),
            ("Mcp-Session-Id", &session.session_id),
            ("MCP-Protocol-Version", PROTOCOL_VERSION),
        ],
        b"",
    ))
    .await;
    let (status, headers, raw) = conn.head().await;
    assert_eq!(status, 200, "GET /mcp: {raw}");
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    assert!(
        header("content-type").is_some_and(|v| v.starts_with("text/event-stream")),
        "GET /mcp: {raw}"
    );
    assert!(
        header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")),
        "GET /mcp: {raw}"
    );
    assert!(header("content-length").is_none(), "GET /mcp: {raw}");
    // The first event arrives at once: an SSE comment.
    let first = conn.chunk().await;
    let first = String::from_utf8_lossy(&first).into_owned();
    assert!(
        first.starts_with(':') && first.ends_with("\n\n"),
        "first SSE event is not a comment: {first:?}"
    );
    drop(conn);

    // Without a session.
    let response = common::raw_http::send_raw(
        &addr,
        build_request(
            "GET",
            "/mcp",
            &addr,
            &[("Accept", "text/event-stream")],
            b"",
        ),
    )
    .await;
    assert_refused(&response, 400, -32600, "GET /mcp without a session");

    // With an Accept that does not admit an event stream.
    let response = common::raw_http::send_raw(
        &addr,
        build_request(
            "GET",
            "/mcp",
            &addr,
            &[
                ("Accept", "application/json"),
                ("Mcp-Session-Id", &session.session_id),
            ],
            b"",
        ),
    )
    .await;
    assert_refused(&response, 406, -32600, "GET /mcp accepting only JSON");

    // With an unknown session.
    let response = common::raw_http::send_raw(
        &addr,
        build_request(
            "GET",
            "/mcp",
            &addr,
            &[
                ("Accept", "text/event-stream"),
                ("Mcp-Session-Id", "not-a-session"),
            ],
            b"",
        ),
    )
    .await;
    assert_refused(&response, 404, -32600, "GET /mcp with an unknown session");
}

async fn delete_ends_the_session(driver: &str) {
    let gw = gateway(driver).await;
    let addr = gw.addr();
    let session = RawSession::open(&addr).await;
    let other = RawSession::open(&addr).await;
    let mut conn = Conn::open(&addr).await;

    // The session works, then is deleted.
    conn.send(&session_post(
        &session,
        &[],
        &rpc(json!(81), "ping", json!({})),
    ))
    .await;
    assert_result(&conn.response().await, &json!(81), "ping before DELETE");
    let delete = build_request(
        "DELETE",
        "/mcp",
        &addr,
        &[
            ("Mcp-Session-Id", &session.session_id),
            ("MCP-Protocol-Version", PROTOCOL_VERSION),
        ],
        b"",
    );
    conn.send(&delete).await;
    let response = conn.response().await;
    assert_eq!(response.status, 200, "DELETE /mcp: {response:?}");

    // Every later use of that id is 404: on this connection, on new ones (other cores), and a
    // second DELETE.
    conn.send(&session_post(
        &session,
        &[],
        &rpc(json!(82), "ping", json!({})),
    ))
    .await;
    let response = conn.response().await;
    assert_refused(&response, 404, -32600, "ping after DELETE");
    for i in 0..4 {
        let mut fresh = Conn::open(&addr).await;
        fresh
            .send(&session_post(
                &session,
                &[],
                &rpc(json!(83 + i), "tools/list", json!({})),
            ))
            .await;
        let response = fresh.response().await;
        assert_refused(&response, 404, -32600, "tools/list after DELETE");
    }
    conn.send(&delete).await;
    let response = conn.response().await;
    assert_eq!(response.status, 404, "second DELETE: {response:?}");

    // DELETE without a session id.
    conn.send(&build_request("DELETE", "/mcp", &addr, &[], b""))
        .await;
    let response = conn.response().await;
    assert_refused(&response, 400, -32600, "DELETE without a session");

    // Other sessions are unaffected, and a new initialize works.
    conn.send(&session_post(
        &other,
        &[],
        &rpc(json!(90), "ping", json!({})),
    ))
    .await;
    assert_result(&conn.response().await, &json!(90), "another session's ping");
    let again = RawSession::open(&addr).await;
    assert_ne!(again.session_id, session.session_id);
    assert_still_serving(&again).await;
}

async fn protocol_version_header_is_checked(driver: &str) {
    let gw = gateway(driver).await;
    let addr = gw.addr();
    let session = RawSession::open(&addr).await;
    let mut conn = Conn::open(&addr).await;
    let mut next_id = 100;
    let mut ping = |version: Option<&str>| {
        next_id += 1;
        let mut headers = session_headers(&session);
        if let Some(v) = version {
            headers.push(("MCP-Protocol-Version", v));
        }
        (
            next_id,
            build_request(
                "POST",
                "/mcp",
                &addr,
                &headers,
                &rpc(json!(next_id), "ping", json!({})),
            ),
        )
    };

    for bad in ["1999-01-01", "2025-06-19", "latest"] {
        let (_, request) = ping(Some(bad));
        conn.send(&request).await;
        let response = conn.response().await;
        assert_refused(
            &response,
            400,
            -32600,
            &format!("MCP-Protocol-Version {bad:?}"),
        );
        assert_keeps_open(&response, "unsupported version");
    }
    // Absent (taken to be the oldest streamable revision) or the negotiated one.
    for good in [None, Some(PROTOCOL_VERSION), None] {
        let (id, request) = ping(good);
        conn.send(&request).await;
        let response = conn.response().await;
        assert_result(
            &response,
            &json!(id),
            &format!("MCP-Protocol-Version {good:?}"),
        );
    }

    // The same rule on GET /mcp.
    let response = common::raw_http::send_raw(
        &addr,
        build_request(
            "GET",
            "/mcp",
            &addr,
            &[
                ("Accept", "text/event-stream"),
                ("Mcp-Session-Id", &session.session_id),
                ("MCP-Protocol-Version", "1999-01-01"),
            ],
            b"",
        ),
    )
    .await;
    assert_refused(&response, 400, -32600, "GET /mcp with version 1999-01-01");
}

async fn initialize_negotiates_the_revision(driver: &str) {
    let gw = gateway(driver).await;
    let addr = gw.addr();
    for (requested, expected) in [
        ("2099-01-01", "2025-11-25"),
        ("2025-03-26", "2025-03-26"),
        ("2024-11-05", "2024-11-05"),
        ("2025-06-18", "2025-06-18"),
        ("2025-11-25", "2025-11-25"),
        ("not a date", "2025-11-25"),
    ] {
        let what = format!("initialize with {requested:?}");
        let mut conn = Conn::open(&addr).await;
        conn.send(&initialize_request(&addr, json!("init"), requested, &[]))
            .await;
        let response = conn.response().await;
        let result = assert_result(&response, &json!("init"), &what);
        assert_eq!(result["protocolVersion"], expected, "{what}: {result}");
        assert!(
            result["capabilities"]["tools"].is_object(),
            "{what}: {result}"
        );
        assert!(result["serverInfo"]["name"].is_string(), "{what}: {result}");
        let session_id = response
            .header("mcp-session-id")
            .unwrap_or_else(|| panic!("{what}: no Mcp-Session-Id: {response:?}"))
            .to_string();

        // The session serves requests that carry the negotiated revision.
        conn.send(&build_request(
            "POST",
            "/mcp",
            &addr,
            &[
                ("Content-Type", "application/json"),
                ("Accept", ACCEPT_BOTH),
                ("Mcp-Session-Id", &session_id),
                ("MCP-Protocol-Version", expected),
            ],
            &rpc(json!(1), "ping", json!({})),
        ))
        .await;
        assert_result(&conn.response().await, &json!(1), &format!("{what}: ping"));
    }
}

async fn origin_is_checked(driver: &str) {
    let gw = gateway(driver).await;
    let addr = gw.addr();
    let session = RawSession::open(&addr).await;
    let mut conn = Conn::open(&addr).await;

    for evil in [
        "http://evil.example",
        "https://evil.example:443",
        "http://localhost.evil.example",
        "null",
    ] {
        conn.send(&session_post(
            &session,
            &[("Origin", evil)],
            &rpc(json!(1), "ping", json!({})),
        ))
        .await;
        let response = conn.response().await;
        assert_refused(&response, 403, -32600, &format!("Origin {evil}"));
        // A foreign page cannot start a session either.
        conn.send(&initialize_request(
            &addr,
            json!(2),
            PROTOCOL_VERSION,
            &[("Origin", evil)],
        ))
        .await;
        let response = conn.response().await;
        assert_eq!(
            response.status, 403,
            "initialize from Origin {evil}: {response:?}"
        );
        assert!(
            response.header("mcp-session-id").is_none(),
            "initialize from Origin {evil} issued a session: {response:?}"
        );
    }
    for (i, good) in [
        "http://localhost:1234",
        "http://localhost",
        "http://127.0.0.1:8080",
        "https://[::1]:3000",
    ]
    .into_iter()
    .enumerate()
    {
        let id = json!(10 + i);
        conn.send(&session_post(
            &session,
            &[("Origin", good)],
            &rpc(id.clone(), "ping", json!({})),
        ))
        .await;
        let response = conn.response().await;
        assert_result(&response, &id, &format!("Origin {good}"));
    }
}

async fn jsonrpc_edge_cases(driver: &str) {
    let gw = gateway(driver).await;
    let addr = gw.addr();
    let session = RawSession::open(&addr).await;
    let mut conn = Conn::open(&addr).await;

    // A request with id null.
    conn.send(&session_post(
        &session,
        &[],
        br#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
    ))
    .await;
    assert_refused(&conn.response().await, 400, -32600, "id null");

    // Batches (not supported).
    for batch in [
        &br#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"ping"}]"#
            [..],
        br#"  [{"jsonrpc":"2.0","id":1,"method":"ping"}]"#,
        b"[]",
    ] {
        conn.send(&session_post(&session, &[], batch)).await;
        let what = format!("batch {}", String::from_utf8_lossy(batch));
        assert_refused(&conn.response().await, 400, -32600, &what);
    }

    // Unknown methods, with the id echoed exactly.
    for id in [
        json!("req-\u{00e9}-1"),
        json!(42),
        json!(-7),
        json!(""),
        json!(9007199254740993u64),
    ] {
        conn.send(&session_post(
            &session,
            &[],
            &rpc(id.clone(), "no/such/method", json!({})),
        ))
        .await;
        let response = conn.response().await;
        let what = format!("unknown method with id {id}");
        let reply = assert_reply(&response, &id, &what);
        assert_eq!(reply["error"]["code"], -32601, "{what}: {reply}");
        assert!(reply.get("result").is_none(), "{what}: {reply}");
    }
    // The raw id bytes too (a big integer must not lose precision, a string its escapes).
    for raw_id in ["123456789012345678901234567890", r#""a\"b\\c""#, "0"] {
        let body = format!(r#"{{"jsonrpc":"2.0","id":{raw_id},"method":"nope"}}"#);
        conn.send(&session_post(&session, &[], body.as_bytes()))
            .await;
        let response = conn.response().await;
        assert_eq!(response.status, 200, "id {raw_id}: {response:?}");
        let text = response.body_text();
        assert!(
            text.contains(&format!(r#""id":{raw_id}"#)),
            "id {raw_id} not echoed byte for byte: {text}"
        );
    }

    // A notification: 202, no body.
    for notification in [
        &br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#[..],
        br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}"#,
        br#"{"jsonrpc":"2.0","method":"no/such/notification"}"#,
    ] {
        conn.send(&session_post(&session, &[], notification)).await;
        let response = conn.response().await;
        let what = String::from_utf8_lossy(notification).into_owned();
        assert_eq!(response.status, 202, "{what}: {response:?}");
        assert!(response.body.is_empty(), "{what}: {response:?}");
    }
    // A response (to nothing the gateway asked): also 202.
    conn.send(&session_post(
        &session,
        &[],
        br#"{"jsonrpc":"2.0","id":5,"result":{}}"#,
    ))
    .await;
    let response = conn.response().await;
    assert_eq!(response.status, 202, "client response: {response:?}");
    assert!(response.body.is_empty(), "client response: {response:?}");

    // tools/list with cursors it never issued.
    for (i, cursor) in [
        json!("not-a-cursor"),
        json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("mcpgate-page:999999")),
        json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("mcpgate-page:-1")),
        json!(5),
        json!({}),
    ]
    .into_iter()
    .enumerate()
    {
        let id = json!(200 + i);
        conn.send(&session_post(
            &session,
            &[],
            &rpc(id.clone(), "tools/list", json!({ "cursor": cursor })),
        ))
        .await;
        let response = conn.response().await;
        let what = format!("tools/list with cursor {cursor}");
        let reply = assert_reply(&response, &id, &what);
        assert_eq!(reply["error"]["code"], -32602, "{what}: {reply}");
    }

    // The connection and session still serve.
    conn.send(&session_post(
        &session,
        &[],
        &rpc(
            json!("end"),
            "tools/call",
            echo_params("after the edge cases"),
        ),
    ))
    .await;
    let result = assert_result(&conn.response().await, &json!("end"), "final echo");
    assert!(
        result.to_string().contains("after the edge cases"),
        "{result}"
    );
}

both_drivers!(browser_clients_get_cors);

/// A page from an allowed origin (here a loopback one) can preflight, read replies and see the
/// session id; a foreign origin's preflight is refused.
async fn browser_clients_get_cors(driver: &str) {
    let gw = gateway(driver).await;
    let addr = gw.addr();
    let mut conn = Conn::open(&addr).await;
    let origin = "http://localhost:6274";

    conn.send(&build_request(
        "OPTIONS",
        "/mcp",
        &addr,
        &[
            ("Origin", origin),
            ("Access-Control-Request-Method", "POST"),
            (
                "Access-Control-Request-Headers",
                "content-type, mcp-session-id",
            ),
        ],
        b"",
    ))
    .await;
    let preflight = conn.response().await;
    assert_eq!(preflight.status, 204, "{preflight:?}");
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some(origin),
        "{preflight:?}"
    );
    let methods = preflight
        .header("access-control-allow-methods")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        methods.contains("post") && methods.contains("delete"),
        "{preflight:?}"
    );
    let headers = preflight
        .header("access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    for h in [
        "content-type",
        "mcp-session-id",
        "mcp-protocol-version",
        "authorization",
    ] {
        assert!(
            headers.contains(h),
            "preflight does not allow {h}: {preflight:?}"
        );
    }

    conn.send(&initialize_request(
        &addr,
        json!(1),
        PROTOCOL_VERSION,
        &[("Origin", origin)],
    ))
    .await;
    let reply = conn.response().await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some(origin),
        "{reply:?}"
    );
    let exposed = reply
        .header("access-control-expose-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        exposed.contains("mcp-session-id"),
        "the session id is hidden from the page: {reply:?}"
    );
    assert!(reply.header("mcp-session-id").is_some(), "{reply:?}");

    conn.send(&build_request(
        "OPTIONS",
        "/mcp",
        &addr,
        &[
            ("Origin", "http://evil.example"),
            ("Access-Control-Request-Method", "POST"),
        ],
        b"",
    ))
    .await;
    let refused = conn.response().await;
    assert_eq!(refused.status, 403, "{refused:?}");
    assert!(
        refused.header("access-control-allow-origin").is_none(),
        "{refused:?}"
    );
}
