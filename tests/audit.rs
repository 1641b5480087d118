//! The audit log and the access log, end to end: the real gateway with virtual keys, mock
//! upstreams over stdio (one with fault tools, one with a short timeout), server-everything
//! for streamed replies, rmcp clients, raw HTTP for batches, stateless requests and a client
//! that hangs up, and the TypeScript SDK's legacy SSE client. Records are read back from the
//! JSONL file and, through `mcpgate::audit::query`, from the SQLite store.

mod common;

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use common::audit::{entry, jsonl, store_bytes, wait_entries, wait_lines, wait_until};
use common::legacy_sse_client::{run_legacy_client, sse_url};
use common::raw_http::{self, build_request, RawSession, ACCEPT_BOTH};
use common::*;
use rmcp::model::ReadResourceRequestParams;
use serde_json::{json, Value};

both_drivers!(
    every_routed_request_is_recorded_once_in_both_sinks,
    audit_settings_wait_for_a_restart,
    arguments_are_recorded_only_when_asked_and_then_redacted,
    every_transport_yields_its_records,
    the_jsonl_file_rotates_by_size,
    a_full_queue_drops_and_counts_instead_of_blocking,
);

const ALICE: &str = "alice-audit-key-2f7c9e1b5a";
const BOB: &str = "bob-audit-key-6d0a3c8e51f4";
const CAROL: &str = "carol-audit-key-b4e82f17c9";

/// Where the gateway's relative audit paths land: beside its config file.
fn dir_of(gw: &Gateway) -> PathBuf {
    gw.config_path()
        .parent()
        .expect("the config file has a directory")
        .to_path_buf()
}

fn keyed_config() -> Value {
    let mut slow = mock_stdio(&[]);
    slow["timeout_ms"] = json!(300);
    let mut cfg = config(&[
        ("mock", mock_stdio(&["--faults"])),
        ("slow", slow),
        ("crashy", mock_stdio(&["--faults"])),
    ]);
    cfg["virtual_keys"] = json!([
        { "name": "alice", "key": ALICE,
          "grants": { "mock": ["*"], "slow": ["*"], "crashy": ["*"] } },
        { "name": "bob", "key": BOB, "grants": { "mock": ["echo"] } },
        { "name": "carol", "key": CAROL, "grants": { "mock": ["fault_hang", "echo"] },
          "max_concurrent_calls": 1 }
    ]);
    cfg["groups"] = json!({ "ro": { "mock": ["echo"] } });
    cfg["audit"] = json!({ "sqlite": "audit.db", "jsonl": "audit.jsonl" });
    cfg["access_log"] = json!({ "path": "access.log" });
    cfg
}

/// A 2026-07-28 (stateless) `tools/call` of `tool` presenting `key`, as raw HTTP.
fn stateless_call(addr: &str, key: &str, tool: &str) -> Vec<u8> {
    let body = json!({
        "jsonrpc": "2.0", "id": "hang-1", "method": "tools/call",
        "params": { "name": tool, "arguments": {}, "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": { "name": "audit-stateless", "version": "1.2" }
        } }
    });
    let auth = format!("Bearer {key}");
    let headers = [
        ("Content-Type", "application/json"),
        ("Accept", ACCEPT_BOTH),
        ("MCP-Protocol-Version", "2026-07-28"),
        ("Mcp-Method", "tools/call"),
        ("Mcp-Name", tool),
        ("Authorization", auth.as_str()),
    ];
    build_request("POST", "/mcp", addr, &headers, body.to_string().as_bytes())
}

fn wait_log(gw: &mut Gateway, mark: usize, needle: &str) -> String {
    tokio::task::block_in_place(|| {
        gw.proc
            .wait_stderr_line_after(mark, |l| l.contains(needle), READY_TIMEOUT)
    })
}

/// `(key, tool, outcome)` of each entry, sorted.
fn summary(entries: &[Value]) -> Vec<(String, String, String)> {
    let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
    let mut s: Vec<_> = entries
        .iter()
        .map(|e| (text(&e["key"]), text(&e["tool"]), text(&e["outcome"])))
        .collect();
    s.sort();
    s
}

