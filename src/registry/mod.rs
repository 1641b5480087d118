//! What the gateway exposes: every tool, prompt, resource and resource template of every
//! upstream under its exposed name or URI.
//!
//! Owns: building an immutable [`RegistrySnapshot`] from the upstreams' listings (naming,
//! filtering, collisions, precomputed `…/list` pages, routes for resource URIs) and handing the
//! current one to each core without locks on the hot path. Must never: mutate a published snapshot; in-flight
//! calls finish on the snapshot they started with.

pub mod access;
mod builder;
pub mod catalog;
pub mod health_watch;
pub mod naming;
mod published;
pub mod reconfigure;
pub mod reconnect;
pub mod recovery;
mod snapshot;
pub mod switches;
pub mod uri_routes;
pub mod uri_template;

pub use access::{Access, AccessTable, Page};
pub use builder::RegistryBuilder;
pub use catalog::{Catalog, CatalogKind, Collision, ExposedItem};
pub use published::{PublishedRegistry, RegistryReader};
pub use snapshot::{RegistrySnapshot, ServerEntry, ServerItems, ServerListing};
pub use switches::DisabledTools;
pub use uri_routes::{Unroutable, UriRoute, UriRoutes};
