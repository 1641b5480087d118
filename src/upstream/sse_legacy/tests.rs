use super::*;
use crate::runtime::{block_on, IoDriver};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

/// A small legacy-SSE MCP server: one stream at `/sse`, messages POSTed to its endpoint.
/// `ask` makes it send the gateway a `ping` and a `roots/list` request and reply with the
/// answers it got; `huge` replies with 5000 bytes, `id` last (as the TypeScript SDK writes).
const FIXTURE: &str = r#"
import json, os, queue, sys, threading
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
events = queue.Queue()
answers = queue.Queue()
endpoint = os.environ.get("ENDPOINT", "/msg?session=1")
def send(m):
    events.put("event: message\ndata: " + json.dumps(m) + "\n\n")
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.chunk("event: endpoint\ndata: " + endpoint + "\n\n")
        while True:
            self.chunk(events.get())
    def chunk(self, s):
        b = s.encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(b), b)); self.wfile.flush()
    def do_POST(self):
        m = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(202); self.send_header("Content-Length", "8"); self.end_headers()
        self.wfile.write(b"Accepted"); self.wfile.flush()
        if "method" not in m:
            answers.put(m); return
        meth, i = m["method"], m.get("id")
        if i is None: return
        if meth == "initialize":
            send({"jsonrpc": "2.0", "id": i, "result": {"protocolVersion": "2024-11-05", "capabilities": {"tools": {}}, "serverInfo": {"name": "fixture", "version": "1"}}})
        elif meth == "ask":
            send({"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "x"}})
            send({"jsonrpc": "2.0", "id": "p1", "method": "ping"})
            send({"jsonrpc": "2.0", "id": 8, "method": "roots/list"})
            got = sorted([answers.get(), answers.get()], key=lambda a: str(a["id"]))
            send({"jsonrpc": "2.0", "id": i, "result": {"answers": got}})
        elif meth == "huge":
            events.put("event: message\ndata: " + json.dumps({"result": {"pad": "y" * 5000}, "jsonrpc": "2.0", "id": i}, separators=(",", ":")) + "\n\n")
        else:
            send({"jsonrpc": "2.0", "id": i, "result": m.get("params", {})})
s = ThreadingHTTPServer(("127.0.0.1", 0), H)
print("listening on", s.server_address[1], flush=True)
s.serve_forever()
"#;

/// The fixture server, killed on drop.
struct Fixture {
    child: Child,
    url: String,
}

impl Fixture {
    fn start(endpoint: &str) -> Fixture {
        let mut child = Command::new("python3")
            .args(["-c", FIXTURE])
            .env("ENDPOINT", endpoint)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("ready line");
        let port = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        let url = format!("http://127.0.0.1:{port}/sse");
        Fixture { child, url }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn driver() -> IoDriver {
    IoDriver::resolve(crate::config::IoDriverChoice::Auto).expect("a driver")
}

fn start(fixture: &Fixture, max_event_bytes: usize) -> SseUpstream {
    let owner = CoreHandle::dedicated("sse-test", driver()).expect("owner thread");
    let spec = SseSpec {
        name: "fixture".into(),
        url: fixture.url.clone(),
        headers: vec![("X-Test".into(), "1".into())],
        max_event_bytes,
        max_in_flight: 16,
        tls: None,
    };
    SseUpstream::start(spec, &owner).expect("started")
}

/// Calls `method` from a runtime on this thread (not the stream's core), bounded in time.
fn call(up: &SseUpstream, method: &str, params: &str) -> Result<Value, UpstreamError> {
    let up = up.clone();
    let (method, params) = (method.to_owned(), params.to_owned());
    block_on(driver(), move || async move {
        let mut timing = CallTiming::default();
        let call = up.call(&method, Some(params.as_bytes()), None, &mut timing);
        let reply = monoio::time::timeout(Duration::from_secs(20), call)
            .await
            .expect("an answer within 20 s");
        pool::drop_idle_connections();
        reply.map(|r| serde_json::from_slice(&r.message).expect("a JSON reply"))
    })
    .expect("runtime")
}

#[test]
fn handshake_calls_and_server_requests() {
    let fixture = Fixture::start("/msg?session=1");
    let up = start(&fixture, 1 << 20);
    let info = up.wait_ready(Duration::from_secs(20)).expect("ready");
    assert_eq!(info.protocol_version, "2024-11-05");
    assert_eq!(up.state(), SseState::Ready);

    let reply = call(&up, "echo", r#"{"a":[1,"two"]}"#).expect("echo");
    assert_eq!(reply["result"], json!({ "a": [1, "two"] }));

    // The server's ping is answered with {} and any other request with -32601, by POSTs to
    // the endpoint; a notification on the way changes nothing.
    let reply = call(&up, "ask", "{}").expect("ask");
    assert_eq!(
        reply["result"]["answers"],
        json!([
            { "jsonrpc": "2.0", "id": 8, "error": { "code": -32601, "message": "Method not found: roots/list" } },
            { "jsonrpc": "2.0", "id": "p1", "result": {} },
        ])
    );
    up.shutdown();
}

#[test]
fn an_oversized_reply_fails_its_call_and_the_stream_goes_on() {
    let fixture = Fixture::start("/msg?session=1");
    let up = start(&fixture, 1000);
    up.wait_ready(Duration::from_secs(20)).expect("ready");
    match call(&up, "huge", "{}") {
        Err(UpstreamError::Protocol { server, reason }) => {
            assert_eq!(server, "fixture");
            assert!(
                reason.contains("exceeds max_upstream_reply_bytes"),
                "{reason}"
            );
        }
        other => panic!("expected a protocol error, got {other:?}"),
    }
    let reply = call(&up, "echo", r#"{"still":"here"}"#).expect("echo after the big one");
    assert_eq!(reply["result"], json!({ "still": "here" }));
    up.shutdown();
}

#[test]
fn an_endpoint_on_another_host_is_refused() {
    let fixture = Fixture::start("http://example.invalid:1/msg");
    let up = start(&fixture, 1 << 20);
    match up.wait_ready(Duration::from_secs(20)) {
        Err(UpstreamError::Unavailable { server, reason }) => {
            assert_eq!(server, "fixture");
            assert!(reason.contains("another host"), "{reason}");
        }
        other => panic!("expected the stream to be refused, got {other:?}"),
    }
    // Calls fail at once, naming the reason.
    match call(&up, "echo", "{}") {
        Err(UpstreamError::Unavailable { reason, .. }) => {
            assert!(reason.contains("another host"), "{reason}")
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    up.shutdown();
}

#[test]
fn shutdown_stops_the_stream_and_fails_calls() {
    let fixture = Fixture::start("/msg?session=1");
    let up = start(&fixture, 1 << 20);
    up.wait_ready(Duration::from_secs(20)).expect("ready");
    up.shutdown();
    let stopped = {
        let s = lock(&up.inner.shared);
        let (s, _) = up
            .inner
            .changed
            .wait_timeout_while(s, Duration::from_secs(20), |s| s.state != SseState::Stopped)
            .unwrap_or_else(PoisonError::into_inner);
        s.state
    };
    assert_eq!(stopped, SseState::Stopped);
    match call(&up, "echo", "{}") {
        Err(UpstreamError::Unavailable { reason, .. }) => assert_eq!(reason, "shut down"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}