fn is_rfc3339_millis(t: &Value) -> bool {
    let t = t.as_str().unwrap_or("");
    t.len() == 24 && t.ends_with('Z') && &t[10..11] == "T" && &t[19..20] == "."
}

/// N requests of every outcome — ok, tool error, unknown, timeout, denied, limited,
/// cancelled, upstream failure — give exactly N records, the same in the JSONL file and the
/// SQLite store, each with every field; no key value and no argument appears in either.
async fn every_routed_request_is_recorded_once_in_both_sinks(driver: &str) {
    let mut gw = Gateway::start(driver, &keyed_config()).await;
    let dir = dir_of(&gw);
    let token = format!("hello-{}", unique_token());
    let alice = connect_http_with_key(&gw.url, ALICE).await;
    let bob = connect_http_with_key(&gw.url, BOB).await;
    let carol = connect_http_with_key(&gw.url, CAROL).await;
    let alice_in_group = connect_http_with_key(&format!("{}/ro", gw.url), ALICE).await;

    call_ok(&alice, "mock__echo", json!({ "message": token })).await;
    call_ok(
        &alice_in_group,
        "mock__echo",
        json!({ "message": "grouped" }),
    )
    .await;
    call_ok(&alice, "mock__add", json!({ "a": 1, "b": 2 })).await;
    let tool_error = call(&alice, "mock__echo", json!({}))
        .await
        .expect("a result");
    assert_eq!(tool_error.is_error, Some(true));
    mcp_error("unknown", call(&alice, "mock__nope", json!({})).await);
    mcp_error(
        "timeout",
        call(&alice, "slow__sleep", json!({ "ms": 5000 })).await,
    );
    mcp_error(
        "denied",
        call(&bob, "mock__add", json!({ "a": 1, "b": 2 })).await,
    );
    let unknown_uri = within(
        "resources/read",
        alice.read_resource(ReadResourceRequestParams::new("file:///nowhere")),
    )
    .await;
    assert!(unknown_uri.is_err(), "{unknown_uri:?}");

    // Carol's one allowed call hangs (a stateless request); her next is limited; then the
    // hanging call's client goes away.
    let mark = gw.proc.mark();
    let mut hanging = std::net::TcpStream::connect(gw.addr()).expect("connect");
    std::io::Write::write_all(
        &mut hanging,
        &stateless_call(&gw.addr(), CAROL, "mock__fault_hang"),
    )
    .expect("send the hanging call");
    wait_log(&mut gw, mark, "hangs (fault_hang)");
    let limited = mcp_error(
        "limited",
        call(&carol, "mock__echo", json!({ "message": "x" })).await,
    );
    assert_eq!(limited.code.0, -32029, "{limited:?}");
    drop(hanging);

    mcp_error("crash", call(&alice, "crashy__fault_exit", json!({})).await);

    // And one 401, for the access log.
    let refused = raw_http::post(&gw.addr(), &[("Content-Type", "application/json")], b"{}").await;
    assert_eq!(refused.status, 401);

    const N: usize = 11;
    let lines = wait_lines(&dir.join("audit.jsonl"), N).await;
    let entries = wait_entries(&dir.join("audit.db"), N).await;
    let expected: Vec<(String, String, String)> = [
        ("alice", "add", "ok"),
        ("alice", "echo", "ok"),
        ("alice", "echo", "ok"),
        ("alice", "echo", "tool_error"),
        ("alice", "fault_exit", "upstream_error"),
        ("alice", "file:///nowhere", "unknown"),
        ("alice", "mock__nope", "unknown"),
        ("alice", "sleep", "timeout"),
        ("bob", "add", "denied"),
        ("carol", "echo", "limited"),
        ("carol", "fault_hang", "cancelled"),
    ]
    .iter()
    .map(|(k, t, o)| (k.to_string(), t.to_string(), o.to_string()))
    .collect();
    assert_eq!(summary(&lines), expected, "JSONL: {lines:#?}");
    assert_eq!(summary(&entries), expected, "SQLite: {entries:#?}");

    for e in lines.iter().chain(&entries) {
        assert!(is_rfc3339_millis(&e["time"]), "{e}");
        assert!(e["request_bytes"].as_u64() > Some(0), "{e}");
        assert!(e["latency_us"].is_u64(), "{e}");
        assert!(!e["rpc_id"].is_null(), "{e}");
        assert!(e["arguments"].is_null(), "no arguments by default: {e}");
        let ok = e["outcome"] == "ok";
        assert_eq!(
            e["error"].is_null(),
            ok,
            "an error message exactly when not ok: {e}"
        );
        if e["tool"] == "fault_hang" {
            // The stateless request: no session, its client as `_meta` named it.
            assert_eq!(e["session"], Value::Null, "{e}");
            assert_eq!(e["client_name"], "audit-stateless", "{e}");
            assert_eq!(e["client_version"], "1.2", "{e}");
            assert_eq!(e["rpc_id"], "hang-1", "{e}");
            assert_eq!(e["reply_bytes"], 0, "{e}");
        } else {
            let session = e["session"].as_str().unwrap_or("");
            assert!(
                session.len() == 16 && session.bytes().all(|b| b.is_ascii_hexdigit()),
                "{e}"
            );
            assert_eq!(e["client_name"], "rmcp", "{e}");
            assert!(e["reply_bytes"].as_u64() > Some(0), "{e}");
        }
    }
    let grouped: Vec<&Value> = entries.iter().filter(|e| !e["group"].is_null()).collect();
    assert_eq!(grouped.len(), 1, "{entries:#?}");
    assert_eq!(
        (&grouped[0]["group"], &grouped[0]["tool"]),
        (&json!("ro"), &json!("echo"))
    );
    let ok = entries
        .iter()
        .find(|e| e["tool"] == "add" && e["outcome"] == "ok")
        .expect("alice's add");
    assert_eq!(ok["method"], "tools/call");
    assert_eq!(ok["server"], "mock");
    assert!(ok["upstream_us"].is_u64(), "{ok}");
    let tool_error = entries
        .iter()
        .find(|e| e["outcome"] == "tool_error")
        .expect("tool error");
    assert_eq!(tool_error["error"], "Missing required argument: message");
    let timeout = entry(&entries, "outcome", "timeout");
    assert_eq!(timeout["server"], "slow");
    assert!(timeout["latency_us"].as_u64() >= Some(300_000), "{timeout}");
    assert!(
        timeout["error"].as_str().unwrap_or("").contains("300 ms"),
        "{timeout}"
    );
    let denied = entry(&entries, "outcome", "denied");
    assert!(
        denied["error"].as_str().unwrap_or("").contains("\"bob\""),
        "{denied}"
    );
    assert_eq!(denied["upstream_us"], Value::Null);
    let unknown = entry(&entries, "tool", "mock__nope");
    assert_eq!(unknown["server"], Value::Null);
    assert_eq!(unknown["error"], "Unknown tool: mock__nope");
    let uri = entry(&entries, "tool", "file:///nowhere");
    assert_eq!(uri["method"], "resources/read");
    assert_eq!(
        entry(&entries, "outcome", "upstream_error")["server"],
        "crashy"
    );
    assert!(entry(&entries, "outcome", "cancelled")["error"]
        .as_str()
        .unwrap_or("")
        .contains("went away"));

    // No secret and no argument, in any form either sink holds.
    let jsonl_text = std::fs::read_to_string(dir.join("audit.jsonl")).expect("jsonl");
    let db_text = store_bytes(&dir.join("audit.db"));
    for secret in [ALICE, BOB, CAROL, token.as_str()] {
        assert!(!jsonl_text.contains(secret), "{secret} in the JSONL file");
        assert!(!db_text.contains(secret), "{secret} in the SQLite store");
    }

    // The access log: one line per HTTP request, keys by name, never by value.
    let access = wait_until(
        "the 401 in the access log",
        || jsonl(&dir.join("access.log")),
        |lines| lines.iter().any(|l| l["status"] == 401),
    )
    .await;
    let unauthorized = access.iter().find(|l| l["status"] == 401).expect("401");
    assert_eq!(unauthorized["key"], Value::Null);
    assert_eq!(unauthorized["method"], "POST");
    assert_eq!(unauthorized["path"], "/mcp");
    let served = access
        .iter()
        .find(|l| l["key"] == "alice" && l["status"] == 200)
        .unwrap_or_else(|| panic!("no line of alice's: {access:#?}"));
    assert!(served["remote"]
        .as_str()
        .unwrap_or("")
        .starts_with("127.0.0.1:"));
    assert!(served["bytes_in"].as_u64() > Some(0) && served["bytes_out"].as_u64() > Some(0));
    assert!(served["duration_us"].is_u64() && is_rfc3339_millis(&served["time"]));
    let gone = access
        .iter()
        .find(|l| l["status"] == 499)
        .unwrap_or_else(|| panic!("no line for the client that hung up: {access:#?}"));
    assert_eq!(gone["key"], "carol");
    let access_text = std::fs::read_to_string(dir.join("access.log")).expect("access log");
    for secret in [ALICE, BOB, CAROL] {
        assert!(!access_text.contains(secret), "{secret} in the access log");
    }
    for client in [alice, bob, carol, alice_in_group] {
        close(client).await;
    }
}

