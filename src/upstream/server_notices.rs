//! What servers announce outside any call, for whoever keeps the registry and the clients'
//! streams: their tools, prompts or resources changed
//! (`notifications/{tools,prompts,resources}/list_changed`: the server is listed again), or a
//! subscribed resource changed (`notifications/resources/updated`: its subscribers are told).
//!
//! Owns: the process's one feed of such notices. Must never: block the transport that reports
//! (a report is a non-blocking send), or keep notices when nobody listens.

use std::sync::OnceLock;

use crate::jsonrpc::RawJson;
use futures_channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};

/// Which lists a report concerns, as bits.
pub const TOOLS: u8 = 1;
pub const PROMPTS: u8 = 2;
pub const RESOURCES: u8 = 4;

/// A server's notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerNotice {
    /// Some of its lists changed: [`TOOLS`], [`PROMPTS`], [`RESOURCES`] bits.
    ListsChanged { server: String, lists: u8 },
    /// A resource it serves changed; `uri` is the server's own.
    ResourceUpdated { server: String, uri: String },
}

static FEED: OnceLock<UnboundedSender<ServerNotice>> = OnceLock::new();

/// Starts listening for notices; `None` when someone already listens (one keeper per process).
pub fn listen() -> Option<UnboundedReceiver<ServerNotice>> {
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

/// Passes on `server`'s notification `method` when it is a notice; whether it was one.
pub fn report(server: &str, method: &str, params: Option<RawJson<'_>>) -> bool {
    let notice = match (lists_of(method), method) {
        (Some(lists), _) => ServerNotice::ListsChanged {
            server: server.to_owned(),
            lists,
        },
        (None, "notifications/resources/updated") => {
            #[derive(serde::Deserialize)]
            struct Updated {
                uri: String,
            }
            let Some(updated) = params.and_then(|p| serde_json::from_str::<Updated>(p.get()).ok())
            else {
                tracing::debug!(server, "resources/updated without a uri; dropped");
                return true;
            };
            ServerNotice::ResourceUpdated {
                server: server.to_owned(),
                uri: updated.uri,
            }
        }
        _ => return false,
    };
    match FEED.get() {
        Some(feed) => {
            let _ = feed.unbounded_send(notice);
        }
        None => tracing::debug!(server, method, "a notice nobody keeps a registry for"),
    }
    true
}
