//! Unit tests of the conformance profile's core. The conformance suite itself
//! (`conformance/run.sh`) covers the scenarios end to end; these pin down what the suite
//! cannot show precisely: the exact catalog, message classification, and how a call talks
//! to the client, driven without any transport.

use std::cell::RefCell;
use std::rc::Rc;

use serde_json::{json, Value};

use super::*;
use crate::runtime::IoDriver;

/// Runs `make()`'s future on a fresh epoll runtime (the profile's tools use monoio timers).
fn run<F, Fut>(make: F) -> Fut::Output
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future,
{
    crate::runtime::block_on(IoDriver::Epoll, make).expect("a monoio runtime")
}

/// An outbox that records what it is sent and answers our requests to the client on the
/// spot with `answer(method, params)`, the way a client's response POST would.
struct ScriptedClient {
    session: Rc<Session>,
    sent: RefCell<Vec<Value>>,
    answer: fn(&str, &Value) -> Value,
}

impl Outbox for ScriptedClient {
    fn send(&self, message: Vec<u8>) {
        let message: Value = serde_json::from_slice(&message).expect("the profile sends JSON");
        self.sent.borrow_mut().push(message.clone());
        if let (Some(id), Some(method)) = (message.get("id"), message["method"].as_str()) {
            let result = (self.answer)(method, &message["params"]);
            let response = json!({ "jsonrpc": "2.0", "id": id, "result": result });
            assert!(self.session.complete(&response), "the request was waiting");
        }
    }
}

/// A session initialized with `capabilities`, and a scripted client for it.
fn connect(capabilities: Value, answer: fn(&str, &Value) -> Value) -> ScriptedClient {
    let session = Rc::new(Session::new());
    session.set_client_capabilities(capabilities);
    ScriptedClient {
        session,
        sent: RefCell::new(Vec::new()),
        answer,
    }
}

/// Answers one request through `client` and returns the response.
fn request(client: &ScriptedClient, method: &str, params: Value) -> Value {
    run(|| async { answer(&client.session, client, &json!(1), method, &params).await })
}

fn no_answer(method: &str, _: &Value) -> Value {
    panic!("unexpected request to the client: {method}")
}

#[test]
fn lists_every_tool_the_suite_calls() {
    let client = connect(json!({}), no_answer);
    let tools = request(&client, "tools/list", json!({}));
    let names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .expect("a tools array")
        .iter()
        .map(|t| {
            assert!(
                t["description"].is_string() && t["inputSchema"].is_object(),
                "{t}"
            );
            t["name"].as_str().expect("a name")
        })
        .collect();
    assert_eq!(
        names,
        [
            "test_simple_text",
            "test_image_content",
            "test_audio_content",
            "test_embedded_resource",
            "test_multiple_content_types",
            "test_tool_with_logging",
            "test_tool_with_progress",
            "test_error_handling",
            "test_sampling",
            "test_elicitation",
            "test_elicitation_sep1034_defaults",
            "test_elicitation_sep1330_enums",
            "json_schema_2020_12_tool",
            "test_reconnection",
        ]
    );
}

#[test]
fn sampling_asks_the_client_and_returns_its_answer() {
    let client = connect(json!({ "sampling": {} }), |method, params| {
        assert_eq!(method, "sampling/createMessage");
        assert_eq!(params["messages"][0]["content"]["text"], "hi");
        assert_eq!(params["maxTokens"], 100);
        json!({ "role": "assistant", "model": "m", "content": { "type": "text", "text": "hello" } })
    });
    let params = json!({ "name": "test_sampling", "arguments": { "prompt": "hi" } });
    let reply = request(&client, "tools/call", params);
    assert_eq!(reply["result"]["content"][0]["text"], "LLM response: hello");
    assert_eq!(client.sent.borrow().len(), 1, "one request to the client");
}

#[test]
fn sampling_without_the_capability_is_a_tool_error() {
    let client = connect(json!({}), no_answer);
    let params = json!({ "name": "test_sampling", "arguments": { "prompt": "hi" } });
    let reply = request(&client, "tools/call", params);
    assert_eq!(reply["result"]["isError"], true);
}

#[test]
fn elicitation_reports_the_action_and_content() {
    let client = connect(json!({ "elicitation": {} }), |method, params| {
        assert_eq!(method, "elicitation/create");
        assert_eq!(
            params["requestedSchema"]["properties"]["age"]["default"],
            30
        );
        json!({ "action": "accept", "content": { "age": 25 } })
    });
    let params = json!({ "name": "test_elicitation_sep1034_defaults", "arguments": {} });
    let reply = request(&client, "tools/call", params);
    let text = &reply["result"]["content"][0]["text"];
    assert_eq!(
        text,
        r#"Elicitation completed: action=accept, content={"age":25}"#
    );
}

