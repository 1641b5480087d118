//! A forwarded call whose server talks about it before answering: the client's POST gets an
//! SSE reply that carries those messages (progress, log messages, requests to the client),
//! then the response, then ends.
//!
//! Owns: relaying each server message in the client's terms (its progress token, the gateway's
//! ids for server requests) and refusing server requests the client cannot take. Must never:
//! send a client a request for a capability it did not declare, or let a request's answer
//! reach a server other than the one that asked.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use futures_util::StreamExt;

use super::server_requests::{required_capability, server_requests};
use super::stateless_reply::StatelessTerms;
use crate::http::sse::write_event as write_sse_event;
use crate::http::SseStream;
use crate::jsonrpc::{Envelope, RawObject};
use crate::registry::ServerEntry;
use crate::upstream::{CallEvents, CallTiming, ServerMessage, UpstreamError, UpstreamReply};

/// The upstream call, owned so it can outlive the request handler.
pub type CallFuture =
    Pin<Box<dyn Future<Output = (Result<UpstreamReply, UpstreamError>, CallTiming)>>>;

/// Who asked: what the relayed messages need to know about the client.
pub struct CallClient {
    /// The client's JSON-RPC id, raw.
    pub id: Box<str>,
    /// The client's own progress token, raw, when it sent one.
    pub progress_token: Option<Box<str>>,
    /// The session's nonce: only this session may answer requests relayed to it.
    pub session: [u8; 8],
    /// Bits of the client capabilities the session declared.
    pub capabilities: u8,
    /// Set for a stateless (2026-07-28) client: no server requests, log messages only at the
    /// level it asked for, results completed as that revision requires.
    pub stateless: Option<StatelessTerms>,
}

/// What became of a call: answered at once, or a stream of messages then the answer.
pub enum CallOutcome {
    Answered(Result<UpstreamReply, UpstreamError>, CallTiming),
    Streaming(CallStream),
}

/// Waits for the reply or the first message about the call, whichever comes first. Messages
/// the server sent before its reply are relayed before it, so a reply that is already in with
/// messages queued still streams.
pub async fn await_call(
    mut call: CallFuture,
    mut events: CallEvents,
    client: CallClient,
    server: Arc<ServerEntry>,
) -> CallOutcome {
    let first = poll_fn(|cx| {
        if let Poll::Ready(done) = call.as_mut().poll(cx) {
            return Poll::Ready(Ok(done));
        }
        match events.poll_next_unpin(cx) {
            Poll::Ready(Some(message)) => Poll::Ready(Err(Some(message))),
            // The sender is gone; only the reply can come now.
            Poll::Ready(None) => Poll::Pending,
            Poll::Pending => Poll::Pending,
        }
    })
    .await;
    let (first, done) = match first {
        Ok((reply, timing)) => match events.try_recv() {
            Ok(message) => (Some(message), Some(reply)),
            Err(_) => return CallOutcome::Answered(reply, timing),
        },
        Err(message) => (message, None),
    };
    CallOutcome::Streaming(CallStream {
        call: if done.is_some() { None } else { Some(call) },
        reply: done,
        first,
        events,
        client,
        server,
        filed: Vec::new(),
        finished: false,
    })
}

pub struct CallStream {
    call: Option<CallFuture>,
    /// The reply, once in, while messages before it are still being relayed.
    reply: Option<Result<UpstreamReply, UpstreamError>>,
    first: Option<ServerMessage>,
    events: CallEvents,
    client: CallClient,
    server: Arc<ServerEntry>,
    /// Ids of server requests relayed to the client, forgotten when the call ends.
    filed: Vec<u64>,
    finished: bool,
}

impl SseStream for CallStream {
    async fn next_event(&mut self, out: &mut Vec<u8>) -> bool {
        if self.finished {
            return false;
        }
        loop {
            let message = match self.first.take() {
                Some(m) => Some(m),
                None => self.next_message().await,
            };
            match message {
                Some(m) => {
                    if self.relay(m, out).await {
                        return true;
                    }
                }
                None => {
                    let reply = self.reply.take().unwrap_or_else(|| {
                        Err(UpstreamError::Protocol {
                            server: self.server.name.clone(),
                            reason: "the call ended without a reply".into(),
                        })
                    });
                    let mut message = Vec::with_capacity(256);
                    super::forward::write_reply(
                        &mut message,
                        &self.client.id,
                        &self.server.name,
                        &reply,
                    );
                    if let Some(terms) = self.client.stateless {
                        terms.complete_reply(&mut message, 0, &self.client.id);
                    }
                    write_sse_event(out, &message);
                    self.finished = true;
                    return true;
                }
            }
        }
    }
}

