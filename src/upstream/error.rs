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
    /// The server's `max_concurrent_calls` share on this core was taken and no slot freed
    /// within `queue_timeout_ms` (see `upstream::gate`).
    Saturated {
        server: String,
        /// Calls in flight on the refusing core.
        in_flight: u32,
        /// That core's share of the bound.
        share: u32,
        /// The configured bound.
        max: u32,
        /// How long the call waited.
        waited_ms: u64,
    },
}

impl UpstreamError {
    pub fn server(&self) -> &str {
        match self {
            UpstreamError::Unavailable { server, .. }
            | UpstreamError::Transport { server, .. }
            | UpstreamError::Timeout { server, .. }
            | UpstreamError::Protocol { server, .. }
            | UpstreamError::Overloaded { server }
            | UpstreamError::Saturated { server, .. } => server,
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
            UpstreamError::Saturated {
                server,
                in_flight,
                share,
                max,
                waited_ms,
            } => {
                write!(
                    f,
                    "upstream server '{server}' is saturated: {in_flight} calls in flight on \
                     this worker core (its share of max_concurrent_calls {max} is {share}) and \
                     none finished within {waited_ms} ms (queue_timeout_ms); try again later"
                )
            }
        }
    }
}

impl std::error::Error for UpstreamError {}
