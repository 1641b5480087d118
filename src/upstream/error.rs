//! Errors an upstream call can end with. Every variant names the server, so a client
//! reading the JSON-RPC error knows which of the aggregated servers failed.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamError {
    /// The server is not running (crashed, restarting, never started). Fails fast.
    Unavailable { server: String, reason: String },
    /// Could not connect / write / read (I/O level).
    Transport { server: String, reason: String },
    /// The call did not complete within the server's timeout.
    Timeout { server: String, after_ms: u64 },
    /// The server answered something that is not a valid JSON-RPC response.
    Protocol { server: String, reason: String },
    /// Too many calls in flight to this server.
    Overloaded { server: String },
}

impl UpstreamError {
    pub fn server(&self) -> &str {
        match self {
            UpstreamError::Unavailable { server, .. }
            | UpstreamError::Transport { server, .. }
            | UpstreamError::Timeout { server, .. }
            | UpstreamError::Protocol { server, .. }
            | UpstreamError::Overloaded { server } => server,
        }
    }
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamError::Unavailable { server, reason } => {
                write!(f, "upstream server '{server}' is unavailable: {reason}")
            }
            UpstreamError::Transport { server, reason } => {
                write!(f, "upstream server '{server}' connection failed: {reason}")
            }
            UpstreamError::Timeout { server, after_ms } => {
                write!(
                    f,
                    "upstream server '{server}' did not answer within {after_ms} ms"
                )
            }
            UpstreamError::Protocol { server, reason } => {
                write!(
                    f,
                    "upstream server '{server}' sent an invalid reply: {reason}"
                )
            }
            UpstreamError::Overloaded { server } => {
                write!(f, "upstream server '{server}' has too many calls in flight")
            }
        }
    }
}

impl std::error::Error for UpstreamError {}
