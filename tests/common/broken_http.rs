//! A streamable-HTTP MCP server, written here byte by byte, whose tools answer in broken ways:
//! an HTTP 500, a body cut short of its `Content-Length`, a chunked body or an SSE event cut
//! mid-way, a body that is not JSON, a connection closed without a reply. `initialize`,
//! `tools/list` and `echo` work, so the gateway serves it and a test can check the server is
//! still usable after each fault.
//!
//! It runs as a task of the test's tokio runtime and stops when dropped.

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The fault tools and what each does to its reply.
pub const FAULTS: &[(&str, &str)] = &[
    ("status_500", "HTTP 500 with a text body"),
    (
        "truncated_length",
        "a JSON body cut short of its Content-Length, then close",
    ),
    (
        "truncated_chunked",
        "a chunked JSON body cut mid-chunk, then close",
    ),
    ("truncated_sse", "an SSE event cut mid-way, then close"),
    (
        "not_json",
        "a complete 200 application/json body that is HTML",
    ),
    ("closed", "the connection closed without a reply"),
];

pub struct BrokenHttp {
    /// `http://127.0.0.1:PORT/mcp`
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for BrokenHttp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl BrokenHttp {
    pub async fn start() -> BrokenHttp {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve(conn));
            }
        });
        BrokenHttp {
            url: format!("http://127.0.0.1:{port}/mcp"),
            task,
        }
    }
}

/// One request: its method line's verb and its body.
pub(super) struct Request {
    pub method: String,
    pub body: Vec<u8>,
}

/// Reads one request (head and `Content-Length` body); `None` once the peer is gone.
pub(super) async fn read_request(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Request> {
    let head_end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let mut chunk = [0u8; 8192];
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let method = head.split(' ').next().unwrap_or_default().to_owned();
    let length = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    buf.drain(..head_end + 4);
    while buf.len() < length {
        let mut chunk = [0u8; 8192];
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = buf.drain(..length).collect();
    Some(Request { method, body })
}

fn json_reply(status: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

fn result(id: &Value, result: Value) -> Vec<u8> {
    json!({ "jsonrpc": "2.0", "id": id, "result": result })
        .to_string()
        .into_bytes()
}

fn tools() -> Value {
    let schema = json!({ "type": "object", "properties": {} });
    let mut tools = vec![json!({ "name": "echo", "inputSchema": {
        "type": "object", "properties": { "message": { "type": "string" } } } })];
    for (name, description) in FAULTS {
        tools.push(json!({ "name": name, "description": description, "inputSchema": schema }));
    }
    json!({ "tools": tools })
}

/// Serves one connection (keep-alive) until the client closes it or a fault closes it.
async fn serve(mut conn: TcpStream) {
    let mut buf = Vec::new();
    while let Some(request) = read_request(&mut conn, &mut buf).await {
        if request.method != "POST" {
            let refusal = b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n";
            if conn.write_all(refusal).await.is_err() {
                return;
            }
            continue;
        }
        let Ok(message) = serde_json::from_slice::<Value>(&request.body) else {
            return;
        };
        let id = message["id"].clone();
        let reply = match message["method"].as_str().unwrap_or_default() {
            _ if id.is_null() => b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n".to_vec(),
            "initialize" => json_reply(
                "200 OK",
                &result(
                    &id,
                    json!({
                        "protocolVersion": message["params"]["protocolVersion"],
                        "capabilities": { "tools": {} },
                        "serverInfo": { "name": "broken-http", "version": "0" }
                    }),
                ),
            ),
            "tools/list" => json_reply("200 OK", &result(&id, tools())),
            "tools/call" => {
                let name = message["params"]["name"].as_str().unwrap_or_default();
                let Some(reply) = fault(&mut conn, name, &id, &message).await else {
                    return;
                };
                reply
            }
            other => json_reply(
                "200 OK",
                json!({ "jsonrpc": "2.0", "id": id,
                        "error": { "code": -32601, "message": format!("no {other}") } })
                .to_string()
                .as_bytes(),
            ),
        };
        if conn.write_all(&reply).await.is_err() {
            return;
        }
    }
}

/// The reply to a call of `name`, or `None` once the fault has been acted out on `conn` (which
/// is then closed).
async fn fault(conn: &mut TcpStream, name: &str, id: &Value, message: &Value) -> Option<Vec<u8>> {
    let full = result(
        id,
        json!({ "content": [{ "type": "text", "text": "this reply is never finished" }] }),
    );
    let half = &full[..full.len() / 2];
    let cut: Vec<u8> = match name {
        "echo" => {
            let text = message["params"]["arguments"]["message"].clone();
            let reply = result(id, json!({ "content": [{ "type": "text", "text": text }] }));
            return Some(json_reply("200 OK", &reply));
        }
        "status_500" => {
            let body = b"the broken server failed";
            let mut out = format!(
                "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            out.extend_from_slice(body);
            return Some(out);
        }
        "not_json" => {
            return Some(json_reply(
                "200 OK",
                b"<html>Service temporarily down</html>",
            ))
        }
        "truncated_length" => {
            let mut out = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                full.len()
            )
            .into_bytes();
            out.extend_from_slice(half);
            out
        }
        "truncated_chunked" => {
            let mut out = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            out.extend_from_slice(format!("{:x}\r\n", full.len()).as_bytes());
            out.extend_from_slice(half);
            out
        }
        "truncated_sse" => {
            let mut out = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            let event = [b"event: message\ndata: ".as_slice(), half].concat();
            out.extend_from_slice(format!("{:x}\r\n", event.len()).as_bytes());
            out.extend_from_slice(&event);
            out.extend_from_slice(b"\r\n");
            out
        }
        // "closed" and anything unknown: hang up without a word.
        _ => Vec::new(),
    };
    let _ = conn.write_all(&cut).await;
    let _ = conn.shutdown().await;
    None
}
