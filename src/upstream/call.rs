//! A call in flight, from the side that reads the upstream: where its reply goes, and where
//! the messages a server sends while working on it go (progress, log messages, and requests
//! to the client such as `sampling/createMessage`), with the way back for the client's answer.
//!
//! Owns: the per-call event channel, its bound ([`MAX_HELD_EVENT_BYTES`]: a client that does
//! not read its stream cannot make the gateway hold a server's output for it), and
//! [`Responder`], which carries a client's answer to a server request back to that server
//! under the server's own request id. Must never: send a message to a call that did not ask
//! for events, answer a server request twice, or make a server's reader wait for a client
//! (the channel's producers are the readers of stdio pipes and SSE streams that every call of
//! that server shares: at the bound they coalesce, drop or refuse, they do not block).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use futures_channel::oneshot;
use futures_util::task::AtomicWaker;
use futures_util::Stream;

use super::http::HttpUpstream;
use super::sse_legacy::SseAnswerPath;
use super::stdio::StdioAnswerPath;
use super::{UpstreamError, UpstreamReply};

/// The receiving half of a call in flight: resolves once with the reply or the failure.
pub type ReplyReceiver = oneshot::Receiver<Result<UpstreamReply, UpstreamError>>;
/// The sending half, held by whoever reads the upstream's replies.
pub type ReplySender = oneshot::Sender<Result<UpstreamReply, UpstreamError>>;

/// Bytes of one call's server messages held for a client that has not taken them yet (its
/// stream is not being read, or is slower than the server). Beyond it a progress notification
/// replaces the last one held back (the client gets the newest when it catches up), other
/// notifications are dropped and requests are refused to the server. One message is always
/// taken when nothing is held, however large (each is bounded by `max_upstream_reply_bytes`).
/// The reply itself never waits here: it has its own channel and is never dropped.
pub const MAX_HELD_EVENT_BYTES: usize = 1 << 20;
/// What a held message costs beyond its bytes (the queue node, the message's header).
const HELD_OVERHEAD: usize = 64;

/// Messages a server sends about one call, in the order it sent them (with progress
/// coalesced while the client is behind). A [`Stream`]; ends when every sink is gone.
pub struct CallEvents {
    shared: Arc<SinkShared>,
}

/// Where a call's server messages go, and the progress token the gateway gave the call (the
/// client's own token is replaced upstream, so calls from different clients never share one).
/// Cheap to clone; callable from any thread.
pub struct EventSink {
    shared: Arc<SinkShared>,
    pub progress_token: Option<u64>,
}

/// Both ends of one call's channel: one allocation per call (almost every call carries a
/// channel and almost none uses it; a general channel cost two more).
struct SinkShared {
    /// Entries not taken yet, in order; nothing is allocated until the first.
    queue: Mutex<VecDeque<Held>>,
    /// Set, under the queue's lock, when the receiver is gone: nothing more is queued.
    closed: AtomicBool,
    /// Live sinks: the stream ends when none is left.
    sinks: AtomicUsize,
    receiver: AtomicWaker,
    held_bytes: AtomicUsize,
    /// The newest progress notification that arrived while the client was behind. Touched
    /// only then (the lock is not on the way of a client that keeps up).
    latest_progress: Mutex<Option<Vec<u8>>>,
    /// Whether `latest_progress` holds one (changed with it, under its lock): the producer's
    /// cheap look before it queues a progress normally.
    coalescing: AtomicBool,
    /// Whether the server's log already says this call's client fell behind.
    reported: AtomicBool,
}

/// One entry of the channel.
enum Held {
    Message(ServerMessage),
    /// Take `latest_progress` now (queued once when a progress was first held back, so it
    /// comes after everything that arrived before it).
    Progress,
}

/// Why a server's request did not reach the call's client.
pub enum NotRelayed {
    /// The call is over; nobody can answer.
    Gone,
    /// The client is not taking its stream's messages: refuse the request to the server
    /// (the message comes back, with its way back to the server).
    Behind(ServerMessage),
}

/// Why a request is refused to a server whose call's client is not reading its stream.
pub const CLIENT_BEHIND: &str =
    "mcpgate refused this request: the client is not reading the call's stream";

