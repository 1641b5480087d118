//! Keeping the registry current after start: servers that missed start-up join later (a task
//! per such server waits for it to come up — a stdio child or SSE stream finishing its
//! handshake, an HTTP server answering `initialize` — and lists what it publishes), and a
//! server that reports `…/list_changed` is listed again. Each change publishes a new snapshot
//! and tells `on_change` which lists changed, so clients can be told. A reloaded governance
//! (keys, groups, limits) is applied here too, as a new snapshot of the same listings, and so
//! are the admin API's requests: a tool switched off or on, a server reconnected.
//!
//! Runs on its own thread with its own runtime; never on a worker core.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use futures_channel::{mpsc, oneshot};
use futures_util::{stream, StreamExt};

use super::builder::RegistryBuilder;
use super::health_watch;
use super::published::PublishedRegistry;
use super::reconfigure::{self, Reconfiguration};
use super::reconnect;
use super::snapshot::ServerItems;
use super::snapshot::{ServerEntry, ServerListing};
use crate::runtime::{block_on, IoDriver};
use crate::upstream::health::HealthState;
use crate::upstream::listing::list_server;
use crate::upstream::server_notices::{self, ServerNotice, PROMPTS, RESOURCES, TOOLS};
use crate::upstream::sse_legacy::SseState;
use crate::upstream::stdio::StdioState;
use crate::upstream::Upstream;

/// How often a starting stdio child (or SSE stream) is looked at.
const READY_POLL: Duration = Duration::from_millis(200);
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// What the keeper thread learns: a server came up, a server said something, or the
/// governance was reloaded.
enum Update {
    Up(ServerListing),
    /// A server's health changed state.
    Health(String),
    Notice(ServerNotice),
    Reconfigure(Box<Reconfiguration>),
    /// Switch a tool (by exposed name) off or on; answered with what was switched, `None`
    /// when no tool has that name.
    SetTool {
        exposed: String,
        enabled: bool,
        reply: oneshot::Sender<Option<ToolSwitch>>,
    },
    /// Reconnect a server now; answered with its state once the reconnect began, `None` when
    /// no server has that name.
    Reconnect {
        server: String,
        reply: oneshot::Sender<Option<HealthState>>,
    },
}

/// A tool switched off or on through the keeper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolSwitch {
    /// Its exposed name.
    pub name: String,
    pub server: String,
    pub original: String,
    /// What it is now.
    pub enabled: bool,
    /// Whether the request changed anything (false: it already was so).
    pub changed: bool,
}

/// The way to the keeper thread from the control thread and the admin listener.
#[derive(Clone)]
pub struct Keeper {
    tx: mpsc::UnboundedSender<Update>,
}

impl Keeper {
    /// Applies a reloaded config (see [`super::reconfigure`]); false when the keeper is gone.
    pub fn reconfigure(&self, r: Reconfiguration) -> bool {
        self.tx
            .unbounded_send(Update::Reconfigure(Box::new(r)))
            .is_ok()
    }

    /// Switches the tool exposed as `exposed` off or on. The answer comes once the snapshot
    /// that says so is published (the next request on any core sees it) and clients were told
    /// the tool list changed; it is dropped unanswered when the keeper is gone.
    pub fn set_tool_enabled(
        &self,
        exposed: String,
        enabled: bool,
    ) -> oneshot::Receiver<Option<ToolSwitch>> {
        let (reply, answer) = oneshot::channel();
        let _ = self.tx.unbounded_send(Update::SetTool {
            exposed,
            enabled,
            reply,
        });
        answer
    }

    /// Reconnects `server` (see [`super::reconnect`]); the answer comes once it began.
    pub fn reconnect(&self, server: String) -> oneshot::Receiver<Option<HealthState>> {
        let (reply, answer) = oneshot::channel();
        let _ = self.tx.unbounded_send(Update::Reconnect { server, reply });
        answer
    }
}

/// Told the server's name and its own URI of a resource that changed.
pub type ResourceUpdatedListener = Box<dyn Fn(&str, &str) + Send>;

/// Who hears what the keeper learns.
pub struct KeeperListeners {
    /// Some lists (bits of `server_notices::{TOOLS, PROMPTS, RESOURCES}`) changed; the new
    /// snapshot is published already.
    pub lists_changed: Box<dyn Fn(u8) + Send>,
    /// A server's resource changed: the server's name and its own URI.
    pub resource_updated: ResourceUpdatedListener,
}

