//! The calls waiting for their reply on one upstream connection (a stdio child, a legacy SSE
//! stream), by the JSON-RPC id the gateway gave them.
//!
//! Owns: the map id → reply sender (and where the server's messages about each call go), its
//! bound, and failing every waiting call at once when the connection ends. Must never: accept a call after the connection closed (it would wait for a
//! reply that cannot come), or send a reply while holding its lock (the woken caller may run
//! on this very thread and call back in).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::jsonrpc::RawJson;

use super::call::{EventSink, NotRelayed, Responder, ServerMessage};
use super::process::lock;
use super::{Payload, ReplyReceiver, ReplySender, UpstreamError, UpstreamReply};

/// The calls in flight on one connection. Shared by every thread that calls through it.
pub struct PendingCalls {
    state: Mutex<State>,
}

struct State {
    calls: HashMap<u64, Call>,
    /// Progress tokens the gateway gave calls → their ids.
    progress: HashMap<u64, u64>,
    /// Set when the connection is gone: why. No call is registered after that.
    closed: Option<String>,
}

/// A call waiting for its reply, and where the server's messages about it go (if anywhere).
struct Call {
    reply: ReplySender,
    events: Option<EventSink>,
}

impl Default for PendingCalls {
    fn default() -> Self {
        PendingCalls {
            state: Mutex::new(State {
                calls: HashMap::new(),
                progress: HashMap::new(),
                closed: None,
            }),
        }
    }
}

impl PendingCalls {
    /// Waits for the reply to `id`; the server's messages about the call go to `events`. Fails
    /// with Unavailable once the connection closed, and with Overloaded when `max` calls are
    /// already waiting.
    pub fn register(
        &self,
        server: &str,
        id: u64,
        max: usize,
        events: Option<EventSink>,
    ) -> Result<ReplyReceiver, UpstreamError> {
        let (tx, rx) = futures_channel::oneshot::channel();
        let mut p = lock(&self.state);
        if let Some(reason) = &p.closed {
            return Err(UpstreamError::Unavailable {
                server: server.to_owned(),
                reason: reason.clone(),
            });
        }
        if p.calls.len() >= max {
            // Callers that went away without `take` leave canceled senders; reclaim them first.
            let State {
                calls, progress, ..
            } = &mut *p;
            calls.retain(|_, c| !c.reply.is_canceled());
            progress.retain(|_, id| calls.contains_key(id));
            if p.calls.len() >= max {
                return Err(UpstreamError::Overloaded {
                    server: server.to_owned(),
                });
            }
        }
        if let Some(token) = events.as_ref().and_then(|e| e.progress_token) {
            p.progress.insert(token, id);
        }
        p.calls.insert(id, Call { reply: tx, events });
        Ok(rx)
    }

    /// Forgets `id` and returns where its reply would have gone.
    pub fn take(&self, id: u64) -> Option<ReplySender> {
        let mut p = lock(&self.state);
        let call = p.calls.remove(&id)?;
        if let Some(token) = call.events.as_ref().and_then(|e| e.progress_token) {
            p.progress.remove(&token);
        }
        Some(call.reply)
    }

    /// Where messages about the call with progress token `token` go.
    pub fn events_for_progress(&self, token: u64) -> Option<EventSink> {
        let p = lock(&self.state);
        let id = p.progress.get(&token)?;
        p.calls.get(id)?.events.clone()
    }

    /// Passes a server's notification to the call it concerns: progress by the token the
    /// gateway gave the call, a log message to the one call in flight (nothing else ties it to
    /// a call). Whether a call took it.
    pub fn pass_notification(
        &self,
        server: &str,
        method: &str,
        params: Option<RawJson<'_>>,
        message: &[u8],
    ) -> bool {
        let sink = match method {
            "notifications/progress" => {
                progress_token(params).and_then(|t| self.events_for_progress(t))
            }
            "notifications/message" => self.sole_listener(),
            _ => None,
        };
        sink.is_some_and(|s| s.notify(server, method, message.to_vec()))
    }

    /// Passes a server's request to the client of the one call in flight, with the way back
    /// for its answer (`responder`, made only when needed).
    pub fn pass_request(
        &self,
        server: &str,
        message: &[u8],
        responder: impl FnOnce() -> Responder,
    ) -> Relay {
        let Some(sink) = self.sole_listener() else {
            return Relay::NoSingleCall;
        };
        let relayed = sink.relay_request(
            server,
            ServerMessage {
                message: message.to_vec(),
                responder: Some(responder()),
            },
        );
        match relayed {
            Ok(()) => Relay::Relayed,
            // The call ended meanwhile: nobody is left to answer it.
            Err(NotRelayed::Gone) => Relay::NoSingleCall,
            Err(NotRelayed::Behind(_)) => Relay::ClientBehind,
        }
    }

