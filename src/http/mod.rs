//! HTTP/1.1 for both sides of the gateway: the server that MCP clients talk to and the
//! client that talks to streamable-HTTP upstreams.
//!
//! Owns: framing (heads, Content-Length and chunked bodies, SSE events), keep-alive and
//! pipelining, and the limits on everything a peer controls. Must never: buffer without a
//! bound, or panic on any byte sequence a peer sends.

pub mod chunked;
pub mod client;
mod conn_buffers;
mod conn_io;
pub mod hang_up;
pub mod limits;
pub mod percent;
pub mod request;
pub mod request_log;
pub mod response;
pub mod server;
pub mod sse;

pub use limits::HttpLimits;
pub use request::{Method, RequestHead};
pub use response::{Response, Status};
pub use server::{serve_connection, serve_listener, Handler, Outcome, RequestLog, SseStream};
