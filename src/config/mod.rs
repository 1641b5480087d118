//! The gateway's configuration: the file model, `${VAR}` expansion and validation.
//!
//! Owns: turning `mcpgate.json` (or a Claude Desktop / Cursor / VS Code config) into a
//! checked [`Config`]. Every error names the key path and what was expected. Must never:
//! echo a secret (an expanded value) in an error or log.

pub mod admin;
mod audit;
mod bounds;
mod expand;
pub mod governance;
mod load;
mod model;
mod tls;

pub use admin::AdminConfig;
pub use audit::{AccessLogConfig, AuditConfig, DEFAULT_REDACT};
pub use expand::expand_vars;
pub use governance::{
    BudgetConfig, GovernanceConfig, KeyConfig, LimitConfig, RateLimitConfig, TeamConfig,
};
pub use load::{load_file, parse_config, BUILTIN_DEFAULT};
pub use model::{Config, IoDriverChoice, PrefixMode, ServerConfig, ToolFilter, Transport};
pub use tls::{ListenerTls, UpstreamTls};

use std::fmt;

/// A config problem at a key path, e.g. `mcpServers.remote.url: expected an http:// URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}
