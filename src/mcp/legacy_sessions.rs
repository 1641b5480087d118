//! The open streams of legacy (2024-11-05 HTTP+SSE) sessions, process-wide.
//!
//! A legacy client POSTs each message to `/messages?session_id=…`; that POST may land on any
//! worker core (SO_REUSEPORT spreads connections), while the answer must go out on the
//! `GET /sse` stream, which lives on the core that accepted it. This table maps a session (its
//! token's nonce) to a bounded cross-thread sender into that stream. Only legacy-transport
//! requests touch it; `/mcp` never does.
//!
//! It also holds the client capabilities and client info a legacy client declares at
//! `initialize`: the session
//! id is issued by `GET /sse`, before `initialize` arrives, so (unlike on `/mcp`) the token
//! cannot carry them, and a legacy session is unusable without its stream anyway, so keeping
//! them beside the stream loses nothing.
//!
//! Owns: admitting streams and requests within the bounds below, the declared capabilities,
//! and removing a session's entry when its stream ends. Must never: grow without bound, hold a
//! message without a bound on count and size, or hand one session's sender to another.

use std::collections::hash_map::Entry as Slot;
use std::collections::HashMap;
use std::future::poll_fn;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use futures_channel::mpsc;
use futures_util::task::AtomicWaker;

use super::client_info::ClientInfo;

/// Legacy streams open at once, process-wide.
pub const MAX_SESSIONS: usize = 1024;
/// Messages waiting to be written on one stream; producers wait (backpressure) beyond it.
pub const QUEUE: usize = 32;
/// Requests of one session accepted and not yet answered on its stream; POSTs beyond it get
/// 503. This also bounds the producers waiting on a full queue.
pub const MAX_IN_FLIGHT: usize = 64;
/// Largest message sent on a legacy stream (a bigger reply is answered with an error).
pub const MAX_MESSAGE: usize = 16 << 20;

/// One or more SSE events, already framed.
pub type Outgoing = Box<[u8]>;

type Nonce = [u8; 8];

struct Entry {
    tx: mpsc::Sender<Outgoing>,
    capabilities: u8,
    client: ClientInfo,
    in_flight: Arc<Unanswered>,
}

/// A session's requests admitted and not yet answered on its stream, and the stream's waker
/// for when that count drops to zero (a draining stream ends then).
#[derive(Default)]
struct Unanswered {
    count: AtomicUsize,
    none_left: AtomicWaker,
}

static TABLE: LazyLock<Mutex<HashMap<Nonce, Entry>>> = LazyLock::new(|| Mutex::new(HashMap::new()));

fn table() -> std::sync::MutexGuard<'static, HashMap<Nonce, Entry>> {
    TABLE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Why a stream could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// [`MAX_SESSIONS`] streams are open.
    Full,
    /// The nonce is already registered (a random 64-bit collision).
    Taken,
}

/// An open stream's place in the table: its receiving end. Dropping it (the client went away,
/// the stream ended) removes the entry, so later POSTs are refused and waiting producers stop.
pub struct Registration {
    nonce: Nonce,
    pub rx: mpsc::Receiver<Outgoing>,
    in_flight: Arc<Unanswered>,
}

/// Registers the stream of a new session.
pub fn open(nonce: Nonce) -> Result<Registration, OpenError> {
    let mut t = table();
    if t.len() >= MAX_SESSIONS {
        return Err(OpenError::Full);
    }
    let Slot::Vacant(slot) = t.entry(nonce) else {
        return Err(OpenError::Taken);
    };
    let (tx, rx) = mpsc::channel(QUEUE);
    let in_flight = Arc::new(Unanswered::default());
    slot.insert(Entry {
        tx,
        capabilities: 0,
        client: ClientInfo::default(),
        in_flight: in_flight.clone(),
    });
    Ok(Registration {
        nonce,
        rx,
        in_flight,
    })
}

impl Registration {
    /// Whether every admitted request of the session has been answered (its answer is queued
    /// on `rx` or already taken). When not, `cx` is woken once that becomes true.
    pub fn all_answered(&self, cx: &mut std::task::Context<'_>) -> bool {
        self.in_flight.none_left.register(cx.waker());
        // Acquire pairs with the ticket's release: an answer queued before its ticket dropped
        // is visible on `rx` once the count reads zero.
        self.in_flight.count.load(Ordering::Acquire) == 0
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        table().remove(&self.nonce);
    }
}

