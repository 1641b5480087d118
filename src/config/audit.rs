//! The observability part of the config: `audit` (the audit log of routed MCP requests) and
//! `access_log` (one line per HTTP request on the client listener).
//!
//! Owns: reading and checking those blocks, with errors that name the key path, and resolving
//! their relative paths against the config file's directory. Must never: open or create a file
//! here (the sinks are opened when `serve` starts, where an unusable path is reported with its
//! key path).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::ConfigError;

/// Where the SQLite store goes unless `audit.sqlite` says otherwise.
pub const DEFAULT_SQLITE: &str = "mcpgate-audit.db";
/// Where the access log goes unless `access_log.path` says otherwise.
pub const DEFAULT_ACCESS_LOG: &str = "mcpgate-access.log";
/// Size at which a JSONL file (audit or access log) is rotated.
pub const DEFAULT_MAX_BYTES: u64 = 100 << 20;
/// Rotated files kept beside the current one.
pub const DEFAULT_KEEP: u32 = 5;
/// Records waiting for the log thread before new ones are dropped (and counted).
pub const DEFAULT_QUEUE_CAPACITY: usize = 65_536;
/// Largest queue accepted: each slot is a pointer, and a queue this long already holds
/// minutes of traffic.
const MAX_QUEUE_CAPACITY: usize = 1 << 24;
/// Most rotated files kept.
const MAX_KEEP: u32 = 1000;

/// Argument names redacted by default. Matched without regard to case, `-` or `_`
/// (`apiKey`, `api-key` and `API_KEY` are all `api_key`).
pub const DEFAULT_REDACT: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "client_secret",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "api_key",
    "authorization",
    "auth",
    "cookie",
    "private_key",
    "credentials",
];

/// `audit`: one record per MCP request that reaches routing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfig {
    pub enabled: bool,
    /// The SQLite store (`None`: off).
    pub sqlite: Option<PathBuf>,
    /// The JSONL file (`None`: off).
    pub jsonl: Option<PathBuf>,
    pub jsonl_max_bytes: u64,
    pub jsonl_keep: u32,
    /// Record each request's arguments (redacted).
    pub log_arguments: bool,
    /// Argument names whose values are replaced by `"[redacted]"`, at any depth.
    pub redact: Vec<String>,
    pub queue_capacity: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            enabled: true,
            sqlite: Some(PathBuf::from(DEFAULT_SQLITE)),
            jsonl: None,
            jsonl_max_bytes: DEFAULT_MAX_BYTES,
            jsonl_keep: DEFAULT_KEEP,
            log_arguments: false,
            redact: DEFAULT_REDACT.iter().map(|s| (*s).to_owned()).collect(),
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
        }
    }
}

impl AuditConfig {
    /// Whether any sink will receive records.
    pub fn writes(&self) -> bool {
        self.enabled && (self.sqlite.is_some() || self.jsonl.is_some())
    }
}

/// `access_log`: one JSON line per HTTP request on the client listener. Off unless the block
/// is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogConfig {
    pub path: PathBuf,
    pub max_bytes: u64,
    pub keep: u32,
}

/// The `audit` block as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAudit {
    enabled: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    sqlite: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    jsonl: Option<Value>,
    jsonl_max_bytes: Option<u64>,
    jsonl_keep: Option<u32>,
    log_arguments: Option<bool>,
    redact: Option<Vec<String>>,
    queue_capacity: Option<usize>,
}

/// The `access_log` block as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAccessLog {
    enabled: Option<bool>,
    path: Option<String>,
    max_bytes: Option<u64>,
    keep: Option<u32>,
}

/// Keeps an explicit `null` apart from an absent key (`null` turns a sink off).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// A sink's path: a non-empty string, or `false` / `null` for off; absent gives `default`.
fn sink_path(
    value: Option<Value>,
    key: &str,
    default: Option<&str>,
) -> Result<Option<PathBuf>, ConfigError> {
    match value {
        None => Ok(default.map(PathBuf::from)),
        Some(Value::Null | Value::Bool(false)) => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(PathBuf::from(s))),
        Some(_) => Err(ConfigError::at(
            key,
            "expected a file path, or false (or null) to turn it off",
        )),
    }
}