impl EventSink {
    /// A sink and the receiver the caller reads.
    pub fn new(progress_token: Option<u64>) -> (EventSink, CallEvents) {
        // Bounded by `held_bytes`, not by the channel: every `Held::Message` is counted
        // against MAX_HELD_EVENT_BYTES (at least HELD_OVERHEAD each) before it is queued, and
        // at most one `Held::Progress` is queued at a time (only when `latest_progress` goes
        // from empty to held; it is emptied only when that entry is taken).
        let shared = Arc::new(SinkShared {
            queue: Mutex::new(VecDeque::new()),
            closed: AtomicBool::new(false),
            sinks: AtomicUsize::new(1),
            receiver: AtomicWaker::new(),
            held_bytes: AtomicUsize::new(0),
            latest_progress: Mutex::new(None),
            coalescing: AtomicBool::new(false),
            reported: AtomicBool::new(false),
        });
        (
            EventSink {
                shared: shared.clone(),
                progress_token,
            },
            CallEvents { shared },
        )
    }

    /// Whether the call's receiver is gone.
    fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Queues `held` for the receiver; gives it back when the receiver is gone.
    fn send(&self, held: Held) -> Result<(), Held> {
        let mut queue = lock(&self.shared.queue);
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(held);
        }
        queue.push_back(held);
        drop(queue);
        self.shared.receiver.wake();
        Ok(())
    }

    /// Passes a notification about the call on (`method` is its method); false when the
    /// caller has gone. Beyond [`MAX_HELD_EVENT_BYTES`] a progress notification replaces the
    /// one held back, anything else is dropped.
    pub fn notify(&self, server: &str, method: &str, message: Vec<u8>) -> bool {
        if self.is_closed() {
            return false;
        }
        let progress = method == "notifications/progress";
        // While a progress is held back, later ones replace it rather than overtake it.
        let coalescing = progress && self.shared.coalescing.load(Ordering::Acquire);
        let message = match !coalescing && self.hold(message.len()) {
            true => message,
            false if progress => {
                let mut latest = lock(&self.shared.latest_progress);
                let first = latest.replace(message).is_none();
                if first {
                    self.shared.coalescing.store(true, Ordering::Release);
                }
                drop(latest);
                self.behind(server, "its progress notifications are coalesced");
                return !first || self.send(Held::Progress).is_ok();
            }
            false => {
                self.behind(server, "its other notifications are dropped");
                tracing::debug!(
                    server,
                    method,
                    "dropped a notification for a client that is behind"
                );
                return true;
            }
        };
        self.send(Held::Message(ServerMessage {
            message,
            responder: None,
        }))
        .is_ok()
    }

    /// Passes a request from the server to the call's client, with its way back.
    pub fn relay_request(&self, server: &str, message: ServerMessage) -> Result<(), NotRelayed> {
        if self.is_closed() {
            return Err(NotRelayed::Gone);
        }
        if !self.hold(message.message.len()) {
            self.behind(server, "its requests to the client are refused");
            return Err(NotRelayed::Behind(message));
        }
        self.send(Held::Message(message))
            .map_err(|_| NotRelayed::Gone)
    }

    /// Counts `len` bytes as held if they fit (or nothing is held); whether they did.
    fn hold(&self, len: usize) -> bool {
        let cost = len.saturating_add(HELD_OVERHEAD);
        self.shared
            .held_bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                (held == 0 || held.saturating_add(cost) <= MAX_HELD_EVENT_BYTES)
                    .then(|| held.saturating_add(cost))
            })
            .is_ok()
    }

    /// Says once per call, in the log, that its client fell behind and what that costs.
    fn behind(&self, server: &str, consequence: &str) {
        if !self.shared.reported.swap(true, Ordering::Relaxed) {
            tracing::info!(
                server,
                "a streaming call's client is not keeping up ({} KiB held for it); {consequence}",
                MAX_HELD_EVENT_BYTES / 1024
            );
        }
    }
}

impl Clone for EventSink {
    fn clone(&self) -> EventSink {
        self.shared.sinks.fetch_add(1, Ordering::Relaxed);
        EventSink {
            shared: self.shared.clone(),
            progress_token: self.progress_token,
        }
    }
}

