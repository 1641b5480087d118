//! Borrowed parsing of one JSON-RPC message.

use std::borrow::Cow;
use std::fmt;

use super::scan::{Kind, Scanner, SyntaxError};

/// A JSON value's text exactly as it appeared in a message (a whole, valid value).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RawJson<'a>(&'a str);

impl<'a> RawJson<'a> {
    /// `text` must be one whole JSON value, as the scanner returns them.
    pub(crate) fn new(text: &'a str) -> Self {
        RawJson(text)
    }

    pub fn get(self) -> &'a str {
        self.0
    }
}

impl fmt::Debug for RawJson<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// One JSON-RPC message, borrowing from the input buffer. This is the one envelope type of
/// the gateway: requests from clients, replies from upstreams and the mock's input all use it.
/// Strings are `Cow` because a JSON string with escapes cannot be borrowed.
#[derive(Debug, Default)]
pub struct Envelope<'a> {
    pub jsonrpc: Option<Cow<'a, str>>,
    /// Raw id as sent (number or string); `None` for notifications. A present `null` is kept
    /// (as `Some("null")`) so it can be refused rather than mistaken for a notification.
    pub id: Option<RawJson<'a>>,
    pub method: Option<Cow<'a, str>>,
    /// `null` params count as absent.
    pub params: Option<RawJson<'a>>,
    /// Present, even as `null`.
    pub result: Option<RawJson<'a>>,
    pub error: Option<RawJson<'a>>,
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

/// Why [`Envelope::decode`] refused a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Not JSON.
    Syntax(SyntaxError),
    /// JSON, but not shaped like a JSON-RPC message (not an object, a member of the wrong
    /// type, a member twice).
    Shape(&'static str),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Syntax(e) => e.fmt(f),
            DecodeError::Shape(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for DecodeError {}

impl<'a> Envelope<'a> {
    /// Reads the members a JSON-RPC message may have, without the protocol's checks (see
    /// [`parse_message`]): upstream messages are read with this, leniently. The whole text is
    /// checked to be JSON; other members are skipped.
    pub fn decode(input: &'a [u8]) -> Result<Self, DecodeError> {
        let mut s = Scanner::new(input);
        let mut env = Envelope::default();
        let mut shape: Option<&'static str> = None;
        if s.peek() != Some(b'{') {
            s.value().map_err(DecodeError::Syntax)?;
            s.end().map_err(DecodeError::Syntax)?;
            return Err(DecodeError::Shape("not a JSON-RPC message object"));
        }
        let mut seen = 0u8;
        s.object(|key, s| {
            let slot = match key.raw {
                _ if key.escaped => match key.decode()?.as_ref() {
                    k @ ("jsonrpc" | "id" | "method" | "params" | "result" | "error") => {
                        member_slot(k)
                    }
                    _ => None,
                },
                k => member_slot(k),
            };
            let Some(slot) = slot else {
                return s.value().map(drop);
            };
            if seen & (1 << slot) != 0 {
                shape.get_or_insert("a member appears twice");
            }
            seen |= 1 << slot;
            let kind = s.kind()?;
            match slot {
                JSONRPC | METHOD => {
                    let text = match kind {
                        Kind::String => Some(s.string()?.decode()?),
                        Kind::Null => {
                            s.value()?;
                            None
                        }
                        _ => {
                            s.value()?;
                            shape.get_or_insert(if slot == JSONRPC {
                                "jsonrpc must be a string"
                            } else {
                                "method must be a string"
                            });
                            None
                        }
                    };
                    if slot == JSONRPC {
                        env.jsonrpc = text;
                    } else {
                        env.method = text;
                    }
                }
                _ => {
                    let raw = RawJson(s.value()?);
                    match slot {
                        ID => env.id = Some(raw),
                        PARAMS => env.params = (kind != Kind::Null).then_some(raw),
                        RESULT => env.result = Some(raw),
                        _ => env.error = Some(raw),
                    }
                }
            }
            Ok(())
        })
        .map_err(DecodeError::Syntax)?;
        s.end().map_err(DecodeError::Syntax)?;
        match shape {
            Some(why) => Err(DecodeError::Shape(why)),
            None => Ok(env),
        }
    }

    pub fn kind(&self) -> MessageKind {
        match (self.method.is_some(), self.id.is_some()) {
            (true, true) => MessageKind::Request,
            (true, false) => MessageKind::Notification,
            (false, _) => MessageKind::Response,
        }
    }

    /// The id, or JSON `null` when absent (what error replies to unparseable ids carry).
    pub fn id_or_null(&self) -> &'a str {
        self.id.map_or("null", RawJson::get)
    }
}

/// For serde structs (the mock's arguments): a member present as `Some(raw)`, even when it is
/// `null` (with `#[serde(default)]` an absent member stays `None`).
pub(crate) fn present<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<&'de serde_json::value::RawValue>, D::Error> {
    <&'de serde_json::value::RawValue as serde::Deserialize>::deserialize(d).map(Some)
}

const JSONRPC: u8 = 0;
const ID: u8 = 1;
const METHOD: u8 = 2;
const PARAMS: u8 = 3;
const RESULT: u8 = 4;
const ERROR: u8 = 5;

fn member_slot(key: &str) -> Option<u8> {
    Some(match key {
        "jsonrpc" => JSONRPC,
        "id" => ID,
        "method" => METHOD,
        "params" => PARAMS,
        "result" => RESULT,
        "error" => ERROR,
        _ => return None,
    })
}

/// Parses and checks one message: `jsonrpc` must be "2.0"; an id must be a string or a
/// number (JSON-RPC also forbids `null` for requests in MCP); a message is a request,
/// a notification or a response.
pub fn parse_message(input: &[u8]) -> Result<Envelope<'_>, ParseError> {
    let env = match Envelope::decode(input) {
        Ok(env) => env,
        Err(DecodeError::Shape(why)) => return Err(ParseError::Invalid(why)),
        Err(DecodeError::Syntax(e)) => return Err(ParseError::NotJson(e.to_string())),
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
