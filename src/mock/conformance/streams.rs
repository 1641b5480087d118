//! The event logs behind the conformance profile's SSE streams, one per request plus the
//! session's standalone `GET` stream.
//!
//! Owns what makes a stream resumable: every message a request sends is appended to its
//! stream's log with an event id (`<stream>_<n>`) before it is passed to the connection
//! reading the stream, if any. A client that lost the stream (or was cut off on purpose)
//! reconnects with `Last-Event-ID` and gets the rest from the log. Must never grow without
//! bound: logs per session are capped and readers whose connection ended are dropped.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use futures_channel::mpsc::{self, UnboundedReceiver, UnboundedSender};
use futures_util::StreamExt;

use super::{Outbox, Session};
use crate::http::SseStream;

/// Event logs kept per session; a new stream beyond this drops the oldest (finished first).
const MAX_STREAMS: usize = 256;

/// The reconnection delay announced in each priming event (`retry:`), in milliseconds.
const RETRY_MS: u32 = 500;

/// An SSE comment is sent after this long without events, so a client that went away is
/// noticed (the write fails) and its stream released.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// The stream number of the session's standalone `GET` stream; request streams count from 1.
pub(super) const STANDALONE: u64 = 0;

/// The events of one SSE stream, kept so a client can resume it.
struct StreamLog {
    /// Framed events (`id: …\ndata: …\n\n`); event `n` (1-based) is at index `n - 1`.
    events: Vec<Rc<[u8]>>,
    /// The request has been answered: nothing more will be added.
    done: bool,
    /// Connections reading the stream now, oldest first; events go to the newest open one.
    readers: Vec<UnboundedSender<Rc<[u8]>>>,
}

impl StreamLog {
    fn new() -> StreamLog {
        StreamLog {
            events: Vec::new(),
            done: false,
            readers: Vec::new(),
        }
    }
}

/// One client session: the protocol state and its streams.
pub(super) struct HttpSession {
    pub(super) core: Session,
    streams: RefCell<Streams>,
}

/// A session's event logs by stream number.
struct Streams {
    next: u64,
    logs: BTreeMap<u64, StreamLog>,
}

impl HttpSession {
    pub(super) fn new() -> HttpSession {
        let mut logs = BTreeMap::new();
        logs.insert(STANDALONE, StreamLog::new());
        HttpSession {
            core: Session::new(),
            streams: RefCell::new(Streams {
                next: STANDALONE + 1,
                logs,
            }),
        }
    }

    /// Starts the log of a new request stream; returns its number and the response that
    /// reads it, opening with the priming event (an id and empty data), which makes the
    /// stream resumable from its start.
    pub(super) fn open_stream(&self) -> (u64, EventStream) {
        let mut streams = self.streams.borrow_mut();
        if streams.logs.len() > MAX_STREAMS {
            let victim = streams
                .logs
                .iter()
                .find(|(n, log)| **n != STANDALONE && log.done)
                .or_else(|| streams.logs.iter().find(|(n, _)| **n != STANDALONE))
                .map(|(n, _)| *n);
            if let Some(victim) = victim {
                streams.logs.remove(&victim);
            }
        }
        let number = streams.next;
        streams.next += 1;
        let (tx, rx) = mpsc::unbounded();
        let mut log = StreamLog::new();
        log.readers.push(tx);
        streams.logs.insert(number, log);
        let priming = format!("id: {}\nretry: {RETRY_MS}\ndata: \n\n", event_id(number, 0));
        let stream = EventStream {
            head: priming.into_bytes(),
            events: Some(rx),
        };
        (number, stream)
    }

    /// Appends `message` to stream `number` as an event and passes it to the stream's reader.
    fn push(&self, number: u64, message: &[u8]) {
        let mut streams = self.streams.borrow_mut();
        let Some(log) = streams.logs.get_mut(&number) else {
            return; // Evicted or the session ended: nobody can read it any more.
        };
        let mut framed = Vec::with_capacity(message.len() + 32);
        framed.extend_from_slice(b"id: ");
        framed.extend_from_slice(event_id(number, log.events.len() + 1).as_bytes());
        framed.push(b'\n');
        crate::http::sse::write_event(&mut framed, message);
        let framed: Rc<[u8]> = framed.into();
        log.events.push(framed.clone());
        log.readers.retain(|reader| !reader.is_closed());
        if let Some(reader) = log.readers.last() {
            // A reader that closed in between loses nothing: the event is in the log.
            let _ = reader.unbounded_send(framed);
        }
    }

