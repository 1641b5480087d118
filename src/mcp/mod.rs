//! The MCP protocol as the gateway serves it on `/mcp` (streamable HTTP), and on `/sse` +
//! `/messages` (the legacy 2024-11-05 HTTP+SSE transport) for old clients.
//!
//! Owns: the transport rules (Accept, Content-Type, Origin, sessions, protocol version header),
//! the lifecycle (`initialize`; none for stateless 2026-07-28 requests), JSON-RPC batches
//! (2025-03-26 sessions), and the methods: `server/discover`, `ping`, the `…/list` pages, and the requests
//! routed to one upstream (`tools/call`, `prompts/get`, `resources/read|subscribe|unsubscribe`,
//! `completion/complete`) or to all (`logging/setLevel`). Must never:
//! change a forwarded result's bytes (only the JSON-RPC `id` changes, and a stateless client's
//! results gain the `resultType` its revision requires), or let one client's bad input affect
//! another's requests.

mod admission;
pub mod announcements;
mod batch;
mod call_stream;
pub(crate) mod checks;
pub mod client_info;
mod completion;
mod cors;
mod forward;
mod in_flight;
mod legacy_sessions;
mod legacy_sse;
mod legacy_stream;
mod log_level;
mod methods;
mod outcome;
mod resources;
pub mod server_requests;
mod service;
pub mod session;
mod stateless;
mod stateless_reply;
mod stream;
pub mod subscriptions;
pub mod version;

pub use log_level::LOG_LEVELS;
pub use service::{McpService, ServiceSettings};
pub use session::{SessionKeys, SessionVerifier};
pub use version::ProtocolVersion;
