//! The mock upstream's tools: the catalog it publishes through `tools/list` and what `tools/call`
//! does for each tool.
//!
//! - Fixed tools, always present: `echo`, `add` (with an `outputSchema` and `structuredContent`) and
//!   `sleep` (answers after the requested delay, capped at [`MAX_SLEEP_MS`]).
//! - Fault tools, listed only with `faults` on: `fault_exit`, `fault_garbage`, `fault_hang`. The
//!   transport acts the fault out (see [`super::MockFault`]).
//! - Synthetic tools `tool_0001` ..: input schemas that look like what real servers publish (a few
//!   typed, described properties and a `required` list, varied deterministically by index). They all
//!   return the same `reply_bytes` bytes of ASCII text and do not check their arguments, so a load
//!   generator can call any of them with `{}`.
//!
//! Everything that does not depend on the call is serialized once in [`Catalog::new`]: the pages of
//! `tools/list` (with their opaque cursors) and the synthetic tools' result. A synthetic call then
//! costs one borrowed parse of `params` and one copy of the precomputed result.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::{is_object, MockConfig, INVALID_PARAMS};
use crate::jsonrpc::present;
use crate::jsonrpc::write_json_str;

/// The longest delay `sleep` honours, in milliseconds.
pub const MAX_SLEEP_MS: u64 = 60_000;

/// What `tools/call` did. For `Done` and `Garbage` the result object has been appended to the
/// caller's buffer; for the others the buffer is left as it was.
pub(crate) enum Call {
    /// A result was written; answer after the configured latency plus `extra_delay`.
    Done {
        /// The tool's own delay (`sleep`), on top of the configured latency.
        extra_delay: Duration,
    },
    /// A JSON-RPC error (bad params, unknown tool).
    Error {
        /// The JSON-RPC error code.
        code: i32,
        /// The error message.
        message: String,
    },
    /// `fault_garbage`: a result (the arguments echoed as text) was written.
    Garbage,
    /// `fault_exit`.
    Exit,
    /// `fault_hang`.
    Hang,
}

/// The tool catalog with everything precomputed.
pub(crate) struct Catalog {
    /// Each `tools/list` result, serialized, including its `nextCursor`.
    pages: Vec<Box<[u8]>>,
    /// Opaque cursor -> index into `pages` (page 0 has no cursor).
    cursors: HashMap<Box<str>, usize>,
    /// Number of synthetic tools.
    synthetic: usize,
    /// Digits in a synthetic tool's number (`tool_0001` has 4; more when there are 10000+ tools).
    width: usize,
    /// The synthetic tools' shared `result` object.
    synthetic_result: Box<[u8]>,
    /// Whether the fault tools exist.
    faults: bool,
}

/// `tools/call` params, borrowed. `_meta` and other fields are ignored.
#[derive(Deserialize)]
struct CallParams<'a> {
    #[serde(borrow)]
    name: std::borrow::Cow<'a, str>,
    /// `null` counts as absent.
    #[serde(borrow, default)]
    arguments: Option<&'a RawValue>,
}

/// The arguments of the fixed tools, as raw JSON so the type checks give precise messages.
#[derive(Deserialize, Default)]
struct FixedArgs<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    message: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    a: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    b: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    ms: Option<&'a RawValue>,
}

/// A JSON number as the client wrote it.
#[derive(Clone, Copy)]
enum Num {
    Int(i64),
    Float(f64),
}

const TEXT_HEAD: &[u8] = br#"{"content":[{"type":"text","text":"#;

impl Catalog {
    /// Builds the tool list and serializes its pages and the synthetic result.
    pub(crate) fn new(cfg: &MockConfig) -> Catalog {
        let mut tools = tool_table(FIXED_TOOLS);
        if cfg.faults {
            tools.extend(tool_table(FAULT_TOOLS));
        }
        let width = cfg.tools.to_string().len().max(4);
        let pool = property_pool();
        tools.extend((1..=cfg.tools).map(|n| synthetic_tool(n, width, cfg.reply_bytes, &pool)));

        // page_size 0 means a single page (`max(1)` keeps an empty division impossible).
        let per_page = match cfg.page_size {
            0 => tools.len().max(1),
            n => n,
        };
        let page_count = tools.len().div_ceil(per_page);
        let total = tools.len();
        let cursor_of = |page: usize| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(format!("mcpgate-mock:page={page}:of={total}"))
        };
        let mut pages = Vec::with_capacity(page_count);
        let mut cursors = HashMap::with_capacity(page_count);
        let mut rest = tools.into_iter();
        for page in 0..page_count {
            let mut result = serde_json::Map::new();
            result.insert("tools".into(), rest.by_ref().take(per_page).collect());
            if page + 1 < page_count {
                let next = cursor_of(page + 1);
                cursors.insert(next.clone().into_boxed_str(), page + 1);
                result.insert("nextCursor".into(), next.into());
            }
            let page = Value::Object(result).to_string();
            pages.push(page.into_bytes().into_boxed_slice());
        }

