//! What one caller reaches in one snapshot: the governance's grants laid over the catalogs.
//!
//! Owns: the per-snapshot tables that make the `tools/call` check a bit test (a bit per
//! exposed tool, per key and per group), the check for every other kind, and the `…/list`
//! pages a restricted caller sees, built on first use and kept for the snapshot's life. Must
//! never: show a caller an item it may not call, or let a call through that its listing would
//! not show.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::catalog::{Catalog, CatalogKind};
use super::snapshot::{RegistrySnapshot, ServerEntry};
use crate::auth::grants::Grants;
use crate::auth::limits::{CallPermit, Refusal, MILLI};
use crate::auth::{Caller, Governance};

/// A bit per item of a catalog.
struct Bits(Vec<u64>);

impl Bits {
    fn from_fn(len: usize, f: impl Fn(usize) -> bool) -> Bits {
        let mut words = vec![0u64; len.div_ceil(64)];
        for i in (0..len).filter(|&i| f(i)) {
            words[i / 64] |= 1 << (i % 64);
        }
        Bits(words)
    }

    fn get(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
}

/// A restricted caller's list pages, by (caller, group, kind).
type Views = HashMap<(Caller, Option<usize>, CatalogKind), Arc<Vec<String>>>;

/// The governance as it applies to one snapshot.
pub struct AccessTable {
    governance: Arc<Governance>,
    /// Cost of one call of each exposed tool, milli-units (empty: 1 unit each).
    tool_costs: Vec<u64>,
    key_tools: Vec<Bits>,
    group_tools: Vec<Bits>,
    views: Mutex<Views>,
}

fn tool_bits(grants: &Grants, servers: &[Arc<ServerEntry>], tools: &Catalog) -> Bits {
    Bits::from_fn(tools.items.len(), |i| {
        let item = &tools.items[i];
        servers
            .get(item.server)
            .is_some_and(|s| grants.allows(&s.name, &item.original))
    })
}

impl AccessTable {
    pub fn build(
        governance: Arc<Governance>,
        servers: &[Arc<ServerEntry>],
        tools: &Catalog,
    ) -> AccessTable {
        let key_tools = governance
            .keys()
            .iter()
            .map(|k| tool_bits(&k.grants, servers, tools))
            .collect();
        let group_tools = governance
            .groups()
            .iter()
            .map(|g| tool_bits(&g.grants, servers, tools))
            .collect();
        let tool_costs = if governance.prices_tools() {
            tools
                .items
                .iter()
                .map(|item| {
                    servers
                        .get(item.server)
                        .map_or(MILLI, |s| governance.cost_milli(&s.name, &item.original))
                })
                .collect()
        } else {
            Vec::new()
        };
        AccessTable {
            governance,
            tool_costs,
            key_tools,
            group_tools,
            views: Mutex::new(HashMap::new()),
        }
    }

    pub fn governance(&self) -> &Governance {
        &self.governance
    }

    pub fn governance_arc(&self) -> Arc<Governance> {
        self.governance.clone()
    }
}

/// A page of a `…/list` result: the whole catalog's, or one from a caller's view.
pub enum Page<'s> {
    Shared(&'s str),
    View(Arc<Vec<String>>, usize),
}

impl Page<'_> {
    pub fn as_str(&self) -> &str {
        match self {
            Page::Shared(s) => s,
            Page::View(pages, i) => pages.get(*i).map_or("", String::as_str),
        }
    }
}

/// One request's reach: its caller, narrowed to a tool group when the URL names one.
#[derive(Clone, Copy)]
pub struct Access<'s> {
    snapshot: &'s RegistrySnapshot,
    caller: Caller,
    group: Option<usize>,
}

impl<'s> Access<'s> {
    pub fn new(snapshot: &'s RegistrySnapshot, caller: Caller, group: Option<usize>) -> Self {
        Access {
            snapshot,
            caller,
            group,
        }
    }

    pub fn caller(&self) -> Caller {
        self.caller
    }

