//! Classifying one JSON-RPC message from the server: is it the response to our request, and
//! did the call succeed, fail with a JSON-RPC error, or return a tool error (`isError`)?

use mcpgate::jsonrpc::Envelope;
use serde::Deserialize;

/// What a response to a `tools/call` said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// A JSON-RPC error object, by code.
    JsonRpcError(i64),
    /// A result with `isError: true`.
    ToolError,
    /// A response to our id that is neither a proper result nor a proper error.
    Malformed,
}

#[derive(Deserialize)]
struct ErrorObject {
    code: i64,
}

#[derive(Deserialize)]
struct ResultHead {
    #[serde(rename = "isError", default)]
    is_error: Option<bool>,
}

/// `Some(verdict)` when `message` is the response carrying `want_id` (the id's JSON text);
/// `None` for anything else (a notification, a server request, another id, not JSON).
pub fn response_to(message: &[u8], want_id: &str) -> Option<Verdict> {
    let env = Envelope::decode(message).ok()?;
    if env.method.is_some() || env.id.map(|id| id.get()) != Some(want_id) {
        return None;
    }
    Some(match (env.result, env.error) {
        (_, Some(error)) => match serde_json::from_str::<ErrorObject>(error.get()) {
            Ok(e) => Verdict::JsonRpcError(e.code),
            Err(_) => Verdict::Malformed,
        },
        (Some(result), None) => match serde_json::from_str::<ResultHead>(result.get()) {
            Ok(ResultHead {
                is_error: Some(true),
            }) => Verdict::ToolError,
            Ok(_) => Verdict::Ok,
            Err(_) => Verdict::Malformed,
        },
        (None, None) => Verdict::Malformed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_responses() {
        let ok = br#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"hi"}]}}"#;
        assert_eq!(response_to(ok, "7"), Some(Verdict::Ok));
        assert_eq!(response_to(ok, "8"), None);
        let tool = br#"{"jsonrpc":"2.0","id":7,"result":{"content":[],"isError":true}}"#;
        assert_eq!(response_to(tool, "7"), Some(Verdict::ToolError));
        let err = br#"{"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"Unknown tool"}}"#;
        assert_eq!(response_to(err, "7"), Some(Verdict::JsonRpcError(-32602)));
        let note = br#"{"jsonrpc":"2.0","method":"notifications/message","params":{}}"#;
        assert_eq!(response_to(note, "7"), None);
        let request = br#"{"jsonrpc":"2.0","id":7,"method":"sampling/createMessage"}"#;
        assert_eq!(response_to(request, "7"), None);
        assert_eq!(response_to(b"not json", "7"), None);
        let bad = br#"{"jsonrpc":"2.0","id":7,"result":3}"#;
        assert_eq!(response_to(bad, "7"), Some(Verdict::Malformed));
        let empty = br#"{"jsonrpc":"2.0","id":7}"#;
        assert_eq!(response_to(empty, "7"), Some(Verdict::Malformed));
    }
}
