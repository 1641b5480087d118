//! Stdio upstreams: MCP servers that run as child processes speaking newline-delimited
//! JSON-RPC on stdin/stdout.
//!
//! Owns: supervising one child per upstream (spawn, MCP handshake, restart with backoff, graceful
//! shutdown) and the calls made to it; what each line of its stdout means is in [`dispatch`].
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

use super::backoff::Backoff;
use super::call::EventSink;
use super::handshake::{initialize_request, parse_initialize_reply, INITIALIZED_NOTIFICATION};
use super::pending::PendingCalls;
use super::pipes::{self, FrameSender, QueueError};
use super::process::{
    self, block_on_timeout, deadline_after, encode_message, join_bounded, lock, thread_name,
    ChildProcess,
};
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
            conn.tx.close();
            if conn.process.wait_exit(grace).is_none() {
                conn.process.signal_group(libc::SIGTERM);
                if conn.process.wait_exit(grace).is_none() {
                    conn.process.signal_group(libc::SIGKILL);
                }
            }
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

/// The supervisor thread: run a child, wait for it to end, back off, repeat until shutdown.
fn supervise(inner: Arc<Inner>) {
    let name = inner.spec.name.clone();
    let mut backoff = Backoff::default();
    loop {
        {
            let mut s = lock(&inner.shared);
            if s.shutdown {
                break;
            }
            s.state = StdioState::Starting;
            inner.changed.notify_all();
        }
        let (reason, ready_for, threads) = run_child(&inner);
        if lock(&inner.shared).shutdown {
            tracing::info!(server = %name, "stdio server shut down: {reason}");
            join_bounded(&name, threads, Duration::from_secs(2));
            break;
        }
        tracing::warn!(server = %name, "stdio server stopped: {reason}");
        let pause = backoff.pause_after(ready_for);
        let retry_at = deadline_after(pause).unwrap_or_else(Instant::now);
        let mut s = lock(&inner.shared);
        s.last_error = Some(reason);
        s.first_attempt_done = true;
        s.state = StdioState::Backoff { retry_at };
        inner.changed.notify_all();
        drop(s);
        join_bounded(&name, threads, Duration::from_secs(2));
        let mut s = lock(&inner.shared);
        while !s.shutdown {
            let left = retry_at.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            s = inner
                .changed
                .wait_timeout(s, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        if s.shutdown {
            break;
        }
        s.restarts += 1;
    }
    let mut s = lock(&inner.shared);
    s.state = StdioState::Stopped;
    inner.changed.notify_all();
}

/// Spawns one child, handshakes, serves it until it is reaped. Returns why it ended, how long it
/// was Ready, and its pipe threads (finishing; the caller joins them after publishing the new state).
fn run_child(inner: &Arc<Inner>) -> (String, Duration, Vec<JoinHandle<()>>) {
    let name = &inner.spec.name;
    let (conn, threads) = match start_child(inner) {
        Ok(started) => started,
        Err(reason) => return (reason, Duration::ZERO, Vec::new()),
    };
    let shutting_down = {
        let mut s = lock(&inner.shared);
        s.child = Some(conn.clone());
        inner.changed.notify_all();
        s.shutdown
    };
    let (mut ready_at, mut reason) = (None, None);
    if !shutting_down {
        match handshake(inner, &conn) {
            Ok(info) => {
                let (pid, version) = (conn.process.pid(), info.protocol_version.clone());
                let mut s = lock(&inner.shared);
                if !s.shutdown {
                    s.state = StdioState::Ready;
                    s.info = Some(info);
                    s.first_attempt_done = true;
                    *lock(&inner.current) = Some(conn.clone());
                    ready_at = Some(Instant::now());
                    inner.changed.notify_all();
                    drop(s);
                    // Logged once calls are accepted: the line is the event that says so.
                    tracing::info!(server = %name, pid, version = %version, "stdio server ready");
                }
            }
            Err(e) => {
                let mut s = lock(&inner.shared);
                s.last_error = Some(format!("handshake failed: {e}"));
                s.first_attempt_done = true;
                inner.changed.notify_all();
                reason = s.last_error.clone();
            }
        }
    }
    if ready_at.is_none() {
        conn.process.signal_group(libc::SIGKILL);
    }
    let exit = conn.process.wait_exit(Duration::MAX).unwrap_or_default();
    {
        let mut cur = lock(&inner.current);
        if cur.as_ref().is_some_and(|c| Arc::ptr_eq(c, &conn)) {
            *cur = None;
        }
    }
    lock(&inner.shared).child = None;
    let reason = reason.unwrap_or_else(|| format!("process exited ({exit})"));
    (
        reason,
        ready_at.map_or(Duration::ZERO, |t| t.elapsed()),
        threads,
    )
}

/// Spawns the child, its threads (a waiter that reaps it and fails pending calls at exit, and
/// the stderr logger) and, on the owner core, the tasks that drive its stdin and stdout. On
/// failure nothing is left running.
fn start_child(inner: &Inner) -> Result<(Arc<Conn>, Vec<JoinHandle<()>>), String> {
    let name = &inner.spec.name;
    let spawned = process::spawn(&inner.spec)
        .map_err(|e| format!("could not start '{}': {e}", inner.spec.command))?;
    let proc = spawned.process;
    let (tx, frames) = pipes::frame_queue(inner.spec.max_in_flight.saturating_add(QUEUE_SLACK));
    let conn = Arc::new(Conn {
        tx,
        pending: PendingCalls::default(),
        process: proc.clone(),
    });
    let named = |role: &str| thread::Builder::new().name(thread_name(role, name));
    let (c, n) = (conn.clone(), name.clone());
    let waiter = named("wait").spawn(move || {
        let reason = |exit: &str| format!("process exited ({exit}) during the call");
        process::reap(&c.process, |exit| c.pending.close(&n, &reason(exit)));
        c.tx.close();
    });
    let waiter = match waiter {
        Ok(h) => h,
        Err(e) => {
            proc.signal_group(libc::SIGKILL);
            process::reap(&proc, |_| {});
            return Err(format!("could not start a thread: {e}"));
        }
    };
    let mut threads = vec![waiter];
    let (n, stderr) = (name.clone(), spawned.stderr);
    let logger = named("err").spawn(move || process::stderr_loop(&n, stderr));
    let (c, n, max, driver) = (
        conn.clone(),
        name.clone(),
        inner.spec.max_line_bytes,
        inner.owner.driver(),
    );
    let (stdin, stdout) = (spawned.stdin, spawned.stdout);
    let driven = inner
        .owner
        .spawn(move || drive_pipes(n, c, stdin, stdout, frames, max, driver))
        .map_err(|e| e.to_string());
    let failed = match (logger, driven) {
        (Ok(h), Ok(())) => {
            threads.push(h);
            None
        }
        (Err(e), _) => Some(format!("could not start a thread: {e}")),
        (Ok(h), Err(e)) => {
            threads.push(h);
            Some(e)
        }
    };
    if let Some(reason) = failed {
        proc.signal_group(libc::SIGKILL);
        proc.wait_exit(Duration::MAX);
        join_bounded(name, threads, Duration::from_secs(2));
        return Err(reason);
    }
    Ok((conn, threads))
}

/// Runs on the owner core: the stdin writer as its own task, the stdout reader in this one.
/// A child that breaks either pipe but keeps running is useless and gets killed.
async fn drive_pipes(
    name: String,
    conn: Arc<Conn>,
    stdin: std::os::unix::net::UnixStream,
    stdout: std::os::unix::net::UnixStream,
    frames: pipes::FrameReceiver,
    max: usize,
    driver: crate::runtime::IoDriver,
) {
    let streams =
        pipes::attach(stdin, driver).and_then(|i| Ok((i, pipes::attach(stdout, driver)?)));
    let (stdin, stdout) = match streams {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(server = %name, "cannot drive the server's pipes: {e}");
            conn.process.signal_group(libc::SIGKILL);
            return;
        }
    };
    let (n, c) = (name.clone(), conn.clone());
    monoio::spawn(async move {
        if let Some(e) = pipes::write_frames(stdin, frames).await {
            tracing::warn!(server = %n, "writing to the server's stdin failed: {e}");
            kill_if_still_running(&n, &c.process, "its stdin is broken").await;
        }
    });
    let end = pipes::read_lines(stdout, max, |line| on_stdout_line(&name, &conn, max, line)).await;
    // The waiter fails pending calls when the process exits.
    kill_if_still_running(&name, &conn.process, &format!("it {end}")).await;
}

async fn kill_if_still_running(name: &str, process: &ChildProcess, why: &str) {
    monoio::time::sleep(BROKEN_PIPE_GRACE).await;
    if process.exit().is_none() && process.signal_group(libc::SIGKILL) {
        tracing::warn!(server = %name, "killed the server: {why} but it kept running");
    }
}

/// `initialize` → reply → `notifications/initialized`, through the child's normal pipes.
fn handshake(inner: &Inner, conn: &Conn) -> Result<InitializeInfo, String> {
    let name = &inner.spec.name;
    let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
    let rx = conn
        .pending
        .register(name, id, usize::MAX, None)
        .map_err(|e| e.to_string())?;
    let mut frame = initialize_request(id);
    frame.push(b'\n');
    conn.send(name, frame).map_err(|e| e.to_string())?;
    let reply = match block_on_timeout(rx, inner.handshake_timeout) {
        None => {
            conn.pending.take(id);
            return Err(format!(
                "no answer to initialize within {} ms",
                inner.handshake_timeout.as_millis()
            ));
        }
        Some(Err(_)) => return Err("the reply channel closed".to_owned()),
        Some(Ok(Err(e))) => {
            return Err(match conn.process.wait_exit(Duration::from_secs(1)) {
                Some(exit) => format!("process exited ({exit}) before answering initialize"),
                None => e.to_string(),
            })
        }
        Some(Ok(Ok(line))) => line,
    };
    let info = parse_initialize_reply(&reply)?;
    let mut note = INITIALIZED_NOTIFICATION.to_vec();
    note.push(b'\n');
    conn.send(name, note).map_err(|e| e.to_string())?;
    Ok(info)
}

mod dispatch;

use dispatch::on_stdout_line;
pub use dispatch::StdioAnswerPath;

#[cfg(test)]
mod tests;
