//! What the HTTP server tells a handler about each request for its access log, and the
//! bookkeeping of a request being timed.
//!
//! Owns: the one clock read and the byte counts per logged request. Must never: be used when
//! the handler keeps no access log (the server then reads no clock per request), or carry a
//! query string or header value.

use std::net::SocketAddr;
use std::sync::Arc;

use super::request::{Method, RequestHead};
use super::server::Handler;

/// One request as the access log sees it.
pub struct RequestLog<'a> {
    pub peer: Option<SocketAddr>,
    pub method: Method,
    /// The path, without the query string.
    pub path: &'a str,
    /// 499 when the client went away before the reply was written.
    pub status: u16,
    /// The request as it arrived: head and body (with any chunk framing).
    pub bytes_in: usize,
    /// The reply as written: head and body (for an SSE reply, every event).
    pub bytes_out: usize,
    /// From the request's head being read to its reply written (or its stream's end).
    pub duration: std::time::Duration,
    /// [`super::Response::who`].
    pub who: Option<&'a Arc<str>>,
}

/// What a logged request needs besides its head and response.
#[derive(Clone, Copy)]
pub(super) struct Logged {
    pub(super) peer: Option<SocketAddr>,
    pub(super) started: std::time::Instant,
    pub(super) bytes_in: usize,
}

impl Logged {
    pub(super) fn report<H: Handler>(
        self,
        handler: &H,
        head: &RequestHead<'_>,
        status: u16,
        who: Option<&Arc<str>>,
        bytes_out: usize,
    ) {
        handler.log_request(&RequestLog {
            peer: self.peer,
            method: head.method,
            path: head.path,
            status,
            bytes_in: self.bytes_in,
            bytes_out,
            duration: self.started.elapsed(),
            who,
        });
    }
}

/// Status logged for a request whose client went away before its reply was written.
pub(super) const CLIENT_GONE: u16 = 499;
