//! How a forwarded request ended, read from its upstream reply for the audit log and metrics:
//! a result (`ok`, or `tool_error` when it says `isError: true`), a JSON-RPC error, or a
//! failure of the upstream. (`forward::write_reply` tells the outcome as it splices; this
//! module finds `isError` and, off the `ok` path, the error message.)
//!
//! Owns: finding a result's top-level `isError` without re-parsing the whole result in the
//! usual layouts (SDKs write it as the first or last member), and the short error messages.
//! Must never: change the reply (it is read after being spliced), or parse anything on the
//! `ok` path beyond the ends of the result.

use std::sync::LazyLock;

use memchr::memmem::Finder;
use serde::Deserialize;

use super::forward::{reply_payload, unusable_reply};
use crate::audit::record::Detail;
use crate::jsonrpc::RawObject;
use crate::upstream::{UpstreamError, UpstreamReply};

/// The key searched for in results that do not hold it first or last; built once, since
/// building a searcher costs more than searching a small result with it.
static IS_ERROR_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"isError\""));

/// Longest tool-error text kept, in characters.
const MAX_MESSAGE: usize = 200;

/// The error message of a reply whose outcome is not `ok` (called only when the audit log
/// records it).
pub fn detail_of(reply: Result<UpstreamReply, UpstreamError>) -> Detail {
    let reply = match reply {
        Err(e) => return Detail::Upstream(e),
        Ok(reply) => reply,
    };
    match reply_payload(&reply) {
        Some((false, result)) if is_tool_error(result) => match first_text(result) {
            Some(text) => Detail::Text(text.into()),
            None => Detail::Static("the tool reported an error (isError: true) with no text"),
        },
        Some((false, _)) => Detail::None,
        Some((true, error)) => Detail::Text(jsonrpc_error(error).into()),
        None => Detail::Text(
            format!(
                "the server sent an invalid reply: {}",
                unusable_reply(&reply.message)
            )
            .into(),
        ),
    }
}

/// `text` without leading ASCII whitespace.
fn trim_start(text: &[u8]) -> &[u8] {
    text.trim_ascii_start()
}

fn trim_end(text: &[u8]) -> &[u8] {
    text.trim_ascii_end()
}

/// `Some(value)` when `isError` is the result's last member (`…,"isError":true}`).
fn last_member(result: &[u8]) -> Option<bool> {
    let body = trim_end(trim_end(result).strip_suffix(b"}")?);
    let (value, rest) = match body.strip_suffix(b"true") {
        Some(rest) => (true, rest),
        None => (false, body.strip_suffix(b"false")?),
    };
    let rest = trim_end(trim_end(rest).strip_suffix(b":")?);
    let before = trim_end(rest.strip_suffix(b"\"isError\"")?);
    // A key only follows `{` or `,`; then the final `}` makes it a top-level member.
    matches!(before.last(), Some(b'{' | b',')).then_some(value)
}

/// `Some(value)` when `isError` is the result's first member (`{"isError":true,…`).
fn first_member(result: &[u8]) -> Option<bool> {
    let body = trim_start(trim_start(result).strip_prefix(b"{")?);
    let rest = trim_start(body.strip_prefix(b"\"isError\"")?);
    let rest = trim_start(rest.strip_prefix(b":")?);
    let (value, after) = match rest.strip_prefix(b"true") {
        Some(after) => (true, after),
        None => (false, rest.strip_prefix(b"false")?),
    };
    matches!(trim_start(after).first(), Some(b',' | b'}')).then_some(value)
}

/// Whether a `tools/call` result says `isError: true` at its top level.
pub fn is_tool_error(result: &str) -> bool {
    let bytes = result.as_bytes();
    if let Some(v) = last_member(bytes).or_else(|| first_member(bytes)) {
        return v;
    }
    if IS_ERROR_KEY.find(bytes).is_none() {
        return false;
    }
    // Somewhere in the middle (or only nested): the one case that reads the whole object.
    RawObject::parse(result)
        .ok()
        .and_then(|o| o.get("isError"))
        .is_some_and(|v| v.get() == "true")
}

