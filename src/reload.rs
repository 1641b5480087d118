//! Reloading the config file while serving: on SIGHUP, or when the file changes.
//!
//! Owns: reading the file again, refusing an invalid one (the old config keeps serving, the
//! reason is logged), and working out what changed. Servers (added, removed, changed), naming
//! and the governance — virtual keys, groups, teams, customers, limits, tool pricing — are
//! applied live by the registry keeper (`registry::reconfigure`); listener and runtime settings
//! are reported as needing a restart. Must never: log a key's value (config errors never carry
//! values), or drop the serving config before the new one is known to be valid.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use crate::config::{self, Config, ServerConfig};
use crate::registry::reconfigure::Reconfiguration;
use crate::registry::recovery::Keeper;
use crate::runtime::CoreHandle;
use crate::upstream::start::{create_upstreams, StartedUpstreams};

/// How many reloads were applied and refused since start (for `/metrics` and the admin API).
#[derive(Debug, Default)]
pub struct ReloadCounts {
    applied: AtomicU64,
    refused: AtomicU64,
}

impl ReloadCounts {
    /// Reloads handed to the registry keeper.
    pub fn applied(&self) -> u64 {
        self.applied.load(Ordering::Relaxed)
    }

    /// Reloads refused (an invalid file, a server that cannot be created, no keeper).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    fn refuse(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }
}

/// The file being served and what it said last.
pub struct ConfigReloader {
    path: PathBuf,
    current: Config,
    modified: Option<SystemTime>,
    /// Where added servers' pipes and streams are driven.
    cores: Vec<CoreHandle>,
    running: StartedUpstreams,
    counts: Arc<ReloadCounts>,
}

impl ConfigReloader {
    pub fn new(
        path: PathBuf,
        current: Config,
        cores: Vec<CoreHandle>,
        running: StartedUpstreams,
    ) -> Self {
        let modified = modified(&path);
        ConfigReloader {
            path,
            current,
            modified,
            cores,
            running,
            counts: Arc::default(),
        }
    }

    /// The reloads counted so far, kept current.
    pub fn counts(&self) -> Arc<ReloadCounts> {
        self.counts.clone()
    }

    /// Reloads when the file's modification time moved since the last look.
    pub fn reload_if_changed(&mut self, keeper: &Keeper) {
        let now = modified(&self.path);
        if now != self.modified {
            self.modified = now;
            self.reload(keeper);
        }
    }

    /// Reads the file again and applies what can change live.
    pub fn reload(&mut self, keeper: &Keeper) {
        // A SIGHUP after saving the file must not be followed by a second reload of it.
        self.modified = modified(&self.path);
        let next = match config::load_file(&self.path) {
            Ok(next) => next,
            Err(e) => {
                tracing::error!(config = %self.path.display(), error = %e, "config reload refused; the previous config keeps serving");
                self.counts.refuse();
                return;
            }
        };
        let needs_restart = restart_only_changes(&self.current, &next);
        if !needs_restart.is_empty() {
            tracing::warn!(
                keys = %needs_restart.join(", "),
                "config reload: these settings take effect at the next restart; the rest is applied now"
            );
        }
        let removed: Vec<String> = self
            .current
            .servers
            .iter()
            .filter(|old| !next.servers.contains(old))
            .map(|old| old.name.clone())
            .collect();
        let to_add: Vec<ServerConfig> = next
            .servers
            .iter()
            .filter(|new| !self.current.servers.contains(new))
            .cloned()
            .collect();
        let created = match create_upstreams(&to_add, next.max_upstream_reply_bytes, &self.cores) {
            Ok(created) => created,
            Err(e) => {
                tracing::error!(config = %self.path.display(), error = %e, "config reload refused; the previous config keeps serving");
                self.counts.refuse();
                return;
            }
        };
        let mut added = Vec::with_capacity(created.len());
        let mut served = next.clone();
        for (cfg, upstream) in created {
            match upstream {
                Ok(upstream) => added.push((cfg, upstream)),
                Err(e) => {
                    // Left out like at start; not recorded as served, so a later reload retries.
                    tracing::error!(server = %cfg.name, error = %e, "server added by the reload is not usable and is left out");
                    served.servers.retain(|s| s.name != cfg.name);
                }
            }
        }
        let (servers_added, servers_removed) = (added.len(), removed.len());
        let reconfiguration = Reconfiguration {
            governance: next.governance.clone(),
            mode: next.tool_prefix,
            page_size: next.tools_page_size,
            removed,
            added,
            running: self.running.clone(),
            workers: self.cores.len(),
        };
        if !keeper.reconfigure(reconfiguration) {
            tracing::error!("config reload: the registry keeper is gone; nothing applied");
            self.counts.refuse();
            return;
        }
        self.counts.applied.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            config = %self.path.display(), servers_added, servers_removed,
            keys = next.governance.keys.len(), groups = next.governance.groups.len(),
            "config reloaded"
        );
        // What is served now: the new config, except what needs a restart.
        let kept = std::mem::replace(&mut self.current, served);
        keep_restart_only(&mut self.current, kept);
    }
}

fn modified(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Puts back into `served` the settings of `old` that are not applied live, so the next reload
/// compares against what really runs.
fn keep_restart_only(served: &mut Config, old: Config) {
    served.listen = old.listen;
    served.workers = old.workers;
    served.io_driver = old.io_driver;
    served.tls = old.tls;
    served.http_limits = old.http_limits;
    served.session_secret = old.session_secret;
    served.session_ttl = old.session_ttl;
    served.allowed_origins = old.allowed_origins;
    served.max_upstream_reply_bytes = old.max_upstream_reply_bytes;
    served.busy_poll = old.busy_poll;
    served.shutdown_grace = old.shutdown_grace;
    served.audit = old.audit;
    served.access_log = old.access_log;
    served.admin = old.admin;
}

/// The settings that differ and are not applied live.
fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    if old.max_upstream_reply_bytes != new.max_upstream_reply_bytes
        || old.busy_poll != new.busy_poll
    {
        changed.push("max_upstream_reply_bytes/busy_poll_us");
    }
    if old.listen != new.listen || old.workers != new.workers || old.io_driver != new.io_driver {
        changed.push("listen/workers/io_driver");
    }
    if old.tls != new.tls {
        changed.push("tls");
    }
    if old.http_limits != new.http_limits {
        changed
            .push("max_body_bytes/max_header_bytes/header_read_timeout_ms/client_write_timeout_ms");
    }
    if old.session_secret != new.session_secret || old.session_ttl != new.session_ttl {
        changed.push("session_secret/session_ttl_secs");
    }
    if old.allowed_origins != new.allowed_origins {
        changed.push("allowed_origins");
    }
    if old.shutdown_grace != new.shutdown_grace {
        changed.push("shutdown_grace_ms");
    }
    // The log thread opened its sinks at start and owns them until the gateway stops.
    if old.audit != new.audit || old.access_log != new.access_log {
        changed.push("audit/access_log");
    }
    if old.admin != new.admin {
        changed.push("admin");
    }
    changed
}
