//! Reading and checking a config file.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::audit;
use super::bounds::{millis, MAX_CALL_MS, MAX_WAIT_MS};
use super::expand::expand_vars;
use super::governance::{self, RawGovernance};
use super::model::{Config, IoDriverChoice, PrefixMode, ServerConfig, ToolFilter, Transport};
use super::ConfigError;
use crate::http::HttpLimits;
use crate::upstream::health::{HealthPolicy, OnFailure};

/// The config served when none is given: the built-in mock upstream over stdio, and over HTTP
/// at `${MCPGATE_MOCK_HTTP_URL}`, which `serve` points at an in-process mock it starts itself.
pub const BUILTIN_DEFAULT: &str = r#"{
  "listen": "127.0.0.1:8080",
  "mcpServers": {
    "mock": { "command": "${MCPGATE_EXE}", "args": ["mock-upstream", "--stdio"] },
    "mock_http": { "url": "${MCPGATE_MOCK_HTTP_URL}" }
  }
}"#;

/// How long a drain waits for requests in progress unless `shutdown_grace_ms` says otherwise.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

const TOP_LEVEL_KEYS: &[&str] = &[
    "listen",
    "workers",
    "io_driver",
    "tool_prefix",
    "mcpServers",
    "servers",
    "max_body_bytes",
    "max_header_bytes",
    "tools_page_size",
    "session_secret",
    "session_ttl_secs",
    "max_upstream_reply_bytes",
    "startup_timeout_ms",
    "allowed_origins",
    "busy_poll_us",
    "header_read_timeout_ms",
    "client_write_timeout_ms",
    "shutdown_grace_ms",
    "virtual_keys",
    "groups",
    "teams",
    "customers",
    "max_concurrent_calls_per_key",
    "max_streams_per_key",
    "tls",
    "audit",
    "access_log",
    "admin",
];

#[derive(Deserialize)]
struct RawConfig {
    listen: Option<String>,
    workers: Option<usize>,
    io_driver: Option<RawDriver>,
    tool_prefix: Option<RawPrefix>,
    #[serde(rename = "mcpServers")]
    mcp_servers: Option<BTreeMap<String, RawServer>>,
    /// VS Code's name for the same block.
    servers: Option<BTreeMap<String, RawServer>>,
    max_body_bytes: Option<usize>,
    max_header_bytes: Option<usize>,
    tools_page_size: Option<usize>,
    session_secret: Option<String>,
    session_ttl_secs: Option<u64>,
    max_upstream_reply_bytes: Option<usize>,
    startup_timeout_ms: Option<u64>,
    allowed_origins: Option<Vec<String>>,
    busy_poll_us: Option<u64>,
    header_read_timeout_ms: Option<u64>,
    client_write_timeout_ms: Option<u64>,
    shutdown_grace_ms: Option<u64>,
    virtual_keys: Option<Vec<governance::RawKey>>,
    groups: Option<BTreeMap<String, governance::GrantLists>>,
    teams: Option<BTreeMap<String, governance::RawTeam>>,
    customers: Option<BTreeMap<String, governance::RawLimits>>,
    max_concurrent_calls_per_key: Option<u32>,
    max_streams_per_key: Option<u32>,
    tls: Option<super::tls::RawListenerTls>,
    audit: Option<audit::RawAudit>,
    access_log: Option<audit::RawAccessLog>,
    admin: Option<super::admin::RawAdmin>,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawDriver {
    Auto,
    Uring,
    Epoll,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawOnFailure {
    Error,
    Hide,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum RawPrefix {
    Always,
    OnConflict,
    Never,
}

/// One entry of `mcpServers`. Keys other clients use (`autoApprove`, `alwaysAllow`, …) are
/// ignored so their configs load unchanged.
#[derive(Deserialize)]
struct RawServer {
    #[serde(rename = "type")]
    kind: Option<String>,
    command: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    cwd: Option<String>,
    url: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    tools: Option<Vec<String>>,
    #[serde(default)]
    disabled_tools: Vec<String>,
    timeout_ms: Option<u64>,
    #[serde(default)]
    disabled: bool,
    /// Cost of a call per original tool name (`"*"`: every other tool); 1 when not listed.
    #[serde(default)]
    tool_pricing: BTreeMap<String, f64>,
    on_failure: Option<RawOnFailure>,
    health_check_ms: Option<u64>,
    ca_file: Option<String>,
    insecure_skip_verify: Option<bool>,
    max_concurrent_calls: Option<u32>,
    queue_timeout_ms: Option<u64>,
}

/// Reads and checks a config file. Relative audit and access-log paths are taken from the
/// file's directory.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::at(
            "",
            format!("cannot read config file {}: {e}", path.display()),
        )
    })?;
    let mut config = parse_config(&text, &|name| std::env::var(name).ok())?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    audit::resolve_paths(&mut config.audit, config.access_log.as_mut(), dir);
    Ok(config)
}