    /// The events of the one call in flight that takes them. A message that names no call (a
    /// log line, a request to the client) can only be attributed when exactly one does: stdio
    /// and legacy SSE carry no other tie between a server's message and a call.
    pub fn sole_listener(&self) -> Option<EventSink> {
        let p = lock(&self.state);
        let mut listening = p.calls.values().filter_map(|c| c.events.as_ref());
        let first = listening.next()?;
        listening.next().is_none().then(|| first.clone())
    }

    /// Hands a response message to the call whose id is `id` (the raw JSON id as the server
    /// sent it); a reply for an unknown, cancelled or abandoned call is dropped quietly.
    pub fn deliver(&self, server: &str, id: &str, message: &[u8], payload: Option<Payload>) {
        let Some((id, call)) = id
            .parse::<u64>()
            .ok()
            .and_then(|id| self.take(id).map(|s| (id, s)))
        else {
            tracing::debug!(server = %server, id, "reply for an unknown or cancelled call; dropped");
            return;
        };
        let reply = UpstreamReply {
            message: message.to_vec(),
            payload,
        };
        if call.send(Ok(reply)).is_err() {
            tracing::debug!(server = %server, id, "reply for a call whose caller went away; dropped");
        }
    }

    /// Fails the call `id` (if it still waits) with a protocol error saying `reason`.
    pub fn fail(&self, server: &str, id: u64, reason: String) {
        if let Some(call) = self.take(id) {
            let _ = call.send(Err(UpstreamError::Protocol {
                server: server.to_owned(),
                reason,
            }));
        }
    }

    /// Marks the connection gone and fails every waiting call with `reason`.
    pub fn close(&self, server: &str, reason: &str) {
        let calls = {
            let mut p = lock(&self.state);
            p.closed.get_or_insert_with(|| reason.to_owned());
            p.progress.clear();
            std::mem::take(&mut p.calls)
        };
        for (_, c) in calls {
            let _ = c.reply.send(Err(UpstreamError::Unavailable {
                server: server.to_owned(),
                reason: reason.to_owned(),
            }));
        }
    }
}

/// What became of a server's request to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relay {
    Relayed,
    /// Not exactly one call in flight takes messages: nothing ties the request to a client.
    NoSingleCall,
    /// The call's client is not reading its stream: see [`super::call::CLIENT_BEHIND`].
    ClientBehind,
}

/// Why a server's request was not relayed to a client.
pub fn unrelayable(method: &str) -> String {
    format!(
        "mcpgate cannot relay {method}: it can be tied to a client only while exactly one call is in flight"
    )
}

/// The numeric progress token the gateway put in a call's `_meta`, from a progress
/// notification's params.
pub fn progress_token(params: Option<RawJson<'_>>) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Progress {
        #[serde(rename = "progressToken")]
        token: u64,
    }
    serde_json::from_str::<Progress>(params?.get())
        .ok()
        .map(|p| p.token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_delivered_and_failed_at_close() {
        let calls = PendingCalls::default();
        let mut first = calls.register("s", 1, 2, None).expect("room");
        let _second = calls.register("s", 2, 2, None).expect("room");
        assert_eq!(
            calls.register("s", 3, 2, None).unwrap_err(),
            UpstreamError::Overloaded { server: "s".into() }
        );
        calls.deliver("s", "1", br#"{"id":1,"result":{}}"#, None);
        let reply = first.try_recv().expect("not canceled").expect("delivered");
        assert_eq!(reply.expect("a reply").message, br#"{"id":1,"result":{}}"#);
        // Unknown and non-numeric ids are dropped without effect.
        calls.deliver("s", "\"x\"", b"{}", None);
        calls.deliver("s", "77", b"{}", None);

        let mut waiting = calls.register("s", 4, 2, None).expect("room again");
        calls.close("s", "the stream ended");
        let failed = waiting.try_recv().expect("not canceled").expect("failed");
        assert!(
            matches!(failed, Err(UpstreamError::Unavailable { ref reason, .. }) if reason == "the stream ended")
        );
        assert!(matches!(
            calls.register("s", 5, 2, None),
            Err(UpstreamError::Unavailable { .. })
        ));
    }

    #[test]
    fn abandoned_calls_are_reclaimed() {
        let calls = PendingCalls::default();
        drop(calls.register("s", 1, 1, None).expect("room"));
        assert!(calls.register("s", 2, 1, None).is_ok());
    }
}
