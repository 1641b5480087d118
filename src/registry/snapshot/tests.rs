use super::*;
use crate::registry::DisabledTools;
use crate::upstream::http::HttpUpstream;

fn server(name: &str, allow: &[&str], disabled: &[&str], error: Option<&str>) -> Arc<ServerEntry> {
    let upstream = match HttpUpstream::new(name, "http://127.0.0.1:9/mcp", Vec::new(), 1 << 20) {
        Ok(u) => Upstream::Http(Arc::new(u)),
        Err(e) => panic!("{e}"),
    };
    Arc::new(ServerEntry {
        name: name.to_owned(),
        upstream,
        timeout: Duration::from_secs(1),
        filter: ToolFilter {
            allow: allow.iter().map(|s| s.to_string()).collect(),
            disabled: disabled.iter().map(|s| s.to_string()).collect(),
        },
        error: error.map(str::to_owned),
        health: Default::default(),
        policy: Default::default(),
        gate: Default::default(),
    })
}

fn tools(names: &[&str]) -> Vec<Box<RawValue>> {
    names
        .iter()
        .map(|n| {
            RawValue::from_string(format!(
                r#"{{"name":"{n}","inputSchema":{{"type":"object"}},"_meta":{{"k":1.50}}}}"#
            ))
            .unwrap()
        })
        .collect()
}

fn names(s: &RegistrySnapshot) -> Vec<&str> {
    s.tools.items.iter().map(|t| t.name.as_str()).collect()
}

/// Server `a` with tools `echo` and `alpha`, server `b` with `echo` and `beta`.
fn two_servers_sharing_echo() -> Vec<ServerListing> {
    vec![
        ServerListing {
            server: server("a", &["*"], &[], None),
            items: ServerItems {
                tools: tools(&["echo", "alpha"]),
                ..ServerItems::default()
            },
        },
        ServerListing {
            server: server("b", &["*"], &[], None),
            items: ServerItems {
                tools: tools(&["echo", "beta"]),
                ..ServerItems::default()
            },
        },
    ]
}

#[test]
fn filters_and_prefixes() {
    let snap = RegistrySnapshot::build(
        1,
        PrefixMode::Always,
        100,
        vec![
            ServerListing {
                server: server("a", &["*"], &["secret"], None),
                items: ServerItems {
                    tools: tools(&["echo", "secret"]),
                    ..ServerItems::default()
                },
            },
            ServerListing {
                server: server("b", &["echo"], &[], None),
                items: ServerItems {
                    tools: tools(&["echo", "other"]),
                    ..ServerItems::default()
                },
            },
        ],
    );
    assert_eq!(names(&snap), ["a__echo", "b__echo"]);
    let t = snap.tool("b__echo").unwrap();
    assert_eq!((t.server, t.original.as_str()), (1, "echo"));
    // Only `name` changed; other members are byte for byte.
    assert_eq!(
        t.definition,
        r#"{"name":"b__echo","inputSchema":{"type":"object"},"_meta":{"k":1.50}}"#
    );
    assert!(snap.tools.collisions.is_empty());
}

#[test]
fn on_conflict_prefixes_only_shared_names() {
    let snap = RegistrySnapshot::build(1, PrefixMode::OnConflict, 100, two_servers_sharing_echo());
    assert_eq!(names(&snap), ["a__echo", "alpha", "b__echo", "beta"]);
}

#[test]
fn never_mode_collisions_are_reported_and_both_kept() {
    let snap = RegistrySnapshot::build(
        1,
        PrefixMode::Never,
        100,
        vec![
            ServerListing {
                server: server("a", &["*"], &[], None),
                items: ServerItems {
                    tools: tools(&["echo"]),
                    ..ServerItems::default()
                },
            },
            ServerListing {
                server: server("b", &["*"], &[], None),
                items: ServerItems {
                    tools: tools(&["echo"]),
                    ..ServerItems::default()
                },
            },
        ],
    );
    assert_eq!(snap.tools.items.len(), 2);
    assert_eq!(snap.tools.items[0].name, "echo");
    assert!(
        snap.tools.items[1].name.starts_with("echo_")
            && snap.tools.items[1].name.len() == "echo_".len() + 8
    );
    assert_eq!(snap.tools.collisions.len(), 1);
    assert_eq!(snap.tools.collisions[0].name, "echo");
    assert_eq!(snap.tools.collisions[0].items.len(), 2);
    assert_eq!(snap.tool(&snap.tools.items[1].name).unwrap().server, 1);
}