        let mut synthetic_result = Vec::with_capacity(cfg.reply_bytes + 40);
        synthetic_result.extend_from_slice(TEXT_HEAD);
        synthetic_result.push(b'"');
        synthetic_result.extend(reply_text(cfg.reply_bytes));
        synthetic_result.extend_from_slice(b"\"}]}");

        Catalog {
            pages,
            cursors,
            synthetic: cfg.tools,
            width,
            synthetic_result: synthetic_result.into_boxed_slice(),
            faults: cfg.faults,
        }
    }

    /// The serialized `tools/list` result for `cursor` (`None` = first page), or `None` when the
    /// cursor is not one this catalog handed out.
    pub(crate) fn page(&self, cursor: Option<&str>) -> Option<&[u8]> {
        let index = match cursor {
            None => 0,
            Some(c) => *self.cursors.get(c)?,
        };
        self.pages.get(index).map(|p| &p[..])
    }

    /// How many bytes a typical result takes, to size reply buffers.
    pub(crate) fn result_size_hint(&self) -> usize {
        self.synthetic_result.len()
    }

    /// Runs `tools/call`, appending the `result` object to `out` on success.
    pub(crate) fn call(
        &self,
        params: Option<crate::jsonrpc::RawJson<'_>>,
        out: &mut Vec<u8>,
    ) -> Call {
        let parsed = params
            .filter(|p| is_object(p.get()))
            .and_then(|p| serde_json::from_str::<CallParams>(p.get()).ok());
        let Some(CallParams { name, arguments }) = parsed else {
            return invalid("Invalid params: tools/call needs an object with a string name");
        };
        if arguments.is_some_and(|a| !is_object(a.get())) {
            return invalid("Invalid params: arguments must be an object");
        }
        let fixed: fn(FixedArgs, &mut Vec<u8>) -> Call = match name.as_ref() {
            "echo" => echo,
            "add" => add,
            "sleep" => sleep,
            "fault_exit" if self.faults => return Call::Exit,
            "fault_hang" if self.faults => return Call::Hang,
            "fault_garbage" if self.faults => {
                text_result(out, arguments.map_or("{}", |a| a.get()));
                return Call::Garbage;
            }
            other if self.synthetic_index(other).is_some() => {
                out.extend_from_slice(&self.synthetic_result);
                return done();
            }
            other => return invalid(&format!("Unknown tool: {other}")),
        };
        match arguments.map_or(Ok(FixedArgs::default()), |a| serde_json::from_str(a.get())) {
            Ok(args) => fixed(args, out),
            Err(e) => invalid(&format!("Invalid params: {e}")),
        }
    }

    /// The number `n` of synthetic tool `tool_<n>`, written with exactly `width` digits.
    fn synthetic_index(&self, name: &str) -> Option<usize> {
        let digits = name.strip_prefix("tool_")?;
        if digits.len() != self.width || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: usize = digits.parse().ok()?;
        (1..=self.synthetic).contains(&n).then_some(n)
    }
}

/// A JSON-RPC invalid-params error.
fn invalid(message: &str) -> Call {
    Call::Error {
        code: INVALID_PARAMS,
        message: message.to_owned(),
    }
}

/// A result written, no extra delay.
fn done() -> Call {
    Call::Done {
        extra_delay: Duration::ZERO,
    }
}

/// Writes `{"content":[{"type":"text","text":<text>}]}`.
fn text_result(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(TEXT_HEAD);
    write_json_str(out, text);
    out.extend_from_slice(b"}]}");
}

