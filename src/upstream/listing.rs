//! Fetching an upstream's whole `tools/list` (and later resources and prompts), following
//! `nextCursor` to the end.

use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{CallTiming, Upstream, UpstreamError};
use crate::jsonrpc::Envelope;

/// Most pages followed before a server is considered to loop.
const MAX_PAGES: usize = 10_000;

#[derive(Deserialize)]
struct Page<'a> {
    #[serde(borrow, default)]
    tools: Vec<&'a RawValue>,
    #[serde(rename = "nextCursor", default)]
    next_cursor: Option<String>,
}

/// Every tool definition the server publishes, each as its raw JSON object.
pub async fn list_tools(
    up: &Upstream,
    server: &str,
    timeout: Duration,
) -> Result<Vec<Box<RawValue>>, UpstreamError> {
    let protocol = |reason: String| UpstreamError::Protocol {
        server: server.to_owned(),
        reason,
    };
    let mut tools = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let params = match &cursor {
            Some(c) => serde_json::to_vec(&serde_json::json!({ "cursor": c }))
                .map_err(|e| protocol(e.to_string()))?,
            None => b"{}".to_vec(),
        };
        let message = up
            .request(
                server,
                "tools/list",
                Some(&params),
                timeout,
                &mut CallTiming::default(),
            )
            .await?;
        let reply: Envelope<'_> = serde_json::from_slice(&message)
            .map_err(|e| protocol(format!("tools/list reply is not JSON-RPC: {e}")))?;
        if let Some(err) = reply.error {
            return Err(protocol(format!("tools/list failed: {}", err.get())));
        }
        let result = reply
            .result
            .ok_or_else(|| protocol("tools/list reply has no result".into()))?;
        let page: Page<'_> = serde_json::from_str(result.get())
            .map_err(|e| protocol(format!("tools/list result is malformed: {e}")))?;
        tools.extend(page.tools.into_iter().map(|t| t.to_owned()));
        match page.next_cursor {
            Some(next) if !next.is_empty() => {
                if cursor.as_deref() == Some(next.as_str()) {
                    return Err(protocol("tools/list returned the same cursor twice".into()));
                }
                cursor = Some(next);
            }
            _ => return Ok(tools),
        }
    }
    Err(protocol(format!(
        "tools/list did not end after {MAX_PAGES} pages"
    )))
}