#[test]
fn pages_chain_through_cursors_and_refuse_foreign_ones() {
    let many: Vec<String> = (0..7).map(|i| format!("t{i}")).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let snap = RegistrySnapshot::build(
        1,
        PrefixMode::Always,
        3,
        vec![ServerListing {
            server: server("s", &["*"], &[], None),
            items: ServerItems {
                tools: tools(&refs),
                ..ServerItems::default()
            },
        }],
    );
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page: serde_json::Value =
            serde_json::from_str(snap.tools_page(cursor.as_deref()).unwrap()).unwrap();
        for t in page["tools"].as_array().unwrap() {
            seen.push(t["name"].as_str().unwrap().to_owned());
        }
        match page.get("nextCursor") {
            Some(c) => cursor = Some(c.as_str().unwrap().to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7);
    assert!(snap.tools_page(Some("bm90LWEtY3Vyc29y")).is_none());
    assert!(snap.tools_page(Some("%%%")).is_none());
}

#[test]
fn empty_registry_lists_no_tools() {
    let snap = RegistrySnapshot::build(1, PrefixMode::Always, 10, Vec::new());
    assert_eq!(snap.tools_page(None), Some(r#"{"tools":[]}"#));
}

#[test]
fn nameless_definitions_are_skipped_and_failed_servers_found_by_prefix() {
    let bad = vec![RawValue::from_string(r#"{"description":"no name"}"#.to_owned()).unwrap()];
    let snap = RegistrySnapshot::build(
        1,
        PrefixMode::Always,
        10,
        vec![
            ServerListing {
                server: server("ok", &["*"], &[], None),
                items: ServerItems {
                    tools: bad,
                    ..ServerItems::default()
                },
            },
            ServerListing {
                server: server("down", &["*"], &[], Some("crashed")),
                items: ServerItems {
                    tools: Vec::new(),
                    ..ServerItems::default()
                },
            },
        ],
    );
    assert!(snap.tools.items.is_empty());
    assert_eq!(snap.tools.skipped.len(), 1);
    assert_eq!(
        snap.failed_server_for("down__anything")
            .map(|s| s.name.as_str()),
        Some("down")
    );
    assert!(snap.failed_server_for("ok__anything").is_none());
    assert!(snap.failed_server_for("plain").is_none());
}

#[test]
fn prompts_get_their_own_catalog_and_cursors() {
    let prompts = vec![
        RawValue::from_string(r#"{"name":"greet","arguments":[{"name":"who"}]}"#.to_owned())
            .unwrap(),
        RawValue::from_string(r#"{"name":"bye"}"#.to_owned()).unwrap(),
    ];
    let snap = RegistrySnapshot::build(
        1,
        PrefixMode::Always,
        1,
        vec![ServerListing {
            server: server("s", &["t1", "t2"], &[], None),
            items: ServerItems {
                tools: tools(&["t1", "t2"]),
                prompts,
                ..ServerItems::default()
            },
        }],
    );
    // The tool allow-list does not filter prompts.
    let names: Vec<&str> = snap.prompts.items.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["s__greet", "s__bye"]);
    assert_eq!(snap.prompts.get("s__greet").unwrap().original, "greet");
    let first: serde_json::Value = serde_json::from_str(snap.prompts.page(None).unwrap()).unwrap();
    assert_eq!(first["prompts"][0]["arguments"][0]["name"], "who");
    let prompt_cursor = first["nextCursor"].as_str().unwrap().to_owned();
    let tools_first: serde_json::Value =
        serde_json::from_str(snap.tools_page(None).unwrap()).unwrap();
    let tool_cursor = tools_first["nextCursor"].as_str().unwrap().to_owned();
    assert!(snap.prompts.page(Some(&prompt_cursor)).is_some());
    assert!(
        snap.prompts.page(Some(&tool_cursor)).is_none(),
        "a tools cursor is not a prompts cursor"
    );
    assert!(snap.tools.page(Some(&prompt_cursor)).is_none());
}

fn raw(items: &[&str]) -> Vec<Box<RawValue>> {
    items
        .iter()
        .map(|s| RawValue::from_string((*s).to_owned()).unwrap())
        .collect()
}

fn with_resources(name: &str, resources: &[&str], templates: &[&str]) -> ServerListing {
    ServerListing {
        server: server(name, &["*"], &[], None),
        items: ServerItems {
            resources: raw(resources),
            resource_templates: raw(templates),
            ..ServerItems::default()
        },
    }
}

fn uris(catalog: &Catalog) -> Vec<&str> {
    catalog.items.iter().map(|i| i.name.as_str()).collect()
}

#[test]
fn resources_and_templates_are_exposed_under_prefixed_uris() {
    let snap = RegistrySnapshot::build(
        1,
        PrefixMode::Always,
        10,
        vec![
            with_resources(
                "a",
                &[r#"{"uri":"file:///x","name":"x","_meta":{"k":1.50}}"#],
                &[r#"{"uriTemplate":"file:///{path}","name":"files"}"#],
            ),
            with_resources("b", &[r#"{"name":"x","uri":"file:///x"}"#], &[]),
        ],
    );
    assert_eq!(
        uris(&snap.resources),
        ["mcpgate://a/file:///x", "mcpgate://b/file:///x"]
    );
    // Only the URI changed; every other member byte for byte, in the list page too.
    assert_eq!(
        snap.resources.items[0].definition,
        r#"{"uri":"mcpgate://a/file:///x","name":"x","_meta":{"k":1.50}}"#
    );
    assert_eq!(
        snap.resource_templates.page(None),
        Some(
            r#"{"resourceTemplates":[{"uriTemplate":"mcpgate://a/file:///{path}","name":"files"}]}"#
        )
    );
    assert!(snap.resources.collisions.is_empty());
}

#[test]
fn on_conflict_prefixes_only_shared_uris_and_never_keeps_duplicates() {
    let listings = |snap_mode| {
        RegistrySnapshot::build(
            1,
            snap_mode,
            10,
            vec![
                with_resources(
                    "a",
                    &[r#"{"uri":"mem://shared"}"#, r#"{"uri":"mem://only-a"}"#],
                    &[],
                ),
                with_resources("b", &[r#"{"uri":"mem://shared"}"#], &[]),
            ],
        )
    };
    let snap = listings(PrefixMode::OnConflict);
    assert_eq!(
        uris(&snap.resources),
        [
            "mcpgate://a/mem://shared",
            "mem://only-a",
            "mcpgate://b/mem://shared"
        ]
    );
    let snap = listings(PrefixMode::Never);
    assert_eq!(
        uris(&snap.resources),
        ["mem://shared", "mem://only-a", "mem://shared"]
    );
    // URIs cannot be renamed: both are listed, the collision is reported.
    assert_eq!(snap.resources.collisions.len(), 1);
    assert_eq!(snap.resources.collisions[0].name, "mem://shared");
    assert_eq!(
        snap.uri_routes.resolve("mem://shared"),
        Err(crate::registry::Unroutable::Ambiguous(vec![0, 1]))
    );
}

#[test]
fn resource_cursors_are_their_own() {
    let snap = RegistrySnapshot::build(
        1,
        PrefixMode::Always,
        1,
        vec![with_resources(
            "a",
            &[r#"{"uri":"mem://1"}"#, r#"{"uri":"mem://2"}"#],
            &[
                r#"{"uriTemplate":"mem://{n}"}"#,
                r#"{"uriTemplate":"mem://x/{n}"}"#,
            ],
        )],
    );
    let first: serde_json::Value =
        serde_json::from_str(snap.resources.page(None).unwrap()).unwrap();
    let cursor = first["nextCursor"].as_str().unwrap().to_owned();
    let second: serde_json::Value =
        serde_json::from_str(snap.resources.page(Some(&cursor)).unwrap()).unwrap();
    assert_eq!(second["resources"][0]["uri"], "mcpgate://a/mem://2");
    assert!(second.get("nextCursor").is_none());
    assert!(snap.resource_templates.page(Some(&cursor)).is_none());
}

#[test]
fn tools_switched_off_leave_lists_and_lookups_but_keep_every_name() {
    let listings = two_servers_sharing_echo;
    let mut off = DisabledTools::default();
    off.set("a", "echo", false);
    off.set("b", "beta", false);
    let snap = RegistrySnapshot::build_with(1, PrefixMode::OnConflict, 1, listings(), &off);
    // b's echo keeps its prefix: a's echo still holds the shared name, switched off or not.
    assert_eq!(names(&snap), ["alpha", "b__echo"]);
    let switched: Vec<&str> = snap
        .tools
        .switched_off
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(switched, ["a__echo", "beta"]);
    assert!(snap.tool("a__echo").is_none() && snap.tool("beta").is_none());
    let beta = snap.tools.switched_off_item("beta").unwrap();
    assert_eq!((beta.server, beta.original.as_str()), (1, "beta"));
    // The lists page past nothing switched off (page size 1: two pages).
    let first = snap.tools_page(None).unwrap();
    assert!(first.contains(r#""name":"alpha""#) && first.contains("nextCursor"));
    assert!(!first.contains("a__echo"));
    // Back on: the same names as if never switched off.
    let snap = RegistrySnapshot::build_with(
        2,
        PrefixMode::OnConflict,
        1,
        listings(),
        &DisabledTools::default(),
    );
    assert_eq!(names(&snap), ["a__echo", "alpha", "b__echo", "beta"]);
    assert!(snap.tools.switched_off.is_empty());
}