/// Writes a tool-level error (`isError: true`), which is how MCP reports bad tool input.
fn tool_error(out: &mut Vec<u8>, text: &str) -> Call {
    out.extend_from_slice(TEXT_HEAD);
    write_json_str(out, text);
    out.extend_from_slice(br#"}],"isError":true}"#);
    done()
}

/// `echo`: the message string is spliced into the reply exactly as the client escaped it.
fn echo(args: FixedArgs, out: &mut Vec<u8>) -> Call {
    match args.message {
        None => tool_error(out, "Missing required argument: message"),
        Some(m) if m.get().starts_with('"') => {
            out.extend_from_slice(TEXT_HEAD);
            out.extend_from_slice(m.get().as_bytes());
            out.extend_from_slice(b"}]}");
            done()
        }
        Some(_) => tool_error(out, "Invalid argument 'message': expected a string"),
    }
}

/// `add`: integer sum when both are integers that fit (and the sum does), else floating point.
fn add(args: FixedArgs, out: &mut Vec<u8>) -> Call {
    let (a, b) = match (args.a.map(number), args.b.map(number)) {
        (None, _) => return tool_error(out, "Missing required argument: a"),
        (_, None) => return tool_error(out, "Missing required argument: b"),
        (Some(None), _) => return tool_error(out, "Invalid argument 'a': expected a number"),
        (_, Some(None)) => return tool_error(out, "Invalid argument 'b': expected a number"),
        (Some(Some(a)), Some(Some(b))) => (a, b),
    };
    let as_float = |n: Num| match n {
        Num::Int(i) => i as f64,
        Num::Float(f) => f,
    };
    let sum = match (a, b) {
        (Num::Int(x), Num::Int(y)) => x
            .checked_add(y)
            .map_or_else(|| Num::Float(x as f64 + y as f64), Num::Int),
        _ => Num::Float(as_float(a) + as_float(b)),
    };
    let text = match sum {
        Num::Int(i) => i.to_string(),
        Num::Float(f) => match serde_json::Number::from_f64(f) {
            Some(n) => n.to_string(),
            None => return tool_error(out, "The sum is not a finite number"),
        },
    };
    out.extend_from_slice(TEXT_HEAD);
    out.push(b'"');
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(br#""}],"structuredContent":{"sum":"#);
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"}}");
    done()
}

/// `sleep`: answers "slept N ms" after N ms (capped at [`MAX_SLEEP_MS`]).
fn sleep(args: FixedArgs, out: &mut Vec<u8>) -> Call {
    let Some(raw) = args.ms else {
        return tool_error(out, "Missing required argument: ms");
    };
    let ms = match number(raw) {
        Some(Num::Int(i)) if i >= 0 => i as u64,
        Some(Num::Float(f)) if f >= 0.0 && f.is_finite() && f.fract() == 0.0 => f as u64,
        _ => return tool_error(out, "Invalid argument 'ms': expected an integer >= 0"),
    };
    let ms = ms.min(MAX_SLEEP_MS);
    text_result(out, &format!("slept {ms} ms"));
    Call::Done {
        extra_delay: Duration::from_millis(ms),
    }
}

/// Reads a raw JSON value as a number, or `None` when it is not one.
fn number(raw: &RawValue) -> Option<Num> {
    let s = raw.get();
    if !matches!(s.as_bytes().first(), Some(b'-' | b'0'..=b'9')) {
        return None;
    }
    if let Ok(i) = s.parse::<i64>() {
        return Some(Num::Int(i));
    }
    s.parse::<f64>().ok().map(Num::Float)
}

/// `reply_bytes` bytes of deterministic ASCII that needs no JSON escaping.
fn reply_text(len: usize) -> impl Iterator<Item = u8> {
    const PATTERN: &[u8] = b"The quick brown fox jumps over the lazy dog 0123456789. ";
    PATTERN.iter().copied().cycle().take(len)
}

/// The fixed tools (`echo`, `add`, `sleep`) as they appear in `tools/list`.
const FIXED_TOOLS: &str = r#"[
  {"name": "echo", "title": "Echo", "description": "Returns the given message unchanged.",
   "inputSchema": {"type": "object", "required": ["message"],
     "properties": {"message": {"type": "string", "description": "Text to send back."}}},
   "annotations": {"readOnlyHint": true, "openWorldHint": false}},
  {"name": "add", "title": "Add",
   "description": "Adds two numbers and returns the sum as text and as structured content.",
   "inputSchema": {"type": "object", "required": ["a", "b"], "properties": {
     "a": {"type": "number", "description": "First addend."},
     "b": {"type": "number", "description": "Second addend."}}},
   "outputSchema": {"type": "object", "required": ["sum"],
     "properties": {"sum": {"type": "number", "description": "a + b"}}},
   "annotations": {"readOnlyHint": true, "idempotentHint": true, "openWorldHint": false}},
  {"name": "sleep", "title": "Sleep",
   "description": "Waits the given number of milliseconds (at most 60000), then answers.",
   "inputSchema": {"type": "object", "required": ["ms"], "properties": {
     "ms": {"type": "integer", "minimum": 0, "maximum": 60000,
            "description": "How long to wait, in milliseconds."}}},
   "annotations": {"readOnlyHint": true, "openWorldHint": false}}
]"#;

/// The fault tools, listed only with `faults` on.
const FAULT_TOOLS: &str = r#"[
  {"name": "fault_exit", "inputSchema": {"type": "object", "properties": {}},
   "description": "Fault injection: the server process exits at once without answering."},
  {"name": "fault_garbage", "inputSchema": {"type": "object", "properties": {}},
   "description": "Fault injection: the server writes a line that is not JSON-RPC, then echoes the arguments."},
  {"name": "fault_hang", "inputSchema": {"type": "object", "properties": {}},
   "description": "Fault injection: the server never answers this call."}
]"#;

