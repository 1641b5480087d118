//! Resources, completion and logging through the gateway, against real servers: two
//! server-everything instances that publish the same resources (`alpha` over stdio, `beta` over
//! streamable HTTP) and a small SDK server of our own (`notes`, tests/fixtures) whose URIs no
//! other server lists and which reports what reached it.
//!
//! Checked: `resources/list` and `resources/templates/list` are the union of the servers' own
//! listings under `mcpgate://<server>/` URIs; reads, subscriptions and completions reach the
//! right server with the original URI or name and answer what the server answers directly;
//! unknown and ambiguous URIs are refused with -32602; `logging/setLevel` reaches the servers
//! that declared logging and answers `{}`.

mod common;

use std::collections::HashMap;

use common::raw_http::RawSession;
use common::*;
use rmcp::model::{
    ArgumentInfo, CompleteRequestParams, CompletionContext, ReadResourceRequestParams,
    ReadResourceResult, Reference, ResourceContents, SubscribeRequestParams,
    UnsubscribeRequestParams,
};
use rmcp::service::ServiceError;
use serde_json::{json, Value};

both_drivers!(
    resources_are_aggregated_and_routed,
    subscriptions_completion_and_logging_reach_the_right_server,
);

const DOC: &str = "demo://resource/static/document/architecture.md";
const TEXT_TEMPLATE: &str = "demo://resource/dynamic/text/{resourceId}";

/// The gateway in front of alpha, beta and notes, plus a direct client on each server.
struct Setup {
    gw: Gateway,
    _everything_http: HttpUpstream,
    alpha: Client,
    beta: Client,
    notes: Client,
}

fn notes_server_path() -> String {
    repo_root()
        .join("tests/fixtures/notes-server.mjs")
        .to_string_lossy()
        .into_owned()
}

async fn start(driver: &str) -> Setup {
    let everything_http = HttpUpstream::everything().await;
    let notes = notes_server_path();
    let mut cfg = config(&[
        ("alpha", everything_stdio()),
        ("beta", http_server(&everything_http.url)),
        ("notes", stdio_server("node", &[&notes])),
    ]);
    // Small pages, so the gateway's own cursors are followed too.
    cfg["tools_page_size"] = json!(3);
    let gw = Gateway::start(driver, &cfg).await;
    Setup {
        alpha: connect_everything_stdio().await,
        beta: connect_http(&everything_http.url).await,
        notes: connect_stdio("node", &[&notes]).await,
        gw,
        _everything_http: everything_http,
    }
}

