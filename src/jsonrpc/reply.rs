//! Writing JSON-RPC replies into a caller-owned buffer (no intermediate allocations).

use super::scan::{escape_mask, first_flagged, word_at};

/// The JSON-RPC and MCP error codes the gateway answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    ParseError,
    InvalidRequest,
    MethodNotFound,
    InvalidParams,
    InternalError,
    /// An upstream server failed (dead, unreachable, invalid reply).
    UpstreamFailed,
    /// An upstream server did not answer in time.
    UpstreamTimeout,
    /// The client cancelled the request (answered only because HTTP needs an answer).
    RequestCancelled,
    /// MCP 2026-07-28: the HTTP headers do not match the body, or a required one is missing.
    HeaderMismatch,
    /// MCP 2026-07-28: the request's protocol version is not served.
    UnsupportedProtocolVersion,
    /// The caller's key (or the URL's tool group) does not grant what the request names.
    Denied,
    /// A limit of the caller's key, team or customer refuses the request.
    LimitExceeded,
}

impl ErrorCode {
    pub fn code(self) -> i32 {
        match self {
            ErrorCode::ParseError => -32700,
            ErrorCode::InvalidRequest => -32600,
            ErrorCode::MethodNotFound => -32601,
            ErrorCode::InvalidParams => -32602,
            ErrorCode::InternalError => -32603,
            ErrorCode::UpstreamFailed => -32000,
            ErrorCode::UpstreamTimeout => -32001,
            ErrorCode::RequestCancelled => -32800,
            ErrorCode::HeaderMismatch => -32020,
            ErrorCode::UnsupportedProtocolVersion => -32022,
            ErrorCode::Denied => -32003,
            ErrorCode::LimitExceeded => -32029,
        }
    }
}

/// `{"jsonrpc":"2.0","id":<id>,"result":<result>}` with both parts spliced raw.
pub fn write_result(out: &mut Vec<u8>, id: &str, result: &str) {
    out.reserve(result.len() + id.len() + 36);
    out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(br#","result":"#);
    out.extend_from_slice(result.as_bytes());
    out.push(b'}');
}

/// An error reply; `message` is escaped as a JSON string.
pub fn write_error(out: &mut Vec<u8>, id: &str, code: ErrorCode, message: &str) {
    write_error_with_data(out, id, code, message, None);
}

/// An error reply with a raw JSON `data` member.
pub fn write_error_with_data(
    out: &mut Vec<u8>,
    id: &str,
    code: ErrorCode,
    message: &str,
    data: Option<&str>,
) {
    out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(br#","error":{"code":"#);
    out.extend_from_slice(itoa::Buffer::new().format(code.code()).as_bytes());
    out.extend_from_slice(br#","message":"#);
    write_json_str(out, message);
    if let Some(data) = data {
        out.extend_from_slice(br#","data":"#);
        out.extend_from_slice(data.as_bytes());
    }
    out.extend_from_slice(b"}}");
}

/// Appends `s` as a quoted JSON string (escaping quotes, backslashes and control characters).
pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    while let Some(at) = next_escape(bytes, start) {
        let b = bytes[at];
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            _ => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ],
        };
        out.extend_from_slice(&bytes[start..at]);
        out.extend_from_slice(escape);
        start = at + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Whether a JSON string must escape byte `b`: a quote, a backslash or a control character.
/// The byte-wise form of [`escape_mask`], for strings shorter than a word.
fn must_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// Where the next byte a JSON string must escape is, from `from` on: eight bytes at a time,
/// the last few through the string's final word, so a string costs a word or two rather than
/// a branch per byte. Only a string shorter than a word is looked at byte by byte.
fn next_escape(bytes: &[u8], mut from: usize) -> Option<usize> {
    while let Some(w) = word_at(bytes, from) {
        let mask = escape_mask(w);
        if mask != 0 {
            return Some(from + first_flagged(mask));
        }
        from += 8;
    }
    if from >= bytes.len() {
        return None;
    }
    // Fewer than eight bytes are left. Look at the last eight of the string with the bytes
    // before `from` turned into spaces (one of them may be the escape just written, whose flag
    // could spill onto the next byte), instead of copying the rest into a padded word.
    if let Some(last) = bytes.len().checked_sub(8) {
        const SPACES: u64 = u64::from_le_bytes([b' '; 8]);
        let keep = u64::MAX << ((from - last) * 8);
        let w = (word_at(bytes, last)? & keep) | (SPACES & !keep);
        let mask = escape_mask(w);
        return (mask != 0).then(|| last + first_flagged(mask));
    }
    bytes[from..]
        .iter()
        .position(|&b| must_escape(b))
        .map(|at| from + at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_escape_is_found_at_every_length_and_offset() {
        for len in 0..24 {
            for at in 0..=len {
                for (special, filler) in [
                    (b'"', b'a'),
                    (b'\\', b'a'),
                    (b'\n', b'a'),
                    (0x1f, b'a'),
                    // The byte one above a flagged one, where a borrow could spill a flag.
                    (b'"', b'"' + 1),
                    (b'\\', b'\\' + 1),
                    (0x1f, b' '),
                ] {
                    assert!(!must_escape(filler));
                    let mut bytes = vec![filler; len];
                    if at < len {
                        bytes[at] = special;
                    }
                    for from in 0..=len {
                        let expected = (at < len && at >= from).then_some(at);
                        assert_eq!(
                            next_escape(&bytes, from),
                            expected,
                            "len {len}, escape at {at}, from {from}"
                        );
                    }
                }
            }
        }
        let mut out = Vec::new();
        write_json_str(&mut out, "tool_0001\"x\n");
        assert_eq!(out, br#""tool_0001\"x\n""#);
    }

    #[test]
    fn result_is_spliced_byte_for_byte() {
        let mut out = Vec::new();
        write_result(
            &mut out,
            r#""x""#,
            r#"{"content":[ {"type":"text","text":"é"} ]}"#,
        );
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"jsonrpc":"2.0","id":"x","result":{"content":[ {"type":"text","text":"é"} ]}}"#
        );
    }

    #[test]
    fn error_message_is_escaped() {
        let mut out = Vec::new();
        write_error(&mut out, "null", ErrorCode::ParseError, "bad \"quote\"\n");
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["error"]["code"], -32700);
        assert_eq!(v["error"]["message"], "bad \"quote\"\n");
        assert!(v["id"].is_null());
    }

    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        for len in 0..24 {
            for at in 0..len {
                for special in [
                    "\"", "\\", "\n", "\r", "\t", "\u{1}", "\u{1f}", "\u{7f}", "é", "😀",
                ] {
                    let mut text: String = "a".repeat(len);
                    text.replace_range(at..at + 1, special);
                    // Once alone, once with a second one at the end (the padded tail).
                    for text in [text.clone(), format!("{text}\u{2}")] {
                        let mut out = Vec::new();
                        write_json_str(&mut out, &text);
                        let expected = serde_json::to_string(&text).unwrap();
                        assert_eq!(String::from_utf8(out).unwrap(), expected, "{text:?}");
                    }
                }
            }
        }
    }
}
