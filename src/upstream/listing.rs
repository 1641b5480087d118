//! Fetching an upstream's whole `tools/list` or `prompts/list`, following `nextCursor` to the
//! end.

use std::time::Duration;

use serde_json::value::RawValue;

use super::{CallTiming, Upstream, UpstreamError};
use crate::jsonrpc::{Envelope, RawObject};
use crate::registry::CatalogKind;

/// Most pages followed before a server is considered to loop.
const MAX_PAGES: usize = 10_000;

/// Every tool definition the server publishes, each as its raw JSON object.
pub async fn list_tools(
    up: &Upstream,
    server: &str,
    timeout: Duration,
) -> Result<Vec<Box<RawValue>>, UpstreamError> {
    list_all(up, server, CatalogKind::Tools, timeout).await
}

/// Every item of `kind` the server publishes, each as its raw JSON object.
pub async fn list_all(
    up: &Upstream,
    server: &str,
    kind: CatalogKind,
    timeout: Duration,
) -> Result<Vec<Box<RawValue>>, UpstreamError> {
    let member = kind.member();
    let method = format!("{member}/list");
    let protocol = |reason: String| UpstreamError::Protocol {
        server: server.to_owned(),
        reason,
    };
    let mut items = Vec::new();
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
                &method,
                Some(&params),
                timeout,
                &mut CallTiming::default(),
            )
            .await?;
        let reply: Envelope<'_> = serde_json::from_slice(&message)
            .map_err(|e| protocol(format!("{method} reply is not JSON-RPC: {e}")))?;
        if let Some(err) = reply.error {
            return Err(protocol(format!("{method} failed: {}", err.get())));
        }
        let result = reply
            .result
            .ok_or_else(|| protocol(format!("{method} reply has no result")))?;
        let page = RawObject::parse(result.get())
            .map_err(|e| protocol(format!("{method} result is malformed: {e}")))?;
        if let Some(list) = page.get(member) {
            let list: Vec<&RawValue> = serde_json::from_str(list.get())
                .map_err(|e| protocol(format!("{method} result.{member} is not an array: {e}")))?;
            items.extend(list.into_iter().map(|t| t.to_owned()));
        }
        match page.get_str("nextCursor") {
            Some(next) if !next.is_empty() => {
                if cursor.as_deref() == Some(next.as_ref()) {
                    return Err(protocol(format!("{method} returned the same cursor twice")));
                }
                cursor = Some(next.into_owned());
            }
            _ => return Ok(items),
        }
    }
    Err(protocol(format!(
        "{method} did not end after {MAX_PAGES} pages"
    )))
}

/// What one server publishes.
pub struct ServerItems {
    pub tools: Vec<Box<RawValue>>,
    pub prompts: Vec<Box<RawValue>>,
}

/// Lists a server that completed its handshake: its tools, and its prompts when it declared
/// them. A server whose prompts cannot be listed still serves its tools (the failure is logged).
pub async fn list_server(
    up: &Upstream,
    server: &str,
    timeout: Duration,
) -> Result<ServerItems, UpstreamError> {
    let tools = list_tools(up, server, timeout).await?;
    let declares_prompts = up
        .initialize_info()
        .is_some_and(|i| i.has_capability("prompts"));
    let prompts = if declares_prompts {
        match list_all(up, server, CatalogKind::Prompts, timeout).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(server = %server, error = %e, "cannot list prompts; serving its tools only");
                Vec::new()
            }
        }
    } else {
        Vec::new()
    };
    Ok(ServerItems { tools, prompts })
}
