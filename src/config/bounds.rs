//! Bounds, checked: a server's bound on calls in flight (`max_concurrent_calls`,
//! `queue_timeout_ms`; what it means is written in `upstream::gate`), how long a client may
//! stop reading (`client_write_timeout_ms`), and every other duration in milliseconds. Each
//! becomes a timer, and a deadline past what the clock can hold would panic, so each has a
//! ceiling, said in the error that refuses it.

use std::time::Duration;

use super::ConfigError;
use crate::upstream::gate::{CallBound, DEFAULT_MAX_CONCURRENT_CALLS, DEFAULT_QUEUE_TIMEOUT};

/// The longest wait accepted for most durations: an hour is already far beyond any client's
/// patience.
pub(super) const MAX_WAIT_MS: u64 = 3_600_000;
/// The longest a call may be given (`mcpServers.<name>.timeout_ms`): a day, for tools that
/// run long.
pub(super) const MAX_CALL_MS: u64 = 24 * 3_600_000;

/// The duration at `key` in milliseconds, `default` when absent; 0 only when `zero_ok`, at
/// most `max_ms`.
pub(super) fn millis(
    key: impl Into<String>,
    ms: Option<u64>,
    default: Duration,
    zero_ok: bool,
    max_ms: u64,
) -> Result<Duration, ConfigError> {
    match ms {
        None => Ok(default),
        Some(0) if !zero_ok => Err(ConfigError::at(key, "expected a positive number")),
        Some(ms) if ms > max_ms => Err(ConfigError::at(
            key,
            format!("expected at most {max_ms} ({})", ceiling_name(max_ms)),
        )),
        Some(ms) => Ok(Duration::from_millis(ms)),
    }
}

fn ceiling_name(max_ms: u64) -> &'static str {
    if max_ms == MAX_CALL_MS {
        "one day"
    } else {
        "one hour"
    }
}

/// The bound of the server at `path` (`mcpServers.<name>`), defaults filled in.
pub(super) fn call_bound(
    path: &str,
    max_concurrent_calls: Option<u32>,
    queue_timeout_ms: Option<u64>,
) -> Result<CallBound, ConfigError> {
    let max_concurrent_calls = match max_concurrent_calls {
        Some(0) => {
            return Err(ConfigError::at(
                format!("{path}.max_concurrent_calls"),
                "expected at least 1",
            ))
        }
        Some(n) => n,
        None => DEFAULT_MAX_CONCURRENT_CALLS,
    };
    let queue_timeout = millis(
        format!("{path}.queue_timeout_ms"),
        queue_timeout_ms,
        DEFAULT_QUEUE_TIMEOUT,
        true,
        MAX_WAIT_MS,
    )?;
    Ok(CallBound {
        max_concurrent_calls,
        queue_timeout,
    })
}

/// `client_write_timeout_ms`, default filled in.
pub(super) fn client_write_timeout(ms: Option<u64>) -> Result<Duration, ConfigError> {
    millis(
        "client_write_timeout_ms",
        ms,
        crate::http::limits::DEFAULT_WRITE_TIMEOUT,
        false,
        MAX_WAIT_MS,
    )
}

#[cfg(test)]
mod tests {
    use crate::config::parse_config;
    use crate::upstream::gate::CallBound;
    use std::time::Duration;

    fn bound_of(server: &str) -> Result<CallBound, crate::config::ConfigError> {
        let text = format!(r#"{{"mcpServers": {{"s": {server}}}}}"#);
        parse_config(&text, &|_| None).map(|c| c.servers[0].calls)
    }

    #[test]
    fn defaults_values_and_errors_with_key_paths() {
        assert_eq!(
            bound_of(r#"{"command": "x"}"#).expect("valid"),
            CallBound::default()
        );
        assert_eq!(
            bound_of(r#"{"url": "http://127.0.0.1:1/mcp", "max_concurrent_calls": 4, "queue_timeout_ms": 0}"#)
                .expect("valid"),
            CallBound {
                max_concurrent_calls: 4,
                queue_timeout: Duration::ZERO,
            }
        );
        for (server, path) in [
            (
                r#"{"command": "x", "max_concurrent_calls": 0}"#,
                "mcpServers.s.max_concurrent_calls",
            ),
            (
                r#"{"command": "x", "max_concurrent_calls": -1}"#,
                "mcpServers.s.max_concurrent_calls",
            ),
            (
                r#"{"command": "x", "max_concurrent_calls": "many"}"#,
                "mcpServers.s.max_concurrent_calls",
            ),
            (
                r#"{"command": "x", "queue_timeout_ms": 3600001}"#,
                "mcpServers.s.queue_timeout_ms",
            ),
        ] {
            let err = bound_of(server).expect_err(server);
            assert_eq!(err.path, path, "{server}: {err}");
        }
    }

    #[test]
    fn client_write_timeout() {
        let parse = |extra: &str| {
            let text = format!(r#"{{{extra} "mcpServers": {{"s": {{"command": "x"}}}}}}"#);
            parse_config(&text, &|_| None).map(|c| c.http_limits.write_timeout)
        };
        assert_eq!(parse("").expect("valid"), Duration::from_secs(30));
        assert_eq!(
            parse(r#""client_write_timeout_ms": 250,"#).expect("valid"),
            Duration::from_millis(250)
        );
        for bad in ["0", "3600001", "-5"] {
            let err = parse(&format!(r#""client_write_timeout_ms": {bad},"#)).expect_err(bad);
            assert_eq!(err.path, "client_write_timeout_ms", "{bad}: {err}");
        }
    }
}