/// Records the client capabilities (bits) and client info a session declared at `initialize`.
pub fn set_declared(nonce: Nonce, capabilities: u8, client: ClientInfo) {
    if let Some(entry) = table().get_mut(&nonce) {
        entry.capabilities = capabilities;
        entry.client = client;
    }
}

/// Why a POST was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No stream is open for the session (it ended, or was never opened here).
    Closed,
    /// [`MAX_IN_FLIGHT`] requests of the session await delivery.
    Busy,
}

/// A POSTed message admitted for a session: the way to its stream and the session's
/// capabilities. Counts against [`MAX_IN_FLIGHT`] until dropped.
pub struct Ticket {
    tx: mpsc::Sender<Outgoing>,
    in_flight: Arc<Unanswered>,
    pub capabilities: u8,
    pub client: ClientInfo,
}

/// Admits one POSTed message of `nonce`'s session.
pub fn admit(nonce: Nonce) -> Result<Ticket, Refusal> {
    let t = table();
    let entry = t.get(&nonce).ok_or(Refusal::Closed)?;
    let admitted = entry
        .in_flight
        .count
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < MAX_IN_FLIGHT).then_some(n + 1)
        });
    if admitted.is_err() {
        return Err(Refusal::Busy);
    }
    Ok(Ticket {
        tx: entry.tx.clone(),
        in_flight: entry.in_flight.clone(),
        capabilities: entry.capabilities,
        client: entry.client,
    })
}

impl Ticket {
    /// Queues framed events on the session's stream, waiting while the queue is full; false
    /// when the stream is gone.
    pub async fn deliver(&mut self, events: Outgoing) -> bool {
        if poll_fn(|cx| self.tx.poll_ready(cx)).await.is_err() {
            return false;
        }
        self.tx.start_send(events).is_ok()
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.in_flight.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.in_flight.none_left.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn nonce(n: u8) -> Nonce {
        [0xa5, n, 0, 0, 0, 0, 0, 0x5a]
    }

    #[test]
    fn entries_live_as_long_as_their_stream() {
        let n = nonce(1);
        let reg = open(n).unwrap();
        assert_eq!(open(n).err(), Some(OpenError::Taken));
        assert!(admit(n).is_ok());
        drop(reg);
        assert_eq!(admit(n).err(), Some(Refusal::Closed));
    }

    #[test]
    fn requests_in_flight_are_bounded() {
        let n = nonce(2);
        let _reg = open(n).unwrap();
        let tickets: Vec<Ticket> = (0..MAX_IN_FLIGHT).map(|_| admit(n).unwrap()).collect();
        assert_eq!(admit(n).err(), Some(Refusal::Busy));
        drop(tickets);
        assert!(admit(n).is_ok());
    }

    #[test]
    fn capabilities_and_messages_reach_the_stream() {
        let n = nonce(3);
        let mut reg = open(n).unwrap();
        set_declared(n, 5, ClientInfo::new("old", "1"));
        let mut ticket = admit(n).unwrap();
        assert_eq!(ticket.capabilities, 5);
        assert_eq!(ticket.client.name(), "old");
        let sent = futures_executor_free::block(ticket.deliver(b"data: 1\n\n"[..].into()));
        assert!(sent);
        let got = futures_executor_free::block(reg.rx.next());
        assert_eq!(got.as_deref(), Some(&b"data: 1\n\n"[..]));
        drop(reg);
        assert!(!futures_executor_free::block(
            ticket.deliver(b"x"[..].into())
        ));
    }

    /// Polls a future that never actually waits here (the channel has room, or is closed).
    mod futures_executor_free {
        use std::future::Future;
        use std::pin::pin;
        use std::task::{Context, Poll, Waker};

        pub fn block<F: Future>(f: F) -> F::Output {
            let mut f = pin!(f);
            let mut cx = Context::from_waker(Waker::noop());
            match f.as_mut().poll(&mut cx) {
                Poll::Ready(v) => v,
                Poll::Pending => panic!("the future had to wait"),
            }
        }
    }
}
