//! The admin API on its own listener, against the real gateway over real sockets:
//! - every endpoint answers with what the gateway serves; 401 without the admin token or
//!   with a wrong one; 404, 405, 400 and 413 with a JSON error; no token or key value in any
//!   reply or in a trace-level log;
//! - a tool disabled through the API leaves an rmcp client's `tools/list` and is refused at
//!   once (clients hear `tools/list_changed`), stays disabled across a config reload, and
//!   comes back when enabled again;
//! - reconnecting a stdio server restarts its process (a new pid) and it serves again, and
//!   HTTP and legacy SSE servers reconnect too;
//! - without a token (loopback only), browsers are kept out.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::admin::{assert_error, json_of, Admin};
use common::*;
use rmcp::model::{ClientCapabilities, ClientConfig, Implementation};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{json, Value};
use tokio::sync::Notify;

const ADMIN_TOKEN: &str = "admin-token-for-tests-0123456789";
const ENG_KEY: &str = "eng-key-value-for-tests-0123456789";
const NARROW_KEY: &str = "narrow-key-value-for-tests-012345";
const UPSTREAM_SECRET: &str = "upstream-env-secret-0123456789";

/// The admin block with the token from `${ADMIN_TOKEN}`, on a free loopback port.
fn admin_block() -> Value {
    json!({ "listen": "127.0.0.1:0", "token": "${ADMIN_TOKEN}" })
}

fn with_admin(mut cfg: Value) -> Value {
    cfg["admin"] = admin_block();
    cfg
}

/// Starts the gateway with `ADMIN_TOKEN` in its environment; returns it and its admin API.
async fn start(driver: &str, cfg: &Value, log: &str) -> (Gateway, Admin) {
    let mut gw = Gateway::start_with_env(
        driver,
        cfg,
        &[
            ("ADMIN_TOKEN", ADMIN_TOKEN),
            ("UPSTREAM_SECRET", UPSTREAM_SECRET),
            ("MCPGATE_LOG", log),
        ],
    )
    .await;
    let admin = Admin::of(&mut gw, Some(ADMIN_TOKEN));
    (gw, admin)
}

/// A mock stdio server carrying a secret in its environment, a key with a team, a customer, a
/// group and limits, and a key that may only `add`.
fn governed_config() -> Value {
    let mut mock = mock_stdio(&["--tools", "0"]);
    mock["env"] = json!({ "MOCK_SECRET": "${UPSTREAM_SECRET}" });
    with_admin(json!({
        "tool_prefix": "always",
        "mcpServers": { "mock": mock },
        "virtual_keys": [
            { "name": "eng", "key": ENG_KEY, "team": "platform", "groups": ["adders"],
              "grants": { "mock": ["echo"] }, "rate_limit": { "per_second": 100, "burst": 200 } },
            { "name": "narrow", "key": NARROW_KEY, "grants": { "mock": ["add"] } }
        ],
        "groups": { "adders": { "mock": ["add"] } },
        "teams": { "platform": { "customer": "acme" } },
        "customers": { "acme": { "budget": { "calls_per_day": 100 } } }
    }))
}

/// The tools' names, sorted.
fn sorted(tools: &[rmcp::model::Tool]) -> Vec<String> {
    let mut names = names(tools);
    names.sort();
    names
}

/// No reply may carry the admin token or a key's (or an upstream's secret) value.
fn assert_no_secret(what: &str, text: &str) {
    for secret in [ADMIN_TOKEN, ENG_KEY, NARROW_KEY, UPSTREAM_SECRET] {
        assert!(!text.contains(secret), "{what} shows a secret: {text}");
    }
}

both_drivers!(every_endpoint_answers_and_guards_its_token);

