//! Legacy SSE upstreams: MCP servers on the 2024-11-05 HTTP+SSE transport. The gateway holds
//! one GET stream open (`Accept: text/event-stream`); its first event, `endpoint`, names the
//! URL every message to the server is POSTed to, and every message from the server (replies,
//! notifications, requests) arrives as a `message` event on the stream.
//!
//! Owns: the stream (read by a task on one core's runtime, the owner, like a stdio child's
//! pipes), the MCP handshake on it, reconnecting with backoff when it ends, and matching
//! replies to calls by gateway-assigned id. Calls may come from any core: each POSTs from the
//! core it runs on, over that core's keep-alive pool.
//! Must never: block a worker core (callers only take short locks; the control thread's
//! [`SseUpstream::wait_ready`] is the one blocking wait), buffer an event beyond the reply
//! limit, or POST anywhere but the stream's own server.

mod dispatch;
mod endpoint;
mod stream;

use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_channel::mpsc;
use futures_util::future::{select, Either};

use super::call::EventSink;
use super::pending::PendingCalls;
use super::pool::{self, Resend};
use super::process::{deadline_after, encode_message, lock};
use super::url::UpstreamUrl;
use super::{CallTiming, InitializeInfo, UpstreamError, UpstreamReply};
use crate::runtime::CoreHandle;

pub use endpoint::resolve_endpoint;

/// Most of a POST's reply body read (the server's answer is in the stream; this is "Accepted").
const POST_REPLY_MAX: usize = 64 * 1024;

/// How to reach one legacy SSE server (from the config, `${VAR}`s already expanded).
#[derive(Debug, Clone)]
pub struct SseSpec {
    /// Server name from the config, used in errors and logs.
    pub name: String,
    /// The stream's `http://` or `https://` URL.
    pub url: String,
    /// Sent with the GET and every POST (may hold credentials: never logged).
    pub headers: Vec<(String, String)>,
    /// An event larger than this is dropped (its call failed when its id can be read).
    pub max_event_bytes: usize,
    /// More pending calls than this fail with [`UpstreamError::Overloaded`].
    pub max_in_flight: usize,
    /// The client config for an `https://` URL (built at start).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// Where the stream is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SseState {
    /// Opening the stream or handshaking on it.
    Connecting,
    /// Handshake done; calls are accepted.
    Ready,
    /// The stream ended or could not be opened; the next attempt starts at `retry_at`.
    Backoff { retry_at: Instant },
    /// Shut down; no reconnect.
    Stopped,
}

/// A legacy SSE server. Cheap to clone; all clones share the one stream. The stream task
/// runs until [`SseUpstream::shutdown`] (dropping the handles does not stop it).
#[derive(Clone)]
pub struct SseUpstream {
    inner: Arc<Inner>,
}

struct Inner {
    spec: SseSpec,
    /// The stream's URL, resolved on the control thread at creation.
    url: UpstreamUrl,
    /// Keys every core's pool of connections for POSTs.
    pool_key: u64,
    next_id: AtomicU64,
    shared: Mutex<Shared>,
    /// Signalled on every state change.
    changed: Condvar,
    /// To the stream task: a message asks for a new stream now (`reconnect`); dropping it
    /// (`shutdown`) stops the task.
    control: Mutex<Option<mpsc::Sender<()>>>,
    /// The core the stream task runs on; held so that a dedicated runtime (which ends with its
    /// last handle) outlives the task.
    _owner: CoreHandle,
}

struct Shared {
    state: SseState,
    last_error: Option<String>,
    /// The stream accepting calls: `Some` only while Ready.
    session: Option<Arc<Session>>,
    info: Option<InitializeInfo>,
    /// The first handshake has completed or failed (for `wait_ready`).
    first_attempt_done: bool,
    reconnects: u64,
}

/// One open stream as calls see it: where to POST, and the calls awaiting replies on it.
struct Session {
    endpoint: UpstreamUrl,
    pending: PendingCalls,
}

/// The way back to the server for a request it sent on its stream: a POST to the endpoint of
/// the session it came in.
pub struct SseAnswerPath {
    inner: Arc<Inner>,
    session: Arc<Session>,
}

impl SseAnswerPath {
    /// POSTs one message (a JSON-RPC response) to the session's endpoint.
    pub async fn send(&self, frame: &[u8]) -> Result<(), UpstreamError> {
        self.inner.post(&self.session.endpoint, frame).await
    }
}