/// With `log_arguments`, a request's arguments are recorded with the fields named in
/// `redact` (the defaults here) replaced at any depth, in both sinks.
async fn arguments_are_recorded_only_when_asked_and_then_redacted(driver: &str) {
    let mut cfg = config(&[("mock", mock_stdio(&[]))]);
    cfg["audit"] = json!({ "jsonl": "audit.jsonl", "log_arguments": true });
    let gw = Gateway::start(driver, &cfg).await;
    let dir = dir_of(&gw);
    let client = gw.client().await;
    let visible = format!("visible-{}", unique_token());
    let args = json!({
        "message": visible,
        "password": "hunter2-secret",
        "options": { "apiKey": "k-3f9a-secret", "list": [{ "Authorization": "Bearer zz-secret" }] }
    });
    call_ok(&client, "mock__echo", args).await;
    close(client).await;
    let lines = wait_lines(&dir.join("audit.jsonl"), 1).await;
    let entries = wait_entries(&dir.join("mcpgate-audit.db"), 1).await;
    for e in [&lines[0], &entries[0]] {
        assert_eq!(e["key"], "anonymous");
        let a = &e["arguments"];
        assert_eq!(a["message"], visible.as_str(), "{e}");
        assert_eq!(a["password"], "[redacted]", "{e}");
        assert_eq!(a["options"]["apiKey"], "[redacted]", "{e}");
        assert_eq!(
            a["options"]["list"][0]["Authorization"], "[redacted]",
            "{e}"
        );
    }
    let jsonl_text = std::fs::read_to_string(dir.join("audit.jsonl")).expect("jsonl");
    let db_text = store_bytes(&dir.join("mcpgate-audit.db"));
    assert!(jsonl_text.contains(&visible));
    assert!(!jsonl_text.contains("secret") && !db_text.contains("secret"));
}

