//! The HTTP access log: one JSON line per request on the client listener (time, remote
//! address, method, path, status, bytes in and out, duration, key name), written by the log
//! thread.
//!
//! Owns: the record a worker hands over (plain values; the path is a static string for the
//! gateway's own paths and a short copy otherwise) and its line. Must never: record a query
//! string (a legacy session id travels in one) or a header value.

use std::net::SocketAddr;
use std::sync::Arc;

use serde::Serialize;

use super::clock::rfc3339_millis;
use crate::http::Method;

/// Longest path recorded, in bytes; longer ones are cut.
const MAX_PATH: usize = 200;

/// A request's path: one of the gateway's own (no allocation) or a copy of another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessPath {
    Known(&'static str),
    Other(Box<str>),
}

impl AccessPath {
    pub fn new(path: &str) -> AccessPath {
        const KNOWN: [&str; 5] = ["/mcp", "/mcp/", "/sse", "/messages", "/healthz"];
        match KNOWN.iter().find(|k| **k == path) {
            Some(known) => AccessPath::Known(known),
            None => {
                let mut end = path.len().min(MAX_PATH);
                while !path.is_char_boundary(end) {
                    end -= 1;
                }
                AccessPath::Other(path[..end].into())
            }
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            AccessPath::Known(p) => p,
            AccessPath::Other(p) => p,
        }
    }
}

/// One HTTP request, as the log thread receives it.
#[derive(Debug)]
pub struct AccessRecord {
    /// When the request head was read, microseconds since the Unix epoch.
    pub at_micros: u64,
    pub remote: Option<SocketAddr>,
    pub method: Method,
    pub path: AccessPath,
    /// 499: the client went away before the reply was written.
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub duration_us: u64,
    /// The virtual key's name; `None` when the request presented none that was accepted.
    pub key: Option<Arc<str>>,
}

#[derive(Serialize)]
struct AccessLine<'a> {
    time: String,
    remote: Option<String>,
    method: &'static str,
    path: &'a str,
    status: u16,
    bytes_in: u64,
    bytes_out: u64,
    duration_us: u64,
    key: Option<&'a str>,
}

fn method_name(method: Method) -> &'static str {
    match method {
        Method::Get => "GET",
        Method::Post => "POST",
        Method::Delete => "DELETE",
        Method::Put => "PUT",
        Method::Options => "OPTIONS",
        Method::Head => "HEAD",
        Method::Other => "OTHER",
    }
}

impl AccessRecord {
    /// The record's line (without the newline).
    pub fn line(&self) -> Vec<u8> {
        let line = AccessLine {
            time: rfc3339_millis(self.at_micros),
            remote: self.remote.map(|a| a.to_string()),
            method: method_name(self.method),
            path: self.path.as_str(),
            status: self.status,
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
            duration_us: self.duration_us,
            key: self.key.as_deref(),
        };
        serde_json::to_vec(&line).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_carry_every_field() {
        let record = AccessRecord {
            at_micros: 1_000_000,
            remote: Some("127.0.0.1:5555".parse().unwrap()),
            method: Method::Post,
            path: AccessPath::new("/mcp"),
            status: 200,
            bytes_in: 120,
            bytes_out: 340,
            duration_us: 95,
            key: Some(Arc::from("eng")),
        };
        let v: serde_json::Value = serde_json::from_slice(&record.line()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"time": "1970-01-01T00:00:01.000Z", "remote": "127.0.0.1:5555",
                "method": "POST", "path": "/mcp", "status": 200, "bytes_in": 120,
                "bytes_out": 340, "duration_us": 95, "key": "eng"})
        );
    }

    #[test]
    fn paths_are_shared_or_cut() {
        assert_eq!(AccessPath::new("/sse"), AccessPath::Known("/sse"));
        let long = format!("/mcp/{}", "g".repeat(300));
        assert_eq!(AccessPath::new(&long).as_str().len(), MAX_PATH);
    }
}
