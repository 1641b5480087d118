//! The SSE streams `/mcp` answers with: the `GET /mcp` stream, where server-initiated
//! messages for a session go (heartbeats, SSE comments, keep proxies from closing it; it ends
//! when the session does), a POST's reply when its call (or a call of its batch) streams,
//! and a legacy session's `GET /sse` stream.
//!
//! On shutdown the session streams end cleanly as soon as the drain begins (a `GET /sse`
//! stream once the answers it still owes are out); a call's reply runs until the call is
//! answered, and at the drain's deadline ends with an error answer to the call.
//!
//! A client that does not read holds bounded memory whatever the stream: a call's messages
//! wait in its bounded event channel (`upstream::call`: progress coalesced, the reply kept),
//! a session stream's in its bounded inbox (`announcements`), a legacy stream's in its
//! session's bounded queue; and a write the client takes nothing of for
//! `client_write_timeout_ms` closes the connection (`http::server`).

use std::sync::Arc;
use std::time::Duration;

use super::batch::BatchStream;
use super::call_stream::CallStream;
use super::legacy_stream::LegacyStream;
use crate::auth::streams::StreamSlot;
use futures_util::StreamExt;

use super::announcements;
use super::session::SessionKeys;
use crate::http::SseStream;
use crate::runtime::drain::{self, Phase};

/// A session's `GET /mcp` stream: list-change notifications, and heartbeats in between.
pub struct HeartbeatStream {
    keys: Arc<SessionKeys>,
    token: Box<[u8]>,
    interval: Duration,
    opened: bool,
    changes: announcements::Inbox,
    /// The caller's stream slot, given back when the stream ends.
    _slot: StreamSlot,
}

impl HeartbeatStream {
    /// The stream of the session `token` (nonce `session`).
    pub fn new(
        keys: Arc<SessionKeys>,
        token: &[u8],
        session: [u8; 8],
        interval: Duration,
        slot: StreamSlot,
    ) -> Self {
        HeartbeatStream {
            keys,
            token: token.into(),
            interval,
            opened: false,
            _slot: slot,
            changes: announcements::subscribe(session),
        }
    }
}

impl SseStream for HeartbeatStream {
    async fn next_event(&mut self, out: &mut Vec<u8>) -> bool {
        if !self.opened {
            // A first comment right away tells the client the stream is live.
            self.opened = true;
            out.extend_from_slice(b": mcpgate stream open\n\n");
            return true;
        }
        let changed = monoio::select! {
            () = monoio::time::sleep(self.interval) => None,
            lists = self.changes.next() => lists,
            // Shutting down: the stream ends (the client may reconnect elsewhere).
            () = drain::reached(Phase::Draining) => return false,
        };
        if self.keys.verify(&self.token).is_err() {
            return false;
        }
        match changed {
            Some(announcement) => announcements::write_announcement(&announcement, b"", out),
            None => out.extend_from_slice(b": ping\n\n"),
        }
        true
    }

    fn long_lived(&self) -> bool {
        true
    }
}

/// Every SSE stream the endpoint serves.
pub enum McpStream {
    Heartbeat(HeartbeatStream),
    Call(Box<CallStream>),
    /// A 2025-03-26 batch in which some call streams.
    Batch(Box<BatchStream>),
    Legacy(Box<LegacyStream>),
}

impl SseStream for McpStream {
    async fn next_event(&mut self, out: &mut Vec<u8>) -> bool {
        match self {
            McpStream::Heartbeat(s) => s.next_event(out).await,
            McpStream::Call(s) => s.next_event(out).await,
            McpStream::Batch(s) => s.next_event(out).await,
            McpStream::Legacy(s) => s.next_event(out).await,
        }
    }

    fn long_lived(&self) -> bool {
        match self {
            McpStream::Heartbeat(s) => s.long_lived(),
            McpStream::Call(s) => s.long_lived(),
            McpStream::Batch(s) => s.long_lived(),
            McpStream::Legacy(s) => s.long_lived(),
        }
    }

    fn abandon(&mut self, out: &mut Vec<u8>) {
        match self {
            McpStream::Heartbeat(s) => s.abandon(out),
            McpStream::Call(s) => s.abandon(out),
            McpStream::Batch(s) => s.abandon(out),
            McpStream::Legacy(s) => s.abandon(out),
        }
    }
}
