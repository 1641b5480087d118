//! The calls in flight on this core, by session and client request id, so a client's
//! `notifications/cancelled` can stop one (the upstream then hears of it too).
//!
//! Owns: one small map per core; a call registers while it waits and leaves when its guard
//! drops. Must never: hold anything across cores (a cancellation that finds nothing here is
//! passed to the other cores), or cancel a call of another session.

use std::cell::RefCell;
use std::collections::HashMap;

use futures_channel::oneshot;

/// Calls one core holds at once, beyond which new ones are simply not cancellable by id.
const MAX_TRACKED: usize = 64 * 1024;

/// The session and a hash of the client's raw id: no allocation per call. Two calls of one
/// session whose ids hash alike (odds of 2^-64) would share an entry, and only a cancellation
/// could then reach the wrong one of them.
type Key = ([u8; 8], u64);

thread_local! {
    static IN_FLIGHT: RefCell<HashMap<Key, oneshot::Sender<()>, ahash::RandomState>> =
        RefCell::new(HashMap::default());
    static ID_HASH: ahash::RandomState = ahash::RandomState::new();
}

fn key(session: [u8; 8], id: &str) -> Key {
    let hash = ID_HASH.with(|s| s.hash_one(id));
    (session, hash)
}

/// Resolves when the client cancels the call.
pub type CancelSignal = oneshot::Receiver<()>;

/// Keeps a call registered until dropped.
pub struct InFlight {
    key: Option<Key>,
}

/// Registers the call `id` (raw JSON) of `session` on this core.
pub fn register(session: [u8; 8], id: &str) -> (InFlight, CancelSignal) {
    let (tx, rx) = oneshot::channel();
    let key = key(session, id);
    let tracked = IN_FLIGHT.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() >= MAX_TRACKED {
            return false;
        }
        // A client reusing an id while the first call runs: the newer call is the cancellable one.
        m.insert(key, tx);
        true
    });
    (
        InFlight {
            key: tracked.then_some(key),
        },
        rx,
    )
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            IN_FLIGHT.with(|m| m.borrow_mut().remove(&key));
        }
    }
}

/// Cancels the call `id` of `session` if it runs on this core; whether it did.
pub fn cancel_here(session: [u8; 8], id: &str) -> bool {
    let found = IN_FLIGHT.with(|m| m.borrow_mut().remove(&key(session, id)));
    found.is_some_and(|tx| tx.send(()).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancels_only_the_named_call_of_its_session() {
        let (a, mut a_cancel) = register([1; 8], "7");
        let (_b, mut b_cancel) = register([2; 8], "7");
        assert!(!cancel_here([1; 8], "8"));
        assert!(cancel_here([1; 8], "7"));
        assert_eq!(a_cancel.try_recv(), Ok(Some(())));
        assert_eq!(b_cancel.try_recv(), Ok(None));
        drop(a);
        assert!(!cancel_here([1; 8], "7"), "gone once cancelled");
    }

    #[test]
    fn a_finished_call_is_no_longer_cancellable() {
        let (guard, _signal) = register([3; 8], "\"x\"");
        drop(guard);
        assert!(!cancel_here([3; 8], "\"x\""));
    }
}