/// Audit settings are read at start: a reload that changes them says they wait for a restart,
/// and records keep following the settings the gateway started with.
async fn audit_settings_wait_for_a_restart(driver: &str) {
    let mut cfg = config(&[("mock", mock_stdio(&[]))]);
    cfg["audit"] = json!({ "jsonl": "audit.jsonl", "sqlite": false, "log_arguments": true });
    let mut gw = Gateway::start(driver, &cfg).await;
    let dir = dir_of(&gw);
    cfg["audit"]["log_arguments"] = json!(false);
    let line = gw.reload_with(&cfg, "take effect at the next restart");
    assert!(line.contains("audit/access_log"), "{line}");
    let client = gw.client().await;
    call_ok(
        &client,
        "mock__echo",
        json!({ "message": "after the reload" }),
    )
    .await;
    close(client).await;
    let lines = wait_lines(&dir.join("audit.jsonl"), 1).await;
    assert_eq!(lines[0]["arguments"]["message"], "after the reload");
}

/// A sink path that cannot be opened stops `serve` before it listens, naming the config key.
#[test]
fn an_unusable_sink_path_stops_serve_naming_its_key() {
    let dir = TempDir::new("audit-unusable");
    let cases = [
        (
            "audit",
            json!({ "sqlite": "missing-dir/audit.db" }),
            "audit.sqlite",
        ),
        (
            "audit",
            json!({ "sqlite": false, "jsonl": "missing-dir/a.jsonl" }),
            "audit.jsonl",
        ),
        (
            "access_log",
            json!({ "path": "missing-dir/access.log" }),
            "access_log.path",
        ),
    ];
    for (block, value, key) in cases {
        let mut cfg = config(&[("mock", mock_stdio(&[]))]);
        cfg[block] = value;
        let path = dir.path().join("mcpgate.json");
        std::fs::write(&path, cfg.to_string()).expect("write config");
        let mut cmd = std::process::Command::new(mcpgate_bin());
        cmd.arg("serve").arg("--config").arg(&path).args([
            "--listen",
            "127.0.0.1:0",
            "--io-driver",
            "epoll",
        ]);
        let mut proc = Proc::spawn("mcpgate serve (unusable sink)", cmd);
        let status = proc.wait_exit(READY_TIMEOUT);
        assert!(!status.success(), "{key}: {}", proc.stderr_text());
        // The exit can be seen before the reader thread has taken the last lines: wait for it.
        let refusal = proc.wait_stderr_line(
            |l| l.contains(&format!("{key}: cannot open")),
            READY_TIMEOUT,
        );
        assert!(refusal.contains("missing-dir"), "{key}: {refusal}");
    }
}