async fn every_endpoint_answers_and_guards_its_token(driver: &str) {
    let (gw, admin) = start(driver, &governed_config(), "trace").await;

    // 401 without the token and with a wrong one, on every route (known or not).
    let anonymous = admin.with_token(None);
    let wrong = admin.with_token(Some("not-the-admin-token-0123456789"));
    for path in ["/api/servers", "/api/stats", "/metrics", "/api/nope"] {
        let r = anonymous.get(path).await;
        assert_error(&r, 401, "admin token");
        assert_eq!(
            r.header("www-authenticate"),
            Some(r#"Bearer realm="mcpgate-admin""#)
        );
        let r = wrong.get(path).await;
        assert_error(&r, 401, "not valid");
        assert!(r
            .header("www-authenticate")
            .is_some_and(|v| v.contains(r#"error="invalid_token""#)));
    }
    let r = wrong
        .put_json("/api/tools/mock__echo", &json!({"enabled": false}))
        .await;
    assert_eq!(r.status, 401, "a wrong token changes nothing");

    // Two calls through the key, so its usage shows them.
    let eng = connect_http_with_key(&gw.url, ENG_KEY).await;
    for _ in 0..2 {
        call_ok(&eng, "mock__echo", json!({"message": "hi"})).await;
    }

    let mut replies = Vec::new();
    let servers = admin.get_json("/api/servers").await;
    replies.push(servers.to_string());
    let mock = &servers["servers"][0];
    assert_eq!(mock["name"], "mock");
    assert_eq!(mock["transport"], "stdio");
    assert_eq!(mock["state"], "healthy");
    assert_eq!(mock["on_failure"], "error");
    assert_eq!(mock["tools"], 3);
    assert_eq!(mock["tools_disabled"], 0);
    assert!(mock["pid"].as_u64().is_some_and(|p| p > 0), "{mock}");
    assert!(mock["since"].as_str().is_some_and(|s| s.ends_with('Z')));

    let tools = admin.get_json("/api/tools").await;
    replies.push(tools.to_string());
    assert_eq!(
        tools["tools"],
        json!([
            {"name": "mock__add", "server": "mock", "original": "add", "enabled": true},
            {"name": "mock__echo", "server": "mock", "original": "echo", "enabled": true},
            {"name": "mock__sleep", "server": "mock", "original": "sleep", "enabled": true},
        ])
    );

    let keys = admin.get_json("/api/keys").await;
    replies.push(keys.to_string());
    assert_eq!(keys["anonymous"], false);
    let eng_shown = &keys["keys"][0];
    assert_eq!(eng_shown["name"], "eng");
    assert_eq!(eng_shown["team"], "platform");
    assert_eq!(eng_shown["customer"], "acme");
    assert_eq!(eng_shown["groups"], json!(["adders"]));
    assert_eq!(eng_shown["grants"], json!({"mock": ["echo"]}));
    assert_eq!(eng_shown["limits"]["rate_limit"]["per_second"], 100.0);
    let accounts = eng_shown["usage"]["accounts"].as_array().expect("accounts");
    let kinds: Vec<&str> = accounts.iter().filter_map(|a| a["kind"].as_str()).collect();
    assert_eq!(kinds, ["key", "team", "customer"]);
    assert_eq!(accounts[0]["in_flight"], 0);
    assert_eq!(accounts[0]["rate"]["burst"], 200);
    // The customer's budget (under 64 units per core: counted exactly) holds the two calls.
    assert_eq!(
        accounts[2]["budgets"],
        json!([{"period": "day", "limit": 100.0, "used": 2.0}])
    );
    assert_eq!(keys["keys"][1]["name"], "narrow");

    let stats = admin.get_json("/api/stats").await;
    replies.push(stats.to_string());
    let driver_name = if driver == "uring" {
        "io_uring"
    } else {
        "epoll"
    };
    assert_eq!(stats["io_driver"], driver_name);
    assert_eq!(stats["workers"], 2);
    assert_eq!(stats["servers"]["total"], 1);
    assert_eq!(stats["servers"]["by_state"]["healthy"], 1);
    assert_eq!(stats["tools"], json!({"exposed": 3, "disabled": 0}));
    assert!(stats["uptime_secs"].is_u64());
    assert!(stats["internal_time_ns"]["calls"].is_u64());
    assert_eq!(stats["config_reloads"], json!({"applied": 0, "refused": 0}));

    // The audit route reads the audit log's SQLite store (on by default): the two echo calls
    // above, by key name. The log thread writes in batches, so the test polls until they land.
    let admin_ref = &admin;
    let records = poll_until("the two echo calls in GET /api/audit", || async move {
        let page = admin_ref
            .get_json("/api/audit?limit=5&tool=echo&key=eng&outcome=ok")
            .await;
        let records = page["records"].as_array().cloned().unwrap_or_default();
        (records.len() >= 2).then_some(records)
    })
    .await;
    assert_eq!(records.len(), 2, "{records:?}");
    for r in &records {
        assert_eq!(
            (&r["server"], &r["tool"], &r["key"], &r["method"]),
            (
                &json!("mock"),
                &json!("echo"),
                &json!("eng"),
                &json!("tools/call")
            ),
            "{r}"
        );
        replies.push(r.to_string());
    }
    assert_error(&admin.get("/api/audit?limit=zero").await, 400, "limit");
    assert_error(&admin.get("/api/audit?sever=x").await, 400, "sever");

    // 404: unknown routes, tools and servers.
    assert_error(&admin.get("/api/nope").await, 404, "no such route");
    assert_error(&admin.get("/").await, 404, "no such route");
    let r = admin
        .put_json("/api/tools/mock__nope", &json!({"enabled": false}))
        .await;
    assert_error(&r, 404, "no tool named \"mock__nope\"");
    assert_error(
        &admin.post("/api/servers/nope/reconnect").await,
        404,
        "no server named \"nope\"",
    );

    // 405 with Allow.
    let r = admin.post("/api/tools").await;
    assert_error(&r, 405, "GET");
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    let r = admin.get("/api/tools/mock__echo").await;
    assert_error(&r, 405, "PUT");
    assert_eq!(r.header("allow"), Some("PUT"));
    assert_eq!(admin.get("/api/servers/mock/reconnect").await.status, 405);
    assert_eq!(admin.send("DELETE", "/metrics", &[], b"").await.status, 405);

    // 400: bodies that are not `{"enabled": bool}`, and paths that do not decode.
    for body in [
        &b"not json"[..],
        br#"{"enabled": "no"}"#,
        br#"{"enabled": true, "extra": 1}"#,
        br#"{}"#,
    ] {
        let r = admin.send("PUT", "/api/tools/mock__echo", &[], body).await;
        assert_error(&r, 400, r#"{"enabled": true|false}"#);
    }
    assert_error(
        &admin.post("/api/servers/%ff/reconnect").await,
        400,
        "percent-encoded",
    );

    // 413: a body over the API's limit.
    let big = vec![b' '; 100 * 1024];
    let r = admin.send("PUT", "/api/tools/mock__echo", &[], &big).await;
    assert_error(&r, 413, "larger than");

    // Nothing changed by all that: every tool is still served.
    assert_eq!(sorted(&list_tools(&eng).await), ["mock__add", "mock__echo"]);
    let metrics = admin.metrics().await;
    replies.push(metrics);
    for reply in &replies {
        assert_no_secret("an admin reply", reply);
    }
    close(eng).await;
    // The log ran at trace level: the admin requests are in it, the secrets are not.
    let log = gw.proc.stderr_text();
    assert!(log.contains("admin request"), "{}", gw.proc.log_tail());
    assert_no_secret("the trace-level log", &log);
}

/// A client that counts the `notifications/tools/list_changed` it hears.
#[derive(Clone, Default)]
struct ListWatcher {
    changes: Arc<AtomicUsize>,
    changed: Arc<Notify>,
}

impl ClientHandler for ListWatcher {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("mcpgate-admin-test", "1"),
        )
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.changes.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_one();
    }
}

impl ListWatcher {
    /// Waits until more than `seen` changes were heard.
    async fn wait_beyond(&self, seen: usize) {
        within("notifications/tools/list_changed", async {
            while self.changes.load(Ordering::SeqCst) <= seen {
                self.changed.notified().await;
            }
        })
        .await
    }
}

async fn connect_watching(
    url: &str,
    key: &str,
) -> (RunningService<RoleClient, ListWatcher>, ListWatcher) {
    let watcher = ListWatcher::default();
    let config = StreamableHttpClientTransportConfig::with_uri(url).auth_header(key);
    let client = within(
        "rmcp initialize",
        watcher.clone().serve(http_transport(config)),
    )
    .await
    .expect("initialize through the gateway");
    (client, watcher)
}

both_drivers!(a_disabled_tool_is_gone_at_once_until_enabled_even_across_reloads);

async fn a_disabled_tool_is_gone_at_once_until_enabled_even_across_reloads(driver: &str) {
    let cfg = governed_config();
    let (mut gw, admin) = start(driver, &cfg, "info").await;
    let (client, watcher) = connect_watching(&gw.url, ENG_KEY).await;
    let narrow = connect_http_with_key(&gw.url, NARROW_KEY).await;
    // Both clients' GET streams are open: they hear what is announced from now on.
    admin.wait_for_streams(2).await;
    let listed = within("tools/list", client.list_all_tools())
        .await
        .expect("list");
    assert_eq!(sorted(&listed), ["mock__add", "mock__echo"]);

    let seen = watcher.changes.load(Ordering::SeqCst);
    let switched = admin.set_tool("mock__echo", false).await;
    assert_eq!(
        switched,
        json!({"name": "mock__echo", "server": "mock", "original": "echo", "enabled": false, "changed": true})
    );
    // The very next requests: not listed, refused, by name, to a caller granted the tool...
    let listed = within("tools/list", client.list_all_tools())
        .await
        .expect("list");
    assert_eq!(names(&listed), ["mock__add"]);
    let refused = call_with(&client, "mock__echo", json!({"message": "x"})).await;
    let error = mcp_error("a disabled tool", refused);
    assert_eq!(error.code.0, -32602, "{error:?}");
    assert_eq!(
        error.message,
        "Disabled tool: mock__echo is disabled by the gateway's administrator"
    );
    // ...and as unknown to a caller that was never granted it.
    let error = mcp_error(
        "a disabled tool, ungranted",
        call(&narrow, "mock__echo", json!({"message": "x"})).await,
    );
    assert_eq!(error.message, "Unknown tool: mock__echo");
    watcher.wait_beyond(seen).await;
    let tools = admin.get_json("/api/tools").await;
    assert!(
        tools["tools"].as_array().expect("tools").contains(
            &json!({"name": "mock__echo", "server": "mock", "original": "echo", "enabled": false})
        ),
        "{tools}"
    );
    assert_eq!(admin.server("mock").await["tools_disabled"], 1);
    // Disabling it again changes nothing.
    assert_eq!(admin.set_tool("mock__echo", false).await["changed"], false);

    // A reload (another server added) keeps it disabled.
    let mut reloaded = cfg.clone();
    reloaded["mcpServers"]["other"] = mock_stdio(&[]);
    gw.reload_with(&reloaded, "config reload applied");
    let listed = within("tools/list", client.list_all_tools())
        .await
        .expect("list");
    assert!(
        !names(&listed).contains(&"mock__echo".to_string()),
        "{listed:?}"
    );
    let error = mcp_error(
        "a disabled tool after a reload",
        call_with(&client, "mock__echo", json!({"message": "x"})).await,
    );
    assert!(error.message.contains("disabled"), "{error:?}");

    // Enabled again: listed and served at once, and announced.
    let seen = watcher.changes.load(Ordering::SeqCst);
    assert_eq!(admin.set_tool("mock__echo", true).await["changed"], true);
    let listed = within("tools/list", client.list_all_tools())
        .await
        .expect("list");
    assert!(
        names(&listed).contains(&"mock__echo".to_string()),
        "{listed:?}"
    );
    let echoed = call_with(&client, "mock__echo", json!({"message": "back"}))
        .await
        .expect("mock__echo after enabling it");
    assert!(text_of(&echoed).contains("back"));
    watcher.wait_beyond(seen).await;
    close(narrow).await;
    let _ = client.cancel().await;
}

/// `tools/call` on a client with any handler.
async fn call_with<H: ClientHandler>(
    client: &RunningService<RoleClient, H>,
    name: &str,
    arguments: Value,
) -> Result<rmcp::model::CallToolResult, rmcp::service::ServiceError> {
    let params = rmcp::model::CallToolRequestParams::new(name.to_string())
        .with_arguments(arguments.as_object().cloned().unwrap_or_default());
    within(&format!("tools/call {name}"), client.call_tool(params)).await
}

both_drivers!(reconnect_restarts_stdio_and_reconnects_http_and_sse);

async fn reconnect_restarts_stdio_and_reconnects_http_and_sse(driver: &str) {
    let remote = HttpUpstream::mock(&[]).await;
    let legacy = SseEverything::start().await;
    let cfg = with_admin(config(&[
        ("mock", mock_stdio(&[])),
        ("remote", http_server(&remote.url)),
        ("legacy", sse_server(&legacy.url)),
    ]));
    let (mut gw, admin) = start(driver, &cfg, "info").await;
    let client = gw.client().await;
    let before = admin.server("mock").await["pid"]
        .as_u64()
        .expect("the stdio server's pid");

    for server in ["mock", "remote", "legacy"] {
        let mark = gw.proc.mark();
        let r = admin
            .post(&format!("/api/servers/{server}/reconnect"))
            .await;
        assert_eq!(r.status, 202, "{}", r.body_text());
        assert_eq!(
            json_of(&r),
            json!({"server": server, "state": "starting", "reconnecting": true})
        );
        let done = format!("server={server}");
        gw.proc.wait_stderr_line_after(
            mark,
            |l| l.contains("reconnected on request") && l.contains(&done),
            READY_TIMEOUT,
        );
        assert_eq!(admin.server(server).await["state"], "healthy");
    }

    // A new process, and the old one is gone (reaped by the gateway).
    let after = admin.server("mock").await["pid"]
        .as_u64()
        .expect("the new pid");
    assert_ne!(before, after, "the stdio server was not restarted");
    // SAFETY: signal 0 only checks whether the process exists.
    let alive = unsafe { libc::kill(before as i32, 0) } == 0;
    assert!(!alive, "the old stdio server {before} still runs");
    assert!(admin.server("mock").await["restarts"].as_u64() >= Some(1));

    // All three serve again, to a client connected before.
    for tool in ["mock__echo", "remote__echo"] {
        let result = call_ok(&client, tool, json!({"message": "again"})).await;
        assert!(text_of(&result).contains("again"), "{tool}: {result:?}");
    }
    let result = call_ok(&client, "legacy__echo", json!({"message": "again"})).await;
    assert!(text_of(&result).contains("again"), "{result:?}");
    close(client).await;
}

both_drivers!(without_a_token_only_local_non_browser_requests_get_in);

async fn without_a_token_only_local_non_browser_requests_get_in(driver: &str) {
    let mut cfg = config(&[("mock", mock_stdio(&[]))]);
    cfg["admin"] = json!({ "listen": "127.0.0.1:0" });
    let mut gw = Gateway::start(driver, &cfg).await;
    let admin = Admin::of(&mut gw, None);
    let stats = admin.get_json("/api/stats").await;
    assert_eq!(stats["servers"]["total"], 1);
    let r = admin
        .send(
            "GET",
            "/api/stats",
            &[("Origin", "http://evil.example")],
            b"",
        )
        .await;
    assert_error(&r, 403, "browser");
    // A web page reaching the port through a rebinding DNS name.
    let r = common::raw_http::send_raw(
        &admin.addr,
        common::raw_http::build_request("GET", "/api/stats", "evil.example:8081", &[], b""),
    )
    .await;
    assert_error(&r, 403, "loopback host");
    assert!(gw.proc.stderr_text().contains("the admin API has no token"));
}