/// Starts the registry keeper thread.
pub fn spawn_recovery(
    mut builder: RegistryBuilder,
    published: Arc<PublishedRegistry>,
    listeners: KeeperListeners,
) -> std::io::Result<(Keeper, JoinHandle<()>)> {
    let down: Vec<Arc<ServerEntry>> = builder
        .listings()
        .iter()
        .filter(|l| l.server.error.is_some())
        .map(|l| l.server.clone())
        .collect();
    let everyone: Vec<Arc<ServerEntry>> = builder
        .listings()
        .iter()
        .map(|l| l.server.clone())
        .collect();
    let changes = server_notices::listen();
    // Unbounded, yet nothing a server sends grows it: its senders are the control thread (a
    // reload), the admin API (a request each), and the keeper's own tasks (one arrival per
    // server, a health change at most once per check). Servers' notices stay in their feed.
    let (tx, rx) = mpsc::unbounded::<Update>();
    let keeper = Keeper { tx: tx.clone() };
    let handle = std::thread::Builder::new().name("mcpgate-registry".into()).spawn(move || {
        let run = block_on(IoDriver::Epoll, || async move {
            let wait_for = |server: Arc<ServerEntry>, tx: mpsc::UnboundedSender<Update>| {
                monoio::spawn(async move {
                    let listing = wait_until_up(&server).await;
                    let _ = tx.unbounded_send(Update::Up(listing));
                });
            };
            let check = |server: Arc<ServerEntry>, tx: mpsc::UnboundedSender<Update>| {
                monoio::spawn(health_watch::watch(server, move |name: &str| {
                    let _ = tx.unbounded_send(Update::Health(name.to_owned()));
                }));
            };
            for server in down {
                wait_for(server, tx.clone());
            }
            for server in everyone {
                check(server, tx.clone());
            }
            // Servers' notices are taken only when the loop is ready for the next update, so
            // those that arrive while it lists a server wait, coalesced, in the feed.
            let notices = stream::iter(changes).flatten().map(Update::Notice);
            let mut updates = stream::select(rx, notices);
            while let Some(update) = updates.next().await {
                match update {
                    Update::Up(listing) => {
                        let name = listing.server.name.clone();
                        let tools = listing.items.tools.len();
                        if !builder.set_listing_of_same(listing) {
                            // Removed or replaced by a reload while it was starting.
                            continue;
                        }
                        published.publish(builder.build());
                        (listeners.lists_changed)(TOOLS | PROMPTS | RESOURCES);
                        tracing::info!(server = %name, tools, "upstream came up; its tools are now served");
                    }
                    Update::Health(name) => {
                        // Only servers whose tools hide while unhealthy change the lists.
                        if builder.hides_when_unhealthy(&name) {
                            published.publish(builder.build());
                            (listeners.lists_changed)(TOOLS | PROMPTS | RESOURCES);
                            tracing::info!(server = %name, "lists updated for a server that hides while unhealthy");
                        }
                    }
                    Update::Notice(ServerNotice::ListsChanged { server, .. }) => {
                        if let Some(lists) = relist(&mut builder, &server).await {
                            published.publish(builder.build());
                            (listeners.lists_changed)(lists);
                        }
                    }
                    Update::Notice(ServerNotice::ResourceUpdated { server, uri }) => {
                        (listeners.resource_updated)(&server, &uri)
                    }
                    Update::SetTool {
                        exposed,
                        enabled,
                        reply,
                    } => {
                        let switched = set_tool(&mut builder, &published, &exposed, enabled);
                        if switched.as_ref().is_some_and(|s| s.changed) {
                            (listeners.lists_changed)(TOOLS);
                        }
                        let _ = reply.send(switched);
                    }
                    Update::Reconnect { server, reply } => {
                        let entry = builder
                            .listings()
                            .iter()
                            .find(|l| l.server.name == server)
                            .map(|l| l.server.clone());
                        let Some(entry) = entry else {
                            let _ = reply.send(None);
                            continue;
                        };
                        entry.health.set(
                            &entry.name,
                            HealthState::Starting,
                            Some("reconnecting on request".to_owned()),
                        );
                        let _ = reply.send(Some(entry.health.state()));
                        let tx = tx.clone();
                        monoio::spawn(async move {
                            let outcome = reconnect::reconnect(&entry).await;
                            reconnect::settle(&entry, &outcome);
                            if outcome.is_ok() {
                                // What the new process or session publishes is listed again.
                                let _ = tx.unbounded_send(Update::Notice(
                                    ServerNotice::ListsChanged {
                                        server: entry.name.clone(),
                                        lists: TOOLS | PROMPTS | RESOURCES,
                                    },
                                ));
                            }
                        });
                    }
                    Update::Reconfigure(r) => {
                        let waiting = match reconfigure::apply(&mut builder, *r) {
                            Ok(waiting) => waiting,
                            Err(e) => {
                                tracing::error!(error = %e, "config reload refused: it cannot be applied; the previous config keeps serving");
                                continue;
                            }
                        };
                        for server in waiting {
                            check(server.clone(), tx.clone());
                            wait_for(server, tx.clone());
                        }
                        published.publish(builder.build());
                        // Servers, names and what each key may see can have changed everywhere.
                        (listeners.lists_changed)(TOOLS | PROMPTS | RESOURCES);
                        tracing::info!("config reload applied; new snapshot published");
                    }
                }
            }
        });
        if let Err(e) = run {
            tracing::error!(error = %e, "registry keeper runtime failed; servers that missed start-up stay out and list changes are not followed");
        }
    })?;
    Ok((keeper, handle))
}