impl CallStream {
    /// The next message about the call; `None` once the reply is in and nothing precedes it.
    async fn next_message(&mut self) -> Option<ServerMessage> {
        let Some(call) = self.call.as_mut() else {
            return self.events.try_recv().ok();
        };
        let events = &mut self.events;
        let next = poll_fn(|cx| match events.poll_next_unpin(cx) {
            Poll::Ready(Some(message)) => Poll::Ready(Err(message)),
            _ => call.as_mut().poll(cx).map(Ok),
        })
        .await;
        match next {
            Err(message) => Some(message),
            Ok((reply, _timing)) => {
                self.call = None;
                self.reply = Some(reply);
                self.events.try_recv().ok()
            }
        }
    }

    /// Writes one server message as the client should see it; false when nothing was written
    /// (a request refused on the client's behalf, or a message that is not JSON-RPC).
    async fn relay(&mut self, m: ServerMessage, out: &mut Vec<u8>) -> bool {
        let Ok(env) = serde_json::from_slice::<Envelope<'_>>(&m.message) else {
            return false;
        };
        let method = env.method.as_deref().unwrap_or_default();
        let Some(responder) = m.responder else {
            if method == "notifications/progress" {
                return self.relay_progress(env.params, out);
            }
            if method == "notifications/message"
                && self
                    .client
                    .stateless
                    .is_some_and(|terms| !terms.wants_log(env.params))
            {
                return false;
            }
            write_sse_event(out, &m.message);
            return true;
        };
        let refusal = match required_capability(method) {
            // That revision has no way for a server to send a client a request mid-call.
            _ if self.client.stateless.is_some() => Some(format!(
                "the client speaks MCP 2026-07-28, which carries {method} only as a \
                 multi-round-trip input request; mcpgate does not relay those yet"
            )),
            None => Some(format!("mcpgate does not relay {method} to clients")),
            Some(cap) if self.client.capabilities & cap as u8 == 0 => Some(format!(
                "the client did not declare the {} capability",
                cap.name()
            )),
            Some(_) => None,
        };
        let refused = match refusal {
            Some(why) => Some((responder, why)),
            None => match server_requests().file(self.client.session, responder) {
                Ok(id) => {
                    self.filed.push(id);
                    let mut request = Vec::with_capacity(m.message.len() + 32);
                    request.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
                    request.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
                    request.extend_from_slice(br#","method":"#);
                    let _ = serde_json::to_writer(&mut request, method);
                    if let Some(p) = env.params {
                        request.extend_from_slice(br#","params":"#);
                        request.extend_from_slice(p.get().as_bytes());
                    }
                    request.push(b'}');
                    write_sse_event(out, &request);
                    return true;
                }
                Err(responder) => Some((
                    responder,
                    "too many server requests are waiting for clients".to_owned(),
                )),
            },
        };
        if let Some((responder, why)) = refused {
            tracing::debug!(server = %self.server.name, method, "refused a server request: {why}");
            if let Err(e) = responder.refuse(-32601, &why).await {
                tracing::debug!(server = %self.server.name, "could not refuse the server's request: {e}");
            }
        }
        false
    }

    /// A progress notification with the client's own token back in place of the gateway's.
    fn relay_progress(
        &self,
        params: Option<&serde_json::value::RawValue>,
        out: &mut Vec<u8>,
    ) -> bool {
        let (Some(token), Some(params)) = (&self.client.progress_token, params) else {
            return false;
        };
        let Ok(obj) = RawObject::parse(params.get()) else {
            return false;
        };
        let mut message = Vec::with_capacity(params.get().len() + 64);
        message
            .extend_from_slice(br#"{"jsonrpc":"2.0","method":"notifications/progress","params":"#);
        obj.write_replacing_raw(&mut message, "progressToken", token.as_bytes());
        message.push(b'}');
        write_sse_event(out, &message);
        true
    }
}

impl Drop for CallStream {
    fn drop(&mut self) {
        // Dropping `call` cancels the call upstream when it is still running.
        server_requests().forget(&self.filed);
    }
}
