//! One immutable view of everything exposed.

use std::sync::Arc;
use std::time::Duration;

use serde_json::value::RawValue;

use super::catalog::{Catalog, CatalogInput, CatalogKind, ExposedItem};
use crate::config::{PrefixMode, ToolFilter};
use crate::upstream::Upstream;

/// An upstream as the registry knows it.
pub struct ServerEntry {
    pub name: String,
    pub upstream: Upstream,
    pub timeout: Duration,
    pub filter: ToolFilter,
    /// Why the server is not serving tools, when it is not.
    pub error: Option<String>,
}

/// One server's listing, input to a build.
pub struct ServerListing {
    pub server: Arc<ServerEntry>,
    pub tools: Vec<Box<RawValue>>,
    pub prompts: Vec<Box<RawValue>>,
}

pub struct RegistrySnapshot {
    pub generation: u64,
    pub servers: Vec<Arc<ServerEntry>>,
    pub tools: Catalog,
    pub prompts: Catalog,
}

impl RegistrySnapshot {
    /// Builds a snapshot. Servers are taken in the given order (config order, sorted by name).
    pub fn build(
        generation: u64,
        mode: PrefixMode,
        page_size: usize,
        listings: Vec<ServerListing>,
    ) -> Self {
        let tool_inputs: Vec<CatalogInput<'_>> = listings
            .iter()
            .map(|l| CatalogInput {
                server: &l.server.name,
                filter: Some(&l.server.filter),
                definitions: &l.tools,
            })
            .collect();
        let tools = Catalog::build(CatalogKind::Tools, mode, page_size, &tool_inputs);
        let prompt_inputs: Vec<CatalogInput<'_>> = listings
            .iter()
            .map(|l| CatalogInput {
                server: &l.server.name,
                filter: None,
                definitions: &l.prompts,
            })
            .collect();
        let prompts = Catalog::build(CatalogKind::Prompts, mode, page_size, &prompt_inputs);
        RegistrySnapshot {
            generation,
            servers: listings.into_iter().map(|l| l.server).collect(),
            tools,
            prompts,
        }
    }

    pub fn tool(&self, exposed: &str) -> Option<&ExposedItem> {
        self.tools.get(exposed)
    }

    /// The failed server whose prefix `exposed` carries (`<server>__…`), if any: a call to a tool
    /// of a server that never came up is answered with that server's error, not "unknown tool".
    pub fn failed_server_for(&self, exposed: &str) -> Option<&ServerEntry> {
        let (prefix, _) = exposed.split_once(super::naming::SEPARATOR)?;
        self.servers
            .iter()
            .find(|s| s.error.is_some() && super::naming::sanitize(&s.name) == prefix)
            .map(|s| &**s)
    }

    /// The `tools/list` result for `cursor` (`None` = first page).
    pub fn tools_page(&self, cursor: Option<&str>) -> Option<&str> {
        self.tools.page(cursor)
    }
}

#[cfg(test)]
mod tests;
