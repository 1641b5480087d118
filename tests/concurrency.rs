//! Many clients, many concurrent calls, one stdio upstream: the gateway multiplexes every call
//! over a single upstream session (remapping JSON-RPC ids), and every reply must reach the call
//! that asked for it.

#[macro_use]
mod common;

use std::sync::Arc;

use common::*;
use serde_json::json;
use tokio::task::JoinSet;

both_drivers!(
    mock_echo_20_clients_x_50_calls,
    everything_echo_20_clients_x_50_calls
);

const CLIENTS: usize = 20;
const CALLS_PER_CLIENT: usize = 50;
const PLACEHOLDER: &str = "MSG-PLACEHOLDER";

/// Waits for every task, re-raising the first panic with its original message.
async fn join_all(mut set: JoinSet<()>) {
    while let Some(joined) = set.join_next().await {
        if let Err(error) = joined {
            if error.is_panic() {
                std::panic::resume_unwind(error.into_panic());
            }
            panic!("task failed: {error}");
        }
    }
}

/// The serialized result `direct` returns for `tool {message: PLACEHOLDER}`: the template every
/// reply through the gateway must match, with its own message in place of the placeholder.
async fn reply_template(direct: Client, tool: &str) -> String {
    let result = call_ok(&direct, tool, json!({ "message": PLACEHOLDER })).await;
    close(direct).await;
    let template = serde_json::to_string(&result).unwrap();
    assert!(
        template.contains(PLACEHOLDER),
        "{tool} does not echo its message: {template}"
    );
    template
}

/// `CLIENTS` rmcp clients, each with `CALLS_PER_CLIENT` calls of `tool` in flight at once, each
/// call with a unique message; each reply must be exactly the one for its own message.
async fn fan_out(gw: &Gateway, tool: &str, template: &str) {
    let run = unique_token();
    let mut clients = JoinSet::new();
    for c in 0..CLIENTS {
        let url = gw.url.clone();
        let tool = tool.to_string();
        let template = template.to_string();
        let run = run.clone();
        clients.spawn(async move {
            let client = Arc::new(connect_http_with(&url, CALLS_PER_CLIENT).await);
            let mut calls = JoinSet::new();
            for k in 0..CALLS_PER_CLIENT {
                let client = client.clone();
                let tool = tool.clone();
                let template = template.clone();
                let message = format!("run-{run}-client-{c:02}-call-{k:03}");
                calls.spawn(async move {
                    let result = call_ok(&client, &tool, json!({ "message": message })).await;
                    let got = serde_json::to_string(&result).unwrap();
                    let expected = template.replace(PLACEHOLDER, &message);
                    assert_eq!(
                        got, expected,
                        "client {c} call {k} got another call's reply"
                    );
                });
            }
            join_all(calls).await;
            if let Ok(client) = Arc::try_unwrap(client) {
                close(client).await;
            }
        });
    }
    join_all(clients).await;
}

async fn mock_echo_20_clients_x_50_calls(driver: &str) {
    let gw = Gateway::start(driver, &config(&[("mock", mock_stdio(&[]))])).await;
    let template = reply_template(connect_mock_stdio(&[]).await, "echo").await;
    fan_out(&gw, "mock__echo", &template).await;
    gw.assert_echo_works("mock__echo").await;
}

async fn everything_echo_20_clients_x_50_calls(driver: &str) {
    let gw = Gateway::start(driver, &config(&[("everything", everything_stdio())])).await;
    let template = reply_template(connect_everything_stdio().await, "echo").await;
    fan_out(&gw, "everything__echo", &template).await;
    gw.assert_echo_works("everything__echo").await;
}
