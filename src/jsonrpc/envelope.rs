//! Borrowed parsing of one JSON-RPC message.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

/// One JSON-RPC message, borrowing from the input buffer. This is the one envelope type of
/// the gateway: requests from clients, replies from upstreams and the mock's input all use it.
/// Strings are `Cow` because a JSON string with escapes cannot be borrowed.
#[derive(Deserialize, Debug)]
pub struct Envelope<'a> {
    #[serde(borrow, default)]
    pub jsonrpc: Option<Cow<'a, str>>,
    /// Raw id as sent (number or string); `None` for notifications. A present `null` is kept
    /// (as `Some("null")`) so it can be refused rather than mistaken for a notification.
    #[serde(borrow, default, deserialize_with = "present")]
    pub id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub method: Option<Cow<'a, str>>,
    /// `null` params count as absent.
    #[serde(borrow, default)]
    pub params: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub result: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub error: Option<&'a RawValue>,
}

/// Deserializes a member that is present as `Some(raw)`, even when it is `null`
/// (with `#[serde(default)]` an absent member stays `None`).
pub(crate) fn present<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<&'de RawValue>, D::Error> {
    <&'de RawValue>::deserialize(d).map(Some)
}

/// What a well-formed message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Request,
    Notification,
    Response,
}

/// Why a message could not be taken; maps to a JSON-RPC error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Not JSON at all (-32700).
    NotJson(String),
    /// JSON, but not a JSON-RPC 2.0 message (-32600).
    Invalid(&'static str),
}

impl<'a> Envelope<'a> {
    pub fn kind(&self) -> MessageKind {
        match (self.method.is_some(), self.id.is_some()) {
            (true, true) => MessageKind::Request,
            (true, false) => MessageKind::Notification,
            (false, _) => MessageKind::Response,
        }
    }

    /// The id, or JSON `null` when absent (what error replies to unparseable ids carry).
    pub fn id_or_null(&self) -> &'a str {
        self.id.map_or("null", RawValue::get)
    }
}

/// Parses and checks one message: `jsonrpc` must be "2.0"; an id must be a string or a
/// number (JSON-RPC also forbids `null` for requests in MCP); a message is a request,
/// a notification or a response.
pub fn parse_message(input: &[u8]) -> Result<Envelope<'_>, ParseError> {
    let env: Envelope<'_> = match serde_json::from_slice(input) {
        Ok(env) => env,
        Err(e) if e.is_data() => return Err(ParseError::Invalid("not a JSON-RPC message object")),
        Err(e) => return Err(ParseError::NotJson(e.to_string())),
    };
    if env.jsonrpc.as_deref() != Some("2.0") {
        return Err(ParseError::Invalid("jsonrpc must be \"2.0\""));
    }
    if let Some(id) = env.id {
        let first = id.get().as_bytes().first().copied();
        if !matches!(first, Some(b'"' | b'-' | b'0'..=b'9')) {
            return Err(ParseError::Invalid("id must be a string or a number"));
        }
    }
    if env.method.is_none() && env.result.is_none() && env.error.is_none() {
        return Err(ParseError::Invalid(
            "message has no method, result or error",
        ));
    }
    if env.method.is_none() && env.id.is_none() {
        return Err(ParseError::Invalid("response has no id"));
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_keeps_raw_params_and_id() {
        let msg = br#"{"jsonrpc":"2.0","id":"a-1","method":"tools/call","params":{"name":"x","arguments":{"k": 1.50}}}"#;
        let env = parse_message(msg).unwrap();
        assert_eq!(env.kind(), MessageKind::Request);
        assert_eq!(env.id.unwrap().get(), r#""a-1""#);
        assert_eq!(
            env.params.unwrap().get(),
            r#"{"name":"x","arguments":{"k": 1.50}}"#
        );
    }

    #[test]
    fn classifies_and_rejects() {
        assert_eq!(
            parse_message(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
                .unwrap()
                .kind(),
            MessageKind::Notification
        );
        assert_eq!(
            parse_message(br#"{"jsonrpc":"2.0","id":3,"result":{}}"#)
                .unwrap()
                .kind(),
            MessageKind::Response
        );
        assert!(matches!(
            parse_message(b"{nope"),
            Err(ParseError::NotJson(_))
        ));
        assert!(matches!(
            parse_message(b"[1,2]"),
            Err(ParseError::Invalid(_))
        ));
        assert!(matches!(
            parse_message(br#"{"id":1,"method":"ping"}"#),
            Err(ParseError::Invalid(_))
        ));
        assert!(matches!(
            parse_message(br#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#),
            Err(ParseError::Invalid(_))
        ));
        assert!(matches!(
            parse_message(br#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#),
            Err(ParseError::Invalid(_))
        ));
        assert!(matches!(
            parse_message(br#"{"jsonrpc":"2.0","result":{}}"#),
            Err(ParseError::Invalid(_))
        ));
    }
}
