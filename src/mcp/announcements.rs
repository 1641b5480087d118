//! Telling connected clients what changed: each `GET /mcp` stream on this core takes
//! `notifications/{tools,prompts,resources}/list_changed` (for everyone) and
//! `notifications/resources/updated` (for its session's subscriptions) from here.
//!
//! Owns: this core's list of open streams' inboxes, by session, and their bound (a client that
//! never reads its stream holds one set of list bits and at most [`MAX_HELD_MESSAGES`]
//! messages). Must never: hold a stream open (a closed stream's inbox is forgotten at the next
//! announcement) or cross cores (whoever announces asks each core to do it on its own).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use futures_util::Stream;

use crate::http::sse::write_event;
use crate::upstream::server_notices::{PROMPTS, RESOURCES, TOOLS};

/// Messages (resource updates) held for one stream whose client is not reading; more are
/// dropped (a message equal to one already held is folded into it first).
const MAX_HELD_MESSAGES: usize = 256;

/// What a stream is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Announcement {
    /// These lists (bits) changed.
    Lists(u8),
    /// One message for this session, whole.
    Message(Arc<[u8]>),
}

/// One stream's inbox: what it has not written yet. Bounded whether or not its client reads:
/// list changes fold into one set of bits, resource updates into at most
/// [`MAX_HELD_MESSAGES`] distinct messages. A [`Stream`] that never ends.
pub struct Inbox(Rc<RefCell<Held>>);

#[derive(Default)]
struct Held {
    lists: u8,
    messages: VecDeque<Arc<[u8]>>,
    waker: Option<Waker>,
}

impl Held {
    fn wake(&mut self) {
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

type Streams = Vec<([u8; 8], Weak<RefCell<Held>>)>;

thread_local! {
    static STREAMS: RefCell<Streams> = const { RefCell::new(Vec::new()) };
}

/// An inbox for `session`'s stream, for the announcements made on this core from now on.
pub fn subscribe(session: [u8; 8]) -> Inbox {
    let held = Rc::new(RefCell::new(Held::default()));
    STREAMS.with(|s| s.borrow_mut().push((session, Rc::downgrade(&held))));
    Inbox(held)
}

/// Tells every stream on this core that `lists` (bits) changed.
pub fn announce(lists: u8) {
    STREAMS.with(|s| {
        s.borrow_mut().retain(|(_, inbox)| {
            let Some(inbox) = inbox.upgrade() else {
                return false;
            };
            let mut held = inbox.borrow_mut();
            held.lists |= lists;
            held.wake();
            true
        })
    });
}

/// Gives `message` to `session`'s streams on this core (a session may hold several).
pub fn deliver(session: [u8; 8], message: Arc<[u8]>) {
    STREAMS.with(|s| {
        s.borrow_mut().retain(|(owner, inbox)| {
            let Some(inbox) = inbox.upgrade() else {
                return false;
            };
            if *owner != session {
                return true;
            }
            let mut held = inbox.borrow_mut();
            if held.messages.iter().any(|m| *m == message) {
                // Already on its way: an update says "read it again", once is enough.
            } else if held.messages.len() >= MAX_HELD_MESSAGES {
                tracing::debug!(
                    "a GET stream's client is not reading; a resource update for it was dropped"
                );
            } else {
                held.messages.push_back(message.clone());
                held.wake();
            }
            true
        })
    });
}

impl Stream for Inbox {
    type Item = Announcement;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Announcement>> {
        let mut held = self.0.borrow_mut();
        if held.lists != 0 {
            let lists = std::mem::take(&mut held.lists);
            return Poll::Ready(Some(Announcement::Lists(lists)));
        }
        if let Some(message) = held.messages.pop_front() {
            return Poll::Ready(Some(Announcement::Message(message)));
        }
        held.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Inbox {
    /// The next announcement if one is waiting, without waiting.
    pub fn try_next(&mut self) -> Option<Announcement> {
        let mut held = self.0.borrow_mut();
        if held.lists != 0 {
            return Some(Announcement::Lists(std::mem::take(&mut held.lists)));
        }
        held.messages.pop_front().map(Announcement::Message)
    }
}

/// The notifications that say `lists` changed.
pub fn notifications(lists: u8) -> impl Iterator<Item = &'static str> {
    [
        (
            TOOLS,
            r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#,
        ),
        (
            PROMPTS,
            r#"{"jsonrpc":"2.0","method":"notifications/prompts/list_changed"}"#,
        ),
        (
            RESOURCES,
            r#"{"jsonrpc":"2.0","method":"notifications/resources/list_changed"}"#,
        ),
    ]
    .into_iter()
    .filter(move |(bit, _)| lists & bit != 0)
    .map(|(_, message)| message)
}

/// `announcement` as SSE events, each after `event_line` (empty, or `event: message\n` for
/// legacy clients).
pub fn write_announcement(announcement: &Announcement, event_line: &[u8], out: &mut Vec<u8>) {
    match announcement {
        Announcement::Lists(lists) => {
            for message in notifications(*lists) {
                out.extend_from_slice(event_line);
                write_event(out, message.as_bytes());
            }
        }
        Announcement::Message(message) => {
            out.extend_from_slice(event_line);
            write_event(out, message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_reach_open_streams_only() {
        let mut open = subscribe([1; 8]);
        let mut other = subscribe([2; 8]);
        let closed = subscribe([1; 8]);
        drop(closed);
        announce(TOOLS | RESOURCES);
        assert_eq!(
            open.try_next(),
            Some(Announcement::Lists(TOOLS | RESOURCES))
        );
        assert_eq!(
            other.try_next(),
            Some(Announcement::Lists(TOOLS | RESOURCES))
        );
        STREAMS.with(|s| assert_eq!(s.borrow().len(), 2, "the closed inbox is gone"));
        let message: Arc<[u8]> = b"{}".as_slice().into();
        deliver([2; 8], message.clone());
        assert_eq!(other.try_next(), Some(Announcement::Message(message)));
        assert!(open.try_next().is_none(), "not for session 1");
        let mut out = Vec::new();
        write_announcement(&Announcement::Lists(TOOLS | RESOURCES), b"", &mut out);
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(
            text,
            "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n\n\
             data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/resources/list_changed\"}\n\n"
        );
    }

    #[test]
    fn an_unread_inbox_stays_bounded() {
        let mut inbox = subscribe([3; 8]);
        for _ in 0..10_000 {
            announce(TOOLS);
            announce(PROMPTS);
            deliver([3; 8], b"same update".as_slice().into());
        }
        for n in 0..10_000 {
            deliver([3; 8], format!("update {n}").into_bytes().into());
        }
        assert_eq!(inbox.try_next(), Some(Announcement::Lists(TOOLS | PROMPTS)));
        let messages = std::iter::from_fn(|| inbox.try_next()).count();
        assert_eq!(messages, MAX_HELD_MESSAGES);
    }
}
