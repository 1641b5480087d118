//! A streamable-HTTP MCP server, written here byte by byte, that keeps a ledger of every tool
//! call it ran, so a test can prove a call ran exactly once (or not at all). What it does with
//! its connections is the test's to choose: keep them alive, or close each one right after
//! its reply (as a server whose keep-alive timeout ran out would), and each close is an event
//! the test can wait for; or keep each open after its reply and close it, unanswered, when
//! another request arrives on it (a close that crossed the request, made certain).
//!
//! Tools (each takes `{"tag": "<text>"}` and counts a run under its tag):
//! - `run`: answers `ran <tag> <n>` (n: how many times that tag ran);
//! - `hold`: waits until the test releases it ([`LedgerHttp::release`]), then answers like `run`;
//! - `vanish`: closes the connection without answering, after counting the run.
//!
//! It runs as tasks of the test's tokio runtime and stops when dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};

use super::within;

/// What the server does with a connection after answering on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterReply {
    KeepAlive,
    /// Close it (the reply still says nothing about closing, as with a keep-alive timeout).
    Close,
    /// Keep it, and close it without an answer when the next request arrives on it (that
    /// request is not acted on, and is counted in [`LedgerHttp::unanswered`]).
    CloseOnNextRequest,
}

pub struct LedgerHttp {
    /// `http://127.0.0.1:PORT/mcp`
    pub url: String,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

struct State {
    /// Runs per tag, and `hold` calls that arrived.
    ledger: Mutex<Ledger>,
    /// Signalled on every change of the ledger or the events.
    changed: Notify,
    /// Permits for held calls.
    release: Semaphore,
}

#[derive(Default)]
struct Ledger {
    runs: HashMap<String, usize>,
    held: usize,
    /// `closed after <tag>` for each connection closed after answering that call.
    events: Vec<String>,
    /// Connections answered and then closed, tagged or not (the gateway's handshake and
    /// listing too).
    closed: usize,
    /// Connections a reply was written on, in `AfterReply::Close` mode.
    replied: usize,
    /// Requests dropped unread by `AfterReply::CloseOnNextRequest`.
    unanswered: usize,
}

impl Drop for LedgerHttp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LedgerHttp {
    pub async fn start(after_reply: AfterReply) -> LedgerHttp {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(State {
            ledger: Mutex::default(),
            changed: Notify::new(),
            release: Semaphore::new(0),
        });
        let serving = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve(conn, serving.clone(), after_reply));
            }
        });
        LedgerHttp {
            url: format!("http://127.0.0.1:{port}/mcp"),
            state,
            task,
        }
    }

    /// How many times a call tagged `tag` ran.
    pub fn runs(&self, tag: &str) -> usize {
        self.ledger().runs.get(tag).copied().unwrap_or(0)
    }

    /// How many `hold` calls have arrived so far.
    pub fn held(&self) -> usize {
        self.ledger().held
    }

    /// Lets `n` held calls (present or future) answer.
    pub fn release(&self, n: usize) {
        self.state.release.add_permits(n);
    }

    /// Waits until `n` `hold` calls have arrived.
    pub async fn wait_held(&self, n: usize) {
        self.wait_until(&format!("{n} held calls"), |l| l.held >= n)
            .await
    }

    /// Requests that arrived on an answered connection in `AfterReply::CloseOnNextRequest`
    /// mode and were dropped with it, unanswered.
    pub fn unanswered(&self) -> usize {
        self.ledger().unanswered
    }

    /// Waits until every connection a reply was written on (in `AfterReply::Close` mode) has
    /// been closed, so none the gateway pooled is still open from the server's side.
    pub async fn wait_all_closed(&self) {
        self.wait_until("every answered connection closed", |l| {
            l.closed == l.replied
        })
        .await
    }

    /// Waits until the connection that answered the call tagged `tag` has been closed.
    pub async fn wait_closed_after(&self, tag: &str) {
        let event = format!("closed after {tag}");
        self.wait_until(&event, |l| l.events.contains(&event)).await
    }

    async fn wait_until(&self, what: &str, done: impl Fn(&Ledger) -> bool) {
        within(&format!("the ledger server: {what}"), async {
            loop {
                let changed = self.state.changed.notified();
                if done(&self.ledger()) {
                    return;
                }
                changed.await;
            }
        })
        .await
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.state.ledger.lock().expect("ledger lock")
    }
}