fn keep(value: Option<u32>, key: &str) -> Result<u32, ConfigError> {
    match value {
        Some(n) if n > MAX_KEEP => Err(ConfigError::at(
            key,
            format!("expected at most {MAX_KEEP} rotated files"),
        )),
        Some(n) => Ok(n),
        None => Ok(DEFAULT_KEEP),
    }
}

fn max_bytes(value: Option<u64>, key: &str) -> Result<u64, ConfigError> {
    match value {
        Some(0) => Err(ConfigError::at(key, "expected a positive number of bytes")),
        Some(n) => Ok(n),
        None => Ok(DEFAULT_MAX_BYTES),
    }
}

/// Checks the `audit` block (absent: the defaults).
pub(super) fn audit(raw: Option<RawAudit>) -> Result<AuditConfig, ConfigError> {
    let raw = raw.unwrap_or_default();
    let queue_capacity = match raw.queue_capacity {
        Some(0) => {
            return Err(ConfigError::at(
                "audit.queue_capacity",
                "expected at least 1",
            ))
        }
        Some(n) if n > MAX_QUEUE_CAPACITY => {
            return Err(ConfigError::at(
                "audit.queue_capacity",
                format!("expected at most {MAX_QUEUE_CAPACITY}"),
            ))
        }
        Some(n) => n,
        None => DEFAULT_QUEUE_CAPACITY,
    };
    let redact = match raw.redact {
        Some(names) => {
            for (i, name) in names.iter().enumerate() {
                if name.trim().is_empty() {
                    return Err(ConfigError::at(
                        format!("audit.redact[{i}]"),
                        "expected an argument name",
                    ));
                }
            }
            names
        }
        None => AuditConfig::default().redact,
    };
    Ok(AuditConfig {
        enabled: raw.enabled.unwrap_or(true),
        sqlite: sink_path(raw.sqlite, "audit.sqlite", Some(DEFAULT_SQLITE))?,
        jsonl: sink_path(raw.jsonl, "audit.jsonl", None)?,
        jsonl_max_bytes: max_bytes(raw.jsonl_max_bytes, "audit.jsonl_max_bytes")?,
        jsonl_keep: keep(raw.jsonl_keep, "audit.jsonl_keep")?,
        log_arguments: raw.log_arguments.unwrap_or(false),
        redact,
        queue_capacity,
    })
}

/// Checks the `access_log` block; `None` (off) when absent or `"enabled": false`.
pub(super) fn access_log(
    raw: Option<RawAccessLog>,
) -> Result<Option<AccessLogConfig>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let path = match raw.path {
        Some(p) if p.trim().is_empty() => {
            return Err(ConfigError::at("access_log.path", "expected a file path"))
        }
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(DEFAULT_ACCESS_LOG),
    };
    let config = AccessLogConfig {
        path,
        max_bytes: max_bytes(raw.max_bytes, "access_log.max_bytes")?,
        keep: keep(raw.keep, "access_log.keep")?,
    };
    Ok(raw.enabled.unwrap_or(true).then_some(config))
}

