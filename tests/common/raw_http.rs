//! A deliberately small HTTP/1.1 client over a plain TCP socket, for sending exactly the bytes a
//! test wants (bad headers, broken request lines, oversized bodies) and reading the reply.
//! Every request uses its own connection.

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::within;

/// The protocol revision the raw-HTTP tests negotiate.
pub const PROTOCOL_VERSION: &str = "2025-06-18";
/// What MCP clients send as `Accept` on POST.
pub const ACCEPT_BOTH: &str = "application/json, text/event-stream";

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// A header value by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The JSON-RPC reply in the body: the body itself when it is JSON, or, for an SSE body, the
    /// first event carrying a response (`result` or `error`).
    pub fn jsonrpc(&self) -> Value {
        let content_type = self.header("content-type").unwrap_or("");
        if content_type.starts_with("text/event-stream") {
            let text = self.body_text();
            let mut messages = Vec::new();
            for event in text.split("\n\n") {
                let data: Vec<&str> = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(|d| d.strip_prefix(' ').unwrap_or(d))
                    .collect();
                if data.is_empty() {
                    continue;
                }
                let value: Value = serde_json::from_str(&data.join("\n"))
                    .unwrap_or_else(|e| panic!("SSE data is not JSON ({e}): {text:?}"));
                messages.push(value);
            }
            messages
                .into_iter()
                .find(|m| m.get("result").is_some() || m.get("error").is_some())
                .unwrap_or_else(|| panic!("no JSON-RPC response in SSE body {text:?}"))
        } else {
            serde_json::from_slice(&self.body).unwrap_or_else(|e| {
                panic!(
                    "reply body is not JSON ({e}); status {} content-type {content_type:?}: {:?}",
                    self.status,
                    self.body_text()
                )
            })
        }
    }
}

/// Builds an HTTP/1.1 request with `Host` and `Content-Length` filled in.
pub fn build_request(
    method: &str,
    path: &str,
    addr: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n");
    for (name, value) in headers {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    }
    if method != "GET" || !body.is_empty() {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Sends `request` on a new connection and reads one response. The request is written by a
/// separate task so a server that answers before reading the whole body (413) is handled; write
/// errors after the server closed are expected then and ignored.
pub async fn send_raw(addr: &str, request: Vec<u8>) -> Response {
    within(&format!("raw HTTP exchange with {addr}"), async {
        let stream = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        let (mut reader, mut writer) = stream.into_split();
        let write = tokio::spawn(async move {
            let _ = writer.write_all(&request).await;
            let _ = writer.flush().await;
            writer // keep the write half open until the response is read
        });
        let response = read_response(&mut reader).await;
        write.abort();
        response
    })
    .await
}

/// Reads one response (head and body) from `reader`.
pub async fn read_response(reader: &mut (impl AsyncReadExt + Unpin)) -> Response {
    let mut buf = Vec::new();
    loop {
        // Headers.
        let head_end = loop {
            if let Some(pos) = find(&buf, b"\r\n\r\n") {
                break pos;
            }
            let mut chunk = vec![0u8; 8192];
            let n = reader.read(&mut chunk).await.unwrap_or(0);
            assert!(
                n > 0,
                "connection closed before a complete response head; got {:?}",
                String::from_utf8_lossy(&buf)
            );
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        buf.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
            .collect();
        if (100..200).contains(&status) {
            continue; // 100 Continue and friends: the real response follows
        }
        let mut response = Response {
            status,
            headers,
            body: Vec::new(),
        };
        let chunked = response
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let length = response
            .header("content-length")
            .map(|v| v.parse::<usize>().expect("numeric Content-Length"));
        if chunked {
            response.body = read_chunked(reader, buf).await;
        } else if let Some(length) = length {
            while buf.len() < length {
                let mut chunk = vec![0u8; 65536];
                let n = reader.read(&mut chunk).await.unwrap_or(0);
                assert!(n > 0, "connection closed inside a {length}-byte body");
                buf.extend_from_slice(&chunk[..n]);
            }
            buf.truncate(length);
            response.body = buf;
        } else if matches!(status, 204 | 304) {
            // no body by definition
        } else {
            // Delimited by connection close.
            let _ = reader.read_to_end(&mut buf).await;
            response.body = buf;
        }
        return response;
    }
}

async fn read_chunked(reader: &mut (impl AsyncReadExt + Unpin), mut buf: Vec<u8>) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(pos) = find(&buf, b"\r\n") {
                break pos;
            }
            fill(reader, &mut buf).await;
        };
        let size_text = String::from_utf8_lossy(&buf[..line_end]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or_else(|_| panic!("bad chunk size line {size_text:?}"));
        buf.drain(..line_end + 2);
        if size == 0 {
            return body; // trailers (if any) are not needed
        }
        while buf.len() < size + 2 {
            fill(reader, &mut buf).await;
        }
        body.extend_from_slice(&buf[..size]);
        buf.drain(..size + 2);
    }
}

async fn fill(reader: &mut (impl AsyncReadExt + Unpin), buf: &mut Vec<u8>) {
    let mut chunk = vec![0u8; 65536];
    let n = reader.read(&mut chunk).await.unwrap_or(0);
    assert!(n > 0, "connection closed inside a chunked body");
    buf.extend_from_slice(&chunk[..n]);
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// An `initialize` request (id 1) asking for `version`, as JSON bytes.
pub fn initialize_body(version: &str) -> Vec<u8> {
    json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": version,
            "capabilities": {},
            "clientInfo": { "name": "mcpgate-raw-test", "version": "0.0.0" }
        }
    })
    .to_string()
    .into_bytes()
}