impl SseUpstream {
    /// Resolves the URL (blocking: call on the control thread) and starts the stream task on
    /// `owner`'s core; returns at once.
    /// Whether `other` is a handle to this same upstream.
    pub fn same_as(&self, other: &SseUpstream) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    pub fn start(spec: SseSpec, owner: &CoreHandle) -> Result<SseUpstream, String> {
        let url = UpstreamUrl::resolve(&spec.url, spec.tls.as_ref())?;
        // Room for one request: asking again while one waits asks nothing new.
        let (control_tx, control_rx) = mpsc::channel(0);
        let inner = Arc::new(Inner {
            spec,
            url,
            pool_key: pool::new_pool_key(),
            next_id: AtomicU64::new(1),
            shared: Mutex::new(Shared {
                state: SseState::Connecting,
                last_error: None,
                session: None,
                info: None,
                first_attempt_done: false,
                reconnects: 0,
            }),
            changed: Condvar::new(),
            control: Mutex::new(Some(control_tx)),
            _owner: owner.clone(),
        });
        let task = inner.clone();
        owner
            .spawn(move || stream::run(task, control_rx))
            .map_err(|e| e.to_string())?;
        Ok(SseUpstream { inner })
    }

    /// Blocks the calling (control) thread until the first handshake completed or failed, or
    /// `timeout` passed. A failed first attempt is reported even though reconnects go on.
    pub fn wait_ready(&self, timeout: Duration) -> Result<InitializeInfo, UpstreamError> {
        let inner = &*self.inner;
        let deadline = deadline_after(timeout);
        let mut s = lock(&inner.shared);
        loop {
            if let (SseState::Ready, Some(info)) = (s.state, &s.info) {
                return Ok(info.clone());
            }
            if s.first_attempt_done || s.state == SseState::Stopped {
                return Err(self.unavailable(&s));
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left.is_some_and(|l| l.is_zero()) {
                return Err(UpstreamError::Timeout {
                    server: inner.spec.name.clone(),
                    after_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                });
            }
            s = match left {
                None => inner
                    .changed
                    .wait(s)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(left) => {
                    inner
                        .changed
                        .wait_timeout(s, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
    }

    /// Sends a request and waits for its reply on the stream (no time limit: the caller bounds
    /// it, and dropping this future forgets the call, so a late reply is dropped quietly).
    /// Fails at once with Unavailable (not connected, naming the reason) or Overloaded.
    /// Messages the server sends about the call go to `events` when given.
    pub async fn call(
        &self,
        method: &str,
        params: Option<&[u8]>,
        events: Option<EventSink>,
        timing: &mut CallTiming,
    ) -> Result<UpstreamReply, UpstreamError> {
        let session = self.ready_session()?;
        let name = &self.inner.spec.name;
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let mut reply =
            session
                .pending
                .register(name, id, self.inner.spec.max_in_flight, events)?;
        let _forget = ForgetOnDrop {
            inner: &self.inner,
            session: &session,
            id,
        };
        timing.sent = Some(Instant::now());
        let message = encode_message(Some(id), method, params);
        let post = pin!(self.inner.post(&session.endpoint, &message));
        // The stream may end (failing the call) while the POST still waits for its answer,
        // which some servers never give for a session they lost: the call fails then.
        let stopped = || UpstreamError::Unavailable {
            server: name.clone(),
            reason: "the stream reader stopped before the reply".to_owned(),
        };
        let reply = match select(post, &mut reply).await {
            Either::Left((posted, _)) => {
                posted?;
                reply.await.unwrap_or_else(|_| Err(stopped()))
            }
            Either::Right((Ok(Err(e)), _)) => return Err(e),
            // A reply can beat the POST's own answer; that answer still comes, so the
            // connection is kept for the next call.
            Either::Right((Ok(Ok(r)), post)) => {
                let _ = post.await;
                Ok(r)
            }
            Either::Right((Err(_), _)) => Err(stopped()),
        };
        timing.received = Some(Instant::now());
        reply
    }

    /// Stops the stream task: the stream is closed, waiting calls fail, no reconnect. Returns
    /// at once; the task ends on its core.
    pub fn shutdown(&self) {
        lock(&self.inner.control).take();
    }

    /// Closes the stream and opens a new one at once, without backoff (the admin API's
    /// reconnect): calls waiting on the old stream fail. False after shutdown.
    pub fn reconnect(&self) -> bool {
        lock(&self.inner.control)
            .as_mut()
            .is_some_and(|control| match control.try_send(()) {
                Ok(()) => true,
                // A reconnect is asked for already and not yet begun: this one is that one.
                Err(e) => e.is_full(),
            })
    }

    /// How many times the stream was opened again after the first.
    pub fn reconnects(&self) -> u64 {
        lock(&self.inner.shared).reconnects
    }

    /// The state of the stream.
    pub fn state(&self) -> SseState {
        lock(&self.inner.shared).state
    }

    /// The latest successful handshake result (None before the first one).
    pub fn initialize_info(&self) -> Option<InitializeInfo> {
        lock(&self.inner.shared).info.clone()
    }

    fn ready_session(&self) -> Result<Arc<Session>, UpstreamError> {
        let s = lock(&self.inner.shared);
        s.session.clone().ok_or_else(|| self.unavailable(&s))
    }

    fn unavailable(&self, s: &Shared) -> UpstreamError {
        let last = s.last_error.as_deref().unwrap_or("unknown error");
        let reason = match s.state {
            SseState::Stopped => "shut down".to_owned(),
            SseState::Connecting if s.reconnects == 0 && s.last_error.is_none() => {
                "connecting".to_owned()
            }
            SseState::Connecting | SseState::Ready => format!("reconnecting after: {last}"),
            SseState::Backoff { retry_at } => {
                let ms = retry_at
                    .saturating_duration_since(Instant::now())
                    .as_millis();
                format!("reconnecting in {ms} ms after: {last}")
            }
        };
        UpstreamError::Unavailable {
            server: self.inner.spec.name.clone(),
            reason,
        }
    }
}

impl Inner {
    /// POSTs one message to the endpoint from the calling core; the answer comes on the stream.
    async fn post(&self, endpoint: &UpstreamUrl, body: &[u8]) -> Result<(), UpstreamError> {
        let name = &self.spec.name;
        let transport = |reason: String| UpstreamError::Transport {
            server: name.clone(),
            reason,
        };
        // Never resent: the message may be a tool call, whatever the endpoint answers.
        let (mut conn, head) = pool::post(
            self.pool_key,
            endpoint,
            &self.headers(),
            body,
            Resend::Never,
        )
        .await
        .map_err(|e| transport(e.to_string()))?;
        if !(200..300).contains(&head.status) {
            return Err(UpstreamError::Protocol {
                server: name.clone(),
                reason: pool::refusal(&mut conn, &head).await,
            });
        }
        let mut ignored = Vec::new();
        conn.read_body(&head, POST_REPLY_MAX, &mut ignored)
            .await
            .map_err(|e| transport(e.to_string()))?;
        if head.keep_alive {
            pool::put(self.pool_key, conn);
        }
        Ok(())
    }

    /// The configured headers, sent with the GET and every POST.
    fn headers(&self) -> Vec<(&str, &str)> {
        let h = &self.spec.headers;
        h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    /// Records a state change and wakes `wait_ready`.
    fn update(&self, change: impl FnOnce(&mut Shared)) {
        let mut s = lock(&self.shared);
        change(&mut s);
        self.changed.notify_all();
    }
}

/// Forgets a call when its caller stops waiting (timeout, client gone) or is done; when it was
/// still waiting, tells the server with `notifications/cancelled` (POSTed by a task on this
/// core) so it can stop the work.
struct ForgetOnDrop<'a> {
    inner: &'a Arc<Inner>,
    session: &'a Arc<Session>,
    id: u64,
}

impl Drop for ForgetOnDrop<'_> {
    fn drop(&mut self) {
        if self.session.pending.take(self.id).is_none() {
            return;
        }
        let mut params = Vec::with_capacity(96);
        params.extend_from_slice(br#"{"requestId":"#);
        params.extend_from_slice(itoa::Buffer::new().format(self.id).as_bytes());
        params.extend_from_slice(br#","reason":"the gateway's caller went away or timed out"}"#);
        let note = encode_message(None, "notifications/cancelled", Some(&params));
        let (inner, session) = (self.inner.clone(), self.session.clone());
        monoio::spawn(async move {
            if let Err(e) = inner.post(&session.endpoint, &note).await {
                tracing::debug!(server = %inner.spec.name, "could not send a cancellation: {e}");
            }
        });
    }
}

#[cfg(test)]
mod tests;
