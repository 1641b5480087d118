use super::*;
use crate::upstream::process::block_on_timeout;
use serde_json::{json, Value};

/// A small MCP server: answers `initialize`, echoes params, and misbehaves on request.
const ECHO_SERVER: &str = r#"
import json, os, signal, subprocess, sys, time
def out(m):
    sys.stdout.write(json.dumps(m) + "\n"); sys.stdout.flush()
sys.stderr.write("echo server starting\n"); sys.stderr.flush()
mode = os.environ.get("MODE", "")
if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
cancelled = []
while True:
    line = sys.stdin.readline()
    if not line:
        break
    if mode == "silent" or not line.strip():
        continue
    m = json.loads(line)
    if m.get("method") == "notifications/cancelled":
        cancelled.append(m["params"]["requestId"])
    if "method" not in m or "id" not in m:
        continue
    meth, i, p = m["method"], m["id"], m.get("params")
    if meth == "initialize":
        p = {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}}, "serverInfo": {"name": "echo", "version": "1"}}
    elif meth == "hang":
        continue
    elif meth == "cancelled":
        p = cancelled
    elif meth == "die":
        os._exit(3)
    elif meth == "garbage":
        print("this is not json"); print('{"broken": '); print("[1,2]"); print('{"jsonrpc":"2.0"}'); print("")
        out({"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info"}})
        out({"jsonrpc": "2.0", "id": 999999, "result": {}})
    elif meth == "noise_big":
        print("x" * 5000)
    elif meth == "huge":
        p = {"pad": "y" * 5000}
    elif meth == "ask":
        out({"jsonrpc": "2.0", "id": "s1", "method": "ping"})
        out({"jsonrpc": "2.0", "id": 7, "method": "roots/list"})
        p = {"ping": json.loads(sys.stdin.readline()), "other": json.loads(sys.stdin.readline())}
    elif meth == "sleeper":
        p = {"pid": subprocess.Popen(["sleep", "1000"]).pid}
    out({"jsonrpc": "2.0", "id": i, "result": p})
if mode == "stubborn":
    time.sleep(1000)
"#;

fn spec(mode: &str, max_line_bytes: usize, max_in_flight: usize) -> StdioSpec {
    StdioSpec {
        name: format!("echo-{mode}"),
        command: "python3".into(),
        args: vec!["-c".into(), ECHO_SERVER.into()],
        env: vec![("MODE".into(), mode.into())],
        cwd: None,
        max_line_bytes,
        max_in_flight,
    }
}

/// A runtime of its own that drives the child's pipes (io_uring where the kernel allows it;
/// the integration tests drive both drivers through the gateway).
fn owner() -> CoreHandle {
    let driver =
        crate::runtime::IoDriver::resolve(crate::config::IoDriverChoice::Auto).expect("a driver");
    CoreHandle::dedicated("stdio-test", driver).expect("owner thread")
}

fn ready(mode: &str, max_line_bytes: usize, max_in_flight: usize) -> StdioUpstream {
    let up = StdioUpstream::start(spec(mode, max_line_bytes, max_in_flight), owner());
    up.wait_ready(Duration::from_secs(20)).unwrap();
    up
}

fn wait(call: PendingCall) -> Result<Vec<u8>, UpstreamError> {
    block_on_timeout(call.reply, Duration::from_secs(10))
        .expect("reply within 10 s")
        .expect("sender kept")
        .map(|reply| reply.message)
}

fn result(reply: &[u8]) -> Value {
    serde_json::from_slice::<Value>(reply).unwrap()["result"].clone()
}

fn echo(up: &StdioUpstream, params: &Value) -> Value {
    let call = up
        .call("echo", Some(params.to_string().as_bytes()), None)
        .unwrap();
    let id = call.id;
    let reply: Value = serde_json::from_slice(&wait(call).unwrap()).unwrap();
    assert_eq!(reply["id"], id);
    reply["result"].clone()
}

/// Waits (on the kernel's exit notification, not a clock) until `pid` has exited, at most
/// `limit`. A zombie counts as exited.
fn wait_gone(pid: u32, limit: Duration) -> bool {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
    }
    let fd = fd as libc::c_int;
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(limit.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: `pfd` is one valid pollfd for the duration of the call; `fd` is ours to close.
    let ready = unsafe {
        let n = libc::poll(&mut pfd, 1, ms);
        libc::close(fd);
        n
    };
    ready == 1 || gone(pid)
}

