//! A streamable-HTTP upstream: one MCP session shared by every core, keep-alive connections
//! pooled per core.
//!
//! The session is set up lazily (the first call, or the first after the server forgot it with
//! a 404, or a 400 about the session id) so a server that was down at start, or restarted, is
//! picked up when it returns. Replies may come as
//! JSON or as an SSE stream; either way the caller gets the JSON-RPC response message whole.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::call::{EventSink, NotRelayed, Responder, ResponderRoute, ServerMessage, CLIENT_BEHIND};
use super::handshake::{
    initialize_request, parse_initialize_reply, InitializeInfo, INITIALIZED_NOTIFICATION,
};
use super::pool::{self, Resend};
use super::server_notices;
use super::url::UpstreamUrl;
use super::{CallTiming, Payload, UpstreamError, UpstreamReply};
use crate::http::client::{BodyReader, ClientConn, ReplyHead, ReplyKind};
use crate::http::sse::SseParser;
use crate::jsonrpc::{write_json_str, Envelope};
use crate::runtime::CoreHandle;

/// How long a finished SSE reply may take to end its stream before its connection is dropped.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long sending a `notifications/cancelled` may take before it is given up.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(5);

/// The session the gateway holds with the upstream.
#[derive(Debug)]
struct Session {
    /// `None` for servers that do not issue session ids.
    id: Option<String>,
    info: InitializeInfo,
}

mod answers;
mod server_stream;

use answers::Answer;
pub use answers::MAX_ANSWERS_IN_FLIGHT;

pub struct HttpUpstream {
    /// Unique per process; keys the per-core pools.
    pool_key: u64,
    /// Where each session's own `GET` stream is followed, when set.
    stream_core: std::sync::OnceLock<CoreHandle>,
    name: String,
    url: UpstreamUrl,
    /// Configured headers (may hold credentials: never logged).
    headers: Vec<(String, String)>,
    session: RwLock<Option<Arc<Session>>>,
    next_id: AtomicU64,
    max_reply: usize,
    /// The gateway's answers to the server's requests being sent (see [`answers`]).
    answers_in_flight: AtomicUsize,
    /// Whether the log says already that the server's requests are refused at that bound.
    answers_over_bound: AtomicBool,
}

impl HttpUpstream {
    /// Resolves an `http://` URL (blocking: call on the control thread).
    pub fn new(
        name: &str,
        url: &str,
        headers: Vec<(String, String)>,
        max_reply: usize,
    ) -> Result<Self, String> {
        Self::with_tls(name, url, headers, max_reply, None)
    }

