//! What servers announce outside any call, for whoever keeps the registry and the clients'
//! streams: their tools, prompts or resources changed
//! (`notifications/{tools,prompts,resources}/list_changed`: the server is listed again), or a
//! subscribed resource changed (`notifications/resources/updated`: its subscribers are told).
//!
//! Owns: the process's one feed of such notices and its bound. The feed is not a queue of
//! every notice but what is still to be done: per server, which lists to list again (a second
//! notice before the keeper took the first only adds bits), and each changed resource once.
//! A server that sends `list_changed` in a tight loop therefore holds one entry, and the
//! keeper, which takes an entry only when it is about to list that server, lists it again at
//! least once after its last notice. Resource updates are kept up to
//! [`MAX_PENDING_UPDATE_BYTES`]; beyond that new ones are dropped (logged).
//! Must never: block the transport that reports (a report takes one short lock and wakes the
//! keeper), or keep notices when nobody listens.

use std::collections::{BTreeSet, VecDeque};
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};

use futures_util::Stream;

use crate::jsonrpc::RawJson;

/// Which lists a report concerns, as bits.
pub const TOOLS: u8 = 1;
pub const PROMPTS: u8 = 2;
pub const RESOURCES: u8 = 4;

/// Bytes of resource updates the keeper has not taken yet (the server's name and the URI of
/// each, plus [`UPDATE_OVERHEAD`]). Beyond it, updates for resources not already pending are
/// dropped: only a server sending updates for that many distinct resources faster than the
/// keeper takes them reaches it.
pub const MAX_PENDING_UPDATE_BYTES: usize = 1 << 20;
/// What a pending update costs beyond its strings (the set's node, the two string headers).
const UPDATE_OVERHEAD: usize = 64;

/// A server's notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerNotice {
    /// Some of its lists changed: [`TOOLS`], [`PROMPTS`], [`RESOURCES`] bits.
    ListsChanged { server: String, lists: u8 },
    /// A resource it serves changed; `uri` is the server's own.
    ResourceUpdated { server: String, uri: String },
}

/// What is still to be done about the notices reported so far.
#[derive(Default)]
pub(crate) struct Pending {
    /// Servers whose lists changed, in the order of their first report since the keeper last
    /// took them, each with the lists (bits). At most one entry per server name.
    lists: VecDeque<(String, u8)>,
    /// Changed resources: (server, uri), each once.
    updates: BTreeSet<(String, String)>,
    /// What `updates` costs, counted against [`MAX_PENDING_UPDATE_BYTES`].
    update_bytes: usize,
    /// Updates dropped since `updates` was last empty.
    dropped: u64,
}

/// What became of a resource update.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Kept {
    /// Pending now (or already was).
    Yes,
    /// Dropped at the bound; the first such since the pending updates were last taken.
    DroppedFirst,
    /// Dropped at the bound, again.
    Dropped,
}

impl Pending {
    /// `server`'s `lists` (bits) changed: joins its pending entry, or queues one.
    pub(crate) fn lists_changed(&mut self, server: &str, lists: u8) {
        match self.lists.iter_mut().find(|(s, _)| s == server) {
            Some((_, pending)) => *pending |= lists,
            None => self.lists.push_back((server.to_owned(), lists)),
        }
    }

    /// `server`'s resource `uri` changed.
    pub(crate) fn resource_updated(&mut self, server: &str, uri: String) -> Kept {
        let cost = update_cost(server, &uri);
        let key = (server.to_owned(), uri);
        if self.updates.contains(&key) {
            return Kept::Yes;
        }
        if self.update_bytes.saturating_add(cost) > MAX_PENDING_UPDATE_BYTES {
            self.dropped += 1;
            return match self.dropped {
                1 => Kept::DroppedFirst,
                _ => Kept::Dropped,
            };
        }
        self.update_bytes += cost;
        self.updates.insert(key);
        Kept::Yes
    }

