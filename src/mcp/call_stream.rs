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

use super::forward::CANCELLED;
use super::in_flight::{CancelSignal, InFlight};
use super::outcome::detail_of;
use super::server_requests::{required_capability, server_requests};
use super::stateless_reply::StatelessTerms;
use crate::audit::{Detail, Observation, Outcome};
use crate::auth::limits::CallPermit;
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

/// What became of a call: answered at once, a stream of messages then the answer, or
/// cancelled by the client (the upstream has been told).
pub enum CallOutcome {
    Answered(Result<UpstreamReply, UpstreamError>, CallTiming),
    /// Boxed: the stream is large and rare, and the answered case is returned on every call.
    Streaming(Box<CallStream>),
    Cancelled,
}

/// A client's hold on its call: registered by id, and the signal its cancellation fires.
pub struct Cancellation {
    /// Held for its drop, which unregisters the call.
    pub _registered: InFlight,
    pub signal: CancelSignal,
}

/// What one poll of a call in flight found.
enum Step {
    Reply(Result<UpstreamReply, UpstreamError>, CallTiming),
    Message(ServerMessage),
    Cancelled,
}

/// Waits for the reply or the first message about the call, whichever comes first. Messages
/// the server sent before its reply are relayed before it, so a reply that is already in with
/// messages queued still streams.
///
/// `client` is called only when the call streams: most calls are answered at once and never
/// need the client's terms copied out of the request.
pub async fn await_call(
    mut call: CallFuture,
    mut events: CallEvents,
    client: impl FnOnce() -> CallClient,
    server: Arc<ServerEntry>,
    mut cancellation: Cancellation,
) -> CallOutcome {
    let (first, done, timing) =
        match step(&mut call, &mut events, &mut cancellation.signal, true).await {
            Step::Reply(reply, timing) => match events.try_next() {
                Some(message) => (message, Some(reply), timing),
                None => return CallOutcome::Answered(reply, timing),
            },
            Step::Message(message) => (message, None, CallTiming::default()),
            Step::Cancelled => return CallOutcome::Cancelled,
        };
    CallOutcome::Streaming(Box::new(CallStream {
        call: if done.is_some() { None } else { Some(call) },
        reply: done,
        first: Some(first),
        events,
        client: client(),
        server,
        cancellation,
        filed: Vec::new(),
        finished: false,
        permit: None,
        observed: None,
        timing,
    }))
}

/// Waits for whichever comes first: a message about the call, its reply, or the client's
/// cancellation. `reply_first` decides which of a reply and a message both ready wins.
async fn step(
    call: &mut CallFuture,
    events: &mut CallEvents,
    cancel: &mut CancelSignal,
    reply_first: bool,
) -> Step {
    poll_fn(|cx| {
        if let Poll::Ready(Ok(())) = Pin::new(&mut *cancel).poll(cx) {
            return Poll::Ready(Step::Cancelled);
        }
        if reply_first {
            if let Poll::Ready((reply, timing)) = call.as_mut().poll(cx) {
                return Poll::Ready(Step::Reply(reply, timing));
            }
        }
        // A closed channel (the sender is gone) leaves only the reply to wait for.
        if let Poll::Ready(Some(message)) = events.poll_next_unpin(cx) {
            return Poll::Ready(Step::Message(message));
        }
        call.as_mut()
            .poll(cx)
            .map(|(reply, timing)| Step::Reply(reply, timing))
    })
    .await
}

pub struct CallStream {
    call: Option<CallFuture>,
    /// The reply, once in, while messages before it are still being relayed.
    reply: Option<Result<UpstreamReply, UpstreamError>>,
    first: Option<ServerMessage>,
    events: CallEvents,
    client: CallClient,
    server: Arc<ServerEntry>,
    cancellation: Cancellation,
    /// Ids of server requests relayed to the client, forgotten when the call ends.
    filed: Vec<u64>,
    finished: bool,
    /// The caller's concurrency slots, held until the stream ends.
    permit: Option<CallPermit>,
    /// The request's metrics and audit record, ended with the stream (or by its drop).
    observed: Option<Observation>,
    /// When the upstream had the request and the reply, once the reply is in.
    timing: CallTiming,
}

