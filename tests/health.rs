//! Upstream health: a server that stops answering becomes unhealthy at its next check, its
//! calls fail fast naming it (and with `on_failure: "hide"` its tools leave the lists), the
//! other servers keep serving, and it comes back by itself when it answers again.

mod common;

use common::*;
use serde_json::json;

fn port_of(url: &str) -> u16 {
    url.trim_start_matches("http://")
        .split(['/', ':'])
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {url}"))
}

/// A hiding server's lists are rebuilt after each change of its health; this waits for it.
fn wait_lists_updated(gw: &mut Gateway, mark: usize) {
    gw.proc.wait_stderr_line_after(
        mark,
        |l| l.contains("lists updated") && l.contains("server=remote"),
        READY_TIMEOUT,
    );
}

async fn unhealthy_then_back(driver: &str, on_failure: &str) {
    let remote = HttpUpstream::mock(&[]).await;
    let port = port_of(&remote.url);
    let mut server = http_server(&remote.url);
    server["on_failure"] = json!(on_failure);
    server["health_check_ms"] = json!(200);
    let mut gw = Gateway::start(
        driver,
        &config(&[("remote", server), ("local", mock_stdio(&[]))]),
    )
    .await;
    let client = gw.client().await;
    call_ok(&client, "remote__echo", json!({ "message": "up" })).await;

    let mark = gw.proc.mark();
    drop(remote);
    gw.proc.wait_stderr_line_after(
        mark,
        |l| l.contains("upstream not healthy") && l.contains("server=remote"),
        READY_TIMEOUT,
    );
    if on_failure == "hide" {
        wait_lists_updated(&mut gw, mark);
    }
    let failed = mcp_error(
        "a call to the unhealthy server",
        call(&client, "remote__echo", json!({ "message": "down" })).await,
    );
    assert!(
        failed.message.contains("'remote'") && failed.message.contains("unavailable"),
        "{failed:?}"
    );
    let listed = names(&list_tools(&client).await);
    let remote_listed = listed.iter().any(|t| t.starts_with("remote__"));
    assert_eq!(
        remote_listed,
        on_failure == "error",
        "{on_failure}: {listed:?}"
    );
    // The other server is not held back.
    call_ok(&client, "local__echo", json!({ "message": "still here" })).await;

    // Back on the same port: healthy at a later check, by itself.
    let mark = gw.proc.mark();
    let _back = HttpUpstream::mock_on(port, &[]).await;
    gw.proc.wait_stderr_line_after(
        mark,
        |l| l.contains("upstream healthy") && l.contains("server=remote"),
        READY_TIMEOUT,
    );
    if on_failure == "hide" {
        wait_lists_updated(&mut gw, mark);
    }
    call_ok(&client, "remote__echo", json!({ "message": "back" })).await;
    assert!(names(&list_tools(&client).await)
        .iter()
        .any(|t| t == "remote__echo"));
    close(client).await;
}

both_drivers!(an_unhealthy_server_fails_fast_and_recovers);

async fn an_unhealthy_server_fails_fast_and_recovers(driver: &str) {
    unhealthy_then_back(driver, "error").await;
}

both_drivers!(a_hiding_server_leaves_the_lists_while_unhealthy);

async fn a_hiding_server_leaves_the_lists_while_unhealthy(driver: &str) {
    unhealthy_then_back(driver, "hide").await;
}
