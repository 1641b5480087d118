//! A call in flight, from the side that reads the upstream: where its reply goes, and where
//! the messages a server sends while working on it go (progress, log messages, and requests
//! to the client such as `sampling/createMessage`), with the way back for the client's answer.
//!
//! Owns: the per-call event channel and [`Responder`], which carries a client's answer to a
//! server request back to that server under the server's own request id. Must never: send a
//! message to a call that did not ask for events, or answer a server request twice.

use std::sync::Arc;

use futures_channel::mpsc::{UnboundedReceiver, UnboundedSender};
use futures_channel::oneshot;

use super::http::HttpUpstream;
use super::sse_legacy::SseAnswerPath;
use super::stdio::StdioAnswerPath;
use super::{UpstreamError, UpstreamReply};

/// The receiving half of a call in flight: resolves once with the reply or the failure.
pub type ReplyReceiver = oneshot::Receiver<Result<UpstreamReply, UpstreamError>>;
/// The sending half, held by whoever reads the upstream's replies.
pub type ReplySender = oneshot::Sender<Result<UpstreamReply, UpstreamError>>;

/// Messages a server sends about one call, in the order it sent them.
pub type CallEvents = UnboundedReceiver<ServerMessage>;

/// Where a call's server messages go, and the progress token the gateway gave the call (the
/// client's own token is replaced upstream, so calls from different clients never share one).
#[derive(Clone)]
pub struct EventSink {
    pub tx: UnboundedSender<ServerMessage>,
    pub progress_token: Option<u64>,
}

impl EventSink {
    /// A sink and the receiver the caller reads.
    pub fn new(progress_token: Option<u64>) -> (EventSink, CallEvents) {
        let (tx, rx) = futures_channel::mpsc::unbounded();
        (EventSink { tx, progress_token }, rx)
    }

    /// Passes a message on; false when the caller has gone.
    pub fn send(&self, message: ServerMessage) -> bool {
        self.tx.unbounded_send(message).is_ok()
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
