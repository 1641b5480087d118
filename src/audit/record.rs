//! One audit record as a worker core hands it to the log thread: plain values, shared names
//! (`Arc<str>`, cloned rather than copied), and errors kept as they were (formatted later, on
//! the log thread).
//!
//! Owns: the vocabulary of a record — which routed method, how it ended. Must never: hold a
//! key's value, or anything that needs formatting on the worker.

use std::sync::Arc;

use crate::mcp::client_info::ClientInfo;
use crate::upstream::UpstreamError;

/// A request that reaches routing: the methods forwarded to one upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RoutedMethod {
    ToolsCall,
    PromptsGet,
    ResourcesRead,
    ResourcesSubscribe,
    ResourcesUnsubscribe,
    CompletionComplete,
}

impl RoutedMethod {
    pub const ALL: [RoutedMethod; 6] = [
        RoutedMethod::ToolsCall,
        RoutedMethod::PromptsGet,
        RoutedMethod::ResourcesRead,
        RoutedMethod::ResourcesSubscribe,
        RoutedMethod::ResourcesUnsubscribe,
        RoutedMethod::CompletionComplete,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RoutedMethod::ToolsCall => "tools/call",
            RoutedMethod::PromptsGet => "prompts/get",
            RoutedMethod::ResourcesRead => "resources/read",
            RoutedMethod::ResourcesSubscribe => "resources/subscribe",
            RoutedMethod::ResourcesUnsubscribe => "resources/unsubscribe",
            RoutedMethod::CompletionComplete => "completion/complete",
        }
    }

    pub fn parse(method: &str) -> Option<RoutedMethod> {
        RoutedMethod::ALL.into_iter().find(|m| m.as_str() == method)
    }
}

/// How a routed request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// The server answered with a result (not a tool error).
    Ok,
    /// A `tools/call` result with `isError: true`.
    ToolError,
    /// Outside the caller's grants (or its tool group's).
    Denied,
    /// Refused by a budget or a concurrency cap.
    Limited,
    /// No such tool, prompt or resource (or an ambiguous URI).
    Unknown,
    /// The server did not answer within its timeout.
    Timeout,
    /// The server failed: unavailable, a transport or protocol failure, or a JSON-RPC error.
    UpstreamError,
    /// The client cancelled, went away, or a shutdown ran out of time.
    Cancelled,
    /// Malformed params.
    Invalid,
}

impl Outcome {
    pub const ALL: [Outcome; 9] = [
        Outcome::Ok,
        Outcome::ToolError,
        Outcome::Denied,
        Outcome::Limited,
        Outcome::Unknown,
        Outcome::Timeout,
        Outcome::UpstreamError,
        Outcome::Cancelled,
        Outcome::Invalid,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ToolError => "tool_error",
            Outcome::Denied => "denied",
            Outcome::Limited => "limited",
            Outcome::Unknown => "unknown",
            Outcome::Timeout => "timeout",
            Outcome::UpstreamError => "upstream_error",
            Outcome::Cancelled => "cancelled",
            Outcome::Invalid => "invalid",
        }
    }

    pub fn parse(text: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == text)
    }
}

/// What the request named: a catalog item (its name shared with the registry), or text from
/// the request itself (a resource URI, an unknown name).
#[derive(Debug, Clone, Default)]
pub enum Target {
    #[default]
    None,
    /// A tool's or prompt's original name, from the registry snapshot.
    Item(Arc<str>),
    /// A URI or an unknown name as the client sent it.
    Text(Box<str>),
}

impl Target {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Target::None => None,
            Target::Item(name) => Some(name),
            Target::Text(text) => Some(text),
        }
    }
}

/// Why a request did not end `ok`, in whatever form the worker already had it.
#[derive(Debug, Clone, Default)]
pub enum Detail {
    #[default]
    None,
    Static(&'static str),
    Text(Box<str>),
    /// Formatted on the log thread.
    Upstream(UpstreamError),
}

/// A JSON-RPC id as the client sent it (raw JSON), kept inline. Ids longer than [`RpcId::MAX`]
/// bytes are cut (and recorded as a string saying so).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RpcId {
    len: u8,
    /// The id was longer than what is kept.
    cut: bool,
    bytes: [u8; RpcId::MAX],
}

impl RpcId {
    pub const MAX: usize = 40;

    pub fn new(raw: &str) -> RpcId {
        let mut end = raw.len().min(RpcId::MAX);
        while !raw.is_char_boundary(end) {
            end -= 1;
        }
        let mut id = RpcId {
            len: end as u8,
            cut: end < raw.len(),
            bytes: [0; RpcId::MAX],
        };
        id.bytes[..end].copy_from_slice(&raw.as_bytes()[..end]);
        id
    }

    /// The raw JSON text, or `None` when it was cut (then [`RpcId::start`] is what is left).
    pub fn raw(&self) -> Option<&str> {
        (!self.cut).then(|| self.start())
    }

    pub fn start(&self) -> &str {
        // SAFETY: only `new` writes the fields (they are private); it copies a `&str` cut at a
        // character boundary into exactly these bytes, so they are UTF-8.
        unsafe { std::str::from_utf8_unchecked(&self.bytes[..self.len as usize]) }
    }
}

impl std::fmt::Debug for RpcId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RpcId({}{})",
            self.start(),
            if self.cut { "…" } else { "" }
        )
    }
}

/// One routed request, as the log thread receives it.
#[derive(Debug)]
pub struct AuditRecord {
    /// When the request arrived, microseconds since the Unix epoch.
    pub at_micros: u64,
    pub method: RoutedMethod,
    pub outcome: Outcome,
    /// The virtual key's name; `None` for anonymous access (no keys configured).
    pub key: Option<Arc<str>>,
    /// The tool group the URL named.
    pub group: Option<Arc<str>>,
    /// The session's nonce (stateless requests have none).
    pub session: Option<[u8; 8]>,
    pub client: ClientInfo,
    pub server: Option<Arc<str>>,
    pub target: Target,
    pub detail: Detail,
    /// From the parsed request to the reply written (for a streamed reply, its last event).
    pub latency_us: u64,
    /// From the request written upstream to the reply read, when it went upstream.
    pub upstream_us: Option<u64>,
    pub request_bytes: u64,
    pub reply_bytes: u64,
    pub rpc_id: RpcId,
    /// The request's arguments, raw (redacted on the log thread); only with `log_arguments`.
    pub arguments: Option<Box<str>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for m in RoutedMethod::ALL {
            assert_eq!(RoutedMethod::parse(m.as_str()), Some(m));
        }
        for o in Outcome::ALL {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
        }
        assert_eq!(Outcome::parse("fine"), None);
    }

    #[test]
    fn long_ids_are_cut() {
        assert_eq!(RpcId::new("7").raw(), Some("7"));
        assert_eq!(RpcId::new(r#""abc""#).raw(), Some(r#""abc""#));
        let long = format!("\"{}\"", "é".repeat(30));
        let id = RpcId::new(&long);
        assert_eq!(id.raw(), None);
        assert!(id.start().len() <= RpcId::MAX && long.starts_with(id.start()));
    }
}