    /// Like [`HttpUpstream::new`]; `tls` is the client config an `https://` URL needs.
    pub fn with_tls(
        name: &str,
        url: &str,
        headers: Vec<(String, String)>,
        max_reply: usize,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<Self, String> {
        Ok(HttpUpstream {
            pool_key: pool::new_pool_key(),
            stream_core: std::sync::OnceLock::new(),
            name: name.to_owned(),
            url: UpstreamUrl::resolve(url, tls.as_ref())?,
            headers,
            session: RwLock::new(None),
            next_id: AtomicU64::new(1),
            max_reply,
            answers_in_flight: AtomicUsize::new(0),
            answers_over_bound: AtomicBool::new(false),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The latest handshake result, if a session is up.
    pub fn initialize_info(&self) -> Option<InitializeInfo> {
        self.current_session().map(|s| s.info.clone())
    }

    fn current_session(&self) -> Option<Arc<Session>> {
        match self.session.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set_session(&self, s: Option<Arc<Session>>) {
        match self.session.write() {
            Ok(mut g) => *g = s,
            Err(poisoned) => *poisoned.into_inner() = s,
        }
    }

    fn transport_error(&self, e: impl std::fmt::Display) -> UpstreamError {
        UpstreamError::Transport {
            server: self.name.clone(),
            reason: e.to_string(),
        }
    }

    fn protocol_error(&self, reason: impl Into<String>) -> UpstreamError {
        UpstreamError::Protocol {
            server: self.name.clone(),
            reason: reason.into(),
        }
    }

    /// Performs the MCP handshake and keeps the session for later calls.
    pub async fn initialize(self: &Arc<Self>) -> Result<InitializeInfo, UpstreamError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = initialize_request(id);
        let (head, reply) = self
            .exchange(
                &body,
                None,
                id,
                None,
                Resend::IfStale,
                &mut CallTiming::default(),
            )
            .await
            .map_err(|e| e.into_error(self))?;
        let info = parse_initialize_reply(
            &reply.ok_or_else(|| self.protocol_error("initialize got no reply"))?,
        )
        .map_err(|e| self.protocol_error(e))?;
        let session = Arc::new(Session {
            id: head.session_id,
            info: info.clone(),
        });
        self.send_in(&session, INITIALIZED_NOTIFICATION).await?;
        self.set_session(Some(session.clone()));
        if let Some(core) = self.stream_core.get() {
            let up = self.clone();
            if core
                .spawn(move || server_stream::follow(up, session))
                .is_err()
            {
                tracing::debug!(server = %self.name, "no core to follow the server's GET stream on");
            }
        }
        Ok(info)
    }

    /// Follows each session's own `GET` stream (list changes, resource updates outside calls)
    /// on `core`, from the next `initialize` on.
    pub fn follow_server_stream_on(&self, core: CoreHandle) {
        let _ = self.stream_core.set(core);
    }

    /// Sends a request and returns the upstream's response message. Messages the server
    /// sends about it on the reply stream go to `events`. Dropped before the reply, the call is
    /// cancelled upstream.
    pub async fn call(
        self: &Arc<Self>,
        method: &str,
        params: Option<&[u8]>,
        events: Option<&EventSink>,
        timing: &mut CallTiming,
    ) -> Result<UpstreamReply, UpstreamError> {
        let session = match self.current_session() {
            Some(s) => s,
            None => {
                // Boxed: rare, and large enough to bloat every call's future if kept inline.
                Box::pin(self.initialize()).await?;
                self.current_session()
                    .ok_or_else(|| self.protocol_error("session vanished"))?
            }
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut body = Vec::with_capacity(64 + method.len() + params.map_or(0, <[u8]>::len));
        body.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
        body.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
        body.extend_from_slice(br#","method":"#);
        write_json_str(&mut body, method);
        if let Some(p) = params {
            body.extend_from_slice(br#","params":"#);
            body.extend_from_slice(p);
        }
        body.push(b'}');
        let mut cancel = CancelHttp {
            upstream: self.clone(),
            id,
            armed: true,
        };
        let resend = harmless_twice(method);
        let result = self
            .exchange_in_session(&body, session, id, events, resend, timing)
            .await;
        cancel.armed = false;
        result
    }

    async fn exchange_in_session(
        self: &Arc<Self>,
        body: &[u8],
        mut session: Arc<Session>,
        id: u64,
        events: Option<&EventSink>,
        resend: Resend,
        timing: &mut CallTiming,
    ) -> Result<UpstreamReply, UpstreamError> {
        for attempt in 0..2 {
            match self
                .exchange(body, Some(&session), id, events, resend, timing)
                .await
            {
                Ok((_, Some(reply))) => return Ok(reply),
                Ok((_, None)) => {
                    return Err(self.protocol_error("the reply stream ended without a response"))
                }
                Err(SessionExpired) if attempt == 0 => {
                    tracing::info!(server = %self.name, "upstream session expired; initializing again");
                    self.set_session(None);
                    // Boxed: rare, and large enough to bloat every call's future if kept inline.
                    Box::pin(self.initialize()).await?;
                    session = self
                        .current_session()
                        .ok_or_else(|| self.protocol_error("session vanished"))?;
                }
                Err(e) => return Err(e.into_error(self)),
            }
        }
        Err(self.protocol_error("the upstream forgot the session twice in a row"))
    }

    /// Sends one notification or response (a message that gets no reply) in the session.
    pub async fn send_message(self: &Arc<Self>, body: &[u8]) -> Result<(), UpstreamError> {
        let session = match self.current_session() {
            Some(s) => s,
            None => return Err(self.protocol_error("no session with the server")),
        };
        self.send_in(&session, body).await
    }

    /// Sends one message that gets no reply in `session`. Sent again if its pooled connection
    /// turns out closed: a server ignores a second copy of a notification or of an answer to
    /// its own request (the id is already answered).
    async fn send_in(
        self: &Arc<Self>,
        session: &Session,
        body: &[u8],
    ) -> Result<(), UpstreamError> {
        let mut timing = CallTiming::default();
        self.exchange(body, Some(session), 0, None, Resend::IfStale, &mut timing)
            .await
            .map(|_| ())
            .map_err(|e| e.into_error(self))
    }

    /// A server request that arrived on a reply stream: `ping` is answered here, others go to
    /// the call's events (or are refused when the call takes none).
    async fn on_server_request(
        self: &Arc<Self>,
        method: &str,
        id: &str,
        message: &[u8],
        events: Option<&EventSink>,
    ) {
        let mut responder = Responder {
            upstream_id: id.into(),
            route: ResponderRoute::Http(self.clone()),
        };
        if method == "ping" {
            return self.answer_request(responder, method, Answer::Pong).await;
        }
        let mut refusal = Answer::Refusal(-32601, format!("Method not found: {method}"));
        if let Some(sink) = events {
            let relayed = sink.relay_request(
                &self.name,
                ServerMessage {
                    message: message.to_vec(),
                    responder: Some(responder),
                },
            );
            match relayed {
                // Relayed; or the caller has gone, cancelling the call: the request dies
                // with it.
                Ok(()) | Err(NotRelayed::Gone) => return,
                Err(NotRelayed::Behind(ServerMessage {
                    responder: Some(back),
                    ..
                })) => {
                    responder = back;
                    refusal = Answer::Refusal(-32603, CLIENT_BEHIND.to_owned());
                }
                Err(NotRelayed::Behind(_)) => return,
            }
        }
        self.answer_request(responder, method, refusal).await
    }

    /// One POST and its reply. For a request (`id != 0`) returns the response message that
    /// carries `id`; for a notification returns `None`.
    async fn exchange(
        self: &Arc<Self>,
        body: &[u8],
        session: Option<&Session>,
        id: u64,
        events: Option<&EventSink>,
        resend: Resend,
        timing: &mut CallTiming,
    ) -> Result<(ReplyHead, Option<UpstreamReply>), ExchangeError> {
        let mut headers: Vec<(&str, &str)> = Vec::with_capacity(self.headers.len() + 2);
        if let Some(s) = session {
            if let Some(id) = &s.id {
                headers.push(("Mcp-Session-Id", id));
            }
            headers.push(("MCP-Protocol-Version", &s.info.protocol_version));
        }
        headers.extend(self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        timing.sent = Some(Instant::now());
        let (mut conn, head) = pool::post(self.pool_key, &self.url, &headers, body, resend)
            .await
            .map_err(|e| self.transport_error(e))?;
        if head.status == 404 && session.is_some_and(|s| s.id.is_some()) {
            return Err(SessionExpired);
        }
        if !(200..300).contains(&head.status) {
            let status = pool::refusal(&mut conn, &head).await;
            if head.status == 400
                && session.is_some_and(|s| s.id.is_some())
                && refuses_session(&status)
            {
                return Err(SessionExpired);
            }
            return Err(self.protocol_error(status).into());
        }
        if id == 0 || head.status == 202 {
            let mut sink = Vec::new();
            conn.read_body(&head, self.max_reply, &mut sink)
                .await
                .map_err(|e| self.transport_error(e))?;
            self.release(conn, &head, true);
            return Ok((head, None));
        }
        match head.kind {
            ReplyKind::Json => {
                let mut reply = Vec::new();
                conn.read_body(&head, self.max_reply, &mut reply)
                    .await
                    .map_err(|e| self.transport_error(e))?;
                timing.received = Some(Instant::now());
                self.release(conn, &head, true);
                Ok((head, Some(UpstreamReply::unparsed(reply))))
            }
            ReplyKind::EventStream => {
                // Boxed: the stream reader is large and most replies are plain JSON.
                let reply = Box::pin(self.read_sse_reply(conn, &head, id, events)).await?;
                timing.received = Some(Instant::now());
                Ok((head, Some(reply)))
            }
            ReplyKind::Other => Err(self
                .protocol_error("reply is neither application/json nor text/event-stream")
                .into()),
        }
    }

    /// Reads SSE events until the response carrying `id`. Other messages on the stream are
    /// about this call (progress, logging, server requests): they go to `events`.
    async fn read_sse_reply(
        self: &Arc<Self>,
        mut conn: ClientConn,
        head: &ReplyHead,
        id: u64,
        events: Option<&EventSink>,
    ) -> Result<UpstreamReply, ExchangeError> {
        let mut reader = BodyReader::new(head.framing, usize::MAX);
        let mut parser = SseParser::new(self.max_reply);
        let mut chunk = Vec::with_capacity(16 * 1024);
        let mut id_buf = itoa::Buffer::new();
        let want = id_buf.format(id);
        loop {
            chunk.clear();
            let more = reader
                .read(&mut conn, &mut chunk, usize::MAX)
                .await
                .map_err(|e| self.transport_error(e))?;
            parser.push(&chunk);
            while let Some(event) = parser
                .next_event()
                .map_err(|_| self.protocol_error("SSE event larger than the reply limit"))?
            {
                if event.data.is_empty() {
                    continue;
                }
                let Ok(env) = Envelope::decode(&event.data) else {
                    tracing::debug!(server = %self.name, "skipping a non-JSON SSE event");
                    continue;
                };
                if env.method.is_none() && env.id.is_some_and(|i| i.get() == want) {
                    let payload = Payload::locate(&event.data, &env);
                    if reader.is_done() {
                        self.release(conn, head, true);
                    } else {
                        self.drain_later(conn, reader, head.keep_alive);
                    }
                    return Ok(UpstreamReply {
                        message: event.data,
                        payload,
                    });
                }
                match (env.method.as_deref(), env.id) {
                    (Some(method), Some(req_id)) => {
                        self.on_server_request(method, req_id.get(), &event.data, events)
                            .await
                    }
                    (Some(method), None)
                        if server_notices::report(&self.name, method, env.params) => {}
                    (Some(method), None) => {
                        let sent = events.is_some_and(|sink| {
                            sink.notify(&self.name, method, event.data.clone())
                        });
                        if !sent {
                            tracing::debug!(server = %self.name, "a notification for a call that takes none; skipped");
                        }
                    }
                    _ => {
                        tracing::debug!(server = %self.name, "skipping an SSE message that is not the reply")
                    }
                }
            }
            if !more {
                return Err(self
                    .protocol_error("the SSE stream ended without the response")
                    .into());
            }
        }
    }

    /// Lets the rest of a finished SSE reply arrive in the background, then pools the
    /// connection; a stream that does not end in time is closed.
    fn drain_later(&self, mut conn: ClientConn, mut reader: BodyReader, keep_alive: bool) {
        let key = self.pool_key;
        monoio::spawn(async move {
            let mut sink = Vec::new();
            let drained = monoio::time::timeout(DRAIN_TIMEOUT, async {
                loop {
                    sink.clear();
                    match reader.read(&mut conn, &mut sink, usize::MAX).await {
                        Ok(true) => {}
                        Ok(false) => return true,
                        Err(_) => return false,
                    }
                }
            })
            .await;
            if keep_alive && matches!(drained, Ok(true)) {
                pool::put(key, conn);
            }
        });
    }

    fn release(&self, conn: ClientConn, head: &ReplyHead, complete: bool) {
        if head.keep_alive && complete {
            pool::put(self.pool_key, conn);
        }
    }
}

/// Whether a request does no harm if the server gets it twice: the listings and pings the
/// gateway makes itself. Everything a client asks for (a tool call above all) is sent once.
fn harmless_twice(method: &str) -> Resend {
    match method {
        "ping" | "tools/list" | "prompts/list" | "resources/list" | "resources/templates/list" => {
            Resend::IfStale
        }
        _ => Resend::Never,
    }
}

/// Whether a 400 refusal (`HTTP 400: <body>`) is about the session id. The spec has a server
/// answer a session it does not know (it restarted, or expired it) with 404, but servers built on
/// the TypeScript SDK answer 400 "Bad Request: No valid session ID provided"; treated like the
/// 404, the gateway initializes again instead of failing every call until it restarts itself.
fn refuses_session(refusal: &str) -> bool {
    refusal.to_ascii_lowercase().contains("session")
}

/// Cancels an HTTP call upstream unless disarmed (its future was dropped before the reply).
struct CancelHttp {
    upstream: Arc<HttpUpstream>,
    id: u64,
    armed: bool,
}

impl Drop for CancelHttp {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let up = self.upstream.clone();
        let mut body = Vec::with_capacity(128);
        body.extend_from_slice(
            br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"#,
        );
        body.extend_from_slice(itoa::Buffer::new().format(self.id).as_bytes());
        body.extend_from_slice(br#","reason":"the gateway's caller went away or timed out"}}"#);
        monoio::spawn(async move {
            // Bounded: a server that hangs must not collect a task and a connection per call
            // it was too slow for.
            match monoio::time::timeout(CANCEL_TIMEOUT, up.send_message(&body)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::debug!(server = %up.name, "could not send a cancellation: {e}")
                }
                Err(_) => {
                    tracing::debug!(server = %up.name, "the server did not take a cancellation in time")
                }
            }
        });
    }
}

/// An exchange failed, or the server no longer knows the session.
enum ExchangeError {
    Failed(UpstreamError),
    SessionExpired,
}
use ExchangeError::SessionExpired;

impl ExchangeError {
    fn into_error(self, up: &HttpUpstream) -> UpstreamError {
        match self {
            ExchangeError::Failed(e) => e,
            ExchangeError::SessionExpired => up.protocol_error("the upstream rejected the session"),
        }
    }
}

impl From<UpstreamError> for ExchangeError {
    fn from(e: UpstreamError) -> Self {
        ExchangeError::Failed(e)
    }
}
