//! The TLS settings of a config: the client listener's certificate and key (`"tls"`), and how
//! each HTTPS upstream is verified (`ca_file`, `insecure_skip_verify` on a server).
//!
//! Owns: the model and its checks that need no file. Reading the PEM files and building the
//! rustls configs happens in `crate::tls`, at serve (or check) start. Must never: read a file
//! here, or put a path's contents in an error.

use std::path::PathBuf;

use serde::Deserialize;

use super::model::Transport;
use super::ConfigError;

/// `"tls": { "cert": …, "key": … }`: the client listener serves only TLS when set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerTls {
    /// PEM: the server certificate, then any intermediates.
    pub cert_path: PathBuf,
    /// PEM: a PKCS#8, PKCS#1 (RSA) or SEC1 (EC) private key.
    pub key_path: PathBuf,
}

/// How an `https://` upstream's certificate is verified.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamTls {
    /// PEM CA certificates trusted for this server instead of the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate (no verification at all). Only when set explicitly.
    pub insecure_skip_verify: bool,
}

/// The `"tls"` block as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawListenerTls {
    cert: Option<String>,
    key: Option<String>,
}

/// Checks the `"tls"` block: both files must be named.
pub(super) fn listener(raw: Option<RawListenerTls>) -> Result<Option<ListenerTls>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let path = |v: Option<String>, key: &str| match v {
        Some(p) if !p.trim().is_empty() => Ok(PathBuf::from(p)),
        Some(_) => Err(ConfigError::at(key, "expected a path to a PEM file")),
        None => Err(ConfigError::at(
            key,
            "missing: TLS needs both \"cert\" and \"key\"",
        )),
    };
    Ok(Some(ListenerTls {
        cert_path: path(raw.cert, "tls.cert")?,
        key_path: path(raw.key, "tls.key")?,
    }))
}

/// Checks a server's `ca_file` / `insecure_skip_verify` against its transport. `path` is the
/// server's key path (`mcpServers.<name>`).
pub(super) fn upstream(
    path: &str,
    transport: &Transport,
    ca_file: Option<String>,
    insecure_skip_verify: Option<bool>,
) -> Result<UpstreamTls, ConfigError> {
    let url = match transport {
        Transport::Http { url, .. } | Transport::Sse { url, .. } => Some(url.as_str()),
        Transport::Stdio { .. } => None,
    };
    let given = |key: &str| format!("{path}.{key}");
    if url.is_none() {
        if ca_file.is_some() {
            return Err(ConfigError::at(
                given("ca_file"),
                "only applies to https:// servers, not stdio ones",
            ));
        }
        if insecure_skip_verify.is_some() {
            return Err(ConfigError::at(
                given("insecure_skip_verify"),
                "only applies to https:// servers, not stdio ones",
            ));
        }
    }
    let ca_file = match ca_file {
        Some(p) if p.trim().is_empty() => {
            return Err(ConfigError::at(
                given("ca_file"),
                "expected a path to a PEM file",
            ))
        }
        Some(p) => Some(PathBuf::from(p)),
        None => None,
    };
    let insecure_skip_verify = insecure_skip_verify.unwrap_or(false);
    if ca_file.is_some() && insecure_skip_verify {
        return Err(ConfigError::at(
            given("ca_file"),
            "give either \"ca_file\" or \"insecure_skip_verify\", not both",
        ));
    }
    if let Some(url) = url {
        if !url.starts_with("https://") && (ca_file.is_some() || insecure_skip_verify) {
            // Not an error: a URL chosen by `${VAR}` may be plain in one environment and TLS in
            // another. Said once at load, so a forgotten `https://` does not go unnoticed.
            tracing::warn!(server = %path, "ca_file / insecure_skip_verify have no effect on an http:// URL");
        }
    }
    Ok(UpstreamTls {
        ca_file,
        insecure_skip_verify,
    })
}

#[cfg(test)]
mod tests {
    use crate::config::{parse_config, Config, ConfigError};
    use std::path::Path;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        parse_config(text, &|n| (n == "DIR").then(|| "/etc/mcpgate".to_owned()))
    }

    const SERVERS: &str = r#""mcpServers": {"a": {"command": "x"}}"#;

    #[test]
    fn listener_tls_loads_with_expanded_paths() {
        let cfg = parse(&format!(
            r#"{{"tls": {{"cert": "${{DIR}}/cert.pem", "key": "key.pem"}}, {SERVERS}}}"#
        ))
        .unwrap();
        let tls = cfg.tls.expect("tls");
        assert_eq!(tls.cert_path, Path::new("/etc/mcpgate/cert.pem"));
        assert_eq!(tls.key_path, Path::new("key.pem"));
        assert!(parse(&format!("{{{SERVERS}}}")).unwrap().tls.is_none());
    }

    #[test]
    fn listener_tls_errors_name_their_key() {
        let cases = [
            (r#"{"cert": "c.pem"}"#, "tls.key"),
            (r#"{"key": "k.pem"}"#, "tls.cert"),
            (r#"{"cert": "", "key": "k.pem"}"#, "tls.cert"),
            (r#"{"cert": 5, "key": "k.pem"}"#, "tls.cert"),
            (r#"{"cert": "c", "key": "k", "chain": "x"}"#, "tls.chain"),
            (r#""yes""#, "tls"),
        ];
        for (block, path) in cases {
            let text = format!(r#"{{"tls": {block}, {SERVERS}}}"#);
            let err = parse(&text).unwrap_err();
            assert_eq!(err.path, path, "{text} -> {err}");
        }
    }

    #[test]
    fn upstream_tls_settings_load_per_server() {
        let cfg = parse(
            r#"{"mcpServers": {
                "a": {"url": "https://a.example/mcp", "ca_file": "${DIR}/ca.pem"},
                "b": {"type": "sse", "url": "https://b.example/sse", "insecure_skip_verify": true},
                "c": {"url": "https://c.example/mcp"}
            }}"#,
        )
        .unwrap();
        let tls: Vec<_> = cfg.servers.iter().map(|s| s.tls.clone()).collect();
        assert_eq!(
            tls[0].ca_file.as_deref(),
            Some(Path::new("/etc/mcpgate/ca.pem"))
        );
        assert!(!tls[0].insecure_skip_verify);
        assert!(tls[1].insecure_skip_verify && tls[1].ca_file.is_none());
        assert_eq!(tls[2], Default::default());
    }

    #[test]
    fn upstream_tls_errors_name_their_key() {
        let cases = [
            (
                r#"{"a": {"command": "x", "ca_file": "ca.pem"}}"#,
                "mcpServers.a.ca_file",
            ),
            (
                r#"{"a": {"command": "x", "insecure_skip_verify": false}}"#,
                "mcpServers.a.insecure_skip_verify",
            ),
            (
                r#"{"a": {"url": "https://x/", "insecure_skip_verify": "yes"}}"#,
                "mcpServers.a.insecure_skip_verify",
            ),
            (
                r#"{"a": {"url": "https://x/", "ca_file": " "}}"#,
                "mcpServers.a.ca_file",
            ),
            (
                r#"{"a": {"url": "https://x/", "ca_file": "c", "insecure_skip_verify": true}}"#,
                "mcpServers.a.ca_file",
            ),
        ];
        for (servers, path) in cases {
            let text = format!(r#"{{"mcpServers": {servers}}}"#);
            let err = parse(&text).unwrap_err();
            assert_eq!(err.path, path, "{text} -> {err}");
        }
    }
}