/// An MCP session opened by hand: `initialize`, then `notifications/initialized`.
pub struct RawSession {
    pub addr: String,
    pub session_id: String,
    /// The revision `initialize` negotiated, sent as `MCP-Protocol-Version`.
    pub version: String,
    next_id: std::sync::atomic::AtomicU64,
}

impl RawSession {
    /// Performs the streamable-HTTP handshake against `http://addr/mcp`.
    pub async fn open(addr: &str) -> RawSession {
        RawSession::open_at(addr, PROTOCOL_VERSION).await
    }

    /// Like [`RawSession::open`], asking `initialize` for `version` (which must be granted).
    pub async fn open_at(addr: &str, version: &str) -> RawSession {
        let response = post(
            addr,
            &[
                ("Content-Type", "application/json"),
                ("Accept", ACCEPT_BOTH),
            ],
            &initialize_body(version),
        )
        .await;
        assert_eq!(response.status, 200, "initialize: {response:?}");
        let reply = response.jsonrpc();
        assert_eq!(reply["id"], 1, "initialize reply {reply}");
        assert_eq!(
            reply["result"]["protocolVersion"], version,
            "initialize reply {reply}"
        );
        let session_id = response
            .header("mcp-session-id")
            .unwrap_or_else(|| panic!("initialize reply has no Mcp-Session-Id: {response:?}"))
            .to_string();
        let session = RawSession {
            addr: addr.to_string(),
            session_id,
            version: version.to_string(),
            next_id: std::sync::atomic::AtomicU64::new(2),
        };
        let initialized = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
        let response = session.post(initialized.to_string().as_bytes()).await;
        assert_eq!(
            response.status, 202,
            "notifications/initialized: {response:?}"
        );
        session
    }

    /// The headers a well-behaved client sends inside this session.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        vec![
            ("Content-Type", "application/json".to_string()),
            ("Accept", ACCEPT_BOTH.to_string()),
            ("Mcp-Session-Id", self.session_id.clone()),
            ("MCP-Protocol-Version", self.version.clone()),
        ]
    }

    /// POSTs `body` with this session's normal headers.
    pub async fn post(&self, body: &[u8]) -> Response {
        let headers = self.headers();
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        post(&self.addr, &headers, body).await
    }

    /// POSTs `body` with this session's headers, except that each `(name, Some(v))` in
    /// `overrides` replaces that header and each `(name, None)` removes it.
    pub async fn post_with(&self, overrides: &[(&str, Option<&str>)], body: &[u8]) -> Response {
        let mut headers: Vec<(String, String)> = self
            .headers()
            .into_iter()
            .map(|(n, v)| (n.to_string(), v))
            .collect();
        for (name, value) in overrides {
            headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            if let Some(value) = value {
                headers.push((name.to_string(), value.to_string()));
            }
        }
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        post(&self.addr, &headers, body).await
    }

    /// A JSON-RPC request body with a fresh id.
    pub fn request_body(&self, method: &str, params: Value) -> (u64, Vec<u8>) {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let body = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        (id, body.to_string().into_bytes())
    }

    /// Sends a request in this session; asserts HTTP 200 and the reply id; returns the reply.
    pub async fn request(&self, method: &str, params: Value) -> Value {
        let (id, body) = self.request_body(method, params);
        let response = self.post(&body).await;
        assert_eq!(response.status, 200, "{method}: {response:?}");
        let reply = response.jsonrpc();
        assert_eq!(reply["id"], id, "{method} reply {reply}");
        reply
    }
}

/// `POST /mcp` with exactly `headers` (plus `Host` and `Content-Length`).
pub async fn post(addr: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    send_raw(addr, build_request("POST", "/mcp", addr, headers, body)).await
}
