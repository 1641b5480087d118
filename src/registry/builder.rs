//! Keeps every server's latest listing so a new snapshot can be built when one changes
//! (a server that missed start-up comes up, a reload, a `list_changed`, a tool switched off or
//! on through the admin API).

use std::sync::Arc;

use super::snapshot::{RegistrySnapshot, ServerEntry, ServerItems, ServerListing};
use super::switches::DisabledTools;
use crate::auth::Governance;
use crate::config::PrefixMode;
use crate::upstream::health::{HealthState, OnFailure};

/// A server that hides its items while not healthy, and is not.
fn hidden(server: &ServerEntry) -> bool {
    server.policy.on_failure == OnFailure::Hide && server.health.state() != HealthState::Healthy
}

pub struct RegistryBuilder {
    governance: Arc<Governance>,
    mode: PrefixMode,
    page_size: usize,
    generation: u64,
    listings: Vec<ServerListing>,
    /// Tools switched off at run time; outlives reloads.
    disabled: DisabledTools,
}

impl RegistryBuilder {
    pub fn new(
        governance: Arc<Governance>,
        mode: PrefixMode,
        page_size: usize,
        listings: Vec<ServerListing>,
    ) -> Self {
        RegistryBuilder {
            governance,
            mode,
            page_size,
            generation: 0,
            listings,
            disabled: DisabledTools::default(),
        }
    }

    /// A new snapshot of the current listings, with the next generation number.
    pub fn build(&mut self) -> RegistrySnapshot {
        self.generation += 1;
        let listings = self
            .listings
            .iter()
            .map(|l| ServerListing {
                server: l.server.clone(),
                items: if hidden(&l.server) {
                    ServerItems::default()
                } else {
                    l.items.clone()
                },
            })
            .collect();
        RegistrySnapshot::build_with(
            self.generation,
            self.mode,
            self.page_size,
            listings,
            &self.disabled,
        )
        .govern(self.governance.clone())
    }

    /// Switches `server`'s tool `original` off or back on for the snapshots built from now
    /// on; true when that changed anything.
    pub fn set_tool_enabled(&mut self, server: &str, original: &str, enabled: bool) -> bool {
        self.disabled.set(server, original, enabled)
    }

    /// The tools switched off at run time.
    pub fn disabled_tools(&self) -> &DisabledTools {
        &self.disabled
    }

    /// Snapshots built from now on apply `governance`.
    pub fn set_governance(&mut self, governance: Arc<Governance>) {
        self.governance = governance;
    }

    pub fn governance(&self) -> &Arc<Governance> {
        &self.governance
    }

    pub fn listings(&self) -> &[ServerListing] {
        &self.listings
    }

    /// Replaces one server's listing; `index` is its position in `listings()`.
    pub fn set_listing(&mut self, index: usize, listing: ServerListing) {
        if let Some(slot) = self.listings.get_mut(index) {
            *slot = listing;
        }
    }

    /// Replaces the listing of the server `listing` names, if that server is still the same
    /// upstream (not removed, or replaced by a reload, since); false when it is not.
    pub fn set_listing_of_same(&mut self, listing: ServerListing) -> bool {
        let slot = self.listings.iter_mut().find(|l| {
            l.server.name == listing.server.name
                && l.server.upstream.same_as(&listing.server.upstream)
        });
        match slot {
            Some(slot) => {
                *slot = listing;
                true
            }
            None => false,
        }
    }

    /// Whether `name`'s items leave the lists while it is not healthy (`on_failure: "hide"`).
    pub fn hides_when_unhealthy(&self, name: &str) -> bool {
        self.listings
            .iter()
            .any(|l| l.server.name == name && l.server.policy.on_failure == OnFailure::Hide)
    }

    /// Takes a server out (a config reload removed it).
    pub fn remove(&mut self, name: &str) -> Option<ServerListing> {
        let index = self.listings.iter().position(|l| l.server.name == name)?;
        Some(self.listings.remove(index))
    }

    /// Adds a server (a config reload added it), keeping servers in name order.
    pub fn insert(&mut self, listing: ServerListing) {
        let at = self
            .listings
            .partition_point(|l| l.server.name < listing.server.name);
        self.listings.insert(at, listing);
    }

    /// How names are prefixed and lists paged, from now on.
    pub fn set_naming(&mut self, mode: PrefixMode, page_size: usize) {
        self.mode = mode;
        self.page_size = page_size;
    }
}
