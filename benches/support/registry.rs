//! A registry snapshot of synthetic tools for benches: one HTTP upstream named `mock` (never
//! contacted) publishing `tool_0000`, `tool_0001`, …

use std::sync::Arc;
use std::time::Duration;

use serde_json::value::RawValue;

use mcpgate::config::{PrefixMode, ToolFilter};
use mcpgate::registry::{RegistrySnapshot, ServerEntry, ServerItems, ServerListing};
use mcpgate::upstream::http::HttpUpstream;
use mcpgate::upstream::Upstream;

pub fn snapshot(tools: usize) -> RegistrySnapshot {
    let upstream = match HttpUpstream::new("mock", "http://127.0.0.1:9/mcp", Vec::new(), 1 << 20) {
        Ok(u) => Upstream::Http(Arc::new(u)),
        Err(e) => panic!("bench setup: {e}"),
    };
    let defs = (0..tools)
        .map(|i| {
            let def = format!(
                r#"{{"name":"tool_{i:04}","description":"Synthetic tool {i}","inputSchema":{{"type":"object","properties":{{"q":{{"type":"string"}}}}}}}}"#
            );
            RawValue::from_string(def).unwrap_or_else(|e| panic!("bench setup: {e}"))
        })
        .collect();
    let server = Arc::new(ServerEntry {
        name: "mock".into(),
        upstream,
        timeout: Duration::from_secs(30),
        filter: ToolFilter {
            allow: vec!["*".into()],
            disabled: vec![],
        },
        error: None,
        health: Default::default(),
        policy: Default::default(),
        gate: Default::default(),
    });
    RegistrySnapshot::build(
        1,
        PrefixMode::Always,
        500,
        vec![ServerListing {
            server,
            items: ServerItems {
                tools: defs,
                ..ServerItems::default()
            },
        }],
    )
}
