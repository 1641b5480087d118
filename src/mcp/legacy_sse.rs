//! The legacy 2024-11-05 HTTP+SSE transport, for old clients: `GET /sse` opens the session's
//! stream (its first event names `/messages?session_id=…`), each JSON-RPC message is POSTed
//! there and answered `202 Accepted` at once, and every answer, and everything a server sends
//! about a call (progress, log messages, requests to the client), goes out on the stream as
//! `event: message` events.
//!
//! Session ids are the stateless `SessionKeys` tokens, so forged ids are refused like on
//! `/mcp`; the way from a POST (any core) to the stream (one core) is `legacy_sessions`.
//! Messages are answered by the same `dispatch` as `/mcp`, on a task of the POST's core.
//!
//! Owns: the legacy routes, reading the session from the query, and turning replies and call
//! streams into events on the session's stream. Must never: answer a message before its
//! session is checked, or keep a call running once its stream is gone.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use super::admission::Admission;
use super::call_stream::CallStream;
use super::checks::accepts;
use super::forward::Arrival;
use super::legacy_sessions::{self, OpenError, Refusal, Ticket, MAX_MESSAGE};
use super::legacy_stream::LegacyStream;
use super::methods;
use super::service::{content_type_ok, dispatch, open_stream, parse_body, refuse, McpService};
use super::session::SessionClaims;
use super::stream::McpStream;
use super::version::ProtocolVersion;
use crate::audit::Recorder;
use crate::http::sse::write_event;
use crate::http::{Method, Outcome, RequestHead, Response, SseStream, Status};
use crate::jsonrpc::{parse_message, write_error, ErrorCode, MessageKind};
use crate::registry::RegistrySnapshot;

/// The value of `name` in a query string (no percent-decoding: session ids never need it).
fn query_param<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

impl McpService {
    /// `GET /sse` and `POST /messages`; origin checks and CORS are done by the caller.
    pub(super) async fn legacy(
        &self,
        head: &RequestHead<'_>,
        body: &[u8],
        snapshot: &Arc<RegistrySnapshot>,
        admission: Admission,
        resp: &mut Response,
    ) -> Outcome<McpStream> {
        match (head.path, head.method) {
            ("/sse", Method::Get) => {
                return self.open_legacy_stream(head, snapshot, admission, resp)
            }
            ("/messages", Method::Post) => {
                self.legacy_post(head, body, snapshot, admission, resp)
                    .await
            }
            (path, _) => {
                resp.header(
                    "Allow",
                    if path == "/sse" {
                        "GET, OPTIONS"
                    } else {
                        "POST, OPTIONS"
                    },
                );
                refuse(
                    resp,
                    Status::MethodNotAllowed,
                    ErrorCode::InvalidRequest,
                    "Method Not Allowed: the legacy SSE transport is GET /sse and POST /messages",
                );
            }
        }
        Outcome::Done
    }

