//! The calls waiting for their reply on one upstream connection (a stdio child, a legacy SSE
//! stream), by the JSON-RPC id the gateway gave them.
//!
//! Owns: the map id → reply sender, its bound, and failing every waiting call at once when the
//! connection ends. Must never: accept a call after the connection closed (it would wait for a
//! reply that cannot come), or send a reply while holding its lock (the woken caller may run
//! on this very thread and call back in).

use std::collections::HashMap;
use std::sync::Mutex;

use super::process::lock;
use super::{Payload, ReplyReceiver, ReplySender, UpstreamError, UpstreamReply};

/// The calls in flight on one connection. Shared by every thread that calls through it.
pub struct PendingCalls {
    state: Mutex<State>,
}

struct State {
    calls: HashMap<u64, ReplySender>,
    /// Set when the connection is gone: why. No call is registered after that.
    closed: Option<String>,
}

impl Default for PendingCalls {
    fn default() -> Self {
        PendingCalls {
            state: Mutex::new(State {
                calls: HashMap::new(),
                closed: None,
            }),
        }
    }
}

impl PendingCalls {
    /// Waits for the reply to `id`. Fails with Unavailable once the connection closed, and with
    /// Overloaded when `max` calls are already waiting.
    pub fn register(
        &self,
        server: &str,
        id: u64,
        max: usize,
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
            p.calls.retain(|_, s| !s.is_canceled());
            if p.calls.len() >= max {
                return Err(UpstreamError::Overloaded {
                    server: server.to_owned(),
                });
            }
        }
        p.calls.insert(id, tx);
        Ok(rx)
    }

    /// Forgets `id` and returns where its reply would have gone.
    pub fn take(&self, id: u64) -> Option<ReplySender> {
        lock(&self.state).calls.remove(&id)
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
            std::mem::take(&mut p.calls)
        };
        for (_, s) in calls {
            let _ = s.send(Err(UpstreamError::Unavailable {
                server: server.to_owned(),
                reason: reason.to_owned(),
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_delivered_and_failed_at_close() {
        let calls = PendingCalls::default();
        let mut first = calls.register("s", 1, 2).expect("room");
        let _second = calls.register("s", 2, 2).expect("room");
        assert_eq!(
            calls.register("s", 3, 2).unwrap_err(),
            UpstreamError::Overloaded { server: "s".into() }
        );
        calls.deliver("s", "1", br#"{"id":1,"result":{}}"#, None);
        let reply = first.try_recv().expect("not canceled").expect("delivered");
        assert_eq!(reply.expect("a reply").message, br#"{"id":1,"result":{}}"#);
        // Unknown and non-numeric ids are dropped without effect.
        calls.deliver("s", "\"x\"", b"{}", None);
        calls.deliver("s", "77", b"{}", None);

        let mut waiting = calls.register("s", 4, 2).expect("room again");
        calls.close("s", "the stream ended");
        let failed = waiting.try_recv().expect("not canceled").expect("failed");
        assert!(
            matches!(failed, Err(UpstreamError::Unavailable { ref reason, .. }) if reason == "the stream ended")
        );
        assert!(matches!(
            calls.register("s", 5, 2),
            Err(UpstreamError::Unavailable { .. })
        ));
    }

    #[test]
    fn abandoned_calls_are_reclaimed() {
        let calls = PendingCalls::default();
        drop(calls.register("s", 1, 1).expect("room"));
        assert!(calls.register("s", 2, 1).is_ok());
    }
}
