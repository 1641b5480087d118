//! The official TypeScript SDK's legacy HTTP+SSE client (`SSEClientTransport`), driven by
//! `tests/fixtures/legacy-sse-client.mjs` against a gateway's `/sse` endpoint.

use serde_json::Value;

use super::{repo_root, within, Gateway};

/// The gateway's legacy SSE endpoint.
pub fn sse_url(gw: &Gateway) -> String {
    format!("http://{}/sse", gw.addr())
}

/// Runs the SDK client with `plan` (see the fixture) and returns its output lines as JSON,
/// after checking it got to the end.
pub async fn run_legacy_client(gw: &Gateway, plan: Value) -> Vec<Value> {
    let script = repo_root().join("tests/fixtures/legacy-sse-client.mjs");
    let output = within(
        "the legacy SDK client",
        tokio::process::Command::new("node")
            .arg(&script)
            .arg(plan.to_string())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    assert!(
        output.status.success() && lines.last().is_some_and(|l| l["step"] == "done"),
        "legacy client failed ({}):\n{stdout}\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        gw.proc.log_tail()
    );
    lines
}
