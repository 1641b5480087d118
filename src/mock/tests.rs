use super::*;
use serde_json::{json, Value};

/// Sends `message` and returns the parsed reply (panics on anything but an immediate reply).
pub(crate) fn call(server: &MockServer, message: &str) -> Value {
    match server.handle(message.as_bytes()) {
        MockOutcome::Reply { body, .. } => serde_json::from_slice(&body).expect("JSON reply"),
        other => panic!("expected a reply to {message}, got {other:?}"),
    }
}

/// A request line with a raw id and raw params.
pub(crate) fn req(id: &str, method: &str, params: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{params}}}"#)
}

fn error_code(reply: &Value) -> i64 {
    reply["error"]["code"].as_i64().expect("an error reply")
}

#[test]
fn initialize_negotiates_version() {
    let server = MockServer::new(MockConfig::default());
    for version in PROTOCOL_VERSIONS {
        let params = format!(r#"{{"protocolVersion":"{version}","capabilities":{{}}}}"#);
        let result = &call(&server, &req("1", "initialize", &params))["result"];
        assert_eq!(result["protocolVersion"], version);
        assert_eq!(
            result["capabilities"],
            json!({"tools": {"listChanged": false}})
        );
        let info = json!({"name": SERVER_NAME, "version": env!("CARGO_PKG_VERSION")});
        assert_eq!(result["serverInfo"], info);
    }
    let future = req("2", "initialize", r#"{"protocolVersion":"2099-01-01"}"#);
    let reply = call(&server, &future);
    assert_eq!(reply["result"]["protocolVersion"], LATEST_PROTOCOL_VERSION);
    for params in [
        "null",
        "{}",
        r#"["2025-06-18"]"#,
        r#"{"protocolVersion":5}"#,
    ] {
        let reply = call(&server, &req("3", "initialize", params));
        assert_eq!(error_code(&reply), -32602, "{params}");
    }
}

#[test]
fn ping_and_notifications() {
    let server = MockServer::new(MockConfig::default());
    let reply = call(&server, r#"{"jsonrpc":"2.0","id":9,"method":"ping"}"#);
    assert_eq!(reply, json!({"jsonrpc": "2.0", "id": 9, "result": {}}));
    for msg in [
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}"#,
        r#"{"jsonrpc":"2.0","method":"whatever"}"#,
        r#"{"jsonrpc":"2.0","id":5,"result":{}}"#,
        r#"{"jsonrpc":"2.0","id":5,"error":{"code":1,"message":"x"}}"#,
    ] {
        assert_eq!(server.handle(msg.as_bytes()), MockOutcome::NoReply, "{msg}");
    }
}

/// `code id |message`, one case per line.
const MALFORMED: &str = r#"
        -32700 null |
        -32700 null |{not json
        -32700 null |{"jsonrpc":"2.0","id":1,"method":"ping"} x
        -32600 null |[1,2]
        -32600 null |[]
        -32600 null |42
        -32600 null |["2.0",1,"ping"]
        -32600 null | ["2.0",1,"ping"]
        -32600 null |{"jsonrpc":"2.0","id":1,"method":7}
        -32600 null |{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}
        -32600 null |{"jsonrpc":"2.0","id":null,"method":"ping"}
        -32600 null |{"jsonrpc":"2.0","id":true,"method":"ping"}
        -32600 1    |{"jsonrpc":"2.0","id":1}
        -32600 1    |{"jsonrpc":"1.0","id":1,"method":"ping"}
        -32600 1    |{"id":1,"method":"ping"}
        -32601 1    |{"jsonrpc":"2.0","id":1,"method":"resources/list"}
        -32601 1    |{"jsonrpc":"2.0","id":1,"method":"notifications/x"}
    "#;

#[test]
fn malformed_input_gets_json_rpc_errors() {
    let server = MockServer::new(MockConfig::default());
    for case in MALFORMED.lines().filter(|l| !l.trim().is_empty()) {
        let (head, msg) = case.split_once('|').expect("table row");
        let mut head = head.split_whitespace();
        let code: i64 = head.next().and_then(|c| c.parse().ok()).expect("code");
        let id: Value = head
            .next()
            .and_then(|i| serde_json::from_str(i).ok())
            .expect("id");
        let reply = call(&server, msg);
        assert_eq!(error_code(&reply), code, "{msg}");
        assert_eq!(reply["id"], id, "{msg}");
        assert_eq!(reply["jsonrpc"], "2.0");
        assert!(reply["error"]["message"].is_string());
    }
}

#[test]
fn ids_are_echoed_raw() {
    let server = MockServer::new(MockConfig::default());
    let echo = r#"{"name":"echo","arguments":{"message":"m"}}"#;
    for (raw_id, method, params) in [
        (r#""a\u0062c""#, "ping", "{}"),
        (" 7 ", "ping", "{}"),
        ("12345678901234567890123", "ping", "{}"),
        ("-1.5e3", "ping", "{}"),
        (r#""x""#, "nope", "{}"),
        (r#""\"q\"""#, "tools/call", echo),
        (r#""a\u0062c""#, "tools/list", "{}"),
    ] {
        let MockOutcome::Reply { body, .. } = server.handle(req(raw_id, method, params).as_bytes())
        else {
            panic!("no reply to {raw_id} {method}");
        };
        let expected = format!(r#"{{"jsonrpc":"2.0","id":{},"#, raw_id.trim());
        let body = String::from_utf8_lossy(&body);
        assert!(body.starts_with(&expected), "{body}");
    }
}

#[test]
fn escapes_method_names_in_errors() {
    let server = MockServer::new(MockConfig::default());
    let reply = call(
        &server,
        r#"{"jsonrpc":"2.0","id":1,"method":"a\"b\n\u0001"}"#,
    );
    assert_eq!(reply["error"]["message"], "Method not found: a\"b\n\u{1}");
}

#[test]
fn latency_applies_to_tools_call_only() {
    let server = MockServer::new(MockConfig {
        latency_us: 1500,
        ..MockConfig::default()
    });
    let delay =
        |method: &str, params: &str| match server.handle(req("1", method, params).as_bytes()) {
            MockOutcome::Reply { delay, .. } => delay.as_micros(),
            other => panic!("{other:?}"),
        };
    assert_eq!(delay("ping", "{}"), 0);
    assert_eq!(delay("tools/list", "{}"), 0);
    assert_eq!(
        delay(
            "tools/call",
            r#"{"name":"echo","arguments":{"message":"x"}}"#
        ),
        1500
    );
    assert_eq!(
        delay("tools/call", r#"{"name":"sleep","arguments":{"ms":20}}"#),
        21_500
    );
    assert_eq!(delay("tools/call", r#"{"name":"nope"}"#), 1500);
}

#[test]
fn never_panics_and_replies_are_single_lines() {
    let server = MockServer::new(MockConfig {
        faults: true,
        ..MockConfig::default()
    });
    let samples = [
        req(
            r#""s""#,
            "tools/call",
            r#"{"name":"add","arguments":{"a":1.5,"b":-2}}"#,
        ),
        req("1", "tools/list", r#"{"cursor":"abc"}"#),
        req("2", "initialize", r#"{"protocolVersion":"2025-06-18"}"#),
        req(
            "3",
            "tools/call",
            r#"{"name":"fault_garbage","arguments":{"k":"v\n"}}"#,
        ),
        req(
            "4",
            "tools/call",
            r#"{"name":"echo","arguments":{"message":"\u00e9\"\n"}}"#,
        ),
    ];
    for sample in &samples {
        // Every prefix and many single-byte corruptions of valid messages.
        for end in 0..=sample.len() {
            let outcome = server.handle(&sample.as_bytes()[..end]);
            if let MockOutcome::Reply { body, .. } = outcome {
                assert!(!body.contains(&b'\n'));
                serde_json::from_slice::<Value>(&body).expect("reply is JSON");
            }
        }
        for i in 0..sample.len() {
            for b in [b'"', b'{', b'}', b'[', b'\\', 0xff, b'\n', b'0', b'-'] {
                let mut bytes = sample.as_bytes().to_vec();
                bytes[i] = b;
                if let MockOutcome::Reply { body, .. } = server.handle(&bytes) {
                    serde_json::from_slice::<Value>(&body).expect("reply is JSON");
                }
            }
        }
    }
    let deep = format!(r#"{{"message":{}}}"#, "[".repeat(100_000));
    let deep = req(
        "1",
        "tools/call",
        &format!(r#"{{"name":"echo","arguments":{deep}}}"#),
    );
    assert_eq!(error_code(&call(&server, &deep)), -32700);
}

#[test]
fn json_string_escaping() {
    let mut out = Vec::new();
    crate::jsonrpc::write_json_str(&mut out, "plain \"q\" \\ \n\r\t\u{1f} é");
    let back: String = serde_json::from_slice(&out).expect("valid JSON string");
    assert_eq!(back, "plain \"q\" \\ \n\r\t\u{1f} é");
}