/// Makes the sinks' relative paths relative to `dir` (the config file's directory).
pub(super) fn resolve_paths(
    audit: &mut AuditConfig,
    access: Option<&mut AccessLogConfig>,
    dir: &Path,
) {
    let resolve = |p: &mut PathBuf| {
        if p.is_relative() {
            *p = dir.join(&*p);
        }
    };
    for path in [audit.sqlite.as_mut(), audit.jsonl.as_mut()]
        .into_iter()
        .flatten()
    {
        resolve(path);
    }
    if let Some(access) = access {
        resolve(&mut access.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse_config, Config};

    fn parse(extra: &str) -> Result<Config, ConfigError> {
        let text = format!(r#"{{ {extra} "mcpServers": {{"a": {{"command": "x"}}}} }}"#);
        parse_config(&text, &|n| (n == "DIR").then(|| "/var/log/gw".to_owned()))
    }

    #[test]
    fn defaults_write_sqlite_only() {
        let cfg = parse("").unwrap();
        assert_eq!(cfg.audit, AuditConfig::default());
        assert_eq!(cfg.audit.sqlite, Some(PathBuf::from("mcpgate-audit.db")));
        assert_eq!(cfg.audit.jsonl, None);
        assert!(cfg.audit.redact.iter().any(|r| r == "password"));
        assert_eq!(cfg.access_log, None);
    }

    #[test]
    fn every_key_is_read() {
        let cfg = parse(
            r#""audit": {"enabled": true, "sqlite": false, "jsonl": "${DIR}/audit.jsonl",
                "jsonl_max_bytes": 4096, "jsonl_keep": 2, "log_arguments": true,
                "redact": ["pin"], "queue_capacity": 8},
               "access_log": {"path": "access.log", "max_bytes": 100, "keep": 0},"#,
        )
        .unwrap();
        let a = &cfg.audit;
        assert_eq!(a.sqlite, None);
        assert_eq!(a.jsonl, Some(PathBuf::from("/var/log/gw/audit.jsonl")));
        assert_eq!((a.jsonl_max_bytes, a.jsonl_keep), (4096, 2));
        assert!(a.log_arguments);
        assert_eq!(a.redact, ["pin"]);
        assert_eq!(a.queue_capacity, 8);
        let access = cfg.access_log.unwrap();
        assert_eq!(
            (access.path, access.max_bytes, access.keep),
            (PathBuf::from("access.log"), 100, 0)
        );
        assert_eq!(
            parse(r#""audit": {"sqlite": null},"#).unwrap().audit.sqlite,
            None
        );
        assert_eq!(
            parse(r#""access_log": {"enabled": false},"#)
                .unwrap()
                .access_log,
            None
        );
        assert_eq!(
            parse(r#""access_log": {},"#)
                .unwrap()
                .access_log
                .unwrap()
                .path,
            PathBuf::from(DEFAULT_ACCESS_LOG)
        );
    }

    #[test]
    fn errors_name_key_paths() {
        let cases = [
            (r#""audit": {"sqlite": 5},"#, "audit.sqlite"),
            (r#""audit": {"jsonl": ""},"#, "audit.jsonl"),
            (r#""audit": {"jsonl": true},"#, "audit.jsonl"),
            (r#""audit": {"queue_capacity": 0},"#, "audit.queue_capacity"),
            (
                r#""audit": {"jsonl_max_bytes": 0},"#,
                "audit.jsonl_max_bytes",
            ),
            (r#""audit": {"jsonl_keep": 5000},"#, "audit.jsonl_keep"),
            (r#""audit": {"redact": ["a", " "]},"#, "audit.redact[1]"),
            (
                r#""audit": {"log_arguments": "yes"},"#,
                "audit.log_arguments",
            ),
            (r#""audit": {"rotate": 1},"#, "audit.rotate"),
            (r#""access_log": {"path": ""},"#, "access_log.path"),
            (r#""access_log": {"max_bytes": 0},"#, "access_log.max_bytes"),
            (r#""access_log": "on","#, "access_log"),
        ];
        for (text, path) in cases {
            let err = parse(text).unwrap_err();
            assert_eq!(err.path, path, "{text} -> {err}");
        }
    }

    #[test]
    fn relative_paths_follow_the_config_file() {
        let mut audit = AuditConfig {
            jsonl: Some(PathBuf::from("/abs/audit.jsonl")),
            ..AuditConfig::default()
        };
        let mut access = AccessLogConfig {
            path: PathBuf::from("logs/access.log"),
            max_bytes: 1,
            keep: 1,
        };
        resolve_paths(&mut audit, Some(&mut access), Path::new("/etc/mcpgate"));
        assert_eq!(
            audit.sqlite,
            Some(PathBuf::from("/etc/mcpgate/mcpgate-audit.db"))
        );
        assert_eq!(audit.jsonl, Some(PathBuf::from("/abs/audit.jsonl")));
        assert_eq!(access.path, PathBuf::from("/etc/mcpgate/logs/access.log"));
    }
}
