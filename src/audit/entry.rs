//! An audit record as it is written and read: one JSON object per record (a JSONL line, an
//! element of an audit query's answer) and one row of the SQLite store, with the same names.
//!
//! Owns: turning a worker's [`AuditRecord`] into text (times, session ids, error messages,
//! redacted arguments), on the log thread. Must never: be built on a worker core.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::clock::rfc3339_millis;
use super::record::{AuditRecord, Detail};
use super::redact::Redactor;
use crate::jsonrpc::write_json_str;

/// `key` of a request when no virtual keys are configured.
pub const ANONYMOUS: &str = "anonymous";
/// Longest error message kept, in characters.
const MAX_ERROR_CHARS: usize = 500;

/// Written by [`AuditEntry::write_json`] (by hand: serde's derive spent more per record than the
/// SQLite insert), read back with serde.
#[derive(Debug, Clone, Deserialize)]
pub struct AuditEntry {
    /// When the request arrived, microseconds since the Unix epoch (the store's sort key).
    #[serde(skip)]
    pub at_micros: u64,
    /// When the request arrived: RFC 3339, UTC, milliseconds.
    pub time: String,
    /// The virtual key's name (never its value); `anonymous` without keys.
    pub key: String,
    /// The tool group of the URL (`/mcp/{group}`).
    pub group: Option<String>,
    /// The session's id: 16 hex digits of its nonce, not the token.
    pub session: Option<String>,
    pub client_name: Option<String>,
    pub client_version: Option<String>,
    pub method: String,
    pub server: Option<String>,
    /// The tool or prompt (as the server knows it), the resource URI, or the unknown name.
    pub tool: Option<String>,
    pub outcome: String,
    pub error: Option<String>,
    pub latency_us: u64,
    pub upstream_us: Option<u64>,
    pub request_bytes: u64,
    pub reply_bytes: u64,
    /// The JSON-RPC id as the client sent it.
    pub rpc_id: Option<Box<RawValue>>,
    /// Only with `audit.log_arguments`, redacted.
    pub arguments: Option<Box<RawValue>>,
}

impl AuditEntry {
    /// Appends the record as one JSON object, fields in declaration order, absent ones `null`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        fn text(out: &mut Vec<u8>, name: &[u8], value: Option<&str>) {
            out.extend_from_slice(name);
            match value {
                Some(v) => write_json_str(out, v),
                None => out.extend_from_slice(b"null"),
            }
        }
        fn number(out: &mut Vec<u8>, name: &[u8], value: Option<u64>) {
            out.extend_from_slice(name);
            match value {
                Some(n) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
                None => out.extend_from_slice(b"null"),
            }
        }
        fn raw(out: &mut Vec<u8>, name: &[u8], value: Option<&RawValue>) {
            out.extend_from_slice(name);
            out.extend_from_slice(value.map_or("null", RawValue::get).as_bytes());
        }
        text(out, b"{\"time\":", Some(&self.time));
        text(out, b",\"key\":", Some(&self.key));
        text(out, b",\"group\":", self.group.as_deref());
        text(out, b",\"session\":", self.session.as_deref());
        text(out, b",\"client_name\":", self.client_name.as_deref());
        text(out, b",\"client_version\":", self.client_version.as_deref());
        text(out, b",\"method\":", Some(&self.method));
        text(out, b",\"server\":", self.server.as_deref());
        text(out, b",\"tool\":", self.tool.as_deref());
        text(out, b",\"outcome\":", Some(&self.outcome));
        text(out, b",\"error\":", self.error.as_deref());
        number(out, b",\"latency_us\":", Some(self.latency_us));
        number(out, b",\"upstream_us\":", self.upstream_us);
        number(out, b",\"request_bytes\":", Some(self.request_bytes));
        number(out, b",\"reply_bytes\":", Some(self.reply_bytes));
        raw(out, b",\"rpc_id\":", self.rpc_id.as_deref());
        raw(out, b",\"arguments\":", self.arguments.as_deref());
        out.push(b'}');
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

