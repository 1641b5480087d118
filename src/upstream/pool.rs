//! Per-core keep-alive connections to HTTP upstreams, and sending one POST over them.
//!
//! Owns: each core's idle connections, keyed by upstream, and the retry of a POST whose pooled
//! connection the server had closed while it sat idle. Must never: hand a connection to
//! another core (each belongs to the runtime it was made on), keep more than
//! [`MAX_IDLE_PER_CORE`] idle per upstream, or resend a request the server may have received.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use super::url::UpstreamUrl;
use crate::http::client::{write_post, ClientConn, ClientError, ConnectError, ReplyHead};

/// Idle connections kept per core and upstream.
const MAX_IDLE_PER_CORE: usize = 256;

/// Most of a refusing reply's body quoted in an error.
const REFUSAL_TEXT_MAX: usize = 4096;

static NEXT_POOL_KEY: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// Idle connections of this core, by pool key.
    static POOLS: RefCell<HashMap<u64, Vec<ClientConn>, ahash::RandomState>> =
        RefCell::new(HashMap::default());
}

/// A key unique in this process, naming one upstream's connections in every core's pool.
pub fn new_pool_key() -> u64 {
    NEXT_POOL_KEY.fetch_add(1, Ordering::Relaxed)
}

/// Keeps `conn` for the next request to the same upstream on this core.
pub fn put(key: u64, conn: ClientConn) {
    POOLS.with(|p| {
        let mut pools = p.borrow_mut();
        let idle = pools.entry(key).or_default();
        if idle.len() < MAX_IDLE_PER_CORE {
            idle.push(conn);
        }
    });
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
    Connect {
        addr: SocketAddr,
        error: ConnectError,
    },
    Exchange(ClientError),
}

impl fmt::Display for PostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PostError::Connect { addr, error } => write!(f, "connect to {addr}: {error}"),
            PostError::Exchange(e) => write!(f, "{e}"),
        }
    }
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

/// POSTs `body` to `url` on a pooled connection of this core (or a new one) and reads the
/// reply head. The connection comes back with the body unread; the caller reads it and
/// [`put`]s the connection back when the reply allows keep-alive. A pooled connection that
/// turns out closed before the request reached the server is replaced once.
pub async fn post(
    key: u64,
    url: &UpstreamUrl,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(ClientConn, ReplyHead), PostError> {
    let pooled = POOLS.with(|p| p.borrow_mut().get_mut(&key).and_then(Vec::pop));
    let reused = pooled.is_some();
    let mut conn = match pooled {
        Some(c) => c,
        None => connect(url).await?,
    };
    match send_and_read_head(&mut conn, url, headers, body).await {
        Ok(head) => Ok((conn, head)),
        // A pooled connection the server closed while idle: the request never reached it.
        Err(ClientError::Closed) | Err(ClientError::Io(_)) if reused => {
            let mut fresh = connect(url).await?;
            let head = send_and_read_head(&mut fresh, url, headers, body)
                .await
                .map_err(PostError::Exchange)?;
            Ok((fresh, head))
        }
        Err(e) => Err(PostError::Exchange(e)),
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

async fn send_and_read_head(
    conn: &mut ClientConn,
    url: &UpstreamUrl,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<ReplyHead, ClientError> {
    write_post(conn.request_buf(), &url.path, &url.host, headers, body);
    conn.send().await?;
    conn.read_head().await
}
