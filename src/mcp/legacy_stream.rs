//! The `GET /sse` stream of a legacy (2024-11-05 HTTP+SSE) session: first the `endpoint`
//! event that tells the client where to POST, then every message queued for the session by
//! any core (answers, and what servers send about calls), with heartbeat comments while idle.
//!
//! Owns: the stream's framing and its lifetime in the session table (the entry goes when this
//! is dropped: the client disconnected, the session expired, or a drain ended it once every
//! request the session had sent was answered). Must never: block its core waiting for
//! messages, or write a message of another session.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures_util::StreamExt;

use super::announcements;
use super::legacy_sessions::Registration;
use super::session::SessionKeys;
use crate::auth::streams::StreamSlot;
use crate::http::SseStream;
use crate::runtime::drain::{self, Phase};

/// Bytes gathered into one write when several messages are already queued.
const BATCH_BYTES: usize = 256 * 1024;

pub struct LegacyStream {
    /// The `endpoint` event, until it is sent.
    endpoint: Option<Vec<u8>>,
    registration: Registration,
    keys: Arc<SessionKeys>,
    token: Box<[u8]>,
    heartbeat: Duration,
    /// List changes and this session's resource updates.
    changes: announcements::Inbox,
    /// The caller's stream slot, given back when the stream ends.
    _slot: StreamSlot,
}

/// The first event of a legacy stream: where the client POSTs its messages.
pub fn endpoint_event(token: &str) -> Vec<u8> {
    let mut event = Vec::with_capacity(token.len() + 64);
    event.extend_from_slice(b"event: endpoint\ndata: /messages?session_id=");
    // A session id is base64url: nothing in it needs escaping in a query.
    event.extend_from_slice(token.as_bytes());
    event.extend_from_slice(b"\n\n");
    event
}

impl LegacyStream {
    pub fn new(
        registration: Registration,
        keys: Arc<SessionKeys>,
        token: &str,
        session: [u8; 8],
        heartbeat: Duration,
        slot: StreamSlot,
    ) -> Self {
        LegacyStream {
            _slot: slot,
            endpoint: Some(endpoint_event(token)),
            registration,
            keys,
            token: token.as_bytes().into(),
            heartbeat,
            changes: announcements::subscribe(session),
        }
    }
}

impl SseStream for LegacyStream {
    async fn next_event(&mut self, out: &mut Vec<u8>) -> bool {
        if let Some(endpoint) = self.endpoint.take() {
            out.extend_from_slice(&endpoint);
            return true;
        }
        if drain::phase() != Phase::Serving {
            return self.drain_event(out).await;
        }
        let rx = &mut self.registration.rx;
        let queued = monoio::select! {
            queued = monoio::time::timeout(self.heartbeat, rx.next()) => queued,
            change = self.changes.next() => {
                match change {
                    Some(change) => {
                        announcements::write_announcement(&change, b"event: message\n", out)
                    }
                    // Not expected (this core keeps the sender while the stream lives); an
                    // event must still be written, an empty one would end the reply.
                    None => out.extend_from_slice(b": ping\n\n"),
                }
                return true;
            }
            // Shutting down: from now on only the answers still owed are sent.
            () = drain::reached(Phase::Draining) => return self.drain_event(out).await,
        };
        match queued {
            Ok(Some(events)) => {
                out.extend_from_slice(&events);
                // Whatever else is already waiting leaves in the same write.
                while out.len() < BATCH_BYTES {
                    match rx.try_recv() {
                        Ok(more) => out.extend_from_slice(&more),
                        Err(_) => break,
                    }
                }
                true
            }
            // The table holds a sender while the entry lives, so this is not expected; end.
            Ok(None) => false,
            Err(_) => {
                // Idle: end an expired session, else keep proxies from closing the stream (and
                // notice a client that went away, as the write fails).
                if self.keys.verify(&self.token).is_err() {
                    return false;
                }
                out.extend_from_slice(b": ping\n\n");
                true
            }
        }
    }

    fn long_lived(&self) -> bool {
        true
    }
}

impl LegacyStream {
    /// While draining: the next answer the session is owed, or the end of the stream once every
    /// request it sent has been answered. (No new request can arrive: the listener is shut and
    /// every connection closes after the request it is serving.)
    async fn drain_event(&mut self, out: &mut Vec<u8>) -> bool {
        let registration = &mut self.registration;
        let next = poll_fn(|cx| {
            if let Poll::Ready(queued) = registration.rx.poll_next_unpin(cx) {
                return Poll::Ready(queued);
            }
            if registration.all_answered(cx) {
                // The last answer may have been queued just before the count dropped.
                return Poll::Ready(registration.rx.try_recv().ok());
            }
            Poll::Pending
        })
        .await;
        match next {
            Some(events) => {
                out.extend_from_slice(&events);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_event_shape() {
        assert_eq!(
            endpoint_event("abc_-1"),
            b"event: endpoint\ndata: /messages?session_id=abc_-1\n\n"
        );
    }
}
