//! What one load run is, checked: the target (resolved address, path, extra headers), how many
//! threads and connections, when to stop, the pacing, the mix and the timeout. Every flag
//! error is found here, before a thread starts.

use std::path::Path;
use std::time::Duration;

use mcpgate::config::IoDriverChoice;
use mcpgate::config::UpstreamTls;
use mcpgate::runtime::IoDriver;
use mcpgate::tls::client::upstream_config;
use mcpgate::upstream::url::UpstreamUrl;

use crate::cli::{DriverArg, LoadArgs};
use crate::mix::Mix;

/// Measured time when neither --duration-secs nor --requests is given.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);

/// The endpoint and the headers every request carries.
#[derive(Debug, Clone)]
pub struct Target {
    /// As given, for reports.
    pub display: String,
    pub url: UpstreamUrl,
    pub headers: Vec<(String, String)>,
}

/// When the measurement ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stop {
    After(Duration),
    /// This many measured calls in all.
    Requests(u64),
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub target: Target,
    pub threads: usize,
    pub connections: usize,
    pub stop: Stop,
    pub warmup: Duration,
    /// Total calls per second (open loop), or `None` (closed loop).
    pub rate: Option<f64>,
    pub mix: Mix,
    pub timeout: Duration,
    pub driver: IoDriver,
    /// Prefix of the live progress line on stderr; `None` prints none.
    pub progress: Option<String>,
    /// Busy-poll window of the load threads (`None`: off).
    pub busy_poll: Option<Duration>,
}

impl Target {
    pub fn new(url: &str, headers: &[String]) -> Result<Target, String> {
        // https:// targets are verified against the system's CAs (SSL_CERT_FILE overrides).
        let tls = if url.starts_with("https://") {
            let config = upstream_config("--url", &UpstreamTls::default())
                .map_err(|e| format!("--url {url}: {e}"))?;
            Some(config)
        } else {
            None
        };
        let parsed =
            UpstreamUrl::resolve(url, tls.as_ref()).map_err(|e| format!("--url {url}: {e}"))?;
        let headers = headers
            .iter()
            .map(|h| parse_header(h))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Target {
            display: url.to_owned(),
            url: parsed,
            headers,
        })
    }
}

/// `Name: value` → `(name, value)`; refuses what would break the request's framing.
fn parse_header(h: &str) -> Result<(String, String), String> {
    let (name, value) = h
        .split_once(':')
        .ok_or_else(|| format!("--header {h:?}: expected 'Name: value'"))?;
    let name = name.trim();
    let value = value.trim();
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        return Err(format!("--header {h:?}: invalid header name"));
    }
    if value.chars().any(|c| c == '\r' || c == '\n' || c == '\0') {
        return Err(format!("--header {name}: the value has a line break"));
    }
    let reserved = [
        "host",
        "content-length",
        "content-type",
        "accept",
        "transfer-encoding",
        "mcp-session-id",
        "mcp-protocol-version",
    ];
    if reserved.iter().any(|r| name.eq_ignore_ascii_case(r)) {
        return Err(format!("--header {name}: set by mcpgate-load itself"));
    }
    Ok((name.to_owned(), value.to_owned()))
}

fn seconds(flag: &str, secs: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{flag} must be a number of seconds ≥ 0"))
}

/// The mix the flags ask for: a scenario file, or `tool` with `--args`.
pub fn mix_from(load: &LoadArgs, tool: &str) -> Result<Mix, String> {
    match &load.scenario {
        Some(path) => Mix::from_file(Path::new(path)),
        None => Mix::single(
            tool,
            load.args.as_deref().unwrap_or(r#"{"message":"hello"}"#),
        ),
    }
}

impl Plan {
    /// Checks the shared flags; `stop` and `mix` come from the command.
    pub fn new(target: Target, load: &LoadArgs, stop: Stop, mix: Mix) -> Result<Plan, String> {
        if load.connections == 0 {
            return Err("--connections must be at least 1".into());
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = match load.threads {
            Some(0) => return Err("--threads must be at least 1".into()),
            Some(t) => t,
            None => cores,
        }
        .min(load.connections);
        if let Some(r) = load.rate {
            if !(r.is_finite() && r > 0.0) {
                return Err("--rate must be a positive number of calls per second".into());
            }
        }
        match stop {
            Stop::Requests(0) => return Err("--requests must be at least 1".into()),
            Stop::After(d) if d.is_zero() => return Err("the measured time must be > 0".into()),
            _ => {}
        }
        if load.timeout_ms == 0 {
            return Err("--timeout-ms must be at least 1".into());
        }
        let choice = match load.io_driver {
            DriverArg::Auto => IoDriverChoice::Auto,
            DriverArg::Uring => IoDriverChoice::Uring,
            DriverArg::Epoll => IoDriverChoice::Epoll,
        };
        let driver = IoDriver::resolve(choice).map_err(|e| e.to_string())?;
        Ok(Plan {
            target,
            threads,
            connections: load.connections,
            stop,
            warmup: seconds("--warmup-secs", load.warmup_secs)?,
            rate: load.rate,
            mix,
            timeout: Duration::from_millis(load.timeout_ms),
            driver,
            progress: None,
            busy_poll: (load.busy_poll_us > 0).then(|| Duration::from_micros(load.busy_poll_us)),
        })
    }

    /// `--duration-secs` / `--requests` of `run`.
    pub fn stop_from(duration_secs: Option<f64>, requests: Option<u64>) -> Result<Stop, String> {
        match (duration_secs, requests) {
            (_, Some(n)) => Ok(Stop::Requests(n)),
            (Some(s), None) => Ok(Stop::After(seconds("--duration-secs", s)?)),
            (None, None) => Ok(Stop::After(DEFAULT_DURATION)),
        }
    }

    pub fn round_stop(round_secs: f64) -> Result<Stop, String> {
        Ok(Stop::After(seconds("--round-secs", round_secs)?))
    }

    /// "closed loop" or "open loop".
    pub fn mode(&self) -> &'static str {
        if self.rate.is_some() {
            "open"
        } else {
            "closed"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_checked() {
        assert_eq!(
            parse_header("Authorization: Bearer x:y").unwrap(),
            ("Authorization".into(), "Bearer x:y".into())
        );
        assert!(parse_header("no colon").is_err());
        assert!(parse_header("Bad Name: x").is_err());
        assert!(parse_header("X: a\r\nEvil: b").is_err());
        assert!(parse_header("mcp-session-id: x").is_err());
    }

    #[test]
    fn stop_defaults() {
        assert_eq!(
            Plan::stop_from(None, None).unwrap(),
            Stop::After(DEFAULT_DURATION)
        );
        assert_eq!(Plan::stop_from(None, Some(5)).unwrap(), Stop::Requests(5));
        assert!(Plan::stop_from(Some(-1.0), None).is_err());
        assert!(Plan::stop_from(Some(f64::NAN), None).is_err());
    }
}
