//! CORS for browser clients (MCP Inspector and web apps): an allowed `Origin` gets the headers
//! a browser needs to read replies and the session id, and preflight requests are answered.
//! Which origins are allowed is decided by `checks::origin_allowed`; this only speaks CORS.

use crate::http::{Response, Status};

const ALLOW_METHODS: &str = "GET, POST, DELETE, OPTIONS";
const ALLOW_HEADERS: &str =
    "Content-Type, Accept, Authorization, X-Api-Key, Mcp-Session-Id, MCP-Protocol-Version, Last-Event-ID";
/// Headers a page may read from replies: without this a browser hides the session id.
const EXPOSE_HEADERS: &str = "Mcp-Session-Id, MCP-Protocol-Version, WWW-Authenticate";

/// Marks a reply to an allowed cross-origin request as readable by that origin.
pub fn allow(resp: &mut Response, origin: &[u8]) {
    resp.header(
        "Access-Control-Allow-Origin",
        String::from_utf8_lossy(origin).into_owned(),
    );
    resp.header("Access-Control-Expose-Headers", EXPOSE_HEADERS);
    resp.header("Vary", "Origin");
}

/// Answers `OPTIONS /mcp`: a CORS preflight when an (allowed) origin asks, else the methods.
pub fn preflight(resp: &mut Response, origin: Option<&[u8]>) {
    if let Some(origin) = origin {
        allow(resp, origin);
        resp.header("Access-Control-Allow-Methods", ALLOW_METHODS);
        resp.header("Access-Control-Allow-Headers", ALLOW_HEADERS);
        resp.header("Access-Control-Max-Age", "86400");
    }
    resp.header("Allow", ALLOW_METHODS);
    resp.empty(Status::NoContent);
}
