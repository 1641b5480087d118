//! One client's state in the conformance profile, and the path a request's messages take back
//! to that client.
//!
//! A [`Session`] holds what the client told us (its capabilities, its log level, its resource
//! subscriptions) and the requests we sent it that still wait for an answer. It is
//! single-threaded (`Rc`, `Cell`, `RefCell`): every session lives on the one runtime that
//! serves it, and no borrow is ever held across an `.await`.
//!
//! An [`Outbox`] is where one request's messages go (its notifications, the requests it makes
//! of the client, and finally its response): the request's own SSE stream over HTTP, stdout
//! over stdio. [`Session::ask_client`] sends a request through an outbox and waits for the
//! client's response, which the transport hands to [`Session::complete`].

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap};

use futures_channel::oneshot;
use serde_json::{json, Value};

use crate::mcp::LOG_LEVELS;

/// Requests to the client that may wait for an answer at once; beyond this the oldest
/// waiters are failed, so a client that never answers cannot grow the map without bound.
const MAX_PENDING: usize = 1024;

/// Where the messages of one request go.
pub trait Outbox {
    /// Sends one serialized JSON-RPC message to the client.
    fn send(&self, message: Vec<u8>);
    /// Ends the transport stream that carries this request while the request goes on; what is
    /// sent afterwards waits for the client to resume. Only streamable HTTP has such a stream.
    fn close_stream(&self) {}
}

/// The client's answer to a request we sent: its `result`, or its `error` object.
pub type ClientAnswer = Result<Value, Value>;

/// One connected client.
pub struct Session {
    /// `capabilities` from the client's `initialize`.
    client_capabilities: RefCell<Value>,
    /// Index into [`LOG_LEVELS`] of the least severe level the client wants.
    log_level: Cell<usize>,
    /// URIs from `resources/subscribe`.
    subscriptions: RefCell<BTreeSet<String>>,
    /// Our requests to the client still waiting for an answer, by id.
    pending: RefCell<HashMap<u64, oneshot::Sender<ClientAnswer>>>,
    /// The id of our next request to the client.
    next_request_id: Cell<u64>,
    /// The session ended: requests to the client fail at once.
    closed: Cell<bool>,
}

impl Default for Session {
    fn default() -> Self {
        Session::new()
    }
}

impl Session {
    pub fn new() -> Session {
        Session {
            client_capabilities: RefCell::new(json!({})),
            // Until the client picks a level it gets everything.
            log_level: Cell::new(0),
            subscriptions: RefCell::new(BTreeSet::new()),
            pending: RefCell::new(HashMap::new()),
            next_request_id: Cell::new(1),
            closed: Cell::new(false),
        }
    }

    /// Remembers the capabilities the client declared in `initialize`.
    pub fn set_client_capabilities(&self, capabilities: Value) {
        *self.client_capabilities.borrow_mut() = capabilities;
    }

    /// Whether the client declared capability `name` (e.g. `sampling`, `elicitation`).
    pub fn client_supports(&self, name: &str) -> bool {
        self.client_capabilities
            .borrow()
            .get(name)
            .is_some_and(Value::is_object)
    }

    /// Sets the log level by name; false when the name is not a level.
    pub fn set_log_level(&self, level: &str) -> bool {
        match LOG_LEVELS.iter().position(|l| *l == level) {
            Some(index) => {
                self.log_level.set(index);
                true
            }
            None => false,
        }
    }

    /// Whether a message at `level` passes the client's filter.
    pub fn wants_log(&self, level: &str) -> bool {
        LOG_LEVELS
            .iter()
            .position(|l| *l == level)
            .is_some_and(|index| index >= self.log_level.get())
    }

    pub fn subscribe(&self, uri: &str) {
        self.subscriptions.borrow_mut().insert(uri.to_owned());
    }

    pub fn unsubscribe(&self, uri: &str) {
        self.subscriptions.borrow_mut().remove(uri);
    }

    pub fn is_subscribed(&self, uri: &str) -> bool {
        self.subscriptions.borrow().contains(uri)
    }

    /// Sends a notification through `outbox`.
    pub fn notify(&self, outbox: &dyn Outbox, method: &str, params: Value) {
        let message = json!({ "jsonrpc": "2.0", "method": method, "params": params });
        outbox.send(message.to_string().into_bytes());
    }

    /// Sends `notifications/message` when `level` passes the client's filter.
    pub fn log(&self, outbox: &dyn Outbox, level: &str, data: &str) {
        if self.wants_log(level) {
            let params = json!({ "level": level, "logger": "conformance", "data": data });
            self.notify(outbox, "notifications/message", params);
        }
    }

    /// Sends a request to the client through `outbox` and waits for its answer. `Err` carries
    /// the client's error object, or a local one when the session ended first.
    pub async fn ask_client(
        &self,
        outbox: &dyn Outbox,
        method: &str,
        params: Value,
    ) -> ClientAnswer {
        if self.closed.get() {
            return Err(json!({ "code": -32603, "message": "the session has ended" }));
        }
        let id = self.next_request_id.get();
        self.next_request_id.set(id.wrapping_add(1));
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = self.pending.borrow_mut();
            if pending.len() >= MAX_PENDING {
                // Dropping a sender fails that waiter; the smallest id is the oldest request.
                if let Some(oldest) = pending.keys().min().copied() {
                    pending.remove(&oldest);
                }
            }
            pending.insert(id, tx);
        }
        let request = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        outbox.send(request.to_string().into_bytes());
        rx.await.unwrap_or_else(|_| {
            Err(json!({ "code": -32603, "message": "the session ended before the client answered" }))
        })
    }

    /// Hands the client's response `message` (an object with `id` and `result` or `error`) to
    /// the request waiting for it. Returns false when no request of ours has that id.
    pub fn complete(&self, message: &Value) -> bool {
        let Some(id) = message.get("id").and_then(Value::as_u64) else {
            return false;
        };
        let Some(waiter) = self.pending.borrow_mut().remove(&id) else {
            return false;
        };
        let answer = match (message.get("result"), message.get("error")) {
            (Some(result), _) => Ok(result.clone()),
            (None, Some(error)) => Err(error.clone()),
            (None, None) => {
                Err(json!({ "code": -32600, "message": "response without result or error" }))
            }
        };
        // The waiter may have gone away (its call was dropped); nothing to do then.
        let _ = waiter.send(answer);
        true
    }

    /// Ends the session: requests waiting for the client fail, and so will later ones.
    pub fn close(&self) {
        self.closed.set(true);
        self.pending.borrow_mut().clear();
    }
}
