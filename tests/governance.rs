//! Governance through the gateway: virtual keys, deny-by-default grants, tool groups and the
//! session-to-key binding, seen by the official Rust SDK (rmcp) and by raw HTTP.
//!
//! The `ledger` server (tests/fixtures/ledger-server.mjs, on the TypeScript SDK) records every
//! `record` call that reaches it, so a test can prove a refused call never got upstream.

mod common;

use common::raw_http::{
    build_request, initialize_body, post, send_raw, ACCEPT_BOTH, PROTOCOL_VERSION,
};
use common::*;
use serde_json::{json, Value};

const ALICE: &str = "alice-key-5f0c2a9e7b41d836";
const BOB: &str = "bob-key-93e1d7c4a2b8f065";
const CAROL: &str = "carol-key-0a7d3e9c41b6f258";
const DAVE: &str = "dave-key-7c2e5a1f9d3b8046";

fn governed_config() -> Value {
    let mut cfg = config(&[
        ("ledger", node_fixture_stdio("ledger-server.mjs")),
        ("mock", mock_stdio(&[])),
    ]);
    cfg["virtual_keys"] = json!([
        { "name": "alice", "key": ALICE,
          "grants": { "ledger": ["echo", "recorded"], "mock": ["*"] } },
        { "name": "bob", "key": BOB, "grants": { "ledger": ["record", "recorded"] } },
        { "name": "carol", "key": CAROL },
        { "name": "dave", "key": DAVE, "grants": { "ledger": ["*"] } }
    ]);
    cfg["groups"] = json!({ "readonly": { "ledger": ["echo", "recorded"] } });
    cfg
}

fn sorted_names(tools: &[rmcp::model::Tool]) -> Vec<String> {
    let mut n = names(tools);
    n.sort();
    n
}

both_drivers!(keys_see_and_call_only_what_they_are_granted);

