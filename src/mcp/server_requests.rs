//! Requests that upstream servers sent to clients during calls (`sampling/createMessage`,
//! `elicitation/create`, `roots/list`), waiting for the client's answer.
//!
//! The client answers on a later POST, which can land on any core, so the table is shared by
//! the process; it is touched only when a server asks something, never on the plain call path.
//! Owns: the gateway's ids for those requests and the way back to each server. Must never:
//! accept an answer from a session other than the one asked, or grow without bound.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, PoisonError};

use crate::upstream::Responder;

/// Requests waiting for clients' answers, process-wide.
const MAX_WAITING: usize = 4096;

/// Which client capability a server request needs, or `None` when it is not one the gateway
/// relays.
pub fn required_capability(method: &str) -> Option<ClientCapability> {
    match method {
        "sampling/createMessage" => Some(ClientCapability::Sampling),
        "elicitation/create" => Some(ClientCapability::Elicitation),
        "roots/list" => Some(ClientCapability::Roots),
        _ => None,
    }
}

/// The client capabilities a session declared at `initialize`, as bits in its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCapability {
    Sampling = 1,
    Elicitation = 2,
    Roots = 4,
}

impl ClientCapability {
    pub fn name(self) -> &'static str {
        match self {
            ClientCapability::Sampling => "sampling",
            ClientCapability::Elicitation => "elicitation",
            ClientCapability::Roots => "roots",
        }
    }
}

struct Waiting {
    /// The session asked: only it may answer.
    session: [u8; 8],
    responder: Responder,
}

/// The process's table of server requests sent to clients.
pub struct ServerRequests {
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, Waiting>>,
}

static TABLE: LazyLock<ServerRequests> = LazyLock::new(|| ServerRequests {
    next: AtomicU64::new(1),
    waiting: Mutex::new(HashMap::new()),
});

/// The process's table.
pub fn server_requests() -> &'static ServerRequests {
    &TABLE
}

impl ServerRequests {
    /// Files a request for the client of `session`; returns the id the client sees, or gives
    /// the responder back when the table is full.
    pub fn file(&self, session: [u8; 8], responder: Responder) -> Result<u64, Responder> {
        let mut w = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        if w.len() >= MAX_WAITING {
            return Err(responder);
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        w.insert(id, Waiting { session, responder });
        Ok(id)
    }

    /// Takes the request `id` if `session` was the one asked.
    pub fn take(&self, id: u64, session: [u8; 8]) -> Option<Responder> {
        let mut w = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        match w.get(&id) {
            Some(entry) if entry.session == session => w.remove(&id).map(|e| e.responder),
            _ => None,
        }
    }

    /// Forgets requests whose call ended unanswered (the server has stopped waiting).
    pub fn forget(&self, ids: &[u64]) {
        if ids.is_empty() {
            return;
        }
        let mut w = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        for id in ids {
            w.remove(id);
        }
    }
}
