//! One kind of thing the gateway aggregates (tools, prompts, resources, resource templates):
//! exposed names or URIs, lookup, collisions, and the precomputed `…/list` pages.

use std::collections::HashMap;

use base64::Engine;
use serde_json::value::RawValue;

use super::naming::{exposed_name, exposed_uri, with_hash_suffix};
use crate::config::{PrefixMode, ToolFilter};
use crate::jsonrpc::RawObject;

/// What a catalog holds; names the list member and keeps cursors of one kind from another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CatalogKind {
    Tools,
    Prompts,
    Resources,
    ResourceTemplates,
}

impl CatalogKind {
    /// The member of a `…/list` result that holds the items.
    pub fn member(self) -> &'static str {
        match self {
            CatalogKind::Tools => "tools",
            CatalogKind::Prompts => "prompts",
            CatalogKind::Resources => "resources",
            CatalogKind::ResourceTemplates => "resourceTemplates",
        }
    }

    /// The method that lists this kind.
    pub fn list_method(self) -> &'static str {
        match self {
            CatalogKind::Tools => "tools/list",
            CatalogKind::Prompts => "prompts/list",
            CatalogKind::Resources => "resources/list",
            CatalogKind::ResourceTemplates => "resources/templates/list",
        }
    }

    /// The member of an item that identifies it, and the one the gateway rewrites.
    pub fn key(self) -> &'static str {
        match self {
            CatalogKind::Tools | CatalogKind::Prompts => "name",
            CatalogKind::Resources => "uri",
            CatalogKind::ResourceTemplates => "uriTemplate",
        }
    }

    /// Whether items are identified by URI (rewritten with `mcpgate://<server>/`) rather than
    /// by name (`<server>__`, sanitized).
    pub fn keyed_by_uri(self) -> bool {
        matches!(
            self,
            CatalogKind::Resources | CatalogKind::ResourceTemplates
        )
    }

    fn cursor_prefix(self) -> &'static str {
        match self {
            CatalogKind::Tools => "mcpgate-tools:",
            CatalogKind::Prompts => "mcpgate-prompts:",
            CatalogKind::Resources => "mcpgate-resources:",
            CatalogKind::ResourceTemplates => "mcpgate-templates:",
        }
    }
}

/// An item under its exposed name (or URI, for resources and templates).
#[derive(Debug, Clone)]
pub struct ExposedItem {
    pub name: String,
    /// Index into `RegistrySnapshot::servers`.
    pub server: usize,
    /// The name (or URI) the upstream knows it by.
    pub original: String,
    /// The upstream's definition with its key member replaced; every other member byte for
    /// byte.
    pub definition: String,
}

/// Two or more items wanted the same exposed name. Names are made unique with a hash suffix;
/// URIs cannot be renamed, so both items keep the URI and reading it is ambiguous.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collision {
    pub name: String,
    /// `(server, original name, name it got)` for each item involved, in server order.
    pub items: Vec<(String, String, String)>,
}

/// One server's items, input to a build.
pub struct CatalogInput<'a> {
    pub server: &'a str,
    /// Which original names are exposed (`None`: all).
    pub filter: Option<&'a ToolFilter>,
    pub definitions: &'a [Box<RawValue>],
}

pub struct Catalog {
    kind: CatalogKind,
    pub items: Vec<ExposedItem>,
    by_name: HashMap<String, usize, ahash::RandomState>,
    pub collisions: Vec<Collision>,
    /// Definitions an upstream published without a usable name (skipped), as `(server, why)`.
    pub skipped: Vec<(String, String)>,
    /// `…/list` results, one per page, ready to splice into a reply.
    pages: Vec<String>,
    page_size: usize,
}