async fn keys_see_and_call_only_what_they_are_granted(driver: &str) {
    let gw = Gateway::start(driver, &governed_config()).await;
    let alice = connect_http_with_key(&gw.url, ALICE).await;
    let bob = connect_http_with_key(&gw.url, BOB).await;

    let alice_tools = sorted_names(&list_tools(&alice).await);
    assert!(alice_tools.contains(&"ledger__echo".to_string()));
    assert!(alice_tools.contains(&"ledger__recorded".to_string()));
    assert!(alice_tools.contains(&"mock__echo".to_string()));
    assert!(
        !alice_tools.iter().any(|t| t == "ledger__record"),
        "alice must not see ledger__record: {alice_tools:?}"
    );
    assert_eq!(
        sorted_names(&list_tools(&bob).await),
        ["ledger__record", "ledger__recorded"]
    );

    // Refused on each other's tools, with a message that names the key.
    let refused = mcp_error(
        "alice calls ledger__record",
        call(&alice, "ledger__record", json!({ "tag": "from-alice" })).await,
    );
    assert_eq!(refused.code.0, -32003, "{refused:?}");
    assert!(
        refused.message.contains("\"alice\"") && refused.message.contains("ledger__record"),
        "{refused:?}"
    );
    let refused = mcp_error(
        "bob calls mock__echo",
        call(&bob, "mock__echo", json!({ "message": "x" })).await,
    );
    assert_eq!(refused.code.0, -32003, "{refused:?}");

    // What each may call works; the ledger shows the refused call never reached the server.
    call_ok(&bob, "ledger__record", json!({ "tag": "from-bob" })).await;
    let ledger = call_ok(&alice, "ledger__recorded", json!({})).await;
    assert_eq!(text_of(&ledger), r#"["from-bob"]"#);
    let echoed = call_ok(&alice, "mock__echo", json!({ "message": "hi" })).await;
    assert!(text_of(&echoed).contains("hi"));
    close(alice).await;
    close(bob).await;
}

both_drivers!(a_key_without_grants_sees_nothing);

async fn a_key_without_grants_sees_nothing(driver: &str) {
    let gw = Gateway::start(driver, &governed_config()).await;
    let carol = connect_http_with_key(&gw.url, CAROL).await;
    assert_eq!(
        sorted_names(&list_tools(&carol).await),
        Vec::<String>::new()
    );
    let refused = mcp_error(
        "carol calls ledger__echo",
        call(&carol, "ledger__echo", json!({ "message": "x" })).await,
    );
    assert_eq!(refused.code.0, -32003, "{refused:?}");
    close(carol).await;
}

/// POSTs `body` to `path` with the usual MCP headers plus `extra`.
async fn post_to(
    addr: &str,
    path: &str,
    extra: &[(&str, &str)],
    body: &[u8],
) -> common::raw_http::Response {
    let mut headers = vec![
        ("Content-Type", "application/json"),
        ("Accept", ACCEPT_BOTH),
    ];
    headers.extend_from_slice(extra);
    send_raw(addr, build_request("POST", path, addr, &headers, body)).await
}

both_drivers!(missing_and_wrong_keys_get_401);

async fn missing_and_wrong_keys_get_401(driver: &str) {
    let gw = Gateway::start(driver, &governed_config()).await;
    let addr = gw.addr();
    let body = initialize_body(PROTOCOL_VERSION);

    let none = post(
        &addr,
        &[
            ("Content-Type", "application/json"),
            ("Accept", ACCEPT_BOTH),
        ],
        &body,
    )
    .await;
    assert_eq!(none.status, 401, "{none:?}");
    assert_eq!(
        none.header("www-authenticate"),
        Some(r#"Bearer realm="mcpgate""#)
    );

    let wrong_key = format!("{ALICE}x");
    let bearer = format!("Bearer {wrong_key}");
    let wrong = post_to(&addr, "/mcp", &[("Authorization", &bearer)], &body).await;
    assert_eq!(wrong.status, 401, "{wrong:?}");
    assert!(wrong
        .header("www-authenticate")
        .is_some_and(|h| h.contains("invalid_token")));
    assert!(
        !wrong.body_text().contains(&wrong_key),
        "the refusal echoes the key: {}",
        wrong.body_text()
    );

    // Another scheme is not a key.
    let basic = post_to(
        &addr,
        "/mcp",
        &[("Authorization", "Basic YWxpY2U6eA==")],
        &body,
    )
    .await;
    assert_eq!(basic.status, 401, "{basic:?}");

    // `x-api-key` is accepted as well as a bearer token.
    let by_header = post_to(&addr, "/mcp", &[("x-api-key", ALICE)], &body).await;
    assert_eq!(by_header.status, 200, "{by_header:?}");

    // The client fails to connect without the right key; the gateway keeps serving.
    assert!(try_connect_http_with_key(&gw.url, &wrong_key)
        .await
        .is_err());
    let alice = connect_http_with_key(&gw.url, ALICE).await;
    call_ok(&alice, "ledger__echo", json!({ "message": "still here" })).await;
    close(alice).await;
}

both_drivers!(a_session_is_refused_to_another_key);

async fn a_session_is_refused_to_another_key(driver: &str) {
    let gw = Gateway::start(driver, &governed_config()).await;
    let addr = gw.addr();
    let alice_bearer = format!("Bearer {ALICE}");
    let bob_bearer = format!("Bearer {BOB}");
    let opened = post_to(
        &addr,
        "/mcp",
        &[("Authorization", &alice_bearer)],
        &initialize_body(PROTOCOL_VERSION),
    )
    .await;
    assert_eq!(opened.status, 200, "{opened:?}");
    let session = opened
        .header("mcp-session-id")
        .expect("initialize gives a session id")
        .to_string();
    let list = br#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
    let in_session = |bearer: &str| {
        vec![
            ("Authorization", bearer.to_string()),
            ("Mcp-Session-Id", session.clone()),
            ("MCP-Protocol-Version", PROTOCOL_VERSION.to_string()),
        ]
    };

    let as_alice = in_session(&alice_bearer);
    let as_alice: Vec<(&str, &str)> = as_alice.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let ok = post_to(&addr, "/mcp", &as_alice, list).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert!(ok.jsonrpc()["result"]["tools"].is_array());

    let as_bob = in_session(&bob_bearer);
    let as_bob: Vec<(&str, &str)> = as_bob.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let refused = post_to(&addr, "/mcp", &as_bob, list).await;
    assert_eq!(refused.status, 404, "{refused:?}");
    assert!(
        refused.body_text().contains("another key"),
        "{}",
        refused.body_text()
    );
}

both_drivers!(a_group_url_shows_only_its_tools);

async fn a_group_url_shows_only_its_tools(driver: &str) {
    let gw = Gateway::start(driver, &governed_config()).await;
    let everything = connect_http_with_key(&gw.url, DAVE).await;
    assert_eq!(
        sorted_names(&list_tools(&everything).await),
        ["ledger__echo", "ledger__record", "ledger__recorded"]
    );
    let group_url = format!("{}/readonly", gw.url);
    let readonly = connect_http_with_key(&group_url, DAVE).await;
    assert_eq!(
        sorted_names(&list_tools(&readonly).await),
        ["ledger__echo", "ledger__recorded"]
    );
    let refused = mcp_error(
        "ledger__record through /mcp/readonly",
        call(&readonly, "ledger__record", json!({ "tag": "x" })).await,
    );
    assert_eq!(refused.code.0, -32003, "{refused:?}");
    assert!(refused.message.contains("readonly"), "{refused:?}");
    call_ok(&readonly, "ledger__echo", json!({ "message": "ro" })).await;
    // The group narrows a key's grants; it never widens them.
    let carol_ro = connect_http_with_key(&group_url, CAROL).await;
    assert_eq!(
        sorted_names(&list_tools(&carol_ro).await),
        Vec::<String>::new()
    );

    let unknown = post_to(
        &gw.addr(),
        "/mcp/no-such-group",
        &[("x-api-key", DAVE)],
        &initialize_body(PROTOCOL_VERSION),
    )
    .await;
    assert_eq!(unknown.status, 404, "{unknown:?}");
    assert!(unknown.body_text().contains("no-such-group"));
    close(everything).await;
    close(readonly).await;
    close(carol_ro).await;
}

const ERIN: &str = "erin-key-4b8d1f6a2c9e0537";

both_drivers!(keys_are_reloaded_and_never_logged);

async fn keys_are_reloaded_and_never_logged(driver: &str) {
    // The most verbose log there is: nothing a client sends may carry a key into it.
    let mut gw =
        Gateway::start_with_env(driver, &governed_config(), &[("MCPGATE_LOG", "trace")]).await;
    let near_miss = format!("{}0", &ALICE[..ALICE.len() - 1]);

    // Used, rejected (near miss, unknown x-api-key, missing).
    let alice = connect_http_with_key(&gw.url, ALICE).await;
    call_ok(&alice, "ledger__echo", json!({ "message": "logged?" })).await;
    assert!(try_connect_http_with_key(&gw.url, &near_miss)
        .await
        .is_err());
    let refused = post_to(
        &gw.addr(),
        "/mcp",
        &[("x-api-key", &near_miss)],
        &initialize_body(PROTOCOL_VERSION),
    )
    .await;
    assert_eq!(refused.status, 401);

    // Reloaded: erin is added, bob removed; sessions of unchanged keys keep working.
    let mut next = governed_config();
    next["virtual_keys"] = json!([
        { "name": "alice", "key": ALICE,
          "grants": { "ledger": ["echo", "recorded"], "mock": ["*"] } },
        { "name": "erin", "key": ERIN, "grants": { "ledger": ["echo"] } }
    ]);
    gw.reload_with(&next, "config reload applied");
    let erin = connect_http_with_key(&gw.url, ERIN).await;
    assert_eq!(sorted_names(&list_tools(&erin).await), ["ledger__echo"]);
    assert!(try_connect_http_with_key(&gw.url, BOB).await.is_err());
    call_ok(
        &alice,
        "ledger__echo",
        json!({ "message": "same session after reload" }),
    )
    .await;

    // An invalid file (a grant on a server that does not exist) is refused; the old one serves.
    let mut invalid = next.clone();
    invalid["virtual_keys"][1]["grants"] = json!({ "nowhere": ["*"] });
    let line = gw.reload_with(&invalid, "config reload refused");
    assert!(line.contains("virtual_keys[1].grants.nowhere"), "{line}");
    call_ok(
        &erin,
        "ledger__echo",
        json!({ "message": "old config serves" }),
    )
    .await;

    let log = gw.proc.stderr_text();
    assert!(log.contains("config reloaded"), "the log is captured");
    for secret in [ALICE, BOB, CAROL, DAVE, ERIN, near_miss.as_str()] {
        assert!(
            !log.contains(secret),
            "a key value appears in the gateway log:\n{}",
            gw.proc.log_tail()
        );
    }
    // `mcpgate check` names keys, never their values.
    let dir = TempDir::new("check");
    let checked_file = dir.path().join("mcpgate.json");
    std::fs::write(&checked_file, serde_json::to_vec_pretty(&next).unwrap()).unwrap();
    let checked = std::process::Command::new(mcpgate_bin())
        .args(["check", "--config"])
        .arg(&checked_file)
        .output()
        .expect("run mcpgate check");
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(shown.contains("alice"), "{shown}");
    for secret in [ALICE, ERIN] {
        assert!(!shown.contains(secret), "check prints a key value: {shown}");
    }
    close(alice).await;
    close(erin).await;
}
