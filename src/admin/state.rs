//! What the admin listener reads and asks: the published registry (servers, tools, governance),
//! the registry keeper (for changes), the metrics hub, and facts about this process.
//!
//! Owns: nothing it reads; every figure is looked up when a request asks for it. Must never:
//! hand out anything a worker core would have to lock for.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::metrics::MetricsHub;
use crate::registry::recovery::Keeper;
use crate::registry::PublishedRegistry;
use crate::reload::ReloadCounts;
use crate::runtime::IoDriver;

pub struct AdminState {
    pub registry: Arc<PublishedRegistry>,
    pub keeper: Keeper,
    pub metrics: Arc<MetricsHub>,
    /// Reloads counted by the config reloader; `None` for the built-in config (no file).
    pub reloads: Option<Arc<ReloadCounts>>,
    pub driver: IoDriver,
    pub workers: usize,
    /// When serving began, on both clocks.
    pub started_at: SystemTime,
    pub started: Instant,
    /// The audit log's SQLite store, which `GET /api/audit` reads; `None` when the audit log
    /// writes none (the route then answers 501).
    pub audit_store: Option<PathBuf>,
}
