//! `GET /api/audit?limit=&server=&tool=&key=`: the query string checked here, the records read
//! by whatever audit store the gateway runs, through [`AuditQuery`].
//!
//! Owns: the parameters and their bounds. Must never: reach into a store itself (the store
//! owns its files and threads); without one the route answers 501.

use std::sync::Arc;

use serde_json::{json, Value};

use super::router::{percent_decode, Reply};
use crate::http::Status;

/// Records returned unless `limit` says otherwise, and the most it may say.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

/// Which records a request wants: the newest `limit`, narrowed by server, exposed or original
/// tool name and key name when given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFilter {
    pub limit: usize,
    pub server: Option<String>,
    pub tool: Option<String>,
    pub key: Option<String>,
}

/// Reads the records `filter` selects, newest first, each as the JSON object the store keeps
/// (never a key value); the error says why the store could not answer. Runs on the admin
/// thread: a store that blocks only delays the admin API.
pub type AuditQuery = Arc<dyn Fn(&AuditFilter) -> Result<Vec<Value>, String> + Send + Sync>;

/// Answers the route with `query`, or 501 without one.
pub fn audit(query: Option<&AuditQuery>, query_string: Option<&str>) -> Reply {
    let filter = match parse_filter(query_string.unwrap_or("")) {
        Ok(f) => f,
        Err(why) => return Reply::error(Status::BadRequest, why),
    };
    let Some(query) = query else {
        return Reply::error(Status::NotImplemented, "the audit store is not available");
    };
    match query(&filter) {
        Ok(records) => Reply::json(Status::Ok, json!({ "records": records })),
        Err(why) => Reply::error(
            Status::ServiceUnavailable,
            format!("the audit store cannot answer: {why}"),
        ),
    }
}

/// Reads `limit`, `server`, `tool` and `key` (`application/x-www-form-urlencoded`: `+` is a
/// space, `%XX` a byte); anything else is refused, so a typo is not silently ignored.
pub fn parse_filter(query: &str) -> Result<AuditFilter, String> {
    let mut filter = AuditFilter {
        limit: DEFAULT_LIMIT,
        server: None,
        tool: None,
        key: None,
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(&value.replace('+', " "))
            .ok_or_else(|| format!("query parameter {name}: not valid percent-encoded UTF-8"))?;
        match name {
            "limit" => {
                filter.limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| format!("limit: expected a number from 1 to {MAX_LIMIT}"))?;
            }
            "server" => filter.server = Some(value),
            "tool" => filter.tool = Some(value),
            "key" => filter.key = Some(value),
            other => {
                return Err(format!(
                    "unknown query parameter {other:?}; expected limit, server, tool or key"
                ))
            }
        }
    }
    Ok(filter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_decoded_and_checked() {
        let f = parse_filter("limit=5&server=my+server&tool=a%2Fb&key=eng").unwrap();
        assert_eq!(
            f,
            AuditFilter {
                limit: 5,
                server: Some("my server".into()),
                tool: Some("a/b".into()),
                key: Some("eng".into()),
            }
        );
        assert_eq!(parse_filter("").unwrap().limit, DEFAULT_LIMIT);
        assert!(parse_filter("limit=0").unwrap_err().starts_with("limit"));
        assert!(parse_filter("limit=1001").is_err());
        assert!(parse_filter("limit=x").is_err());
        assert!(parse_filter("sever=a").unwrap_err().contains("\"sever\""));
        assert!(parse_filter("tool=%ff").is_err());
    }

    #[test]
    fn without_a_store_the_route_says_so() {
        let reply = audit(None, Some("limit=3"));
        assert_eq!(reply.status(), Status::NotImplemented);
        let store: AuditQuery = Arc::new(|f: &AuditFilter| Ok(vec![json!({"n": f.limit})]));
        let reply = audit(Some(&store), Some("limit=3"));
        assert_eq!(reply.status(), Status::Ok);
        assert_eq!(reply.body(), br#"{"records":[{"n":3}]}"#);
        assert_eq!(
            audit(Some(&store), Some("limit=-1")).status(),
            Status::BadRequest
        );
    }
}
