//! Servers that missed start-up join later: a control-thread task per such server waits for
//! it to come up (a stdio child or SSE stream finishing its handshake, an HTTP server
//! answering `initialize`), lists what it publishes, and publishes a new snapshot that
//! includes it.
//!
//! Runs on its own thread with its own runtime; never on a worker core.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use futures_channel::mpsc;
use futures_util::StreamExt;

use super::builder::RegistryBuilder;
use super::published::PublishedRegistry;
use super::snapshot::{ServerEntry, ServerListing};
use crate::runtime::{block_on, IoDriver};
use crate::upstream::listing::list_server;
use crate::upstream::sse_legacy::SseState;
use crate::upstream::stdio::StdioState;
use crate::upstream::Upstream;

/// How often a starting stdio child (or SSE stream) is looked at.
const READY_POLL: Duration = Duration::from_millis(200);
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Starts the recovery thread if any server is down; returns `None` when all are up.
pub fn spawn_recovery(
    mut builder: RegistryBuilder,
    published: Arc<PublishedRegistry>,
) -> std::io::Result<Option<JoinHandle<()>>> {
    let down: Vec<(usize, Arc<ServerEntry>)> = builder
        .listings()
        .iter()
        .enumerate()
        .filter(|(_, l)| l.server.error.is_some())
        .map(|(i, l)| (i, l.server.clone()))
        .collect();
    if down.is_empty() {
        return Ok(None);
    }
    let handle = std::thread::Builder::new().name("mcpgate-recovery".into()).spawn(move || {
        let run = block_on(IoDriver::Epoll, || async move {
            let (tx, mut rx) = mpsc::unbounded::<(usize, ServerListing)>();
            for (index, server) in down {
                let tx = tx.clone();
                monoio::spawn(async move {
                    let listing = wait_until_up(&server).await;
                    let _ = tx.unbounded_send((index, listing));
                });
            }
            drop(tx);
            while let Some((index, listing)) = rx.next().await {
                let name = listing.server.name.clone();
                let tools = listing.items.tools.len();
                builder.set_listing(index, listing);
                published.publish(builder.build());
                tracing::info!(server = %name, tools, "upstream came up; its tools are now served");
            }
        });
        if let Err(e) = run {
            tracing::error!(error = %e, "recovery runtime failed; servers that missed start-up stay out");
        }
    })?;
    Ok(Some(handle))
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
                };
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
