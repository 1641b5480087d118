//! Stdio upstreams: MCP servers that run as child processes speaking newline-delimited
//! JSON-RPC on stdin/stdout.
//!
//! Owns: one child per upstream and the calls made to it; supervising the child (spawn, MCP
//! handshake, restart with backoff, graceful shutdown) is in `supervise`, what each line of
//! its stdout means in [`dispatch`].
//! Must never: block a worker core — [`StdioUpstream::call`], [`StdioUpstream::notify`] and
//! [`StdioUpstream::cancel`] only take short locks and queue a frame; spawning and reaping
//! happen on this module's own threads ([`super::process`]).
//!
//! The child's stdin and stdout are socketpairs driven by tasks on one core's runtime (the
//! owner, a worker core when serving): a call made on that core is written, answered and
//! woken without leaving it; calls from other threads queue their frame to it. Threads per
//! upstream: one supervisor; per child, a waiter that reaps it and fails its pending calls the
//! moment it exits, and a stderr reader that copies its lines into the log.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::call::EventSink;
use super::pending::PendingCalls;
use super::pipes::{FrameSender, QueueError};
use super::process::{deadline_after, encode_message, lock, thread_name, ChildProcess};
use super::{InitializeInfo, ReplyReceiver, UpstreamError};
use crate::runtime::CoreHandle;

/// How long a freshly started child has to answer `initialize`.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Frames the writer queue holds beyond `max_in_flight` (notifications, answers to the child).
const QUEUE_SLACK: usize = 1024;
/// How long a child whose stdin or stdout broke may live on before it is killed.
const BROKEN_PIPE_GRACE: Duration = Duration::from_secs(2);

/// How to run one stdio server (from the config, `${VAR}`s already expanded).
#[derive(Debug, Clone)]
pub struct StdioSpec {
    /// Server name from the config, used in errors and logs.
    pub name: String,
    /// Program to run (looked up in `PATH` when it has no `/`).
    pub command: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Added to the gateway's inherited environment.
    pub env: Vec<(String, String)>,
    /// Working directory; the gateway's own when `None`.
    pub cwd: Option<PathBuf>,
    /// A stdout line longer than this is discarded with a logged error (never buffered unboundedly).
    pub max_line_bytes: usize,
    /// More pending calls than this fail with [`UpstreamError::Overloaded`].
    pub max_in_flight: usize,
}

/// A supervised stdio server. Cheap to clone; all clones drive the same child.
/// Supervision runs until [`StdioUpstream::shutdown`] (dropping the handles does not stop it).
#[derive(Clone)]
pub struct StdioUpstream {
    inner: Arc<Inner>,
}

fn status_of(s: &Shared) -> StdioStatus {
    StdioStatus {
        state: s.state,
        last_error: s.last_error.clone(),
        restarts: s.restarts,
        pid: s.child.as_ref().map(|c| c.process.pid()),
    }
}

/// A call queued to the child: its gateway id (for [`StdioUpstream::cancel`]) and where the reply arrives.
#[derive(Debug)]
pub struct PendingCall {
    /// The JSON-RPC id the gateway assigned; the reply carries it.
    pub id: u64,
    /// Resolves with the whole reply line, or the failure.
    pub reply: ReplyReceiver,
}

/// Where the supervisor is in a child's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdioState {
    /// Spawning the child or waiting for its `initialize` answer.
    Starting,
    /// Handshake done; calls are accepted.
    Ready,
    /// The child died or failed to start; the next attempt starts at `retry_at`.
    Backoff { retry_at: Instant },
    /// Shut down; no restart.
    Stopped,
}

/// A snapshot for health checks and the admin API.
#[derive(Debug, Clone)]
pub struct StdioStatus {
    pub state: StdioState,
    /// Why the last child ended or failed to start.
    pub last_error: Option<String>,
    /// How many times a child was started after the first.
    pub restarts: u64,
    /// The live child's pid.
    pub pid: Option<u32>,
}

struct Inner {
    spec: StdioSpec,
    /// The core whose runtime drives every child's stdin and stdout.
    owner: CoreHandle,
    handshake_timeout: Duration,
    next_id: AtomicU64,
    /// The child accepting calls: `Some` only while Ready. Locked briefly by every call.
    current: Mutex<Option<Arc<Conn>>>,
    shared: Mutex<Shared>,
    /// Signalled on every state change and on shutdown.
    changed: Condvar,
    supervisor: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    state: StdioState,
    last_error: Option<String>,
    restarts: u64,
    info: Option<InitializeInfo>,
    /// The first handshake has completed or failed (for `wait_ready`).
    first_attempt_done: bool,
    shutdown: bool,
    /// The live child (also while handshaking), for `shutdown`.
    child: Option<Arc<Conn>>,
    /// [`StdioUpstream::restart`] asked for a new child: the next one starts without backoff.
    restart_requested: bool,
}