impl State {
    fn record(&self, f: impl FnOnce(&mut Ledger)) {
        f(&mut self.ledger.lock().expect("ledger lock"));
        self.changed.notify_waiters();
    }

    /// Counts a run of `tag`; returns how many there have been.
    fn ran(&self, tag: &str) -> usize {
        let mut n = 0;
        self.record(|l| {
            let runs = l.runs.entry(tag.to_owned()).or_default();
            *runs += 1;
            n = *runs;
        });
        n
    }
}

/// Reads one request's body (head and Content-Length body); `None` once the peer is gone.
async fn read_body(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                let body = buf[end + 4..end + 4 + length].to_vec();
                buf.drain(..end + 4 + length);
                return Some(body);
            }
        }
        let mut chunk = [0u8; 8192];
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn reply(status: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

fn result(id: &Value, result: Value) -> Vec<u8> {
    reply(
        "200 OK",
        json!({ "jsonrpc": "2.0", "id": id, "result": result })
            .to_string()
            .as_bytes(),
    )
}

fn tools() -> Value {
    let schema = json!({ "type": "object", "properties": { "tag": { "type": "string" } } });
    let tool = |name: &str| json!({ "name": name, "inputSchema": schema });
    json!({ "tools": [tool("run"), tool("hold"), tool("vanish")] })
}

/// Serves one connection until the peer closes it, `vanish` drops it, or (with
/// [`AfterReply::Close`]) it has answered once.
async fn serve(mut conn: TcpStream, state: Arc<State>, after_reply: AfterReply) {
    let mut buf = Vec::new();
    let mut answered = false;
    while let Some(body) = read_body(&mut conn, &mut buf).await {
        if answered && after_reply == AfterReply::CloseOnNextRequest {
            state.record(|l| l.unanswered += 1);
            return;
        }
        let Ok(message) = serde_json::from_slice::<Value>(&body) else {
            return;
        };
        let id = message["id"].clone();
        let mut tag = None;
        let out = match message["method"].as_str().unwrap_or_default() {
            _ if id.is_null() => b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n".to_vec(),
            "initialize" => result(
                &id,
                json!({
                    "protocolVersion": message["params"]["protocolVersion"],
                    "capabilities": { "tools": {} },
                    "serverInfo": { "name": "ledger-http", "version": "0" }
                }),
            ),
            "tools/list" => result(&id, tools()),
            "tools/call" => {
                let name = message["params"]["name"].as_str().unwrap_or_default();
                let called = message["params"]["arguments"]["tag"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                match name {
                    "vanish" => {
                        state.ran(&called);
                        return;
                    }
                    "hold" => {
                        state.record(|l| l.held += 1);
                        match state.release.acquire().await {
                            Ok(permit) => permit.forget(),
                            Err(_) => return,
                        }
                    }
                    _ => {}
                }
                let n = state.ran(&called);
                let text = format!("ran {called} {n}");
                tag = Some(called);
                result(
                    &id,
                    json!({ "content": [{ "type": "text", "text": text }] }),
                )
            }
            _ => result(&id, json!({})),
        };
        if after_reply == AfterReply::Close {
            state.record(|l| l.replied += 1);
        }
        if conn.write_all(&out).await.is_err() {
            if after_reply == AfterReply::Close {
                state.record(|l| l.closed += 1);
            }
            return;
        }
        answered = true;
        if after_reply == AfterReply::Close {
            let _ = conn.shutdown().await;
            drop(conn);
            state.record(|l| {
                l.closed += 1;
                if let Some(tag) = tag {
                    l.events.push(format!("closed after {tag}"));
                }
            });
            return;
        }
    }
}
