//! Fetching everything an upstream publishes (`tools/list`, `prompts/list`, `resources/list`,
//! `resources/templates/list`), following `nextCursor` to the end.

use std::time::Duration;

use serde_json::value::RawValue;

use super::{CallTiming, Upstream, UpstreamError};
use crate::jsonrpc::{Envelope, RawObject};
use crate::registry::CatalogKind;
// What a listing returns is the registry's input; start-up names it from here.
pub use crate::registry::ServerItems;

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
    let method = kind.list_method();
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
                method,
                Some(&params),
                timeout,
                None,
                &mut CallTiming::default(),
            )
            .await?;
        let reply = Envelope::decode(&message)
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

/// Lists a server that completed its handshake: its tools, and its prompts, resources and
/// resource templates when it declared them. A server whose optional lists fail still serves
/// what did list (the failure is logged); only a failing declared tool list is an error.
pub async fn list_server(
    up: &Upstream,
    server: &str,
    timeout: Duration,
) -> Result<ServerItems, UpstreamError> {
    let declares = |capability: &str| {
        up.initialize_info()
            .is_some_and(|i| i.has_capability(capability))
    };
    // Tools are what most servers exist for: a declared list that fails fails the server. One
    // that did not declare them is still asked (some servers forget), and may have none.
    let tools = match list_tools(up, server, timeout).await {
        Ok(tools) => tools,
        Err(e) if !declares("tools") => {
            tracing::debug!(server = %server, error = %e, "no tools (the server did not declare them)");
            Vec::new()
        }
        Err(e) => return Err(e),
    };
    let resources = declares("resources");
    let (prompts, resources, resource_templates) = futures_util::future::join3(
        list_optional(
            up,
            server,
            CatalogKind::Prompts,
            declares("prompts"),
            timeout,
        ),
        list_optional(up, server, CatalogKind::Resources, resources, timeout),
        list_optional(
            up,
            server,
            CatalogKind::ResourceTemplates,
            resources,
            timeout,
        ),
    )
    .await;
    Ok(ServerItems {
        tools,
        prompts,
        resources,
        resource_templates,
    })
}

/// The items of `kind` when the server `declared` the capability; none when it did not, or
/// when listing them failed.
async fn list_optional(
    up: &Upstream,
    server: &str,
    kind: CatalogKind,
    declared: bool,
    timeout: Duration,
) -> Vec<Box<RawValue>> {
    if !declared {
        return Vec::new();
    }
    match list_all(up, server, kind, timeout).await {
        Ok(items) => items,
        Err(e) => {
            tracing::warn!(server = %server, error = %e, "cannot list {}; serving the rest", kind.member());
            Vec::new()
        }
    }
}
