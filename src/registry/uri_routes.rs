//! Which server a resource URI belongs to, for `resources/read`, `subscribe`, `unsubscribe`
//! and resource completions.
//!
//! Owns: the routing rules, in order — `mcpgate://<server>/<rest>` naming a known server goes
//! to that server as `<rest>`; otherwise a URI (or template text) exactly one server listed
//! goes there unchanged; otherwise the servers whose templates match it. Must never: guess
//! between two servers; an ambiguous URI is refused naming both.

use std::collections::HashMap;

use super::catalog::Catalog;
use super::naming::{uri_authority, URI_SCHEME};
use super::uri_template::UriTemplate;

/// Where a URI goes: a server (index into `RegistrySnapshot::servers`) and the URI it knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UriRoute<'u> {
    pub server: usize,
    pub original: &'u str,
}

/// Why a URI has no route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unroutable {
    /// No server listed it and no template matches it.
    Unknown,
    /// These servers (indices, ascending) all listed it or have a template matching it.
    Ambiguous(Vec<usize>),
}

pub struct UriRoutes {
    /// Authority of `mcpgate://<authority>/` → server index.
    by_authority: HashMap<String, usize>,
    /// Listed resource URI or template text → servers that listed it (ascending, no repeats).
    listed: HashMap<String, Vec<usize>>,
    /// Every template that parsed, with its server and text.
    templates: Vec<(usize, String, UriTemplate)>,
}

