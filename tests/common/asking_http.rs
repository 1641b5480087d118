//! A streamable-HTTP MCP server, written here byte by byte, that asks the gateway many things
//! at once: its tool `ask` (`{"count": n}`) sends n `ping` requests on its call's SSE reply,
//! its tool `ask_on_stream` sends them on the server's own `GET` stream, and each answers once
//! every one of its pings was answered. It holds the HTTP replies to the answers that are
//! results (those POSTs stay in flight) until the round is complete, and replies at once to
//! the answers that are errors: so as many answers are in flight as the gateway lets out, and
//! the pings beyond that are answered with errors or not at all. Its tool `hello` answers
//! `hello`.
//!
//! A round's result text: `answered <n>: ok <results>, refused <errors>` and, when there were
//! errors, `: <the first error's message>`.
//!
//! It runs as tasks of the test's tokio runtime and stops when dropped.

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};

use super::broken_http::{read_request, Request};

pub struct AskingHttp {
    /// `http://127.0.0.1:PORT/mcp`
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for AskingHttp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Default)]
struct Round {
    /// Numbers the rounds; a held answer waits for its round's release.
    number: u64,
    released: u64,
    ok: usize,
    errors: Vec<String>,
}

#[derive(Default)]
struct State {
    round: Mutex<Round>,
    /// Signalled on every change of `round`.
    changed: Notify,
    /// Where `ask_on_stream` writes its pings: the open `GET` stream, if any.
    stream: Mutex<Option<mpsc::UnboundedSender<Vec<u8>>>>,
}

impl State {
    fn update(&self, f: impl FnOnce(&mut Round)) {
        f(&mut self.round.lock().expect("round lock"));
        self.changed.notify_waiters();
    }

    /// Waits until `done` holds for the round.
    async fn wait(&self, done: impl Fn(&Round) -> bool) {
        loop {
            let changed = self.changed.notified();
            if done(&self.round.lock().expect("round lock")) {
                return;
            }
            changed.await;
        }
    }

    /// Starts a round: its number.
    fn begin(&self) -> u64 {
        let mut number = 0;
        self.update(|r| {
            r.number += 1;
            r.ok = 0;
            r.errors.clear();
            number = r.number;
        });
        number
    }

    /// Waits until `count` answers came, releases the held ones, and says what came.
    async fn finish(&self, number: u64, count: usize) -> String {
        self.wait(|r| r.ok + r.errors.len() >= count).await;
        let mut text = String::new();
        self.update(|r| {
            r.released = number;
            text = format!("answered {count}: ok {}, refused {}", r.ok, r.errors.len());
            if let Some(first) = r.errors.first() {
                text.push_str(": ");
                text.push_str(first);
            }
        });
        text
    }
}

impl AskingHttp {
    pub async fn start() -> AskingHttp {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(State::default());
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve(conn, state.clone()));
            }
        });
        AskingHttp {
            url: format!("http://127.0.0.1:{port}/mcp"),
            task,
        }
    }
}

const ACCEPTED: &[u8] = b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n";
const SSE_HEAD: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";

fn json_reply(body: &Value) -> Vec<u8> {
    let body = body.to_string();
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// One SSE event carrying `message`, as one chunk of a chunked body.
fn event_chunk(message: &Value) -> Vec<u8> {
    let event = format!("data: {message}\n\n");
    format!("{:x}\r\n{event}\r\n", event.len()).into_bytes()
}

fn pings(round: u64, count: usize) -> impl Iterator<Item = Value> {
    (0..count).map(
        move |k| json!({ "jsonrpc": "2.0", "id": format!("ask-{round}-{k}"), "method": "ping" }),
    )
}

fn text_result(id: &Value, text: &str) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "result": { "content": [{ "type": "text", "text": text }] } })
}