    /// Issues a session (revision 2024-11-05, no capabilities yet) and opens its stream.
    fn open_legacy_stream(
        &self,
        head: &RequestHead<'_>,
        snapshot: &RegistrySnapshot,
        admission: Admission,
        resp: &mut Response,
    ) -> Outcome<McpStream> {
        if !accepts(head.accept, "text/event-stream") {
            refuse(
                resp,
                Status::NotAcceptable,
                ErrorCode::InvalidRequest,
                "Not Acceptable: GET /sse opens an SSE stream; Accept must allow text/event-stream",
            );
            return Outcome::Done;
        }
        let Some(slot) = open_stream(snapshot, admission, resp) else {
            return Outcome::Done;
        };
        let keys = self.sessions.keys_arc();
        let issued = keys
            .issue_with(ProtocolVersion::V2024_11_05, 0, admission.key)
            .and_then(|token| match keys.verify(token.as_bytes()) {
                Ok(claims) => Ok((token, claims)),
                Err(e) => Err(std::io::Error::other(format!("{e:?}"))),
            });
        let (token, claims) = match issued {
            Ok(issued) => issued,
            Err(e) => {
                tracing::error!(error = %e, "cannot issue a legacy session id");
                refuse(
                    resp,
                    Status::InternalServerError,
                    ErrorCode::InternalError,
                    "cannot issue a session id",
                );
                return Outcome::Done;
            }
        };
        let registration = match legacy_sessions::open(claims.nonce) {
            Ok(r) => r,
            Err(OpenError::Full) => {
                refuse(
                    resp,
                    Status::ServiceUnavailable,
                    ErrorCode::InvalidRequest,
                    &format!(
                        "Service Unavailable: {} legacy SSE sessions are open, the most this gateway keeps; use /mcp or retry later",
                        legacy_sessions::MAX_SESSIONS
                    ),
                );
                return Outcome::Done;
            }
            Err(OpenError::Taken) => {
                refuse(
                    resp,
                    Status::InternalServerError,
                    ErrorCode::InternalError,
                    "session id collision; retry",
                );
                return Outcome::Done;
            }
        };
        resp.status = Status::Ok;
        Outcome::Stream(McpStream::Legacy(Box::new(LegacyStream::new(
            registration,
            keys,
            &token,
            claims.nonce,
            self.settings.heartbeat,
            slot,
        ))))
    }

    /// `POST /messages?session_id=…`: checks the message and its session, answers 202, and
    /// leaves the answer to a task that queues it on the session's stream.
    async fn legacy_post(
        &self,
        head: &RequestHead<'_>,
        body: &[u8],
        snapshot: &Arc<RegistrySnapshot>,
        admission: Admission,
        resp: &mut Response,
    ) {
        let arrival = Arrival {
            at: Instant::now(),
            bytes: body.len(),
        };
        if !content_type_ok(head, resp) {
            return;
        }
        let Some(session_id) = query_param(head.query, "session_id") else {
            return refuse(
                resp,
                Status::BadRequest,
                ErrorCode::InvalidRequest,
                "Bad Request: the session_id query parameter is required (the URL of the endpoint event of GET /sse)",
            );
        };
        let Ok(claims) = self.sessions.verify(session_id.as_bytes()) else {
            return refuse(
                resp,
                Status::NotFound,
                ErrorCode::InvalidRequest,
                "Session not found: the session_id is unknown, forged or expired; open GET /sse again",
            );
        };
        if !admission.owns(&claims, resp) || !self.version_header_ok(head, resp) {
            return;
        }
        let Some(env) = parse_body(body, resp) else {
            return;
        };
        let ticket = match legacy_sessions::admit(claims.nonce) {
            Ok(t) => t,
            Err(Refusal::Closed) => {
                return refuse(
                    resp,
                    Status::NotFound,
                    ErrorCode::InvalidRequest,
                    "Session not found: the SSE stream of this session is closed; open GET /sse again",
                )
            }
            Err(Refusal::Busy) => {
                return refuse(
                    resp,
                    Status::ServiceUnavailable,
                    ErrorCode::InvalidRequest,
                    &format!(
                        "Service Unavailable: {} requests of this session are waiting to be answered on its SSE stream; read the stream, then retry",
                        legacy_sessions::MAX_IN_FLIGHT
                    ),
                )
            }
        };
        // What the token says, with what the client declared at `initialize`.
        let claims = SessionClaims {
            client_capabilities: ticket.capabilities,
            client: ticket.client,
            ..claims
        };
        if env.kind() != MessageKind::Request {
            // A notification, or the client's answer to a server's request: nothing goes back.
            return dispatch(
                admission.access(snapshot),
                &self.recorder,
                &self.settings.cores,
                &env,
                &claims,
                arrival,
                resp,
                &mut None,
            )
            .await;
        }
        let task = Answer {
            snapshot: Arc::clone(snapshot),
            admission,
            recorder: self.recorder.clone(),
            claims,
            arrival,
            body: body.into(),
            ticket,
        };
        monoio::spawn(task.run());
        resp.empty(Status::Accepted);
    }
}