/// Switches the tool exposed as `exposed` (in the current snapshot, served or switched off)
/// off or on, publishing a new snapshot when that changes anything.
fn set_tool(
    builder: &mut RegistryBuilder,
    published: &PublishedRegistry,
    exposed: &str,
    enabled: bool,
) -> Option<ToolSwitch> {
    let current = published.load();
    let item = current
        .tools
        .get(exposed)
        .or_else(|| current.tools.switched_off_item(exposed))?;
    let server = current.servers.get(item.server)?.name.clone();
    let original = item.original.clone();
    let changed = builder.set_tool_enabled(&server, &original, enabled);
    if changed {
        published.publish(builder.build());
        let now = if enabled { "enabled" } else { "disabled" };
        tracing::info!(tool = %exposed, server = %server, original = %original, "tool {now} through the admin API");
    }
    Some(ToolSwitch {
        name: exposed.to_owned(),
        server,
        original,
        enabled,
        changed,
    })
}

/// Lists a server that reported a change again; which lists really changed, if any.
async fn relist(builder: &mut RegistryBuilder, server: &str) -> Option<u8> {
    let index = builder
        .listings()
        .iter()
        .position(|l| l.server.name == server)?;
    let listing = &builder.listings()[index];
    if listing.server.error.is_some() {
        // Still down: its recovery task lists it when it comes up.
        return None;
    }
    let server = listing.server.clone();
    let items = match list_server(&server.upstream, &server.name, server.timeout).await {
        Ok(items) => items,
        Err(e) => {
            tracing::warn!(server = %server.name, error = %e, "listing after a list change failed; keeping the old lists");
            return None;
        }
    };
    let lists = changed_lists(&builder.listings()[index].items, &items);
    tracing::info!(server = %server.name, tools = items.tools.len(), prompts = items.prompts.len(), lists, "upstream lists changed; listed again");
    builder.set_listing(index, ServerListing { server, items });
    (lists != 0).then_some(lists)
}

/// The lists (bits) whose items differ.
fn changed_lists(old: &ServerItems, new: &ServerItems) -> u8 {
    let same = |a: &[Box<serde_json::value::RawValue>], b: &[Box<serde_json::value::RawValue>]| {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.get() == y.get())
    };
    let mut lists = 0;
    if !same(&old.tools, &new.tools) {
        lists |= TOOLS;
    }
    if !same(&old.prompts, &new.prompts) {
        lists |= PROMPTS;
    }
    if !same(&old.resources, &new.resources)
        || !same(&old.resource_templates, &new.resource_templates)
    {
        lists |= RESOURCES;
    }
    lists
}

/// Returns the server's listing once it answers, retrying with backoff.
async fn wait_until_up(server: &ServerEntry) -> ServerListing {
    let mut retry = RETRY_FIRST;
    loop {
        let up = match &server.upstream {
            Upstream::Stdio(s) => {
                // The supervisor restarts the child by itself; wait for a finished handshake.
                while s.status().state != StdioState::Ready {
                    monoio::time::sleep(READY_POLL).await;
                }
                Ok(())
            }
            Upstream::Http(h) => h.initialize().await.map(|_| ()),
            Upstream::Sse(s) => {
                // The stream task reconnects by itself; wait for a finished handshake.
                while s.state() != SseState::Ready {
                    monoio::time::sleep(READY_POLL).await;
                }
                Ok(())
            }
        };
        let listed = match up {
            Ok(()) => list_server(&server.upstream, &server.name, server.timeout).await,
            Err(e) => Err(e),
        };
        match listed {
            Ok(items) => {
                let entry = ServerEntry {
                    name: server.name.clone(),
                    upstream: server.upstream.clone(),
                    timeout: server.timeout,
                    filter: server.filter.clone(),
                    error: None,
                    health: server.health.clone(),
                    policy: server.policy,
                    gate: server.gate.clone(),
                };
                server.health.set(&server.name, HealthState::Healthy, None);
                return ServerListing {
                    server: Arc::new(entry),
                    items,
                };
            }
            Err(e) => {
                tracing::debug!(server = %server.name, error = %e, "still down");
                monoio::time::sleep(retry).await;
                retry = (retry * 2).min(RETRY_MAX);
            }
        }
    }
}
