//! One immutable view of everything exposed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde_json::value::RawValue;

use super::naming::{exposed_name, with_hash_suffix};
use crate::config::{PrefixMode, ToolFilter};
use crate::jsonrpc::RawObject;
use crate::upstream::Upstream;

/// An upstream as the registry knows it.
pub struct ServerEntry {
    pub name: String,
    pub upstream: Upstream,
    pub timeout: Duration,
    pub filter: ToolFilter,
    /// Why the server is not serving tools, when it is not.
    pub error: Option<String>,
}

/// One server's listing, input to a build.
pub struct ServerListing {
    pub server: Arc<ServerEntry>,
    pub tools: Vec<Box<RawValue>>,
}

/// A tool under its exposed name.
#[derive(Debug, Clone)]
pub struct ExposedTool {
    pub name: String,
    /// Index into `RegistrySnapshot::servers`.
    pub server: usize,
    /// The name the upstream knows it by.
    pub original: String,
    /// The upstream's definition with `name` replaced; every other member byte for byte.
    pub definition: String,
}

/// Two or more tools wanted the same exposed name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collision {
    pub name: String,
    /// `(server, original tool, name it got)` for each tool involved, in server order.
    pub tools: Vec<(String, String, String)>,
}

pub struct RegistrySnapshot {
    pub generation: u64,
    pub servers: Vec<Arc<ServerEntry>>,
    pub tools: Vec<ExposedTool>,
    by_name: HashMap<String, usize>,
    pub collisions: Vec<Collision>,
    /// Definitions an upstream published without a usable name (skipped), as `(server, why)`.
    pub skipped: Vec<(String, String)>,
    /// `tools/list` results, one per page, ready to splice into a reply.
    pages: Vec<String>,
}

const CURSOR_PREFIX: &str = "mcpgate-page:";

impl RegistrySnapshot {
    /// Builds a snapshot. Servers are taken in the given order (config order, sorted by name).
    pub fn build(
        generation: u64,
        mode: PrefixMode,
        page_size: usize,
        listings: Vec<ServerListing>,
    ) -> Self {
        let mut skipped = Vec::new();
        // (server index, original name, raw object) for every admitted tool.
        let mut admitted: Vec<(usize, String, &RawValue)> = Vec::new();
        for (si, listing) in listings.iter().enumerate() {
            for def in &listing.tools {
                let name = match RawObject::parse(def.get()) {
                    Ok(obj) => obj.get_str("name").map(|n| n.into_owned()),
                    Err(_) => None,
                };
                let Some(name) = name.filter(|n| !n.is_empty()) else {
                    skipped.push((
                        listing.server.name.clone(),
                        "a tool definition has no name".to_owned(),
                    ));
                    continue;
                };
                if listing.server.filter.admits(&name) {
                    admitted.push((si, name, def));
                }
            }
        }
        let mut publishers: HashMap<&str, usize> = HashMap::new();
        for (_, name, _) in &admitted {
            *publishers.entry(name.as_str()).or_default() += 1;
        }
        let mut tools: Vec<ExposedTool> = Vec::with_capacity(admitted.len());
        let mut by_name: HashMap<String, usize> = HashMap::with_capacity(admitted.len());
        let mut collided: HashMap<String, Vec<(String, String, String)>> = HashMap::new();
        for (si, original, def) in &admitted {
            let server = &listings[*si].server.name;
            let shared = publishers.get(original.as_str()).copied().unwrap_or(0) > 1;
            let mut name = exposed_name(mode, server, original, shared);
            if let Some(&first) = by_name.get(&name) {
                let wanted = name.clone();
                name = with_hash_suffix(&wanted, server, original);
                let entry = collided.entry(wanted.clone()).or_insert_with(|| {
                    let f: &ExposedTool = &tools[first];
                    vec![(
                        listings[f.server].server.name.clone(),
                        f.original.clone(),
                        f.name.clone(),
                    )]
                });
                entry.push((server.clone(), original.clone(), name.clone()));
            }
            let mut definition = Vec::with_capacity(def.get().len() + 16);
            if let Ok(obj) = RawObject::parse(def.get()) {
                obj.write_replacing(&mut definition, "name", &name);
            }
            let definition = String::from_utf8(definition).unwrap_or_default();
            by_name.insert(name.clone(), tools.len());
            tools.push(ExposedTool {
                name,
                server: *si,
                original: original.clone(),
                definition,
            });
        }
        let mut collisions: Vec<Collision> = collided
            .into_iter()
            .map(|(name, tools)| Collision { name, tools })
            .collect();
        collisions.sort_by(|a, b| a.name.cmp(&b.name));
        let pages = build_pages(&tools, page_size.max(1));
        RegistrySnapshot {
            generation,
            servers: listings.into_iter().map(|l| l.server).collect(),
            tools,
            by_name,
            collisions,
            skipped,
            pages,
        }
    }

    pub fn tool(&self, exposed: &str) -> Option<&ExposedTool> {
        self.by_name.get(exposed).map(|&i| &self.tools[i])
    }

    /// The failed server whose prefix `exposed` carries (`<server>__…`), if any: a call to a tool
    /// of a server that never came up is answered with that server's error, not "unknown tool".
    pub fn failed_server_for(&self, exposed: &str) -> Option<&ServerEntry> {
        let (prefix, _) = exposed.split_once(super::naming::SEPARATOR)?;
        self.servers
            .iter()
            .find(|s| s.error.is_some() && super::naming::sanitize(&s.name) == prefix)
            .map(|s| &**s)
    }

    /// The `tools/list` result for `cursor` (`None` = first page); `None` when the cursor is
    /// not one this gateway issued.
    pub fn tools_page(&self, cursor: Option<&str>) -> Option<&str> {
        let index = match cursor {
            None => 0,
            Some(c) => decode_cursor(c)?,
        };
        self.pages.get(index).map(String::as_str)
    }
}

fn encode_cursor(page: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{page}"))
}

fn decode_cursor(cursor: &str) -> Option<usize> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    text.strip_prefix(CURSOR_PREFIX)?.parse().ok()
}

fn build_pages(tools: &[ExposedTool], page_size: usize) -> Vec<String> {
    let chunks: Vec<&[ExposedTool]> = if tools.is_empty() {
        vec![&[][..]]
    } else {
        tools.chunks(page_size).collect()
    };
    let last = chunks.len() - 1;
    chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| {
            let mut page = String::with_capacity(
                chunk.iter().map(|t| t.definition.len() + 1).sum::<usize>() + 64,
            );
            page.push_str(r#"{"tools":["#);
            for (j, t) in chunk.iter().enumerate() {
                if j > 0 {
                    page.push(',');
                }
                page.push_str(&t.definition);
            }
            page.push(']');
            if i < last {
                page.push_str(r#","nextCursor":""#);
                page.push_str(&encode_cursor(i + 1));
                page.push('"');
            }
            page.push('}');
            page
        })
        .collect()
}

#[cfg(test)]
mod tests;