/// Parses config text; `lookup` resolves `${VAR}` references.
pub fn parse_config(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let mut root: Value = serde_json::from_str(text).map_err(|e| {
        ConfigError::at(
            "",
            format!(
                "config is not valid JSON (line {}, column {}): {e}",
                e.line(),
                e.column()
            ),
        )
    })?;
    let Some(obj) = root.as_object() else {
        return Err(ConfigError::at(
            "",
            "expected a JSON object at the top level",
        ));
    };
    for key in obj.keys() {
        if !TOP_LEVEL_KEYS.contains(&key.as_str()) {
            tracing::warn!(key = %key, "ignoring unknown top-level config key");
        }
    }
    expand_tree(&mut root, &mut String::new(), lookup)?;
    let raw: RawConfig = serde_path_to_error::deserialize(&root).map_err(|e| {
        let path = e.path().to_string();
        ConfigError::at(
            if path == "." { String::new() } else { path },
            without_values(&e.inner().to_string()),
        )
    })?;
    build(raw)
}

/// serde's messages quote the offending value (`invalid type: string "…"`); after `${VAR}`
/// expansion that value may be a secret, so it is dropped from the message. The quoted text
/// may contain anything (quotes, backticks, the words around it), so its end is found from
/// how serde writes it, not by searching for a delimiter.
fn without_values(message: &str) -> String {
    // `unknown variant `…`, expected one of `a`, `b``: the variant is written raw, so it ends
    // at the last "`, expected " (the list after it never contains that).
    if let Some(variant) = message.strip_prefix("unknown variant `") {
        let after = variant
            .rfind("`, expected ")
            .or_else(|| variant.rfind("`, there are no variants"))
            .map_or("", |end| &variant[end + 1..]);
        return format!("unknown value{after}");
    }
    // `invalid type: string "…", expected …`: the string is Debug-escaped, so it ends at the
    // first quote not preceded by an escaping backslash.
    const QUOTED: &str = "string \"";
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find(QUOTED) {
        out.push_str(&rest[..start]);
        out.push_str("a string");
        let quoted = &rest[start + QUOTED.len()..];
        let mut end = quoted.len();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                _ => {}
            }
        }
        rest = &quoted[end..];
    }
    out.push_str(rest);
    out
}