impl Catalog {
    /// Builds the catalog; inputs are in server order (index = server index).
    pub fn build(
        kind: CatalogKind,
        mode: PrefixMode,
        page_size: usize,
        inputs: &[CatalogInput<'_>],
    ) -> Self {
        let key = kind.key();
        let mut skipped = Vec::new();
        // (server index, original name, raw definition) for every admitted item.
        let mut admitted: Vec<(usize, String, &RawValue)> = Vec::new();
        for (si, input) in inputs.iter().enumerate() {
            for def in input.definitions {
                let name = match RawObject::parse(def.get()) {
                    Ok(obj) => obj.get_str(key).map(|n| n.into_owned()),
                    Err(_) => None,
                };
                let Some(name) = name.filter(|n| !n.is_empty()) else {
                    skipped.push((
                        input.server.to_owned(),
                        format!("a {} definition has no {key}", kind.member()),
                    ));
                    continue;
                };
                if input.filter.is_none_or(|f| f.admits(&name)) {
                    admitted.push((si, name, def));
                }
            }
        }
        let mut publishers: HashMap<&str, usize> = HashMap::new();
        for (_, name, _) in &admitted {
            *publishers.entry(name.as_str()).or_default() += 1;
        }
        let mut items: Vec<ExposedItem> = Vec::with_capacity(admitted.len());
        let mut by_name: HashMap<String, usize, ahash::RandomState> =
            HashMap::with_capacity_and_hasher(admitted.len(), ahash::RandomState::new());
        let mut collided: HashMap<String, Vec<(String, String, String)>> = HashMap::new();
        for (si, original, def) in &admitted {
            let server = inputs[*si].server;
            let shared = publishers.get(original.as_str()).copied().unwrap_or(0) > 1;
            let mut name = if kind.keyed_by_uri() {
                exposed_uri(mode, server, original, shared)
            } else {
                exposed_name(mode, server, original, shared)
            };
            if let Some(&first) = by_name.get(&name) {
                let wanted = name.clone();
                if !kind.keyed_by_uri() {
                    name = with_hash_suffix(&wanted, server, original);
                }
                let entry = collided.entry(wanted).or_insert_with(|| {
                    let f: &ExposedItem = &items[first];
                    vec![(
                        inputs[f.server].server.to_owned(),
                        f.original.clone(),
                        f.name.clone(),
                    )]
                });
                entry.push((server.to_owned(), original.clone(), name.clone()));
            }
            let mut definition = Vec::with_capacity(def.get().len() + 16);
            if let Ok(obj) = RawObject::parse(def.get()) {
                obj.write_replacing(&mut definition, key, &name);
            }
            let definition = String::from_utf8(definition).unwrap_or_default();
            // A shared URI keeps pointing at its first server; routing sees every server.
            by_name.entry(name.clone()).or_insert(items.len());
            items.push(ExposedItem {
                name,
                server: *si,
                original: original.clone(),
                definition,
            });
        }
        let mut collisions: Vec<Collision> = collided
            .into_iter()
            .map(|(name, items)| Collision { name, items })
            .collect();
        collisions.sort_by(|a, b| a.name.cmp(&b.name));
        let page_size = page_size.max(1);
        let pages = build_pages(kind, &items.iter().collect::<Vec<_>>(), page_size);
        Catalog {
            kind,
            items,
            by_name,
            collisions,
            skipped,
            pages,
            page_size,
        }
    }

    pub fn kind(&self) -> CatalogKind {
        self.kind
    }

    pub fn get(&self, exposed: &str) -> Option<&ExposedItem> {
        self.find(exposed).map(|(_, item)| item)
    }

    /// The item and its index in `items`.
    pub fn find(&self, exposed: &str) -> Option<(usize, &ExposedItem)> {
        self.by_name.get(exposed).map(|&i| (i, &self.items[i]))
    }

    /// The `…/list` result for `cursor` (`None` = first page); `None` when the cursor is not
    /// one this gateway issued for this kind.
    pub fn page(&self, cursor: Option<&str>) -> Option<&str> {
        self.page_in(&self.pages, cursor)
    }

    /// The page for `cursor` among `pages` (the whole catalog's or a caller's view).
    fn page_in<'p>(&self, pages: &'p [String], cursor: Option<&str>) -> Option<&'p str> {
        pages.get(self.page_index(cursor)?).map(String::as_str)
    }

    /// The page number `cursor` names (`None` = the first); `None` for a cursor the gateway did
    /// not issue for this kind.
    pub fn page_index(&self, cursor: Option<&str>) -> Option<usize> {
        match cursor {
            None => Some(0),
            Some(c) => decode_cursor(self.kind, c),
        }
    }

    /// The `…/list` pages of just the items `keep` admits (by index): what a caller who may
    /// see part of the catalog is shown.
    pub fn pages_where(&self, keep: impl Fn(usize, &ExposedItem) -> bool) -> Vec<String> {
        let items: Vec<&ExposedItem> = self
            .items
            .iter()
            .enumerate()
            .filter(|&(i, item)| keep(i, item))
            .map(|(_, item)| item)
            .collect();
        build_pages(self.kind, &items, self.page_size)
    }
}

fn encode_cursor(kind: CatalogKind, page: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("{}{page}", kind.cursor_prefix()))
}

fn decode_cursor(kind: CatalogKind, cursor: &str) -> Option<usize> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    text.strip_prefix(kind.cursor_prefix())?.parse().ok()
}

fn build_pages(kind: CatalogKind, items: &[&ExposedItem], page_size: usize) -> Vec<String> {
    let chunks: Vec<&[&ExposedItem]> = if items.is_empty() {
        vec![&[][..]]
    } else {
        items.chunks(page_size).collect()
    };
    let last = chunks.len() - 1;
    chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| {
            let mut page = String::with_capacity(
                chunk.iter().map(|t| t.definition.len() + 1).sum::<usize>() + 64,
            );
            page.push_str("{\"");
            page.push_str(kind.member());
            page.push_str("\":[");
            for (j, t) in chunk.iter().enumerate() {
                if j > 0 {
                    page.push(',');
                }
                page.push_str(&t.definition);
            }
            page.push(']');
            if i < last {
                page.push_str(r#","nextCursor":""#);
                page.push_str(&encode_cursor(kind, i + 1));
                page.push('"');
            }
            page.push('}');
            page
        })
        .collect()
}