    /// Ends the readers of stream `number` (they finish what they were sent, then close).
    fn close_readers(&self, number: u64) {
        if let Some(log) = self.streams.borrow_mut().logs.get_mut(&number) {
            log.readers.clear();
        }
    }

    /// Marks stream `number` answered and ends its readers.
    pub(super) fn finish(&self, number: u64) {
        if let Some(log) = self.streams.borrow_mut().logs.get_mut(&number) {
            log.done = true;
            log.readers.clear();
        }
    }

    /// Opens a reader on stream `number` that first gets the events after `after` (a count).
    /// `None` when the stream is unknown.
    pub(super) fn read_from(
        &self,
        number: u64,
        after: usize,
        opening: &[u8],
    ) -> Option<EventStream> {
        let mut streams = self.streams.borrow_mut();
        let log = streams.logs.get_mut(&number)?;
        let mut head = opening.to_vec();
        for event in log.events.iter().skip(after) {
            head.extend_from_slice(event);
        }
        let events = match log.done {
            true => None,
            false => {
                let (tx, rx) = mpsc::unbounded();
                // Readers whose connection ended go now, so repeated GETs cannot pile up.
                log.readers.retain(|reader| !reader.is_closed());
                log.readers.push(tx);
                Some(rx)
            }
        };
        Some(EventStream { head, events })
    }

    /// Ends the session: its waiting requests fail and its streams close.
    pub(super) fn end(&self) {
        self.core.close();
        for log in self.streams.borrow_mut().logs.values_mut() {
            log.readers.clear();
        }
    }
}

/// The SSE event id of event `seq` of stream `number`; [`parse_event_id`] reads it back.
fn event_id(number: u64, seq: usize) -> String {
    format!("{number}_{seq}")
}

/// The stream number and event count in an event id from [`event_id`].
pub(super) fn parse_event_id(id: &[u8]) -> Option<(u64, usize)> {
    let id = std::str::from_utf8(id).ok()?;
    let (number, seq) = id.trim().split_once('_')?;
    Some((number.parse().ok()?, seq.parse().ok()?))
}

/// Where a request's messages go: its stream's log.
pub(super) struct StreamOutbox {
    pub(super) session: Rc<HttpSession>,
    pub(super) number: u64,
}

impl Outbox for StreamOutbox {
    fn send(&self, message: Vec<u8>) {
        self.session.push(self.number, &message);
    }

    fn close_stream(&self) {
        self.session.close_readers(self.number);
    }
}

/// One SSE response: a head (priming event or replayed events), then live events until the
/// stream's request is answered (or its readers are closed).
pub struct EventStream {
    head: Vec<u8>,
    events: Option<UnboundedReceiver<Rc<[u8]>>>,
}

impl SseStream for EventStream {
    async fn next_event(&mut self, out: &mut Vec<u8>) -> bool {
        if !self.head.is_empty() {
            out.append(&mut self.head);
            return true;
        }
        let Some(events) = self.events.as_mut() else {
            return false;
        };
        match monoio::time::timeout(HEARTBEAT, events.next()).await {
            Ok(Some(event)) => {
                out.extend_from_slice(&event);
                // Whatever else is ready leaves in the same write.
                while let Ok(event) = events.try_recv() {
                    out.extend_from_slice(&event);
                }
                true
            }
            Ok(None) => false,
            Err(_) => {
                out.extend_from_slice(b": keep-alive\n\n");
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_round_trip() {
        assert_eq!(parse_event_id(event_id(7, 3).as_bytes()), Some((7, 3)));
        assert_eq!(parse_event_id(b"7"), None);
        assert_eq!(parse_event_id(b"x_1"), None);
    }
}