impl Setup {
    /// The direct clients with their server names, in the gateway's server order.
    fn direct(&self) -> [(&'static str, &Client); 3] {
        [
            ("alpha", &self.alpha),
            ("beta", &self.beta),
            ("notes", &self.notes),
        ]
    }

    async fn close(self) {
        close(self.alpha).await;
        close(self.beta).await;
        close(self.notes).await;
    }
}

async fn read(client: &Client, uri: &str) -> Result<ReadResourceResult, ServiceError> {
    within(
        &format!("resources/read {uri}"),
        client.read_resource(ReadResourceRequestParams::new(uri)),
    )
    .await
}

async fn read_ok(client: &Client, uri: &str) -> ReadResourceResult {
    read(client, uri)
        .await
        .unwrap_or_else(|e| panic!("resources/read {uri} failed: {e}"))
}

/// The JSON-RPC error of a request that must fail with -32602 mentioning every `words`.
fn assert_invalid_params<T: std::fmt::Debug>(
    what: &str,
    result: Result<T, ServiceError>,
    words: &[&str],
) {
    match result {
        Err(ServiceError::McpError(e)) => {
            assert_eq!(e.code.0, -32602, "{what}: {e:?}");
            for word in words {
                assert!(e.message.contains(word), "{what}: {word:?} not in {e:?}");
            }
        }
        other => panic!("{what}: expected a -32602 error, got {other:?}"),
    }
}

/// The text of a read's single text content.
fn text_of_read(result: &ReadResourceResult) -> (&str, &str) {
    match result.contents.as_slice() {
        [ResourceContents::TextResourceContents { uri, text, .. }] => (uri, text),
        other => panic!("expected one text content, got {other:?}"),
    }
}

/// Every resource and every template `client` is offered (cursors followed), as JSON.
async fn listed(client: &Client) -> (Vec<Value>, Vec<Value>) {
    let resources = within("resources/list", client.list_all_resources())
        .await
        .expect("resources/list");
    let templates = within(
        "resources/templates/list",
        client.list_all_resource_templates(),
    )
    .await
    .expect("resources/templates/list");
    (as_json(&resources), as_json(&templates))
}

fn as_json<T: serde::Serialize>(items: &[T]) -> Vec<Value> {
    items
        .iter()
        .map(|i| serde_json::to_value(i).expect("serializable"))
        .collect()
}

/// `v` with its `key` member (a URI) under `mcpgate://<server>/`.
fn with_uri(mut v: Value, key: &str, server: &str) -> Value {
    let original = v[key].as_str().expect("uri member").to_owned();
    v[key] = Value::String(format!("mcpgate://{server}/{original}"));
    v
}

async fn resources_are_aggregated_and_routed(driver: &str) {
    let s = start(driver).await;
    let through = s.gw.client().await;
    let capabilities = &through.peer_info().expect("initialize result").capabilities;
    let resources = capabilities
        .resources
        .as_ref()
        .expect("resources capability");
    assert_eq!(
        (resources.subscribe, resources.list_changed),
        (Some(true), Some(true))
    );
    assert!(capabilities.completions.is_some() && capabilities.logging.is_some());

    // Lists: every server's items, in server order, under prefixed URIs, otherwise unchanged.
    let mut expected_resources = Vec::new();
    let mut expected_templates = Vec::new();
    for (server, client) in s.direct() {
        let (resources, templates) = listed(client).await;
        assert!(
            !resources.is_empty() && !templates.is_empty(),
            "{server} lists no resources or no templates"
        );
        expected_resources.extend(resources.into_iter().map(|r| with_uri(r, "uri", server)));
        expected_templates.extend(
            templates
                .into_iter()
                .map(|t| with_uri(t, "uriTemplate", server)),
        );
    }
    let (resources, templates) = listed(&through).await;
    assert_eq!(resources, expected_resources);
    assert_eq!(templates, expected_templates);

    // A prefixed URI reads exactly what the server returns for the original.
    for (server, client) in [("alpha", &s.alpha), ("beta", &s.beta)] {
        let direct = read_ok(client, DOC).await;
        let routed = read_ok(&through, &format!("mcpgate://{server}/{DOC}")).await;
        assert_eq!(routed, direct, "{server}: {DOC}");
    }

    // An expansion of a listed (prefixed) template reaches the template's server.
    let listed = templates
        .iter()
        .filter_map(|t| t["uriTemplate"].as_str())
        .find(|t| *t == format!("mcpgate://beta/{TEXT_TEMPLATE}"))
        .expect("beta's text template is listed");
    let expanded = listed.replace("{resourceId}", "7");
    let routed = read_ok(&through, &expanded).await;
    let direct = read_ok(&s.beta, &TEXT_TEMPLATE.replace("{resourceId}", "7")).await;
    let ((routed_uri, routed_text), (direct_uri, direct_text)) =
        (text_of_read(&routed), text_of_read(&direct));
    assert_eq!(routed_uri, direct_uri);
    // The text ends in the time it was made; everything before it must agree.
    let made = |t: &str| {
        t.split(" created at ")
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(made(routed_text), made(direct_text));
    assert!(routed_text.starts_with("Resource 7:"), "{routed_text}");

    // Unprefixed URIs: one that only notes lists, and an expansion of notes' template.
    for uri in ["note://only-here", "note://items/42"] {
        let routed = read_ok(&through, uri).await;
        assert_eq!(routed, read_ok(&s.notes, uri).await, "{uri}");
    }
    assert_eq!(
        text_of_read(&read_ok(&through, "note://items/42").await).1,
        "item 42"
    );

    // Listed by alpha and beta alike: refused, naming both; the prefix disambiguates.
    assert_invalid_params(
        "a URI two servers list",
        read(&through, DOC).await,
        &["Ambiguous", "alpha", "beta"],
    );
    for unknown in ["nothing://here", "mcpgate://nobody/note://only-here"] {
        assert_invalid_params(
            unknown,
            read(&through, unknown).await,
            &["Unknown resource", unknown],
        );
    }

    close(through).await;
    s.gw.assert_echo_works("alpha__echo").await;
    s.close().await;
}

/// The notes server's report: `(level, subscriptions)`, read through the gateway.
async fn notes_state(through: &Client) -> (Value, Value) {
    let state = read_ok(through, "note://state").await;
    let state: Value = serde_json::from_str(text_of_read(&state).1).expect("state is JSON");
    (state["level"].clone(), state["subscriptions"].clone())
}

// rmcp marks subscribe/unsubscribe deprecated for the 2026-07-28 revision only; the gateway
// serves the revisions that have them.
#[allow(deprecated)]
async fn subscriptions_completion_and_logging_reach_the_right_server(driver: &str) {
    let s = start(driver).await;
    let through = s.gw.client().await;

    // Subscriptions reach the server with its own URI, prefixed or not.
    for uri in ["note://only-here", "mcpgate://notes/note://items/7"] {
        within(
            "subscribe",
            through.subscribe(SubscribeRequestParams::new(uri)),
        )
        .await
        .unwrap_or_else(|e| panic!("subscribe {uri}: {e}"));
    }
    assert_eq!(
        notes_state(&through).await.1,
        json!(["note://items/7", "note://only-here"])
    );
    within(
        "unsubscribe",
        through.unsubscribe(UnsubscribeRequestParams::new("note://only-here")),
    )
    .await
    .expect("unsubscribe");
    assert_eq!(notes_state(&through).await.1, json!(["note://items/7"]));
    for server in ["alpha", "beta"] {
        let uri = format!("mcpgate://{server}/{DOC}");
        within(
            "subscribe",
            through.subscribe(SubscribeRequestParams::new(uri.as_str())),
        )
        .await
        .unwrap_or_else(|e| panic!("subscribe {uri}: {e}"));
        within(
            "unsubscribe",
            through.unsubscribe(UnsubscribeRequestParams::new(uri.as_str())),
        )
        .await
        .unwrap_or_else(|e| panic!("unsubscribe {uri}: {e}"));
    }
    let unknown = within(
        "subscribe unknown",
        through.subscribe(SubscribeRequestParams::new("nothing://here")),
    )
    .await;
    assert_invalid_params(
        "subscribe to an unknown URI",
        unknown,
        &["Unknown resource"],
    );

    // Completion of a prompt argument (with context) and of a template variable.
    let team = HashMap::from([("department".to_owned(), "Engineering".to_owned())]);
    let prompt_args = |name: &str| {
        CompleteRequestParams::new(Reference::for_prompt(name), ArgumentInfo::new("name", "A"))
            .with_context(CompletionContext::with_arguments(team.clone()))
    };
    let routed = within(
        "complete prompt",
        through.complete(prompt_args("alpha__completable-prompt")),
    )
    .await
    .expect("prompt completion through the gateway");
    let direct = within(
        "direct complete prompt",
        s.alpha.complete(prompt_args("completable-prompt")),
    )
    .await
    .expect("direct prompt completion");
    assert_eq!(routed, direct);
    assert_eq!(routed.completion.values, ["Alice"]);

    let template_arg = |uri: &str| {
        CompleteRequestParams::new(
            Reference::for_resource(uri),
            ArgumentInfo::new("resourceId", "3"),
        )
    };
    let routed = within(
        "complete resource",
        through.complete(template_arg(&format!("mcpgate://beta/{TEXT_TEMPLATE}"))),
    )
    .await
    .expect("template completion through the gateway");
    let direct = within(
        "direct complete resource",
        s.beta.complete(template_arg(TEXT_TEMPLATE)),
    )
    .await
    .expect("direct template completion");
    assert_eq!(routed, direct);
    assert_eq!(routed.completion.values, ["3"]);

    let unknown = within(
        "complete unknown prompt",
        through.complete(prompt_args("alpha__no-such-prompt")),
    )
    .await;
    assert_invalid_params(
        "completion for an unknown prompt",
        unknown,
        &["Unknown prompt", "alpha__no-such-prompt"],
    );
    let ambiguous = within(
        "complete ambiguous template",
        through.complete(template_arg(TEXT_TEMPLATE)),
    )
    .await;
    assert_invalid_params(
        "completion for a template two servers list",
        ambiguous,
        &["Ambiguous", "alpha", "beta"],
    );

    // logging/setLevel answers exactly {} and reaches the servers that declared logging.
    assert_eq!(notes_state(&through).await.0, Value::Null);
    let raw = RawSession::open(&s.gw.addr()).await;
    let reply = raw
        .request("logging/setLevel", json!({ "level": "warning" }))
        .await;
    assert_eq!(reply["result"], json!({}), "{reply}");
    assert_eq!(notes_state(&through).await.0, json!("warning"));
    let refused = raw.request("logging/setLevel", json!({})).await;
    assert_eq!(refused["error"]["code"], -32602, "{refused}");

    close(through).await;
    s.close().await;
}