impl SseStream for CallStream {
    async fn next_event(&mut self, out: &mut Vec<u8>) -> bool {
        let before = out.len();
        let more = self.next_event_inner(out, before).await;
        // Counted here unless the event ended the observation (which counted it then).
        if let Some(observed) = &mut self.observed {
            observed.replied(out.len() - before);
        }
        more
    }

    /// The gateway is shutting down and the call ran out of time: it is answered with an
    /// error naming its server, and dropped (which cancels it upstream).
    fn abandon(&mut self, out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.call = None;
        let reply = Err(UpstreamError::Unavailable {
            server: self.server.name.clone(),
            reason: SHUTTING_DOWN.to_owned(),
        });
        let before = out.len();
        let mut message = Vec::with_capacity(256);
        super::forward::write_reply(&mut message, &self.client.id, &self.server.name, &reply);
        if let Some(terms) = self.client.stateless {
            terms.complete_reply(&mut message, 0, &self.client.id);
        }
        write_sse_event(out, &message);
        self.end(out.len() - before, Outcome::Cancelled, || {
            Detail::Static(SHUTTING_DOWN)
        });
    }
}

/// Why a call still running at the end of a drain got no answer from its server.
pub const SHUTTING_DOWN: &str =
    "mcpgate is shutting down and the call did not finish within its shutdown grace period";

impl CallStream {
    /// Keeps the caller's concurrency slots taken until the stream ends.
    pub fn hold(&mut self, permit: CallPermit) {
        self.permit = Some(permit);
    }

    /// Ends the request's observation when the stream ends.
    pub fn observe(&mut self, observed: Observation) {
        self.observed = Some(observed);
    }

    /// Ends the observation, counting the last `bytes` written.
    fn end(&mut self, bytes: usize, outcome: Outcome, detail: impl FnOnce() -> Detail) {
        if let Some(mut observed) = self.observed.take() {
            observed.replied(bytes);
            observed.timing(&self.timing);
            observed.finish(outcome, detail);
        }
    }

    /// The next event; `before` is where it starts in `out`.
    async fn next_event_inner(&mut self, out: &mut Vec<u8>, before: usize) -> bool {
        if self.finished {
            return false;
        }
        loop {
            let message = match self.first.take() {
                Some(m) => Some(m),
                None => match self.next_message().await {
                    Ok(m) => m,
                    Err(Cancelled) => {
                        // The client cancelled: no answer follows; dropping the call tells
                        // the upstream.
                        self.call = None;
                        self.finished = true;
                        let bytes = out.len() - before;
                        self.end(bytes, Outcome::Cancelled, || Detail::Static(CANCELLED));
                        return false;
                    }
                },
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
                    let outcome = super::forward::write_reply(
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
                    let bytes = out.len() - before;
                    match outcome {
                        Outcome::Ok => self.end(bytes, outcome, || Detail::None),
                        _ => self.end(bytes, outcome, || detail_of(reply)),
                    }
                    return true;
                }
            }
        }
    }

    /// The next message about the call; `None` once the reply is in and nothing precedes it.
    async fn next_message(&mut self) -> Result<Option<ServerMessage>, Cancelled> {
        let Some(call) = self.call.as_mut() else {
            return Ok(self.events.try_next());
        };
        match step(call, &mut self.events, &mut self.cancellation.signal, false).await {
            Step::Message(message) => Ok(Some(message)),
            Step::Reply(reply, timing) => {
                self.call = None;
                self.timing = timing;
                self.reply = Some(reply);
                Ok(self.events.try_next())
            }
            Step::Cancelled => Err(Cancelled),
        }
    }

    /// Writes one server message as the client should see it; false when nothing was written
    /// (a request refused on the client's behalf, or a message that is not JSON-RPC).
    async fn relay(&mut self, m: ServerMessage, out: &mut Vec<u8>) -> bool {
        let Ok(env) = Envelope::decode(&m.message) else {
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
        params: Option<crate::jsonrpc::RawJson<'_>>,
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

/// The client cancelled the call.
struct Cancelled;

impl Drop for CallStream {
    fn drop(&mut self) {
        // Dropping `call` cancels the call upstream when it is still running.
        server_requests().forget(&self.filed);
    }
}
