//! Tools switched off at run time (the admin API's `PUT /api/tools/{name}`), by server and
//! original name.
//!
//! Owns: the set the registry builder applies to every snapshot it builds, the way the config's
//! `disabled_tools` is applied, so listing, calling and the grants tables agree. It is kept by
//! the registry keeper across config reloads (a reload does not switch a tool back on) and
//! holds names, not exposed names, so a change of `tool_prefix` keeps it. Must never: be read
//! on the hot path (workers see its effect in the snapshot, nothing else).

use std::collections::{BTreeMap, BTreeSet};

/// Server name → original names of its tools that are switched off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DisabledTools {
    by_server: BTreeMap<String, BTreeSet<String>>,
}

impl DisabledTools {
    /// Switches `server`'s tool `original` off (`enabled` false) or back on; true when that
    /// changed anything.
    pub fn set(&mut self, server: &str, original: &str, enabled: bool) -> bool {
        if enabled {
            let Some(names) = self.by_server.get_mut(server) else {
                return false;
            };
            let changed = names.remove(original);
            if names.is_empty() {
                self.by_server.remove(server);
            }
            changed
        } else {
            self.by_server
                .entry(server.to_owned())
                .or_default()
                .insert(original.to_owned())
        }
    }

    /// The original names switched off on `server`, if any.
    pub fn of(&self, server: &str) -> Option<&BTreeSet<String>> {
        self.by_server.get(server)
    }

    pub fn is_disabled(&self, server: &str, original: &str) -> bool {
        self.of(server)
            .is_some_and(|names| names.contains(original))
    }

    /// How many tools are switched off (of servers that may no longer be configured, too).
    pub fn len(&self) -> usize {
        self.by_server.values().map(BTreeSet::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_server.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switching_off_and_on_reports_changes_only() {
        let mut d = DisabledTools::default();
        assert!(d.set("a", "echo", false));
        assert!(!d.set("a", "echo", false), "already off");
        assert!(d.is_disabled("a", "echo"));
        assert!(!d.is_disabled("b", "echo"));
        assert_eq!(d.len(), 1);
        assert!(d.set("a", "echo", true));
        assert!(!d.set("a", "echo", true), "already on");
        assert!(d.is_empty());
        assert!(d.of("a").is_none(), "no empty set is left behind");
    }
}
