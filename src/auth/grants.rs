//! What a key or a tool group may reach: per server, the original names of its tools, prompts,
//! resources and resource templates, or `"*"` for all of them.
//!
//! Owns: the matching rule. Must never: widen a grant (a name matches only itself; `"*"` is
//! the only wildcard, and only as a whole entry).

use std::collections::{BTreeMap, HashMap, HashSet};

/// The names granted on one server.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Granted {
    All,
    Names(HashSet<String>),
}

/// Server name → granted names. Empty grants reach nothing (deny by default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    servers: HashMap<String, Granted>,
}

impl Grants {
    /// From the config's shape: server → names, `"*"` meaning every item of the server.
    pub fn from_lists(lists: &BTreeMap<String, Vec<String>>) -> Grants {
        let mut grants = Grants::default();
        for (server, names) in lists {
            grants.add(server, names);
        }
        grants
    }

    /// Grants every item of every server: what anonymous access on loopback reaches.
    pub fn everything(servers: impl IntoIterator<Item = String>) -> Grants {
        Grants {
            servers: servers.into_iter().map(|s| (s, Granted::All)).collect(),
        }
    }

    fn add(&mut self, server: &str, names: &[String]) {
        if names.is_empty() {
            return;
        }
        if names.iter().any(|n| n == "*") {
            self.servers.insert(server.to_owned(), Granted::All);
            return;
        }
        match self
            .servers
            .entry(server.to_owned())
            .or_insert_with(|| Granted::Names(HashSet::new()))
        {
            Granted::All => {}
            Granted::Names(set) => set.extend(names.iter().cloned()),
        }
    }

    /// Adds everything `other` grants.
    pub fn extend(&mut self, other: &Grants) {
        for (server, granted) in &other.servers {
            match granted {
                Granted::All => {
                    self.servers.insert(server.clone(), Granted::All);
                }
                Granted::Names(names) => {
                    let names: Vec<String> = names.iter().cloned().collect();
                    self.add(server, &names);
                }
            }
        }
    }

    /// Whether `name` (a tool or prompt name, a resource URI or a template text, as the server
    /// knows it) of `server` is granted.
    pub fn allows(&self, server: &str, name: &str) -> bool {
        match self.servers.get(server) {
            Some(Granted::All) => true,
            Some(Granted::Names(names)) => names.contains(name),
            None => false,
        }
    }

    /// Whether every item of `server` is granted (`"*"`), including resources it does not list.
    pub fn whole_server(&self, server: &str) -> bool {
        matches!(self.servers.get(server), Some(Granted::All))
    }

    /// Whether anything of `server` is granted.
    pub fn touches(&self, server: &str) -> bool {
        self.servers.contains_key(server)
    }

    /// Server names the grants mention.
    pub fn servers(&self) -> impl Iterator<Item = &str> {
        self.servers.keys().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lists(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        pairs
            .iter()
            .map(|(s, n)| (s.to_string(), n.iter().map(|n| n.to_string()).collect()))
            .collect()
    }

    #[test]
    fn names_match_only_themselves() {
        let g = Grants::from_lists(&lists(&[("a", &["echo", "get-sum"]), ("b", &["*"])]));
        assert!(g.allows("a", "echo"));
        assert!(!g.allows("a", "ech"));
        assert!(!g.allows("a", "*"));
        assert!(!g.allows("c", "echo"));
        assert!(g.allows("b", "anything"));
        assert!(g.whole_server("b") && !g.whole_server("a"));
    }

    #[test]
    fn empty_grants_reach_nothing() {
        let g = Grants::from_lists(&lists(&[("a", &[])]));
        assert!(g.is_empty());
        assert!(!g.allows("a", "echo"));
        assert!(!g.touches("a"));
    }

    #[test]
    fn extending_unions() {
        let mut g = Grants::from_lists(&lists(&[("a", &["echo"])]));
        g.extend(&Grants::from_lists(&lists(&[
            ("a", &["add"]),
            ("b", &["x"]),
        ])));
        assert!(g.allows("a", "echo") && g.allows("a", "add") && g.allows("b", "x"));
        g.extend(&Grants::from_lists(&lists(&[("a", &["*"])])));
        assert!(g.whole_server("a"));
    }
}
