//! JSON-RPC batches, for sessions that negotiated MCP 2025-03-26: the one revision that has
//! them (2025-06-18 removed them, and 2026-07-28 allows one message per POST).
//!
//! Each message of a batch is served exactly as it would be on its own POST (by
//! `McpService::post_message`, with the batch's headers), all at once. The replies go back in
//! request order: as one JSON array when no call streams; as one SSE stream when some call
//! does (its server sent progress, log messages or requests before answering): first every
//! finished reply, then each streaming call's messages and reply, one call after another.
//! Notifications and responses add nothing; a batch of only those is answered 202.
//!
//! Owns: splitting a batch, its size limit, and putting the replies together. Must never:
//! serve `initialize` inside a batch, or let one bad message spoil the others' replies.

use std::collections::VecDeque;

use futures_util::future::join_all;
use serde_json::value::RawValue;

use super::admission::Admission;
use super::call_stream::CallStream;
use super::service::{media_types_ok, refuse, McpService};
use super::stream::McpStream;
use super::version::ProtocolVersion;
use crate::http::sse::write_event as write_sse_event;
use crate::http::{Outcome, RequestHead, Response, SseStream, Status};
use crate::jsonrpc::{parse_message, write_error, ErrorCode, MessageKind};
use crate::registry::Access;

/// The most messages one batch may hold: each is a request the core serves at once.
pub const MAX_BATCH: usize = 100;

/// Whether a POST body is a batch (a JSON array).
pub fn is_batch(body: &[u8]) -> bool {
    body.trim_ascii_start().first() == Some(&b'[')
}

/// What one message of a batch gave back.
enum Reply {
    /// A notification or a response: nothing to send.
    Nothing,
    /// A finished reply (a result or an error), JSON.
    Ready(Vec<u8>),
    /// A call whose server talks before answering.
    Streaming(Box<CallStream>),
}

/// Serves a batch POST.
pub async fn post(
    service: &McpService,
    head: &RequestHead<'_>,
    body: &[u8],
    access: Access<'_>,
    admission: Admission,
    resp: &mut Response,
) -> Outcome<McpStream> {
    if !media_types_ok(head, resp) {
        return Outcome::Done;
    }
    let Some(claims) = service.session(head, admission, resp) else {
        return Outcome::Done;
    };
    if !service.version_header_ok(head, resp) {
        return Outcome::Done;
    }
    let invalid = |resp: &mut Response, code: ErrorCode, message: &str| {
        refuse(resp, Status::BadRequest, code, message);
        Outcome::Done
    };
    if claims.version != ProtocolVersion::V2025_03_26 {
        let message = format!(
            "JSON-RPC batches are part of MCP 2025-03-26 only; this session negotiated {}, \
             which removed them: send one message per POST",
            claims.version.as_str()
        );
        return invalid(resp, ErrorCode::InvalidRequest, &message);
    }
    let messages: Vec<&RawValue> = match serde_json::from_slice(body) {
        Ok(messages) => messages,
        Err(e) => return invalid(resp, ErrorCode::ParseError, &format!("Parse error: {e}")),
    };
    if messages.is_empty() {
        return invalid(
            resp,
            ErrorCode::InvalidRequest,
            "Invalid Request: an empty batch",
        );
    }
    if messages.len() > MAX_BATCH {
        let message = format!(
            "Invalid Request: a batch may hold at most {MAX_BATCH} messages; this one holds {}",
            messages.len()
        );
        return invalid(resp, ErrorCode::InvalidRequest, &message);
    }
    let replies = join_all(
        messages
            .iter()
            .map(|m| serve_one(service, head, access, admission, m)),
    )
    .await;
    if replies.iter().any(|r| matches!(r, Reply::Streaming(_))) {
        resp.status = Status::Ok;
        let mut items: VecDeque<Reply> = replies.into_iter().collect();
        // Finished replies go first, so a client waiting on them is not held by a slow call.
        items
            .make_contiguous()
            .sort_by_key(|r| matches!(r, Reply::Streaming(_)));
        return Outcome::Stream(McpStream::Batch(Box::new(BatchStream { items })));
    }
    let mut ready = replies.into_iter().filter_map(|r| match r {
        Reply::Ready(reply) => Some(reply),
        _ => None,
    });
    let Some(first) = ready.next() else {
        resp.empty(Status::Accepted);
        return Outcome::Done;
    };
    let out = resp.json(Status::Ok);
    out.push(b'[');
    out.extend_from_slice(&first);
    for reply in ready {
        out.push(b',');
        out.extend_from_slice(&reply);
    }
    out.push(b']');
    Outcome::Done
}

/// One message of a batch, served as if it came alone.
async fn serve_one(
    service: &McpService,
    head: &RequestHead<'_>,
    access: Access<'_>,
    admission: Admission,
    message: &RawValue,
) -> Reply {
    let text = message.get().as_bytes();
    let refused = |id: &str, message: &str| {
        let mut reply = Vec::with_capacity(128);
        write_error(&mut reply, id, ErrorCode::InvalidRequest, message);
        Reply::Ready(reply)
    };
    if is_batch(text) {
        return refused("null", "Invalid Request: a batch inside a batch");
    }
    if let Ok(env) = parse_message(text) {
        if env.kind() == MessageKind::Request && env.method.as_deref() == Some("initialize") {
            return refused(
                env.id_or_null(),
                "Invalid Request: initialize must not be part of a JSON-RPC batch",
            );
        }
    }
    let mut alone = Response::new();
    let mut stream = None;
    service
        .post_message(head, text, access, admission, &mut alone, &mut stream)
        .await;
    match stream {
        Some(call) => Reply::Streaming(call),
        None if alone.status == Status::Accepted => Reply::Nothing,
        None => Reply::Ready(alone.body),
    }
}

/// A batch answered over SSE: each finished reply as an event, then each streaming call's
/// events until it ends.
pub struct BatchStream {
    items: VecDeque<Reply>,
}

impl SseStream for BatchStream {
    async fn next_event(&mut self, out: &mut Vec<u8>) -> bool {
        loop {
            let Some(item) = self.items.front_mut() else {
                return false;
            };
            match item {
                Reply::Nothing => {}
                Reply::Ready(reply) => write_sse_event(out, reply),
                Reply::Streaming(call) => {
                    if call.next_event(out).await {
                        return true;
                    }
                    self.items.pop_front();
                    continue;
                }
            }
            let done = matches!(self.items.pop_front(), Some(Reply::Ready(_)));
            if done {
                return true;
            }
        }
    }

    /// Out of time while shutting down: the replies already in are sent, and every call still
    /// running gets an error answer.
    fn abandon(&mut self, out: &mut Vec<u8>) {
        for item in self.items.drain(..) {
            match item {
                Reply::Nothing => {}
                Reply::Ready(reply) => write_sse_event(out, &reply),
                Reply::Streaming(mut call) => call.abandon(out),
            }
        }
    }
}
