//! Prompts through the gateway: `prompts/list` aggregates every server's prompts under
//! prefixed names (servers without prompts contribute none), and `prompts/get` reaches the
//! right server with the original name and returns exactly what the server returns directly.
//! Two servers publish prompts: server-everything over stdio and over streamable HTTP.

mod common;

use common::*;
use rmcp::model::GetPromptRequestParams;
use serde_json::json;

both_drivers!(prompts_are_aggregated_and_routed);

async fn prompts_are_aggregated_and_routed(driver: &str) {
    let remote = HttpUpstream::everything().await;
    let gw = Gateway::start(
        driver,
        &config(&[
            ("everything", everything_stdio()),
            ("mock", mock_stdio(&[])),
            ("remote", http_server(&remote.url)),
        ]),
    )
    .await;
    let through = gw.client().await;
    let direct = connect_everything_stdio().await;

    let direct_prompts = within("direct prompts/list", direct.list_all_prompts())
        .await
        .expect("direct list");
    let listed = within("prompts/list", through.list_all_prompts())
        .await
        .expect("gateway list");
    let mut expected: Vec<String> = direct_prompts
        .iter()
        .flat_map(|p| {
            [
                format!("everything__{}", p.name),
                format!("remote__{}", p.name),
            ]
        })
        .collect();
    let mut got: Vec<String> = listed.iter().map(|p| p.name.clone()).collect();
    expected.sort();
    got.sort();
    assert!(!expected.is_empty(), "server-everything lists no prompts");
    assert_eq!(
        got, expected,
        "the gateway lists exactly the upstream's prompts, prefixed"
    );
    // Everything but the name is passed through as the server published it.
    for p in &listed {
        let original = p
            .name
            .strip_prefix("everything__")
            .or_else(|| p.name.strip_prefix("remote__"))
            .expect("a prefixed name");
        let mut d = direct_prompts
            .iter()
            .find(|q| q.name == original)
            .expect("listed upstream")
            .clone();
        d.name = p.name.clone();
        assert_eq!(&d, p);
    }

    let simple = within(
        "prompts/get simple",
        through.get_prompt(GetPromptRequestParams::new("everything__simple-prompt")),
    )
    .await
    .expect("simple-prompt through the gateway");
    let simple_direct = within(
        "direct simple",
        direct.get_prompt(GetPromptRequestParams::new("simple-prompt")),
    )
    .await
    .expect("simple-prompt direct");
    assert_eq!(simple, simple_direct);

    let args = json!({ "city": "Lisbon", "state": "Lisboa" });
    let args = args.as_object().cloned().expect("object");
    let with_args = within(
        "prompts/get args",
        through.get_prompt(
            GetPromptRequestParams::new("everything__args-prompt").with_arguments(args.clone()),
        ),
    )
    .await
    .expect("args-prompt through the gateway");
    let with_args_direct = within(
        "direct args",
        direct.get_prompt(GetPromptRequestParams::new("args-prompt").with_arguments(args)),
    )
    .await
    .expect("args-prompt direct");
    assert_eq!(with_args, with_args_direct);
    // The same prompt of the other server: routed there, same answer.
    let remote_args = within(
        "prompts/get args on the HTTP server",
        through.get_prompt(
            GetPromptRequestParams::new("remote__args-prompt").with_arguments(
                json!({ "city": "Lisbon", "state": "Lisboa" })
                    .as_object()
                    .cloned()
                    .expect("object"),
            ),
        ),
    )
    .await
    .expect("args-prompt through the gateway from the HTTP server");
    assert_eq!(remote_args, with_args_direct);

    match within(
        "unknown prompt",
        through.get_prompt(GetPromptRequestParams::new("everything__nope")),
    )
    .await
    {
        Err(rmcp::service::ServiceError::McpError(e)) => {
            assert_eq!(e.code.0, -32602, "{e:?}");
            assert!(e.message.contains("Unknown prompt"), "{e:?}");
        }
        other => panic!("expected a JSON-RPC error for an unknown prompt, got {other:?}"),
    }
    close(direct).await;
    close(through).await;
    gw.assert_echo_works("mock__echo").await;
}
