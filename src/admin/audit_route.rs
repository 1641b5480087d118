//! `GET /api/audit?limit=&server=&tool=&key=&outcome=&method=&since=`: records from the audit
//! log's SQLite store, newest first.
//!
//! Owns: turning the audit module's answers into the admin API's statuses (400 for a bad
//! parameter, 503 for a store that cannot answer, 501 without a store). Must never: write to
//! the store or read it on a worker core (this runs on the admin thread; a slow query delays
//! only the admin API).

use std::path::Path;

use serde_json::Value;

use super::router::Reply;
use crate::audit::{query, AuditQuery};
use crate::http::Status;

/// Answers the route from the store at `db` (`None`: the audit log writes no SQLite store).
pub fn audit(db: Option<&Path>, query_string: Option<&str>) -> Reply {
    let wanted = match AuditQuery::from_query_string(query_string.unwrap_or("")) {
        Ok(q) => q,
        Err(e) => return Reply::error(Status::BadRequest, e.to_string()),
    };
    let Some(db) = db else {
        return Reply::error(
            Status::NotImplemented,
            "the audit store is not available: the audit log writes no SQLite store",
        );
    };
    let records = match query(db, &wanted) {
        Ok(json) => json,
        Err(e) if e.is_bad_request() => return Reply::error(Status::BadRequest, e.to_string()),
        Err(e) => return Reply::error(Status::ServiceUnavailable, e.to_string()),
    };
    match serde_json::from_str::<Value>(&records) {
        Ok(records) => Reply::json(Status::Ok, serde_json::json!({ "records": records })),
        Err(e) => Reply::error(
            Status::InternalServerError,
            format!("the audit store's answer is not JSON: {e}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_checked_before_the_store() {
        let reply = audit(None, Some("limit=3"));
        assert_eq!(reply.status(), Status::NotImplemented);
        assert_eq!(audit(None, Some("limit=zero")).status(), Status::BadRequest);
        assert_eq!(audit(None, Some("sever=x")).status(), Status::BadRequest);
        let missing = Path::new("/nonexistent/mcpgate-audit.db");
        assert_eq!(
            audit(Some(missing), Some("limit=3")).status(),
            Status::ServiceUnavailable
        );
    }
}
