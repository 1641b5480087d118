//! Connections to the MCP servers behind the gateway ("upstreams").
//!
//! Owns: starting and supervising stdio children, per-core HTTP connection pools, the MCP
//! handshake with each server, and matching replies to calls. Must never: block a worker core
//! (stdio pipes live on their own threads), or change a reply's bytes (the caller splices them).

pub mod error;
pub mod handshake;
pub mod http;
pub mod listing;
pub mod process;
pub mod start;
pub mod stdio;
pub mod url;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use error::UpstreamError;
pub use handshake::InitializeInfo;

/// A whole JSON-RPC response message as the upstream sent it (one line for stdio, one
/// body or SSE event for HTTP). The caller parses the envelope and splices `result`/`error`.
pub type UpstreamReply = Vec<u8>;

/// The receiving half of a call in flight: resolves once with the reply or the failure.
pub type ReplyReceiver = futures_channel::oneshot::Receiver<Result<UpstreamReply, UpstreamError>>;
/// The sending half, held by whoever reads the upstream's replies.
pub type ReplySender = futures_channel::oneshot::Sender<Result<UpstreamReply, UpstreamError>>;

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
}

impl Upstream {
    /// Sends a request and waits up to `timeout` for the response message. On timeout the
    /// call is forgotten upstream-side so a late reply is dropped.
    pub async fn request(
        &self,
        server: &str,
        method: &str,
        params: Option<&[u8]>,
        timeout: Duration,
        timing: &mut CallTiming,
    ) -> Result<UpstreamReply, UpstreamError> {
        let timed_out = || UpstreamError::Timeout {
            server: server.to_owned(),
            after_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        };
        match self {
            Upstream::Stdio(s) => {
                let pending = s.call(method, params)?;
                timing.sent = Some(Instant::now());
                match monoio::time::timeout(timeout, pending.reply).await {
                    Ok(Ok(reply)) => {
                        timing.received = Some(Instant::now());
                        reply
                    }
                    Ok(Err(_canceled)) => Err(UpstreamError::Unavailable {
                        server: server.to_owned(),
                        reason: "the server's reader stopped before replying".to_owned(),
                    }),
                    Err(_) => {
                        s.cancel(pending.id);
                        Err(timed_out())
                    }
                }
            }
            Upstream::Http(h) => {
                match monoio::time::timeout(timeout, h.call(method, params, timing)).await {
                    Ok(reply) => reply,
                    Err(_) => Err(timed_out()),
                }
            }
        }
    }

    /// The latest handshake result, when the server is up.
    pub fn initialize_info(&self) -> Option<InitializeInfo> {
        match self {
            Upstream::Stdio(s) => s.initialize_info(),
            Upstream::Http(h) => h.initialize_info(),
        }
    }
}
