//! `GET /api/stats`: the process at a glance: version, uptime, I/O driver, workers, servers by
//! health state, what is exposed, open client streams, gateway internal time, config reloads.

use serde_json::{json, Map, Value};

use super::router::Reply;
use super::state::AdminState;
use super::timestamps::rfc3339;
use crate::http::Status;
use crate::upstream::health::HealthState;

/// Every health state, in the order they are shown.
pub const STATES: [HealthState; 5] = [
    HealthState::Starting,
    HealthState::Healthy,
    HealthState::Unhealthy,
    HealthState::Backoff,
    HealthState::Disabled,
];

pub fn stats(state: &AdminState) -> Reply {
    let snapshot = state.registry.load();
    let mut by_state = Map::new();
    for s in STATES {
        let n = snapshot
            .servers
            .iter()
            .filter(|server| server.health.state() == s)
            .count();
        by_state.insert(s.as_str().into(), json!(n));
    }
    let t = state.metrics.internal_time();
    let reloads = state
        .reloads
        .as_ref()
        .map(|r| json!({ "applied": r.applied(), "refused": r.refused() }));
    Reply::json(
        Status::Ok,
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "started_at": rfc3339(state.started_at),
            "uptime_secs": state.started.elapsed().as_secs(),
            "io_driver": state.driver.as_str(),
            "workers": state.workers,
            "registry_generation": snapshot.generation,
            "servers": { "total": snapshot.servers.len(), "by_state": Value::Object(by_state) },
            "tools": {
                "exposed": snapshot.tools.items.len(),
                "disabled": snapshot.tools.switched_off.len(),
            },
            "prompts": snapshot.prompts.items.len(),
            "resources": snapshot.resources.items.len(),
            "resource_templates": snapshot.resource_templates.items.len(),
            "client_streams": snapshot.access.governance().open_streams_total(),
            "internal_time_ns": {
                "calls": t.count, "p50": t.p50, "p90": t.p90, "p99": t.p99,
                "p999": t.p999, "max": t.max,
            },
            "config_reloads": reloads,
        }),
    )
}
