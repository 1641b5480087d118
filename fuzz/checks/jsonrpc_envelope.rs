//! The JSON-RPC envelope, batches, and the raw-object rewrite used on forwarded params.
//!
//! Raw parts must stay valid JSON on their own (they are spliced into replies unparsed), and a
//! rewritten object must keep every other member byte for byte.

use mcpgate::jsonrpc::{parse_message, write_error, write_result, ErrorCode, MessageKind};
use mcpgate::jsonrpc::{scan, ParseError, RawJson, RawObject};
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

pub fn check(data: &[u8]) {
    scanner_agrees(data);
    envelope(data);
    batch(data);
    if let Ok(text) = std::str::from_utf8(data) {
        object(text);
    }
}

/// Valid JSON text, numbers of any size included (`serde_json::Value` would refuse `1e400`,
/// which the gateway rightly forwards as it came).
fn assert_json(bytes: &[u8]) {
    if let Err(e) = serde_json::from_slice::<IgnoredAny>(bytes) {
        panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(bytes));
    }
}

/// The gateway's scanner takes exactly the texts serde_json takes (UTF-8 JSON), except
/// nesting past its limit, which it refuses on purpose.
fn scanner_agrees(data: &[u8]) {
    let serde = std::str::from_utf8(data)
        .is_ok_and(|text| serde_json::from_str::<IgnoredAny>(text).is_ok());
    match scan::validate(data) {
        Ok(()) => assert!(
            serde,
            "scanner took what serde_json refuses: {:?}",
            String::from_utf8_lossy(data)
        ),
        Err(e) if e.what == "nesting too deep" => {}
        Err(e) => assert!(
            !serde,
            "scanner refused ({e}) what serde_json takes: {:?}",
            String::from_utf8_lossy(data)
        ),
    }
}

fn envelope(data: &[u8]) {
    let env = match parse_message(data) {
        Ok(env) => env,
        Err(ParseError::NotJson(why)) => {
            // The parser's message goes back to the client inside a JSON string.
            let mut out = Vec::new();
            write_error(&mut out, "null", ErrorCode::ParseError, &why);
            assert_json(&out);
            return;
        }
        Err(ParseError::Invalid(_)) => return,
    };
    assert_json(data);
    match env.kind() {
        MessageKind::Request => assert!(env.method.is_some() && env.id.is_some()),
        MessageKind::Notification => assert!(env.method.is_some() && env.id.is_none()),
        MessageKind::Response => assert!(env.id.is_some()),
    }
    let id = env.id_or_null();
    if env.id.is_some() {
        let first = id.as_bytes()[0];
        assert!(
            first == b'"' || first == b'-' || first.is_ascii_digit(),
            "id {id}"
        );
    }
    for raw in [env.id, env.params, env.result, env.error]
        .into_iter()
        .flatten()
    {
        assert_json(raw.get().as_bytes());
    }
    // A reply built from the raw parts, as the gateway splices them.
    let mut out = Vec::new();
    write_result(&mut out, id, env.params.map_or("null", RawJson::get));
    assert_json(&out);
    if let Some(params) = env.params {
        if params.get().starts_with('{') {
            assert!(
                RawObject::parse(params.get()).is_ok(),
                "params object refused"
            );
            object(params.get());
        }
    }
}

/// A JSON array is a batch (what `mcp::batch::is_batch` tests); each member is a message.
fn batch(data: &[u8]) {
    if data.trim_ascii_start().first() != Some(&b'[') {
        return;
    }
    if let Ok(messages) = serde_json::from_slice::<Vec<&RawValue>>(data) {
        for message in messages {
            envelope(message.get().as_bytes());
        }
    }
}

fn object(text: &str) {
    let Ok(obj) = RawObject::parse(text) else {
        return;
    };
    for (_, value) in obj.members() {
        assert_json(value.get().as_bytes());
    }
    let _ = obj.get_str("name");
    let mut out = Vec::new();
    obj.write_replacing(&mut out, "name", "re\"named\\\u{1}");
    assert_replaced(&obj, &out, "name", "\"re\\\"named\\\\\\u0001\"");
    // A raw replacement, taken from the input itself when it has members.
    let raw = obj.members().next().map_or("{}", |(_, v)| v.get());
    out.clear();
    obj.write_replacing_raw(&mut out, "ref", raw.as_bytes());
    assert_replaced(&obj, &out, "ref", raw);
}

/// `out` is `obj` with `key` first, set to `value` (raw JSON), and every other member after
/// it in order, raw bytes unchanged.
fn assert_replaced(obj: &RawObject<'_>, out: &[u8], key: &str, value: &str) {
    assert_json(out);
    let text = std::str::from_utf8(out).expect("the rewrite is UTF-8");
    let again = RawObject::parse(text).expect("the rewrite is an object");
    let written: Vec<_> = again.members().collect();
    let (first_key, first_value) = &written[0];
    assert_eq!((first_key.as_ref(), first_value.get()), (key, value));
    let kept: Vec<_> = obj.members().filter(|(k, _)| k != key).collect();
    assert_eq!(kept.len() + 1, written.len());
    for ((k1, v1), (k2, v2)) in kept.iter().zip(&written[1..]) {
        assert_eq!((k1, v1.get()), (k2, v2.get()));
    }
}
