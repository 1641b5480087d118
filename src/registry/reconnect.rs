//! Reconnecting one server on request (the admin API's `POST /api/servers/{name}/reconnect`):
//! a stdio server gets a new child, a legacy SSE server a new stream, a streamable-HTTP server
//! a new session. The keeper then lists the server again, so whatever the new process or
//! session publishes is served.
//!
//! Runs as a task on the keeper thread; the blocking part (stopping a stdio child, which may
//! take its grace period twice) runs on a thread of its own. Must never: block the keeper, or
//! wait without a bound for a server that does not come back (its health says so instead).

use std::time::{Duration, Instant};

use super::snapshot::ServerEntry;
use crate::upstream::health::HealthState;
use crate::upstream::sse_legacy::SseState;
use crate::upstream::stdio::StdioState;
use crate::upstream::Upstream;

/// Time a stdio child gets to exit after its stdin closes, and again after SIGTERM.
const CHILD_GRACE: Duration = Duration::from_secs(3);
/// How often a restarting child (or reopening stream) is looked at.
const READY_POLL: Duration = Duration::from_millis(100);
/// Longest the keeper waits for the server to answer again; later it is left to its health
/// checks and supervision.
const COME_BACK_WITHIN: Duration = Duration::from_secs(60);

/// Reconnects `server` and waits until it serves again; the error says why it does not.
pub async fn reconnect(server: &ServerEntry) -> Result<(), String> {
    match &server.upstream {
        Upstream::Stdio(s) => {
            let before = s.status().pid;
            let stopping = s.clone();
            std::thread::Builder::new()
                .name("mcpgate-restart".into())
                .spawn(move || {
                    stopping.restart(CHILD_GRACE);
                })
                .map_err(|e| format!("cannot start a thread to restart it: {e}"))?;
            wait_for(|| {
                let status = s.status();
                status.state == StdioState::Ready && status.pid.is_some() && status.pid != before
            })
            .await
            .map_err(|()| match s.status().last_error {
                Some(e) => format!("the new process is not ready: {e}"),
                None => "the new process is not ready".to_owned(),
            })
        }
        Upstream::Sse(s) => {
            let before = s.reconnects();
            if !s.reconnect() {
                return Err("the stream is shut down".to_owned());
            }
            wait_for(|| s.reconnects() > before && s.state() == SseState::Ready)
                .await
                .map_err(|()| "the new stream is not ready".to_owned())
        }
        Upstream::Http(h) => h.initialize().await.map(|_| ()).map_err(|e| e.to_string()),
    }
}

/// Records the outcome of a reconnect in the server's health.
pub fn settle(server: &ServerEntry, outcome: &Result<(), String>) {
    match outcome {
        Ok(()) => {
            server.health.set(&server.name, HealthState::Healthy, None);
            tracing::info!(server = %server.name, "reconnected on request; serving again");
        }
        Err(e) => {
            server
                .health
                .set(&server.name, HealthState::Unhealthy, Some(e.clone()));
            tracing::warn!(server = %server.name, error = %e, "reconnect on request failed");
        }
    }
}

/// Polls `ready` until it holds or [`COME_BACK_WITHIN`] passes.
async fn wait_for(ready: impl Fn() -> bool) -> Result<(), ()> {
    let deadline = Instant::now() + COME_BACK_WITHIN;
    while !ready() {
        if Instant::now() >= deadline {
            return Err(());
        }
        monoio::time::sleep(READY_POLL).await;
    }
    Ok(())
}