fn capped(text: &str) -> String {
    match text.char_indices().nth(MAX_ERROR_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

impl AuditEntry {
    /// The entry of `record`; arguments (when recorded) are redacted with `redactor`.
    pub fn new(record: &AuditRecord, redactor: &Redactor) -> AuditEntry {
        let error = match &record.detail {
            Detail::None => None,
            Detail::Static(s) => Some(capped(s)),
            Detail::Text(s) => Some(capped(s)),
            Detail::Upstream(e) => Some(capped(&e.to_string())),
        };
        let rpc_id = match record.rpc_id.raw() {
            Some(raw) => RawValue::from_string(raw.to_owned()).ok(),
            None => {
                let cut = serde_json::to_string(&format!("{}…", record.rpc_id.start()));
                cut.ok().and_then(|s| RawValue::from_string(s).ok())
            }
        };
        let arguments = record
            .arguments
            .as_deref()
            .and_then(|raw| RawValue::from_string(redactor.redact(raw)).ok());
        AuditEntry {
            at_micros: record.at_micros,
            time: rfc3339_millis(record.at_micros),
            key: record.key.as_deref().unwrap_or(ANONYMOUS).to_owned(),
            group: record.group.as_deref().map(str::to_owned),
            session: record.session.map(|nonce| hex(&nonce)),
            client_name: non_empty(record.client.name()),
            client_version: non_empty(record.client.version()),
            method: record.method.as_str().to_owned(),
            server: record.server.as_deref().map(str::to_owned),
            tool: record.target.as_str().map(str::to_owned),
            outcome: record.outcome.as_str().to_owned(),
            error,
            latency_us: record.latency_us,
            upstream_us: record.upstream_us,
            request_bytes: record.request_bytes,
            reply_bytes: record.reply_bytes,
            rpc_id,
            arguments,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::audit::record::{Outcome, RoutedMethod, RpcId, Target};
    use crate::mcp::client_info::ClientInfo;
    use crate::upstream::UpstreamError;

    pub(crate) fn sample() -> AuditRecord {
        AuditRecord {
            at_micros: 1_700_000_000_123_456,
            method: RoutedMethod::ToolsCall,
            outcome: Outcome::Timeout,
            key: Some(Arc::from("eng")),
            group: Some(Arc::from("readonly")),
            session: Some([0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3]),
            client: ClientInfo::new("claude-code", "1.0"),
            server: Some(Arc::from("mock")),
            target: Target::Item(Arc::from("sleep")),
            detail: Detail::Upstream(UpstreamError::Timeout {
                server: "mock".into(),
                after_ms: 200,
            }),
            latency_us: 200_345,
            upstream_us: None,
            request_bytes: 120,
            reply_bytes: 180,
            rpc_id: RpcId::new(r#""req-7""#),
            arguments: Some(r#"{"ms":5000,"token":"s3cret"}"#.into()),
        }
    }

    #[test]
    fn records_become_json_with_every_field() {
        let redactor = Redactor::new(&["token".to_owned()]);
        let entry = AuditEntry::new(&sample(), &redactor);
        let mut text = Vec::new();
        entry.write_json(&mut text);
        let v: serde_json::Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(v["time"], "2023-11-14T22:13:20.123Z");
        assert_eq!(v["key"], "eng");
        assert_eq!(v["group"], "readonly");
        assert_eq!(v["session"], "deadbeef00010203");
        assert_eq!(v["client_name"], "claude-code");
        assert_eq!(v["client_version"], "1.0");
        assert_eq!(v["method"], "tools/call");
        assert_eq!(v["server"], "mock");
        assert_eq!(v["tool"], "sleep");
        assert_eq!(v["outcome"], "timeout");
        assert_eq!(
            v["error"],
            "upstream server 'mock' did not answer within 200 ms"
        );
        assert_eq!(v["latency_us"], 200_345);
        assert_eq!(v["upstream_us"], serde_json::Value::Null);
        assert_eq!(
            (v["request_bytes"].as_u64(), v["reply_bytes"].as_u64()),
            (Some(120), Some(180))
        );
        assert_eq!(v["rpc_id"], "req-7");
        assert_eq!(v["arguments"]["ms"], 5000);
        assert_eq!(v["arguments"]["token"], "[redacted]");
        assert_eq!(v.as_object().unwrap().len(), 17);
        // What is written reads back as the same entry.
        let again: AuditEntry = serde_json::from_slice(&text).unwrap();
        let mut rewritten = Vec::new();
        again.write_json(&mut rewritten);
        assert_eq!(rewritten, text);
    }

    #[test]
    fn strings_that_need_escapes_stay_json() {
        let mut record = sample();
        record.detail = Detail::Text("quote \" backslash \\ newline \n nul \u{0} é".into());
        let entry = AuditEntry::new(&record, &Redactor::new(&[]));
        let mut text = Vec::new();
        entry.write_json(&mut text);
        let v: serde_json::Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(v["error"], "quote \" backslash \\ newline \n nul \u{0} é");
    }

    #[test]
    fn anonymous_callers_and_cut_ids() {
        let mut record = sample();
        record.key = None;
        record.rpc_id = RpcId::new(&format!("\"{}\"", "x".repeat(60)));
        record.arguments = None;
        let entry = AuditEntry::new(&record, &Redactor::new(&[]));
        assert_eq!(entry.key, "anonymous");
        let id: String = serde_json::from_str(entry.rpc_id.unwrap().get()).unwrap();
        assert!(id.ends_with('…') && id.starts_with("\"xxx"), "{id}");
        assert!(entry.arguments.is_none());
    }
}
