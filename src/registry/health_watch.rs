//! The keeper's periodic check of each server: `ping` every `health_check_ms` while healthy,
//! four times as often while not. Any answer — an error reply included — proves the server
//! answers; a transport failure or a timeout makes it unhealthy, so calls fail fast naming it
//! until a check passes. A stdio child that is restarting, or a legacy SSE stream that is
//! reconnecting, is in backoff and is not pinged.
//!
//! Runs as tasks on the keeper thread; never on a worker core. Must never: check a server a
//! reload removed (its state is `disabled`; the task ends).

use std::sync::Arc;
use std::time::Duration;

use super::snapshot::ServerEntry;
use crate::upstream::health::HealthState;
use crate::upstream::sse_legacy::SseState;
use crate::upstream::stdio::StdioState;
use crate::upstream::{CallTiming, Upstream};

/// Longest a check waits for its answer (less when the server's own timeout is shorter).
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Checks `server` until a reload disables it; `changed` is told of every state change.
pub async fn watch(server: Arc<ServerEntry>, changed: impl Fn(&str)) {
    loop {
        let state = server.health.state();
        if state == HealthState::Disabled {
            return;
        }
        monoio::time::sleep(server.policy.next_check(state)).await;
        if server.health.state() == HealthState::Disabled {
            return;
        }
        let (next, error) = check(&server).await;
        if server.health.set(&server.name, next, error) {
            changed(&server.name);
        }
    }
}

/// One check: the state it finds, and the error that explains it.
async fn check(server: &ServerEntry) -> (HealthState, Option<String>) {
    match &server.upstream {
        Upstream::Stdio(s) => {
            let status = s.status();
            match status.state {
                StdioState::Ready => {}
                StdioState::Starting => return (HealthState::Starting, None),
                StdioState::Backoff { .. } | StdioState::Stopped => {
                    return (HealthState::Backoff, status.last_error)
                }
            }
        }
        Upstream::Sse(s) => match s.state() {
            SseState::Ready => {}
            SseState::Connecting => return (HealthState::Starting, None),
            SseState::Backoff { .. } | SseState::Stopped => {
                return (
                    HealthState::Backoff,
                    Some("the SSE stream is reconnecting".to_owned()),
                )
            }
        },
        Upstream::Http(_) => {}
    }
    let timeout = server.timeout.min(CHECK_TIMEOUT);
    let answer = server
        .upstream
        .request(
            &server.name,
            "ping",
            None,
            timeout,
            None,
            &mut CallTiming::default(),
        )
        .await;
    match answer {
        Ok(_) => (HealthState::Healthy, None),
        Err(e) => (HealthState::Unhealthy, Some(e.to_string())),
    }
}
