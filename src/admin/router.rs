//! The admin listener's request handling: the token check, routing by method and path, and
//! errors as `{"error": "..."}` with a precise status.
//!
//! Owns: who gets in and which endpoint answers. Every request needs `Authorization: Bearer
//! <admin.token>` (compared as a SHA-256 hash in constant time); without a configured token
//! (loopback listeners only) requests from browsers are refused instead, since any web page
//! could otherwise reach a loopback port. Must never: log or echo the presented token, or let
//! a request past the check without one when a token is configured.

use std::sync::Arc;

use serde_json::{json, Value};

use super::state::AdminState;
use super::{audit_route, exposition, keys_view, metrics_page, servers_view, stats_view};
use super::{tools_view, NoStream};
use crate::auth::keys::{presented, KeyHash};
use crate::http::percent::{percent_decode, Plus};
use crate::http::{Handler, Method, Outcome, RequestHead, Response, Status};

/// Largest request body the API reads; the listener's codec refuses far larger ones itself.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// An answer, before it is written.
pub struct Reply {
    status: Status,
    content_type: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Reply {
    pub fn json(status: Status, value: Value) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            // Serializing a `Value` cannot fail.
            body: serde_json::to_vec(&value).unwrap_or_default(),
        }
    }

    /// `{"error": message}`.
    pub fn error(status: Status, message: impl Into<String>) -> Reply {
        Reply::json(status, json!({ "error": message.into() }))
    }

    pub fn text(status: Status, content_type: &'static str, body: String) -> Reply {
        Reply {
            status,
            content_type,
            headers: Vec::new(),
            body: body.into_bytes(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    pub fn status(&self) -> Status {
        self.status
    }

    pub fn body(&self) -> &[u8] {
        &self.body
    }

    fn write_into(self, resp: &mut Response) {
        resp.status = self.status;
        resp.content_type = Some(self.content_type);
        resp.headers.extend(self.headers);
        resp.body.clear();
        resp.body.extend_from_slice(&self.body);
    }
}

/// The admin API on one listener.
pub struct AdminApi {
    state: Arc<AdminState>,
    /// `None`: no token configured (the config allows that on loopback only).
    token: Option<KeyHash>,
}

impl AdminApi {
    pub fn new(state: Arc<AdminState>, token: Option<KeyHash>) -> Self {
        AdminApi { state, token }
    }

    async fn answer(&self, head: &RequestHead<'_>, body: &[u8]) -> Reply {
        if let Some(refused) = self.refuse(head) {
            return refused;
        }
        if body.len() > MAX_BODY_BYTES {
            return Reply::error(
                Status::PayloadTooLarge,
                format!("request body is larger than {MAX_BODY_BYTES} bytes"),
            );
        }
        let Some(rest) = head.path.strip_prefix('/') else {
            return not_found(head.path);
        };
        let segments: Vec<&str> = rest.split('/').collect();
        let state = &*self.state;
        // HEAD is answered like GET (the codec leaves the body out).
        let method = match head.method {
            Method::Head => Method::Get,
            m => m,
        };
        match segments.as_slice() {
            ["metrics"] => match only(method, Method::Get, "GET") {
                Err(refused) => refused,
                Ok(()) => Reply::text(
                    Status::Ok,
                    exposition::CONTENT_TYPE,
                    metrics_page::render(state),
                ),
            },
            ["api", "servers"] => {
                only(method, Method::Get, "GET").map_or_else(|r| r, |()| servers_view::list(state))
            }
            ["api", "servers", name, "reconnect"] => match only(method, Method::Post, "POST") {
                Err(refused) => refused,
                Ok(()) => match percent_decode(name, Plus::Literal) {
                    Some(name) => servers_view::reconnect(state, name).await,
                    None => bad_segment("server name"),
                },
            },
            ["api", "tools"] => {
                only(method, Method::Get, "GET").map_or_else(|r| r, |()| tools_view::list(state))
            }
            ["api", "tools", name] => match only(method, Method::Put, "PUT") {
                Err(refused) => refused,
                Ok(()) => match percent_decode(name, Plus::Literal) {
                    Some(name) => tools_view::switch(state, name, body).await,
                    None => bad_segment("tool name"),
                },
            },
            ["api", "keys"] => {
                only(method, Method::Get, "GET").map_or_else(|r| r, |()| keys_view::list(state))
            }
            ["api", "stats"] => {
                only(method, Method::Get, "GET").map_or_else(|r| r, |()| stats_view::stats(state))
            }
            ["api", "audit"] => only(method, Method::Get, "GET").map_or_else(
                |r| r,
                |()| audit_route::audit(state.audit_store.as_deref(), head.query),
            ),
            _ => not_found(head.path),
        }
    }

    /// The answer for a request that may not go further (401, or 403 for a browser on a
    /// listener without a token); `None` lets it through.
    fn refuse(&self, head: &RequestHead<'_>) -> Option<Reply> {
        let Some(token) = &self.token else {
            return open_listener_refusal(head);
        };
        let challenge = |error: &str| {
            let value = match error {
                "" => r#"Bearer realm="mcpgate-admin""#.to_owned(),
                e => format!(r#"Bearer realm="mcpgate-admin", error="{e}""#),
            };
            (Status::Unauthorized, value)
        };
        let (status, value, message) = match presented(head.authorization, None) {
            None => {
                let (s, v) = challenge("");
                (
                    s,
                    v,
                    "Unauthorized: send the admin token as `Authorization: Bearer <token>`",
                )
            }
            Some(given) if KeyHash::of(given).matches(token) => return None,
            Some(_) => {
                let (s, v) = challenge("invalid_token");
                (s, v, "Unauthorized: the admin token is not valid")
            }
        };
        Some(Reply::error(status, message).with_header("WWW-Authenticate", value))
    }
}

impl Handler for AdminApi {
    type Stream = NoStream;

    async fn handle(
        &self,
        head: &RequestHead<'_>,
        body: &[u8],
        resp: &mut Response,
    ) -> Outcome<NoStream> {
        let reply = self.answer(head, body).await;
        // The path and status only: never a header (the token) or a body.
        tracing::debug!(method = ?head.method, path = head.path, status = reply.status.code(), "admin request");
        reply.write_into(resp);
        Outcome::Done
    }
}

/// Without a token, a loopback listener lets in what runs on this machine, but not a web page
/// in a browser here (which could reach the port too): requests that carry `Origin`, or a
/// `Host` that is not a loopback name (DNS rebinding), are refused.
fn open_listener_refusal(head: &RequestHead<'_>) -> Option<Reply> {
    if head.origin.is_some() {
        return Some(Reply::error(
            Status::Forbidden,
            "Forbidden: browser requests need the admin token (set admin.token)",
        ));
    }
    let host = head.host.and_then(|h| std::str::from_utf8(h).ok());
    if !host.is_some_and(loopback_host) {
        return Some(Reply::error(
            Status::Forbidden,
            "Forbidden: without admin.token only requests to a loopback host name are served",
        ));
    }
    None
}

/// `localhost`, a loopback IPv4 address or `[::1]`, with or without a port.
fn loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `Ok` when `method` is the one the route takes, else 405 naming it.
fn only(method: Method, wanted: Method, allow: &'static str) -> Result<(), Reply> {
    if method == wanted {
        return Ok(());
    }
    let allow = if wanted == Method::Get {
        "GET, HEAD"
    } else {
        allow
    };
    Err(Reply::error(
        Status::MethodNotAllowed,
        format!("Method Not Allowed: this route takes {allow}"),
    )
    .with_header("Allow", allow))
}

fn not_found(path: &str) -> Reply {
    Reply::error(
        Status::NotFound,
        format!(
            "no such route: {path:?}; the admin API serves /api/servers, \
             /api/servers/{{name}}/reconnect, /api/tools, /api/tools/{{name}}, /api/keys, \
             /api/stats, /api/audit and /metrics"
        ),
    )
}

fn bad_segment(what: &str) -> Reply {
    Reply::error(
        Status::BadRequest,
        format!("the {what} in the path is not valid percent-encoded UTF-8"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_host_names() {
        for host in [
            "localhost",
            "LOCALHOST:8081",
            "127.0.0.1:1",
            "127.1.2.3",
            "[::1]:9",
        ] {
            assert!(loopback_host(host), "{host}");
        }
        for host in [
            "example.com",
            "10.0.0.1:8081",
            "[::2]:1",
            "localhost.evil.com",
            "",
        ] {
            assert!(!loopback_host(host), "{host}");
        }
    }

    #[test]
    fn wrong_methods_name_the_right_one() {
        let r = only(Method::Post, Method::Get, "GET").unwrap_err();
        assert_eq!(r.status(), Status::MethodNotAllowed);
        assert!(r.headers.contains(&("Allow", "GET, HEAD".to_owned())));
        assert!(only(Method::Put, Method::Put, "PUT").is_ok());
    }
}
