//! `GET /api/servers` and `POST /api/servers/{name}/reconnect`.
//!
//! Owns: how a server is shown: its name, transport, health (state, last error, since when),
//! what it exposes now and its health policy. Must never: show a server's headers, environment,
//! arguments or URL (any of them may carry credentials).

use serde_json::{json, Value};

use super::router::Reply;
use super::state::AdminState;
use super::timestamps::rfc3339;
use crate::http::Status;
use crate::registry::{RegistrySnapshot, ServerEntry};
use crate::upstream::health::OnFailure;
use crate::upstream::Upstream;

pub fn list(state: &AdminState) -> Reply {
    let snapshot = state.registry.load();
    let servers: Vec<Value> = snapshot
        .servers
        .iter()
        .enumerate()
        .map(|(index, server)| shown(&snapshot, index, server))
        .collect();
    Reply::json(Status::Ok, json!({ "servers": servers }))
}

/// Reconnects `name` through the registry keeper: 202 with its state once the reconnect began.
pub async fn reconnect(state: &AdminState, name: String) -> Reply {
    match state.keeper.reconnect(name.clone()).await {
        Ok(Some(health)) => Reply::json(
            Status::Accepted,
            json!({ "server": name, "state": health.as_str(), "reconnecting": true }),
        ),
        Ok(None) => Reply::error(Status::NotFound, format!("no server named {name:?}")),
        Err(_) => keeper_gone(),
    }
}

pub fn keeper_gone() -> Reply {
    Reply::error(
        Status::ServiceUnavailable,
        "the registry keeper is not running; changes cannot be applied",
    )
}

fn shown(snapshot: &RegistrySnapshot, index: usize, server: &ServerEntry) -> Value {
    let report = server.health.report();
    // A server that never came up has its start-up error; otherwise its last failed check.
    let last_error = server.error.clone().or(report.last_error);
    let count = |items: &[crate::registry::ExposedItem]| {
        items.iter().filter(|item| item.server == index).count()
    };
    let mut shown = json!({
        "name": server.name,
        "transport": match &server.upstream {
            Upstream::Stdio(_) => "stdio",
            Upstream::Http(_) => "http",
            Upstream::Sse(_) => "sse",
        },
        "state": report.state.as_str(),
        "last_error": last_error,
        "since": rfc3339(report.since),
        "on_failure": match server.policy.on_failure {
            OnFailure::Error => "error",
            OnFailure::Hide => "hide",
        },
        "health_check_ms": u64::try_from(server.policy.interval.as_millis()).unwrap_or(u64::MAX),
        "timeout_ms": u64::try_from(server.timeout.as_millis()).unwrap_or(u64::MAX),
        "tools": count(&snapshot.tools.items),
        "tools_disabled": count(&snapshot.tools.switched_off),
        "prompts": count(&snapshot.prompts.items),
        "resources": count(&snapshot.resources.items),
        "resource_templates": count(&snapshot.resource_templates.items),
        "protocol_version": server.upstream.initialize_info().map(|i| i.protocol_version),
    });
    if let (Upstream::Stdio(s), Some(fields)) = (&server.upstream, shown.as_object_mut()) {
        let status = s.status();
        fields.insert("pid".into(), json!(status.pid));
        fields.insert("restarts".into(), json!(status.restarts));
    }
    shown
}
