//! One immutable view of everything exposed.

use std::sync::Arc;
use std::time::Duration;

use serde_json::value::RawValue;

use super::access::AccessTable;
use super::catalog::{Catalog, CatalogInput, CatalogKind, ExposedItem};
use super::switches::DisabledTools;
use super::uri_routes::UriRoutes;
use crate::auth::Governance;
use crate::config::{PrefixMode, ToolFilter};
use crate::upstream::gate::CallGate;
use crate::upstream::health::{Health, HealthPolicy, HealthState};
use crate::upstream::{CallTiming, EventSink, Upstream, UpstreamError, UpstreamReply};

/// An upstream as the registry knows it.
pub struct ServerEntry {
    pub name: String,
    pub upstream: Upstream,
    pub timeout: Duration,
    pub filter: ToolFilter,
    /// Why the server is not serving tools, when it is not.
    pub error: Option<String>,
    /// Kept current by the keeper's checks; shared by every entry of this upstream.
    pub health: Arc<Health>,
    pub policy: HealthPolicy,
    /// The bound on its calls in flight; shared by every entry of this upstream.
    pub gate: Arc<CallGate>,
}

impl ServerEntry {
    /// Sends a client's request: admitted by the server's gate (waiting for a slot when the
    /// server is saturated), then sent with the server's timeout. The slot is held until the
    /// call is done with, whichever way.
    pub async fn call(
        &self,
        method: &str,
        params: Option<&[u8]>,
        events: Option<EventSink>,
        timing: &mut CallTiming,
    ) -> Result<UpstreamReply, UpstreamError> {
        let _slot = self.gate.enter(&self.name).await?;
        self.upstream
            .request(&self.name, method, params, self.timeout, events, timing)
            .await
    }

    /// Whether the server is up and not known to be failing (not unhealthy, in backoff or
    /// disabled).
    pub fn serving(&self) -> bool {
        self.error.is_none()
            && matches!(
                self.health.state(),
                HealthState::Healthy | HealthState::Starting
            )
    }

    /// Why it is not serving: its start-up error, else its last failed check.
    pub fn why_not_serving(&self) -> String {
        match &self.error {
            Some(e) => e.clone(),
            None => {
                let report = self.health.report();
                let why = report.last_error.unwrap_or_default();
                format!("{} ({why})", report.state.as_str())
            }
        }
    }
}

/// What one server publishes, each item the raw JSON object it listed.
#[derive(Debug, Clone, Default)]
pub struct ServerItems {
    pub tools: Vec<Box<RawValue>>,
    pub prompts: Vec<Box<RawValue>>,
    pub resources: Vec<Box<RawValue>>,
    pub resource_templates: Vec<Box<RawValue>>,
}

/// One server's listing, input to a build.
pub struct ServerListing {
    pub server: Arc<ServerEntry>,
    pub items: ServerItems,
}

pub struct RegistrySnapshot {
    pub generation: u64,
    pub servers: Vec<Arc<ServerEntry>>,
    /// Each server's name as shared text, by the same index: what audit records and metrics
    /// carry (cloned, never copied).
    pub server_names: Vec<Arc<str>>,
    pub tools: Catalog,
    pub prompts: Catalog,
    pub resources: Catalog,
    pub resource_templates: Catalog,
    /// Where `resources/read` and friends send a URI.
    pub uri_routes: UriRoutes,
    /// Who may reach what of it.
    pub access: AccessTable,
}

impl RegistrySnapshot {
    /// Builds a snapshot. Servers are taken in the given order (config order, sorted by name).
    pub fn build(
        generation: u64,
        mode: PrefixMode,
        page_size: usize,
        listings: Vec<ServerListing>,
    ) -> Self {
        Self::build_with(
            generation,
            mode,
            page_size,
            listings,
            &DisabledTools::default(),
        )
    }

    /// Like [`RegistrySnapshot::build`], with the tools in `disabled` switched off: kept out of
    /// the lists, the calls and the grants tables (see [`Catalog::switched_off`]).
    pub fn build_with(
        generation: u64,
        mode: PrefixMode,
        page_size: usize,
        listings: Vec<ServerListing>,
        disabled: &DisabledTools,
    ) -> Self {
        // Tool allow-lists and switches apply to tools only; every other kind is exposed whole.
        let catalog = |kind: CatalogKind, items: fn(&ServerItems) -> &[Box<RawValue>]| {
            let tools = kind == CatalogKind::Tools;
            let inputs: Vec<CatalogInput<'_>> = listings
                .iter()
                .map(|l| CatalogInput {
                    server: &l.server.name,
                    filter: tools.then_some(&l.server.filter),
                    switched_off: disabled.of(&l.server.name).filter(|_| tools),
                    definitions: items(&l.items),
                })
                .collect();
            Catalog::build(kind, mode, page_size, &inputs)
        };
        let tools = catalog(CatalogKind::Tools, |i| &i.tools);
        let prompts = catalog(CatalogKind::Prompts, |i| &i.prompts);
        let resources = catalog(CatalogKind::Resources, |i| &i.resources);
        let resource_templates = catalog(CatalogKind::ResourceTemplates, |i| &i.resource_templates);
        let uri_routes = UriRoutes::build(
            listings.iter().map(|l| l.server.name.as_str()),
            &resources,
            &resource_templates,
        );
        let servers: Vec<Arc<ServerEntry>> = listings.into_iter().map(|l| l.server).collect();
        let server_names = servers.iter().map(|s| Arc::from(s.name.as_str())).collect();
        let access = AccessTable::build(Arc::new(Governance::open()), &servers, &tools);
        RegistrySnapshot {
            generation,
            servers,
            server_names,
            access,
            tools,
            prompts,
            resources,
            resource_templates,
            uri_routes,
        }
    }

    /// Applies `governance` (the snapshot is built open: anonymous, everything reachable).
    pub fn govern(mut self, governance: Arc<Governance>) -> Self {
        self.access = AccessTable::build(governance, &self.servers, &self.tools);
        self
    }

    pub fn catalog(&self, kind: CatalogKind) -> &Catalog {
        match kind {
            CatalogKind::Tools => &self.tools,
            CatalogKind::Prompts => &self.prompts,
            CatalogKind::Resources => &self.resources,
            CatalogKind::ResourceTemplates => &self.resource_templates,
        }
    }

    pub fn tool(&self, exposed: &str) -> Option<&ExposedItem> {
        self.tools.get(exposed)
    }

    /// The failed or unhealthy server whose prefix `exposed` carries (`<server>__…`), if any: a call to a tool
    /// of a server that never came up is answered with that server's error, not "unknown tool".
    pub fn failed_server_for(&self, exposed: &str) -> Option<&ServerEntry> {
        self.failed_server_index(exposed).map(|i| &*self.servers[i])
    }

    /// The index of [`RegistrySnapshot::failed_server_for`]'s server.
    pub fn failed_server_index(&self, exposed: &str) -> Option<usize> {
        let (prefix, _) = exposed.split_once(super::naming::SEPARATOR)?;
        self.servers
            .iter()
            .position(|s| !s.serving() && super::naming::sanitize(&s.name) == prefix)
    }

    /// The `tools/list` result for `cursor` (`None` = first page).
    pub fn tools_page(&self, cursor: Option<&str>) -> Option<&str> {
        self.tools.page(cursor)
    }
}

#[cfg(test)]
mod tests;
