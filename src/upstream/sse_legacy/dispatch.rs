//! Every message a legacy SSE server sends on its stream goes through [`dispatch`]: replies go
//! to their waiting call, notifications to [`on_notification`], requests from the server to
//! [`answer_request`]. Routing server messages to clients (progress, sampling, list_changed)
//! hooks in here, and only here.
//!
//! Runs on the stream's owner core, inside its reader: must never block or wait (an answer to
//! the server is POSTed by a task of its own, and only so many at once).

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use crate::jsonrpc::RawJson;

use super::super::call::{Responder, ResponderRoute, CLIENT_BEHIND};
use super::super::pending::Relay;
use super::super::process::{encode_answer_to_server, encode_error_to_server, leading_id, preview};
use super::super::server_notices;
use super::super::Payload;
use super::{Inner, Session, SseAnswerPath};
use crate::http::sse::SkippedEvent;
use crate::jsonrpc::Envelope;

/// Answers to the server's requests being POSTed at once; a server asking faster than its
/// answers go out gets no more (it would otherwise grow the task list without bound).
const MAX_ANSWERS_IN_FLIGHT: usize = 64;

/// Counts the answer POSTs in flight on one stream.
#[derive(Default)]
pub(super) struct Answers(Rc<Cell<usize>>);

/// One `message` event's data.
pub(super) fn dispatch(
    inner: &Arc<Inner>,
    session: &Arc<Session>,
    answers: &Answers,
    message: &[u8],
) {
    let name = &inner.spec.name;
    let env = match Envelope::decode(message) {
        Ok(env) => env,
        Err(e) => {
            tracing::warn!(server = %name, "skipping an SSE message that is not JSON-RPC ({e}): {}", preview(message));
            return;
        }
    };
    let payload = Payload::locate(message, &env);
    match (env.method.as_deref(), env.id) {
        (None, Some(id)) => session.pending.deliver(name, id.get(), message, payload),
        (Some(method), Some(id)) => {
            let relayed = match method {
                "ping" => Relay::NoSingleCall,
                _ => relay_request(inner, session, id, message),
            };
            let answer = match relayed {
                Relay::Relayed => return,
                Relay::ClientBehind => encode_error_to_server(id, -32603, CLIENT_BEHIND),
                Relay::NoSingleCall => {
                    if method != "ping" {
                        tracing::debug!(server = %name, method, "the server sent a request the gateway does not serve");
                    }
                    encode_answer_to_server(method, id)
                }
            };
            answer_request(inner, session, answers, method, answer)
        }
        (Some(method), None) => on_notification(name, session, method, env.params, message),
        (None, None) => {
            tracing::warn!(server = %name, "skipping a message with neither id nor method: {}", preview(message))
        }
    }
}

/// Notifications from the server: notices to the registry keeper, the rest to the call they
/// concern (see [`super::super::pending::PendingCalls::pass_notification`]).
fn on_notification(
    name: &str,
    session: &Session,
    method: &str,
    params: Option<RawJson<'_>>,
    message: &[u8],
) {
    if !server_notices::report(name, method, params)
        && !session
            .pending
            .pass_notification(name, method, params, message)
    {
        tracing::debug!(server = %name, method, "notification from the server not tied to a call: {}", preview(message));
    }
}

/// Passes a server request to the client of the one call in flight (when it is not relayed,
/// it is refused).
fn relay_request(
    inner: &Arc<Inner>,
    session: &Arc<Session>,
    id: RawJson<'_>,
    message: &[u8],
) -> Relay {
    session
        .pending
        .pass_request(&inner.spec.name, message, || Responder {
            upstream_id: id.get().into(),
            route: ResponderRoute::Sse(SseAnswerPath {
                inner: inner.clone(),
                session: session.clone(),
            }),
        })
}

/// Sends the gateway's `answer` to a request from the server (`ping` is answered, a request
/// no client takes is refused): POSTed to the endpoint like any message, by a task on this
/// core.
fn answer_request(
    inner: &Arc<Inner>,
    session: &Arc<Session>,
    answers: &Answers,
    method: &str,
    answer: Vec<u8>,
) {
    let name = &inner.spec.name;
    if answers.0.get() >= MAX_ANSWERS_IN_FLIGHT {
        tracing::warn!(server = %name, method, "too many answers to the server in flight; this request goes unanswered");
        return;
    }
    let (inner, session) = (inner.clone(), session.clone());
    let (count, method) = (answers.0.clone(), method.to_owned());
    count.set(count.get() + 1);
    monoio::spawn(async move {
        if let Err(e) = inner.post(&session.endpoint, &answer).await {
            tracing::warn!(server = %inner.spec.name, method, "could not answer the server's request: {e}");
        }
        count.set(count.get() - 1);
    });
}

/// An event over `max_upstream_reply_bytes`, already dropped: its call (when its id can be
/// read from the message's start or end) fails at once instead of timing out.
pub(super) fn on_oversized(inner: &Inner, session: &Session, skipped: &SkippedEvent) {
    let (name, max, len) = (&inner.spec.name, inner.spec.max_event_bytes, skipped.len);
    tracing::error!(server = %name, "discarded an SSE event of {len} bytes (max_upstream_reply_bytes {max}): {}", preview(&skipped.head));
    if let Some(id) = leading_id(&skipped.head).or_else(|| trailing_id(&skipped.tail)) {
        let reason = format!("reply of {len} bytes exceeds max_upstream_reply_bytes ({max})");
        session.pending.fail(name, id, reason);
    }
}

/// The id of a message that ends with `"id":<digits>}`, as the TypeScript SDK writes replies
/// (`{"result":…,"jsonrpc":"2.0","id":7}`): the member just before the last `}` of a valid
/// object is a top-level one.
fn trailing_id(tail: &[u8]) -> Option<u64> {
    let rest = tail.trim_ascii_end().strip_suffix(b"}")?.trim_ascii_end();
    let digits = rest.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    let (rest, number) = rest.split_at(rest.len() - digits);
    let rest = rest
        .trim_ascii_end()
        .strip_suffix(b":")?
        .trim_ascii_end()
        .strip_suffix(br#""id""#)?
        .trim_ascii_end();
    if digits == 0 || !(rest.ends_with(b",") || rest.ends_with(b"{")) {
        return None;
    }
    std::str::from_utf8(number).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::trailing_id;

    #[test]
    fn ids_are_read_from_the_end_only_when_certainly_top_level() {
        assert_eq!(trailing_id(br#"xx"},"jsonrpc":"2.0","id":42}"#), Some(42));
        assert_eq!(trailing_id(b"...\"x\" , \"id\" : 7 }\n"), Some(7));
        assert_eq!(trailing_id(br#"{"id":3}"#), Some(3));
        for none in [
            &br#"{"result":{"id":5}}"#[..],
            br#""id":"abc"}"#,
            br#"\"id":5}"#,
            br#","id":}"#,
            br#","id":5"#,
        ] {
            assert_eq!(trailing_id(none), None, "{}", String::from_utf8_lossy(none));
        }
    }
}