    /// The next thing to do: a server to list again (oldest first), else a resource update.
    pub(crate) fn take(&mut self) -> Option<ServerNotice> {
        if let Some((server, lists)) = self.lists.pop_front() {
            return Some(ServerNotice::ListsChanged { server, lists });
        }
        let (server, uri) = self.updates.pop_first()?;
        self.update_bytes -= update_cost(&server, &uri);
        if self.updates.is_empty() {
            self.dropped = 0;
        }
        Some(ServerNotice::ResourceUpdated { server, uri })
    }
}

fn update_cost(server: &str, uri: &str) -> usize {
    server
        .len()
        .saturating_add(uri.len())
        .saturating_add(UPDATE_OVERHEAD)
}

/// The feed: what is pending, and the keeper's wake-up.
struct Feed {
    pending: Pending,
    /// Set while the keeper waits for something to do.
    waker: Option<Waker>,
    /// False once the keeper is gone: reports are no longer kept.
    listening: bool,
}

static FEED: OnceLock<Mutex<Feed>> = OnceLock::new();

fn lock(feed: &Mutex<Feed>) -> MutexGuard<'_, Feed> {
    feed.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The keeper's side of the feed: a [`Stream`] of what to do next, one notice at a time
/// (taken from the pending set only when asked for). It never ends.
pub struct Notices {
    feed: &'static Mutex<Feed>,
}

/// Starts listening for notices; `None` when someone already listens (one keeper per process).
pub fn listen() -> Option<Notices> {
    let mut fresh = false;
    let feed = FEED.get_or_init(|| {
        fresh = true;
        Feed::listening()
    });
    fresh.then_some(Notices { feed })
}

impl Feed {
    fn listening() -> Mutex<Feed> {
        Mutex::new(Feed {
            pending: Pending::default(),
            waker: None,
            listening: true,
        })
    }
}

impl Stream for Notices {
    type Item = ServerNotice;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ServerNotice>> {
        let mut feed = lock(self.feed);
        if let Some(notice) = feed.pending.take() {
            return Poll::Ready(Some(notice));
        }
        if !feed.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            feed.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl Drop for Notices {
    fn drop(&mut self) {
        let mut feed = lock(self.feed);
        feed.listening = false;
        feed.pending = Pending::default();
        feed.waker = None;
    }
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

/// Adds `change` to what `feed` has pending and wakes its keeper; `None` when nobody listens.
fn feed_in(feed: &Mutex<Feed>, server: &str, change: Change) -> Option<Kept> {
    let (kept, waker) = {
        let mut feed = lock(feed);
        if !feed.listening {
            return None;
        }
        let kept = match change {
            Change::Updated(uri) => feed.pending.resource_updated(server, uri),
            Change::Lists(lists) => {
                feed.pending.lists_changed(server, lists);
                Kept::Yes
            }
        };
        (kept, feed.waker.take())
    };
    // Woken outside the lock: the keeper's thread takes it at once.
    if let Some(waker) = waker {
        waker.wake();
    }
    Some(kept)
}

/// What one notice says changed.
enum Change {
    Lists(u8),
    Updated(String),
}

/// Passes on `server`'s notification `method` when it is a notice; whether it was one.
pub fn report(server: &str, method: &str, params: Option<RawJson<'_>>) -> bool {
    let change = match lists_of(method) {
        Some(lists) => Change::Lists(lists),
        None if method == "notifications/resources/updated" => {
            #[derive(serde::Deserialize)]
            struct Updated {
                uri: String,
            }
            let Some(updated) = params.and_then(|p| serde_json::from_str::<Updated>(p.get()).ok())
            else {
                tracing::debug!(server, "resources/updated without a uri; dropped");
                return true;
            };
            Change::Updated(updated.uri)
        }
        None => return false,
    };
    let Some(feed) = FEED.get() else {
        tracing::debug!(server, method, "a notice nobody keeps a registry for");
        return true;
    };
    let Some(kept) = feed_in(feed, server, change) else {
        return true;
    };
    match kept {
        Kept::Yes => {}
        Kept::DroppedFirst => tracing::warn!(
            server,
            "resources/updated notices are dropped: {} KiB of updates are waiting for the registry keeper already",
            MAX_PENDING_UPDATE_BYTES / 1024
        ),
        Kept::Dropped => tracing::debug!(server, "a resources/updated notice dropped"),
    }
    true
}

#[cfg(test)]
mod tests;