/// One running child as seen by calls: its stdin queue and its calls awaiting replies.
struct Conn {
    tx: FrameSender,
    pending: PendingCalls,
    process: Arc<ChildProcess>,
}

impl Conn {
    fn send(&self, server: &str, frame: Vec<u8>) -> Result<(), UpstreamError> {
        self.tx.send(frame).map_err(|e| match e {
            QueueError::Full => UpstreamError::Overloaded {
                server: server.to_owned(),
            },
            QueueError::Closed => UpstreamError::Unavailable {
                server: server.to_owned(),
                reason: "the server's stdin is closed".to_owned(),
            },
        })
    }
}

impl StdioUpstream {
    /// Starts supervision on background threads and returns at once. Every child's pipes are
    /// driven on `owner`'s core.
    /// Whether `other` is a handle to this same upstream.
    pub fn same_as(&self, other: &StdioUpstream) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    pub fn start(spec: StdioSpec, owner: CoreHandle) -> StdioUpstream {
        Self::start_with(spec, owner, HANDSHAKE_TIMEOUT)
    }

    fn start_with(
        spec: StdioSpec,
        owner: CoreHandle,
        handshake_timeout: Duration,
    ) -> StdioUpstream {
        let inner = Arc::new(Inner {
            spec,
            owner,
            handshake_timeout,
            next_id: AtomicU64::new(1),
            current: Mutex::new(None),
            shared: Mutex::new(Shared {
                state: StdioState::Starting,
                last_error: None,
                restarts: 0,
                info: None,
                first_attempt_done: false,
                shutdown: false,
                child: None,
                restart_requested: false,
            }),
            changed: Condvar::new(),
            supervisor: Mutex::new(None),
        });
        let sup = inner.clone();
        match thread::Builder::new()
            .name(thread_name("sup", &inner.spec.name))
            .spawn(move || supervise(sup))
        {
            Ok(h) => *lock(&inner.supervisor) = Some(h),
            Err(e) => {
                let mut s = lock(&inner.shared);
                s.state = StdioState::Stopped;
                s.last_error = Some(format!("could not start the supervisor thread: {e}"));
                s.first_attempt_done = true;
            }
        }
        StdioUpstream { inner }
    }