/// A legacy request on its way to an answer, owned so it outlives the POST.
struct Answer {
    /// The snapshot the request arrived under (an `Arc`: legacy requests are not the hot path).
    snapshot: Arc<RegistrySnapshot>,
    admission: Admission,
    recorder: Rc<Recorder>,
    claims: SessionClaims,
    arrival: Arrival,
    body: Box<[u8]>,
    ticket: Ticket,
}

impl Answer {
    async fn run(mut self) {
        // Checked by the POST already; a failure here cannot happen, and would just be dropped.
        let Ok(env) = parse_message(&self.body) else {
            return;
        };
        let id = env.id_or_null();
        let mut resp = Response::new();
        let mut call = None;
        if env.method.as_deref() == Some("initialize") {
            let out = resp.json(Status::Ok);
            if let Some(handshake) = methods::handshake(&env, out) {
                legacy_sessions::set_declared(
                    self.claims.nonce,
                    handshake.capabilities,
                    handshake.client,
                );
                methods::write_initialize_result(out, id, handshake.version);
            }
        } else {
            // Only requests come here, so no cancellation needs the other cores.
            dispatch(
                self.admission.access(&self.snapshot),
                &self.recorder,
                &[],
                &env,
                &self.claims,
                self.arrival,
                &mut resp,
                &mut call,
            )
            .await;
        }
        match call {
            None => {
                let reply = message_event(&resp.body, id);
                self.ticket.deliver(reply).await;
            }
            Some(call) => pump(call, &mut self.ticket, id).await,
        }
    }
}

/// `message` as an `event: message` event; a message over [`MAX_MESSAGE`] becomes an error
/// answer to request `id` instead.
fn message_event(message: &[u8], id: &str) -> Box<[u8]> {
    let mut event = Vec::with_capacity(message.len().min(MAX_MESSAGE) + 32);
    event.extend_from_slice(b"event: message\n");
    if message.len() <= MAX_MESSAGE {
        write_event(&mut event, message);
    } else {
        write_event(&mut event, &too_large(id, message.len()));
    }
    event.into()
}

fn too_large(id: &str, len: usize) -> Vec<u8> {
    let mut error = Vec::with_capacity(160);
    write_error(
        &mut error,
        id,
        ErrorCode::InternalError,
        &format!(
            "the answer ({len} bytes) is larger than the legacy SSE transport's {} MiB message limit; use /mcp",
            MAX_MESSAGE >> 20
        ),
    );
    error
}

/// Relays a streaming call's events (progress, log messages, server requests, then the
/// answer) to the session's stream. Ends early when the stream is gone or an event is too
/// large; dropping the call then cancels it upstream.
async fn pump(mut call: Box<CallStream>, ticket: &mut Ticket, id: &str) {
    const PREFIX: &[u8] = b"event: message\n";
    let mut event = Vec::with_capacity(512);
    loop {
        event.clear();
        event.extend_from_slice(PREFIX);
        if !call.next_event(&mut event).await {
            return;
        }
        if event.len() > MAX_MESSAGE + PREFIX.len() {
            let error = message_event(&too_large(id, event.len()), id);
            ticket.deliver(error).await;
            return;
        }
        if !ticket.deliver(event.as_slice().into()).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_id_from_the_query() {
        assert_eq!(
            query_param(Some("session_id=abc"), "session_id"),
            Some("abc")
        );
        assert_eq!(
            query_param(Some("x=1&session_id=abc&y=2"), "session_id"),
            Some("abc")
        );
        assert_eq!(query_param(Some("session_idx=abc"), "session_id"), None);
        assert_eq!(query_param(Some("x=1"), "session_id"), None);
        assert_eq!(query_param(None, "session_id"), None);
    }

    #[test]
    fn answers_are_message_events() {
        assert_eq!(
            &*message_event(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#, "1"),
            b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n"
        );
    }
}
