use super::super::tests::{call, req};
use super::super::{MockFault, MockOutcome, MockServer};
use super::*;
use std::collections::HashSet;

/// A server with the default config changed by `edit`.
fn server(edit: impl FnOnce(&mut MockConfig)) -> MockServer {
    let mut cfg = MockConfig::default();
    edit(&mut cfg);
    MockServer::new(cfg)
}

/// Walks every `tools/list` page and returns the tools in order and the number of pages.
fn list_all(server: &MockServer) -> (Vec<Value>, usize) {
    let (mut tools, mut pages, mut params) = (Vec::new(), 0, "{}".to_owned());
    loop {
        let reply = call(server, &req(&pages.to_string(), "tools/list", &params));
        pages += 1;
        let result = &reply["result"];
        tools.extend(result["tools"].as_array().into_iter().flatten().cloned());
        let Some(next) = result.get("nextCursor") else {
            return (tools, pages);
        };
        params = json!({ "cursor": next }).to_string();
    }
}

/// The first page's error code for `params` (null when it succeeded).
fn list_error(server: &MockServer, params: &str) -> Value {
    call(server, &req("1", "tools/list", params))["error"]["code"].clone()
}

fn tools_call(server: &MockServer, name: &str, args: Value) -> Value {
    let params = json!({"name": name, "arguments": args}).to_string();
    call(server, &req("1", "tools/call", &params))
}