#[test]
fn progress_and_logging_follow_the_client() {
    let client = connect(json!({}), no_answer);
    let params = json!({ "name": "test_tool_with_progress", "arguments": {},
                         "_meta": { "progressToken": "t1" } });
    request(&client, "tools/call", params);
    let progress: Vec<Value> = client
        .sent
        .borrow()
        .iter()
        .map(|n| n["params"]["progress"].clone())
        .collect();
    assert_eq!(progress, [json!(0), json!(50), json!(100)]);
    assert!(client
        .sent
        .borrow()
        .iter()
        .all(|n| n["params"]["progressToken"] == "t1"));

    let quiet = connect(json!({}), no_answer);
    assert_eq!(
        request(&quiet, "logging/setLevel", json!({ "level": "warning" }))["result"],
        json!({})
    );
    request(
        &quiet,
        "tools/call",
        json!({ "name": "test_tool_with_logging" }),
    );
    assert!(
        quiet.sent.borrow().is_empty(),
        "info messages are below warning"
    );
    let bad_level = request(&quiet, "logging/setLevel", json!({ "level": "loud" }));
    assert_eq!(bad_level["error"]["code"], -32602);
}

#[test]
fn resources_prompts_and_completions() {
    let client = connect(json!({}), no_answer);
    let read = request(
        &client,
        "resources/read",
        json!({ "uri": "test://template/123/data" }),
    );
    let text = read["result"]["contents"][0]["text"]
        .as_str()
        .expect("text contents");
    assert_eq!(
        serde_json::from_str::<Value>(text).expect("JSON text")["id"],
        "123"
    );
    let missing = request(&client, "resources/read", json!({ "uri": "test://nope" }));
    assert_eq!(missing["error"]["code"], -32002);

    let prompt = request(
        &client,
        "prompts/get",
        json!({ "name": "test_prompt_with_arguments",
                                                          "arguments": { "arg1": "a", "arg2": "b" } }),
    );
    assert_eq!(
        prompt["result"]["messages"][0]["content"]["text"],
        "Prompt with arguments: arg1='a', arg2='b'"
    );
    let incomplete = request(
        &client,
        "prompts/get",
        json!({ "name": "test_prompt_with_arguments" }),
    );
    assert_eq!(incomplete["error"]["code"], -32602);

    let completion = request(
        &client,
        "completion/complete",
        json!({
        "ref": { "type": "ref/prompt", "name": "test_prompt_with_arguments" },
        "argument": { "name": "arg1", "value": "par" } }),
    );
    assert_eq!(
        completion["result"]["completion"]["values"],
        json!(["paris", "park", "party"])
    );
    let template = request(
        &client,
        "completion/complete",
        json!({
        "ref": { "type": "ref/resource", "uri": "test://template/{id}/data" },
        "argument": { "name": "id", "value": "12" } }),
    );
    assert_eq!(template["result"]["completion"]["values"], json!(["123"]));

    assert_eq!(
        request(
            &client,
            "resources/subscribe",
            json!({ "uri": "test://watched-resource" })
        )["result"],
        json!({})
    );
    assert!(client.session.is_subscribed("test://watched-resource"));
    request(
        &client,
        "resources/unsubscribe",
        json!({ "uri": "test://watched-resource" }),
    );
    assert!(!client.session.is_subscribed("test://watched-resource"));
}

#[test]
fn classifies_client_messages() {
    let parse = |text: &str| ClientMessage::parse(text.as_bytes());
    assert!(matches!(
        parse(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#),
        ClientMessage::Request { .. }
    ));
    assert!(matches!(
        parse(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
        ClientMessage::Notification { .. }
    ));
    assert!(matches!(
        parse(r#"{"jsonrpc":"2.0","id":3,"result":{}}"#),
        ClientMessage::Response(_)
    ));
    let code = |text: &str| match parse(text) {
        ClientMessage::Invalid(error) => error["error"]["code"].as_i64(),
        other => panic!("{text} should be invalid, got {other:?}"),
    };
    assert_eq!(code("{"), Some(-32700));
    assert_eq!(code("[]"), Some(-32600));
    assert_eq!(
        code(r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#),
        Some(-32600)
    );
    assert_eq!(
        code(r#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#),
        Some(-32600)
    );
    assert_eq!(code(r#"{"jsonrpc":"2.0","id":1}"#), Some(-32600));
}

#[test]
fn a_closed_session_fails_requests_to_the_client() {
    let client = connect(json!({ "elicitation": {} }), no_answer);
    client.session.close();
    let params = json!({ "name": "test_elicitation", "arguments": { "message": "m" } });
    let reply = request(&client, "tools/call", params);
    assert_eq!(reply["result"]["isError"], true);
}
