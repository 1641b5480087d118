//! A reloaded config applied to the registry keeper's state: servers taken out and brought in,
//! naming, and the governance.
//!
//! Owns: the order of a reload — the new governance is built first, so a reload that cannot be
//! applied changes nothing; then removed servers leave the registry (and are stopped once
//! calls still in flight on them have had their timeout to finish), and added ones join as
//! "starting" until their handshake and listing are done. Unchanged servers keep their
//! processes and connections. Must never: stop a server a published snapshot still routes new
//! calls to, or block the keeper (stopping happens on a thread of its own).

use std::sync::Arc;
use std::time::Duration;

use super::builder::RegistryBuilder;
use super::snapshot::{ServerEntry, ServerItems, ServerListing};
use crate::auth::Governance;
use crate::config::{GovernanceConfig, PrefixMode, ServerConfig};
use crate::upstream::gate::CallGate;
use crate::upstream::health::{Health, HealthState};
use crate::upstream::start::StartedUpstreams;
use crate::upstream::Upstream;

/// Time a removed stdio server gets to exit after its stdin closes, before signals.
const CHILD_GRACE: Duration = Duration::from_secs(3);

/// What a reload changes, prepared on the control thread.
pub struct Reconfiguration {
    pub governance: GovernanceConfig,
    pub mode: PrefixMode,
    pub page_size: usize,
    /// Servers to take out: removed from the config, or changed (and so in `added` too).
    pub removed: Vec<String>,
    /// Servers to bring in, already created (their handshakes may be under way).
    pub added: Vec<(ServerConfig, Upstream)>,
    /// The running upstreams, which shutdown stops: added ones join, removed ones leave.
    pub running: StartedUpstreams,
    /// Worker cores, over which added servers' call bounds are split.
    pub workers: usize,
}

/// Applies `r` to `builder`; the added servers' entries are returned, to be waited for. On
/// error nothing changed.
pub fn apply(
    builder: &mut RegistryBuilder,
    r: Reconfiguration,
) -> Result<Vec<Arc<ServerEntry>>, String> {
    let current = builder.governance();
    let governance = Governance::new(&r.governance, Some(current), current.cores())?;
    for name in &r.removed {
        if let Some(listing) = builder.remove(name) {
            listing.server.health.set(name, HealthState::Disabled, None);
            tracing::info!(server = %name, "server removed by a config reload; stopping it once its calls are done");
            drain(listing.server, r.running.clone());
        }
    }
    let mut waiting = Vec::with_capacity(r.added.len());
    for (cfg, upstream) in r.added {
        r.running.add(upstream.clone());
        let entry = Arc::new(ServerEntry {
            name: cfg.name,
            upstream,
            timeout: cfg.timeout,
            filter: cfg.tools,
            error: Some("starting: added by a config reload".to_owned()),
            health: Arc::new(Health::default()),
            policy: cfg.health,
            gate: Arc::new(CallGate::new(cfg.calls, r.workers)),
        });
        tracing::info!(server = %entry.name, "server added by a config reload; starting it");
        builder.insert(ServerListing {
            server: entry.clone(),
            items: ServerItems::default(),
        });
        waiting.push(entry);
    }
    builder.set_naming(r.mode, r.page_size);
    builder.set_governance(Arc::new(governance));
    Ok(waiting)
}

/// Stops a removed server after its timeout: no call sent to it can still be waiting by then,
/// and new calls no longer reach it (it is gone from the snapshot published with the reload).
fn drain(server: Arc<ServerEntry>, running: StartedUpstreams) {
    let stopper = std::thread::Builder::new()
        .name("mcpgate-drain".into())
        .spawn(move || {
            std::thread::sleep(server.timeout);
            server.upstream.shutdown(CHILD_GRACE);
            running.remove(&server.upstream);
            tracing::info!(server = %server.name, "removed server stopped");
        });
    if let Err(e) = stopper {
        tracing::error!(error = %e, "cannot start a thread to stop a removed server; it runs until mcpgate stops");
    }
}
