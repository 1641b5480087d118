//! Config reload while serving (SIGHUP): servers added, changed and removed while calls run,
//! unchanged servers keep their processes, sessions survive; an invalid file is refused and the
//! old config keeps serving; with a configured `session_secret` a session survives a restart.

mod common;

use common::raw_http::{post, RawSession};
use common::*;
use serde_json::json;

/// The gateway's child processes: (pid, command line).
fn children_of(parent: u32) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The parent pid is the 2nd field after the parenthesised command name.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
                .unwrap_or_default();
            found.push((pid, cmdline));
        }
    }
    found
}

/// The pid of the gateway's child whose command line contains `marker`.
fn child_with(gw: &Gateway, marker: &str) -> Option<u32> {
    children_of(gw.proc.pid())
        .into_iter()
        .find(|(_, cmd)| cmd.contains(marker))
        .map(|(pid, _)| pid)
}

fn sorted_tools(tools: &[rmcp::model::Tool]) -> Vec<String> {
    let mut n = names(tools);
    n.sort();
    n
}

both_drivers!(servers_are_added_changed_and_removed_while_calls_run);

async fn servers_are_added_changed_and_removed_while_calls_run(driver: &str) {
    // The `--tools` counts tell the children apart in /proc.
    let mut gone = mock_stdio(&["--tools", "4"]);
    gone["timeout_ms"] = json!(5000);
    let before = config(&[
        ("keep", mock_stdio(&["--tools", "1"])),
        ("gone", gone),
        ("changing", mock_stdio(&["--tools", "2"])),
    ]);
    let mut gw = Gateway::start(driver, &before).await;
    let client = gw.client().await;
    let keep_pid = child_with(&gw, "--tools 1").expect("keep's child");

    // Calls in flight on the servers about to be removed and changed; the mock logs each
    // sleep when it starts, so both are known to be there before the reload.
    let mark = gw.proc.mark();
    let slow = |name: &'static str, ms: u64| {
        let client_url = gw.url.clone();
        tokio::spawn(async move {
            let c = connect_http(&client_url).await;
            let r = call(&c, name, json!({ "ms": ms })).await;
            close(c).await;
            r
        })
    };
    let on_gone = slow("gone__sleep", 1500);
    let on_changing = slow("changing__sleep", 1501);
    for line in ["sleeps 1500 ms", "sleeps 1501 ms"] {
        gw.proc
            .wait_stderr_line_after(mark, |l| l.contains(line), READY_TIMEOUT);
    }

    let mut after = config(&[
        ("keep", mock_stdio(&["--tools", "1"])),
        ("changing", mock_stdio(&["--tools", "3"])),
        ("added", mock_stdio(&["--tools", "5"])),
    ]);
    after["tool_prefix"] = json!("always");
    let mark = gw.proc.mark();
    gw.reload_with(&after, "config reload applied");

    // The calls that were running finish normally on the servers they started on.
    for (what, task) in [("gone", on_gone), ("changing", on_changing)] {
        let result = within(what, task)
            .await
            .expect("call task")
            .unwrap_or_else(|e| panic!("the call in flight on {what} failed: {e}"));
        assert!(
            text_of(&result).starts_with("slept 15"),
            "{what}: {result:?}"
        );
    }
    // The changed and the added server come up as new processes and join.
    for server in ["server=changing", "server=added"] {
        gw.proc.wait_stderr_line_after(
            mark,
            |l| l.contains("its tools are now served") && l.contains(server),
            READY_TIMEOUT,
        );
    }
    let tools = sorted_tools(&list_tools(&client).await);
    assert!(tools.contains(&"added__echo".to_string()), "{tools:?}");
    assert!(
        tools.contains(&"changing__tool_0002".to_string()),
        "{tools:?}"
    );
    assert!(!tools.iter().any(|t| t.starts_with("gone__")), "{tools:?}");
    // Same session as before the reload; the unchanged server kept its process.
    call_ok(&client, "keep__echo", json!({ "message": "same session" })).await;
    call_ok(&client, "added__echo", json!({ "message": "new server" })).await;
    let refused = mcp_error(
        "a removed server's tool",
        call(&client, "gone__echo", json!({ "message": "x" })).await,
    );
    assert_eq!(refused.code.0, -32602, "{refused:?}");
    assert_eq!(child_with(&gw, "--tools 1"), Some(keep_pid));
    // The removed server is stopped once its calls have had their time.
    gw.proc.wait_stderr_line_after(
        mark,
        |l| l.contains("removed server stopped") && l.contains("server=gone"),
        READY_TIMEOUT,
    );
    assert_eq!(
        child_with(&gw, "--tools 4"),
        None,
        "the removed child remains"
    );
    close(client).await;
}

both_drivers!(an_invalid_config_is_refused_and_the_old_one_serves);

async fn an_invalid_config_is_refused_and_the_old_one_serves(driver: &str) {
    let good = config(&[("mock", mock_stdio(&[]))]);
    let mut gw = Gateway::start(driver, &good).await;
    let client = gw.client().await;
    let bad = config(&[
        ("mock", mock_stdio(&[])),
        ("broken", json!({ "url": "ftp://nowhere/mcp" })),
    ]);
    let line = gw.reload_with(&bad, "config reload refused");
    assert!(line.contains("mcpServers.broken.url"), "{line}");
    call_ok(&client, "mock__echo", json!({ "message": "old config" })).await;
    let tools = sorted_tools(&list_tools(&client).await);
    assert!(
        !tools.iter().any(|t| t.starts_with("broken__")),
        "{tools:?}"
    );
    close(client).await;
}

both_drivers!(a_session_survives_a_restart_with_a_configured_secret);

async fn a_session_survives_a_restart_with_a_configured_secret(driver: &str) {
    let mut cfg = config(&[("mock", mock_stdio(&[]))]);
    cfg["session_secret"] = json!("a-test-secret-of-at-least-32-characters");
    let first = Gateway::start(driver, &cfg).await;
    let session = RawSession::open(&first.addr()).await;
    drop(first);
    let second = Gateway::start(driver, &cfg).await;
    let headers = session.headers();
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let list = br#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#;
    let reply = post(&second.addr(), &headers, list).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply.jsonrpc()["result"]["tools"].is_array());
}
