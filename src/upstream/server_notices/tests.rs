use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures_util::task::{waker, ArcWake};

use super::*;

fn lists(server: &str, lists: u8) -> ServerNotice {
    ServerNotice::ListsChanged {
        server: server.to_owned(),
        lists,
    }
}

fn updated(server: &str, uri: &str) -> ServerNotice {
    ServerNotice::ResourceUpdated {
        server: server.to_owned(),
        uri: uri.to_owned(),
    }
}

fn drain(pending: &mut Pending) -> Vec<ServerNotice> {
    std::iter::from_fn(|| pending.take()).collect()
}

#[test]
fn a_flood_of_list_changes_is_one_entry_per_server() {
    let mut pending = Pending::default();
    for n in 0..100_000 {
        pending.lists_changed("a", if n % 2 == 0 { TOOLS } else { PROMPTS });
        pending.lists_changed("b", RESOURCES);
    }
    assert_eq!(pending.lists.len(), 2);
    assert_eq!(
        drain(&mut pending),
        [lists("a", TOOLS | PROMPTS), lists("b", RESOURCES)]
    );
}

#[test]
fn a_change_after_its_server_was_taken_is_pending_again() {
    // The keeper lists a server after taking it: a notice that arrives meanwhile must make it
    // list that server once more.
    let mut pending = Pending::default();
    pending.lists_changed("a", TOOLS);
    pending.lists_changed("b", TOOLS);
    assert_eq!(pending.take(), Some(lists("a", TOOLS)));
    pending.lists_changed("a", TOOLS);
    pending.lists_changed("b", PROMPTS);
    assert_eq!(
        drain(&mut pending),
        [lists("b", TOOLS | PROMPTS), lists("a", TOOLS)]
    );
}

#[test]
fn resource_updates_are_kept_once_each_up_to_the_bound() {
    let mut pending = Pending::default();
    for _ in 0..1000 {
        assert_eq!(pending.resource_updated("s", "note://x".into()), Kept::Yes);
    }
    assert_eq!(pending.updates.len(), 1);

    let uri = "u".repeat(1000);
    let per_update = update_cost("s", &uri) + 10;
    let room = (MAX_PENDING_UPDATE_BYTES - update_cost("s", "note://x")) / per_update;
    for n in 0..room {
        let kept = pending.resource_updated("s", format!("{uri}{n:010}"));
        assert_eq!(kept, Kept::Yes, "update {n}");
    }
    assert_eq!(
        pending.resource_updated("s", "note://y".repeat(200)),
        Kept::DroppedFirst
    );
    assert_eq!(
        pending.resource_updated("s", "note://z".repeat(200)),
        Kept::Dropped
    );
    // One already pending is still taken as kept: its subscribers hear of it when it is taken.
    assert_eq!(pending.resource_updated("s", "note://x".into()), Kept::Yes);
    assert!(pending.update_bytes <= MAX_PENDING_UPDATE_BYTES);

    let taken = drain(&mut pending);
    assert_eq!(taken.len(), room + 1);
    assert!(taken.contains(&updated("s", "note://x")));
    assert_eq!(pending.update_bytes, 0);
    // Emptied: room again, and the next drop is reported again.
    assert_eq!(pending.resource_updated("s", "note://y".into()), Kept::Yes);
    assert_eq!(pending.dropped, 0);
}

#[test]
fn list_changes_are_taken_before_resource_updates() {
    let mut pending = Pending::default();
    pending.resource_updated("s", "note://x".into());
    pending.lists_changed("s", TOOLS);
    assert_eq!(
        drain(&mut pending),
        [lists("s", TOOLS), updated("s", "note://x")]
    );
}

struct CountWakes(AtomicUsize);

impl ArcWake for CountWakes {
    fn wake_by_ref(me: &Arc<Self>) {
        me.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn the_keeper_is_woken_once_per_wait_and_takes_what_piled_up() {
    let feed: &'static Mutex<Feed> = Box::leak(Box::new(Feed::listening()));
    let mut notices = Notices { feed };
    let wakes = Arc::new(CountWakes(AtomicUsize::new(0)));
    let waker = waker(wakes.clone());
    let mut cx = Context::from_waker(&waker);
    let mut poll = |notices: &mut Notices| Pin::new(notices).poll_next(&mut cx);

    assert_eq!(poll(&mut notices), Poll::Pending);
    for _ in 0..1000 {
        assert_eq!(feed_in(feed, "a", Change::Lists(TOOLS)), Some(Kept::Yes));
    }
    assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
    assert_eq!(poll(&mut notices), Poll::Ready(Some(lists("a", TOOLS))));
    assert_eq!(poll(&mut notices), Poll::Pending);
    feed_in(feed, "a", Change::Updated("note://x".into()));
    assert_eq!(wakes.0.load(Ordering::SeqCst), 2);
    assert_eq!(
        poll(&mut notices),
        Poll::Ready(Some(updated("a", "note://x")))
    );

    // Nobody listens any more: nothing is kept.
    drop(notices);
    assert_eq!(feed_in(feed, "a", Change::Lists(TOOLS)), None);
    assert!(lock(feed).pending.take().is_none());
}