#[derive(Deserialize)]
struct Content<'a> {
    #[serde(borrow, default)]
    text: Option<std::borrow::Cow<'a, str>>,
}

fn capped(text: &str) -> String {
    match text.char_indices().nth(MAX_MESSAGE) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// The first text of a result's `content`, cut short.
fn first_text(result: &str) -> Option<String> {
    let content = RawObject::parse(result).ok()?.get("content")?;
    let items: Vec<Content<'_>> = serde_json::from_str(content.get()).ok()?;
    items.into_iter().find_map(|c| c.text).map(|t| capped(&t))
}

#[derive(Deserialize)]
struct ErrorObject<'a> {
    code: Option<i64>,
    #[serde(borrow)]
    message: Option<std::borrow::Cow<'a, str>>,
}

/// `upstream JSON-RPC error <code>: <message>`.
fn jsonrpc_error(error: &str) -> String {
    match serde_json::from_str::<ErrorObject<'_>>(error) {
        Ok(e) => format!(
            "upstream JSON-RPC error {}: {}",
            e.code.map_or_else(|| "?".to_owned(), |c| c.to_string()),
            capped(e.message.as_deref().unwrap_or_default())
        ),
        Err(_) => "upstream JSON-RPC error (malformed error object)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::record::Outcome;

    fn outcome_of(reply: &Result<UpstreamReply, UpstreamError>) -> Outcome {
        super::super::forward::write_reply(&mut Vec::new(), "1", "s", reply)
    }

    fn reply(message: &str) -> Result<UpstreamReply, UpstreamError> {
        Ok(UpstreamReply::unparsed(message.as_bytes().to_vec()))
    }

    #[test]
    fn is_error_is_found_where_sdks_put_it() {
        let error = r#"{"content":[{"type":"text","text":"boom"}],"isError":true}"#;
        assert!(is_tool_error(error));
        assert!(is_tool_error(r#"{ "isError" : true , "content": [] }"#));
        assert!(!is_tool_error(r#"{"content":[],"isError":false}"#));
        assert!(!is_tool_error(
            r#"{"content":[{"type":"text","text":"fine"}]}"#
        ));
        // In the middle: the whole object is read.
        assert!(is_tool_error(r#"{"a":1,"isError":true,"content":[]}"#));
        // Nested or quoted: not the result's own flag.
        assert!(!is_tool_error(r#"{"structuredContent":{"isError":true}}"#));
        assert!(!is_tool_error(
            r#"{"content":[{"type":"text","text":"\"isError\":true"}]}"#
        ));
        assert!(!is_tool_error(r#"{"x":{"y":1,"isError":true}}"#));
    }

    #[test]
    fn outcomes_and_messages() {
        let ok = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#;
        assert_eq!(outcome_of(&reply(ok)), Outcome::Ok);
        let tool = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"Missing required argument: message"}],"isError":true}}"#;
        assert_eq!(outcome_of(&reply(tool)), Outcome::ToolError);
        match detail_of(reply(tool)) {
            Detail::Text(t) => assert_eq!(&*t, "Missing required argument: message"),
            other => panic!("{other:?}"),
        }
        let rpc = r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"Unknown tool: x"}}"#;
        assert_eq!(outcome_of(&reply(rpc)), Outcome::UpstreamError);
        match detail_of(reply(rpc)) {
            Detail::Text(t) => assert_eq!(&*t, "upstream JSON-RPC error -32602: Unknown tool: x"),
            other => panic!("{other:?}"),
        }
        let timeout = Err(UpstreamError::Timeout {
            server: "s".into(),
            after_ms: 5,
        });
        assert_eq!(outcome_of(&timeout), Outcome::Timeout);
        assert!(matches!(detail_of(timeout), Detail::Upstream(_)));
        assert_eq!(outcome_of(&reply("<html>")), Outcome::UpstreamError);
    }
}
