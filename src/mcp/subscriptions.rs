//! Which sessions subscribed to which server resources (`resources/subscribe`), so a server's
//! `notifications/resources/updated` reaches each subscriber under the URI it subscribed with.
//!
//! Owns: the process-wide table, touched only by subscribe/unsubscribe requests and by update
//! notices, never by plain calls. Must never: grow without bound or tell a session of a
//! resource it did not subscribe to.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, PoisonError};

/// Subscriptions kept process-wide; beyond this a subscribe is still forwarded, but its
/// updates are not relayed (and the log says so).
const MAX_SUBSCRIPTIONS: usize = 64 * 1024;

/// (server, the server's URI) → the subscribed sessions and the URI each used.
type Table = HashMap<(String, String), Vec<([u8; 8], String)>>;

static TABLE: LazyLock<Mutex<(Table, usize)>> = LazyLock::new(|| Mutex::new((HashMap::new(), 0)));

/// Records that `session` subscribed to `server`'s `uri`, named `client_uri` by the client.
pub fn subscribe(session: [u8; 8], server: &str, uri: &str, client_uri: &str) {
    let mut guard = TABLE.lock().unwrap_or_else(PoisonError::into_inner);
    let (table, count) = &mut *guard;
    if *count >= MAX_SUBSCRIPTIONS {
        tracing::warn!(
            server,
            uri,
            "too many resource subscriptions; this one's updates are not relayed"
        );
        return;
    }
    let subscribers = table
        .entry((server.to_owned(), uri.to_owned()))
        .or_default();
    if !subscribers.iter().any(|(s, _)| *s == session) {
        subscribers.push((session, client_uri.to_owned()));
        *count += 1;
    }
}

/// Forgets `session`'s subscription to `server`'s `uri`.
pub fn unsubscribe(session: [u8; 8], server: &str, uri: &str) {
    let mut guard = TABLE.lock().unwrap_or_else(PoisonError::into_inner);
    let (table, count) = &mut *guard;
    let key = (server.to_owned(), uri.to_owned());
    if let Some(subscribers) = table.get_mut(&key) {
        let before = subscribers.len();
        subscribers.retain(|(s, _)| *s != session);
        *count -= before - subscribers.len();
        if subscribers.is_empty() {
            table.remove(&key);
        }
    }
}

/// The sessions subscribed to `server`'s `uri`, with the URI each subscribed with.
pub fn subscribers(server: &str, uri: &str) -> Vec<([u8; 8], String)> {
    let guard = TABLE.lock().unwrap_or_else(PoisonError::into_inner);
    guard
        .0
        .get(&(server.to_owned(), uri.to_owned()))
        .cloned()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribers_are_kept_per_resource_and_session() {
        subscribe([1; 8], "s-test", "file:///a", "mcpgate://s-test/file:///a");
        subscribe([1; 8], "s-test", "file:///a", "mcpgate://s-test/file:///a");
        subscribe([2; 8], "s-test", "file:///a", "file:///a");
        assert_eq!(
            subscribers("s-test", "file:///a"),
            [
                ([1; 8], "mcpgate://s-test/file:///a".to_owned()),
                ([2; 8], "file:///a".to_owned())
            ]
        );
        assert!(subscribers("s-test", "file:///b").is_empty());
        unsubscribe([1; 8], "s-test", "file:///a");
        assert_eq!(subscribers("s-test", "file:///a").len(), 1);
        unsubscribe([2; 8], "s-test", "file:///a");
        assert!(subscribers("s-test", "file:///a").is_empty());
    }
}
