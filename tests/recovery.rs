//! Upstreams over their life: a server that is down when the gateway starts does not hold up
//! the others and joins the registry by itself once it comes up; what a stdio server writes to
//! stderr reaches the gateway's log.

mod common;

use common::*;
use serde_json::json;

both_drivers!(server_down_at_start_joins_when_it_comes_up);

async fn server_down_at_start_joins_when_it_comes_up(driver: &str) {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/mcp");
    let mut late = http_server(&url);
    late["timeout_ms"] = json!(1000);
    let mut gw = Gateway::start(
        driver,
        &config(&[("late", late), ("mock", mock_stdio(&[]))]),
    )
    .await;

    // Served without it; a call to one of its tools names it.
    let client = gw.client().await;
    let tools = list_tools(&client).await;
    assert!(
        names(&tools).iter().all(|n| !n.starts_with("late__")),
        "{:?}",
        names(&tools)
    );
    assert!(names(&tools).iter().any(|n| n == "mock__echo"));
    let error = mcp_error(
        "late__echo",
        call(&client, "late__echo", json!({ "message": "x" })).await,
    );
    assert_eq!(error.code.0, -32000, "{error:?}");
    assert!(
        error.message.contains("late"),
        "error does not name the server: {error:?}"
    );
    close(client).await;

    // The server comes up on the configured port.
    let mark = gw.proc.mark();
    let mut cmd = std::process::Command::new(mcpgate_bin());
    cmd.args(["mock-upstream", "--listen", &format!("127.0.0.1:{port}")]);
    let mut upstream = Proc::spawn("mock-upstream (late)", cmd);
    upstream.wait_stdout_line(
        |l| l.starts_with("mock-upstream: listening on "),
        READY_TIMEOUT,
    );

    // The gateway notices by itself and publishes its tools.
    gw.proc.wait_stderr_line_after(
        mark,
        |l| l.contains("came up") && l.contains("late"),
        READY_TIMEOUT,
    );
    let client = gw.client().await;
    let tools = list_tools(&client).await;
    assert!(
        names(&tools).iter().any(|n| n == "late__echo"),
        "{:?}",
        names(&tools)
    );
    let result = call_ok(&client, "late__echo", json!({ "message": "joined late" })).await;
    assert!(text_of(&result).contains("joined late"));
    close(client).await;
    gw.assert_echo_works("mock__echo").await;
}

both_drivers!(stdio_server_stderr_reaches_the_log);

/// What a stdio server writes to stderr lands in the gateway's log, tagged with the server.
async fn stdio_server_stderr_reaches_the_log(driver: &str) {
    let script = format!(
        "echo 'hello-from-stderr token' >&2; exec '{}' mock-upstream --stdio",
        mcpgate_bin()
    );
    let noisy = stdio_server("sh", &["-c", &script]);
    let mut gw = Gateway::start(driver, &config(&[("noisy", noisy)])).await;
    let line = gw
        .proc
        .wait_stderr_line(|l| l.contains("hello-from-stderr"), READY_TIMEOUT);
    assert!(
        line.contains("noisy"),
        "the log line does not name the server: {line}"
    );
    gw.assert_echo_works("noisy__echo").await;
}
