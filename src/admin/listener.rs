//! The admin listener: its own socket and its own thread with a small runtime, off the worker
//! cores, serving the admin API with the project's HTTP/1.1 codec and its limits.
//!
//! Owns: binding (before upstreams start, so a taken port fails fast) and the thread. Must
//! never: share a runtime or a listener with the worker cores.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use super::router::AdminApi;
use super::state::AdminState;
use crate::auth::keys::KeyHash;
use crate::http::HttpLimits;
use crate::runtime::{block_on, IoDriver};

const BACKLOG: i32 = 128;

/// What one admin request may make the listener hold. Bodies up to this are read whole and
/// then checked against [`super::router::MAX_BODY_BYTES`] (answered as JSON); larger ones are
/// refused by the codec before they are read.
const LIMITS: HttpLimits = HttpLimits {
    max_header_bytes: 16 * 1024,
    max_body_bytes: 1024 * 1024,
    header_read_timeout: Duration::from_secs(10),
    write_timeout: Duration::from_secs(10),
};

/// A bound admin socket, not yet served.
pub struct AdminSocket {
    listener: TcpListener,
    pub addr: SocketAddr,
}

/// Binds `addr` (a plain bind: nobody else may hold the port).
pub fn bind(addr: SocketAddr) -> io::Result<AdminSocket> {
    let bound = (|| {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(BACKLOG)?;
        Ok::<_, io::Error>(TcpListener::from(socket))
    })();
    let listener = bound.map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("admin.listen: cannot listen on {addr}: {e}"),
        )
    })?;
    let addr = listener.local_addr()?;
    Ok(AdminSocket { listener, addr })
}

/// Serves the admin API on `socket` from a thread of its own, until the process exits.
pub fn spawn(
    socket: AdminSocket,
    state: Arc<AdminState>,
    token: Option<KeyHash>,
    driver: IoDriver,
) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("mcpgate-admin".into())
        .spawn(move || {
            let api = Rc::new(AdminApi::new(state, token));
            let served = block_on(driver, move || {
                crate::http::serve_listener(socket.listener, api, LIMITS, None)
            });
            if let Err(e) = served {
                tracing::error!(error = %e, "the admin listener's runtime failed to start; the admin API is not served");
            }
        })
}
