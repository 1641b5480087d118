//! An audit record as it is written and read: one JSON object per record, with the same names
//! everywhere — a line of the JSONL file, an element of a batch in the SQLite store (a row of
//! its `audit` view), an element of an audit query's answer.
//!
//! Owns: turning a worker's [`AuditRecord`] into that text (times, session ids, error
//! messages, redacted arguments), on the log thread. Must never: run on a worker core.

use super::clock::TimeWriter;
use super::record::{AuditRecord, Detail};
use super::redact::Redactor;
use crate::jsonrpc::write_json_str;

/// `key` of a request when no virtual keys are configured.
pub const ANONYMOUS: &str = "anonymous";
/// Longest error message kept, in characters.
const MAX_ERROR_CHARS: usize = 500;
/// The fields of an entry, in the order they are written.
pub const FIELDS: [&str; 17] = [
    "time",
    "key",
    "group",
    "session",
    "client_name",
    "client_version",
    "method",
    "server",
    "tool",
    "outcome",
    "error",
    "latency_us",
    "upstream_us",
    "request_bytes",
    "reply_bytes",
    "rpc_id",
    "arguments",
];

/// A layout of entries: how field names, times and short strings are written. The values
/// themselves are written the same way in every layout, by [`EntryWriter`].
pub trait EntryForm {
    /// The text being written.
    fn out(&mut self) -> &mut Vec<u8>;
    /// What comes before field `index`'s value (its name, a separator, an opening bracket).
    fn field(&mut self, index: usize);
    /// The time the request arrived (field 0's value).
    fn time(&mut self, at_micros: u64);
    /// A short string that often repeats (names, ids of the caller and the item), or null.
    fn name(&mut self, value: Option<&str>);
    /// What closes the entry.
    fn end(&mut self);
}

/// Entries as JSON objects with the names of [`FIELDS`]: the JSONL file's lines, query answers.
pub struct ObjectForm<'a> {
    pub out: &'a mut Vec<u8>,
    pub time: &'a mut TimeWriter,
}

