//! Connections to the MCP servers behind the gateway ("upstreams").
//!
//! Owns: starting and supervising stdio children, per-core HTTP connection pools, legacy SSE
//! streams, the MCP handshake with each server, and matching replies to calls. Must never:
//! block a worker core (stdio pipes and SSE streams are async sockets; spawning and reaping
//! happen on threads of their own), or change a reply's bytes (the caller splices them).

pub mod backoff;
pub mod call;
pub mod error;
pub mod gate;
pub mod handshake;
pub mod health;
pub mod http;
pub mod listing;
pub mod pending;
pub mod pipes;
pub mod pool;
pub mod process;
pub mod server_notices;
pub mod sse_events;
pub mod sse_legacy;
pub mod start;
pub mod stdio;
pub mod url;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use error::UpstreamError;
pub use handshake::InitializeInfo;

/// A whole JSON-RPC response message as the upstream sent it (one line for stdio, one body or
/// SSE event for HTTP), and where its `result` or `error` lies when whoever read it already
/// parsed the envelope: the caller then splices that span without scanning a large reply again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamReply {
    pub message: Vec<u8>,
    pub payload: Option<Payload>,
}

/// The byte span of a reply's `result` (or `error`) inside its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Payload {
    pub is_error: bool,
    pub start: usize,
    pub end: usize,
}

impl UpstreamReply {
    /// A reply nobody parsed yet.
    pub fn unparsed(message: Vec<u8>) -> Self {
        UpstreamReply {
            message,
            payload: None,
        }
    }

    /// The located `result` or `error` as raw JSON text, if known.
    pub fn payload_text(&self) -> Option<(bool, &str)> {
        let p = self.payload?;
        let bytes = self.message.get(p.start..p.end)?;
        std::str::from_utf8(bytes).ok().map(|s| (p.is_error, s))
    }
}

impl Payload {
    /// Where `env`'s `result` (or `error`) lies in `source`, the bytes `env` was parsed from.
    pub fn locate(source: &[u8], env: &crate::jsonrpc::Envelope<'_>) -> Option<Payload> {
        let (raw, is_error) = match (env.result, env.error) {
            (Some(r), _) => (r, false),
            (None, Some(e)) => (e, true),
            (None, None) => return None,
        };
        // `raw` borrows from `source`, so its offset is a plain address difference; a value
        // from anywhere else fails the bounds check and is simply not located.
        let start = (raw.get().as_ptr() as usize).wrapping_sub(source.as_ptr() as usize);
        let end = start.checked_add(raw.get().len())?;
        (end <= source.len()).then_some(Payload {
            is_error,
            start,
            end,
        })
    }
}

impl std::ops::Deref for UpstreamReply {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.message
    }
}

pub use call::{CallEvents, EventSink, ReplyReceiver, ReplySender, Responder, ServerMessage};

/// When a call left for the upstream and when its reply was in hand; what lies between is
/// upstream and network time, which the gateway's internal-time figure leaves out.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallTiming {
    pub sent: Option<Instant>,
    pub received: Option<Instant>,
}

/// A handle to one upstream server, shared by every core.
#[derive(Clone)]
pub enum Upstream {
    Stdio(stdio::StdioUpstream),
    Http(Arc<http::HttpUpstream>),
    Sse(sse_legacy::SseUpstream),
}

impl Upstream {
    /// Whether `other` is a handle to this same upstream (not merely one with equal settings).
    pub fn same_as(&self, other: &Upstream) -> bool {
        match (self, other) {
            (Upstream::Stdio(a), Upstream::Stdio(b)) => a.same_as(b),
            (Upstream::Http(a), Upstream::Http(b)) => Arc::ptr_eq(a, b),
            (Upstream::Sse(a), Upstream::Sse(b)) => a.same_as(b),
            _ => false,
        }
    }