/// A legacy SSE session (one plain call, one streamed), a JSON-RPC batch of two calls, and a
/// streamed reply on `/mcp`: one record each, with the session and the client each declared.
async fn every_transport_yields_its_records(driver: &str) {
    let mut cfg = config(&[("everything", everything_stdio())]);
    cfg["audit"] = json!({ "jsonl": "audit.jsonl", "sqlite": false });
    cfg["access_log"] = json!({ "path": "access.log" });
    let gw = Gateway::start(driver, &cfg).await;
    let dir = dir_of(&gw);

    let plan = json!({
        "url": sse_url(&gw),
        "calls": [
            { "name": "everything__echo", "arguments": { "message": "legacy" } },
            { "name": "everything__trigger-long-running-operation",
              "arguments": { "duration": 0.2, "steps": 2 }, "progress": true }
        ]
    });
    run_legacy_client(&gw, plan).await;

    let batch_session = RawSession::open_at(&gw.addr(), "2025-03-26").await;
    let batch = json!([
        { "jsonrpc": "2.0", "id": 10, "method": "tools/call",
          "params": { "name": "everything__echo", "arguments": { "message": "batched" } } },
        { "jsonrpc": "2.0", "id": 11, "method": "tools/call",
          "params": { "name": "everything__get-sum", "arguments": { "a": 1, "b": 2 } } },
        { "jsonrpc": "2.0", "method": "notifications/progress", "params": {} }
    ]);
    let replies = batch_session.post(batch.to_string().as_bytes()).await;
    assert_eq!(replies.status, 200, "{replies:?}");

    let session = RawSession::open(&gw.addr()).await;
    let (_, body) = session.request_body(
        "tools/call",
        json!({ "name": "everything__trigger-long-running-operation",
                "arguments": { "duration": 0.2, "steps": 2 },
                "_meta": { "progressToken": "p-1" } }),
    );
    let streamed = session.post(&body).await;
    assert_eq!(
        streamed.header("content-type"),
        Some("text/event-stream"),
        "the call streams: {streamed:?}"
    );

    let lines = wait_lines(&dir.join("audit.jsonl"), 5).await;
    assert_eq!(lines.len(), 5, "{lines:#?}");
    assert!(lines
        .iter()
        .all(|l| l["outcome"] == "ok" && l["key"] == "anonymous"));
    let by_client =
        |name: &str| -> Vec<&Value> { lines.iter().filter(|l| l["client_name"] == name).collect() };
    let legacy = by_client("mcpgate-legacy-test");
    assert_eq!(legacy.len(), 2, "{lines:#?}");
    assert_eq!(legacy[0]["client_version"], "1.0.0");
    assert_eq!(legacy[0]["session"], legacy[1]["session"]);
    let raw = by_client("mcpgate-raw-test");
    assert_eq!(raw.len(), 3, "{lines:#?}");
    let batched: Vec<&&Value> = raw
        .iter()
        .filter(|l| l["rpc_id"] == 10 || l["rpc_id"] == 11)
        .collect();
    assert_eq!(batched.len(), 2);
    assert_eq!(batched[0]["session"], batched[1]["session"]);
    let long: Vec<&Value> = lines
        .iter()
        .filter(|l| l["tool"] == "trigger-long-running-operation")
        .collect();
    assert_eq!(long.len(), 2);
    for l in &long {
        // Recorded when the stream ended: the whole operation, every event's bytes.
        assert!(l["latency_us"].as_u64() >= Some(200_000), "{l}");
        assert!(l["upstream_us"].as_u64() >= Some(200_000), "{l}");
    }
    let echo = lines
        .iter()
        .find(|l| l["tool"] == "echo" && l["client_name"] == "mcpgate-legacy-test")
        .expect("the legacy echo");
    let streamed_bytes = long
        .iter()
        .map(|l| l["reply_bytes"].as_u64().unwrap_or(0))
        .min()
        .unwrap_or(0);
    assert!(
        streamed_bytes > echo["reply_bytes"].as_u64().unwrap_or(u64::MAX),
        "{lines:#?}"
    );

    let access = wait_until(
        "the legacy stream's line",
        || jsonl(&dir.join("access.log")),
        |lines| {
            lines
                .iter()
                .any(|l| l["path"] == "/messages" && l["status"] == 202)
        },
    )
    .await;
    assert!(
        access.iter().all(|l| l["key"] == "anonymous"),
        "{access:#?}"
    );
    assert!(
        access.iter().any(|l| l["path"] == "/mcp"
            && l["status"] == 200
            && l["bytes_out"].as_u64() > Some(0)),
        "{access:#?}"
    );
}