    pub fn snapshot(&self) -> &'s RegistrySnapshot {
        self.snapshot
    }

    /// Nothing is withheld: anonymous on `/mcp`.
    fn is_open(&self) -> bool {
        self.caller == Caller::Anonymous && self.group.is_none()
    }

    fn table(&self) -> &'s AccessTable {
        &self.snapshot.access
    }

    /// The grants that restrict this request: the key's, the group's (each `None` when it does
    /// not restrict).
    fn restrictions(&self) -> [Option<&'s Grants>; 2] {
        let g = self.table().governance.as_ref();
        [
            g.grants(self.caller),
            self.group
                .and_then(|i| g.groups().get(i))
                .map(|p| &p.grants),
        ]
    }

    /// Whether item `index` of the `kind` catalog may be listed and called.
    pub fn allows_item(&self, kind: CatalogKind, index: usize) -> bool {
        if self.is_open() {
            return true;
        }
        if kind == CatalogKind::Tools {
            let table = self.table();
            let key_ok = match self.caller {
                Caller::Anonymous => true,
                Caller::Key(k) => table.key_tools.get(k).is_some_and(|b| b.get(index)),
            };
            let group_ok = self
                .group
                .is_none_or(|g| table.group_tools.get(g).is_some_and(|b| b.get(index)));
            return key_ok && group_ok;
        }
        let Some(item) = self.snapshot.catalog(kind).items.get(index) else {
            return false;
        };
        self.grants_name(item.server, &item.original)
    }

    /// Whether every grant that restricts the caller (its key's, its group's) passes `test`,
    /// given server `server`'s name; true when nothing restricts it, false for no such server.
    fn every_grant(&self, server: usize, test: impl Fn(&Grants, &str) -> bool) -> bool {
        if self.is_open() {
            return true;
        }
        let Some(entry) = self.snapshot.servers.get(server) else {
            return false;
        };
        self.restrictions()
            .iter()
            .flatten()
            .all(|g| test(g, &entry.name))
    }

    /// Whether the caller's grants (and the group's) name item `original` of server `server`
    /// (index), whatever the catalogs hold: for telling a caller about a tool it would reach if
    /// it were not switched off, and nobody else.
    pub fn grants_name(&self, server: usize, original: &str) -> bool {
        self.every_grant(server, |g, name| g.allows(name, original))
    }

    /// Whether the resource `original` of server `server` (index) may be read or subscribed:
    /// the whole server is granted, or the URI itself, or a template of that server matching it.
    pub fn allows_uri(&self, server: usize, original: &str) -> bool {
        self.every_grant(server, |g, name| {
            g.whole_server(name)
                || g.allows(name, original)
                || self
                    .snapshot
                    .uri_routes
                    .templates_matching(server, original)
                    .any(|t| g.allows(name, t))
        })
    }

    /// Whether anything of server `server` (index) is reachable (for server-wide requests such
    /// as `logging/setLevel`).
    pub fn touches_server(&self, server: usize) -> bool {
        self.every_grant(server, |g, name| g.touches(name))
    }

    /// What one call of exposed tool `index` costs against budgets, in milli-units.
    pub fn tool_cost_milli(&self, index: usize) -> u64 {
        self.table().tool_costs.get(index).copied().unwrap_or(MILLI)
    }

    /// Charges a call costing `cost_milli` to the caller's key, team and customer; the permit
    /// holds their concurrency slots until dropped.
    pub fn admit_call(&self, cost_milli: u64) -> Result<CallPermit, Refusal> {
        self.table().governance.admit_call(self.caller, cost_milli)
    }

    /// The caller's key name (`None`: anonymous), shared, for audit records.
    pub fn key_name(&self) -> Option<&'s Arc<str>> {
        self.table()
            .governance
            .key(self.caller)
            .map(|k| &k.shared_name)
    }

    /// The tool group the URL named, shared, for audit records.
    pub fn group_name(&self) -> Option<&'s Arc<str>> {
        let groups = self.table().governance.groups();
        self.group
            .and_then(|i| groups.get(i))
            .map(|g| &g.shared_name)
    }

    /// Why a request for `noun` `name` (its exposed name) is refused, for the error message.
    pub fn denial(&self, noun: &str, name: &str) -> String {
        let g = self.table().governance.as_ref();
        let key = g.key(self.caller).map(|k| k.name.as_str());
        let group = self
            .group
            .and_then(|i| g.groups().get(i))
            .map(|p| p.name.as_str());
        match (key, group) {
            (Some(key), None) => format!("Forbidden: key {key:?} has no grant for {noun} {name}"),
            (None, Some(group)) => {
                format!("Forbidden: tool group {group:?} does not include {noun} {name}")
            }
            (Some(key), Some(group)) => format!(
                "Forbidden: {noun} {name} is not granted to key {key:?} in tool group {group:?}"
            ),
            (None, None) => format!("Forbidden: {noun} {name} is not reachable"),
        }
    }

    /// The `…/list` page for `cursor` as this caller sees it; `None` for a cursor the gateway
    /// did not issue.
    pub fn page(&self, kind: CatalogKind, cursor: Option<&str>) -> Option<Page<'s>> {
        let catalog = self.snapshot.catalog(kind);
        if self.is_open() {
            return catalog.page(cursor).map(Page::Shared);
        }
        let pages = {
            let mut views = self
                .table()
                .views
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            views
                .entry((self.caller, self.group, kind))
                .or_insert_with(|| Arc::new(catalog.pages_where(|i, _| self.allows_item(kind, i))))
                .clone()
        };
        let index = catalog.page_index(cursor)?;
        (index < pages.len()).then_some(Page::View(pages, index))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use serde_json::value::RawValue;

    use super::*;
    use crate::auth::keys::KeyHash;
    use crate::config::{GovernanceConfig, KeyConfig, LimitConfig, PrefixMode, ToolFilter};
    use crate::registry::{ServerItems, ServerListing};
    use crate::upstream::http::HttpUpstream;
    use crate::upstream::Upstream;

    fn raw(items: &[String]) -> Vec<Box<RawValue>> {
        items
            .iter()
            .map(|s| RawValue::from_string(s.clone()).unwrap())
            .collect()
    }

    fn server(name: &str) -> Arc<ServerEntry> {
        let upstream = HttpUpstream::new(name, "http://127.0.0.1:9/mcp", Vec::new(), 1 << 20)
            .map(|u| Upstream::Http(Arc::new(u)))
            .unwrap();
        Arc::new(ServerEntry {
            name: name.to_owned(),
            upstream,
            timeout: Duration::from_secs(1),
            filter: ToolFilter {
                allow: vec!["*".into()],
                disabled: vec![],
            },
            error: None,
            health: Default::default(),
            policy: Default::default(),
            gate: Default::default(),
        })
    }

    /// Server `notes` with 5 tools, a prompt, a resource and a template; server `other` with
    /// one tool. Key `k` may use tools t1 and t3, the prompt, the template (not the listed
    /// resource) and nothing of `other`; group `g` holds t3 and t4.
    fn governed_snapshot() -> RegistrySnapshot {
        let tools: Vec<String> = (0..5)
            .map(|i| format!(r#"{{"name":"t{i}","inputSchema":{{"type":"object"}}}}"#))
            .collect();
        let listings = vec![
            ServerListing {
                server: server("notes"),
                items: ServerItems {
                    tools: raw(&tools),
                    prompts: raw(&[r#"{"name":"greet"}"#.into()]),
                    resources: raw(&[r#"{"uri":"note://a","name":"a"}"#.into()]),
                    resource_templates: raw(&[
                        r#"{"uriTemplate":"note://items/{id}","name":"item"}"#.into(),
                    ]),
                },
            },
            ServerListing {
                server: server("other"),
                items: ServerItems {
                    tools: raw(&[r#"{"name":"x","inputSchema":{"type":"object"}}"#.into()]),
                    ..ServerItems::default()
                },
            },
        ];
        let lists = |pairs: &[(&str, &[&str])]| -> BTreeMap<String, Vec<String>> {
            pairs
                .iter()
                .map(|(s, n)| (s.to_string(), n.iter().map(|n| n.to_string()).collect()))
                .collect()
        };
        let mut config = GovernanceConfig {
            keys: vec![KeyConfig {
                name: "k".into(),
                hash: KeyHash::of(b"a-key-of-sixteen-chars"),
                team: None,
                grants: lists(&[("notes", &["t1", "t3", "greet", "note://items/{id}"])]),
                groups: vec![],
                limits: LimitConfig::default(),
            }],
            ..GovernanceConfig::default()
        };
        config
            .groups
            .insert("g".into(), lists(&[("notes", &["t3", "t4"])]));
        let governance = Governance::new(&config, None, 1).unwrap();
        RegistrySnapshot::build(1, PrefixMode::Always, 1, listings).govern(Arc::new(governance))
    }

    fn listed(access: &Access<'_>, kind: CatalogKind) -> Vec<String> {
        // Page size 1: follow the view's own cursors to the end.
        let mut names = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = access.page(kind, cursor.as_deref()).unwrap();
            let v: serde_json::Value = serde_json::from_str(page.as_str()).unwrap();
            for item in v[kind.member()].as_array().unwrap() {
                names.push(item[kind.key()].as_str().unwrap().to_owned());
            }
            match v["nextCursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return names,
            }
        }
    }

    #[test]
    fn a_key_sees_and_reaches_exactly_its_grants() {
        let snap = governed_snapshot();
        let key = Access::new(&snap, Caller::Key(0), None);
        assert_eq!(listed(&key, CatalogKind::Tools), ["notes__t1", "notes__t3"]);
        assert_eq!(listed(&key, CatalogKind::Prompts), ["notes__greet"]);
        assert!(listed(&key, CatalogKind::Resources).is_empty());
        assert_eq!(
            listed(&key, CatalogKind::ResourceTemplates),
            ["mcpgate://notes/note://items/{id}"]
        );
        let (t0, _) = snap.tools.find("notes__t0").unwrap();
        let (t1, _) = snap.tools.find("notes__t1").unwrap();
        let (x, _) = snap.tools.find("other__x").unwrap();
        assert!(key.allows_item(CatalogKind::Tools, t1));
        assert!(!key.allows_item(CatalogKind::Tools, t0));
        assert!(!key.allows_item(CatalogKind::Tools, x));
        // A URI its granted template matches is readable; the listed, ungranted one is not.
        assert!(key.allows_uri(0, "note://items/42"));
        assert!(!key.allows_uri(0, "note://a"));
        assert!(!key.allows_uri(1, "anything://"));
        assert!(key.touches_server(0) && !key.touches_server(1));
        assert!(key.denial("tool", "notes__t0").contains("key \"k\""));
    }

    #[test]
    fn a_group_narrows_and_never_widens() {
        let snap = governed_snapshot();
        let group = snap.access.governance().group_named("g");
        let key_in_group = Access::new(&snap, Caller::Key(0), group);
        assert_eq!(listed(&key_in_group, CatalogKind::Tools), ["notes__t3"]);
        assert!(listed(&key_in_group, CatalogKind::Prompts).is_empty());
        let denial = key_in_group.denial("tool", "notes__t1");
        assert!(
            denial.contains("\"k\"") && denial.contains("\"g\""),
            "{denial}"
        );
        // Without a key (no keys configured), the group alone decides.
        let anonymous_in_group = Access::new(&snap, Caller::Anonymous, group);
        assert_eq!(
            listed(&anonymous_in_group, CatalogKind::Tools),
            ["notes__t3", "notes__t4"]
        );
    }

    #[test]
    fn the_open_gateway_withholds_nothing() {
        let snap = governed_snapshot();
        let open = Access::new(&snap, Caller::Anonymous, None);
        assert_eq!(listed(&open, CatalogKind::Tools).len(), 6);
        assert!(open.allows_uri(0, "note://a"));
        assert!(open
            .page(CatalogKind::Tools, Some("not-a-cursor"))
            .is_none());
    }
}
