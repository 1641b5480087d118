//! Per-core keep-alive connections to HTTP upstreams, and sending one POST over them.
//!
//! Owns: each core's idle connections, keyed by upstream, and when one may carry a request.
//! An idle connection is checked right before reuse, without reading or blocking
//! ([`ClientConn::reusable`]): one the server has closed (its FIN, or a TLS close_notify with
//! it), or that holds bytes nobody asked for, is dropped and the next one (or a new one) is
//! taken. Connections idle for longer than [`IDLE_TIMEOUT`] are retired, at reuse and by a
//! sweep while any are pooled, so the gateway lets a connection go before servers with the
//! common 5 s keep-alive do, narrowing the race in which a server closes a connection just as
//! a request leaves on it.
//!
//! The check cannot see a close that is on its way: a server that closes a connection right
//! after its reply, without saying so, may close it just as the next request leaves on it.
//! A request marked [`Resend::IfStale`] (one that does no harm twice: the handshake, listings,
//! pings, notifications) is then sent once more on a new connection, when nothing of a reply
//! came back on the pooled one.
//!
//! Must never: hand a connection to another core (each belongs to the runtime it was made
//! on), keep more than [`MAX_IDLE_PER_CORE`] idle per upstream, or resend a request the server
//! may have received unless it is marked harmless to repeat. Once the first byte of a request
//! is written, a failure is the call's failure ([`PostError::Unanswered`]): the server may have
//! received the request and run the tool, and running it twice could do harm. Only failures
//! before that (a refused connect, a pooled connection found closed by the check) lead to
//! another connection.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::url::UpstreamUrl;
use crate::http::client::{write_post, ClientConn, ClientError, ConnectError, ReplyHead};
use crate::runtime::coarse_clock;

/// Idle connections kept per core and upstream.
const MAX_IDLE_PER_CORE: usize = 256;

/// How long a connection may sit idle in the pool before it is closed instead of reused:
/// under the 5 s keep-alive of Node's HTTP server and uvicorn, which many MCP servers run on.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// Most of a refusing reply's body quoted in an error.
const REFUSAL_TEXT_MAX: usize = 4096;

static NEXT_POOL_KEY: AtomicU64 = AtomicU64::new(1);

/// A pooled connection and when it was put back.
struct Idle {
    conn: ClientConn,
    /// [`coarse_clock::monotonic_ms`]: idle ages are judged in seconds.
    since_ms: u64,
}

/// [`IDLE_TIMEOUT`] in the unit of [`Idle::since_ms`].
const IDLE_TIMEOUT_MS: u64 = IDLE_TIMEOUT.as_millis() as u64;

thread_local! {
    /// Idle connections of this core, by pool key, oldest first.
    static POOLS: RefCell<HashMap<u64, Vec<Idle>, ahash::RandomState>> =
        RefCell::new(HashMap::default());
    /// Whether this core runs a task retiring idle connections.
    static SWEEPING: Cell<bool> = const { Cell::new(false) };
}

/// A key unique in this process, naming one upstream's connections in every core's pool.
pub fn new_pool_key() -> u64 {
    NEXT_POOL_KEY.fetch_add(1, Ordering::Relaxed)
}

/// Keeps `conn` for the next request to the same upstream on this core.
pub fn put(key: u64, conn: ClientConn) {
    let pooled = POOLS.with(|p| {
        let mut pools = p.borrow_mut();
        let idle = pools.entry(key).or_default();
        if idle.len() >= MAX_IDLE_PER_CORE {
            return false;
        }
        idle.push(Idle {
            conn,
            since_ms: coarse_clock::monotonic_ms(),
        });
        true
    });
    if pooled && !SWEEPING.with(Cell::get) {
        SWEEPING.with(|s| s.set(true));
        monoio::spawn(sweep());
    }
}

/// The most recently pooled connection to `key` that can carry a request, if any. Those found
/// closed or too old on the way are closed.
fn take(key: u64) -> Option<ClientConn> {
    POOLS.with(|p| {
        let mut pools = p.borrow_mut();
        let idle = pools.get_mut(&key)?;
        let now = coarse_clock::monotonic_ms();
        while let Some(Idle { conn, since_ms }) = idle.pop() {
            if now.saturating_sub(since_ms) >= IDLE_TIMEOUT_MS {
                // Every connection below it went idle earlier still.
                idle.clear();
                return None;
            }
            if conn.reusable() {
                return Some(conn);
            }
        }
        None
    })
}

/// Closes this core's connections idle past [`IDLE_TIMEOUT`] every so often, until none is
/// pooled (a later [`put`] starts it again): a server that is not called again does not keep
/// a descriptor here for ever.
async fn sweep() {
    /// Clears the flag however the task ends, also when its runtime is dropped.
    struct Running;
    impl Drop for Running {
        fn drop(&mut self) {
            SWEEPING.with(|s| s.set(false));
        }
    }
    let _running = Running;
    loop {
        monoio::time::sleep(IDLE_TIMEOUT / 2).await;
        let empty = POOLS.with(|p| {
            let mut pools = p.borrow_mut();
            let now = coarse_clock::monotonic_ms();
            pools.retain(|_, idle| {
                idle.retain(|i| now.saturating_sub(i.since_ms) < IDLE_TIMEOUT_MS);
                !idle.is_empty()
            });
            pools.is_empty()
        });
        if empty {
            return;
        }
    }
}