/// A small `jsonl_max_bytes` rotates the file: the newest lines in `audit.jsonl`, older ones
/// in `audit.jsonl.1` and `.2`, nothing beyond `jsonl_keep`.
async fn the_jsonl_file_rotates_by_size(driver: &str) {
    let mut cfg = config(&[("mock", mock_stdio(&[]))]);
    cfg["audit"] = json!({ "jsonl": "audit.jsonl", "sqlite": false, "log_arguments": true,
                           "jsonl_max_bytes": 1200, "jsonl_keep": 2 });
    let gw = Gateway::start(driver, &cfg).await;
    let dir = dir_of(&gw);
    let path = dir.join("audit.jsonl");
    let rotated = |n: u32| dir.join(format!("audit.jsonl.{n}"));
    let client = gw.client().await;
    const CALLS: usize = 12;
    let marker = |i: usize| format!("call-{i:02}");
    for i in 0..CALLS {
        call_ok(&client, "mock__echo", json!({ "message": marker(i) })).await;
    }
    close(client).await;
    // Records are written in order, so once the last is in, all are.
    let last = marker(CALLS - 1);
    wait_until(
        "the last record in the current file",
        || jsonl(&path),
        |lines| {
            lines
                .iter()
                .any(|l| l["arguments"]["message"] == last.as_str())
        },
    )
    .await;
    let calls_in = |p: &Path| -> Vec<usize> {
        jsonl(p)
            .iter()
            .filter_map(|l| {
                l["arguments"]["message"]
                    .as_str()?
                    .strip_prefix("call-")?
                    .parse()
                    .ok()
            })
            .collect()
    };
    let (oldest, older, newest) = (
        calls_in(&rotated(2)),
        calls_in(&rotated(1)),
        calls_in(&path),
    );
    for (p, calls) in [
        (rotated(2), &oldest),
        (rotated(1), &older),
        (path.clone(), &newest),
    ] {
        let size = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        assert!(
            !calls.is_empty() && size <= 1200,
            "{}: {size} bytes, {calls:?}",
            p.display()
        );
    }
    assert!(!rotated(3).exists(), "only jsonl_keep rotated files");
    let in_order: Vec<usize> = oldest
        .iter()
        .chain(&older)
        .chain(&newest)
        .copied()
        .collect();
    assert!(
        in_order.windows(2).all(|w| w[0] + 1 == w[1]) && in_order.last() == Some(&(CALLS - 1)),
        "consecutive calls, newest last: {in_order:?}"
    );
    assert!(
        in_order.len() < CALLS,
        "the oldest files were deleted: {in_order:?}"
    );
}