/// The property pool synthetic input schemas draw from: `name|schema`, one per line.
const PROPERTIES: &str = r#"
query|{"type": "string", "minLength": 1, "description": "Free-text search query."}
limit|{"type": "integer", "minimum": 1, "maximum": 100, "default": 20, "description": "Maximum number of items to return."}
path|{"type": "string", "description": "Path relative to the workspace root."}
recursive|{"type": "boolean", "default": false, "description": "Whether to descend into sub-folders."}
tags|{"type": "array", "items": {"type": "string"}, "uniqueItems": true, "description": "Labels to filter by."}
format|{"type": "string", "enum": ["json", "text", "markdown"], "default": "json", "description": "Output format."}
id|{"type": "string", "pattern": "^[A-Za-z0-9_-]+$", "description": "Identifier of the record."}
threshold|{"type": "number", "minimum": 0, "maximum": 1, "description": "Minimum relevance score, between 0 and 1."}
since|{"type": "string", "format": "date-time", "description": "Only include items changed after this time (RFC 3339)."}
options|{"type": "object", "additionalProperties": false, "description": "Advanced options.", "properties": {"timeout_ms": {"type": "integer", "minimum": 0, "description": "Give up after this long."}, "dry_run": {"type": "boolean", "description": "Validate only."}}}
page_token|{"type": "string", "description": "Continuation token from a previous call."}
priority|{"type": "string", "enum": ["low", "normal", "high", "urgent"], "description": "Priority of the new item."}
"#;

/// Parses one of the JSON tables above. They are constants checked by the tests, so a mistake
/// would show there; here it degrades to an empty list rather than a panic.
fn tool_table(json: &str) -> Vec<Value> {
    serde_json::from_str(json).unwrap_or_default()
}

/// The parsed [`PROPERTIES`] pool: 12 entries, so with a stride of 1, 5, 7 or 11 (all coprime with
/// 12) a tool never draws the same property twice.
fn property_pool() -> Vec<(&'static str, Value)> {
    PROPERTIES
        .lines()
        .filter_map(|line| line.split_once('|'))
        .filter_map(|(name, schema)| Some((name, serde_json::from_str(schema).ok()?)))
        .collect()
}

/// A 64-bit mix (splitmix64) so each synthetic tool gets its own, reproducible shape.
fn mix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Synthetic tool number `n` (1-based): 2 to 5 properties from `pool`, 1 or 2 of them required,
/// a title and description from a verb and a noun, and annotations on two tools in three.
fn synthetic_tool(n: usize, width: usize, reply_bytes: usize, pool: &[(&str, Value)]) -> Value {
    #[rustfmt::skip]
    const VERBS: [&str; 8] =
        ["Search", "Fetch", "Create", "Update", "List", "Summarize", "Validate", "Export"];
    #[rustfmt::skip]
    const NOUNS: [&str; 8] = ["issues", "documents", "customer records", "calendar events",
                              "log entries", "invoices", "repositories", "messages"];
    const STRIDES: [usize; 4] = [1, 5, 7, 11];
    let h = mix(n as u64);
    let pick = |shift: u32, len: usize| (h >> shift).checked_rem(len as u64).unwrap_or(0) as usize;
    let start = pick(8, pool.len());
    let stride = STRIDES[pick(16, STRIDES.len())];
    let required_count = 1 + pick(24, 2);
    let (verb, noun) = (VERBS[pick(32, 8)], NOUNS[pick(40, 8)]);

    let mut properties = serde_json::Map::new();
    let mut required = Vec::new();
    for j in 0..(2 + pick(0, 4)).min(pool.len()) {
        let Some((name, schema)) = pool.get((start + j * stride) % pool.len()) else {
            break;
        };
        if j < required_count {
            required.push(Value::from(*name));
        }
        properties.insert((*name).into(), schema.clone());
    }
    let mut tool = json!({
        "name": format!("tool_{n:0width$}"),
        "title": format!("{verb} {noun} #{n}"),
        "description": format!(
            "{verb} {noun} in the mock workspace. Synthetic tool: returns a fixed {reply_bytes}-byte \
             text and does not check its arguments."
        ),
        "inputSchema": { "type": "object", "properties": properties, "required": required },
    });
    if pick(48, 3) != 0 {
        let read_only = !matches!(verb, "Create" | "Update");
        tool["annotations"] = json!({ "readOnlyHint": read_only, "openWorldHint": false });
    }
    tool
}

#[cfg(test)]
mod tests;
