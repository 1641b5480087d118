//! Servers saying their tools, prompts or resources changed
//! (`notifications/{tools,prompts,resources}/list_changed`), passed to whoever keeps the
//! registry, which lists the server again and publishes a new snapshot.
//!
//! Owns: the process's one feed of such reports. Must never: block the transport that
//! reports (a report is a non-blocking send), or keep reports when nobody listens.

use std::sync::OnceLock;

use futures_channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};

/// Which lists a report concerns, as bits.
pub const TOOLS: u8 = 1;
pub const PROMPTS: u8 = 2;
pub const RESOURCES: u8 = 4;

/// A server's report that some of its lists changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListChange {
    pub server: String,
    /// [`TOOLS`], [`PROMPTS`], [`RESOURCES`] bits.
    pub lists: u8,
}

static FEED: OnceLock<UnboundedSender<ListChange>> = OnceLock::new();

/// Starts listening for reports; `None` when someone already listens (one keeper per process).
pub fn listen() -> Option<UnboundedReceiver<ListChange>> {
    let (tx, rx) = unbounded();
    FEED.set(tx).ok().map(|()| rx)
}

/// Which list a notification method reports changed, if it is one of those.
pub fn lists_of(method: &str) -> Option<u8> {
    match method {
        "notifications/tools/list_changed" => Some(TOOLS),
        "notifications/prompts/list_changed" => Some(PROMPTS),
        "notifications/resources/list_changed" => Some(RESOURCES),
        _ => None,
    }
}

/// Reports that `server` said `method`, when `method` is a list change; whether it was one.
pub fn report(server: &str, method: &str) -> bool {
    let Some(lists) = lists_of(method) else {
        return false;
    };
    match FEED.get() {
        Some(feed) => {
            let _ = feed.unbounded_send(ListChange {
                server: server.to_owned(),
                lists,
            });
        }
        None => tracing::debug!(server, method, "a list change nobody keeps a registry for"),
    }
    true
}