impl Drop for EventSink {
    fn drop(&mut self) {
        // The last one ends the receiver's stream.
        if self.shared.sinks.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.receiver.wake();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl CallEvents {
    /// The next message if one is waiting, without waiting.
    pub fn try_next(&mut self) -> Option<ServerMessage> {
        loop {
            let held = lock(&self.shared.queue).pop_front()?;
            if let Some(message) = self.unhold(held) {
                return Some(message);
            }
        }
    }

    /// A held entry as the message it stands for (`None` for a progress already taken).
    fn unhold(&self, held: Held) -> Option<ServerMessage> {
        match held {
            Held::Message(m) => {
                let cost = m.message.len().saturating_add(HELD_OVERHEAD);
                self.shared.held_bytes.fetch_sub(cost, Ordering::Relaxed);
                Some(m)
            }
            Held::Progress => {
                let mut latest = lock(&self.shared.latest_progress);
                self.shared.coalescing.store(false, Ordering::Release);
                latest.take().map(|message| ServerMessage {
                    message,
                    responder: None,
                })
            }
        }
    }
}

impl Stream for CallEvents {
    type Item = ServerMessage;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ServerMessage>> {
        // Registered before looking, so a message or a last sink's drop in between wakes it.
        self.shared.receiver.register(cx.waker());
        if let Some(message) = self.try_next() {
            return Poll::Ready(Some(message));
        }
        if self.shared.sinks.load(Ordering::Acquire) == 0 {
            // Every sink is gone: what they queued before going was taken above.
            return match self.try_next() {
                Some(message) => Poll::Ready(Some(message)),
                None => Poll::Ready(None),
            };
        }
        Poll::Pending
    }
}

impl Drop for CallEvents {
    fn drop(&mut self) {
        // Nothing more is queued, and what is waiting goes now (a request's responder tells
        // its server there is nobody to answer), not when the last sink goes.
        let waiting = {
            let mut queue = lock(&self.shared.queue);
            self.shared.closed.store(true, Ordering::Release);
            std::mem::take(&mut *queue)
        };
        drop(waiting);
    }
}

/// One message from a server about a call: a notification, or a request that needs an answer.
pub struct ServerMessage {
    /// The whole JSON-RPC message as the server sent it.
    pub message: Vec<u8>,
    /// Set for a request: how the client's answer gets back.
    pub responder: Option<Responder>,
}

/// The way back to the server for one request it sent: its own id and the connection.
pub struct Responder {
    /// The server's request id, raw JSON.
    pub upstream_id: Box<str>,
    pub(crate) route: ResponderRoute,
}

pub(crate) enum ResponderRoute {
    Stdio(StdioAnswerPath),
    Http(Arc<HttpUpstream>),
    Sse(SseAnswerPath),
}

impl Responder {
    /// Sends `{"jsonrpc":"2.0","id":<the server's id>,<member>}`, where `member` is the
    /// client's `"result":…` or `"error":…`, raw.
    pub async fn respond(&self, member: &[u8]) -> Result<(), UpstreamError> {
        let mut frame = Vec::with_capacity(32 + self.upstream_id.len() + member.len());
        frame.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
        frame.extend_from_slice(self.upstream_id.as_bytes());
        frame.push(b',');
        frame.extend_from_slice(member);
        frame.push(b'}');
        match &self.route {
            ResponderRoute::Stdio(s) => s.send(frame),
            ResponderRoute::Http(h) => h.send_message(&frame).await,
            ResponderRoute::Sse(s) => s.send(&frame).await,
        }
    }

    /// Answers the server with a JSON-RPC error, e.g. when no client can take its request.
    pub async fn refuse(&self, code: i32, message: &str) -> Result<(), UpstreamError> {
        let mut member = Vec::with_capacity(48 + message.len());
        member.extend_from_slice(br#""error":{"code":"#);
        member.extend_from_slice(itoa::Buffer::new().format(code).as_bytes());
        member.extend_from_slice(br#","message":"#);
        let _ = serde_json::to_writer(&mut member, message);
        member.push(b'}');
        self.respond(&member).await
    }
}

#[cfg(test)]
mod tests;
