//! The MCP protocol as the gateway serves it on `/mcp` (streamable HTTP), and on `/sse` +
//! `/messages` (the legacy 2024-11-05 HTTP+SSE transport) for old clients.
//!
//! Owns: the transport rules (Accept, Content-Type, Origin, sessions, protocol version header),
//! the lifecycle (`initialize`), and the methods: `ping`, the `…/list` pages, and the requests
//! routed to one upstream (`tools/call`, `prompts/get`, `resources/read|subscribe|unsubscribe`,
//! `completion/complete`) or to all (`logging/setLevel`). Must never:
//! touch a forwarded result's bytes (only the JSON-RPC `id` changes), or let one client's bad
//! input affect another's requests.

mod call_stream;
pub(crate) mod checks;
mod completion;
mod cors;
mod forward;
mod legacy_sessions;
mod legacy_sse;
mod legacy_stream;
mod log_level;
mod methods;
mod resources;
pub mod server_requests;
mod service;
pub mod session;
mod stream;
pub mod version;

pub use service::{McpService, ServiceSettings};
pub use session::{SessionKeys, SessionVerifier};
pub use version::ProtocolVersion;
