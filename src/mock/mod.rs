//! The mock upstream: a fast, deterministic MCP server built into the gateway binary
//! (`mcpgate mock-upstream`).
//!
//! The default config points at it so the gateway works offline, and the load and fault tests use
//! it as the upstream. It is not a stand-in for real servers in protocol tests.
//!
//! This module owns the transport-independent part: the configuration, the JSON-RPC envelope
//! handling and the lifecycle methods (`initialize`, `ping`, notifications). [`MockServer::handle`]
//! takes one message and returns the bytes to send back. The submodules own the rest:
//! - `tools`: the tool catalog (fixed, synthetic and fault tools), the precomputed `tools/list`
//!   pages with their cursors, and `tools/call`;
//! - [`stdio`]: the newline-delimited stdin/stdout transport;
//! - [`http`]: the streamable HTTP transport (`--listen`), which calls [`MockServer::handle`] too;
//! - [`conformance`]: the `--profile conformance` server, a separate, stateful implementation of
//!   everything the official MCP conformance suite checks (the rest of this module is the
//!   default profile and knows nothing of it).
//!
//! Speed matters more here than elsewhere: the load tests need the mock to be at least twice as fast
//! as the gateway. So the hot path builds no `serde_json::Value`. The envelope is parsed into
//! borrowed `&str`/`&RawValue` fields, replies are written as bytes, the request id is echoed as
//! the client sent it, and every fixed payload (the `initialize` results, the `tools/list` pages,
//! the synthetic tools' result) is serialized once in [`MockServer::new`].

pub mod conformance;
pub mod http;
pub mod stdio;
mod tools;

use std::borrow::Cow;
use std::time::Duration;

use serde::Deserialize;

use crate::jsonrpc::Envelope;

use crate::jsonrpc::RawJson;

pub use stdio::{run_stdio, serve_lines, ServeEnd};

/// Protocol versions the mock speaks, oldest first. A client asking for one of these gets it back.
pub const PROTOCOL_VERSIONS: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

/// The version the mock answers with when the client asks for one it does not know.
pub const LATEST_PROTOCOL_VERSION: &str = "2025-11-25";

/// `serverInfo.name` in the `initialize` result.
pub const SERVER_NAME: &str = "mcpgate-mock-upstream";

/// JSON-RPC error code: the message is not valid JSON.
pub const PARSE_ERROR: i32 = -32700;
/// JSON-RPC error code: valid JSON, but not a valid request object.
pub const INVALID_REQUEST: i32 = -32600;
/// JSON-RPC error code: the method does not exist.
pub const METHOD_NOT_FOUND: i32 = -32601;
/// JSON-RPC error code: bad params (including an unknown tool or an invalid cursor).
pub const INVALID_PARAMS: i32 = -32602;

/// How the mock upstream behaves. The CLI flags map onto these fields.
#[derive(Clone, Debug)]
pub struct MockConfig {
    /// Number of synthetic tools (`tool_0001`, ...) besides the fixed ones. Default 10.
    pub tools: usize,
    /// Delay before answering each `tools/call`, in microseconds (0 = none). Default 0.
    pub latency_us: u64,
    /// Size in bytes of the text a synthetic tool returns. Default 100.
    pub reply_bytes: usize,
    /// `tools/list` page size; with more tools than this the list is paginated with `nextCursor`.
    /// 0 means one page with every tool. Default 100.
    pub page_size: usize,
    /// Whether to expose the fault tools (`fault_exit`, `fault_garbage`, `fault_hang`). Default off.
    pub faults: bool,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            tools: 10,
            latency_us: 0,
            reply_bytes: 100,
            page_size: 100,
            faults: false,
        }
    }
}

/// What the transport should do with one incoming message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MockOutcome {
    /// Send `body` (one JSON-RPC response, with no trailing newline) once `delay` has passed.
    Reply {
        /// The serialized JSON-RPC response.
        body: Vec<u8>,
        /// How long to wait before sending it. Replies with a delay must not hold up other replies.
        delay: Duration,
    },
    /// Send nothing: the message was a notification, or a response to a request we never made.
    NoReply,
    /// A fault tool was called (only possible with [`MockConfig::faults`] on).
    Fault(MockFault),
}

/// The misbehaviour a fault tool asks the transport to act out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MockFault {
    /// `fault_exit`: end the process at once (stdio: exit status 3) without answering.
    ExitProcess,
    /// `fault_garbage`: send a line that is not JSON-RPC, then this reply (an echo of the arguments).
    GarbageThenReply(Vec<u8>),
    /// `fault_hang`: never answer this request.
    Hang,
}

/// The mock MCP server: everything it answers is computed from its [`MockConfig`] at construction.
///
/// It holds no per-session state, so one instance is built at startup and shared (`Arc`) by every
/// connection and thread.
pub struct MockServer {
    /// `tools/list` pages and `tools/call`.
    catalog: tools::Catalog,
    /// The `initialize` result for each of [`PROTOCOL_VERSIONS`], in the same order.
    initialize: Vec<Box<[u8]>>,
    /// [`MockConfig::latency_us`] as a duration.
    latency: Duration,
}

