//! Telling connected clients that the gateway's lists changed: each `GET /mcp` stream on this
//! core takes `notifications/{tools,prompts,resources}/list_changed` from here.
//!
//! Owns: this core's list of open streams' inboxes. Must never: hold a stream open (a closed
//! stream's inbox is dropped at the next announcement) or cross cores (the registry keeper
//! asks each core to announce on its own).

use std::cell::RefCell;

use futures_channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};

use crate::http::sse::write_event;
use crate::upstream::list_changes::{PROMPTS, RESOURCES, TOOLS};

thread_local! {
    static STREAMS: RefCell<Vec<UnboundedSender<u8>>> = const { RefCell::new(Vec::new()) };
}

/// An inbox for the announcements made on this core from now on.
pub fn subscribe() -> UnboundedReceiver<u8> {
    let (tx, rx) = unbounded();
    STREAMS.with(|s| s.borrow_mut().push(tx));
    rx
}

/// Tells every stream on this core that `lists` (bits) changed.
pub fn announce(lists: u8) {
    STREAMS.with(|s| s.borrow_mut().retain(|tx| tx.unbounded_send(lists).is_ok()));
}

/// The notifications for `lists`, as SSE events.
pub fn write_notifications(lists: u8, out: &mut Vec<u8>) {
    for (bit, method) in [
        (TOOLS, "notifications/tools/list_changed"),
        (PROMPTS, "notifications/prompts/list_changed"),
        (RESOURCES, "notifications/resources/list_changed"),
    ] {
        if lists & bit != 0 {
            let message = format!(r#"{{"jsonrpc":"2.0","method":"{method}"}}"#);
            write_event(out, message.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_reach_open_streams_only() {
        let mut open = subscribe();
        let closed = subscribe();
        drop(closed);
        announce(TOOLS | RESOURCES);
        assert_eq!(open.try_recv().ok(), Some(TOOLS | RESOURCES));
        STREAMS.with(|s| assert_eq!(s.borrow().len(), 1, "the closed inbox is gone"));
        let mut out = Vec::new();
        write_notifications(TOOLS | RESOURCES, &mut out);
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(
            text,
            "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n\n\
             data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/resources/list_changed\"}\n\n"
        );
    }
}
