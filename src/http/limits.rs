//! Bounds on what one HTTP peer may make the gateway hold.

/// Limits applied to every request on a client connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Request line plus headers; more → 431.
    pub max_header_bytes: usize,
    /// Decoded request body; more → 413.
    pub max_body_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_header_bytes: 16 * 1024,
            max_body_bytes: 4 * 1024 * 1024,
        }
    }
}

/// Most headers a request may carry; more → 431.
pub const MAX_HEADERS: usize = 64;
