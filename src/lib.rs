//! mcpgate: a self-hosted MCP gateway on a thread-per-core runtime.
//!
//! The modules follow a request's path: `config` → `runtime` → `http` → `jsonrpc` → `mcp` →
//! `registry` → `upstream`. `serve` assembles them; `mock` is the built-in mock upstream
//! used by the default config, load tests and fault tests. `tls` serves both ends: the
//! client listener and `https://` upstreams. `audit` writes the audit and access logs on a
//! thread of its own; `admin` collects the metrics.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod config;
pub mod http;
pub mod jsonrpc;
pub mod mcp;
pub mod mock;
pub mod registry;
pub mod reload;
pub mod runtime;
pub mod serve;
pub mod tls;
pub mod upstream;
