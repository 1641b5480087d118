//! The gateway's own answers to a streamable-HTTP server's requests (a `ping` answered, a
//! request no client takes refused), on a call's reply stream or on the server's `GET` stream.
//! Each answer is a POST, sent by a task of its own so the stream it came on is read on
//! meanwhile.
//!
//! Owns: the count of those tasks per upstream and its bound ([`MAX_ANSWERS_IN_FLIGHT`]).
//! Must never: let a server that asks faster than it takes the answers grow the task list.
//! Beyond the bound the request is refused with an error that names the limit, POSTed by the
//! stream's reader itself, which reads on only once that POST is done (or given up after
//! [`REFUSAL_TIMEOUT`]): a server that keeps asking is slowed to the pace of its own answers.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::HttpUpstream;
use crate::upstream::call::Responder;

/// Answer tasks one upstream may have in flight (POSTs not yet answered by the server).
pub const MAX_ANSWERS_IN_FLIGHT: usize = 64;

/// How long the reader waits for a server to take a refusal before it reads on (a server that
/// takes no answers at all must not stop its stream from being read for good).
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(5);

/// What the gateway answers a server's request with.
pub(super) enum Answer {
    /// `ping`: an empty result.
    Pong,
    /// A JSON-RPC error: code and message.
    Refusal(i32, String),
}

/// Why a request over the bound is refused.
pub(super) fn over_the_bound() -> String {
    format!(
        "mcpgate refused this request: {MAX_ANSWERS_IN_FLIGHT} answers to this server's \
         requests are in flight already (the most the gateway sends at once); ask again once \
         the server has taken them"
    )
}

/// One answer task's place in the count; given back when the task ends however it ends.
struct InFlight(Arc<HttpUpstream>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.answers_in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.answers_over_bound.store(false, Ordering::Relaxed);
        }
    }
}

impl HttpUpstream {
    /// Answers the request `responder` leads back to (`method` names it in logs): by a task of
    /// its own, or, with [`MAX_ANSWERS_IN_FLIGHT`] tasks out already, by a refusal sent here.
    pub(super) async fn answer_request(
        self: &Arc<Self>,
        responder: Responder,
        method: &str,
        answer: Answer,
    ) {
        let counted = self
            .answers_in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_ANSWERS_IN_FLIGHT).then_some(n + 1)
            })
            .is_ok();
        if !counted {
            // Said once per flood: the count falls to zero before it is said again.
            if !self.answers_over_bound.swap(true, Ordering::Relaxed) {
                tracing::warn!(server = %self.name, method, "the server asks faster than it takes the gateway's answers ({MAX_ANSWERS_IN_FLIGHT} in flight); further requests are refused until they are taken");
            }
            // Boxed: the readers that await this keep their own futures small (a refusal is a
            // whole exchange) for the rare case that needs it.
            let why = over_the_bound();
            let refusal = Box::pin(responder.refuse(-32603, &why));
            match monoio::time::timeout(REFUSAL_TIMEOUT, refusal).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::debug!(server = %self.name, method, "could not refuse the server's request: {e}")
                }
                Err(_) => {
                    tracing::debug!(server = %self.name, method, "the server did not take a refusal in time")
                }
            }
            return;
        }
        let slot = InFlight(self.clone());
        let method = method.to_owned();
        monoio::spawn(async move {
            let sent = match answer {
                Answer::Pong => responder.respond(br#""result":{}"#).await,
                Answer::Refusal(code, why) => responder.refuse(code, &why).await,
            };
            if let Err(e) = sent {
                tracing::debug!(server = %slot.0.name, method, "could not answer the server's request: {e}");
            }
        });
    }
}