/// Closes this thread's idle upstream connections. A runtime that ends (the start-up one on
/// the control thread) calls it first: its connections are registered with its driver and
/// would be useless, or worse, to a later runtime on the same thread.
pub fn drop_idle_connections() {
    POOLS.with(|p| p.borrow_mut().clear());
}

/// Why a POST got no reply head.
#[derive(Debug)]
pub enum PostError {
    /// No connection: nothing was sent.
    Connect {
        addr: SocketAddr,
        error: ConnectError,
    },
    /// Writing the request failed part way (`sending`), or the reply did not come: the server
    /// may have received the request, so it is not sent again.
    Unanswered { sending: bool, error: ClientError },
    /// The server answered something that is not an HTTP reply head.
    BadReply(ClientError),
}

impl fmt::Display for PostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PostError::Connect { addr, error } => write!(f, "connect to {addr}: {error}"),
            PostError::Unanswered { sending, error } => {
                let (when, detail) = match (sending, error) {
                    (true, e) => ("while the request was being sent", e.to_string()),
                    (false, ClientError::Closed) => {
                        ("after the request was sent", "no reply".to_owned())
                    }
                    (false, e) => ("after the request was sent", e.to_string()),
                };
                write!(
                    f,
                    "the connection closed {when} ({detail}); the server may have received \
                     the request, so it was not sent again"
                )
            }
            PostError::BadReply(e) => write!(f, "{e}"),
        }
    }
}

/// Whether a request may be sent again on a new connection when the pooled one it left on
/// turns out closed by the server, nothing of a reply having come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resend {
    /// Never: the server may have received it, and it may not be harmless twice (a tool call).
    Never,
    /// Once, on a new connection: repeating it does no harm.
    IfStale,
}

/// Opens a new connection to `url`'s server, TLS for `https://` (not pooled until [`put`]).
pub async fn connect(url: &UpstreamUrl) -> Result<ClientConn, PostError> {
    // Boxed: connecting (a TLS handshake included) takes a few KiB of future state, which
    // would otherwise sit in every call's future although pooled calls never connect.
    Box::pin(ClientConn::connect(url.addr, url.tls.as_ref()))
        .await
        .map_err(|error| PostError::Connect {
            addr: url.addr,
            error,
        })
}

/// POSTs `body` to `url` on a pooled connection of this core that passes the reuse check (or
/// a new one) and reads the reply head. The connection comes back with the body unread; the
/// caller reads it and [`put`]s the connection back when the reply allows keep-alive. The
/// request is written once, or with [`Resend::IfStale`] at most twice: see the module doc.
pub async fn post(
    key: u64,
    url: &UpstreamUrl,
    headers: &[(&str, &str)],
    body: &[u8],
    resend: Resend,
) -> Result<(ClientConn, ReplyHead), PostError> {
    if let Some(conn) = take(key) {
        match request(conn, url, headers, body).await {
            Err(Failed { error, stale: true }) if resend == Resend::IfStale => {
                tracing::debug!(
                    addr = %url.addr,
                    %error,
                    "a pooled connection was closed by the server as a request left on it; \
                     sending it again on a new connection"
                );
            }
            result => return result.map_err(|f| f.error),
        }
    }
    let conn = connect(url).await?;
    request(conn, url, headers, body).await.map_err(|f| f.error)
}

/// Why [`request`] failed, and whether the connection was gone before any of a reply came.
struct Failed {
    error: PostError,
    stale: bool,
}

/// Writes the request on `conn` and reads the reply head.
async fn request(
    mut conn: ClientConn,
    url: &UpstreamUrl,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(ClientConn, ReplyHead), Failed> {
    write_post(conn.request_buf(), &url.path, &url.host, headers, body);
    if let Err(e) = conn.send().await {
        return Err(Failed {
            error: PostError::Unanswered {
                sending: true,
                error: ClientError::Io(e),
            },
            stale: true,
        });
    }
    match conn.read_head().await {
        Ok(head) => Ok((conn, head)),
        Err(error @ (ClientError::Closed | ClientError::Io(_))) => Err(Failed {
            stale: conn.nothing_read(),
            error: PostError::Unanswered {
                sending: false,
                error,
            },
        }),
        Err(e) => Err(Failed {
            error: PostError::BadReply(e),
            stale: false,
        }),
    }
}

/// "HTTP 404: <start of the body>", for a reply that refused the request; reads at most
/// [`REFUSAL_TEXT_MAX`] bytes of its body. The connection is not fit for reuse afterwards.
pub async fn refusal(conn: &mut ClientConn, head: &ReplyHead) -> String {
    let mut text = Vec::new();
    let _ = conn.read_body(head, REFUSAL_TEXT_MAX, &mut text).await;
    let text = String::from_utf8_lossy(&text);
    let text = text.trim();
    let sep = if text.is_empty() { "" } else { ": " };
    format!("HTTP {}{sep}{text}", head.status)
}

#[cfg(test)]
mod tests;