/// With a tiny queue and a sink that blocks (a FIFO nobody reads), records are dropped and
/// counted while every call is still answered; the count is in the shutdown line.
async fn a_full_queue_drops_and_counts_instead_of_blocking(driver: &str) {
    let fifo_dir = TempDir::new("audit-fifo");
    let fifo = fifo_dir.path().join("audit.fifo");
    let c_path = std::ffi::CString::new(fifo.to_string_lossy().as_bytes()).expect("path");
    // SAFETY: a valid NUL-terminated path; mkfifo only creates the node.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0, "mkfifo");
    // The read end is held open (so the gateway's open does not wait) and not read yet.
    let mut reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .expect("open the FIFO's read end");

    let mut cfg = config(&[("mock", mock_stdio(&[]))]);
    cfg["audit"] = json!({ "jsonl": fifo.to_string_lossy(), "sqlite": false,
                           "queue_capacity": 4, "log_arguments": true });
    let mut gw = Gateway::start(driver, &cfg).await;
    let mark = gw.proc.mark();
    let client = gw.client().await;
    // Lines of ~8 KiB fill the pipe's buffer after a few records; the log thread then blocks.
    let big = "x".repeat(8 * 1024);
    const CALLS: u64 = 200;
    for _ in 0..CALLS {
        call_ok(&client, "mock__echo", json!({ "message": big })).await;
    }
    close(client).await;
    wait_log(&mut gw, mark, "records are being dropped");

    // Unblock the sink, stop the gateway, and read the final counts.
    let fd = std::os::fd::AsRawFd::as_raw_fd(&reader);
    // SAFETY: fcntl on a descriptor this test owns, clearing O_NONBLOCK: reads now wait for
    // data, and end when the gateway (the only writer) closes the FIFO.
    assert_eq!(unsafe { libc::fcntl(fd, libc::F_SETFL, 0) }, 0, "fcntl");
    let drained = std::thread::spawn(move || {
        let mut sink = Vec::new();
        reader.read_to_end(&mut sink).expect("read the FIFO");
        sink.len()
    });
    let mark = gw.proc.mark();
    gw.proc.signal(libc::SIGTERM);
    let closed = wait_log(&mut gw, mark, "audit log closed");
    let number = |name: &str| -> u64 {
        closed
            .split(&format!("{name}="))
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {closed:?}"))
    };
    let (written, dropped) = (number("written"), number("dropped"));
    assert!(dropped > 0, "{closed}");
    assert_eq!(written + dropped, CALLS, "{closed}");
    let status = tokio::task::block_in_place(|| gw.proc.wait_exit(READY_TIMEOUT));
    assert!(status.success(), "{status:?}");
    assert!(drained.join().expect("reader") > 0);
}