/// True when `pid` no longer exists (or is a zombie of some other parent, e.g. a reparented grandchild).
fn gone(pid: u32) -> bool {
    // SAFETY: signal 0 only probes for existence.
    if unsafe { libc::kill(pid as libc::pid_t, 0) } != 0 {
        return std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit(')')
        .next()
        .is_some_and(|rest| rest.trim_start().starts_with('Z'))
}

#[test]
fn handshake_and_round_trip() {
    let up = StdioUpstream::start(spec("", 1 << 20, 64), owner());
    match up.call("echo", None, None) {
        Err(UpstreamError::Unavailable { reason, .. }) => assert_eq!(reason, "starting"),
        other => panic!("expected Unavailable while starting, got {other:?}"),
    }
    let info = up.wait_ready(Duration::from_secs(20)).unwrap();
    assert_eq!(info.protocol_version, "2025-06-18");
    assert!(up
        .initialize_info()
        .unwrap()
        .result
        .get()
        .contains("\"echo\""));
    let st = up.status();
    assert_eq!(
        (st.state, st.restarts, st.last_error),
        (StdioState::Ready, 0, None)
    );
    assert!(st.pid.is_some());
    assert_eq!(
        echo(&up, &json!({"a": [1, "two\n"], "b": null})),
        json!({"a": [1, "two\n"], "b": null})
    );
    let call = up.call("echo", None, None).unwrap();
    assert_eq!(result(&wait(call).unwrap()), Value::Null);
    up.notify("notifications/cancelled", Some(br#"{"requestId":1}"#))
        .unwrap();
    let start = Instant::now();
    up.shutdown(Duration::from_secs(5));
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "closing stdin should be enough"
    );
    assert_eq!(up.status().state, StdioState::Stopped);
    assert!(gone(st.pid.unwrap()));
}

#[test]
fn concurrent_calls_get_their_own_replies() {
    let up = ready("", 1 << 20, 64);
    let workers: Vec<_> = (0..5)
        .map(|t| {
            let up = up.clone();
            thread::spawn(move || {
                let calls: Vec<_> = (0..10)
                    .map(|i| {
                        (
                            i,
                            up.call(
                                "echo",
                                Some(json!({"t": t, "i": i}).to_string().as_bytes()),
                                None,
                            )
                            .unwrap(),
                        )
                    })
                    .collect();
                for (i, call) in calls {
                    assert_eq!(result(&wait(call).unwrap()), json!({"t": t, "i": i}));
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    up.shutdown(Duration::from_secs(5));
}

#[test]
fn garbage_notifications_and_server_requests_do_not_break_the_stream() {
    let up = ready("", 1 << 20, 64);
    let call = up.call("garbage", Some(br#"{"k":"v"}"#), None).unwrap();
    assert_eq!(result(&wait(call).unwrap()), json!({"k": "v"}));
    let call = up.call("ask", None, None).unwrap();
    let asked = result(&wait(call).unwrap());
    assert_eq!(
        asked["ping"],
        json!({"jsonrpc": "2.0", "id": "s1", "result": {}})
    );
    // No call takes events, so nobody can answer roots/list: refused, naming why.
    assert_eq!(asked["other"]["id"], 7);
    assert_eq!(asked["other"]["error"]["code"], -32603);
    assert_eq!(echo(&up, &json!(1)), json!(1));

    // A call that takes events gets the request, and its answer reaches the child.
    let (sink, mut events) = EventSink::new(None);
    let call = up.call("ask", None, Some(sink)).unwrap();
    let relayed = block_on_timeout(
        futures_util::StreamExt::next(&mut events),
        Duration::from_secs(10),
    )
    .expect("relayed within 10 s")
    .expect("a message");
    let request: Value = serde_json::from_slice(&relayed.message).unwrap();
    assert_eq!(request["method"], "roots/list");
    let responder = relayed.responder.expect("a request carries its way back");
    assert_eq!(&*responder.upstream_id, "7");
    block_on_timeout(
        Box::pin(responder.respond(br#""result":{"roots":[]}"#)),
        Duration::from_secs(10),
    )
    .expect("answered")
    .expect("queued");
    let asked = result(&wait(call).unwrap());
    assert_eq!(
        asked["other"],
        json!({"jsonrpc": "2.0", "id": 7, "result": {"roots": []}})
    );
    up.shutdown(Duration::from_secs(5));
}

#[test]
fn child_exit_fails_pending_calls_and_restarts() {
    let up = ready("", 1 << 20, 64);
    let first_pid = up.status().pid.unwrap();
    let hanging = up.call("hang", None, None).unwrap();
    let dying = up.call("die", None, None).unwrap();
    let start = Instant::now();
    for call in [hanging, dying] {
        match wait(call) {
            Err(UpstreamError::Unavailable { server, reason }) => {
                assert_eq!(server, "echo-");
                assert_eq!(reason, "process exited (exit status: 3) during the call");
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }
    assert!(start.elapsed() < Duration::from_secs(3));
    assert!(up.wait_status(Duration::from_secs(15), |st| {
        st.state == StdioState::Ready && st.restarts == 1
    }));
    let st = up.status();
    assert_ne!(st.pid, Some(first_pid));
    assert!(st.last_error.unwrap().contains("exit status: 3"));
    assert!(gone(first_pid));
    assert_eq!(echo(&up, &json!("again")), json!("again"));
    up.shutdown(Duration::from_secs(5));
}

#[test]
fn shutdown_escalates_and_leaves_no_process() {
    let up = ready("stubborn", 1 << 20, 64);
    let pid = up.status().pid.unwrap();
    let call = up.call("sleeper", None, None).unwrap();
    let grandchild = result(&wait(call).unwrap())["pid"].as_u64().unwrap() as u32;
    assert!(!gone(grandchild));
    up.shutdown(Duration::from_millis(200));
    assert!(gone(pid), "the child must be reaped");
    assert!(
        wait_gone(grandchild, Duration::from_secs(5)),
        "the grandchild must be killed"
    );
    match up.call("echo", None, None) {
        Err(UpstreamError::Unavailable { reason, .. }) => assert_eq!(reason, "shut down"),
        other => panic!("expected Unavailable after shutdown, got {other:?}"),
    }
    // `shutdown` joined the supervisor, so nothing can restart the child any more.
    assert_eq!(up.status().state, StdioState::Stopped);
    assert_eq!(up.status().restarts, 0);
}

#[test]
fn over_long_lines_are_discarded() {
    let up = ready("", 1024, 64);
    let call = up.call("noise_big", Some(b"5"), None).unwrap();
    assert_eq!(result(&wait(call).unwrap()), json!(5));
    let call = up.call("huge", None, None).unwrap();
    match wait(call) {
        Err(UpstreamError::Protocol { reason, .. }) => {
            assert!(reason.contains("exceeds max_line_bytes (1024)"))
        }
        other => panic!("expected Protocol, got {other:?}"),
    }
    assert_eq!(echo(&up, &json!("next")), json!("next"));
    up.shutdown(Duration::from_secs(5));
}

#[test]
fn start_failures_are_reported_and_backed_off() {
    let mut bad = spec("", 1024, 4);
    bad.command = "/nonexistent/mcp-server".into();
    let up = StdioUpstream::start(bad, owner());
    match up.wait_ready(Duration::from_secs(10)) {
        Err(UpstreamError::Unavailable { reason, .. }) => {
            assert!(reason.contains("could not start"), "{reason}")
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(matches!(up.status().state, StdioState::Backoff { .. }));
    let start = Instant::now();
    up.shutdown(Duration::from_secs(5));
    assert!(start.elapsed() < Duration::from_secs(1));

    let up =
        StdioUpstream::start_with(spec("silent", 1024, 4), owner(), Duration::from_millis(300));
    match up.wait_ready(Duration::from_secs(10)) {
        Err(UpstreamError::Unavailable { reason, .. }) => {
            assert!(reason.contains("no answer to initialize"), "{reason}")
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(up.wait_status(Duration::from_secs(5), |st| matches!(
        st.state,
        StdioState::Backoff { .. }
    )));
    assert!(up.status().pid.is_none());
    up.shutdown(Duration::from_secs(5));
}

#[test]
fn overload_cancel_and_dropped_callers() {
    let up = ready("", 1 << 20, 2);
    let first = up.call("hang", None, None).unwrap();
    let second = up.call("hang", None, None).unwrap();
    assert!(matches!(
        up.call("hang", None, None),
        Err(UpstreamError::Overloaded { .. })
    ));
    up.cancel(first.id, "test");
    // The child hears of it (and only of the call that was still pending).
    up.cancel(first.id, "twice");
    let seen = wait(up.call("cancelled", None, None).unwrap()).unwrap();
    let seen: Value = serde_json::from_slice(&seen).unwrap();
    assert_eq!(seen["result"], json!([first.id]));
    let third = up.call("hang", None, None).unwrap();
    drop(second);
    let _fourth = up.call("hang", None, None).unwrap();
    assert!(matches!(
        up.call("hang", None, None),
        Err(UpstreamError::Overloaded { .. })
    ));
    drop(third);
    assert_eq!(echo(&up, &json!(true)), json!(true));
    up.shutdown(Duration::from_secs(5));
}