/// `initialize` params: only the version matters to the mock.
#[derive(Deserialize)]
struct InitializeParams<'a> {
    #[serde(borrow, rename = "protocolVersion")]
    protocol_version: Cow<'a, str>,
}

/// `tools/list` params.
#[derive(Deserialize)]
struct ListParams<'a> {
    #[serde(borrow, default)]
    cursor: Option<Cow<'a, str>>,
}

impl MockServer {
    /// Builds the server, precomputing every fixed reply payload from `cfg`.
    pub fn new(cfg: MockConfig) -> MockServer {
        let initialize = PROTOCOL_VERSIONS
            .iter()
            .map(|version| {
                serde_json::json!({
                    "protocolVersion": version,
                    "capabilities": { "tools": { "listChanged": false } },
                    "serverInfo": { "name": SERVER_NAME, "version": env!("CARGO_PKG_VERSION") },
                })
                .to_string()
                .into_bytes()
                .into_boxed_slice()
            })
            .collect();
        MockServer {
            catalog: tools::Catalog::new(&cfg),
            initialize,
            latency: Duration::from_micros(cfg.latency_us),
        }
    }

    /// Handles one JSON-RPC message (a request or notification). Never panics on any input; malformed
    /// input gets the proper JSON-RPC error (-32700 parse error with id null, -32600 invalid request,
    /// -32601 unknown method, -32602 bad params / unknown tool).
    ///
    /// A message is a notification when it has no `id`, and gets [`MockOutcome::NoReply`] whatever its
    /// method (JSON-RPC never answers notifications). Batches (JSON arrays) get -32600: no MCP
    /// version this mock speaks needs them from a server.
    pub fn handle(&self, message: &[u8]) -> MockOutcome {
        // Serde would also read a struct from a JSON array; a message must be an object.
        let starts_as_object = message.trim_ascii_start().first() == Some(&b'{');
        let parsed = match starts_as_object {
            true => Envelope::decode(message).ok(),
            false => None,
        };
        let env = match parsed {
            Some(env) => env,
            None => {
                // Only on the error path: was it JSON at all?
                let code = match serde_json::from_slice::<serde::de::IgnoredAny>(message) {
                    Ok(_) => INVALID_REQUEST,
                    Err(_) => PARSE_ERROR,
                };
                return reply(error_reply(b"null", code, error_text(code)));
            }
        };
        let id = match env.id {
            Some(raw) if is_valid_id(raw) => Some(raw.get().as_bytes()),
            Some(_) => {
                return reply(error_reply(
                    b"null",
                    INVALID_REQUEST,
                    "Invalid Request: id must be a string or a number",
                ))
            }
            None => None,
        };
        let Some(method) = env.method else {
            if env.result.is_some() || env.error.is_some() {
                // A response; the mock never sends requests, so there is nothing to match it to.
                return MockOutcome::NoReply;
            }
            let message = "Invalid Request: missing method";
            return reply(error_reply(id.unwrap_or(b"null"), INVALID_REQUEST, message));
        };
        let Some(id) = id else {
            if method.as_ref() == "notifications/cancelled" {
                // What a cancellation reached: tests read it, operators see it.
                let params = env.params.map_or("", |p| p.get());
                eprintln!("mock-upstream: cancelled: {params}");
            }
            return MockOutcome::NoReply;
        };
        if env.jsonrpc.as_deref() != Some("2.0") {
            let message = "Invalid Request: jsonrpc must be \"2.0\"";
            return reply(error_reply(id, INVALID_REQUEST, message));
        }
        match method.as_ref() {
            "tools/call" => self.tools_call(id, env.params),
            "tools/list" => reply(self.tools_list(id, env.params)),
            "initialize" => reply(self.initialize(id, env.params)),
            "ping" => reply(result_reply(id, b"{}")),
            other => {
                let mut text = String::with_capacity(18 + other.len());
                text.push_str("Method not found: ");
                text.push_str(other);
                reply(error_reply(id, METHOD_NOT_FOUND, &text))
            }
        }
    }

    /// `initialize`: answers with the client's version when supported, else the latest one.
    fn initialize(&self, id: &[u8], params: Option<RawJson<'_>>) -> Vec<u8> {
        let parsed = params
            .filter(|p| is_object(p.get()))
            .and_then(|p| serde_json::from_str::<InitializeParams>(p.get()).ok());
        let Some(parsed) = parsed else {
            let message = "Invalid params: initialize needs a string protocolVersion";
            return error_reply(id, INVALID_PARAMS, message);
        };
        let requested = parsed.protocol_version.as_ref();
        let index = PROTOCOL_VERSIONS
            .iter()
            .position(|v| *v == requested)
            .unwrap_or(PROTOCOL_VERSIONS.len() - 1);
        match self.initialize.get(index) {
            Some(result) => result_reply(id, result),
            None => error_reply(id, INVALID_PARAMS, "Invalid params"),
        }
    }