impl EntryForm for ObjectForm<'_> {
    #[inline(always)]
    fn out(&mut self) -> &mut Vec<u8> {
        self.out
    }

    #[inline(always)]
    fn field(&mut self, index: usize) {
        self.out
            .extend_from_slice(if index == 0 { b"{\"" } else { b",\"" });
        self.out.extend_from_slice(FIELDS[index].as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    #[inline(always)]
    fn time(&mut self, at_micros: u64) {
        self.out.push(b'"');
        self.time.write(self.out, at_micros);
        self.out.push(b'"');
    }

    #[inline(always)]
    fn name(&mut self, value: Option<&str>) {
        match value {
            Some(v) => write_json_str(self.out, v),
            None => self.out.extend_from_slice(b"null"),
        }
    }

    #[inline(always)]
    fn end(&mut self) {
        self.out.push(b'}');
    }
}

/// Writes records as entries, every field of [`FIELDS`] present (`null` when absent),
/// straight from the worker's record into a batch's text.
///
/// Why by hand and straight through: the log thread shares a small machine's cores with the
/// workers, and an intermediate entry of owned strings, or serde's derive, cost more per
/// record than the store's insert (see `perf/RESULTS.md`).
pub struct EntryWriter {
    redactor: Redactor,
    time: TimeWriter,
}

#[inline(always)]
fn number(out: &mut Vec<u8>, value: Option<u64>) {
    match value {
        Some(n) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
}

/// `text` as a JSON string, cut after [`MAX_ERROR_CHARS`] characters (marked with `…`).
fn write_capped(out: &mut Vec<u8>, text: &str) {
    match text.char_indices().nth(MAX_ERROR_CHARS) {
        Some((end, _)) => write_json_str(out, &format!("{}…", &text[..end])),
        None => write_json_str(out, text),
    }
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

impl EntryWriter {
    /// Arguments (when recorded) are redacted with `redactor`.
    pub fn new(redactor: Redactor) -> EntryWriter {
        EntryWriter {
            redactor,
            time: TimeWriter::default(),
        }
    }

    /// Appends `record` as one JSON object (a JSONL line, without its line break).
    pub fn append_object(&mut self, record: &AuditRecord, out: &mut Vec<u8>) {
        let mut form = ObjectForm {
            out,
            time: &mut self.time,
        };
        write_entry(&mut form, record, &self.redactor);
    }

    /// Appends `record` in `form`.
    pub fn append<F: EntryForm>(&self, form: &mut F, record: &AuditRecord) {
        write_entry(form, record, &self.redactor);
    }
}

/// The one body that writes an entry's values, whatever the form.
#[inline(always)]
fn write_entry<F: EntryForm>(form: &mut F, record: &AuditRecord, redactor: &Redactor) {
    form.field(0);
    form.time(record.at_micros);
    form.field(1);
    form.name(Some(record.key.as_deref().unwrap_or(ANONYMOUS)));
    form.field(2);
    form.name(record.group.as_deref());
    form.field(3);
    match record.session {
        Some(nonce) => {
            const DIGITS: &[u8; 16] = b"0123456789abcdef";
            let mut hex = [0u8; 16];
            for (i, b) in nonce.iter().enumerate() {
                hex[2 * i] = DIGITS[usize::from(b >> 4)];
                hex[2 * i + 1] = DIGITS[usize::from(b & 15)];
            }
            // Hex digits are ASCII.
            form.name(std::str::from_utf8(&hex).ok());
        }
        None => form.name(None),
    }
    form.field(4);
    form.name(non_empty(record.client.name()));
    form.field(5);
    form.name(non_empty(record.client.version()));
    form.field(6);
    form.name(Some(record.method.as_str()));
    form.field(7);
    form.name(record.server.as_deref());
    form.field(8);
    form.name(record.target.as_str());
    form.field(9);
    form.name(Some(record.outcome.as_str()));
    form.field(10);
    let out = form.out();
    match &record.detail {
        Detail::None => out.extend_from_slice(b"null"),
        Detail::Static(s) => write_capped(out, s),
        Detail::Text(s) => write_capped(out, s),
        Detail::Upstream(e) => write_capped(out, &e.to_string()),
    }
    form.field(11);
    number(form.out(), Some(record.latency_us));
    form.field(12);
    number(form.out(), record.upstream_us);
    form.field(13);
    number(form.out(), Some(record.request_bytes));
    form.field(14);
    number(form.out(), Some(record.reply_bytes));
    form.field(15);
    let out = form.out();
    match record.rpc_id.raw() {
        // The id's own JSON text, as the request's parser accepted it.
        Some(raw) if !raw.is_empty() => out.extend_from_slice(raw.as_bytes()),
        Some(_) => out.extend_from_slice(b"null"),
        None => write_json_str(out, &format!("{}…", record.rpc_id.start())),
    }
    form.field(16);
    let out = form.out();
    match &record.arguments {
        Some(raw) => out.extend_from_slice(redactor.redact(raw).as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
    form.end();
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::audit::record::{Outcome, RoutedMethod, RpcId, Target};
    use crate::mcp::client_info::ClientInfo;
    use crate::upstream::UpstreamError;

    /// A fresh directory of its own for one test's files.
    pub(crate) fn temp_dir(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "mcpgate-audit-{tag}-{}-{}",
            std::process::id(),
            crate::audit::clock::now_micros()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

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

    fn written(record: &AuditRecord, redact: &[&str]) -> serde_json::Value {
        let names: Vec<String> = redact.iter().map(|s| (*s).to_owned()).collect();
        let mut writer = EntryWriter::new(Redactor::new(&names));
        let mut text = Vec::new();
        writer.append_object(record, &mut text);
        serde_json::from_slice(&text).unwrap()
    }

    #[test]
    fn records_become_json_with_every_field() {
        let v = written(&sample(), &["token"]);
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
        assert_eq!(v.as_object().unwrap().len(), FIELDS.len());
        // Written in the order of FIELDS (serde_json's map reads them back sorted).
        let mut text = Vec::new();
        EntryWriter::new(Redactor::new(&[])).append_object(&sample(), &mut text);
        let text = String::from_utf8(text).unwrap();
        let at: Vec<usize> = FIELDS
            .iter()
            .map(|f| text.find(&format!("\"{f}\":")).unwrap())
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{text}");
    }

    #[test]
    fn absent_fields_are_null() {
        let mut record = sample();
        record.group = None;
        record.session = None;
        record.client = ClientInfo::default();
        record.server = None;
        record.target = Target::None;
        record.detail = Detail::None;
        record.arguments = None;
        let v = written(&record, &[]);
        for name in [
            "group",
            "session",
            "client_name",
            "client_version",
            "server",
            "tool",
            "error",
            "upstream_us",
            "arguments",
        ] {
            assert_eq!(v[name], serde_json::Value::Null, "{name}");
        }
        assert_eq!(v.as_object().unwrap().len(), FIELDS.len());
    }

    #[test]
    fn strings_that_need_escapes_stay_json() {
        let mut record = sample();
        record.detail = Detail::Text("quote \" backslash \\ newline \n nul \u{0} é".into());
        record.target = Target::Text("file:///a\"b".into());
        let v = written(&record, &[]);
        assert_eq!(v["error"], "quote \" backslash \\ newline \n nul \u{0} é");
        assert_eq!(v["tool"], "file:///a\"b");
    }

    #[test]
    fn long_errors_are_cut() {
        let mut record = sample();
        record.detail = Detail::Text("é".repeat(MAX_ERROR_CHARS + 20).into());
        let v = written(&record, &[]);
        let error = v["error"].as_str().unwrap();
        assert_eq!(error.chars().count(), MAX_ERROR_CHARS + 1);
        assert!(error.ends_with("é…"), "{error}");
    }

    #[test]
    fn anonymous_callers_and_cut_ids() {
        let mut record = sample();
        record.key = None;
        record.rpc_id = RpcId::new(&format!("\"{}\"", "x".repeat(60)));
        record.arguments = None;
        let v = written(&record, &[]);
        assert_eq!(v["key"], "anonymous");
        let id = v["rpc_id"].as_str().unwrap();
        assert!(id.ends_with('…') && id.starts_with("\"xxx"), "{id}");
        assert_eq!(v["arguments"], serde_json::Value::Null);
        record.rpc_id = RpcId::new("12");
        assert_eq!(written(&record, &[])["rpc_id"], 12);
    }

    #[test]
    fn one_writer_writes_many_records() {
        let mut writer = EntryWriter::new(Redactor::new(&[]));
        let mut text = b"[".to_vec();
        let mut record = sample();
        for i in 0..3u64 {
            if i > 0 {
                text.push(b',');
            }
            record.at_micros += i * 86_400_000_000;
            writer.append_object(&record, &mut text);
        }
        text.push(b']');
        let v: Vec<serde_json::Value> = serde_json::from_slice(&text).unwrap();
        let times: Vec<&str> = v.iter().map(|e| e["time"].as_str().unwrap()).collect();
        assert_eq!(
            times,
            [
                "2023-11-14T22:13:20.123Z",
                "2023-11-15T22:13:20.123Z",
                "2023-11-17T22:13:20.123Z"
            ]
        );
    }
}