/// Expands `${VAR}` in every string value, tracking the key path for errors.
fn expand_tree(
    v: &mut Value,
    path: &mut String,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    match v {
        Value::String(s) if s.contains("${") => *s = expand_vars(s, path, lookup)?,
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                expand_tree(item, path, lookup)?;
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            for (k, item) in map.iter_mut() {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                expand_tree(item, path, lookup)?;
                path.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

fn build(raw: RawConfig) -> Result<Config, ConfigError> {
    let listen_text = raw.listen.as_deref().unwrap_or("127.0.0.1:8080");
    let listen: SocketAddr = listen_text.parse().map_err(|_| {
        ConfigError::at(
            "listen",
            "expected HOST:PORT with an IP address (e.g. 127.0.0.1:8080)",
        )
    })?;
    let workers = match raw.workers {
        Some(0) => return Err(ConfigError::at("workers", "expected at least 1")),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let servers_raw = match (raw.mcp_servers, raw.servers) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::at(
                "servers",
                "give either \"mcpServers\" or \"servers\", not both",
            ))
        }
        (Some(s), None) => ("mcpServers", s),
        (None, Some(s)) => ("servers", s),
        (None, None) => {
            return Err(ConfigError::at(
                "mcpServers",
                "missing: the config must name at least one server",
            ))
        }
    };
    let (block, entries) = servers_raw;
    let server_names = entries.keys().cloned().collect();
    let mut servers = Vec::new();
    let mut tool_pricing = BTreeMap::new();
    for (name, mut s) in entries {
        let path = format!("{block}.{name}");
        if name.is_empty() {
            return Err(ConfigError::at(path, "server names must not be empty"));
        }
        if s.disabled {
            continue;
        }
        let prices = pricing(&path, std::mem::take(&mut s.tool_pricing))?;
        if !prices.is_empty() {
            tool_pricing.insert(name.clone(), prices);
        }
        servers.push(build_server(&path, name, s)?);
    }
    if servers.is_empty() {
        return Err(ConfigError::at(
            block,
            "every server is disabled; nothing to serve",
        ));
    }
    let http_limits = HttpLimits {
        max_header_bytes: positive(raw.max_header_bytes, "max_header_bytes", 16 * 1024)?,
        max_body_bytes: positive(raw.max_body_bytes, "max_body_bytes", 4 * 1024 * 1024)?,
        header_read_timeout: millis(
            "header_read_timeout_ms",
            raw.header_read_timeout_ms,
            crate::http::limits::DEFAULT_HEADER_READ_TIMEOUT,
            false,
            MAX_WAIT_MS,
        )?,
        write_timeout: super::bounds::client_write_timeout(raw.client_write_timeout_ms)?,
    };
    let session_secret = match raw.session_secret {
        Some(s) if s.len() < 32 => {
            return Err(ConfigError::at(
                "session_secret",
                "expected at least 32 characters",
            ));
        }
        Some(s) => Some(s.into_bytes()),
        None => None,
    };
    let mut governance = governance::build(
        RawGovernance {
            virtual_keys: raw.virtual_keys,
            groups: raw.groups,
            teams: raw.teams,
            customers: raw.customers,
        },
        &server_names,
        tool_pricing,
    )?;
    let max_concurrent_calls_per_key = match raw.max_concurrent_calls_per_key {
        Some(0) => {
            return Err(ConfigError::at(
                "max_concurrent_calls_per_key",
                "expected at least 1",
            ))
        }
        Some(n) => n,
        None => governance::DEFAULT_MAX_CONCURRENT_CALLS,
    };
    governance.max_concurrent_calls_per_key = max_concurrent_calls_per_key;
    if raw.max_streams_per_key == Some(0) {
        return Err(ConfigError::at(
            "max_streams_per_key",
            "expected at least 1",
        ));
    }
    if let Some(n) = raw.max_streams_per_key {
        governance.max_streams_per_key = n;
    }
    Ok(Config {
        governance,
        listen,
        workers,
        io_driver: match raw.io_driver {
            None | Some(RawDriver::Auto) => IoDriverChoice::Auto,
            Some(RawDriver::Uring) => IoDriverChoice::Uring,
            Some(RawDriver::Epoll) => IoDriverChoice::Epoll,
        },
        tool_prefix: match raw.tool_prefix {
            None | Some(RawPrefix::Always) => PrefixMode::Always,
            Some(RawPrefix::OnConflict) => PrefixMode::OnConflict,
            Some(RawPrefix::Never) => PrefixMode::Never,
        },
        servers,
        http_limits,
        tools_page_size: positive(raw.tools_page_size, "tools_page_size", 500)?,
        session_secret,
        session_ttl: Duration::from_secs(raw.session_ttl_secs.unwrap_or(24 * 3600).max(1)),
        max_upstream_reply_bytes: positive(
            raw.max_upstream_reply_bytes,
            "max_upstream_reply_bytes",
            64 << 20,
        )?,
        startup_timeout: millis(
            "startup_timeout_ms",
            raw.startup_timeout_ms,
            Duration::from_secs(10),
            true,
            MAX_WAIT_MS,
        )?,
        allowed_origins: raw.allowed_origins.unwrap_or_default(),
        busy_poll: raw
            .busy_poll_us
            .filter(|&us| us > 0)
            .map(Duration::from_micros),
        tls: super::tls::listener(raw.tls)?,
        admin: super::admin::build(raw.admin)?,
        shutdown_grace: millis(
            "shutdown_grace_ms",
            raw.shutdown_grace_ms,
            DEFAULT_SHUTDOWN_GRACE,
            true,
            MAX_WAIT_MS,
        )?,
        audit: audit::audit(raw.audit)?,
        access_log: audit::access_log(raw.access_log)?,
    })
}

fn positive(v: Option<usize>, key: &str, default: usize) -> Result<usize, ConfigError> {
    match v {
        Some(0) => Err(ConfigError::at(key, "expected a positive number")),
        Some(n) => Ok(n),
        None => Ok(default),
    }
}

fn build_server(path: &str, name: String, s: RawServer) -> Result<ServerConfig, ConfigError> {
    let kind = s.kind.as_deref().map(str::to_ascii_lowercase);
    let transport = match (kind.as_deref(), &s.command, &s.url) {
        (_, Some(_), Some(_)) => {
            return Err(ConfigError::at(
                path,
                "give either \"command\" (stdio) or \"url\" (http), not both",
            ))
        }
        (None | Some("stdio"), Some(command), None) => {
            if command.trim().is_empty() {
                return Err(ConfigError::at(
                    format!("{path}.command"),
                    "expected a program to run",
                ));
            }
            Transport::Stdio {
                command: command.clone(),
                args: s.args,
                env: s.env.into_iter().collect(),
                cwd: s.cwd.map(PathBuf::from),
            }
        }
        (Some("stdio"), None, _) => {
            return Err(ConfigError::at(
                format!("{path}.command"),
                "missing: stdio servers need a command",
            ))
        }
        (
            None | Some("http") | Some("streamable-http") | Some("streamablehttp") | Some("sse"),
            None,
            Some(url),
        ) => {
            if !url.starts_with("http://") && !url.starts_with("https://") {
                return Err(ConfigError::at(
                    format!("{path}.url"),
                    "expected an http:// or https:// URL",
                ));
            }
            let (url, headers) = (url.clone(), s.headers.into_iter().collect());
            match kind.as_deref() {
                Some("sse") => Transport::Sse { url, headers },
                _ => Transport::Http { url, headers },
            }
        }
        (Some(other @ ("http" | "streamable-http" | "streamablehttp" | "sse")), _, None) => {
            return Err(ConfigError::at(
                format!("{path}.url"),
                format!("missing: {other} servers need a url"),
            ))
        }
        (Some(_), _, _) => {
            return Err(ConfigError::at(
                format!("{path}.type"),
                "expected \"stdio\", \"http\" or \"sse\"",
            ))
        }
        (None, None, None) => {
            return Err(ConfigError::at(
                path,
                "expected either \"command\" (stdio) or \"url\" (http)",
            ))
        }
    };
    let timeout = millis(
        format!("{path}.timeout_ms"),
        s.timeout_ms,
        Duration::from_secs(30),
        false,
        MAX_CALL_MS,
    )?;
    let tls = super::tls::upstream(path, &transport, s.ca_file, s.insecure_skip_verify)?;
    let calls = super::bounds::call_bound(path, s.max_concurrent_calls, s.queue_timeout_ms)?;
    Ok(ServerConfig {
        name,
        transport,
        tools: ToolFilter {
            allow: s.tools.unwrap_or_else(|| vec!["*".to_owned()]),
            disabled: s.disabled_tools,
        },
        timeout,
        tls,
        health: HealthPolicy {
            on_failure: match s.on_failure {
                None | Some(RawOnFailure::Error) => OnFailure::Error,
                Some(RawOnFailure::Hide) => OnFailure::Hide,
            },
            interval: millis(
                format!("{path}.health_check_ms"),
                s.health_check_ms,
                HealthPolicy::default().interval,
                false,
                MAX_WAIT_MS,
            )?,
        },
        calls,
    })
}

/// A server's `tool_pricing`, checked.
fn pricing(path: &str, raw: BTreeMap<String, f64>) -> Result<BTreeMap<String, f64>, ConfigError> {
    for (tool, &cost) in &raw {
        if !(cost.is_finite() && cost >= 0.0) {
            return Err(ConfigError::at(
                format!("{path}.tool_pricing.{tool}"),
                "expected a cost ≥ 0",
            ));
        }
    }
    Ok(raw)
}

#[cfg(test)]
mod tests;
