//! The checked configuration the rest of the gateway reads.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::admin::AdminConfig;
use super::audit::{AccessLogConfig, AuditConfig};
use super::governance::GovernanceConfig;
use super::tls::{ListenerTls, UpstreamTls};
use crate::http::HttpLimits;
use crate::upstream::gate::CallBound;
use crate::upstream::health::HealthPolicy;

/// Which I/O driver the worker cores run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoDriverChoice {
    /// io_uring when the kernel allows it, epoll otherwise.
    Auto,
    Uring,
    Epoll,
}

/// How exposed tool names are prefixed with their server's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefixMode {
    /// `<server>__<tool>` for every tool.
    Always,
    /// The bare name unless two servers publish it.
    OnConflict,
    /// The bare name; collisions are reported and disambiguated.
    Never,
}

/// Which of a server's tools are exposed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolFilter {
    /// Original tool names; `"*"` allows all.
    pub allow: Vec<String>,
    pub disabled: Vec<String>,
}

impl ToolFilter {
    pub fn admits(&self, tool: &str) -> bool {
        (self.allow.iter().any(|a| a == "*" || a == tool))
            && !self.disabled.iter().any(|d| d == tool)
    }
}

/// How to reach one upstream server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    Stdio {
        command: String,
        args: Vec<String>,
        env: Vec<(String, String)>,
        cwd: Option<PathBuf>,
    },
    Http {
        url: String,
        headers: Vec<(String, String)>,
    },
    /// The legacy 2024-11-05 HTTP+SSE transport: a GET stream and POSTs to its endpoint.
    Sse {
        url: String,
        headers: Vec<(String, String)>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    pub name: String,
    pub transport: Transport,
    pub tools: ToolFilter,
    /// Per-call timeout.
    pub timeout: Duration,
    /// How an `https://` URL's certificate is verified.
    pub tls: UpstreamTls,
    /// How the server is checked, and what its tools do while it is not healthy.
    pub health: HealthPolicy,
    /// How many calls may be in flight to it, and how long one beyond waits.
    pub calls: CallBound,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub workers: usize,
    pub io_driver: IoDriverChoice,
    pub tool_prefix: PrefixMode,
    /// Sorted by name, so naming and listing are deterministic.
    pub servers: Vec<ServerConfig>,
    pub http_limits: HttpLimits,
    /// Tools per `tools/list` page.
    pub tools_page_size: usize,
    /// Key for session-id MACs; random per start when not configured.
    pub session_secret: Option<Vec<u8>>,
    pub session_ttl: Duration,
    /// Largest reply accepted from an upstream.
    pub max_upstream_reply_bytes: usize,
    /// How long start-up waits for one server's handshake before serving without it.
    pub startup_timeout: Duration,
    /// Browser origins allowed besides loopback ones.
    pub allowed_origins: Vec<String>,
    /// Keep polling for this long after traffic instead of sleeping (off when `None`).
    pub busy_poll: Option<Duration>,
    /// Virtual keys, groups, teams and customers. No keys: anonymous, loopback only.
    pub governance: GovernanceConfig,
    /// The client listener's certificate and key; it serves only TLS when set.
    pub tls: Option<ListenerTls>,
    /// On SIGTERM/SIGINT, how long requests in progress get to finish before they are
    /// abandoned (0: abandoned at once).
    pub shutdown_grace: Duration,
    /// The audit log of routed MCP requests (paths already resolved for a config file).
    pub audit: AuditConfig,
    /// One line per HTTP request on the client listener; off when `None`.
    pub access_log: Option<AccessLogConfig>,
    /// The admin API and `/metrics` listener; off when `None`.
    pub admin: Option<AdminConfig>,
}
