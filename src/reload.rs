//! Reloading the config file while serving: on SIGHUP, or when the file changes.
//!
//! Owns: reading the file again, refusing an invalid one (the old config keeps serving, the
//! reason is logged), and applying what can change live. Today that is the governance —
//! virtual keys, groups, teams, customers, limits and tool pricing — applied as a new registry
//! snapshot; changes to servers or listener settings are reported as needing a restart. Must
//! never: log a key's value (config errors never carry values), or drop the serving config
//! before the new one is known to be valid.

use std::path::PathBuf;
use std::time::SystemTime;

use crate::config::{self, Config};
use crate::registry::recovery::Keeper;

/// The file being served and what it said last.
pub struct ConfigReloader {
    path: PathBuf,
    current: Config,
    modified: Option<SystemTime>,
}

impl ConfigReloader {
    pub fn new(path: PathBuf, current: Config) -> Self {
        let modified = modified(&path);
        ConfigReloader {
            path,
            current,
            modified,
        }
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
        let next = match config::load_file(&self.path) {
            Ok(next) => next,
            Err(e) => {
                tracing::error!(config = %self.path.display(), error = %e, "config reload refused; the previous config keeps serving");
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
        if !keeper.govern(next.governance.clone()) {
            tracing::error!("config reload: the registry keeper is gone; nothing applied");
            return;
        }
        tracing::info!(config = %self.path.display(), keys = next.governance.keys.len(), groups = next.governance.groups.len(), "config reloaded");
        // What is served now: the new governance, the old everything else.
        self.current.governance = next.governance;
    }
}

fn modified(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The settings that differ and are not applied live.
fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    if old.servers != new.servers || old.tool_prefix != new.tool_prefix {
        changed.push("mcpServers");
    }
    if old.listen != new.listen || old.workers != new.workers || old.io_driver != new.io_driver {
        changed.push("listen/workers/io_driver");
    }
    if old.tls != new.tls {
        changed.push("tls");
    }
    if old.http_limits != new.http_limits {
        changed.push("max_body_bytes/max_header_bytes");
    }
    if old.session_secret != new.session_secret || old.session_ttl != new.session_ttl {
        changed.push("session_secret/session_ttl_secs");
    }
    if old.allowed_origins != new.allowed_origins {
        changed.push("allowed_origins");
    }
    changed
}