    /// Stops the server: a stdio child gets `grace` to exit after its stdin closes, an SSE
    /// stream is closed; an HTTP server has nothing to stop.
    pub fn shutdown(&self, grace: Duration) {
        match self {
            Upstream::Stdio(s) => s.shutdown(grace),
            Upstream::Sse(s) => s.shutdown(),
            Upstream::Http(_) => {}
        }
    }
    /// Sends a request and waits up to `timeout` for the response message. Messages the
    /// server sends about the call meanwhile go to `events` when given. A call that times out,
    /// or whose future is dropped before the reply (the client went away or cancelled), is
    /// cancelled upstream with `notifications/cancelled`.
    pub async fn request(
        &self,
        server: &str,
        method: &str,
        params: Option<&[u8]>,
        timeout: Duration,
        events: Option<EventSink>,
        timing: &mut CallTiming,
    ) -> Result<UpstreamReply, UpstreamError> {
        let timed_out = || UpstreamError::Timeout {
            server: server.to_owned(),
            after_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        };
        match self {
            Upstream::Stdio(s) => {
                let pending = s.call(method, params, events)?;
                timing.sent = Some(Instant::now());
                let mut cancel = CancelStdio {
                    upstream: s,
                    id: pending.id,
                    reason: "the client went away",
                    armed: true,
                };
                let reply = monoio::select! {
                    reply = pending.reply => Ok(reply),
                    () = crate::runtime::deadline::after(timeout) => Err(()),
                };
                match reply {
                    Ok(Ok(reply)) => {
                        cancel.armed = false;
                        timing.received = Some(Instant::now());
                        reply
                    }
                    Ok(Err(_canceled)) => {
                        cancel.armed = false;
                        Err(UpstreamError::Unavailable {
                            server: server.to_owned(),
                            reason: "the server's reader stopped before replying".to_owned(),
                        })
                    }
                    Err(_) => {
                        cancel.reason = "timed out at the gateway";
                        Err(timed_out())
                    }
                }
            }
            Upstream::Http(h) => {
                // Polled in place beside its deadline: wrapped in a `Timeout`, the whole call
                // future would be moved twice more on every call.
                let call = std::pin::pin!(h.call(method, params, events.as_ref(), timing));
                monoio::select! {
                    reply = call => reply,
                    () = crate::runtime::deadline::after(timeout) => Err(timed_out()),
                }
            }
            // Dropping the call at the timeout forgets it, so a late reply is dropped.
            Upstream::Sse(s) => {
                // Boxed: the legacy transport's call is large and rare; inline it would
                // enlarge every call's future.
                let call = Box::pin(s.call(method, params, events, timing));
                monoio::select! {
                    reply = call => reply,
                    () = crate::runtime::deadline::after(timeout) => Err(timed_out()),
                }
            }
        }
    }

    /// The latest handshake result, when the server is up.
    pub fn initialize_info(&self) -> Option<InitializeInfo> {
        match self {
            Upstream::Stdio(s) => s.initialize_info(),
            Upstream::Http(h) => h.initialize_info(),
            Upstream::Sse(s) => s.initialize_info(),
        }
    }
}

/// Cancels a stdio call upstream unless disarmed: dropped mid-call, or after a timeout.
struct CancelStdio<'a> {
    upstream: &'a stdio::StdioUpstream,
    id: u64,
    reason: &'static str,
    armed: bool,
}

impl Drop for CancelStdio<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.upstream.cancel(self.id, self.reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::Envelope;

    #[test]
    fn payload_spans_point_at_result_or_error() {
        let line =
            br#"{"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":"a\"b"}]}}"#;
        let env = Envelope::decode(line).unwrap();
        let reply = UpstreamReply {
            message: line.to_vec(),
            payload: Payload::locate(line, &env),
        };
        assert_eq!(
            reply.payload_text(),
            Some((false, r#"{"content":[{"type":"text","text":"a\"b"}]}"#))
        );

        let line = br#"{"jsonrpc":"2.0","error":{"code":-32602,"message":"no"},"id":4}"#;
        let env = Envelope::decode(line).unwrap();
        let reply = UpstreamReply {
            message: line.to_vec(),
            payload: Payload::locate(line, &env),
        };
        assert_eq!(
            reply.payload_text(),
            Some((true, r#"{"code":-32602,"message":"no"}"#))
        );
    }

    #[test]
    fn values_from_another_buffer_are_not_located() {
        let parsed_from = br#"{"jsonrpc":"2.0","id":1,"result":{}}"#.to_vec();
        let env = Envelope::decode(&parsed_from).unwrap();
        let other = vec![b' '; 4];
        assert_eq!(Payload::locate(&other, &env), None);
        let nothing = br#"{"jsonrpc":"2.0","id":1}"#;
        let env = Envelope::decode(nothing).unwrap();
        assert_eq!(Payload::locate(nothing, &env), None);
        assert_eq!(
            UpstreamReply::unparsed(nothing.to_vec()).payload_text(),
            None
        );
    }
}