impl UriRoutes {
    /// `servers` are the snapshot's server names in index order.
    pub fn build<'a>(
        servers: impl IntoIterator<Item = &'a str>,
        resources: &Catalog,
        templates: &Catalog,
    ) -> Self {
        let by_authority = servers
            .into_iter()
            .enumerate()
            .map(|(i, name)| (uri_authority(name), i))
            .collect();
        let mut listed: HashMap<String, Vec<usize>> = HashMap::new();
        for item in resources.items.iter().chain(&templates.items) {
            let servers = listed.entry(item.original.clone()).or_default();
            if !servers.contains(&item.server) {
                servers.push(item.server);
            }
        }
        let templates = templates
            .items
            .iter()
            .filter_map(|t| match UriTemplate::parse(&t.original) {
                Some(parsed) => Some((t.server, t.original.clone(), parsed)),
                None => {
                    tracing::debug!(template = %t.original, "not a URI template the gateway can match; reachable by its prefixed form only");
                    None
                }
            })
            .collect();
        UriRoutes {
            by_authority,
            listed,
            templates,
        }
    }

    /// The texts of `server`'s templates that match `uri` (a URI that server knows).
    pub fn templates_matching<'s>(
        &'s self,
        server: usize,
        uri: &'s str,
    ) -> impl Iterator<Item = &'s str> + 's {
        self.templates
            .iter()
            .filter(move |(s, _, t)| *s == server && t.matches(uri))
            .map(|(_, text, _)| text.as_str())
    }

    /// The server `uri` goes to, and the URI to send it.
    pub fn resolve<'u>(&self, uri: &'u str) -> Result<UriRoute<'u>, Unroutable> {
        if let Some((authority, rest)) =
            uri.strip_prefix(URI_SCHEME).and_then(|u| u.split_once('/'))
        {
            if let Some(&server) = self.by_authority.get(authority) {
                return Ok(UriRoute {
                    server,
                    original: rest,
                });
            }
        }
        let candidates = match self.listed.get(uri) {
            Some(servers) => servers.clone(),
            None => {
                let mut matched: Vec<usize> = self
                    .templates
                    .iter()
                    .filter(|(_, _, t)| t.matches(uri))
                    .map(|(server, _, _)| *server)
                    .collect();
                matched.sort_unstable();
                matched.dedup();
                matched
            }
        };
        match candidates.as_slice() {
            [] => Err(Unroutable::Unknown),
            [server] => Ok(UriRoute {
                server: *server,
                original: uri,
            }),
            _ => Err(Unroutable::Ambiguous(candidates)),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::value::RawValue;

    use super::*;
    use crate::config::PrefixMode;
    use crate::registry::catalog::{CatalogInput, CatalogKind};

    fn raw(items: &[&str]) -> Vec<Box<RawValue>> {
        items
            .iter()
            .map(|s| RawValue::from_string((*s).to_owned()).unwrap())
            .collect()
    }

    /// Servers `docs`, `files`, `my server` with overlapping resources and templates.
    fn routes() -> UriRoutes {
        let servers = ["docs", "files", "my server"];
        let resources = [
            raw(&[r#"{"uri":"demo://readme"}"#, r#"{"uri":"demo://shared"}"#]),
            raw(&[r#"{"uri":"demo://shared"}"#]),
            raw(&[]),
        ];
        let templates = [
            raw(&[r#"{"uriTemplate":"demo://items/{id}"}"#]),
            raw(&[
                r#"{"uriTemplate":"file:///{+path}"}"#,
                r#"{"uriTemplate":"demo://both/{x}"}"#,
            ]),
            raw(&[
                r#"{"uriTemplate":"demo://both/{y}"}"#,
                r#"{"uriTemplate":"broken{"}"#,
            ]),
        ];
        let catalog = |kind, lists: &[Vec<Box<RawValue>>]| {
            let inputs: Vec<CatalogInput<'_>> = servers
                .iter()
                .zip(lists)
                .map(|(server, definitions)| CatalogInput {
                    server,
                    filter: None,
                    switched_off: None,
                    definitions,
                })
                .collect();
            Catalog::build(kind, PrefixMode::Always, 10, &inputs)
        };
        UriRoutes::build(
            servers,
            &catalog(CatalogKind::Resources, &resources),
            &catalog(CatalogKind::ResourceTemplates, &templates),
        )
    }

    fn route(server: usize, original: &str) -> Result<UriRoute<'_>, Unroutable> {
        Ok(UriRoute { server, original })
    }

    #[test]
    fn prefixed_uris_go_to_the_named_server_with_the_rest() {
        let r = routes();
        assert_eq!(
            r.resolve("mcpgate://files/demo://shared"),
            route(1, "demo://shared")
        );
        // The prefix decides even for URIs the server never listed.
        assert_eq!(
            r.resolve("mcpgate://docs/demo://items/7"),
            route(0, "demo://items/7")
        );
        assert_eq!(r.resolve("mcpgate://my%20server/x://y"), route(2, "x://y"));
    }

    #[test]
    fn unprefixed_uris_go_to_the_one_server_that_listed_them() {
        let r = routes();
        assert_eq!(r.resolve("demo://readme"), route(0, "demo://readme"));
        assert_eq!(
            r.resolve("demo://shared"),
            Err(Unroutable::Ambiguous(vec![0, 1]))
        );
        // A template's own text routes like a listed URI (completion references use it).
        assert_eq!(r.resolve("file:///{+path}"), route(1, "file:///{+path}"));
    }

    #[test]
    fn unlisted_uris_go_to_the_one_server_whose_template_matches() {
        let r = routes();
        assert_eq!(r.resolve("demo://items/42"), route(0, "demo://items/42"));
        assert_eq!(
            r.resolve("file:///etc/hosts"),
            route(1, "file:///etc/hosts")
        );
        assert_eq!(
            r.resolve("demo://both/1"),
            Err(Unroutable::Ambiguous(vec![1, 2]))
        );
        assert_eq!(r.resolve("demo://items/4/2"), Err(Unroutable::Unknown));
        assert_eq!(r.resolve("demo://nothing"), Err(Unroutable::Unknown));
    }

    #[test]
    fn an_unknown_server_prefix_is_just_a_uri() {
        let r = routes();
        assert_eq!(
            r.resolve("mcpgate://nobody/demo://readme"),
            Err(Unroutable::Unknown)
        );
        assert_eq!(r.resolve("mcpgate://docs"), Err(Unroutable::Unknown));
    }
}
