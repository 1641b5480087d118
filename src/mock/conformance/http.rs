//! The conformance profile over streamable HTTP (`--profile conformance --listen`), on the
//! gateway's own HTTP server.
//!
//! Owns the HTTP side of MCP as the reference SDK server does it: sessions (`Mcp-Session-Id`
//! issued at `initialize`, 404 for an unknown one, `DELETE` ends one), one SSE stream per
//! request, the client's answers to our requests arriving on later POSTs (202), the
//! standalone `GET` stream, resumption with `Last-Event-ID`, and DNS-rebinding protection
//! (`Host`/`Origin` must be loopback names when the listener is on loopback).
//!
//! Every request runs as its own task writing into its stream's event log (`streams`);
//! the HTTP response only reads that log. So a call outlives the connection it came on: when
//! its stream is closed mid-call (`test_reconnection`) or the connection drops, the rest of
//! the events wait in the log until the client resumes with `GET` + `Last-Event-ID`.
//!
//! State lives in one worker's memory, so this transport runs on exactly one worker. It must
//! never hold a `RefCell` borrow across an `.await`, and must stay bounded: sessions, streams
//! per session and requests waiting for the client are capped (oldest dropped first).

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::rc::Rc;

use serde_json::Value;

use super::streams::{parse_event_id, EventStream, HttpSession, StreamOutbox, STANDALONE};
use super::{answer, error_response, ClientMessage, Outbox};
use crate::http::{Handler, Method, Outcome, RequestHead, Response, Status};
use crate::mcp::checks::{accepts, is_json, origin_allowed};
use crate::mock::{INVALID_REQUEST, PROTOCOL_VERSIONS};

/// The one path this server answers on.
const PATH: &str = "/mcp";

/// Sessions kept at once; a new one beyond this ends the oldest.
const MAX_SESSIONS: usize = 1024;

/// The conformance profile's HTTP handler (one per worker; there is one worker).
pub struct ConformanceHttp {
    /// Whether the listener is on a loopback address (then `Host`/`Origin` must be loopback).
    loopback: bool,
    sessions: RefCell<Sessions>,
}

/// Live sessions by id, and their creation order for eviction.
#[derive(Default)]
struct Sessions {
    by_id: HashMap<String, Rc<HttpSession>>,
    order: VecDeque<String>,
}

impl ConformanceHttp {
    pub fn new(listen: SocketAddr) -> ConformanceHttp {
        ConformanceHttp {
            loopback: listen.ip().is_loopback(),
            sessions: RefCell::new(Sessions::default()),
        }
    }

    /// Creates a session and returns its id.
    fn create_session(&self) -> std::io::Result<(String, Rc<HttpSession>)> {
        let mut raw = [0u8; 16];
        getrandom::getrandom(&mut raw).map_err(std::io::Error::other)?;
        let id: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let session = Rc::new(HttpSession::new());
        let mut sessions = self.sessions.borrow_mut();
        while sessions.by_id.len() >= MAX_SESSIONS {
            let Some(oldest) = sessions.order.pop_front() else {
                break;
            };
            if let Some(old) = sessions.by_id.remove(&oldest) {
                old.end();
            }
        }
        sessions.by_id.insert(id.clone(), session.clone());
        sessions.order.push_back(id.clone());
        Ok((id, session))
    }

    /// The request's session, or the error reply already written into `resp`.
    fn session_of(&self, head: &RequestHead<'_>, resp: &mut Response) -> Option<Rc<HttpSession>> {
        let Some(id) = head.session_id else {
            json_error(
                resp,
                Status::BadRequest,
                "Bad Request: Mcp-Session-Id header is required",
            );
            return None;
        };
        let found = std::str::from_utf8(id)
            .ok()
            .and_then(|id| self.sessions.borrow().by_id.get(id).cloned());
        if found.is_none() {
            json_error(resp, Status::NotFound, "Session not found");
        }
        found
    }

    /// DNS-rebinding protection: on a loopback listener, `Host` and `Origin` (when present)
    /// must name a loopback host.
    fn host_allowed(&self, head: &RequestHead<'_>) -> bool {
        if !self.loopback {
            return true;
        }
        let host_ok = head.host.is_none_or(is_loopback_host);
        let origin_ok = head.origin.is_none_or(|o| origin_allowed(o, &[], true));
        host_ok && origin_ok
    }

    fn post(
        &self,
        head: &RequestHead<'_>,
        body: &[u8],
        resp: &mut Response,
    ) -> Outcome<EventStream> {
        if !is_json(head.content_type) {
            resp.text(
                Status::UnsupportedMediaType,
                "Content-Type must be application/json\n",
            );
            return Outcome::Done;
        }
        if !accepts(head.accept, "application/json") || !accepts(head.accept, "text/event-stream") {
            let why = "Not Acceptable: Accept must list application/json and text/event-stream";
            json_error(resp, Status::NotAcceptable, why);
            return Outcome::Done;
        }
        let message = ClientMessage::parse(body);
        let session = match &message {
            ClientMessage::Invalid(error) => {
                resp.json(Status::BadRequest)
                    .extend_from_slice(error.to_string().as_bytes());
                return Outcome::Done;
            }
            ClientMessage::Request { method, .. } if method == "initialize" => {
                match self.create_session() {
                    Ok((id, session)) => {
                        resp.header("Mcp-Session-Id", id);
                        session
                    }
                    Err(e) => {
                        let why = format!("cannot create a session: {e}");
                        json_error(resp, Status::InternalServerError, &why);
                        return Outcome::Done;
                    }
                }
            }
            _ => match self.session_of(head, resp) {
                Some(session) => session,
                None => return Outcome::Done,
            },
        };
        match message {
            ClientMessage::Request { id, method, params } => {
                Outcome::Stream(start_request(session, id, method, params))
            }
            ClientMessage::Response(response) => {
                // An answer nobody waits for (the call ended) is dropped, as the spec allows.
                session.core.complete(&response);
                resp.empty(Status::Accepted);
                Outcome::Done
            }
            ClientMessage::Notification { .. } | ClientMessage::Invalid(_) => {
                resp.empty(Status::Accepted);
                Outcome::Done
            }
        }
    }