fn tools() -> Value {
    let count = json!({ "type": "object", "properties": { "count": { "type": "integer" } } });
    json!({ "tools": [
        { "name": "ask", "inputSchema": count },
        { "name": "ask_on_stream", "inputSchema": count },
        { "name": "hello", "inputSchema": { "type": "object" } },
    ] })
}

/// Serves one connection (keep-alive) until the client closes it.
async fn serve(mut conn: TcpStream, state: Arc<State>) {
    let mut buf = Vec::new();
    while let Some(Request { method, body }) = read_request(&mut conn, &mut buf).await {
        if method == "GET" {
            return stream(conn, state).await;
        }
        if method != "POST" {
            let refusal = b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n";
            if conn.write_all(refusal).await.is_err() {
                return;
            }
            continue;
        }
        let Ok(message) = serde_json::from_slice::<Value>(&body) else {
            return;
        };
        let id = message["id"].clone();
        let out = match message["method"].as_str() {
            // An answer to one of the pings.
            None if !message["error"].is_null() => {
                let why = message["error"]["message"].as_str().unwrap_or_default();
                state.update(|r| r.errors.push(why.to_owned()));
                ACCEPTED.to_vec()
            }
            None => {
                let mut number = 0;
                state.update(|r| {
                    r.ok += 1;
                    number = r.number;
                });
                state.wait(|r| r.released >= number).await;
                ACCEPTED.to_vec()
            }
            Some(_) if id.is_null() => ACCEPTED.to_vec(),
            Some("initialize") => json_reply(&json!({ "jsonrpc": "2.0", "id": id, "result": {
                "protocolVersion": message["params"]["protocolVersion"],
                "capabilities": { "tools": {} },
                "serverInfo": { "name": "asking-http", "version": "0" }
            } })),
            Some("tools/list") => {
                json_reply(&json!({ "jsonrpc": "2.0", "id": id, "result": tools() }))
            }
            Some("tools/call") => {
                let count = message["params"]["arguments"]["count"]
                    .as_u64()
                    .unwrap_or(0) as usize;
                match message["params"]["name"].as_str().unwrap_or_default() {
                    "ask" => {
                        if ask(&mut conn, &state, &id, count).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    "ask_on_stream" => {
                        let number = state.begin();
                        let sent = state
                            .stream
                            .lock()
                            .expect("stream lock")
                            .as_ref()
                            .is_some_and(|s| {
                                pings(number, count).all(|p| s.send(event_chunk(&p)).is_ok())
                            });
                        let text = match sent {
                            true => state.finish(number, count).await,
                            false => "no GET stream is open".to_owned(),
                        };
                        json_reply(&text_result(&id, &text))
                    }
                    _ => json_reply(&text_result(&id, "hello")),
                }
            }
            Some(_) => json_reply(&json!({ "jsonrpc": "2.0", "id": id, "result": {} })),
        };
        if conn.write_all(&out).await.is_err() {
            return;
        }
    }
}

/// `ask`: the pings and then the result, as one SSE reply.
async fn ask(conn: &mut TcpStream, state: &State, id: &Value, count: usize) -> std::io::Result<()> {
    let number = state.begin();
    conn.write_all(SSE_HEAD).await?;
    for ping in pings(number, count) {
        conn.write_all(&event_chunk(&ping)).await?;
    }
    let text = state.finish(number, count).await;
    conn.write_all(&event_chunk(&text_result(id, &text)))
        .await?;
    conn.write_all(b"0\r\n\r\n").await
}

/// The server's `GET` stream: open until the client goes, carrying what `ask_on_stream` sends.
async fn stream(mut conn: TcpStream, state: Arc<State>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    // Taken before the gateway can see the stream open (and say so in its log).
    *state.stream.lock().expect("stream lock") = Some(tx);
    if conn.write_all(SSE_HEAD).await.is_err() {
        return;
    }
    while let Some(chunk) = rx.recv().await {
        if conn.write_all(&chunk).await.is_err() {
            return;
        }
    }
}