    /// Blocks the calling (control) thread until the first MCP handshake completed or failed, or
    /// `timeout` passed. A failed first attempt is reported even though restarts go on.
    pub fn wait_ready(&self, timeout: Duration) -> Result<InitializeInfo, UpstreamError> {
        let inner = &*self.inner;
        let deadline = deadline_after(timeout);
        let mut s = lock(&inner.shared);
        loop {
            if let (StdioState::Ready, Some(info)) = (s.state, &s.info) {
                return Ok(info.clone());
            }
            if s.shutdown || s.first_attempt_done {
                return Err(self.unavailable(&s));
            }
            s = match deadline {
                None => inner
                    .changed
                    .wait(s)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        let after_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
                        return Err(UpstreamError::Timeout {
                            server: inner.spec.name.clone(),
                            after_ms,
                        });
                    }
                    inner
                        .changed
                        .wait_timeout(s, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
    }

    /// Non-blocking, callable from any thread. Assigns a fresh gateway id, frames
    /// `{"jsonrpc":"2.0","id":<id>,"method":<method>,"params":<params>}` (no `params` when `None`)
    /// and queues it. `params` must be one valid JSON value (it is forwarded as is).
    /// Fails at once with Unavailable (not ready / restarting, naming the reason) or Overloaded.
    /// Messages the server sends about the call go to `events` when given.
    pub fn call(
        &self,
        method: &str,
        params: Option<&[u8]>,
        events: Option<EventSink>,
    ) -> Result<PendingCall, UpstreamError> {
        let conn = self.ready_conn()?;
        let name = &self.inner.spec.name;
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let reply = conn
            .pending
            .register(name, id, self.inner.spec.max_in_flight, events)?;
        if let Err(e) = conn.send(name, encode_message(Some(id), method, params)) {
            conn.pending.take(id);
            return Err(e);
        }
        Ok(PendingCall { id, reply })
    }

    /// Sends a notification (no id, no reply expected), e.g. `notifications/cancelled`.
    pub fn notify(&self, method: &str, params: Option<&[u8]>) -> Result<(), UpstreamError> {
        self.ready_conn()?
            .send(&self.inner.spec.name, encode_message(None, method, params))
    }

    /// Forgets a pending call (the caller timed out or went away) and, when it was still
    /// pending, tells the server with `notifications/cancelled` so it can stop the work; a late
    /// reply is dropped quietly.
    pub fn cancel(&self, id: u64, reason: &str) {
        let conn = lock(&self.inner.current).clone();
        let Some(conn) = conn else { return };
        if conn.pending.take(id).is_none() {
            return;
        }
        let mut params = Vec::with_capacity(48 + reason.len());
        params.extend_from_slice(br#"{"requestId":"#);
        params.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
        params.extend_from_slice(br#","reason":"#);
        crate::jsonrpc::write_json_str(&mut params, reason);
        params.push(b'}');
        let frame = encode_message(None, "notifications/cancelled", Some(&params));
        if let Err(e) = conn.send(&self.inner.spec.name, frame) {
            tracing::debug!(server = %self.inner.spec.name, "could not send a cancellation: {e}");
        }
    }

    /// Stops the child gracefully: closes its stdin, waits up to `grace`, SIGTERMs the process
    /// group, waits up to `grace` again, then SIGKILLs it; reaps it. Blocking (control thread
    /// only). No restart afterwards; later calls fail with Unavailable.
    pub fn shutdown(&self, grace: Duration) {
        let inner = &*self.inner;
        let child = {
            let mut s = lock(&inner.shared);
            s.shutdown = true;
            inner.changed.notify_all();
            s.child.clone()
        };
        lock(&inner.current).take();
        if let Some(conn) = child {
            stop_child(&conn, grace);
        }
        let sup = lock(&inner.supervisor).take();
        if let Some(h) = sup {
            if h.join().is_err() {
                tracing::error!(server = %inner.spec.name, "stdio supervisor thread panicked");
            }
        }
        let mut s = lock(&inner.shared);
        s.state = StdioState::Stopped;
        inner.changed.notify_all();
    }

    /// Replaces the child with a new one now (the admin API's reconnect): calls stop being
    /// accepted at once, calls in flight on the old child fail, the child is stopped like at
    /// shutdown (stdin closed, SIGTERM, SIGKILL, `grace` between each) and the supervisor
    /// starts the next one without backoff. A child in backoff is started at once. Blocking
    /// (not on a worker core). False after shutdown.
    pub fn restart(&self, grace: Duration) -> bool {
        let inner = &*self.inner;
        let child = {
            let mut s = lock(&inner.shared);
            if s.shutdown {
                return false;
            }
            s.restart_requested = true;
            inner.changed.notify_all();
            s.child.clone()
        };
        lock(&inner.current).take();
        if let Some(conn) = child {
            stop_child(&conn, grace);
        }
        true
    }

    /// A snapshot of the supervision state.
    pub fn status(&self) -> StdioStatus {
        status_of(&lock(&self.inner.shared))
    }

    /// Blocks until `pred` holds for the supervision status, or `timeout` passes; it wakes on
    /// every state change (not on a clock). Returns whether `pred` held.
    pub fn wait_status(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&StdioStatus) -> bool,
    ) -> bool {
        let inner = &*self.inner;
        let deadline = Instant::now() + timeout;
        let mut s = lock(&inner.shared);
        loop {
            if pred(&status_of(&s)) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            s = match inner.changed.wait_timeout(s, left) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }

    /// The latest successful handshake result (None before the first one).
    pub fn initialize_info(&self) -> Option<InitializeInfo> {
        lock(&self.inner.shared).info.clone()
    }

    fn ready_conn(&self) -> Result<Arc<Conn>, UpstreamError> {
        let conn = lock(&self.inner.current).clone();
        conn.ok_or_else(|| self.unavailable(&lock(&self.inner.shared)))
    }

    fn unavailable(&self, s: &Shared) -> UpstreamError {
        let last = s.last_error.as_deref().unwrap_or("unknown error");
        let reason = match s.state {
            _ if s.shutdown => "shut down".to_owned(),
            StdioState::Stopped => format!("stopped: {last}"),
            StdioState::Starting if s.restarts == 0 && s.last_error.is_none() => {
                "starting".to_owned()
            }
            StdioState::Starting | StdioState::Ready => format!("restarting after: {last}"),
            StdioState::Backoff { retry_at } => {
                let ms = retry_at
                    .saturating_duration_since(Instant::now())
                    .as_millis();
                format!("restarting in {ms} ms after: {last}")
            }
        };
        UpstreamError::Unavailable {
            server: self.inner.spec.name.clone(),
            reason,
        }
    }
}

impl std::fmt::Debug for StdioUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StdioUpstream")
            .field("name", &self.inner.spec.name)
            .finish_non_exhaustive()
    }
}

mod dispatch;
mod supervise;

use dispatch::on_stdout_line;
pub use dispatch::StdioAnswerPath;
use supervise::{stop_child, supervise};

#[cfg(test)]
mod tests;
