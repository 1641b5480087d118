//! Telling connected clients what changed: each `GET /mcp` stream on this core takes
//! `notifications/{tools,prompts,resources}/list_changed` (for everyone) and
//! `notifications/resources/updated` (for its session's subscriptions) from here.
//!
//! Owns: this core's list of open streams' inboxes, by session. Must never: hold a stream open
//! (a closed stream's inbox is dropped at the next announcement) or cross cores (whoever
//! announces asks each core to do it on its own).

use std::cell::RefCell;

use futures_channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};

use crate::http::sse::write_event;
use crate::upstream::server_notices::{PROMPTS, RESOURCES, TOOLS};

/// What a stream is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Announcement {
    /// These lists (bits) changed.
    Lists(u8),
    /// One message for this session, whole.
    Message(std::sync::Arc<[u8]>),
}

type Streams = Vec<([u8; 8], UnboundedSender<Announcement>)>;

thread_local! {
    static STREAMS: RefCell<Streams> = const { RefCell::new(Vec::new()) };
}

/// An inbox for `session`'s stream, for the announcements made on this core from now on.
pub fn subscribe(session: [u8; 8]) -> UnboundedReceiver<Announcement> {
    let (tx, rx) = unbounded();
    STREAMS.with(|s| s.borrow_mut().push((session, tx)));
    rx
}

/// Tells every stream on this core that `lists` (bits) changed.
pub fn announce(lists: u8) {
    STREAMS.with(|s| {
        s.borrow_mut()
            .retain(|(_, tx)| tx.unbounded_send(Announcement::Lists(lists)).is_ok())
    });
}

/// Gives `message` to `session`'s streams on this core (a session may hold several).
pub fn deliver(session: [u8; 8], message: std::sync::Arc<[u8]>) {
    STREAMS.with(|s| {
        s.borrow_mut().retain(|(owner, tx)| {
            *owner != session
                || tx
                    .unbounded_send(Announcement::Message(message.clone()))
                    .is_ok()
        })
    });
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
            open.try_recv().ok(),
            Some(Announcement::Lists(TOOLS | RESOURCES))
        );
        assert_eq!(
            other.try_recv().ok(),
            Some(Announcement::Lists(TOOLS | RESOURCES))
        );
        STREAMS.with(|s| assert_eq!(s.borrow().len(), 2, "the closed inbox is gone"));
        let message: std::sync::Arc<[u8]> = b"{}".as_slice().into();
        deliver([2; 8], message.clone());
        assert_eq!(other.try_recv().ok(), Some(Announcement::Message(message)));
        assert!(open.try_recv().is_err(), "not for session 1");
        let mut out = Vec::new();
        write_announcement(&Announcement::Lists(TOOLS | RESOURCES), b"", &mut out);
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(
            text,
            "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n\n\
             data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/resources/list_changed\"}\n\n"
        );
    }
}