    /// `tools/list`: one precomputed page, chosen by the opaque cursor.
    fn tools_list(&self, id: &[u8], params: Option<RawJson<'_>>) -> Vec<u8> {
        let cursor = match params {
            None => None,
            Some(p) => match serde_json::from_str::<ListParams>(p.get()) {
                Ok(parsed) if is_object(p.get()) => parsed.cursor,
                _ => {
                    let message = "Invalid params: cursor must be a string";
                    return error_reply(id, INVALID_PARAMS, message);
                }
            },
        };
        match self.catalog.page(cursor.as_deref()) {
            Some(page) => result_reply(id, page),
            None => error_reply(id, INVALID_PARAMS, "Invalid params: unknown cursor"),
        }
    }

    /// `tools/call`: the hot path. The result is written straight after the response head.
    fn tools_call(&self, id: &[u8], params: Option<RawJson<'_>>) -> MockOutcome {
        let mut out = result_head(id, self.catalog.result_size_hint());
        match self.catalog.call(params, &mut out) {
            tools::Call::Done { extra_delay } => {
                if !extra_delay.is_zero() {
                    // Only `sleep` delays; tests watch for this line to know the call is in
                    // flight here.
                    eprintln!(
                        "mock-upstream: request {} sleeps {} ms",
                        String::from_utf8_lossy(id),
                        extra_delay.as_millis()
                    );
                }
                out.push(b'}');
                MockOutcome::Reply {
                    body: out,
                    delay: self.latency.saturating_add(extra_delay),
                }
            }
            tools::Call::Error { code, message } => MockOutcome::Reply {
                body: error_reply(id, code, &message),
                delay: self.latency,
            },
            tools::Call::Garbage => {
                out.push(b'}');
                MockOutcome::Fault(MockFault::GarbageThenReply(out))
            }
            tools::Call::Exit => MockOutcome::Fault(MockFault::ExitProcess),
            tools::Call::Hang => {
                // Tests watch for this line to know the call is in flight here.
                eprintln!(
                    "mock-upstream: request {} hangs (fault_hang)",
                    String::from_utf8_lossy(id)
                );
                MockOutcome::Fault(MockFault::Hang)
            }
        }
    }
}

/// A reply to send at once.
fn reply(body: Vec<u8>) -> MockOutcome {
    MockOutcome::Reply {
        body,
        delay: Duration::ZERO,
    }
}

/// JSON-RPC allows string and number ids (and `null`, which MCP forbids for requests).
fn is_valid_id(raw: RawJson<'_>) -> bool {
    matches!(
        raw.get().as_bytes().first(),
        Some(b'"' | b'-' | b'0'..=b'9')
    )
}

/// Whether a raw value is a JSON object. Serde also reads structs from arrays, which no MCP params
/// may be.
pub(crate) fn is_object(raw: &str) -> bool {
    raw.starts_with('{')
}

/// The standard message for an error code, used when the input was too broken to say more.
fn error_text(code: i32) -> &'static str {
    match code {
        PARSE_ERROR => "Parse error",
        INVALID_REQUEST => "Invalid Request",
        METHOD_NOT_FOUND => "Method not found",
        _ => "Invalid params",
    }
}

/// `{"jsonrpc":"2.0","id":<id>,"result":` with room for `extra` more bytes; the caller appends the
/// result and the closing `}`.
fn result_head(id: &[u8], extra: usize) -> Vec<u8> {
    const HEAD: &[u8] = br#"{"jsonrpc":"2.0","id":"#;
    const RESULT: &[u8] = br#","result":"#;
    let mut out = Vec::with_capacity(HEAD.len() + id.len() + RESULT.len() + extra + 1);
    out.extend_from_slice(HEAD);
    out.extend_from_slice(id);
    out.extend_from_slice(RESULT);
    out
}

/// A complete success response around an already serialized `result`.
fn result_reply(id: &[u8], result: &[u8]) -> Vec<u8> {
    let mut out = result_head(id, result.len());
    out.extend_from_slice(result);
    out.push(b'}');
    out
}

/// A complete error response. `id` is raw JSON (`null` when unknown).
fn error_reply(id: &[u8], code: i32, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + id.len() + message.len());
    out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    out.extend_from_slice(id);
    out.extend_from_slice(br#","error":{"code":"#);
    out.extend_from_slice(itoa::Buffer::new().format(code).as_bytes());
    out.extend_from_slice(br#","message":"#);
    crate::jsonrpc::write_json_str(&mut out, message);
    out.extend_from_slice(b"}}");
    out
}

#[cfg(test)]
mod tests;