fn text(reply: &Value) -> &str {
    reply["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or("<no text>")
}

#[test]
fn tables_parse() {
    assert_eq!(tool_table(FIXED_TOOLS).len(), 3);
    assert_eq!(tool_table(FAULT_TOOLS).len(), 3);
    assert_eq!(property_pool().len(), 12);
    let sleep = &tool_table(FIXED_TOOLS)[2]["inputSchema"]["properties"]["ms"]["maximum"];
    assert_eq!(sleep.as_u64(), Some(MAX_SLEEP_MS));
}

#[test]
fn pagination_walks_all_tools() {
    for (faults, extra) in [(false, 0), (true, 3)] {
        let server = server(|c| (c.tools, c.page_size, c.faults) = (250, 100, faults));
        let (tools, pages) = list_all(&server);
        assert_eq!((tools.len(), pages), (253 + extra, 3));
        let names: HashSet<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
        assert_eq!(names.len(), tools.len(), "names are unique");
        for fixed in ["echo", "add", "sleep", "tool_0001", "tool_0250"] {
            assert!(names.contains(fixed), "{fixed}");
        }
        for fault in ["fault_exit", "fault_garbage", "fault_hang"] {
            assert_eq!(names.contains(fault), faults);
        }
        for tool in &tools {
            let schema = &tool["inputSchema"];
            assert_eq!(schema["type"], "object");
            assert!(tool["description"].is_string());
            for name in schema["required"].as_array().into_iter().flatten() {
                assert!(schema["properties"][name.as_str().unwrap_or("")].is_object());
            }
        }
    }
    // Schemas vary between tools, and are the same from one start to the next.
    let (tools, pages) = list_all(&server(|_| {}));
    assert_eq!((tools.len(), pages), (13, 1));
    let shapes: HashSet<String> = tools.iter().map(|t| t["inputSchema"].to_string()).collect();
    assert!(shapes.len() > 8);
    assert_eq!(tools, list_all(&server(|_| {})).0);
}

#[test]
fn page_size_edge_cases_and_bad_cursors() {
    assert_eq!(list_all(&server(|c| (c.tools, c.page_size) = (7, 0))).1, 1);
    assert_eq!(list_all(&server(|c| (c.tools, c.page_size) = (7, 1))).1, 10);
    let twelve = server(|c| (c.tools, c.page_size) = (12, 5));
    assert_eq!(list_all(&twelve).1, 3);
    for params in [
        r#"{"cursor":"nope"}"#,
        r#"{"cursor":""}"#,
        r#"{"cursor":5}"#,
        "[]",
    ] {
        assert_eq!(list_error(&twelve, params), -32602, "{params}");
    }
    // A cursor from a differently sized server is not valid here.
    let thirteen = server(|c| (c.tools, c.page_size) = (13, 5));
    let other = call(&thirteen, &req("1", "tools/list", "{}"));
    let params = json!({ "cursor": other["result"]["nextCursor"] }).to_string();
    assert_eq!(list_error(&twelve, &params), -32602);
    assert_eq!(list_error(&twelve, r#"{"cursor":null}"#), Value::Null);
}

#[test]
fn wide_synthetic_names() {
    let server = server(|c| c.tools = 12_345);
    for name in ["tool_00001", "tool_12345"] {
        assert_eq!(text(&tools_call(&server, name, json!({}))).len(), 100);
    }
    for bad in [
        "tool_0001",
        "tool_12346",
        "tool_00000",
        "tool_+0001",
        "tool_",
    ] {
        let code = &tools_call(&server, bad, json!({}))["error"]["code"];
        assert_eq!(code, -32602, "{bad}");
    }
}

#[test]
fn echo_add_sleep() {
    let server = server(|_| {});
    let reply = tools_call(&server, "echo", json!({"message": "héllo \"x\"\n"}));
    let expected = json!({"content": [{"type": "text", "text": "héllo \"x\"\n"}]});
    assert_eq!(reply["result"], expected);

    for (args, sum) in [
        (r#"{"a":2,"b":3}"#, "5"),
        (r#"{"a":1.5,"b":-0.25}"#, "1.25"),
    ] {
        let params = format!(r#"{{"name":"add","arguments":{args}}}"#);
        let reply = call(&server, &req("1", "tools/call", &params));
        let sum: Value = serde_json::from_str(sum).expect("number");
        assert_eq!(text(&reply), sum.to_string());
        assert_eq!(reply["result"]["structuredContent"], json!({"sum": sum}));
    }
    let reply = tools_call(&server, "add", json!({"a": i64::MAX, "b": 1}));
    let sum = reply["result"]["structuredContent"]["sum"].as_f64();
    assert_eq!(sum, Some(i64::MAX as f64 + 1.0));
    let huge = r#"{"name":"add","arguments":{"a":1e308,"b":1e308}}"#;
    assert_eq!(
        call(&server, &req("1", "tools/call", huge))["result"]["isError"],
        true
    );

    for (ms, expected) in [(json!(25), 25), (json!(4.0), 4), (json!(999_999), 60_000)] {
        let params = json!({"name": "sleep", "arguments": {"ms": ms}}).to_string();
        let outcome = server.handle(req("1", "tools/call", &params).as_bytes());
        let MockOutcome::Reply { body, delay } = outcome else {
            panic!("no reply");
        };
        assert_eq!(delay, Duration::from_millis(expected));
        let reply: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(text(&reply), format!("slept {expected} ms"));
    }
}

#[test]
fn tool_input_errors_are_results() {
    let server = server(|_| {});
    for (name, args, needle) in [
        ("echo", json!({}), "Missing required argument: message"),
        ("echo", Value::Null, "Missing required argument: message"),
        ("echo", json!({"message": 5}), "'message'"),
        ("echo", json!({"message": null}), "'message'"),
        ("add", json!({"a": 1}), "Missing required argument: b"),
        ("add", json!({"a": "1", "b": 2}), "'a'"),
        ("sleep", json!({"ms": -1}), "'ms'"),
        ("sleep", json!({"ms": 1.5}), "'ms'"),
        ("sleep", json!({"ms": "10"}), "'ms'"),
    ] {
        let reply = tools_call(&server, name, args.clone());
        assert_eq!(reply["result"]["isError"], true, "{name} {args}");
        assert!(text(&reply).contains(needle), "{name} {args}: {reply}");
    }
}

#[test]
fn protocol_errors_for_calls() {
    let server = server(|_| {});
    let reply = tools_call(&server, "nope", json!({}));
    let expected = json!({"code": -32602, "message": "Unknown tool: nope"});
    assert_eq!(reply["error"], expected);
    let fault = tools_call(&server, "fault_exit", json!({}));
    assert_eq!(fault["error"]["code"], -32602, "fault tools are off");
    let array_args = tools_call(&server, "echo", json!([1]));
    assert_eq!(array_args["error"]["code"], -32602);
    for params in [
        "null",
        "{}",
        r#"{"name":1}"#,
        "[]",
        r#"["echo",{"message":"m"}]"#,
    ] {
        let reply = call(&server, &req("1", "tools/call", params));
        assert_eq!(reply["error"]["code"], -32602, "{params}");
    }
}

#[test]
fn synthetic_reply_is_exact_ascii() {
    for reply_bytes in [0, 1, 100, 5000] {
        let server = server(|c| c.reply_bytes = reply_bytes);
        let reply = tools_call(&server, "tool_0010", json!({"query": "x"}));
        let t = text(&reply);
        assert_eq!(t.len(), reply_bytes);
        assert!(t.bytes().all(|b| b.is_ascii_graphic() || b == b' '));
        assert_eq!(reply["result"]["content"].as_array().map(Vec::len), Some(1));
    }
}

#[test]
fn fault_tools() {
    let server = server(|c| c.faults = true);
    let handle = |name: &str| {
        let params = format!(r#"{{"name":"{name}","arguments":{{"k":[1,"v"]}}}}"#);
        server.handle(req(r#""f""#, "tools/call", &params).as_bytes())
    };
    assert_eq!(
        handle("fault_exit"),
        MockOutcome::Fault(MockFault::ExitProcess)
    );
    assert_eq!(handle("fault_hang"), MockOutcome::Fault(MockFault::Hang));
    let MockOutcome::Fault(MockFault::GarbageThenReply(body)) = handle("fault_garbage") else {
        panic!("expected garbage fault");
    };
    let reply: Value = serde_json::from_slice(&body).expect("the real reply is JSON");
    assert_eq!(reply["id"], "f");
    assert_eq!(text(&reply), r#"{"k":[1,"v"]}"#);
}