    fn get(&self, head: &RequestHead<'_>, resp: &mut Response) -> Outcome<EventStream> {
        if !accepts(head.accept, "text/event-stream") {
            json_error(
                resp,
                Status::NotAcceptable,
                "Not Acceptable: Accept must list text/event-stream",
            );
            return Outcome::Done;
        }
        let Some(session) = self.session_of(head, resp) else {
            return Outcome::Done;
        };
        let (number, after, opening): (u64, usize, &[u8]) = match head.last_event_id {
            None => (STANDALONE, usize::MAX, b": stream open\n\n"),
            Some(id) => match parse_event_id(id) {
                Some((number, after)) => (number, after, b""),
                None => {
                    json_error(
                        resp,
                        Status::BadRequest,
                        "Bad Request: malformed Last-Event-ID",
                    );
                    return Outcome::Done;
                }
            },
        };
        match session.read_from(number, after, opening) {
            Some(stream) => Outcome::Stream(stream),
            None => {
                json_error(
                    resp,
                    Status::NotFound,
                    "No stream has that Last-Event-ID (it may have been dropped)",
                );
                Outcome::Done
            }
        }
    }

    fn delete(&self, head: &RequestHead<'_>, resp: &mut Response) {
        let Some(session) = self.session_of(head, resp) else {
            return;
        };
        session.end();
        let mut sessions = self.sessions.borrow_mut();
        if let Some(id) = head.session_id.and_then(|id| std::str::from_utf8(id).ok()) {
            sessions.by_id.remove(id);
            sessions.order.retain(|s| s != id);
        }
        resp.empty(Status::Ok);
    }
}

/// Runs a request as its own task and returns the SSE stream that carries its messages.
fn start_request(
    session: Rc<HttpSession>,
    id: Value,
    method: String,
    params: Value,
) -> EventStream {
    let (number, stream) = session.open_stream();
    let outbox = StreamOutbox { session, number };
    monoio::spawn(async move {
        let response = answer(&outbox.session.core, &outbox, &id, &method, &params).await;
        outbox.send(response.to_string().into_bytes());
        outbox.session.finish(outbox.number);
    });
    stream
}

/// Whether a `Host` value (`name[:port]`) names a loopback host.
fn is_loopback_host(host: &[u8]) -> bool {
    let Ok(host) = std::str::from_utf8(host) else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A JSON-RPC error body (id `null`) with an HTTP status.
fn json_error(resp: &mut Response, status: Status, message: &str) {
    let body = error_response(&Value::Null, INVALID_REQUEST.into(), message);
    resp.json(status)
        .extend_from_slice(body.to_string().as_bytes());
}

impl Handler for ConformanceHttp {
    type Stream = EventStream;

    async fn handle(
        &self,
        head: &RequestHead<'_>,
        body: &[u8],
        resp: &mut Response,
    ) -> Outcome<EventStream> {
        if head.path != PATH {
            resp.text(Status::NotFound, "not found: the MCP endpoint is /mcp\n");
            return Outcome::Done;
        }
        if !self.host_allowed(head) {
            json_error(
                resp,
                Status::Forbidden,
                "Forbidden: Host and Origin must be loopback names",
            );
            return Outcome::Done;
        }
        let version_ok = head
            .protocol_version
            .is_none_or(|v| PROTOCOL_VERSIONS.iter().any(|known| known.as_bytes() == v));
        if !version_ok {
            json_error(
                resp,
                Status::BadRequest,
                "Bad Request: unsupported MCP-Protocol-Version",
            );
            return Outcome::Done;
        }
        match head.method {
            Method::Post => self.post(head, body, resp),
            Method::Get => self.get(head, resp),
            Method::Delete => {
                self.delete(head, resp);
                Outcome::Done
            }
            _ => {
                resp.header("Allow", "GET, POST, DELETE");
                resp.text(
                    Status::MethodNotAllowed,
                    "the MCP endpoint answers GET, POST and DELETE\n",
                );
                Outcome::Done
            }
        }
    }
}

/// Serves the conformance profile on `listener` (one worker) until the process ends.
pub fn spawn_http_worker(
    listener: std::net::TcpListener,
    driver: crate::runtime::IoDriver,
) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
    let listen = listener.local_addr()?;
    let limits = crate::http::HttpLimits::default();
    crate::runtime::serve_on_workers(vec![listener], driver, limits, None, move |_| {
        ConformanceHttp::new(listen)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for host in [
            "localhost",
            "LOCALHOST:3000",
            "127.0.0.1",
            "127.0.0.1:8080",
            "[::1]",
            "[::1]:80",
        ] {
            assert!(is_loopback_host(host.as_bytes()), "{host}");
        }
        for host in [
            "evil.example.com",
            "evil.example.com:80",
            "localhost.evil.com",
            "10.0.0.1:80",
            "[fe80::1]:80",
        ] {
            assert!(!is_loopback_host(host.as_bytes()), "{host}");
        }
    }
}
