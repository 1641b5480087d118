//! Bounds on what one HTTP peer may make the gateway hold.

use std::time::Duration;

/// Limits applied to every request on a client connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Request line plus headers; more → 431.
    pub max_header_bytes: usize,
    /// Decoded request body; more → 413.
    pub max_body_bytes: usize,
    /// How long a request head may take to arrive, counted from the connection's start for its
    /// first request and from the first byte of each later one; beyond it the connection is
    /// closed (with 408 when part of a head had arrived). An idle keep-alive connection (no byte
    /// of a next request yet) is not bounded by it.
    pub header_read_timeout: Duration,
    /// How long a write to the client may go without the client taking a byte (it stopped
    /// reading its reply or SSE stream) before the connection is closed, releasing what it
    /// held (the reply, the stream, the upstream call behind a stream).
    pub write_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_header_bytes: 16 * 1024,
            max_body_bytes: 4 * 1024 * 1024,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
        }
    }
}

/// [`HttpLimits::header_read_timeout`] unless configured.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// [`HttpLimits::write_timeout`] unless configured.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Most headers a request may carry; more → 431.
pub const MAX_HEADERS: usize = 64;
