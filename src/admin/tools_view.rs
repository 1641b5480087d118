//! `GET /api/tools` and `PUT /api/tools/{name}` (`{"enabled": false|true}`).
//!
//! Owns: how a tool is shown and the request body of a switch. The switch itself is the
//! registry keeper's (a tool switched off leaves the next snapshot, so listing, calling and
//! grants agree, and stays off across reloads). Must never: answer before the change is
//! published (the 200 means the next request sees it).

use serde::Deserialize;
use serde_json::{json, Value};

use super::router::Reply;
use super::servers_view::keeper_gone;
use super::state::AdminState;
use crate::http::Status;

/// Every tool, served or switched off, by exposed name.
pub fn list(state: &AdminState) -> Reply {
    let snapshot = state.registry.load();
    let server = |index: usize| snapshot.servers.get(index).map(|s| s.name.as_str());
    let served = snapshot.tools.items.iter().map(|t| (t, true));
    let off = snapshot.tools.switched_off.iter().map(|t| (t, false));
    let mut tools: Vec<(&str, Value)> = served
        .chain(off)
        .map(|(tool, enabled)| {
            let shown = json!({
                "name": tool.name,
                "server": server(tool.server),
                "original": tool.original,
                "enabled": enabled,
            });
            (tool.name.as_str(), shown)
        })
        .collect();
    tools.sort_by(|a, b| a.0.cmp(b.0));
    let tools: Vec<Value> = tools.into_iter().map(|(_, shown)| shown).collect();
    Reply::json(Status::Ok, json!({ "tools": tools }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Switch {
    enabled: bool,
}

/// Switches the tool exposed as `name` off or on.
pub async fn switch(state: &AdminState, name: String, body: &[u8]) -> Reply {
    let switch: Switch = match serde_json::from_slice(body) {
        Ok(s) => s,
        Err(e) => {
            return Reply::error(
                Status::BadRequest,
                format!(r#"expected a JSON body {{"enabled": true|false}}: {e}"#),
            )
        }
    };
    match state
        .keeper
        .set_tool_enabled(name.clone(), switch.enabled)
        .await
    {
        Ok(Some(done)) => Reply::json(
            Status::Ok,
            json!({
                "name": done.name,
                "server": done.server,
                "original": done.original,
                "enabled": done.enabled,
                "changed": done.changed,
            }),
        ),
        Ok(None) => Reply::error(Status::NotFound, format!("no tool named {name:?}")),
        Err(_) => keeper_gone(),
    }
}
