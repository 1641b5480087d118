use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    parse_config(text, &|n| (n == "TOKEN").then(|| "t0k".to_owned()))
}

#[test]
fn claude_desktop_block_loads_unchanged() {
    let cfg = parse(
        r#"{"mcpServers": {
            "fs": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"], "autoApprove": []},
            "remote": {"type": "http", "url": "http://127.0.0.1:3001/mcp", "headers": {"Authorization": "Bearer ${TOKEN}"}}
        }, "globalShortcut": "x"}"#,
    )
    .unwrap();
    assert_eq!(cfg.servers.len(), 2);
    assert_eq!(cfg.servers[0].name, "fs");
    match &cfg.servers[1].transport {
        Transport::Http { headers, .. } => assert_eq!(headers[0].1, "Bearer t0k"),
        other => panic!("{other:?}"),
    }
    assert_eq!(cfg.tool_prefix, PrefixMode::Always);
    assert!(cfg.listen.ip().is_loopback());
}

#[test]
fn sse_servers_load_with_headers() {
    let cfg = parse(
        r#"{"mcpServers": {"legacy": {"type": "SSE", "url": "http://127.0.0.1:3002/sse", "headers": {"X-Token": "${TOKEN}"}}}}"#,
    )
    .unwrap();
    assert_eq!(
        cfg.servers[0].transport,
        Transport::Sse {
            url: "http://127.0.0.1:3002/sse".into(),
            headers: vec![("X-Token".into(), "t0k".into())],
        }
    );
    let err = parse(r#"{"mcpServers": {"legacy": {"type": "sse"}}}"#).unwrap_err();
    assert_eq!(err.path, "mcpServers.legacy.url");
    let err =
        parse(r#"{"mcpServers": {"legacy": {"type": "sse", "url": "ws://x/sse"}}}"#).unwrap_err();
    assert_eq!(err.path, "mcpServers.legacy.url");
}

#[test]
fn shutdown_grace_and_header_read_timeout() {
    let cfg = parse(r#"{"mcpServers": {"a": {"command": "x"}}}"#).unwrap();
    assert_eq!(cfg.shutdown_grace, Duration::from_secs(10));
    assert_eq!(cfg.http_limits.header_read_timeout, Duration::from_secs(10));
    let cfg = parse(
        r#"{"shutdown_grace_ms": 0, "header_read_timeout_ms": 250, "mcpServers": {"a": {"command": "x"}}}"#,
    )
    .unwrap();
    assert_eq!(cfg.shutdown_grace, Duration::ZERO);
    assert_eq!(
        cfg.http_limits.header_read_timeout,
        Duration::from_millis(250)
    );
    let err = parse(r#"{"header_read_timeout_ms": 0, "mcpServers": {"a": {"command": "x"}}}"#)
        .unwrap_err();
    assert_eq!(err.path, "header_read_timeout_ms");
}

#[test]
fn vscode_servers_block() {
    let cfg = parse(r#"{"servers": {"a": {"type": "stdio", "command": "x"}}}"#).unwrap();
    assert_eq!(cfg.servers[0].name, "a");
}

#[test]
fn errors_name_key_paths() {
    let cases = [
        (
            r#"{"mcpServers": {"a": {"command": "x", "args": [1]}}}"#,
            "mcpServers.a.args[0]",
        ),
        (r#"{"mcpServers": {"a": {}}}"#, "mcpServers.a"),
        (
            r#"{"mcpServers": {"a": {"url": "ftp://x"}}}"#,
            "mcpServers.a.url",
        ),
        (
            r#"{"mcpServers": {"a": {"command": "x", "timeout_ms": 0}}}"#,
            "mcpServers.a.timeout_ms",
        ),
        (
            r#"{"mcpServers": {"a": {"command": "x", "env": {"K": "${UNSET_VAR}"}}}}"#,
            "mcpServers.a.env.K",
        ),
        (
            r#"{"listen": "nowhere", "mcpServers": {"a": {"command": "x"}}}"#,
            "listen",
        ),
        (
            r#"{"tool_prefix": "sometimes", "mcpServers": {"a": {"command": "x"}}}"#,
            "tool_prefix",
        ),
        // Durations past their ceiling (a deadline the clock cannot hold would panic).
        (
            r#"{"shutdown_grace_ms": 18446744073709551615, "mcpServers": {"a": {"command": "x"}}}"#,
            "shutdown_grace_ms",
        ),
        (
            r#"{"header_read_timeout_ms": 3600001, "mcpServers": {"a": {"command": "x"}}}"#,
            "header_read_timeout_ms",
        ),
        (
            r#"{"startup_timeout_ms": 99999999999, "mcpServers": {"a": {"command": "x"}}}"#,
            "startup_timeout_ms",
        ),
        (
            r#"{"mcpServers": {"a": {"command": "x", "timeout_ms": 86400001}}}"#,
            "mcpServers.a.timeout_ms",
        ),
        (
            r#"{"mcpServers": {"a": {"command": "x", "health_check_ms": 18446744073709551615}}}"#,
            "mcpServers.a.health_check_ms",
        ),
        (
            r#"{"admin": {"listen": "0.0.0.0:8081"}, "mcpServers": {"a": {"command": "x"}}}"#,
            "admin.token",
        ),
        (r#"{}"#, "mcpServers"),
    ];
    for (text, path) in cases {
        let err = parse(text).unwrap_err();
        assert_eq!(err.path, path, "{text} -> {err}");
    }
}

#[test]
fn secrets_are_not_echoed_in_errors() {
    let err = parse(r#"{"mcpServers": {"a": {"url": "${TOKEN}"}}}"#).unwrap_err();
    assert_eq!(err.path, "mcpServers.a.url");
    assert!(!err.to_string().contains("t0k"));
    let err =
        parse(r#"{"workers": "${TOKEN}", "mcpServers": {"a": {"command": "x"}}}"#).unwrap_err();
    assert_eq!(err.path, "workers");
    assert!(!err.to_string().contains("t0k"), "{err}");
    let err =
        parse(r#"{"mcpServers": {"a": {"url": "http://x", "headers": {"A": 5}}}}"#).unwrap_err();
    assert!(!err.to_string().contains("t0k"));
}

/// Found by the `config` fuzz check (on its stable smoke run): text around a `${VAR}` that
/// looks like the end of serde's quote (`", ` or a backtick) made the rest of the value,
/// secret included, show.
#[test]
fn secrets_next_to_quote_like_text_are_not_echoed() {
    for text in [
        r#"{"workers": "a\", b${TOKEN}", "mcpServers": {"a": {"command": "x"}}}"#,
        r#"{"tool_prefix": "x`y${TOKEN}", "mcpServers": {"a": {"command": "x"}}}"#,
        r#"{"tool_prefix": "x`, expected ${TOKEN}`, expected", "mcpServers": {"a": {"command": "x"}}}"#,
        r#"{"io_driver": "unknown variant `${TOKEN}", "mcpServers": {"a": {"command": "x"}}}"#,
    ] {
        let err = parse(text).unwrap_err();
        assert!(!err.to_string().contains("t0k"), "{text} -> {err}");
    }
    assert_eq!(
        without_values(r#"invalid type: string "a\", b\\", expected usize"#),
        "invalid type: a string, expected usize"
    );
    assert_eq!(
        without_values("unknown variant `x`y`, expected one of `always`, `never`"),
        "unknown value, expected one of `always`, `never`"
    );
}
